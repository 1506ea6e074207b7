//! The key ring file, and the same ring as one environment variable value.
//!
//! The file is JSON, versioned, and holds secrets, so it must be readable by its owner only
//! (mode `0600`; a file others can read is refused):
//!
//! ```json
//! {
//!   "version": 1,
//!   "sha256": "<43 characters: SHA-256 of the canonical form, base64url without padding>",
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
//! # Integrity
//!
//! A file rewritten in place (same size, no truncation: an editor, a configuration tool, a
//! volume sync) is, for a moment, half old and half new, and that mix is usually still valid
//! JSON with a secret that is neither the old nor the new one. The `sha256` field makes such a
//! file impossible to load: it is the SHA-256 of the file's *canonical form*, the compact JSON
//! `{"version":V,"keys":[{"id":..,"secret":"..","created_at":..,"activates_at":..},..]}`
//! (no whitespace, fields in this order, keys in the file's order) rebuilt from the parsed
//! values, and a file whose checksum does not match is refused
//! ([`KeyFileError::Checksum`]); a watcher then keeps the ring in service, as for any invalid
//! file. [`KeyRingFile::to_json`] (and so the `sealed-session` CLI) always writes it.
//!
//! A file without the field (written by an earlier version, or by hand) still loads, with a
//! [`FileWarning::NoChecksum`] logged, so existing rings keep working; it has no protection
//! against a torn read. To edit a ring by hand, delete the `sha256` line (or let the CLI
//! rewrite the file). The environment form is written without the field (a variable is set
//! whole, so it cannot be torn, and earlier versions keep reading it); one that has it (a file's
//! JSON pasted whole) is checked all the same. Earlier versions refuse files with the field
//! (unknown field): upgrade every reader before writing the ring with this version's CLI.
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
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
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
    /// The path is not a regular file (a FIFO, a directory, a device): refused before reading,
    /// so a FIFO cannot block the loader.
    #[error("key ring file {path} is {kind}, not a regular file; refusing to read it")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is instead.
        kind: &'static str,
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
    /// The `sha256` field does not match the rest of the file: the file was read while being
    /// rewritten in place (torn), or was edited by hand.
    #[error(
        "key ring checksum (sha256) does not match the file's content: the file is being \
         rewritten in place, or was edited by hand (write it with the sealed-session CLI, or \
         remove the sha256 field)"
    )]
    Checksum,
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
}

/// What the checksum covers: the file without its `sha256` field, as compact JSON with the
/// fields in this order (`{"version":1,"keys":[{"id":..,"secret":"..","created_at":..,
/// "activates_at":..}]}`). Recomputed from the parsed values, so the layout of the text on
/// disk (indentation, spacing) is free, but every value is covered.
#[derive(Serialize)]
struct Canonical<'a> {
    version: u32,
    keys: &'a [KeyEntry],
}

/// The file as written: the checksum between the version and the keys.
#[derive(Serialize)]
struct Written<'a> {
    version: u32,
    sha256: &'a str,
    keys: &'a [KeyEntry],
}

/// The environment form leaves the checksum out: a variable is set whole, so it cannot be
/// torn, and earlier versions (which refuse unknown fields) keep reading it.
#[derive(Serialize)]
struct WrittenEnv<'a> {
    version: u32,
    keys: &'a [KeyEntry],
}

