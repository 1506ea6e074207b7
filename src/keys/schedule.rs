//! Rotation on a schedule: keys every node derives for each period from one root secret.
//!
//! A [`Schedule`] turns one root secret into a key per period: the key of period `n` has the id
//! `id_base + n`, activates (starts sealing) at `epoch + n × lifetime`, is known (opens) from
//! `lead` before that, stops sealing when the next key activates and leaves the ring
//! `retire_after` later (the servers' absolute timeout plus twice the clock skew: no live
//! session can carry it any more). Its secret is HKDF-SHA256 of the root over the key id and the period
//! number, so every node that holds the same root computes the same key at the same time
//! without anyone writing anything: a read-only Kubernetes Secret, an environment variable or a
//! copy on each node's disk all rotate alike. Only the root is ever rotated by hand.
//!
//! Derived ids never collide with hand-made ones: a schedule owns the block
//! `id_base .. id_base + MAX_PERIODS`, and a ring refuses a hand-made key inside it
//! ([`KeyRingError::DuplicateId`](super::KeyRingError::DuplicateId)), so one id always names
//! one secret.
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sealed_session::{Key, KeyId, KeyRing, RotationPolicy, Schedule};
//!
//! let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let schedule = Schedule::new(Key::generate(), KeyId(0x8000_0000), epoch, RotationPolicy::default())?;
//! let mut ring = KeyRing::new();
//! ring.set_schedule(schedule, epoch)?;
//! assert_eq!(ring.current_id(epoch), Some(KeyId(0x8000_0000)));
//! // 90 days later the ring, taken at that time, seals with the next period's key.
//! let later = epoch + Duration::from_secs(90 * 86_400);
//! assert_eq!(ring.at(later).current_id(later), Some(KeyId(0x8000_0001)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Key, KeyId};
use crate::format::KEY_LEN;
use crate::time::{from_unix, to_unix};

/// How many periods one schedule derives keys for; its ids are `id_base .. id_base +
/// MAX_PERIODS`. At the 90-day default that is over 16,000 years; at the shortest lifetime
/// allowed (one hour), over seven years. The last period's key never stops sealing.
pub const MAX_PERIODS: u32 = 1 << 16;

/// The shortest key lifetime a schedule accepts.
pub const MIN_LIFETIME: Duration = Duration::from_secs(3600);

/// HKDF salt and info prefix of a period key (FORMAT.md section 2.3).
const SALT: &[u8] = b"sealed-session v1 schedule";
const INFO: &[u8] = b"sealed-session v1 period key";

/// When keys change: how long each seals, how long before that every node knows it, and how
/// long after it stops sealing it still opens.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sealed_session::RotationPolicy;
///
/// let policy = RotationPolicy::for_sessions(Duration::from_secs(8 * 3600), Duration::from_secs(60));
/// assert_eq!(policy.lifetime, Duration::from_secs(90 * 86_400));
/// assert_eq!(policy.retire_after, Duration::from_secs(8 * 3600 + 2 * 60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long each key seals (90 days by default).
    pub lifetime: Duration,
    /// How long a key is known (opens) before it seals. Must exceed the slowest reload in the
    /// fleet (a Secret volume's sync, a rolling deploy); 2 days by default.
    pub lead: Duration,
    /// How long a key still opens after it stopped sealing: the servers' absolute timeout plus
    /// twice the clock skew (by default, from the library's defaults: 12 hours plus 2 minutes).
    ///
    /// Twice, because two clocks add up: a session last sealed with the old key by a node
    /// whose clock is behind can carry an issue time from a node ahead (up to one skew later),
    /// and the node opening it grants its expiry one more skew. With one skew only,
    /// `tests/scheduled_rotation.rs` (`retirement_covers_...`) rejects such a session in its
    /// last minute.
    pub retire_after: Duration,
}

impl RotationPolicy {
    /// The default lifetime and lead, retiring keys once sessions of this absolute timeout,
    /// with this clock skew, can no longer carry them (`absolute_timeout + 2 × clock_skew`).
    pub fn for_sessions(absolute_timeout: Duration, clock_skew: Duration) -> RotationPolicy {
        RotationPolicy {
            retire_after: absolute_timeout + 2 * clock_skew,
            ..RotationPolicy::default()
        }
    }
}

impl Default for RotationPolicy {
    fn default() -> RotationPolicy {
        let config = crate::SessionConfig::default();
        RotationPolicy {
            lifetime: Duration::from_secs(90 * 86_400),
            lead: Duration::from_secs(2 * 86_400),
            retire_after: config.absolute_timeout() + 2 * config.clock_skew(),
        }
    }
}

