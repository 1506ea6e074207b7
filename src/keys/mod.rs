//! Keys and the key ring.
//!
//! A [`KeyRing`] holds every key a node may meet. Each key has an id, a creation time and an
//! activation time:
//!
//! * the key that **seals** is the newest one whose activation time has passed (the *current*
//!   key);
//! * **every** key in the ring **opens**, pending ones included, so a node that has not yet reached
//!   a key's activation time can still read what a faster node sealed with it.
//!
//! This is staged rotation: roll a ring with a new, pending key out to every node first, and
//! let it activate later. No node seals with a key some other node does not know yet, so a
//! rolling deploy never logs anyone out.
//!
//! A token names its key by id, and is opened with that key alone.

pub mod file;
mod health;
pub mod schedule;
mod shared;

mod key;
pub use health::{KeyHealth, KeyRingHealth, KeyState, ReplicaHealth};
pub use key::{Key, KeyLengthError};
pub use schedule::{RotationPolicy, Schedule, ScheduleError};
pub use shared::{FileWatcher, SharedKeyRing};

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use hkdf::Hkdf;
use hmac::Hmac;
use hmac::KeyInit as _;
use sha2::Sha256;
use xaes_256_gcm::Xaes256Gcm;
use zeroize::Zeroizing;

use crate::format::{INFO_ENCRYPTION, INFO_SIGNING, KEY_LEN};
use crate::time::{from_unix, to_unix};

/// A key's id. It travels in the clear in every token and selects exactly one key of the ring.
///
/// Displayed as eight hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A key of a ring with its subkeys derived once, so that opening does no key derivation.
pub(crate) struct RingKey {
    pub(crate) id: KeyId,
    pub(crate) created_at: u64,
    pub(crate) activates_at: u64,
    secret: Key,
    pub(crate) cipher: Xaes256Gcm,
    pub(crate) mac: Hmac<Sha256>,
}

impl RingKey {
    fn new(id: KeyId, secret: Key, created_at: u64, activates_at: u64) -> RingKey {
        // Two subkeys from one secret, separated by HKDF's info string, so that no key is ever
        // used by two algorithms.
        let hkdf = Hkdf::<Sha256>::new(None, secret.expose_secret());
        let mut enc = Zeroizing::new([0u8; KEY_LEN]);
        let mut sig = Zeroizing::new([0u8; KEY_LEN]);
        hkdf.expand(INFO_ENCRYPTION, enc.as_mut()).expect("32 bytes is a valid HKDF length");
        hkdf.expand(INFO_SIGNING, sig.as_mut()).expect("32 bytes is a valid HKDF length");
        RingKey {
            id,
            created_at,
            activates_at,
            secret,
            cipher: Xaes256Gcm::new_from_slice(enc.as_ref()).expect("32 bytes is the key length"),
            mac: Hmac::<Sha256>::new_from_slice(sig.as_ref()).expect("HMAC takes any key length"),
        }
    }
}

impl Clone for RingKey {
    fn clone(&self) -> RingKey {
        RingKey::new(self.id, self.secret.clone(), self.created_at, self.activates_at)
    }
}

/// What a ring knows of one key, without its secret: for listing and planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// When the key was created.
    pub created_at: SystemTime,
    /// When the key starts sealing (it opens from the moment it is in the ring).
    pub activates_at: SystemTime,
}

/// A key ring could not be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Two keys share an id, so tokens could not name one of them.
    #[error("duplicate key id {0}")]
    DuplicateId(KeyId),
    /// A key activates before it was created.
    #[error("key {0} activates before it was created")]
    ActivatesBeforeCreated(KeyId),
}

