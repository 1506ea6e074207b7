//! Revocation: "log out" that a copied cookie cannot undo, and "log out everywhere".
//!
//! (This file is the store trait and [`Revocation`], the one API adapters and apps call; it
//! runs a little past 500 lines because `Revocation`'s methods are one idea, the check and the
//! three ways to revoke, read best together. The stores live in the files beside it.)
//!
//! A stateless session stays valid until it expires, even after logout: whoever copied the
//! cookie can replay it. Revocation closes that gap without making the session itself stateful:
//! the session still lives in the cookie, and a small shared store only remembers what was
//! revoked, each entry until the sessions it concerns would have expired anyway.
//!
//! * **One session, with every id it had**: [`Revocation::revoke_purged`] (the adapters call it
//!   when a purged session is saved, so logout revokes). A session keeps a *lineage* id across
//!   [`Session::renew`], so a copy taken before a renewal is revoked with it.
//! * **Every session of a subject** signed in before now ("log out everywhere", "password
//!   changed"): [`Revocation::revoke_subject`]. The [`Subject`] is read from a session value
//!   (for example the user id under `"user"`, or the field `id` of a struct stored there).
//!
//! Only sessions with a subject are ever recorded or looked up: an anonymous session holds no
//! privilege worth revoking, and an attacker cannot grow a store without signing in (each
//! logout adds one entry, each "log out everywhere" one per subject, each kept at most for the
//! absolute timeout).
//!
//! # Generations: "log out everywhere" under clock skew
//!
//! Comparing issue times would need the nodes' clocks to agree: a session issued by a node
//! 30 s fast would look newer than a revocation made on a node with the right time. Instead,
//! the store numbers its revocations with *generations* that only grow, from one clock (its
//! own: Redis's, or this process's), and a session records the store's latest generation when
//! its subject signs in (the *stamp*, under [`STAMP_KEY`], which the adapters add when a
//! session first gets a subject, and [`Revocation::stamp`] adds by hand). A subject's
//! revocation revokes exactly the sessions stamped with a smaller generation: every earlier
//! sign-in whatever the clocks say, and no later one. A session with a subject and no stamp
//! (sealed by hand without [`Revocation::stamp`]) counts as generation 0: revoked by any
//! revocation of its subject still in force.
//!
//! The check runs after a token authenticates. The library stays storage-free by default: the
//! store is the [`RevocationStore`] trait, with [`MemoryRevocations`] for one process and tests,
//! and two Redis stores behind the `redis` feature: `RedisRevocations`, strict (one `MGET` per
//! check), and `ReplicatedRevocations`, which answers from memory.
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::SessionConfig;
use crate::error::RejectReason;
use crate::session::{Session, SessionId};
use crate::time::to_unix;

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod replicated;
mod subject;

pub use self::memory::MemoryRevocations;
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_KEY_PREFIX, RedisRevocations, RedisRevocationsBuilder};
#[cfg(feature = "redis")]
pub use self::replicated::{
    DEFAULT_LOGOUTS_PER_SUBJECT, DEFAULT_MAX_ENTRIES, DEFAULT_STALENESS, DEFAULT_STREAM_LEN,
    ReplicatedRevocations, ReplicatedRevocationsBuilder,
};
pub use self::subject::{STAMP_KEY, Subject, SubjectError};
use self::subject::{Stamp, tag};

/// A boxed future, as the store trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A revocation store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct StoreError(pub String);

/// A revocation could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The store could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The subject given, or found in the session, is not of the configured shape.
    #[error(transparent)]
    Subject(#[from] SubjectError),
}

/// What a store is asked about one session (one with a subject: others are never revoked).
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The session's lineage: the id it had when its subject signed in, kept across renewals
    /// (its own id when it has no stamp).
    pub lineage: SessionId,
    /// The subject (its MessagePack bytes: a string, an integer or a byte string).
    pub subject: &'a [u8],
    /// The store's generation when the subject signed in (0 when the session has no stamp).
    pub generation: u64,
}