/// A schedule could not be made as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The lifetime is shorter than [`MIN_LIFETIME`].
    #[error("key lifetime must be at least one hour")]
    Lifetime,
    /// The lead time is zero or not shorter than the lifetime.
    #[error("lead time must be more than zero and less than the key lifetime")]
    Lead,
    /// `id_base + MAX_PERIODS` passes the largest key id.
    #[error("id_base {0} leaves no room for {MAX_PERIODS} period ids")]
    IdBase(KeyId),
}

/// Keys derived per period from one root secret. See the [module docs](self).
#[derive(Clone)]
pub struct Schedule {
    root: Key,
    id_base: u32,
    epoch: u64,
    lifetime: u64,
    lead: u64,
    retire_after: u64,
}

impl Schedule {
    /// A schedule whose period 0 activates at `epoch`. Distribute it at least `policy.lead`
    /// before `epoch`, so that every node knows the first key before it seals.
    ///
    /// # Errors
    ///
    /// [`ScheduleError`] for a lifetime under an hour, a lead not in `(0, lifetime)`, or ids
    /// that would pass `u32::MAX`.
    pub fn new(
        root: Key,
        id_base: KeyId,
        epoch: SystemTime,
        policy: RotationPolicy,
    ) -> Result<Schedule, ScheduleError> {
        Schedule::from_parts(
            root,
            id_base.0,
            to_unix(epoch),
            policy.lifetime.as_secs(),
            policy.lead.as_secs(),
            policy.retire_after.as_secs(),
        )
    }

    pub(crate) fn from_parts(
        root: Key,
        id_base: u32,
        epoch: u64,
        lifetime: u64,
        lead: u64,
        retire_after: u64,
    ) -> Result<Schedule, ScheduleError> {
        if lifetime < MIN_LIFETIME.as_secs() {
            return Err(ScheduleError::Lifetime);
        }
        if lead == 0 || lead >= lifetime {
            return Err(ScheduleError::Lead);
        }
        if id_base.checked_add(MAX_PERIODS - 1).is_none() {
            return Err(ScheduleError::IdBase(KeyId(id_base)));
        }
        Ok(Schedule { root, id_base, epoch, lifetime, lead, retire_after })
    }

    /// A fresh id base for a new schedule: a random block of [`MAX_PERIODS`] ids in the upper
    /// half of the id space that holds none of `taken` (so two roots made by mistake on two
    /// machines almost surely get different blocks, and never one of the ring's own ids).
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide randomness.
    pub fn fresh_id_base(taken: impl Iterator<Item = KeyId> + Clone) -> KeyId {
        loop {
            let mut bytes = [0u8; 2];
            getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
            // Blocks 0x8000.. to 0xfffe, aligned to MAX_PERIODS.
            let block = 0x8000 | u32::from(u16::from_be_bytes(bytes) & 0x7fff);
            if block == 0xffff {
                continue;
            }
            let base = block << 16;
            if !taken.clone().any(|id| (base..=base + (MAX_PERIODS - 1)).contains(&id.0)) {
                return KeyId(base);
            }
        }
    }

    /// Whether `id` is one this schedule derives.
    pub fn owns(&self, id: KeyId) -> bool {
        id.0 >= self.id_base && id.0 - self.id_base < MAX_PERIODS
    }

    /// The id of period 0.
    pub fn id_base(&self) -> KeyId {
        KeyId(self.id_base)
    }

    /// When period 0 activates.
    pub fn epoch(&self) -> SystemTime {
        from_unix(self.epoch)
    }

    /// The policy.
    pub fn policy(&self) -> RotationPolicy {
        RotationPolicy {
            lifetime: Duration::from_secs(self.lifetime),
            lead: Duration::from_secs(self.lead),
            retire_after: Duration::from_secs(self.retire_after),
        }
    }

    /// The root secret, for writing a key ring file. Handle with care: never log it.
    pub fn root(&self) -> &Key {
        &self.root
    }

    /// The period sealing at `now` (the last one whose activation has passed), if any.
    pub fn period_at(&self, now: SystemTime) -> Option<u32> {
        let now = to_unix(now);
        let since = now.checked_sub(self.epoch)?;
        Some(u32::try_from(since / self.lifetime).unwrap_or(u32::MAX).min(MAX_PERIODS - 1))
    }

