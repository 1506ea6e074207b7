//! A snapshot of the replica on local disk, so a node restarted while Redis is down keeps
//! enforcing what it knew.
//!
//! Written at most once per staleness bound when something changed, atomically (a new file,
//! synced, then renamed over the old one; mode 0600 on Unix: it names users), and loaded when
//! the store is built. Loaded entries are merged like any other: they only add, and expire as
//! usual. A node that loaded a snapshot is still not current until it reaches Redis: the
//! snapshot refuses what it knew, the failure policy answers the rest.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::sync::atomic::Ordering;

use super::super::memory::RevocationSet;
use super::node::Inner;
use crate::session::SessionId;

/// Writes a snapshot whenever the replica changed, at most once per staleness bound, until the
/// store is dropped.
pub(super) async fn keep(inner: std::sync::Weak<Inner>, path: PathBuf) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let pause = strong.staleness;
        let bytes = strong
            .changed
            .swap(false, Ordering::SeqCst)
            .then(|| encode(&strong.set.read().unwrap_or_else(std::sync::PoisonError::into_inner)));
        drop(strong);
        if let Some(bytes) = bytes {
            let target = path.clone();
            let saved = tokio::task::spawn_blocking(move || save(&target, &bytes)).await;
            if let Ok(Err(error)) = saved {
                tracing::error!(%error, path = %path.display(), "revocation snapshot not written");
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// The file's format version.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u8,
    latest: u64,
    subjects: Vec<SubjectRecord>,
}

/// A subject, its generation, until when it matters, and its lineages with until when each
/// matters.
type SubjectRecord = (Vec<u8>, u64, u64, Vec<([u8; crate::format::SESSION_ID_LEN], u64)>);

/// The bytes of a snapshot of `set`.
pub(super) fn encode(set: &RevocationSet) -> Vec<u8> {
    let subjects = set
        .subjects
        .iter()
        .map(|(subject, entry)| {
            let lineages = entry.lineages.iter().map(|&(id, until)| (id.0, until)).collect();
            (subject.to_vec(), entry.generation, entry.generation_until, lineages)
        })
        .collect();
    let snapshot = Snapshot { version: VERSION, latest: set.latest, subjects };
    rmp_serde::to_vec(&snapshot).unwrap_or_default()
}

/// Merges the snapshot at `path` into `set`; logs and ignores a missing or unreadable file.
pub(super) fn load(path: &Path, set: &mut RevocationSet, now: u64) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "revocation snapshot unreadable");
            return;
        }
    };
    let snapshot: Snapshot = match rmp_serde::from_slice(&bytes) {
        Ok(snapshot) if snapshot_version_ok(&snapshot) => snapshot,
        _ => {
            tracing::error!(path = %path.display(), "revocation snapshot malformed: ignored");
            return;
        }
    };
    set.latest = set.latest.max(snapshot.latest);
    for (subject, generation, generation_until, lineages) in snapshot.subjects {
        if generation != 0 && generation_until >= now {
            set.add_generation(&subject, generation, generation_until);
        }
        for (id, until) in lineages.into_iter().filter(|&(_, until)| until >= now) {
            set.add_lineage(&subject, SessionId(id), until);
        }
    }
    tracing::info!(entries = set.entries, "revocation snapshot loaded");
}

fn snapshot_version_ok(snapshot: &Snapshot) -> bool {
    snapshot.version == VERSION
}

/// Writes `bytes` to `path` atomically: a new file beside it, synced, renamed over it.
pub(super) fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    // A file left by a crashed writer is replaced, never followed (it may be a planted link).
    match std::fs::remove_file(&tmp) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}
