//! The fixture the fuzz targets share: codecs under a fixed key, a handful of sessions sealed
//! with deterministic entropy, and the invariants every opened Cookie header must satisfy.
//!
//! The invariants, checked for every input and both modes (sealed and signed):
//!
//! * opening never panics (neither does anything a request then does with the result);
//! * nothing forged ever opens: a session that comes back with an id is one of the known
//!   sessions, with exactly its values, times, key and chunk count;
//! * a session that comes back without an id is new and empty;
//! * a known session that is written back (stale chunks make it so) opens to itself again;
//! * a rejection becomes a fresh, empty session whose save only removes cookies.
//!
//! The known sessions' Cookie headers are the committed seed corpus of `open_header`
//! (`seeds/open_header/`, written by `cargo run --example seeds`), so the fuzzer starts from
//! valid tokens and mutates them instead of having to guess one.

pub mod frame;
pub mod keyring;
pub mod roundtrip;

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealed_session::{
    Key, KeyId, KeyRing, Mode, Rejection, SealError, Session, SessionCodec, SessionConfig,
    SessionId,
};

/// The fixed key every fuzz codec uses (so the committed seeds stay valid).
pub const KEY: [u8; 32] = [7; 32];

/// The fixed time at which the known sessions are sealed and every input is opened.
pub const NOW_SECS: u64 = 1_800_000_000;

/// [`NOW_SECS`] as a [`SystemTime`].
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// A deterministic stand-in for the system RNG (SplitMix64). Only ever for fuzzing: sealing
/// with predictable nonces destroys XAES-256-GCM's security.
#[derive(Debug, Clone)]
pub struct Entropy(u64);

