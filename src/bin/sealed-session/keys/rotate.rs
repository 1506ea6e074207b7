//! `keys rotate`: add a key that starts sealing later.

use std::time::{Duration, SystemTime};

use clap::Args;
use std::path::Path;

use sealed_session::keys::file::{Due, due_at, read_file};
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

    /// For cron, a systemd timer or a CronJob, on a ring with a schedule (`keys schedule`):
    /// do what the policy says is due and nothing else. Derived keys need no write (every node
    /// derives them), so this only drops hand-made keys the policy has retired, and prints the
    /// ring's state. Idempotent, safe from every node at once; exit 0 when nothing was due.
    #[arg(long, conflicts_with = "activate_in")]
    if_due: bool,
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
    if args.if_due {
        return if_due(path, &lock, now);
    }
    let mut ring = ring_file::load(path, now)?;
    let activates_at = now.checked_add(delay).ok_or_else(|| {
        Failure::new(
            Kind::Usage,
            format!("--activate-in {} is too far in the future", args.activate_in),
        )
    })?;
    // The largest hand-made id + 1, past the schedule's block if it falls in it: one id,
    // one secret.
    let largest = ring.keys().filter(|key| !ring.is_derived(key.id)).map(|key| key.id.0).max();
    let mut next = largest.unwrap_or(0).checked_add(1);
    if let (Some(id), Some(schedule)) = (next, ring.schedule())
        && schedule.owns(KeyId(id))
    {
        next = schedule.id_base().0.checked_add(sealed_session::keys::schedule::MAX_PERIODS);
    }
    let id = next.map(KeyId).ok_or_else(|| {
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

/// `keys rotate --if-due`: drops the hand-made keys the schedule's policy has retired (the ring
/// at `now` no longer holds them) and prints the state.
fn if_due(path: &Path, lock: &ring_file::RingLock, now: SystemTime) -> Result<(), Failure> {
    // Loaded first for its warnings (checksum, directory), then read again, with the same
    // checks, into a buffer sized once and wiped (the text holds every secret), and evaluated.
    ring_file::load(path, now)?;
    let text = read_file(path)?;
    let Due { ring, retired, .. } = due_at(&text, now)?;
    let Some(schedule) = ring.schedule() else {
        return Err(Failure::new(
            Kind::Refused,
            format!(
                "{} has no schedule, so nothing is ever due: run `keys schedule` first",
                path.display()
            ),
        ));
    };
    let retired: Vec<String> = retired.iter().map(ToString::to_string).collect();
    let current = ring.current_id(now).map_or("none".to_owned(), |id| id.to_string());
    let next = ring
        .keys()
        .filter(|key| key.activates_at > now)
        .min_by_key(|key| key.activates_at)
        .map_or(String::new(), |key| {
            format!(", next {} seals from {}", key.id, output::rfc3339(key.activates_at))
        });
    let period =
        schedule.period_at(now).map_or("before period 0".to_owned(), |n| format!("period {n}"));
    if retired.is_empty() {
        return output::print(&format!(
            "nothing due in {}: current key {current} ({period}){next}\n",
            path.display()
        ));
    }
    ring_file::write(path, lock, &ring)?;
    output::print(&format!(
        "retired key(s) {} from {}: current key {current} ({period}){next}\n",
        retired.join(", "),
        path.display()
    ))
}