/// SHA-256 of the canonical form of a ring's content, base64url without padding.
fn checksum(version: u32, keys: &[KeyEntry]) -> String {
    let canonical = Zeroizing::new(
        serde_json::to_vec(&Canonical { version, keys }).expect("a key ring always serializes"),
    );
    BASE64.encode(Sha256::digest(canonical.as_slice()))
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
        KeyRingFile { version: FILE_VERSION, sha256: None, keys }
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
            let computed = checksum(file.version, &file.keys);
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

    /// The file's JSON text, pretty-printed, with a fresh `sha256` checksum.
    pub fn to_json(&self) -> Zeroizing<String> {
        let sha256 = checksum(self.version, &self.keys);
        let written = Written { version: self.version, sha256: &sha256, keys: &self.keys };
        let mut text =
            serde_json::to_string_pretty(&written).expect("a key ring always serializes");
        text.push('\n');
        Zeroizing::new(text)
    }

    /// The environment variable form: `ssk1.` and the JSON in base64url, without a checksum
    /// (a variable cannot be torn; see the module docs).
    pub fn to_env(&self) -> Zeroizing<String> {
        let written = WrittenEnv { version: self.version, keys: &self.keys };
        let json =
            Zeroizing::new(serde_json::to_string(&written).expect("a key ring always serializes"));
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

/// [`load_file`] at a given time. Each [`FileWarning`] about the file is logged at warning
/// level.
///
/// # Errors
///
/// As [`load_file`].
pub fn load_file_at(path: impl AsRef<Path>, now: SystemTime) -> Result<KeyRing, KeyFileError> {
    let path = path.as_ref();
    let (ring, warnings) = load_file_with_warnings(path, now)?;
    for warning in warnings {
        tracing::warn!(path = %path.display(), "{warning}");
    }
    Ok(ring)
}

/// [`load_file_at`], returning the warnings about the file instead of logging them (for tools
/// that show them to an operator).
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::keys::file::{self, FileWarning};
///
/// // A file written before the checksum existed still loads, with a warning.
/// let dir = std::env::temp_dir().join(format!("ss-doc-warnings-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("ring.json");
/// let secret = "ERERERERERERERERERERERERERERERERERERERERERE";
/// std::fs::write(&path, format!(
///     r#"{{"version":1,"keys":[{{"id":1,"secret":"{secret}","created_at":0,"activates_at":0}}]}}"#
/// ))?;
/// # #[cfg(unix)]
/// # std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
/// let (ring, warnings) = file::load_file_with_warnings(&path, SystemTime::now())?;
/// assert_eq!(ring.len(), 1);
/// assert!(warnings.contains(&FileWarning::NoChecksum));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As [`load_file`].
pub fn load_file_with_warnings(
    path: impl AsRef<Path>,
    now: SystemTime,
) -> Result<(KeyRing, Vec<FileWarning>), KeyFileError> {
    let path = path.as_ref();
    let file = KeyRingFile::parse(&read_private(path)?)?;
    let ring = file.to_ring(now)?;
    let mut warnings = Vec::new();
    if file.sha256.is_none() {
        warnings.push(FileWarning::NoChecksum);
    }
    warnings.extend(directory_warnings(path));
    Ok((ring, warnings))
}

/// Something wrong with a key ring file that does not stop it from loading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileWarning {
    /// The file has no `sha256` field (it was written by an earlier version, or by hand), so a
    /// rewrite in place could be loaded half old and half new.
    #[error(
        "key ring file has no sha256 checksum (written by an earlier version or by hand): a \
         rewrite in place could be loaded torn; any write by the sealed-session CLI adds it"
    )]
    NoChecksum,
    /// Group or others may write a directory the file sits in (and its sticky bit is off), so
    /// they can replace the ring with theirs. Fix with `chmod go-w DIRECTORY`.
    #[error(
        "directory {directory} of the key ring file has mode {mode:03o}: others can replace the \
         ring (chmod go-w {directory})"
    )]
    WritableDirectory {
        /// The directory.
        directory: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// Reads a file holding secrets, refusing it if it is not a regular file or if others may read
/// or write it.
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io { path: shown.clone(), source };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer comes; without blocking it opens at once,
    // and the type check below refuses it. Reads from a regular file ignore the flag.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path).map_err(io)?;
    // The checks look at the file opened, not at the path, so nothing can be swapped in between.
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotRegular { path: shown, kind: file_kind(&metadata) });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: shown, mode });
        }
    }
    // Reserved up front, so the secrets are not left behind in a smaller buffer outgrown.
    let capacity = usize::try_from(metadata.len()).unwrap_or(0).saturating_add(1);
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    file.read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

/// What a file that is not a regular file is, for [`KeyFileError::NotRegular`].
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a regular file" }
}

/// Warnings about the directories a key ring file at `path` sits in: the directory holding
/// `path` and, when `path` is a symbolic link, the one holding its final target. Whoever may
/// write such a directory (group or others, without the sticky bit) can replace the ring with
/// theirs. [`load_file_with_warnings`] includes them; this is for tools that write a ring.
///
/// # Examples
///
/// ```
/// use sealed_session::keys::file::directory_warnings;
///
/// let dir = std::env::temp_dir().join(format!("ss-doc-dir-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// # #[cfg(unix)]
/// # std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
/// assert!(directory_warnings(dir.join("ring.json")).is_empty());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn directory_warnings(path: impl AsRef<Path>) -> Vec<FileWarning> {
    let path = path.as_ref();
    let mut directories = vec![parent(path)];
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if let Some(target) = is_link.then(|| std::fs::canonicalize(path).ok()).flatten() {
        let target_directory = parent(&target);
        // A link to a file in its own directory: one directory, one warning.
        if std::fs::canonicalize(&directories[0]).ok().as_ref() != Some(&target_directory) {
            directories.push(target_directory);
        }
    }
    directories.into_iter().filter_map(|dir| writable_directory(&dir)).collect()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    }
}

