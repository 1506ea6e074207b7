//! How fresh this node's replica is: the staleness bound as a grace period.
//!
//! The replica is *current* while it has proof, from less than the staleness bound ago, that it
//! missed no revocation: the end of a full load, or a stream read that caught up with the last
//! event. A failed command proves nothing either way, so it changes no answer by itself: a blip
//! of Redis shorter than the bound (a restart, a failover, a hung server that resumes) is
//! answered from memory throughout, and only the bound running out hands sessions to the
//! failure policy. A watchdog task watches the deadline (to log, and to look again when a
//! proof arrives), and every check compares it too: a node whose runtime could not run the
//! watchdog on time (a process paused past the bound, a worker blocked by a handler) must not
//! answer from a replica older than the bound in the moments before it does.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::super::StoreError;
use super::node::Inner;

/// When the last proof was taken, and whether it is still within the bound.
#[derive(Debug)]
pub(super) struct Freshness {
    /// What `heard` counts from.
    origin: Instant,
    /// When the last proof was taken, in milliseconds since `origin` (`NEVER`: no proof yet).
    heard: AtomicU64,
    /// A proof within the bound: read by every check.
    current: AtomicBool,
    /// Proofs taken before this (milliseconds since `origin`) do not count.
    not_before: AtomicU64,
    /// A hold is set and the follower has not reloaded after its end yet.
    holding: AtomicBool,
    /// A failure was logged since the last proof (one warning per outage, not per retry).
    failing: AtomicBool,
    staleness: Duration,
}

const NEVER: u64 = u64::MAX;

impl Freshness {
    pub(super) fn new(staleness: Duration) -> Freshness {
        Freshness {
            origin: Instant::now(),
            heard: AtomicU64::new(NEVER),
            current: AtomicBool::new(false),
            not_before: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            staleness,
        }
    }

    /// Whether the replica has proof, within the bound, that it missed nothing.
    pub(super) fn is_current(&self) -> bool {
        self.current.load(Ordering::SeqCst)
            && self.deadline().is_some_and(|deadline| Instant::now() < deadline)
    }

    /// Proofs taken before `at` will not count.
    pub(super) fn hold_until(&self, at: Instant) {
        self.not_before.fetch_max(self.millis(at), Ordering::SeqCst);
        self.holding.store(true, Ordering::SeqCst);
    }

    /// Whether a hold has ended and the follower has not reloaded since: it then loads
    /// everything again, since what the other nodes wrote meanwhile (lost buckets) is not all
    /// on the stream, and holds again while they are still writing back.
    pub(super) fn hold_ended(&self) -> bool {
        self.holding() && self.millis(Instant::now()) >= self.not_before.load(Ordering::SeqCst)
    }

    /// Whether a hold was set and not released.
    pub(super) fn holding(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
    }

    /// Whether a command failed since the last proof. The next proof comes from a full load,
    /// which compares run ids: until then Redis may be a restarted server that lost data.
    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// The hold is over: proofs count again.
    pub(super) fn release(&self) {
        self.holding.store(false, Ordering::SeqCst);
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(NEVER - 1)
    }

    /// Proof, as of `at`, that the replica missed nothing up to then.
    pub(super) fn heard(&self, at: Instant) {
        let millis = self.millis(at);
        if millis < self.not_before.load(Ordering::SeqCst) {
            return;
        }
        let previous = self.heard.load(Ordering::SeqCst);
        if previous == NEVER || previous < millis {
            self.heard.store(millis, Ordering::SeqCst);
        }
        // A proof older than the bound (a slow load) must not make the node current.
        if at.elapsed() < self.staleness {
            self.current.store(true, Ordering::SeqCst);
        }
        if self.failing.swap(false, Ordering::SeqCst) {
            tracing::info!("revocation replica hears from Redis again");
        }
    }

