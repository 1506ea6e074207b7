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

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CACHE_CONTROL, COOKIE, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::Shared;
use super::lifecycle::Answer;
use crate::error::SealError;
use crate::handle::{Context as HandleContext, SessionHandle};
use crate::session::Session;

/// Adds a session to every request. See the [module docs](self).
#[derive(Clone)]
pub struct SessionMiddleware {
    shared: Shared,
    on_save_error: Option<SaveErrorPage>,
}

/// What [`SessionMiddleware::on_save_error`] keeps.
pub(super) type SaveErrorPage = Arc<dyn Fn(&SealError) -> HttpResponse + Send + Sync>;

impl std::fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("shared", &self.shared)
            .field("on_save_error", &self.on_save_error.is_some())
            .finish()
    }
}

super::settings!(
    SessionMiddleware,
    "middleware" { on_save_error: None }
    /// Checks every authenticated session against `revocation`, and revokes purged sessions
    /// (logout) in it. See [`crate::revocation`].
    ;
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
    on_save_error -> HttpResponse
);

/// The service and the `Transform` that builds it, shared with the actix-session bridge.
mod service;

pub use service::SessionService;
pub(super) use service::transform;

transform!(SessionMiddleware, |middleware| State::new(
    &middleware.shared,
    middleware.on_save_error.clone(),
    None
));

/// What an actix-web service of this crate needs besides the service it wraps (the bridge to
/// actix-session uses it too).
pub(super) struct State {
    shared: Shared,
    /// The session API bridged onto the handle, if any (the actix-session bridge).
    bridge: Option<Bridge>,
    /// What each request's handle measures its session with (`None`: unbound handles).
    context: Option<Arc<HandleContext>>,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
    on_save_error: Option<SaveErrorPage>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("shared", &self.shared).finish_non_exhaustive()
    }
}

/// A session API bridged onto the request's handle: shown the session's values before the
/// handler, what the handler changed through it written back after.
#[derive(Clone, Copy)]
pub(super) struct Bridge {
    pub(super) show: fn(&Session, &ServiceRequest) -> Shown,
    pub(super) write_back: fn(&mut Session, &HttpRequest, Shown),
}

/// The values a [`Bridge`] showed the handler, as JSON text by key: compared after the handler
/// to find what it changed.
pub(super) type Shown = HashMap<String, String>;

impl State {
    /// A bridge has no save-error page (the bridged API has no way to ask for the error). Its
    /// handles are bound all the same: actix-session's `Session` has no size, so a handler
    /// measures through the handle, and the configured CSRF origin check needs the config.
    pub(super) fn new(
        shared: &Shared,
        on_save_error: Option<SaveErrorPage>,
        bridge: Option<Bridge>,
    ) -> State {
        let token_header = shared.codec.config().token_header().parse().ok();
        let context = Some(shared.context());
        State { shared: shared.clone(), bridge, context, token_header, on_save_error }
    }

    /// Opens the request's session into a new handle: `true` when it is admitted already, a
    /// store across the network being waited for in the lifecycle otherwise.
    pub(super) fn open(&self, request: &ServiceRequest) -> (SessionHandle, bool) {
        let handle = Shared::handle_for(self.context.as_ref());
        let headers = request.headers();
        // As bytes: a byte outside visible ASCII in another cookie must not drop the header.
        let cookies = headers.get_all(COOKIE).map(HeaderValue::as_bytes);
        let token = self.token_header.as_ref().and_then(|name| headers.get(name));
        let admitted = self.shared.open(&handle, cookies, token.map(HeaderValue::as_bytes));
        (handle, admitted)
    }
}

impl<B: MessageBody + 'static> Answer<ServiceResponse<B>> for State {
    type Output = ServiceResponse<EitherBody<B>>;

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn append(response: &mut ServiceResponse<B>, name: String, value: String) -> Result<(), ()> {
        let name = HeaderName::try_from(name).map_err(drop)?;
        response.headers_mut().append(name, HeaderValue::try_from(value).map_err(drop)?);
        Ok(())
    }

    fn cache_control(response: &ServiceResponse<B>) -> impl Iterator<Item = &[u8]> {
        response.headers().get_all(CACHE_CONTROL).map(HeaderValue::as_bytes)
    }

    fn set_cache_control(response: &mut ServiceResponse<B>, value: &'static str) {
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(value));
    }

    /// The configured save-error page for a seal error, or a bare 500.
    fn answer(
        &self,
        response: ServiceResponse<B>,
        saved: Result<(), Option<SealError>>,
    ) -> ServiceResponse<EitherBody<B>> {
        let error = match saved {
            Ok(()) => return response.map_into_left_body(),
            Err(error) => error,
        };
        let page = match (error, &self.on_save_error) {
            (Some(error), Some(page)) => page(&error),
            _ => HttpResponse::InternalServerError().finish(),
        };
        response.into_response(page).map_into_right_body()
    }
}
