//! A key ring shared by a codec and whoever replaces it: hot reload without locks on the
//! request path.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, Weak};
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
///
/// A ring with a [`Schedule`](super::Schedule) moves on by itself: the request that first sees
/// a time past the ring's next change (a derived key joins, a key retires) derives the ring of
/// that time and puts it in service; every other request pays one comparison.
#[derive(Clone)]
pub struct SharedKeyRing(Arc<Inner>);

/// What the clones of a [`SharedKeyRing`] share: the ring in service, what the last loads did
/// and, when the ring watches its own file, that watch (stopped when the last clone goes).
struct Inner {
    ring: ArcSwap<KeyRing>,
    status: Mutex<Status>,
    watcher: Mutex<Option<FileWatcher>>,
}

/// What the last loads did, for [`health`](SharedKeyRing::health).
#[derive(Default, Clone)]
pub(super) struct Status {
    /// When the ring in service was put there by `new`, `replace` or a reload.
    pub(super) loaded_at: Option<SystemTime>,
    /// The last reload that failed, and why, until a reload succeeds.
    pub(super) last_error: Option<(SystemTime, String)>,
}

impl SharedKeyRing {
    /// A handle serving `ring`.
    pub fn new(ring: KeyRing) -> SharedKeyRing {
        SharedKeyRing(Arc::new(Inner {
            ring: ArcSwap::from_pointee(ring),
            status: Mutex::new(Status { loaded_at: Some(SystemTime::now()), last_error: None }),
            watcher: Mutex::new(None),
        }))
    }

    /// A handle serving the key ring file at `path`, reloading it when it changes (checked every
    /// `interval`) for as long as any clone of the handle lives: the usual way to serve a ring
    /// file, since there is no watcher to keep (or to drop by mistake). See
    /// [`watch_file`](SharedKeyRing::watch_file) for how changes and invalid files are handled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sealed_session::{SessionCodec, SessionConfig, SharedKeyRing};
    ///
    /// let keys = SharedKeyRing::watching_file("/etc/myapp/session-keys.json", Duration::from_secs(5))?;
    /// let codec = SessionCodec::new(SessionConfig::default(), keys);
    /// # Ok::<(), sealed_session::keys::file::KeyFileError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The [`KeyFileError`] of the file as it is now: a node must not start without a ring.
    pub fn watching_file(
        path: impl Into<PathBuf>,
        interval: Duration,
    ) -> Result<SharedKeyRing, KeyFileError> {
        let path = path.into();
        let keys = SharedKeyRing::new(load_file_at(&path, SystemTime::now())?);
        keys.keep_watching_file(path, interval);
        Ok(keys)
    }

    /// Watches the key ring file at `path` as [`watch_file`](SharedKeyRing::watch_file) does,
    /// for as long as any clone of this handle lives (replacing an earlier watch kept this way).
    pub fn keep_watching_file(&self, path: impl Into<PathBuf>, interval: Duration) {
        let watcher = self.watch_file(path, interval);
        let old = self.0.watcher.lock().unwrap_or_else(PoisonError::into_inner).replace(watcher);
        // Stopped outside the lock: its thread may be in a reload.
        drop(old);
    }

    /// The ring in service now.
    pub fn snapshot(&self) -> Arc<KeyRing> {
        self.0.ring.load_full()
    }

    /// Puts `ring` in service for every holder of this handle.
    pub fn replace(&self, ring: KeyRing) {
        self.0.ring.store(Arc::new(ring));
        let mut status = self.0.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.loaded_at = Some(SystemTime::now());
        status.last_error = None;
    }

    /// The ring in service at `now`: with a schedule, moved on to `now` first if a key joined
    /// or retired since it was taken.
    pub fn snapshot_at(&self, now: SystemTime) -> Arc<KeyRing> {
        arc_swap::Guard::into_inner(self.load_at(crate::time::to_unix(now)))
    }

    /// A cheap, short-lived view of the ring in service at `now` (Unix seconds), for one
    /// request.
    #[inline]
    pub(crate) fn load_at(&self, now: u64) -> arc_swap::Guard<Arc<KeyRing>> {
        let ring = self.0.ring.load();
        if ring.fresh_at(now) { ring } else { self.advance(ring, now) }
    }

    /// Derives the ring of `now` and puts it in service, unless a reload replaced the ring
    /// meanwhile (compare-and-swap: a reload always wins over a derived ring of the old one).
    #[cold]
    fn advance(
        &self,
        stale: arc_swap::Guard<Arc<KeyRing>>,
        now: u64,
    ) -> arc_swap::Guard<Arc<KeyRing>> {
        let fresh = Arc::new(stale.at(crate::time::from_unix(now)));
        let previous = self.0.ring.compare_and_swap(&*stale, Arc::clone(&fresh));
        if Arc::ptr_eq(&previous, &stale) {
            tracing::info!(
                keys = fresh.len(),
                current = ?fresh.current(now).map(|key| key.id),
                "key ring moved on by its schedule"
            );
            arc_swap::Guard::from_inner(fresh)
        } else {
            // Someone else put a ring in service; use it (it moves on by itself in turn).
            drop(previous);
            let ring = self.0.ring.load();
            if ring.fresh_at(now) {
                ring
            } else {
                arc_swap::Guard::from_inner(Arc::new(ring.at(crate::time::from_unix(now))))
            }
        }
    }