    pub(crate) fn epoch_secs(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn retire_after_secs(&self) -> u64 {
        self.retire_after
    }

    /// Activation time of period `n`, saturating.
    pub(crate) fn activates(&self, n: u32) -> u64 {
        self.epoch.saturating_add(u64::from(n).saturating_mul(self.lifetime))
    }

    /// When period `n` becomes known: `lead` before its activation (never before the epoch's
    /// own lead).
    pub(crate) fn known_from(&self, n: u32) -> u64 {
        self.activates(n).saturating_sub(self.lead)
    }

    /// The periods whose keys may be in service at `now`, loosely (callers filter): from the
    /// last whose successor activated more than `retire_after` ago to the one known at `now`.
    /// `None` before period 0 is known.
    pub(crate) fn candidate_periods(&self, now: u64) -> Option<std::ops::RangeInclusive<u32>> {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX).min(MAX_PERIODS - 1);
        let newest = match now.saturating_add(self.lead).checked_sub(self.epoch) {
            Some(since) => clamp(since / self.lifetime),
            None => return None,
        };
        let oldest =
            clamp(now.saturating_sub(self.epoch).saturating_sub(self.retire_after) / self.lifetime);
        Some(oldest.saturating_sub(1)..=newest)
    }

    /// The key of period `n`: `HKDF-SHA256(salt = "sealed-session v1 schedule", IKM = root,
    /// info = "sealed-session v1 period key" || id (u32 BE) || n (u32 BE))`, 32 bytes.
    pub(crate) fn derive(&self, n: u32) -> (KeyId, Key) {
        let id = self.id_base + n;
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), self.root.expose_secret());
        let mut info = Vec::with_capacity(INFO.len() + 8);
        info.extend_from_slice(INFO);
        info.extend_from_slice(&id.to_be_bytes());
        info.extend_from_slice(&n.to_be_bytes());
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        hkdf.expand(&info, secret.as_mut()).expect("32 bytes is a valid HKDF length");
        (KeyId(id), Key::from_bytes(*secret))
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("root", &self.root)
            .field("id_base", &self.id_base())
            .field("epoch", &self.epoch)
            .field("policy", &self.policy())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_keys_differ_and_are_reproducible() {
        let policy = RotationPolicy::default();
        let make = || {
            Schedule::new(Key::from_bytes([3; 32]), KeyId(0x8000_0000), from_unix(0), policy)
                .unwrap()
        };
        let (a, b) = (make(), make());
        assert_eq!(a.derive(5).1, b.derive(5).1, "every node derives the same key");
        assert_ne!(a.derive(5).1, a.derive(6).1);
        assert_eq!(a.derive(7).0, KeyId(0x8000_0007));
        let other =
            Schedule::new(Key::from_bytes([4; 32]), KeyId(0x8000_0000), from_unix(0), policy)
                .unwrap();
        assert_ne!(other.derive(5).1, a.derive(5).1);
        assert!(!format!("{a:?}").contains("3, 3"));
    }

    #[test]
    fn invalid_policies_are_refused() {
        let d = Duration::from_secs;
        let cases = [
            (d(3599), d(60), Err(ScheduleError::Lifetime)),
            (d(3600), d(0), Err(ScheduleError::Lead)),
            (d(3600), d(3600), Err(ScheduleError::Lead)),
            (d(3600), d(3599), Ok(())),
        ];
        for (lifetime, lead, expected) in cases {
            let policy = RotationPolicy { lifetime, lead, retire_after: d(0) };
            let made = Schedule::new(Key::generate(), KeyId(0), from_unix(0), policy).map(|_| ());
            assert_eq!(made, expected, "{lifetime:?} {lead:?}");
        }
        let made = Schedule::new(
            Key::generate(),
            KeyId(u32::MAX - MAX_PERIODS + 2),
            from_unix(0),
            RotationPolicy::default(),
        );
        assert!(matches!(made, Err(ScheduleError::IdBase(_))));
    }

    #[test]
    fn fresh_id_bases_avoid_taken_ids() {
        for _ in 0..200 {
            let taken = [KeyId(1), KeyId(0x8123_4567)];
            let base = Schedule::fresh_id_base(taken.iter().copied());
            assert!(base.0 >= 0x8000_0000 && base.0 % MAX_PERIODS == 0);
            assert!(base.0.checked_add(MAX_PERIODS - 1).is_some());
            assert_ne!(base.0, 0x8123_0000);
        }
    }
}
