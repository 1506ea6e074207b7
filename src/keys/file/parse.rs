//! The key ring file's format: parsing and checking its JSON (the shape, the version, the
//! `sha256` checksum, the keys), writing it back (file and environment forms), and reading the
//! environment form. No file-system access here: the text comes from [`super::fs`] or from a
//! variable.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::KeyFileError;
use crate::format::KEY_LEN;
use crate::keys::{Key, KeyId, KeyRing, Schedule};
use crate::time::{from_unix, to_unix};

/// The version written in, and required of, every key ring file.
pub const FILE_VERSION: u32 = 1;

/// The prefix of the environment variable form.
pub const ENV_PREFIX: &str = "ssk1.";

/// One key as stored in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key's id.
    pub id: u32,
    /// The secret, base64url without padding. Zeroized on drop.
    pub secret: Zeroizing<String>,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Activation time, Unix seconds.
    pub activates_at: u64,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &KeyId(self.id))
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish()
    }
}

/// The file's content, before it becomes a [`KeyRing`].
///
/// Only deserialized: [`to_json`](KeyRingFile::to_json) and [`to_env`](KeyRingFile::to_env)
/// write it, with a checksum computed afresh.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRingFile {
    /// Always [`FILE_VERSION`].
    pub version: u32,
    /// The integrity checksum as read: SHA-256 over the canonical form of the rest of the file,
    /// base64url without padding (see the module docs). `None` in files written before the
    /// field existed; [`parse`](KeyRingFile::parse) has checked it when present.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The keys, oldest first.
    pub keys: Vec<KeyEntry>,
    /// The rotation schedule, if the ring has one (FORMAT.md section 2.3).
    #[serde(default)]
    pub schedule: Option<ScheduleEntry>,
}

/// A ring's rotation schedule as stored in the file: the root secret and the policy, all times
/// in seconds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// The id of period 0; the schedule owns `id_base .. id_base + 65536`.
    pub id_base: u32,
    /// The root secret, base64url without padding. Zeroized on drop.
    pub root: Zeroizing<String>,
    /// When period 0 activates, Unix seconds.
    pub epoch: u64,
    /// How long each key seals, seconds.
    pub lifetime: u64,
    /// How long a key opens before it seals, seconds.
    pub lead: u64,
    /// How long a key opens after it stopped sealing, seconds.
    pub retire_after: u64,
}

impl std::fmt::Debug for ScheduleEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleEntry")
            .field("id_base", &KeyId(self.id_base))
            .field("root", &"<redacted>")
            .field("epoch", &self.epoch)
            .field("lifetime", &self.lifetime)
            .field("lead", &self.lead)
            .field("retire_after", &self.retire_after)
            .finish()
    }
}

/// What the checksum covers: the file without its `sha256` field, as compact JSON with the
/// fields in this order (`{"version":1,"keys":[{"id":..,"secret":"..","created_at":..,
/// "activates_at":..}]}`). Recomputed from the parsed values, so the layout of the text on
/// disk (indentation, spacing) is free, but every value is covered.
#[derive(Serialize)]
struct Canonical<'a> {
    version: u32,
    keys: &'a [KeyEntry],
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a ScheduleEntry>,
}

/// The file as written: the checksum between the version and the keys.
#[derive(Serialize)]
struct Written<'a> {
    version: u32,
    sha256: &'a str,
    keys: &'a [KeyEntry],
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a ScheduleEntry>,
}

/// The environment form leaves the checksum out: a variable is set whole, so it cannot be
/// torn, and earlier versions (which refuse unknown fields) keep reading it.
#[derive(Serialize)]
struct WrittenEnv<'a> {
    version: u32,
    keys: &'a [KeyEntry],
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a ScheduleEntry>,
}

