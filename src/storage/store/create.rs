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

/// New files waiting for their batched flush (`flush_replicas`, `settle`) past which the flush
/// is asked for at once: the pending names cost ~250 bytes each, and a glibc arena keeps what a
/// burst of them used (a newcomer receives thousands of small files a second).
const FLUSH_EARLY_FILES: usize = 1024;
/// Peers' files pending past which the one storing them flushes the batch itself before it
/// answers: asking is not enough when the flush task cannot run soon (a loaded machine), and
/// the sender's lanes then wait (TCP backpressure) instead of this storage's memory growing.
const FLUSH_HOLD_FILES: usize = 4 * FLUSH_EARLY_FILES;

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
        let path = p.tmp.join(format!("{}-{seq}.tmp", self.pid));
        self.open_temp(index, path, size)
            .map_err(|e| self.note_write_error(index, e.into()))
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
                    return done
                        .map_err(|e| self.note_write_error(index, e))
                        .map(|record| Created {
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
        self.store_new(target, content, sealable, true)
            .map(drop)
            .map_err(|e| self.note_write_error(target.store_path_index, e))
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
        // The directory is known to exist (`ensure_dir`): open, write, close, rename.
        let dir = self.ensure_dir(p, d1, d2)?;
        let mut tmp = self.temp_file(p.index, content.len() as u64)?;
        tmp.write_all(content)?;
        tmp.seal(self.fsync)?;
        rename_noreplace(&tmp.path, &dir.join(&target.name))?;
        tmp.disarm();
        if self.fsync {
            fsync_dir(&dir)?;
        }
        Ok(None)
    }

    /// `create`'s way for small files with fsync on: the file's record flushed in the upload
    /// journal, then the file written in place through the page cache (see `journal`). After
    /// a crash, start-up writes the file again from its record if it is missing or not whole.
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
        // A name known to be taken is refused before it is journaled (a batch skips this
        // look-up: its names are new random ones, and `place_recorded` finds a clash).
        if dst.symlink_metadata().is_ok() {
            return Ok(Journaled::Taken);
        }
        let record_name = format!("{d1:02X}/{d2:02X}/{name}");
        let Some(record) = journal.append(RecordKind::Created, &record_name, content, false)?
        else {
            return Ok(Journaled::NoRoom);
        };
        Ok(place_recorded(record, &dst, content)?)
    }

    /// Stores several new small files whose content is in memory, as `create` would one by
    /// one, but with one shared flush: the journaled ones' records are written together and
    /// flushed once (group commit), then each file is written in place. One answer per file,
    /// in order. Files the journal has no room for, and every file without a journal (fsync
    /// off, larger files) take `create`'s way.
    pub fn create_many(&self, files: Vec<NewSmall>) -> Vec<StoreResult<Created>> {
        let mut out: Vec<Option<StoreResult<Created>>> = files.iter().map(|_| None).collect();
        let mut rest = Vec::new();
        // (file's slot, named file, its place) of the journaled ones, per store path.
        let mut grouped: Vec<(&Arc<Journal>, Vec<Slotted>)> = Vec::new();
        for (i, mut f) in files.into_iter().enumerate() {
            let journal = self
                .path(f.index)
                .ok()
                .and_then(|p| p.journal.as_ref())
                .filter(|_| f.content.len() <= journal::MAX_CONTENT);
            let Some(journal) = journal else {
                rest.push((i, f));
                continue;
            };
            match self.name_new(&mut f) {
                Ok(None) => rest.push((i, f)),
                Ok(Some(named)) => {
                    match grouped.iter_mut().find(|(j, _)| Arc::ptr_eq(j, journal)) {
                        Some((_, group)) => group.push((i, f, named)),
                        None => grouped.push((journal, vec![(i, f, named)])),
                    }
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        for (journal, group) in grouped {
            let records: Vec<(&str, &[u8])> = group
                .iter()
                .map(|(_, f, n)| (n.record.as_str(), f.content.as_slice()))
                .collect();
            // The journal's own write or flush failing is a write of the store path failing.
            let index = group[0].1.index;
            let tickets = match journal.append_created(&records) {
                Ok(t) => t,
                Err(e) => {
                    let e = self.note_write_error(index, e.into());
                    for (i, _, _) in &group {
                        out[*i] = Some(Err(e.clone()));
                    }
                    continue;
                }
            };
            for ((i, f, named), ticket) in group.into_iter().zip(tickets) {
                let placed = ticket.map(|t| place_recorded(t, &named.path, &f.content));
                out[i] = match placed {
                    Some(Ok(Journaled::Placed(record))) => Some(Ok(Created {
                        dirs: named.dirs,
                        name: named.name,
                        record: Some(record),
                    })),
                    Some(Err(e)) => Some(Err(self.note_write_error(index, e.into()))),
                    // Taken (a name drawn twice) or no room: `create`'s way, with a new name.
                    Some(Ok(_)) | None => {
                        rest.push((i, f));
                        continue;
                    }
                };
            }
        }
        for (i, mut f) in rest {
            let dirs = |name: &str| self.next_dirs(crc32fast::hash(name.as_bytes()));
            out[i] = Some(self.create(f.index, &f.content, &mut f.make_name, dirs));
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::new(errno::EIO, "not stored"))))
            .collect()
    }

    /// A name for a new file, its directory (made if new) and its journal record's name; None
    /// for a name that does not describe its content for good (appenders: `create`'s way).
    fn name_new(&self, f: &mut NewSmall) -> StoreResult<Option<Named>> {
        let name = (f.make_name)();
        let (d1, d2) = self.next_dirs(crc32fast::hash(name.as_bytes()));
        let target = RemoteName::parse_str(&format!("M{:02X}/{d1:02X}/{d2:02X}/{name}", f.index))
            .map_err(|e| StoreError::new(errno::EINVAL, e.to_string()))?;
        debug_assert!(!plain_file(&target) || name_promises(&target, &f.content));
        if !plain_file(&target) {
            return Ok(None);
        }
        let p = self.path(f.index)?;
        let path = self.ensure_dir(p, d1, d2)?.join(&name);
        Ok(Some(Named {
            record: format!("{d1:02X}/{d2:02X}/{name}"),
            path,
            dirs: (d1, d2),
            name,
        }))
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
                let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                pending.insert(dst, sealed);
                // Bounded by count, not only by the flush tick: a catching-up newcomer takes
                // thousands of peers' files a second (issue 27.2).
                if pending.len() == FLUSH_EARLY_FILES {
                    self.settle_wanted.notify_one();
                }
                let hold = replica && pending.len() >= FLUSH_HOLD_FILES;
                drop(pending);
                if hold {
                    // Its own file is stored; a failed flush is the flush task's to retry.
                    if let Err(e) = self.flush_replicas() {
                        tracing::warn!(error = %e, "storage: flushing peers' files failed; will retry");
                    }
                }
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
        tmp: TempFile,
        make_name: impl FnMut() -> String,
        dirs: impl Fn(&str) -> (u8, u8),
    ) -> StoreResult<(u8, u8, String)> {
        let index = tmp.store_path_index;
        self.commit_new(tmp, make_name, dirs)
            .map_err(|e| self.note_write_error(index, e))
    }

    fn commit_new(
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

/// A new small file for `create_many`: its store path, content, and a maker of names that
/// describe that content (its size and CRC32; asked again when a name is taken).
pub struct NewSmall {
    pub index: u8,
    pub content: Vec<u8>,
    pub make_name: Box<dyn FnMut() -> String + Send>,
}

/// A file of `create_many`'s batch (its slot in the answers) and where it goes.
type Slotted = (usize, NewSmall, Named);

/// Where `create_many` puts a new file.
struct Named {
    record: String,
    path: PathBuf,
    dirs: (u8, u8),
    name: String,
}

/// Writes a file whose `Created` record is durable at its final place (open, one write,
/// close): nothing can know its name before the reply, and after a crash start-up writes a
/// file the crash left missing, short or torn again from its record. Taken when the name is
/// (the record is harmless: it names a file whose name says its content, and start-up never
/// writes over a whole file; but a delete of that file must now be journaled too).
fn place_recorded(record: Ticket, dst: &Path, content: &[u8]) -> io::Result<Journaled> {
    use std::os::unix::fs::FileExt;
    let file = match OpenOptions::new().write(true).create_new(true).open(dst) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            record.placed(dst.to_path_buf());
            return Ok(Journaled::Taken);
        }
        Err(e) => return Err(e),
    };
    // Even if the write fails (answered with an error; after a crash start-up would restore
    // the file from its record: one no client knows the ID of, see docs/DURABILITY.md).
    record.placed(dst.to_path_buf());
    file.write_all_at(content, 0)?;
    Ok(Journaled::Placed(record))
}

/// link(2) refused by the filesystem itself (FAT, some FUSE and network filesystems).
pub(super) fn links_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EOPNOTSUPP))
}
