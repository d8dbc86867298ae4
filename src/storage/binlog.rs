//! The storage binlog: a durable, append-only log of every change to files this storage holds,
//! read later by the sync workers that replay it to the group's other storages.
//!
//! Layout (FastDFS's, so operators and tools recognise it):
//! ```text
//! <base>/data/sync/binlog.000, binlog.001, ...   a new file once the current one passes 1 GiB
//! <base>/data/sync/binlog_index.dat              `current_write=<N>` — the file being written
//!
//! one record per line:   <unix ts> <op> <M00/XX/YY/name>[ <extra>]\n
//!   1795272134 C M00/01/FE/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt
//!   1795272025 A M00/01/FE/ooYBAGsBrViEDNbfAAAAADYQpoY966.txt 5 6      (append: offset length)
//!   1795272030 M M00/01/FE/ooYBAGsBrViEDNbfAAAAADYQpoY966.txt 2 3      (modify: offset length)
//!   1795272031 T M00/01/FE/ooYBAGsBrViEDNbfAAAAADYQpoY966.txt 11 5     (truncate: old new size)
//! ops: C create, D delete, U whole-file update (metadata rewrite), A append, M modify,
//!      T truncate, L link, R rename. Upper case = a client did it here (source record);
//!      lower case = applied because a peer replicated it (replica record).
//! ```
//! `<base>` is `storage.base_path`, or `store_paths[0]` when unset. The first SET_METADATA of a
//! file creates `<name>-m` and is logged as `C <name>-m`; later ones as `U <name>-m`; removing
//! the metadata (delete, or an empty overwrite) as `D <name>-m`.
//!
//! Durability: `append` only copies the line into a memory buffer (nothing on the request's
//! latency path); `flush` — run every `sync.binlog_flush_interval` by the server and at shutdown —
//! writes the buffer and fdatasyncs. Data files themselves are fsynced before they are
//! acknowledged, so a crash loses at most the last interval of *records*, like FastDFS.
//! A torn last line left by a crash is cut off when the binlog is reopened.
//!
//! Readers ([`BinlogReader`]) see only what has been flushed to the file and never a partial line.

use super::durable::fsync_dir;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A binlog file is closed and the next one started once it reaches this size (FastDFS: 1 GiB).
pub const ROTATE_SIZE: u64 = 1 << 30;
const INDEX_FILE: &str = "binlog_index.dat";

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinlogOp {
    Create,
    Delete,
    Update,
    Append,
    Modify,
    Truncate,
    Link,
    Rename,
}

impl BinlogOp {
    /// FastDFS's letter: upper case for source records, lower case for replica records.
    pub fn letter(self, source: bool) -> char {
        let c = match self {
            BinlogOp::Create => 'C',
            BinlogOp::Delete => 'D',
            BinlogOp::Update => 'U',
            BinlogOp::Append => 'A',
            BinlogOp::Modify => 'M',
            BinlogOp::Truncate => 'T',
            BinlogOp::Link => 'L',
            BinlogOp::Rename => 'R',
        };
        if source {
            c
        } else {
            c.to_ascii_lowercase()
        }
    }

    /// Parses a letter into (op, is_source).
    pub fn from_letter(c: char) -> Option<(Self, bool)> {
        let op = match c.to_ascii_uppercase() {
            'C' => BinlogOp::Create,
            'D' => BinlogOp::Delete,
            'U' => BinlogOp::Update,
            'A' => BinlogOp::Append,
            'M' => BinlogOp::Modify,
            'T' => BinlogOp::Truncate,
            'L' => BinlogOp::Link,
            'R' => BinlogOp::Rename,
            _ => return None,
        };
        Some((op, c.is_ascii_uppercase()))
    }
}

/// One binlog line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogRecord {
    pub timestamp: i64,
    pub op: BinlogOp,
    /// True when a client did this on this storage (upper-case letter).
    pub source: bool,
    /// `M00/XX/YY/name` (metadata sidecars end in `-m`).
    pub filename: String,
    /// Op-specific tail: `offset length` (A, M), `old_size new_size` (T), link source (L).
    pub extra: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed binlog line {line:?}: {reason}")]
pub struct BinlogParseError {
    pub line: String,
    pub reason: &'static str,
}

impl BinlogRecord {
    pub fn source(op: BinlogOp, timestamp: i64, filename: String, extra: Option<String>) -> Self {
        BinlogRecord {
            timestamp,
            op,
            source: true,
            filename,
            extra,
        }
    }

