//! Reading and writing the key ring file safely.
//!
//! Every command that changes the ring runs `lock`, `load`, change, `write`, holding the lock
//! throughout, so two operators rotating at once both get their key (with distinct ids) and
//! neither overwrites the other's. The lock is an exclusive advisory lock (`flock` on Unix) on a
//! sidecar file `FILE.lock`, which is left in place: deleting a lock file lets a waiting process
//! lock the deleted inode while a newcomer locks a new one. It is opened with `O_NOFOLLOW` (a
//! symbolic link there is refused, never followed), and a writer waits for it only so long
//! (`--lock-timeout`, 10 seconds by default), then fails naming it.
//!
//! A write never exposes a half-written ring, not even to a node reloading the file at that
//! moment: the new ring goes to `FILE.tmp` in the same directory (created with mode 0600, so the
//! secrets are never readable by others, not even briefly), gets the owner, group and mode of
//! the file it replaces, is flushed to disk, and is renamed over `FILE`, which replaces it
//! atomically; then the directory is flushed so the rename survives a crash. Any failure before
//! the rename leaves `FILE` as it was. When `FILE` is a symbolic link, all of this happens at its
//! final target (the temporary file beside it), and the links stay as they were.
//!
//! Readers (`list`, `export`, `seal`, `open`) take no lock: the rename gives them either the old
//! ring or the new one.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sealed_session::KeyRing;
use sealed_session::keys::file::{FileWarning, KeyRingFile, load_file_with_warnings};

use crate::failure::{Failure, Kind};
use crate::output;

/// Holds the exclusive lock on a key ring file until dropped (closing the file releases it).
#[derive(Debug)]
pub struct RingLock {
    _file: File,
}

/// How often a writer retries a lock another process holds.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Takes the exclusive lock on the key ring file at `path`, waiting up to `timeout` for
/// another writer to release it.
///
/// The lock file is opened without following a symbolic link: anyone who can write the
/// directory could plant one, and `O_CREAT` through it would create (or lock and keep open) a
/// file of their choosing as the user running the CLI, often root.
///
/// # Errors
///
/// An I/O failure when the lock file cannot be created or locked (a symbolic link at its
/// place, or another process holding the lock past `timeout`).
pub fn lock(path: &Path, timeout: Duration) -> Result<RingLock, Failure> {
    let lock_path = sidecar(path, ".lock");
    let mut options = private_options();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = options.open(&lock_path).map_err(|error| {
        if is_symlink(&lock_path) {
            Failure::new(
                Kind::Io,
                format!(
                    "cannot lock {}: it is a symbolic link, which a writer never follows; remove \
                     it (it may have been planted) and retry",
                    lock_path.display()
                ),
            )
        } else {
            Failure::io("create the lock file", &lock_path, &error)
        }
    })?;
    let deadline = Instant::now() + timeout;
    loop {
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => return Ok(RingLock { _file: file }),
            Err(fs4::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY);
            }
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    Kind::Io,
                    format!(
                        "timed out after {} waiting for the lock {}: another process holds it \
                         (another `sealed-session keys` command still running?); the key ring \
                         is unchanged (wait longer with --lock-timeout)",
                        output::duration(timeout),
                        lock_path.display()
                    ),
                ));
            }
            Err(fs4::TryLockError::Error(error)) => {
                return Err(Failure::io("lock", &lock_path, &error));
            }
        }
    }
}

/// Whether `path` is a symbolic link (false when that cannot be told).
fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_symlink())
}

/// Loads and checks the ring at `path` (a regular file, private to its owner), printing any
/// warning about it (no checksum, a directory others can write) on stderr.
///
/// # Errors
///
/// A key ring failure (exit 3) naming the problem.
pub fn load(path: &Path, now: SystemTime) -> Result<KeyRing, Failure> {
    let (ring, warnings) = load_file_with_warnings(path, now)?;
    warn(path, &warnings);
    Ok(ring)
}

/// Prints warnings about the ring file at `path` on stderr.
pub fn warn(path: &Path, warnings: &[FileWarning]) {
    for warning in warnings {
        eprintln!("warning: {}: {warning}", path.display());
    }
}

/// Whether anything (file, directory, dangling link) is at `path`.
///
/// # Errors
///
/// An I/O failure when that cannot be told.
pub fn exists(path: &Path) -> Result<bool, Failure> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Failure::io("inspect", path, &error)),
    }
}

/// Replaces the ring file at `path` with `ring`, atomically. Call with the lock held.
///
/// When `path` is a symbolic link, the file written is its final target (the links stay). An
/// existing file keeps its owner, group and mode: the new file gets them before it is renamed
/// over the old one.
///
/// # Errors
///
/// An I/O failure; the file at `path` is then unchanged.
pub fn write(path: &Path, _lock: &RingLock, ring: &KeyRing) -> Result<(), Failure> {
    let target = final_target(path)?;
    let existing = match std::fs::metadata(&target) {
        Ok(metadata) => Some(metadata),
        Err(error) if error.kind() == ErrorKind::NotFound => None,
        Err(error) => return Err(unchanged(Failure::io("inspect", &target, &error), path)),
    };
    let json = KeyRingFile::from_ring(ring).to_json();
    let tmp = sidecar(&target, ".tmp");
    // A temporary file left by a crashed writer is ours to replace: the lock is held. Removing
    // it first (rather than truncating it) means the new one is created with mode 0600 even if
    // the old one had another mode, and that a symbolic link planted there is not followed.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(unchanged(Failure::io("remove the stale", &tmp, &error), path)),
    }
    let written = private_options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| {
            if let Some(existing) = &existing {
                keep_owner_and_mode(&file, existing)?;
            }
            file.write_all(json.as_bytes())?;
            // On disk before the rename, or a crash could leave an empty file under the name.
            file.sync_all()
        })
        .map_err(|error| Failure::io("write", &tmp, &error))
        .and_then(|()| {
            std::fs::rename(&tmp, &target)
                .map_err(|error| Failure::io("rename the new key ring over", &target, &error))
        });
    if let Err(failure) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(unchanged(failure, path));
    }
    sync_directory(&target)
}

/// The file a write replaces: `path` itself, or, when it is a symbolic link, the file at the
/// end of the chain (so that the links, as deploy tools and Kubernetes volumes lay them out,
/// keep pointing at the new ring).
fn final_target(path: &Path) -> Result<PathBuf, Failure> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|error| {
                unchanged(Failure::io("follow the symbolic link", path, &error), path)
            })
        }
        _ => Ok(path.to_owned()),
    }
}

/// Gives the new file `file` the owner, group and permission bits of the file it replaces, so a
/// rewrite by root leaves a ring the service's user can still read. The owner is changed only
/// when it differs (only root may give a file away).
fn keep_owner_and_mode(file: &File, existing: &std::fs::Metadata) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let created = file.metadata()?;
        if (created.uid(), created.gid()) != (existing.uid(), existing.gid()) {
            std::os::unix::fs::fchown(file, Some(existing.uid()), Some(existing.gid()))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(existing.mode() & 0o777))?;
    }
    #[cfg(not(unix))]
    let _ = (file, existing);
    Ok(())
}

/// Flushes the directory holding `path`, so a rename in it survives a crash.
fn sync_directory(path: &Path) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| Failure::io("flush the directory", dir, &error))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Open options that create files readable and writable by their owner only.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// `path` with `suffix` appended to its file name: `ring.json` → `ring.json.lock`.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Adds to a write failure that the ring file was not touched.
fn unchanged(failure: Failure, path: &Path) -> Failure {
    Failure::new(Kind::Io, format!("{failure}; the key ring file {} is unchanged", path.display()))
}
