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
//! The handler also gets the [`SessionHandle`] of the same session (for
//! [`insert_sensitive`](crate::Session::insert_sensitive), or the flash-message store of the
//! `actix-web-flash-messages` feature); what it writes there survives unless the handler
//! changes the same key through `actix_session::Session` or purges the session. A value the
//! core API stored in a form JSON cannot hold is not shown to `actix_session::Session` and is
//! kept as it is.
//!
//! A session too large to seal answers an empty 500 and logs the sizes, as `SessionMiddleware`
//! does; `actix_session::Session` has no `save` to ask earlier, so a handler that may store a
//! lot checks it first with [`SessionCodec::seal`](crate::SessionCodec::seal) on a copy.

use std::collections::HashMap;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_session::{SessionExt as _, SessionStatus};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{COOKIE, HeaderName};
use actix_web::{HttpMessage as _, HttpResponse};
use serde_json::Value;

use super::Shared;
use super::actix::append;
use crate::clock::Clock;
use crate::codec::SessionCodec;
use crate::handle::SessionHandle;
use crate::revocation::Revocation;
use crate::session::Session;

/// Gives every request an `actix_session::Session` sealed by this library. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct ActixSessionMiddleware {
    shared: Shared,
}

impl ActixSessionMiddleware {
    /// A middleware sealing and opening sessions with `codec`, reading the system clock.
    pub fn new(codec: SessionCodec) -> ActixSessionMiddleware {
        ActixSessionMiddleware { shared: Shared::new(codec) }
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Clock) -> ActixSessionMiddleware {
        self.shared.clock = std::sync::Arc::new(clock);
        self
    }

    /// Checks every session against `revocation`, and revokes purged sessions (logout) in it.
    /// See [`crate::revocation`].
    pub fn with_revocation(mut self, revocation: Revocation) -> ActixSessionMiddleware {
        self.shared.revocation = Some(revocation);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for ActixSessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = ActixSessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let token_header = self.shared.codec.config().token_header();
        let state = State { shared: self.shared.clone(), token_header: token_header.parse().ok() };
        ready(Ok(ActixSessionService { service: Rc::new(service), state: Rc::new(state) }))
    }
}

/// The service [`ActixSessionMiddleware`] wraps around an application.
#[derive(Debug)]
pub struct ActixSessionService<S> {
    service: Rc<S>,
    state: Rc<State>,
}

/// What an [`ActixSessionService`] needs besides the service it wraps.
#[derive(Debug)]
struct State {
    shared: Shared,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
}

impl<S, B> Service<ServiceRequest> for ActixSessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let state = Rc::clone(&self.state);
        let handle = SessionHandle::default();
        let mut session = handle.lock();
        let headers = request.headers();
        let cookies = headers.get_all(COOKIE).map(actix_web::http::header::HeaderValue::as_bytes);
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let token = token.map(actix_web::http::header::HeaderValue::as_bytes);
        state.shared.load_into(cookies, token, &mut session);
        let verdict = state.shared.try_check(&session);
        let admitted = verdict.is_some();
        if let Some(verdict) = verdict {
            state.shared.apply(&mut session, verdict);
        }
        drop(session);

        let service = Rc::clone(&self.service);
        Box::pin(async move {
            let shared = &state.shared;
            if !admitted {
                let session = shared.admit(handle.take()).await;
                *handle.lock() = session;
            }
            let shown = show(&handle.lock(), &request);
            request.extensions_mut().insert(handle.clone());
            let mut response = service.call(request).await?;
            write_back(&mut handle.lock(), &response.request().get_session(), shown);

            let waits = shared.finish_waits(&handle.lock());
            let headers = if waits {
                shared.finish(handle.take()).await
            } else {
                shared.finish_now(&mut handle.lock())
            };
            let appended = match headers {
                Ok(headers) => append(headers, response.headers_mut()),
                // Already logged by the codec.
                Err(_) => Err(()),
            };
            if appended.is_err() {
                // Logged by the codec; the body might reveal half-written state, so drop it.
                let empty = HttpResponse::InternalServerError().finish();
                return Ok(response.into_response(empty).map_into_right_body());
            }
            Ok(response.map_into_left_body())
        })
    }
}

/// The values shown to the handler, as the JSON text `actix_session::Session` holds.
type Shown = HashMap<String, String>;

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
fn write_back(session: &mut Session, actix: &actix_session::Session, shown: Shown) {
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
