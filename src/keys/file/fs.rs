//! The key ring file on disk: reading it with its checks (a regular file, readable by its owner
//! only, opened without blocking on a FIFO) and warning about directories others could write.
//! The text read is handed to [`KeyRingFile::parse`].

use std::path::Path;
use std::time::SystemTime;

use zeroize::Zeroizing;

use super::{KeyFileError, KeyRingFile, MAX_FILE_LEN};
use crate::keys::KeyRing;

/// Reads and checks a key ring file at the current time: the file must not be readable by
/// others.
///
/// # Errors
///
/// [`KeyFileError`] naming the problem; never a secret.
pub fn load_file(path: impl AsRef<Path>) -> Result<KeyRing, KeyFileError> {
    load_file_at(path, SystemTime::now())
}

/// [`load_file`] at a given time. Each [`FileWarning`] about the file is logged at warning
/// level.
///
/// # Errors
///
/// As [`load_file`].
pub fn load_file_at(path: impl AsRef<Path>, now: SystemTime) -> Result<KeyRing, KeyFileError> {
    let path = path.as_ref();
    let (ring, warnings) = load_file_with_warnings(path, now)?;
    for warning in warnings {
        tracing::warn!(path = %path.display(), "{warning}");
    }
    Ok(ring)
}

/// [`load_file_at`], returning the warnings about the file instead of logging them (for tools
/// that show them to an operator).
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::keys::file::{self, FileWarning};
///
/// // A file written before the checksum existed still loads, with a warning.
/// let dir = std::env::temp_dir().join(format!("ss-doc-warnings-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("ring.json");
/// let secret = "ERERERERERERERERERERERERERERERERERERERERERE";
/// std::fs::write(&path, format!(
///     r#"{{"version":1,"keys":[{{"id":1,"secret":"{secret}","created_at":0,"activates_at":0}}]}}"#
/// ))?;
/// # #[cfg(unix)]
/// # std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
/// let (ring, warnings) = file::load_file_with_warnings(&path, SystemTime::now())?;
/// assert_eq!(ring.len(), 1);
/// assert!(warnings.contains(&FileWarning::NoChecksum));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As [`load_file`].
pub fn load_file_with_warnings(
    path: impl AsRef<Path>,
    now: SystemTime,
) -> Result<(KeyRing, Vec<FileWarning>), KeyFileError> {
    let path = path.as_ref();
    let file = KeyRingFile::parse(&read_private(path)?)?;
    let ring = file.to_ring(now)?;
    let mut warnings = Vec::new();
    if file.sha256.is_none() {
        warnings.push(FileWarning::NoChecksum);
    }
    warnings.extend(directory_warnings(path));
    Ok((ring, warnings))
}

/// Something wrong with a key ring file that does not stop it from loading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileWarning {
    /// The file has no `sha256` field (it was written by an earlier version, or by hand), so a
    /// rewrite in place could be loaded half old and half new.
    #[error(
        "key ring file has no sha256 checksum (written by an earlier version or by hand): a \
         rewrite in place could be loaded torn; any write by the sealed-session CLI adds it"
    )]
    NoChecksum,
    /// Group or others may write a directory the file sits in (and its sticky bit is off), so
    /// they can replace the ring with theirs. Fix with `chmod go-w DIRECTORY`.
    #[error(
        "directory {directory} of the key ring file has mode {mode:03o}: others can replace the \
         ring (chmod go-w {directory})"
    )]
    WritableDirectory {
        /// The directory.
        directory: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// The text of the key ring file at `path`, read with the loader's checks (a regular file,
/// opened without blocking, readable by its owner only, at most [`MAX_FILE_LEN`] bytes) into a
/// buffer sized once and wiped on drop: for tools that work on the file's text
/// ([`due_at`](super::due_at)).
///
/// # Errors
///
/// As [`load_file`].
pub fn read_file(path: impl AsRef<Path>) -> Result<Zeroizing<String>, KeyFileError> {
    read_private(path.as_ref())
}

/// Reads a file holding secrets, refusing it if it is not a regular file, if others may read
/// or write it, or if it is larger than [`MAX_FILE_LEN`].
fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    read_private_with_metadata(path).map(|(text, _)| text)
}

