//! Sessions this node logged out lately, so that a response already in flight for one of them
//! (a request that opened the session before the logout and finishes after it) cannot set its
//! cookie again after the logout removed it: that response removes the cookies instead.
//!
//! This closes the race on the node that served the logout, with or without a revocation
//! store. A request in flight on another node is covered only by revocation, which records the
//! logout for the whole fleet (README, "Revocation"; SECURITY.md, issue 28 item 7).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::session::SessionId;

/// How long a logout is remembered: longer than any request should take.
pub(crate) const WINDOW_SECS: u64 = 15 * 60;

/// The most logouts remembered at once (about 2 MB): past it, those whose window is over are
/// dropped first, then the oldest (and a warning says the window was cut short).
pub(crate) const CAP: usize = 65_536;

/// Session ids logged out on this node, each until its window ends (Unix seconds).
#[derive(Debug, Default)]
pub(crate) struct RecentLogouts {
    /// How many are remembered, read without the lock: most requests see 0 and stop there.
    len: AtomicUsize,
    ids: Mutex<HashMap<[u8; 16], u64>>,
}

impl RecentLogouts {
    /// Remembers that `id` was logged out at `now`.
    pub(crate) fn record(&self, id: SessionId, now: u64) {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.len() >= CAP {
            ids.retain(|_, until| *until > now);
            if ids.len() >= CAP {
                let oldest = ids.iter().min_by_key(|(_, until)| **until).map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    ids.remove(&oldest);
                }
                tracing::warn!(cap = CAP, "more logouts than this node remembers; the oldest went");
            }
        }
        ids.insert(id.0, now.saturating_add(WINDOW_SECS));
        self.len.store(ids.len(), Ordering::Relaxed);
    }

    /// Whether nothing is remembered: most requests stop here, without the lock or the clock.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Whether `id` was logged out on this node within the window before `now`.
    pub(crate) fn contains(&self, id: SessionId, now: u64) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.get(&id.0).is_some_and(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_is_remembered_for_its_window() {
        let logouts = RecentLogouts::default();
        let (a, b) = (SessionId([1; 16]), SessionId([2; 16]));
        assert!(!logouts.contains(a, 100));
        logouts.record(a, 100);
        let cases =
            [(a, 100, true), (a, 100 + WINDOW_SECS - 1, true), (a, 100 + WINDOW_SECS, false)];
        for (id, now, expected) in cases.into_iter().chain([(b, 100, false)]) {
            assert_eq!(logouts.contains(id, now), expected, "{id} at {now}");
        }
    }

    #[test]
    fn past_the_cap_expired_logouts_go_first_then_the_oldest() {
        let id = |n: u64| {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&n.to_le_bytes());
            SessionId(id)
        };
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
}
