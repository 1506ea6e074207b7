//! After Redis lost data: one node writes everything back in bulk, the others check that they
//! hold the same, and write only when they hold something else.
//!
//! Every node notices the loss (see [`loss`](super::loss)) and names it by an *epoch* (the
//! primaries' run ids, the marks, the evictions seen). Then:
//!
//! * **first, what it applied lately** ([`publish_recent`]): written back and published at
//!   once, so a writer that had not read the last events before the loss learns them within
//!   the bound, not after the others' comparison (which waits for the writer);
//! * **one writer.** The first node to take the lock (`<prefix>recovering`, `SET NX PX` with the
//!   epoch and a random owner; a lease of the staleness bound, at least 2 s, renewed by a timer
//!   and with every round trip, so a writer that dies or hangs loses it within the lease)
//!   writes back every entry it holds: a merge script a few hundred
//!   subjects at a time, pipelined (on a cluster, one call per hash slot), with no event per
//!   entry on the stream. It then records `<prefix>recovered` = epoch, its entry count and a
//!   digest of its entries, and adds one event that wakes the nodes waiting for it;
//! * **the others wait**, following the stream meanwhile (they answer from memory, as the
//!   staleness bound allows), then compare their own count and digest with the record. Equal:
//!   they hold what Redis now holds, nothing to write or load. Different (a node that held
//!   entries the writer lacked: a revocation that reached it and not the writer before the
//!   loss, a different cap, a revocation made between the two snapshots): they write back
//!   their own entries with the same merge, which is idempotent and reports what it changed,
//!   publish events for those entries only, and load everything again (to learn what the
//!   writer held that they lacked). So Redis ends with the union of what the nodes held, and
//!   every node with the union too, while the stream carries one event per entry some node
//!   lacked instead of one per entry per node;
//! * **takeover.** A lock that expired without a record (the writer died or was cut off) is
//!   taken by the next node that looks; the merge makes writing twice harmless. What the lost
//!   writer wrote before is in Redis without an event, and may be what only it held: so a
//!   writer that finds another began this epoch's write-back (`<prefix>recovered` =
//!   `<epoch> writing <owner>`, set by each writer as it begins) adds `reload` to its record,
//!   and every node, itself included, loads everything afterwards (a node whose digest is the
//!   record's writes nothing first). A writer records only while `<prefix>recovered` still
//!   names it as the one writing, so a lost writer that comes back never replaces the record
//!   of the one that took over.
//!
//! The digest is keyed by the epoch (SHA-256 of the epoch and the entry, 128 bits, summed), so
//! nobody can choose entries whose sum matches another set's.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::super::StoreError;
use super::super::redis::{
    Connection, NEXT_GENERATION, Primary, bounded, eval, lineage_field, subject_hex,
};
use super::follower::{Position, parse_read};
use super::node::{Change, Event, Inner};
use crate::session::SessionId;
use crate::time::to_unix;

/// Subjects per call of the merge script (one server), and calls per round trip: a call runs
/// about a millisecond in Redis, short enough not to delay other clients much.
const SUBJECTS_PER_CALL: usize = 500;
const CALLS_PER_ROUND_TRIP: usize = 4;

/// Merge calls in flight at once on a cluster (each to its slot's primary).
const CLUSTER_IN_FLIGHT: usize = 32;

/// How this node's part of a recovery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It was the writer.
    Wrote,
    /// Another node wrote back exactly what this one holds.
    Same,
    /// It held something else: it wrote back its own entries, and must load everything.
    Differs,
    /// It holds what the writer wrote (or was that writer), but the writer took over from one
    /// lost midway, whose writes no event announced: it must load everything.
    Reload,
}

/// What `<prefix>recovered` says about one epoch: the writer wrote back this many entries,
/// with this digest; `reload`: it took over from a writer lost midway, so every node loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    count: u64,
    digest: u128,
    reload: bool,
}

