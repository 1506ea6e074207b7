//! The actix-web middleware and extractor (feature `actix-web`).
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use sealed_session::integrations::actix::SessionMiddleware;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle};
//!
//! async fn count(session: SessionHandle) -> String {
//!     let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
//!     session.insert("n", &n).ok();
//!     format!("visit {n}")
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let middleware = SessionMiddleware::new(codec);
//! HttpServer::new(move || {
//!     App::new().wrap(middleware.clone()).route("/", web::get().to(count))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{COOKIE, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};

use super::Shared;
use crate::clock::Clock;
use crate::codec::SessionCodec;
use crate::handle::SessionHandle;
use crate::revocation::Revocation;

/// Adds a session to every request. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SessionMiddleware {
    shared: Shared,
}

impl SessionMiddleware {
    /// A middleware sealing and opening sessions with `codec`, reading the system clock.
    pub fn new(codec: SessionCodec) -> SessionMiddleware {
        SessionMiddleware { shared: Shared::new(codec) }
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Clock) -> SessionMiddleware {
        self.shared.clock = std::sync::Arc::new(clock);
        self
    }

    /// Checks every authenticated session against `revocation`, and revokes purged sessions
    /// (logout) in it. See [`crate::revocation`].
    pub fn with_revocation(mut self, revocation: Revocation) -> SessionMiddleware {
        self.shared.revocation = Some(revocation);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let token_header = self.shared.codec.config().token_header();
        let state = State { shared: self.shared.clone(), token_header: token_header.parse().ok() };
        ready(Ok(SessionService { service: Rc::new(service), state: Rc::new(state) }))
    }
}

/// The service [`SessionMiddleware`] wraps around an application.
#[derive(Debug)]
pub struct SessionService<S> {
    service: Rc<S>,
    state: Rc<State>,
}

/// What a [`SessionService`] needs besides the service it wraps.
#[derive(Debug)]
struct State {
    shared: Shared,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
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
        // The session is opened straight into the handle the handler gets.
        let handle = SessionHandle::default();
        let mut session = handle.lock();
        let headers = request.headers();
        let cookies = headers.get_all(COOKIE).filter_map(|value| value.to_str().ok());
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let token = token.and_then(|value| value.to_str().ok());
        state.shared.load_into(cookies, token, &mut session);
        // No revocation check, or one answered from memory, is done here; a store across the
        // network is waited for in the future.
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
            request.extensions_mut().insert(handle.clone());
            let mut response = service.call(request).await?;
            let waits = shared.finish_waits(&handle.lock());
            let headers = if waits {
                shared.finish(handle.take()).await
            } else {
                shared.finish_now(&mut handle.lock())
            };
            let appended = match headers {
                Ok(headers) => append(headers, response.headers_mut()),
                Err(()) => Err(()),
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

/// Appends the session's headers; the application's own Set-Cookie headers are kept.
pub(super) fn append(
    pairs: Vec<(String, String)>,
    headers: &mut actix_web::http::header::HeaderMap,
) -> Result<(), ()> {
    for (name, value) in pairs {
        let name = HeaderName::try_from(name).map_err(drop)?;
        headers.append(name, HeaderValue::try_from(value).map_err(drop)?);
    }
    Ok(())
}

/// Extracts the request's session in an actix-web handler. Fails with a 500 when no
/// [`SessionMiddleware`] is installed.
impl FromRequest for SessionHandle {
    type Error = actix_web::Error;
    type Future = Ready<Result<SessionHandle, actix_web::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(request.extensions().get::<SessionHandle>().cloned().ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "no session: is sealed_session's SessionMiddleware installed?",
            )
        }))
    }
}
