//! The upload journal: a small new file made durable by one flush of blocks that are already
//! allocated, instead of a new inode, its blocks and a directory entry.
//!
//! With fsync on, the store (`Store::create`) writes a small upload's file through the page
//! cache, appends a record of it (its place and its content) to its store path's journal and
//! fdatasyncs the journal, then renames the file into place and replies. The store drives the
//! journal; the journal knows nothing of the store. On ext4 that flush costs what rewriting
//! 4 KiB in place costs (`scripts/small-file-costs`: about 130 µs here, against about 290 µs for
//! a new file's fdatasync, and up to 700 µs on a busy disk), because the journal's blocks were
//! written once when it was made.
//!
//! The journal is two segment files. New records go to the active one. Every
//! `binlog_flush_interval` (sooner once the active segment is half full) the storage closes it
//! — new records go to the other one — and, once the records still being written to it are done,
//! `syncfs`es the store path: the closed segment's files, their inodes and directory entries
//! are now on the disk. Then the segment is reset by giving it a new epoch: records that do not
//! carry their segment's epoch do not count.
//!
//! Concurrent writers share flushes (group commit, see `Flushes`): a record is acknowledged
//! once a flush that started after it was written has ended, so eight uploads at once cost one
//! or two device flushes, not eight in a row. The storage's small-file writer also hands over
//! all the uploads waiting for it in one call (`append_created`: one write, one flush).
//!
//! At start-up every record that counts is made true again, oldest segment first: a file that
//! a power cut left missing, short or torn is written again from its record (the file's name
//! says its size and CRC32, so one that is whole is left alone). A file deleted while its
//! record counts gets a `Deleted` record first, or start-up would bring it back.
//!
//! ```text
//! <store_path>/data/.journal/0, 1   segments, SEGMENT_SIZE each, written with zeros when made
//! segment header (first 4 KiB):      "FHJS" | seq u64 | epoch u64 | crc32 of the 20 bytes before
//! records, from 4 KiB on, each at a 512-byte boundary:
//!   "FHJR" | epoch u64 | kind u8 (1 created, 2 deleted) | 0 u8 | name_len u16 | content_len u32
//!   | crc32 (of the record without this field) | name (`XX/YY/<file name>`) | content
//! ```
//! `seq` orders the two segments (the higher is the newer). The epoch is random and new at every
//! reset, so neither an older epoch's records nor bytes inside an uploaded file that look like a
//! record can count. Records are found by trying every 512-byte boundary: records written at the
//! same time may reach the disk in any order, so an unwritten record must not hide a later one.
//!
//! Blocking code: every method does file I/O and must run off the async threads. This module
//! knows the journal's format and its segments' life, not the store's layout.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Bytes per segment file. At 4 KiB uploads a record takes 4.5 KiB: 1,800 records per segment,
/// and a settle is asked for at half of that.
pub const SEGMENT_SIZE: u64 = 8 << 20;
/// Files up to this size are journaled; larger ones take the sealed way (their own flush costs
/// less next to their size, and they would fill the journal fast).
pub const MAX_CONTENT: usize = 64 << 10;
const HEADER_LEN: u64 = 4096;
const SEGMENT_MAGIC: &[u8; 4] = b"FHJS";
const RECORD_MAGIC: &[u8; 4] = b"FHJR";
const RECORD_ALIGN: usize = 512;
const RECORD_HEAD: usize = 24;
/// How long a `Deleted` record waits for room before its delete is refused.
const ROOM_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Created = 1,
    Deleted = 2,
}

/// One record found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: RecordKind,
    /// `XX/YY/<file name>`, relative to the store path's `data/`.
    pub name: &'a str,
    pub content: &'a [u8],
}

/// A record's bytes, padded to the 512-byte boundary the next record starts at.
pub fn encode_record(epoch: u64, kind: RecordKind, name: &str, content: &[u8]) -> Vec<u8> {
    let len = RECORD_HEAD + name.len() + content.len();
    let mut out = Vec::with_capacity(len.next_multiple_of(RECORD_ALIGN));
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(content);
    let crc = record_crc(&out);
    out[20..24].copy_from_slice(&crc.to_be_bytes());
    out.resize(len.next_multiple_of(RECORD_ALIGN), 0);
    out
}

/// CRC32 of a record's head (without its CRC field), name and content.
fn record_crc(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..20]);
    h.update(&record[RECORD_HEAD..]);
    h.finalize()
}

