//! Structured input (`arbitrary`): a session state (string keys to nested values, some
//! sensitive) and the settings to seal it with (mode, Set-Cookie line limit, compression).
//! Sealed then opened, it must come back exactly, or be refused as too large when sealed:
//! never a token that fails to open (see `src/roundtrip.rs` for every invariant).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_session_fuzz::roundtrip::{Input, check_roundtrip};

fuzz_target!(|input: Input| {
    check_roundtrip(&input);
});
