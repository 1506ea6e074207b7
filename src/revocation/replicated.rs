//! The replicated Redis store (feature `redis`): [`ReplicatedRevocations`].
//!
//! Every node holds the live revocations in memory and answers every check from there; Redis
//! keeps the durable copy (the strict store's keys) and a stream of revocation events that
//! every node follows. The moving parts, and why:
//!
//! * a revocation is applied to this node's memory first (so this node enforces it at once,
//!   Redis or not), then written to Redis: the subject's hash, then an event on the stream
//!   (`XADD ... MAXLEN ~`); a write that fails is queued and published when Redis is back;
//! * a follower task reads the stream (`XREAD BLOCK`) on its own connection and merges what
//!   others revoked; every answer, even an empty one after the block time, proves Redis
//!   reachable, so the replica knows how fresh it is;
//! * whenever it cannot be sure it saw every event (at start; after any connection failure,
//!   which covers a restarted or failed-over Redis; when the stream was trimmed past its
//!   position, seen from `XINFO STREAM`'s `max-deleted-entry-id`), it loads every subject hash
//!   again and merges them: merging only ever adds, so nothing known is forgotten before it
//!   expires. When Redis lost data (a new run id, a mark key gone, evictions: see
//!   `loss.rs`), one node writes back everything it knows in bulk, and the others write only
//!   if they hold something else (`recovery.rs`), so a node started afterwards learns it;
//! * the staleness bound is a grace period (`health.rs`): a failed command changes no answer;
//!   the replica turns stale only when its last proof of having missed nothing is older than
//!   the bound.

mod cap;
mod follower;
mod health;
mod loss;
mod node;
mod recovery;
mod reload;
mod snapshot;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use self::cap::{Dropped, Range};
use self::follower::follow;
use self::health::{Freshness, watch};
use self::node::{Change, Event, Inner, RECENT_CAP, Recent};
use super::memory::RevocationSet;
use super::redis::{
    Connection, Keys, NEXT_GENERATION, Scripts, bounded, cluster, connect, eval, parse_generation,
};
use super::{
    BoxFuture, DEFAULT_KEY_PREFIX, DEFAULT_STORE_TIMEOUT, Query, RevocationStore, StoreError,
    next_generation,
};
use crate::session::SessionId;
use crate::time::to_unix;

/// How long a node may go without hearing from Redis before its answers count as stale, by
/// default.
pub const DEFAULT_STALENESS: Duration = Duration::from_secs(5);

/// How many entries (a subject's generation, a lineage) a node holds at most, by default:
/// about 200 MB at the measured size per entry.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// How many logouts of one subject a node holds before they fold into one "log out
/// everywhere" of that subject, by default.
pub const DEFAULT_LOGOUTS_PER_SUBJECT: usize = 8;

/// About how many events the stream keeps (`XADD ... MAXLEN ~`), by default. A node that falls
/// further behind than this reloads everything.
pub const DEFAULT_STREAM_LEN: usize = 100_000;

/// Revocations replicated to every node's memory through Redis: checks never leave the
/// process (no round trip, no dependency on Redis per request), at the price of a bounded
/// staleness. See the [module docs](super) for the semantics and
/// [`RedisRevocations`](super::RedisRevocations) for the strict alternative (one round trip
/// per check, always fresh).
///
/// **What it guarantees.** A revocation made on a node holds on that node at once, and on
/// every other node as soon as its event arrives (milliseconds on a LAN; see BENCHMARKS.md).
/// A node that has not heard from Redis within the staleness bound ([`DEFAULT_STALENESS`]
/// unless configured) keeps refusing every revocation it knows, and answers a session it
/// knows nothing against with an error, which the [`FailurePolicy`](super::FailurePolicy)
/// turns into accept (and a logged error) or reject. A revocation made while Redis is
/// unreachable is enforced by its node at once and published when Redis is back.
///
/// **Memory.** Entries leave memory when the sessions they concern would have expired. Past
/// [`DEFAULT_LOGOUTS_PER_SUBJECT`] logouts of one subject (configurable), the next one folds
/// them into a "log out everywhere" of that subject, so one account cannot grow memory by
/// logging in and out. At most [`DEFAULT_MAX_ENTRIES`] (configurable) are held: past the cap a
/// node drops the subjects whose entries end soonest, logs an error, and remembers their
/// buckets (1 MiB for 65,536 buckets of subject digests) until those entries expire: sessions
/// of such a bucket are looked up in Redis (so [`try_is_revoked`](RevocationStore::try_is_revoked)
/// returns `None` for them and the adapters await the lookup), and get the failure policy when
/// Redis cannot answer or has lost data since. A cap bounds memory, never correctness, and only
/// the dropped subjects' buckets cost a round trip.
///
/// Redis keys: the strict store's (so both can share a prefix and a server), plus
/// `<prefix>events`, the stream. Works on one server ([`build`](ReplicatedRevocationsBuilder::build))
/// or a Redis Cluster ([`build_cluster`](ReplicatedRevocationsBuilder::build_cluster)).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use sealed_session::revocation::{FailurePolicy, ReplicatedRevocations, Revocation};
///
/// # async fn run() -> Result<(), sealed_session::revocation::StoreError> {
/// let store = ReplicatedRevocations::builder()
///     .prefix("myapp:sessions:")
///     .staleness(Duration::from_secs(2))
///     .build("redis://127.0.0.1:6379/")?;
/// store.ready(Duration::from_secs(5)).await?; // optional: wait for the first full load
/// let revocation = Revocation::new(store, "user").failure_policy(FailurePolicy::Accept);
/// # let _ = revocation;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReplicatedRevocations {
    inner: Arc<Inner>,
}

