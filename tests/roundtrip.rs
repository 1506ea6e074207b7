//! Property tests: whatever state a session holds, sealing it and opening the cookies gives it
//! back exactly, in both modes, in one cookie or many; and a state too large for the budget is
//! refused whole, with both sizes named, never truncated.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use sealed_session::format::MAX_CHUNKS;
use sealed_session::{
    Key, KeyRing, MAX_KEY_LEN, Mode, SealError, Session, SessionCodec, SessionConfig, ValueError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use common::{at, noise, now, stored};

/// Which codec a case runs under: the mode, and whether Set-Cookie lines are short (512 bytes)
/// so that sessions span many cookies.
#[derive(Debug, Clone, Copy)]
struct Setup {
    mode: Mode,
    short_lines: bool,
}

fn setups() -> impl Strategy<Value = Setup> {
    (prop_oneof![Just(Mode::Sealed), Just(Mode::Signed)], any::<bool>())
        .prop_map(|(mode, short_lines)| Setup { mode, short_lines })
}

fn codec(setup: Setup) -> SessionCodec {
    let mut builder = SessionConfig::builder("s").mode(setup.mode);
    if setup.short_lines {
        builder = builder.max_cookie_line(512);
    }
    SessionCodec::new(builder.build().unwrap(), KeyRing::single(Key::from_bytes([3; 32])))
}

/// Any text, control characters and astral planes included.
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max_chars).prop_map(String::from_iter)
}

/// Any JSON value, nested a few levels: maps, arrays, strings, integers of both signs, finite
/// floats, booleans and nulls (what an `Option` is when it is `None`).
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        text(24).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(12), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A session's contents: key -> (value, stored as sensitive).
type State = BTreeMap<String, (Value, bool)>;

fn state() -> impl Strategy<Value = State> {
    prop::collection::btree_map(text(20), (json(), any::<bool>()), 0..12)
}

fn session_of(state: &State) -> Session {
    let mut session = Session::new();
    for (key, (value, sensitive)) in state {
        if *sensitive {
            session.insert_sensitive(key.as_str(), value).unwrap();
        } else {
            session.insert(key.as_str(), value).unwrap();
        }
    }
    session
}

/// About how many bytes of MessagePack the session's values take.
fn msgpack_size(session: &Session) -> usize {
    session.keys().map(|key| key.len() + 5 + session.get_raw(key).map_or(0, <[u8]>::len)).sum()
}

/// The opened session holds exactly `state`: the same keys, byte-identical values that decode
/// to the same JSON, and the same sensitivity.
fn assert_holds(opened: &Session, original: &Session, state: &State) {
    assert_eq!(
        opened.keys().collect::<Vec<_>>(),
        state.keys().map(String::as_str).collect::<Vec<_>>()
    );
    for (key, (value, sensitive)) in state {
        assert_eq!(opened.get_raw(key), original.get_raw(key), "{key:?}");
        assert_eq!(opened.get::<Value>(key).unwrap().as_ref(), Some(value), "{key:?}");
        assert_eq!(opened.is_sensitive(key), *sensitive, "{key:?}");
    }
}

