//! Sessions this node logged out lately, so that a response already in flight for one of them
//! (a request that opened the session before the logout and finishes after it) cannot set its
//! cookie again after the logout removed it: that response removes the cookies instead.
//!
//! This closes the race on the node that served the logout, with or without a revocation
//! store. A request in flight on another node is covered only by revocation, which records the
//! logout for the whole fleet (README, "Revocation"; SECURITY.md, issue 28 item 7).
//!
//! A session's id changes when it is renewed (at login) or re-created (the tower-sessions
//! bridge's `cycle_id`), and a response in flight may still carry the id from before: so every
//! id change is remembered too, for the same window, and a logout covers the ids its session
//! had before. The list belongs to a [`SessionCodec`](crate::SessionCodec) and its clones, so
//! every adapter built from one codec (one per actix-web worker, say) shares it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::session::SessionId;

/// How long a logout is remembered: longer than any request should take.
pub(crate) const WINDOW_SECS: u64 = 15 * 60;

/// The most logouts (and, apart, id changes) remembered at once (about 2 MB each): past it,
/// the oldest go first (and a warning says the window was cut short).
pub(crate) const CAP: usize = 65_536;

/// The most earlier ids one logout follows: more renewals than this within the window are
/// not a session in use.
const CHAIN: usize = 16;

/// Session ids logged out on this node, and the ids sessions had before their last change.
#[derive(Default)]
pub(crate) struct RecentLogouts {
    /// How many logouts are remembered, read without the lock: most requests see 0 and stop
    /// there.
    len: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Logged-out ids, each until its window ends (Unix seconds).
    logouts: Window<()>,
    /// A session's new id -> the id it had before, until the window ends.
    renewed: Window<[u8; 16]>,
}

/// Ids remembered until a time, dropped in the order they came (windows are all as long, so
/// that is the order they end in): each record and each drop is O(1).
struct Window<T> {
    until: HashMap<[u8; 16], (u64, T)>,
    order: VecDeque<([u8; 16], u64)>,
}

impl<T> Default for Window<T> {
    fn default() -> Window<T> {
        Window { until: HashMap::new(), order: VecDeque::new() }
    }
}

impl<T: Copy> Window<T> {
    /// Remembers `id` (with `value`) until `until`, after dropping what ended by `now`, and
    /// the oldest when full. Returns whether one still in its window had to go.
    fn insert(&mut self, id: [u8; 16], value: T, now: u64, until: u64) -> bool {
        while self.order.front().is_some_and(|&(_, ends)| ends <= now) {
            self.pop_oldest();
        }
        let mut cut = false;
        while self.until.len() >= CAP && !self.until.contains_key(&id) {
            cut |= self.pop_oldest();
        }
        self.until.insert(id, (until, value));
        self.order.push_back((id, until));
        // An id recorded again leaves its older entry in `order`; keep that bounded.
        if self.order.len() > 2 * CAP {
            let until = &self.until;
            self.order
                .retain(|(id, ends)| until.get(id).is_some_and(|(current, _)| current == ends));
        }
        cut
    }

    /// Drops the oldest entry; returns whether it was an id's current one (an id recorded
    /// again keeps its newer entry).
    fn pop_oldest(&mut self) -> bool {
        let Some((id, until)) = self.order.pop_front() else { return false };
        let current = self.until.get(&id).is_some_and(|(ends, _)| *ends == until);
        if current {
            self.until.remove(&id);
        }
        current
    }

    fn get(&self, id: &[u8; 16], now: u64) -> Option<T> {
        self.until.get(id).filter(|(until, _)| *until > now).map(|(_, value)| *value)
    }
}

impl RecentLogouts {
    /// Remembers that `id` was logged out at `now`, and so were the ids its session had
    /// before, within the window. Returns whether `id` was logged out already.
    pub(crate) fn record(&self, id: SessionId, now: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let until = now.saturating_add(WINDOW_SECS);
        let already = inner.logouts.get(&id.0, now).is_some();
        let mut next = Some(id.0);
        let mut cut = false;
        for _ in 0..CHAIN {
            let Some(id) = next else { break };
            cut |= inner.logouts.insert(id, (), now, until);
            next = inner.renewed.get(&id, now);
        }
        if cut {
            tracing::warn!(cap = CAP, "more logouts than this node remembers; the oldest went");
        }
        self.len.store(inner.logouts.until.len(), Ordering::Relaxed);
        already
    }

