//! The frame: what a token protects.
//!
//! ```text
//! flags          1 byte   bit 0: body is zstd-compressed; bit 1: a sensitive section follows;
//!                         bit 2: compressed with dictionary 1 (only with bit 0);
//!                         bit 3: an idle_timeout follows the id; bit 4: a browser session;
//!                         bits 5-7: zero
//! issued_at      varint   Unix seconds
//! refresh_delta  varint   last_refresh - issued_at
//! expiry_delta   varint   absolute_expiry - issued_at
//! session_id     16 bytes
//! idle_timeout   varint   present only when bit 3 is set: this session's idle timeout in
//!                         seconds, replacing the configured one; 0: no idle bound
//! body_len       varint   present only when bit 1 is set: length of the body as stored
//! body           MessagePack map (string -> any), compressed when bit 0 is set
//! sensitive      MessagePack map (string -> any), never compressed; present only with bit 1
//! ```
//!
//! The times are offsets from `issued_at` so that a typical frame spends about ten bytes on them.
//! Sensitive values sit in their own section, outside the compressor's window, so that data an
//! attacker places in the session cannot be used to guess them from the sealed length.

use std::borrow::Cow;

use super::compress::{self, DecompressError, Packing, Policy};
use super::{SESSION_ID_LEN, varint};
use crate::error::RejectReason;

pub(crate) const FLAG_COMPRESSED: u8 = 0b01;
pub(crate) const FLAG_SENSITIVE: u8 = 0b10;
pub(crate) const FLAG_DICTIONARY: u8 = 0b100;
/// An `idle_timeout` varint follows the session id.
pub(crate) const FLAG_IDLE_TIMEOUT: u8 = 0b1000;
/// The session's cookies are written without `Max-Age` (a browser session). Only the sealing
/// side reads it: it keeps the choice across reseals, and no check depends on it.
pub(crate) const FLAG_BROWSER_SESSION: u8 = 0b1_0000;
const KNOWN_FLAGS: u8 =
    FLAG_COMPRESSED | FLAG_SENSITIVE | FLAG_DICTIONARY | FLAG_IDLE_TIMEOUT | FLAG_BROWSER_SESSION;

/// The longest a frame can be before its body: the flags, five varints (three times, the idle
/// timeout, the body's length) and the session id.
pub(crate) const MAX_META_LEN: usize = 1 + 5 * varint::MAX_LEN + SESSION_ID_LEN;

/// The times and id sealed in every frame, in Unix seconds, and the session's own lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    pub(crate) issued_at: u64,
    pub(crate) last_refresh: u64,
    pub(crate) expires_at: u64,
    pub(crate) session_id: [u8; SESSION_ID_LEN],
    pub(crate) lifetime: SealedLifetime,
}

/// What a frame says of its session's lifetime beyond its times: sealed, so a client cannot
/// lengthen it (see [`Lifetime`](crate::Lifetime), which the application sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SealedLifetime {
    /// The configured idle timeout applies; `Max-Age` as the configuration says.
    #[default]
    Configured,
    /// The configured idle timeout applies; the cookies carry no `Max-Age` (flag bit 4).
    BrowserSession,
    /// This many seconds of idle timeout instead of the configured one (flag bit 3, nonzero).
    Idle(u64),
    /// No idle bound: only the absolute expiry ends the session (flag bit 3, zero).
    Fixed,
}

impl SealedLifetime {
    /// The idle timeout a session sealed with this lifetime has under a configured `idle`
    /// timeout; `None` for no idle bound.
    pub(crate) fn idle_timeout(self, configured: u64) -> Option<u64> {
        match self {
            SealedLifetime::Configured | SealedLifetime::BrowserSession => Some(configured),
            SealedLifetime::Idle(secs) => Some(secs),
            SealedLifetime::Fixed => None,
        }
    }
}

