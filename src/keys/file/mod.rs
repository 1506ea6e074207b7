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

// Layout: `parse.rs` knows the format (the JSON shape, the checksum, the checks that turn it
// into a `KeyRing`, the text written back, the environment form) and touches no file; `fs.rs`
// does the file-system work (reading a file with its type and permission checks, the warnings
// about the directories it sits in). Watching a file for changes is `SharedKeyRing`'s, in
// keys/shared.rs. The error both can return is here.

mod fs;
mod parse;

pub(crate) use fs::read_private_with_metadata;
pub use fs::{
    FileWarning, directory_warnings, load_file, load_file_at, load_file_with_warnings, read_file,
};
pub use parse::{
    Due, ENV_PREFIX, FILE_VERSION, KeyEntry, KeyRingFile, ScheduleEntry, due_at, parse_env,
    parse_env_at,
};

use super::{KeyId, KeyRingError, ScheduleError};
use crate::format::KEY_LEN;

/// The largest key ring file read, in bytes: far more than any ring needs (a key takes about
/// 150 bytes: over 6,000 keys), and a bound on what a huge file at the path makes a loader, or
/// the watcher, read.
pub const MAX_FILE_LEN: u64 = 1 << 20;

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
    /// The file is larger than [`MAX_FILE_LEN`]: refused before reading.
    #[error(
        "key ring file {path} is {len} bytes, more than a key ring may take ({MAX_FILE_LEN}); \
         refusing to read it"
    )]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        len: u64,
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
    /// The ring's schedule is invalid (lifetime, lead time or id block).
    #[error("key ring schedule: {0}")]
    Schedule(#[from] ScheduleError),
    /// The `sha256` field does not match the rest of the file: the file was read while being
    /// rewritten in place (torn), or was edited by hand.
    #[error(
        "key ring checksum (sha256) does not match the file's content: the file is being \
         rewritten in place, or was edited by hand (write it with the sealed-session CLI, or \
         remove the sha256 field)"
    )]
    Checksum,
}

/// Small rings and files for the tests of both halves.
#[cfg(test)]
mod testing {
    use std::time::{Duration, SystemTime};

    use crate::keys::{Key, KeyId, KeyRing};

    pub(super) fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    pub(super) fn entry(id: u32, secret: &str, created: u64, activates: u64) -> String {
        format!(
            r#"{{"id":{id},"secret":"{secret}","created_at":{created},"activates_at":{activates}}}"#
        )
    }

    pub(super) fn file(entries: &[String]) -> String {
        format!(r#"{{"version":1,"keys":[{}]}}"#, entries.join(","))
    }

    pub(super) fn one_key_ring(byte: u8) -> KeyRing {
        let mut ring = KeyRing::new();
        ring.insert(KeyId(1), Key::from_bytes([byte; 32]), t(10), t(10)).unwrap();
        ring
    }
}