    /// The line, newline included.
    pub fn encode(&self) -> String {
        match &self.extra {
            Some(x) => format!(
                "{} {} {} {}\n",
                self.timestamp,
                self.op.letter(self.source),
                self.filename,
                x
            ),
            None => format!(
                "{} {} {}\n",
                self.timestamp,
                self.op.letter(self.source),
                self.filename
            ),
        }
    }

    /// Parses one line (with or without its newline).
    pub fn parse(line: &str) -> Result<Self, BinlogParseError> {
        let err = |reason| BinlogParseError {
            line: line.to_string(),
            reason,
        };
        let line = line.strip_suffix('\n').unwrap_or(line);
        let mut parts = line.splitn(4, ' ');
        let ts = parts.next().ok_or_else(|| err("empty"))?;
        let timestamp: i64 = ts.parse().map_err(|_| err("bad timestamp"))?;
        let op = parts.next().ok_or_else(|| err("no op"))?;
        let mut chars = op.chars();
        let (op, source) = match (chars.next(), chars.next()) {
            (Some(c), None) => BinlogOp::from_letter(c).ok_or_else(|| err("unknown op"))?,
            _ => return Err(err("op is not one letter")),
        };
        let filename = parts.next().filter(|f| !f.is_empty());
        let filename = filename.ok_or_else(|| err("no filename"))?.to_string();
        let extra = parts.next().map(str::to_string);
        Ok(BinlogRecord {
            timestamp,
            op,
            source,
            filename,
            extra,
        })
    }
}

/// A place in the binlog: file index and byte offset inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BinlogPos {
    pub index: u32,
    pub offset: u64,
}

/// `index:offset`, as an operator reads it in logs and `status` (`binlog 0:0`).
impl std::fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.index, self.offset)
    }
}

fn binlog_file(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("binlog.{index:03}"))
}

struct FileState {
    file: File,
    index: u32,
    /// Bytes written to the current file.
    len: u64,
}

/// The writer side. Cheap to `append` from any task; `flush` does the I/O.
pub struct Binlog {
    dir: PathBuf,
    rotate_size: u64,
    /// Records not yet written to the file.
    buffer: Mutex<Pending>,
    /// Serialises flushes; holds the open file.
    file: Mutex<FileState>,
    /// Woken when the buffer grows past [`EARLY_FLUSH`] so it is flushed before the interval.
    flush_wanted: tokio::sync::Notify,
}

/// Queued records and the oldest timestamp among them (records are not always queued in
/// timestamp order: an upload takes its time before its fsync, its record after).
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    oldest: Option<i64>,
}

/// Buffered bytes that trigger a flush before the interval ends (bounds memory under load).
pub const EARLY_FLUSH: usize = 1 << 20;

