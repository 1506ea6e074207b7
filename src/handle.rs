//! The request-scoped handle adapters give to handlers.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::codec::SessionCodec;
use crate::error::{Rejected, SealError, ValueError};
use crate::session::{Session, SessionId};
use crate::size::SessionSize;

/// A shared handle to one request's [`Session`], as the adapters put it in the request's
/// extensions (and extract it for handlers). Cloning it gives another handle to the same
/// session; it lives as long as the request does.
///
/// Each method locks the session for its own duration only. Every error is one a handler can
/// return with `?` under the `axum` and `actix-web` features: the client gets an empty 500,
/// the reason goes to `tracing`.
///
/// # Concurrency
///
/// Two requests of the same browser run with two copies of the session, each opened from the
/// cookies that request carried. Each response that changed its copy writes the whole session,
/// so **the last response wins**: a value written by the other request in the meantime is lost
/// (a response that changed nothing writes nothing, and loses nothing). Keep values that
/// concurrent requests both change (counters, lists) small and derivable, or keep them on the
/// server, keyed by the session id or the user.
///
/// # Examples
///
/// ```
/// use sealed_session::{Session, SessionHandle};
///
/// let handle = SessionHandle::new(Session::new());
/// handle.insert("cart", vec![3, 4])?;
/// assert_eq!(handle.get::<Vec<u32>>("cart")?, Some(vec![3, 4]));
/// let n = handle.update("visits", |n: &mut u64| { *n += 1; *n })?;
/// assert_eq!(n, 1);
/// assert!(handle.with(|session| session.is_changed()));
/// # Ok::<(), sealed_session::ValueError>(())
/// ```
#[derive(Clone, Default)]
pub struct SessionHandle {
    session: Arc<Mutex<Session>>,
    /// The codec and clock the session will be sealed with (set by the adapters), so a
    /// handler can [measure](SessionHandle::size) it.
    context: Option<Arc<Context>>,
}

/// What a handle needs to measure its session: the adapter's codec and clock.
pub(crate) struct Context {
    pub(crate) codec: Arc<SessionCodec>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl SessionHandle {
    /// A handle owning `session`, without a codec: [`size`](SessionHandle::size) answers
    /// `None`. Handles the adapters give handlers always have one.
    pub fn new(session: Session) -> SessionHandle {
        SessionHandle { session: Arc::new(Mutex::new(session)), context: None }
    }

    /// A handle owning `session`, measured against `codec` at the system clock's time.
    pub fn with_codec(session: Session, codec: Arc<SessionCodec>) -> SessionHandle {
        let context = Context { codec, clock: Arc::new(SystemClock) };
        SessionHandle { session: Arc::new(Mutex::new(session)), context: Some(Arc::new(context)) }
    }

    /// An empty handle for a request, bound to its adapter's codec and clock.
    pub(crate) fn bound(context: Arc<Context>) -> SessionHandle {
        SessionHandle { session: Arc::default(), context: Some(context) }
    }

    /// Locks the session, for several operations under one lock.
    ///
    /// Do not hold the guard across an `.await`: it blocks every other holder of the handle
    /// (and, being a `std` mutex guard, makes the handler's future not `Send`, which axum
    /// refuses). Prefer [`with`](SessionHandle::with) or the methods below, which lock only
    /// for their own duration.
    ///
    /// A panic in another holder does not make the session unusable: the session's own
    /// invariants hold between any two of its method calls.
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the session locked.
    ///
    /// ```
    /// # use sealed_session::{Session, SessionHandle};
    /// let handle = SessionHandle::new(Session::new());
    /// let (len, changed) = handle.with(|session| (session.len(), session.is_changed()));
    /// assert_eq!((len, changed), (0, false));
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        f(&mut self.lock())
    }

