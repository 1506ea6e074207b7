//! Revocation: "log out" that a copied cookie cannot undo, and "log out everywhere".
//!
//! A stateless session stays valid until it expires, even after logout: whoever copied the
//! cookie can replay it. Revocation closes that gap without making the session itself stateful:
//! the session still lives in the cookie, and a small shared store only remembers what was
//! revoked, each entry until the sessions it concerns would have expired anyway.
//!
//! * **One session**: [`Revocation::revoke_session`] (the adapters call it when a purged session
//!   is saved, so logout revokes).
//! * **Every session of a subject** issued before an instant ("log out everywhere", "password
//!   changed"): [`Revocation::revoke_subject`]. The subject is the session value stored under
//!   the configured key (for example the user id under `"user"`).
//!
//! The check runs after a token authenticates. The library stays storage-free by default: the
//! store is the [`RevocationStore`] trait, with [`MemoryRevocations`] for one process and tests,
//! and a Redis store behind the `redis` feature.
//!
//! # When the store is unreachable
//!
//! [`FailurePolicy::Accept`] (the default) accepts the session and logs an error: a store
//! outage then widens the replay window back to what stateless sessions always have (until
//! expiry), instead of logging every user out or taking the site down, which would make the
//! store the single point of failure this library exists to avoid. Choose
//! [`FailurePolicy::Reject`] when a revoked session must never be honoured, at the price of
//! rejecting every session while the store is down. Either way the outcome is logged, and
//! stores bound their own time (the Redis store uses connection and response timeouts), so
//! nothing hangs.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::RejectReason;
use crate::session::{Session, SessionId};
use crate::time::to_unix;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_KEY_PREFIX, RedisRevocations, RedisRevocationsBuilder};

/// A boxed future, as the store trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A revocation store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct StoreError(pub String);

/// What a store is asked about one session.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The session's id.
    pub id: SessionId,
    /// The subject's identity (its MessagePack bytes), if the session has one.
    pub subject: Option<&'a [u8]>,
    /// When the session was issued, Unix seconds.
    pub issued_at: u64,
}

/// Where revocations are kept. Implementations must bound their own time (timeouts) and let
/// entries expire at the time they are given: after it, the sessions they concern have expired.
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether the session's id is revoked, or its subject revoked at or after its issue time.
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The answer [`is_revoked`](RevocationStore::is_revoked) would give, when the store has it
    /// without waiting (an in-memory store); `None`, the default, means "ask `is_revoked`".
    /// Adapters call this first on every request, so a store that implements it costs them no
    /// boxed future.
    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        let _ = query;
        None
    }

    /// Revokes one session id until `until` (Unix seconds).
    fn revoke_session(&self, id: SessionId, until: u64) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Revokes every session of `subject` issued before `issued_before` (Unix seconds), keeping
    /// the entry until `until`.
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        issued_before: u64,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// What to do when the store cannot answer. See the [module docs](self) for the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Accept the session (and log an error).
    #[default]
    Accept,
    /// Reject the session (and log an error).
    Reject,
}

/// A revocation check: a store, the session key that names the subject, and a failure policy.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sealed_session::revocation::{MemoryRevocations, Revocation};
/// use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig};
///
/// # tokio_test_block_on(async {
/// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
/// let revocation = Revocation::new(MemoryRevocations::new(), "user");
/// let now = SystemTime::now();
///
/// let mut session = Session::new();
/// session.insert("user", "ada")?;
/// let cookies = codec.seal(&mut session, now)?.request_header();
///
/// // "Log out everywhere": every session of ada issued before now + 1 s is revoked.
/// revocation.revoke_subject(&"ada", now + Duration::from_secs(1), codec.config()).await?;
/// let replayed = codec.open(&cookies, now)?;
/// assert_eq!(revocation.check(&replayed).await, Err(RejectReason::Revoked));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Revocation {
    store: Arc<dyn RevocationStore>,
    subject_key: String,
    policy: FailurePolicy,
}

impl Revocation {
    /// A check against `store`, taking a session's subject from the value under `subject_key`.
    pub fn new(store: impl RevocationStore, subject_key: impl Into<String>) -> Revocation {
        Revocation {
            store: Arc::new(store),
            subject_key: subject_key.into(),
            policy: FailurePolicy::default(),
        }
    }

