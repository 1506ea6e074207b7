//! Arbitrary bytes as an authenticated frame, decoded by `SessionCodec::__fuzz_decode_frame`:
//! decompression and the MessagePack walk must stay within their bounds, and what decodes must
//! be a well-formed session that seals and opens again (see `src/frame.rs` for every
//! invariant). The seed corpus (`seeds/decode_frame/`) holds the fixture's real frames.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        sealed_session_fuzz::frame::frame_codec();
    },
    |data: &[u8]| {
        sealed_session_fuzz::frame::check_frame(data);
    }
);
