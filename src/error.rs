//! Errors.
//!
//! Two families, kept apart on purpose:
//!
//! * [`Rejection`]: what the client sent could not be used. It carries a [`RejectReason`] for your
//!   logs and nothing else: never key material, never plaintext, never the cookie value. The right
//!   response is a fresh session, not an error page.
//! * [`SealError`], [`ConfigError`], [`ValueError`]: faults on the server's side, detailed and
//!   actionable.

use std::fmt;

use crate::keys::KeyId;

/// Why a client's session cookies were not accepted.
///
/// The variants name the check that failed, which is all a log needs; the displayed text never
/// contains key material, plaintext or the cookie's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The cookies are not a token of this format: bad base64, a short or missing header, a
    /// missing chunk, a chunk count that does not match, or an invalid frame.
    Malformed(&'static str),
    /// The token was written by a format version this build does not read.
    UnsupportedVersion(u8),
    /// The token is of the other mode (signed where sealed is configured, or the reverse).
    WrongMode,
    /// No key with the token's key id is in the ring (retired, or never ours).
    UnknownKey(KeyId),
    /// Authentication failed: the token was changed, moved to another cookie name, mixed with
    /// chunks of another write, or was never sealed by us.
    Forged,
    /// The session's idle timeout has passed since its last refresh.
    IdleExpired,
    /// The session's absolute lifetime is over.
    AbsoluteExpired,
    /// The token claims to have been issued later than now, beyond the allowed clock skew.
    IssuedInFuture,
    /// Something is larger than anything we could have produced: the Cookie header, a chunk, the
    /// token, or the decompressed state.
    TooLarge(&'static str),
    /// The session was revoked (logged out, or "log out everywhere" for its subject).
    Revoked,
    /// The revocation store could not answer and the policy is to reject.
    RevocationUnavailable,
    /// Two different sessions under our cookie name both authenticated (path or domain
    /// variants): one was planted beside the user's (cookie tossing), and neither is trusted.
    Conflicting,
}

impl RejectReason {
    /// The reason's stable name, as `FORMAT.md` section 8 lists it and the test vectors and the
    /// CLI's `open --json` spell it: `malformed`, `unsupported_version`, `wrong_mode`,
    /// `unknown_key`, `forged`, `idle_expired`, `absolute_expired`, `issued_in_future`,
    /// `too_large`, `conflicting_sessions`, and for revocation `revoked` and
    /// `revocation_unavailable`. Unlike the
    /// [`Display`](fmt::Display) text, these names never change; match on them in scripts and
    /// other implementations.
    ///
    /// # Examples
    ///
    /// ```
    /// use sealed_session::RejectReason;
    ///
    /// assert_eq!(RejectReason::Forged.code(), "forged");
    /// assert_eq!(RejectReason::Malformed("invalid frame").code(), "malformed");
    /// ```
    pub const fn code(&self) -> &'static str {
        match self {
            RejectReason::Malformed(_) => "malformed",
            RejectReason::UnsupportedVersion(_) => "unsupported_version",
            RejectReason::WrongMode => "wrong_mode",
            RejectReason::UnknownKey(_) => "unknown_key",
            RejectReason::Forged => "forged",
            RejectReason::IdleExpired => "idle_expired",
            RejectReason::AbsoluteExpired => "absolute_expired",
            RejectReason::IssuedInFuture => "issued_in_future",
            RejectReason::TooLarge(_) => "too_large",
            RejectReason::Revoked => "revoked",
            RejectReason::RevocationUnavailable => "revocation_unavailable",
            RejectReason::Conflicting => "conflicting_sessions",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Malformed(what) => write!(f, "malformed: {what}"),
            RejectReason::UnsupportedVersion(version) => {
                write!(f, "unsupported format version {version}")
            }
            RejectReason::WrongMode => f.write_str("wrong mode (sealed vs signed)"),
            RejectReason::UnknownKey(id) => write!(f, "unknown key {id}"),
            RejectReason::Forged => f.write_str("authentication failed"),
            RejectReason::IdleExpired => f.write_str("expired: idle timeout"),
            RejectReason::AbsoluteExpired => f.write_str("expired: absolute timeout"),
            RejectReason::IssuedInFuture => f.write_str("issued in the future"),
            RejectReason::TooLarge(what) => write!(f, "too large: {what}"),
            RejectReason::Revoked => f.write_str("revoked"),
            RejectReason::RevocationUnavailable => f.write_str("revocation store unavailable"),
            RejectReason::Conflicting => f.write_str("two different sessions under one name"),
        }
    }
}

