//! Where nonces and session ids come from.
//!
//! Every seal draws a 24-byte nonce (and a new session a 16-byte id, in the same draw). By
//! default each draw is one call to the operating system's generator (`getrandom`): about
//! 0.5 µs per seal on the benchmark machine (0.38 to 0.56 µs; 2-core AMD EPYC VM, Debian 12,
//! glibc 2.36: a system call), under 5% of a write request through a server, and far less
//! where glibc 2.41 and Linux 6.11 answer `getrandom` from the vDSO. That is the only choice
//! that stays safe when the process's memory is copied after it has drawn:
//!
//! - **`fork` without `exec`**: parent and child share no generator state, because there is
//!   none in the process; the kernel's generator answers each of them afresh.
//! - **A virtual machine snapshot restored more than once**: the kernel reseeds its generator
//!   when the hypervisor signals the restore (the VM generation ID device, Linux 5.18 and
//!   later; the vDSO path tracks the same generation). Without that device, or on older
//!   kernels, nothing inside the guest can tell a restored copy from the original: see
//!   SECURITY.md, "Where nonces come from".
//!
//! [`Randomness::ThreadLocal`], the thread's ChaCha12 generator (`rand::rng()`, reseeded from
//! the operating system after every 64 KiB), spares that call but repeats nonces in both copies
//! after a `fork` or a restored snapshot: `rand` 0.9 and later dropped the fork check that 0.8's
//! `ThreadRng` had. It is for processes that do neither, and is never the default.

use rand::Rng as _;

use crate::error::SealError;

/// The source of nonces and session ids (see
/// [`SessionConfigBuilder::randomness`](crate::SessionConfigBuilder::randomness)).
///
/// # Examples
///
/// ```
/// use sealed_session::{Randomness, SessionConfig};
///
/// // The default asks the operating system for every draw: safe after `fork`.
/// let config = SessionConfig::builder("session").build()?;
/// assert_eq!(config.randomness(), Randomness::Os);
/// # Ok::<(), sealed_session::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Randomness {
    /// The operating system's generator for every draw (one `getrandom` call per seal, a new
    /// session's id included). The default: safe after `fork`, and after a VM snapshot is
    /// restored as far as the kernel can tell (see the module docs).
    #[default]
    Os,
    /// The thread's ChaCha12 generator, seeded from the operating system and reseeded after
    /// every 64 KiB: no system call per seal.
    ///
    /// **Warning**: a process that calls `fork` without `exec` after sealing, or a VM snapshot
    /// restored more than once, gives two processes the same generator state, so both seal
    /// with the same nonces and draw the same session ids; a nonce repeated under one key
    /// breaks AES-GCM's authentication. Choose it only for a process that does neither.
    ThreadLocal,
}

/// Fills `buf` with random bytes from `source`.
pub(crate) fn fill(source: Randomness, buf: &mut [u8]) -> Result<(), SealError> {
    match source {
        Randomness::ThreadLocal => {
            rand::rng().fill_bytes(buf);
            Ok(())
        }
        Randomness::Os => getrandom::fill(buf).map_err(SealError::Random),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_draws_distinct_values() {
        for source in [Randomness::ThreadLocal, Randomness::Os] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..1000 {
                let mut nonce = [0u8; 24];
                fill(source, &mut nonce).expect("draws");
                assert!(seen.insert(nonce), "{source:?} repeated a nonce");
            }
        }
    }
}
