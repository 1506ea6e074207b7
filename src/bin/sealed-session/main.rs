//! `sealed-session`: manages a key ring file, and seals or opens session cookies by hand for
//! debugging.
//!
//! One module per subcommand; `ring_file` holds the locked, atomic read-modify-write of the key
//! ring file that every `keys` command that writes goes through, and `failure` the exit codes.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, clippy::unwrap_used)]

mod codec;
mod failure;
mod keys;
mod open;
mod output;
mod ring_file;
mod seal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The exit-code table, shown at the end of every command's `--help`. `failure::Kind` holds the same numbers.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  open: the session cookie was rejected, or absent (the reason is on stderr)
  2  usage error: bad arguments, or (seal) stdin that is not a JSON object of storable values
  3  key ring file error: missing, not a regular file, unreadable, invalid, or readable by
     others (chmod 600 FILE)
  4  refused: init over an existing file, retire of the current or last key, of a key the
     schedule derives or of an unknown key id, or (without --force) retire of a key that may
     still open live sessions
  5  I/O error: the key ring could not be locked or written (the old file is left intact), or
     output could not be written
  6  seal: the session is too large for the cookie budget or the maximum state size (or
     stdin is over 1 MiB)";

/// Stateless web sessions sealed into cookies: key ring management and debugging.
#[derive(Debug, Parser)]
#[command(name = "sealed-session", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage a key ring file (JSON, mode 0600, written atomically under a lock).
    #[command(subcommand, after_help = EXIT_CODES)]
    Keys(keys::KeysCommand),
    Seal(seal::SealArgs),
    Open(open::OpenArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with clap's code 2 from here; `--help` and `--version` with 0.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(command) => keys::run(command),
        Command::Seal(args) => seal::run(args),
        Command::Open(args) => open::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("sealed-session: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
