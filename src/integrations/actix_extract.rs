//! What actix-web handlers see of the session (feature `actix-web`): the [`SessionHandle`]
//! extractor, the CSRF check on a request, and session errors as responses.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};

use crate::error::{SealError, ValueError};
use crate::handle::SessionHandle;

/// Extracts the request's session in an actix-web handler. Fails with a 500 when no
/// [`SessionMiddleware`](super::actix::SessionMiddleware) is installed.
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
        let headers = request.headers();
        let header = headers.get(crate::CSRF_HEADER).and_then(|value| value.to_str().ok());
        let value = |name: &str| headers.get(name).map(|value| value.as_bytes());
        let origin =
            crate::RequestOrigin::new(value("sec-fetch-site"), value("origin"), value("host"));
        self.verify_csrf_origin(header.or(form_field), origin)
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
/// [`SessionMiddleware::on_save_error`](super::actix::SessionMiddleware::on_save_error).
impl ResponseError for SealError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self, "session could not be sealed; answering 500");
        HttpResponse::InternalServerError().finish()
    }
}
