//! Stateless web sessions, sealed into size-limited cookies.
//!
//! `sealed-session` keeps a session's state entirely in the browser's cookies, so a fleet of
//! servers behind a load balancer needs no sticky sessions, no replication and no central
//! store. The state is serialized to MessagePack, compressed when that helps, sealed with
//! XAES-256-GCM under a ring of rotating keys, base64url-encoded and split across cookies
//! that each fit the 4 KB every browser stores. Expiry lives inside the sealed payload.
//! Everything a client sends is treated as hostile: bounded, authenticated before use, and
//! rejected with a reason for your logs, never a panic.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig};
//!
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let now = SystemTime::now();
//!
//! // A request without cookies opens a new, empty session.
//! let mut session = codec.open("", now)?;
//! session.insert("user", &"ada")?;
//!
//! // On the response, `save` returns the Set-Cookie headers to send (None if unchanged).
//! let set_cookies = codec.save(&mut session, now)?.expect("the session changed");
//! for value in set_cookies.header_values() {
//!     assert!(value.starts_with("__Host-session="));
//!     assert!(value.contains("HttpOnly") && value.contains("Secure"));
//! }
//!
//! // The browser sends them back; a changed byte, or an hour of idleness, is a rejection.
//! let header = set_cookies.request_header();
//! assert_eq!(codec.open(&header, now)?.get::<String>("user")?.as_deref(), Some("ada"));
//! let later = now + Duration::from_secs(3600);
//! let rejected = codec.open(&header, later).unwrap_err();
//! assert_eq!(rejected.reason(), RejectReason::IdleExpired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! * [`SessionCodec`]: the framework-free pipeline, Cookie header in and Set-Cookie headers out.
//! * [`Session`]: typed values, decoded only when read; sensitive values never compressed.
//! * [`KeyRing`]: keys with staged activation, so rotation never logs anyone out.
//! * [`SessionConfig`]: cookie attributes (secure by default), size budget, lifetimes.
//!
//! The wire format is specified in `FORMAT.md`, with test vectors in `test_vectors/v1.json`.
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | (none)  | the core: codec, session, key ring |
//! | `axum`  | `integrations::tower`: a tower `SessionLayer` and an axum extractor for [`SessionHandle`] |
//! | `actix-web` | `integrations::actix`: an actix-web `SessionMiddleware` and extractor for [`SessionHandle`] |
//! | `cli`   | the `sealed-session` binary: key ring management, `seal` and `open` for debugging |
//! | `redis` | `revocation::RedisRevocations`: a revocation store in Redis shared by a fleet (tokio) |
//! | `tower-sessions` | `integrations::tower_sessions`: a `tower_sessions::Session` (0.14) sealed by this library, for axum-login and axum-messages |
//! | `actix-session` | `integrations::actix_session`: an `actix_session::Session` (0.11) sealed by this library, for actix-identity |
//! | `actix-web-flash-messages` | `integrations::actix_flash`: a store for actix-web-flash-messages in the sealed session |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, clippy::unwrap_used)]

mod chunk;
mod clock;
mod codec;
mod config;
mod error;
pub mod format;
mod handle;
pub mod integrations;
pub mod keys;
pub mod revocation;
mod seal;
mod session;
mod time;
mod values;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Outgoing, SessionCodec, SetCookies};
pub use config::{
    DEFAULT_COOKIE_BUDGET, DEFAULT_MAX_COOKIE_HEADER, DEFAULT_MAX_STATE_SIZE, HOST_PREFIX,
    SameSite, SessionConfig, SessionConfigBuilder,
};
pub use error::{ConfigError, RejectReason, Rejection, SealError, ValueError};
pub use format::Mode;
pub use handle::SessionHandle;
pub use keys::{
    FileWatcher, Key, KeyId, KeyInfo, KeyLengthError, KeyRing, KeyRingError, SharedKeyRing,
};
pub use session::{MAX_KEY_LEN, Session, SessionId};

/// The README's examples, compiled and run as doctests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "actix-web",
    feature = "redis",
    feature = "tower-sessions",
    feature = "actix-session",
    feature = "actix-web-flash-messages"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