/// Renews the lock if this node still holds it. `KEYS[1]`: the lock; `ARGV`: its value, the
/// lease in ms. Returns 1 when renewed.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Begins a write-back, after taking the lock. `KEYS[1]`: `<prefix>recovered`; `ARGV`: the
/// epoch, the owner. Returns `done` when the epoch's record is already there (untouched),
/// `over` when another writer began this epoch's write-back before (it was lost midway), else
/// `first`; in both of these, records that this owner writes.
const BEGIN: &str = r"
local current = redis.call('GET', KEYS[1])
local state = 'first'
if current then
  local epoch, what = string.match(current, '^(%S+) (%S+)')
  if epoch == ARGV[1] and what == 'writing' then
    state = 'over'
  elseif epoch == ARGV[1] then
    return 'done'
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' writing ' .. ARGV[2])
return state
";

/// Records a write-back if this owner is still the one writing. `KEYS[1]`:
/// `<prefix>recovered`; `ARGV`: the epoch, the owner, the record. Returns 1 when recorded.
const RECORD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' writing ' .. ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0
";

/// Deletes the lock if this node holds it. `KEYS[1]`: the lock; `ARGV[1]`: its value.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A subject's entries: the subject, its generation (0: none) and until when it matters, its
/// lineages and until when each matters.
type Subject = (Box<[u8]>, u64, u64, Vec<(SessionId, u64)>);

/// This node's entries, as of one moment, with their count and digest.
struct Snapshot {
    subjects: Vec<Subject>,
    count: u64,
    digest: u128,
}

impl Snapshot {
    /// Copies the entries under the read lock (answers wait for a copy, not for Redis), then
    /// digests them outside it.
    fn take(inner: &Inner, epoch: &str) -> Snapshot {
        let subjects: Vec<_> = {
            let set = inner.set.read().unwrap_or_else(PoisonError::into_inner);
            set.subjects
                .iter()
                .map(|(subject, entry)| {
                    let generation = (entry.generation, entry.generation_until);
                    (subject.clone(), generation.0, generation.1, entry.lineages.clone())
                })
                .collect()
        };
        let mut count = 0u64;
        let mut digest = 0u128;
        for (subject, generation, until, lineages) in &subjects {
            if *generation != 0 {
                count += 1;
                digest =
                    digest.wrapping_add(entry_digest(epoch, subject, b'g', *generation, *until));
            }
            for (lineage, until) in lineages {
                count += 1;
                let id = u128::from_be_bytes(lineage.0);
                digest = digest.wrapping_add(entry_digest(epoch, subject, b'l', id, *until));
            }
        }
        Snapshot { subjects, count, digest }
    }
}

/// One entry's share of a digest: 128 bits of SHA-256 over the epoch and the entry.
fn entry_digest(epoch: &str, subject: &[u8], kind: u8, value: impl Into<u128>, until: u64) -> u128 {
    let mut hash = Sha256::new();
    hash.update((epoch.len() as u64).to_be_bytes());
    hash.update(epoch.as_bytes());
    hash.update([kind]);
    hash.update(value.into().to_be_bytes());
    hash.update(until.to_be_bytes());
    hash.update(subject);
    let bytes = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&bytes[..16]);
    u128::from_be_bytes(first)
}

