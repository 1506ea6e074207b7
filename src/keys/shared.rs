//! A key ring shared by a codec and whoever replaces it: hot reload without locks on the
//! request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::KeyRing;
use super::file::{KeyFileError, load_file_at};

/// A handle to the key ring in service. Clones share it; [`replace`](SharedKeyRing::replace)
/// swaps the ring for every holder at once. Requests in flight keep the ring they started with,
/// so a reload never interrupts one.
///
/// # Examples
///
/// ```
/// use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SharedKeyRing};
///
/// let keys = SharedKeyRing::new(KeyRing::single(Key::generate()));
/// let codec = SessionCodec::new(SessionConfig::default(), keys.clone());
/// keys.replace(KeyRing::single(Key::generate()));
/// assert_eq!(codec.keys().snapshot().len(), 1);
/// ```
#[derive(Clone)]
pub struct SharedKeyRing(Arc<ArcSwap<KeyRing>>);

impl SharedKeyRing {
    /// A handle serving `ring`.
    pub fn new(ring: KeyRing) -> SharedKeyRing {
        SharedKeyRing(Arc::new(ArcSwap::from_pointee(ring)))
    }

    /// The ring in service now.
    pub fn snapshot(&self) -> Arc<KeyRing> {
        self.0.load_full()
    }

    /// Puts `ring` in service for every holder of this handle.
    pub fn replace(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }

    /// A cheap, short-lived view of the ring in service, for one request.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.0.load()
    }

    /// Loads the key ring file at `path` and puts it in service. On error the ring in service
    /// stays, and the error is returned (and logged at warning level).
    ///
    /// # Errors
    ///
    /// The [`KeyFileError`] that kept the new file out of service.
    pub fn reload_from_file(&self, path: impl AsRef<Path>) -> Result<(), KeyFileError> {
        let path = path.as_ref();
        match load_file_at(path, SystemTime::now()) {
            Ok(ring) => {
                tracing::info!(path = %path.display(), keys = ring.len(), "key ring reloaded");
                self.replace(ring);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(
                    path = %path.display(), %error,
                    "key ring file rejected; the previous ring stays in service"
                );
                Err(error)
            }
        }
    }

    /// Watches the key ring file at `path`, checking every `interval` whether it changed
    /// (modification time, size or inode) and reloading it when it did. An invalid file keeps
    /// the last good ring in service and is logged once per change. A file caught half-way
    /// through a rewrite in place fails its checksum (see [`file`](super::file)), so it is
    /// invalid too; since the rest of the rewrite can land within the same file-time tick and
    /// leave the fingerprint unchanged, a refused file is read again at every check until it
    /// loads or changes. The watch
    /// stops when the returned [`FileWatcher`] is dropped.
    pub fn watch_file(&self, path: impl Into<PathBuf>, interval: Duration) -> FileWatcher {
        let path = path.into();
        let keys = self.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        // Taken before the thread starts, so a change made right after this call is seen.
        let mut seen = fingerprint(&path);
        let thread = std::thread::Builder::new()
            .name("sealed-session-keys".to_owned())
            .spawn(move || {
                let mut refused = false;
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let now = fingerprint(&path);
                    if now != seen {
                        seen = now;
                        // Errors are logged by `reload_from_file`; the old ring stays.
                        refused = keys.reload_from_file(&path).is_err();
                    } else if refused {
                        // A refused file may be one caught half-way through a rewrite in place,
                        // and the rest of the rewrite can land within the same file-time tick
                        // (a few milliseconds), leaving the fingerprint unchanged: read it
                        // again, quietly (the refusal is logged already), until it loads.
                        if let Ok(ring) = load_file_at(&path, SystemTime::now()) {
                            tracing::info!(
                                path = %path.display(), keys = ring.len(), "key ring reloaded"
                            );
                            keys.replace(ring);
                            refused = false;
                        }
                    }
                }
            })
            .expect("spawning the key ring watcher thread");
        FileWatcher { stop: Some(stop), thread: Some(thread) }
    }
}

/// What identifies a version of a file without reading it.
fn fingerprint(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some((metadata.modified().ok()?, metadata.len(), inode))
}

impl From<KeyRing> for SharedKeyRing {
    fn from(ring: KeyRing) -> SharedKeyRing {
        SharedKeyRing::new(ring)
    }
}

impl std::fmt::Debug for SharedKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedKeyRing").field(&*self.0.load()).finish()
    }
}

/// A running watch of a key ring file; dropping it stops the watch.
#[derive(Debug)]
pub struct FileWatcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
