//! The tamper matrix: every way a client can change, drop, move, mix or replay session cookies,
//! each rejected with the exact reason, and the ways a browser legitimately varies them (cookie
//! order, leftovers, duplicated names), each still opening.
//!
//! Time never passes on its own here: every call takes an explicit time around [`now`].

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use sealed_session::format::{FORMAT_VERSION, HEADER_LEN, MAX_CHUNKS};
use sealed_session::{
    Key, KeyId, KeyRing, Mode, RejectReason, Rejection, Session, SessionCodec, SessionConfig,
};

use common::{at, header, noise, now, removed, stored};

/// A marker stored in every fixture session, in an ordinary and in a sensitive value: no
/// rejection may ever show it.
const PLAINTEXT: &str = "plaintext-marker-7f3a";
/// The key that seals.
const CURRENT: KeyId = KeyId(0x10);
/// A pending key: it opens but does not seal yet. Its id is one bit away from `CURRENT`'s, so
/// a flipped key id can land on a key that exists, which must then fail authentication.
const PENDING: KeyId = KeyId(0x11);
/// Cookie base name (the `__Host-` prefix is added by the defaults).
const NAME: &str = "__Host-sid";

const MODES: [Mode; 2] = [Mode::Sealed, Mode::Signed];

fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.insert(CURRENT, key(1), at(-86_400), at(-86_400)).unwrap();
    ring.insert(PENDING, key(2), at(-86_400), at(86_400)).unwrap();
    ring
}

/// A codec for `mode`; `multi` makes Set-Cookie lines short (512 bytes) so that the fixture
/// session spans three cookies.
fn codec(mode: Mode, multi: bool) -> SessionCodec {
    let mut builder = SessionConfig::builder("sid").mode(mode);
    if multi {
        builder = builder.max_cookie_line(512);
    }
    SessionCodec::new(builder.build().unwrap(), ring())
}

/// A session with an ordinary and a sensitive value holding [`PLAINTEXT`], and `filler`
/// characters of noise to make it larger.
fn session(filler: usize) -> Session {
    let mut session = Session::new();
    session.insert("user", PLAINTEXT).unwrap();
    session.insert_sensitive("csrf", format!("{PLAINTEXT}-csrf")).unwrap();
    session.insert("filler", noise(filler, 7)).unwrap();
    session
}

/// A sealed fixture: the codec, and the cookies the browser holds.
struct Fixture {
    mode: Mode,
    codec: SessionCodec,
    pairs: Vec<(String, String)>,
}

impl Fixture {
    fn new(mode: Mode, multi: bool) -> Fixture {
        let codec = codec(mode, multi);
        let mut session = session(if multi { 900 } else { 16 });
        let pairs = stored(&codec.seal(&mut session, now()).unwrap());
        assert_eq!(pairs.len(), if multi { 3 } else { 1 }, "fixture chunk count");
        let fixture = Fixture { mode, codec, pairs };
        assert_genuine(&fixture.codec.open(&fixture.header(), now()).unwrap());
        fixture
    }

    fn header(&self) -> String {
        header(&self.pairs)
    }

    /// The fixture's cookies with the token replaced by `token` (same length), split the same way.
    fn resplit(&self, token: &[u8]) -> Vec<(String, String)> {
        let encoded = BASE64.encode(token);
        let mut rest = encoded.as_str();
        self.pairs
            .iter()
            .map(|(name, value)| {
                let (part, tail) = rest.split_at(value.len());
                rest = tail;
                (name.clone(), part.to_owned())
            })
            .collect()
    }

    fn token(&self) -> Vec<u8> {
        let joined: String = self.pairs.iter().map(|(_, value)| value.as_str()).collect();
        BASE64.decode(joined).unwrap()
    }
}

/// The session is the fixture's, with its values intact.
fn assert_genuine(session: &Session) {
    assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some(PLAINTEXT));
    assert_eq!(session.get::<String>("csrf").unwrap(), Some(format!("{PLAINTEXT}-csrf")));
    assert!(session.is_sensitive("csrf") && !session.is_sensitive("user"));
    assert_eq!(session.key_id(), Some(CURRENT));
}