/// [`read_private`], with the metadata of the file read (taken from the open file, so it
/// describes the bytes returned). The key ring watcher's fingerprint reads through it, so that
/// it never blocks on a FIFO or reads a device without end either.
pub(crate) fn read_private_with_metadata(
    path: &Path,
) -> Result<(Zeroizing<String>, std::fs::Metadata), KeyFileError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io { path: shown.clone(), source };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer comes; without blocking it opens at once,
    // and the type check below refuses it. Reads from a regular file ignore the flag.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path).map_err(io)?;
    // The checks look at the file opened, not at the path, so nothing can be swapped in between.
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotRegular { path: shown, kind: file_kind(&metadata) });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: shown, mode });
        }
    }
    let too_large = |len| KeyFileError::TooLarge { path: shown.clone(), len };
    if metadata.len() > MAX_FILE_LEN {
        return Err(too_large(metadata.len()));
    }
    // Reserved up front, so the secrets are not left behind in a smaller buffer outgrown.
    let capacity = usize::try_from(metadata.len()).unwrap_or(0).saturating_add(1);
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    // Bounded even if the file grows after the check.
    (&mut file).take(MAX_FILE_LEN + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(too_large(text.len() as u64));
    }
    Ok((text, metadata))
}

/// What a file that is not a regular file is, for [`KeyFileError::NotRegular`].
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a regular file" }
}

/// Warnings about the directories a key ring file at `path` sits in: the directory holding
/// `path` and, when `path` is a symbolic link, the one holding its final target. Whoever may
/// write such a directory (group or others, without the sticky bit) can replace the ring with
/// theirs. [`load_file_with_warnings`] includes them; this is for tools that write a ring.
///
/// # Examples
///
/// ```
/// use sealed_session::keys::file::directory_warnings;
///
/// let dir = std::env::temp_dir().join(format!("ss-doc-dir-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// # #[cfg(unix)]
/// # std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
/// assert!(directory_warnings(dir.join("ring.json")).is_empty());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn directory_warnings(path: impl AsRef<Path>) -> Vec<FileWarning> {
    let path = path.as_ref();
    let mut directories = vec![parent(path)];
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if let Some(target) = is_link.then(|| std::fs::canonicalize(path).ok()).flatten() {
        let target_directory = parent(&target);
        // A link to a file in its own directory: one directory, one warning.
        if std::fs::canonicalize(&directories[0]).ok().as_ref() != Some(&target_directory) {
            directories.push(target_directory);
        }
    }
    directories.into_iter().filter_map(|dir| writable_directory(&dir)).collect()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    }
}