/// The record of `epoch` at `at`, and its padded length; None for anything else (zeros, an
/// older epoch's record, one torn or never written).
fn record_at(seg: &[u8], at: usize, epoch: u64) -> Option<(Record<'_>, usize)> {
    let head = seg.get(at..at + RECORD_HEAD)?;
    if &head[..4] != RECORD_MAGIC || head[4..12] != epoch.to_be_bytes() {
        return None;
    }
    let kind = match head[12] {
        1 => RecordKind::Created,
        2 => RecordKind::Deleted,
        _ => return None,
    };
    let name_len = u16::from_be_bytes([head[14], head[15]]) as usize;
    let content_len = u32::from_be_bytes(head[16..20].try_into().ok()?) as usize;
    let len = RECORD_HEAD + name_len + content_len;
    let record = seg.get(at..at + len)?;
    if record_crc(record) != u32::from_be_bytes(head[20..24].try_into().ok()?) {
        return None;
    }
    let name = std::str::from_utf8(&record[RECORD_HEAD..RECORD_HEAD + name_len]).ok()?;
    let content = &record[RECORD_HEAD + name_len..];
    Some((
        Record {
            kind,
            name,
            content,
        },
        len.next_multiple_of(RECORD_ALIGN),
    ))
}

/// Every record of `epoch` in a segment's bytes, in the order they were appended.
pub fn records(seg: &[u8], epoch: u64) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN as usize;
    while at + RECORD_HEAD <= seg.len() {
        match record_at(seg, at, epoch) {
            Some((record, len)) => {
                out.push(record);
                at += len;
            }
            None => at += RECORD_ALIGN,
        }
    }
    out
}

fn encode_header(seq: u64, epoch: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN as usize);
    out.extend_from_slice(SEGMENT_MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.resize(HEADER_LEN as usize, 0);
    out
}

/// A segment's (seq, epoch); None when its header is not one (never written, or torn while a
/// reset rewrote it: its records had been settled then).
fn decode_header(seg: &[u8]) -> Option<(u64, u64)> {
    let head = seg.get(..24)?;
    if &head[..4] != SEGMENT_MAGIC
        || crc32fast::hash(&head[..20]) != u32::from_be_bytes(head[20..24].try_into().ok()?)
    {
        return None;
    }
    let seq = u64::from_be_bytes(head[4..12].try_into().ok()?);
    let epoch = u64::from_be_bytes(head[12..20].try_into().ok()?);
    Some((seq, epoch))
}

/// What the records of some segments' bytes ask for: per file name, its content (created) or
/// nothing (deleted). Segments are taken oldest first, so the last record of a name wins.
pub fn replay_plan<S: AsRef<[u8]>>(segments: &[S]) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut found: Vec<(u64, u64, &[u8])> = segments
        .iter()
        .map(AsRef::as_ref)
        .filter_map(|seg| decode_header(seg).map(|(seq, epoch)| (seq, epoch, seg)))
        .collect();
    found.sort_by_key(|(seq, _, _)| *seq);
    let mut plan = BTreeMap::new();
    for (_, epoch, seg) in found {
        for r in records(seg, epoch) {
            let content = (r.kind == RecordKind::Created).then(|| r.content.to_vec());
            plan.insert(r.name.to_string(), content);
        }
    }
    plan
}

