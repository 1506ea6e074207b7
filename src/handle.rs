//! The request-scoped handle adapters give to handlers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ValueError;
use crate::session::{Session, SessionId};

/// A shared handle to one request's [`Session`], as the adapters put it in the request's
/// extensions. Cloning it gives another handle to the same session; it lives as long as the
/// request does.
///
/// # Examples
///
/// ```
/// use sealed_session::{Session, SessionHandle};
///
/// let handle = SessionHandle::new(Session::new());
/// handle.insert("cart", &vec![3, 4])?;
/// assert_eq!(handle.get::<Vec<u32>>("cart")?, Some(vec![3, 4]));
/// assert!(handle.with(|session| session.is_changed()));
/// # Ok::<(), sealed_session::ValueError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionHandle(Arc<Mutex<Session>>);

impl SessionHandle {
    /// A handle owning `session`.
    pub fn new(session: Session) -> SessionHandle {
        SessionHandle(Arc::new(Mutex::new(session)))
    }

    /// Locks the session. A panic in another holder does not make the session unusable: the
    /// session's own invariants hold between any two of its method calls.
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the session locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        f(&mut self.lock())
    }

    /// See [`Session::get`].
    ///
    /// # Errors
    ///
    /// As [`Session::get`].
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ValueError> {
        self.lock().get(key)
    }

    /// See [`Session::insert`].
    ///
    /// # Errors
    ///
    /// As [`Session::insert`].
    pub fn insert<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), ValueError> {
        self.lock().insert(key, value)
    }

    /// See [`Session::insert_sensitive`].
    ///
    /// # Errors
    ///
    /// As [`Session::insert`].
    pub fn insert_sensitive<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), ValueError> {
        self.lock().insert_sensitive(key, value)
    }

    /// See [`Session::remove`].
    pub fn remove(&self, key: &str) -> bool {
        self.lock().remove(key)
    }

    /// See [`Session::clear`].
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// See [`Session::purge`]: log out, removing every session cookie.
    pub fn purge(&self) {
        self.lock().purge();
    }

    /// See [`Session::renew`]: a new id, at login.
    pub fn renew(&self) {
        self.lock().renew();
    }

    /// See [`Session::id`].
    pub fn id(&self) -> Option<SessionId> {
        self.lock().id()
    }

    /// Takes the session out, leaving an empty one.
    pub fn take(&self) -> Session {
        std::mem::take(&mut *self.lock())
    }
}