/// Configures a [`ReplicatedRevocations`]; made by [`ReplicatedRevocations::builder`].
#[derive(Debug, Clone)]
pub struct ReplicatedRevocationsBuilder {
    prefix: String,
    timeout: Duration,
    staleness: Duration,
    max_entries: usize,
    fold_after: usize,
    snapshot: Option<std::path::PathBuf>,
    stream_len: usize,
}

impl Default for ReplicatedRevocationsBuilder {
    fn default() -> ReplicatedRevocationsBuilder {
        ReplicatedRevocationsBuilder {
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
            staleness: DEFAULT_STALENESS,
            max_entries: DEFAULT_MAX_ENTRIES,
            fold_after: DEFAULT_LOGOUTS_PER_SUBJECT,
            snapshot: None,
            stream_len: DEFAULT_STREAM_LEN,
        }
    }
}

impl ReplicatedRevocationsBuilder {
    /// The prefix of every key (default [`DEFAULT_KEY_PREFIX`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> ReplicatedRevocationsBuilder {
        self.prefix = prefix.into();
        self
    }

    /// How long one write (or connection attempt) may take (default
    /// [`DEFAULT_STORE_TIMEOUT`]); a write that takes longer is queued.
    pub fn timeout(mut self, timeout: Duration) -> ReplicatedRevocationsBuilder {
        self.timeout = timeout;
        self
    }

    /// How long a node may go without hearing from Redis before sessions it knows nothing
    /// against are answered by the failure policy (default [`DEFAULT_STALENESS`], at least
    /// 30 ms). The follower blocks on the stream for a third of it, and every read of an idle
    /// stream is the node's proof that it missed nothing. Redis answers a blocking read's
    /// timeout on its timer tick (every `1000 / hz` ms: 100 ms at its default `hz` of 10), so
    /// a bound under about three ticks (300 ms at the default) lets a node turn stale between
    /// two reads of an idle stream; the default bound is 50 ticks.
    pub fn staleness(mut self, staleness: Duration) -> ReplicatedRevocationsBuilder {
        self.staleness = staleness.max(Duration::from_millis(30));
        self
    }

    /// The most entries a node holds (default [`DEFAULT_MAX_ENTRIES`]); see the type's docs
    /// for what happens past it.
    pub fn max_entries(mut self, max: usize) -> ReplicatedRevocationsBuilder {
        self.max_entries = max.max(1);
        self
    }

    /// How many logouts of one subject a node holds (default
    /// [`DEFAULT_LOGOUTS_PER_SUBJECT`], at least 1). The next logout of that subject folds them
    /// into one "log out everywhere": every session of the subject signed in before it is
    /// revoked (its other devices too), and the subject holds two entries at most until its
    /// next logouts, so memory grows with users, not with one account's logins.
    pub fn logouts_per_subject(mut self, max: usize) -> ReplicatedRevocationsBuilder {
        self.fold_after = max.max(1);
        self
    }

    /// A file where the node keeps a snapshot of what it holds (none by default): written
    /// atomically (mode 0600: it names users) at most once per staleness bound when something
    /// changed, and loaded when the store is built, so a node restarted while Redis is down
    /// keeps refusing what it knew. A node without one (or a brand-new node) knows nothing
    /// until it reaches Redis: the failure policy answers every session meanwhile.
    pub fn snapshot(mut self, path: impl Into<std::path::PathBuf>) -> ReplicatedRevocationsBuilder {
        self.snapshot = Some(path.into());
        self
    }

    /// About how many events the stream keeps (default [`DEFAULT_STREAM_LEN`]).
    pub fn stream_len(mut self, len: usize) -> ReplicatedRevocationsBuilder {
        self.stream_len = len.max(1);
        self
    }

    /// The store for the server at `url`, and its follower task on the current tokio runtime
    /// (it stops when the last clone of the store is dropped). Does no I/O itself: the first
    /// full load runs in the background (see [`ReplicatedRevocations::ready`]).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when `url` is not a Redis URL, or when called outside a tokio runtime.
    pub fn build(self, url: &str) -> Result<ReplicatedRevocations, StoreError> {
        let name = "ReplicatedRevocations";
        let writer = Connection::Single(connect(url, name, self.timeout, self.timeout)?);
        // The follower blocks for a third of the bound; its answer may take the rest.
        let follower = Connection::Single(connect(url, name, self.timeout, self.staleness)?);
        Ok(self.start(writer, follower))
    }

    /// The store for a Redis Cluster reached through any of `nodes` (Redis URLs): the stream
    /// and every entry are single keys, routed by the cluster; a reload scans every primary.
    ///
    /// # Errors
    ///
    /// As [`build`](ReplicatedRevocationsBuilder::build).
    pub fn build_cluster(self, nodes: &[&str]) -> Result<ReplicatedRevocations, StoreError> {
        let name = "ReplicatedRevocations";
        let writer = cluster(nodes, name, self.timeout, self.timeout)?;
        let follower = cluster(nodes, name, self.timeout, self.staleness)?;
        Ok(self.start(writer, follower))
    }

    fn start(self, writer: Connection, follower: Connection) -> ReplicatedRevocations {
        let mut set = RevocationSet::default();
        if let Some(path) = &self.snapshot {
            snapshot::load(path, &mut set, to_unix(SystemTime::now()));
        }
        let inner = Arc::new(Inner {
            set: RwLock::new(set),
            freshness: Freshness::new(self.staleness),
            changed: std::sync::atomic::AtomicBool::new(false),
            dropped: Dropped::default(),
            marks: Mutex::new(None),
            fold_after: self.fold_after,
            pending: Mutex::new(VecDeque::new()),
            recent: Mutex::new(Recent::new(self.staleness.saturating_mul(2), RECENT_CAP)),
            writer,
            keys: Keys { prefix: self.prefix },
            scripts: Scripts::new(),
            timeout: self.timeout.saturating_mul(2),
            staleness: self.staleness,
            max_entries: self.max_entries,
            stream_len: self.stream_len,
        });
        tokio::spawn(follow(Arc::downgrade(&inner), follower));
        tokio::spawn(watch(Arc::downgrade(&inner)));
        if let Some(path) = self.snapshot {
            tokio::spawn(snapshot::keep(Arc::downgrade(&inner), path));
        }
        ReplicatedRevocations { inner }
    }
}

