//! The file store: store paths (`M00`, `M01`, ...), the `data/XX/YY/<name>` layout, atomic
//! creation of files, metadata sidecars, and free-space accounting.
//!
//! ```text
//! <store_path>/data/.tmp/<pid>-<seq>.tmp       uploads in progress (removed at start-up)
//! <store_path>/data/.tmp/sealed-XX-YY-<name>   new small files not settled yet (see `create`)
//! <store_path>/data/.tmp/replica-XX-YY-<name>  the same for a peer's files (`create_at`),
//!                                              kept until the file's content is flushed
//! <store_path>/data/.journal/0, 1              the upload journal (with fsync on; `journal`)
//! <store_path>/data/XX/YY/<name>               files, XX/YY = 00..subdir_count-1 in hex
//! <store_path>/data/XX/YY/<name>-m             metadata, `k\x02v` records sorted by name,
//!                                              joined by \x01
//! ```
//! A new file is written to a temp file, fdatasynced (when `fsync` is on), renamed into place
//! without replacing anything (`RENAME_NOREPLACE`) and its directory fsynced: a file ID never
//! names a partial file, and an acknowledged file survives a crash. A new file whose content is
//! all in memory (uploads up to 256 KiB) needs one device flush instead of two: its temp name
//! says where it belongs, and its directory fsync is batched later ([`Store::create`]). Up to
//! 64 KiB that flush is not even the file's own: its record in the upload journal is flushed,
//! and the file reaches the disk with the next settle (see `journal`).
//! A peer's small new file is not flushed one by one at all: it is acknowledged from the page
//! cache and flushed with the others in one `syncfs` ([`Store::flush_replicas`]), which the
//! storage runs before it flushes its binlog and before it confirms a sender's watermark; the
//! sender resends whatever a peer acknowledged but had not confirmed when it went away.
//! With fsync on, uploads of `direct_io_min_size` and more are written with O_DIRECT (whole
//! aligned blocks straight from the receive buffer to the disk, the reply waits for the disk
//! anyway) instead of being copied into the page cache first; the sync sender reads them the
//! same way ([`Store::open_to_send`]).
//! FastDFS creates all `subdir_count^2` directories at start; we create each on first use (and
//! fsync its parents), which starts instantly and yields the same tree for the files stored.
//!
//! Blocking code: every method here does file I/O and must run off the async threads
//! (`spawn_blocking`). This module knows nothing about sockets or the binlog.
//!
//! Where things are: `layout` (where a file lives: store path, `XX/YY`, sealed names),
//! `space` (which store path takes a new file), `health` (whether a path takes new files at
//! all), `create` (new files), `settle` (making new
//! files' directory entries durable in batches), `startup` (what `open` finishes after a
//! crash), `appender` (writes into existing files: append, modify, truncate), `delete`,
//! `metadata`, and `file_io` (temp files, O_DIRECT, reading for sync). Every write to a
//! stored file goes through here.

mod appender;
mod create;
mod delete;
mod file_io;
mod health;
mod layout;
mod metadata;
mod settle;
mod space;
mod startup;

pub use appender::WriteAt;
pub use create::NewSmall;
pub use file_io::{AlignedBuf, FileToSend, TempFile, DIRECT_ALIGN};
pub use metadata::MetaChange;
pub use settle::Unsettled;
pub use space::DiskUsage;
pub use startup::SealedFile;

use super::journal::{Journal, Ticket};
use crate::config::{DistributePathMode, Reserved, StorageConfig};
use crate::proto::cmd::errno;
use layout::DirCursor;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// An error with the errno FastDFS would put in the response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{msg} (errno {status})")]
pub struct StoreError {
    pub status: u8,
    pub msg: String,
}

