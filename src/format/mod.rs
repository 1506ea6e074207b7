//! The wire format, version 1: constants, the clear header, and the sealed frame.
//!
//! Every number here is mirrored by `FORMAT.md`; change one and you change the other.
//!
//! A token (before base64url) is laid out as:
//!
//! ```text
//! sealed mode:  header (6) || nonce (24) || ciphertext (n) || tag (16)
//! signed mode:  header (6) || frame (n)  || HMAC-SHA256 tag (32)
//!
//! header = version << 4 | mode  (1 byte)
//!          chunk count          (1 byte, 1..=MAX_CHUNKS)
//!          key id               (4 bytes, big-endian)
//! ```
//!
//! The associated data is `header || len(name) (1 byte) || name`, so the version, mode, chunk
//! count, key id and the cookie's base name are all authenticated. The frame (the plaintext) is
//! described in section 4 of `FORMAT.md`.

pub(crate) mod base64url;
pub(crate) mod compress;
pub(crate) mod frame;
pub(crate) mod msgpack;

/// The format version written in the high nibble of every token's first byte.
pub const FORMAT_VERSION: u8 = 1;
/// The base64url characters that hold the header (its 6 bytes are exactly 8 characters): a
/// token's first cookie must hold at least this many, or no reader can open it.
pub(crate) const HEADER_CHARS: usize = HEADER_LEN / 3 * 4;
/// Length of a key's secret in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a key id on the wire in bytes (big-endian `u32`).
pub const KEY_ID_LEN: usize = 4;
/// Length of the clear header: version and mode, chunk count, key id.
pub const HEADER_LEN: usize = 2 + KEY_ID_LEN;
/// Length of an XAES-256-GCM nonce in bytes (192 bits, random per seal).
pub const NONCE_LEN: usize = 24;
/// Length of the AES-GCM authentication tag in bytes.
pub const TAG_LEN: usize = 16;
/// Length of the HMAC-SHA256 tag of a signed token in bytes.
pub const MAC_LEN: usize = 32;
/// Length of a session id in bytes (128 bits).
pub const SESSION_ID_LEN: usize = 16;
/// The most cookies one session may be split across.
pub const MAX_CHUNKS: usize = 32;
/// The longest Set-Cookie line (name, value and attributes) we ever emit: the RFC 6265 minimum
/// that every browser stores.
pub const MAX_COOKIE_LINE: usize = 4096;
/// The longest cookie base name; the name is bound into the AAD with a one-byte length.
pub const MAX_NAME_LEN: usize = 200;
/// The longest deployment purpose (`SessionConfigBuilder::purpose`), bound into the AAD after
/// the name with a one-byte length.
pub const MAX_PURPOSE_LEN: usize = 200;
/// How many variants of a duplicated cookie name (path or domain variants) are tried on open.
pub const MAX_NAME_VARIANTS: usize = 4;
/// The deepest MessagePack nesting a session value may have.
pub const MAX_DEPTH: usize = 64;

/// HKDF-SHA256 `info` for the XAES-256-GCM subkey of a ring key.
pub const INFO_ENCRYPTION: &[u8] = b"sealed-session v1 xaes-256-gcm";
/// HKDF-SHA256 `info` for the HMAC-SHA256 subkey of a ring key (signed mode).
pub const INFO_SIGNING: &[u8] = b"sealed-session v1 hmac-sha256";

/// The two ways a token protects its frame. The value is the low nibble of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Encrypted and authenticated with XAES-256-GCM: the client can neither read nor change it.
    #[default]
    Sealed,
    /// Authenticated with HMAC-SHA256 but readable by the client (the frame travels in the clear).
    Signed,
}

impl Mode {
    pub(crate) const fn to_nibble(self) -> u8 {
        match self {
            Mode::Sealed => 0,
            Mode::Signed => 1,
        }
    }

    pub(crate) const fn from_nibble(nibble: u8) -> Option<Mode> {
        match nibble {
            0 => Some(Mode::Sealed),
            1 => Some(Mode::Signed),
            _ => None,
        }
    }

    /// Bytes a token of this mode adds around the frame, besides the header.
    pub(crate) const fn envelope_len(self) -> usize {
        match self {
            Mode::Sealed => NONCE_LEN + TAG_LEN,
            Mode::Signed => MAC_LEN,
        }
    }
}