/// Where revocations are kept. Implementations must bound their own time (timeouts), and may
/// drop an entry once the time it is given has passed: the sessions it concerns have expired.
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether the query's lineage is revoked for its subject, or the subject revoked at a
    /// generation greater than the query's.
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The answer [`is_revoked`](RevocationStore::is_revoked) would give, when the store has it
    /// without waiting (an in-memory store); `None`, the default, means "ask `is_revoked`".
    /// Adapters call this first on every request, so a store that implements it costs them no
    /// boxed future.
    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        let _ = query;
        None
    }

    /// The latest generation the store has given a revocation (0 for none): what a session
    /// signing in now is stamped with.
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Revokes the sessions of `subject` with lineage `lineage`, until `until` (Unix seconds).
    fn revoke_lineage<'a>(
        &'a self,
        subject: &'a [u8],
        lineage: SessionId,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Revokes every session of `subject` stamped before now: gives the revocation a
    /// generation greater than any given before (and than the store's clock in microseconds,
    /// so generations keep growing even if the store loses its data), keeps the entry until
    /// `until`, and returns the generation.
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// The generation after `latest` at `now`: greater than `latest`, and at least `now` in
/// microseconds since 1970, so that a store that lost its data (a restarted Redis) still gives
/// generations greater than the stamps sessions carry.
pub(crate) fn next_generation(latest: u64, now: SystemTime) -> u64 {
    let micros = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_micros());
    latest.saturating_add(1).max(u64::try_from(micros).unwrap_or(u64::MAX))
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

/// A revocation check: a store, where sessions name their [`Subject`], and a failure policy.
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::revocation::{MemoryRevocations, Revocation};
/// use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig};
///
/// # tokio_test_block_on(async {
/// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
/// let revocation = Revocation::new(MemoryRevocations::new(), "user");
/// let now = SystemTime::now();
///
/// // Signing in: the subject, and the stamp (the adapters add it on their own).
/// let mut session = Session::new();
/// session.insert("user", "ada")?;
/// revocation.stamp(&mut session).await?;
/// let cookies = codec.seal(&mut session, now)?.request_header();
///
/// // "Log out everywhere": every session of ada signed in before this call is revoked.
/// revocation.revoke_subject(&"ada", now, codec.config()).await?;
/// let replayed = codec.open(&cookies, now)?;
/// assert_eq!(revocation.check(&replayed).await, Err(RejectReason::Revoked));
///
/// // Signing in again, right after: not revoked.
/// let mut again = Session::new();
/// again.insert("user", "ada")?;
/// revocation.stamp(&mut again).await?;
/// let again = codec.open(&codec.seal(&mut again, now)?.request_header(), now)?;
/// assert_eq!(revocation.check(&again).await, Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Revocation {
    store: Arc<dyn RevocationStore>,
    subject: Subject,
    policy: FailurePolicy,
}

impl Revocation {
    /// A check against `store`, reading a session's subject as `subject` says (a plain key
    /// such as `"user"` converts into [`Subject::key`]).
    pub fn new(store: impl RevocationStore, subject: impl Into<Subject>) -> Revocation {
        Revocation {
            store: Arc::new(store),
            subject: subject.into(),
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

    /// Where sessions name their subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Checks an opened session. A new session (no id yet) or one without a subject is never
    /// revoked.
    ///
    /// # Errors
    ///
    /// [`RejectReason::Revoked`] when it is revoked, and
    /// [`RejectReason::RevocationUnavailable`] when the store cannot answer (or the session's
    /// subject is not of the configured shape) under [`FailurePolicy::Reject`].
    pub async fn check(&self, session: &Session) -> Result<(), RejectReason> {
        let query = match self.query(session) {
            Ok(Some(query)) => query,
            Ok(None) => return Ok(()),
            Err(error) => return self.verdict(Err(error)),
        };
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
        let query = match self.query(session) {
            Ok(Some(query)) => query,
            Ok(None) => return Some(Ok(())),
            Err(error) => return Some(self.verdict(Err(error))),
        };
        self.store.try_is_revoked(&query).map(|answer| self.verdict(answer))
    }

    /// What the store is asked about `session`; `None` for a new session (no id yet) or one
    /// without a subject.
    fn query<'s>(&self, session: &'s Session) -> Result<Option<Query<'s>>, StoreError> {
        let Some(id) = session.id() else { return Ok(None) };
        let subject = match self.subject.extract(|key| session.get_raw(key)) {
            Ok(Some(subject)) => subject,
            Ok(None) => return Ok(None),
            Err(error) => return Err(self.misconfigured(error)),
        };
        let stamp = session.get_raw(STAMP_KEY).and_then(Stamp::parse);
        let (lineage, generation) =
            stamp.map_or((id, 0), |stamp| (stamp.lineage, stamp.generation));
        Ok(Some(Query { lineage, subject, generation }))
    }

