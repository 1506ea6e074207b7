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
//!   expires. When Redis's run id changed (a restart, perhaps empty), it also writes back
//!   everything it knows, so a node started afterwards learns it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use ::redis::Value;

use super::memory::RevocationSet;
use super::redis::{
    Connection, Keys, NEXT_GENERATION, Scripts, bounded, cluster, connect, eval, lineage_field,
    parse_generation, parse_subject_field, subject_hex,
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

/// About how many events the stream keeps (`XADD ... MAXLEN ~`), by default. A node that falls
/// further behind than this reloads everything.
pub const DEFAULT_STREAM_LEN: usize = 100_000;

/// Events read per `XREAD`.
const READ_BATCH: usize = 1_000;

/// Keys per `SCAN` step of a reload.
const SCAN_BATCH: usize = 1_000;

/// How long the follower waits before trying Redis again after a failure.
const RETRY: Duration = Duration::from_millis(100);

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
/// **Memory.** Entries leave memory when the sessions they concern would have expired. At
/// most [`DEFAULT_MAX_ENTRIES`] (configurable) are held: past the cap a node drops the
/// subjects whose entries end soonest, logs an error, and until it can hold everything again
/// answers sessions it knows nothing against as stale (the failure policy decides), so a cap
/// too small never silently forgets a revocation under [`FailurePolicy::Reject`](super::FailurePolicy::Reject).
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
    stream_len: usize,
}

impl Default for ReplicatedRevocationsBuilder {
    fn default() -> ReplicatedRevocationsBuilder {
        ReplicatedRevocationsBuilder {
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
            staleness: DEFAULT_STALENESS,
            max_entries: DEFAULT_MAX_ENTRIES,
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
    /// 30 ms). The follower blocks on the stream for a third of it.
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
        let inner = Arc::new(Inner {
            set: RwLock::new(RevocationSet::default()),
            current: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            pending: Mutex::new(VecDeque::new()),
            writer,
            keys: Keys { prefix: self.prefix },
            scripts: Scripts::new(),
            timeout: self.timeout.saturating_mul(2),
            staleness: self.staleness,
            max_entries: self.max_entries,
            stream_len: self.stream_len,
        });
        tokio::spawn(follow(Arc::downgrade(&inner), follower));
        ReplicatedRevocations { inner }
    }
}

/// What one node holds and shares.
struct Inner {
    set: RwLock<RevocationSet>,
    /// The follower heard from Redis within the bound and has loaded everything.
    current: AtomicBool,
    /// Entries were dropped at the cap: a miss may be a forgotten revocation.
    overflowed: AtomicBool,
    /// This node's revocations not yet written to Redis.
    pending: Mutex<VecDeque<Event>>,
    writer: Connection,
    keys: Keys,
    scripts: Scripts,
    /// The bound of one write.
    timeout: Duration,
    staleness: Duration,
    max_entries: usize,
    stream_len: usize,
}

/// One revocation, as applied, written and streamed.
#[derive(Debug, Clone)]
struct Event {
    subject: Vec<u8>,
    change: Change,
    until: u64,
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Generation(u64),
    Lineage(SessionId),
}

impl Inner {
    fn set(&self) -> std::sync::RwLockWriteGuard<'_, RevocationSet> {
        self.set.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies an event to memory, then enforces the cap.
    fn apply(&self, events: &[Event]) {
        let mut set = self.set();
        for event in events {
            match event.change {
                Change::Generation(generation) => {
                    set.add_generation(&event.subject, generation, event.until)
                }
                Change::Lineage(lineage) => set.add_lineage(&event.subject, lineage, event.until),
            };
        }
        self.enforce_cap(&mut set, events.last().map(|event| &event.subject[..]));
    }