/// SHA-256 of the canonical form of a ring's content, base64url without padding.
fn checksum(version: u32, keys: &[KeyEntry], schedule: Option<&ScheduleEntry>) -> String {
    let canonical = json_bytes(&Canonical { version, keys, schedule }, false, 0);
    BASE64.encode(Sha256::digest(canonical.as_slice()))
}

/// The JSON of `value` (compact, or pretty-printed) in a buffer sized exactly once, with
/// `spare` bytes more, wiped on drop. The text holds secrets: a buffer that grew as it was
/// written would leave copies of them behind in every smaller one it outgrew, so the length
/// is counted first.
fn json_bytes(value: &impl Serialize, pretty: bool, spare: usize) -> Zeroizing<Vec<u8>> {
    /// Counts what is written, keeping nothing.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    fn write(value: &impl Serialize, pretty: bool, out: impl std::io::Write) {
        let written = if pretty {
            serde_json::to_writer_pretty(out, value)
        } else {
            serde_json::to_writer(out, value)
        };
        written.expect("a key ring always serializes");
    }
    let mut count = Count(0);
    write(value, pretty, &mut count);
    let mut bytes = Zeroizing::new(Vec::with_capacity(count.0 + spare));
    write(value, pretty, &mut *bytes);
    bytes
}