    /// A command failed: logged once per outage; answers change only when the bound runs out.
    pub(super) fn failed(&self, error: &StoreError) {
        if !self.failing.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                %error,
                staleness = ?self.staleness,
                "revocation replica cannot reach Redis: answering from memory for at most the \
                 staleness bound"
            );
        }
    }

    /// Seconds since the last proof (since the replica started, before the first).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(super) fn age_secs(&self) -> f64 {
        let heard = match self.heard.load(Ordering::SeqCst) {
            NEVER => 0,
            heard => heard,
        };
        let since = Duration::from_millis(self.millis(Instant::now()).saturating_sub(heard));
        since.as_secs_f64()
    }

    /// When the current proof runs out (`None`: no proof yet).
    fn deadline(&self) -> Option<Instant> {
        let heard = self.heard.load(Ordering::SeqCst);
        (heard != NEVER).then(|| self.origin + Duration::from_millis(heard) + self.staleness)
    }

    /// Marks the replica stale when its proof ran out; returns when to look again.
    fn watch_once(&self) -> Instant {
        let now = Instant::now();
        match self.deadline() {
            Some(deadline) if deadline > now => deadline,
            deadline => {
                if deadline.is_some() && self.current.swap(false, Ordering::SeqCst) {
                    tracing::error!(
                        staleness = ?self.staleness,
                        "revocation replica has not heard from Redis within the staleness bound: \
                         known revocations still hold, other sessions get the failure policy \
                         until it is current again"
                    );
                }
                // Nothing to watch until a new proof arrives: look again soon.
                now + self.staleness / 8
            }
        }
    }
}

/// The watchdog: marks the replica stale the moment its last proof is older than the bound,
/// until the store is dropped.
pub(super) async fn watch(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let next = strong.freshness.watch_once();
        crate::metrics::replica_state(|| strong.sample());
        drop(strong);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound is a grace period: a failure changes nothing, only the proof's age does.
    #[tokio::test(start_paused = true)]
    async fn only_the_age_of_the_last_proof_makes_a_replica_stale() {
        let bound = Duration::from_secs(5);
        let freshness = Freshness::new(bound);
        let error = StoreError("connection refused".to_owned());
        // (time since the proof, failures meanwhile, current?)
        let table: [(Duration, bool, bool); 4] = [
            (Duration::ZERO, true, true),
            (Duration::from_millis(4_900), true, true),
            (Duration::from_millis(5_000), false, false),
            (Duration::from_millis(9_000), true, false),
        ];
        freshness.heard(Instant::now());
        let proof = Instant::now();
        for (age, fail, current) in table {
            tokio::time::advance((proof + age).saturating_duration_since(Instant::now())).await;
            if fail {
                freshness.failed(&error);
            }
            freshness.watch_once();
            assert_eq!(freshness.is_current(), current, "{age:?} after the proof");
        }
        // A proof taken before the bound ran out, arriving late, does not revive it.
        freshness.heard(proof);
        assert!(!freshness.is_current());
        freshness.heard(Instant::now());
        assert!(freshness.is_current());
    }

    /// The watchdog may run late (a paused process, a blocked worker): the check itself sees
    /// the bound run out.
    #[tokio::test(start_paused = true)]
    async fn a_check_sees_the_bound_run_out_before_the_watchdog_does() {
        let bound = Duration::from_secs(5);
        let freshness = Freshness::new(bound);
        freshness.heard(Instant::now());
        freshness.watch_once();
        // (time since the proof, current?), the watchdog never running meanwhile.
        let table: [(Duration, bool); 3] = [
            (Duration::from_millis(4_999), true),
            (Duration::from_millis(5_000), false),
            (Duration::from_secs(60), false),
        ];
        let proof = Instant::now();
        for (age, current) in table {
            tokio::time::advance((proof + age).saturating_duration_since(Instant::now())).await;
            assert_eq!(freshness.is_current(), current, "{age:?} after the proof");
        }
    }
}
