//! What one node holds (its replica, its queue of unwritten revocations) and how it writes
//! its own revocations to Redis.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

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

#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Generation(u64),
    Lineage(SessionId),
}

impl Inner {
    pub(super) fn set(&self) -> std::sync::RwLockWriteGuard<'_, RevocationSet> {
        self.set.write().unwrap_or_else(PoisonError::into_inner)
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