impl Binlog {
    /// Opens (creating if needed) the binlog in `dir` (`<base>/data/sync`).
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with_rotate(dir, ROTATE_SIZE)
    }

    /// As `open`, with a custom rotation size (tests).
    pub fn open_with_rotate(dir: &Path, rotate_size: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let index = read_index(dir)?;
        let path = binlog_file(dir, index);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let len = cut_torn_tail(&mut file)?;
        write_index(dir, index)?;
        Ok(Binlog {
            dir: dir.to_path_buf(),
            rotate_size,
            buffer: Mutex::new(Pending {
                bytes: Vec::with_capacity(64 * 1024),
                oldest: None,
            }),
            file: Mutex::new(FileState { file, index, len }),
            flush_wanted: tokio::sync::Notify::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues a record; it reaches the disk on the next `flush`.
    pub fn append(&self, rec: &BinlogRecord) {
        let line = rec.encode();
        let mut buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buf.bytes.extend_from_slice(line.as_bytes());
        buf.oldest = Some(buf.oldest.map_or(rec.timestamp, |t| t.min(rec.timestamp)));
        if buf.bytes.len() >= EARLY_FLUSH {
            self.flush_wanted.notify_one();
        }
    }

    /// Resolves when enough records are queued that the flusher should not wait for its tick.
    pub async fn flush_wanted(&self) {
        self.flush_wanted.notified().await
    }

    /// Bytes queued but not yet flushed.
    pub fn pending(&self) -> usize {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes
            .len()
    }

    /// The end of what readers can see, and the oldest timestamp among the records past it
    /// (None: none). Waits for a flush in progress: its records are out of the queue but may
    /// not be in the file yet.
    pub fn readable_end_and_oldest_beyond(&self) -> (BinlogPos, Option<i64>) {
        let st = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = self.buffer.lock().unwrap_or_else(|e| e.into_inner()).oldest;
        (
            BinlogPos {
                index: st.index,
                offset: st.len,
            },
            oldest,
        )
    }

    /// Queued (unflushed) records: (bytes, records, timestamp of the oldest). Sync lag counts
    /// them: they are changes no peer can have yet.
    pub fn pending_summary(&self) -> (u64, u64, Option<i64>) {
        let buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let records = buf.bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        (buf.bytes.len() as u64, records, buf.oldest)
    }

    /// Writes queued records and fdatasyncs the binlog (blocking; run it off the async threads).
    pub fn flush(&self) -> io::Result<()> {
        let mut st = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let data = {
            let mut buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            if buf.bytes.is_empty() {
                return Ok(());
            }
            std::mem::take(&mut *buf)
        };
        if st.len >= self.rotate_size {
            self.rotate(&mut st)?;
        }
        if let Err(e) = st
            .file
            .write_all(&data.bytes)
            .and_then(|_| st.file.sync_data())
        {
            // Put the records back in front of newer ones so a later flush retries them; cut
            // whatever part of them reached the file so no line is written twice.
            let _ = st.file.set_len(st.len);
            let mut buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            let newer = std::mem::replace(&mut *buf, data);
            buf.bytes.extend_from_slice(&newer.bytes);
            buf.oldest = match (buf.oldest, newer.oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return Err(e);
        }
        st.len += data.bytes.len() as u64;
        Ok(())
    }

    fn rotate(&self, st: &mut FileState) -> io::Result<()> {
        st.file.sync_all()?;
        let next = st.index + 1;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(binlog_file(&self.dir, next))?;
        fsync_dir(&self.dir)?;
        write_index(&self.dir, next)?;
        *st = FileState {
            file,
            index: next,
            len: 0,
        };
        Ok(())
    }

    /// End of what readers can see (flushed records).
    pub fn flushed_position(&self) -> BinlogPos {
        let st = self.file.lock().unwrap_or_else(|e| e.into_inner());
        BinlogPos {
            index: st.index,
            offset: st.len,
        }
    }

    /// A reader starting at `pos` (use `BinlogPos::default()` for the very beginning).
    pub fn reader(&self, pos: BinlogPos) -> BinlogReader {
        BinlogReader::new(&self.dir, pos)
    }
}

fn read_index(dir: &Path) -> io::Result<u32> {
    match std::fs::read_to_string(dir.join(INDEX_FILE)) {
        Ok(text) => Ok(text
            .lines()
            .find_map(|l| l.trim().strip_prefix("current_write="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn write_index(dir: &Path, index: u32) -> io::Result<()> {
    let tmp = dir.join(format!("{INDEX_FILE}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("current_write={index}\ncurrent_compress=0\n").as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(INDEX_FILE))?;
    fsync_dir(dir)
}

/// Drops an incomplete last line (a crash in the middle of a write); returns the new length.
fn cut_torn_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Look back in chunks for the last newline.
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep != len {
                tracing::warn!(cut = len - keep, "binlog: dropping a torn last line");
                file.set_len(keep)?;
                file.sync_all()?;
            }
            return Ok(keep);
        }
        end = start;
    }
    tracing::warn!(cut = len, "binlog: file holds no complete line; truncating");
    file.set_len(0)?;
    file.sync_all()?;
    Ok(0)
}

/// Iterates binlog records from a position, following rotation to the next file.
pub struct BinlogReader {
    dir: PathBuf,
    pos: BinlogPos,
    file: Option<BufReader<File>>,
    line: Vec<u8>,
}

impl BinlogReader {
    pub fn new(dir: &Path, pos: BinlogPos) -> Self {
        BinlogReader {
            dir: dir.to_path_buf(),
            pos,
            file: None,
            line: Vec::new(),
        }
    }

    /// Position of the next record to be read (persist this as the sync mark).
    pub fn position(&self) -> BinlogPos {
        self.pos
    }

    /// The next complete record and the position just after it; `None` when no more complete
    /// records are available yet. Malformed lines are skipped (logged).
    pub fn next_record(&mut self) -> io::Result<Option<(BinlogRecord, BinlogPos)>> {
        loop {
            if self.file.is_none() {
                let path = binlog_file(&self.dir, self.pos.index);
                let mut f = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if binlog_file(&self.dir, self.pos.index + 1).exists() {
                            self.pos = BinlogPos {
                                index: self.pos.index + 1,
                                offset: 0,
                            };
                            continue;
                        }
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                f.seek(SeekFrom::Start(self.pos.offset))?;
                self.file = Some(BufReader::with_capacity(64 * 1024, f));
            }
            let Some(reader) = self.file.as_mut() else {
                return Ok(None);
            };
            self.line.clear();
            let n = reader.read_until(b'\n', &mut self.line)?;
            if n == 0 || self.line.last() != Some(&b'\n') {
                // End of the flushed data, or a line still being written: come back later.
                self.file = None;
                if n == 0 && binlog_file(&self.dir, self.pos.index + 1).exists() {
                    // The writer moved on; this file is complete.
                    self.pos = BinlogPos {
                        index: self.pos.index + 1,
                        offset: 0,
                    };
                    continue;
                }
                return Ok(None);
            }
            self.pos.offset += n as u64;
            let text = String::from_utf8_lossy(&self.line);
            match BinlogRecord::parse(&text) {
                Ok(rec) => return Ok(Some((rec, self.pos))),
                Err(e) => tracing::warn!(error = %e, pos = %self.pos, "binlog: skipping line"),
            }
        }
    }
}

impl Iterator for BinlogReader {
    type Item = io::Result<(BinlogRecord, BinlogPos)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: BinlogOp, name: &str, extra: Option<&str>) -> BinlogRecord {
        BinlogRecord::source(op, 1795272134, name.into(), extra.map(str::to_string))
    }

    #[test]
    fn lines_match_fastdfs_layout() {
        let r = rec(
            BinlogOp::Create,
            "M00/01/FE/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt",
            None,
        );
        assert_eq!(
            r.encode(),
            "1795272134 C M00/01/FE/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt\n"
        );
        let a =
            BinlogRecord::parse("1795272025 A M00/01/FE/ooYBAGsBrViEDNbfAAAAADYQpoY966.txt 5 6\n")
                .unwrap();
        assert_eq!(
            (a.op, a.source, a.extra.as_deref()),
            (BinlogOp::Append, true, Some("5 6"))
        );
        let c = BinlogRecord::parse("1795272025 c M00/00/00/x.txt").unwrap();
        assert_eq!((c.op, c.source), (BinlogOp::Create, false));
        for bad in ["", "x C M00/a", "1 CC M00/a", "1 Z M00/a", "1 C"] {
            assert!(BinlogRecord::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_are_read_back_only_after_flush_and_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = Binlog::open_with_rotate(dir.path(), 100).unwrap();
        let mut reader = log.reader(BinlogPos::default());
        log.append(&rec(BinlogOp::Create, "M00/00/00/a", None));
        assert!(
            reader.next_record().unwrap().is_none(),
            "unflushed record visible"
        );
        log.flush().unwrap();
        let (r, pos) = reader.next_record().unwrap().unwrap();
        assert_eq!(r.filename, "M00/00/00/a");
        assert_eq!(pos, log.flushed_position());
        // Fill past the rotation size: the next flush starts binlog.001.
        for i in 0..5 {
            log.append(&rec(BinlogOp::Delete, &format!("M00/00/00/b{i}"), None));
        }
        log.flush().unwrap();
        log.append(&rec(BinlogOp::Truncate, "M00/00/00/c", Some("11 5")));
        log.flush().unwrap();
        assert_eq!(log.flushed_position().index, 1);
        let rest: Vec<_> = reader.by_ref().map(|r| r.unwrap().0.filename).collect();
        assert_eq!(rest.len(), 6);
        assert_eq!(rest[5], "M00/00/00/c");
        // A reader can resume from a saved position.
        let mut again = log.reader(pos);
        assert_eq!(
            again.next_record().unwrap().unwrap().0.filename,
            "M00/00/00/b0"
        );
        drop(log);
        // Reopening continues in the current file.
        let log = Binlog::open_with_rotate(dir.path(), 100).unwrap();
        assert_eq!(log.flushed_position().index, 1);
    }

    #[test]
    fn torn_tail_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("binlog.000"),
            "1 C M00/00/00/a\n2 C M00/00/0",
        )
        .unwrap();
        let log = Binlog::open(dir.path()).unwrap();
        assert_eq!(log.flushed_position().offset, 16);
        log.append(&rec(BinlogOp::Delete, "M00/00/00/a", None));
        log.flush().unwrap();
        let names: Vec<_> = log
            .reader(BinlogPos::default())
            .map(|r| r.unwrap().0.op)
            .collect();
        assert_eq!(names, vec![BinlogOp::Create, BinlogOp::Delete]);
    }
}
