//! `keys`: the key ring file's life cycle. One module per subcommand.

mod export;
mod init;
mod list;
mod retire;
mod rotate;
mod schedule;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sealed_session::SessionConfig;

use crate::failure::Failure;

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
#[derive(Debug, Args)]
pub struct TimeoutArg {
    /// The servers' absolute session timeout. An old key is safe to retire once its successor
    /// has been sealing for this long plus twice the clock skew: every session sealed with it
    /// has expired by then, on every server.
    #[arg(long, value_name = "DURATION", default_value_t = default_absolute_timeout())]
    pub absolute_timeout: humantime::Duration,

    /// The servers' allowed clock skew (`SessionConfigBuilder::clock_skew`): a session is
    /// still accepted this long after its absolute expiry.
    #[arg(long, value_name = "DURATION", default_value_t = default_clock_skew())]
    pub clock_skew: humantime::Duration,
}

impl TimeoutArg {
    /// How long after its successor's activation an old key may still open live sessions:
    /// the absolute timeout plus twice the clock skew (the rotation runbook's "safe to
    /// retire"), the scheduled rotation's own retirement
    /// ([`RotationPolicy::for_sessions`](sealed_session::RotationPolicy::for_sessions), which
    /// says why twice).
    pub fn retire_after(&self) -> std::time::Duration {
        let policy =
            sealed_session::RotationPolicy::for_sessions(*self.absolute_timeout, *self.clock_skew);
        policy.retire_after
    }
}

/// The library's default clock skew.
fn default_clock_skew() -> humantime::Duration {
    SessionConfig::default().clock_skew().into()
}

/// The library's default absolute timeout.
fn default_absolute_timeout() -> humantime::Duration {
    SessionConfig::default().absolute_timeout().into()
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