/// Seals `session` and checks the outcome: either cookies within every limit that open back to
/// `state`, `TooLarge` naming a need above the budget, or `TooManyCookies` naming more cookies
/// than the format allows. Returns whether it sealed.
fn seal_and_check(codec: &SessionCodec, mut session: Session, state: &State) -> bool {
    let original = session.clone();
    let budget = codec.config().cookie_budget();
    match codec.seal(&mut session, now()) {
        Ok(set) => {
            let share = set.request_header_share();
            assert!(share <= budget, "share {share} over budget {budget}");
            let pairs = stored(&set);
            assert_eq!(pairs.len(), set.len(), "a first seal removes nothing");
            assert!(set.header_values().all(|line| line.len() <= 4096));
            let opened = codec.open(&set.request_header(), at(1)).unwrap();
            assert_holds(&opened, &original, state);
            assert_eq!(opened.chunk_count(), pairs.len());
            assert_eq!(opened.stale_chunks(), 0);
            assert_eq!(opened.id(), session.id());
            assert!(opened.id().is_some());
            assert_eq!(opened.expires_at(), session.expires_at());
            assert!(!opened.is_changed());
            true
        }
        Err(error @ SealError::TooManyCookies { needed, chunks, max }) => {
            assert_eq!(max, MAX_CHUNKS);
            assert!(chunks > MAX_CHUNKS, "{error}");
            assert!(needed > chunks * 2, "{error}");
            false
        }
        Err(error @ SealError::TooLarge { needed, budget: named, .. }) => {
            assert_eq!(named, budget);
            assert!(needed > budget, "{error}");
            let text = error.to_string();
            assert!(
                text.contains(&needed.to_string()) && text.contains(&budget.to_string()),
                "{text}"
            );
            false
        }
        Err(other) => panic!("unexpected seal error: {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_state_round_trips(setup in setups(), state in state()) {
        let codec = codec(setup);
        let session = session_of(&state);
        let size = msgpack_size(&session);
        let sealed = seal_and_check(&codec, session, &state);
        // Anything under 4,000 bytes of MessagePack fits the default 6,144-byte budget.
        prop_assert!(sealed || size >= 4000, "{size} bytes were refused");
    }

    #[test]
    fn a_resealed_session_keeps_its_values_id_and_lifetime(
        setup in setups(),
        state in state(),
        change in (text(20), json(), any::<bool>()),
    ) {
        let codec = codec(setup);
        let mut session = session_of(&state);
        let (key, value, sensitive) = change;
        let mut expected = state.clone();
        expected.insert(key.clone(), (value.clone(), sensitive));
        let reference = session_of(&expected);
        // Both states must fit the budget (see `any_state_round_trips`): the change adds a
        // value of any size.
        prop_assume!(msgpack_size(&session) < 4000 && msgpack_size(&reference) < 4000);
        let first = codec.seal(&mut session, now()).unwrap();
        let mut opened = codec.open(&first.request_header(), at(60)).unwrap();
        if sensitive {
            opened.insert_sensitive(key.as_str(), &value).unwrap();
        } else {
            opened.insert(key.as_str(), &value).unwrap();
        }
        let second = codec.save(&mut opened, at(120)).unwrap().expect("changed");
        let reopened = codec.open(&second.request_header(), at(180)).unwrap();
        assert_holds(&reopened, &reference, &expected);
        prop_assert_eq!(reopened.id(), session.id());
        prop_assert_eq!(reopened.issued_at(), Some(now()));
        prop_assert_eq!(reopened.last_refresh(), Some(at(120)));
        prop_assert_eq!(reopened.expires_at(), session.expires_at());
    }

    #[test]
    fn typed_values_round_trip(setup in setups(), profile in profile()) {
        let codec = codec(setup);
        let mut session = Session::new();
        session.insert("profile", &profile).unwrap();
        session.insert_sensitive("token", &profile.name).unwrap();
        let set = codec.seal(&mut session, now()).unwrap();
        let opened = codec.open(&set.request_header(), now()).unwrap();
        prop_assert_eq!(opened.get::<Profile>("profile").unwrap(), Some(profile.clone()));
        prop_assert_eq!(opened.get::<String>("token").unwrap(), Some(profile.name));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    age: Option<u8>,
    email: Option<String>,
    score: f32,
    ratio: f64,
    admin: bool,
    roles: Vec<Role>,
    prefs: BTreeMap<String, i64>,
    pair: (i16, char),
    inner: Option<Box<Profile>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Role {
    Guest,
    User(u32),
    Admin { since: u64, scopes: Vec<String> },
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Guest),
        any::<u32>().prop_map(Role::User),
        (any::<u64>(), prop::collection::vec(text(8), 0..3))
            .prop_map(|(since, scopes)| Role::Admin { since, scopes }),
    ]
}

fn flat_profile() -> impl Strategy<Value = Profile> {
    (
        text(16),
        any::<Option<u8>>(),
        prop::option::of(text(16)),
        any::<f32>().prop_filter("not NaN", |f| !f.is_nan()),
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
        any::<bool>(),
        prop::collection::vec(role(), 0..4),
        prop::collection::btree_map(text(8), any::<i64>(), 0..4),
        (any::<i16>(), any::<char>()),
    )
        .prop_map(|(name, age, email, score, ratio, admin, roles, prefs, pair)| Profile {
            name,
            age,
            email,
            score,
            ratio,
            admin,
            roles,
            prefs,
            pair,
            inner: None,
        })
}

fn profile() -> impl Strategy<Value = Profile> {
    (flat_profile(), prop::option::of(flat_profile())).prop_map(|(mut outer, inner)| {
        outer.inner = inner.map(Box::new);
        outer
    })
}

#[test]
fn an_empty_session_round_trips() {
    for mode in [Mode::Sealed, Mode::Signed] {
        for short_lines in [false, true] {
            let codec = codec(Setup { mode, short_lines });
            let mut session = Session::new();
            let set = codec.seal(&mut session, now()).unwrap();
            assert_eq!(set.len(), 1);
            let opened = codec.open(&set.request_header(), now()).unwrap();
            assert!(opened.is_empty());
            assert_eq!(opened.id(), session.id());
            assert!(opened.id().is_some(), "an empty session still has an identity");
            // Nothing changed and nothing is due: an empty new session writes nothing.
            assert!(codec.save(&mut Session::new(), now()).unwrap().is_none());
        }
    }
}

#[test]
fn keys_up_to_the_limit_round_trip_and_longer_ones_are_refused() {
    let codec = codec(Setup { mode: Mode::Sealed, short_lines: true });
    let keys = [
        String::new(),
        "é".repeat(MAX_KEY_LEN / 2),
        "🦀".repeat(MAX_KEY_LEN / 4),
        "k".repeat(MAX_KEY_LEN),
        "a.b; c=d".to_owned(),
        "\0\u{7f}\u{fffd}".to_owned(),
    ];
    let mut session = Session::new();
    for (i, key) in keys.iter().enumerate() {
        session.insert(key.as_str(), i).unwrap();
    }
    let set = codec.seal(&mut session, now()).unwrap();
    let opened = codec.open(&set.request_header(), now()).unwrap();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(opened.get::<usize>(key).unwrap(), Some(i), "{key:?}");
    }
    let long = "k".repeat(MAX_KEY_LEN + 1);
    assert!(matches!(
        Session::new().insert(long, 1),
        Err(ValueError::KeyTooLong { len, max: MAX_KEY_LEN }) if len == MAX_KEY_LEN + 1
    ));
}

