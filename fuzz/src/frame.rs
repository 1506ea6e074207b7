//! The post-authentication half of `open`: a frame (the plaintext a token protects) given
//! directly to `SessionCodec::__fuzz_decode_frame`, as if its tag had checked out. Only a key
//! holder can produce such a frame, but a bug here would turn any key holder's mistake (or an
//! older build's frames) into a crash, and the checks are what bound decompression and the
//! MessagePack walk.
//!
//! Invariants, for every input:
//!
//! * decoding never panics (neither does reading the session's times and values);
//! * a decoded session has an id and times the codec accepts at [`now`]: issued no later than
//!   now plus the skew, not past its absolute or idle expiry (plus the skew; the idle timeout
//!   is the session's own when its frame carries one, and none for a fixed end), refreshed no
//!   earlier than issued;
//! * its keys are at most [`MAX_KEY_LEN`] bytes, each value's raw bytes are exactly one complete
//!   MessagePack value (decoded independently with `rmpv`), and the values take at most
//!   [`FRAME_MAX_STATE`] bytes in all;
//! * it seals again (or is refused as too large for the cookie budget or the maximum state) and
//!   the new token opens to the same id and values.
//!
//! The codec's maximum state is [`FRAME_MAX_STATE`] (4 KiB, not the default 64 KiB): small
//! enough that frames of the fuzzer's lengths can exceed it, so the limit itself is tested,
//! and decompression bombs stay cheap to run.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use sealed_session::format::{HEADER_LEN, MAC_LEN};
use sealed_session::{
    Key, KeyRing, Lifetime, MAX_KEY_LEN, Mode, SealError, Session, SessionCodec, SessionConfig,
};

use crate::{Entropy, KEY, NOW_SECS, Snapshot, fixture, now};

/// The maximum state of the frame codec, in bytes.
pub const FRAME_MAX_STATE: usize = 4096;

/// The frame codec's idle timeout and clock skew (set explicitly: the checks rely on them).
const IDLE: Duration = Duration::from_secs(30 * 60);
const SKEW: Duration = Duration::from_secs(60);

static CODEC: LazyLock<SessionCodec> = LazyLock::new(|| {
    let config = SessionConfig::builder("session")
        .mode(Mode::Signed)
        .max_state_size(FRAME_MAX_STATE)
        .idle_timeout(IDLE)
        .clock_skew(SKEW)
        .build()
        .expect("valid");
    SessionCodec::new(config, KeyRing::single(Key::from_bytes(KEY)))
});

/// The codec frames are decoded (and resealed) with: signed mode, so a resealed token's frame
/// is in the clear, and a maximum state of [`FRAME_MAX_STATE`].
pub fn frame_codec() -> &'static SessionCodec {
    &CODEC
}

/// The frames of the fixture's signed-mode sessions (a signed token is `header || frame ||
/// HMAC`, so the frame is in the clear), by session name: real frames, with a sensitive
/// section, a compressed body, and a body too large for one cookie.
pub fn known_frames() -> Vec<(&'static str, Vec<u8>)> {
    let signed = fixture().subjects.iter().find(|s| s.label == "signed").expect("signed subject");
    signed.known.iter().map(|known| (known.name, frame_of(&known.chunks.concat()))).collect()
}

/// The frame inside a signed-mode token (its chunks joined).
pub fn frame_of(signed_token: &str) -> Vec<u8> {
    let token = BASE64.decode(signed_token).expect("a token is base64url");
    token[HEADER_LEN..token.len() - MAC_LEN].to_vec()
}

/// Decodes `frame` and asserts the invariants in the module docs.
pub fn check_frame(frame: &[u8]) {
    let codec = frame_codec();
    let session = match codec.__fuzz_decode_frame(frame, now()) {
        Ok(session) => session,
        Err(reason) => {
            let _ = reason.to_string();
            return;
        }
    };
    let id = session.id().expect("a decoded frame has an id");
    let secs = |time: Option<SystemTime>| {
        time.expect("a decoded frame has times").duration_since(UNIX_EPOCH).expect("after 1970")
    };
    let issued = secs(session.issued_at());
    let refresh = secs(session.last_refresh());
    let expires = secs(session.expires_at());
    let now = Duration::from_secs(NOW_SECS);
    assert!(issued <= now + SKEW, "issued in the future");
    assert!(now <= expires.saturating_add(SKEW), "past its absolute expiry");
    let idle = match session.lifetime() {
        Lifetime::Idle(own) => Some(own),
        Lifetime::Until(_) => None,
        _ => Some(IDLE),
    };
    if let Some(idle) = idle {
        assert!(now <= refresh.saturating_add(idle.saturating_add(SKEW)), "past its idle expiry");
    }
    assert!(issued <= refresh && issued <= expires, "times out of order");

    let mut total = 0;
    for key in session.keys() {
        assert!(key.len() <= MAX_KEY_LEN, "a key of {} bytes", key.len());
        let raw = session.get_raw(key).expect("a listed key has a value");
        total += raw.len();
        let mut rest = raw;
        if let Err(error) = rmpv::decode::read_value(&mut rest) {
            panic!("value {key:?} is not MessagePack: {error}");
        }
        assert!(rest.is_empty(), "value {key:?} has {} trailing bytes", rest.len());
        // Typed reads may fail (ext types, invalid UTF-8), never panic.
        let _ = session.get::<rmpv::Value>(key);
    }
    assert!(total <= FRAME_MAX_STATE, "values take {total} bytes, more than the maximum state");

    reseal(codec, session, id);
}

