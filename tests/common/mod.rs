//! Helpers shared by the integration tests: a fixed clock, deterministic keys and filler, and
//! the browser's side of cookies (which Set-Cookie headers it keeps, what it sends back).

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use sealed_session::SetCookies;

/// The fixed "now" every test starts from, in Unix seconds; time only moves when a test moves it.
pub const NOW_SECS: u64 = 1_800_000_000;

/// The fixed "now": `UNIX_EPOCH + NOW_SECS`.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// `now()` moved by `secs` seconds (negative moves back).
pub fn at(secs: i64) -> SystemTime {
    if secs >= 0 {
        now() + Duration::from_secs(secs.unsigned_abs())
    } else {
        now() - Duration::from_secs(secs.unsigned_abs())
    }
}

/// The `(name, value)` pairs a browser stores from these Set-Cookie headers (removals
/// excluded), in the order they were sent.
pub fn stored(set: &SetCookies) -> Vec<(String, String)> {
    set.cookies()
        .iter()
        .filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO))
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

/// The names these Set-Cookie headers remove (`Max-Age=0`), in order.
pub fn removed(set: &SetCookies) -> Vec<String> {
    set.cookies()
        .iter()
        .filter(|c| c.max_age() == Some(cookie::time::Duration::ZERO))
        .map(|c| c.name().to_owned())
        .collect()
}

/// A Cookie request header carrying these pairs, in this order.
pub fn header(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

/// `len` characters that zstd cannot usefully compress, drawn from a seeded xorshift so tests
/// are reproducible.
pub fn noise(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state >> 58) as usize])
        })
        .collect()
}
