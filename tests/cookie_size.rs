//! Size limits on the wire: every Set-Cookie line fits in 4,096 bytes (or the configured
//! shorter line), chunks are filled to the line, and the session's share of the Cookie request
//! header stays within its budget, for sessions of every size up to that budget and under every
//! combination of cookie attributes that lengthens the lines.

mod common;

use std::time::Duration;

use cookie::Cookie;
use sealed_session::format::{MAX_CHUNKS, MAX_COOKIE_LINE};
use sealed_session::{Key, KeyRing, SameSite, SealError, Session, SessionCodec, SessionConfig};

use common::{at, header, noise, now, removed, stored};

/// A named configuration to test under, with its Set-Cookie line limit.
fn configs() -> Vec<(&'static str, SessionConfig, usize)> {
    let long_domain = format!("{}.example.com", "sub".repeat(60));
    let build = |builder: sealed_session::SessionConfigBuilder| builder.build().unwrap();
    vec![
        ("defaults", build(SessionConfig::builder("session")), 4096),
        ("persistent", build(SessionConfig::builder("session").persistent(true)), 4096),
        ("domain", build(SessionConfig::builder("session").cookie_domain("example.com")), 4096),
        (
            "persistent, long domain and path, strict",
            build(
                SessionConfig::builder("session")
                    .persistent(true)
                    .cookie_domain(long_domain.clone())
                    .cookie_path("/a/rather/long/path/to/the/application")
                    .cookie_same_site(SameSite::Strict),
            ),
            4096,
        ),
        (
            "longest name, persistent, domain",
            build(
                // 200 bytes with the `__Secure-` prefix a Domain brings: the longest name.
                SessionConfig::builder("n".repeat(200 - "__Secure-".len()))
                    .persistent(true)
                    .cookie_domain(long_domain)
                    .absolute_timeout(Duration::from_secs(400 * 86_400)),
            ),
            4096,
        ),
        (
            "short lines, persistent, domain",
            build(
                SessionConfig::builder("session")
                    .max_cookie_line(512)
                    .persistent(true)
                    .cookie_domain("example.com"),
            ),
            512,
        ),
        (
            "short lines, large budget (two-digit chunk indexes)",
            build(SessionConfig::builder("session").max_cookie_line(600).cookie_budget(18_000)),
            600,
        ),
        (
            "large budget",
            build(SessionConfig::builder("session").persistent(true).cookie_budget(30_000)),
            4096,
        ),
    ]
}

fn codec(config: SessionConfig) -> SessionCodec {
    SessionCodec::new(config, KeyRing::single(Key::from_bytes([4; 32])))
}

fn seal_blob(codec: &SessionCodec, len: usize) -> Result<sealed_session::SetCookies, SealError> {
    let mut session = Session::new();
    session.insert("blob", noise(len, len as u64)).unwrap();
    session.insert_sensitive("csrf", noise(32, 1)).unwrap();
    codec.seal(&mut session, now())
}

/// The attributes of a Set-Cookie line, without its name and value.
fn attributes(cookie: &Cookie<'_>) -> String {
    let mut bare = cookie.clone();
    bare.set_name("x");
    bare.set_value("");
    bare.to_string()
}

#[test]
fn set_cookie_lines_and_the_header_share_stay_within_their_limits() {
    for (what, config, max_line) in configs() {
        assert!(max_line <= MAX_COOKIE_LINE);
        let codec = codec(config);
        let budget = codec.config().cookie_budget();
        let name = codec.config().cookie_name().to_owned();
        let mut largest_chunks = 0;
        let mut len = 0;
        loop {
            let set = match seal_blob(&codec, len) {
                Ok(set) => set,
                Err(SealError::TooLarge { needed, budget: named, .. }) => {
                    assert_eq!(named, budget);
                    assert!(needed > budget, "{what}: {needed}");
                    break;
                }
                Err(SealError::TooManyCookies { chunks, .. }) => {
                    assert!(chunks > MAX_CHUNKS, "{what}: {chunks}");
                    break;
                }
                Err(other) => panic!("{what}: {other}"),
            };
            let lines: Vec<String> = set.header_values().collect();
            let context = format!("{what}, {len} bytes, {} cookies", lines.len());
            for (i, line) in lines.iter().enumerate() {
                assert!(line.len() <= max_line, "{context}: line {i} is {} bytes", line.len());
                // Pieces are filled in order: only the last may be shorter than the line.
                if i + 1 < lines.len() {
                    assert_eq!(line.len(), max_line, "{context}: line {i} not filled");
                }
            }
            // Every chunk carries the same attributes, and under its own name.
            let first = attributes(&set.cookies()[0]);
            for (i, cookie) in set.cookies().iter().enumerate() {
                let expected = if i == 0 { name.clone() } else { format!("{name}.{i}") };
                assert_eq!(cookie.name(), expected, "{context}");
                assert_eq!(attributes(cookie), first, "{context}");
                let parsed = Cookie::parse(lines[i].as_str()).unwrap();
                assert_eq!(parsed.value(), cookie.value(), "{context}: the line parses back");
            }
            // The share of the Cookie header: what the browser sends, within the budget.
            let share = set.request_header_share();
            assert!(share <= budget, "{context}: share {share}, budget {budget}");
            assert_eq!(set.request_header().len() + 2, share, "{context}");
            assert_eq!(header(&stored(&set)), set.request_header());
            let opened = codec.open(&set.request_header(), at(1)).unwrap();
            assert_eq!(opened.get::<String>("blob").unwrap(), Some(noise(len, len as u64)));
            largest_chunks = largest_chunks.max(lines.len());
            len += 1 + len / 8;
        }
        assert!(len > budget / 2, "{what}: refused at only {len} bytes");
        assert!(largest_chunks >= 2, "{what}: never split");
        if max_line < MAX_COOKIE_LINE {
            assert!(largest_chunks > 10, "{what}: only {largest_chunks} cookies");
        }
    }
}

