//! The actix-web middleware and extractor (feature `actix-web`).
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use sealed_session::integrations::actix::SessionMiddleware;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle, ValueError};
//!
//! // `?` works on session operations: a failure answers an empty 500 and logs the reason.
//! async fn count(session: SessionHandle) -> Result<String, ValueError> {
//!     let n = session.get_or_default::<u64>("n")? + 1;
//!     session.insert("n", n)?;
//!     Ok(format!("visit {n}"))
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
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{COOKIE, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use super::Shared;
use crate::clock::Clock;
use crate::codec::SessionCodec;
use crate::error::{SealError, ValueError};
use crate::handle::{Context as HandleContext, SessionHandle};
use crate::revocation::Revocation;

/// Adds a session to every request. See the [module docs](self).
#[derive(Clone)]
pub struct SessionMiddleware {
    shared: Shared,
    on_save_error: Option<SaveErrorPage>,
}

/// What [`SessionMiddleware::on_save_error`] keeps.
type SaveErrorPage = Arc<dyn Fn(&SealError) -> HttpResponse + Send + Sync>;

impl std::fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("shared", &self.shared)
            .field("on_save_error", &self.on_save_error.is_some())
            .finish()
    }
}

impl SessionMiddleware {
    /// A middleware sealing and opening sessions with `codec`, reading the system clock.
    pub fn new(codec: SessionCodec) -> SessionMiddleware {
        SessionMiddleware { shared: Shared::new(codec), on_save_error: None }
    }

    /// Answers `page(&error)` instead of an empty 500 when a response's session cannot be
    /// saved (most often: it grew past the Cookie header budget, [`SealError::TooLarge`]).
    /// None of the session's cookies are written, so the browser keeps the session it had
    /// before this request; the handler's response, computed for a state that was not kept, is
    /// dropped. The error is logged with `tracing` either way.
    ///
    /// To handle it in the handler instead, check
    /// [`SessionHandle::size`](crate::SessionHandle::size) before returning.
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use sealed_session::integrations::actix::SessionMiddleware;
    /// use sealed_session::{Key, KeyRing, SealError, SessionCodec, SessionConfig};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let middleware = SessionMiddleware::new(codec).on_save_error(|_: &SealError| {
    ///     HttpResponse::InsufficientStorage()
    ///         .content_type("text/html")
    ///         .body("<h1>Your session is full</h1><p>That change was not saved.</p>")
    /// });
    /// ```
    pub fn on_save_error(
        mut self,
        page: impl Fn(&SealError) -> HttpResponse + Send + Sync + 'static,
    ) -> SessionMiddleware {
        self.on_save_error = Some(Arc::new(page));
        self
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Clock) -> SessionMiddleware {
        self.shared.clock = Arc::new(clock);
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
        let state = State {
            shared: self.shared.clone(),
            context: self.shared.context(),
            token_header: token_header.parse().ok(),
            on_save_error: self.on_save_error.clone(),
        };
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
struct State {
    shared: Shared,
    /// What each request's handle measures its session with.
    context: Arc<HandleContext>,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
    on_save_error: Option<SaveErrorPage>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("shared", &self.shared).finish_non_exhaustive()
    }
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
        let handle = Shared::handle_for(&state.context);
        let mut session = handle.lock();
        let headers = request.headers();
        // As bytes: a byte outside visible ASCII in another cookie must not drop the header.
        let cookies = headers.get_all(COOKIE).map(HeaderValue::as_bytes);
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let token = token.map(HeaderValue::as_bytes);
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
            let error = match headers {
                Ok(headers) => match append(headers, response.headers_mut()) {
                    Ok(()) => return Ok(response.map_into_left_body()),
                    // A header the codec made that actix refuses: not a client's doing.
                    Err(()) => None,
                },
                // Logged by the codec.
                Err(error) => Some(error),
            };
            // The handler's body might reveal state that was not kept, so drop it.
            let page = match (error, &state.on_save_error) {
                (Some(error), Some(page)) => page(&error),
                _ => HttpResponse::InternalServerError().finish(),
            };
            Ok(response.into_response(page).map_into_right_body())
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

impl SessionHandle {
    /// Whether the request carries the session's CSRF token: in the
    /// [`CSRF_HEADER`](crate::CSRF_HEADER) header (`x-csrf-token`) when it has one, otherwise
    /// in `form_field` (the form's [`CSRF_FIELD`](crate::CSRF_FIELD)). Compared in constant
    /// time; see [`Session::csrf_token`](crate::Session::csrf_token).
    ///
    /// ```
    /// use actix_web::test::TestRequest;
    /// use sealed_session::{Session, SessionHandle};
    ///
    /// let session = SessionHandle::new(Session::new());
    /// let token = session.csrf_token()?;
    /// let bare = TestRequest::default().to_http_request();
    /// assert!(session.verify_csrf_request(&bare, Some(&token)), "the form field");
    /// assert!(!session.verify_csrf_request(&bare, None));
    /// let with_header =
    ///     TestRequest::default().insert_header(("x-csrf-token", token.as_str())).to_http_request();
    /// assert!(session.verify_csrf_request(&with_header, None), "the header");
    /// assert!(session.verify_csrf_request(&with_header, Some("another")), "the header wins");
    /// # Ok::<(), sealed_session::SealError>(())
    /// ```
    pub fn verify_csrf_request(&self, request: &HttpRequest, form_field: Option<&str>) -> bool {
        let header = request.headers().get(crate::CSRF_HEADER);
        self.verify_csrf(header.and_then(|value| value.to_str().ok()).or(form_field))
    }
}

/// A session value a handler could not read or write answers an empty 500, so handlers can use
/// `?` on session operations. The reason goes to `tracing` at error level; the client learns
/// nothing (no key, no value, no reason).
impl ResponseError for ValueError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self, "session value error; answering 500");
        HttpResponse::InternalServerError().finish()
    }
}

/// A session that cannot be sealed (too large for its budget, no active key) answers an empty
/// 500, the reason logged with `tracing`; for a page of your own at save time, see
/// [`SessionMiddleware::on_save_error`].
impl ResponseError for SealError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self, "session could not be sealed; answering 500");
        HttpResponse::InternalServerError().finish()
    }
}