impl ReplicatedRevocations {
    /// A builder for the prefix, timeouts, staleness bound and cap.
    pub fn builder() -> ReplicatedRevocationsBuilder {
        ReplicatedRevocationsBuilder::default()
    }

    /// The store for the server at `url` with the defaults. See
    /// [`ReplicatedRevocationsBuilder::build`].
    ///
    /// # Errors
    ///
    /// As [`ReplicatedRevocationsBuilder::build`].
    pub fn new(url: &str) -> Result<ReplicatedRevocations, StoreError> {
        ReplicatedRevocations::builder().build(url)
    }

    /// Whether this node is current: it loaded everything and heard from Redis within the
    /// staleness bound, and holds every entry (under its cap).
    pub fn is_current(&self) -> bool {
        self.inner.freshness.is_current()
    }

    /// Waits until this node is current, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when it is not current within `limit`.
    pub async fn ready(&self, limit: Duration) -> Result<(), StoreError> {
        let started = tokio::time::Instant::now();
        while !self.is_current() {
            if started.elapsed() >= limit {
                return Err(StoreError(format!("revocation replica not current within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// How many entries this node holds.
    pub fn len(&self) -> usize {
        self.inner.set.read().unwrap_or_else(PoisonError::into_inner).entries
    }

    /// Whether this node holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of this node's revocations wait for Redis.
    pub fn queued(&self) -> usize {
        self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The answer from memory; `None` when the subject's entries may have been dropped at the
    /// cap and only Redis can answer.
    fn answer(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        let known = {
            let set = self.inner.set.read().unwrap_or_else(PoisonError::into_inner);
            set.answer(query, || to_unix(SystemTime::now()))
        };
        if known == Some(true) {
            return Some(Ok(true));
        }
        match self.inner.dropped.range(query.subject, || to_unix(SystemTime::now())) {
            Range::Held if self.is_current() => Some(Ok(false)),
            Range::Held => Some(Err(StoreError(
                "revocation replica is stale (see the logged cause)".to_owned(),
            ))),
            Range::Strict => None,
            Range::Lost => Some(Err(StoreError(
                "revocation entries dropped at the cap may have been lost by Redis".to_owned(),
            ))),
        }
    }

    /// A generation greater than every stamp given so far: Redis's, or this node's when Redis
    /// cannot answer (or this node's earlier revocations still wait for it).
    async fn mint(&self) -> (u64, bool) {
        let inner = &self.inner;
        let queued = !inner.pending.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        let given = if queued {
            Err(StoreError("earlier revocations are queued".to_owned()))
        } else {
            let mut connection = inner.writer.clone();
            let mut next = eval(NEXT_GENERATION, inner.keys.generation());
            next.arg(0);
            match bounded(inner.timeout, next.query_async::<String>(&mut connection)).await {
                Ok(text) => parse_generation(&text),
                Err(error) => Err(error),
            }
        };
        given.map(|generation| (generation, false)).unwrap_or_else(|error| {
            tracing::warn!(%error, "revocation generation given by this node: Redis unavailable");
            let latest = inner.set.read().unwrap_or_else(PoisonError::into_inner).latest;
            (next_generation(latest, SystemTime::now()), true)
        })
    }
}

impl RevocationStore for ReplicatedRevocations {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            match self.answer(&query) {
                Some(answer) => answer,
                None => self.inner.lookup(&query).await,
            }
        })
    }

    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        self.answer(query)
    }

    /// The latest generation this node knows; before its first full load, Redis's counter
    /// (a node just started must not stamp a login as older than revocations it has not
    /// loaded yet).
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let latest = self.inner.set.read().unwrap_or_else(PoisonError::into_inner).latest;
            if self.inner.freshness.is_current() {
                return Ok(latest);
            }
            let mut connection = self.inner.writer.clone();
            let mut get = ::redis::cmd("GET");
            get.arg(self.inner.keys.generation());
            match bounded(self.inner.timeout, get.query_async::<Option<String>>(&mut connection))
                .await
            {
                Ok(Some(text)) => Ok(parse_generation(&text)?.max(latest)),
                Ok(None) | Err(_) => Ok(latest),
            }
        })
    }

