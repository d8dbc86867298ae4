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

use super::journal::{self, Journal, RecordKind, Ticket};
use crate::config::{DistributePathMode, Reserved, StorageConfig};
use crate::proto::cmd::errno;
use crate::proto::fileid::{RemoteName, METADATA_SUFFIX};
use crate::proto::storage::{decode_metadata, encode_metadata, MetaOp, MetaPair};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Name of a temp file whose content is complete and durable and whose place is in its name:
/// `sealed-XX-YY-<name>` in `.tmp` stands for `data/XX/YY/<name>` (see [`Store::create`]).
const SEALED_PREFIX: &str = "sealed-";
/// The same for a file a peer created and replicated here ([`Store::create_at`]): after a
/// crash it is logged again as a replica record, which is not sent back to its source. Such a
/// file is linked into place before its content is flushed, so at start-up its content is
/// checked against its name also when it is found in place.
const SEALED_REPLICA_PREFIX: &str = "replica-";

/// An error with the errno FastDFS would put in the response.
#[derive(Debug, thiserror::Error)]
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
                _ => errno::EIO,
            });
        StoreError {
            status,
            msg: e.to_string(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Space on one store path, as reported to trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    pub total_mb: u64,
    pub free_mb: u64,
}

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

/// Round-robin directory cursor (`file_distribute_path_mode: round_robin`).
#[derive(Debug, Default)]
struct DirCursor {
    dir1: u32,
    dir2: u32,
    files_in_dir: u32,
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

/// How `place_journaled` went.
enum Journaled {
    Placed(Ticket),
    Taken,
    /// Both segments are full until the next settle.
    NoRoom,
}

/// What start-up did with one upload journal record.
enum Replayed {
    /// The file is in place and whole (`moved`: it was missing or torn, and written again).
    Found(SealedFile),
    /// A file deleted after its record: removed, if a crash had brought it back.
    Removed,
    /// A record naming no file of this store (ignored).
    Refused,
}

/// A store path's upload journal, under `data/`.
const JOURNAL_DIR: &str = ".journal";

/// New files whose directory entries are not durable yet: final path -> sealed name.
#[derive(Debug, Default)]
pub struct Unsettled(HashMap<PathBuf, PathBuf>);

/// A file that a crash caught between its reply and its directory fsync, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    /// `M00/XX/YY/<name>`
    pub filename: String,
    pub create_time: u32,
    /// True when only the sealed name had survived and the file was moved into place now.
    pub moved: bool,
    /// A peer's file replicated here (`create_at`), not one created here.
    pub replica: bool,
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
        for (i, root) in cfg.store_paths.iter().enumerate() {
            let data = root.join("data");
            let tmp = data.join(".tmp");
            std::fs::create_dir_all(&tmp).map_err(|e| {
                anyhow::anyhow!(
                    "storage.store_paths[{i}]: cannot create {}: {e}",
                    tmp.display()
                )
            })?;
            paths.push(StorePath {
                index: i as u8,
                root: root.clone(),
                data,
                tmp,
                dirs_made: (0..(subdirs * subdirs).div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                journal: None,
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
        for p in &store.paths {
            store.sweep_temp_dir(p)?;
        }
        for i in 0..store.paths.len() {
            let journal = store
                .replay_journal(&store.paths[i])
                .map_err(|e| anyhow::anyhow!("storage.store_paths[{i}]: upload journal: {e}"))?;
            store.paths[i].journal = journal;
        }
        Ok(store)
    }

    /// Start-up: makes true, durably, what the upload journal's records that still count ask
    /// for (files written again where a crash lost or tore them, files deleted since their
    /// record removed), then starts the journal afresh (with fsync on) or removes it.
    fn replay_journal(&self, p: &StorePath) -> StoreResult<Option<Arc<Journal>>> {
        let dir = p.data.join(JOURNAL_DIR);
        let plan = journal::read_pending(&dir)?;
        if !plan.is_empty() {
            let (mut kept, mut restored, mut removed) = (0, 0, 0);
            for (name, content) in plan {
                match self.replay_record(p, &name, content)? {
                    Replayed::Found(f) => {
                        *(if f.moved { &mut restored } else { &mut kept }) += 1;
                        self.found_at_start(f);
                    }
                    Replayed::Removed => removed += 1,
                    Replayed::Refused => {}
                }
            }
            // What was written and removed here must be on the disk before the records go.
            syncfs(&File::open(&p.data)?)?;
            tracing::info!(path = %p.root.display(), kept, restored, removed,
                "upload journal replayed: files a crash caught before they settled");
        }
        if self.fsync {
            let started = Journal::start(&dir, journal::SEGMENT_SIZE, self.settle_wanted.clone());
            return Ok(Some(started?));
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(None),
        }
    }

    /// Makes one journal record true: `content` under `name` (`XX/YY/<file name>`), or no file
    /// there at all (`None`: deleted after its record).
    fn replay_record(
        &self,
        p: &StorePath,
        name: &str,
        content: Option<Vec<u8>>,
    ) -> StoreResult<Replayed> {
        let path = format!("M{:02X}/{name}", p.index);
        let target = RemoteName::parse_str(&path).ok().filter(|rn| {
            (rn.dir1 as u32) < self.subdir_count
                && (rn.dir2 as u32) < self.subdir_count
                && plain_file(rn)
        });
        let Some(target) = target else {
            tracing::warn!(record = %name, "upload journal: a record names no file of this store; ignored");
            return Ok(Replayed::Refused);
        };
        let dst = p
            .data
            .join(format!("{:02X}/{:02X}", target.dir1, target.dir2))
            .join(&target.name);
        let Some(content) = content else {
            for gone in [Self::meta_path(&dst), dst] {
                match std::fs::remove_file(gone) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            return Ok(Replayed::Removed);
        };
        if !name_promises(&target, &content) {
            tracing::warn!(record = %name, "upload journal: a record's content is not what its name says; ignored");
            return Ok(Replayed::Refused);
        }
        let found = SealedFile {
            filename: path,
            create_time: target.info.create_time,
            moved: false,
            replica: false,
        };
        match std::fs::read(&dst) {
            Ok(now) if name_promises(&target, &now) => return Ok(Replayed::Found(found)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        // Missing, short or torn: written again, in place of whatever is there.
        let mut tmp = self.temp_file(p.index, content.len() as u64)?;
        tmp.write_all(&content)?;
        self.commit_to(tmp, &dst, true)?;
        tracing::warn!(file = %found.filename, "upload journal: wrote again a file a crash had lost or torn");
        Ok(Replayed::Found(SealedFile {
            moved: true,
            ..found
        }))
    }

    /// Notes a file found at start-up that must be logged again (once).
    fn found_at_start(&self, file: SealedFile) {
        let mut list = self
            .sealed_at_start
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|f| f.filename == file.filename) {
            list.push(file);
        }
    }

    /// Start-up: a sealed file is finished (moved into place if only its sealed name survived,
    /// after checking its size and CRC32 against its name); every other temp file is what an
    /// interrupted upload left, and is removed.
    fn sweep_temp_dir(&self, p: &StorePath) -> anyhow::Result<()> {
        let mut stale = 0;
        for entry in std::fs::read_dir(&p.tmp)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let found = file_name
                .to_str()
                .and_then(|n| self.sealed_target(p, n))
                .map(|(target, replica)| self.finish_sealed(p, &entry.path(), target, replica));
            match found {
                Some(Ok(Some(sealed))) => self.found_at_start(sealed),
                Some(Err(e)) => {
                    anyhow::bail!(
                        "storage.store_paths[{}]: cannot finish {}: {e}",
                        p.index,
                        entry.path().display()
                    )
                }
                Some(Ok(None)) | None => {
                    if std::fs::remove_file(entry.path()).is_ok() {
                        stale += 1;
                    }
                }
            }
        }
        if stale > 0 {
            tracing::info!(path = %p.tmp.display(), stale, "removed temp files of interrupted uploads");
        }
        Ok(())
    }

    /// The file a sealed temp name stands for, if `file_name` is one and names a valid new
    /// (not appender, not trunk) file in this store path's directory range; true for a replica.
    fn sealed_target(&self, p: &StorePath, file_name: &str) -> Option<(RemoteName, bool)> {
        let (rest, replica) = match file_name.strip_prefix(SEALED_PREFIX) {
            Some(rest) => (rest, false),
            None => (file_name.strip_prefix(SEALED_REPLICA_PREFIX)?, true),
        };
        let (xx, rest) = rest.split_once('-')?;
        let (yy, name) = rest.split_once('-')?;
        let path = format!("M{:02X}/{xx}/{yy}/{name}", p.index);
        let rn = RemoteName::parse_str(&path).ok()?;
        let in_range = (rn.dir1 as u32) < self.subdir_count && (rn.dir2 as u32) < self.subdir_count;
        (in_range && plain_file(&rn)).then_some((rn, replica))
    }

    /// Finishes one sealed file: Some if it names a real file (already in place, or moved there
    /// now), None if it is garbage (to be removed).
    fn finish_sealed(
        &self,
        p: &StorePath,
        sealed: &Path,
        target: RemoteName,
        replica: bool,
    ) -> io::Result<Option<SealedFile>> {
        let mut found = SealedFile {
            filename: target.to_path_string(),
            create_time: target.info.create_time,
            moved: false,
            replica,
        };
        let dir = self.ensure_dir(p, target.dir1, target.dir2)?;
        let dst = dir.join(&target.name);
        if dst.exists() {
            // The link into place had reached the disk; only the directory fsync was pending.
            // A peer's file was linked before its content was flushed: a power cut may have
            // left it short or empty. Its sender resends what we had not confirmed.
            if replica && !name_promises(&target, &std::fs::read(&dst)?) {
                tracing::warn!(file = %found.filename, "a peer's file lost its content in a crash; removed (its source sends it again)");
                std::fs::remove_file(&dst)?;
                return Ok(None);
            }
            std::fs::remove_file(sealed)?;
            return Ok(Some(found));
        }
        // Only the sealed name survived: the content must be exactly what its name promises.
        let content = std::fs::read(sealed)?;
        if !name_promises(&target, &content) {
            tracing::warn!(path = %sealed.display(), "sealed temp file does not match its name; removed");
            return Ok(None);
        }
        rename_noreplace(sealed, &dst)?;
        if self.fsync {
            fsync_dir(&dir)?;
        }
        tracing::warn!(file = %found.filename, "finished a file whose move into place a crash had lost");
        found.moved = true;
        Ok(Some(found))
    }

    /// Sealed files found by `open` (each once): the storage re-logs them, as their binlog
    /// records may not have been flushed before the crash.
    pub fn take_sealed_at_start(&self) -> Vec<SealedFile> {
        std::mem::take(
            &mut *self
                .sealed_at_start
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
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

    /// The reserved space may be overridden by the tracker's parameters.
    pub fn set_reserved(&self, r: Reserved) {
        *self.reserved.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }

    fn reserved(&self) -> Reserved {
        *self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (total, free) bytes of the file system holding `path`.
    fn space(path: &Path) -> io::Result<(u64, u64)> {
        let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let frsize = st.fragment_size() as u64;
        Ok((
            st.blocks() as u64 * frsize,
            st.blocks_available() as u64 * frsize,
        ))
    }

    /// Space per store path, in MB, as BEAT / REPORT_DISK_USAGE want it.
    pub fn disk_usage(&self) -> Vec<DiskUsage> {
        self.paths
            .iter()
            .map(|p| match Self::space(&p.root) {
                Ok((total, free)) => DiskUsage {
                    total_mb: total >> 20,
                    free_mb: free >> 20,
                },
                Err(e) => {
                    tracing::warn!(path = %p.root.display(), error = %e, "statvfs failed");
                    DiskUsage::default()
                }
            })
            .collect()
    }

    fn has_room(&self, p: &StorePath, size: u64) -> bool {
        match Self::space(&p.root) {
            Ok((total, free)) => free.saturating_sub(size) >= self.reserved().bytes_of(total),
            Err(_) => false,
        }
    }

    /// Picks the store path for a new file of `size` bytes: the tracker's choice when it is
    /// valid and has room, else the path with the most free space that has room (255 = "storage
    /// chooses"); ENOSPC when none keeps `reserved_storage_space` free.
    pub fn choose_path(&self, requested: u8, size: u64) -> StoreResult<u8> {
        if requested != 0xFF {
            let p = self.paths.get(requested as usize).ok_or_else(|| {
                StoreError::new(
                    errno::EINVAL,
                    format!("store path index {requested} out of range"),
                )
            })?;
            if self.has_room(p, size) {
                self.last_path.store(requested, Ordering::Relaxed);
                return Ok(requested);
            }
        }
        let reserved = self.reserved();
        let chosen = self
            .paths
            .iter()
            .filter_map(|p| {
                let (total, free) = Self::space(&p.root).ok()?;
                let left = free.checked_sub(size)?;
                (left >= reserved.bytes_of(total)).then_some((free, p.index))
            })
            .max()
            .map(|(_, i)| i)
            .ok_or_else(|| {
                StoreError::new(errno::ENOSPC, "no store path with enough free space")
            })?;
        self.last_path.store(chosen, Ordering::Relaxed);
        Ok(chosen)
    }

    /// Index of the store path that received the last new file.
    pub fn current_write_path(&self) -> u8 {
        self.last_path.load(Ordering::Relaxed)
    }

    fn path(&self, index: u8) -> StoreResult<&StorePath> {
        self.paths.get(index as usize).ok_or_else(|| {
            StoreError::new(
                errno::EINVAL,
                format!("store path M{index:02X} does not exist"),
            )
        })
    }

    /// Where a remote name lives on disk; EINVAL for a store path or directory outside the layout.
    pub fn data_path(&self, name: &RemoteName) -> StoreResult<PathBuf> {
        let p = self.path(name.store_path_index)?;
        if name.dir1 as u32 >= self.subdir_count || name.dir2 as u32 >= self.subdir_count {
            return Err(StoreError::new(errno::EINVAL, "subdirectory out of range"));
        }
        Ok(p.root.join(name.relative_data_path()))
    }

    /// The metadata sidecar of a data file.
    pub fn meta_path(data_path: &Path) -> PathBuf {
        let mut s = data_path.as_os_str().to_owned();
        s.push(METADATA_SUFFIX);
        PathBuf::from(s)
    }

    /// Directory for the next new file (round robin, moving on every `rotate_count` files), or
    /// derived from `name_hash` in hash mode.
    pub fn next_dirs(&self, name_hash: u32) -> (u8, u8) {
        let n = self.subdir_count;
        match self.mode {
            DistributePathMode::Hash => (
                ((name_hash >> 16) % n) as u8,
                ((name_hash & 0xFFFF) % n) as u8,
            ),
            DistributePathMode::RoundRobin => {
                let mut c = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
                let out = (c.dir1 as u8, c.dir2 as u8);
                c.files_in_dir += 1;
                if c.files_in_dir >= self.rotate_count {
                    c.files_in_dir = 0;
                    c.dir2 += 1;
                    if c.dir2 >= n {
                        c.dir2 = 0;
                        c.dir1 = (c.dir1 + 1) % n;
                    }
                }
                out
            }
        }
    }

    /// Makes sure `data/XX/YY` exists (durably, when fsync is on).
    fn ensure_dir(&self, p: &StorePath, dir1: u8, dir2: u8) -> io::Result<PathBuf> {
        let dir = p.data.join(format!("{dir1:02X}/{dir2:02X}"));
        let bit = dir1 as usize * self.subdir_count as usize + dir2 as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if p.dirs_made[word].load(Ordering::Relaxed) & mask != 0 {
            return Ok(dir);
        }
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            if self.fsync {
                if let Some(parent) = dir.parent() {
                    fsync_dir(parent)?;
                }
                fsync_dir(&p.data)?;
            }
        }
        p.dirs_made[word].fetch_or(mask, Ordering::Relaxed);
        Ok(dir)
    }

    /// A new temp file in the store path's `.tmp` directory for `size` bytes, removed on drop
    /// unless committed. Files of at least `direct_io_min_size` are also opened with O_DIRECT
    /// (where the filesystem allows it).
    pub fn temp_file(&self, index: u8, size: u64) -> StoreResult<TempFile> {
        let p = self.path(index)?;
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = p.tmp.join(format!("{}-{seq}.tmp", std::process::id()));
        Ok(self.open_temp(index, path, size)?)
    }

    /// Opens a stored file for the replication sender. With fsync on, a file of
    /// `direct_io_min_size` or more was uploaded with O_DIRECT and is not in the page cache;
    /// reading it through the cache would fill the cache with a stream read once (pushing out
    /// what downloads read again) and pay for every page it allocates, so it is also opened
    /// with O_DIRECT. With fsync off uploads stay in the page cache, and a direct read would
    /// first force their dirty pages out, so those are sent from the cache.
    pub fn open_to_send(&self, path: &Path) -> io::Result<FileToSend> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let direct = match self.direct_min {
            Some(min) if size >= min => open_direct_with(path, OpenOptions::new().read(true)),
            _ => None,
        };
        Ok(FileToSend { file, direct, size })
    }

    fn open_temp(&self, index: u8, path: PathBuf, size: u64) -> io::Result<TempFile> {
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)?;
        let direct = match self.direct_min {
            Some(min) if size >= min => open_direct(&path),
            _ => None,
        };
        Ok(TempFile {
            writeback: (self.fsync && direct.is_none()).then_some(Writeback::default()),
            path,
            file: Some(file),
            direct,
            len: 0,
            store_path_index: index,
        })
    }

    /// Stores a new file whose whole content is in memory (small uploads) with one device
    /// flush before the reply instead of `commit`'s two. The content goes to
    /// `.tmp/sealed-XX-YY-<name>`, a name that says where the file belongs and, through the
    /// file ID, its size and CRC32; it is fdatasynced, which also makes a new file's directory
    /// entry durable (ext4 with or without journal, xfs, btrfs), then hard-linked to
    /// `data/XX/YY/<name>`. The fsync of that directory, and dropping the sealed name, wait
    /// for `settle`, which the storage runs for all new files every `binlog_flush_interval`.
    /// After a crash in between, `open` finds the sealed name and finishes the move (checking
    /// size and CRC32 first), so an acknowledged file is never lost and a file ID never names
    /// a partial file. Names that do not describe their content (appenders) take `commit`'s
    /// way, as does everything where hard links are refused. Files up to
    /// `journal::MAX_CONTENT` take the upload journal's way instead (`place_journaled`) while
    /// it has room.
    /// `make_name` must describe `content` (its size and CRC32, as upload computed them).
    pub fn create(
        &self,
        index: u8,
        content: &[u8],
        mut make_name: impl FnMut() -> String,
        dirs: impl Fn(&str) -> (u8, u8),
    ) -> StoreResult<Created> {
        for _ in 0..16 {
            let name = make_name();
            let (d1, d2) = dirs(&name);
            let target = RemoteName::parse_str(&format!("M{index:02X}/{d1:02X}/{d2:02X}/{name}"))
                .map_err(|e| StoreError::new(errno::EINVAL, e.to_string()))?;
            debug_assert!(!plain_file(&target) || name_promises(&target, content));
            match self.store_new(&target, content, plain_file(&target), false) {
                Err(e) if e.status == errno::EEXIST => continue,
                done => {
                    return done.map(|record| Created {
                        dirs: (d1, d2),
                        name,
                        record,
                    })
                }
            }
        }
        Err(StoreError::new(
            errno::EEXIST,
            "could not find a free file name",
        ))
    }

    /// As `create`, for a file whose name is given (a peer's new file, replicated here);
    /// EEXIST if the name is taken. The content comes from the network, so it is checked
    /// against the name before the sealed way may vouch for it. That way does not flush the
    /// file: `flush_replicas` flushes peers' files in batches (the sender keeps every record
    /// we acknowledged until we confirm it, and resends it if we go away first).
    pub fn create_at(&self, target: &RemoteName, content: &[u8]) -> StoreResult<()> {
        let sealable = plain_file(target) && name_promises(target, content);
        self.store_new(target, content, sealable, true).map(drop)
    }

    /// A new file at `target`: the one-flush way when `sealable` (its name describes its
    /// content), else temp file, fdatasync, rename, directory fsync. EEXIST if taken.
    fn store_new(
        &self,
        target: &RemoteName,
        content: &[u8],
        sealable: bool,
        replica: bool,
    ) -> StoreResult<Option<Ticket>> {
        let p = self.path(target.store_path_index)?;
        let (d1, d2) = (target.dir1, target.dir2);
        let journal = p.journal.as_ref().filter(|_| sealable && !replica);
        if let Some(journal) = journal.filter(|_| content.len() <= journal::MAX_CONTENT) {
            match self.place_journaled(p, journal, (d1, d2), &target.name, content)? {
                Journaled::Placed(record) => return Ok(Some(record)),
                Journaled::Taken => return Err(StoreError::new(errno::EEXIST, "file exists")),
                Journaled::NoRoom => {}
            }
            // Both segments are full until the next settle: the sealed way meanwhile.
        }
        if self.fsync && sealable {
            return match self.place_sealed(p, (d1, d2), &target.name, content, replica)? {
                true => Ok(None),
                false => Err(StoreError::new(errno::EEXIST, "file exists")),
            };
        }
        let dir = self.ensure_dir(p, d1, d2)?;
        let mut tmp = self.temp_file(p.index, content.len() as u64)?;
        tmp.write_all(content)?;
        self.commit_to(tmp, &dir.join(&target.name), false)?;
        Ok(None)
    }

    /// `create`'s way for small files with fsync on: the file through the page cache, its record
    /// flushed in the upload journal, then the file renamed into place (see `journal`). After a
    /// crash, start-up writes the file again from its record if it is not whole.
    fn place_journaled(
        &self,
        p: &StorePath,
        journal: &Arc<Journal>,
        (d1, d2): (u8, u8),
        name: &str,
        content: &[u8],
    ) -> StoreResult<Journaled> {
        let dir = self.ensure_dir(p, d1, d2)?;
        let dst = dir.join(name);
        if dst.symlink_metadata().is_ok() {
            return Ok(Journaled::Taken);
        }
        let mut tmp = self.temp_file(p.index, content.len() as u64)?;
        tmp.write_all(content)?;
        tmp.seal(false)?;
        // Renamed only once its record is durable: a crash before leaves just a temp file.
        let record_name = format!("{d1:02X}/{d2:02X}/{name}");
        let Some(record) = journal.append(RecordKind::Created, &record_name, content, false)?
        else {
            return Ok(Journaled::NoRoom);
        };
        let placed = rename_noreplace(&tmp.path, &dst);
        // Taken meanwhile, the record is harmless: it names a file whose name says its
        // content, and start-up never writes over a whole file. But a delete of that file
        // must now be journaled too, or start-up would bring it back from this record.
        record.placed(dst);
        match placed {
            Ok(()) => {
                tmp.disarm();
                Ok(Journaled::Placed(record))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Journaled::Taken),
            Err(e) => Err(e.into()),
        }
    }

    /// `create`'s one-flush way for one name: false if the name is taken.
    fn place_sealed(
        &self,
        p: &StorePath,
        (d1, d2): (u8, u8),
        name: &str,
        content: &[u8],
        replica: bool,
    ) -> io::Result<bool> {
        let dir = self.ensure_dir(p, d1, d2)?;
        let dst = dir.join(name);
        let prefix = if replica {
            SEALED_REPLICA_PREFIX
        } else {
            SEALED_PREFIX
        };
        let sealed = p.tmp.join(format!("{prefix}{d1:02X}-{d2:02X}-{name}"));
        let mut tmp = match self.open_temp(p.index, sealed, content.len() as u64) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        };
        tmp.write_all(content)?;
        // A peer's file is flushed later, with others (`flush_replicas`).
        tmp.seal(!replica)?;
        match std::fs::hard_link(&tmp.path, &dst) {
            Ok(()) => {
                let sealed = std::mem::take(&mut tmp.path);
                let pending = if replica {
                    &self.unflushed
                } else {
                    &self.unsettled
                };
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(dst, sealed);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) if links_unsupported(&e) => {
                if replica {
                    // Without a link there is no sealed name to check it by after a crash.
                    File::open(&tmp.path)?.sync_data()?;
                }
                match rename_noreplace(&tmp.path, &dst) {
                    Ok(()) => {
                        tmp.disarm();
                        fsync_dir(&dir)?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

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
        for j in self.paths.iter().filter_map(|p| p.journal.as_ref()) {
            match j.retire_closed(|| syncfs(j.file())) {
                Ok(n) => settled += n,
                Err(e) => failed = failed.or(Some(e)),
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

    /// Durably moves `tmp` to `data/XX/YY/<name>` without replacing an existing file.
    /// `make_name` is asked again (new random bits) if the name is taken. Returns the directory
    /// and name used.
    pub fn commit(
        &self,
        mut tmp: TempFile,
        mut make_name: impl FnMut() -> String,
        dirs: impl Fn(&str) -> (u8, u8),
    ) -> StoreResult<(u8, u8, String)> {
        let p = self.path(tmp.store_path_index)?;
        tmp.seal(self.fsync)?;
        for _ in 0..16 {
            let name = make_name();
            let (d1, d2) = dirs(&name);
            let dir = self.ensure_dir(p, d1, d2)?;
            let dst = dir.join(&name);
            match rename_noreplace(&tmp.path, &dst) {
                Ok(()) => {
                    tmp.disarm();
                    if self.fsync {
                        fsync_dir(&dir)?;
                    }
                    return Ok((d1, d2, name));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::new(
            errno::EEXIST,
            "could not find a free file name",
        ))
    }

    /// Durably moves `tmp` to exactly `dst` (slave files: the name is fixed); EEXIST if taken.
    pub fn commit_as(&self, tmp: TempFile, dst: &Path) -> StoreResult<()> {
        self.commit_to(tmp, dst, false)
    }

    /// As `commit_as`; with `replace` an existing file is atomically overwritten (sync updates).
    /// Creates the `XX/YY` directory when needed.
    pub fn commit_to(&self, mut tmp: TempFile, dst: &Path, replace: bool) -> StoreResult<()> {
        tmp.seal(self.fsync)?;
        if let Some(dir) = dst.parent() {
            if !dir.is_dir() {
                std::fs::create_dir_all(dir)?;
                if self.fsync {
                    // `XX/YY` may both be new: make both entries durable.
                    for up in dir.ancestors().skip(1).take(2) {
                        fsync_dir(up)?;
                    }
                }
            }
        }
        if replace {
            std::fs::rename(&tmp.path, dst)?;
        } else {
            rename_noreplace(&tmp.path, dst)?;
        }
        tmp.disarm();
        if self.fsync {
            if let Some(dir) = dst.parent() {
                fsync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Holds off other changes to `filename` (`M00/XX/YY/name`) while the guard lives.
    pub async fn lock_file(&self, filename: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let i = crc32fast::hash(filename.as_bytes()) as usize % FILE_LOCKS;
        self.locks[i].lock().await
    }

    pub fn fsync_enabled(&self) -> bool {
        self.fsync
    }

    /// Removes a data file and its metadata; returns whether metadata existed. ENOENT when the
    /// file does not exist.
    pub fn delete(&self, data_path: &Path) -> StoreResult<bool> {
        self.remove(data_path)?;
        let had_meta = match std::fs::remove_file(Self::meta_path(data_path)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        Ok(had_meta)
    }

    /// Removes one file (a data file or a `-m`). A file removed before it settled (or was
    /// flushed) loses its sealed name too, or gets a `Deleted` record in the upload journal,
    /// or a crash would bring it back at start-up.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        // Held until the file is unlinked: its segment is not retired before.
        let mut deleted_records = Vec::new();
        for p in &self.paths {
            let (Some(journal), Ok(name)) = (&p.journal, path.strip_prefix(&p.data)) else {
                continue;
            };
            if let Some(name) = name.to_str() {
                deleted_records.extend(journal.forget(path, name)?);
            }
        }
        std::fs::remove_file(path)?;
        drop(deleted_records);
        for pending in [&self.unsettled, &self.unflushed] {
            let sealed = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(path);
            if let Some(sealed) = sealed {
                let _ = std::fs::remove_file(sealed);
            }
        }
        Ok(())
    }

    /// Reads the metadata list of a file: ENOENT if the file, or its metadata, does not exist.
    pub fn get_metadata(&self, data_path: &Path) -> StoreResult<Vec<u8>> {
        if !data_path.is_file() {
            return Err(StoreError::new(errno::ENOENT, "no such file"));
        }
        Ok(std::fs::read(Self::meta_path(data_path))?)
    }

    /// Applies SET_METADATA; returns what happened to the sidecar for the binlog.
    pub fn set_metadata(
        &self,
        data_path: &Path,
        op: MetaOp,
        new: Vec<MetaPair>,
        max_size: u64,
    ) -> StoreResult<MetaChange> {
        if !data_path.is_file() {
            return Err(StoreError::new(errno::ENOENT, "no such file"));
        }
        let meta = Self::meta_path(data_path);
        let old = match std::fs::read(&meta) {
            Ok(raw) => Some(raw),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let mut map = std::collections::BTreeMap::new();
        if op == MetaOp::Merge {
            if let Some(raw) = &old {
                // A sidecar we cannot parse is replaced rather than blocking every later change.
                for (k, v) in decode_metadata(raw).unwrap_or_default() {
                    map.insert(k, v);
                }
            }
        }
        for (k, v) in new {
            map.insert(k, v);
        }
        if map.is_empty() {
            if old.is_some() && op == MetaOp::Overwrite {
                std::fs::remove_file(&meta)?;
                return Ok(MetaChange::Removed);
            }
            return Ok(MetaChange::Unchanged);
        }
        let pairs: Vec<MetaPair> = map.into_iter().collect();
        let raw = encode_metadata(&pairs);
        if raw.len() as u64 > max_size {
            return Err(StoreError::new(
                errno::EINVAL,
                "metadata over max_metadata_size",
            ));
        }
        // Written to the store path's temp directory (swept at start-up), then renamed over the
        // old sidecar.
        let index = self
            .paths
            .iter()
            .find(|p| data_path.starts_with(&p.data))
            .map(|p| p.index)
            .ok_or_else(|| StoreError::new(errno::EINVAL, "path outside the store"))?;
        let mut tmp = self.temp_file(index, 0)?;
        tmp.write_all(&raw)?;
        self.commit_to(tmp, &meta, true)?;
        Ok(if old.is_some() {
            MetaChange::Updated
        } else {
            MetaChange::Created
        })
    }
}

/// What SET_METADATA did to the `-m` sidecar (binlog: C, U or D of `<name>-m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaChange {
    Created,
    Updated,
    Removed,
    Unchanged,
}

/// An upload in progress. Dropping it (client gone, error) removes the file.
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
    /// The same file opened with O_DIRECT, for large uploads (see `direct_io_min_size`): whole
    /// aligned blocks go from our buffer to the disk without a copy into the page cache.
    direct: Option<File>,
    /// Bytes written so far; every write is positioned (pwrite), so both handles agree.
    len: u64,
    store_path_index: u8,
    /// With `fsync` on: start writing back to disk while the upload still arrives.
    writeback: Option<Writeback>,
}

/// O_DIRECT wants buffer addresses, offsets and lengths in whole logical blocks; 4 KiB covers
/// both 512-byte and 4 KiB devices.
pub const DIRECT_ALIGN: usize = 4096;

/// A reusable buffer whose bytes start on a `DIRECT_ALIGN` boundary, so a chunk received into it
/// can be written to an O_DIRECT file as it is.
#[derive(Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// Makes the buffer `len` bytes long (old contents are not kept when it has to grow).
    pub fn resize(&mut self, len: usize) {
        if self.raw.len() < len + DIRECT_ALIGN {
            self.raw = vec![0; len + DIRECT_ALIGN];
            self.start = self.raw.as_ptr().align_offset(DIRECT_ALIGN);
        }
        self.len = len;
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// A large upload's pages are handed to the disk every `WRITEBACK_STEP` (sync_file_range
/// SYNC_FILE_RANGE_WRITE: starts writeback, does not wait), so the fdatasync before the reply
/// finds little left to write instead of the whole file (RocksDB's `bytes_per_sync`).
const WRITEBACK_STEP: u64 = 8 << 20;

#[derive(Debug, Default)]
struct Writeback {
    started_upto: u64,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn store_path_index(&self) -> u8 {
        self.store_path_index
    }

    /// Appends `buf`. With a direct handle, the whole blocks of an aligned buffer at an aligned
    /// offset bypass the page cache; the rest (an upload's last partial block) is written
    /// through it.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let Some(f) = self.file.as_ref() else {
            return Err(io::Error::other("temp file already closed"));
        };
        if let Some(direct) = &self.direct {
            let aligned = self.len.is_multiple_of(DIRECT_ALIGN as u64)
                && (buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN);
            let whole = buf.len() - buf.len() % DIRECT_ALIGN;
            if aligned && whole > 0 {
                match direct.write_all_at(&buf[..whole], self.len) {
                    Ok(()) => {
                        self.len += whole as u64;
                        buf = &buf[whole..];
                    }
                    // A device wanting coarser alignment than ours refuses with EINVAL: write
                    // this upload through the page cache instead (bytes a partial direct write
                    // put there are simply written again).
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        tracing::warn!(path = %self.path.display(), error = %e,
                            "direct write refused; this upload continues through the page cache");
                        self.direct = None;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        f.write_all_at(buf, self.len)?;
        self.len += buf.len() as u64;
        if let Some(wb) = self.writeback.as_mut() {
            let pending = self.len - wb.started_upto;
            if pending >= WRITEBACK_STEP {
                start_writeback(f, wb.started_upto, pending);
                wb.started_upto = self.len;
            }
        }
        Ok(())
    }

    /// Ends writing: makes the content durable (when `fsync`) and closes the file.
    fn seal(&mut self, fsync: bool) -> io::Result<()> {
        match self.file.take() {
            Some(f) if fsync => f.sync_data(),
            _ => Ok(()),
        }
    }

    /// Whether whole blocks of this upload bypass the page cache (tests look).
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    fn disarm(&mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove temp file");
            }
        }
    }
}

/// A stored file opened to be sent to a peer ([`Store::open_to_send`]).
pub struct FileToSend {
    /// Read through the page cache (sendfile), and for the unaligned tail of a direct read.
    pub file: File,
    /// The same file opened with O_DIRECT, for files of `direct_io_min_size` and more.
    pub direct: Option<File>,
    pub size: u64,
}

impl FileToSend {
    /// Reads the file's bytes from `offset` into `buf` until it is full or `size` is reached;
    /// 0 only at `size` or when the file has shrunk. With a direct handle, `offset` and `buf`
    /// aligned to `DIRECT_ALIGN` (an [`AlignedBuf`] read in whole chunks) are read with
    /// O_DIRECT; a device refusing our alignment (EINVAL) has the rest read through the cache.
    pub fn read_chunk(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let mut got = 0;
        while got < want {
            let at = offset + got as u64;
            let rest = &mut buf[got..];
            // The last block is asked for whole; the read stops at the end of the file.
            let direct_len = (want - got).next_multiple_of(DIRECT_ALIGN).min(rest.len());
            let aligned = at.is_multiple_of(DIRECT_ALIGN as u64)
                && (rest.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
                && direct_len.is_multiple_of(DIRECT_ALIGN);
            let n = match &self.direct {
                Some(direct) if aligned => match direct.read_at(&mut rest[..direct_len], at) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        tracing::warn!(error = %e,
                            "direct read refused; this file is read through the page cache");
                        self.direct = None;
                        continue;
                    }
                    r => r?,
                },
                _ => self.file.read_at(&mut rest[..want - got], at)?,
            };
            if n == 0 {
                break;
            }
            got = (got + n).min(want);
        }
        Ok(got)
    }
}

/// `path` opened for O_DIRECT writes, or None where the filesystem refuses direct I/O (tmpfs
/// before Linux 6.6, some FUSE and network filesystems): such uploads go through the page cache.
fn open_direct(path: &Path) -> Option<File> {
    open_direct_with(path, OpenOptions::new().write(true))
}

/// `path` opened with `options` plus O_DIRECT, or None where the filesystem refuses it.
fn open_direct_with(path: &Path, options: &mut OpenOptions) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match options.custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no direct I/O here; using the page cache");
            None
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` back to disk. Only a hint: the
/// fdatasync at commit is what makes the file durable, so a failure here is ignored.
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a valid open fd; sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A file whose name carries its size and CRC32 for good: not an appender (its size changes),
/// trunk or slave file (a slave's name is its master's).
fn plain_file(name: &RemoteName) -> bool {
    !name.info.is_appender() && !name.info.is_trunk() && !name.is_slave()
}

/// Whether `content` is exactly what `name` says: its size and its CRC32.
fn name_promises(name: &RemoteName, content: &[u8]) -> bool {
    content.len() as u64 == name.info.file_size() && crc32fast::hash(content) == name.info.crc32
}

/// link(2) refused by the filesystem itself (FAT, some FUSE and network filesystems).
fn links_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EOPNOTSUPP))
}

pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Runs `make_durable` once for each of `dirs`, then drops the sealed names of `batch` (final
/// path -> sealed name); on an error the batch goes back to `pending`, to be retried.
fn unseal_once_durable(
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

/// syncfs(2): writes back everything dirty on `f`'s filesystem and flushes the device once.
fn syncfs(f: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a valid open fd; syncfs reads no memory of ours.
    match unsafe { libc::syncfs(f.as_raw_fd()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// rename(2) that fails with EEXIST instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let f = CString::new(from.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let t = CString::new(to.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // File systems without RENAME_NOREPLACE: link(2) never replaces either.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(paths: Vec<PathBuf>) -> StorageConfig {
        let yaml = format!(
            "group: group1\ntrackers: []\nstore_paths: [{}]\nreserved_storage_space: 0%\nfile_distribute_rotate_count: 2\n",
            paths
                .iter()
                .map(|p| format!("\"{}\"", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn large_uploads_bypass_the_page_cache_and_keep_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(vec![dir.path().into()]);
        c.direct_io_min_size = Some(crate::config::ByteSize(1 << 20));
        let store = Store::open(&c).unwrap();
        let content: Vec<u8> = (0..(2 << 20) + 1234).map(|i| (i * 7 % 251) as u8).collect();
        // Under the threshold: page cache only.
        assert!(!store.temp_file(0, (1 << 20) - 1).unwrap().is_direct());
        let mut t = store.temp_file(0, content.len() as u64).unwrap();
        // Where the filesystem has O_DIRECT (tmpfs before 6.6 does not), large files use it.
        let fs_has_direct = open_direct(t.path()).is_some();
        assert_eq!(t.is_direct(), fs_has_direct);
        // Aligned chunks, a misaligned buffer, an unaligned offset, then aligned again: the
        // file holds exactly the bytes in order whichever handle wrote them.
        let mut buf = AlignedBuf::default();
        let mut at = 0;
        for n in [512 << 10, 512 << 10] {
            buf.resize(n);
            buf.copy_from_slice(&content[at..at + n]);
            t.write_all(&buf).unwrap();
            at += n;
        }
        let misaligned = content[at..at + 8192].to_vec().into_boxed_slice();
        t.write_all(&misaligned[..100]).unwrap();
        t.write_all(&misaligned[100..]).unwrap();
        at += 8192;
        buf.resize(content.len() - at);
        buf.copy_from_slice(&content[at..]);
        t.write_all(&buf).unwrap();
        let (d1, d2, name) = store.commit(t, || "big.bin".into(), |_| (0, 0)).unwrap();
        let dst = dir
            .path()
            .join(format!("data/{d1:02X}/{d2:02X}"))
            .join(name);
        assert_eq!(std::fs::read(dst).unwrap(), content);
    }

    /// Flushes `path` and asks the kernel to drop its (now clean) pages from the page cache.
    fn drop_from_page_cache(path: &Path) {
        use std::os::unix::io::AsRawFd;
        let f = File::open(path).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a valid open descriptor; fadvise only changes caching.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
    }

    /// How many of `path`'s pages are in the page cache (mincore of a mapping of it; mapping
    /// a file does not read it).
    fn pages_in_page_cache(path: &Path) -> usize {
        use std::os::unix::io::AsRawFd;
        let f = File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        let page = 4096;
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: a read-only shared mapping of an open file, unmapped before returning;
        // mincore writes one byte per page into `resident`, which has one per page.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            let rc = libc::mincore(addr, len, resident.as_mut_ptr());
            libc::munmap(addr, len);
            assert_eq!(rc, 0);
        }
        resident.iter().filter(|b| *b & 1 == 1).count()
    }

    #[test]
    fn large_files_are_read_for_sending_past_the_page_cache_and_whole() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(vec![dir.path().into()]);
        c.direct_io_min_size = Some(crate::config::ByteSize(1 << 20));
        let store = Store::open(&c).unwrap();
        let content: Vec<u8> = (0..(3 << 20) + 4097)
            .map(|i| (i * 13 % 251) as u8)
            .collect();
        let (big, small) = (dir.path().join("big"), dir.path().join("small"));
        std::fs::write(&big, &content).unwrap();
        std::fs::write(&small, &content[..(1 << 20) - 1]).unwrap();
        assert!(store.open_to_send(&small).unwrap().direct.is_none());
        let mut f = store.open_to_send(&big).unwrap();
        assert_eq!(f.size, content.len() as u64);
        assert_eq!(f.direct.is_some(), open_direct(&big).is_some());
        // As after an O_DIRECT upload: none of the file in the page cache.
        drop_from_page_cache(&big);
        assert_eq!(pages_in_page_cache(&big), 0);
        // Whole aligned chunks, the last one past the end of the file: the bytes in order.
        let mut buf = AlignedBuf::default();
        buf.resize(1 << 20);
        let mut got = Vec::new();
        loop {
            let n = f.read_chunk(got.len() as u64, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, content);
        // Read past the page cache: still none of it there (where direct reads are possible).
        if f.direct.is_some() {
            assert_eq!(pages_in_page_cache(&big), 0);
        }
        // An unaligned offset or buffer is read through the page cache, as exactly.
        let mut odd = vec![0u8; 10_000];
        assert_eq!(f.read_chunk(4097, &mut odd[1..]).unwrap(), 9_999);
        assert_eq!(&odd[1..], &content[4097..4097 + 9_999]);
        // Asked for more than `size` holds (the file grew since it was opened): only `size`.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .write_all_at(b"later", content.len() as u64)
            .unwrap();
        let at = content.len() as u64 - 10;
        assert_eq!(f.read_chunk(at, &mut buf).unwrap(), 10);
        // Shrunk since it was opened: short, then 0.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        assert_eq!(f.read_chunk(0, &mut buf).unwrap(), 1 << 20);
        assert_eq!(f.read_chunk(1 << 20, &mut buf).unwrap(), 0);
    }

    #[test]
    fn direct_io_needs_fsync_on_and_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(vec![dir.path().into()]);
        c.fsync = false;
        let store = Store::open(&c).unwrap();
        assert!(!store.temp_file(0, 1 << 30).unwrap().is_direct());
        // Files written through the page cache are also sent from it.
        let big = dir.path().join("big");
        std::fs::write(&big, vec![1u8; 2 << 20]).unwrap();
        assert!(store.open_to_send(&big).unwrap().direct.is_none());
        c.fsync = true;
        c.direct_io_min_size = None;
        let store = Store::open(&c).unwrap();
        assert!(!store.temp_file(0, 1 << 30).unwrap().is_direct());
        assert!(store.open_to_send(&big).unwrap().direct.is_none());
    }

    #[test]
    fn commit_is_atomic_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let mut t = store.temp_file(0, 0).unwrap();
        t.write_all(b"one").unwrap();
        let tmp_path = t.path().to_path_buf();
        let (d1, d2, name) = store.commit(t, || "a.txt".into(), |_| (1, 2)).unwrap();
        assert_eq!((d1, d2), (1, 2));
        assert!(!tmp_path.exists());
        let dst = dir.path().join("data/01/02").join(&name);
        assert_eq!(std::fs::read(&dst).unwrap(), b"one");
        // Same name again: a second name is asked for.
        let mut t = store.temp_file(0, 0).unwrap();
        t.write_all(b"two").unwrap();
        let mut names = vec!["b.txt".to_string(), "a.txt".to_string()];
        let (_, _, name2) = store
            .commit(t, || names.pop().unwrap(), |_| (1, 2))
            .unwrap();
        assert_eq!(name2, "b.txt");
        assert_eq!(std::fs::read(&dst).unwrap(), b"one");
    }

    /// A valid name for `content` (size and CRC32 in it), as the upload path makes them.
    fn name_for(content: &[u8], rand: u32) -> String {
        use crate::proto::fileid::{new_name, FileInfo, Source};
        let info = FileInfo {
            source: Source::Ip(std::net::Ipv4Addr::new(127, 0, 0, 1)),
            create_time: 1_700_000_000,
            size_field: FileInfo::size_field_for(content.len() as u64, false, rand),
            crc32: crc32fast::hash(content),
        };
        new_name(&info, "jpg", rand)
    }

    fn tmp_names(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join("data/.tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn create_links_into_place_and_settle_drops_the_sealed_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        // The way small files take when the upload journal is full.
        store.paths[0].journal = None;
        let name = name_for(b"photo", 1);
        let made = store
            .create(0, b"photo", || name.clone(), |_| (3, 4))
            .unwrap();
        assert_eq!((made.dirs, made.name.as_str()), ((3, 4), name.as_str()));
        assert!(made.record.is_none());
        let dst = dir.path().join("data/03/04").join(&name);
        assert_eq!(std::fs::read(&dst).unwrap(), b"photo");
        // Until settled, the sealed name keeps the file reachable from `.tmp`.
        assert_eq!(tmp_names(dir.path()), vec![format!("sealed-03-04-{name}")]);
        assert_eq!(store.unsettled_count(), 1);
        // A batch that could not be settled (the binlog flush before it failed) comes back.
        store.put_back(store.unsettled());
        assert_eq!(store.unsettled_count(), 1);
        assert_eq!(store.settle(store.unsettled()).unwrap(), 1);
        assert!(tmp_names(dir.path()).is_empty());
        assert_eq!(std::fs::read(&dst).unwrap(), b"photo");
        assert_eq!(store.settle(store.unsettled()).unwrap(), 0);
        // A taken name makes `create` ask for another; nothing is replaced. (Every name
        // `make_name` offers describes the content, as the upload path builds them.)
        let taken = name_for(b"other", 2);
        let taken_path = dir.path().join("data/03/04").join(&taken);
        std::fs::write(&taken_path, b"earlier").unwrap();
        let mut names = vec![name_for(b"other", 3), taken.clone()];
        let second = store
            .create(0, b"other", || names.pop().unwrap(), |_| (3, 4))
            .unwrap()
            .name;
        assert_ne!(second, name);
        assert_ne!(second, taken);
        assert_eq!(std::fs::read(&taken_path).unwrap(), b"earlier");
        assert_eq!(std::fs::read(&dst).unwrap(), b"photo");
        assert_eq!(
            tmp_names(dir.path()).len(),
            1,
            "only the second file's sealed name"
        );
    }

    #[test]
    fn create_at_stores_a_peers_file_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let name = name_for(b"replica", 10);
        let target = RemoteName::parse_str(&format!("M00/0A/0B/{name}")).unwrap();
        store.create_at(&target, b"replica").unwrap();
        let dst = dir.path().join("data/0A/0B").join(&name);
        assert_eq!(std::fs::read(&dst).unwrap(), b"replica");
        // Not flushed yet: it waits for the next batch flush, not for a directory fsync.
        assert_eq!((store.unflushed_count(), store.unsettled_count()), (1, 0));
        // Its sealed name says it is a peer's file (logged again as a replica after a crash).
        assert_eq!(tmp_names(dir.path()), vec![format!("replica-0A-0B-{name}")]);
        let err = store.create_at(&target, b"replica").unwrap_err();
        assert_eq!(err.status, errno::EEXIST);
        // Content that is not what the name says (an appender grown since) is stored all the
        // same, the two-flush way: a sealed name must never promise what the file is not.
        let grown = RemoteName::parse_str(&format!("M00/0A/0C/{}", name_for(b"x", 11))).unwrap();
        store.create_at(&grown, b"x and more").unwrap();
        assert_eq!((store.unflushed_count(), store.unsettled_count()), (1, 0));
        assert_eq!(
            std::fs::read(dir.path().join("data/0A/0C").join(&grown.name)).unwrap(),
            b"x and more"
        );
        // One flush for the batch, and the sealed name goes with it.
        assert_eq!(store.flush_replicas().unwrap(), 1);
        assert_eq!(store.unflushed_count(), 0);
        assert!(tmp_names(dir.path()).is_empty());
        assert_eq!(std::fs::read(&dst).unwrap(), b"replica");
        assert_eq!(store.flush_replicas().unwrap(), 0);
        // A peer's file deleted before its flush loses its sealed name too.
        let gone = RemoteName::parse_str(&format!("M00/0A/0B/{}", name_for(b"gone", 12))).unwrap();
        store.create_at(&gone, b"gone").unwrap();
        store
            .remove(&dir.path().join("data/0A/0B").join(&gone.name))
            .unwrap();
        assert!(tmp_names(dir.path()).is_empty());
        assert_eq!(store.flush_replicas().unwrap(), 0);
    }

    /// `data/XX/YY/<name>` of a file named `M00/XX/YY/<name>`.
    fn placed(root: &Path, file: &Created) -> PathBuf {
        let (d1, d2) = file.dirs;
        root.join(format!("data/{d1:02X}/{d2:02X}"))
            .join(&file.name)
    }

    #[test]
    fn small_files_are_journaled_and_settle_with_their_segment() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let name = name_for(b"thumb", 1);
        let mut made = store
            .create(0, b"thumb", || name.clone(), |_| (1, 2))
            .unwrap();
        assert_eq!(std::fs::read(placed(dir.path(), &made)).unwrap(), b"thumb");
        // No sealed name, no temp file: the journal's record stands for the file.
        assert!(tmp_names(dir.path()).is_empty());
        assert_eq!(store.unsettled_count(), 0);
        assert!(store.journal_pending());
        let journal_dir = dir.path().join("data/.journal");
        let pending = journal::read_pending(&journal_dir).unwrap();
        assert_eq!(
            pending.get(&format!("01/02/{name}")),
            Some(&Some(b"thumb".to_vec()))
        );
        // A taken name is refused before anything is journaled.
        let segments = || ["0", "1"].map(|i| std::fs::read(journal_dir.join(i)).unwrap());
        let before = segments();
        let err = store
            .create(0, b"thumb", || name.clone(), |_| (1, 2))
            .unwrap_err();
        assert_eq!(err.status, errno::EEXIST);
        assert!(segments() == before, "a refused upload wrote a record");
        // Settling: the segment closes; once the upload has queued its binlog record (it
        // drops its ticket), its files are made durable and its records stop counting.
        store.close_journals();
        std::thread::scope(|s| {
            let retire = s.spawn(|| store.retire_journals().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                !retire.is_finished(),
                "retired before the binlog record was queued"
            );
            made.record = None;
            assert_eq!(retire.join().unwrap(), 1);
        });
        assert!(!store.journal_pending());
        assert!(journal::read_pending(&dir.path().join("data/.journal"))
            .unwrap()
            .is_empty());
        // Larger files, and any while the journal is full, take the sealed way.
        let big = vec![7u8; journal::MAX_CONTENT + 1];
        let big_name = name_for(&big, 2);
        store
            .create(0, &big, || big_name.clone(), |_| (1, 2))
            .unwrap();
        assert_eq!(
            tmp_names(dir.path()),
            vec![format!("sealed-01-02-{big_name}")]
        );
        assert!(!store.journal_pending());
    }

    #[test]
    fn start_up_writes_again_the_journaled_files_a_crash_lost_or_tore() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let mut rand = 10;
        let mut create = |content: &[u8]| {
            rand += 1;
            let name = name_for(content, rand);
            let mut made = store
                .create(0, content, || name.clone(), |_| (3, 3))
                .unwrap();
            made.record = None;
            made
        };
        let (lost, torn, whole, deleted) = (
            create(b"lost"),
            create(b"torn by a power cut"),
            create(b"whole"),
            create(b"deleted"),
        );
        store
            .set_metadata(
                &placed(dir.path(), &deleted),
                MetaOp::Overwrite,
                vec![(b"k".to_vec(), b"v".to_vec())],
                1024,
            )
            .unwrap();
        store.delete(&placed(dir.path(), &deleted)).unwrap();
        // A crash: nothing settles. Then stage what a power cut can leave: an entry lost, a
        // file whose data never reached the disk (zeros, or empty), and a delete undone.
        drop(store);
        std::fs::remove_file(placed(dir.path(), &lost)).unwrap();
        std::fs::write(placed(dir.path(), &torn), [0u8; 19]).unwrap();
        std::fs::write(placed(dir.path(), &deleted), b"deleted").unwrap();
        std::fs::write(Store::meta_path(&placed(dir.path(), &deleted)), b"k\x02v").unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        assert_eq!(std::fs::read(placed(dir.path(), &lost)).unwrap(), b"lost");
        assert_eq!(
            std::fs::read(placed(dir.path(), &torn)).unwrap(),
            b"torn by a power cut"
        );
        assert_eq!(std::fs::read(placed(dir.path(), &whole)).unwrap(), b"whole");
        assert!(!placed(dir.path(), &deleted).exists());
        assert!(!Store::meta_path(&placed(dir.path(), &deleted)).exists());
        assert!(tmp_names(dir.path()).is_empty());
        // Each is logged again once (its binlog record may not have been flushed).
        let mut found = store.take_sealed_at_start();
        found.sort_by_key(|f| f.filename.clone());
        let mut want: Vec<SealedFile> = [(&lost, true), (&torn, true), (&whole, false)]
            .into_iter()
            .map(|(file, moved)| SealedFile {
                filename: format!("M00/{:02X}/{:02X}/{}", file.dirs.0, file.dirs.1, file.name),
                create_time: 1_700_000_000,
                moved,
                replica: false,
            })
            .collect();
        want.sort_by_key(|f| f.filename.clone());
        assert_eq!(found, want);
        // The journal starts afresh: a second start finds nothing to do.
        assert!(!store.journal_pending());
        drop(store);
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        assert!(store.take_sealed_at_start().is_empty());
        // With fsync off the journal is replayed the same, then removed.
        let name = name_for(b"last", 99);
        let last = store
            .create(0, b"last", || name.clone(), |_| (4, 4))
            .unwrap();
        drop(store);
        std::fs::remove_file(placed(dir.path(), &last)).unwrap();
        let mut c = cfg(vec![dir.path().into()]);
        c.fsync = false;
        let store = Store::open(&c).unwrap();
        assert_eq!(std::fs::read(placed(dir.path(), &last)).unwrap(), b"last");
        assert!(!dir.path().join("data/.journal").exists());
        assert_eq!(store.take_sealed_at_start().len(), 1);
    }

    #[test]
    fn a_file_deleted_before_it_settles_does_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let name = name_for(b"gone", 3);
        store
            .create(0, b"gone", || name.clone(), |_| (0, 0))
            .unwrap();
        let dst = dir.path().join("data/00/00").join(&name);
        store.delete(&dst).unwrap();
        assert!(tmp_names(dir.path()).is_empty());
        drop(store);
        let _store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        assert!(!dst.exists());
    }

    #[test]
    fn start_up_finishes_sealed_files_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("data/.tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let seal = |dirs: &str, name: &str, content: &[u8]| {
            std::fs::write(tmp.join(format!("sealed-{dirs}-{name}")), content).unwrap()
        };
        // 1: a crash lost the link into place of a peer's file: moved there at start-up.
        let lost = name_for(b"only the sealed name survived", 4);
        std::fs::write(
            tmp.join(format!("replica-01-02-{lost}")),
            b"only the sealed name survived",
        )
        .unwrap();
        // 2: the link survived, the sealed name was not dropped yet: the name goes.
        let kept = name_for(b"in place", 5);
        std::fs::create_dir_all(dir.path().join("data/05/06")).unwrap();
        std::fs::write(dir.path().join("data/05/06").join(&kept), b"in place").unwrap();
        std::fs::hard_link(
            dir.path().join("data/05/06").join(&kept),
            tmp.join(format!("sealed-05-06-{kept}")),
        )
        .unwrap();
        // 2b: a peer's file in place whose content a power cut lost before its batch flush
        // (linked, then cut short): removed with its sealed name; its sender sends it again.
        let short = name_for(b"a peer's file", 9);
        std::fs::write(dir.path().join("data/05/06").join(&short), b"").unwrap();
        std::fs::hard_link(
            dir.path().join("data/05/06").join(&short),
            tmp.join(format!("replica-05-06-{short}")),
        )
        .unwrap();
        // 3: content that is not what its name promises (torn by a crash): removed.
        let torn = name_for(b"full content", 6);
        seal("07-08", &torn, b"full con");
        let same_size = name_for(b"full content", 7);
        seal("07-08", &same_size, b"\0\0\0\0\0\0\0\0\0\0\0\0");
        // 4: names that are not sealed files: removed (outside the directory range, bad shape).
        seal("FF-FF", &name_for(b"x", 8), b"x");
        seal("01-02", "..%2f", b"x");
        std::fs::write(tmp.join("123-4.tmp"), b"partial").unwrap();

        let mut c = cfg(vec![dir.path().into()]);
        c.subdir_count_per_path = 16;
        let store = Store::open(&c).unwrap();
        assert!(tmp_names(dir.path()).is_empty());
        assert_eq!(
            std::fs::read(dir.path().join("data/01/02").join(&lost)).unwrap(),
            b"only the sealed name survived"
        );
        assert_eq!(
            std::fs::read(dir.path().join("data/05/06").join(&kept)).unwrap(),
            b"in place"
        );
        assert!(!dir.path().join("data/07/08").join(&torn).exists());
        assert!(!dir.path().join("data/05/06").join(&short).exists());
        assert!(!dir.path().join("data/07/08").join(&same_size).exists());
        let mut found = store.take_sealed_at_start();
        found.sort_by(|a, b| a.filename.cmp(&b.filename));
        assert_eq!(
            found,
            vec![
                SealedFile {
                    filename: format!("M00/01/02/{lost}"),
                    create_time: 1_700_000_000,
                    moved: true,
                    replica: true,
                },
                SealedFile {
                    filename: format!("M00/05/06/{kept}"),
                    create_time: 1_700_000_000,
                    moved: false,
                    replica: false,
                },
            ]
        );
        assert!(store.take_sealed_at_start().is_empty());
    }

    #[test]
    fn an_appender_is_created_the_two_flush_way() {
        use crate::proto::fileid::{new_name, FileInfo, Source};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        // An appender's name keeps no size (it grows): nothing a sealed name could vouch for.
        let info = FileInfo {
            source: Source::Ip(std::net::Ipv4Addr::LOCALHOST),
            create_time: 1_700_000_000,
            size_field: FileInfo::size_field_for(4, true, 12),
            crc32: crc32fast::hash(b"log1"),
        };
        let name = new_name(&info, "log", 12);
        store
            .create(0, b"log1", || name.clone(), |_| (2, 2))
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("data/02/02").join(&name)).unwrap(),
            b"log1"
        );
        assert_eq!(store.unsettled_count(), 0);
        assert!(tmp_names(dir.path()).is_empty());
    }

    #[test]
    fn create_without_fsync_renames_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(vec![dir.path().into()]);
        c.fsync = false;
        let store = Store::open(&c).unwrap();
        let name = name_for(b"quick", 9);
        store
            .create(0, b"quick", || name.clone(), |_| (0, 1))
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("data/00/01").join(&name)).unwrap(),
            b"quick"
        );
        assert!(tmp_names(dir.path()).is_empty());
        assert_eq!(store.unsettled_count(), 0);
    }

    #[test]
    fn dropped_temp_files_vanish_and_stale_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let t = store.temp_file(0, 0).unwrap();
        let p = t.path().to_path_buf();
        assert!(p.exists());
        drop(t);
        assert!(!p.exists());
        std::fs::write(dir.path().join("data/.tmp/old.tmp"), b"x").unwrap();
        let _store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("data/.tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn round_robin_rotates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let seq: Vec<_> = (0..5).map(|_| store.next_dirs(0)).collect();
        assert_eq!(seq, vec![(0, 0), (0, 0), (0, 1), (0, 1), (0, 2)]);
    }

    #[test]
    fn hash_mode_and_small_subdir_counts_stay_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(vec![dir.path().into()]);
        c.subdir_count_per_path = 4;
        c.file_distribute_path_mode = DistributePathMode::Hash;
        let store = Store::open(&c).unwrap();
        for h in [0u32, 7, 0xFFFF_FFFF, 0x1234_5678] {
            let (a, b) = store.next_dirs(h);
            assert!(a < 4 && b < 4);
        }
        // Names pointing past subdir_count are refused instead of mapped.
        let name = RemoteName::parse_str("M00/05/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt").unwrap();
        assert_eq!(store.data_path(&name).unwrap_err().status, errno::EINVAL);
        let ok = RemoteName::parse_str("M00/03/01/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt").unwrap();
        assert!(store
            .data_path(&ok)
            .unwrap()
            .ends_with("data/03/01/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt"));
        c.file_distribute_path_mode = DistributePathMode::RoundRobin;
        let rr = Store::open(&c).unwrap();
        let seq: Vec<_> = (0..40).map(|_| rr.next_dirs(0)).collect();
        // Two files per directory (rotate count 2), YY first, then XX, wrapping after 4x4.
        assert_eq!(
            &seq[..10],
            &[
                (0, 0),
                (0, 0),
                (0, 1),
                (0, 1),
                (0, 2),
                (0, 2),
                (0, 3),
                (0, 3),
                (1, 0),
                (1, 0)
            ]
        );
        assert!(seq.iter().all(|&(a, b)| a < 4 && b < 4));
        assert_eq!(seq[32], (0, 0));
    }

    #[test]
    fn path_choice_and_reserved_space() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut c = cfg(vec![a.path().into(), b.path().into()]);
        let store = Store::open(&c).unwrap();
        assert_eq!(store.choose_path(1, 10).unwrap(), 1);
        assert!(store.choose_path(0xFF, 10).unwrap() < 2);
        assert_eq!(store.choose_path(7, 10).unwrap_err().status, errno::EINVAL);
        c.reserved_storage_space = Reserved::Percent(99.99);
        let full = Store::open(&c).unwrap();
        assert_eq!(full.choose_path(0, 10).unwrap_err().status, errno::ENOSPC);
        assert_eq!(store.disk_usage().len(), 2);
        assert!(store.disk_usage()[0].total_mb > 0);
    }

    #[test]
    fn metadata_overwrite_merge_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
        let f = dir.path().join("data/f");
        let pair = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        assert_eq!(
            store
                .set_metadata(&f, MetaOp::Merge, vec![], 1024)
                .unwrap_err()
                .status,
            errno::ENOENT
        );
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(store.get_metadata(&f).unwrap_err().status, errno::ENOENT);
        let ch = store
            .set_metadata(
                &f,
                MetaOp::Overwrite,
                vec![pair("width", "1024"), pair("author", "fdfs")],
                1024,
            )
            .unwrap();
        assert_eq!(ch, MetaChange::Created);
        assert_eq!(
            store.get_metadata(&f).unwrap(),
            b"author\x02fdfs\x01width\x021024"
        );
        let ch = store
            .set_metadata(
                &f,
                MetaOp::Merge,
                vec![pair("width", "800"), pair("color", "red")],
                1024,
            )
            .unwrap();
        assert_eq!(ch, MetaChange::Updated);
        assert_eq!(
            store.get_metadata(&f).unwrap(),
            b"author\x02fdfs\x01color\x02red\x01width\x02800"
        );
        assert_eq!(
            store
                .set_metadata(&f, MetaOp::Merge, vec![pair("k", &"v".repeat(200))], 64)
                .unwrap_err()
                .status,
            errno::EINVAL
        );
        assert_eq!(
            store
                .set_metadata(&f, MetaOp::Overwrite, vec![], 1024)
                .unwrap(),
            MetaChange::Removed
        );
        assert!(!Store::meta_path(&f).exists());
        assert!(store.delete(&f).is_ok_and(|had| !had));
        assert_eq!(store.delete(&f).unwrap_err().status, errno::ENOENT);
    }
}