/// The keys a node seals and opens with. See the [module docs](self) for the rotation model.
///
/// # Examples
///
/// Staged rotation: a new key opens at once and seals only from its activation time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sealed_session::{Key, KeyId, KeyRing};
///
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let mut ring = KeyRing::new();
/// ring.insert(KeyId(1), Key::generate(), t0, t0)?;
/// ring.insert(KeyId(2), Key::generate(), t0, t0 + Duration::from_secs(3600))?;
///
/// assert_eq!(ring.current_id(t0), Some(KeyId(1)));
/// assert_eq!(ring.current_id(t0 + Duration::from_secs(3600)), Some(KeyId(2)));
/// assert!(ring.contains(KeyId(2)));
/// # Ok::<(), sealed_session::KeyRingError>(())
/// ```
///
/// A ring may also carry a [`Schedule`]: keys derived per period from one root secret, which
/// join and leave the ring as time passes (see [`schedule`]). [`at`](KeyRing::at) gives the
/// ring in service at a time; a [`SharedKeyRing`] moves on by itself.
#[derive(Clone)]
pub struct KeyRing {
    /// The keys in service: every hand-made key, and with a schedule the derived keys of the
    /// time the ring was taken at, hand-made keys past their retirement left out.
    keys: Vec<Arc<RingKey>>,
    /// With a schedule, every hand-made key (`keys` holds those still in service).
    explicit: Vec<Arc<RingKey>>,
    schedule: Option<Arc<Schedule>>,
    /// Unix seconds at which `keys` was taken: before it (a clock stepped backward) `keys` is
    /// out of date too, since keys retired since may be in service again. 0 without a schedule.
    taken_at: u64,
    /// How long after `taken_at` `keys` is out of date (a derived key joins or a key retires);
    /// `u64::MAX` without a schedule. Checked by every request (see `fresh_at`).
    valid_for: u64,
}

impl Default for KeyRing {
    fn default() -> KeyRing {
        KeyRing {
            keys: Vec::new(),
            explicit: Vec::new(),
            schedule: None,
            taken_at: 0,
            valid_for: u64::MAX,
        }
    }
}

impl KeyRing {
    /// An empty ring. A codec over an empty ring rejects every token and cannot seal.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// A ring of one key with id `1`, active since the Unix epoch: the simplest setup, and what
    /// an ephemeral development ring uses.
    pub fn single(key: Key) -> KeyRing {
        let mut ring = KeyRing::new();
        ring.keys.push(Arc::new(RingKey::new(KeyId(1), key, 0, 0)));
        ring
    }

    /// Adds a key.
    ///
    /// # Errors
    ///
    /// [`KeyRingError::DuplicateId`] if the id is taken (or belongs to the ring's schedule), and
    /// [`KeyRingError::ActivatesBeforeCreated`] if the times are out of order.
    pub fn insert(
        &mut self,
        id: KeyId,
        key: Key,
        created_at: SystemTime,
        activates_at: SystemTime,
    ) -> Result<(), KeyRingError> {
        if self.contains(id)
            || self.explicit.iter().any(|key| key.id == id)
            || self.schedule.as_ref().is_some_and(|schedule| schedule.owns(id))
        {
            return Err(KeyRingError::DuplicateId(id));
        }
        let (created_at, activates_at) = (to_unix(created_at), to_unix(activates_at));
        if activates_at < created_at {
            return Err(KeyRingError::ActivatesBeforeCreated(id));
        }
        let key = Arc::new(RingKey::new(id, key, created_at, activates_at));
        if self.schedule.is_some() {
            self.explicit.push(Arc::clone(&key));
            // A hand-made key can shorten a derived key's life (it activates in between).
            self.valid_for = 0;
        }
        self.keys.push(key);
        Ok(())
    }

    /// Removes a key, returning whether it was there. Tokens sealed with it no longer open.
    /// A derived key cannot be removed alone: replace the schedule.
    pub fn remove(&mut self, id: KeyId) -> bool {
        if self.schedule.as_ref().is_some_and(|schedule| schedule.owns(id)) {
            return false;
        }
        let before = self.keys.len();
        self.keys.retain(|key| key.id != id);
        self.explicit.retain(|key| key.id != id);
        self.keys.len() != before
    }

    /// Puts keys derived from `schedule` in the ring, taken at `now` (see [`at`](KeyRing::at)),
    /// replacing any schedule it had.
    ///
    /// # Errors
    ///
    /// [`KeyRingError::DuplicateId`] if a hand-made key's id is in the schedule's block.
    pub fn set_schedule(
        &mut self,
        schedule: Schedule,
        now: SystemTime,
    ) -> Result<(), KeyRingError> {
        let explicit: Vec<Arc<RingKey>> = match &self.schedule {
            Some(_) => std::mem::take(&mut self.explicit),
            None => std::mem::take(&mut self.keys),
        };
        if let Some(key) = explicit.iter().find(|key| schedule.owns(key.id)) {
            let id = key.id;
            match &self.schedule {
                Some(_) => self.explicit = explicit,
                None => self.keys = explicit,
            }
            return Err(KeyRingError::DuplicateId(id));
        }
        let ring = KeyRing {
            keys: Vec::new(),
            explicit,
            schedule: Some(Arc::new(schedule)),
            taken_at: 0,
            valid_for: 0,
        };
        *self = ring.materialize(to_unix(now), &[]);
        Ok(())
    }

