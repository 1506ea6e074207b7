//! How [`SessionError`] and [`CsrfError`] answer in axum, actix-web and Poem, and the CSRF checks that
//! return them: the one error a handler needs for every session operation.
//!
//! A failed CSRF check is the client's doing and answers `403 Forbidden`; every other session
//! error is the server's fault and answers an empty `500`, its reason logged with `tracing` at
//! error level. Neither response carries the reason, a key or a value.

use crate::error::{CsrfError, SessionError};
use crate::handle::SessionHandle;

/// The reason of a server-side fault goes to the logs, never to the client.
fn log_fault(error: &SessionError) {
    tracing::error!(error = %error, "session operation failed; answering 500");
}

#[cfg(feature = "axum")]
mod axum {
    use axum_core::response::{IntoResponse, Response};
    use http::StatusCode;

    use super::{CsrfError, SessionError, SessionHandle, log_fault};

    /// `403 Forbidden`, with a short fixed text.
    impl IntoResponse for CsrfError {
        fn into_response(self) -> Response {
            tracing::info!("request refused: no valid CSRF token");
            (StatusCode::FORBIDDEN, "invalid CSRF token").into_response()
        }
    }

    /// `403` for a failed CSRF check, an empty `500` (reason logged) for anything else.
    impl IntoResponse for SessionError {
        fn into_response(self) -> Response {
            match self {
                SessionError::Csrf(csrf) => csrf.into_response(),
                fault => {
                    log_fault(&fault);
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }

    impl SessionHandle {
        /// [`verify_csrf_headers`](SessionHandle::verify_csrf_headers) as a `Result` for `?`:
        /// the token in the `x-csrf-token` header when there is one, otherwise `form_field`.
        ///
        /// ```
        /// use http::HeaderMap;
        /// use sealed_session::{Session, SessionHandle};
        ///
        /// let session = SessionHandle::new(Session::new());
        /// let token = session.csrf_token()?;
        /// let headers = HeaderMap::new();
        /// assert!(session.require_csrf_headers(&headers, Some(&token)).is_ok());
        /// assert!(session.require_csrf_headers(&headers, Some("forged")).is_err());
        /// # Ok::<(), sealed_session::SessionError>(())
        /// ```
        ///
        /// # Errors
        ///
        /// [`CsrfError`] (a `403`) when the request carries no token or another one.
        pub fn require_csrf_headers(
            &self,
            headers: &http::HeaderMap,
            form_field: Option<&str>,
        ) -> Result<(), CsrfError> {
            if self.verify_csrf_headers(headers, form_field) { Ok(()) } else { Err(CsrfError) }
        }
    }
}

#[cfg(feature = "actix-web")]
mod actix {
    use actix_web::http::StatusCode;
    use actix_web::{HttpRequest, HttpResponse, ResponseError};

    use super::{CsrfError, SessionError, SessionHandle, log_fault};

    /// `403 Forbidden`, with a short fixed text.
    impl ResponseError for CsrfError {
        fn status_code(&self) -> StatusCode {
            StatusCode::FORBIDDEN
        }

        fn error_response(&self) -> HttpResponse {
            tracing::info!("request refused: no valid CSRF token");
            HttpResponse::Forbidden().body("invalid CSRF token")
        }
    }

    /// `403` for a failed CSRF check, an empty `500` (reason logged) for anything else.
    impl ResponseError for SessionError {
        fn status_code(&self) -> StatusCode {
            if self.is_forbidden() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }

        fn error_response(&self) -> HttpResponse {
            match self {
                SessionError::Csrf(csrf) => csrf.error_response(),
                fault => {
                    log_fault(fault);
                    HttpResponse::InternalServerError().finish()
                }
            }
        }
    }

    impl SessionHandle {
        /// [`verify_csrf_request`](SessionHandle::verify_csrf_request) as a `Result` for `?`.
        ///
        /// ```
        /// use actix_web::test::TestRequest;
        /// use sealed_session::{Session, SessionHandle};
        ///
        /// let session = SessionHandle::new(Session::new());
        /// let token = session.csrf_token()?;
        /// let request = TestRequest::default().to_http_request();
        /// assert!(session.require_csrf_request(&request, Some(&token)).is_ok());
        /// assert!(session.require_csrf_request(&request, None).is_err());
        /// # Ok::<(), sealed_session::SessionError>(())
        /// ```
        ///
        /// # Errors
        ///
        /// [`CsrfError`] (a `403`) when the request carries no token or another one.
        pub fn require_csrf_request(
            &self,
            request: &HttpRequest,
            form_field: Option<&str>,
        ) -> Result<(), CsrfError> {
            if self.verify_csrf_request(request, form_field) { Ok(()) } else { Err(CsrfError) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{SealError, ValueError};
    use crate::revocation::{RevokeError, StoreError};
    use crate::session::Session;

    /// Every kind of session error, with a secret in its reason where it can carry one: the
    /// response must never show it.
    fn errors() -> Vec<(SessionError, u16)> {
        let mut session = Session::new();
        session.insert_sensitive("k9Zq-key", "k9Zq-secret").unwrap();
        let value: ValueError = session.get::<char>("k9Zq-key").unwrap_err();
        vec![
            (value.into(), 500),
            (SealError::TooLarge { needed: 9000, budget: 6144, chunks: 3 }.into(), 500),
            (SealError::NoActiveKey.into(), 500),
            (RevokeError::Store(StoreError("k9Zq-store".to_owned())).into(), 500),
            (CsrfError.into(), 403),
        ]
    }

    /// The one error every handler returns answers 403 for a failed CSRF check and an empty
    /// 500 for anything else, in axum, never with the reason, a key or a value in the body.
    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn axum_answers_403_or_an_empty_500() {
        use axum_core::response::IntoResponse;
        use http_body_util::BodyExt as _;

        for (error, status) in errors() {
            let shown = format!("{error:?}");
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{shown}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let expected: &[u8] = if status == 403 { b"invalid CSRF token" } else { b"" };
            assert_eq!(&body[..], expected, "{shown}");
        }
    }

    /// The same in actix-web.
    #[cfg(feature = "actix-web")]
    #[tokio::test]
    async fn actix_answers_403_or_an_empty_500() {
        use actix_web::ResponseError as _;

        for (error, status) in errors() {
            let shown = format!("{error:?}");
            assert_eq!(error.status_code().as_u16(), status, "{shown}");
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status, "{shown}");
            let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
            let expected: &[u8] = if status == 403 { b"invalid CSRF token" } else { b"" };
            assert_eq!(&body[..], expected, "{shown}");
        }
    }
}

#[cfg(feature = "poem")]
mod poem {
    use poem::error::ResponseError;
    use poem::http::StatusCode;
    use poem::{IntoResponse as _, Response};

    use super::{CsrfError, SessionError, log_fault};

    /// `403 Forbidden`, with a short fixed text.
    impl ResponseError for CsrfError {
        fn status(&self) -> StatusCode {
            StatusCode::FORBIDDEN
        }

        fn as_response(&self) -> Response {
            tracing::info!("request refused: no valid CSRF token");
            Response::builder().status(StatusCode::FORBIDDEN).body("invalid CSRF token")
        }
    }

    /// `403` for a failed CSRF check, an empty `500` (reason logged) for anything else.
    impl ResponseError for SessionError {
        fn status(&self) -> StatusCode {
            if self.is_forbidden() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }

        fn as_response(&self) -> Response {
            match self {
                SessionError::Csrf(csrf) => csrf.as_response(),
                fault => {
                    log_fault(fault);
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }
}