/// Opens `header`, which must be rejected, and returns the reason. Every rejection is also
/// checked not to show the plaintext.
fn rejected(codec: &SessionCodec, header: &str, time: std::time::SystemTime) -> RejectReason {
    match codec.open(header, time) {
        Ok(session) => panic!("a tampered session opened: {session:?}"),
        Err(rejection) => {
            let text = format!("{rejection} {rejection:?}");
            assert!(!text.contains(PLAINTEXT), "{text}");
            rejection.reason()
        }
    }
}

/// What a rejection must say.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Exactly(RejectReason),
    /// `Malformed`, whatever the detail.
    Malformed,
    /// A changed token whose damage either breaks the encoding or fails authentication.
    MalformedOrForged,
}

impl Expect {
    fn admits(self, reason: RejectReason) -> bool {
        match self {
            Expect::Exactly(expected) => reason == expected,
            Expect::Malformed => matches!(reason, RejectReason::Malformed(_)),
            Expect::MalformedOrForged => {
                matches!(reason, RejectReason::Malformed(_) | RejectReason::Forged)
            }
        }
    }
}

fn mode_nibble(mode: Mode) -> u8 {
    match mode {
        Mode::Sealed => 0,
        Mode::Signed => 1,
        other => panic!("unknown mode {other:?}"),
    }
}

/// The reason a decoder must give for a changed token whose clear header now reads `header`,
/// with `present` chunks sent: the header checks in the order the codec makes them (version,
/// mode, count, the chunks' presence, key id), and authentication failing when they all pass.
fn verdict(header: [u8; HEADER_LEN], mode: Mode, present: usize) -> Expect {
    let version = header[0] >> 4;
    if version != FORMAT_VERSION {
        return Expect::Exactly(RejectReason::UnsupportedVersion(version));
    }
    if header[0] & 0x0f != mode_nibble(mode) {
        return Expect::Exactly(RejectReason::WrongMode);
    }
    let count = usize::from(header[1]);
    if count == 0 || count > MAX_CHUNKS {
        return Expect::Malformed;
    }
    if count > present {
        return Expect::Malformed;
    }
    let id = KeyId(u32::from_be_bytes([header[2], header[3], header[4], header[5]]));
    if !ring().contains(id) {
        return Expect::Exactly(RejectReason::UnknownKey(id));
    }
    if count < present { Expect::MalformedOrForged } else { Expect::Exactly(RejectReason::Forged) }
}

fn fixtures() -> Vec<Fixture> {
    MODES.iter().flat_map(|&mode| [Fixture::new(mode, false), Fixture::new(mode, true)]).collect()
}

#[test]
fn every_bit_flip_of_the_token_is_rejected_for_the_right_reason() {
    for fixture in fixtures() {
        let token = fixture.token();
        let present = fixture.pairs.len();
        for bit in 0..token.len() * 8 {
            let mut bad = token.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let expect = match (bit / 8, bit % 8) {
                (0, 4..=7) => Expect::Exactly(RejectReason::UnsupportedVersion(bad[0] >> 4)),
                (0, _) => Expect::Exactly(RejectReason::WrongMode),
                (1, _) if bad[1] == 0 || usize::from(bad[1]) > present => Expect::Malformed,
                (1, _) => Expect::MalformedOrForged,
                (2..=5, _) => {
                    let id = KeyId(u32::from_be_bytes([bad[2], bad[3], bad[4], bad[5]]));
                    // One key per id: landing on another key of the ring is a forgery.
                    if id == PENDING {
                        Expect::Exactly(RejectReason::Forged)
                    } else {
                        Expect::Exactly(RejectReason::UnknownKey(id))
                    }
                }
                _ => Expect::Exactly(RejectReason::Forged),
            };
            let reason = rejected(&fixture.codec, &header(&fixture.resplit(&bad)), now());
            assert!(
                expect.admits(reason),
                "{:?} in {present} chunk(s), bit {bit}: expected {expect:?}, got {reason:?}",
                fixture.mode
            );
        }
    }
}

