//! `keys export`: the ring as one environment variable value.

use std::time::SystemTime;

use clap::Args;
use sealed_session::keys::file::KeyRingFile;

use super::FileArg;
use crate::failure::Failure;
use crate::{output, ring_file};

/// Print the ring as one environment variable value (`ssk1.…`). PRINTS SECRET KEYS.
///
/// The whole ring, SECRET KEYS INCLUDED: `ssk1.` followed by the file's JSON in base64url, as
/// `sealed_session::keys::file::parse_env` reads it. This is the only command that prints
/// secret material, on purpose: pipe it straight into your secret store, and keep it out of
/// terminals, logs and shell history.
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct ExportArgs {
    #[command(flatten)]
    file: FileArg,
}

/// Runs `keys export`.
///
/// # Errors
///
/// Key ring (3) when the file cannot be loaded; I/O (5) when stdout fails.
pub fn run(args: ExportArgs) -> Result<(), Failure> {
    let ring = ring_file::load(&args.file.file, SystemTime::now())?;
    let mut value = KeyRingFile::from_ring(&ring).to_env();
    // Within the capacity `to_env` reserved for it: the secrets are not copied to a larger buffer.
    value.push('\n');
    output::print(&value)
}
