//! `keys init`: a new ring of one key.

use std::time::SystemTime;

use clap::Args;
use sealed_session::{Key, KeyId, KeyRing};

use super::{FileArg, LockArg};
use crate::failure::{Failure, Kind};
use crate::{output, ring_file};

/// Create a new key ring file holding one key, active at once.
///
/// The key (id 1) is random, from the operating system. The file is created with mode 0600;
/// an existing file is never overwritten.
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct InitArgs {
    #[command(flatten)]
    file: FileArg,

    #[command(flatten)]
    lock: LockArg,
}

/// Runs `keys init`.
///
/// # Errors
///
/// Refused (4) when the file exists; I/O (5) when it cannot be written.
pub fn run(args: InitArgs) -> Result<(), Failure> {
    let path = &args.file.file;
    let lock = ring_file::lock(path, *args.lock.lock_timeout)?;
    // Checked under the lock, so two concurrent inits cannot both succeed.
    if ring_file::exists(path)? {
        return Err(Failure::new(
            Kind::Refused,
            format!(
                "{} already exists; refusing to overwrite a key ring (use `keys rotate` to add a key)",
                path.display()
            ),
        ));
    }
    let now = SystemTime::now();
    let id = KeyId(1);
    let mut ring = KeyRing::new();
    ring.insert(id, Key::generate(), now, now)
        .map_err(|error| Failure::new(Kind::Io, error.to_string()))?;
    ring_file::write(path, &lock, &ring)?;
    ring_file::warn(path, &sealed_session::keys::file::directory_warnings(path));
    output::print(&format!("created {} with key {id} (current)\n", path.display()))
}