#[test]
fn every_bit_flip_of_the_cookie_characters_is_rejected() {
    let alphabet = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    for fixture in fixtures() {
        let present = fixture.pairs.len();
        for (index, (_, value)) in fixture.pairs.iter().enumerate() {
            for position in 0..value.len() {
                // Bit 7 would leave ASCII, which a header string cannot carry.
                for bit in 0..7 {
                    let mut bytes = value.clone().into_bytes();
                    bytes[position] ^= 1 << bit;
                    let changed = bytes[position];
                    let value = String::from_utf8(bytes).unwrap();
                    let expect = if index == 0 && position < 8 {
                        // The first eight characters are the clear header.
                        if alphabet(changed) {
                            let mut clear = [0u8; HEADER_LEN];
                            BASE64.decode_slice(&value[..8], &mut clear).unwrap();
                            verdict(clear, fixture.mode, present)
                        } else {
                            Expect::Malformed
                        }
                    } else {
                        Expect::MalformedOrForged
                    };
                    let mut pairs = fixture.pairs.clone();
                    pairs[index].1 = value;
                    let reason = rejected(&fixture.codec, &header(&pairs), now());
                    assert!(
                        expect.admits(reason),
                        "{:?}, chunk {index}, char {position} ({:?}), bit {bit}: expected \
                         {expect:?}, got {reason:?}",
                        fixture.mode,
                        char::from(changed),
                    );
                }
            }
        }
    }
}

#[test]
fn dropping_any_chunk_is_malformed() {
    for mode in MODES {
        let fixture = Fixture::new(mode, true);
        for drop in 0..fixture.pairs.len() {
            let mut pairs = fixture.pairs.clone();
            pairs.remove(drop);
            let reason = rejected(&fixture.codec, &header(&pairs), now());
            assert!(matches!(reason, RejectReason::Malformed(_)), "drop {drop}: {reason:?}");
        }
        // Truncating a chunk (a proxy cutting the header short) is no better.
        for index in 0..fixture.pairs.len() {
            let mut pairs = fixture.pairs.clone();
            let cut = pairs[index].1.len() - 5;
            pairs[index].1.truncate(cut);
            let reason = rejected(&fixture.codec, &header(&pairs), now());
            assert!(
                matches!(reason, RejectReason::Malformed(_) | RejectReason::Forged),
                "truncate {index}: {reason:?}"
            );
        }
    }
}

/// All orderings of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            out.push(order);
        }
    }
    out
}

#[test]
fn reordering_cookies_without_renaming_them_still_opens() {
    // The name carries the index, so the order in the Cookie header does not matter.
    let other = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    for mode in MODES {
        let fixture = Fixture::new(mode, true);
        let id = fixture.codec.open(&fixture.header(), now()).unwrap().id();
        for order in permutations(fixture.pairs.len()) {
            let mut pairs: Vec<_> = order.iter().map(|&i| fixture.pairs[i].clone()).collect();
            pairs.insert(1, other("theme", "dark"));
            pairs.push(other("sid", "not-ours"));
            pairs.insert(0, other("__Host-sid.x", "not-ours"));
            let session = fixture.codec.open(&header(&pairs), now()).unwrap();
            assert_genuine(&session);
            assert_eq!(session.id(), id, "{order:?}");
            assert_eq!(session.stale_chunks(), 0);
        }
    }
}

#[test]
fn moving_chunk_values_between_indexes_is_rejected() {
    for mode in MODES {
        let fixture = Fixture::new(mode, true);
        let n = fixture.pairs.len();
        for order in
            permutations(n).into_iter().filter(|o| o.iter().enumerate().any(|(i, &j)| i != j))
        {
            // Chunk `i` now carries the value of chunk `order[i]`, under chunk `i`'s name.
            let pairs: Vec<_> = (0..n)
                .map(|i| (fixture.pairs[i].0.clone(), fixture.pairs[order[i]].1.clone()))
                .collect();
            let expect = if order[0] == 0 {
                Expect::MalformedOrForged
            } else {
                let mut clear = [0u8; HEADER_LEN];
                BASE64.decode_slice(&pairs[0].1[..8], &mut clear).unwrap();
                verdict(clear, mode, n)
            };
            let reason = rejected(&fixture.codec, &header(&pairs), now());
            assert!(
                expect.admits(reason),
                "{mode:?} {order:?}: expected {expect:?}, got {reason:?}"
            );
        }
    }
}