/// Writes a frame. `body` and `sensitive` are MessagePack maps; `sensitive` is `None` when the
/// session holds no sensitive value. The body is compressed as `compression` says
/// ([`compress::pack`]).
pub(crate) fn encode(
    meta: &FrameMeta,
    body: &[u8],
    sensitive: Option<&[u8]>,
    compression: Policy,
    out: &mut Vec<u8>,
) {
    let packed = compress::pack(body, compression);
    let stored = packed.as_ref().map_or(body, |(packed, _)| packed);

    let mut flags = 0;
    match packed.as_ref().map(|&(_, packing)| packing) {
        None => {}
        Some(Packing::Plain) => flags |= FLAG_COMPRESSED,
        Some(Packing::Dictionary) => flags |= FLAG_COMPRESSED | FLAG_DICTIONARY,
    }
    if sensitive.is_some() {
        flags |= FLAG_SENSITIVE;
    }
    let idle_timeout = match meta.lifetime {
        SealedLifetime::Configured => None,
        SealedLifetime::BrowserSession => {
            flags |= FLAG_BROWSER_SESSION;
            None
        }
        // Zero is "no idle bound" on the wire: a session's own idle timeout is at least 1 s.
        SealedLifetime::Idle(secs) => Some(secs.max(1)),
        SealedLifetime::Fixed => Some(0),
    };
    if idle_timeout.is_some() {
        flags |= FLAG_IDLE_TIMEOUT;
    }
    out.push(flags);
    varint::write(meta.issued_at, out);
    varint::write(meta.last_refresh.saturating_sub(meta.issued_at), out);
    varint::write(meta.expires_at.saturating_sub(meta.issued_at), out);
    out.extend_from_slice(&meta.session_id);
    if let Some(secs) = idle_timeout {
        varint::write(secs, out);
    }
    if let Some(sensitive) = sensitive {
        varint::write(stored.len() as u64, out);
        out.extend_from_slice(stored);
        out.extend_from_slice(sensitive);
    } else {
        out.extend_from_slice(stored);
    }
}

/// Reads the times and id at the front of an authenticated frame, returning the flags and the
/// sections still to be read.
pub(crate) fn decode_meta(frame: &[u8]) -> Result<(FrameMeta, Sections<'_>), RejectReason> {
    const BAD: RejectReason = RejectReason::Malformed("invalid frame");
    let (&flags, rest) = frame.split_first().ok_or(BAD)?;
    if flags & !KNOWN_FLAGS != 0 || flags & (FLAG_COMPRESSED | FLAG_DICTIONARY) == FLAG_DICTIONARY {
        return Err(BAD);
    }
    let (issued_at, rest) = varint::read(rest).ok_or(BAD)?;
    let (refresh_delta, rest) = varint::read(rest).ok_or(BAD)?;
    let (expiry_delta, rest) = varint::read(rest).ok_or(BAD)?;
    let (id, rest) = rest.split_at_checked(SESSION_ID_LEN).ok_or(BAD)?;
    // The idle timeout decides the lifetime; the browser-session bit beside it changes nothing.
    let (lifetime, rest) = if flags & FLAG_IDLE_TIMEOUT != 0 {
        let (secs, rest) = varint::read(rest).ok_or(BAD)?;
        let lifetime = if secs == 0 { SealedLifetime::Fixed } else { SealedLifetime::Idle(secs) };
        (lifetime, rest)
    } else if flags & FLAG_BROWSER_SESSION != 0 {
        (SealedLifetime::BrowserSession, rest)
    } else {
        (SealedLifetime::Configured, rest)
    };
    let meta = FrameMeta {
        issued_at,
        last_refresh: issued_at.checked_add(refresh_delta).ok_or(BAD)?,
        expires_at: issued_at.checked_add(expiry_delta).ok_or(BAD)?,
        session_id: id.try_into().map_err(|_| BAD)?,
        lifetime,
    };
    let (body, sensitive) = if flags & FLAG_SENSITIVE != 0 {
        let (len, rest) = varint::read(rest).ok_or(BAD)?;
        let len = usize::try_from(len).map_err(|_| BAD)?;
        let (body, sensitive) = rest.split_at_checked(len).ok_or(BAD)?;
        (body, Some(sensitive))
    } else {
        (rest, None)
    };
    let packing = match (flags & FLAG_COMPRESSED != 0, flags & FLAG_DICTIONARY != 0) {
        (false, _) => None,
        (true, false) => Some(Packing::Plain),
        (true, true) => Some(Packing::Dictionary),
    };
    Ok((meta, Sections { packing, body, sensitive }))
}

/// The two value sections of a frame, not yet decompressed.
#[derive(Debug)]
pub(crate) struct Sections<'a> {
    /// How the body was compressed, if it was.
    packing: Option<Packing>,
    body: &'a [u8],
    sensitive: Option<&'a [u8]>,
}

