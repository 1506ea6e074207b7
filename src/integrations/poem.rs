//! The Poem middleware and extractor (feature `poem`).
//!
//! Poem is the third framework because its `Middleware`/`Endpoint` pair wraps a handler the
//! way the request lifecycle wants; Rocket's fairings see the request and the response apart
//! and cannot wrap one.
//!
//! ```no_run
//! use poem::listener::TcpListener;
//! use poem::{EndpointExt, Route, Server, get, handler};
//! use sealed_session::integrations::poem::SessionMiddleware;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle};
//!
//! // `?` works on session operations: a failure answers an empty 500 and logs the reason.
//! #[handler]
//! fn count(session: SessionHandle) -> poem::Result<String> {
//!     let n = session.get_or_default::<u64>("n")? + 1;
//!     session.insert("n", n)?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let app = Route::new().at("/", get(count)).with(SessionMiddleware::new(codec));
//! Server::new(TcpListener::bind("127.0.0.1:3000")).run(app).await
//! # }
//! ```
//!
//! An endpoint's error (a handler's `Err`, the router's 404) still finishes the session, as a
//! response does: a logout is recorded and its cookies removed, rejected cookies are removed.
//! An error the session adds no header to goes on unchanged; one it does add headers to
//! becomes [`poem::Error::from_response`] with them on (same status and body), so an outer
//! `catch_error::<T>` no longer matches that one.

use std::convert::Infallible;
use std::sync::Arc;

use poem::error::ResponseError;
use poem::http::header::{CACHE_CONTROL, COOKIE};
use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};

use super::Shared;
use super::lifecycle::{self, Answer};
use crate::error::{SealError, ValueError};
use crate::handle::{Context as HandleContext, SessionHandle};

/// Adds a session to every request. See the [module docs](self).
#[derive(Clone)]
pub struct SessionMiddleware {
    shared: Shared,
    on_save_error: Option<SaveErrorPage>,
}

/// What [`SessionMiddleware::on_save_error`] keeps.
type SaveErrorPage = Arc<dyn Fn(&SealError) -> Response + Send + Sync>;

impl std::fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware").field("shared", &self.shared).finish_non_exhaustive()
    }
}

super::settings!(
    SessionMiddleware,
    "middleware" { on_save_error: None }
    /// Checks every authenticated session against `revocation`, and revokes purged sessions
    /// (logout) in it. See [`crate::revocation`].
    ;
    /// Answers `page(&error)` instead of an empty 500 when a response's session cannot be
    /// saved: no session cookie is written and the handler's response is dropped.
    ///
    /// ```
    /// use poem::{IntoResponse, http::StatusCode};
    /// use sealed_session::integrations::poem::SessionMiddleware;
    /// use sealed_session::{Key, KeyRing, SealError, SessionCodec, SessionConfig};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let middleware = SessionMiddleware::new(codec).on_save_error(|_: &SealError| {
    ///     "Your session is full".with_status(StatusCode::INSUFFICIENT_STORAGE).into_response()
    /// });
    /// ```
    on_save_error -> Response
);

impl<E: Endpoint> Middleware<E> for SessionMiddleware {
    type Output = SessionEndpoint<E>;

    fn transform(&self, inner: E) -> SessionEndpoint<E> {
        let state = State {
            shared: self.shared.clone(),
            context: self.shared.context(),
            token_header: self.shared.codec.config().token_header().parse().ok(),
            on_save_error: self.on_save_error.clone(),
        };
        SessionEndpoint { inner, state: Arc::new(state) }
    }
}

/// The endpoint [`SessionMiddleware`] wraps around an application.
pub struct SessionEndpoint<E> {
    inner: E,
    state: Arc<State>,
}

impl<E> std::fmt::Debug for SessionEndpoint<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEndpoint").finish_non_exhaustive()
    }
}

/// What a [`SessionEndpoint`] needs besides the endpoint it wraps.
struct State {
    shared: Shared,
    /// What each request's handle measures its session with (see `SessionHandle::size`).
    context: Arc<HandleContext>,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
    on_save_error: Option<SaveErrorPage>,
}

impl<E: Endpoint> Endpoint for SessionEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let state = &*self.state;
        let handle = Shared::handle_for(Some(&state.context));
        let headers = request.headers();
        // As bytes: a byte outside visible ASCII in another cookie must not drop the header.
        let cookies = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let admitted = state.shared.open(&handle, cookies, token.map(HeaderValue::as_bytes));
        // The endpoint's error is carried as the lifecycle's response, not returned early: in
        // Poem a handler's `Err` (and the router's 404) travels through middleware as an
        // error, and the session must still be finished then (a logout recorded and its
        // cookies removed, rejected cookies removed), as axum and actix-web do.
        let finished = lifecycle::run(state, handle, admitted, |handle| {
            request.extensions_mut().insert(handle.clone());
            let called = self.inner.call(request);
            (handle, async { Ok::<_, Infallible>(called.await.map(IntoResponse::into_response)) })
        });
        let Ok(answered) = finished.await;
        answered
    }
}

