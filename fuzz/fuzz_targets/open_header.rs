//! Arbitrary bytes as Cookie header values: `open` must never panic and never accept a token
//! the fixture did not seal (see `src/lib.rs` for every invariant).
//!
//! The bytes are passed as they are, as servers pass them (bytes outside visible ASCII, UTF-8
//! or not, included). Each line is one Cookie header value: a single UTF-8 line goes through
//! `open`, anything else through `open_headers`, as HTTP/2 may split a request's cookies. The seed corpus (`seeds/open_header/`) holds the known sessions'
//! headers, so mutations start from valid tokens.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        sealed_session_fuzz::fixture();
    },
    |data: &[u8]| {
        let headers: Vec<&[u8]> = data.split(|&byte| byte == b'\n').collect();
        sealed_session_fuzz::check(&headers);
    }
);