    fn enforce_cap(&self, set: &mut RevocationSet, keep: Option<&[u8]>) {
        if set.entries <= self.max_entries {
            return;
        }
        set.expire(to_unix(SystemTime::now()));
        let dropped = set.shrink_to(self.max_entries, keep);
        if dropped > 0 {
            self.overflowed.store(true, Ordering::SeqCst);
            tracing::error!(
                dropped,
                cap = self.max_entries,
                "revocation replica over its cap: dropped the entries ending soonest; sessions \
                 it knows nothing against get the failure policy until it fits again"
            );
        }
    }

    /// Writes one event to Redis: the durable entry, then the stream.
    async fn write(&self, event: &Event) -> Result<(), StoreError> {
        let mut connection = self.writer.clone();
        let key = self.keys.subject(&event.subject);
        let (record, field, value) = match event.change {
            Change::Generation(generation) => {
                // Raises the counter to a generation given while Redis was unreachable.
                let mut raise = eval(NEXT_GENERATION, self.keys.generation());
                raise.arg(generation);
                bounded(self.timeout, raise.query_async::<String>(&mut connection)).await?;
                let mut record = eval(&self.scripts.revoke_subject, key);
                record.arg(generation).arg(event.until).arg(subject_hex(&event.subject));
                (record, "g", generation.to_string())
            }
            Change::Lineage(lineage) => {
                let mut record = eval(&self.scripts.revoke_lineage, key);
                record.arg(lineage_field(lineage)).arg(event.until);
                record.arg(subject_hex(&event.subject));
                (record, "l", lineage.to_string())
            }
        };
        bounded(self.timeout, record.query_async::<()>(&mut connection)).await?;
        let mut add = ::redis::cmd("XADD");
        add.arg(self.keys.stream()).arg("MAXLEN").arg("~").arg(self.stream_len).arg("*");
        add.arg("s").arg(&event.subject[..]).arg(field).arg(value).arg("u").arg(event.until);
        bounded(self.timeout, add.query_async::<()>(&mut connection)).await
    }

    /// Applies an own revocation at once, then writes it, or queues it when Redis fails.
    async fn revoke(&self, event: Event) {
        self.apply(std::slice::from_ref(&event));
        let queued = !self.pending.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        if queued {
            // Keep the order: the follower publishes the queue when Redis is back.
            self.queue(event);
            return;
        }
        if let Err(error) = self.write(&event).await {
            tracing::warn!(%error, "revocation enforced here and queued: Redis unavailable");
            self.queue(event);
        }
    }

    fn queue(&self, event: Event) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).push_back(event);
    }

    /// Publishes queued revocations; stops at the first failure.
    async fn flush(&self) -> Result<(), StoreError> {
        loop {
            let next = self.pending.lock().unwrap_or_else(PoisonError::into_inner).front().cloned();
            let Some(event) = next else { return Ok(()) };
            self.write(&event).await?;
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        }
    }

    fn mark_stale(&self, error: &StoreError) {
        if self.current.swap(false, Ordering::SeqCst) {
            tracing::error!(
                %error,
                staleness = ?self.staleness,
                "revocation replica lost Redis: known revocations still hold, other sessions \
                 get the failure policy until it is current again"
            );
        }
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
        self.inner.current.load(Ordering::SeqCst) && !self.inner.overflowed.load(Ordering::SeqCst)
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

    fn answer(&self, query: &Query<'_>) -> Result<bool, StoreError> {
        let known = {
            let set = self.inner.set.read().unwrap_or_else(PoisonError::into_inner);
            set.answer(query, || to_unix(SystemTime::now()))
        };
        match known {
            Some(true) => Ok(true),
            _ if self.is_current() => Ok(false),
            _ => Err(StoreError("revocation replica is stale (see the logged cause)".to_owned())),
        }
    }
}