    /// A subject of the wrong shape in a session: a configuration mistake, reported loudly.
    fn misconfigured(&self, error: SubjectError) -> StoreError {
        let key = self.subject.session_key();
        StoreError(format!("the session value under {key:?} does not match the subject: {error}"))
    }

    /// The store's answer, with the failure policy applied.
    fn verdict(&self, answer: Result<bool, StoreError>) -> Result<(), RejectReason> {
        crate::metrics::revocation_answered(
            answer.as_ref().ok().copied(),
            self.policy == FailurePolicy::Reject,
        );
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

    /// Whether `session` needs a new stamp before it is sealed: it changed, it has a subject,
    /// and it has no stamp or one taken for another subject (the user switched accounts
    /// without logging out). The adapters check this on every changed session.
    pub fn needs_stamp(&self, session: &Session) -> bool {
        if !session.is_changed() || session.is_purged() {
            return false;
        }
        match self.subject.extract(|key| session.get_raw(key)) {
            Ok(Some(subject)) => session
                .get_raw(STAMP_KEY)
                .and_then(Stamp::parse)
                .is_none_or(|stamp| stamp.tag != tag(subject)),
            Ok(None) => false,
            // Stamping reports it.
            Err(_) => true,
        }
    }

    /// Stamps a session whose subject just signed in with the store's current generation and
    /// a lineage (see the [module docs](self)): the session's id when it was sealed before (so
    /// copies taken before the stamp, checked under that id, are covered by a later logout), a
    /// new one otherwise. The adapters do it when
    /// [`needs_stamp`](Revocation::needs_stamp); call it yourself before sealing when you use
    /// [`SessionCodec`](crate::SessionCodec) directly. A session without a subject is left
    /// alone. When the store cannot answer, the stamp takes this node's clock in microseconds
    /// less [`OFFLINE_STAMP_MARGIN`] (generations are close to the store's clock in
    /// microseconds), with a warning: a node whose clock runs fast by up to the margin still
    /// stamps earlier than a later "log out everywhere", and a "log out everywhere" made within
    /// the margin before such a sign-in revokes it too (the safe side).
    ///
    /// # Errors
    ///
    /// [`RevokeError::Subject`] when the session's subject is not of the configured shape.
    pub async fn stamp(&self, session: &mut Session) -> Result<(), RevokeError> {
        self.stamp_at(session, SystemTime::now()).await
    }

    /// [`stamp`](Revocation::stamp) with this node's time given.
    async fn stamp_at(&self, session: &mut Session, now: SystemTime) -> Result<(), RevokeError> {
        let Some(subject) = self.subject.extract(|key| session.get_raw(key))? else {
            return Ok(());
        };
        let tag = tag(subject);
        let generation = match self.store.generation().await {
            Ok(generation) => generation,
            Err(error) => {
                tracing::warn!(%error, "revocation store unavailable at sign-in; stamping with this node's clock, less the margin");
                let earlier =
                    now.checked_sub(OFFLINE_STAMP_MARGIN).unwrap_or(SystemTime::UNIX_EPOCH);
                next_generation(0, earlier).saturating_sub(1)
            }
        };
        // A session sealed without a stamp (signed in before revocation was switched on) is
        // checked under its own id as lineage: keep that one, so a logout after this stamp
        // still covers the copies taken before it. A new session (no id yet), or one stamped
        // for another subject before (a switch of accounts, whose old lineage may be revoked
        // now), gets a fresh lineage.
        let unstamped = session.get_raw(STAMP_KEY).and_then(Stamp::parse).is_none();
        let lineage = match session.id().filter(|_| unstamped) {
            Some(id) => id,
            None => {
                let mut lineage = SessionId([0; crate::format::SESSION_ID_LEN]);
                getrandom::fill(&mut lineage.0)
                    .map_err(|_| StoreError("no randomness for a lineage id".to_owned()))?;
                lineage
            }
        };
        let stamp = Stamp { lineage, generation, tag };
        session
            .insert(STAMP_KEY, stamp.to_value())
            .map_err(|_| StoreError("the stamp could not be stored in the session".to_owned()))?;
        Ok(())
    }

    /// Revokes the session that [`Session::purge`] ended (logout), with every id it had since
    /// its subject signed in (its lineage), until every copy of it has expired on any node:
    /// the later of its absolute expiry and now plus the absolute timeout (a copy renewed
    /// before the logout got a lifetime of its own, starting no later than now), plus twice
    /// the clock skew (the checking node's clock and the store's may each be off). The
    /// adapters call it when they save a purged session. A session that was never sealed, or
    /// had no subject, records nothing.
    ///
    /// # Errors
    ///
    /// [`RevokeError`] when the store cannot record it, or the ended session's subject is not
    /// of the configured shape.
    pub async fn revoke_purged(
        &self,
        session: &Session,
        config: &SessionConfig,
    ) -> Result<(), RevokeError> {
        self.revoke_purged_at(session, SystemTime::now(), config).await
    }

    /// [`revoke_purged`](Revocation::revoke_purged) with this node's time given.
    pub(crate) async fn revoke_purged_at(
        &self,
        session: &Session,
        now: SystemTime,
        config: &SessionConfig,
    ) -> Result<(), RevokeError> {
        let Some((id, expires_at)) = session.ended() else { return Ok(()) };
        let get = |key: &str| session.ended_values.get(key).map(|(bytes, _)| bytes);
        let Some(subject) = self.subject.extract(get)? else { return Ok(()) };
        let lineage = get(STAMP_KEY).and_then(Stamp::parse).map_or(id, |stamp| stamp.lineage);
        let until = copies_end(to_unix(expires_at), now, config);
        Ok(self.store.revoke_lineage(subject, lineage, until).await?)
    }

    /// The subject and lineage `session` was opened with, when this request changed its
    /// subject or removed it without a logout (a user signing in as another, an identity layer
    /// that deletes its keys instead of purging): that sign-in ended here as surely as with
    /// [`Session::purge`], so the adapters revoke its lineage as a logout's. `None` for an
    /// unchanged or purged session (a purge is revoked by
    /// [`revoke_purged`](Revocation::revoke_purged)), one opened without a subject, and one
    /// whose subject is the same.
    pub(crate) fn left_subject<'s>(&self, session: &'s Session) -> Option<(&'s [u8], SessionId)> {
        if !session.is_changed() || session.is_purged() {
            return None;
        }
        let id = session.id()?;
        let opened = |key: &str| session.values.get_opened(key).map(|(bytes, _)| bytes);
        let before = self.subject.extract(opened).ok()??;
        let now = self.subject.extract(|key| session.get_raw(key)).ok().flatten();
        if now == Some(before) {
            return None;
        }
        let lineage = opened(STAMP_KEY).and_then(Stamp::parse).map_or(id, |stamp| stamp.lineage);
        Some((before, lineage))
    }

