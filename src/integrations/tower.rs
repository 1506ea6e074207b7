//! The tower `Layer`/`Service` and the axum extractor (feature `axum`).
//!
//! Wrap the whole router in the layer: every request gets its session, whatever the route.
//!
//! ```no_run
//! use axum::{Router, ServiceExt, extract::Request, routing::get};
//! use sealed_session::integrations::tower::SessionLayer;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle, ValueError};
//! use tower::Layer as _;
//!
//! // `?` works on session operations: a failure answers an empty 500 and logs the reason.
//! async fn count(session: SessionHandle) -> Result<String, ValueError> {
//!     let n = session.get_or_default::<u64>("n")? + 1;
//!     session.insert("n", n)?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # async fn run() {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let app = SessionLayer::new(codec).layer(Router::new().route("/", get(count)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await.unwrap();
//! # }
//! ```
//!
//! `Router::new().route(..).layer(SessionLayer::new(codec))` works too, for the routes added
//! before it, but axum then wraps each route on its own and clones that wrapper for every
//! request: about 60 ns more per request than wrapping the router once (`BENCHMARKS.md`).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum_core::extract::FromRequestParts;
use axum_core::response::IntoResponse;
use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Shared;
use crate::clock::Clock;
use crate::codec::SessionCodec;
use crate::error::{SealError, ValueError};
use crate::handle::{Context as HandleContext, SessionHandle};
use crate::revocation::Revocation;

/// Adds a session to every request. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SessionLayer {
    shared: Shared,
    /// A [`SaveErrorPage`] for some response body type, set by
    /// [`on_save_error`](SessionLayer::on_save_error).
    on_save_error: Option<Arc<dyn Any + Send + Sync>>,
}

/// What [`SessionLayer::on_save_error`] keeps: a page for responses with bodies of type `B`.
type SaveErrorPage<B> = Box<dyn Fn(&SealError) -> Response<B> + Send + Sync>;

impl SessionLayer {
    /// A layer sealing and opening sessions with `codec`, reading the system clock.
    pub fn new(codec: SessionCodec) -> SessionLayer {
        SessionLayer { shared: Shared::new(codec), on_save_error: None }
    }

    /// Answers `page(&error)` instead of an empty 500 when a response's session cannot be
    /// saved (most often: it grew past the Cookie header budget, [`SealError::TooLarge`]).
    /// None of the session's cookies are written, so the browser keeps the session it had
    /// before this request; the handler's response, computed for a state that was not kept, is
    /// dropped. The error is logged with `tracing` either way.
    ///
    /// `B` must be the body type of the service's responses (`axum::body::Body` under axum,
    /// which `axum::response::Response` has); with another, the layer logs an error and
    /// answers the empty 500.
    ///
    /// To handle it in the handler instead, check
    /// [`SessionHandle::size`](crate::SessionHandle::size) before returning.
    ///
    /// ```no_run
    /// use axum::http::StatusCode;
    /// use axum::response::{Html, IntoResponse};
    /// use sealed_session::integrations::tower::SessionLayer;
    /// use sealed_session::{Key, KeyRing, SealError, SessionCodec, SessionConfig};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let layer = SessionLayer::new(codec).on_save_error(|error: &SealError| {
    ///     let page = "<h1>Your session is full</h1><p>That change was not saved.</p>";
    ///     (StatusCode::INSUFFICIENT_STORAGE, Html(page)).into_response()
    /// });
    /// ```
    pub fn on_save_error<B: 'static>(
        mut self,
        page: impl Fn(&SealError) -> Response<B> + Send + Sync + 'static,
    ) -> SessionLayer {
        let page: SaveErrorPage<B> = Box::new(page);
        self.on_save_error = Some(Arc::new(page));
        self
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Clock) -> SessionLayer {
        self.shared.clock = Arc::new(clock);
        self
    }

    /// Checks every authenticated session against `revocation`, and revokes purged sessions
    /// (logout) in it. See [`crate::revocation`].
    pub fn with_revocation(mut self, revocation: Revocation) -> SessionLayer {
        self.shared.revocation = Some(revocation);
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        let token_header = self.shared.codec.config().token_header();
        let state = State {
            shared: self.shared.clone(),
            context: self.shared.context(),
            token_header: token_header.parse().ok(),
            on_save_error: self.on_save_error.clone(),
        };
        SessionService { inner, state: Arc::new(state) }
    }
}