/// A warning when group or others may write `dir` and its sticky bit is off.
fn writable_directory(dir: &Path) -> Option<FileWarning> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o7777;
        const STICKY: u32 = 0o1000;
        if mode & 0o022 != 0 && mode & STICKY == 0 {
            return Some(FileWarning::WritableDirectory {
                directory: dir.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;

    use super::*;
    use crate::keys::file::testing::{entry, file, one_key_ring, t};
    use crate::keys::{Key, KeyId};

    /// A directory holding a valid ring (mode 0600).
    #[cfg(unix)]
    fn ring_in(dir: &Path, dir_mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        let path = dir.join("ring.json");
        std::fs::write(&path, KeyRingFile::from_ring(&one_key_ring(3)).to_json().as_bytes())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// A FIFO (or any file that is not a regular file) is refused at once; on main, reading a
    /// FIFO blocked until a writer came, forever. The channel's bound is a liveness guard.
    #[cfg(unix)]
    #[test]
    fn a_fifo_or_directory_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("ss-keys-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("ring.json");
        let made = std::process::Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let inner = dir.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        for (path, kind) in [(fifo.clone(), "FIFO"), (inner, "directory")] {
            let (sender, receiver) = std::sync::mpsc::channel();
            let loading = path.clone();
            std::thread::spawn(move || {
                let _ = sender.send(load_file_at(&loading, t(5)).map(|ring| ring.len()));
            });
            let result = receiver.recv_timeout(Duration::from_secs(60));
            if result.is_err() {
                // Unblock the stuck reader before failing.
                let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            }
            let error = result.expect("loading blocked").unwrap_err();
            assert!(matches!(error, KeyFileError::NotRegular { .. }), "{error:?}");
            assert!(error.to_string().contains(kind), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file larger than any ring is refused before it is read (on main it was read whole,
    /// and refused only as invalid JSON, if it ever ended).
    #[cfg(unix)]
    #[test]
    fn a_file_larger_than_any_ring_is_refused_unread() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let mut text = KeyRingFile::from_ring(&one_key_ring(3)).to_json().to_string();
        // (file size, loads) around the cap: padding after the JSON is whitespace it allows.
        let cap = usize::try_from(MAX_FILE_LEN).unwrap();
        for (len, loads) in [(cap, true), (cap + 1, false)] {
            text.extend(std::iter::repeat_n(' ', len - text.len()));
            std::fs::write(&path, text.as_bytes()).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            match load_file_at(&path, t(40)) {
                Ok(ring) => assert!(loads && ring.len() == 1, "{len} bytes loaded"),
                Err(KeyFileError::TooLarge { len: shown, .. }) => {
                    assert!(!loads, "{len} bytes refused");
                    assert_eq!(shown, len as u64);
                }
                Err(other) => panic!("{len} bytes: {other}"),
            }
        }
    }

    /// A ring in a directory others may write (without the sticky bit) loads, with a warning:
    /// whoever can write there can replace the ring. On main it loaded silently.
    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_warned_about() {
        let base = std::env::temp_dir().join(format!("ss-keys-dirs-{}", std::process::id()));
        let writable = |warnings: &[FileWarning]| {
            warnings.iter().any(|w| matches!(w, FileWarning::WritableDirectory { .. }))
        };
        for (dir_mode, warned) in
            [(0o700, false), (0o755, false), (0o770, true), (0o777, true), (0o1777, false)]
        {
            let dir = base.join(format!("{dir_mode:o}"));
            let path = ring_in(&dir, dir_mode);
            let (ring, warnings) = load_file_with_warnings(&path, t(40)).unwrap();
            assert_eq!(ring.len(), 1);
            assert_eq!(writable(&warnings), warned, "mode {dir_mode:o}: {warnings:?}");
            assert_eq!(writable(&directory_warnings(&path)), warned, "mode {dir_mode:o}");
            if warned {
                let shown = warnings[0].to_string();
                assert!(shown.contains(&dir.display().to_string()), "{shown}");
            }
        }
        // Through a symbolic link in a private directory to a ring in a writable one.
        let link = base.join("700").join("link.json");
        std::os::unix::fs::symlink(base.join("777").join("ring.json"), &link).unwrap();
        assert!(writable(&load_file_with_warnings(&link, t(40)).unwrap().1));
        let sibling = base.join("777").join("sibling.json");
        std::os::unix::fs::symlink("ring.json", &sibling).unwrap();
        assert_eq!(directory_warnings(&sibling).len(), 1, "one directory, one warning");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn refuses_files_others_can_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ss-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ring.json");
        let mut ring = KeyRing::new();
        ring.insert(KeyId(1), Key::generate(), t(0), t(0)).unwrap();
        std::fs::write(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_file_at(&path, t(5)),
            Err(KeyFileError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_file_at(&path, t(5)).unwrap().len(), 1);
        let (_, warnings) = load_file_with_warnings(&path, t(5)).unwrap();
        assert!(!warnings.contains(&FileWarning::NoChecksum), "{warnings:?}");
        let legacy = file(&[entry(1, &BASE64.encode([7u8; 32]), 0, 0)]);
        std::fs::write(&path, legacy).unwrap();
        let (_, warnings) = load_file_with_warnings(&path, t(5)).unwrap();
        assert!(warnings.contains(&FileWarning::NoChecksum), "{warnings:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