    /// Remembers that the session `before` now has the id `after` (renewed or re-created), so
    /// a logout of `after` within the window covers `before` too.
    pub(crate) fn renewed(&self, before: SessionId, after: SessionId, now: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let until = now.saturating_add(WINDOW_SECS);
        inner.renewed.insert(after.0, before.0, now, until);
    }

    /// Whether nothing is remembered: most requests stop here, without the lock or the clock.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Whether `id` was logged out on this node within the window before `now`.
    pub(crate) fn contains(&self, id: SessionId, now: u64) -> bool {
        if self.is_empty() {
            return false;
        }
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.logouts.get(&id.0, now).is_some()
    }
}

impl std::fmt::Debug for RecentLogouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentLogouts").field("len", &self.len.load(Ordering::Relaxed)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> SessionId {
        let mut id = [0; 16];
        id[..8].copy_from_slice(&n.to_le_bytes());
        SessionId(id)
    }

    #[test]
    fn a_logout_is_remembered_for_its_window() {
        let logouts = RecentLogouts::default();
        let (a, b) = (id(1), id(2));
        assert!(!logouts.contains(a, 100));
        assert!(!logouts.record(a, 100), "new");
        assert!(logouts.record(a, 101), "again");
        let cases =
            [(a, 101, true), (a, 101 + WINDOW_SECS - 1, true), (a, 101 + WINDOW_SECS, false)];
        for (id, now, expected) in cases.into_iter().chain([(b, 100, false)]) {
            assert_eq!(logouts.contains(id, now), expected, "{id} at {now}");
        }
    }

    #[test]
    fn a_logout_covers_the_ids_its_session_had_within_the_window() {
        let logouts = RecentLogouts::default();
        // 1 renewed to 2 at 100, 2 to 3 at 200; 7 renewed to 8 long before.
        logouts.renewed(id(1), id(2), 100);
        logouts.renewed(id(2), id(3), 200);
        logouts.renewed(id(7), id(8), 0);
        logouts.record(id(3), 300);
        logouts.record(id(8), WINDOW_SECS + 1);
        // (id, logged out)
        let table = [(1, true), (2, true), (3, true), (4, false), (7, false), (8, true)];
        for (n, expected) in table {
            assert_eq!(logouts.contains(id(n), WINDOW_SECS + 1), expected, "id {n}");
        }
    }

    #[test]
    fn past_the_cap_expired_logouts_go_first_then_the_oldest() {
        // Full of logouts still in their window, the first one a second older than the rest.
        let logouts = RecentLogouts::default();
        logouts.record(id(0), 0);
        for n in 1..CAP as u64 {
            logouts.record(id(n), 1);
        }
        logouts.record(id(u64::MAX), 2);
        assert!(!logouts.contains(id(0), 2), "the oldest went");
        assert!(logouts.contains(id(1), 2) && logouts.contains(id(u64::MAX), 2));
        assert_eq!(logouts.len.load(Ordering::Relaxed), CAP);

        // Once their window is over, they all go before anyone newer is dropped.
        logouts.record(id(u64::MAX - 1), 1 + WINDOW_SECS);
        assert_eq!(logouts.len.load(Ordering::Relaxed), 2, "only the two still in their window");
    }

    #[test]
    fn an_id_recorded_again_is_not_dropped_by_its_older_entry() {
        let logouts = RecentLogouts::default();
        logouts.record(id(1), 0);
        logouts.record(id(2), 10);
        logouts.record(id(1), 20);
        // 1's first window ended, its second has not: the first entry must not drop it.
        logouts.record(id(3), WINDOW_SECS + 5);
        assert!(logouts.contains(id(1), WINDOW_SECS + 5));
        assert!(logouts.contains(id(2), WINDOW_SECS + 5));
    }
}