impl RevocationStore for ReplicatedRevocations {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(self.answer(&query)))
    }

    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        Some(self.answer(query))
    }

    /// The latest generation this node knows; before its first full load, Redis's counter
    /// (a node just started must not stamp a login as older than revocations it has not
    /// loaded yet).
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let latest = self.inner.set.read().unwrap_or_else(PoisonError::into_inner).latest;
            if self.inner.current.load(Ordering::SeqCst) {
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
        let event = Event { subject: subject.to_vec(), change: Change::Lineage(lineage), until };
        Box::pin(async move {
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
            let generation = given.unwrap_or_else(|error| {
                tracing::warn!(%error, "revocation generation given by this node: Redis unavailable");
                let latest = inner.set.read().unwrap_or_else(PoisonError::into_inner).latest;
                next_generation(latest, SystemTime::now())
            });
            let event =
                Event { subject: subject.to_vec(), change: Change::Generation(generation), until };
            inner.revoke(event).await;
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

/// The follower: load, then read the stream, until the store is dropped.
async fn follow(inner: Weak<Inner>, mut connection: Connection) {
    let mut run_ids: Option<Vec<String>> = None;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let position = match reload(&strong, &mut connection, &mut run_ids).await {
            Ok(position) => position,
            Err(error) => {
                strong.mark_stale(&error);
                drop(strong);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        drop(strong);
        if let Err(error) = tail(&inner, &mut connection, position).await {
            let Some(strong) = inner.upgrade() else { return };
            strong.mark_stale(&error);
            drop(strong);
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Reads the stream from `position` until something makes a reload necessary (`Err` for a
/// failure, `Ok` for lost events or a cap that has room again) or the store is dropped.
///
/// Lost events (the stream trimmed past this node's position, or recreated): whenever the
/// node has read everything there is to read, it must have read every entry added since its
/// position was taken; `XINFO STREAM`'s `entries-added` says how many that is.
async fn tail(
    weak: &Weak<Inner>,
    connection: &mut Connection,
    mut position: Position,
) -> Result<(), StoreError> {
    let mut last_expiry = 0;
    loop {
        let Some(inner) = weak.upgrade() else { return Ok(()) };
        let block = inner.staleness / 3;
        let limit = inner.staleness - block;
        if inner.flush().await.is_err() {
            tracing::debug!("queued revocations still wait for Redis");
        }
        let mut read = ::redis::cmd("XREAD");
        read.arg("COUNT").arg(READ_BATCH).arg("BLOCK").arg(block.as_millis().max(1) as u64);
        read.arg("STREAMS").arg(inner.keys.stream()).arg(&position.last);
        let keys = inner.keys.clone();
        // The store may be dropped while this waits: hold only a weak reference meanwhile.
        drop(inner);
        let reply: Value = bounded(limit, read.query_async(connection)).await?;
        let Some(inner) = weak.upgrade() else { return Ok(()) };
        let (events, last, read_count) = parse_read(&reply);
        inner.apply(&events);
        if let Some(last) = last {
            position.last = last;
        }
        position.added += read_count;
        let now = stream_position_of(&keys, connection, limit).await?;
        inner.current.store(true, Ordering::SeqCst);
        // Caught up (at the last id, or nothing left to read after the position), yet fewer
        // entries read than were added: some were trimmed unread. Fewer added than read: the
        // stream was recreated. (An entry added between the read and `XINFO` can only cause
        // an unneeded reload.)
        let caught_up = now.last == position.last || read_count == 0;
        let lost = (caught_up && now.added > position.added) || now.added < position.added;
        if lost {
            tracing::warn!("revocation stream lost events this node had not read: reloading");
            return Ok(());
        }
        let unix_now = to_unix(SystemTime::now());
        if unix_now != last_expiry {
            last_expiry = unix_now;
            let mut set = inner.set();
            set.expire(unix_now);
            if inner.overflowed.load(Ordering::SeqCst) && set.entries < inner.max_entries / 10 * 9 {
                tracing::warn!("revocation replica has room again: reloading");
                return Ok(());
            }
        }
    }
}

/// Loads every subject hash and merges it into memory; returns the stream position to
/// follow from. Writes back everything this node knows when Redis's run id changed.
async fn reload(
    inner: &Inner,
    connection: &mut Connection,
    run_ids: &mut Option<Vec<String>>,
) -> Result<Position, StoreError> {
    let limit = inner.staleness;
    let primaries = bounded(limit, connection.primaries()).await?;
    let mut ids = Vec::new();
    for primary in &primaries {
        let mut info = ::redis::cmd("INFO");
        info.arg("server");
        let server: String = bounded(limit, connection.query_at(&info, primary)).await?;
        let id = server.lines().find_map(|line| line.strip_prefix("run_id:"));
        ids.push(id.unwrap_or_default().trim().to_owned());
    }
    ids.sort();
    let restarted = run_ids.as_ref().is_some_and(|known| *known != ids);
    // The position first: events written during the load are read again (merging is
    // idempotent), none is missed.
    let position = stream_position(inner, connection, limit).await?;
    let mut loaded = Vec::new();
    for primary in &primaries {
        let mut cursor = 0u64;
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(inner.keys.subject_pattern()).arg("COUNT");
            scan.arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<String>) =
                bounded(limit, connection.query_at(&scan, primary)).await?;
            if primary.is_none() && !keys.is_empty() {
                let mut pipe = ::redis::pipe();
                for key in &keys {
                    pipe.cmd("HGETALL").arg(key);
                }
                let hashes: Vec<Vec<(String, String)>> =
                    bounded(limit, pipe.query_async(connection)).await?;
                loaded.extend(hashes);
            } else {
                // A cluster routes each key to its primary.
                for key in &keys {
                    let mut all = ::redis::cmd("HGETALL");
                    all.arg(key);
                    loaded.push(bounded(limit, all.query_async(connection)).await?);
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    let counter: Option<String> =
        bounded(limit, ::redis::cmd("GET").arg(inner.keys.generation()).query_async(connection))
            .await?;
    let subjects = read_hashes(&loaded);
    {
        let mut set = inner.set();
        if let Some(counter) = counter.as_deref().map(parse_generation).transpose()? {
            set.latest = set.latest.max(counter);
        }
        set.expire(to_unix(SystemTime::now()));
        for event in &subjects {
            match event.change {
                Change::Generation(generation) => {
                    set.add_generation(&event.subject, generation, event.until)
                }
                Change::Lineage(lineage) => set.add_lineage(&event.subject, lineage, event.until),
            };
        }
        if set.entries <= inner.max_entries {
            inner.overflowed.store(false, Ordering::SeqCst);
        }
        inner.enforce_cap(&mut set, None);
    }
    if restarted {
        tracing::warn!(
            "Redis restarted (new run id): writing back the revocations this node knows"
        );
        write_back(inner).await?;
    }
    *run_ids = Some(ids);
    inner.flush().await?;
    inner.current.store(true, Ordering::SeqCst);
    Ok(position)
}

/// Where the stream stands: the last id it gave and how many entries were ever added to it
/// (`XINFO STREAM`; a missing stream has given none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    last: String,
    added: u64,
}

async fn stream_position(
    inner: &Inner,
    connection: &mut Connection,
    limit: Duration,
) -> Result<Position, StoreError> {
    stream_position_of(&inner.keys, connection, limit).await
}

async fn stream_position_of(
    keys: &Keys,
    connection: &mut Connection,
    limit: Duration,
) -> Result<Position, StoreError> {
    let mut info = ::redis::cmd("XINFO");
    info.arg("STREAM").arg(keys.stream());
    match bounded(limit, info.query_async::<Value>(connection)).await {
        Ok(info) => Ok(Position {
            last: info_field(&info, "last-generated-id").unwrap_or_else(|| "0-0".to_owned()),
            added: info_field(&info, "entries-added").and_then(|n| n.parse().ok()).unwrap_or(0),
        }),
        // No stream yet.
        Err(error) if error.0.contains("no such key") => {
            Ok(Position { last: "0-0".to_owned(), added: 0 })
        }
        Err(error) => Err(error),
    }
}

/// The entries of the subjects' hashes (each names its subject in field `s`).
fn read_hashes(hashes: &[Vec<(String, String)>]) -> Vec<Event> {
    let mut events = Vec::new();
    for fields in hashes {
        let Some(subject) = fields.iter().find(|(name, _)| name == "s").map(|(_, s)| s) else {
            continue;
        };
        let Some(subject) = from_hex(subject) else { continue };
        for (name, value) in fields {
            let change = if name == "g" {
                match parse_subject_field(value) {
                    Ok((generation, until)) => (Change::Generation(generation), until),
                    Err(_) => continue,
                }
            } else if let Some(lineage) = name.strip_prefix("l:") {
                match (from_hex(lineage).and_then(|id| id.try_into().ok()), value.parse()) {
                    (Some(id), Ok(until)) => (Change::Lineage(SessionId(id)), until),
                    _ => continue,
                }
            } else {
                continue;
            };
            events.push(Event { subject: subject.clone(), change: change.0, until: change.1 });
        }
    }
    events
}

/// Writes every entry this node holds back to Redis (after Redis lost its data).
async fn write_back(inner: &Inner) -> Result<(), StoreError> {
    let events: Vec<Event> = {
        let set = inner.set.read().unwrap_or_else(PoisonError::into_inner);
        set.subjects
            .iter()
            .flat_map(|(subject, entry)| {
                let generation = (entry.generation != 0).then(|| Event {
                    subject: subject.to_vec(),
                    change: Change::Generation(entry.generation),
                    until: entry.generation_until,
                });
                let lineages = entry.lineages.iter().map(|&(lineage, until)| Event {
                    subject: subject.to_vec(),
                    change: Change::Lineage(lineage),
                    until,
                });
                generation.into_iter().chain(lineages).collect::<Vec<_>>()
            })
            .collect()
    };
    for event in &events {
        inner.write(event).await?;
    }
    Ok(())
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The events of an `XREAD` reply, the id of the last entry, and how many entries it held.
fn parse_read(reply: &Value) -> (Vec<Event>, Option<String>, u64) {
    let mut events = Vec::new();
    let mut last = None;
    let mut count = 0;
    let Value::Array(streams) = reply else { return (events, last, count) };
    for stream in streams {
        let Value::Array(parts) = stream else { continue };
        let Some(Value::Array(entries)) = parts.get(1) else { continue };
        for entry in entries {
            count += 1;
            last = entry_id(entry).or(last);
            if let Some(event) = entry_event(entry) {
                events.push(event);
            }
        }
    }
    (events, last, count)
}

fn entry_id(entry: &Value) -> Option<String> {
    let Value::Array(parts) = entry else { return None };
    text(parts.first()?)
}

fn entry_event(entry: &Value) -> Option<Event> {
    let Value::Array(parts) = entry else { return None };
    let Value::Array(fields) = parts.get(1)? else { return None };
    let mut subject = None;
    let mut change = None;
    let mut until = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        let value_bytes = match value {
            Value::BulkString(bytes) => bytes.as_slice(),
            _ => continue,
        };
        match text(name)?.as_str() {
            "s" => subject = Some(value_bytes.to_vec()),
            "g" => change = Some(Change::Generation(text(value)?.parse().ok()?)),
            "l" => {
                let id = from_hex(&text(value)?)?;
                change = Some(Change::Lineage(SessionId(id.try_into().ok()?)));
            }
            "u" => until = Some(text(value)?.parse().ok()?),
            _ => {}
        }
    }
    Some(Event { subject: subject?, change: change?, until: until? })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A field of an `XINFO STREAM` reply (alternating names and values).
fn info_field(info: &Value, name: &str) -> Option<String> {
    let Value::Array(items) = info else { return None };
    items.chunks(2).find_map(|pair| match pair {
        [key, value] if text(key).as_deref() == Some(name) => text(value),
        _ => None,
    })
}
