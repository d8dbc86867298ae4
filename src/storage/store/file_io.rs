//! File I/O below the store: a temp file being written (`TempFile`, with O_DIRECT for large
//! uploads and early writeback), an aligned buffer for it, and a stored file read for sending
//! (`FileToSend`).

use super::Store;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

impl Store {
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
}

/// An upload in progress. Dropping it (client gone, error) removes the file.
pub struct TempFile {
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    /// The same file opened with O_DIRECT, for large uploads (see `direct_io_min_size`): whole
    /// aligned blocks go from our buffer to the disk without a copy into the page cache.
    pub(super) direct: Option<File>,
    /// Bytes written so far; every write is positioned (pwrite), so both handles agree.
    pub(super) len: u64,
    pub(super) store_path_index: u8,
    /// With `fsync` on: start writing back to disk while the upload still arrives.
    pub(super) writeback: Option<Writeback>,
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
pub(super) const WRITEBACK_STEP: u64 = 8 << 20;

#[derive(Debug, Default)]
pub(super) struct Writeback {
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
    pub(super) fn seal(&mut self, fsync: bool) -> io::Result<()> {
        match self.file.take() {
            Some(f) if fsync => f.sync_data(),
            _ => Ok(()),
        }
    }

    /// Whether whole blocks of this upload bypass the page cache (tests look).
    #[cfg(test)]
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    pub(super) fn disarm(&mut self) {
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
pub(super) fn open_direct(path: &Path) -> Option<File> {
    open_direct_with(path, OpenOptions::new().write(true))
}

/// `path` opened with `options` plus O_DIRECT, or None where the filesystem refuses it.
pub(super) fn open_direct_with(path: &Path, options: &mut OpenOptions) -> Option<File> {
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
pub(super) fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a valid open fd; sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
    }
}