/// A warning when group or others may write `dir` and its sticky bit is off.
fn writable_directory(dir: &Path) -> Option<FileWarning> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o7777;
        const STICKY: u32 = 0o1000;
        if mode & 0o022 != 0 && mode & STICKY == 0 {
            return Some(FileWarning::WritableDirectory {
                directory: dir.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    None
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

    fn one_key_ring(byte: u8) -> KeyRing {
        let mut ring = KeyRing::new();
        ring.insert(KeyId(1), Key::from_bytes([byte; 32]), t(10), t(10)).unwrap();
        ring
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

    /// A directory holding a valid ring (mode 0600).
    #[cfg(unix)]
    fn ring_in(dir: &Path, dir_mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        let path = dir.join("ring.json");
        std::fs::write(&path, KeyRingFile::from_ring(&one_key_ring(3)).to_json().as_bytes())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// A FIFO (or any file that is not a regular file) is refused at once; on main, reading a
    /// FIFO blocked until a writer came, forever. The channel's bound is a liveness guard.
    #[cfg(unix)]
    #[test]
    fn a_fifo_or_directory_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("ss-keys-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("ring.json");
        let made = std::process::Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let inner = dir.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        for (path, kind) in [(fifo.clone(), "FIFO"), (inner, "directory")] {
            let (sender, receiver) = std::sync::mpsc::channel();
            let loading = path.clone();
            std::thread::spawn(move || {
                let _ = sender.send(load_file_at(&loading, t(5)).map(|ring| ring.len()));
            });
            let result = receiver.recv_timeout(Duration::from_secs(60));
            if result.is_err() {
                // Unblock the stuck reader before failing.
                let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            }
            let error = result.expect("loading blocked").unwrap_err();
            assert!(matches!(error, KeyFileError::NotRegular { .. }), "{error:?}");
            assert!(error.to_string().contains(kind), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A ring in a directory others may write (without the sticky bit) loads, with a warning:
    /// whoever can write there can replace the ring. On main it loaded silently.
    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_warned_about() {
        let base = std::env::temp_dir().join(format!("ss-keys-dirs-{}", std::process::id()));
        let writable = |warnings: &[FileWarning]| {
            warnings.iter().any(|w| matches!(w, FileWarning::WritableDirectory { .. }))
        };
        for (dir_mode, warned) in
            [(0o700, false), (0o755, false), (0o770, true), (0o777, true), (0o1777, false)]
        {
            let dir = base.join(format!("{dir_mode:o}"));
            let path = ring_in(&dir, dir_mode);
            let (ring, warnings) = load_file_with_warnings(&path, t(40)).unwrap();
            assert_eq!(ring.len(), 1);
            assert_eq!(writable(&warnings), warned, "mode {dir_mode:o}: {warnings:?}");
            assert_eq!(writable(&directory_warnings(&path)), warned, "mode {dir_mode:o}");
            if warned {
                let shown = warnings[0].to_string();
                assert!(shown.contains(&dir.display().to_string()), "{shown}");
            }
        }
        // Through a symbolic link in a private directory to a ring in a writable one.
        let link = base.join("700").join("link.json");
        std::os::unix::fs::symlink(base.join("777").join("ring.json"), &link).unwrap();
        assert!(writable(&load_file_with_warnings(&link, t(40)).unwrap().1));
        let sibling = base.join("777").join("sibling.json");
        std::os::unix::fs::symlink("ring.json", &sibling).unwrap();
        assert_eq!(directory_warnings(&sibling).len(), 1, "one directory, one warning");
        std::fs::remove_dir_all(&base).unwrap();
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
        let (_, warnings) = load_file_with_warnings(&path, t(5)).unwrap();
        assert!(!warnings.contains(&FileWarning::NoChecksum), "{warnings:?}");
        let legacy = file(&[entry(1, &BASE64.encode([7u8; 32]), 0, 0)]);
        std::fs::write(&path, legacy).unwrap();
        let (_, warnings) = load_file_with_warnings(&path, t(5)).unwrap();
        assert!(warnings.contains(&FileWarning::NoChecksum), "{warnings:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