    /// Revokes the sign-in [`left_subject`](Revocation::left_subject) finds, if any, as a
    /// logout of it at `now`.
    pub(crate) async fn revoke_left_subject_at(
        &self,
        session: &Session,
        now: SystemTime,
        config: &SessionConfig,
    ) -> Result<(), RevokeError> {
        let Some((subject, lineage)) = self.left_subject(session) else { return Ok(()) };
        let expires_at = session.meta.map_or(0, |meta| meta.expires_at);
        let until = copies_end(expires_at, now, config);
        Ok(self.store.revoke_lineage(subject, lineage, until).await?)
    }

    /// Revokes every session of `subject` signed in before this call ("log out everywhere"),
    /// on every node, whatever their clocks say; sessions signed in afterwards, such as the
    /// next login, are not affected. `now` only sets how long the entry is kept: the absolute
    /// timeout of `config` plus twice its clock skew, after which every such session has
    /// expired anyway.
    ///
    /// # Errors
    ///
    /// [`RevokeError::Subject`] when `subject` is not a string, an integer or bytes (pass the
    /// id, not a struct holding it), [`RevokeError::Store`] when the store cannot record it.
    pub async fn revoke_subject<T: Serialize + ?Sized>(
        &self,
        subject: &T,
        now: SystemTime,
        config: &SessionConfig,
    ) -> Result<(), RevokeError> {
        let subject = subject::encode(subject)?;
        let until = to_unix(now)
            .saturating_add(config.absolute_timeout().as_secs())
            .saturating_add(twice(config.clock_skew()));
        self.store.revoke_subject(&subject, until).await?;
        Ok(())
    }
}