impl RejectReason {
    /// The reason in the coarse form a handler may show the user (see [`Rejected`]).
    ///
    /// ```
    /// use sealed_session::{RejectReason, Rejected};
    ///
    /// assert_eq!(RejectReason::IdleExpired.coarse(), Rejected::Expired);
    /// assert_eq!(RejectReason::Revoked.coarse(), Rejected::Revoked);
    /// assert_eq!(RejectReason::Forged.coarse(), Rejected::Invalid);
    /// ```
    pub fn coarse(self) -> Rejected {
        match self {
            RejectReason::IdleExpired | RejectReason::AbsoluteExpired => Rejected::Expired,
            RejectReason::Revoked => Rejected::Revoked,
            _ => Rejected::Invalid,
        }
    }
}

/// Why a request's session cookies were rejected, coarsely: what a handler may tell the user
/// ("your session expired, please sign in again") through
/// [`Session::rejected`](crate::Session::rejected). The exact [`RejectReason`] is for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// The session timed out: idle for too long, or past its absolute lifetime.
    Expired,
    /// The session was revoked: logged out elsewhere, or "log out everywhere".
    Revoked,
    /// Anything else: a changed or foreign cookie, a retired key, a token too large, a
    /// revocation store that could not answer.
    Invalid,
}

/// The client's session cookies were rejected.
///
/// Log [`reason`](Rejection::reason) and carry on with
/// [`into_fresh_session`](Rejection::into_fresh_session): the fresh session remembers which of
/// the client's cookies belong to this session name, so the next response removes them.
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::{Key, KeyRing, RejectReason, SessionCodec, SessionConfig};
///
/// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
/// let now = SystemTime::now();
/// let rejection = codec.open("__Host-session=%%%", now).unwrap_err();
/// assert!(matches!(rejection.reason(), RejectReason::Malformed(_)));
/// let session = rejection.into_fresh_session();
/// assert!(session.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Rejection {
    pub(crate) reason: RejectReason,
    pub(crate) seen_chunks: u64,
}

impl Rejection {
    /// Why the cookies were rejected.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// A new, empty session that removes the rejected cookies from the client when it is next
    /// sealed (or purged).
    pub fn into_fresh_session(self) -> crate::Session {
        crate::Session::fresh_replacing(self.seen_chunks, self.reason.coarse())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session cookie rejected: {}", self.reason)
    }
}

impl std::error::Error for Rejection {}

/// A session could not be sealed. These are server-side faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed session would exceed the configured Cookie header budget. Nothing was
    /// written; shrink the session or raise the budget ([`SessionConfigBuilder::cookie_budget`](crate::SessionConfigBuilder::cookie_budget)).
    #[error(
        "session too large: its cookies need {needed} bytes of the Cookie header in {chunks} \
         cookie(s), the budget is {budget} bytes"
    )]
    TooLarge {
        /// Bytes of the Cookie request header the session's cookies would take.
        needed: usize,
        /// The configured budget.
        budget: usize,
        /// How many cookies it would have taken.
        chunks: usize,
    },
    /// The sealed session would need more cookies than the format allows (each Set-Cookie line
    /// is limited by [`SessionConfigBuilder::max_cookie_line`](crate::SessionConfigBuilder::max_cookie_line)).
    /// Nothing was written; shrink the session or allow longer lines.
    #[error(
        "session too large: its cookies would take {needed} bytes of the Cookie header in \
         {chunks} cookies, more than the {max} cookies a session may span"
    )]
    TooManyCookies {
        /// Bytes of the Cookie request header the session's cookies would take.
        needed: usize,
        /// How many cookies it would take.
        chunks: usize,
        /// The most cookies a session may span ([`MAX_CHUNKS`](crate::format::MAX_CHUNKS)).
        max: usize,
    },
    /// The serialized state exceeds the configured maximum state size, so it could not be opened
    /// again.
    #[error("session state is {size} bytes of MessagePack, the maximum is {max}")]
    StateTooLarge {
        /// Size of the serialized state.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// No key in the ring is active at this time: every key is still pending.
    #[error("no active key in the key ring (every key is still pending activation)")]
    NoActiveKey,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
    /// Encryption failed (the frame exceeded the cipher's limits).
    #[error("encryption failed")]
    Encrypt,
}

