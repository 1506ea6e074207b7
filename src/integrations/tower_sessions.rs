//! A bridge to `tower-sessions` 0.14 (feature `tower-sessions`), so that `axum-login`,
//! `axum-messages` and any handler written against `tower_sessions::Session` run on sealed
//! cookies.
//!
//! [`TowerSessionsLayer`] opens the session exactly as
//! [`SessionLayer`](super::tower::SessionLayer) does (same codec, key ring, revocation check)
//! and gives the request a `tower_sessions::Session` whose store is a record holder for this one
//! request. After the handler, the record is written back onto the sealed session, which is
//! stored as `SessionLayer` stores it: chunking, the Cookie header budget, staged rotation and
//! revocation all apply, and nothing is kept on the server.
//! Handlers get only the `tower_sessions::Session`: none of [`SessionHandle`]'s CSRF token,
//! `size()`, flash messages or `on_save_error` page (see [below](#what-the-bridge-lacks)).
//!
//! ```no_run
//! use axum::{Router, ServiceExt, extract::Request, routing::get};
//! use sealed_session::integrations::tower_sessions::TowerSessionsLayer;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
//! use tower::Layer as _;
//! use tower_sessions::Session;
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
//!     session.insert("n", n).await.ok();
//!     format!("visit {n}")
//! }
//!
//! # async fn run() {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let app = TowerSessionsLayer::new(codec).layer(Router::new().route("/", get(count)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await.unwrap();
//! # }
//! ```
//!
//! With `axum-login`, put `AuthManager` inside this layer (its own `AuthManagerLayer` insists on
//! a `SessionManagerLayer`): `tower::layer::layer_fn(|inner| AuthManager::new(inner,
//! backend.clone(), "axum-login.data"))`. The README's "Using axum-login" has a whole app.
//!
//! # How the record maps onto the sealed session
//!
//! | tower-sessions | sealed session |
//! |---|---|
//! | a value (`serde_json::Value`) | the same value as MessagePack, decoded when the record is first read |
//! | `Id` (`i128`) | the 16-byte session id, little-endian; `None` until the session is first sealed |
//! | `cycle_id` (axum-login at login) | the old session ends (revoked, with revocation on) and its values move to a new id |
//! | `flush`, `delete` (axum-login at logout) | [`purge`](crate::Session::purge): every cookie removed, the session revoked |
//! | `save` called by the handler | the record is written back and sealed on trial: `Err` names the sizes when it is past the budget |
//! | `set_expiry` | the session's [`Lifetime`](crate::Lifetime), sealed with it: `OnSessionEnd` is [`BrowserSession`](crate::Lifetime::BrowserSession), `OnInactivity(d)` [`Idle(d)`](crate::Lifetime::Idle), `AtDateTime(t)` [`Until(t)`](crate::Lifetime::Until), `None` [`Configured`](crate::Lifetime::Configured) (see [below](#lifetimes-set_expiry)) |
//!
//! The README's "Using axum-login" has a table of every `Session` method and
//! `SessionManagerLayer` option, and what each does here.
//!
//! A value the core API stored in a form JSON cannot hold (MessagePack binary, say) is left
//! out of the record and kept as it is. The `Id` of a session created or cycled during a request
//! is provisional: the session is sealed under a fresh random id, which the next request sees.
//!
//! # What the bridge lacks
//!
//! `tower_sessions::Session` is all a handler gets here: no CSRF token, no `size()`, no flash
//! messages (use `axum-messages`) and no `on_save_error` page (a session past the budget is
//! an `Err` from `save`, else an empty 500). The bridge does not also put a
//! [`SessionHandle`] in the request: the record and a handle would be
//! two writers of one session with no order between them. An app that needs those uses
//! [`SessionLayer`](super::tower::SessionLayer) instead.
//!
//! # Lifetimes: `set_expiry`
//!
//! Without an expiry, [`SessionConfig`](crate::SessionConfig) decides: its idle and absolute
//! timeouts, enforced inside the sealed payload, and `Max-Age` only with `persistent` on. An
//! expiry set with `set_expiry` is sealed with the session (so a client that edits `Max-Age`
//! or keeps the cookie longer gains nothing: past its bound the cookie opens as a fresh
//! session, logged as `idle_expired` or `absolute_expired`), and never reaches past the
//! configured absolute timeout from the session's issue, which key retirement counts on:
//!
//! | `Expiry` | sealed bound | `Max-Age` written |
//! |---|---|---|
//! | `None` | the configured idle and absolute timeouts | with `persistent`, the time left to the absolute end |
//! | `OnSessionEnd` | the configured idle and absolute timeouts | none (a browser-session cookie) |
//! | `OnInactivity(d)` | an idle timeout of `d` (longer or shorter than the configured one), the absolute end | `d`, or the time left to the absolute end if less |
//! | `AtDateTime(t)` | an end at `t`, brought forward to the absolute end if later; no idle timeout | the time left to that end |
//!
//! Setting an expiry writes the cookies, as tower-sessions does (a session left empty writes
//! nothing, as there). `expiry` reports what was set, or on later requests what the session
//! was sealed with (an `AtDateTime` past the absolute end then reports the end it was brought
//! forward to), and `expiry_date`/`expiry_age` are tower-sessions' own computation from it:
//! they describe the cookie, except for `None` and `OnSessionEnd` (two weeks, as upstream) and
//! in the request that sets an `AtDateTime` past the absolute end (the time set).
//!
//! Do not rely on upstream's `Max-Age` either: it counts down to the absolute end. With
//! `persistent` on, every write sets it to the time left until the session's absolute end (a
//! change 5 s later gets 55 of 60), where tower-sessions writes the full expiry again.
//!
//! # Errors and sizes
//!
//! A tampered, expired or revoked cookie becomes a fresh session and a `tracing` warning, as with
//! `SessionLayer`. A session past the budget cannot be sealed: call `session.save().await`
//! before answering to get that as an `Err` (`tower_sessions::session::Error::Store`, its text
//! naming the sizes, never a value) and answer as you choose; otherwise the layer answers an
//! empty 500 and logs the reason, as `SessionLayer` does.
//!
//! # Versions
//!
//! This bridge implements `tower-sessions-core` 0.14, the version `axum-login` 0.18 and
//! `axum-messages` 0.8 use. Cargo treats 0.15 as another crate: when those crates move to it,
//! their `Session` is a different type from the one this layer inserts, and their middleware
//! answers 500 ("session not found"). Stay on their 0.14 releases until this feature follows.

