//! `SessionConfigBuilder::build` refuses the settings that would inject attributes into the
//! Set-Cookie header, break it (CR, LF), or make browsers drop the cookie (a `__Host-` name with
//! a `Domain`, a `__Secure-` name without `Secure`), and never prefixes a name twice.

use std::time::{Duration, SystemTime};

use sealed_session::{
    ConfigError, Key, KeyRing, Lifetime, Session, SessionCodec, SessionConfig, SetCookies,
};

/// Which `ConfigError` variant a case expects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refused {
    Name,
    Path,
    Domain,
    Prefix,
    TokenHeader,
}

fn kind(error: &ConfigError) -> Option<Refused> {
    Some(match error {
        ConfigError::InvalidName { .. } => Refused::Name,
        ConfigError::InvalidPath { .. } => Refused::Path,
        ConfigError::InvalidDomain { .. } => Refused::Domain,
        ConfigError::Prefix { .. } => Refused::Prefix,
        ConfigError::InvalidTokenHeader { .. } => Refused::TokenHeader,
        _ => return None,
    })
}

type Builder = sealed_session::SessionConfigBuilder;

#[test]
fn unsafe_cookie_settings_are_refused_at_build() {
    let b = SessionConfig::builder;
    // (what, the builder, the variant it is refused with)
    let refused: Vec<(&str, Builder, Refused)> = vec![
        ("path injecting a Domain", b("s").cookie_path("/; Domain=evil.example"), Refused::Path),
        ("path injecting SameSite", b("s").cookie_path("/;SameSite=None"), Refused::Path),
        ("path with CR LF", b("s").cookie_path("/\r\nX-Injected: 1"), Refused::Path),
        ("path with LF", b("s").cookie_path("/app\n"), Refused::Path),
        ("path with NUL", b("s").cookie_path("/a\0b"), Refused::Path),
        ("path with a space", b("s").cookie_path("/my app"), Refused::Path),
        ("path not ASCII", b("s").cookie_path("/café"), Refused::Path),
        ("path without /", b("s").cookie_path("app"), Refused::Path),
        ("empty path", b("s").cookie_path(""), Refused::Path),
        ("path too long", b("s").cookie_path(format!("/{}", "a".repeat(1024))), Refused::Path),
        ("domain injecting", b("s").cookie_domain("example.com; Secure"), Refused::Domain),
        ("domain with CR LF", b("s").cookie_domain("example.com\r\nX: 1"), Refused::Domain),
        ("domain with a port", b("s").cookie_domain("example.com:8080"), Refused::Domain),
        ("domain with a path", b("s").cookie_domain("example.com/x"), Refused::Domain),
        ("domain not ASCII", b("s").cookie_domain("exämple.com"), Refused::Domain),
        ("empty domain", b("s").cookie_domain(""), Refused::Domain),
        ("just a dot", b("s").cookie_domain("."), Refused::Domain),
        ("empty label", b("s").cookie_domain("example..com"), Refused::Domain),
        ("domain too long", b("s").cookie_domain("a.".repeat(130) + "com"), Refused::Domain),
        ("name with CR LF", b("s\r\nX"), Refused::Name),
        ("name with ;", b("s;Domain=x"), Refused::Name),
        ("name with =", b("s=1"), Refused::Name),
        ("name with a dot", b("s.1"), Refused::Name),
        ("__Host- with a Domain", b("__Host-s").cookie_domain("example.com"), Refused::Prefix),
        ("__Host- with a path", b("__Host-s").cookie_path("/app"), Refused::Prefix),
        ("__Host- not Secure", b("__Host-s").cookie_secure(false), Refused::Prefix),
        ("__host- in lower case", b("__host-s").cookie_domain("example.com"), Refused::Prefix),
        ("__Secure- not Secure", b("__Secure-s").cookie_secure(false), Refused::Prefix),
        ("__SECURE- not Secure", b("__SECURE-s").cookie_secure(false), Refused::Prefix),
        ("__Secure- where __Host- applies", b("__Secure-s"), Refused::Prefix),
        ("token header with CR LF", b("s").token_header("x-token\r\nX: 1"), Refused::TokenHeader),
        ("token header with :", b("s").token_header("x-token:"), Refused::TokenHeader),
        ("token header with a space", b("s").token_header("x token"), Refused::TokenHeader),
        ("empty token header", b("s").token_header(""), Refused::TokenHeader),
    ];
    for (what, builder, expected) in refused {
        let error = builder.build().expect_err(what);
        assert_eq!(kind(&error), Some(expected), "{what}: {error}");
        // The message says why, and quotes the setting escaped (no raw CR or LF).
        let message = error.to_string();
        assert!(!message.contains(['\r', '\n']), "{what}: {message:?}");
        assert!(message.contains(": "), "{what}: {message}");
    }
}