    /// Removes the schedule, leaving the hand-made keys (the derived keys leave the ring).
    pub fn clear_schedule(&mut self) -> Option<Schedule> {
        let schedule = self.schedule.take()?;
        self.keys = std::mem::take(&mut self.explicit);
        (self.taken_at, self.valid_for) = (0, u64::MAX);
        Some(Arc::unwrap_or_clone(schedule))
    }

    /// The ring's schedule, if it has one.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_deref()
    }

    /// Whether the key is one the schedule derives (not hand-made).
    pub fn is_derived(&self, id: KeyId) -> bool {
        self.schedule.as_ref().is_some_and(|schedule| schedule.owns(id))
    }

    /// The ring in service at `now`. Without a schedule, the same ring. With one: the derived
    /// keys known at `now` and not yet retired, and the hand-made keys not yet retired, where a
    /// key retires the policy's `retire_after` once a later key activated.
    pub fn at(&self, now: SystemTime) -> KeyRing {
        if self.schedule.is_none() {
            return self.clone();
        }
        self.materialize(to_unix(now), &self.keys)
    }

    /// Whether the ring is still the one in service at `now` (cheap: the request path asks):
    /// not past its next change, and not before the time it was taken (a clock stepped
    /// backward gets the ring of its time, where keys retired since may be current). One
    /// comparison: before `taken_at`, `now - taken_at` wraps past any `valid_for`.
    #[inline]
    pub(crate) fn fresh_at(&self, now: u64) -> bool {
        now.wrapping_sub(self.taken_at) < self.valid_for
    }

    /// When a key retires: `retire_after` after the first activation later than its own, or
    /// never (`u64::MAX`).
    fn retires_at(&self, schedule: &Schedule, activates_at: u64) -> u64 {
        let derived_next = match activates_at.checked_sub(schedule.epoch_secs()) {
            None => Some(schedule.epoch_secs()),
            Some(_) => {
                let n = schedule.period_at(from_unix(activates_at)).unwrap_or(0);
                (n + 1 < schedule::MAX_PERIODS).then(|| schedule.activates(n + 1))
            }
        };
        let explicit_next =
            self.explicit.iter().map(|key| key.activates_at).filter(|&at| at > activates_at).min();
        match derived_next.into_iter().chain(explicit_next).min() {
            Some(next) => next.saturating_add(schedule.retire_after_secs()),
            None => u64::MAX,
        }
    }

    /// The ring at `now`, reusing the derived keys of `reuse` (deriving costs an HKDF and a
    /// cipher setup per key).
    fn materialize(&self, now: u64, reuse: &[Arc<RingKey>]) -> KeyRing {
        let schedule = self.schedule.as_ref().expect("materialize needs a schedule");
        let mut keys = Vec::new();
        let mut valid_until = u64::MAX;
        for key in &self.explicit {
            let retires = self.retires_at(schedule, key.activates_at);
            if now < retires {
                keys.push(Arc::clone(key));
                valid_until = valid_until.min(retires);
            }
        }
        match schedule.candidate_periods(now) {
            // Before the epoch's lead no period is known: the first one joins then.
            None => valid_until = valid_until.min(schedule.known_from(0)),
            Some(periods) => {
                let newest = *periods.end();
                for n in periods {
                    let (known, activates) = (schedule.known_from(n), schedule.activates(n));
                    let retires = self.retires_at(schedule, activates);
                    if known > now || now >= retires {
                        continue;
                    }
                    valid_until = valid_until.min(retires);
                    let id = KeyId(schedule.id_base().0 + n);
                    let key = match reuse.iter().find(|key| key.id == id) {
                        Some(key) => Arc::clone(key),
                        None => {
                            let (id, secret) = schedule.derive(n);
                            Arc::new(RingKey::new(id, secret, known, activates))
                        }
                    };
                    keys.push(key);
                }
                if newest + 1 < schedule::MAX_PERIODS {
                    valid_until = valid_until.min(schedule.known_from(newest + 1).max(now + 1));
                }
            }
        }
        KeyRing {
            keys,
            explicit: self.explicit.clone(),
            schedule: Some(Arc::clone(schedule)),
            taken_at: now,
            // Every change counted is after `now` (a key in service retires later; the next
            // period joins later), so this is at least 1.
            valid_for: valid_until.saturating_sub(now),
        }
    }

    /// Whether a key with this id is in the ring.
    pub fn contains(&self, id: KeyId) -> bool {
        self.get(id).is_some()
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that seals at `now`: the most recently activated of the keys whose
    /// activation time has passed, or `None` if every key is still pending.
    pub fn current_id(&self, now: SystemTime) -> Option<KeyId> {
        self.current(to_unix(now)).map(|key| key.id)
    }

    /// Id and times of every key, in insertion order. Secrets are not included.
    pub fn keys(&self) -> impl Iterator<Item = KeyInfo> + '_ {
        self.keys.iter().map(|key| KeyInfo {
            id: key.id,
            created_at: from_unix(key.created_at),
            activates_at: from_unix(key.activates_at),
        })
    }

    /// The secret of a key, for writing a key ring file.
    pub fn secret(&self, id: KeyId) -> Option<&Key> {
        self.get(id).map(|key| &key.secret)
    }

    pub(crate) fn current(&self, now: u64) -> Option<&RingKey> {
        self.keys
            .iter()
            .filter(|key| key.activates_at <= now)
            .max_by_key(|key| (key.activates_at, key.created_at, key.id))
            .map(|key| &**key)
    }

    pub(crate) fn get(&self, id: KeyId) -> Option<&RingKey> {
        self.keys.iter().find(|key| key.id == id).map(|key| &**key)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schedule {
            None => f.debug_list().entries(self.keys()).finish(),
            Some(schedule) => f
                .debug_struct("KeyRing")
                .field("keys", &self.keys().collect::<Vec<_>>())
                .field("schedule", schedule)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn debug_never_shows_secrets() {
        let key = Key::from_bytes([0xab; KEY_LEN]);
        let ring = KeyRing::single(key.clone());
        for text in [format!("{key:?}"), format!("{ring:?}"), format!("{ring:#?}")] {
            assert!(!text.to_lowercase().contains("ab, ab"), "{text}");
            assert!(!text.contains("171"), "{text}");
        }
    }

    #[test]
    fn equality_compares_bytes() {
        assert_eq!(Key::from_bytes([1; KEY_LEN]), Key::from_bytes([1; KEY_LEN]));
        assert_ne!(Key::from_bytes([1; KEY_LEN]), Key::from_bytes([2; KEY_LEN]));
        assert_eq!(Key::try_from_slice(&[0; 31]), Err(KeyLengthError(31)));
    }

    #[test]
    fn current_key_is_the_newest_activated() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut ring = KeyRing::new();
        assert_eq!(ring.current_id(t(0)), None);
        ring.insert(KeyId(10), Key::generate(), t(100), t(200)).unwrap();
        assert_eq!(ring.current_id(t(199)), None, "pending keys never seal");
        assert_eq!(ring.current_id(t(200)), Some(KeyId(10)));
        ring.insert(KeyId(11), Key::generate(), t(300), t(400)).unwrap();
        assert_eq!(ring.current_id(t(399)), Some(KeyId(10)));
        assert_eq!(ring.current_id(t(400)), Some(KeyId(11)));
        assert_eq!(
            ring.insert(KeyId(11), Key::generate(), t(0), t(0)),
            Err(KeyRingError::DuplicateId(KeyId(11)))
        );
        assert_eq!(
            ring.insert(KeyId(12), Key::generate(), t(5), t(4)),
            Err(KeyRingError::ActivatesBeforeCreated(KeyId(12)))
        );
        assert!(ring.remove(KeyId(10)));
        assert_eq!(ring.current_id(t(399)), None);
    }

    #[test]
    fn subkeys_differ_per_purpose() {
        // The same secret must give unrelated encryption and signing keys; checked through the
        // HKDF outputs directly.
        let hkdf = Hkdf::<Sha256>::new(None, &[9; KEY_LEN]);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        hkdf.expand(INFO_ENCRYPTION, &mut a).unwrap();
        hkdf.expand(INFO_SIGNING, &mut b).unwrap();
        assert_ne!(a, b);
    }
}
