//! `keys`: the key ring file's life cycle. One module per subcommand.

mod export;
mod init;
mod list;
mod retire;
mod rotate;
mod schedule;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use sealed_session::{KeyRing, SessionConfig};

use crate::failure::{Failure, Kind};
use crate::output;

/// The `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    Init(init::InitArgs),
    Rotate(rotate::RotateArgs),
    List(list::ListArgs),
    Retire(retire::RetireArgs),
    Export(export::ExportArgs),
    Schedule(schedule::ScheduleArgs),
}

/// The key ring file option every `keys` subcommand takes.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The key ring file (JSON, mode 0600). Writers also use FILE.lock and FILE.tmp beside it.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

/// How long a writer waits for another writer's lock, as text for clap.
const DEFAULT_LOCK_TIMEOUT: &str = "10s";

/// The lock options of the commands that write the ring.
#[derive(Debug, Args)]
pub struct LockArg {
    /// How long to wait for the lock (FILE.lock) while another `keys` command writes the ring;
    /// past it, fail (exit 5) with the ring unchanged.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_LOCK_TIMEOUT)]
    pub lock_timeout: humantime::Duration,
}

/// The servers' absolute timeout and clock skew, for telling when an old key is safe to retire.
///
/// Without either option, a ring with a schedule is judged by the schedule's own retirement
/// (its policy's `retire_after`), and a ring without one by the library's defaults.
#[derive(Debug, Args)]
pub struct TimeoutArg {
    /// The servers' absolute session timeout [default: the library's, 12h]. An old key is safe
    /// to retire once its successor has been sealing for this long plus twice the clock skew:
    /// every session sealed with it has expired by then, on every server. On a ring with a
    /// schedule, without this option or --clock-skew, the schedule's retirement counts instead.
    #[arg(long, value_name = "DURATION")]
    pub absolute_timeout: Option<humantime::Duration>,

    /// The servers' allowed clock skew (`SessionConfigBuilder::clock_skew`): a session is
    /// still accepted this long after its absolute expiry [default: the library's, 1m].
    #[arg(long, value_name = "DURATION")]
    pub clock_skew: Option<humantime::Duration>,
}

impl TimeoutArg {
    /// The absolute timeout given, or the library's default.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout.map_or_else(|| SessionConfig::default().absolute_timeout(), |d| *d)
    }

    /// The clock skew given, or the library's default.
    pub fn clock_skew(&self) -> Duration {
        self.clock_skew.map_or_else(|| SessionConfig::default().clock_skew(), |d| *d)
    }

    /// How long after its successor's activation an old key of `ring` may still open live
    /// sessions: `keys list`'s "safe to retire" and what `keys retire` waits for. On a ring
    /// with a schedule, unless an option is given, the schedule's retirement (keys leave the
    /// ring by themselves then); otherwise [`retire_after`] of the options.
    ///
    /// # Errors
    ///
    /// Usage (2) when the options add up past the largest duration.
    pub fn retire_after_for(&self, ring: &KeyRing) -> Result<Duration, Failure> {
        match ring.schedule() {
            Some(schedule) if !self.given() => Ok(schedule.policy().retire_after),
            _ => retire_after(self.absolute_timeout(), self.clock_skew()),
        }
    }

    /// Whether --absolute-timeout or --clock-skew was given.
    pub fn given(&self) -> bool {
        self.absolute_timeout.is_some() || self.clock_skew.is_some()
    }
}

/// The absolute timeout plus twice the clock skew (the rotation runbook's "safe to retire"),
/// the scheduled rotation's own retirement
/// ([`RotationPolicy::for_sessions`](sealed_session::RotationPolicy::for_sessions), which says
/// why twice), checked.
///
/// # Errors
///
/// Usage (2) when it passes the largest duration.
pub fn retire_after(absolute_timeout: Duration, clock_skew: Duration) -> Result<Duration, Failure> {
    clock_skew.checked_mul(2).and_then(|twice| absolute_timeout.checked_add(twice)).ok_or_else(
        || {
            Failure::new(
                Kind::Usage,
                format!(
                    "--absolute-timeout {} plus twice --clock-skew {} is longer than any duration",
                    output::duration(absolute_timeout),
                    output::duration(clock_skew)
                ),
            )
        },
    )
}

/// Runs a `keys` subcommand.
///
/// # Errors
///
/// The subcommand's [`Failure`].
pub fn run(command: KeysCommand) -> Result<(), Failure> {
    match command {
        KeysCommand::Init(args) => init::run(args),
        KeysCommand::Rotate(args) => rotate::run(args),
        KeysCommand::List(args) => list::run(args),
        KeysCommand::Retire(args) => retire::run(args),
        KeysCommand::Export(args) => export::run(args),
        KeysCommand::Schedule(args) => schedule::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The help states the library's defaults in words (clap cannot show a default it does not
    /// fill in); this keeps the words true.
    #[test]
    fn the_defaults_the_help_states_are_the_librarys() {
        let config = SessionConfig::default();
        assert_eq!(output::duration(config.absolute_timeout()), "12h");
        assert_eq!(output::duration(config.clock_skew()), "1m");
    }
}
