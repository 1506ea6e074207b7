//! What one node holds (its replica, its queue of unwritten revocations, what it learned
//! recently) and how it writes its own revocations to Redis.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::super::memory::RevocationSet;
use super::super::redis::{
    Connection, Keys, NEXT_GENERATION, Scripts, bounded, eval, lineage_field, parse_generation,
    parse_subject_field, subject_hex,
};
use super::super::{Query, StoreError};
use super::cap::Dropped;
use super::health::Freshness;
use crate::session::SessionId;
use crate::time::to_unix;

/// What one node holds and shares.
pub(super) struct Inner {
    pub(super) set: RwLock<RevocationSet>,
    /// The follower heard from Redis within the bound and has loaded everything.
    pub(super) freshness: Freshness,
    /// Something was added since the last snapshot.
    pub(super) changed: AtomicBool,
    /// Where entries were dropped at the cap, until they expire.
    pub(super) dropped: Dropped,
    /// The mark keys as of the last full load, one per primary holding slots (`None`: no
    /// load yet): a strict lookup trusts Redis only while every mark is still this one (see
    /// [`lookup`](Inner::lookup)).
    pub(super) marks: Mutex<Option<Vec<Option<String>>>>,
    /// This node's revocations not yet written to Redis.
    pub(super) pending: Mutex<VecDeque<Event>>,
    /// What this node added or learned lately: written back and published first after a loss.
    pub(super) recent: Mutex<Recent>,
    pub(super) writer: Connection,
    pub(super) keys: Keys,
    pub(super) scripts: Scripts,
    /// The bound of one write.
    pub(super) timeout: Duration,
    pub(super) staleness: Duration,
    pub(super) max_entries: usize,
    /// Logouts of one subject held before they fold into a "log out everywhere".
    pub(super) fold_after: usize,
    pub(super) stream_len: usize,
}

/// One revocation, as applied, written and streamed.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) subject: Vec<u8>,
    pub(super) change: Change,
    pub(super) until: u64,
    /// Lineages of the subject a generation covers (folded logouts): dropped everywhere.
    pub(super) covers: Vec<SessionId>,
    /// A generation this node gave without Redis: given again by Redis when written.
    pub(super) offline: bool,
}

/// Most events [`Recent`] keeps: past it, the oldest go (and the loss that follows relies on
/// the others' comparison for them, as it did before there was a buffer). What a writer lacks
/// is the newest events before the loss, which a follower reads within milliseconds, so a
/// thousand cover it. Every node publishes what it keeps at once after a loss: with 65,536, a
/// mass logout just before it (11,000 events on each of three nodes at the fault suite's full
/// size) made a burst that the followers read for seconds (every node right after 6.4 s
/// instead of 3.6) and, in one of two runs, 1,000 never-revoked sessions refused during a
/// blip under `Reject`.
pub(super) const RECENT_CAP: usize = 1_024;

/// The events this node applied lately (its own revocations and what its follower read), with
/// when.
///
/// Why: a node current when Redis lost data may not have read the last events before the loss
/// (its proof is up to a bound old), and if it becomes the recovery writer it calls itself
/// current once it has written back. The nodes that hold those events deliver them in their
/// comparison, which waits for the writer and takes seconds at 10^6 entries. Each node instead
/// writes back and publishes what is in here as soon as it notices the loss: every node
/// notices within a fraction of the bound, so the writer learns them within the bound. Events
/// are kept for `retention` (twice the bound: the bound before the loss that a current node's
/// proof may not cover, then up to a bound for this node to notice).
#[derive(Debug)]
pub(super) struct Recent {
    events: VecDeque<(Instant, Event)>,
    retention: Duration,
    cap: usize,
    /// When the newest event dropped at the cap was applied (`None`: none was).
    dropped: Option<Instant>,
}

impl Recent {
    pub(super) fn new(retention: Duration, cap: usize) -> Recent {
        Recent { events: VecDeque::new(), retention, cap, dropped: None }
    }

    /// Keeps `events`, applied at `now`; forgets what is older than the retention, and the
    /// oldest past the cap.
    pub(super) fn push(&mut self, events: &[Event], now: Instant) {
        self.expire(now);
        for event in events {
            if self.events.len() == self.cap {
                if let Some((at, _)) = self.events.pop_front() {
                    self.dropped = Some(at);
                }
            }
            self.events.push_back((now, event.clone()));
        }
    }

    fn expire(&mut self, now: Instant) {
        while self.events.front().is_some_and(|(at, _)| now.duration_since(*at) > self.retention) {
            self.events.pop_front();
        }
    }

    /// The events applied within the retention before `now`, and whether some of that window
    /// went at the cap.
    pub(super) fn within(&mut self, now: Instant) -> (Vec<Event>, bool) {
        self.expire(now);
        let overflowed = self.dropped.is_some_and(|at| now.duration_since(at) <= self.retention);
        (self.events.iter().map(|(_, event)| event.clone()).collect(), overflowed)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Generation(u64),
    Lineage(SessionId),
}

impl Inner {
    pub(super) fn set(&self) -> std::sync::RwLockWriteGuard<'_, RevocationSet> {
        self.set.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The replica's state for the metrics: seconds since the last proof, entries, queue.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(super) fn sample(&self) -> (f64, usize, usize) {
        let entries = self.set.read().unwrap_or_else(PoisonError::into_inner).entries;
        let queue = self.pending.lock().unwrap_or_else(PoisonError::into_inner).len();
        (self.freshness.age_secs(), entries, queue)
    }

