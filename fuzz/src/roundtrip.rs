//! Seal then open: an arbitrary session state must come back exactly, or be refused when it is
//! sealed, never become a token that fails to open.
//!
//! Invariants, for every input:
//!
//! * an insert fails only for a key longer than [`MAX_KEY_LEN`] or a value nested deeper than
//!   the format reads ([`MAX_DEPTH`]);
//! * sealing either fails with `TooLarge` or `StateTooLarge` (and then the state really is over
//!   the maximum state, or the cookies over the budget), or gives cookies that each fit the
//!   configured Set-Cookie line, take at most the cookie budget, and open (with the same codec)
//!   to the same id, times, key, chunk count, keys, sensitivity and value bytes; every value
//!   also decodes to what was inserted (floats compared bitwise, so NaN included).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use sealed_session::format::{MAX_CHUNKS, MAX_DEPTH};
use sealed_session::{
    Key, KeyRing, MAX_KEY_LEN, Mode, SealError, Session, SessionCodec, SessionConfig, ValueError,
};

use crate::{Entropy, KEY, Snapshot, now};

/// The deepest value the generator builds: past the format's limit, so that limit is tested.
const GEN_DEPTH: usize = MAX_DEPTH + 8;

/// The `max_cookie_line` settings tried (the minimum, two between, the maximum).
pub const LINES: [usize; 4] = [512, 1000, 2048, 4096];
/// The `compression_threshold` and `compression_dictionary` settings tried.
pub const THRESHOLDS: [(Option<usize>, bool); 4] =
    [(None, true), (Some(0), false), (Some(0), true), (Some(128), true)];
/// The maximum state of every roundtrip codec: smaller than the default so that the fuzzer's
/// inputs can exceed it.
pub const MAX_STATE: usize = 8 * 1024;

/// A session value.
#[derive(Debug, Clone)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// `len` copies of `ch`: large, compressible strings from a few input bytes.
    Repeat(char, u16),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn arbitrary_at(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
        let kinds = if depth >= GEN_DEPTH { 8 } else { 10 };
        Ok(match u.choose_index(kinds)? {
            0 => Value::Nil,
            1 => Value::Bool(u.arbitrary()?),
            2 => Value::Int(u.arbitrary()?),
            3 => Value::UInt(u.arbitrary()?),
            4 => Value::Float(u.arbitrary()?),
            5 => Value::Str(u.arbitrary()?),
            6 => Value::Repeat(u.arbitrary()?, u.int_in_range(0..=10_000)?),
            7 => Value::Bytes(u.arbitrary()?),
            8 => {
                let len = u.int_in_range(0..=8)?;
                Value::Array(
                    (0..len)
                        .map(|_| Value::arbitrary_at(u, depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => {
                let len = u.int_in_range(0..=8)?;
                let entry = |u: &mut Unstructured<'_>| {
                    Ok((u.arbitrary()?, Value::arbitrary_at(u, depth + 1)?))
                };
                Value::Map((0..len).map(|_| entry(u)).collect::<Result<_, _>>()?)
            }
        })
    }

    /// The value as `rmpv` models it (what is inserted and compared).
    pub fn to_rmpv(&self) -> rmpv::Value {
        match self {
            Value::Nil => rmpv::Value::Nil,
            Value::Bool(b) => rmpv::Value::Boolean(*b),
            Value::Int(i) => rmpv::Value::from(*i),
            Value::UInt(u) => rmpv::Value::from(*u),
            Value::Float(f) => rmpv::Value::F64(*f),
            Value::Str(s) => rmpv::Value::from(s.as_str()),
            Value::Repeat(ch, len) => rmpv::Value::from(ch.to_string().repeat(usize::from(*len))),
            Value::Bytes(b) => rmpv::Value::Binary(b.clone()),
            Value::Array(items) => rmpv::Value::Array(items.iter().map(Value::to_rmpv).collect()),
            Value::Map(entries) => rmpv::Value::Map(
                entries.iter().map(|(k, v)| (rmpv::Value::from(k.as_str()), v.to_rmpv())).collect(),
            ),
        }
    }

    /// Nesting depth as the format counts it: a scalar is 1, a container one more than its
    /// deepest item.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 1,
        }
    }
}

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Value> {
        Value::arbitrary_at(u, 1)
    }
}

/// One insert.
#[derive(Debug, Arbitrary)]
pub struct Entry {
    pub key: String,
    pub sensitive: bool,
    pub value: Value,
}

/// A session state and the settings it is sealed with.
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub signed: bool,
    /// Index into [`LINES`] (modulo).
    pub line: u8,
    /// Index into [`THRESHOLDS`] (modulo).
    pub threshold: u8,
    pub entries: Vec<Entry>,
}

static CODECS: LazyLock<Vec<SessionCodec>> = LazyLock::new(|| {
    let mut codecs = Vec::new();
    for mode in [Mode::Sealed, Mode::Signed] {
        for line in LINES {
            for (threshold, dictionary) in THRESHOLDS {
                let config = SessionConfig::builder("session")
                    .mode(mode)
                    .max_cookie_line(line)
                    .compression_threshold(threshold)
                    .compression_dictionary(dictionary)
                    .max_state_size(MAX_STATE)
                    .build()
                    .expect("valid");
                codecs.push(SessionCodec::new(config, KeyRing::single(Key::from_bytes(KEY))));
            }
        }
    }
    codecs
});