/// The clear header at the front of every token. Parsed from untrusted bytes: nothing in it is
/// believed until the tag over it has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) version: u8,
    pub(crate) mode_nibble: u8,
    pub(crate) chunks: u8,
    pub(crate) key_id: u32,
}

impl Header {
    pub(crate) fn new(mode: Mode, chunks: u8, key_id: u32) -> Header {
        Header { version: FORMAT_VERSION, mode_nibble: mode.to_nibble(), chunks, key_id }
    }

    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let id = self.key_id.to_be_bytes();
        [(self.version << 4) | self.mode_nibble, self.chunks, id[0], id[1], id[2], id[3]]
    }

    pub(crate) fn parse(bytes: &[u8]) -> Option<Header> {
        let bytes: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            version: bytes[0] >> 4,
            mode_nibble: bytes[0] & 0x0f,
            chunks: bytes[1],
            key_id: u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
        })
    }
}

/// The longest associated data: the header, the name's length byte and the longest name, then
/// the purpose's length byte and the longest purpose.
pub(crate) const MAX_AAD_LEN: usize = HEADER_LEN + 1 + MAX_NAME_LEN + 1 + MAX_PURPOSE_LEN;

/// Writes the associated data of a token: the header, then the base name with a length byte,
/// then, when a deployment purpose is configured, the purpose with a length byte (FORMAT.md
/// section 3.2). Without a purpose the bytes are those of every version before purposes, so
/// tokens sealed without one still open where none is configured. Returns the bytes written
/// (on the stack: the open path runs on every request).
pub(crate) fn associated_data<'a>(
    header: &[u8; HEADER_LEN],
    name: &str,
    purpose: Option<&str>,
    out: &'a mut [u8; MAX_AAD_LEN],
) -> &'a [u8] {
    // The configuration refuses longer names, token header names and purposes.
    assert!(name.len() <= MAX_NAME_LEN, "a cookie name longer than MAX_NAME_LEN");
    let mut len = HEADER_LEN + 1 + name.len();
    out[..HEADER_LEN].copy_from_slice(header);
    out[HEADER_LEN] = name.len() as u8;
    out[HEADER_LEN + 1..len].copy_from_slice(name.as_bytes());
    if let Some(purpose) = purpose {
        assert!(purpose.len() <= MAX_PURPOSE_LEN, "a purpose longer than MAX_PURPOSE_LEN");
        out[len] = purpose.len() as u8;
        out[len + 1..len + 1 + purpose.len()].copy_from_slice(purpose.as_bytes());
        len += 1 + purpose.len();
    }
    &out[..len]
}

/// Unsigned LEB128, as used for the times in the frame.
pub(crate) mod varint {
    /// The longest encoding of a `u64`.
    pub(crate) const MAX_LEN: usize = 10;

    pub(crate) fn write(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Reads one varint from the front of `input`, returning it and the rest. Rejects encodings
    /// longer than ten bytes or overflowing a `u64`.
    pub(crate) fn read(input: &[u8]) -> Option<(u64, &[u8])> {
        let mut value = 0u64;
        for (i, &byte) in input.iter().enumerate().take(MAX_LEN) {
            let low = u64::from(byte & 0x7f);
            if i == MAX_LEN - 1 && low > 1 {
                return None;
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                return Some((value, &input[i + 1..]));
            }
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_edges() {
            for value in [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
                let mut buf = Vec::new();
                write(value, &mut buf);
                assert!(buf.len() <= MAX_LEN);
                assert_eq!(read(&buf), Some((value, &[][..])));
            }
        }

        #[test]
        fn rejects_truncated_and_overlong() {
            assert_eq!(read(&[]), None);
            assert_eq!(read(&[0x80]), None);
            assert_eq!(read(&[0xff; 11]), None);
            // Eleven bits past u64::MAX.
            let mut over = vec![0xff; 9];
            over.push(0x02);
            assert_eq!(read(&over), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = Header::new(Mode::Signed, 3, 0xdead_beef);
        let bytes = header.to_bytes();
        assert_eq!(bytes, [0x11, 3, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Header::parse(&bytes), Some(header));
        assert_eq!(Header::parse(&bytes[..5]), None);
    }
}
