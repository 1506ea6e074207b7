//! Revocations held in memory: [`MemoryRevocations`] for one process, and the set every
//! replicated node keeps.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use super::{BoxFuture, Query, RevocationStore, StoreError, next_generation};
use crate::session::SessionId;
use crate::time::to_unix;

/// The revocations of one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubjectEntry {
    /// Sessions stamped with a smaller generation are revoked ("log out everywhere"); 0: none.
    pub(crate) generation: u64,
    /// Until when `generation` matters (Unix seconds).
    pub(crate) generation_until: u64,
    /// Revoked lineages (logouts) and until when each matters. A subject has few at a time:
    /// one per logout within the absolute timeout.
    pub(crate) lineages: Vec<(SessionId, u64)>,
}

impl SubjectEntry {
    /// How many entries this counts as (for caps and sizes).
    pub(crate) fn len(&self) -> usize {
        usize::from(self.generation != 0) + self.lineages.len()
    }

    /// The latest time anything here matters.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // for the replicated store's cap
    pub(crate) fn until(&self) -> u64 {
        self.lineages.iter().map(|&(_, until)| until).fold(self.generation_until, u64::max)
    }
}

/// Revocations by subject, each entry dropped once its time has passed. Merging is
/// commutative and idempotent (the larger generation, the later time), so events may arrive
/// twice or out of order.
#[derive(Debug, Default)]
pub(crate) struct RevocationSet {
    pub(crate) subjects: HashMap<Box<[u8]>, SubjectEntry>,
    /// How many entries (a generation, a lineage) are held.
    pub(crate) entries: usize,
    /// The largest generation seen.
    pub(crate) latest: u64,
    /// When expired entries were last dropped (Unix seconds).
    pub(crate) expired_at: u64,
}

impl RevocationSet {
    /// Whether `query` is revoked at `now` (read only when an entry exists).
    pub(crate) fn answer(&self, query: &Query<'_>, now: impl FnOnce() -> u64) -> Option<bool> {
        let entry = self.subjects.get(query.subject)?;
        let now = now();
        let by_generation = query.generation < entry.generation && entry.generation_until >= now;
        let by_lineage =
            entry.lineages.iter().any(|&(lineage, until)| lineage == query.lineage && until >= now);
        Some(by_generation || by_lineage)
    }

    /// Records a subject's revocation at `generation`; returns whether it changed anything.
    pub(crate) fn add_generation(&mut self, subject: &[u8], generation: u64, until: u64) -> bool {
        self.latest = self.latest.max(generation);
        let entry = self.entry(subject);
        let before = entry.clone();
        entry.generation = entry.generation.max(generation);
        entry.generation_until = entry.generation_until.max(until);
        let changed = *entry != before;
        let added = before.generation == 0 && entry.generation != 0;
        self.entries += usize::from(added);
        changed
    }

    /// Records a lineage's revocation; returns whether it changed anything.
    pub(crate) fn add_lineage(&mut self, subject: &[u8], lineage: SessionId, until: u64) -> bool {
        let entry = self.entry(subject);
        match entry.lineages.iter_mut().find(|(known, _)| *known == lineage) {
            Some((_, known)) if *known >= until => false,
            Some((_, known)) => {
                *known = until;
                true
            }
            None => {
                entry.lineages.push((lineage, until));
                self.entries += 1;
                true
            }
        }
    }

    fn entry(&mut self, subject: &[u8]) -> &mut SubjectEntry {
        if !self.subjects.contains_key(subject) {
            self.subjects.insert(subject.into(), SubjectEntry::default());
        }
        self.subjects.get_mut(subject).expect("inserted above")
    }

    /// Drops what no longer matters at `now`, at most once a second (a walk of every entry).
    pub(crate) fn expire_now(&mut self, now: u64) {
        if self.expired_at != now {
            self.expire(now);
        }
    }

    /// Drops what no longer matters at `now`.
    pub(crate) fn expire(&mut self, now: u64) {
        self.expired_at = now;
        let mut entries = 0;
        self.subjects.retain(|_, entry| {
            if entry.generation_until < now {
                entry.generation = 0;
            }
            entry.lineages.retain(|&(_, until)| until >= now);
            entries += entry.len();
            entry.len() > 0
        });
        self.entries = entries;
    }

