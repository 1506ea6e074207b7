//! Authenticated sealing of a frame, and opening it back.
//!
//! Sealed mode (the default) is XAES-256-GCM with a fresh random 192-bit nonce per seal: the
//! nonce is long enough that random nonces never collide in practice, so there is no limit on
//! how many sessions one key may seal (plain AES-GCM with random 96-bit nonces must stop at
//! about 2^32 seals per key). Signed mode appends an HMAC-SHA256 tag and leaves the frame
//! readable. Both authenticate the same associated data (see [`crate::format`]).

use hmac::Mac as _;
use xaes_256_gcm::aead::AeadInOut as _;
use xaes_256_gcm::{Nonce, Tag};

use crate::format::{MAC_LEN, Mode, NONCE_LEN, TAG_LEN};
use crate::keys::RingKey;

/// Seals `frame` in place: `token` must hold the header and then, for sealed mode, a nonce of
/// [`NONCE_LEN`] bytes, followed by the frame from `frame_start`. Appends the tag.
pub(crate) fn seal(
    mode: Mode,
    key: &RingKey,
    aad: &[u8],
    token: &mut Vec<u8>,
    frame_start: usize,
) -> Result<(), ()> {
    match mode {
        Mode::Sealed => {
            let (head, frame) = token.split_at_mut(frame_start);
            let nonce = Nonce::try_from(&head[frame_start - NONCE_LEN..]).map_err(|_| ())?;
            let tag =
                key.cipher.encrypt_inout_detached(&nonce, aad, frame.into()).map_err(|_| ())?;
            token.extend_from_slice(&tag);
        }
        Mode::Signed => {
            let mut mac = key.mac.clone();
            mac.update(aad);
            mac.update(&token[frame_start..]);
            token.extend_from_slice(&mac.finalize().into_bytes());
        }
    }
    Ok(())
}

/// Opens a token body (everything after the header) in place, returning the authenticated
/// frame, or `None` if authentication fails. Nothing of the frame may be used before this.
pub(crate) fn open<'a>(
    mode: Mode,
    key: &RingKey,
    aad: &[u8],
    body: &'a mut [u8],
) -> Option<&'a [u8]> {
    match mode {
        Mode::Sealed => {
            let (nonce, rest) = body.split_at_mut_checked(NONCE_LEN)?;
            let split = rest.len().checked_sub(TAG_LEN)?;
            let (frame, tag) = rest.split_at_mut(split);
            let nonce = Nonce::try_from(&*nonce).ok()?;
            let tag = Tag::try_from(&*tag).ok()?;
            key.cipher.decrypt_inout_detached(&nonce, aad, (&mut *frame).into(), &tag).ok()?;
            Some(frame)
        }
        Mode::Signed => {
            let split = body.len().checked_sub(MAC_LEN)?;
            let (frame, tag) = body.split_at(split);
            let mut mac = key.mac.clone();
            mac.update(aad);
            mac.update(frame);
            // `verify_slice` compares in constant time.
            mac.verify_slice(tag).ok()?;
            Some(frame)
        }
    }
}
