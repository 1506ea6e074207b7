//! Talking to Redis for both stores: one server or a Redis Cluster behind one connection type,
//! connected with bounded timeouts, scripts sent by digest, and waits that never exceed the
//! store's timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::Value;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::super::StoreError;
use super::{EXTEND, REVOKE_LINEAGE, REVOKE_SUBJECT, WRITE_BACK};

/// A connection to one server or to a Redis Cluster; the stores send it only single-key
/// commands (or none with a key), so a cluster routes each to the node that owns its slot.
#[derive(Clone)]
pub(in crate::revocation) enum Connection {
    Single(ConnectionManager),
    /// Connected on first use (creating a cluster connection asks the cluster for its slots).
    Cluster(Arc<ClusterLink>),
}

pub(in crate::revocation) struct ClusterLink {
    client: ::redis::cluster::ClusterClient,
    connection: tokio::sync::OnceCell<::redis::cluster_async::ClusterConnection>,
}

/// A lazily connecting Redis Cluster connection through any of `nodes`, failing fast.
pub(in crate::revocation) fn cluster(
    nodes: &[&str],
    store: &str,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<Connection, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(StoreError(format!("{store} must be created inside a tokio runtime")));
    }
    let client = ::redis::cluster::ClusterClient::builder(nodes.iter().copied())
        .connection_timeout(connect_timeout)
        .response_timeout(response_timeout)
        .retries(0)
        .build()
        // The URLs may hold a password: errors name the problem, never a URL.
        .map_err(|e| StoreError(format!("invalid Redis Cluster URLs: {e}")))?;
    let link = ClusterLink { client, connection: tokio::sync::OnceCell::new() };
    Ok(Connection::Cluster(Arc::new(link)))
}

/// Where a command goes: the one server, or one primary of a cluster.
pub(in crate::revocation) type Primary = Option<(String, u16)>;

impl Connection {
    /// The servers that hold keys: the one server, or every primary of the cluster.
    pub(in crate::revocation) async fn primaries(&mut self) -> ::redis::RedisResult<Vec<Primary>> {
        let Connection::Cluster(link) = self else { return Ok(vec![None]) };
        let mut connection = Connection::cluster(link).await?;
        let nodes: String =
            ::redis::cmd("CLUSTER").arg("NODES").query_async(&mut connection).await?;
        // `<id> <ip:port@cport[,hostname]> <flags> ...`, one line per node.
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let address = fields.nth(1)?;
                let flags = fields.next()?;
                if !flags.split(',').any(|flag| flag == "master") || flags.contains("fail") {
                    return None;
                }
                let address = address.split(['@', ',']).next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some(Some((host.to_owned(), port.parse().ok()?)))
            })
            .collect())
    }

    /// Where the marks go (see `replicated/loss.rs`): on one server, its one mark (`None`); on a
    /// cluster, one hash tag per primary that owns slots, each falling in the first slot that
    /// primary owns, so a primary that loses its data (a `FLUSHALL` of that node alone, an
    /// empty restart) loses its mark with it. Sorted by slot.
    pub(in crate::revocation) async fn mark_tags(
        &mut self,
    ) -> ::redis::RedisResult<Vec<Option<String>>> {
        let Connection::Cluster(link) = self else { return Ok(vec![None]) };
        let mut connection = Connection::cluster(link).await?;
        let nodes: String =
            ::redis::cmd("CLUSTER").arg("NODES").query_async(&mut connection).await?;
        let mut slots: Vec<u16> = nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|flag| flag == "master") || flags.contains("fail") {
                    return None;
                }
                // Slots from the ninth field: `<first>-<last>`, `<slot>`, or `[...]` (migrating).
                fields.iter().skip(8).find_map(|range| range.split('-').next()?.parse().ok())
            })
            .collect();
        slots.sort_unstable();
        Ok(slots.into_iter().map(|slot| Some(tag_in_slot(slot))).collect())
    }

    /// Runs `pipeline` on `primary` (its keys must all live there).
    pub(in crate::revocation) async fn pipeline_at<T: ::redis::FromRedisValue>(
        &mut self,
        pipeline: &::redis::Pipeline,
        primary: &Primary,
    ) -> ::redis::RedisResult<T> {
        match (self, primary) {
            (Connection::Cluster(link), Some((host, port))) => {
                use ::redis::cluster_routing::SingleNodeRoutingInfo;
                let mut connection = Connection::cluster(link).await?;
                let at = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                let count = pipeline.len();
                let values = connection.route_pipeline(pipeline.clone(), 0, count, at).await?;
                ::redis::from_redis_value(Value::Array(values)).map_err(Into::into)
            }
            (connection, _) => pipeline.query_async(connection).await,
        }
    }

    /// Runs `command` on `primary` (see [`primaries`](Connection::primaries)).
    pub(in crate::revocation) async fn query_at<T: ::redis::FromRedisValue>(
        &mut self,
        command: &::redis::Cmd,
        primary: &Primary,
    ) -> ::redis::RedisResult<T> {
        match (self, primary) {
            (Connection::Cluster(link), Some((host, port))) => {
                use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let mut connection = Connection::cluster(link).await?;
                let at = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                let value =
                    connection.route_command(command.clone(), RoutingInfo::SingleNode(at)).await?;
                ::redis::from_redis_value(value).map_err(Into::into)
            }
            (connection, _) => command.query_async(connection).await,
        }
    }

    async fn cluster(
        link: &ClusterLink,
    ) -> ::redis::RedisResult<::redis::cluster_async::ClusterConnection> {
        link.connection.get_or_try_init(|| link.client.get_async_connection()).await.cloned()
    }
}

