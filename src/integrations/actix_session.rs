//! A bridge to `actix-session` 0.11 (feature `actix-session`), so that `actix-identity` and
//! any handler written against `actix_session::Session` run on sealed cookies.
//!
//! `actix_session::SessionMiddleware` cannot host this library as a `SessionStore`: it keeps one
//! cookie of its own holding a session key, and hands the store only the state and a TTL. A
//! store behind it could seal the state, but only into that one cookie: no chunking (so no
//! state past one 4 KB cookie), no Cookie header budget, no key id in the cookie for staged
//! rotation, and its cookie would be signed or encrypted a second time by actix-session's own
//! key. So [`ActixSessionMiddleware`] takes its place: it opens the session as
//! [`SessionMiddleware`](super::actix::SessionMiddleware) does (same codec, key ring,
//! revocation), fills the request's `actix_session::Session` with its values as JSON, and after
//! the handler writes back what changed, then stores the sealed session with chunking and the
//! budget.
//! Handlers also get the [`SessionHandle`](crate::SessionHandle) of the same session, for what
//! `actix_session::Session` lacks: a CSRF token, `size()`, flash messages (see
//! [below](#what-the-bridge-lacks-and-where-to-find-it)).
//!
//! ```no_run
//! use actix_identity::{Identity, IdentityMiddleware};
//! use actix_web::{App, HttpMessage, HttpRequest, HttpServer, web};
//! use sealed_session::integrations::actix_session::ActixSessionMiddleware;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
//!
//! async fn login(request: HttpRequest) -> &'static str {
//!     Identity::login(&request.extensions(), "ada".into()).map(|_| "welcome").unwrap_or("no")
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let sessions = ActixSessionMiddleware::new(codec);
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(IdentityMiddleware::default())
//!         .wrap(sessions.clone()) // last: the outermost, around the identity middleware
//!         .route("/login", web::post().to(login))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! # How `actix_session::Session` maps onto the sealed session
//!
//! | actix-session | sealed session |
//! |---|---|
//! | a value (a JSON string) | the same value as MessagePack |
//! | `insert`, `remove`, `clear` | written back key by key, only the keys the handler changed |
//! | `renew` (actix-identity at login) | [`renew`](crate::Session::renew): a new id, the values kept |
//! | `purge` (actix-identity at logout) | [`purge`](crate::Session::purge): every cookie removed, the session revoked |
//! | `SessionMiddleware`'s TTL and cookie settings | [`SessionConfig`](crate::SessionConfig): idle and absolute timeouts, attributes |
//!
//! The handler also gets the [`SessionHandle`](crate::SessionHandle) of the same session (for
//! [`insert_sensitive`](crate::Session::insert_sensitive), or the flash-message store of the
//! `actix-web-flash-messages` feature); what it writes there survives unless the handler
//! changes the same key through `actix_session::Session` or purges the session. A value the
//! core API stored in a form JSON cannot hold is not shown to `actix_session::Session` and is
//! kept as it is.
//!
//! # Deliberate differences from `actix_session::SessionMiddleware`
//!
//! - **`status()` of a loaded session is `Changed`**, not `Unchanged`, until the handler
//!   renews or purges it. actix-session 0.11 loads state without touching the status only
//!   through `Session::set_session`, which is `pub(crate)`; its public API fills a session
//!   only with `insert`, which sets `Changed`, and has no way back to `Unchanged`. Do not
//!   branch on `status() == Changed` to learn whether the handler wrote something: `Renewed`
//!   and `Purged` are exact, and an empty (new) session starts `Unchanged` as upstream. The
//!   bridge itself compares the values before and after the handler, so an unchanged session
//!   writes no cookie.
//! - **Inserting the value a key already holds writes nothing**; upstream writes a new cookie
//!   with a fresh lifetime. The bridge cannot tell such an insert from no insert (the status
//!   is `Changed` either way, see above), and it needs none: every request, a read included,
//!   refreshes the idle window (at most once per `refresh_interval`), and no write short of
//!   `renew` (a new session) moves the absolute end. Skipping it saves resending every cookie
//!   of the session (up to the budget, several KB) on a request that changed nothing.
//! - **Max-Age counts down to the absolute end**: with `persistent` on (the default is a
//!   browser-session cookie, no `Max-Age`), every write sets `Max-Age` to the time left until
//!   the session's absolute end (a change 5 s later gets 55 of 60), where upstream writes its
//!   full TTL again. The idle timeout is enforced inside the sealed payload, not by `Max-Age`.
//!
//! Do not rely on: `status()` as a change signal, a re-insert refreshing the cookie, `Max-Age`
//! being the same on every write, or `SessionMiddleware`'s builder options (see the README's
//! table of every `Session` method and option).
//!
//! # What the bridge lacks, and where to find it
//!
//! `actix_session::Session` has no CSRF token, no `size()`, no flash messages and no
//! `on_save_error` page. The first three are on the [`SessionHandle`](crate::SessionHandle)
//! this middleware also puts in the request (extract it beside `Session`); a session too large
//! to seal always answers an empty 500 here (there is no `on_save_error` on this middleware).
//!
//! A session too large to seal answers an empty 500 and logs the sizes, as `SessionMiddleware`
//! does; `actix_session::Session` has no `save` to ask earlier, so a handler that may store a
//! lot checks it first with [`SessionCodec::seal`](crate::SessionCodec::seal) on a copy.