#[test]
fn mixing_chunks_of_two_writes_is_forged() {
    for mode in MODES {
        let codec = codec(mode, true);
        // The same state sealed twice: same lengths and header, different nonces.
        let writes: Vec<_> =
            (0..2).map(|_| stored(&codec.seal(&mut session(900), now()).unwrap())).collect();
        let n = writes[0].len();
        assert_eq!(writes[1].len(), n);
        let mut mixes = 0;
        for mask in 0..(1u32 << n) {
            let pairs: Vec<_> =
                (0..n).map(|i| writes[(mask >> i & 1) as usize][i].clone()).collect();
            // Signed tokens carry no nonce: a chunk holding only unchanged plaintext can be the
            // same in both writes, and then the mix is one of the writes.
            if writes.contains(&pairs) {
                assert_genuine(&codec.open(&header(&pairs), now()).unwrap());
            } else {
                let reason = rejected(&codec, &header(&pairs), now());
                assert_eq!(reason, RejectReason::Forged, "{mode:?} mask {mask:b}");
                mixes += 1;
            }
        }
        // Chunk 0 (session id) and the last chunk (tag) always differ between writes.
        assert!(mixes >= if mode == Mode::Sealed { 6 } else { 4 }, "{mode:?}: {mixes} mixes");
    }
}

#[test]
fn a_value_moved_to_another_cookie_name_is_forged() {
    for mode in MODES {
        for multi in [false, true] {
            let a = Fixture::new(mode, multi);
            let b_config = SessionConfig::builder("other").mode(mode);
            let b_config = if multi { b_config.max_cookie_line(512) } else { b_config };
            let b = SessionCodec::new(b_config.build().unwrap(), ring());
            let b_name = b.config().cookie_name().to_owned();
            let moved: Vec<_> = a
                .pairs
                .iter()
                .map(|(name, value)| (name.replacen(NAME, &b_name, 1), value.clone()))
                .collect();
            assert_ne!(moved, a.pairs);
            assert_eq!(rejected(&b, &header(&moved), now()), RejectReason::Forged, "{mode:?}");
            // Under its own name it is not B's session at all: B sees a new, empty session.
            let fresh = b.open(&a.header(), now()).unwrap();
            assert!(fresh.is_empty() && fresh.id().is_none());
        }
    }
}

#[test]
fn duplicating_a_chunk_with_another_value_never_replaces_the_genuine_one() {
    // The same name twice is a path or domain variant: the genuine set still opens, whichever
    // comes first, and the other value is never taken for it.
    for mode in MODES {
        let fixture = Fixture::new(mode, true);
        let other_write = stored(&fixture.codec.seal(&mut session(900), now()).unwrap());
        for (index, (name, value)) in fixture.pairs.iter().enumerate() {
            let garbage = "A".repeat(value.len());
            for bogus in [other_write[index].1.clone(), garbage] {
                for bogus_first in [true, false] {
                    let mut pairs = fixture.pairs.clone();
                    let extra = (name.clone(), bogus.clone());
                    pairs.insert(if bogus_first { index } else { index + 1 }, extra);
                    let opened = fixture.codec.open(&header(&pairs), now());
                    let session = opened.unwrap_or_else(|r| {
                        panic!("{mode:?} chunk {index}, first {bogus_first}: {r}")
                    });
                    assert_genuine(&session);
                }
            }
        }
    }
}

#[test]
fn a_chunk_replaced_by_another_writes_is_forged_and_duplicates_do_not_rescue_it() {
    let fixture = Fixture::new(Mode::Sealed, true);
    let other_write = stored(&fixture.codec.seal(&mut session(900), now()).unwrap());
    // Chunk 1 of the other write twice, the genuine chunk 1 never: no variant is genuine.
    let mut pairs = fixture.pairs.clone();
    pairs[1].1 = other_write[1].1.clone();
    pairs.push(other_write[1].clone());
    assert_eq!(rejected(&fixture.codec, &header(&pairs), now()), RejectReason::Forged);
}

/// A sealed session and its cookie header, for the expiry tests.
fn sealed_at(codec: &SessionCodec, time: std::time::SystemTime) -> (Session, String) {
    let mut session = session(16);
    let set = codec.seal(&mut session, time).unwrap();
    (session, set.request_header())
}

#[test]
fn idle_expiry_is_enforced_to_the_second() {
    let codec = codec(Mode::Sealed, false);
    let (_, cookies) = sealed_at(&codec, now());
    let idle = codec.config().idle_timeout().as_secs() as i64;
    let skew = 60;
    assert_genuine(&codec.open(&cookies, at(idle + skew)).unwrap());
    assert_eq!(rejected(&codec, &cookies, at(idle + skew + 1)), RejectReason::IdleExpired);
    assert_eq!(rejected(&codec, &cookies, at(idle * 10)), RejectReason::IdleExpired);
}