impl StoreError {
    pub fn new(status: u8, msg: impl Into<String>) -> Self {
        StoreError {
            status,
            msg: msg.into(),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        let status = e
            .raw_os_error()
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&n| n != 0)
            .unwrap_or(match e.kind() {
                io::ErrorKind::NotFound => errno::ENOENT,
                io::ErrorKind::AlreadyExists => errno::EEXIST,
                // Errors rewrapped with a message keep their kind, not their errno (the
                // journal's): the kinds that say which path error it was.
                io::ErrorKind::ReadOnlyFilesystem => 30, /* EROFS */
                io::ErrorKind::PermissionDenied => errno::EACCES,
                io::ErrorKind::StorageFull => errno::ENOSPC,
                _ => errno::EIO,
            });
        StoreError {
            status,
            msg: e.to_string(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One store path (`M<index>`).
pub struct StorePath {
    pub index: u8,
    pub root: PathBuf,
    data: PathBuf,
    tmp: PathBuf,
    /// Bit per `XX/YY` directory known to exist.
    dirs_made: Vec<AtomicU64>,
    /// The upload journal of small new files (with fsync on; see `journal`).
    journal: Option<Arc<Journal>>,
    /// Whether it takes new files (see `health`).
    health: health::PathHealth,
}

impl std::fmt::Debug for StorePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePath")
            .field("index", &self.index)
            .field("root", &self.root)
            .field("journal", &self.journal.is_some())
            .finish()
    }
}

pub struct Store {
    paths: Vec<StorePath>,
    subdir_count: u32,
    fsync: bool,
    /// Uploads at least this large are written with O_DIRECT (`direct_io_min_size`).
    direct_min: Option<u64>,
    reserved: Mutex<Reserved>,
    mode: DistributePathMode,
    rotate_count: u32,
    cursor: Mutex<DirCursor>,
    tmp_seq: AtomicU64,
    /// This process's id, for temp names (asked once, not per upload).
    pid: u32,
    /// Store path of the last new file (`current_write_path` in tracker stats).
    last_path: std::sync::atomic::AtomicU8,
    /// Striped locks serialising changes to one file (append/modify/truncate/delete/metadata)
    /// across connections.
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Files made by `create` whose directory is not yet fsynced: final path -> sealed name.
    unsettled: Mutex<HashMap<PathBuf, PathBuf>>,
    /// Peers' files made by `create_at` whose content is not flushed yet: final path -> sealed
    /// name (see `flush_replicas`).
    unflushed: Mutex<HashMap<PathBuf, PathBuf>>,
    /// One `flush_replicas` at a time: a caller that waited finds its files flushed.
    flushing: Mutex<()>,
    /// Sealed files found at start-up (see `take_sealed_at_start`).
    sealed_at_start: Mutex<Vec<SealedFile>>,
    /// Told by the upload journals when one is half full or full (see `settle_wanted`).
    settle_wanted: Arc<tokio::sync::Notify>,
}

/// A new file `create` stored.
#[derive(Debug)]
pub struct Created {
    /// `XX/YY`
    pub dirs: (u8, u8),
    pub name: String,
    /// A journaled file's record: its segment is not retired while this lives. The storage
    /// drops it once the file's binlog record is queued, so that the binlog flush before the
    /// retire writes that record (a crash after the retire could not re-log the file).
    pub record: Option<Ticket>,
}

const FILE_LOCKS: usize = 64;

impl Store {
    /// Prepares every store path (creating `data/` and `data/.tmp/`) and removes temp files left
    /// by a previous run.
    pub fn open(cfg: &StorageConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(!cfg.store_paths.is_empty(), "storage.store_paths is empty");
        anyhow::ensure!(
            cfg.store_paths.len() <= 256,
            "storage.store_paths: at most 256 paths"
        );
        anyhow::ensure!(
            (1..=256).contains(&cfg.subdir_count_per_path),
            "storage.subdir_count_per_path must be 1..=256"
        );
        let subdirs = cfg.subdir_count_per_path as usize;
        let mut paths = Vec::new();
        // Store paths that failed before the start (read-only, failing writes): the storage
        // runs without them (issue 18.8); `health` shows them and finds them back.
        let mut failed = Vec::new();
        for (i, root) in cfg.store_paths.iter().enumerate() {
            let data = root.join("data");
            let tmp = data.join(".tmp");
            match health::failed_at_start(root, &tmp) {
                Ok(None) => {}
                Ok(Some(why)) => {
                    tracing::warn!(store_path = %root.display(), index = i, reason = %why,
                        "store path unusable at start: its files are served, new files go to other paths; temp files and its upload journal wait for a start where it is writable");
                    failed.push(i);
                }
                Err(e) => anyhow::bail!(
                    "storage.store_paths[{i}]: cannot create {}: {e}",
                    tmp.display()
                ),
            }
            paths.push(StorePath {
                index: i as u8,
                root: root.clone(),
                data,
                tmp,
                dirs_made: (0..(subdirs * subdirs).div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                journal: None,
                health: Default::default(),
            });
        }
        let mut store = Store {
            paths,
            subdir_count: cfg.subdir_count_per_path,
            fsync: cfg.fsync,
            // Only with fsync on: then the reply waits for the disk anyway and O_DIRECT just
            // skips the page-cache copy; with fsync off, buffered writes let the reply go first.
            direct_min: cfg.direct_io_min_size.filter(|_| cfg.fsync).map(|s| s.0),
            reserved: Mutex::new(cfg.reserved_storage_space),
            mode: cfg.file_distribute_path_mode,
            rotate_count: cfg.file_distribute_rotate_count.max(1),
            cursor: Mutex::new(DirCursor::default()),
            tmp_seq: AtomicU64::new(0),
            pid: std::process::id(),
            last_path: std::sync::atomic::AtomicU8::new(0),
            locks: (0..FILE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            unsettled: Mutex::new(HashMap::new()),
            unflushed: Mutex::new(HashMap::new()),
            flushing: Mutex::new(()),
            sealed_at_start: Mutex::new(Vec::new()),
            settle_wanted: Arc::default(),
        };
        for p in store
            .paths
            .iter()
            .filter(|p| !failed.contains(&p.index.into()))
        {
            store.sweep_temp_dir(p)?;
        }
        for i in (0..store.paths.len()).filter(|i| !failed.contains(i)) {
            let journal = store
                .replay_journal(&store.paths[i])
                .map_err(|e| anyhow::anyhow!("storage.store_paths[{i}]: upload journal: {e}"))?;
            store.paths[i].journal = journal;
        }
        Ok(store)
    }

    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    pub fn subdir_count(&self) -> u32 {
        self.subdir_count
    }

    pub fn paths(&self) -> &[StorePath] {
        &self.paths
    }

    /// Holds off other changes to `filename` (`M00/XX/YY/name`) while the guard lives.
    pub async fn lock_file(&self, filename: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let i = crc32fast::hash(filename.as_bytes()) as usize % FILE_LOCKS;
        self.locks[i].lock().await
    }

    pub fn fsync_enabled(&self) -> bool {
        self.fsync
    }
}

#[cfg(test)]
mod tests;