use actix_session::{SessionExt as _, SessionStatus};
use actix_web::HttpRequest;
use actix_web::dev::ServiceRequest;
use serde_json::Value;

use super::Shared;
use super::actix::{Bridge, SessionService, Shown, State};
use crate::session::Session;

/// Gives every request an `actix_session::Session` sealed by this library. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct ActixSessionMiddleware {
    shared: Shared,
}

super::settings!(
    ActixSessionMiddleware,
    "middleware" {  }
    /// Checks every session against `revocation`, and revokes purged sessions (logout) in it.
    /// See [`crate::revocation`].
);

super::actix::transform!(ActixSessionMiddleware, |middleware| {
    let bridge = Bridge { show, write_back };
    State::new(&middleware.shared, None, Some(bridge))
});

/// The service [`ActixSessionMiddleware`] wraps around an application: the one
/// [`SessionMiddleware`](super::actix::SessionMiddleware) uses, with the bridge.
pub type ActixSessionService<S> = SessionService<S>;

/// Fills the request's `actix_session::Session` with the sealed session's values, as JSON; a
/// value JSON cannot hold is left out. Returns what was shown, to find what the handler changed.
fn show(session: &Session, request: &ServiceRequest) -> Shown {
    if session.is_empty() {
        return Shown::new();
    }
    let actix = request.get_session();
    for (key, bytes, _) in session.values.iter() {
        if let Ok(value) = rmp_serde::from_slice::<Value>(bytes) {
            // Cannot fail: a `Value` always serializes to JSON.
            actix.insert(key, value).ok();
        }
    }
    actix.entries().clone()
}

/// Writes what the handler did to `actix` onto the sealed session: purge, renew, and the
/// values it changed or removed.
fn write_back(session: &mut Session, request: &HttpRequest, shown: Shown) {
    let actix = request.get_session();
    let status = actix.status();
    if status == SessionStatus::Purged {
        session.purge();
        return;
    }
    if status == SessionStatus::Renewed {
        session.renew();
    }
    // The bridge's own inserts left the status at `Changed`: compare instead.
    let entries = actix.entries();
    for (key, json) in entries.iter() {
        if shown.get(key) == Some(json) {
            continue;
        }
        let written = serde_json::from_str::<Value>(json).map_err(drop).and_then(|value| {
            let stored = if session.is_sensitive(key) {
                session.insert_sensitive(key.as_str(), &value)
            } else {
                session.insert(key.as_str(), &value)
            };
            stored.map_err(drop)
        });
        if written.is_err() {
            // `actix_session::Session::insert` only stores JSON it produced; a key too long is
            // the one way here.
            tracing::error!(key = %key, "actix-session value could not be stored in the session");
        }
    }
    for key in shown.keys().filter(|key| !entries.contains_key(*key)) {
        session.remove_raw(key);
    }
}
