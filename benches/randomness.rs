//! What the fork-safe default costs: sealing every corpus state with nonces (and ids) drawn from
//! the operating system (`Randomness::Os`, the default) against the thread's generator
//! (`Randomness::ThreadLocal`), and one 24-byte draw from each source alone.
//!
//! Run with `cargo bench --bench randomness`. It prints a markdown table of medians over
//! alternating batches (see `common::medians`): the difference is what the default adds to
//! every seal, and so to every write request, and both against `PrivateJar`'s seal of the same
//! state, on the corpus and the generated token-heavy states; and the first seal of a new
//! session (a login), which draws its id with its nonce.

mod common;

use std::hint::black_box;

use rand::Rng as _;
use sealed_session::{Randomness, SessionConfig};

use common::{Sides, medians, run};

const ROUNDS: usize = 101;

fn main() {
    let os = Sides::with_config(SessionConfig::default());
    assert_eq!(os.codec.config().randomness(), Randomness::Os, "the default draws from the OS");
    let thread = Sides::with_config(
        SessionConfig::builder("session")
            .randomness(Randomness::ThreadLocal)
            .build()
            .expect("a valid configuration"),
    );

    let mut nonce = [0u8; 24];
    let mut nonce2 = [0u8; 24];
    let draws = medians(
        ROUNDS,
        &mut [
            &mut run(|| getrandom::fill(black_box(&mut nonce)).expect("getrandom")),
            &mut run(|| rand::rng().fill_bytes(black_box(&mut nonce2))),
        ],
    );
    println!("| draw of 24 bytes | µs |\n|---|---:|");
    println!("| getrandom (Os) | {:.3} |\n| rand::rng (ThreadLocal) | {:.3} |", draws[0], draws[1]);

    // Against PrivateJar too (issue 27's target: seal <= 1.5x PrivateJar on every state), since
    // the cookie crate's thread generator does not pay for a system call per seal.
    println!(
        "\n| state | seal, Os (µs) | seal, ThreadLocal (µs) | Os costs more by (µs) \
         | PrivateJar seal (µs) | Os / PrivateJar | ThreadLocal / PrivateJar |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut largest = 0.0_f64;
    for (file, json) in common::corpus_files().into_iter().chain(common::generated::states()) {
        let case = os.case(file.clone(), &json);
        let mut session_os = case.session;
        let mut session_thread = thread.case(file.clone(), &json).session;
        let state = case.state;
        let times = medians(
            ROUNDS,
            &mut [
                &mut run(|| os.seal(black_box(&mut session_os))),
                &mut run(|| thread.seal(black_box(&mut session_thread))),
                &mut run(|| os.peer_seal(black_box(&state))),
            ],
        );
        let extra = times[0] - times[1];
        largest = largest.max(extra);
        println!(
            "| {file} | {:.2} | {:.2} | {extra:+.2} | {:.2} | {:.2}x | {:.2}x |",
            times[0],
            times[1],
            times[2],
            times[0] / times[2],
            times[1] / times[2]
        );
    }
    println!("\nlargest extra cost per seal: {largest:.2} µs");

    // A login: the first seal of a session draws its id and its nonce, in one call.
    println!(
        "\n| new session (a login) | seal, Os (µs) | seal, ThreadLocal (µs) | Os costs more by (µs) |"
    );
    println!("|---|---:|---:|---:|");
    for (file, json) in common::corpus_files() {
        if file != "signin.json" && file != "oauth.json" {
            continue;
        }
        let state: common::State = serde_json::from_str(&json).expect("a JSON object");
        let fresh = Sides::session_of(&state);
        let times = medians(
            ROUNDS,
            &mut [
                &mut run(|| os.seal(black_box(&mut fresh.clone()))),
                &mut run(|| thread.seal(black_box(&mut fresh.clone()))),
            ],
        );
        println!("| {file} | {:.2} | {:.2} | {:+.2} |", times[0], times[1], times[0] - times[1]);
    }
}
