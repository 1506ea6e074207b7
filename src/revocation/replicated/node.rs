//! What one node holds (its replica, its queue of unwritten revocations) and how it writes
//! its own revocations to Redis.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::super::StoreError;
use super::super::memory::RevocationSet;
use super::super::redis::{
    Connection, Keys, NEXT_GENERATION, Scripts, bounded, eval, lineage_field, subject_hex,
};
use super::health::Freshness;
use crate::session::SessionId;
use crate::time::to_unix;

/// What one node holds and shares.
pub(super) struct Inner {
    pub(super) set: RwLock<RevocationSet>,
    /// The follower heard from Redis within the bound and has loaded everything.
    pub(super) freshness: Freshness,
    /// Entries were dropped at the cap: a miss may be a forgotten revocation.
    pub(super) overflowed: AtomicBool,
    /// This node's revocations not yet written to Redis.
    pub(super) pending: Mutex<VecDeque<Event>>,
    pub(super) writer: Connection,
    pub(super) keys: Keys,
    pub(super) scripts: Scripts,
    /// The bound of one write.
    pub(super) timeout: Duration,
    pub(super) staleness: Duration,
    pub(super) max_entries: usize,
    pub(super) stream_len: usize,
}

/// One revocation, as applied, written and streamed.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) subject: Vec<u8>,
    pub(super) change: Change,
    pub(super) until: u64,
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

    /// Applies an event to memory, then enforces the cap.
    pub(super) fn apply(&self, events: &[Event]) {
        let mut set = self.set();
        for event in events {
            match event.change {
                Change::Generation(generation) => {
                    set.add_generation(&event.subject, generation, event.until)
                }
                Change::Lineage(lineage) => set.add_lineage(&event.subject, lineage, event.until),
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
        if dropped > 0 {
            self.overflowed.store(true, Ordering::SeqCst);
            tracing::error!(
                dropped,
                cap = self.max_entries,
                "revocation replica over its cap: dropped the entries ending soonest; sessions \
                 it knows nothing against get the failure policy until it fits again"
            );
        }
    }

    /// Writes one event to Redis: the durable entry, then the stream.
    pub(super) async fn write(&self, event: &Event) -> Result<(), StoreError> {
        let mut connection = self.writer.clone();
        let key = self.keys.subject(&event.subject);
        let (record, field, value) = match event.change {
            Change::Generation(generation) => {
                // Raises the counter to a generation given while Redis was unreachable.
                let mut raise = eval(NEXT_GENERATION, self.keys.generation());
                raise.arg(generation);
                bounded(self.timeout, raise.query_async::<String>(&mut connection)).await?;
                let mut record = eval(&self.scripts.revoke_subject, key);
                record.arg(generation).arg(event.until).arg(subject_hex(&event.subject));
                (record, "g", generation.to_string())
            }
            Change::Lineage(lineage) => {
                let mut record = eval(&self.scripts.revoke_lineage, key);
                record.arg(lineage_field(lineage)).arg(event.until);
                record.arg(subject_hex(&event.subject));
                (record, "l", lineage.to_string())
            }
        };
        bounded(self.timeout, record.query_async::<()>(&mut connection)).await?;
        let mut add = ::redis::cmd("XADD");
        add.arg(self.keys.stream()).arg("MAXLEN").arg("~").arg(self.stream_len).arg("*");
        add.arg("s").arg(&event.subject[..]).arg(field).arg(value).arg("u").arg(event.until);
        bounded(self.timeout, add.query_async::<()>(&mut connection)).await
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