#[test]
fn a_refreshed_session_outlives_the_original_idle_window() {
    let codec = codec(Mode::Sealed, false);
    let (_, original) = sealed_at(&codec, now());
    // Within the refresh interval nothing is written; after it, the idle window is refreshed.
    let mut session = codec.open(&original, at(30)).unwrap();
    assert!(codec.save(&mut session, at(30)).unwrap().is_none(), "refreshes are throttled");
    let mut session = codec.open(&original, at(20 * 60)).unwrap();
    let refreshed = codec.save(&mut session, at(20 * 60)).unwrap().expect("due for a refresh");
    let refreshed = refreshed.request_header();
    let later = at(40 * 60);
    assert_eq!(rejected(&codec, &original, later), RejectReason::IdleExpired);
    let session = codec.open(&refreshed, later).unwrap();
    assert_genuine(&session);
    assert_eq!(session.last_refresh(), Some(at(20 * 60)));
    assert_eq!(session.issued_at(), Some(now()), "a refresh keeps the issue time");
}

#[test]
fn absolute_expiry_ends_even_an_active_session() {
    let codec = codec(Mode::Sealed, false);
    let (sealed, mut cookies) = sealed_at(&codec, now());
    let expires = sealed.expires_at().unwrap();
    let lifetime = codec.config().absolute_timeout().as_secs() as i64;
    // Keep it busy: a request every 20 minutes, each refreshing the idle window.
    let mut t = 0;
    while t + 20 * 60 <= lifetime {
        t += 20 * 60;
        let mut session = codec.open(&cookies, at(t)).unwrap();
        assert_eq!(session.expires_at(), Some(expires), "refreshing never extends the lifetime");
        if let Some(set) = codec.save(&mut session, at(t)).unwrap() {
            cookies = set.request_header();
        }
    }
    let skew = 60;
    assert_genuine(&codec.open(&cookies, at(lifetime + skew)).unwrap());
    assert_eq!(rejected(&codec, &cookies, at(lifetime + skew + 1)), RejectReason::AbsoluteExpired);
}

/// Timeouts shortened after sessions were sealed (after an incident) reach those sessions: the
/// absolute end counts from the issue time with today's timeout, the idle end from the last
/// refresh with today's idle timeout, whatever the cookie was sealed with.
#[test]
fn shortened_timeouts_reach_live_sessions() {
    let skew = 60;
    for mode in MODES {
        let before = codec(mode, false); // absolute 12 h, idle 30 min
        let (_, cookies) = sealed_at(&before, now());
        let shortened = |absolute: u64, idle: u64| {
            let config = SessionConfig::builder("sid")
                .mode(mode)
                .absolute_timeout(std::time::Duration::from_secs(absolute))
                .idle_timeout(std::time::Duration::from_secs(idle))
                .build()
                .unwrap();
            SessionCodec::new(config, ring())
        };
        let cases = [
            // (absolute, idle, open at, rejected as)
            (600, 300, 300 + skew, None),
            (600, 300, 300 + skew + 1, Some(RejectReason::IdleExpired)),
            (240, 300, 240 + skew, None),
            (240, 300, 240 + skew + 1, Some(RejectReason::AbsoluteExpired)),
        ];
        for (absolute, idle, t, expected) in cases {
            let after = shortened(absolute, idle);
            assert!(before.open(&cookies, at(t)).is_ok(), "the old settings still accept it");
            match expected {
                None => {
                    let mut session = after.open(&cookies, at(t)).unwrap();
                    assert_genuine(&session);
                    // A reseal carries the shorter end, so the old settings see it too.
                    let end = at(absolute as i64);
                    let resealed = after.seal(&mut session, at(t)).unwrap().request_header();
                    let reopened = before.open(&resealed, at(t)).unwrap();
                    assert_eq!(reopened.expires_at(), Some(end), "{mode:?}: resealed");
                }
                Some(reason) => {
                    let got = rejected(&after, &cookies, at(t));
                    assert_eq!(got, reason, "{mode:?}: absolute {absolute} idle {idle} at {t}");
                }
            }
        }
    }
}

#[test]
fn a_token_issued_in_the_future_is_rejected() {
    let codec = codec(Mode::Sealed, false);
    let (_, cookies) = sealed_at(&codec, at(3600));
    let skew = 60;
    assert_genuine(&codec.open(&cookies, at(3600 - skew)).unwrap());
    assert_eq!(rejected(&codec, &cookies, at(3600 - skew - 1)), RejectReason::IssuedInFuture);
    assert_eq!(rejected(&codec, &cookies, now()), RejectReason::IssuedInFuture);
}

