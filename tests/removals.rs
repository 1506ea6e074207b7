//! Removal headers are bounded: a response removes only cookies the request carried under this
//! session's name, and among those only the chunks a session under the configuration can span.
//! A request naming `NAME` to `NAME.31` (664 bytes) used to get 32 removal lines (3,892 bytes of
//! response headers, near nginx's default 4 KB `proxy_buffer_size`, past which it answers 502).

use std::time::{Duration, SystemTime};

use sealed_session::format::MAX_CHUNKS;
use sealed_session::{
    Key, KeyRing, Lifetime, Session, SessionCodec, SessionConfig, SessionConfigBuilder as Builder,
    SetCookies,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn codec(configure: impl FnOnce(Builder) -> Builder) -> SessionCodec {
    let config = configure(SessionConfig::builder("s")).build().expect("a valid configuration");
    SessionCodec::new(config, KeyRing::single(Key::from_bytes([7; 32])))
}

/// `NAME=x; NAME.1=x; ...; NAME.31=x` for the codec's cookie name, from chunk `from` on.
fn every_chunk_name(codec: &SessionCodec, from: usize) -> String {
    let name = codec.config().cookie_name();
    let pairs = (from..MAX_CHUNKS)
        .map(|i| if i == 0 { format!("{name}=x") } else { format!("{name}.{i}=x") });
    pairs.collect::<Vec<_>>().join("; ")
}

/// The names the removal headers among `set` remove, in order, and their total size.
fn removals(set: &SetCookies) -> (Vec<String>, usize) {
    let removed: Vec<_> = set
        .cookies()
        .iter()
        .filter(|c| c.max_age() == Some(cookie::time::Duration::ZERO))
        .map(|c| (c.name().to_owned(), c.to_string().len()))
        .collect();
    let bytes = removed.iter().map(|(_, len)| len).sum();
    (removed.into_iter().map(|(name, _)| name).collect(), bytes)
}

/// What the next response carries for a request with this Cookie header.
fn response_to(codec: &SessionCodec, header: &str) -> Option<SetCookies> {
    let mut session = codec.load([header], None, now());
    codec.save(&mut session, now()).expect("saves")
}

/// The largest budget the format allows (32 full lines), with the header limit raised to match.
fn largest(builder: Builder) -> Builder {
    builder.cookie_budget(MAX_CHUNKS * 4096).max_cookie_header(256 * 1024)
}

fn names(codec: &SessionCodec, chunks: std::ops::Range<usize>) -> Vec<String> {
    let name = codec.config().cookie_name();
    chunks.map(|i| if i == 0 { name.to_owned() } else { format!("{name}.{i}") }).collect()
}

#[test]
fn a_storm_of_chunk_names_buys_at_most_the_configurations_chunks() {
    // (configuration, the most chunks a session under it can span)
    type Configure = fn(Builder) -> Builder;
    let cases: [(&str, Configure, usize); 4] = [
        ("defaults (6 KiB budget, 4 KiB lines)", |b| b, 2),
        ("persistent", |b| b.persistent(true), 2),
        // 13 without `Max-Age`; a session with a lifetime of its own carries one.
        ("512-byte lines", |b| b.max_cookie_line(512), 14),
        ("the largest budget", |b| largest(b).max_state_size(1 << 20), 32),
    ];
    for (what, configure, most) in cases {
        // The bound is what the largest session really takes: no legitimate chunk is ever
        // left unremoved.
        assert_eq!(
            largest_session_chunks(codec(|b| configure(b).compression_threshold(None))),
            most,
            "{what}"
        );
        let codec = codec(configure);
        // Garbage under every chunk name: rejected, and the response removes the chunks a
        // session of this configuration could have had, not all 32.
        let set = response_to(&codec, &every_chunk_name(&codec, 0)).expect("removals");
        let (removed, bytes) = removals(&set);
        assert_eq!(removed, names(&codec, 0..most), "{what}");
        assert_eq!(set.len(), most, "{what}: nothing but the removals");
        assert!(bytes <= most * 160, "{what}: {bytes} bytes of removal headers");
        // Only chunk names beyond what the configuration can write: nothing to remove, and
        // nothing to send.
        if most < MAX_CHUNKS {
            let set = response_to(&codec, &every_chunk_name(&codec, most));
            assert_eq!(set, None, "{what}");
        }
    }
}

/// The chunks of the largest session `codec` can seal (of incompressible text, by bisection).
fn largest_session_chunks(codec: SessionCodec) -> usize {
    let chunks = |len: usize| {
        let mut session = Session::new();
        let text: String = (0..len).map(|i| char::from(b'!' + (i * 7919 % 89) as u8)).collect();
        session.insert("v", &text).expect("encodes");
        // The longest `Max-Age` a seal writes: the whole absolute timeout.
        session.set_lifetime(Lifetime::Until(now() + Duration::from_secs(u32::MAX.into())));
        codec.seal(&mut session, now()).ok().map(|set| set.len())
    };
    let (mut fits, mut fails) = (0, 256 * 1024);
    while fails - fits > 1 {
        let middle = (fits + fails) / 2;
        if chunks(middle).is_some() { fits = middle } else { fails = middle }
    }
    chunks(fits).expect("fits")
}

#[test]
fn the_default_configuration_removes_at_most_two_cookies() {
    let codec = codec(|b| b);
    let set = response_to(&codec, &every_chunk_name(&codec, 0)).expect("removals");
    let (removed, bytes) = removals(&set);
    assert_eq!(removed, ["__Host-s", "__Host-s.1"]);
    assert!(bytes < 400, "{bytes} bytes of removal headers (3,892 with 32)");
}

#[test]
fn the_bound_is_format_mds_formula_at_the_edge_of_a_full_line() {
    // (budget, chunks removed) with the default name and attributes: `__Host-session`, and a
    // line's text after its piece, `A` in FORMAT.md 6.2, with the longest `Max-Age` (the
    // absolute timeout plus the clock skew, 43,260 s). A full chunk takes 4096 - 55 + 2 =
    // 4043 bytes of the budget and the last at least 14 + 4, so a second chunk is counted
    // from a budget of 4061 on.
    let attrs = "; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=43260".len();
    let cases = [(4060, 1), (4061, 2), (4062, 2), (6144, 2), (8103, 2), (8104, 3)];
    for (budget, most) in cases {
        let config = SessionConfig::builder("session").cookie_budget(budget).build().unwrap();
        let codec = SessionCodec::new(config, KeyRing::single(Key::from_bytes([7; 32])));
        let name = codec.config().cookie_name();
        // FORMAT.md 6.2: max = min(32, 1 + (budget - len(NAME) - 4) / (line - attrs + 2)).
        let formula = (1 + (budget - name.len() - 4) / (4096 - attrs + 2)).min(MAX_CHUNKS);
        assert_eq!(formula, most, "budget {budget}: FORMAT.md's formula");
        let set = response_to(&codec, &every_chunk_name(&codec, 0)).expect("removals");
        assert_eq!(removals(&set).0, names(&codec, 0..most), "budget {budget}");
        // A bound: no session the configuration seals spans more.
        let largest = largest_session_chunks(codec);
        assert!(largest <= most, "budget {budget}: a session of {largest} chunks");
    }
}

#[test]
fn a_valid_session_beside_planted_chunk_names_removes_only_what_it_could_own() {
    let codec = codec(|b| b);
    let mut session = Session::new();
    session.insert("user", "ada").expect("encodes");
    let sealed = codec.seal(&mut session, now()).expect("seals").request_header();
    let header = format!("{sealed}; {}", every_chunk_name(&codec, 1));

    let mut opened = codec.load([header.as_str()], None, now());
    assert_eq!(opened.get::<String>("user").expect("decodes").as_deref(), Some("ada"));
    assert_eq!(opened.stale_chunks(), 1, "only NAME.1 can be a leftover of ours");
    let set = codec.save(&mut opened, now()).expect("saves").expect("removes the leftover");
    assert_eq!(removals(&set).0, ["__Host-s.1"]);
    assert_eq!(set.len(), 2, "the session and one removal");

    // Purging it removes the same, bounded set.
    opened.purge();
    let set = codec.save(&mut opened, now()).expect("saves").expect("removals");
    assert_eq!(removals(&set).0, ["__Host-s"]);
    let mut planted = codec.load([header.as_str()], None, now());
    planted.purge();
    let set = codec.save(&mut planted, now()).expect("saves").expect("removals");
    assert_eq!(removals(&set).0, ["__Host-s", "__Host-s.1"]);
}