use std::sync::Arc;

use http::Extensions;
use tower_layer::Layer;
use tower_sessions_core::Session as TowerSession;

use super::Shared;
use super::lifecycle::{Carrier, Finished};
use super::tower::State;
use crate::handle::SessionHandle;

/// The record store behind one request's `tower_sessions::Session`.
mod store;

use store::RequestStore;

/// Gives every request a `tower_sessions::Session` sealed by this library. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct TowerSessionsLayer {
    shared: Shared,
}

super::settings!(
    TowerSessionsLayer,
    "layer" {  }
    /// Checks every session against `revocation`, and revokes the sessions `flush`, `delete`
    /// and `cycle_id` end. See [`crate::revocation`].
);

impl<S> Layer<S> for TowerSessionsLayer {
    type Service = TowerSessionsService<S>;

    fn layer(&self, inner: S) -> TowerSessionsService<S> {
        // No save-error page: the handler asks `save` for the error instead.
        let state = State::new(&self.shared, false, None);
        TowerSessionsService { inner, state: Arc::new(state) }
    }
}

/// The service [`TowerSessionsLayer`] wraps around an application.
#[derive(Debug, Clone)]
pub struct TowerSessionsService<S> {
    inner: S,
    state: Arc<State>,
}

super::tower::lifecycle_service!(
    TowerSessionsService,
    Bridge,
    |state: &Arc<State>, handle: SessionHandle, extensions: &mut Extensions| {
        let (tower, store) = RequestStore::bridge(Arc::clone(state), handle.take());
        extensions.insert(tower.clone());
        Bridge { tower, store }
    },
    /// The future a [`TowerSessionsService`] returns: the application's response with the
    /// session's headers appended. It boxes nothing when the handler left the session unchanged
    /// and no revocation store has to be waited for.
);

/// One request's bridged session: what the handler sees, and the store behind it.
#[derive(Clone)]
struct Bridge {
    tower: TowerSession,
    store: Arc<RequestStore>,
}

impl Carrier for Bridge {
    fn finish_now(&self, shared: &Shared) -> Option<Finished> {
        // The handler did not touch the record, and no logout waits to be recorded: store
        // the session (an idle refresh, say) without a future of our own.
        if self.tower.is_modified() {
            return None;
        }
        let mut bridged = self.store.lock();
        if shared.finish_waits(&bridged.session) {
            return None;
        }
        Some(shared.finish_now(&mut bridged.session).map_err(Some))
    }

    async fn finish(self, _: &Shared) -> Finished {
        self.store.finish(self.tower).await.map_err(|()| None)
    }

    fn server_error(&self) {
        self.store.lock().server_error = true;
    }
}
