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
//! # Example: axum (feature `axum`)
//!
//! ```no_run
//! use axum::{Router, ServiceExt, extract::Request, routing::get};
//! use sealed_session::integrations::tower::SessionLayer;
//! use sealed_session::{SessionCodec, SessionConfig, SessionHandle, ValueError, keys::file};
//! use tower::Layer as _;
//!
//! // `?` works on session operations: a failure answers an empty 500 and logs the reason.
//! async fn count(session: SessionHandle) -> Result<String, ValueError> {
//!     let n = session.update("visits", |n: &mut u64| {
//!         *n += 1;
//!         *n
//!     })?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // A key ring made once with `sealed-session keys init --file session-keys.json`.
//! let keys = file::load_file("session-keys.json")?;
//! let codec = SessionCodec::new(SessionConfig::default(), keys);
//! let app = SessionLayer::new(codec).layer(Router::new().route("/", get(count)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await?;
//! # Ok(()) }
//! ```
//!
//! In handlers, [`SessionHandle`] gives typed values (`get`, `get_or_default`, `insert`,
//! `update`, `remove`), the size check ([`SessionHandle::size`]), the rejection of the request's
//! cookies ([`SessionHandle::rejected`]), a CSRF token ([`SessionHandle::csrf_token`],
//! [`SessionHandle::verify_csrf`]) and flash messages ([`SessionHandle::flash`],
//! [`SessionHandle::take_flashes`]). actix-web works the same way
//! (`integrations::actix::SessionMiddleware`).
//!
//! # Example: the framework-free codec
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
//! The wire format is specified in `FORMAT.md`, with test vectors in `test_vectors/v1.json` and
//! `test_vectors/v1-extra.json`.
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | (none)  | the core: codec, session, key ring |
//! | `axum`  | `integrations::tower`: a tower `SessionLayer` and an axum extractor for [`SessionHandle`] |
//! | `actix-web` | `integrations::actix`: an actix-web `SessionMiddleware` and extractor for [`SessionHandle`] |
//! | `cli`   | the `sealed-session` binary: key ring management, `seal` and `open` for debugging |
//! | `redis` | `revocation::ReplicatedRevocations` (answers from memory, follows a Redis Stream) and `revocation::RedisRevocations` (one round trip per check): revocation stores shared by a fleet (tokio) |
//! | `tower-sessions` | `integrations::tower_sessions`: a `tower_sessions::Session` (0.14) sealed by this library, for axum-login and axum-messages |
//! | `actix-session` | `integrations::actix_session`: an `actix_session::Session` (0.11) sealed by this library, for actix-identity |
//! | `actix-web-flash-messages` | `integrations::actix_flash`: a store for actix-web-flash-messages in the sealed session |
//! | `metrics` | counters, gauges and histograms through the `metrics` facade, named in [`metrics`] |
//! | `__testing` | **not part of the API, never enable it**: hidden entry points for this repository's fuzz package and test-vector generator (sealing with chosen entropy, decoding unauthenticated frames) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, clippy::unwrap_used)]

mod chunk;
mod clock;
mod codec;
mod config;
mod csrf;
mod error;
mod flash;
pub mod format;
mod handle;
pub mod integrations;
pub mod keys;
mod lifetime;
mod logouts;
pub mod metrics;
mod random;
pub mod revocation;
mod seal;
mod session;
mod size;
mod time;
mod values;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Outgoing, SessionCodec, SetCookies};
pub use config::{
    DEFAULT_COMPRESSION_THRESHOLD, DEFAULT_COOKIE_BUDGET, DEFAULT_MAX_COOKIE_HEADER,
    DEFAULT_MAX_STATE_SIZE, DEFAULT_SENSITIVE_KEYS, HOST_PREFIX, SameSite, SessionConfig,
    SessionConfigBuilder,
};
pub use csrf::{CSRF_FIELD, CSRF_HEADER, RequestOrigin};
pub use error::{
    ConfigError, CsrfError, RejectReason, Rejected, Rejection, SealError, SessionError, ValueError,
};
pub use flash::FLASH_KEY;
pub use format::Mode;
pub use handle::SessionHandle;
pub use keys::{
    FileWatcher, Key, KeyHealth, KeyId, KeyInfo, KeyLengthError, KeyRing, KeyRingError,
    KeyRingHealth, KeyState, ReplicaHealth, RotationPolicy, Schedule, ScheduleError, SharedKeyRing,
};
pub use lifetime::Lifetime;
pub use random::Randomness;
pub use session::{CSRF_KEY, MAX_KEY_LEN, Session, SessionId, SessionTimes};
pub use size::SessionSize;

/// The README's examples, compiled and run as doctests.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "actix-web",
    feature = "redis",
    feature = "tower-sessions",
    feature = "actix-session",
    feature = "actix-web-flash-messages",
    feature = "poem"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
