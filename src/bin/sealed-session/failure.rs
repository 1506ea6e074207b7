//! Why a command failed, and the exit code that tells a script.
//!
//! A message is for the operator's terminal: it names files, ids and sizes, never a secret.

use std::fmt;
use std::path::Path;

use sealed_session::keys::file::KeyFileError;
use sealed_session::{ConfigError, SealError};

/// The class of a failure; its discriminant is the exit code (see `EXIT_CODES` in `main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `open`: the cookies were rejected.
    Rejected = 1,
    /// Bad arguments or bad input on stdin.
    Usage = 2,
    /// The key ring file is missing, unreadable, invalid, or readable by others.
    KeyRing = 3,
    /// The operation would leave the ring unusable or overwrite one.
    Refused = 4,
    /// Locking, writing or printing failed.
    Io = 5,
    /// `seal`: the session does not fit.
    TooLarge = 6,
}

/// A failed command: its class and a message for stderr.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into() }
    }

    /// An I/O error on `path`, saying what was being done.
    pub fn io(doing: &str, path: &Path, error: &std::io::Error) -> Failure {
        Failure::new(Kind::Io, format!("cannot {doing} {}: {error}", path.display()))
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.kind as u8
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<KeyFileError> for Failure {
    fn from(error: KeyFileError) -> Failure {
        // The library's messages name the file and the problem (with a chmod hint for modes)
        // and never a secret.
        Failure::new(Kind::KeyRing, error.to_string())
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Failure {
        Failure::new(Kind::Usage, format!("invalid session configuration: {error}"))
    }
}

impl From<SealError> for Failure {
    fn from(error: SealError) -> Failure {
        let kind = match error {
            SealError::TooLarge { .. }
            | SealError::TooManyCookies { .. }
            | SealError::StateTooLarge { .. } => Kind::TooLarge,
            SealError::NoActiveKey => Kind::KeyRing,
            _ => Kind::Io,
        };
        Failure::new(kind, format!("cannot seal the session: {error}"))
    }
}
