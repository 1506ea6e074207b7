//! Arbitrary bytes as a key ring file's JSON and as the key ring's environment value: parsing
//! never panics, errors never show a secret, and a ring that loads survives export (see
//! `src/keyring.rs` for every invariant). The seed corpus (`seeds/keyring_file/`) holds a real
//! ring file and its environment value.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sealed_session_fuzz::keyring::check_keyring(data);
});
