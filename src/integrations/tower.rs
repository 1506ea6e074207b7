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
use std::sync::Arc;

use http::header::CACHE_CONTROL;
use http::{Extensions, HeaderName, HeaderValue, Response, StatusCode};
use tower_layer::Layer;

use super::Shared;
use super::lifecycle::Answer;
use crate::error::SealError;
use crate::handle::{Context as HandleContext, SessionHandle};

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

super::settings!(
    SessionLayer,
    "layer" { on_save_error: None }
    /// Checks every authenticated session against `revocation`, and revokes purged sessions
    /// (logout) in it. See [`crate::revocation`].
);

impl SessionLayer {
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
}

/// The service and its future, shared with the tower-sessions bridge.
mod service;

pub(super) use service::{call, lifecycle_service};

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        let state = State::new(&self.shared, true, self.on_save_error.clone());
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

/// What a tower service of this crate needs besides the service it wraps (the bridge to
/// tower-sessions uses it too).
#[derive(Debug)]
pub(super) struct State {
    pub(super) shared: Shared,
    /// What each request's handle measures its session with (`None`: unbound handles).
    context: Option<Arc<HandleContext>>,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
    on_save_error: Option<Arc<dyn Any + Send + Sync>>,
}

impl State {
    pub(super) fn new(
        shared: &Shared,
        bound: bool,
        on_save_error: Option<Arc<dyn Any + Send + Sync>>,
    ) -> State {
        let token_header = shared.codec.config().token_header().parse().ok();
        let context = bound.then(|| shared.context());
        State { shared: shared.clone(), context, token_header, on_save_error }
    }
}

lifecycle_service!(
    SessionService,
    SessionHandle,
    |_, handle: SessionHandle, extensions: &mut Extensions| {
        extensions.insert(handle.clone());
        handle
    },
    /// The future a [`SessionService`] returns: the application's response with the session's
    /// headers appended. It allocates nothing of its own unless a revocation store has to be
    /// waited for.
);

impl<B: Default + 'static> Answer<Response<B>> for State {
    type Output = Response<B>;

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn append(response: &mut Response<B>, name: String, value: String) -> Result<(), ()> {
        let name = HeaderName::try_from(name).map_err(drop)?;
        response.headers_mut().append(name, HeaderValue::try_from(value).map_err(drop)?);
        Ok(())
    }

    fn cache_control(response: &Response<B>) -> impl Iterator<Item = &[u8]> {
        response.headers().get_all(CACHE_CONTROL).iter().map(HeaderValue::as_bytes)
    }

    fn set_cache_control(response: &mut Response<B>, value: &'static str) {
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(value));
    }

    fn is_server_error(response: &Response<B>) -> bool {
        response.status().is_server_error()
    }

    /// The configured save-error page for a seal error, or a bare 500.
    fn answer(&self, response: Response<B>, saved: Result<(), Option<SealError>>) -> Response<B> {
        let error = match saved {
            Ok(()) => return response,
            Err(error) => error,
        };
        if let (Some(error), Some(page)) = (&error, &self.on_save_error) {
            match page.downcast_ref::<SaveErrorPage<B>>() {
                Some(page) => return page(error),
                None => tracing::error!(
                    "SessionLayer::on_save_error's page has another body type than the service's \
                     responses; answering an empty 500"
                ),
            }
        }
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    }
}
