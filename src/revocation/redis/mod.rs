//! The Redis revocation store (feature `redis`): [`RedisRevocations`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{BoxFuture, DEFAULT_STORE_TIMEOUT, Query, RevocationStore, StoreError};
use crate::session::SessionId;

mod link;

pub(super) use link::{Connection, Primary, Scripts, bounded, cluster, connect};

/// The prefix of every key [`RedisRevocations`] writes, by default.
pub const DEFAULT_KEY_PREFIX: &str = "sealed-session:";

/// Makes a key expire no earlier than `until` (Unix seconds). Shared by the scripts below.
const EXTEND: &str = r"
local function extend(key, expiry)
  local ttl = redis.call('TTL', key)
  local now = tonumber(redis.call('TIME')[1])
  if ttl < 0 or now + ttl < expiry then
    redis.call('EXPIREAT', key, string.format('%d', expiry))
  end
end
";

/// Gives a revocation its generation. `KEYS[1]`: the generation counter; `ARGV[1]`: 0 for the
/// next generation, max(counter + 1, Redis's clock in microseconds), or a generation already
/// given (by a node that was cut off from Redis) to raise the counter to. Returns the
/// generation, as text (Lua numbers are doubles; generations stay far below 2^53).
pub(super) const NEXT_GENERATION: &str = r"
local given = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local generation = given
if given == 0 then
  local t = redis.call('TIME')
  generation = math.max(current + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
if generation > current then
  redis.call('SET', KEYS[1], string.format('%d', generation))
end
return string.format('%d', generation)
";

/// Records a subject's revocation: field `g` of the subject's hash holds `generation until`,
/// keeping the larger of each (two nodes may revoke the same subject at once); field `s` the
/// subject, hex. `KEYS[1]`: the subject's key; `ARGV`: generation, until (Unix seconds),
/// subject.
pub(super) const REVOKE_SUBJECT: &str = r"
local generation = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local current = redis.call('HGET', KEYS[1], 'g')
if current then
  local g, u = string.match(current, '(%d+) (%d+)')
  generation = math.max(generation, tonumber(g))
  expiry = math.max(expiry, tonumber(u))
end
redis.call('HSET', KEYS[1], 'g', string.format('%d %d', generation, expiry), 's', ARGV[3])
extend(KEYS[1], expiry)
";

/// Records a lineage's revocation: field `l:<lineage>` of the subject's hash holds until when,
/// keeping the later; field `s` the subject, hex. `KEYS[1]`: the subject's key; `ARGV`: the
/// field, until (Unix seconds), subject.
pub(super) const REVOKE_LINEAGE: &str = r"
local expiry = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if current < expiry then
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', expiry), 's', ARGV[3])
end
extend(KEYS[1], expiry)
";

/// Merges many subjects' entries at once, as [`REVOKE_SUBJECT`] and [`REVOKE_LINEAGE`] would one
/// by one (every field keeps the larger value; the key expires no earlier than its last entry):
/// the replicated store's write-back after Redis lost data, a few hundred subjects per call.
/// `KEYS`: the subjects' keys (on a cluster, all of one slot); `ARGV`, per key: the subject
/// (hex), its generation (0: none), until when it matters, the number of lineages, then each
/// lineage's field and until. Returns the 1-based positions of the entries (a generation, then
/// its lineages, key after key) that changed what Redis held.
pub(super) const WRITE_BACK: &str = r"
local now = tonumber(redis.call('TIME')[1])
local changed = {}
local a, entry = 1, 0
for _, key in ipairs(KEYS) do
  local subject, generation, guntil, count =
    ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  local expiry = 0
  local fresh = redis.call('EXISTS', key) == 0
  if generation > 0 then
    entry = entry + 1
    local cg, cu = 0, 0
    local current = false
    if not fresh then current = redis.call('HGET', key, 'g') end
    if current then
      local g, u = string.match(current, '(%d+) (%d+)')
      cg, cu = tonumber(g), tonumber(u)
    end
    if generation > cg or guntil > cu then
      local merged = string.format('%d %d', math.max(generation, cg), math.max(guntil, cu))
      redis.call('HSET', key, 'g', merged, 's', subject)
      changed[#changed + 1] = entry
    end
    expiry = math.max(guntil, cu)
  end
  for _ = 1, count do
    entry = entry + 1
    local field, untl = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    local current = 0
    if not fresh then current = tonumber(redis.call('HGET', key, field) or '0') end
    if current < untl then
      redis.call('HSET', key, field, ARGV[a - 1], 's', subject)
      changed[#changed + 1] = entry
    end
    expiry = math.max(expiry, untl, current)
  end
  local ttl = fresh and -1 or redis.call('TTL', key)
  if expiry > 0 and (ttl < 0 or now + ttl < expiry) then
    redis.call('EXPIREAT', key, string.format('%d', expiry))
  end
end
return changed
";

/// The key layout both Redis stores share (see [`RedisRevocations`]).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    /// The generation counter.
    pub(super) fn generation(&self) -> String {
        format!("{}gen", self.prefix)
    }

    /// The mark whose disappearance tells the replicated store that Redis lost data.
    pub(super) fn mark(&self) -> String {
        format!("{}mark", self.prefix)
    }

    /// The mark of one primary of a cluster: hash-tagged by `tag`, which falls in a slot that
    /// primary owns (`None`: the one server's mark, [`mark`](Keys::mark)).
    pub(super) fn mark_at(&self, tag: Option<&str>) -> String {
        match tag {
            Some(tag) => format!("{}mark:{{{tag}}}", self.prefix),
            None => self.mark(),
        }
    }

    /// The replicated store's recovery lock: set (expiring, renewed) while one node writes back
    /// what Redis lost, `<epoch> <owner>`.
    pub(super) fn recovering(&self) -> String {
        format!("{}recovering", self.prefix)
    }

    /// What the last recovery wrote back: `<epoch> <entries> <digest>` (then ` reload` after a
    /// takeover); `<epoch> writing <owner>` while a write-back is under way.
    pub(super) fn recovered(&self) -> String {
        format!("{}recovered", self.prefix)
    }

    /// The buckets of subjects dropped at a node's cap whose entries Redis may have lost
    /// (the replicated store).
    pub(super) fn lost(&self) -> String {
        format!("{}lost", self.prefix)
    }

    /// How many evictions the replicated store's nodes have written back after.
    pub(super) fn repaired(&self) -> String {
        format!("{}repaired", self.prefix)
    }

    /// The stream of revocation events (the replicated store).
    pub(super) fn stream(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// The hash of a subject's revocations. The digest is the key's hash tag: a Redis Cluster
    /// places it by the digest alone.
    pub(super) fn subject(&self, subject: &[u8]) -> String {
        let digest = Sha256::digest(subject);
        let mut key = String::with_capacity(self.prefix.len() + 6 + 64);
        key.push_str(&self.prefix);
        key.push_str("sub:{");
        push_hex(&mut key, &digest);
        key.push('}');
        key
    }

    /// The pattern of every subject key (for a full reload).
    pub(super) fn subject_pattern(&self) -> String {
        format!("{}sub:*", self.prefix)
    }
}

/// A subject as stored in field `s` of its hash.
pub(super) fn subject_hex(subject: &[u8]) -> String {
    let mut out = String::with_capacity(subject.len() * 2);
    push_hex(&mut out, subject);
    out
}

/// The field of a lineage in its subject's hash.
pub(super) fn lineage_field(lineage: SessionId) -> String {
    format!("l:{lineage}")
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// `EVAL` of a script on one key (the scripts are small and revocations rare: `EVALSHA` and
/// its fallback would save little).
pub(super) fn eval(script: &str, key: String) -> ::redis::Cmd {
    let mut command = ::redis::cmd("EVAL");
    command.arg(script).arg(1).arg(key);
    command
}

/// Revocations kept in Redis, shared by every node of a fleet, and asked on every check: the
/// strict store. Choose it when a revocation must hold on every node the moment it is
/// recorded, at the price of one round trip per authenticated request and a dependency on
/// Redis for every check; [`ReplicatedRevocations`](super::ReplicatedRevocations) answers from
/// memory instead, fresh within a stated bound.
///
/// Keys, all under a prefix ([`DEFAULT_KEY_PREFIX`] unless configured):
///
/// * `<prefix>sub:{<SHA-256 of the subject's MessagePack bytes, hex>}`: a hash of the
///   subject's revocations, expiring when the last of them would have (no key names a user;
///   field `s` holds the subject, hex, for the replicated store's reloads). Field `g` = `<generation> <until>`: every session of the subject stamped with a
///   smaller generation is revoked ("log out everywhere"). Field `l:<lineage, hex>` =
///   `<until>`: the sessions of that lineage are revoked (logout). Fields only grow (small Lua
///   scripts, atomic).
/// * `<prefix>gen`: the latest generation given, which a sign-in reads for its stamp.
///
/// A check is one round trip on one key (`HMGET` of the subject's hash), so it works
/// unchanged on a Redis Cluster ([`RedisRevocationsBuilder::build_cluster`]): the braces make
/// the digest the key's hash tag, and no command ever spans two keys. On one server the
/// connection is a redis-rs `ConnectionManager`: one multiplexed connection, re-established in
/// the background after a failure. Every operation
/// is bounded by the connection timeout plus the response timeout ([`DEFAULT_STORE_TIMEOUT`]
/// each unless configured) and fails fast while Redis is unreachable, so an outage costs each
/// request at most that bound; what happens to the session then is the
/// [`FailurePolicy`](super::FailurePolicy)'s call.
///
/// The store connects lazily: creating it does no I/O, so an application starts while Redis is
/// down. It must be created inside a tokio runtime (its connection lives on it); use
/// [`ping`](RedisRevocations::ping) at startup to report an unreachable server early.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use sealed_session::revocation::{FailurePolicy, RedisRevocations, Revocation};
///
/// # async fn run() -> Result<(), sealed_session::revocation::StoreError> {
/// let store = RedisRevocations::builder()
///     .prefix("myapp:sessions:")
///     .timeout(Duration::from_millis(50))
///     .build("redis://127.0.0.1:6379/")?;
/// store.ping().await?; // optional: fail at startup rather than on the first request
/// let revocation = Revocation::new(store, "user").failure_policy(FailurePolicy::Accept);
/// # let _ = revocation;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    connection: Connection,
    keys: Keys,
    scripts: Arc<Scripts>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

/// Configures a [`RedisRevocations`]; made by [`RedisRevocations::builder`].
#[derive(Debug, Clone)]
pub struct RedisRevocationsBuilder {
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Default for RedisRevocationsBuilder {
    fn default() -> RedisRevocationsBuilder {
        RedisRevocationsBuilder {
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: DEFAULT_STORE_TIMEOUT,
            response_timeout: DEFAULT_STORE_TIMEOUT,
        }
    }
}

impl RedisRevocationsBuilder {
    /// The store for a Redis Cluster reached through any of `nodes` (Redis URLs). Every
    /// command the store sends names one key (a user's hash, hash-tagged by its digest, or
    /// the generation counter), so the cluster routes each to the node that owns it. Does no
    /// I/O: the cluster's slots are asked for on first use.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when a URL is invalid, or when called outside a tokio runtime.
    pub fn build_cluster(self, nodes: &[&str]) -> Result<RedisRevocations, StoreError> {
        let connection =
            cluster(nodes, "RedisRevocations", self.connect_timeout, self.response_timeout)?;
        Ok(RedisRevocations {
            connection,
            keys: Keys { prefix: self.prefix },
            scripts: Arc::new(Scripts::new()),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
        })
    }

    /// The prefix of every key (default [`DEFAULT_KEY_PREFIX`]). Give each application sharing
    /// a Redis server its own.
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisRevocationsBuilder {
        self.prefix = prefix.into();
        self
    }

    /// Sets both the connection and the response timeout.
    pub fn timeout(self, timeout: Duration) -> RedisRevocationsBuilder {
        self.connect_timeout(timeout).response_timeout(timeout)
    }

    /// How long one connection attempt may take (default [`DEFAULT_STORE_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> RedisRevocationsBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long Redis may take to answer one command (default [`DEFAULT_STORE_TIMEOUT`]).
    pub fn response_timeout(mut self, timeout: Duration) -> RedisRevocationsBuilder {
        self.response_timeout = timeout;
        self
    }

    /// The store for the server at `url` (`redis://[:password@]host[:port][/db]`,
    /// `rediss://` needs a TLS feature of the `redis` crate). Does no I/O: the connection is
    /// made on first use.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when `url` is not a Redis URL, or when called outside a tokio runtime.
    pub fn build(self, url: &str) -> Result<RedisRevocations, StoreError> {
        let connection = Connection::Single(connect(
            url,
            "RedisRevocations",
            self.connect_timeout,
            self.response_timeout,
        )?);
        Ok(RedisRevocations {
            connection,
            keys: Keys { prefix: self.prefix },
            scripts: Arc::new(Scripts::new()),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
        })
    }
}

/// Parses a generation Redis returned as text.
pub(super) fn parse_generation(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError("Redis returned an invalid generation".to_owned()))
}

impl RedisRevocations {
    /// A builder for the prefix and timeouts.
    pub fn builder() -> RedisRevocationsBuilder {
        RedisRevocationsBuilder::default()
    }

    /// The store for the server at `url` with the default prefix and timeouts. See
    /// [`RedisRevocationsBuilder::build`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when `url` is not a Redis URL, or when called outside a tokio runtime.
    pub fn new(url: &str) -> Result<RedisRevocations, StoreError> {
        RedisRevocations::builder().build(url)
    }

    /// Checks that Redis answers (`PING`), within the store's time bound.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let pong: String = self.bounded(::redis::cmd("PING").query_async(&mut connection)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError(format!("Redis answered PING with {pong:?}")))
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// The key of `subject`'s revocations (its MessagePack bytes, as [`Query::subject`]
    /// carries them).
    pub fn subject_key(&self, subject: &[u8]) -> String {
        self.keys.subject(subject)
    }

    /// Runs one Redis operation within the store's time bound, mapping every failure.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        // The connection manager bounds each connection attempt and each answer; this bounds
        // the whole operation (a connection attempt, then the command) whatever happens inside.
        bounded(self.connect_timeout.saturating_add(self.response_timeout), operation).await
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl RevocationStore for RedisRevocations {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut command = ::redis::cmd("HMGET");
        command.arg(self.keys.subject(query.subject)).arg("g").arg(lineage_field(query.lineage));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let values: Vec<Option<String>> =
                self.bounded(command.query_async(&mut connection)).await?;
            let [generation, lineage] = values.as_slice() else {
                return Err(StoreError(format!(
                    "Redis answered HMGET of 2 fields with {} values",
                    values.len()
                )));
            };
            let generation = match generation {
                Some(field) => parse_subject_field(field)?.0,
                None => 0,
            };
            Ok(lineage.is_some() || query.generation < generation)
        })
    }

    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut command = ::redis::cmd("GET");
        command.arg(self.keys.generation());
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let text: Option<String> = self.bounded(command.query_async(&mut connection)).await?;
            if let Some(text) = text {
                return parse_generation(&text);
            }
            // The counter is gone (an emptied shard, an eviction, a stray DEL) while
            // subjects' "log out everywhere" may remain: stamping with 0 would put every new
            // sign-in of such a subject below its revocation. Start the counter again at
            // Redis's clock in microseconds, above any generation it gave.
            let mut next = eval(NEXT_GENERATION, self.keys.generation());
            next.arg(0);
            let text: String = self.bounded(next.query_async(&mut connection)).await?;
            parse_generation(&text)
        })
    }

    fn revoke_lineage<'a>(
        &'a self,
        subject: &'a [u8],
        lineage: SessionId,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut command = eval(&self.scripts.revoke_lineage, self.keys.subject(subject));
        command.arg(lineage_field(lineage)).arg(until).arg(subject_hex(subject));
        let mut connection = self.connection.clone();
        Box::pin(async move { self.bounded(command.query_async::<()>(&mut connection)).await })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let mut next = eval(NEXT_GENERATION, self.keys.generation());
            next.arg(0);
            let generation: String = self.bounded(next.query_async(&mut connection)).await?;
            let generation = parse_generation(&generation)?;
            let mut record = eval(&self.scripts.revoke_subject, self.keys.subject(subject));
            record.arg(generation).arg(until).arg(subject_hex(subject));
            self.bounded(record.query_async::<()>(&mut connection)).await?;
            Ok(generation)
        })
    }
}

/// Parses field `g` of a subject's hash: generation and until.
pub(super) fn parse_subject_field(field: &str) -> Result<(u64, u64), StoreError> {
    let bad = || StoreError("Redis holds an invalid subject revocation".to_owned());
    let (generation, until) = field.split_once(' ').ok_or_else(bad)?;
    Ok((generation.parse().map_err(|_| bad())?, until.parse().map_err(|_| bad())?))
}

impl fmt::Debug for RedisRevocations {
    /// The URL is left out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("prefix", &self.keys.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}
