//! Past the cap: what a node dropped is remembered, coarsely, until it expires.
//!
//! A node over its cap drops whole subjects, those whose entries end soonest. It cannot keep
//! them, but it can keep *where* they were: the subjects' digests fall into one of
//! [`BUCKETS`] buckets, and each bucket remembers until when something dropped in it matters.
//! A session whose subject falls into such a bucket is not answered from memory:
//!
//! * while Redis still holds what was dropped, by a strict lookup (one `HMGET`, as
//!   [`RedisRevocations`](super::super::RedisRevocations) does), and by the failure policy
//!   when that lookup fails;
//! * once Redis lost data since (a restart, a flush, evictions), by the failure policy alone:
//!   the dropped entries may be gone everywhere. Such buckets are written to Redis
//!   (`<prefix>lost`, bucket → until), so nodes started later answer them the same way.
//!
//! Nothing clears a bucket but its time passing: a reload that finds Redis small again does not
//! bring back what was dropped. Sessions of other subjects are answered from memory as before,
//! so a cap too small costs Redis calls for the dropped subjects' buckets, never correctness,
//! and never the whole site.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use sha2::{Digest, Sha256};

/// How many buckets the dropped subjects are remembered in (two `u64` each: 1 MiB in all,
/// allocated on the first drop).
pub(super) const BUCKETS: usize = 1 << 16;

/// How a session's subject must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Range {
    /// Nothing of its bucket was dropped: from memory.
    Held,
    /// Dropped entries may concern it: ask Redis.
    Strict,
    /// Dropped entries may concern it and Redis may have lost them: the failure policy.
    Lost,
}

/// The buckets of dropped subjects.
#[derive(Debug, Default)]
pub(super) struct Dropped {
    /// Something was dropped and has not expired yet (checks skip the rest otherwise).
    any: AtomicBool,
    buckets: RwLock<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    /// Until when something dropped in each bucket matters (Unix seconds; empty: none yet).
    dropped: Vec<u64>,
    /// Until when each bucket's dropped entries may be missing from Redis too.
    lost: Vec<u64>,
}

/// The bucket of a subject: the first 16 bits of its SHA-256 (as its Redis key uses).
pub(super) fn bucket(subject: &[u8]) -> usize {
    let digest = Sha256::digest(subject);
    usize::from(u16::from_be_bytes([digest[0], digest[1]]))
}

impl Buckets {
    fn allocate(&mut self) {
        if self.dropped.is_empty() {
            self.dropped = vec![0; BUCKETS];
            self.lost = vec![0; BUCKETS];
        }
    }
}

impl Dropped {
    fn buckets(&self) -> std::sync::RwLockWriteGuard<'_, Buckets> {
        self.buckets.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers subjects dropped at the cap, each with until when its entries mattered;
    /// returns whether nothing was remembered before (the first drop of an overflow, which is
    /// worth an error in the log; the next ones are not).
    pub(super) fn record(&self, subjects: &[(Box<[u8]>, u64)]) -> bool {
        if subjects.is_empty() {
            return false;
        }
        let mut buckets = self.buckets();
        buckets.allocate();
        for (subject, until) in subjects {
            let slot = &mut buckets.dropped[bucket(subject)];
            *slot = (*slot).max(*until);
        }
        !self.any.swap(true, Ordering::SeqCst)
    }

    /// How a session of `subject` must be answered at `now`.
    pub(super) fn range(&self, subject: &[u8], now: impl FnOnce() -> u64) -> Range {
        if !self.any.load(Ordering::SeqCst) {
            return Range::Held;
        }
        let index = bucket(subject);
        let now = now();
        let buckets = self.buckets.read().unwrap_or_else(PoisonError::into_inner);
        if buckets.lost.get(index).is_some_and(|&until| until >= now) {
            Range::Lost
        } else if buckets.dropped.get(index).is_some_and(|&until| until >= now) {
            Range::Strict
        } else {
            Range::Held
        }
    }

    /// Redis lost data: every live dropped bucket may now be missing there too. Returns the
    /// lost buckets, to be written to Redis.
    pub(super) fn redis_lost(&self, now: u64) -> Vec<(usize, u64)> {
        let mut buckets = self.buckets();
        if buckets.dropped.is_empty() {
            return Vec::new();
        }
        let Buckets { dropped, lost } = &mut *buckets;
        for (lost, &dropped) in lost.iter_mut().zip(dropped.iter()) {
            if dropped >= now {
                *lost = (*lost).max(dropped);
            }
        }
        lost.iter().enumerate().filter(|&(_, &until)| until >= now).map(|(i, &u)| (i, u)).collect()
    }

    /// Merges lost buckets read from Redis.
    pub(super) fn merge_lost(&self, lost: &[(usize, u64)], now: u64) {
        let live: Vec<_> = lost.iter().filter(|&&(i, until)| i < BUCKETS && until >= now).collect();
        if live.is_empty() {
            return;
        }
        let mut buckets = self.buckets();
        buckets.allocate();
        for &&(index, until) in &live {
            buckets.lost[index] = buckets.lost[index].max(until);
        }
        self.any.store(true, Ordering::SeqCst);
    }

    /// Forgets everything once all of it has expired (checks then skip the buckets again).
    pub(super) fn expire(&self, now: u64) {
        if !self.any.load(Ordering::SeqCst) {
            return;
        }
        let buckets = self.buckets();
        let live = buckets.dropped.iter().chain(&buckets.lost).any(|&until| until >= now);
        if !live {
            self.any.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_subject_is_answered_strictly_then_by_the_policy_until_it_expires() {
        let dropped = Dropped::default();
        let (gone, kept): (&[u8], &[u8]) = (b"\xa3ada", b"\xa3bob");
        assert_ne!(bucket(gone), bucket(kept), "the table needs two buckets");
        dropped.record(&[(gone.into(), 100)]);
        // (step, now, range of the dropped subject, range of another)
        let table: [(&str, u64, Range, Range); 4] = [
            ("dropped", 50, Range::Strict, Range::Held),
            ("Redis lost data", 50, Range::Lost, Range::Held),
            ("still lost at its end", 100, Range::Lost, Range::Held),
            ("expired", 101, Range::Held, Range::Held),
        ];
        for (step, now, of_gone, of_kept) in table {
            if step == "Redis lost data" {
                assert_eq!(dropped.redis_lost(now), vec![(bucket(gone), 100)]);
            }
            assert_eq!(dropped.range(gone, || now), of_gone, "{step}");
            assert_eq!(dropped.range(kept, || now), of_kept, "{step}");
        }
        dropped.expire(101);
        assert!(!dropped.any.load(Ordering::SeqCst));
        // A node that learns lost buckets from Redis answers them by the policy.
        let late = Dropped::default();
        late.merge_lost(&[(bucket(gone), 100)], 50);
        assert_eq!(late.range(gone, || 50), Range::Lost);
    }
}
