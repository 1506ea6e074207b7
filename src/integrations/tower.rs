//! The tower `Layer`/`Service` and the axum extractor (feature `axum`).
//!
//! Wrap the whole router in the layer: every request gets its session, whatever the route.
//!
//! ```no_run
//! use axum::{Router, ServiceExt, extract::Request, routing::get};
//! use sealed_session::integrations::tower::SessionLayer;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle};
//! use tower::Layer as _;
//!
//! async fn count(session: SessionHandle) -> String {
//!     let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
//!     session.insert("n", &n).ok();
//!     format!("visit {n}")
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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum_core::extract::FromRequestParts;
use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Shared;
use crate::clock::Clock;
use crate::codec::SessionCodec;
use crate::handle::SessionHandle;
use crate::revocation::Revocation;

/// Adds a session to every request. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SessionLayer {
    shared: Shared,
}

impl SessionLayer {
    /// A layer sealing and opening sessions with `codec`, reading the system clock.
    pub fn new(codec: SessionCodec) -> SessionLayer {
        SessionLayer { shared: Shared::new(codec) }
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
        let state = State { shared: self.shared.clone(), token_header: token_header.parse().ok() };
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
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
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
        let handle = SessionHandle::default();
        let mut session = handle.lock();
        let headers = request.headers();
        let cookies = headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok());
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let token = token.and_then(|value| value.to_str().ok());
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
                        Ok(respond(response, shared.finish(handle.take()).await))
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
                return Poll::Ready(Ok(respond(response, headers)));
            }
            std::mem::take(&mut *session)
        };
        // A logout to record in a revocation store.
        let state = Arc::clone(state);
        let mut future: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { Ok(respond(response, state.shared.finish(session).await)) });
        let poll = future.as_mut().poll(cx);
        kind.set(Kind::Boxed { future });
        poll
    }
}

/// The response with the session's headers appended, or a bare 500 if they could not be made.
pub(super) fn respond<B: Default>(
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
