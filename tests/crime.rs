//! CRIME/BREACH: an attacker who can put data into a session and see its sealed length must
//! learn nothing about a secret stored with `insert_sensitive`. The same probe against a secret
//! stored with plain `insert` (compressed alongside the attacker's data) does leak, which shows
//! the probe works.

use std::time::{Duration, SystemTime};

use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};

/// Two secrets of the same length: the attacker's guess matches the first, not the second.
const SECRETS: [&str; 2] = ["csrf-7f3a9c1e5b2d8046", "csrf-c90e6b27a4f1d358"];
const GUESS: &str = "csrf-7f3a9c1e5b2d";

/// The sealed length of a session holding `secret` and the attacker's guess, repeated so the
/// compressor sees it as often as a real attacker would make it.
fn sealed_len(codec: &SessionCodec, secret: &str, guess: &str, sensitive: bool) -> usize {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut session = Session::new();
    if sensitive {
        session.insert_sensitive("csrf", secret).unwrap();
    } else {
        session.insert("csrf", secret).unwrap();
    }
    // Padding that compresses, so the ordinary section is over the compression threshold.
    session.insert("history", vec!["/products/lamps?page=2"; 12]).unwrap();
    session.insert("search", format!("{guess} ").repeat(4)).unwrap();
    codec.seal(&mut session, now).unwrap().request_header_share()
}

/// For each guess, the sealed lengths under the two secrets.
fn probe(sensitive: bool) -> Vec<(usize, usize)> {
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    [GUESS, "csrf-0000000000", "zq~-u4x0kw!j8v", "QWERTYUIOPASDFG"]
        .iter()
        .map(|guess| {
            let [a, b] = SECRETS.map(|secret| sealed_len(&codec, secret, guess, sensitive));
            (a, b)
        })
        .collect()
}

#[test]
fn sensitive_values_do_not_leak_through_the_sealed_length() {
    let lengths = probe(true);
    assert!(lengths.iter().all(|(a, b)| a == b), "{lengths:?}");
}

#[test]
fn the_probe_detects_a_secret_compressed_beside_attacker_data() {
    // Without `insert_sensitive`, the right guess compresses better against the secret it
    // matches: the length tells the attacker which secret is stored.
    let lengths = probe(false);
    let (matching, other) = lengths[0];
    assert!(matching < other, "{lengths:?}");
}
