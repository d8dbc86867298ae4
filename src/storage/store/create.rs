//! New files: from a temp file (`commit`), from memory with one device flush (`create`, the
//! sealed way), or with a record in the upload journal (small files, fsync on).

use super::file_io::{open_direct, TempFile, Writeback};
use super::layout::{name_promises, plain_file, SEALED_PREFIX, SEALED_REPLICA_PREFIX};
use super::{Created, Store, StoreError, StorePath, StoreResult};
use crate::proto::cmd::errno;
use crate::proto::fileid::RemoteName;
use crate::storage::durable::{fsync_dir, rename_noreplace};
use crate::storage::journal::Ticket;
use crate::storage::journal::{self, Journal, RecordKind};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How `place_journaled` went.
pub(super) enum Journaled {
    Placed(Ticket),
    Taken,
    /// Both segments are full until the next settle.
    NoRoom,
}

impl Store {
    /// A new temp file in the store path's `.tmp` directory for `size` bytes, removed on drop
    /// unless committed. Files of at least `direct_io_min_size` are also opened with O_DIRECT
    /// (where the filesystem allows it).
    pub fn temp_file(&self, index: u8, size: u64) -> StoreResult<TempFile> {
        let p = self.path(index)?;
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = p.tmp.join(format!("{}-{seq}.tmp", std::process::id()));
        Ok(self.open_temp(index, path, size)?)
    }

    pub(super) fn open_temp(&self, index: u8, path: PathBuf, size: u64) -> io::Result<TempFile> {
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
    pub(super) fn store_new(
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
    pub(super) fn place_journaled(
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
    pub(super) fn place_sealed(
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
}

/// link(2) refused by the filesystem itself (FAT, some FUSE and network filesystems).
pub(super) fn links_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EOPNOTSUPP))
}