#[test]
fn tokens_under_keys_outside_the_ring_are_unknown() {
    for mode in MODES {
        let fixture = Fixture::new(mode, false);
        let config = fixture.codec.config().clone();
        let cases: [(&str, KeyRing, RejectReason); 4] = [
            ("a ring of other keys", KeyRing::single(key(1)), RejectReason::UnknownKey(CURRENT)),
            ("an empty ring", KeyRing::new(), RejectReason::UnknownKey(CURRENT)),
            (
                "the key retired",
                {
                    let mut ring = ring();
                    assert!(ring.remove(CURRENT));
                    ring
                },
                RejectReason::UnknownKey(CURRENT),
            ),
            (
                "another secret under the same id",
                {
                    let mut ring = KeyRing::new();
                    ring.insert(CURRENT, key(9), at(-10), at(-10)).unwrap();
                    ring
                },
                RejectReason::Forged,
            ),
        ];
        for (what, ring, expected) in cases {
            let codec = SessionCodec::new(config.clone(), ring);
            assert_eq!(rejected(&codec, &fixture.header(), now()), expected, "{mode:?}: {what}");
        }
    }
}

#[test]
fn a_session_sealed_before_rotation_opens_until_its_key_is_retired() {
    let config = SessionConfig::builder("sid").build().unwrap();
    let old = SessionCodec::new(config.clone(), ring());
    // Sealed under the current key ten minutes before the pending key activates.
    let (_, cookies) = sealed_at(&old, at(86_400 - 600));
    let mut session = old.open(&cookies, at(86_400)).unwrap();
    assert_eq!(session.key_id(), Some(CURRENT));
    let resealed = old.save(&mut session, at(86_400)).unwrap().expect("resealed under the new key");
    assert_eq!(old.open(&resealed.request_header(), at(86_400)).unwrap().key_id(), Some(PENDING));
    // Retire the old key: what it sealed no longer opens.
    let mut retired = ring();
    retired.remove(CURRENT);
    let new = SessionCodec::new(config, retired);
    assert_eq!(rejected(&new, &cookies, at(86_400)), RejectReason::UnknownKey(CURRENT));
    assert_genuine_values(&new.open(&resealed.request_header(), at(86_400)).unwrap());
}

fn assert_genuine_values(session: &Session) {
    assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some(PLAINTEXT));
}

#[test]
fn a_token_of_the_other_mode_is_the_wrong_mode() {
    for (sealed_in, opened_in) in [(Mode::Signed, Mode::Sealed), (Mode::Sealed, Mode::Signed)] {
        for multi in [false, true] {
            let fixture = Fixture::new(sealed_in, multi);
            let reason = rejected(&codec(opened_in, multi), &fixture.header(), now());
            assert_eq!(reason, RejectReason::WrongMode, "{sealed_in:?} opened as {opened_in:?}");
        }
    }
}

#[test]
fn leftover_chunks_of_a_larger_session_are_reported_and_removed() {
    for mode in MODES {
        let codec = codec(mode, true);
        let big = stored(&codec.seal(&mut session(900), at(-600)).unwrap());
        assert_eq!(big.len(), 3);
        let small = stored(&codec.seal(&mut session(16), now()).unwrap());
        assert_eq!(small.len(), 1);
        // (what, the Cookie header's pairs, the leftovers it holds)
        type Case<'a> = (&'a str, Vec<(String, String)>, &'a [&'a str]);
        let cases: [Case<'_>; 3] = [
            (
                "both leftovers",
                vec![small[0].clone(), big[1].clone(), big[2].clone()],
                &["__Host-sid.1", "__Host-sid.2"],
            ),
            (
                "leftovers first",
                vec![big[2].clone(), big[1].clone(), small[0].clone()],
                &["__Host-sid.1", "__Host-sid.2"],
            ),
            ("a gap", vec![small[0].clone(), big[2].clone()], &["__Host-sid.2"]),
        ];
        for (what, pairs, stale) in cases {
            let mut session = codec.open(&header(&pairs), now()).unwrap();
            assert_genuine(&session);
            assert_eq!(session.chunk_count(), 1, "{what}");
            assert_eq!(session.stale_chunks(), stale.len(), "{what}");
            assert!(codec.needs_save(&session, now()), "{what}");
            let set = codec.save(&mut session, now()).unwrap().expect("leftovers to remove");
            assert_eq!(removed(&set), stale, "{mode:?}: {what}");
            assert_eq!(stored(&set).len(), 1);
            // Once the browser applied them, nothing is left to do.
            let mut session = codec.open(&set.request_header(), now()).unwrap();
            assert_eq!(session.stale_chunks(), 0);
            assert!(codec.save(&mut session, now()).unwrap().is_none(), "{what}");
        }
    }
}