/// This node's part of recovering from the loss named `epoch`: writes, or waits and compares
/// (following the stream from `position` meanwhile). See the module docs.
pub(super) async fn recover(
    inner: &Inner,
    connection: &mut Connection,
    epoch: &str,
    primaries: &[Primary],
    position: &mut Position,
    limit: Duration,
) -> Result<Outcome, StoreError> {
    let owner = format!("{epoch} {}", token()?);
    let lease = lease(inner);
    // Taken when this node first finds another writing: about when the writer took its own,
    // so what reached one and not the other since (which would make them differ) is little;
    // and digested while waiting rather than after.
    let mut waiting: Option<Snapshot> = None;
    loop {
        if let Some(record) = record(inner, connection, epoch, limit).await? {
            let mine = waiting.take().unwrap_or_else(|| Snapshot::take(inner, epoch));
            if (mine.count, mine.digest) == (record.count, record.digest) {
                if record.reload {
                    tracing::info!(
                        entries = record.count,
                        "Redis recovered by a node that took over from a writer lost midway: \
                         same entries, loading what the lost writer wrote"
                    );
                    return Ok(Outcome::Reload);
                }
                tracing::info!(
                    entries = record.count,
                    "Redis recovered by another node: same entries"
                );
                return Ok(Outcome::Same);
            }
            tracing::warn!(
                held = mine.count,
                written = record.count,
                "Redis recovered by another node, which held other entries: writing back this \
                 node's, then loading everything"
            );
            let changed = write(inner, connection, &mine, primaries, None, limit).await?;
            // The entries some node lacked: on the stream, so every node learns them.
            publish(inner, connection, &changed, limit).await?;
            let changed = changed.len();
            tracing::info!(entries = mine.count, changed, "wrote back (the entries Redis lacked)");
            return Ok(Outcome::Differs);
        }
        let mut take = ::redis::cmd("SET");
        take.arg(inner.keys.recovering()).arg(&owner).arg("NX").arg("PX").arg(millis(lease));
        let taken: Option<String> = bounded(limit, take.query_async(connection)).await?;
        let begun = match taken {
            Some(_) => {
                let mut begin = eval(BEGIN, inner.keys.recovered());
                begin.arg(epoch).arg(&owner);
                Some(bounded(limit, begin.query_async::<String>(connection)).await?)
            }
            None => None,
        };
        if begun.as_deref() == Some("done") {
            // The writer finished between the look at the record and the lock: compare.
            let mut release = eval(RELEASE, inner.keys.recovering());
            release.arg(&owner);
            bounded(limit, release.query_async::<()>(connection)).await?;
            continue;
        }
        if let Some(begun) = begun {
            let took_over = begun == "over";
            let mine = Snapshot::take(inner, epoch);
            let started = Instant::now();
            // Renewed on a timer too, not only with each round trip: a writer slowed down
            // (a loaded machine, a long snapshot) keeps its lock as long as it lives.
            let heartbeat = tokio::spawn(heartbeat(
                connection.clone(),
                inner.keys.recovering(),
                owner.clone(),
                lease,
                limit,
            ));
            // A bulk round trip may take longer than one command on a loaded Redis: bounded by
            // the lease, so a round trip that times out is one the lock did not outlive anyway.
            let bound = limit.max(lease);
            let written = write(inner, connection, &mine, primaries, Some(&owner), bound).await;
            heartbeat.abort();
            if let Err(error) = written {
                // Let another node take over at once rather than after the lease.
                let mut release = eval(RELEASE, inner.keys.recovering());
                release.arg(&owner);
                let _ = bounded(limit, release.query_async::<()>(connection)).await;
                return Err(error);
            }
            // After a takeover, what the lost writer wrote is in Redis and on no node but
            // itself: every node must load, not compare.
            let mut text = format!("{epoch} {} {:x}", mine.count, mine.digest);
            if took_over {
                text.push_str(" reload");
            }
            let mut done = eval(RECORD, inner.keys.recovered());
            done.arg(epoch).arg(&owner).arg(text);
            if bounded(limit, done.query_async::<u64>(connection)).await? != 1 {
                // Lost the lock after the last renewal, and another node took over: its record
                // stands, this node compares with it when it tries again.
                return Err(StoreError("the recovery lock was lost: another node writes".into()));
            }
            let mut wake = ::redis::cmd("XADD");
            wake.arg(inner.keys.stream()).arg("MAXLEN").arg("~").arg(inner.stream_len);
            wake.arg("*").arg("r").arg(epoch);
            bounded(limit, wake.query_async::<()>(connection)).await?;
            let mut release = eval(RELEASE, inner.keys.recovering());
            release.arg(&owner);
            bounded(limit, release.query_async::<()>(connection)).await?;
            tracing::info!(
                entries = mine.count,
                took = ?started.elapsed(),
                took_over,
                "wrote back as the recovery writer"
            );
            return Ok(if took_over { Outcome::Reload } else { Outcome::Wrote });
        }
        if waiting.is_none() {
            waiting = Some(Snapshot::take(inner, epoch));
        }
        // Another node writes: follow the stream meanwhile (its last event ends the wait early).
        let block = (inner.staleness / 10).min(Duration::from_millis(100));
        read(inner, connection, position, Some(block), limit).await?;
    }
}