#[test]
fn the_budget_is_used_to_the_byte_and_not_one_more() {
    // With compression off, each extra byte of state grows the cookies, so there is one largest
    // state that fits. It must fit within the budget, come close to it, and the next byte must be
    // refused naming both sizes.
    for mode in [Mode::Sealed, Mode::Signed] {
        for (short_lines, budget) in [(false, 6144), (true, 6144), (false, 20_000), (true, 1000)] {
            let mut builder = SessionConfig::builder("s")
                .mode(mode)
                .cookie_budget(budget)
                .compression_threshold(None);
            if short_lines {
                builder = builder.max_cookie_line(512);
            }
            let codec =
                SessionCodec::new(builder.build().unwrap(), KeyRing::single(Key::generate()));
            let name_len = codec.config().cookie_name().len();
            let attempt = |len: usize| {
                let mut session = Session::new();
                session.insert("blob", noise(len, 1)).unwrap();
                codec.seal(&mut session, now())
            };
            let (mut fits, mut too_big) = (0, budget);
            assert!(attempt(fits).is_ok());
            assert!(attempt(too_big).is_err());
            while too_big - fits > 1 {
                let mid = (fits + too_big) / 2;
                if attempt(mid).is_ok() { fits = mid } else { too_big = mid }
            }
            let share = attempt(fits).unwrap().request_header_share();
            let what = format!("{mode:?} short_lines={short_lines} budget={budget}");
            assert!(share <= budget, "{what}: {share}");
            // Slack: at most one more cookie's name and separators, and a base64 quantum.
            assert!(budget - share < name_len + 4 + 2 + 4, "{what}: only {share} used");
            match attempt(too_big) {
                Err(SealError::TooLarge { needed, budget: named, .. }) => {
                    assert_eq!(named, budget, "{what}");
                    assert!(needed > budget, "{what}: {needed}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}

#[test]
fn more_cookies_than_the_format_allows_is_too_large() {
    // The largest budget with short lines needs more than MAX_CHUNKS cookies before it runs out.
    let codec = SessionCodec::new(
        SessionConfig::builder("s")
            .max_cookie_line(512)
            .cookie_budget(MAX_CHUNKS * 4096)
            .max_cookie_header(MAX_CHUNKS * 4096)
            .compression_threshold(None)
            .build()
            .unwrap(),
        KeyRing::single(Key::generate()),
    );
    let mut session = Session::new();
    session.insert("blob", noise(20_000, 2)).unwrap();
    match codec.seal(&mut session, now()) {
        Err(error @ SealError::TooManyCookies { needed, chunks, max }) => {
            assert_eq!(max, MAX_CHUNKS);
            assert!(chunks > MAX_CHUNKS, "{chunks}");
            // 20,000 bytes of noise in base64, plus a name for each cookie.
            assert!(needed > 20_000 * 4 / 3 + chunks * "s.10=".len(), "{needed}");
            let message = error.to_string();
            assert!(message.contains(&format!("{chunks} cookies")), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(session.id().is_none(), "a refused seal leaves the session unsealed");
}

#[test]
fn sealed_mode_hides_values_and_signed_mode_only_protects_them() {
    use base64::Engine as _;
    let secret = "correct horse battery staple";
    for (mode, visible) in [(Mode::Sealed, false), (Mode::Signed, true)] {
        let codec = SessionCodec::new(
            SessionConfig::builder("s").mode(mode).compression_threshold(None).build().unwrap(),
            KeyRing::single(Key::generate()),
        );
        let mut session = Session::new();
        session.insert("phrase", secret).unwrap();
        let set = codec.seal(&mut session, now()).unwrap();
        let joined: String = stored(&set).into_iter().map(|(_, value)| value).collect();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(joined).unwrap();
        let found = token.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert_eq!(found, visible, "{mode:?}");
    }
}

#[test]
fn sensitive_values_are_never_compressed() {
    use base64::Engine as _;
    // Signed mode shows the frame, so what was compressed and what was not can be seen.
    let codec = SessionCodec::new(
        SessionConfig::builder("s").mode(Mode::Signed).build().unwrap(),
        KeyRing::single(Key::generate()),
    );
    let compressible = "abcabcabc".repeat(200);
    let secret = format!("csrf-{}", "abcabcabc".repeat(4));
    let mut session = Session::new();
    session.insert("page", &compressible).unwrap();
    session.insert_sensitive("csrf", &secret).unwrap();
    let set = codec.seal(&mut session, now()).unwrap();
    let joined: String = stored(&set).into_iter().map(|(_, value)| value).collect();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(joined).unwrap();
    let contains = |needle: &[u8]| token.windows(needle.len()).any(|w| w == needle);
    assert!(token.len() < compressible.len() / 2, "the ordinary value was compressed");
    assert!(!contains(compressible.as_bytes()));
    assert!(contains(secret.as_bytes()), "the sensitive value is stored as is");
    let opened = codec.open(&set.request_header(), now()).unwrap();
    assert_eq!(opened.get::<String>("page").unwrap(), Some(compressible));
    assert_eq!(opened.get::<String>("csrf").unwrap(), Some(secret));
}

#[test]
fn states_around_the_budget_seal_whole_or_not_at_all() {
    use proptest::test_runner::{Config, TestRunner};
    let cases = (
        setups(),
        prop::collection::vec((0usize..3_000, any::<bool>()), 1..5),
        any::<u64>(),
        256usize..12_000,
    );
    let (sealed, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let mut runner = TestRunner::new(Config::with_cases(128));
    let result = runner.run(&cases, |(setup, blobs, seed, budget)| {
        let mut builder = SessionConfig::builder("s").mode(setup.mode).cookie_budget(budget);
        if setup.short_lines {
            builder = builder.max_cookie_line(512);
        }
        let codec = SessionCodec::new(builder.build().unwrap(), KeyRing::single(Key::generate()));
        let state: State = blobs
            .iter()
            .enumerate()
            .map(|(i, &(len, sensitive))| {
                (format!("blob{i}"), (Value::from(noise(len, seed ^ i as u64)), sensitive))
            })
            .collect();
        let counter =
            if seal_and_check(&codec, session_of(&state), &state) { &sealed } else { &refused };
        counter.set(counter.get() + 1);
        Ok(())
    });
    result.unwrap();
    // Both sides of the budget were exercised.
    assert!(
        sealed.get() >= 10 && refused.get() >= 10,
        "{} sealed, {} refused",
        sealed.get(),
        refused.get()
    );
}