impl<'a> Sections<'a> {
    /// The body as MessagePack, decompressed (bounded by `max_state`) if it was compressed,
    /// into a buffer with room for the sensitive section after it.
    pub(crate) fn body(&self, max_state: usize) -> Result<Cow<'a, [u8]>, RejectReason> {
        let Some(packing) = self.packing else {
            return Ok(self.body.into());
        };
        let sensitive = self.sensitive.map_or(0, <[u8]>::len);
        let budget = max_state.saturating_sub(sensitive);
        match compress::decompress(self.body, packing, budget, sensitive) {
            Ok(body) => Ok(body.into()),
            Err(DecompressError::TooLarge) => Err(RejectReason::TooLarge("decompressed state")),
            Err(DecompressError::Invalid) => Err(RejectReason::Malformed("invalid compression")),
        }
    }

    /// The sensitive section, when the frame has one.
    pub(crate) fn sensitive(&self) -> Option<&'a [u8]> {
        self.sensitive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: FrameMeta = FrameMeta {
        issued_at: 1_800_000_000,
        last_refresh: 1_800_000_600,
        expires_at: 1_800_086_400,
        session_id: [7; SESSION_ID_LEN],
        lifetime: SealedLifetime::Configured,
    };

    #[test]
    fn round_trips_with_and_without_sections() {
        let body = [0x81, 0xa1, b'a', 0x01];
        let body_big: Vec<u8> = {
            let mut out = vec![0x81, 0xa1, b'a', 0xda, 0x03, 0xe8];
            out.extend(std::iter::repeat_n(b'z', 1000));
            out
        };
        for (body, sensitive, threshold, dictionary) in [
            (&body[..], None, None, true),
            (&body[..], Some(&[0x80u8][..]), Some(0), true),
            (&body_big[..], None, Some(256), false),
            (&body_big[..], Some(&body[..]), Some(256), false),
            (&body_big[..], None, Some(256), true),
            (&body_big[..], Some(&body[..]), Some(256), true),
        ] {
            for lifetime in LIFETIMES {
                let meta = FrameMeta { lifetime, ..META };
                let mut frame = Vec::new();
                encode(&meta, body, sensitive, Policy { threshold, dictionary }, &mut frame);
                let (decoded, sections) = decode_meta(&frame).unwrap();
                assert_eq!(decoded, meta);
                assert_eq!(&*sections.body(1 << 20).unwrap(), body);
                assert_eq!(sections.sensitive(), sensitive);
            }
        }
    }

    const LIFETIMES: [SealedLifetime; 5] = [
        SealedLifetime::Configured,
        SealedLifetime::BrowserSession,
        SealedLifetime::Idle(1),
        SealedLifetime::Idle(u64::MAX),
        SealedLifetime::Fixed,
    ];

    #[test]
    fn lifetime_flags_and_field() {
        // (lifetime, flags beyond the sections', the idle_timeout field as written)
        let cases: [(SealedLifetime, u8, &[u8]); 5] = [
            (SealedLifetime::Configured, 0, &[]),
            (SealedLifetime::BrowserSession, FLAG_BROWSER_SESSION, &[]),
            (SealedLifetime::Idle(300), FLAG_IDLE_TIMEOUT, &[0xac, 0x02]),
            (SealedLifetime::Idle(0), FLAG_IDLE_TIMEOUT, &[0x01]),
            (SealedLifetime::Fixed, FLAG_IDLE_TIMEOUT, &[0x00]),
        ];
        let plain = Policy { threshold: None, dictionary: false };
        let mut base = Vec::new();
        encode(&META, &[0x80], None, plain, &mut base);
        let id_end = base.len() - 1;
        for (lifetime, flags, field) in cases {
            let mut frame = Vec::new();
            encode(&FrameMeta { lifetime, ..META }, &[0x80], None, plain, &mut frame);
            assert_eq!(frame[0], flags, "{lifetime:?}");
            assert_eq!(&frame[1..id_end], &base[1..id_end], "{lifetime:?}");
            assert_eq!(&frame[id_end..frame.len() - 1], field, "{lifetime:?}");
        }
        // Both bits: the idle timeout decides.
        let mut both = Vec::new();
        encode(
            &FrameMeta { lifetime: SealedLifetime::Fixed, ..META },
            &[0x80],
            None,
            plain,
            &mut both,
        );
        both[0] |= FLAG_BROWSER_SESSION;
        assert_eq!(decode_meta(&both).unwrap().0.lifetime, SealedLifetime::Fixed);
    }

    #[test]
    fn compresses_only_when_it_helps() {
        let mut frame = Vec::new();
        encode(&META, &[0x80], None, Policy { threshold: Some(0), dictionary: true }, &mut frame);
        assert_eq!(frame[0] & FLAG_COMPRESSED, 0, "one byte never shrinks");
    }

    #[test]
    fn rejects_unknown_flags_and_truncation() {
        let mut frame = Vec::new();
        encode(&META, &[0x80], None, Policy { threshold: None, dictionary: true }, &mut frame);
        for flags in [0x80, 0x20, FLAG_DICTIONARY] {
            let mut bad = frame.clone();
            bad[0] |= flags;
            assert!(decode_meta(&bad).is_err(), "flags {flags:#04x}");
        }
        for cut in 0..(frame.len() - 1) {
            assert!(decode_meta(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }
}