    /// Drops the subjects whose revocations end soonest, except `keep` (the newest), until at
    /// most `cap` entries are left; returns the subjects dropped, each with until when its
    /// entries mattered.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // for the replicated store's cap
    pub(crate) fn shrink_to(&mut self, cap: usize, keep: Option<&[u8]>) -> Vec<(Box<[u8]>, u64)> {
        let mut dropped = Vec::new();
        if self.entries <= cap {
            return dropped;
        }
        let mut by_end: Vec<(u64, Box<[u8]>)> =
            self.subjects.iter().map(|(subject, entry)| (entry.until(), subject.clone())).collect();
        by_end.sort_unstable();
        for (until, subject) in by_end {
            if self.entries <= cap {
                break;
            }
            if keep == Some(&subject[..]) {
                continue;
            }
            if let Some(entry) = self.subjects.remove(&subject) {
                self.entries -= entry.len();
                dropped.push((subject, until));
            }
        }
        dropped
    }

    /// Removes lineages of `subject` that a generation revocation now covers.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // for the replicated store's folding
    pub(crate) fn remove_lineages(&mut self, subject: &[u8], covered: &[SessionId]) {
        let Some(entry) = self.subjects.get_mut(subject) else { return };
        let before = entry.lineages.len();
        entry.lineages.retain(|(lineage, _)| !covered.contains(lineage));
        self.entries -= before - entry.lineages.len();
    }
}

/// Revocations kept in this process's memory: for a single node, and for tests. Entries are
/// dropped once their time has passed. Its generations come from its own clock (microseconds,
/// kept increasing).
#[derive(Default)]
pub struct MemoryRevocations {
    set: RwLock<RevocationSet>,
    now: Option<Arc<dyn Fn() -> SystemTime + Send + Sync>>,
}

impl MemoryRevocations {
    /// An empty store reading the system clock to expire entries.
    pub fn new() -> MemoryRevocations {
        MemoryRevocations::default()
    }

    /// An empty store reading `clock` to expire entries (for tests).
    pub fn with_clock(clock: impl crate::Clock) -> MemoryRevocations {
        MemoryRevocations { now: Some(Arc::new(move || clock.now())), ..Default::default() }
    }

    fn now(&self) -> SystemTime {
        self.now.as_ref().map_or_else(SystemTime::now, |now| now())
    }

    /// How many entries the store holds (a subject's generation, a lineage), expired ones
    /// included until a write in a later second.
    pub fn len(&self) -> usize {
        self.set.read().unwrap_or_else(PoisonError::into_inner).entries
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn answer(&self, query: &Query<'_>) -> bool {
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        // The usual answer (no entry for the subject) is found without reading the clock.
        set.answer(query, || to_unix(self.now())).unwrap_or(false)
    }
}

impl RevocationStore for MemoryRevocations {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(Ok(self.answer(&query))))
    }

    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        Some(Ok(self.answer(query)))
    }

    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let latest = self.set.read().unwrap_or_else(PoisonError::into_inner).latest;
        Box::pin(std::future::ready(Ok(latest)))
    }

    fn revoke_lineage<'a>(
        &'a self,
        subject: &'a [u8],
        lineage: SessionId,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let now = to_unix(self.now());
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        set.expire_now(now);
        set.add_lineage(subject, lineage, until);
        Box::pin(std::future::ready(Ok(())))
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let now = self.now();
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        set.expire_now(to_unix(now));
        let generation = next_generation(set.latest, now);
        set.add_generation(subject, generation, until);
        Box::pin(std::future::ready(Ok(generation)))
    }
}

impl fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocations").field("entries", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_drops_what_ends_soonest_and_keeps_the_newest() {
        let mut set = RevocationSet::default();
        for (subject, until) in [(b"a", 30), (b"b", 10), (b"c", 20), (b"d", 5)] {
            set.add_lineage(subject, SessionId([until as u8; 16]), until);
        }
        set.add_generation(b"a", 7, 40);
        assert_eq!(set.entries, 5);
        // "d" ends soonest but is the newest: kept; then "b", then "c" go.
        let dropped = set.shrink_to(3, Some(b"d"));
        assert_eq!(dropped, [(b"b"[..].into(), 10), (b"c"[..].into(), 20)]);
        let mut left: Vec<&[u8]> = set.subjects.keys().map(|s| &s[..]).collect();
        left.sort();
        assert_eq!(left, [&b"a"[..], b"d"]);
        assert_eq!(set.entries, 3);
        set.expire(31);
        assert_eq!(set.entries, 1, "only a's generation is left");
        assert_eq!(set.shrink_to(1, None), []);
    }
}