/// The service [`SessionLayer`] wraps around an application.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    /// One `Arc`: routers clone the service for every request.
    state: Arc<State>,
}

/// What a [`SessionService`] needs besides the service it wraps.
#[derive(Debug)]
struct State {
    shared: Shared,
    /// What each request's handle measures its session with.
    context: Arc<HandleContext>,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
    on_save_error: Option<Arc<dyn Any + Send + Sync>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let handle = Shared::handle_for(&state.context);
        let mut session = handle.lock();
        let headers = request.headers();
        // As bytes: a byte outside visible ASCII in another cookie must not drop the header.
        let cookies = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let token = token.map(HeaderValue::as_bytes);
        state.shared.load_into(cookies, token, &mut session);
        let verdict = state.shared.try_check(&session);
        if let Some(verdict) = verdict {
            state.shared.apply(&mut session, verdict);
        }
        drop(session);

        let kind = match verdict {
            // The usual case: no revocation check, or one answered from memory. The service
            // polled ready is called right away.
            Some(_) => {
                request.extensions_mut().insert(handle.clone());
                Kind::Direct { inner: self.inner.call(request), handle, state }
            }
            // A check that has to wait (a store across the network): the future calls the
            // service polled ready, leaving a fresh clone behind.
            None => Kind::Boxed {
                future: Box::pin({
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    async move {
                        let shared = &state.shared;
                        let admitted = shared.admit(handle.take()).await;
                        *handle.lock() = admitted;
                        request.extensions_mut().insert(handle.clone());
                        let response = inner.call(request).await?;
                        Ok(respond(response, shared.finish(handle.take()).await, &state))
                    }
                }),
            },
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// The future a [`SessionService`] returns: the application's response with the session's
    /// headers appended. It allocates nothing of its own unless a revocation store has to be
    /// waited for.
    pub struct ResponseFuture<F, T> {
        #[pin]
        kind: Kind<F, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T> {
        // The session was admitted without waiting: the application's future, then the headers.
        Direct {
            #[pin]
            inner: F,
            handle: SessionHandle,
            state: Arc<State>,
        },
        // A revocation check or record that has to wait.
        Boxed {
            future: Pin<Box<dyn Future<Output = T> + Send>>,
        },
    }
}

impl<F, T> std::fmt::Debug for ResponseFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, Result<Response<ResBody>, E>>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default + Send + 'static,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let (response, handle, state) = match kind.as_mut().project() {
            KindProj::Boxed { future } => return future.as_mut().poll(cx),
            KindProj::Direct { inner, handle, state } => match ready!(inner.poll(cx)) {
                Ok(response) => (response, handle, state),
                Err(error) => return Poll::Ready(Err(error)),
            },
        };
        let session = {
            let mut session = handle.lock();
            if !state.shared.finish_waits(&session) {
                let headers = state.shared.finish_now(&mut session);
                return Poll::Ready(Ok(respond(response, headers, state)));
            }
            std::mem::take(&mut *session)
        };
        // A logout to record in a revocation store.
        let state = Arc::clone(state);
        let mut future: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let headers = state.shared.finish(session).await;
            Ok(respond(response, headers, &state))
        });
        let poll = future.as_mut().poll(cx);
        kind.set(Kind::Boxed { future });
        poll
    }
}