#[test]
fn a_rejected_session_is_replaced_and_all_its_cookies_removed() {
    let fixture = Fixture::new(Mode::Sealed, true);
    let mut pairs = fixture.pairs.clone();
    let other = if pairs[2].1.starts_with('A') { "B" } else { "A" };
    pairs[2].1.replace_range(0..1, other);
    pairs.push(("__Host-sid.5".to_owned(), "junk".to_owned()));
    let rejection = fixture.codec.open(&header(&pairs), now()).unwrap_err();
    let mut fresh = rejection.into_fresh_session();
    assert!(fresh.is_empty());
    let set = fixture.codec.save(&mut fresh, now()).unwrap().expect("removals");
    assert_eq!(removed(&set), ["__Host-sid", "__Host-sid.1", "__Host-sid.2", "__Host-sid.5"]);
    assert!(stored(&set).is_empty());
}

#[test]
fn the_same_name_twice_still_opens_the_valid_session() {
    // A browser sends a cookie set under another Path (or Domain) beside ours, the more specific
    // path first. Whatever that variant holds, the valid session must open, in either order.
    let codec = codec(Mode::Sealed, false);
    let valid = Fixture::new(Mode::Sealed, false);
    let id = codec.open(&valid.header(), now()).unwrap().id();
    let value = |pairs: Vec<(String, String)>| pairs[0].1.clone();
    let expired = value(stored(&codec.seal(&mut session(16), at(-7200)).unwrap()));
    let mut forged = valid.token();
    *forged.last_mut().unwrap() ^= 1;
    let forged = BASE64.encode(forged);
    let other_mode = value(Fixture::new(Mode::Signed, false).pairs);
    let retired = {
        let mut ring = KeyRing::new();
        ring.insert(KeyId(0x99), key(5), at(-10), at(-10)).unwrap();
        let codec = SessionCodec::new(codec.config().clone(), ring);
        value(stored(&codec.seal(&mut session(16), now()).unwrap()))
    };
    let variants = [
        ("garbage", "x".to_owned()),
        ("empty", String::new()),
        ("forged", forged),
        ("expired", expired),
        ("other mode", other_mode),
        ("retired key", retired),
    ];
    for (what, stale) in variants {
        for stale_first in [true, false] {
            let stale = (NAME.to_owned(), stale.clone());
            let pairs = if stale_first {
                vec![stale, valid.pairs[0].clone()]
            } else {
                vec![valid.pairs[0].clone(), stale]
            };
            let session = codec
                .open(&header(&pairs), now())
                .unwrap_or_else(|r| panic!("{what}, stale first {stale_first}: {r}"));
            assert_genuine(&session);
            assert_eq!(session.id(), id);
        }
    }
    // A multi-chunk session beside a one-chunk stale variant (an expired one, another path).
    let codec = self::codec(Mode::Sealed, true);
    let multi = stored(&codec.seal(&mut session(900), now()).unwrap());
    let stale_single = stored(&codec.seal(&mut session(16), at(-7200)).unwrap());
    for pairs in
        [[&stale_single[..], &multi[..]].concat(), [&multi[..], &stale_single[..]].concat()]
    {
        let session = codec.open(&header(&pairs), now()).unwrap();
        assert_genuine(&session);
        assert_eq!(session.chunk_count(), 3);
    }
}

