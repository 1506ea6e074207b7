//! The full load of every subject hash, and the write-back after Redis lost its data.
use std::sync::PoisonError;
use std::time::SystemTime;

use tokio::time::Instant;

use super::super::StoreError;
use super::super::redis::{
    Connection, NEXT_GENERATION, Primary, bounded, eval, parse_generation, parse_subject_field,
};
use super::follower::{Position, stream_position};
use super::loss::{
    Watermarks, claim_mark, record_repaired, repaired, warn_about_eviction, watermarks,
};
use super::node::{Change, Event, Inner};
use crate::session::SessionId;
use crate::time::to_unix;

/// Keys per `SCAN` step of a reload.
const SCAN_BATCH: usize = 1_000;

/// Loads every subject hash and merges it into memory; returns the stream position to
/// follow from, and the primaries. Writes back everything this node knows when Redis lost
/// data since `known` was seen (see [`loss`](super::loss)), and records what it sees now.
pub(super) async fn reload(
    inner: &Inner,
    connection: &mut Connection,
    known: &mut Option<Watermarks>,
) -> Result<(Position, Vec<Primary>), StoreError> {
    // What is loaded is complete as of the start: later events are read from the stream.
    let started = Instant::now();
    let limit = inner.staleness;
    let primaries = bounded(limit, connection.primaries()).await?;
    let (mut seen, policies) = watermarks(inner, connection, &primaries, limit).await?;
    let lost = known.as_ref().and_then(|known| known.loss(&seen));
    let (mark, age) = claim_mark(inner, connection, limit).await?;
    seen.set_mark(mark);
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
    let buckets: Vec<(String, String)> =
        bounded(limit, ::redis::cmd("HGETALL").arg(inner.keys.lost()).query_async(connection))
            .await?;
    let buckets: Vec<(usize, u64)> = buckets
        .iter()
        .filter_map(|(bucket, until)| Some((bucket.parse().ok()?, until.parse().ok()?)))
        .collect();
    inner.dropped.merge_lost(&buckets, to_unix(SystemTime::now()));
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
        inner.enforce_cap(&mut set, None);
        inner.changed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    if let Some(cause) = lost {
        tracing::warn!(cause, "Redis lost data: writing back the revocations this node knows");
        announce_recovery(inner, connection, limit).await?;
        // The lost buckets first: small, and what a node started meanwhile needs most.
        write_lost(inner, connection, limit).await?;
        write_back(inner, connection, limit).await?;
        // What the write-back itself evicted (a full Redis under an evicting policy) is not
        // a new loss: without this, nodes would write back in a loop.
        let (after, _) = watermarks(inner, connection, &primaries, limit).await?;
        seen = after;
        record_repaired(inner, connection, seen.evicted(), limit).await?;
    }
    *known = Some(seen);
    inner.flush().await?;
    inner.freshness.heard(started);
    Ok((position, primaries))
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
            events.push(Event {
                subject: subject.clone(),
                change: change.0,
                until: change.1,
                covers: Vec::new(),
                offline: false,
            });
        }
    }
    events
}

/// Says "writing back" for the next staleness bound (`<prefix>recovering`, expiring): nodes
/// started meanwhile wait instead of answering from a Redis still missing entries.
async fn announce_recovery(
    inner: &Inner,
    connection: &mut Connection,
    limit: std::time::Duration,
) -> Result<(), StoreError> {
    let mut set = ::redis::cmd("SET");
    set.arg(inner.keys.recovering()).arg(1).arg("PX");
    set.arg(u64::try_from(inner.staleness.as_millis()).unwrap_or(u64::MAX).max(1));
    bounded(limit, set.query_async::<()>(connection)).await
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

/// Writes every entry this node holds back to Redis (after Redis lost its data).
async fn write_back(
    inner: &Inner,
    connection: &mut Connection,
    limit: std::time::Duration,
) -> Result<(), StoreError> {
    let events: Vec<Event> = {
        let set = inner.set.read().unwrap_or_else(PoisonError::into_inner);
        set.subjects
            .iter()
            .flat_map(|(subject, entry)| {
                let generation = (entry.generation != 0).then(|| Event {
                    subject: subject.to_vec(),
                    change: Change::Generation(entry.generation),
                    until: entry.generation_until,
                    covers: Vec::new(),
                    offline: false,
                });
                let lineages = entry.lineages.iter().map(|&(lineage, until)| Event {
                    subject: subject.to_vec(),
                    change: Change::Lineage(lineage),
                    until,
                    covers: Vec::new(),
                    offline: false,
                });
                generation.into_iter().chain(lineages).collect::<Vec<_>>()
            })
            .collect()
    };
    if !matches!(connection, Connection::Single(_)) {
        // A cluster routes each command to its own shard: one entry at a time.
        for (i, event) in events.iter().enumerate() {
            if i % 256 == 255 {
                announce_recovery(inner, connection, limit).await?;
            }
            inner.write(event).await?;
        }
        return Ok(());
    }
    // One server: pipelined, a batch per round trip. The counter is raised once, to the
    // largest generation, before any entry.
    let largest = events.iter().filter_map(|event| match event.change {
        Change::Generation(generation) => Some(generation),
        Change::Lineage(_) => None,
    });
    if let Some(largest) = largest.max() {
        let mut raise = eval(NEXT_GENERATION, inner.keys.generation());
        raise.arg(largest);
        bounded(limit, raise.query_async::<String>(connection)).await?;
    }
    let load = |script: &str| {
        let mut command = ::redis::cmd("SCRIPT");
        command.arg("LOAD").arg(script);
        command
    };
    let subject: String =
        bounded(limit, load(&inner.scripts.revoke_subject).query_async(connection)).await?;
    let lineage: String =
        bounded(limit, load(&inner.scripts.revoke_lineage).query_async(connection)).await?;
    let digests = (subject, lineage);
    for batch in events.chunks(WRITE_BATCH) {
        announce_recovery(inner, connection, limit).await?;
        let mut pipe = ::redis::pipe();
        for event in batch {
            pipe.add_command(inner.record_by(event, Some(&digests))).ignore();
            pipe.add_command(inner.publish(event)).ignore();
        }
        bounded(limit, pipe.query_async::<()>(connection)).await?;
    }
    Ok(())
}

/// Entries per pipelined round trip of a write-back.
const WRITE_BATCH: usize = 1_000;

pub(super) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}