/// How long the recovery lock outlives its writer's last renewal: the staleness bound, at least
/// 2 s (a writer renews four times a lease, so only a writer that died or hung loses it).
fn lease(inner: &Inner) -> Duration {
    inner.staleness.max(Duration::from_secs(2))
}

/// Renews the lock every quarter of `lease` while the writer lives (aborted when it is done).
async fn heartbeat(
    mut connection: Connection,
    lock: String,
    owner: String,
    lease: Duration,
    limit: Duration,
) {
    loop {
        tokio::time::sleep(lease / 4).await;
        let mut renew = eval(RENEW, lock.clone());
        renew.arg(&owner).arg(millis(lease));
        if !matches!(bounded(limit, renew.query_async::<u64>(&mut connection)).await, Ok(1)) {
            // Lost (or Redis unreachable): the writer finds out at its next round trip.
            return;
        }
    }
}

/// The record of the recovery of `epoch`, if it is done.
async fn record(
    inner: &Inner,
    connection: &mut Connection,
    epoch: &str,
    limit: Duration,
) -> Result<Option<Record>, StoreError> {
    let mut get = ::redis::cmd("GET");
    get.arg(inner.keys.recovered());
    let text: Option<String> = bounded(limit, get.query_async(connection)).await?;
    Ok(text.as_deref().and_then(|text| parse_record(text, epoch)))
}

/// A record of `epoch` (`None`: of another epoch, a write-back still under way, or garbled).
fn parse_record(text: &str, epoch: &str) -> Option<Record> {
    let mut fields = text.split(' ');
    if fields.next() != Some(epoch) {
        return None;
    }
    let count = fields.next()?.parse().ok()?;
    let digest = u128::from_str_radix(fields.next()?, 16).ok()?;
    let reload = fields.next() == Some("reload");
    Some(Record { count, digest, reload })
}

/// Reads the stream after `position` (waiting at most `block` for something) and applies what
/// it brings: revocations made during a recovery still reach this node. Returns how many
/// entries it read.
pub(super) async fn read(
    inner: &Inner,
    connection: &mut Connection,
    position: &mut Position,
    block: Option<Duration>,
    limit: Duration,
) -> Result<u64, StoreError> {
    let mut read = ::redis::cmd("XREAD");
    read.arg("COUNT").arg(1_000);
    if let Some(block) = block {
        read.arg("BLOCK").arg(millis(block));
    }
    read.arg("STREAMS").arg(inner.keys.stream()).arg(&position.last);
    let wait = block.unwrap_or_default();
    let reply: ::redis::Value = bounded(limit + wait, read.query_async(connection)).await?;
    let (events, last, read_count) = parse_read(&reply);
    inner.apply(&events);
    if let Some(last) = last {
        position.last = last;
    }
    position.added += read_count;
    Ok(read_count)
}

/// Right after noticing a loss, before any comparison or write-back: writes back what this
/// node applied lately (see [`Recent`](super::node::Recent)) and publishes all of it, changed
/// or not (the writer may lack an entry another node already wrote back without an event).
/// The writer, reading the stream as it catches up after its own write-back, learns the last
/// events it had not read before the loss within the bound, not after the others' comparison.
pub(super) async fn publish_recent(
    inner: &Inner,
    connection: &mut Connection,
    primaries: &[Primary],
    limit: Duration,
) -> Result<(), StoreError> {
    let (events, overflowed) = inner.recent().within(Instant::now());
    if overflowed {
        tracing::warn!(
            kept = events.len(),
            "more revocations than the recent buffer keeps within twice the staleness bound: \
             the others learn the rest from the full comparison, which may leave the recovery \
             writer without some of them past the bound"
        );
    }
    let now = to_unix(SystemTime::now());
    let events: Vec<Event> = events.into_iter().filter(|event| event.until > now).collect();
    if events.is_empty() {
        return Ok(());
    }
    let mut subjects: Vec<Subject> = Vec::new();
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for event in &events {
        let i = *index.entry(&event.subject[..]).or_insert_with(|| {
            subjects.push((event.subject.clone().into(), 0, 0, Vec::new()));
            subjects.len() - 1
        });
        let (_, generation, until, lineages) = &mut subjects[i];
        match event.change {
            Change::Generation(given) if given >= *generation => {
                (*generation, *until) = (given, event.until.max(*until));
            }
            Change::Generation(_) => *until = event.until.max(*until),
            Change::Lineage(lineage) => lineages.push((lineage, event.until)),
        }
    }
    let snapshot = Snapshot { subjects, count: events.len() as u64, digest: 0 };
    write(inner, connection, &snapshot, primaries, None, limit).await?;
    publish(inner, connection, &events, limit).await?;
    tracing::info!(events = events.len(), "wrote back and published this node's recent events");
    Ok(())
}

