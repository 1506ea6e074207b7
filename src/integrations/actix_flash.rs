//! A flash-message store for `actix-web-flash-messages` keeping the messages in the sealed
//! session (feature `actix-web-flash-messages`).
//!
//! `actix-web-flash-messages` 0.5 ships a `SessionMessageStore`, but it is written against
//! `actix-session` 0.10, while `actix-identity` 0.9 needs 0.11: the two `Session` types are
//! different crates, so no application can use both. [`SealedMessageStore`] reads and writes the
//! request's [`SessionHandle`] instead, which both
//! [`SessionMiddleware`](super::actix::SessionMiddleware) and the `actix-session` bridge put in
//! the request: the messages are sealed with the rest of the session.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, HttpServer, Responder, web};
//! use actix_web_flash_messages::{FlashMessage, FlashMessagesFramework, IncomingFlashMessages};
//! use sealed_session::integrations::actix::SessionMiddleware;
//! use sealed_session::integrations::actix_flash::SealedMessageStore;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
//!
//! async fn save() -> impl Responder {
//!     FlashMessage::info("saved").send();
//!     HttpResponse::SeeOther().insert_header(("location", "/show")).finish()
//! }
//!
//! async fn show(messages: IncomingFlashMessages) -> String {
//!     messages.iter().map(|m| m.content()).collect::<Vec<_>>().join(",")
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let sessions = SessionMiddleware::new(codec);
//! let flash = FlashMessagesFramework::builder(SealedMessageStore::default()).build();
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(flash.clone())
//!         .wrap(sessions.clone()) // last: the outermost, so the messages are sealed after
//!         .route("/save", web::post().to(save))
//!         .route("/show", web::get().to(show))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! Wrap the session middleware around the flash framework (`.wrap` it last): the messages are
//! written into the session on the way out, before it is sealed. Under the `actix-session`
//! bridge, a purge in the same request (logout) also drops that request's messages, as
//! `actix-session`'s own purge does.

use actix_web::dev::ResponseHead;
use actix_web::{HttpMessage as _, HttpRequest};
use actix_web_flash_messages::FlashMessage;
use actix_web_flash_messages::storage::{FlashMessageStore, LoadError, StoreError};

use crate::handle::SessionHandle;

/// The session key the messages are kept under unless told otherwise.
pub const DEFAULT_FLASH_KEY: &str = "_flash";

/// Keeps flash messages in the sealed session, under one key. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SealedMessageStore {
    key: String,
}

impl SealedMessageStore {
    /// A store keeping the messages under `key`.
    pub fn new(key: impl Into<String>) -> SealedMessageStore {
        SealedMessageStore { key: key.into() }
    }
}

impl Default for SealedMessageStore {
    /// A store keeping the messages under [`DEFAULT_FLASH_KEY`].
    fn default() -> SealedMessageStore {
        SealedMessageStore::new(DEFAULT_FLASH_KEY)
    }
}

/// The request's session, or why there is none.
fn handle(request: &HttpRequest) -> Result<SessionHandle, anyhow::Error> {
    request.extensions().get::<SessionHandle>().cloned().ok_or_else(|| {
        anyhow::anyhow!("no session: wrap the app in sealed_session's session middleware, outside the flash framework")
    })
}

impl FlashMessageStore for SealedMessageStore {
    fn load(&self, request: &HttpRequest) -> Result<Vec<FlashMessage>, LoadError> {
        let session = handle(request).map_err(LoadError::GenericError)?;
        match session.get::<Vec<FlashMessage>>(&self.key) {
            Ok(messages) => Ok(messages.unwrap_or_default()),
            // Only our own writes reach the sealed session: a value that does not decode was
            // written by another version of the application. Drop it rather than fail the page.
            Err(_) => {
                tracing::warn!(key = %self.key, "flash messages in the session did not decode; dropped");
                Ok(Vec::new())
            }
        }
    }

    fn store(
        &self,
        messages: &[FlashMessage],
        request: HttpRequest,
        _response: &mut ResponseHead,
    ) -> Result<(), StoreError> {
        let session = handle(&request).map_err(StoreError::GenericError)?;
        if messages.is_empty() {
            // Shown once: what was read on this request is gone.
            session.lock().remove_raw(&self.key);
            return Ok(());
        }
        session.insert(self.key.as_str(), messages).map_err(|error| {
            StoreError::SerializationError(anyhow::anyhow!("flash messages: {error}"))
        })
    }
}