/// Marks a response made from an endpoint's error so that to put the session's headers on,
/// which [`Answer::answer`] returns as an error again.
#[derive(Clone, Copy)]
struct FromError;

/// The response to put headers on: an error is turned into its response (marked) first.
fn response_of(outcome: &mut poem::Result<Response>) -> &mut Response {
    if outcome.is_err() {
        let error = std::mem::replace(outcome, Ok(Response::default())).err();
        let mut response = error.map(poem::Error::into_response).unwrap_or_default();
        response.extensions_mut().insert(FromError);
        *outcome = Ok(response);
    }
    match outcome {
        Ok(response) => response,
        Err(_) => unreachable!("replaced just above"),
    }
}

/// The endpoint's outcome is the response: an error the session adds no header to goes on as
/// it came (so an outer `catch_error` still sees its type); one it does is answered as an error
/// made from its response with the headers on.
impl Answer<poem::Result<Response>> for State {
    type Output = poem::Result<Response>;

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn append(outcome: &mut poem::Result<Response>, name: String, value: String) -> Result<(), ()> {
        let name = HeaderName::try_from(name).map_err(drop)?;
        let value = HeaderValue::try_from(value).map_err(drop)?;
        response_of(outcome).headers_mut().append(name, value);
        Ok(())
    }

    fn cache_control(outcome: &poem::Result<Response>) -> impl Iterator<Item = &[u8]> {
        let response = outcome.as_ref().ok().into_iter();
        response
            .flat_map(|response| response.headers().get_all(CACHE_CONTROL).iter())
            .map(HeaderValue::as_bytes)
    }

    fn set_cache_control(outcome: &mut poem::Result<Response>, value: &'static str) {
        response_of(outcome).headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(value));
    }

    /// The configured save-error page for a seal error, or a bare 500.
    fn answer(
        &self,
        outcome: poem::Result<Response>,
        saved: Result<(), Option<SealError>>,
    ) -> poem::Result<Response> {
        match (saved, &self.on_save_error) {
            (Ok(()), _) => match outcome {
                Ok(mut response) => {
                    if response.extensions_mut().remove::<FromError>().is_some() {
                        return Err(poem::Error::from_response(response));
                    }
                    Ok(response)
                }
                Err(error) => Err(error),
            },
            (Err(Some(error)), Some(page)) => Ok(page(&error)),
            (Err(_), _) => Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        }
    }
}

/// Extracts the request's session in a Poem handler. Fails with a 500 when no
/// [`SessionMiddleware`] is installed.
impl<'a> FromRequest<'a> for SessionHandle {
    async fn from_request(request: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        request.extensions().get::<SessionHandle>().cloned().ok_or_else(|| {
            let message = "no session: is sealed_session's SessionMiddleware installed?";
            poem::Error::from_string(message, StatusCode::INTERNAL_SERVER_ERROR)
        })
    }
}

/// A session value a handler could not read or write answers an empty 500, so handlers can use
/// `?` on session operations; the reason goes to `tracing`, the client learns nothing.
impl ResponseError for ValueError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn as_response(&self) -> Response {
        tracing::error!(error = %self, "session value error; answering 500");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

/// A session that cannot be sealed answers an empty 500, the reason logged with `tracing`; for
/// a page of your own at save time, see [`SessionMiddleware::on_save_error`].
impl ResponseError for SealError {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn as_response(&self) -> Response {
        tracing::error!(error = %self, "session could not be sealed; answering 500");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

#[cfg(test)]
mod tests {
    use poem::error::NotFoundError;
    use poem::http::header::SET_COOKIE;
    use poem::{EndpointExt as _, Route};

    use super::*;
    use crate::{Key, KeyRing, SessionCodec, SessionConfig};

    /// An endpoint's error the session adds nothing to goes on as it came, so an outer
    /// `catch_error::<NotFoundError>` (a custom 404 page) still matches it; one the session
    /// adds headers to (here: removing an expired cookie) carries them, still as an error.
    #[tokio::test]
    async fn an_error_keeps_its_type_unless_the_session_adds_headers() {
        let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
        let app = Route::new().with(SessionMiddleware::new(codec));
        // (case, Cookie header, the error is still a NotFoundError, Set-Cookie lines)
        let table =
            [("no session", None, true, 0), ("a bad cookie", Some("__Host-session=x"), false, 1)];
        for (case, cookie, typed, removals) in table {
            let mut request = Request::builder().uri_str("/nowhere");
            if let Some(cookie) = cookie {
                request = request.header(COOKIE, cookie);
            }
            let error = app.call(request.finish()).await.expect_err(case);
            assert_eq!(error.is::<NotFoundError>(), typed, "{case}");
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{case}");
            assert_eq!(response.headers().get_all(SET_COOKIE).iter().count(), removals, "{case}");
        }
    }
}
