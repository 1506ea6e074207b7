//! The secret key: 32 bytes, zeroized on drop, redacted in `Debug`, compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::format::KEY_LEN;

/// A 256-bit secret key.
///
/// The bytes are zeroized when the key is dropped, `Debug` prints nothing secret, and equality
/// is checked in constant time.
///
/// # Examples
///
/// ```
/// use sealed_session::Key;
///
/// let key = Key::generate();
/// assert_eq!(format!("{key:?}"), "Key(<redacted>)");
/// let copy = Key::from_bytes(*key.expose_secret());
/// assert_eq!(key, copy);
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A new random key from the operating system's generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide randomness, which leaves nothing safe to do.
    pub fn generate() -> Key {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        Key(bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// A key from a slice, which must be exactly [`KEY_LEN`] bytes long.
    ///
    /// # Errors
    ///
    /// [`KeyLengthError`] when the slice has another length.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Key, KeyLengthError> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| KeyLengthError(bytes.len()))?;
        Ok(Key(bytes))
    }

    /// The secret bytes, for writing a key ring file. Handle with care: never log them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Key {}

/// A key of the wrong length was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key must be {KEY_LEN} bytes, got {0}")]
pub struct KeyLengthError(pub usize);
