//! The full load of every subject hash, and the write-back after Redis lost its data.
use std::time::SystemTime;

use tokio::time::Instant;

use super::super::StoreError;
use ::redis::Value;

use super::super::redis::{
    Connection, Primary, bounded, eval, parse_generation, parse_subject_field,
};
use super::follower::{Position, stream_position};
use super::loss::{
    Watermarks, claim_marks, record_repaired, repaired, warn_about_eviction, watermarks,
};
use super::node::Inner;
use super::recovery::{Outcome, publish_recent, read, recover};
use crate::session::SessionId;
use crate::time::to_unix;

/// Keys per `SCAN` step of a reload (and `HGETALL`s per pipelined round trip).
const SCAN_BATCH: usize = 2_000;

/// Loads every subject hash and merges it into memory; returns the stream position to
/// follow from, and the primaries. When Redis lost data since `known` was seen (see
/// [`loss`](super::loss)), takes part in the recovery first (see [`recovery`](super::recovery)):
/// a node that ends up holding what Redis holds goes on from `previous` (where it last read
/// the stream) without loading everything again. Records what it sees now.
pub(super) async fn reload(
    inner: &Inner,
    connection: &mut Connection,
    known: &mut Option<Watermarks>,
    previous: Option<&Position>,
) -> Result<(Position, Vec<Primary>), StoreError> {
    // What is loaded is complete as of the start: later events are read from the stream.
    let started = Instant::now();
    let limit = inner.staleness;
    let primaries = bounded(limit, connection.primaries()).await?;
    let (mut seen, policies) = watermarks(inner, connection, &primaries, limit).await?;
    let lost = known.as_ref().and_then(|known| known.loss(&seen));
    let (marks, age) = claim_marks(inner, connection, limit).await?;
    seen.set_marks(marks);
    let newcomer = known.is_none() || inner.freshness.holding();
    if known.is_none() {
        warn_about_eviction(&policies);
        let unrepaired = repaired(inner, connection, limit).await? < seen.evicted();
        // A Redis restarted within the bound (from an older save the mark survives) may have
        // lost data the other nodes have not noticed yet either.
        let age = age.min(seen.uptime());
        if age < inner.staleness || unrepaired {
            // A new mark: a new deployment, or a flush the nodes that knew the data have not
            // noticed yet; or evictions no node has written back after yet. Give the nodes
            // that knew the data the bound to notice and write it back.
            let hold =
                if unrepaired { inner.staleness } else { inner.staleness.saturating_sub(age) };
            inner.freshness.hold_until(Instant::now() + hold);
        }
    }
    if newcomer && recovering(inner, connection, limit).await? {
        // Other nodes are writing back what Redis lost: wait for them.
        inner.freshness.hold_until(Instant::now() + inner.staleness / 3);
    } else if known.is_some() {
        inner.freshness.release();
    }
    if let Some(cause) = lost {
        tracing::warn!(cause, "Redis lost data: recovering the revocations this node knows");
        // A node that was not current when it noticed (cut off, paused, or its last proof
        // older than the bound) may lack revocations Redis lost and other nodes still hold:
        // whatever its part in the recovery, those reach Redis only when those nodes have
        // compared and written back. Like a node started after a loss, it waits the bound for
        // them, then loads everything, before it calls itself current.
        let vouched = inner.freshness.is_current();
        // The lost buckets first: small, and what a node started meanwhile needs most. Every
        // node has its own.
        write_lost(inner, connection, limit).await?;
        // Then what it applied lately, which the writer may not have read before the loss:
        // this reaches the writer within the bound, the comparison below only after the
        // writer is done.
        publish_recent(inner, connection, &primaries, limit).await?;
        let now = stream_position(inner, connection, limit).await?;
        let mut position = match previous {
            // The same stream: go on where this node was. The last entry it read is still
            // there: the count alone can be matched by a new stream that the nodes' recent
            // events filled.
            Some(previous)
                if now.added >= previous.added
                    && holds(inner, connection, previous, limit).await? =>
            {
                previous.clone()
            }
            // A new stream (Redis lost it too): every event on it came after the loss.
            _ => Position { last: "0-0".to_owned(), added: 0 },
        };
        let epoch = seen.epoch();
        let outcome = recover(inner, connection, &epoch, &primaries, &mut position, limit).await?;
        if !vouched {
            tracing::warn!(
                "this node was not current when Redis lost data: it waits the staleness bound \
                 for the other nodes to write back what it may lack, then loads everything"
            );
            inner.freshness.hold_until(Instant::now() + inner.staleness);
        }
        // What the write-back itself evicted (a full Redis under an evicting policy) is not
        // a new loss: without this, nodes would write back in a loop.
        let (after, _) = watermarks(inner, connection, &primaries, limit).await?;
        if !after.same_keyspace(&seen) {
            return Err(StoreError("Redis lost data again during the recovery".to_owned()));
        }
        record_repaired(inner, connection, after.evicted(), limit).await?;
        seen = after;
        if matches!(outcome, Outcome::Wrote | Outcome::Same) {
            if let Some(asked) = catch_up(inner, connection, &mut position, limit).await? {
                *known = Some(seen);
                inner.flush().await?;
                inner.freshness.heard(asked);
                return Ok((position, primaries));
            }
            tracing::warn!("revocation stream lost events during the recovery: reloading");
        }
    }
    // The position first: events written during the load are read again (merging is
    // idempotent), none is missed.
    let position = stream_position(inner, connection, limit).await?;
    for primary in &primaries {
        load_primary(inner, connection, primary, limit).await?;
    }
    let counter: Option<String> =
        bounded(limit, ::redis::cmd("GET").arg(inner.keys.generation()).query_async(connection))
            .await?;
    let buckets: Vec<(String, String)> =
        bounded(limit, ::redis::cmd("HGETALL").arg(inner.keys.lost()).query_async(connection))
            .await?;
    let buckets: Vec<(usize, u64)> = buckets
        .iter()
        .filter_map(|(bucket, until)| Some((bucket.parse().ok()?, until.parse().ok()?)))
        .collect();
    inner.dropped.merge_lost(&buckets, to_unix(SystemTime::now()));
    {
        let mut set = inner.set();
        if let Some(counter) = counter.as_deref().map(parse_generation).transpose()? {
            set.latest = set.latest.max(counter);
        }
        inner.enforce_cap(&mut set, None);
        inner.changed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    // Redis may have lost data while this node loaded (a flush midway): it then loaded only
    // part of what Redis held, and proves nothing. What it saw at the start becomes known, so
    // the next reload takes part in the recovery.
    let (now, _) = watermarks(inner, connection, &primaries, limit).await?;
    let lost_meanwhile = seen.loss(&now);
    *known = Some(seen);
    if let Some(cause) = lost_meanwhile {
        return Err(StoreError(format!("Redis lost data during the load: {cause}")));
    }
    inner.flush().await?;
    inner.freshness.heard(started);
    Ok((position, primaries))
}

/// Loads every subject hash `primary` holds and merges it into memory, a `SCAN` step at a
/// time: each step's hashes are fetched in one pipeline while the next step's keys are asked
/// for, and merged under the write lock for that step only (answers wait for a thousand-odd
/// inserts at most, never for the whole load).
async fn load_primary(
    inner: &Inner,
    connection: &mut Connection,
    primary: &Primary,
    limit: std::time::Duration,
) -> Result<(), StoreError> {
    let scan = |cursor: u64| {
        let mut scan = ::redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(inner.keys.subject_pattern()).arg("COUNT");
        scan.arg(SCAN_BATCH);
        scan
    };
    let (mut cursor, mut keys): (u64, Vec<String>) =
        bounded(limit, connection.query_at(&scan(0), primary)).await?;
    set_expired(inner);
    loop {
        let mut pipe = ::redis::pipe();
        for key in &keys {
            pipe.cmd("HGETALL").arg(key);
        }
        let mut fetching = connection.clone();
        let fetch = async {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            bounded(limit, fetching.pipeline_at::<Vec<Value>>(&pipe, primary)).await
        };
        let mut scanning = connection.clone();
        let next = async {
            if cursor == 0 {
                return Ok(None);
            }
            let step = scan(cursor);
            bounded(limit, scanning.query_at::<(u64, Vec<String>)>(&step, primary)).await.map(Some)
        };
        let (hashes, next) = tokio::join!(fetch, next);
        merge_hashes(inner, &hashes?);
        match next? {
            Some((after, more)) => (cursor, keys) = (after, more),
            None => return Ok(()),
        }
    }
}

/// Drops what expired before a load merges into the set.
fn set_expired(inner: &Inner) {
    inner.set().expire(to_unix(SystemTime::now()));
}

/// Merges `HGETALL` replies of subjects' hashes (each names its subject in field `s`).
fn merge_hashes(inner: &Inner, hashes: &[Value]) {
    let mut set = inner.set();
    for hash in hashes {
        let fields: &[Value] = match hash {
            Value::Array(items) => items,
            _ => continue,
        };
        let pairs =
            || fields.chunks_exact(2).filter_map(|pair| Some((bytes(&pair[0])?, bytes(&pair[1])?)));
        let Some(subject) = pairs().find(|(name, _)| *name == b"s").and_then(|(_, s)| hex_bytes(s))
        else {
            continue;
        };
        for (name, value) in pairs() {
            let Ok(value) = std::str::from_utf8(value) else { continue };
            if name == b"g" {
                if let Ok((generation, until)) = parse_subject_field(value) {
                    set.add_generation(&subject, generation, until);
                }
            } else if let Some(lineage) = name.strip_prefix(b"l:") {
                let id = hex_bytes(lineage).and_then(|id| <[u8; 16]>::try_from(id).ok());
                if let (Some(id), Ok(until)) = (id, value.parse()) {
                    set.add_lineage(&subject, SessionId(id), until);
                }
            }
        }
    }
    inner.enforce_cap(&mut set, None);
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

/// Hex text (as bytes) to bytes.
fn hex_bytes(text: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(text).ok().and_then(from_hex)
}

/// Whether some node is writing back what Redis lost.
async fn recovering(
    inner: &Inner,
    connection: &mut Connection,
    limit: std::time::Duration,
) -> Result<bool, StoreError> {
    let mut exists = ::redis::cmd("EXISTS");
    exists.arg(inner.keys.recovering());
    Ok(bounded(limit, exists.query_async::<u64>(connection)).await? > 0)
}

/// Raises a lost bucket's until. `KEYS[1]`: the lost buckets; `ARGV`: bucket, until.
const RAISE_LOST: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
";

/// Redis lost data: what this node dropped at its cap may be gone everywhere. Records its
/// buckets as lost, here and in Redis (for nodes started later).
async fn write_lost(
    inner: &Inner,
    connection: &mut Connection,
    limit: std::time::Duration,
) -> Result<(), StoreError> {
    let lost = inner.dropped.redis_lost(to_unix(SystemTime::now()));
    if lost.is_empty() {
        return Ok(());
    }
    tracing::error!(
        buckets = lost.len(),
        "Redis lost data while this node held less than everything (its cap): sessions of the \
         subjects it dropped get the failure policy until those entries expire"
    );
    let mut pipe = ::redis::pipe();
    for (bucket, until) in lost {
        pipe.add_command(eval(RAISE_LOST, inner.keys.lost())).arg(bucket).arg(until).ignore();
    }
    bounded(limit, pipe.query_async::<()>(connection)).await
}

/// Whether the stream still holds the entry at `position` (`0-0`: none read, so no).
async fn holds(
    inner: &Inner,
    connection: &mut Connection,
    position: &Position,
    limit: std::time::Duration,
) -> Result<bool, StoreError> {
    let mut range = ::redis::cmd("XRANGE");
    range.arg(inner.keys.stream()).arg(&position.last).arg(&position.last);
    let entries: Vec<Value> = bounded(limit, range.query_async(connection)).await?;
    Ok(!entries.is_empty())
}

/// Reads the stream to its end from `position`; returns when the node asked for its end, as
/// proof of having missed nothing up to then, or `None` when events were lost (trimmed, or the
/// stream recreated) and only a full load can tell what they were.
async fn catch_up(
    inner: &Inner,
    connection: &mut Connection,
    position: &mut Position,
    limit: std::time::Duration,
) -> Result<Option<Instant>, StoreError> {
    let asked = Instant::now();
    let end = stream_position(inner, connection, limit).await?;
    while read(inner, connection, position, None, limit).await? > 0 {}
    // Every entry added before `end` was asked for is read by now: fewer read than added
    // means some were trimmed unread.
    let complete = position.added >= end.added;
    Ok(complete.then_some(asked))
}

pub(super) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}
