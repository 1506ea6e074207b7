//! The key ring file, and the same ring as one environment variable value.
//!
//! The file is JSON, versioned, and holds secrets, so it must be readable by its owner only
//! (mode `0600`; a file others can read is refused):
//!
//! ```json
//! {
//!   "version": 1,
//!   "keys": [
//!     { "id": 1, "secret": "<32 bytes, base64url without padding>",
//!       "created_at": 1800000000, "activates_at": 1800000000 }
//!   ]
//! }
//! ```
//!
//! Times are Unix seconds. The environment form is `ssk1.` followed by the file's JSON encoded
//! in base64url (so it survives shells and YAML); plain JSON is accepted too.
//!
//! # Examples
//!
//! ```
//! use std::time::SystemTime;
//! use sealed_session::keys::file::{self, KeyRingFile};
//! use sealed_session::{Key, KeyId, KeyRing};
//!
//! let mut ring = KeyRing::new();
//! ring.insert(KeyId(1), Key::generate(), SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH)?;
//! let env_value = KeyRingFile::from_ring(&ring).to_env();
//! assert!(env_value.starts_with("ssk1."));
//! let back = file::parse_env(&env_value)?;
//! assert_eq!(back.secret(KeyId(1)), ring.secret(KeyId(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Key, KeyId, KeyRing, KeyRingError};
use crate::format::KEY_LEN;
use crate::time::{from_unix, to_unix};

/// The version written in, and required of, every key ring file.
pub const FILE_VERSION: u32 = 1;

/// The prefix of the environment variable form.
pub const ENV_PREFIX: &str = "ssk1.";

/// Why a key ring could not be loaded. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read key ring file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// Others can read or write the file. Fix with `chmod 600 FILE`.
    #[error(
        "key ring file {path} has mode {mode:03o}: it holds secrets, so only its owner may read \
         it (chmod 600 {path})"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The JSON is invalid (position given; the text is never echoed).
    #[error(
        "key ring is not valid JSON of the expected shape at line {line}, column {column}: {what}"
    )]
    Json {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// serde_json's classification of it.
        what: &'static str,
    },
    /// The environment value is neither `ssk1.`-prefixed base64url nor JSON.
    #[error(
        "key ring environment value must start with `ssk1.` (or be JSON); the base64url after it is invalid"
    )]
    EnvEncoding,
    /// The file's version is not one this build reads.
    #[error("key ring file version {0} is not supported (expected {FILE_VERSION})")]
    Version(u32),
    /// A key's secret is not base64url.
    #[error("key {0}: secret is not base64url without padding")]
    SecretEncoding(KeyId),
    /// A key's secret is not 32 bytes.
    #[error("key {id}: secret is {len} bytes, it must be {KEY_LEN}")]
    SecretLength {
        /// The key.
        id: KeyId,
        /// The decoded length.
        len: usize,
    },
    /// The ring is not consistent (duplicate ids, times out of order).
    #[error(transparent)]
    Ring(#[from] KeyRingError),
    /// No key is active at load time, so nothing could be sealed.
    #[error("no key in the ring is active yet (every key is pending); add or activate one")]
    NoActiveKey,
    /// The ring has no key at all.
    #[error("the key ring holds no key")]
    Empty,
}

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
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRingFile {
    /// Always [`FILE_VERSION`].
    pub version: u32,
    /// The keys, oldest first.
    pub keys: Vec<KeyEntry>,
}

impl KeyRingFile {
    /// The file form of a ring.
    pub fn from_ring(ring: &KeyRing) -> KeyRingFile {
        let keys = ring
            .keys
            .iter()
            .map(|key| KeyEntry {
                id: key.id.0,
                secret: Zeroizing::new(BASE64.encode(key.secret.expose_secret())),
                created_at: key.created_at,
                activates_at: key.activates_at,
            })
            .collect();
        KeyRingFile { version: FILE_VERSION, keys }
    }

    /// Parses the JSON text of a key ring file.
    ///
    /// # Errors
    ///
    /// [`KeyFileError::Json`] or [`KeyFileError::Version`].
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
        Ok(file)
    }

    /// The ring, checked: secrets decode to 32 bytes, ids are unique, and at least one key is
    /// active at `now`.
    ///
    /// # Errors
    ///
    /// The [`KeyFileError`] naming the first problem found.
    pub fn to_ring(&self, now: SystemTime) -> Result<KeyRing, KeyFileError> {
        if self.keys.is_empty() {
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
        if ring.current(to_unix(now)).is_none() {
            return Err(KeyFileError::NoActiveKey);
        }
        Ok(ring)
    }

    /// The file's JSON text, pretty-printed.
    pub fn to_json(&self) -> Zeroizing<String> {
        let mut text = serde_json::to_string_pretty(self).expect("a key ring always serializes");
        text.push('\n');
        Zeroizing::new(text)
    }

    /// The environment variable form: `ssk1.` and the JSON in base64url.
    pub fn to_env(&self) -> Zeroizing<String> {
        let json =
            Zeroizing::new(serde_json::to_string(self).expect("a key ring always serializes"));
        Zeroizing::new(format!("{ENV_PREFIX}{}", BASE64.encode(json.as_bytes())))
    }
}

/// Reads and checks a key ring file at the current time: the file must not be readable by
/// others.
///
/// # Errors
///
/// [`KeyFileError`] naming the problem; never a secret.
pub fn load_file(path: impl AsRef<Path>) -> Result<KeyRing, KeyFileError> {
    load_file_at(path, SystemTime::now())
}

/// [`load_file`] at a given time.
///
/// # Errors
///
/// As [`load_file`].
pub fn load_file_at(path: impl AsRef<Path>, now: SystemTime) -> Result<KeyRing, KeyFileError> {
    KeyRingFile::parse(&read_private(path.as_ref())?)?.to_ring(now)
}

/// Reads a file holding secrets, refusing it if others may read or write it.
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io { path: shown.clone(), source };
    let metadata = std::fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    std::fs::read_to_string(path).map(Zeroizing::new).map_err(io)
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
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn entry(id: u32, secret: &str, created: u64, activates: u64) -> String {
        format!(
            r#"{{"id":{id},"secret":"{secret}","created_at":{created},"activates_at":{activates}}}"#
        )
    }

    fn file(entries: &[String]) -> String {
        format!(r#"{{"version":1,"keys":[{}]}}"#, entries.join(","))
    }

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

    #[cfg(unix)]
    #[test]
    fn refuses_files_others_can_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ss-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ring.json");
        let mut ring = KeyRing::new();
        ring.insert(KeyId(1), Key::generate(), t(0), t(0)).unwrap();
        std::fs::write(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_file_at(&path, t(5)),
            Err(KeyFileError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_file_at(&path, t(5)).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