/// Twice `skew`, in seconds, saturating.
fn twice(skew: Duration) -> u64 {
    skew.as_secs().saturating_mul(2)
}

/// Until when a revocation of a session that ends at `expires_at` (Unix seconds), made at
/// `now`, must be kept: any copy of it was sealed (or renewed, with a lifetime of its own) no
/// later than now, so it ends by the later of the two ends, and a node's clock and the
/// store's may each be off by the skew.
fn copies_end(expires_at: u64, now: SystemTime, config: &SessionConfig) -> u64 {
    let renewed_now = to_unix(now).saturating_add(config.absolute_timeout().as_secs());
    expires_at.max(renewed_now).saturating_add(twice(config.clock_skew()))
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("subject", &self.subject)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How far ahead of the store's clock a node's clock may run and still stamp a sign-in made
/// while the store cannot answer earlier than any later "log out everywhere": the default
/// clock skew of [`SessionConfig`].
pub const OFFLINE_STAMP_MARGIN: Duration = Duration::from_secs(60);

/// How long the Redis stores wait to connect or for an answer, by default.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, KeyRing, SessionCodec};

    /// A store that cannot give a generation (unreachable at sign-in) but records revocations
    /// in memory, at the store's (true) time.
    struct Unreachable(MemoryRevocations);

    impl RevocationStore for Unreachable {
        fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
            self.0.is_revoked(query)
        }
        fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
            Box::pin(std::future::ready(Err(StoreError("unreachable".to_owned()))))
        }
        fn revoke_lineage<'a>(
            &'a self,
            subject: &'a [u8],
            lineage: SessionId,
            until: u64,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            self.0.revoke_lineage(subject, lineage, until)
        }
        fn revoke_subject<'a>(
            &'a self,
            subject: &'a [u8],
            until: u64,
        ) -> BoxFuture<'a, Result<u64, StoreError>> {
            self.0.revoke_subject(subject, until)
        }
    }

    /// A sign-in stamped while the store is unreachable, on a node whose clock runs fast, must
    /// not escape a "log out everywhere" made after it (issue 23, item 3's mirror case).
    #[tokio::test]
    async fn an_offline_stamp_from_a_fast_clock_is_still_revoked_later() {
        let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
        let true_now = SystemTime::now();
        // (how fast the signing-in node's clock runs, revoked by a later "log out everywhere"?)
        let table = [(0, true), (1, true), (30, true), (59, true)];
        for (fast, revoked) in table {
            let revocation = Revocation::new(Unreachable(MemoryRevocations::new()), "user");
            let mut session = Session::new();
            session.insert("user", "ada").expect("a string");
            let node_clock = true_now + Duration::from_secs(fast);
            revocation.stamp_at(&mut session, node_clock).await.expect("a string subject");
            let header = codec.seal(&mut session, node_clock).expect("seals").request_header();
            // The store is back; the user logs out everywhere, a moment later in true time.
            revocation.revoke_subject(&"ada", true_now, codec.config()).await.expect("recorded");
            let opened = codec.open(&header, true_now).expect("opens within the skew");
            let verdict = revocation.check(&opened).await;
            assert_eq!(verdict.is_err(), revoked, "clock {fast} s fast: {verdict:?}");
        }
    }
}