/// Adds `events` to the stream, a thousand per round trip.
async fn publish(
    inner: &Inner,
    connection: &mut Connection,
    events: &[Event],
    limit: Duration,
) -> Result<(), StoreError> {
    for chunk in events.chunks(1_000) {
        let mut pipe = ::redis::pipe();
        for event in chunk {
            pipe.add_command(inner.publish(event)).ignore();
        }
        bounded(limit, pipe.query_async::<()>(connection)).await?;
    }
    Ok(())
}

/// Writes `snapshot` back with the merge script; when `lock` is given, renews it with every
/// round trip and stops when it was lost. Without a lock (a node that held other entries than
/// the writer, or its recent events), returns the events of the entries that changed Redis.
async fn write(
    inner: &Inner,
    connection: &mut Connection,
    snapshot: &Snapshot,
    primaries: &[Primary],
    lock: Option<&str>,
    limit: Duration,
) -> Result<Vec<Event>, StoreError> {
    // Loaded on every primary: a cluster runs each call on its slot's primary.
    let mut digest = String::new();
    for primary in primaries {
        let mut load = ::redis::cmd("SCRIPT");
        load.arg("LOAD").arg(inner.scripts.write_back);
        digest = bounded(limit, connection.query_at(&load, primary)).await?;
    }
    let call = |subjects: &[usize]| {
        let mut call = ::redis::cmd("EVALSHA");
        call.arg(&digest).arg(subjects.len());
        for &i in subjects {
            call.arg(inner.keys.subject(&snapshot.subjects[i].0));
        }
        for &i in subjects {
            let (subject, generation, until, lineages) = &snapshot.subjects[i];
            call.arg(subject_hex(subject)).arg(*generation).arg(*until).arg(lineages.len());
            for (lineage, until) in lineages {
                call.arg(lineage_field(*lineage)).arg(*until);
            }
        }
        call
    };
    let renew = || {
        lock.map(|owner| {
            let mut renew = eval(RENEW, inner.keys.recovering());
            renew.arg(owner).arg(millis(lease(inner)));
            renew
        })
    };
    // The counter first, to the largest generation: a generation given after the recovery
    // stays above every one written back.
    let largest = snapshot.subjects.iter().map(|(_, generation, ..)| *generation).max();
    if let Some(largest) = largest.filter(|&largest| largest > 0) {
        let mut raise = eval(NEXT_GENERATION, inner.keys.generation());
        raise.arg(largest);
        bounded(limit, raise.query_async::<String>(connection)).await?;
    }
    let mut changed = Vec::new();
    if matches!(connection, Connection::Single(_)) {
        // The writer sends the subjects that hold only logouts (most of them) as plain
        // commands, about half the work of the script in Redis: `HSET` of a lineage writes the
        // value every node gives it (the session's end), so it never lowers anything, and the
        // two `EXPIREAT`s keep the later expiry (`NX` sets one where there is none, `GT` only
        // raises). Subjects with a "log out everywhere" go through the script, which keeps the
        // larger generation (one given during the recovery may already be there).
        let plain = |i: usize| lock.is_some() && snapshot.subjects[i].1 == 0;
        let (plain, scripted): (Vec<usize>, Vec<usize>) =
            (0..snapshot.subjects.len()).partition(|&i| plain(i));
        // Each round trip is sent from its own task while the next one is built: the client
        // builds and Redis runs at the same time.
        let mut in_flight: Option<tokio::task::JoinHandle<Result<Vec<::redis::Value>, _>>> = None;
        let lost_lock = || StoreError("the recovery lock was lost: another node writes".into());
        for round in plain.chunks(SUBJECTS_PER_CALL * CALLS_PER_ROUND_TRIP) {
            let mut pipe = ::redis::pipe();
            if let Some(renew) = renew() {
                pipe.add_command(renew);
            }
            for &i in round {
                let (subject, _, _, lineages) = &snapshot.subjects[i];
                let key = inner.keys.subject(subject);
                let mut set = ::redis::cmd("HSET");
                set.arg(&key);
                for (lineage, until) in lineages {
                    set.arg(lineage_field(*lineage)).arg(*until);
                }
                set.arg("s").arg(subject_hex(subject));
                pipe.add_command(set).ignore();
                let last = lineages.iter().map(|&(_, until)| until).max().unwrap_or(0);
                for condition in ["NX", "GT"] {
                    pipe.cmd("EXPIREAT").arg(&key).arg(last).arg(condition).ignore();
                }
            }
            if let Some(previous) = in_flight.take() {
                let replies =
                    previous.await.map_err(|e| StoreError(format!("write-back: {e}")))??;
                if replies.first() != Some(&::redis::Value::Int(1)) {
                    return Err(lost_lock());
                }
            }
            let mut sending = connection.clone();
            in_flight = Some(tokio::spawn(async move {
                bounded(limit, pipe.query_async::<Vec<::redis::Value>>(&mut sending)).await
            }));
        }
        if let Some(last) = in_flight {
            let replies = last.await.map_err(|e| StoreError(format!("write-back: {e}")))??;
            if replies.first() != Some(&::redis::Value::Int(1)) {
                return Err(lost_lock());
            }
        }
        for round in scripted.chunks(SUBJECTS_PER_CALL * CALLS_PER_ROUND_TRIP) {
            let mut pipe = ::redis::pipe();
            if let Some(renew) = renew() {
                pipe.add_command(renew);
            }
            let calls: Vec<&[usize]> = round.chunks(SUBJECTS_PER_CALL).collect();
            for subjects in &calls {
                pipe.add_command(call(subjects));
            }
            let mut replies: Vec<::redis::Value> =
                bounded(limit, pipe.query_async(connection)).await?;
            if lock.is_some() && replies.remove(0) != ::redis::Value::Int(1) {
                return Err(StoreError("the recovery lock was lost: another node writes".into()));
            }
            for (subjects, reply) in calls.iter().zip(replies) {
                changed.extend(positions(subjects, &reply, snapshot));
            }
        }
    } else {
        // A cluster: one call per hash slot (a script's keys must share one), several in
        // flight at once, the lock renewed between groups of them.
        let mut by_slot: std::collections::HashMap<_, Vec<usize>> = Default::default();
        for (i, (subject, ..)) in snapshot.subjects.iter().enumerate() {
            let slot = ::redis::cluster_routing::Slot::for_key(inner.keys.subject(subject));
            by_slot.entry(slot).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = by_slot
            .into_values()
            .flat_map(|group| {
                group.chunks(SUBJECTS_PER_CALL).map(<[usize]>::to_vec).collect::<Vec<_>>()
            })
            .collect();
        for wave in groups.chunks(CLUSTER_IN_FLIGHT) {
            if let Some(renew) = renew() {
                let renewed: u64 = bounded(limit, renew.query_async(connection)).await?;
                if renewed != 1 {
                    return Err(StoreError(
                        "the recovery lock was lost: another node writes".into(),
                    ));
                }
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (n, subjects) in wave.iter().enumerate() {
                let (command, mut connection) = (call(subjects), connection.clone());
                tasks.spawn(async move {
                    (
                        n,
                        bounded(limit, command.query_async::<::redis::Value>(&mut connection))
                            .await,
                    )
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (n, reply) = done.map_err(|e| StoreError(format!("write-back task: {e}")))?;
                changed.extend(positions(&wave[n], &reply?, snapshot));
            }
        }
    }
    Ok(changed)
}

/// The events of the entries a merge call reports as changed (1-based positions, key after
/// key: a subject's generation, then its lineages).
fn positions(subjects: &[usize], reply: &::redis::Value, snapshot: &Snapshot) -> Vec<Event> {
    let ::redis::Value::Array(items) = reply else { return Vec::new() };
    let wanted: Vec<u64> = items
        .iter()
        .filter_map(|item| match item {
            ::redis::Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut events = Vec::new();
    let mut position = 0u64;
    for &i in subjects {
        let (subject, generation, until, lineages) = &snapshot.subjects[i];
        let event = |change, until| Event {
            subject: subject.to_vec(),
            change,
            until,
            covers: Vec::new(),
            offline: false,
        };
        if *generation != 0 {
            position += 1;
            if wanted.binary_search(&position).is_ok() {
                events.push(event(Change::Generation(*generation), *until));
            }
        }
        for (lineage, until) in lineages {
            position += 1;
            if wanted.binary_search(&position).is_ok() {
                events.push(event(Change::Lineage(*lineage), *until));
            }
        }
    }
    events
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A random owner token for the lock.
fn token() -> Result<String, StoreError> {
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).map_err(|_| StoreError("no randomness for a lock".to_owned()))?;
    Ok(token.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merge script numbers entries key after key, a subject's generation before its
    /// lineages; the events published are exactly the numbered ones.
    #[test]
    fn the_entries_a_merge_reports_become_their_events() {
        let id = |n: u8| SessionId([n; 16]);
        let snapshot = Snapshot {
            subjects: vec![
                (b"a"[..].into(), 7, 100, vec![(id(1), 50), (id(2), 60)]),
                (b"b"[..].into(), 0, 0, vec![(id(3), 70)]),
            ],
            count: 4,
            digest: 0,
        };
        let describe = |events: Vec<Event>| -> Vec<String> {
            events
                .iter()
                .map(|e| format!("{}:{:?}:{}", e.subject[0] as char, e.change, e.until))
                .collect()
        };
        // (positions reported, events)
        let table: [(&[i64], &[&str]); 3] = [
            (&[], &[]),
            (
                &[1, 4],
                &[
                    "a:Generation(7):100",
                    "b:Lineage(SessionId(03030303030303030303030303030303)):70",
                ],
            ),
            (&[3], &["a:Lineage(SessionId(02020202020202020202020202020202)):60"]),
        ];
        for (reported, expected) in table {
            let reply =
                ::redis::Value::Array(reported.iter().map(|&n| ::redis::Value::Int(n)).collect());
            assert_eq!(describe(positions(&[0, 1], &reply, &snapshot)), expected, "{reported:?}");
        }
    }

    #[test]
    fn only_a_finished_record_of_the_same_epoch_counts() {
        // (record, what it says about epoch e1)
        let record = |reload| Some(Record { count: 3, digest: 0xff, reload });
        let table = [
            ("e1 3 ff", record(false)),
            ("e1 3 ff reload", record(true)),
            ("e1 writing e1 0123", None),
            ("e0 3 ff", None),
            ("e0 3 ff reload", None),
            ("e1 3", None),
            ("e1", None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_record(text, "e1"), expected, "{text:?}");
        }
    }

    #[test]
    fn a_digest_tells_sets_apart_whatever_their_order() {
        let entry = |subject: &[u8], until| entry_digest("e1", subject, b'l', 7u64, until);
        let (a, b, c) = (entry(b"a", 10), entry(b"b", 10), entry(b"b", 11));
        // (left, right, equal?)
        let table = [
            (a.wrapping_add(b), b.wrapping_add(a), true),
            (a.wrapping_add(b), a.wrapping_add(c), false),
            (a, entry_digest("e2", b"a", b'l', 7u64, 10), false),
            (a, entry_digest("e1", b"a", b'g', 7u64, 10), false),
        ];
        for (left, right, equal) in table {
            assert_eq!(left == right, equal);
        }
    }
}
