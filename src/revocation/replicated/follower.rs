//! The follower task: a full load, then the stream, reloading whenever it cannot be sure it
//! saw every event.
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use ::redis::Value;

use super::super::StoreError;
use super::super::redis::{Connection, Keys, Primary, bounded};
use super::loss::{Watermarks, watermarks};
use super::node::{Change, Event, Inner};
use super::reload::{from_hex, reload};
use crate::session::SessionId;
use crate::time::to_unix;

/// Events read per `XREAD`.
const READ_BATCH: usize = 1_000;

/// How long the follower waits before trying Redis again after a failure.
const RETRY: Duration = Duration::from_millis(100);

/// The follower: load, then read the stream, until the store is dropped.
pub(super) async fn follow(inner: Weak<Inner>, mut connection: Connection) {
    let mut known: Option<Watermarks> = None;
    // Where the stream was last read: after a loss, the nodes that hold what the writer wrote
    // back go on from there instead of loading everything again.
    let mut position: Option<Position> = None;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let reloaded = reload(&strong, &mut connection, &mut known, position.as_ref()).await;
        crate::metrics::replica_reloaded(reloaded.is_ok());
        let (mut read, primaries) = match reloaded {
            Ok(loaded) => loaded,
            Err(error) => {
                strong.freshness.failed(&error);
                drop(strong);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // What Redis holds is what this node loaded only while the marks are still these.
        let marks = known.as_ref().map(|seen| seen.marks().to_vec());
        *strong.marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = marks;
        drop(strong);
        let Some(seen) = known.as_ref() else { continue };
        let tailed = tail(&inner, &mut connection, &mut read, &primaries, seen).await;
        position = Some(read);
        if let Err(error) = tailed {
            let Some(strong) = inner.upgrade() else { return };
            strong.freshness.failed(&error);
            drop(strong);
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// How long past its `BLOCK` a stream read may take, at least, before the node gives up on the
/// connection and loads everything again: ten of Redis's timer ticks at its default `hz`, one
/// at the lowest `hz` it accepts. Only bounds under 3 s are affected: above, a third of the
/// bound is longer.
const READ_SLACK: Duration = Duration::from_secs(1);

/// Reads the stream from `position` until something makes a reload necessary (`Err` for a
/// failure, `Ok` for lost events or a cap that has room again) or the store is dropped.
///
/// Lost events (the stream trimmed past this node's position, or recreated): whenever the
/// node has read everything there is to read, it must have read every entry added since its
/// position was taken; `XINFO STREAM`'s `entries-added` says how many that is.
async fn tail(
    weak: &Weak<Inner>,
    connection: &mut Connection,
    position: &mut Position,
    primaries: &[Primary],
    known: &Watermarks,
) -> Result<(), StoreError> {
    let mut last_expiry = 0;
    let mut last_check = Instant::now();
    // The previous look at the stream: when it was asked, and how many entries had been added.
    let mut previous: Option<(Instant, u64)> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return Ok(()) };
        let block = inner.staleness / 3;
        let limit = inner.staleness - block;
        // Redis answers a blocking read's timeout on its timer tick (every 1000/hz ms: 100 ms
        // at the default `hz` of 10), so the reply to an idle read comes up to a tick after
        // `block`: on a short bound, `limit` alone would give up on a healthy Redis. The read
        // may outlast the bound without harm (the node turns stale by its own clock, not by
        // this timeout), while giving up on it costs a full load.
        let read_limit = limit.max(block + READ_SLACK);
        if inner.flush().await.is_err() {
            tracing::debug!("queued revocations still wait for Redis");
        }
        let mut read = ::redis::cmd("XREAD");
        read.arg("COUNT").arg(READ_BATCH).arg("BLOCK").arg(block.as_millis().max(1) as u64);
        read.arg("STREAMS").arg(inner.keys.stream()).arg(&position.last);
        let keys = inner.keys.clone();
        // The store may be dropped while this waits: hold only a weak reference meanwhile.
        drop(inner);
        let reply: Value = bounded(read_limit, read.query_async(connection)).await?;
        let Some(inner) = weak.upgrade() else { return Ok(()) };
        let (events, last, read_count) = parse_read(&reply);
        inner.apply(&events);
        if let Some(last) = last {
            position.last = last;
        }
        position.added += read_count;
        let asked = Instant::now();
        let now = stream_position_of(&keys, connection, limit).await?;
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
        if inner.freshness.hold_ended() {
            // Before any proof counts: load again what others wrote during the hold.
            return Ok(());
        }
        if caught_up {
            // Every event added before `XINFO` answered has been read.
            inner.freshness.heard(asked);
        } else if let Some((at, _)) = previous.filter(|&(_, added)| position.added >= added) {
            // Still behind while others write fast (a write-back of many entries), yet past
            // where the stream ended at the previous look: every event added before that look
            // has been read (one trimmed unread keeps `added` short of it). Without this, a
            // node following a long burst would turn stale until the burst ends.
            inner.freshness.heard(at);
        }
        previous = Some((asked, now.added));
        if last_check.elapsed() >= inner.staleness / 3 {
            // Lost data leaves the stream as it was when nobody revokes: look at Redis itself.
            last_check = Instant::now();
            let (seen, _) = watermarks(&inner, connection, primaries, limit).await?;
            if let Some(cause) = known.loss(&seen) {
                tracing::warn!(cause, "Redis lost data: reloading");
                return Ok(());
            }
        }
        let unix_now = to_unix(SystemTime::now());
        if unix_now != last_expiry {
            last_expiry = unix_now;
            inner.set().expire(unix_now);
            // Room again changes nothing for what was dropped: only its expiry does.
            inner.dropped.expire(unix_now);
        }
    }
}

/// Where the stream stands: the last id it gave and how many entries were ever added to it
/// (`XINFO STREAM`; a missing stream has given none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) last: String,
    pub(super) added: u64,
}

pub(super) async fn stream_position(
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

/// The events of an `XREAD` reply, the id of the last entry, and how many entries it held.
pub(super) fn parse_read(reply: &Value) -> (Vec<Event>, Option<String>, u64) {
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
    let mut covers = Vec::new();
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
            "c" => {
                let ids = from_hex(&text(value)?)?;
                for id in ids.chunks_exact(crate::format::SESSION_ID_LEN) {
                    covers.push(SessionId(id.try_into().ok()?));
                }
            }
            _ => {}
        }
    }
    Some(Event { subject: subject?, change: change?, until: until?, covers, offline: false })
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