/// `bytes` (JSON, so UTF-8) as text, in the same buffer.
fn into_text(mut bytes: Zeroizing<Vec<u8>>) -> Zeroizing<String> {
    // Taken out of the wrapper without a copy; the wrapper is left empty.
    let bytes = std::mem::take(&mut *bytes);
    Zeroizing::new(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
}

impl KeyRingFile {
    /// The file form of a ring.
    pub fn from_ring(ring: &KeyRing) -> KeyRingFile {
        let keys = ring
            .keys
            .iter()
            .filter(|key| !ring.is_derived(key.id))
            .map(|key| KeyEntry {
                id: key.id.0,
                secret: Zeroizing::new(BASE64.encode(key.secret.expose_secret())),
                created_at: key.created_at,
                activates_at: key.activates_at,
            })
            .collect();
        let schedule = ring.schedule().map(|schedule| {
            let policy = schedule.policy();
            ScheduleEntry {
                id_base: schedule.id_base().0,
                root: Zeroizing::new(BASE64.encode(schedule.root().expose_secret())),
                epoch: to_unix(schedule.epoch()),
                lifetime: policy.lifetime.as_secs(),
                lead: policy.lead.as_secs(),
                retire_after: policy.retire_after.as_secs(),
            }
        });
        KeyRingFile { version: FILE_VERSION, sha256: None, keys, schedule }
    }

    /// Parses the JSON text of a key ring file, checking its `sha256` checksum when it has one.
    ///
    /// # Errors
    ///
    /// [`KeyFileError::Json`], [`KeyFileError::Version`] or [`KeyFileError::Checksum`].
    pub fn parse(json: &str) -> Result<KeyRingFile, KeyFileError> {
        let file: KeyRingFile = serde_json::from_str(json).map_err(|error| KeyFileError::Json {
            line: error.line(),
            column: error.column(),
            what: match error.classify() {
                serde_json::error::Category::Io => "i/o error",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected field or value",
                serde_json::error::Category::Eof => "unexpected end",
            },
        })?;
        if file.version != FILE_VERSION {
            return Err(KeyFileError::Version(file.version));
        }
        if let Some(stated) = &file.sha256 {
            // A file caught half-way through a rewrite in place can be valid JSON with a mix of
            // old and new secrets; it cannot match the checksum of either version.
            let computed = checksum(file.version, &file.keys, file.schedule.as_ref());
            if !bool::from(stated.as_bytes().ct_eq(computed.as_bytes())) {
                return Err(KeyFileError::Checksum);
            }
        }
        Ok(file)
    }

    /// The ring, checked: secrets decode to 32 bytes, ids are unique, and at least one key is
    /// active at `now`.
    ///
    /// # Errors
    ///
    /// The [`KeyFileError`] naming the first problem found.
    pub fn to_ring(&self, now: SystemTime) -> Result<KeyRing, KeyFileError> {
        if self.keys.is_empty() && self.schedule.is_none() {
            return Err(KeyFileError::Empty);
        }
        let mut ring = KeyRing::new();
        for entry in &self.keys {
            let id = KeyId(entry.id);
            let bytes = Zeroizing::new(
                BASE64
                    .decode(entry.secret.as_bytes())
                    .map_err(|_| KeyFileError::SecretEncoding(id))?,
            );
            if bytes.len() != KEY_LEN {
                return Err(KeyFileError::SecretLength { id, len: bytes.len() });
            }
            let key = Key::try_from_slice(&bytes)
                .map_err(|_| KeyFileError::SecretLength { id, len: bytes.len() })?;
            ring.insert(id, key, from_unix(entry.created_at), from_unix(entry.activates_at))?;
        }
        if let Some(entry) = &self.schedule {
            let id = KeyId(entry.id_base);
            let bytes = Zeroizing::new(
                BASE64
                    .decode(entry.root.as_bytes())
                    .map_err(|_| KeyFileError::SecretEncoding(id))?,
            );
            let root = Key::try_from_slice(&bytes)
                .map_err(|_| KeyFileError::SecretLength { id, len: bytes.len() })?;
            let schedule = Schedule::from_parts(
                root,
                entry.id_base,
                entry.epoch,
                entry.lifetime,
                entry.lead,
                entry.retire_after,
            )?;
            ring.set_schedule(schedule, now)?;
        }
        if ring.current(to_unix(now)).is_none() {
            return Err(KeyFileError::NoActiveKey);
        }
        Ok(ring)
    }

    /// The file's JSON text, pretty-printed, with a fresh `sha256` checksum.
    pub fn to_json(&self) -> Zeroizing<String> {
        let schedule = self.schedule.as_ref();
        let sha256 = checksum(self.version, &self.keys, schedule);
        let written =
            Written { version: self.version, sha256: &sha256, keys: &self.keys, schedule };
        // One byte spare for the final newline, so the buffer never grows.
        let mut text = into_text(json_bytes(&written, true, 1));
        text.push('\n');
        text
    }

    /// The environment variable form: `ssk1.` and the JSON in base64url, without a checksum
    /// (a variable cannot be torn; see the module docs). Room for one more byte (a newline) is
    /// reserved, so pushing it moves no secret.
    pub fn to_env(&self) -> Zeroizing<String> {
        let written = WrittenEnv {
            version: self.version,
            keys: &self.keys,
            schedule: self.schedule.as_ref(),
        };
        let json = json_bytes(&written, false, 0);
        // The base64url holds the secrets too: encoded in place into a buffer sized once (with
        // a byte spare for a caller's newline), not through a temporary or an outgrown buffer.
        let encoded = base64::encoded_len(json.len(), false).expect("a key ring's length fits");
        let len = ENV_PREFIX.len() + encoded;
        let mut value = Zeroizing::new(Vec::with_capacity(len + 1));
        value.extend_from_slice(ENV_PREFIX.as_bytes());
        value.resize(len, 0);
        BASE64
            .encode_slice(json.as_slice(), &mut value[ENV_PREFIX.len()..])
            .expect("the buffer is sized for the encoding");
        into_text(value)
    }
}

/// What the scheduled command (`sealed-session keys rotate --if-due`) finds due in a ring file
/// at a given time: see [`due_at`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Due {
    /// The ring in service at that time, to write back when `retired` is not empty.
    pub ring: KeyRing,
    /// The file's hand-made keys the schedule's policy has retired by then (they no longer
    /// open anything, written or not); empty when nothing is due.
    pub retired: Vec<KeyId>,
}