/// The codec for `input`'s settings.
pub fn codec_for(input: &Input) -> &'static SessionCodec {
    let mode = usize::from(input.signed);
    let line = usize::from(input.line) % LINES.len();
    let threshold = usize::from(input.threshold) % THRESHOLDS.len();
    &CODECS[(mode * LINES.len() + line) * THRESHOLDS.len() + threshold]
}

/// Seals `input`'s state and opens it again, asserting the invariants in the module docs.
pub fn check_roundtrip(input: &Input) {
    let codec = codec_for(input);
    let mut session = Session::new();
    let mut expected: BTreeMap<&str, rmpv::Value> = BTreeMap::new();
    for entry in &input.entries {
        let value = entry.value.to_rmpv();
        let key = entry.key.as_str();
        let inserted = if entry.sensitive {
            session.insert_sensitive(key, &value)
        } else {
            session.insert(key, &value)
        };
        match inserted {
            Ok(()) => {
                assert!(key.len() <= MAX_KEY_LEN, "a {}-byte key was accepted", key.len());
                let depth = entry.value.depth();
                assert!(depth <= MAX_DEPTH, "a value nested {depth} levels was accepted");
                expected.insert(key, value);
            }
            Err(ValueError::KeyTooLong { .. }) => assert!(key.len() > MAX_KEY_LEN),
            Err(ValueError::Encode { .. }) if entry.value.depth() > MAX_DEPTH => {}
            Err(error) => panic!("insert {key:?} failed: {error}"),
        }
    }

    let mut entropy = Entropy::new(0x7007);
    let set_cookies = match codec.seal_with(&mut session, now(), &mut |buf| entropy.fill(buf)) {
        Ok(set_cookies) => set_cookies,
        Err(SealError::StateTooLarge { size, max }) => {
            assert!(size > max && max == MAX_STATE, "StateTooLarge {size} > {max}");
            return;
        }
        Err(SealError::TooLarge { .. } | SealError::TooManyCookies { .. }) => return,
        Err(error) => panic!("seal failed: {error}"),
    };

    let line = LINES[usize::from(input.line) % LINES.len()];
    for value in set_cookies.header_values() {
        assert!(value.len() <= line, "a {}-byte Set-Cookie line, limit {line}", value.len());
    }
    assert!(set_cookies.len() <= MAX_CHUNKS, "{} cookies", set_cookies.len());
    let share = set_cookies.request_header_share();
    assert!(share <= codec.config().cookie_budget(), "cookies take {share} bytes");

    let opened = match codec.open(&set_cookies.request_header(), now()) {
        Ok(opened) => opened,
        Err(rejection) => panic!("a sealed session does not open: {}", rejection.reason()),
    };
    let sealed = Snapshot::of(&session).as_sealed_by(codec);
    assert_eq!(Snapshot::of(&opened), sealed, "the session changed");
    assert_eq!(opened.len(), expected.len());
    for (key, value) in &expected {
        match opened.get::<rmpv::Value>(key) {
            Ok(Some(back)) => assert!(same(&back, value), "{key:?}: {back:?} != {value:?}"),
            other => panic!("{key:?} reads back as {other:?}"),
        }
    }
}

/// Structural equality, floats compared bitwise.
pub fn same(a: &rmpv::Value, b: &rmpv::Value) -> bool {
    use rmpv::Value as V;
    match (a, b) {
        (V::F64(x), V::F64(y)) => x.to_bits() == y.to_bits(),
        (V::F32(x), V::F32(y)) => x.to_bits() == y.to_bits(),
        (V::Integer(x), V::Integer(y)) => x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64(),
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (V::Map(x), V::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, v), (l, w))| same(k, l) && same(v, w))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(levels: usize) -> Value {
        (0..levels).fold(Value::Int(1), |inner, _| Value::Array(vec![inner]))
    }

    #[test]
    fn every_codec_round_trips_a_mixed_state() {
        for signed in [false, true] {
            for line in 0..LINES.len() as u8 {
                for threshold in 0..THRESHOLDS.len() as u8 {
                    let entries = vec![
                        Entry {
                            key: "a".into(),
                            sensitive: false,
                            value: Value::Repeat('x', 3000),
                        },
                        Entry { key: "b".into(), sensitive: true, value: Value::Float(f64::NAN) },
                        Entry {
                            key: "c".into(),
                            sensitive: false,
                            value: Value::Map(vec![("k".into(), Value::Bytes(vec![1, 2]))]),
                        },
                        Entry { key: "d".into(), sensitive: false, value: deep(MAX_DEPTH - 1) },
                        Entry { key: "e".into(), sensitive: false, value: Value::Int(-5) },
                        Entry { key: "x".repeat(300), sensitive: false, value: Value::Nil },
                    ];
                    check_roundtrip(&Input { signed, line, threshold, entries });
                }
            }
        }
    }

    #[test]
    fn too_large_states_are_refused_when_sealed() {
        let entries = (0..4)
            .map(|i| Entry {
                key: format!("k{i}"),
                sensitive: i % 2 == 0,
                value: Value::Repeat('é', 9000),
            })
            .collect();
        check_roundtrip(&Input { signed: false, line: 0, threshold: 2, entries });
    }

    #[test]
    fn values_nested_past_the_format_limit_are_refused() {
        assert_eq!(deep(MAX_DEPTH - 1).depth(), MAX_DEPTH);
        let entries = vec![Entry { key: "deep".into(), sensitive: false, value: deep(MAX_DEPTH) }];
        check_roundtrip(&Input { signed: false, line: 0, threshold: 0, entries });
    }
}
