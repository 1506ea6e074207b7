//! Whether Redis lost data since this node last looked, whatever the cause.
//!
//! A new run id catches a restart, but `FLUSHALL`, `FLUSHDB`, a deleted key or an eviction
//! under an evicting `maxmemory-policy` leave the run id as it was. So a node also watches:
//!
//! * a *mark*, `<prefix>mark`: a random token without expiry, set by the first node that finds
//!   none (with Redis's time). A mark gone or replaced means the keyspace lost it, so it may
//!   have lost entries too. On a Redis Cluster every primary has its own mark
//!   (`<prefix>mark:{<tag>}`, the tag chosen to fall in a slot that primary owns), so one shard
//!   flushed or restarted empty on its own is noticed like a whole server. A node that finds a mark younger than the staleness bound cannot
//!   tell a new deployment from a flush others have not noticed yet: it waits for the bound
//!   before it calls itself current, which gives the nodes that knew the data time to notice
//!   and write it back;
//! * `evicted_keys` of every primary (`INFO`): any eviction may have taken a subject hash
//!   (they expire, so `volatile-*` policies evict them first);
//! * the run ids, as before.
//!
//! A node started after evictions that no write-back followed yet (`<prefix>repaired`, the
//! evictions some node wrote back after, is smaller than `evicted_keys`) waits the bound too.
//!
//! When any of them moved, the node writes back everything it holds. At start it also warns
//! when a primary's `maxmemory-policy` evicts.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::super::StoreError;
use super::super::redis::{Connection, Primary, bounded, eval};
use super::node::Inner;

/// Sets the mark when there is none. `KEYS[1]`: the mark; `ARGV[1]`: a random token. Returns
/// the mark (`<token> <Redis time in ms when it was set>`) and Redis's time in ms.
const CLAIM_MARK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. string.format('%d', now), 'NX')
return {redis.call('GET', KEYS[1]), string.format('%d', now)}
";

/// What a node saw of Redis, to tell whether it lost data since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Watermarks {
    /// Each primary's run id and `evicted_keys`, sorted by run id.
    primaries: Vec<(String, u64)>,
    /// The marks, one per primary holding slots (`None`: there was none).
    marks: Vec<Option<String>>,
    /// Seconds since the youngest primary started (`uptime_in_seconds`): not a loss by itself,
    /// but a node started within the bound of a restart cannot tell whether the others have
    /// noticed it yet (a restart from an older save keeps the mark).
    uptime: u64,
}

impl Watermarks {
    /// How long ago the youngest primary started, to the second.
    pub(super) fn uptime(&self) -> Duration {
        Duration::from_secs(self.uptime)
    }

    /// Keys evicted by every primary since it started.
    pub(super) fn evicted(&self) -> u64 {
        self.primaries.iter().map(|(_, evicted)| evicted).sum()
    }

    /// The marks as this node last saw them, one per primary holding slots.
    pub(super) fn marks(&self) -> &[Option<String>] {
        &self.marks
    }

    /// The marks as this node set or found them.
    pub(super) fn set_marks(&mut self, marks: Vec<String>) {
        self.marks = marks.into_iter().map(Some).collect();
    }

    /// The name every node gives the state of Redis seen here (run ids, marks, evictions): a
    /// loss seen by several nodes is recovered once per name.
    pub(super) fn epoch(&self) -> String {
        let mut hash = Sha256::new();
        for (id, evicted) in &self.primaries {
            hash.update(format!("{id} {evicted}\n"));
        }
        for mark in &self.marks {
            hash.update(format!("{}\n", mark.as_deref().unwrap_or("-")));
        }
        hash.finalize()[..16].iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Whether `other` sees the same servers and marks (evictions aside): no loss between.
    pub(super) fn same_keyspace(&self, other: &Watermarks) -> bool {
        let ids = |marks: &Watermarks| -> Vec<String> {
            marks.primaries.iter().map(|(id, _)| id.clone()).collect()
        };
        ids(self) == ids(other) && self.marks == other.marks
    }

    /// What may have been lost between `self` (seen earlier) and `now`; `None`: nothing.
    pub(super) fn loss(&self, now: &Watermarks) -> Option<&'static str> {
        let ids = |marks: &Watermarks| marks.primaries.iter().map(|(id, _)| id.clone()).collect();
        let (before, after): (Vec<String>, Vec<String>) = (ids(self), ids(now));
        if before != after {
            return Some("Redis restarted or failed over (new run id)");
        }
        if self.marks != now.marks {
            return Some("the mark key is gone or replaced (FLUSHALL, FLUSHDB or a deleted key)");
        }
        let evicted = self.primaries.iter().zip(&now.primaries).any(|(was, is)| is.1 > was.1);
        evicted.then_some("Redis evicted keys (maxmemory-policy)")
    }
}