/// A configuration value was not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty, too long, or contains characters not allowed in a cookie name.
    #[error("invalid cookie name {name:?}: {why}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The cookie's `Path` would be ignored by browsers or would inject attributes into the
    /// Set-Cookie header (a `;`, CR or LF, a space or non-ASCII byte, no leading `/`).
    #[error("invalid cookie path {path:?}: {why}")]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The cookie's `Domain` is not a host name (it could inject attributes, or would be
    /// ignored by browsers).
    #[error("invalid cookie domain {domain:?}: {why}")]
    InvalidDomain {
        /// The rejected domain.
        domain: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The cookie name carries a browser prefix (`__Host-`, `__Secure-`) whose requirements the
    /// other settings do not meet: browsers would drop every such cookie.
    #[error("cookie name {name:?} cannot be used with these settings: {why}")]
    Prefix {
        /// The name as given.
        name: String,
        /// Which requirement is not met.
        why: &'static str,
    },
    /// The token header's name is not a valid HTTP header name.
    #[error("invalid token header name {name:?}: {why}")]
    InvalidTokenHeader {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The budget is too small to hold even an empty session, or larger than the format allows.
    #[error("cookie budget {budget} is out of range {min}..={max}")]
    Budget {
        /// The rejected budget.
        budget: usize,
        /// The smallest budget accepted.
        min: usize,
        /// The largest budget accepted.
        max: usize,
    },
    /// The longest Set-Cookie line allowed
    /// ([`max_cookie_line`](crate::SessionConfigBuilder::max_cookie_line)) cannot hold the
    /// first cookie: its name and attributes (a long `Path` or `Domain`, and the longest
    /// `Max-Age` a seal may write) leave fewer than the 8 characters of a token's header for
    /// its value, and a session sealed under it could never be opened again.
    ///
    /// # Examples
    ///
    /// ```
    /// use sealed_session::{ConfigError, SessionConfig};
    ///
    /// let path = format!("/{}", "a".repeat(450));
    /// let error = SessionConfig::builder("s").cookie_path(path).max_cookie_line(512).build();
    /// assert!(matches!(error, Err(ConfigError::CookieLine { line: 512, .. })));
    /// ```
    #[error(
        "max_cookie_line {line} cannot hold the first cookie: its name and attributes leave \
         fewer than the 8 characters of a token's header; raise it to {min} or more, or \
         shorten the path or domain"
    )]
    CookieLine {
        /// The configured `max_cookie_line`.
        line: usize,
        /// The shortest line that holds the first cookie's name, attributes and header.
        min: usize,
    },
    /// A combination of settings browsers would refuse (for example `SameSite=None` without
    /// `Secure`), or a limit that makes no sense (zero timeouts).
    #[error("invalid configuration: {0}")]
    Invalid(&'static str),
}

/// A value could not be stored in or read from a session.
///
/// The message names the key and a category of failure, never the value: serde's own messages
/// quote what they refused (``unknown variant `<the value>` ``, ``invalid type: string
/// "<the value>"``), and a session may hold a CSRF or OAuth token, so they are classified and
/// dropped, not kept as a source. The key is shown: keys are the application's names for its
/// values, not data (never build a key from a secret).
///
/// # Examples
///
/// ```
/// use sealed_session::{Session, ValueError};
///
/// let mut session = Session::new();
/// session.insert_sensitive("csrf", &"k9Zq-secret-token")?;
/// let error = session.get::<char>("csrf").unwrap_err();
/// assert!(matches!(error, ValueError::Decode { .. }));
/// assert!(!error.to_string().contains("k9Zq"));
/// assert!(!format!("{error:?}").contains("k9Zq"));
/// # Ok::<(), ValueError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value could not be serialized to MessagePack.
    #[error("cannot serialize session value {key:?}: {why}")]
    Encode {
        /// The key being written.
        key: String,
        /// What failed, as a category (never the value).
        why: &'static str,
    },
    /// The stored value does not decode as the requested type.
    #[error("session value {key:?} does not decode as the requested type: {why}")]
    Decode {
        /// The key being read.
        key: String,
        /// What the stored value is, as a category (never the value).
        why: &'static str,
    },
    /// Keys are limited in length so a session's map stays cheap to index.
    #[error("session key is {len} bytes, the maximum is {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

/// The request did not carry the session's CSRF token (none submitted, or not this session's).
/// Answers `403 Forbidden` in axum and actix-web, so a handler checks with
/// `session.require_csrf(..)?`. The submitted text is not kept, so it can never be shown.
///
/// # Examples
///
/// ```
/// use sealed_session::{CsrfError, Session};
///
/// let mut session = Session::new();
/// let token = session.csrf_token()?;
/// assert!(session.require_csrf(Some(&token)).is_ok());
/// assert!(matches!(session.require_csrf(Some("forged")), Err(CsrfError)));
/// assert!(session.require_csrf(None).is_err());
/// # Ok::<(), sealed_session::SealError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request does not carry the session's CSRF token")]
pub struct CsrfError;

