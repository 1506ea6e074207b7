//! What an application shows in a health check about its keys (and its revocation replica):
//! one plain struct, with no secret in it.

use std::time::{Duration, SystemTime};

use super::{KeyId, SharedKeyRing};
use crate::time::{from_unix, to_unix};

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// In the ring, opening, but not sealing yet.
    Pending,
    /// The key that seals.
    Current,
    /// Opening, not sealing, and not scheduled to leave the ring.
    Accepted,
    /// Opening, not sealing, and leaving the ring at [`KeyHealth::retires_at`].
    Retiring,
}

/// One key of [`KeyRingHealth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHealth {
    /// The key's id.
    pub id: KeyId,
    /// Its state at the time of the report.
    pub state: KeyState,
    /// Whether the key is derived from the ring's schedule (not hand-made).
    pub derived: bool,
    /// When it was created (derived keys: when they became known).
    pub created_at: SystemTime,
    /// When it starts (or started) sealing.
    pub activates_at: SystemTime,
    /// When the schedule takes it out of the ring, if it does.
    pub retires_at: Option<SystemTime>,
}

/// The state of a revocation replica, as its public API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaHealth {
    /// Whether the replica is current (loaded, heard from Redis within its staleness bound,
    /// under its cap).
    pub current: bool,
    /// How many revocations it holds.
    pub entries: usize,
    /// How many of this node's revocations wait for Redis.
    pub queued: usize,
}

/// A health report of a node's keys: serve it (or parts of it) from a health endpoint.
///
/// A node is healthy when `current_key` is `Some`, `last_reload_error` is `None` and, with a
/// schedule, a `Pending` key appears before each change of period (the report lists it from
/// the lead time on).
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::{Key, KeyRing, KeyState, SharedKeyRing};
///
/// let keys = SharedKeyRing::new(KeyRing::single(Key::generate()));
/// let health = keys.health(SystemTime::now());
/// assert!(health.last_reload_error.is_none());
/// assert_eq!(health.keys[0].state, KeyState::Current);
/// assert!(health.replica.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyRingHealth {
    /// How long the ring in service has been there (since it was built or last reloaded).
    pub ring_age: Option<Duration>,
    /// The last reload that failed, and why (the message names no secret), until a reload
    /// succeeds. The previous ring stays in service meanwhile.
    pub last_reload_error: Option<(SystemTime, String)>,
    /// The key that seals now, if any (none: the node cannot seal).
    pub current_key: Option<KeyId>,
    /// Every key in service, with its state.
    pub keys: Vec<KeyHealth>,
    /// With a schedule, the period sealing now.
    pub period: Option<u32>,
    /// The revocation replica's state, when one was added with `KeyRingHealth::with_replica`
    /// (feature `redis`; a plain name, since without the feature there is nothing to link).
    pub replica: Option<ReplicaHealth>,
}

impl KeyRingHealth {
    /// Adds the state of a revocation replica.
    #[cfg(feature = "redis")]
    pub fn with_replica(mut self, replica: &crate::revocation::ReplicatedRevocations) -> Self {
        self.replica = Some(ReplicaHealth {
            current: replica.is_current(),
            entries: replica.len(),
            queued: replica.queued(),
        });
        self
    }
}

impl SharedKeyRing {
    /// The health report at `now` (the ring is moved on to `now` first, as a request would).
    pub fn health(&self, now: SystemTime) -> KeyRingHealth {
        let status = self.status();
        let ring = self.snapshot_at(now);
        let unix = to_unix(now);
        let current = ring.current(unix).map(|key| key.id);
        let keys = ring
            .keys
            .iter()
            .map(|key| {
                let retires = ring.schedule.as_ref().map(|s| ring.retires_at(s, key.activates_at));
                let retires_at = retires.filter(|&at| at != u64::MAX).map(from_unix);
                let state = if Some(key.id) == current {
                    KeyState::Current
                } else if key.activates_at > unix {
                    KeyState::Pending
                } else if retires_at.is_some() {
                    KeyState::Retiring
                } else {
                    KeyState::Accepted
                };
                KeyHealth {
                    id: key.id,
                    state,
                    derived: ring.is_derived(key.id),
                    created_at: from_unix(key.created_at),
                    activates_at: from_unix(key.activates_at),
                    retires_at: if state == KeyState::Retiring { retires_at } else { None },
                }
            })
            .collect();
        KeyRingHealth {
            ring_age: status.loaded_at.and_then(|at| now.duration_since(at).ok()),
            last_reload_error: status.last_error,
            current_key: current,
            keys,
            period: ring.schedule().and_then(|schedule| schedule.period_at(now)),
            replica: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, KeyRing, RotationPolicy, Schedule};

    #[test]
    fn states_follow_the_schedule_and_reload_errors_show_until_a_good_reload() {
        let epoch: u64 = 1_800_000_000;
        let (day, base) = (86_400, 0x8000_0000);
        let policy = RotationPolicy {
            lifetime: Duration::from_secs(30 * day),
            lead: Duration::from_secs(day),
            retire_after: Duration::from_secs(3600),
        };
        let mut ring = KeyRing::new();
        ring.insert(KeyId(1), Key::generate(), from_unix(0), from_unix(0)).unwrap();
        let schedule = Schedule::new(Key::generate(), KeyId(base), from_unix(epoch), policy);
        ring.set_schedule(schedule.unwrap(), from_unix(0)).unwrap();
        let keys = SharedKeyRing::new(ring);
        use KeyState::{Current, Pending, Retiring};
        let cases = [
            (epoch - 10, vec![(1, Current), (base, Pending)], None),
            (epoch + 10, vec![(1, Retiring), (base, Current)], Some(0)),
            (epoch + 3600, vec![(base, Current)], Some(0)),
            (epoch + 30 * day - 10, vec![(base, Current), (base + 1, Pending)], Some(0)),
        ];
        for (now, expected, period) in cases {
            let health = keys.health(from_unix(now));
            let states: Vec<(u32, KeyState)> =
                health.keys.iter().map(|key| (key.id.0, key.state)).collect();
            assert_eq!(states, expected, "at {now}");
            assert_eq!(health.period, period, "at {now}");
            let retiring = health.keys.iter().find(|key| key.state == Retiring);
            if let Some(key) = retiring {
                assert_eq!(key.retires_at, Some(from_unix(epoch + 3600)));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.json");
        assert!(keys.reload_from_file(&path).is_err());
        let health = keys.health(SystemTime::now());
        let (_, message) = health.last_reload_error.expect("the failed reload is reported");
        assert!(message.contains("missing.json"), "{message}");
        keys.replace(KeyRing::single(Key::generate()));
        let health = keys.health(SystemTime::now());
        assert_eq!(health.last_reload_error, None);
        assert!(health.ring_age.is_some_and(|age| age < Duration::from_secs(60)));
    }
}