/// Cookie tossing: a sibling subdomain (or a deeper path) plants a session of its own under our
/// name beside the user's. Two different sessions that both authenticate are both refused,
/// whichever the browser sends first, so the planted one never wins (login CSRF); two copies of
/// the same session (an older write left under another path) open as the newer one.
#[test]
fn a_planted_session_beside_the_users_is_refused_and_copies_open_as_the_newest() {
    for (mode, multi) in [(Mode::Sealed, false), (Mode::Signed, false), (Mode::Sealed, true)] {
        let codec = codec(mode, multi);
        let users = stored(&codec.seal(&mut session(900), now()).unwrap());
        // The attacker's own valid session, sealed by the same site under the same ring.
        let planted = stored(&codec.seal(&mut session(900), now()).unwrap());
        for pairs in [[&planted[..], &users[..]].concat(), [&users[..], &planted[..]].concat()] {
            let got = rejected(&codec, &header(&pairs), now());
            assert_eq!(got, RejectReason::Conflicting, "{mode:?} multi {multi}");
            assert_eq!(got.code(), "conflicting_sessions");
        }

        // The same session written twice, a minute apart, each copy still valid.
        let mut session = session(900);
        let older = stored(&codec.seal(&mut session, now()).unwrap());
        let newer = stored(&codec.seal(&mut session, at(60)).unwrap());
        for pairs in [[&older[..], &newer[..]].concat(), [&newer[..], &older[..]].concat()] {
            let opened = codec.open(&header(&pairs), at(61)).unwrap();
            assert_genuine(&opened);
            assert_eq!(opened.last_refresh(), Some(at(60)), "{mode:?} multi {multi}: the newer");
        }
    }
}

/// A deployment purpose is bound into every token: a token sealed under one purpose, or under
/// none, opens only where exactly that is configured (FORMAT.md section 3.2).
#[test]
fn a_token_opens_only_under_its_own_purpose() {
    let with = |mode: Mode, purpose: Option<&str>| {
        let mut builder = SessionConfig::builder("sid").mode(mode);
        if let Some(purpose) = purpose {
            builder = builder.purpose(purpose);
        }
        SessionCodec::new(builder.build().unwrap(), ring())
    };
    let purposes = [None, Some("shop/staging"), Some("shop/production"), Some("shop/production ")];
    for mode in MODES {
        for sealer in purposes {
            let sealed = stored(&with(mode, sealer).seal(&mut session(16), now()).unwrap());
            let token = with(mode, sealer).seal_token(&mut session(16), now()).unwrap();
            for opener in purposes {
                let codec = with(mode, opener);
                let cookie = codec.open(&header(&sealed), now());
                let header_token = codec.open_token(&token, now());
                for (how, opened) in [("cookie", cookie), ("token", header_token)] {
                    let case = format!("{mode:?} {how} sealed {sealer:?}, opened {opener:?}");
                    match opened {
                        Ok(session) if sealer == opener => assert_genuine(&session),
                        Ok(_) => panic!("{case}: opened"),
                        Err(r) if sealer == opener => panic!("{case}: {r}"),
                        Err(r) => assert_eq!(r.reason(), RejectReason::Forged, "{case}"),
                    }
                }
            }
        }
    }
}

#[test]
fn rejections_never_show_the_cookie_or_the_plaintext() {
    let fixture = Fixture::new(Mode::Signed, true);
    let mut token = fixture.token();
    let mut cases: Vec<(String, std::time::SystemTime)> = Vec::new();
    for byte in [0, 1, 2, 5, 40, token.len() - 1] {
        token[byte] ^= 0x10;
        cases.push((header(&fixture.resplit(&token)), now()));
        token[byte] ^= 0x10;
    }
    cases.push((fixture.header(), at(100_000)));
    cases.push((fixture.header(), at(-100_000)));
    cases.push((format!("{NAME}={}", "%".repeat(200)), now()));
    let mut reasons = Vec::new();
    for (cookies, time) in &cases {
        let rejection: Rejection = fixture.codec.open(cookies, *time).unwrap_err();
        reasons.push(rejection.reason());
        for text in [rejection.to_string(), format!("{rejection:?}"), format!("{rejection:#?}")] {
            assert!(!text.contains(PLAINTEXT), "{text}");
            for (_, value) in &fixture.pairs {
                let chars: Vec<char> = value.chars().collect();
                for window in chars.windows(12) {
                    let window: String = window.iter().collect();
                    assert!(!text.contains(&window), "{text} shows the cookie ({window})");
                }
            }
        }
    }
    // The table covered the distinct reasons it meant to.
    let mut kinds = Vec::new();
    for kind in reasons.iter().map(std::mem::discriminant) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    assert!(kinds.len() >= 6, "{reasons:?}");
}