impl ::redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        command: &'a ::redis::Cmd,
    ) -> ::redis::RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(command),
            Connection::Cluster(link) => Box::pin(async move {
                let mut connection = Connection::cluster(link).await?;
                connection.req_packed_command(command).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> ::redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(link) => Box::pin(async move {
                let mut connection = Connection::cluster(link).await?;
                connection.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(_) => 0,
        }
    }
}

/// A lazily connecting `ConnectionManager` for the server at `url`, failing fast.
pub(in crate::revocation) fn connect(
    url: &str,
    store: &str,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<ConnectionManager, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(StoreError(format!("{store} must be created inside a tokio runtime")));
    }
    // The URL may hold a password: errors name the problem, never the URL.
    let info = ::redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
    // Each check is one small command waiting for its answer: no Nagle delay.
    let tcp = ::redis::io::tcp::TcpSettings::default().set_nodelay(true);
    let client = ::redis::Client::open(info.set_tcp_settings(tcp))
        .map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        // Fail fast: while Redis is down each request gets an error at once (and the
        // policy decides), instead of waiting out a series of reconnection attempts.
        // Every failed request triggers a new attempt in the background.
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| StoreError(format!("Redis connection manager: {e}")))
}

/// A short hash tag whose keys fall in `slot` of a Redis Cluster (found by trying `m0`, `m1`,
/// ...: about 16,384 tries, each a CRC16 of a few bytes).
pub(in crate::revocation) fn tag_in_slot(slot: u16) -> String {
    use ::redis::cluster_routing::Slot;
    let Some(target) = Slot::new(slot) else { return "m".to_owned() };
    (0u32..1_000_000)
        .map(|i| format!("m{i}"))
        .find(|tag| Slot::for_key(tag) == target)
        .unwrap_or_else(|| "m".to_owned())
}

/// The scripts, each with the helper it uses.
#[derive(Debug)]
pub(in crate::revocation) struct Scripts {
    pub(in crate::revocation) revoke_subject: String,
    pub(in crate::revocation) revoke_lineage: String,
    /// The write-back's bulk merge (sent by digest, `EVALSHA`, once loaded).
    pub(in crate::revocation) write_back: &'static str,
}

impl Scripts {
    pub(in crate::revocation) fn new() -> Scripts {
        Scripts {
            revoke_subject: format!("{EXTEND}{REVOKE_SUBJECT}"),
            revoke_lineage: format!("{EXTEND}{REVOKE_LINEAGE}"),
            write_back: WRITE_BACK,
        }
    }
}

/// Runs one Redis operation within `limit`, mapping every failure.
pub(in crate::revocation) async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StoreError(format!("Redis: {error}"))),
        Err(_) => Err(StoreError(format!("Redis did not answer within {limit:?}"))),
    }
}