/// The response with the session's headers appended; if they could not be made, the
/// configured save-error page, or a bare 500.
fn respond<B: Default + 'static>(
    mut response: Response<B>,
    headers: Result<Vec<(String, String)>, SealError>,
    state: &State,
) -> Response<B> {
    let error = match headers {
        Ok(headers) => match append(headers, response.headers_mut()) {
            Ok(()) => return response,
            // A header the codec made that `http` refuses: not a client's doing.
            Err(()) => None,
        },
        // Logged by the codec.
        Err(error) => Some(error),
    };
    if let (Some(error), Some(page)) = (&error, &state.on_save_error) {
        match page.downcast_ref::<SaveErrorPage<B>>() {
            Some(page) => return page(error),
            None => tracing::error!(
                "SessionLayer::on_save_error's page has another body type than the service's \
                 responses; answering an empty 500"
            ),
        }
    }
    // The handler's body might reveal state that was not kept, so drop it.
    response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// The response with the session's headers appended, or a bare 500 if they could not be made
/// (the bridges, which have no save-error page).
#[cfg(feature = "tower-sessions")]
pub(super) fn respond_plain<B: Default>(
    mut response: Response<B>,
    headers: Result<Vec<(String, String)>, ()>,
) -> Response<B> {
    if headers.and_then(|headers| append(headers, response.headers_mut())).is_err() {
        // Logged by the codec; the body might reveal half-written state, so drop it.
        response = Response::new(B::default());
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    response
}

/// Appends the session's headers; the application's own Set-Cookie headers are kept.
fn append(pairs: Vec<(String, String)>, headers: &mut http::HeaderMap) -> Result<(), ()> {
    for (name, value) in pairs {
        let name = HeaderName::try_from(name).map_err(drop)?;
        headers.append(name, HeaderValue::try_from(value).map_err(drop)?);
    }
    Ok(())
}

/// Extracts the request's session in an axum handler. Fails with a 500 when no
/// [`SessionLayer`] is installed.
impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<SessionHandle>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "no session: is sealed_session's SessionLayer installed?",
        ))
    }
}

impl SessionHandle {
    /// Whether the request carries the session's CSRF token: in the
    /// [`CSRF_HEADER`](crate::CSRF_HEADER) header (`x-csrf-token`) when it has one, otherwise
    /// in `form_field` (the form's [`CSRF_FIELD`](crate::CSRF_FIELD)). Compared in constant
    /// time; see [`Session::csrf_token`](crate::Session::csrf_token).
    ///
    /// ```
    /// use http::HeaderMap;
    /// use sealed_session::{Session, SessionHandle};
    ///
    /// let session = SessionHandle::new(Session::new());
    /// let token = session.csrf_token()?;
    /// let mut headers = HeaderMap::new();
    /// assert!(session.verify_csrf_headers(&headers, Some(&token)), "the form field");
    /// assert!(!session.verify_csrf_headers(&headers, None));
    /// headers.insert("x-csrf-token", token.parse().unwrap());
    /// assert!(session.verify_csrf_headers(&headers, None), "the header");
    /// # Ok::<(), sealed_session::SealError>(())
    /// ```
    pub fn verify_csrf_headers(&self, headers: &http::HeaderMap, form_field: Option<&str>) -> bool {
        let header = headers.get(crate::CSRF_HEADER).and_then(|value| value.to_str().ok());
        self.verify_csrf(header.or(form_field))
    }
}

/// A session value a handler could not read or write answers an empty 500, so handlers can use
/// `?` on session operations. The reason goes to `tracing` at error level; the client learns
/// nothing (no key, no value, no reason).
impl IntoResponse for ValueError {
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!(error = %self, "session value error; answering 500");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

/// A session that cannot be sealed (too large for its budget, no active key) answers an empty
/// 500, the reason logged with `tracing`; for a page of your own at save time, see
/// [`SessionLayer::on_save_error`].
impl IntoResponse for SealError {
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!(error = %self, "session could not be sealed; answering 500");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}