/// Reads the watermarks: `INFO` of every primary, and the marks (without setting them).
pub(super) async fn watermarks(
    inner: &Inner,
    connection: &mut Connection,
    primaries: &[Primary],
    limit: Duration,
) -> Result<(Watermarks, Vec<String>), StoreError> {
    let mut seen = Vec::new();
    let mut policies = Vec::new();
    let mut uptime = u64::MAX;
    for primary in primaries {
        let info: String =
            bounded(limit, connection.query_at(&::redis::cmd("INFO"), primary)).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
        };
        let evicted = field("evicted_keys").and_then(|n| n.parse().ok()).unwrap_or(0);
        seen.push((field("run_id").unwrap_or_default(), evicted));
        let up = field("uptime_in_seconds").and_then(|n| n.parse().ok()).unwrap_or(0);
        uptime = uptime.min(up);
        policies.push(field("maxmemory_policy").unwrap_or_default());
    }
    seen.sort();
    let mut marks = Vec::new();
    for tag in bounded(limit, connection.mark_tags()).await? {
        let mut get = ::redis::cmd("GET");
        get.arg(inner.keys.mark_at(tag.as_deref()));
        marks.push(bounded(limit, get.query_async(connection)).await?);
    }
    Ok((Watermarks { primaries: seen, marks, uptime }, policies))
}

/// Raises `<prefix>repaired`, the evictions a write-back followed, to `evicted`.
const RAISE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
";

/// How many evictions some node has written back after (0: none).
pub(super) async fn repaired(
    inner: &Inner,
    connection: &mut Connection,
    limit: Duration,
) -> Result<u64, StoreError> {
    let mut get = ::redis::cmd("GET");
    get.arg(inner.keys.repaired());
    let value: Option<String> = bounded(limit, get.query_async(connection)).await?;
    Ok(value.and_then(|value| value.parse().ok()).unwrap_or(0))
}

/// Records that this node wrote back after `evicted` evictions.
pub(super) async fn record_repaired(
    inner: &Inner,
    connection: &mut Connection,
    evicted: u64,
    limit: Duration,
) -> Result<(), StoreError> {
    let mut raise = eval(RAISE, inner.keys.repaired());
    raise.arg(evicted);
    bounded(limit, raise.query_async::<()>(connection)).await
}

/// Sets every mark that is missing (one per primary on a cluster); returns them and the age of
/// the youngest.
pub(super) async fn claim_marks(
    inner: &Inner,
    connection: &mut Connection,
    limit: Duration,
) -> Result<(Vec<String>, Duration), StoreError> {
    let mut marks = Vec::new();
    let mut youngest = Duration::MAX;
    for tag in bounded(limit, connection.mark_tags()).await? {
        let mut token = [0u8; 16];
        getrandom::fill(&mut token)
            .map_err(|_| StoreError("no randomness for a mark".to_owned()))?;
        let token: String = token.iter().map(|byte| format!("{byte:02x}")).collect();
        let mut claim = eval(CLAIM_MARK, inner.keys.mark_at(tag.as_deref()));
        claim.arg(token);
        let (mark, now): (String, String) = bounded(limit, claim.query_async(connection)).await?;
        let set_at = mark.split_once(' ').and_then(|(_, at)| at.parse::<u64>().ok()).unwrap_or(0);
        let now = now.parse::<u64>().unwrap_or(0);
        youngest = youngest.min(Duration::from_millis(now.saturating_sub(set_at)));
        marks.push(mark);
    }
    Ok((marks, youngest))
}

/// Warns about primaries whose `maxmemory-policy` may evict revocations.
pub(super) fn warn_about_eviction(policies: &[String]) {
    for policy in policies.iter().filter(|policy| !policy.is_empty() && *policy != "noeviction") {
        tracing::warn!(
            policy = %policy,
            "Redis's maxmemory-policy evicts keys: an eviction makes every revocation node write \
             back what it holds, and a revocation evicted from every node's memory is lost; set \
             maxmemory-policy noeviction on the revocation Redis"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_loss_is_told_apart_from_none() {
        let seen = |primaries: &[(&str, u64)], mark: Option<&str>| Watermarks {
            primaries: primaries.iter().map(|&(id, n)| (id.to_owned(), n)).collect(),
            marks: vec![mark.map(str::to_owned)],
            uptime: 0,
        };
        let before = seen(&[("a", 3), ("b", 0)], Some("m 1"));
        // (now, lost?)
        let table = [
            (seen(&[("a", 3), ("b", 0)], Some("m 1")), false),
            (seen(&[("a", 3), ("c", 0)], Some("m 1")), true),
            (seen(&[("a", 3), ("b", 0)], None), true),
            (seen(&[("a", 3), ("b", 0)], Some("n 2")), true),
            (seen(&[("a", 4), ("b", 0)], Some("m 1")), true),
        ];
        for (now, lost) in table {
            assert_eq!(before.loss(&now).is_some(), lost, "{now:?}");
        }
    }
}
