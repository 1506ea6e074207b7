//! The Redis revocation store (feature `redis`): [`RedisRevocations`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use super::{BoxFuture, DEFAULT_STORE_TIMEOUT, Query, RevocationStore, StoreError};
use crate::session::SessionId;

/// The prefix of every key [`RedisRevocations`] writes, by default.
pub const DEFAULT_KEY_PREFIX: &str = "sealed-session:";

/// Records a subject's revocation: keeps the larger issued-before instant and the later expiry
/// of the existing entry and the new one, atomically (two nodes may revoke the same subject at
/// once). `KEYS[1]`: the subject's key; `ARGV`: issued-before, expiry (Unix seconds).
const REVOKE_SUBJECT: &str = r"
local before = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current and current > before then before = current end
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then
  local now = tonumber(redis.call('TIME')[1])
  if now + ttl > expiry then expiry = now + ttl end
end
redis.call('SET', KEYS[1], string.format('%d', before), 'EXAT', string.format('%d', expiry))
return before
";

/// Revocations kept in Redis, shared by every node of a fleet.
///
/// Two kinds of keys, both under a prefix ([`DEFAULT_KEY_PREFIX`] unless configured), each
/// expiring when the sessions it concerns would have expired anyway (the `until` the
/// [`Revocation`](super::Revocation) passes, which is the absolute expiry):
///
/// * `<prefix>sid:<session id, hex>` = `1`: one revoked session (logout);
/// * `<prefix>sub:<SHA-256 of the subject's MessagePack bytes, hex>` = issued-before, Unix
///   seconds: every session of the subject issued earlier is revoked ("log out everywhere").
///   Revoking twice keeps the later instant and the later expiry (a small Lua script, atomic).
///
/// A check is one round trip (`MGET` of both keys). The connection is a redis-rs
/// `ConnectionManager`: one multiplexed connection, re-established in the background after a
/// failure. Every operation is bounded by the connection timeout plus the response timeout
/// ([`DEFAULT_STORE_TIMEOUT`] each unless configured) and fails fast while Redis is
/// unreachable, so an outage costs each request at most that bound; what happens to the
/// session then is the [`FailurePolicy`](super::FailurePolicy)'s call.
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
    connection: ConnectionManager,
    prefix: String,
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
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError(
                "RedisRevocations must be created inside a tokio runtime".to_owned(),
            ));
        }
        // The URL may hold a password: errors name the problem, never the URL.
        let info = ::redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
        // Each check is one small command waiting for its answer: no Nagle delay.
        let tcp = ::redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let client = ::redis::Client::open(info.set_tcp_settings(tcp))
            .map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            // Fail fast: while Redis is down each request gets an error at once (and the
            // policy decides), instead of waiting out a series of reconnection attempts.
            // Every failed request triggers a new attempt in the background.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError(format!("Redis connection manager: {e}")))?;
        Ok(RedisRevocations {
            connection,
            prefix: self.prefix,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
        })
    }
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
        &self.prefix
    }

    /// The key that records the revocation of session `id`.
    pub fn session_key(&self, id: SessionId) -> String {
        format!("{}sid:{id}", self.prefix)
    }

    /// The key that records the revocation of `subject` (its MessagePack bytes, as
    /// [`Query::subject`] carries them; [`Revocation::revoke_subject`](super::Revocation::revoke_subject)
    /// encodes with `rmp_serde::to_vec_named`).
    pub fn subject_key(&self, subject: &[u8]) -> String {
        let digest = Sha256::digest(subject);
        let mut key = String::with_capacity(self.prefix.len() + 4 + 64);
        key.push_str(&self.prefix);
        key.push_str("sub:");
        for byte in digest {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        key
    }

    /// Runs one Redis operation within the store's time bound, mapping every failure.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        // The connection manager bounds each connection attempt and each answer; this bounds
        // the whole operation (a connection attempt, then the command) whatever happens inside.
        let limit = self.connect_timeout.saturating_add(self.response_timeout);
        match tokio::time::timeout(limit, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError(format!("Redis: {error}"))),
            Err(_) => Err(StoreError(format!("Redis did not answer within {limit:?}"))),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl RevocationStore for RedisRevocations {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut command = ::redis::cmd("MGET");
        command.arg(self.session_key(query.id));
        if let Some(subject) = query.subject {
            command.arg(self.subject_key(subject));
        }
        let expected = 1 + usize::from(query.subject.is_some());
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let values: Vec<Option<u64>> =
                self.bounded(command.query_async(&mut connection)).await?;
            if values.len() != expected {
                return Err(StoreError(format!(
                    "Redis answered MGET of {expected} keys with {} values",
                    values.len()
                )));
            }
            let by_id = values[0].is_some();
            let by_subject = values.get(1).copied().flatten().is_some_and(|b| query.issued_at < b);
            Ok(by_id || by_subject)
        })
    }

    fn revoke_session(&self, id: SessionId, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut command = ::redis::cmd("SET");
        // EXAT 0 is an error in Redis; any past instant removes the key at once, as it should.
        command.arg(self.session_key(id)).arg(1).arg("EXAT").arg(until.max(1));
        let mut connection = self.connection.clone();
        Box::pin(async move { self.bounded(command.query_async::<()>(&mut connection)).await })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        issued_before: u64,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut command = ::redis::cmd("EVAL");
        command.arg(REVOKE_SUBJECT).arg(1).arg(self.subject_key(subject));
        command.arg(issued_before).arg(until.max(1));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            self.bounded(command.query_async::<::redis::Value>(&mut connection)).await.map(drop)
        })
    }
}

impl fmt::Debug for RedisRevocations {
    /// The URL is left out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}