    /// Applies an event to memory, then enforces the cap.
    pub(super) fn apply(&self, events: &[Event]) {
        if !events.is_empty() {
            self.changed.store(true, Ordering::SeqCst);
            self.recent().push(events, Instant::now());
        }
        let mut set = self.set();
        for event in events {
            match event.change {
                Change::Generation(generation) => {
                    set.add_generation(&event.subject, generation, event.until);
                    set.remove_lineages(&event.subject, &event.covers);
                }
                Change::Lineage(lineage) => {
                    set.add_lineage(&event.subject, lineage, event.until);
                }
            };
        }
        self.enforce_cap(&mut set, events.last().map(|event| &event.subject[..]));
    }

    pub(super) fn enforce_cap(&self, set: &mut RevocationSet, keep: Option<&[u8]>) {
        if set.entries <= self.max_entries {
            return;
        }
        set.expire(to_unix(SystemTime::now()));
        let dropped = set.shrink_to(self.max_entries, keep);
        if self.dropped.record(&dropped) {
            tracing::error!(
                subjects = dropped.len(),
                cap = self.max_entries,
                "revocation replica over its cap: dropped the subjects whose entries end \
                 soonest; their sessions are looked up in Redis (or get the failure policy \
                 when it cannot answer) until those entries expire"
            );
        }
    }

    /// Writes one event to Redis: the durable entry, then the stream.
    pub(super) async fn write(&self, event: &Event) -> Result<(), StoreError> {
        let mut connection = self.writer.clone();
        let mut event = event.clone();
        if let Change::Generation(generation) = event.change {
            // Raises the counter to a generation given while Redis was unreachable.
            let mut raise = eval(NEXT_GENERATION, self.keys.generation());
            raise.arg(generation);
            bounded(self.timeout, raise.query_async::<String>(&mut connection)).await?;
            if event.offline {
                // Given from this node's clock, it may be smaller than stamps other nodes gave
                // meanwhile (a partition, a clock behind): Redis gives it again, after every
                // stamp given so far. Sessions signed in between the call and now are revoked
                // too: the safe side, never a revocation that misses.
                let mut next = eval(NEXT_GENERATION, self.keys.generation());
                next.arg(0);
                let text =
                    bounded(self.timeout, next.query_async::<String>(&mut connection)).await?;
                event.change = Change::Generation(parse_generation(&text)?.max(generation));
                event.offline = false;
                self.apply(std::slice::from_ref(&event));
            }
        }
        bounded(self.timeout, self.record(&event).query_async::<()>(&mut connection)).await?;
        if !event.covers.is_empty() {
            // The generation is recorded: the logouts it covers may go.
            let mut delete = ::redis::cmd("HDEL");
            delete.arg(self.keys.subject(&event.subject));
            for lineage in &event.covers {
                delete.arg(lineage_field(*lineage));
            }
            bounded(self.timeout, delete.query_async::<()>(&mut connection)).await?;
        }
        bounded(self.timeout, self.publish(&event).query_async::<()>(&mut connection)).await
    }

    /// The command recording `event` durably (its generation already given).
    pub(super) fn record(&self, event: &Event) -> ::redis::Cmd {
        self.record_by(event, None)
    }

    /// [`record`](Inner::record), by the scripts' digests when given (`EVALSHA`, for the
    /// write-back: the script text is not sent once per entry).
    pub(super) fn record_by(
        &self,
        event: &Event,
        digests: Option<&(String, String)>,
    ) -> ::redis::Cmd {
        let key = self.keys.subject(&event.subject);
        let script = |text: &str, digest: Option<&String>, key: String| match digest {
            Some(digest) => {
                let mut command = ::redis::cmd("EVALSHA");
                command.arg(digest).arg(1).arg(key);
                command
            }
            None => eval(text, key),
        };
        match event.change {
            Change::Generation(generation) => {
                let digest = digests.map(|(subject, _)| subject);
                let mut record = script(&self.scripts.revoke_subject, digest, key);
                record.arg(generation).arg(event.until).arg(subject_hex(&event.subject));
                record
            }
            Change::Lineage(lineage) => {
                let digest = digests.map(|(_, lineage)| lineage);
                let mut record = script(&self.scripts.revoke_lineage, digest, key);
                record.arg(lineage_field(lineage)).arg(event.until);
                record.arg(subject_hex(&event.subject));
                record
            }
        }
    }

