//! `keys retire`: remove a key.

use std::time::{Duration, SystemTime};

use clap::Args;
use sealed_session::KeyId;

use super::list::{State, statuses};
use super::{FileArg, LockArg, TimeoutArg};
use crate::failure::{Failure, Kind};
use crate::{output, ring_file};

/// How long before a pending key's activation, on top of the clock skew, it may still be
/// retired without --force: the ring without it must reach every node before the key seals, or
/// the nodes still holding the old ring seal sessions with it that the others reject. Well under
/// `keys rotate`'s default --activate-in (1h, "ample time" for the new ring to reach every node),
/// so a rotation just made can be undone.
const PROPAGATION_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Remove a key; sessions sealed with it are rejected from then on.
///
/// Retire an old key once `keys list` says it is safe: its successor's activation plus the
/// absolute timeout plus twice the clock skew (on a ring with a schedule, unless the options are
/// given, the schedule's retirement, as `keys list` shows). Before that it may still open live
/// sessions, whose users would be logged out, so it is refused without `--force` (as after a
/// leak). A pending key within the clock skew plus 10 minutes of its activation (a server whose
/// clock runs ahead, or which the new ring has not reached yet, may be sealing with it) is
/// refused likewise. The current key and the last key are always refused, and so is
/// a key the ring's schedule derives (replace its root with `keys schedule` instead).
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct RetireArgs {
    #[command(flatten)]
    file: FileArg,

    #[command(flatten)]
    lock: LockArg,

    #[command(flatten)]
    timeout: TimeoutArg,

    /// The key's id: decimal (`3`), `0x`-prefixed hexadecimal, or exactly eight hexadecimal
    /// digits as `keys list` and the library's logs show it (`00000003`).
    #[arg(value_name = "ID", value_parser = parse_key_id)]
    id: KeyId,

    /// Retire the key even though sessions sealed with it may still be live (they will be
    /// rejected): the emergency runbook after a key leaked.
    #[arg(long)]
    force: bool,
}

/// Parses a key id as the help of [`RetireArgs::id`] describes.
fn parse_key_id(text: &str) -> Result<KeyId, String> {
    let text = text.trim();
    let parsed = if let Some(hex) = text.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else if text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(text, 16)
    } else {
        text.parse::<u32>()
    };
    parsed.map(KeyId).map_err(|_| {
        format!("{text:?} is not a key id (decimal, 0x-hexadecimal, or eight hexadecimal digits)")
    })
}

/// Runs `keys retire`.
///
/// # Errors
///
/// Key ring (3) when the file cannot be loaded, refused (4) for the current, the last, a
/// derived or an unknown key, or without `--force` one that may still open live sessions; I/O (5) when it
/// cannot be written.
pub fn run(args: RetireArgs) -> Result<(), Failure> {
    let path = &args.file.file;
    let id = args.id;
    let lock = ring_file::lock(path, *args.lock.lock_timeout)?;
    let now = SystemTime::now();
    let mut ring = ring_file::load(path, now)?;
    let refuse = |why: String| Err(Failure::new(Kind::Refused, why));
    // A derived key is not in the file: every node derives it from the schedule's root, so no
    // write can take it out of service. Only a new root can.
    if ring.is_derived(id) {
        return refuse(format!(
            "key {id} is derived from the schedule's root (every node derives it by itself), so \
             it cannot be retired alone; replace the root: `keys schedule --new-root` (staged), \
             or after a leak `keys schedule --emergency` (at once; sessions under the old root \
             are rejected)"
        ));
    }
    let retire_after = args.timeout.retire_after_for(&ring)?;
    let Some(status) = statuses(&ring, now, retire_after).into_iter().find(|s| s.info.id == id)
    else {
        return refuse(format!("no key {id} in {}", path.display()));
    };
    if ring.len() == 1 {
        return refuse(format!("key {id} is the last key of the ring; refusing to retire it"));
    }
    if status.state == State::Current {
        return refuse(format!(
            "key {id} is the current key (it seals new sessions); rotate first, and retire it \
             once `keys list` says it is safe"
        ));
    }
    // Why sessions sealed with the key may be live now (`None`: none can be).
    let live = match status.state {
        State::Accepted => match status.safe_to_retire_at {
            Some(safe) if safe <= now => None,
            Some(safe) => Some(format!(
                "may be live until {} (keys list: safe to retire)",
                output::rfc3339(safe)
            )),
            // The safe time is past the end of time: never safe, not "nothing live".
            None => Some("may be live for ever by these timeouts (keys list: never)".to_owned()),
        },
        State::Pending => {
            let skew = args.timeout.clock_skew();
            let sealing_soon = skew
                .checked_add(PROPAGATION_MARGIN)
                .and_then(|margin| now.checked_add(margin))
                .is_none_or(|ahead| status.info.activates_at <= ahead);
            sealing_soon.then(|| {
                format!(
                    "may exist soon or already: it activates at {}, within the clock skew ({}) \
                     plus {} for the new ring to reach every node; a server whose clock runs \
                     ahead, or which still has the old ring then, seals with it",
                    output::rfc3339(status.info.activates_at),
                    output::duration(skew),
                    output::duration(PROPAGATION_MARGIN)
                )
            })
        }
        State::Current => None,
    };
    if let Some(live) = live {
        if !args.force {
            return refuse(format!(
                "sessions sealed with key {id} {live}; retiring it now logs their users out. \
                 Wait, or pass --force (after a leak)"
            ));
        }
        eprintln!("warning: --force: sessions sealed with key {id} {live}; they will be rejected");
    }
    if !ring.remove(id) {
        return refuse(format!("key {id} could not be removed; {} is unchanged", path.display()));
    }
    ring_file::write(path, &lock, &ring)?;
    output::print(&format!("retired key {id} from {}\n", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_parse_in_every_form_the_tool_shows() {
        for (text, id) in [("3", 3), ("00000003", 3), ("0000000a", 10), ("0x1f", 31), ("10", 10)] {
            assert_eq!(parse_key_id(text), Ok(KeyId(id)), "{text}");
        }
        for text in ["", "-1", "0xg", "4294967296", "abc"] {
            assert!(parse_key_id(text).is_err(), "{text}");
        }
    }
}
