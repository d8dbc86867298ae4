//! Settling new files in batches: the directory entries of files `create`d since the last
//! binlog flush, the closed upload-journal segments, and peers' files (`flush_replicas`).

use super::Store;
use crate::storage::durable::{fsync_dir, syncfs};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// New files whose directory entries are not durable yet: final path -> sealed name.
#[derive(Debug, Default)]
pub struct Unsettled(HashMap<PathBuf, PathBuf>);

impl Store {
    /// Takes the files `create`d so far, to be settled by `settle`.
    pub fn unsettled(&self) -> Unsettled {
        Unsettled(std::mem::take(
            &mut *self.unsettled.lock().unwrap_or_else(|e| e.into_inner()),
        ))
    }

    /// Makes the directory entries of `batch` durable and drops their sealed names. Returns
    /// how many were settled; on an error they go back to the pending ones (retried).
    pub fn settle(&self, batch: Unsettled) -> io::Result<usize> {
        let batch = batch.0;
        if batch.is_empty() {
            return Ok(0);
        }
        let dirs = batch
            .keys()
            .filter_map(|dst| dst.parent())
            .map(Path::to_path_buf);
        let dirs = dirs.collect();
        unseal_once_durable(batch, dirs, fsync_dir, &self.unsettled)
    }

    /// Closes every upload journal's active segment (see `Journal::close_active`): the storage
    /// does this before it flushes the binlog, and `retire_journals` after.
    pub fn close_journals(&self) {
        for j in self.paths.iter().filter_map(|p| p.journal.as_ref()) {
            j.close_active();
        }
    }

    /// Makes the files of every closed journal segment durable (one `syncfs` per store path)
    /// and resets the segment. Returns how many files settled.
    pub fn retire_journals(&self) -> io::Result<usize> {
        let (mut settled, mut failed) = (0, None);
        for p in &self.paths {
            let Some(j) = p.journal.as_ref() else {
                continue;
            };
            match j.retire_closed(|| syncfs(j.file())) {
                Ok(n) => settled += n,
                Err(e) => {
                    // A settle's syncfs failing (EIO, EROFS) is the store path failing.
                    let kind = e.kind();
                    let e = self.note_write_error(p.index, e.into());
                    failed = failed.or(Some(io::Error::new(kind, e.msg)));
                }
            }
        }
        failed.map_or(Ok(settled), Err)
    }

    /// Whether an upload journal holds records not settled yet.
    pub fn journal_pending(&self) -> bool {
        self.paths
            .iter()
            .filter_map(|p| p.journal.as_ref())
            .any(|j| j.has_records())
    }

    /// Each store path's upload journal state, in `store_paths` order (None: no journal there,
    /// as with `fsync: false`).
    pub fn journal_stats(&self) -> Vec<Option<crate::storage::journal::JournalStats>> {
        self.paths
            .iter()
            .map(|p| p.journal.as_ref().map(|j| j.stats()))
            .collect()
    }

    /// Resolves when an upload journal fills up: settle now rather than at the next tick.
    pub async fn settle_wanted(&self) {
        self.settle_wanted.notified().await
    }

    /// Returns a batch taken by `unsettled` that could not be settled now (retried later).
    pub fn put_back(&self, batch: Unsettled) {
        let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        unsettled.extend(batch.0);
    }

    /// Makes every peer's file `create_at` stored so far durable (content, and directory
    /// entry) with one `syncfs` per store path, and drops their sealed names. Returns how many
    /// were flushed; on an error they stay pending. A caller that waited for another flush
    /// finds its files flushed by it.
    pub fn flush_replicas(&self) -> io::Result<usize> {
        let _one = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.unflushed.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return Ok(0);
        }
        // Each sealed name's directory is its store path's `.tmp`: one syncfs per store path.
        let tmp_dirs = batch
            .values()
            .filter_map(|s| s.parent())
            .map(Path::to_path_buf);
        let tmp_dirs = tmp_dirs.collect();
        let sync = |dir: &Path| File::open(dir).and_then(|d| syncfs(&d));
        unseal_once_durable(batch, tmp_dirs, sync, &self.unflushed)
    }

    /// Peers' files stored but not yet flushed.
    pub fn unflushed_count(&self) -> usize {
        self.unflushed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Files `create`d but not yet settled.
    pub fn unsettled_count(&self) -> usize {
        self.unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Runs `make_durable` once for each of `dirs`, then drops the sealed names of `batch` (final
/// path -> sealed name); on an error the batch goes back to `pending`, to be retried.
pub(super) fn unseal_once_durable(
    batch: HashMap<PathBuf, PathBuf>,
    mut dirs: Vec<PathBuf>,
    make_durable: impl Fn(&Path) -> io::Result<()>,
    pending: &Mutex<HashMap<PathBuf, PathBuf>>,
) -> io::Result<usize> {
    dirs.sort_unstable();
    dirs.dedup();
    for dir in &dirs {
        if let Err(e) = make_durable(dir) {
            pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(batch);
            return Err(e);
        }
    }
    for sealed in batch.values() {
        match std::fs::remove_file(sealed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Harmless: the next start-up finds the file in place and removes the name.
            Err(e) => {
                tracing::warn!(path = %sealed.display(), error = %e, "could not remove a sealed name")
            }
        }
    }
    Ok(batch.len())
}