    /// The command adding `event` to the stream.
    pub(super) fn publish(&self, event: &Event) -> ::redis::Cmd {
        let (field, value) = match event.change {
            Change::Generation(generation) => ("g", generation.to_string()),
            Change::Lineage(lineage) => ("l", lineage.to_string()),
        };
        let mut add = ::redis::cmd("XADD");
        add.arg(self.keys.stream()).arg("MAXLEN").arg("~").arg(self.stream_len).arg("*");
        add.arg("s").arg(&event.subject[..]).arg(field).arg(value).arg("u").arg(event.until);
        let covers: String = event.covers.iter().map(ToString::to_string).collect();
        if !covers.is_empty() {
            add.arg("c").arg(covers);
        }
        add
    }

    /// The strict answer for a session whose subject's entries may have been dropped at the
    /// cap: this node's queued revocations, then Redis (one `HMGET`, then a `GET` of each mark),
    /// trusted only when nothing failed since the last full load and the mark is that load's:
    /// otherwise Redis may have lost the entries without this node knowing yet, and the error
    /// hands the session to the failure policy.
    pub(super) async fn lookup(&self, query: &Query<'_>) -> Result<bool, StoreError> {
        let queued = self.pending.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|e| {
            *e.subject == *query.subject
                && match e.change {
                    Change::Generation(generation) => query.generation < generation,
                    Change::Lineage(lineage) => lineage == query.lineage,
                }
        });
        if queued {
            return Ok(true);
        }
        if self.freshness.failing() {
            // Redis failed since the last load: it may be a server restarted from an older
            // snapshot (same mark, fewer entries), which only the next load tells (run ids).
            return Err(StoreError(
                "Redis failed since this node last loaded: entries dropped at the cap may be \
                 gone"
                    .to_owned(),
            ));
        }
        let mut command = ::redis::cmd("HMGET");
        command.arg(self.keys.subject(query.subject)).arg("g").arg(lineage_field(query.lineage));
        let mut connection = self.writer.clone();
        let values: Vec<Option<String>> =
            bounded(self.timeout, command.query_async(&mut connection)).await?;
        // Redis may have lost data (a restart, a flush) since this node last loaded, and the
        // follower may not have noticed yet: an empty Redis would answer "not revoked" for what
        // this node dropped. The mark, read after the answer, is the one of the last load only
        // if nothing was lost before the answer was read.
        // In a cluster every primary has its own mark: the subject's shard may be the one that
        // lost its data, so all of them are read (a strict lookup is rare: past the cap only).
        let mut marks = Vec::new();
        for tag in bounded(self.timeout, connection.mark_tags()).await? {
            let mut get = ::redis::cmd("GET");
            get.arg(self.keys.mark_at(tag.as_deref()));
            let mark: Option<String> =
                bounded(self.timeout, get.query_async(&mut connection)).await?;
            marks.push(mark);
        }
        let known = self.marks.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if marks.iter().any(Option::is_none) || Some(marks) != known {
            return Err(StoreError(
                "Redis lost data since this node last loaded (its mark key changed): entries \
                 dropped at the cap may be gone"
                    .to_owned(),
            ));
        }
        let [generation, lineage] = values.as_slice() else {
            return Err(StoreError(format!(
                "Redis answered HMGET of 2 fields with {}",
                values.len()
            )));
        };
        let generation = generation.as_deref().map(parse_subject_field).transpose()?;
        Ok(lineage.is_some()
            || generation.is_some_and(|(generation, _)| query.generation < generation))
    }

    /// Applies an own revocation at once, then writes it, or queues it when Redis fails.
    pub(super) async fn revoke(&self, event: Event) {
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

    pub(super) fn queue(&self, event: Event) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).push_back(event);
    }

    /// Publishes queued revocations; stops at the first failure.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        loop {
            let next = self.pending.lock().unwrap_or_else(PoisonError::into_inner).front().cloned();
            let Some(event) = next else { return Ok(()) };
            self.write(&event).await?;
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_retention_up_to_the_cap_and_tells_when_it_overflowed() {
        let event = |n: u8| Event {
            subject: vec![n],
            change: Change::Lineage(SessionId([n; 16])),
            until: 0,
            covers: Vec::new(),
            offline: false,
        };
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        // Pushes: (when, subjects of the events).
        type Pushes<'a> = &'a [(u64, &'a [u8])];
        // (pushes, asked when, subjects kept, overflowed?)
        let table: [(Pushes, u64, &[u8], bool); 5] = [
            (&[], 0, &[], false),
            (&[(0, &[1, 2])], 1_000, &[1, 2], false),
            (&[(0, &[1]), (500, &[2])], 1_200, &[2], false),
            (&[(0, &[1, 2, 3, 4])], 100, &[2, 3, 4], true),
            (&[(0, &[1, 2, 3, 4]), (1_100, &[5])], 1_100, &[5], false),
        ];
        for (pushes, asked, kept, overflowed) in table {
            let mut recent = Recent::new(Duration::from_millis(1_000), 3);
            for &(when, subjects) in pushes {
                let events: Vec<Event> = subjects.iter().map(|&n| event(n)).collect();
                recent.push(&events, at(when));
            }
            let (events, dropped) = recent.within(at(asked));
            let subjects: Vec<u8> = events.iter().map(|event| event.subject[0]).collect();
            assert_eq!((&subjects[..], dropped), (kept, overflowed), "{pushes:?} at {asked}");
        }
    }
}
