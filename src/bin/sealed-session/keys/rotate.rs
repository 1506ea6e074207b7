//! `keys rotate`: add a key that starts sealing later.

use std::time::{Duration, SystemTime};

use clap::Args;
use sealed_session::{Key, KeyId};

use super::{FileArg, LockArg};
use crate::failure::{Failure, Kind};
use crate::{output, ring_file};

/// The default delay before a new key seals, as text for clap.
const DEFAULT_ACTIVATE_IN: &str = "1h";

/// Add a new key that starts sealing after --activate-in.
///
/// The key gets the next id (the largest id + 1). It opens sessions at once, on every node that
/// has the new file, and starts sealing only after --activate-in: roll the file out to every
/// node within that time, so that no node ever receives a session sealed with a key it does not
/// have yet.
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct RotateArgs {
    #[command(flatten)]
    file: FileArg,

    #[command(flatten)]
    lock: LockArg,

    /// How long until the new key starts sealing. The default, 1h, leaves a rolling deploy
    /// (or file watchers, secret stores and config caches) ample time to bring the new ring to
    /// every node, and still finishes a rotation within the hour. `0s` activates the key at
    /// once: nodes without it yet will reject (log out) sessions sealed with it.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_ACTIVATE_IN)]
    activate_in: humantime::Duration,
}

/// Runs `keys rotate`.
///
/// # Errors
///
/// Key ring (3) when the file cannot be loaded, refused (4) when the ids are exhausted, I/O (5)
/// when it cannot be written.
pub fn run(args: RotateArgs) -> Result<(), Failure> {
    let path = &args.file.file;
    let delay: Duration = *args.activate_in;
    // Read, change and write under one lock, so that concurrent rotations each add their key.
    let lock = ring_file::lock(path, *args.lock.lock_timeout)?;
    let now = SystemTime::now();
    let mut ring = ring_file::load(path, now)?;
    let activates_at = now.checked_add(delay).ok_or_else(|| {
        Failure::new(
            Kind::Usage,
            format!("--activate-in {} is too far in the future", args.activate_in),
        )
    })?;
    let largest = ring.keys().map(|key| key.id.0).max().unwrap_or(0);
    let id = largest.checked_add(1).map(KeyId).ok_or_else(|| {
        Failure::new(Kind::Refused, "key ids are exhausted (the largest id is 4294967295)")
    })?;
    ring.insert(id, Key::generate(), now, activates_at)
        .map_err(|error| Failure::new(Kind::Refused, error.to_string()))?;
    ring_file::write(path, &lock, &ring)?;
    let when = if ring.current_id(now) == Some(id) {
        "current now".to_owned()
    } else {
        format!("opens now, seals from {}", output::rfc3339(activates_at))
    };
    output::print(&format!("added key {id} to {}: {when}\n", path.display()))
}