    pub(super) fn status(&self) -> Status {
        self.0.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn record_error(&self, error: &KeyFileError) {
        let mut status = self.0.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.last_error = Some((SystemTime::now(), error.to_string()));
    }

    /// Loads the key ring file at `path` and puts it in service. On error the ring in service
    /// stays, and the error is returned (and logged at warning level).
    ///
    /// # Errors
    ///
    /// The [`KeyFileError`] that kept the new file out of service.
    pub fn reload_from_file(&self, path: impl AsRef<Path>) -> Result<(), KeyFileError> {
        let path = path.as_ref();
        let loaded = load_file_at(path, SystemTime::now());
        crate::metrics::key_ring_reloaded(loaded.is_ok());
        match loaded {
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
                self.record_error(&error);
                Err(error)
            }
        }
    }

    /// Watches the key ring file at `path`, checking every `interval` whether it changed
    /// (modification time, size, inode or contents) and reloading it when it did. An invalid file keeps
    /// the last good ring in service and is logged once per change. A file caught half-way
    /// through a rewrite in place fails its checksum (see [`file`](super::file)), so it is
    /// invalid too, and is read again at every check until it loads or changes (the check's
    /// digest and the load are two reads of the file, and a writer can land between them).
    /// The watch
    /// stops when the returned [`FileWatcher`] is dropped (or every clone of this handle is):
    /// keep it for the life of the server, or use
    /// [`watching_file`](SharedKeyRing::watching_file), whose watch lives as long as the ring.
    #[must_use = "the watch stops when the FileWatcher is dropped; keep it, or use \
                  SharedKeyRing::watching_file / keep_watching_file"]
    pub fn watch_file(&self, path: impl Into<PathBuf>, interval: Duration) -> FileWatcher {
        let path = path.into();
        // Weak: a watch kept inside the ring must not keep the ring (and so itself) alive.
        let ring: Weak<Inner> = Arc::downgrade(&self.0);
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
                    // Every handle gone: nothing left to serve. (If this check's handle is the
                    // last, the ring and its watcher are dropped on this thread, which then
                    // sees its channel closed and ends.)
                    let Some(inner) = ring.upgrade() else { return };
                    let keys = SharedKeyRing(inner);
                    let now = fingerprint(&path);
                    if now != seen {
                        seen = now;
                        // Errors are logged by `reload_from_file`; the old ring stays.
                        refused = keys.reload_from_file(&path).is_err();
                    } else if refused {
                        // A refused file may be one caught half-way through a rewrite in place
                        // whose rest landed between this check's digest and its load, leaving
                        // the fingerprint as the next check finds it: read it again, quietly
                        // (the refusal is logged already), until it loads.
                        if let Ok(ring) = load_file_at(&path, SystemTime::now()) {
                            crate::metrics::key_ring_reloaded(true);
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

/// What identifies a version of the file: its modification time, size and inode, and a digest
/// of its bytes. File times can be coarse (a tick of a few milliseconds, or a second on some
/// file systems), so a same-size rewrite in place within one tick changes none of the first
/// three; the digest sees it. The file is small and read once per check; its bytes (secrets)
/// are wiped, and only the digest is kept.
///
/// Read as the loader reads it, checks included (opened without blocking, a regular file
/// private to its owner, at most `MAX_FILE_LEN` bytes): a FIFO at the path must not block the
/// watch, nor a link to a device make it read without end. Anything else is `None`, no version
/// of a ring; the load that a change to `None` triggers says why.
fn fingerprint(path: &Path) -> Option<(SystemTime, u64, u64, [u8; 32])> {
    use sha2::{Digest as _, Sha256};
    let (text, metadata) = super::file::read_private_with_metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    let digest = Sha256::digest(text.as_bytes()).into();
    Some((metadata.modified().ok()?, metadata.len(), inode, digest))
}

impl From<KeyRing> for SharedKeyRing {
    fn from(ring: KeyRing) -> SharedKeyRing {
        SharedKeyRing::new(ring)
    }
}

impl std::fmt::Debug for SharedKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedKeyRing").field(&*self.0.ring.load()).finish()
    }
}

/// A running watch of a key ring file; dropping it stops the watch.
#[derive(Debug)]
#[must_use = "the watch stops when the FileWatcher is dropped"]
pub struct FileWatcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // Dropped on its own thread (the watch held the last handle of a ring that keeps
            // it): joining would wait for itself; the thread ends once this returns.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