#[test]
fn max_age_is_the_rest_of_the_absolute_lifetime() {
    let codec = codec(SessionConfig::builder("session").persistent(true).build().unwrap());
    let mut session = Session::new();
    session.insert("a", 1).unwrap();
    let lifetime = codec.config().absolute_timeout().as_secs() as i64;
    let first = codec.seal(&mut session, now()).unwrap();
    assert_eq!(first.cookies()[0].max_age().unwrap().whole_seconds(), lifetime);
    let mut session = codec.open(&first.request_header(), at(600)).unwrap();
    session.insert("a", 2).unwrap();
    let second = codec.save(&mut session, at(600)).unwrap().unwrap();
    assert_eq!(second.cookies()[0].max_age().unwrap().whole_seconds(), lifetime - 600);
    // A browser-session cookie has neither Max-Age nor Expires.
    let codec = self::codec(SessionConfig::default());
    let set = codec.seal(&mut Session::new(), now()).unwrap();
    assert!(set.cookies()[0].max_age().is_none() && set.cookies()[0].expires().is_none());
}

#[test]
fn shrinking_a_session_removes_exactly_the_chunks_it_no_longer_needs() {
    let config = SessionConfig::builder("session").max_cookie_line(512).build().unwrap();
    let codec = codec(config);
    let mut session = Session::new();
    session.insert("blob", noise(4000, 9)).unwrap();
    let big = codec.seal(&mut session, now()).unwrap();
    let chunks = stored(&big).len();
    assert!(chunks >= 8, "{chunks}");
    let mut session = codec.open(&big.request_header(), at(1)).unwrap();
    session.insert("blob", noise(1000, 9)).unwrap();
    let small = codec.save(&mut session, at(1)).unwrap().unwrap();
    let kept = stored(&small).len();
    assert!((2..chunks).contains(&kept), "{kept}");
    let expected: Vec<String> = (kept..chunks).map(|i| format!("__Host-session.{i}")).collect();
    assert_eq!(removed(&small), expected);
    for line in small.header_values() {
        assert!(line.len() <= 512, "{line}");
    }
}

#[test]
fn every_session_within_the_budget_can_be_opened_again() {
    // The budget may be raised far beyond the default; whatever seals must also open, so a
    // budget above the Cookie header limit on open is a configuration error.
    let too_big = SessionConfig::builder("session").cookie_budget(40_000).build();
    assert!(matches!(too_big, Err(sealed_session::ConfigError::Invalid(_))), "{too_big:?}");
    for budget in [20_000, 40_000, MAX_CHUNKS * MAX_COOKIE_LINE] {
        let config = SessionConfig::builder("session")
            .cookie_budget(budget)
            .max_cookie_header(budget.max(sealed_session::DEFAULT_MAX_COOKIE_HEADER))
            .max_state_size(2 * budget)
            .build()
            .unwrap();
        let codec = codec(config);
        let mut len = budget / 4;
        let mut largest = 0;
        while let Ok(set) = seal_blob(&codec, len) {
            let header = set.request_header();
            let opened = codec.open(&header, at(1));
            assert!(
                opened.is_ok(),
                "budget {budget}: a {}-byte header does not open",
                header.len()
            );
            largest = largest.max(header.len());
            len += 512 + len / 16;
        }
        assert!(largest > budget * 3 / 4, "{budget}: at most {largest}");
    }
}