#[test]
fn valid_cookie_settings_build_to_the_expected_name() {
    let b = SessionConfig::builder;
    // (what, the builder, the cookie name)
    let accepted: Vec<(&str, Builder, &str)> = vec![
        ("the default", b("s"), "__Host-s"),
        ("__Host- given is not doubled", b("__Host-s"), "__Host-s"),
        ("__Host- given, prefix off", b("__Host-s").host_prefix(false), "__Host-s"),
        ("__Secure- given, prefix off", b("__Secure-s").host_prefix(false), "__Secure-s"),
        ("__Secure- with a Domain", b("__Secure-s").cookie_domain("example.com"), "__Secure-s"),
        ("__Secure- with a path", b("__Secure-s").cookie_path("/app"), "__Secure-s"),
        // Where __Host- cannot be, a Secure cookie is still __Secure- (cookie tossing).
        ("a path", b("s").cookie_path("/app/v1"), "__Secure-s"),
        ("a percent-encoded path", b("s").cookie_path("/caf%C3%A9"), "__Secure-s"),
        ("a domain", b("s").cookie_domain("example.com"), "__Secure-s"),
        ("a leading dot", b("s").cookie_domain(".example.com"), "__Secure-s"),
        ("an xn-- domain", b("s").cookie_domain("xn--exmple-cua.com"), "__Secure-s"),
        ("a domain, not Secure", b("s").cookie_domain("example.com").cookie_secure(false), "s"),
        ("a domain, prefix off", b("s").cookie_domain("example.com").host_prefix(false), "s"),
        ("a token header", b("s").token_header("X-Api-Session"), "__Host-s"),
    ];
    for (what, builder, name) in accepted {
        let config = builder.build().unwrap_or_else(|error| panic!("{what}: {error}"));
        assert_eq!(config.cookie_name(), name, "{what}");
        // Each Set-Cookie line is one cookie with exactly the attributes configured.
        let codec = SessionCodec::new(config, KeyRing::single(Key::generate()));
        let mut session = Session::new();
        session.insert("k", 1).expect("encodes");
        let cookies = codec.seal(&mut session, SystemTime::now()).expect("seals");
        for line in cookies.header_values() {
            assert!(!line.contains(['\r', '\n']), "{what}: {line:?}");
            let parsed = cookie::Cookie::parse(line.as_str()).expect("a Set-Cookie line");
            assert_eq!(parsed.name(), name, "{what}");
            let attributes: Vec<&str> = line.split(';').skip(1).map(str::trim).collect();
            let count = |prefix: &str| attributes.iter().filter(|a| a.starts_with(prefix)).count();
            assert!(count("Domain=") <= 1 && count("Path=") == 1, "{what}: {line}");
            assert!(count("SameSite=") == 1, "{what}: {line}");
        }
    }
}