/// Reads whatever segments `dir` holds and returns what their records ask for (see
/// `replay_plan`); empty when there is no journal. The caller makes it true, durably, before
/// `Journal::start` resets the segments.
pub fn read_pending(dir: &Path) -> io::Result<BTreeMap<String, Option<Vec<u8>>>> {
    let mut segments = Vec::new();
    for i in 0..2 {
        match File::open(segment_path(dir, i)) {
            Ok(f) => segments.push(Mapped::new(&f)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(replay_plan(&segments))
}

/// Read-only mapped bytes: a segment for the scan at start-up, or zeros to write a new segment
/// with. Not in the heap: megabytes allocated and freed there at start leave the allocator
/// holding more memory for good (it raises its threshold for mapping large blocks), which the
/// idle RSS goal cannot spare; zeros mapped and only read are the kernel's shared zero page.
struct Mapped {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn new(f: &File) -> io::Result<Mapped> {
        use std::os::unix::io::AsRawFd;
        let len = usize::try_from(f.metadata()?.len()).map_err(io::Error::other)?;
        Self::map(len, libc::MAP_PRIVATE, f.as_raw_fd())
    }

    fn zeros(len: usize) -> io::Result<Mapped> {
        Self::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    }

    fn map(len: usize, flags: libc::c_int, fd: libc::c_int) -> io::Result<Mapped> {
        if len == 0 {
            return Ok(Mapped {
                addr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a fresh read-only private mapping (of an open file, or anonymous); the
        // pointer is only used through `as_ref` while `self` lives, and unmapped once in `Drop`.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, flags, fd, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { addr, len })
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `addr` maps `len` readable bytes until `Drop`. Nothing else writes the
        // segment while start-up scans it (the store is not serving yet); a file truncated by
        // someone else meanwhile would raise SIGBUS, as it would for any mapped file.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping made in `new`, once.
            unsafe { libc::munmap(self.addr, self.len) };
        }
    }
}

/// Gives a segment a new header, durably: records of its earlier epoch stop counting.
fn reset(segment: &File, seq: u64, epoch: u64) -> io::Result<()> {
    segment.write_all_at(&encode_header(seq, epoch), 0)?;
    // Also makes a new segment's size durable (fdatasync writes what reading it back needs).
    segment.sync_data()
}

fn segment_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(i.to_string())
}

/// The journal of one store path, in use.
pub struct Journal {
    segments: [File; 2],
    size: u64,
    state: Mutex<State>,
    /// Signalled when a record is done or a segment is reset.
    changed: Condvar,
    /// One `retire_closed` at a time.
    retiring: Mutex<()>,
    /// Group commit: who flushes the segments, and which records each flush covers.
    flushes: Mutex<Flushes>,
    /// Signalled when a flush ends.
    flushed: Condvar,
    /// Told when a segment is half full or full: the storage settles then, not at its tick.
    settle_wanted: Arc<Notify>,
}

struct State {
    active: usize,
    /// Where the active segment's next record goes.
    next: u64,
    segs: [Segment; 2],
    /// Files settled by retires since start (for the metrics).
    settled: u64,
}

/// A journal's state as operators see it (`/metrics`, `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Bytes of records in the active segment, and the records' room in a segment.
    pub active_used_bytes: u64,
    pub segment_room_bytes: u64,
    /// Files journaled whose own blocks are not known to be on the disk yet.
    pub unsettled_files: u64,
    /// Files settled since start (their segment retired).
    pub settled_files: u64,
    /// Flushes (fdatasync of the segments) since start; concurrent uploads share one.
    pub flushes: u64,
    /// A flush failed: the journal takes no records until a restart (small uploads flush
    /// their own files meanwhile).
    pub failed: bool,
    /// Segments whose settle failed: their records wait for start-up to replay them.
    pub stuck_segments: u64,
}

impl State {
    /// Makes the other segment the active one if no record went there since its reset.
    fn switch_if_free(&mut self) -> bool {
        let other = 1 - self.active;
        if self.segs[other].used {
            return false;
        }
        self.active = other;
        self.next = HEADER_LEN;
        true
    }
}

#[derive(Default)]
struct Segment {
    seq: u64,
    epoch: u64,
    /// Records whose upload or delete is not done (see `Ticket`).
    in_flight: usize,
    /// Whether any record went here since the last reset.
    used: bool,
    /// A flush of its files failed: the segment is never reset by this process, its records
    /// are for start-up to replay (after a failed write-back the kernel marks the pages clean,
    /// and a second syncfs would report success for data that never reached the disk).
    stuck: bool,
    /// Final paths of the files whose `Created` record is here.
    files: HashSet<PathBuf>,
}

/// Group commit of the segments' flushes. A writer whose record is written (not yet flushed)
/// needs flush number `started + 1`: any flush that starts later covers its record. If no flush
/// is running it leads one (fdatasync of every segment written to since the last one started);
/// otherwise it waits for the running one to end and then needs the next. Concurrent small
/// uploads thus share one device flush instead of queueing one each behind the others.
#[derive(Default)]
struct Flushes {
    /// Flushes started and ended (each flush has the number `started` had when it began).
    started: u64,
    done: u64,
    running: bool,
    /// Segments written to since the last flush started.
    dirty: [bool; 2],
    /// The first flush that failed: its records and every later one's are refused, and the
    /// journal takes no more records (a second fdatasync could report success for pages whose
    /// write-back failed); small uploads flush their own files until a restart.
    failed: Option<u64>,
    /// The kind of that flush's error: the writers whose records it refused get an error of
    /// the same kind (a read-only or failing file system marks the store path, see `health`).
    cause: Option<io::ErrorKind>,
    /// Tests: the next flushes fail with this errno instead of running.
    #[cfg(test)]
    fail_with: Option<i32>,
}

/// A record written and flushed whose change is not done yet: the segment is not retired
/// before the ticket is dropped. An upload holds it until its file is in place and its binlog
/// record is queued (so the binlog flush before a retire has every record of the segment's
/// files); a delete until the file is unlinked.
pub struct Ticket {
    journal: Arc<Journal>,
    segment: usize,
}

impl Ticket {
    /// The file is in place at `path`: a delete of it must be journaled until it settles.
    pub fn placed(&self, path: PathBuf) {
        self.journal.lock().segs[self.segment].files.insert(path);
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket(segment {})", self.segment)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.journal.lock().segs[self.segment].in_flight -= 1;
        self.journal.changed.notify_all();
    }
}

impl Journal {
    /// Makes `dir`'s two segments ready (`size` bytes each, written with zeros where they are
    /// new) and resets them: whatever records they held no longer count.
    pub fn start(dir: &Path, size: u64, settle_wanted: Arc<Notify>) -> io::Result<Arc<Journal>> {
        let made = !dir.is_dir();
        std::fs::create_dir_all(dir)?;
        let open = |i: usize| -> io::Result<File> {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(segment_path(dir, i))?;
            if f.metadata()?.len() != size {
                // Written once now so that a record later overwrites allocated, written blocks:
                // its flush then writes no metadata (a first write into a hole or a
                // preallocated extent costs half again as much).
                let zeros = Mapped::zeros(1 << 20)?;
                let zeros = zeros.as_ref();
                f.set_len(0)?;
                let mut at = 0;
                while at < size {
                    let n = (size - at).min(zeros.len() as u64) as usize;
                    f.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
            }
            Ok(f)
        };
        let segments = [open(0)?, open(1)?];
        let mut segs: [Segment; 2] = Default::default();
        for (i, seg) in segs.iter_mut().enumerate() {
            seg.seq = i as u64 + 1;
            seg.epoch = rand::random();
            reset(&segments[i], seg.seq, seg.epoch)?;
        }
        // The segments' entries (new ones, or ones a crash may have lost with the directory).
        super::durable::fsync_dir(dir)?;
        if made {
            if let Some(parent) = dir.parent() {
                super::durable::fsync_dir(parent)?;
            }
        }
        Ok(Arc::new(Journal {
            segments,
            size,
            state: Mutex::new(State {
                active: 0,
                next: HEADER_LEN,
                segs,
                settled: 0,
            }),
            changed: Condvar::new(),
            retiring: Mutex::new(()),
            flushes: Mutex::new(Flushes::default()),
            flushed: Condvar::new(),
            settle_wanted,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record and flushes it (sharing the flush with concurrent appends). None when
    /// neither segment has room (the caller stores the file another way), unless `wait`: then
    /// it waits for a reset, at most `ROOM_WAIT`.
    pub fn append(
        self: &Arc<Self>,
        kind: RecordKind,
        name: &str,
        content: &[u8],
        wait: bool,
    ) -> io::Result<Option<Ticket>> {
        let Some(len) = self.record_len(name, content) else {
            return Ok(None);
        };
        if wait && self.flush_state().failed.is_some() {
            return Err(io::Error::other(
                "the upload journal's flush failed; it takes no records until a restart",
            ));
        }
        let deadline = Instant::now() + ROOM_WAIT;
        let (segment, at, epoch) = {
            let mut st = self.lock();
            loop {
                if let Some(spot) = self.reserve(&mut st, len) {
                    break spot;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if !wait {
                    return Ok(None);
                }
                if left.is_zero() {
                    return Err(io::Error::other("upload journal full: settling is behind"));
                }
                st = self
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        let ticket = Ticket {
            journal: Arc::clone(self),
            segment,
        };
        let f = &self.segments[segment];
        f.write_all_at(&encode_record(epoch, kind, name, content), at)?;
        let mut written = [false; 2];
        written[segment] = true;
        self.flush(written)?;
        Ok(Some(ticket))
    }

    /// `Created` records of several new files, written with one write per run of records
    /// that lie side by side and made durable with one shared flush. One answer per file, in
    /// order: None for a file that found no room (it is stored another way).
    pub fn append_created(
        self: &Arc<Self>,
        files: &[(&str, &[u8])],
    ) -> io::Result<Vec<Option<Ticket>>> {
        let mut spots = Vec::with_capacity(files.len());
        {
            let mut st = self.lock();
            for (name, content) in files {
                let spot = self
                    .record_len(name, content)
                    .and_then(|len| self.reserve(&mut st, len));
                spots.push(spot);
            }
        }
        // Tickets first: a failed write must still let the segment be retired.
        let tickets: Vec<Option<Ticket>> = spots
            .iter()
            .map(|spot| {
                spot.map(|(segment, _, _)| Ticket {
                    journal: Arc::clone(self),
                    segment,
                })
            })
            .collect();
        let mut written = [false; 2];
        let mut run: Option<(usize, u64, Vec<u8>)> = None;
        for ((name, content), spot) in files.iter().zip(&spots) {
            let Some((segment, at, epoch)) = *spot else {
                continue;
            };
            written[segment] = true;
            let record = encode_record(epoch, RecordKind::Created, name, content);
            match &mut run {
                Some((seg, start, buf)) if *seg == segment && *start + buf.len() as u64 == at => {
                    buf.extend_from_slice(&record);
                }
                _ => {
                    if let Some((seg, start, buf)) = run.replace((segment, at, record)) {
                        self.segments[seg].write_all_at(&buf, start)?;
                    }
                }
            }
        }
        if let Some((seg, start, buf)) = run {
            self.segments[seg].write_all_at(&buf, start)?;
        }
        if written.iter().any(|&w| w) {
            self.flush(written)?;
        }
        Ok(tickets)
    }

    /// A record's padded length; None when it can never fit.
    fn record_len(&self, name: &str, content: &[u8]) -> Option<u64> {
        if name.len() > u16::MAX as usize || content.len() > u32::MAX as usize {
            return None;
        }
        let len = (RECORD_HEAD + name.len() + content.len()).next_multiple_of(RECORD_ALIGN) as u64;
        (HEADER_LEN + len <= self.size).then_some(len)
    }

    /// Room for a record of `len` bytes: (segment, offset, epoch), switching to the other
    /// segment when the active one is full and the other free; None when neither has room
    /// (the storage is asked to settle), or after a failed flush.
    fn reserve(&self, st: &mut State, len: u64) -> Option<(usize, u64, u64)> {
        if self.flush_state().failed.is_some() {
            return None;
        }
        while st.next + len > self.size {
            if !st.switch_if_free() {
                self.settle_wanted.notify_one();
                return None;
            }
        }
        let active = st.active;
        let at = st.next;
        st.next += len;
        if st.next - HEADER_LEN >= (self.size - HEADER_LEN) / 2 {
            self.settle_wanted.notify_one();
        }
        let seg = &mut st.segs[active];
        seg.in_flight += 1;
        seg.used = true;
        Some((active, at, seg.epoch))
    }

    fn flush_state(&self) -> MutexGuard<'_, Flushes> {
        self.flushes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tests: every later flush fails with `errno` (as a failing device's fdatasync does).
    #[cfg(test)]
    pub(crate) fn fail_flushes_with(&self, errno: i32) {
        self.flush_state().fail_with = Some(errno);
    }

    /// Makes the records this thread wrote to the `written` segments durable: leads a flush
    /// or waits for one that started after they were written (see `Flushes`).
    fn flush(&self, written: [bool; 2]) -> io::Result<()> {
        let mut f = self.flush_state();
        for (dirty, w) in f.dirty.iter_mut().zip(written) {
            *dirty |= w;
        }
        let need = f.started + 1;
        loop {
            if f.done >= need {
                return match f.failed {
                    Some(failed) if failed <= need => Err(io::Error::new(
                        f.cause.unwrap_or(io::ErrorKind::Other),
                        "the upload journal's flush failed",
                    )),
                    _ => Ok(()),
                };
            }
            if !f.running {
                // No flush runs, and none started after our records were written: lead one.
                f.running = true;
                f.started += 1;
                let number = f.started;
                let dirty = std::mem::take(&mut f.dirty);
                #[cfg(test)]
                let fail_with = f.fail_with;
                drop(f);
                let mut result = Ok(());
                for (segment, _) in dirty.iter().enumerate().filter(|(_, d)| **d) {
                    #[cfg(test)]
                    if let Some(n) = fail_with {
                        result = result.and(Err(io::Error::from_raw_os_error(n)));
                    }
                    result = result.and_then(|()| self.segments[segment].sync_data());
                }
                f = self.flush_state();
                f.running = false;
                f.done = number;
                if let (Err(e), None) = (&result, f.failed) {
                    f.failed = Some(number);
                    f.cause = Some(e.kind());
                }
                self.flushed.notify_all();
                result.map_err(|e| {
                    io::Error::new(e.kind(), format!("the upload journal's flush failed: {e}"))
                })?;
                continue;
            }
            f = self.flushed.wait(f).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether `path` was created through this journal and has not settled yet.
    pub fn holds(&self, path: &Path) -> bool {
        self.lock().segs.iter().any(|s| s.files.contains(path))
    }

    /// `path` (`name` in the journal) is to be deleted: records that it is, when its
    /// `Created` record still counts, so that start-up does not bring it back. Keep the ticket
    /// until the file is unlinked.
    pub fn forget(self: &Arc<Self>, path: &Path, name: &str) -> io::Result<Option<Ticket>> {
        if !self.holds(path) {
            return Ok(None);
        }
        let ticket = self.append(RecordKind::Deleted, name, &[], true)?;
        for seg in self.lock().segs.iter_mut() {
            seg.files.remove(path);
        }
        Ok(ticket)
    }

    /// What `/metrics` and `status` show of this journal.
    pub fn stats(&self) -> JournalStats {
        let (flushes, failed) = {
            let f = self.flush_state();
            (f.done, f.failed.is_some())
        };
        let st = self.lock();
        JournalStats {
            active_used_bytes: st.next - HEADER_LEN,
            segment_room_bytes: self.size.saturating_sub(HEADER_LEN),
            unsettled_files: st.segs.iter().map(|s| s.files.len() as u64).sum(),
            settled_files: st.settled,
            flushes,
            failed,
            stuck_segments: st.segs.iter().filter(|s| s.stuck).count() as u64,
        }
    }

    /// Whether a segment holds records a retire can still settle.
    pub fn has_records(&self) -> bool {
        self.lock().segs.iter().any(|s| s.used && !s.stuck)
    }

    /// Directs new records to the other segment, when it is free and the active one is used.
    /// Done before the binlog is flushed, so that every record of the closed segment was
    /// written before its file's binlog record was flushed.
    pub fn close_active(&self) {
        let mut st = self.lock();
        if st.segs[st.active].used {
            st.switch_if_free();
        }
    }

    /// Retires the closed segment, if one is used: waits for its records in flight, runs
    /// `make_durable` (which must make every file placed so far durable), then resets it.
    /// Returns how many files settled.
    pub fn retire_closed(
        &self,
        make_durable: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<usize> {
        let _one = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        let closed = {
            let mut st = self.lock();
            let closed = 1 - st.active;
            if !st.segs[closed].used || st.segs[closed].stuck {
                return Ok(0);
            }
            while st.segs[closed].in_flight > 0 {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            closed
        };
        if let Err(e) = make_durable() {
            self.lock().segs[closed].stuck = true;
            return Err(io::Error::new(
                e.kind(),
                format!("{e}; the records of its files are kept for start-up, and small uploads flush their own files until then"),
            ));
        }
        let (seq, epoch) = {
            let st = self.lock();
            (
                st.segs.iter().map(|s| s.seq).max().unwrap_or(0) + 1,
                rand::random::<u64>(),
            )
        };
        reset(&self.segments[closed], seq, epoch)?;
        let settled = {
            let mut st = self.lock();
            let seg = &mut st.segs[closed];
            let settled = seg.files.len();
            *seg = Segment {
                seq,
                epoch,
                ..Segment::default()
            };
            st.settled += settled as u64;
            settled
        };
        self.changed.notify_all();
        Ok(settled)
    }

    /// The filesystem the journal is on, to `syncfs`.
    pub fn file(&self) -> &File {
        &self.segments[0]
    }
}

#[cfg(test)]
mod tests;
