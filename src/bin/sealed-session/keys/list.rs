//! `keys list`: the ring's keys and their states, never their secrets.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use clap::Args;
use serde_json::json;

use sealed_session::{KeyInfo, KeyRing};

use super::{FileArg, TimeoutArg};
use crate::failure::Failure;
use crate::{output, ring_file};

/// Show each key's id, state and dates, and when old keys are safe to retire. No secrets.
///
/// Times are RFC 3339, UTC. An old key is safe to retire once its successor's activation is an
/// absolute timeout plus twice the clock skew old: every session sealed with it has expired by
/// then, on every server (`keys retire` refuses it before that without `--force`).
///
/// States: `current` seals (and opens); `pending` opens, and seals from its activation time;
/// `accepted` only opens what was sealed before a newer key took over.
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct ListArgs {
    #[command(flatten)]
    file: FileArg,

    #[command(flatten)]
    timeout: TimeoutArg,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A key's role at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Activates later; opens now.
    Pending,
    /// Seals and opens.
    Current,
    /// Superseded; opens only.
    Accepted,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Current => "current",
            State::Accepted => "accepted",
        }
    }
}

/// What `list` shows of one key.
#[derive(Debug, Clone, Copy)]
pub struct KeyStatus {
    /// Id and times.
    pub info: KeyInfo,
    /// Its role now.
    pub state: State,
    /// For an accepted key: when its successor's activation is an absolute timeout plus twice
    /// the clock skew old, so every session it sealed has expired; `None` (never) when that is
    /// past the last time a `SystemTime` holds. `None` for the current and pending keys.
    pub safe_to_retire_at: Option<SystemTime>,
}

/// The status of every key of `ring` at `now`, in the file's order; an old key is safe to
/// retire `retire_after` (see [`TimeoutArg::retire_after_for`]) after its successor's
/// activation.
pub fn statuses(ring: &KeyRing, now: SystemTime, retire_after: Duration) -> Vec<KeyStatus> {
    let current = ring.current_id(now);
    // The order in which keys take over sealing: the library's rule for the current key is
    // "the greatest (activation, creation, id) that has activated".
    let mut by_activation: Vec<KeyInfo> = ring.keys().collect();
    by_activation.sort_by_key(|key| (key.activates_at, key.created_at, key.id));
    ring.keys()
        .map(|info| {
            let state = if Some(info.id) == current {
                State::Current
            } else if info.activates_at > now {
                State::Pending
            } else {
                State::Accepted
            };
            let safe_to_retire_at = (state == State::Accepted)
                .then(|| {
                    let position = by_activation.iter().position(|key| key.id == info.id)?;
                    let successor = by_activation.get(position + 1)?;
                    successor.activates_at.checked_add(retire_after)
                })
                .flatten();
            KeyStatus { info, state, safe_to_retire_at }
        })
        .collect()
}

/// Runs `keys list`.
///
/// # Errors
///
/// Key ring (3) when the file cannot be loaded; I/O (5) when stdout fails.
pub fn run(args: ListArgs) -> Result<(), Failure> {
    let now = SystemTime::now();
    let ring = ring_file::load(&args.file.file, now)?;
    let retire_after = args.timeout.retire_after_for(&ring)?;
    let statuses = statuses(&ring, now, retire_after);
    let text = if args.json {
        as_json(&statuses, now, &args.timeout, retire_after)
    } else {
        as_table(&statuses, &args.timeout, ring.schedule().is_some() && !args.timeout.given())
    };
    output::print(&text)
}

fn as_json(
    statuses: &[KeyStatus],
    now: SystemTime,
    times: &TimeoutArg,
    retire_after: Duration,
) -> String {
    let (timeout, skew) = (times.absolute_timeout(), times.clock_skew());
    let keys: Vec<_> = statuses
        .iter()
        .map(|status| {
            json!({
                "id": status.info.id.0,
                "id_hex": status.info.id.to_string(),
                "state": status.state.name(),
                "created_at": output::rfc3339(status.info.created_at),
                "activates_at": output::rfc3339(status.info.activates_at),
                "safe_to_retire_at": status.safe_to_retire_at.map(output::rfc3339),
                "safe_to_retire_now": status.safe_to_retire_at.is_some_and(|at| at <= now),
            })
        })
        .collect();
    let listing = json!({
        "now": output::rfc3339(now),
        "absolute_timeout": output::duration(timeout),
        "absolute_timeout_secs": timeout.as_secs(),
        "clock_skew": output::duration(skew),
        "clock_skew_secs": skew.as_secs(),
        "retire_after_secs": retire_after.as_secs(),
        "keys": keys,
    });
    let mut text = serde_json::to_string_pretty(&listing).unwrap_or_default();
    text.push('\n');
    text
}

/// `by_schedule`: the retirement shown is the schedule's.
fn as_table(statuses: &[KeyStatus], times: &TimeoutArg, by_schedule: bool) -> String {
    let mut text = format!(
        "{:<8}  {:<8}  {:<20}  {:<20}  {}\n",
        "ID", "STATE", "CREATED", "ACTIVATES", "SAFE TO RETIRE FROM"
    );
    for status in statuses {
        let retire = match status.state {
            State::Accepted => status.safe_to_retire_at.map_or("never".to_owned(), output::rfc3339),
            State::Current => "-  (current key)".to_owned(),
            State::Pending => "-".to_owned(),
        };
        let _ = writeln!(
            text,
            "{:<8}  {:<8}  {:<20}  {:<20}  {retire}",
            status.info.id.to_string(),
            status.state.name(),
            output::rfc3339(status.info.created_at),
            output::rfc3339(status.info.activates_at),
        );
    }
    if by_schedule {
        let _ =
            writeln!(text, "(retirement from the schedule's policy: keys retire by themselves)");
    } else if statuses.iter().any(|status| status.state == State::Accepted) {
        let _ = writeln!(
            text,
            "(safe to retire = successor's activation + absolute timeout {} + 2 x clock skew {})",
            output::duration(times.absolute_timeout()),
            output::duration(times.clock_skew())
        );
    }
    text
}
