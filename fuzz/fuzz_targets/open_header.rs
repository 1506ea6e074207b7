//! Arbitrary bytes as Cookie header values: `open` must never panic and never accept a token
//! the fixture did not seal (see `src/lib.rs` for every invariant).
//!
//! The bytes are read as lossy UTF-8 (the API takes `&str`). Each line is one Cookie header
//! value: a single line goes through `open`, several through `open_headers`, as HTTP/2 may
//! split a request's cookies. The seed corpus (`seeds/open_header/`) holds the known sessions'
//! headers, so mutations start from valid tokens.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        sealed_session_fuzz::fixture();
    },
    |data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let headers: Vec<&str> = text.split('\n').collect();
        sealed_session_fuzz::check(&headers);
    }
);
