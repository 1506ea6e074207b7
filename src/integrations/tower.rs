//! The tower `Layer`/`Service` and the axum extractor (feature `axum`).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sealed_session::integrations::tower::SessionLayer;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle};
//!
//! async fn count(session: SessionHandle) -> String {
//!     let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
//!     session.insert("n", &n).ok();
//!     format!("visit {n}")
//! }
//!
//! # async fn run() {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let app: Router = Router::new().route("/", get(count)).layer(SessionLayer::new(codec));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
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
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let headers = request.headers();
        let cookies = headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok());
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let session = state.shared.load(cookies, token.and_then(|value| value.to_str().ok()));

        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let shared = &state.shared;
            let handle = SessionHandle::new(shared.admit(session).await);
            request.extensions_mut().insert(handle.clone());
            let mut response = inner.call(request).await?;
            let appended = match shared.finish(handle.take()).await {
                Ok(headers) => append(headers, response.headers_mut()),
                Err(()) => Err(()),
            };
            if appended.is_err() {
                // Logged by the codec; the body might reveal half-written state, so drop it.
                response = Response::new(ResBody::default());
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            Ok(response)
        })
    }
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