/// Seals a small session under `codec` so that its cookies carry the longest `Max-Age` a seal
/// writes: issued by a node whose clock is the skew ahead, with a fixed end, then opened and
/// resealed at `now`, so `Max-Age` is the absolute timeout plus the skew. The cookies, and the
/// session as it was sealed.
fn seal_with_the_longest_max_age(codec: &SessionCodec, now: SystemTime) -> (SetCookies, Session) {
    let config = codec.config();
    let ahead = now + config.clock_skew();
    let mut session = Session::new();
    session.insert("user", "ada").expect("encodes");
    session.set_lifetime(Lifetime::Until(ahead + Duration::from_secs(365 * 24 * 3600)));
    let first = codec.seal(&mut session, ahead).expect("seals");
    let mut session = codec.open(&first.request_header(), now).expect("opens");
    session.insert("n", 1).expect("encodes");
    let cookies = codec.seal(&mut session, now).expect("seals");
    let longest = (config.absolute_timeout() + config.clock_skew()).as_secs();
    let max_age = cookies.cookies()[0].max_age().map(|age| age.whole_seconds());
    assert_eq!(max_age, Some(longest as i64), "the longest Max-Age");
    (cookies, session)
}

#[test]
fn a_line_too_short_for_the_first_cookie_is_refused_and_every_accepted_one_round_trips() {
    // (path length, absolute timeout in seconds, refused): Set-Cookie lines of 512 bytes, the
    // name `__Secure-s`, a path `/aaa...`. The name and attributes take 65 bytes plus the path
    // with the longest `Max-Age` of the defaults (43,260, five digits): a path of 439 leaves
    // the first cookie the 8 characters of a token's header, 440 leaves 7. With an absolute
    // timeout of 99,950 s a fresh seal's `Max-Age` has five digits but a reseal's can have six
    // (100,010 s), and the edge moves down by one.
    let cases = [
        (400, 43_200, false),
        (438, 43_200, false),
        (439, 43_200, false),
        (440, 43_200, true),
        (446, 43_200, true),
        (447, 43_200, true),
        (448, 43_200, true),
        (500, 43_200, true),
        (438, 99_950, false),
        (439, 99_950, true),
    ];
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let ring = KeyRing::single(Key::from_bytes([7; 32]));
    for (path_len, absolute, refused) in cases {
        let builder = || {
            SessionConfig::builder("s")
                .cookie_path(format!("/{}", "a".repeat(path_len - 1)))
                .absolute_timeout(Duration::from_secs(absolute))
        };
        // What a seal would write: the longest first line's name and attributes, measured on
        // a line long enough to build, then against 512.
        let roomy = SessionCodec::new(builder().build().expect("4096"), ring.clone());
        let (cookies, _) = seal_with_the_longest_max_age(&roomy, now);
        let first = &cookies.cookies()[0];
        let overhead = first.to_string().len() - first.value().len();
        let short_first_piece = 512 < overhead + 8;
        assert_eq!(short_first_piece, refused, "path {path_len}, {absolute} s: {overhead} bytes");

        match builder().max_cookie_line(512).build() {
            Err(ConfigError::CookieLine { line, min }) => {
                assert!(refused, "path {path_len}, {absolute} s: refused");
                assert_eq!((line, min), (512, overhead + 8), "path {path_len}");
            }
            Err(other) => panic!("path {path_len}, {absolute} s: {other}"),
            Ok(config) => {
                assert!(!refused, "path {path_len}, {absolute} s: accepted");
                let codec = SessionCodec::new(config, ring.clone());
                // A fresh seal, and one with the longest attributes, each open again.
                let mut fresh = Session::new();
                fresh.insert("user", "ada").expect("encodes");
                let fresh_cookies = codec.seal(&mut fresh, now).expect("seals");
                let longest = seal_with_the_longest_max_age(&codec, now);
                for (cookies, sealed) in [(fresh_cookies, fresh), longest] {
                    assert!(cookies.cookies()[0].value().len() >= 8, "path {path_len}");
                    let opened = codec.open(&cookies.request_header(), now).expect("opens");
                    assert_eq!(opened.get::<String>("user").unwrap().as_deref(), Some("ada"));
                    assert_eq!(opened.id(), sealed.id(), "path {path_len}");
                }
            }
        }
    }
}