impl Entropy {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Entropy {
        Entropy(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf`, as `SessionCodec::seal_with` wants its entropy.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<(), SealError> {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Everything about an opened session that a forgery could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The session id.
    pub id: Option<SessionId>,
    /// The key it was sealed under.
    pub key_id: Option<KeyId>,
    /// `(issued at, last refresh, expires at)`.
    pub times: (Option<SystemTime>, Option<SystemTime>, Option<SystemTime>),
    /// How many cookies its token took.
    pub chunk_count: usize,
    /// `(key, MessagePack bytes, sensitive)` for every value, in key order.
    pub values: Vec<(String, Vec<u8>, bool)>,
}

impl Snapshot {
    /// The snapshot as `codec` writes it: values under a key the configuration names sensitive
    /// (`SessionConfigBuilder::sensitive_key`, `DEFAULT_SENSITIVE_KEYS`) go to the sensitive
    /// section however they were inserted or opened, so they read back as sensitive.
    pub fn as_sealed_by(mut self, codec: &sealed_session::SessionCodec) -> Snapshot {
        for (key, _, sensitive) in &mut self.values {
            *sensitive |= codec.config().sensitive_keys().any(|named| named == key.as_str());
        }
        self
    }

    /// The snapshot of `session`.
    pub fn of(session: &Session) -> Snapshot {
        Snapshot {
            id: session.id(),
            key_id: session.key_id(),
            times: (session.issued_at(), session.last_refresh(), session.expires_at()),
            chunk_count: session.chunk_count(),
            values: session
                .keys()
                .map(|key| {
                    let bytes = session.get_raw(key).unwrap_or_default().to_vec();
                    (key.to_owned(), bytes, session.is_sensitive(key))
                })
                .collect(),
        }
    }
}

/// A session the fixture sealed, with what a browser sends back for it.
#[derive(Debug)]
pub struct Known {
    /// A short name, used for the seed file.
    pub name: &'static str,
    /// The Cookie request header holding it.
    pub header: String,
    /// Its cookies' values, chunk by chunk.
    pub chunks: Vec<String>,
    /// The session as sealed.
    pub snapshot: Snapshot,
}

/// One codec and the sessions it sealed.
#[derive(Debug)]
pub struct Subject {
    /// `"sealed"` or `"signed"`.
    pub label: &'static str,
    /// The codec.
    pub codec: SessionCodec,
    /// The sessions it sealed.
    pub known: Vec<Known>,
}

/// The fixture: one subject per mode, under the same key and cookie name, so a token of one
/// mode is also thrown at the other.
#[derive(Debug)]
pub struct Fixture {
    /// Sealed mode first, then signed mode.
    pub subjects: Vec<Subject>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(build_fixture);

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    &FIXTURE
}

/// The sessions every subject seals: small, with a sensitive value, compressible (so the body is
/// compressed, with the dictionary), large enough for two cookies, empty, and compressible past
/// the dictionary's limit (so the body is a plain zstd frame).
fn known_sessions() -> Vec<(&'static str, Session)> {
    fn session(values: &[(&str, &str)], sensitive: &[(&str, &str)]) -> Session {
        let mut session = Session::new();
        for (key, value) in values {
            session.insert(*key, value).expect("a string serializes");
        }
        for (key, value) in sensitive {
            session.insert_sensitive(*key, value).expect("a string serializes");
        }
        session
    }
    let mut small = session(&[("user", "ada")], &[]);
    small.insert("user_id", 42u64).expect("a number serializes");
    let compressible = "the quick brown fox jumps over the lazy dog; ".repeat(20);
    // About 6 bits of entropy per character: compression cannot bring it under one cookie.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = Entropy::new(0x5eed);
    let noise: String =
        (0..4000).map(|_| char::from(ALPHABET[(rng.next_u64() % 64) as usize])).collect();
    vec![
        ("small", small),
        (
            "sensitive",
            session(&[("user", "grace"), ("role", "admin")], &[("csrf", "Zm9vYmFyYmF6")]),
        ),
        ("compressed", session(&[("note", &compressible)], &[("oauth", "dG9rZW4")])),
        ("two-chunks", session(&[("blob", &noise)], &[])),
        ("empty", Session::new()),
        // 4,096 bytes of MessagePack ({"note": 4,087 characters}): the smallest body compressed
        // without the dictionary, and within the frame target's 4 KiB maximum state.
        ("compressed-plain", session(&[("note", &compressible.repeat(5)[..4087])], &[])),
    ]
}

fn build_fixture() -> Fixture {
    let subjects = [("sealed", Mode::Sealed, 1), ("signed", Mode::Signed, 2)]
        .into_iter()
        .map(|(label, mode, seed)| {
            let config = SessionConfig::builder("session").mode(mode).build().expect("valid");
            let codec = SessionCodec::new(config, KeyRing::single(Key::from_bytes(KEY)));
            let mut entropy = Entropy::new(seed);
            let known = known_sessions()
                .into_iter()
                .map(|(name, mut session)| {
                    let set_cookies = codec
                        .seal_with(&mut session, now(), &mut |buf| entropy.fill(buf))
                        .expect("the known sessions fit");
                    let chunks = set_cookies.cookies().iter().map(|c| c.value().to_owned());
                    Known {
                        name,
                        header: set_cookies.request_header(),
                        chunks: chunks.collect(),
                        snapshot: Snapshot::of(&session),
                    }
                })
                .collect();
            Subject { label, codec, known }
        })
        .collect();
    let fixture = Fixture { subjects };
    // The fixture checks itself: every known header opens to its session, and the session ids
    // are distinct, so that "one of the known ids" means something.
    for subject in &fixture.subjects {
        for known in &subject.known {
            let opened = subject.codec.open(&known.header, now()).expect("a known header opens");
            assert_eq!(Snapshot::of(&opened), known.snapshot, "{}/{}", subject.label, known.name);
            let same_id = subject.known.iter().filter(|k| k.snapshot.id == known.snapshot.id);
            assert_eq!(same_id.count(), 1, "session ids must be distinct");
        }
    }
    let two_chunks = fixture.subjects.iter().flat_map(|s| &s.known).filter(|k| k.chunks.len() > 1);
    assert!(two_chunks.count() > 0, "some known session must span several cookies");
    fixture
}

/// Opens `headers` (one Cookie header value, or several as HTTP/2 may send them; text or the
/// raw bytes a server passes through) with every subject and asserts the invariants in the
/// module docs.
pub fn check<H: AsRef<[u8]> + ?Sized>(headers: &[&H]) {
    for subject in &fixture().subjects {
        let text = match headers {
            [header] => std::str::from_utf8(header.as_ref()).ok(),
            _ => None,
        };
        let result = match text {
            Some(header) => subject.codec.open(header, now()),
            None => subject.codec.open_headers(headers.iter().map(|h| h.as_ref()), now()),
        };
        match result {
            Ok(session) => subject.check_opened(session),
            Err(rejection) => subject.check_rejected(rejection),
        }
    }
}

impl Subject {
    fn check_opened(&self, mut session: Session) {
        let Some(id) = session.id() else {
            assert!(session.is_empty(), "{}: a session without an id holds values", self.label);
            assert_eq!(session.key_id(), None, "{}: a new session has a key", self.label);
            assert_eq!(session.chunk_count(), 0, "{}: a new session has chunks", self.label);
            return;
        };
        let Some(known) = self.known.iter().find(|k| k.snapshot.id == Some(id)) else {
            panic!("{}: opened session {id}, which it never sealed", self.label);
        };
        assert_eq!(
            Snapshot::of(&session),
            known.snapshot,
            "{}: {} changed",
            self.label,
            known.name
        );

        // A response writes the session back when the client holds stale chunks; what it
        // writes must open to the same session.
        if self.codec.needs_save(&session, now()) {
            let mut entropy = Entropy::new(id.0[0].into());
            let set_cookies = self
                .codec
                .seal_with(&mut session, now(), &mut |buf| entropy.fill(buf))
                .expect("a session that opened seals again");
            let reopened = self.codec.open(&set_cookies.request_header(), now());
            let reopened = reopened.expect("a resealed session opens");
            assert_eq!(Snapshot::of(&reopened), known.snapshot, "{}: reseal", self.label);
        }
    }

    fn check_rejected(&self, rejection: Rejection) {
        // The reason is for logs: it must render without panicking.
        let _ = rejection.to_string();
        let mut fresh = rejection.into_fresh_session();
        assert!(fresh.is_empty() && fresh.id().is_none(), "{}: fresh session", self.label);
        match self.codec.save(&mut fresh, now()) {
            Ok(None) => {}
            Ok(Some(removals)) => {
                assert!(!removals.is_empty(), "{}: save returned no header", self.label);
                assert!(removals.request_header().is_empty(), "{}: removal sets", self.label);
            }
            Err(error) => panic!("{}: saving a fresh session failed: {error}", self.label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_headers_pass_also_with_stale_chunks_and_split_headers() {
        for subject in &fixture().subjects {
            for known in &subject.known {
                check(&[&known.header]);
                // A leftover chunk (one the configuration can write: at most 2 chunks) makes
                // the session due for a write: the reseal path. A chunk name past that is
                // ignored.
                check(&[&format!("{}; __Host-session.1=x", known.header)]);
                check(&[&format!("{}; __Host-session.7=x", known.header)]);
                let split: Vec<&str> = known.header.split("; ").collect();
                check(&split);
                // Bytes outside visible ASCII in other cookies, UTF-8 or not.
                let bytes = [b"theme=caf\xe9; ".as_slice(), known.header.as_bytes()].concat();
                check(&[bytes.as_slice(), "x=caf\u{e9}".as_bytes()]);
            }
        }
        check(&["", "a=b"]);
        check(&["__Host-session=AQEAAAAB"]);
    }

    #[test]
    #[should_panic(expected = "which it never sealed")]
    fn a_valid_token_the_fixture_did_not_seal_is_caught() {
        // Sealed under the fixture's key, so it opens, but with entropy the fixture never used.
        let subject = &fixture().subjects[0];
        let mut session = Session::new();
        session.insert("user", "mallory").expect("a string serializes");
        let mut entropy = Entropy::new(0xbad);
        let set_cookies = subject
            .codec
            .seal_with(&mut session, now(), &mut |buf| entropy.fill(buf))
            .expect("seals");
        check(&[&set_cookies.request_header()]);
    }
}