    fn revoke_lineage<'a>(
        &'a self,
        subject: &'a [u8],
        lineage: SessionId,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // Past a few logouts of one subject, they fold into one "log out everywhere": every
            // logged-out session signed in before it, so the generation covers them, and one
            // account cannot grow every node's memory by logging in and out in a loop.
            let held: Option<(Vec<SessionId>, u64)> = {
                let set = self.inner.set.read().unwrap_or_else(PoisonError::into_inner);
                set.subjects.get(subject).filter(|e| e.lineages.len() >= self.inner.fold_after).map(
                    |entry| (entry.lineages.iter().map(|&(id, _)| id).collect(), entry.until()),
                )
            };
            let subject = subject.to_vec();
            let event = match held {
                None => {
                    let change = Change::Lineage(lineage);
                    Event { subject, change, until, covers: vec![], offline: false }
                }
                Some((mut covers, held_until)) => {
                    // Minted after every covered logout was recorded: greater than their stamps.
                    let (generation, offline) = self.mint().await;
                    covers.push(lineage);
                    tracing::info!(
                        logouts = covers.len(),
                        "logouts of one subject folded into a \"log out everywhere\""
                    );
                    let change = Change::Generation(generation);
                    Event { subject, change, until: until.max(held_until), covers, offline }
                }
            };
            self.inner.revoke(event).await;
            Ok(())
        })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let (generation, offline) = self.mint().await;
            let change = Change::Generation(generation);
            let subject = subject.to_vec();
            let event = Event { subject, change, until, covers: vec![], offline };
            self.inner.revoke(event).await;
            Ok(generation)
        })
    }
}

impl fmt::Debug for ReplicatedRevocations {
    /// The URL is left out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicatedRevocations")
            .field("prefix", &self.inner.keys.prefix)
            .field("entries", &self.len())
            .field("current", &self.is_current())
            .field("staleness", &self.inner.staleness)
            .finish_non_exhaustive()
    }
}
