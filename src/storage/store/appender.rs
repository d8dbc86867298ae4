//! Writes into existing (appender) files: bytes at an offset (APPEND, MODIFY, and the
//! SYNC_APPEND / SYNC_MODIFY of peers), a partial append cut back, truncation, and the rename
//! that turns an appender into a normal file. The service checks the request (names, offsets
//! against the size, limits) and streams the bytes in; the store opens, writes, cuts, renames
//! and makes durable.

use super::{Store, StoreError, StoreResult};
use crate::proto::cmd::errno;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// An existing file opened for writing at an advancing offset ([`Store::open_for_write`]).
pub struct WriteAt {
    file: File,
    /// The file's length when it was opened.
    size: u64,
    /// Where the next chunk goes.
    offset: u64,
    fsync: bool,
}

impl WriteAt {
    /// The file's length when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes from `offset` on (an append starts at `size()`, the default).
    pub fn starting_at(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Writes `buf` at the current offset and moves past it.
    pub fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Whether `finish` has work to do (fsync on): without it the bytes are done once written.
    pub fn needs_flush(&self) -> bool {
        self.fsync
    }

    /// Makes the bytes written durable (with fsync on) and closes the file.
    pub fn finish(self) -> StoreResult<()> {
        if self.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl Store {
    /// Opens an existing file to write into, positioned at its end.
    pub fn open_for_write(&self, path: &Path) -> StoreResult<WriteAt> {
        let file = OpenOptions::new().write(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(WriteAt {
            file,
            size,
            offset: size,
            fsync: self.fsync,
        })
    }

    /// Cuts a file back to `len` bytes: an append that failed half way is undone, so the file
    /// never holds half a request.
    pub fn cut_back(&self, path: &Path, len: u64) -> StoreResult<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        Ok(())
    }

    /// TRUNCATE_FILE: sets a file's length to `new_size` and returns its length before. Like C
    /// FastDFS, a larger size grows the file with zeros, up to `max_size` (EINVAL beyond).
    pub fn truncate(&self, path: &Path, new_size: u64, max_size: u64) -> StoreResult<u64> {
        let f = OpenOptions::new().write(true).open(path)?;
        let len = f.metadata()?.len();
        if new_size > len && new_size > max_size {
            return Err(StoreError::new(
                errno::EINVAL,
                format!("truncate to {new_size} beyond max_file_size"),
            ));
        }
        self.check_growth(path, new_size.saturating_sub(len))?;
        self.set_len_of(&f, new_size)?;
        Ok(len)
    }

    /// SYNC_TRUNCATE_FILE: makes a peer's file `new_size` long, whatever its length here.
    pub fn truncate_replica(&self, path: &Path, new_size: u64) -> StoreResult<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        Ok(self.set_len_of(&f, new_size)?)
    }

    /// Gives the data file at `old` (and its `-m`) the name `new` (REGENERATE_APPENDER_FILENAME,
    /// SYNC_RENAME_FILE): EEXIST if `new` exists, ENOENT if `old` does not. A hard link first,
    /// so the file is never without a name; the old name goes through `remove` (the upload
    /// journal forgets it too).
    pub fn rename(&self, old: &Path, new: &Path) -> StoreResult<()> {
        std::fs::hard_link(old, new)?;
        if self.fsync {
            File::open(new)?.sync_all()?;
            if let Some(dir) = new.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        self.remove(old)?;
        match std::fs::rename(Store::meta_path(old), Store::meta_path(new)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn set_len_of(&self, f: &File, len: u64) -> io::Result<()> {
        f.set_len(len)?;
        if self.fsync {
            f.sync_data()?;
        }
        Ok(())
    }
}
