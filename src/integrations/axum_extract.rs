//! What axum handlers see of the session (feature `axum`): the [`SessionHandle`] extractor, the
//! CSRF check on `http` headers, and session errors as responses.

use axum_core::extract::FromRequestParts;
use axum_core::response::IntoResponse;
use http::StatusCode;
use http::request::Parts;

use crate::error::{SealError, ValueError};
use crate::handle::SessionHandle;

/// Extracts the request's session in an axum handler. Fails with a 500 when no
/// [`SessionLayer`](super::tower::SessionLayer) is installed.
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
        let value = |name: &str| headers.get(name).map(http::HeaderValue::as_bytes);
        let origin = crate::RequestOrigin::new(
            value("sec-fetch-site"),
            value(http::header::ORIGIN.as_str()),
            value(http::header::HOST.as_str()),
        );
        self.verify_csrf_origin(header.or(form_field), origin)
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
/// [`SessionLayer::on_save_error`](super::tower::SessionLayer::on_save_error).
impl IntoResponse for SealError {
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!(error = %self, "session could not be sealed; answering 500");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}