    /// What to do when the store cannot answer (default [`FailurePolicy::Accept`]).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Revocation {
        self.policy = policy;
        self
    }

    /// The configured failure policy.
    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// Checks an opened session. A new session (no id yet) is never revoked.
    ///
    /// # Errors
    ///
    /// [`RejectReason::Revoked`] when it is revoked, and
    /// [`RejectReason::RevocationUnavailable`] when the store cannot answer under
    /// [`FailurePolicy::Reject`].
    pub async fn check(&self, session: &Session) -> Result<(), RejectReason> {
        let Some(query) = self.query(session) else { return Ok(()) };
        if let Some(answer) = self.store.try_is_revoked(&query) {
            return self.verdict(answer);
        }
        let answer = self.store.is_revoked(query).await;
        self.verdict(answer)
    }

    /// [`check`](Revocation::check) without waiting: `None` when the store can only answer
    /// asynchronously (see [`RevocationStore::try_is_revoked`]). The adapters call it on every
    /// request and await `check` only when it returns `None`.
    ///
    /// # Errors
    ///
    /// As [`check`](Revocation::check).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use sealed_session::revocation::{MemoryRevocations, Revocation};
    /// use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let now = SystemTime::now();
    /// let mut session = Session::new();
    /// session.insert("user", "ada")?;
    /// let opened = codec.open(&codec.seal(&mut session, now)?.request_header(), now)?;
    ///
    /// // The in-memory store answers at once: no runtime needed.
    /// let revocation = Revocation::new(MemoryRevocations::new(), "user");
    /// assert_eq!(revocation.try_check(&opened), Some(Ok(())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_check(&self, session: &Session) -> Option<Result<(), RejectReason>> {
        let Some(query) = self.query(session) else { return Some(Ok(())) };
        self.store.try_is_revoked(&query).map(|answer| self.verdict(answer))
    }

    /// What the store is asked about `session`; `None` for a new session (no id yet).
    fn query<'s>(&self, session: &'s Session) -> Option<Query<'s>> {
        let (Some(id), Some(issued_at)) = (session.id(), session.issued_at()) else {
            return None;
        };
        let subject = session.get_raw(&self.subject_key);
        Some(Query { id, subject, issued_at: to_unix(issued_at) })
    }

    /// The store's answer, with the failure policy applied.
    fn verdict(&self, answer: Result<bool, StoreError>) -> Result<(), RejectReason> {
        match answer {
            Ok(false) => Ok(()),
            Ok(true) => Err(RejectReason::Revoked),
            Err(error) => match self.policy {
                FailurePolicy::Accept => {
                    tracing::error!(%error, "revocation check failed; accepting the session (policy: accept)");
                    Ok(())
                }
                FailurePolicy::Reject => {
                    tracing::error!(%error, "revocation check failed; rejecting the session (policy: reject)");
                    Err(RejectReason::RevocationUnavailable)
                }
            },
        }
    }

    /// Revokes one session, until its absolute expiry (the adapters call this for a purged
    /// session, so logout revokes the cookie a thief may have copied).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot record it.
    pub async fn revoke_session(
        &self,
        id: SessionId,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.store.revoke_session(id, to_unix(expires_at)).await
    }

    /// Revokes every session of `subject` issued before `issued_before` ("log out everywhere").
    /// The entry is kept for the absolute timeout of `config`, after which every such session
    /// has expired anyway. Sessions issued later, such as the next login, are not affected.
    ///
    /// Issue times are whole Unix seconds, and a session issued at `issued_before`'s second is
    /// not revoked. To revoke everything up to now, pass `now + 1 s`: that covers the whole
    /// current second, including a login made later in that same second (the demo waits out
    /// the second before answering, so the user's next login is never caught).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot record it.
    pub async fn revoke_subject<T: Serialize + ?Sized>(
        &self,
        subject: &T,
        issued_before: SystemTime,
        config: &crate::SessionConfig,
    ) -> Result<(), StoreError> {
        let subject = rmp_serde::to_vec_named(subject).map_err(|e| StoreError(e.to_string()))?;
        let before = to_unix(issued_before);
        let until = before
            .saturating_add(config.absolute_timeout().as_secs() + config.clock_skew().as_secs());
        self.store.revoke_subject(&subject, before, until).await
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("subject_key", &self.subject_key)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Revocations kept in this process's memory: for a single node, and for tests. Entries are
/// dropped once their time has passed.
#[derive(Default)]
pub struct MemoryRevocations {
    inner: RwLock<MemoryInner>,
    now: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
}

#[derive(Default)]
struct MemoryInner {
    sessions: HashMap<SessionId, u64>,
    subjects: HashMap<Vec<u8>, (u64, u64)>,
}

impl MemoryRevocations {
    /// An empty store reading the system clock to expire entries.
    pub fn new() -> MemoryRevocations {
        MemoryRevocations::default()
    }

    /// An empty store reading `clock` to expire entries (for tests).
    pub fn with_clock(clock: impl crate::Clock) -> MemoryRevocations {
        MemoryRevocations {
            now: Some(Arc::new(move || to_unix(clock.now()))),
            ..Default::default()
        }
    }

    fn now(&self) -> u64 {
        self.now.as_ref().map_or_else(|| to_unix(SystemTime::now()), |now| now())
    }

    /// How many entries the store holds (expired ones included until the next write).
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.sessions.len() + inner.subjects.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryRevocations {
    fn answer(&self, query: &Query<'_>) -> bool {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let by_id = inner.sessions.get(&query.id);
        let by_subject = query.subject.and_then(|s| inner.subjects.get(s));
        if by_id.is_none() && by_subject.is_none() {
            // The usual answer, found without reading the clock.
            return false;
        }
        let now = self.now();
        by_id.is_some_and(|&until| until >= now)
            || by_subject.is_some_and(|&(before, until)| until >= now && query.issued_at < before)
    }
}

impl RevocationStore for MemoryRevocations {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(Ok(self.answer(&query))))
    }

    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        Some(Ok(self.answer(query)))
    }

    fn revoke_session(&self, id: SessionId, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let now = self.now();
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.sessions.retain(|_, until| *until >= now);
        inner.sessions.insert(id, until);
        Box::pin(std::future::ready(Ok(())))
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        issued_before: u64,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let now = self.now();
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.subjects.retain(|_, (_, until)| *until >= now);
        let entry = inner.subjects.entry(subject.to_vec()).or_insert((0, 0));
        *entry = (entry.0.max(issued_before), entry.1.max(until));
        Box::pin(std::future::ready(Ok(())))
    }
}

impl fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocations").field("entries", &self.len()).finish()
    }
}

/// How long the Redis store waits to connect or for an answer, by default.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(100);