/// What was decoded can be written back, and reads back the same.
fn reseal(codec: &SessionCodec, mut session: Session, id: sealed_session::SessionId) {
    let before = Snapshot::of(&session).as_sealed_by(codec).values;
    let mut entropy = Entropy::new(u64::from(id.0[0]));
    match codec.seal_with(&mut session, now(), &mut |buf| entropy.fill(buf)) {
        Ok(set_cookies) => {
            let header = set_cookies.request_header();
            if header.is_empty() {
                // Every cookie got `Max-Age=0`: only right for a session with no time left
                // (opened within the clock skew past its absolute end).
                assert!(
                    session.expires_at() <= Some(now()),
                    "a reseal with time left sent no cookie"
                );
                return;
            }
            let reopened = codec.open(&header, now());
            let reopened = reopened.expect("a decoded session, resealed, opens");
            assert_eq!(reopened.id(), Some(id), "reseal changed the id");
            assert_eq!(Snapshot::of(&reopened).values, before, "reseal changed the values");
        }
        Err(
            SealError::TooLarge { .. }
            | SealError::TooManyCookies { .. }
            | SealError::StateTooLarge { .. },
        ) => {}
        Err(error) => panic!("resealing a decoded session failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs the fuzzer found, kept so that they stay fixed (`regressions/`).
    #[test]
    fn regressions_check() {
        // A frame whose ordinary section holds `axum-login.data`, a key every configuration
        // makes sensitive: resealed, it moves to the sensitive section, which the reseal
        // invariant must expect rather than call a change.
        let frame = include_bytes!("../regressions/decode_frame-default-sensitive-key");
        check_frame(frame);
        // A session opened at its absolute end (within the skew), with a lifetime of its own:
        // resealed, its cookies get `Max-Age=0` (no time left), which a browser drops, so
        // the reseal does not read back, as designed; the invariant expects that.
        check_frame(include_bytes!("../regressions/decode_frame-own-idle-empty"));
        // A frame with an idle timeout of its own near 2^64 - 1 seconds, which FORMAT.md lets
        // a decoder accept (only the encoder bounds it): the invariant's own sum overflowed.
        check_frame(include_bytes!("../regressions/decode_frame-own-idle-near-max"));
    }

    #[test]
    fn known_frames_decode_to_their_sessions() {
        let signed = fixture().subjects.iter().find(|s| s.label == "signed").unwrap();
        for ((name, frame), known) in known_frames().iter().zip(&signed.known) {
            let session = frame_codec().__fuzz_decode_frame(frame, now()).expect(name);
            assert_eq!(Snapshot::of(&session).values, known.snapshot.values, "{name}");
            assert_eq!(session.id(), known.snapshot.id, "{name}");
            check_frame(frame);
        }
        check_frame(&[]);
        check_frame(&[0xff; 40]);
    }

    /// A frame around `body` (and `sensitive`), issued at [`now`], valid for an hour.
    fn frame(body: &[u8], sensitive: Option<&[u8]>) -> Vec<u8> {
        let varint = |mut value: u64, out: &mut Vec<u8>| {
            while value >= 0x80 {
                out.push((value as u8) | 0x80);
                value >>= 7;
            }
            out.push(value as u8);
        };
        let mut frame = vec![if sensitive.is_some() { 0b10 } else { 0 }];
        varint(NOW_SECS, &mut frame);
        varint(0, &mut frame);
        varint(3600, &mut frame);
        frame.extend_from_slice(&[9; 16]);
        if let Some(sensitive) = sensitive {
            varint(body.len() as u64, &mut frame);
            frame.extend_from_slice(body);
            frame.extend_from_slice(sensitive);
        } else {
            frame.extend_from_slice(body);
        }
        frame
    }

    /// A one-entry map `{key: "x" * len}`.
    fn map(key: &str, len: u16) -> Vec<u8> {
        let mut out = vec![0x81, 0xda];
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.push(0xda);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(b'x', usize::from(len)));
        out
    }

    #[test]
    fn frames_past_the_limits_are_refused() {
        // Found by this target's invariants on hand-built frames: keys over 255 bytes, and an
        // uncompressed state over the maximum, used to decode.
        let decode = |frame: &[u8]| frame_codec().__fuzz_decode_frame(frame, now()).map(|_| ());
        assert_eq!(decode(&frame(&map("k", 10), None)), Ok(()));
        assert!(decode(&frame(&map(&"k".repeat(256), 10), None)).is_err());
        assert!(decode(&frame(&map("a", 5000), None)).is_err());
        assert!(decode(&frame(&map("a", 2500), Some(&map("b", 2500)))).is_err());
        assert_eq!(decode(&frame(&map("a", 2000), Some(&map("b", 2000)))), Ok(()));
        for frame in [frame(&map(&"k".repeat(256), 10), None), frame(&map("a", 5000), None)] {
            check_frame(&frame);
        }
    }

    #[test]
    fn far_future_times_do_not_panic() {
        // Found by this target: a last refresh past what `SystemTime` can hold made
        // `Session::last_refresh` panic ("overflow when adding duration to instant").
        const CRASH: &str = "0280a4a5da06ffa3ffffffffffffff00c0d1022f537eddbfbc789864f6e7ffff1ff2c31782a4\
                             726f6c65a561646d696ea465727375a5678e9e9ca081a463737266ac5a133476596d46\
                             79726f6c65";
        let bytes: Vec<u8> = (0..CRASH.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&CRASH[i..i + 2], 16).unwrap())
            .collect();
        assert!(frame_codec().__fuzz_decode_frame(&bytes, now()).is_ok());
        check_frame(&bytes);
    }
}
