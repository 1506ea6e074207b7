//! What sealing a token-heavy session costs when its tokens are stored as secrets
//! (`SessionConfigBuilder::sensitive_key`, never compressed), against the default (every value
//! compressed together) and the `cookie` crate's `PrivateJar` (issue 27: the seal target this
//! supports is 1.5x PrivateJar where tokens are stored as the docs advise); and opening both
//! against the floor (AES-256-GCM and base64url on the state's MessagePack, `benches/floor.rs`).
//!
//! ```text
//! cargo run --release --example sensitive_tokens
//! ```
//!
//! Medians of 101 alternating batches (`benches/common`); wire bytes are the cookie values'.

#[path = "../benches/common/mod.rs"]
#[allow(unused)]
mod common;

use std::hint::black_box;

use sealed_session::SessionConfig;

use common::{Floor, Sides, medians, run};

/// The top-level keys that hold tokens or secrets in each state: OAuth and OIDC tokens, API
/// keys, CSRF tokens. Lists of ids (`gen_uuids.json`) are not secrets and stay compressed.
const SECRETS: &[(&str, &[&str])] = &[
    ("oauth.json", &["id_token", "access_token", "refresh_token", "xsrf"]),
    ("api_tokens.json", &["tokens"]),
    ("signin.json", &["xsrf"]),
    ("gen_oidc.json", &["id_token", "access_token", "refresh_token", "csrf"]),
    ("gen_api_keys.json", &["keys", "csrf"]),
    ("gen_uuids.json", &["csrf"]),
];

fn main() {
    let plain = Sides::new();
    let floor = Floor::new();
    println!(
        "| state | secrets | seal, all compressed (µs) | seal, secrets sensitive (µs) \
         | PrivateJar (µs) | compressed / PrivateJar | sensitive / PrivateJar \
         | wire B compressed | wire B sensitive | PrivateJar wire B | open, compressed / floor \
         | open, sensitive / floor |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let files = common::corpus_files().into_iter().chain(common::generated::states());
    for (file, json) in files {
        let Some((_, keys)) = SECRETS.iter().find(|(name, _)| *name == file) else {
            continue;
        };
        let config = keys
            .iter()
            .fold(SessionConfig::builder("session"), |builder, key| builder.sensitive_key(*key))
            .build()
            .expect("a valid configuration");
        let secret = Sides::with_config(config);
        let case = plain.case(file.clone(), &json);
        let secret_case = secret.case(file.clone(), &json);
        let (mut compressed, mut sensitive) = (case.session, secret_case.session);
        let state = case.state;
        let floor_value = floor.seal(&case.msgpack);
        let (header, secret_header) = (case.header, secret_case.header);
        let opens = medians(
            101,
            &mut [
                &mut run(|| plain.open(black_box(&header))),
                &mut run(|| secret.open(black_box(&secret_header))),
                &mut run(|| floor.open(black_box(&floor_value))),
            ],
        );
        let times = medians(
            101,
            &mut [
                &mut run(|| plain.seal(black_box(&mut compressed))),
                &mut run(|| secret.seal(black_box(&mut sensitive))),
                &mut run(|| plain.peer_seal(black_box(&state))),
            ],
        );
        println!(
            "| {file} | {} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x | {} | {} | {} | {:.2}x | {:.2}x |",
            keys.join(", "),
            times[0],
            times[1],
            times[2],
            times[0] / times[2],
            times[1] / times[2],
            case.wire,
            secret_case.wire,
            case.peer_wire,
            opens[0] / opens[2],
            opens[1] / opens[2],
        );
    }
}