    /// Reads a value, deserializing it into `T`; `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// [`ValueError::Decode`] when the stored value does not deserialize into `T` (say, a
    /// struct that gained a field since the cookie was written: give the field
    /// `#[serde(default)]`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ValueError> {
        self.lock().get(key)
    }

    /// Reads a value, or `T::default()` when there is none.
    ///
    /// # Errors
    ///
    /// As [`get`](SessionHandle::get).
    pub fn get_or_default<T: DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, ValueError> {
        self.lock().get_or_default(key)
    }

    /// Stores a value, by value or by reference (`insert("n", n + 1)`, `insert("cart", &cart)`).
    /// The session is written back on the response, if it fits (see
    /// [`size`](SessionHandle::size)).
    ///
    /// # Errors
    ///
    /// As [`Session::insert`]: the value does not serialize, or the key is too long.
    pub fn insert<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<(), ValueError> {
        self.lock().insert(key, value)
    }

    /// Stores a secret (an OAuth state, say) in the section that is never compressed. See
    /// [`Session::insert_sensitive`].
    ///
    /// # Errors
    ///
    /// As [`Session::insert`].
    pub fn insert_sensitive<T: Serialize>(
        &self,
        key: impl Into<String>,
        value: T,
    ) -> Result<(), ValueError> {
        self.lock().insert_sensitive(key, value)
    }

    /// Reads the value under `key` (or its default), lets `f` change it and stores it back, all
    /// under one lock. Returns what `f` returns.
    ///
    /// ```
    /// # use sealed_session::{Session, SessionHandle};
    /// let handle = SessionHandle::new(Session::new());
    /// handle.update("cart", |cart: &mut Vec<String>| cart.push("pear".into()))?;
    /// assert_eq!(handle.update("cart", |cart: &mut Vec<String>| cart.len())?, 1);
    /// # Ok::<(), sealed_session::ValueError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](SessionHandle::get) (then nothing is stored) and
    /// [`insert`](SessionHandle::insert).
    pub fn update<T, R>(&self, key: &str, f: impl FnOnce(&mut T) -> R) -> Result<R, ValueError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        self.lock().update(key, f)
    }

    /// Removes a value and returns it, decoded into `T`.
    ///
    /// # Errors
    ///
    /// As [`Session::remove`]: the old value does not decode (it is removed all the same).
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ValueError> {
        self.lock().remove(key)
    }

    /// Removes a value without decoding it; `Some` (its MessagePack bytes) if it was there.
    pub fn remove_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().remove_raw(key)
    }

    /// Removes every value, keeping the session's id and lifetime.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Logs out: removes every value and, on the response, every session cookie (and revokes
    /// the session when the adapter has a revocation store). See [`Session::purge`].
    pub fn purge(&self) {
        self.lock().purge();
    }

    /// Gives the session a new id on the response, keeping its values, and a new CSRF token:
    /// call it at login. See [`Session::renew`].
    pub fn renew(&self) {
        self.lock().renew();
    }

    /// Sets how long this session lives: "remember me" ([`Lifetime::Idle`]), a browser-session
    /// cookie, a fixed end. Sealed with the session, never past the configured absolute
    /// timeout; the response writes the session's cookies. See [`Session::set_lifetime`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use sealed_session::{Lifetime, Session, SessionHandle};
    ///
    /// // In a login handler: "remember me" ticked.
    /// let handle = SessionHandle::new(Session::new());
    /// handle.insert("user", "ada")?;
    /// handle.renew();
    /// handle.set_lifetime(Lifetime::Idle(Duration::from_secs(30 * 24 * 3600)));
    /// assert_eq!(handle.lifetime(), Lifetime::Idle(Duration::from_secs(30 * 24 * 3600)));
    /// # Ok::<(), sealed_session::ValueError>(())
    /// ```
    ///
    /// [`Lifetime::Idle`]: crate::Lifetime::Idle
    pub fn set_lifetime(&self, lifetime: crate::Lifetime) {
        self.lock().set_lifetime(lifetime);
    }

    /// This session's lifetime. See [`Session::lifetime`].
    pub fn lifetime(&self) -> crate::Lifetime {
        self.lock().lifetime()
    }

    /// The session's id; `None` for a session not sealed yet. See [`Session::id`].
    pub fn id(&self) -> Option<SessionId> {
        self.lock().id()
    }

    /// Whether the request's session cookies were rejected (expired, revoked, invalid), so the
    /// handler can say "your session expired". See [`Session::rejected`].
    pub fn rejected(&self) -> Option<Rejected> {
        self.lock().rejected()
    }

    /// How large the session would be if the response were sent now, and whether that fits
    /// the budget and the maximum state size: check it before returning, to answer a page of
    /// your own instead of failing at save time. `None` for a handle made by
    /// [`new`](SessionHandle::new) (the adapters' handles always answer).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig, SessionHandle};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let handle = SessionHandle::with_codec(Session::new(), Arc::new(codec));
    /// handle.insert("notes", vec!["x".repeat(100); 10])?;
    /// let size = handle.size().expect("a handle with a codec");
    /// assert!(size.fits(), "{size}");
    /// handle.insert("blob", (0..20_000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect::<Vec<_>>())?;
    /// assert!(!handle.size().expect("a codec").fits());
    /// # Ok::<(), sealed_session::ValueError>(())
    /// ```
    pub fn size(&self) -> Option<SessionSize> {
        let context = self.context.as_ref()?;
        let now = context.clock.now();
        Some(context.codec.measure(&self.lock(), now))
    }

    /// The session's CSRF token, made on first use. See [`Session::csrf_token`].
    ///
    /// # Errors
    ///
    /// [`SealError::Random`] if the system's random number generator fails.
    pub fn csrf_token(&self) -> Result<String, SealError> {
        self.lock().csrf_token()
    }

    /// Whether `submitted` (a form field or the `x-csrf-token` header) is the session's CSRF
    /// token, compared in constant time. See [`Session::verify_csrf`].
    pub fn verify_csrf(&self, submitted: Option<&str>) -> bool {
        self.lock().verify_csrf(submitted)
    }

    /// [`verify_csrf`](SessionHandle::verify_csrf), and, when the configuration turns the
    /// second layer on ([`csrf_origin_check`](crate::SessionConfigBuilder::csrf_origin_check)),
    /// that the browser does not say the request came from another origin (`Sec-Fetch-Site`,
    /// else `Origin` against `Host`; see [`RequestOrigin`](crate::RequestOrigin)). For
    /// frameworks without a helper of their own; axum's `verify_csrf_headers` and actix-web's
    /// `verify_csrf_request` call it.
    pub fn verify_csrf_origin(
        &self,
        submitted: Option<&str>,
        origin: crate::RequestOrigin<'_>,
    ) -> bool {
        let refused = self.context.as_ref().is_some_and(|context| {
            let config = context.codec.config();
            config.csrf_origin_check && origin.is_cross_origin(&config.csrf_trusted_origins)
        });
        if refused {
            tracing::info!("request refused: cross-origin by its Sec-Fetch-Site or Origin");
            return false;
        }
        self.verify_csrf(submitted)
    }

    /// [`verify_csrf_origin`](SessionHandle::verify_csrf_origin) as a `Result` for `?`.
    ///
    /// # Errors
    ///
    /// [`CsrfError`](crate::CsrfError) (a `403`) for a cross-origin request or a missing or
    /// wrong token.
    pub fn require_csrf_origin(
        &self,
        submitted: Option<&str>,
        origin: crate::RequestOrigin<'_>,
    ) -> Result<(), crate::CsrfError> {
        if self.verify_csrf_origin(submitted, origin) { Ok(()) } else { Err(crate::CsrfError) }
    }

    /// [`verify_csrf`](SessionHandle::verify_csrf) as a `Result` for `?`: see
    /// [`Session::require_csrf`].
    ///
    /// # Errors
    ///
    /// [`CsrfError`](crate::CsrfError) when `submitted` is missing or not the session's token.
    pub fn require_csrf(&self, submitted: Option<&str>) -> Result<(), crate::CsrfError> {
        self.lock().require_csrf(submitted)
    }

    /// Adds a flash message, shown once by a later request. See [`Session::flash`].
    ///
    /// # Errors
    ///
    /// As [`Session::flash`].
    pub fn flash(&self, message: impl Into<String>) -> Result<(), ValueError> {
        self.lock().flash(message)
    }

    /// Takes the pending flash messages (oldest first), so they show once. See
    /// [`Session::take_flashes`].
    ///
    /// # Errors
    ///
    /// As [`Session::take_flashes`].
    pub fn take_flashes(&self) -> Result<Vec<String>, ValueError> {
        self.lock().take_flashes()
    }

    /// Takes the session out, leaving an empty one.
    pub fn take(&self) -> Session {
        std::mem::take(&mut *self.lock())
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `try_lock`: formatting a handle while its guard is held must not deadlock.
        let mut debug = f.debug_struct("SessionHandle");
        match self.session.try_lock() {
            Ok(session) => debug.field("session", &*session),
            Err(_) => debug.field("session", &"<locked>"),
        };
        debug.field("measurable", &self.context.is_some()).finish()
    }
}