/// Any failure of a session operation in a handler: what [`ValueError`], [`SealError`] and
/// [`CsrfError`] (and, with a revocation store, `RevokeError`) convert into, so one handler can
/// use `?` on all of them. With feature `axum` it is an `IntoResponse`, with `actix-web` a
/// `ResponseError`: a failed CSRF check answers `403 Forbidden`, anything else (a server-side
/// fault) an empty `500` with the reason logged through `tracing`. The response never carries
/// the reason, a key or a value.
///
/// # Examples
///
/// ```
/// use sealed_session::{Session, SessionError};
///
/// fn handler(session: &mut Session, submitted: Option<&str>) -> Result<u32, SessionError> {
///     session.require_csrf(submitted)?; // CsrfError
///     let _token = session.csrf_token()?; // SealError
///     let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1; // ValueError
///     session.insert("visits", &visits)?;
///     Ok(visits)
/// }
///
/// let mut session = Session::new();
/// let token = session.csrf_token()?;
/// assert_eq!(handler(&mut session, Some(&token))?, 1);
/// assert!(matches!(handler(&mut session, None), Err(SessionError::Csrf(_))));
/// # Ok::<(), SessionError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A value could not be stored or read.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The session could not be sealed, or a token not made.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The request failed its CSRF check.
    #[error(transparent)]
    Csrf(#[from] CsrfError),
    /// A revocation ("log out", "log out everywhere") could not be recorded.
    #[error(transparent)]
    Revoke(#[from] crate::revocation::RevokeError),
}

impl SessionError {
    /// Whether the client is at fault: a failed CSRF check (403). Everything else is the
    /// server's fault and answers 500.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, SessionError::Csrf(_))
    }
}

impl ValueError {
    /// A decoding failure of the value under `key`, classified; rmp-serde's message (which may
    /// quote the value) is dropped here.
    pub(crate) fn decode(key: &str, error: &rmp_serde::decode::Error) -> ValueError {
        use rmp_serde::decode::Error as E;
        let why = match error {
            E::TypeMismatch(_) => "a value of another type",
            E::OutOfRange => "a number out of the requested type's range",
            E::LengthMismatch(_) => "a sequence of another length",
            E::Utf8Error(_) => "text that is not UTF-8",
            E::DepthLimitExceeded => "nested too deeply",
            E::InvalidMarkerRead(_) | E::InvalidDataRead(_) => "truncated MessagePack",
            // serde's own messages start with a fixed phrase; only that phrase is looked at.
            E::Syntax(message) | E::Uncategorized(message) => serde_category(message),
        };
        ValueError::Decode { key: key.to_owned(), why }
    }

    /// An encoding failure of the value under `key`, classified; a `Serialize` implementation's
    /// own message (which may quote the value) is dropped here.
    pub(crate) fn encode(key: String, error: &rmp_serde::encode::Error) -> ValueError {
        use rmp_serde::encode::Error as E;
        let why = match error {
            E::InvalidValueWrite(_) => "the MessagePack writer failed",
            E::UnknownLength => "a sequence or map of unknown length",
            E::InvalidDataModel(_) => "the type's Serialize implementation is inconsistent",
            E::DepthLimitExceeded => "nested deeper than the format reads",
            E::Syntax(_) => "the type's Serialize implementation failed",
        };
        ValueError::Encode { key, why }
    }
}

/// The category of one of serde's deserialization messages, from its fixed opening phrase
/// (see `serde::de::Error`'s provided methods); the rest, which quotes the input, is not kept.
fn serde_category(message: &str) -> &'static str {
    const PHRASES: [(&str, &str); 7] = [
        ("invalid type", "a value of another type"),
        ("invalid value", "a value the requested type does not accept"),
        ("invalid length", "a sequence of another length"),
        ("unknown variant", "an unknown enum variant"),
        ("unknown field", "a struct with an unknown field"),
        ("missing field", "a struct with a missing field"),
        ("duplicate field", "a struct with a duplicate field"),
    ];
    PHRASES
        .iter()
        .find(|(phrase, _)| message.starts_with(phrase))
        .map_or("a value the requested type's Deserialize refused", |&(_, why)| why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stable names are a contract (FORMAT.md section 8, the test vectors, `open --json`):
    /// renaming one breaks every script and other implementation that matches on it.
    #[test]
    fn reason_codes_are_the_documented_names() {
        let table = [
            (RejectReason::Malformed("x"), "malformed"),
            (RejectReason::UnsupportedVersion(2), "unsupported_version"),
            (RejectReason::WrongMode, "wrong_mode"),
            (RejectReason::UnknownKey(KeyId(7)), "unknown_key"),
            (RejectReason::Forged, "forged"),
            (RejectReason::IdleExpired, "idle_expired"),
            (RejectReason::AbsoluteExpired, "absolute_expired"),
            (RejectReason::IssuedInFuture, "issued_in_future"),
            (RejectReason::TooLarge("x"), "too_large"),
            (RejectReason::Revoked, "revoked"),
            (RejectReason::RevocationUnavailable, "revocation_unavailable"),
        ];
        for (reason, name) in table {
            assert_eq!(reason.code(), name, "{reason:?}");
        }
    }
}
