//! Where nonces and session ids come from.
//!
//! Every seal draws a 24-byte nonce (and a new session a 16-byte id). Asking the operating
//! system for each draw is one `getrandom` system call, about 0.45 µs on the benchmark machine:
//! a tenth of sealing a small session. By default the draws come from the thread's
//! ChaCha12 generator (`rand::rng()`), seeded from the operating system and reseeded from it
//! after every 64 KiB of output, as the `cookie` crate's private jar does for its nonces.
//!
//! The one case that generator does not cover is a copy of the process's memory going on
//! twice: a `fork` after the thread has drawn, or a virtual machine snapshot restored more than
//! once. Both copies would then draw the same nonces until the next reseed, and a repeated
//! nonce under one key breaks AES-GCM's authentication. A deployment that does either chooses
//! [`Randomness::Os`], which asks the operating system for every draw.

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
/// // A server that forks workers after start, or runs from a restored VM snapshot.
/// let config = SessionConfig::builder("session").randomness(Randomness::Os).build()?;
/// assert_eq!(config.randomness(), Randomness::Os);
/// # Ok::<(), sealed_session::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Randomness {
    /// The thread's ChaCha12 generator, seeded from the operating system and reseeded after
    /// every 64 KiB. The default: no system call per seal.
    #[default]
    ThreadLocal,
    /// The operating system's generator for every draw (one `getrandom` call per seal). For
    /// processes whose memory may be duplicated after start: `fork` without `exec`, or a VM
    /// snapshot restored more than once.
    Os,
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