/// What is due in the ring file `text` at `now`: derived keys need no write (every node
/// derives them), so only the hand-made keys the policy retired, which a write drops. The same
/// file and time always give the same answer, so every node may run it at once.
///
/// # Errors
///
/// The [`KeyFileError`] of an invalid file.
pub fn due_at(text: &str, now: SystemTime) -> Result<Due, KeyFileError> {
    let file = KeyRingFile::parse(text)?;
    let ring = file.to_ring(now)?;
    let retired = file.keys.iter().map(|entry| KeyId(entry.id)).filter(|id| !ring.contains(*id));
    let retired = retired.collect();
    Ok(Due { ring, retired })
}

/// Parses the environment variable form (or plain JSON) at the current time.
///
/// # Errors
///
/// [`KeyFileError`] naming the problem; never a secret.
pub fn parse_env(value: &str) -> Result<KeyRing, KeyFileError> {
    parse_env_at(value, SystemTime::now())
}

/// [`parse_env`] at a given time.
///
/// # Errors
///
/// As [`parse_env`].
pub fn parse_env_at(value: &str, now: SystemTime) -> Result<KeyRing, KeyFileError> {
    let value = value.trim();
    let json = match value.strip_prefix(ENV_PREFIX) {
        Some(encoded) => {
            let bytes =
                Zeroizing::new(BASE64.decode(encoded).map_err(|_| KeyFileError::EnvEncoding)?);
            Zeroizing::new(
                String::from_utf8(bytes.to_vec()).map_err(|_| KeyFileError::EnvEncoding)?,
            )
        }
        None if value.starts_with('{') => Zeroizing::new(value.to_owned()),
        None => return Err(KeyFileError::EnvEncoding),
    };
    KeyRingFile::parse(&json)?.to_ring(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::file::testing::{entry, file, one_key_ring, t};

    #[test]
    fn errors_are_actionable_and_never_show_secrets() {
        let good = BASE64.encode([7u8; 32]);
        let short = BASE64.encode([7u8; 16]);
        let cases: Vec<(String, &str)> = vec![
            ("{".to_owned(), "line 1"),
            (r#"{"version":2,"keys":[]}"#.to_owned(), "version 2"),
            (file(&[]), "no key"),
            (file(&[entry(1, "%%%", 0, 0)]), "not base64url"),
            (file(&[entry(1, &short, 0, 0)]), "16 bytes"),
            (file(&[entry(1, &good, 0, 0), entry(1, &good, 0, 0)]), "duplicate key id"),
            (file(&[entry(1, &good, 0, 500)]), "pending"),
            (file(&[entry(1, &good, 9, 5)]), "activates before"),
        ];
        for (text, expected) in cases {
            let error = KeyRingFile::parse(&text).and_then(|f| f.to_ring(t(100))).unwrap_err();
            let shown = error.to_string();
            assert!(shown.contains(expected), "{shown:?} should mention {expected:?}");
            assert!(!shown.contains(&good) && !shown.contains(&short), "{shown}");
        }
    }

    #[test]
    fn file_and_env_forms_round_trip() {
        let mut ring = KeyRing::new();
        ring.insert(KeyId(1), Key::generate(), t(10), t(10)).unwrap();
        ring.insert(KeyId(2), Key::generate(), t(20), t(30)).unwrap();
        let form = KeyRingFile::from_ring(&ring);
        let from_json = KeyRingFile::parse(&form.to_json()).unwrap().to_ring(t(40)).unwrap();
        let from_env = parse_env_at(&form.to_env(), t(40)).unwrap();
        for back in [from_json, from_env] {
            assert_eq!(back.keys().collect::<Vec<_>>(), ring.keys().collect::<Vec<_>>());
            for id in [KeyId(1), KeyId(2)] {
                assert_eq!(back.secret(id), ring.secret(id));
            }
        }
        assert!(matches!(parse_env_at("nonsense", t(40)), Err(KeyFileError::EnvEncoding)));
        assert!(!format!("{form:?}").contains(&*form.keys[0].secret));
    }

    /// Every cut of a same-size rewrite in place (new bytes before the cut, old ones after):
    /// the mix loads as exactly the old or the new ring, or is refused. Without the checksum,
    /// cuts inside the secret load a third key.
    #[test]
    fn a_torn_file_never_loads_as_a_third_ring() {
        let rings = [one_key_ring(0xAA), one_key_ring(0x55)];
        let [old, new] = rings.each_ref().map(|ring| KeyRingFile::from_ring(ring).to_json());
        assert_eq!(old.len(), new.len());
        let mut refused = 0;
        for cut in 0..=old.len() {
            let torn = format!("{}{}", &new[..cut], &old[cut..]);
            match KeyRingFile::parse(&torn).and_then(|file| file.to_ring(t(40))) {
                Ok(ring) => assert!(
                    rings.iter().any(|r| r.secret(KeyId(1)) == ring.secret(KeyId(1))),
                    "cut at {cut} loaded a key that is neither the old nor the new one"
                ),
                Err(KeyFileError::Checksum) => refused += 1,
                Err(other) => panic!("cut at {cut}: unexpected {other}"),
            }
        }
        assert!(refused > 40, "only {refused} torn files were refused");
    }

    #[test]
    fn the_checksum_covers_every_value_and_its_absence_is_tolerated() {
        let ring = one_key_ring(7);
        let json = KeyRingFile::from_ring(&ring).to_json();
        let parsed = KeyRingFile::parse(&json).unwrap();
        assert_eq!(parsed.sha256.as_deref().map(str::len), Some(43));
        // Layout is free: the same values, compact, still match.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(KeyRingFile::parse(&value.to_string()).is_ok());
        // Any value changed (times, id, secret, checksum) is refused.
        let secret = BASE64.encode([7u8; 32]);
        let other = BASE64.encode([8u8; 32]);
        for (from, to) in [
            ("\"created_at\": 10", "\"created_at\": 9"),
            ("\"id\": 1", "\"id\": 2"),
            (secret.as_str(), other.as_str()),
            (parsed.sha256.as_deref().unwrap(), &"A".repeat(43)),
        ] {
            assert!(json.contains(from), "{from}");
            let edited = json.replacen(from, to, 1);
            assert!(matches!(KeyRingFile::parse(&edited), Err(KeyFileError::Checksum)), "{to}");
        }
        // Without the field (an earlier version's file), it parses; `load_file_with_warnings`
        // reports it (tested below).
        let legacy = file(&[entry(1, &secret, 10, 10)]);
        assert!(KeyRingFile::parse(&legacy).unwrap().sha256.is_none());
        // The environment form leaves it out (earlier versions refuse unknown fields), and one
        // pasted with it is checked.
        let env = KeyRingFile::from_ring(&ring).to_env();
        let decoded = BASE64.decode(&env[ENV_PREFIX.len()..]).unwrap();
        assert!(!String::from_utf8(decoded).unwrap().contains("sha256"));
        assert!(parse_env_at(&json, t(40)).is_ok());
        let edited = json.replacen(&secret, &other, 1);
        assert!(matches!(parse_env_at(&edited, t(40)), Err(KeyFileError::Checksum)));
    }

    /// The text holding secrets is written into a buffer sized once: its capacity is its length
    /// plus the one byte reserved for a newline, and no more (a buffer that grew while being
    /// written is larger, and left copies of the secrets in each smaller one it outgrew).
    #[test]
    fn secret_text_is_written_into_a_buffer_sized_once() {
        let mut ring = one_key_ring(7);
        ring.insert(KeyId(2), Key::generate(), t(20), t(30)).unwrap();
        let form = KeyRingFile::from_ring(&ring);
        let json = form.to_json();
        assert_eq!(json.capacity(), json.len(), "to_json, its newline included");
        let env = form.to_env();
        assert_eq!(env.capacity(), env.len() + 1, "to_env, a byte spare for a newline");
    }
}
