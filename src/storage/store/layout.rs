//! Where a file lives: its store path, its `data/XX/YY` directory (chosen round robin or by
//! hash), its metadata sidecar, and the temp names that say where a sealed file belongs.

use super::{Store, StoreError, StorePath, StoreResult};
use crate::config::DistributePathMode;
use crate::proto::cmd::errno;
use crate::proto::fileid::{RemoteName, METADATA_SUFFIX};
use crate::storage::durable::fsync_dir;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Name of a temp file whose content is complete and durable and whose place is in its name:
/// `sealed-XX-YY-<name>` in `.tmp` stands for `data/XX/YY/<name>` (see [`Store::create`]).
pub(super) const SEALED_PREFIX: &str = "sealed-";
/// The same for a file a peer created and replicated here ([`Store::create_at`]): after a
/// crash it is logged again as a replica record, which is not sent back to its source. Such a
/// file is linked into place before its content is flushed, so at start-up its content is
/// checked against its name also when it is found in place.
pub(super) const SEALED_REPLICA_PREFIX: &str = "replica-";

/// Round-robin directory cursor (`file_distribute_path_mode: round_robin`).
#[derive(Debug, Default)]
pub(super) struct DirCursor {
    pub(super) dir1: u32,
    pub(super) dir2: u32,
    pub(super) files_in_dir: u32,
}

/// A store path's upload journal, under `data/`.
pub(super) const JOURNAL_DIR: &str = ".journal";

impl Store {
    /// The file a sealed temp name stands for, if `file_name` is one and names a valid new
    /// (not appender, not trunk) file in this store path's directory range; true for a replica.
    pub(super) fn sealed_target(
        &self,
        p: &StorePath,
        file_name: &str,
    ) -> Option<(RemoteName, bool)> {
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

    pub(super) fn path(&self, index: u8) -> StoreResult<&StorePath> {
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
    pub(super) fn ensure_dir(&self, p: &StorePath, dir1: u8, dir2: u8) -> io::Result<PathBuf> {
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
}

/// A file whose name carries its size and CRC32 for good: not an appender (its size changes),
/// trunk or slave file (a slave's name is its master's).
pub(super) fn plain_file(name: &RemoteName) -> bool {
    !name.info.is_appender() && !name.info.is_trunk() && !name.is_slave()
}

/// Whether `content` is exactly what `name` says: its size and its CRC32.
pub(super) fn name_promises(name: &RemoteName, content: &[u8]) -> bool {
    content.len() as u64 == name.info.file_size() && crc32fast::hash(content) == name.info.crc32
}
