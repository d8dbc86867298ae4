//! Replication inside a group, sending side: replays this storage's binlog to every other
//! storage of its group, one sender task per peer. (The receiving side — applying SYNC_* and
//! logging lower-case replica records — is in service.rs.)
//!
//! ```text
//!  trackers ──BEAT replies: group server list──> StorageState::group_servers
//!  run_sync (manager): one peer_task per member except us; a member that leaves the list or
//!    turns DELETED / IP_CHANGED has its task stopped; a new one gets a task
//!  peer_task: LANES (4) connections, each opened with REPORT_SERVER_ID(our id); then, per
//!    batch of up to 256 binlog records from the mark:
//!    plan(record, mark) -> SYNC_CREATE_FILE / SYNC_UPDATE_FILE / SYNC_DELETE_FILE /
//!                          SYNC_APPEND_FILE / SYNC_MODIFY_FILE / SYNC_TRUNCATE_FILE / skip
//!    lane_of(file): one file's records go in order over one connection, different files
//!    in parallel (the peer's fsyncs overlap); a batch counts as applied once every lane's
//!    records were answered. The peer flushes small new files in batches, so an answer is not
//!    yet durability: the mark moves only to what the peer confirmed by answering a
//!    SYNC_WATERMARK (sent when the watermark moves, and at idle when something is
//!    unconfirmed); it is persisted every `write_mark_every` records, when idle and on exit.
//!    On a connect / I/O / refusal error: log the reason, back off (sync.retry_backoff_min
//!    doubling to _max), reconnect and replay from the mark (every record is safe to apply
//!    twice: EEXIST / ENOENT / same bytes at the same offset).
//!    Idle connections get ACTIVE_TEST every network_timeout/3 (peers drop idle ones).
//! ```
//!
//! Content: small files go with sendfile(2) from the page cache. With fsync on, files of
//! `direct_io_min_size` and more were uploaded with O_DIRECT and are not cached; they are read
//! with O_DIRECT in 1 MiB chunks, one chunk ahead of the socket (`DirectChunks`), instead of
//! filling the page cache with a stream read once.
//!
//! What is sent (FastDFS's rules): only source records (upper case: a client did it here);
//! replica records (lower case) are not forwarded, except by the *designated source* of a
//! newcomer while it copies the old data (below). Files are read at send time: a file
//! deleted since is skipped, an append/modify whose range no longer exists (truncated since)
//! and one the peer refuses with ENOENT are sent as a whole-file SYNC_UPDATE_FILE. The peer answering EEXIST to a create or
//! ENOENT to a delete counts as done. Metadata travels as the `<name>-m` sidecar file
//! (C/U/D records of that name). File IDs, bytes and timestamps are the source's: the receiver
//! writes the same name, and the record timestamp travels in the request.
//!
//! Mark files: `<base>/data/sync/<ip>_<port>.mark` (or `<storage id>.mark` with
//! `use_storage_id`), key=value lines written atomically (temp + fsync + rename):
//! `binlog_index`, `binlog_offset` (next record to send; the peer confirmed every record
//! before it), `need_sync_old` (1: we copy all old
//! data to this peer), `sync_old_done`, `until_timestamp` (the newcomer's sync-source time),
//! `scan_row_count` (records looked at), `sync_row_count` (records sent), `sync_bytes`,
//! `synced_timestamp` (timestamp of the newest record sent).
//!
//! Newcomers (status moves, as FastDFS): an empty storage joins with init_flag=1 -> INIT; it
//! asks SYNC_DEST_REQ and the tracker picks a source S and `until = now` -> WAIT_SYNC. Every
//! member, on first meeting a peer (no mark file yet, peer not INIT), asks a tracker
//! SYNC_SRC_REQ for that peer. S (the answer names it) sets `need_sync_old`, reports the peer
//! SYNCING (REPORT_STATUS), replays its whole binlog from the start (source records, and
//! replica records stamped <= until), and at the end of the binlog reports the peer OFFLINE
//! on every tracker; the newcomer's next BEAT makes it ACTIVE (trackers hand out only ACTIVE
//! storages). Unlike FastDFS, the other members do not skip their own records stamped
//! <= until: they send the newcomer all of their own records from their binlog start, so a
//! record still travelling to S when S's copy ended is not lost (what S already copied is
//! answered EEXIST). S stops forwarding replica records when its copy ends, so a file deleted
//! at its source later is not brought back. (Remaining window: S forwards a create during the
//! copy after the file's source already had its delete applied on the newcomer; the source
//! replays its binlog from the start, so its delete normally arrives later.) The newcomer
//! learns it is done from the server list (itself ONLINE/OFFLINE/ACTIVE) and writes
//! `<base>/data/sync/.data_init_flag` (sync_old_done=1), so it joins with init_flag=0 afterwards.
//!
//! Progress for reads: once the peer has applied every record before a binlog position, the
//! sender tells it a watermark (SYNC_WATERMARK): every file we created before that second is
//! there (`StorageState::sync_checkpoint` keeps it below files still being written and records
//! not yet readable). The peer answers once everything it acknowledged is on its disk (the
//! confirmation above; a peer that refuses the command, a C storage, is taken at its
//! acknowledgements). The peer reports it with SYNC_REPORT; trackers hand a storage out for
//! QUERY_FETCH only for files created before it (select.rs). A record failing on one lane
//! therefore holds the watermark back while the other lanes deliver newer files.
//!
//! Lag: every sender publishes its position, bytes of binlog left, seconds behind and counters
//! (`StorageState::peer_sync`); `fdfs-ha monitor` asks each storage for them with the fdfs-ha
//! command SYNC_STATUS_QUERY (200, empty body -> JSON).

use super::binlog::{BinlogOp, BinlogPos, BinlogReader, BinlogRecord};
use super::reporter::report_peer_status;
use super::state::{unix_now, PeerSyncStatus, StorageState};
use super::store::{AlignedBuf, FileToSend, Store};
use crate::client::storage::{ChunkSource, StorageConn};
use crate::proto::cmd::errno;
use crate::proto::connection::ConnError;
use crate::proto::fileid::{RemoteName, METADATA_SUFFIX};
use crate::proto::storage::{SyncDeleteReq, SyncFileReq, SyncRangeReq, SyncTruncateReq};
use crate::proto::tracker::{StorageBrief, StorageStatus, SyncSource};
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Records read from the binlog per blocking read (and sent as one batch over the lanes).
const BATCH: usize = 256;
/// Connections per peer: different files are sent in parallel (the receiver's fsyncs
/// overlap); one file's records always travel in order on one connection.
pub const LANES: usize = 4;
/// Longest sleep of an idle sender between looks at the binlog (flushes also wake it).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Records-behind is counted by reading the unsent binlog only up to this many bytes.
const COUNT_RECORDS_LIMIT: u64 = 64 << 20;

// ------------------------------------------------------------------------------------------------
// Mark file

/// Where one peer's replay stands (persisted as `<peer>.mark`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    /// Next record to send: the peer confirmed every record before it (see `send_watermark`).
    pub pos: BinlogPos,
    /// We are the newcomer's designated source: send every old record, replica ones too.
    pub need_sync_old: bool,
    pub sync_old_done: bool,
    /// The newcomer's sync time (0: the peer was no newcomer when we met it).
    pub until_timestamp: i64,
    pub scan_row_count: u64,
    pub sync_row_count: u64,
    pub sync_bytes: u64,
    /// Timestamp of the newest record sent.
    pub synced_timestamp: i64,
    /// A tracker listed the peer DELETED when its sender stopped: if it comes back waiting
    /// for old data, it is a newcomer and this mark is not resumed (fdfs-ha key).
    pub peer_deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad mark file: {0}")]
pub struct MarkError(String);

impl Mark {
    pub fn encode(&self) -> String {
        format!(
            "binlog_index={}\nbinlog_offset={}\nneed_sync_old={}\nsync_old_done={}\n\
             until_timestamp={}\nscan_row_count={}\nsync_row_count={}\nsync_bytes={}\n\
             synced_timestamp={}\npeer_deleted={}\n",
            self.pos.index,
            self.pos.offset,
            self.need_sync_old as u8,
            self.sync_old_done as u8,
            self.until_timestamp,
            self.scan_row_count,
            self.sync_row_count,
            self.sync_bytes,
            self.synced_timestamp,
            self.peer_deleted as u8
        )
    }

    /// Parses a mark file; `binlog_index` and `binlog_offset` are required, unknown keys ignored.
    pub fn parse(text: &str) -> Result<Mark, MarkError> {
        let mut kv = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| MarkError(format!("line without '=': {line:?}")))?;
            kv.insert(k.trim(), v.trim());
        }
        fn num<T: std::str::FromStr + Default>(
            kv: &HashMap<&str, &str>,
            key: &str,
            required: bool,
        ) -> Result<T, MarkError> {
            match kv.get(key) {
                Some(v) => v
                    .parse()
                    .map_err(|_| MarkError(format!("{key}={v:?} is not a number"))),
                None if required => Err(MarkError(format!("{key} missing"))),
                None => Ok(T::default()),
            }
        }
        Ok(Mark {
            pos: BinlogPos {
                index: num(&kv, "binlog_index", true)?,
                offset: num(&kv, "binlog_offset", true)?,
            },
            need_sync_old: num::<u8>(&kv, "need_sync_old", false)? != 0,
            sync_old_done: num::<u8>(&kv, "sync_old_done", false)? != 0,
            until_timestamp: num(&kv, "until_timestamp", false)?,
            scan_row_count: num(&kv, "scan_row_count", false)?,
            sync_row_count: num(&kv, "sync_row_count", false)?,
            sync_bytes: num(&kv, "sync_bytes", false)?,
            synced_timestamp: num(&kv, "synced_timestamp", false)?,
            peer_deleted: num::<u8>(&kv, "peer_deleted", false)? != 0,
        })
    }

    /// Ok(None) when the peer has no mark yet.
    pub fn load(path: &Path) -> io::Result<Option<Mark>> {
        match std::fs::read_to_string(path) {
            Ok(t) => Mark::parse(&t)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the mark atomically (temp file, fsync, rename, fsync of the directory).
    pub fn store(&self, path: &Path) -> io::Result<()> {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.encode().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        super::binlog::fsync_dir(dir)
    }
}

/// The mark file name of a peer: its storage id with `use_storage_id`, else `<ip>_<port>`.
pub fn mark_name(peer: &StorageBrief, use_storage_id: bool) -> String {
    if use_storage_id && !peer.id.is_empty() {
        peer.id.clone()
    } else {
        format!("{}_{}", peer.ip, peer.port)
    }
}

pub fn mark_path(sync_dir: &Path, name: &str) -> PathBuf {
    sync_dir.join(format!("{name}.mark"))
}

/// Whether a kept mark for a peer that now waits for old data under sync source `src` belongs
/// to an earlier membership (the peer was deleted and added again): we saw it deleted, or
/// another sync time, or the same second but we are its designated source with no copy in
/// progress.
pub fn mark_is_stale(mark: &Mark, my_id: &str, src: &SyncSource) -> bool {
    if mark.peer_deleted || src.until_timestamp != mark.until_timestamp {
        return true;
    }
    let copying = mark.need_sync_old && !mark.sync_old_done;
    src.src_id == my_id && !copying
}

/// The mark a sender starts with for a peer it never synced to. `designated` = the tracker's
/// answer to SYNC_SRC_REQ for that peer: (source id, until) while it waits for old data.
pub fn initial_mark(my_id: &str, designated: Option<(&str, i64)>) -> Mark {
    match designated {
        Some((src, until)) => Mark {
            need_sync_old: src == my_id,
            until_timestamp: until,
            ..Mark::default()
        },
        None => Mark::default(),
    }
}

// ------------------------------------------------------------------------------------------------
// What to send for a record

/// What a binlog record turns into on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to send (the reason is for logs and tests).
    Skip(&'static str),
    Create,
    Update,
    Delete,
    Append {
        offset: u64,
        length: u64,
    },
    Modify {
        offset: u64,
        length: u64,
    },
    Truncate {
        old_size: u64,
        new_size: u64,
    },
}

fn two_numbers(extra: Option<&str>) -> Option<(u64, u64)> {
    let mut it = extra?.split_whitespace();
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b))
}

/// Decides what to send to a peer for one record, given the peer's mark.
pub fn plan(rec: &BinlogRecord, mark: &Mark) -> Plan {
    // Source records always go (also to a newcomer: its copy from the designated source may
    // end before a record still travelling to that source arrived there). Replica records go
    // only while we copy a newcomer's old data: forwarding them later could bring back a file
    // its source deleted in the meantime.
    let copying = mark.need_sync_old && !mark.sync_old_done;
    let old_replica = copying && rec.timestamp <= mark.until_timestamp;
    if !(rec.source || old_replica) {
        return Plan::Skip("replica record: its source sends it");
    }
    let range = two_numbers(rec.extra.as_deref());
    match rec.op {
        BinlogOp::Create => Plan::Create,
        BinlogOp::Update => Plan::Update,
        BinlogOp::Delete => Plan::Delete,
        // A malformed tail still converges: send the whole file.
        BinlogOp::Append => range.map_or(Plan::Update, |(offset, length)| Plan::Append {
            offset,
            length,
        }),
        BinlogOp::Modify => range.map_or(Plan::Update, |(offset, length)| Plan::Modify {
            offset,
            length,
        }),
        BinlogOp::Truncate => range.map_or(Plan::Update, |(old_size, new_size)| Plan::Truncate {
            old_size,
            new_size,
        }),
        BinlogOp::Link | BinlogOp::Rename => Plan::Skip("links and renames are not produced here"),
    }
}

/// Exponential backoff between retries: `min`, doubling, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// After a success, the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Bytes of binlog from `from` to `to` (`to` at or after `from`), using the binlog file sizes
/// for the files in between.
pub fn bytes_between(dir: &Path, from: BinlogPos, to: BinlogPos) -> u64 {
    if to <= from {
        return 0;
    }
    if from.index == to.index {
        return to.offset - from.offset;
    }
    let size = |i: u32| {
        std::fs::metadata(dir.join(format!("binlog.{i:03}")))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut total = size(from.index).saturating_sub(from.offset);
    for i in from.index + 1..to.index {
        total += size(i);
    }
    total + to.offset
}

/// Records between `from` and the flushed end (at most [`COUNT_RECORDS_LIMIT`] bytes read;
/// beyond that the count is a lower bound).
pub fn records_between(dir: &Path, from: BinlogPos, to: BinlogPos) -> u64 {
    let mut n = 0u64;
    let mut read = 0u64;
    let mut pos = from;
    let mut buf = vec![0u8; 64 * 1024];
    while pos < to && read < COUNT_RECORDS_LIMIT {
        let Ok(mut f) = std::fs::File::open(dir.join(format!("binlog.{:03}", pos.index))) else {
            break;
        };
        if f.seek(SeekFrom::Start(pos.offset)).is_err() {
            break;
        }
        let end = if pos.index == to.index {
            to.offset
        } else {
            u64::MAX
        };
        let mut off = pos.offset;
        while off < end && read < COUNT_RECORDS_LIMIT {
            let want = (end - off).min(buf.len() as u64) as usize;
            let got = match f.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(g) => g,
            };
            n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
            off += got as u64;
            read += got as u64;
        }
        pos = BinlogPos {
            index: pos.index + 1,
            offset: 0,
        };
    }
    n
}

/// A peer's status as the trackers' server list gives it.
fn status_of(b: &StorageBrief) -> Option<StorageStatus> {
    StorageStatus::from_u8(b.status)
}

/// Whether a member of the list should have a sender (not us, not removed).
pub fn wants_sender(peer: &StorageBrief, my_id: &str, my_port: u16) -> bool {
    if peer.id == my_id && peer.port == my_port {
        return false;
    }
    !matches!(
        status_of(peer),
        Some(StorageStatus::Deleted) | Some(StorageStatus::IpChanged)
    )
}

// ------------------------------------------------------------------------------------------------
// Status query (fdfs-ha extension, used by `fdfs-ha monitor` and the drills)

/// SYNC_STATUS_QUERY: empty body; the reply body is a JSON [`SyncReport`]. Not a FastDFS
/// command (FastDFS has no way to ask a storage for its sync lag); 200 is unused there.
pub const SYNC_STATUS_QUERY: u8 = 200;

/// SYNC_WATERMARK (fdfs-ha extension, sender -> peer): body an 8-byte big-endian unix second
/// W, meaning "you now hold every file I created before W"; empty reply. The peer reports W to
/// the trackers (SYNC_REPORT), which hand it out to readers of this storage's files created
/// before W. FastDFS's receiver reports the timestamp of the last record it applied instead;
/// with parallel lanes that can run ahead of records still in flight on another lane, and a
/// record can be logged after a newer one (an upload's fsync takes its time).
pub const SYNC_WATERMARK: u8 = 201;

/// One storage's replication state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// False while this storage still waits for its group's old data.
    pub sync_old_done: bool,
    /// End of the binlog readers can see.
    pub binlog_index: u32,
    pub binlog_offset: u64,
    /// Outgoing: one entry per peer.
    pub peers: Vec<PeerSyncStatus>,
    /// Incoming: per source storage id, the newest record timestamp applied.
    pub synced_from: Vec<(String, u32)>,
}

/// Builds the report (blocking: counts unsent binlog records).
pub fn sync_report(state: &StorageState) -> SyncReport {
    let dir = state.binlog().dir();
    let end = state.binlog().flushed_position();
    let (pending_bytes, pending_records, pending_oldest) = state.binlog().pending_summary();
    let now = unix_now() as i64;
    let peers = state
        .peer_sync()
        .into_iter()
        .map(|mut p| {
            let from = BinlogPos {
                index: p.binlog_index,
                offset: p.binlog_offset,
            };
            p.bytes_behind = bytes_between(dir, from, end) + pending_bytes;
            p.records_behind = records_between(dir, from, end) + pending_records;
            // Age of the oldest change the peer has not been sent.
            let oldest = BinlogReader::new(dir, from)
                .next_record()
                .ok()
                .flatten()
                .map(|(r, _)| r.timestamp)
                .or(pending_oldest);
            p.seconds_behind = oldest.map_or(0, |t| (now - t).max(0) as u64);
            p
        })
        .collect();
    SyncReport {
        sync_old_done: state.sync_old_done(),
        binlog_index: end.index,
        binlog_offset: end.offset,
        peers,
        synced_from: state.synced_from(),
    }
}

// ------------------------------------------------------------------------------------------------
// I/O: the manager and the per-peer senders

/// Keeps one sender per group peer running until `shutdown`.
pub async fn run_sync(state: Arc<StorageState>, shutdown: CancellationToken) {
    let mut tasks: HashMap<String, (watch::Sender<StorageBrief>, CancellationToken)> =
        HashMap::new();
    let mut set = tokio::task::JoinSet::new();
    loop {
        if let Some((my_id, _)) = state.tracker_identity() {
            let use_id = state.group_params().use_storage_id;
            let mut seen = Vec::new();
            for peer in state.group_servers() {
                let name = mark_name(&peer, use_id);
                if !wants_sender(&peer, &my_id, state.port()) {
                    // Its sender (stopped below) sees why: a DELETED peer's mark says so.
                    if let Some((tx, _)) = tasks.get(&name) {
                        tx.send_replace(peer.clone());
                    }
                    continue;
                }
                seen.push(name.clone());
                match tasks.get(&name) {
                    Some((tx, _)) => {
                        tx.send_if_modified(|cur| {
                            let changed = *cur != peer;
                            *cur = peer.clone();
                            changed
                        });
                    }
                    None => {
                        tracing::info!(peer = %name, status = peer.status, "sync: starting sender");
                        let (tx, rx) = watch::channel(peer.clone());
                        let stop = shutdown.child_token();
                        set.spawn(peer_task(state.clone(), name.clone(), rx, stop.clone()));
                        tasks.insert(name, (tx, stop));
                    }
                }
            }
            tasks.retain(|name, (_, stop)| {
                let keep = seen.contains(name);
                if !keep {
                    tracing::info!(peer = %name, "sync: peer left the group; stopping its sender");
                    stop.cancel();
                }
                keep
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.group_servers_changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            Some(_) = set.join_next(), if !set.is_empty() => {}
        }
    }
    while set.join_next().await.is_some() {}
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("local file {0}: {1}")]
    Local(String, io::Error),
    #[error("peer refused {op} {file} with errno {status}")]
    Refused {
        op: &'static str,
        file: String,
        status: u8,
    },
    #[error("binlog: {0}")]
    Binlog(io::Error),
}

struct Sender {
    state: Arc<StorageState>,
    name: String,
    peer: watch::Receiver<StorageBrief>,
    stop: CancellationToken,
    /// `mark.pos`: every record before it is on the peer's disk (it confirmed that by
    /// answering a SYNC_WATERMARK, see `send_watermark`); a new session resumes there.
    mark: Mark,
    /// Every record before this the peer has acknowledged in this session; the ones since
    /// `mark.pos` may still be in its page cache only.
    sent: BinlogPos,
    mark_path: PathBuf,
    status: PeerSyncStatus,
    /// Records sent (or confirmations received) since the mark was last written.
    unsaved: u32,
    /// Whether the designated source already reported the newcomer SYNCING.
    reported_syncing: bool,
    /// The last SYNC_WATERMARK the peer accepted in this session.
    watermark_sent: Option<u32>,
    /// (watermark, binlog position) pairs, oldest first: once every record before the
    /// position is applied at the peer, the watermark holds (`StorageState::sync_checkpoint`).
    checkpoints: std::collections::VecDeque<(i64, BinlogPos)>,
}

async fn peer_task(
    state: Arc<StorageState>,
    name: String,
    peer: watch::Receiver<StorageBrief>,
    stop: CancellationToken,
) {
    let sync_dir = state.binlog().dir().to_path_buf();
    let mark_path = mark_path(&sync_dir, &name);
    let mut s = Sender {
        status: PeerSyncStatus {
            peer: name.clone(),
            state: "starting".into(),
            ..Default::default()
        },
        state,
        name,
        peer,
        stop,
        mark: Mark::default(),
        sent: BinlogPos::default(),
        mark_path,
        unsaved: 0,
        reported_syncing: false,
        watermark_sent: None,
        checkpoints: Default::default(),
    };
    let cfg = s.state.config().sync.clone();
    let mut backoff = Backoff::new(cfg.retry_backoff_min.get(), cfg.retry_backoff_max.get());
    match s.first_mark(&mut backoff).await {
        Some(m) => {
            s.sent = m.pos;
            s.mark = m;
        }
        None => return s.state.remove_peer_sync(&s.name),
    }
    loop {
        if s.stop.is_cancelled() {
            break;
        }
        match s.session(&mut backoff).await {
            Ok(()) => break,
            Err(e) => {
                s.status.failures += 1;
                s.status.last_error = e.to_string();
                let delay = backoff.next_delay();
                tracing::warn!(peer = %s.name, error = %e, retry_in = ?delay, "sync: sending failed");
                s.publish("backing off");
                s.save_mark().await;
                tokio::select! {
                    _ = s.stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if status_of(&s.peer()) == Some(StorageStatus::Deleted) {
        // If it is added again it comes back as a newcomer, and this mark must not be resumed
        // then. Kept, not removed: a tracker that missed the delete may list it again as it was.
        tracing::info!(peer = %s.name, "sync: peer deleted; its mark will not be resumed if it returns as a newcomer");
        s.mark.peer_deleted = true;
    }
    s.save_mark().await;
    // Stopped: the peer left the group (or we are shutting down); it has no lag to show.
    s.state.remove_peer_sync(&s.name);
}

impl Sender {
    fn peer(&self) -> StorageBrief {
        self.peer.borrow().clone()
    }

    /// The mark from disk, or a new one decided with the trackers' help (None: stopped).
    async fn first_mark(&mut self, backoff: &mut Backoff) -> Option<Mark> {
        // A peer still INIT has no sync decision yet (a newcomer, or a deleted storage back
        // again): wait for it, so its sync source and time are known.
        loop {
            let st = status_of(&self.peer());
            if !matches!(st, Some(StorageStatus::Init) | Some(StorageStatus::None)) {
                break;
            }
            self.publish("waiting for the peer's sync decision");
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = self.peer.changed() => {}
            }
        }
        let path = self.mark_path.clone();
        match tokio::task::spawn_blocking(move || Mark::load(&path)).await {
            Ok(Ok(Some(m))) => {
                if let Some(fresh) = self.readded(&m, backoff).await {
                    return Some(fresh);
                }
                // Listed again as it was (a tracker that missed the delete): carry on.
                return Some(Mark {
                    peer_deleted: false,
                    ..m
                });
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                // Starting over only re-sends files (the peer answers EEXIST): nothing is lost.
                tracing::error!(peer = %self.name, error = %e, "sync: unreadable mark file; replaying from the start");
                return Some(Mark::default());
            }
            Err(e) => tracing::error!(peer = %self.name, error = %e, "sync: mark load task failed"),
        }
        let my_id = self.state.tracker_identity().map(|(id, _)| id)?;
        let src = self.sync_source(backoff).await?;
        let designated = src.as_ref().map(|s| (s.src_id.as_str(), s.until_timestamp));
        let mark = initial_mark(&my_id, designated);
        tracing::info!(peer = %self.name, source = ?designated, full_copy = mark.need_sync_old, "sync: first contact with peer");
        let path = self.mark_path.clone();
        let m2 = mark.clone();
        match tokio::task::spawn_blocking(move || m2.store(&path)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(peer = %self.name, error = %e, "sync: cannot write mark"),
            Err(e) => tracing::error!(peer = %self.name, error = %e, "sync: mark task failed"),
        }
        Some(mark)
    }

    /// The peer's sync source as the trackers assigned it, asked until they answer (None:
    /// stopped meanwhile). Never guessed: a wrong mark would skip or repeat a full copy.
    async fn sync_source(&mut self, backoff: &mut Backoff) -> Option<Option<SyncSource>> {
        loop {
            match ask_sync_source(&self.state, &self.peer().id).await {
                Ok(src) => return Some(src),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(peer = %self.name, error = %e, retry_in = ?delay, "sync: cannot ask trackers for the peer's sync source");
                    tokio::select! {
                        _ = self.stop.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// A peer we have a mark for that waits for old data again was deleted and added again
    /// (see [`mark_is_stale`]): its copy starts over (a new mark from the binlog start).
    async fn readded(&mut self, mark: &Mark, backoff: &mut Backoff) -> Option<Mark> {
        let st = status_of(&self.peer());
        if !matches!(
            st,
            Some(StorageStatus::WaitSync) | Some(StorageStatus::Syncing)
        ) {
            return None;
        }
        let my_id = self.state.tracker_identity().map(|(id, _)| id)?;
        // Keeping the old mark on a transient tracker error would leave a re-added peer
        // waiting for a copy nobody starts.
        let src = self.sync_source(backoff).await??;
        if !mark_is_stale(mark, &my_id, &src) {
            return None;
        }
        let fresh = initial_mark(&my_id, Some((&src.src_id, src.until_timestamp)));
        tracing::warn!(peer = %self.name, source = %src.src_id, until = src.until_timestamp, "sync: peer was added again; replaying from the binlog start");
        let path = self.mark_path.clone();
        let m2 = fresh.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || m2.store(&path)).await {
            tracing::error!(peer = %self.name, error = %e, "sync: cannot write mark");
        }
        Some(fresh)
    }

    fn publish(&mut self, what: &str) {
        let dir = self.state.binlog().dir();
        let end = self.state.binlog().flushed_position();
        // Lag counts what the peer has not applied yet (`sent`; `mark.pos` only follows it).
        let applied = self.sent;
        self.status.state = what.to_string();
        self.status.binlog_index = applied.index;
        self.status.binlog_offset = applied.offset;
        self.status.bytes_behind = bytes_between(dir, applied, end);
        self.status.synced_timestamp = self.mark.synced_timestamp;
        self.status.records_sent = self.mark.sync_row_count;
        self.status.bytes_sent = self.mark.sync_bytes;
        // Exact lag (records, age of the oldest unsent change) is computed on demand by
        // `sync_report`; this is the cheap live view.
        self.status.seconds_behind =
            if self.status.bytes_behind == 0 || self.mark.synced_timestamp == 0 {
                0
            } else {
                (unix_now() as i64 - self.mark.synced_timestamp).max(0) as u64
            };
        self.state.set_peer_sync(self.status.clone());
    }

    async fn save_mark(&mut self) {
        let path = self.mark_path.clone();
        let m = self.mark.clone();
        match tokio::task::spawn_blocking(move || m.store(&path)).await {
            Ok(Ok(())) => self.unsaved = 0,
            Ok(Err(e)) => {
                tracing::error!(peer = %self.name, error = %e, "sync: cannot write mark file")
            }
            Err(e) => tracing::error!(peer = %self.name, error = %e, "sync: mark task failed"),
        }
    }

    /// One session (LANES connections): send records until stopped (Ok) or something fails
    /// (Err). The next session starts again at the mark: records the peer acknowledged after
    /// its last confirmation are sent again (it answers EEXIST for files it has).
    async fn session(&mut self, backoff: &mut Backoff) -> Result<(), SendError> {
        let peer = self.peer();
        let addr = format!("{}:{}", peer.ip, peer.port);
        self.publish("connecting");
        let timeout = self.state.config().network_timeout.get();
        let my_id = self
            .state
            .tracker_identity()
            .map(|(id, _)| id)
            .unwrap_or_default();
        // A restarted peer forgot our watermark: tell it again on this connection.
        self.watermark_sent = None;
        let mut lanes = Vec::with_capacity(LANES);
        for _ in 0..LANES {
            let mut conn = tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                c = StorageConn::connect_timeout(addr.as_str(), timeout) => c?,
            };
            conn.report_server_id(&my_id).await?;
            lanes.push(Lane {
                state: self.state.clone(),
                peer: self.name.clone(),
                conn,
            });
        }
        tracing::info!(peer = %self.name, %addr, from = ?self.mark.pos, "sync: connected");
        self.sent = self.mark.pos;
        let mut reader = self.state.binlog().reader(self.mark.pos);
        let every = self.state.config().sync.write_mark_every.max(1);
        // Peers close connections idle for network_timeout: keep ours alive (FastDFS sends
        // ACTIVE_TEST the same way).
        // A third of the timeout, and the idle wait below ends at that deadline, so a lane is
        // never idle for close to the peer's timeout (half of it plus a poll could reach it).
        let keepalive = (timeout / 3).max(Duration::from_millis(100));
        let mut last_io = tokio::time::Instant::now();
        loop {
            if self.stop.is_cancelled() {
                return Ok(());
            }
            let (r, checkpoint, batch) = read_batch(reader, self.state.clone())
                .await
                .map_err(SendError::Binlog)?;
            reader = r;
            if self.checkpoints.back().is_none_or(|c| c.0 < checkpoint.0) {
                self.checkpoints.push_back(checkpoint);
            }
            let Some(&(_, end)) = batch.last() else {
                let at = reader.position();
                self.send_watermark(&mut lanes[0], at, true).await?;
                self.caught_up().await;
                if self.unsaved > 0 {
                    self.save_mark().await;
                }
                let what = if self.mark.need_sync_old && !self.mark.sync_old_done {
                    "full copy: waiting to report"
                } else {
                    "idle"
                };
                self.publish(what);
                if last_io.elapsed() >= keepalive {
                    for lane in lanes.iter_mut() {
                        lane.conn.active_test().await?;
                    }
                    last_io = tokio::time::Instant::now();
                }
                tokio::select! {
                    _ = self.stop.cancelled() => return Ok(()),
                    _ = self.state.binlog_flushed() => {}
                    _ = tokio::time::sleep(IDLE_POLL.min(keepalive.saturating_sub(last_io.elapsed()))) => {}
                }
                continue;
            };
            last_io = tokio::time::Instant::now();
            let copying = self.mark.need_sync_old && !self.mark.sync_old_done;
            if copying
                && !self.reported_syncing
                && status_of(&self.peer()) == Some(StorageStatus::WaitSync)
            {
                self.report_peer(StorageStatus::Syncing).await;
                self.reported_syncing = true;
            }
            // Records of one file stay in order on one lane; different files go in parallel.
            let scanned = batch.len() as u64;
            let mut jobs: Vec<Vec<(BinlogRecord, Plan)>> = vec![Vec::new(); lanes.len()];
            for (rec, _) in batch {
                let p = plan(&rec, &self.mark);
                if !matches!(p, Plan::Skip(_)) {
                    jobs[lane_of(&rec.filename, lanes.len())].push((rec, p));
                }
            }
            let results =
                futures::future::join_all(lanes.iter_mut().zip(jobs).map(|(l, j)| l.run(j))).await;
            let mut done = LaneDone::default();
            for r in results {
                let r = r?;
                done.records += r.records;
                done.bytes += r.bytes;
                done.newest = done.newest.max(r.newest);
            }
            self.sent = end;
            self.mark.scan_row_count += scanned;
            self.mark.sync_row_count += done.records;
            self.mark.sync_bytes += done.bytes;
            self.mark.synced_timestamp = self.mark.synced_timestamp.max(done.newest);
            self.state
                .stats()
                .sync_out_bytes
                .record_bytes(done.bytes, true);
            if done.records > 0 {
                backoff.reset();
            }
            self.send_watermark(&mut lanes[0], end, false).await?;
            self.unsaved = self.unsaved.saturating_add(scanned as u32);
            if self.unsaved >= every {
                self.save_mark().await;
            }
            self.publish(if copying { "full copy" } else { "sending" });
        }
    }

    /// The peer has applied every record before `applied`: tells it the newest watermark
    /// that makes true (see [`StorageState::sync_checkpoint`]), when that moved on, and also
    /// when `idle` and the peer has not confirmed `applied` yet. The peer answers once all it
    /// acknowledged is on its disk, and the mark moves to `applied`.
    async fn send_watermark(
        &mut self,
        lane: &mut Lane,
        applied: BinlogPos,
        idle: bool,
    ) -> Result<(), SendError> {
        let settled = settled_watermark(&mut self.checkpoints, applied)
            .map(|floor| floor.clamp(0, u32::MAX as i64) as u32);
        if self.watermark_sent == Some(u32::MAX) {
            // The peer has no SYNC_WATERMARK: its acknowledgements are all we get.
            self.confirmed(applied);
            return Ok(());
        }
        let w = match settled.filter(|&w| self.watermark_sent < Some(w)) {
            Some(w) => w,
            // Nothing new to tell but the peer's confirmation: the watermark again (the peer
            // keeps the newest it was told).
            None if idle && self.mark.pos < applied => self.watermark_sent.unwrap_or(0),
            None => return Ok(()),
        };
        match lane.conn.sync_watermark(w).await {
            Ok(()) => {}
            // A peer without the command (a C FastDFS storage answers EINVAL): replication
            // goes on; trackers then send readers of our files to us, the source.
            Err(e) if e.status() == Some(errno::EINVAL) => {
                tracing::warn!(peer = %self.name, error = %e, "sync: peer refused SYNC_WATERMARK; not sent again this session");
                self.watermark_sent = Some(u32::MAX);
                self.confirmed(applied);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.watermark_sent = self.watermark_sent.max(Some(w));
        self.confirmed(applied);
        Ok(())
    }

    /// The peer holds every record before `applied` on its disk: the mark moves there (and is
    /// written at the next idle moment, or with the next `write_mark_every` records).
    fn confirmed(&mut self, applied: BinlogPos) {
        if self.mark.pos != applied {
            self.mark.pos = applied;
            self.unsaved = self.unsaved.max(1);
        }
    }

    /// At the end of the binlog: a designated source finishes the newcomer's copy.
    async fn caught_up(&mut self) {
        if !self.mark.need_sync_old || self.mark.sync_old_done {
            return;
        }
        // Reported whatever our server list says: that list is the last one any tracker sent
        // (trackers see the newcomer's steps at different moments), and a tracker applies the
        // report only while the peer is still copying there, so a serving peer is not bounced.
        if !self.reported_syncing {
            self.report_peer(StorageStatus::Syncing).await;
            self.reported_syncing = true;
        }
        if self.report_peer(StorageStatus::Offline).await {
            self.mark.sync_old_done = true;
            self.save_mark().await;
            tracing::info!(peer = %self.name, records = self.mark.sync_row_count, bytes = self.mark.sync_bytes, "sync: newcomer's full copy done; reported it OFFLINE (it turns ACTIVE on its next beat)");
        }
    }

    /// Sets the peer's status on every tracker; true when at least one accepted.
    async fn report_peer(&self, status: StorageStatus) -> bool {
        let mut brief = self.peer();
        brief.status = status as u8;
        let cfg = self.state.config();
        let n = report_peer_status(&cfg.trackers, &cfg.group, &brief).await;
        if n == 0 {
            tracing::warn!(peer = %self.name, ?status, "sync: no tracker accepted the peer's status");
        }
        n > 0
    }
}

/// One connection of a peer's sender, working through the records of its share of files.
struct Lane {
    state: Arc<StorageState>,
    /// The peer's mark name (for logs).
    peer: String,
    conn: StorageConn,
}

/// What a lane sent of one batch.
#[derive(Debug, Default)]
struct LaneDone {
    records: u64,
    bytes: u64,
    newest: i64,
}

/// Which of `lanes` carries a file's records (a `-m` sidecar goes with its file).
pub fn lane_of(filename: &str, lanes: usize) -> usize {
    let base = filename.strip_suffix(METADATA_SUFFIX).unwrap_or(filename);
    (crc32fast::hash(base.as_bytes()) as usize) % lanes.max(1)
}

impl Lane {
    /// Sends `jobs` in order; stops at the first failure.
    async fn run(&mut self, jobs: Vec<(BinlogRecord, Plan)>) -> Result<LaneDone, SendError> {
        let mut done = LaneDone::default();
        for (rec, p) in jobs {
            done.bytes += self.send(&rec, &p).await?;
            done.records += 1;
            done.newest = done.newest.max(rec.timestamp);
        }
        Ok(done)
    }

    /// Sends one record; returns the content bytes sent.
    async fn send(&mut self, rec: &BinlogRecord, p: &Plan) -> Result<u64, SendError> {
        let group = self.state.group().to_string();
        let ts = rec.timestamp.clamp(0, u32::MAX as i64) as u32;
        let name = rec.filename.clone();
        let refused = |op, status| SendError::Refused {
            op,
            file: name.clone(),
            status,
        };
        match *p {
            Plan::Skip(_) => Ok(0),
            Plan::Create | Plan::Update => {
                let update = *p == Plan::Update;
                match self.send_whole(&name, ts, &group, update).await {
                    Err(SendError::Conn(e)) if !update && e.status() == Some(errno::EEXIST) => {
                        Ok(0)
                    }
                    r => r,
                }
            }
            Plan::Delete => {
                let req = SyncDeleteReq {
                    timestamp: ts,
                    group,
                    filename: name.clone(),
                };
                match self.conn.sync_delete(&req).await {
                    Ok(()) => Ok(0),
                    Err(e) if e.status() == Some(errno::ENOENT) => Ok(0),
                    Err(e) => Err(status_or_conn(e, |s| refused("delete", s))),
                }
            }
            Plan::Append { offset, length } | Plan::Modify { offset, length } => {
                let modify = matches!(p, Plan::Modify { .. });
                let Some(path) = self.local_path(&name) else {
                    return Ok(0);
                };
                let data = tokio::task::spawn_blocking(move || read_range(&path, offset, length))
                    .await
                    .map_err(|e| SendError::Local(name.clone(), io::Error::other(e)))?;
                let data = match data {
                    Ok(Some(d)) => d,
                    // The range is gone (truncated since): the whole file makes the peer equal.
                    Ok(None) => return self.send_whole(&name, ts, &group, true).await,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(SendError::Local(name.clone(), e)),
                };
                let req = SyncRangeReq {
                    filename: name.clone(),
                    offset,
                    length,
                    timestamp: ts,
                    group: group.clone(),
                };
                match self.conn.sync_range(modify, &req, &data).await {
                    Ok(()) => Ok(length),
                    // The peer's copy is missing or behind: send the whole file instead.
                    Err(e) if e.status() == Some(errno::ENOENT) => {
                        self.send_whole(&name, ts, &group, true).await
                    }
                    Err(e) => Err(status_or_conn(e, |s| refused("append/modify", s))),
                }
            }
            Plan::Truncate { old_size, new_size } => {
                let req = SyncTruncateReq {
                    filename: name.clone(),
                    old_size,
                    new_size,
                    timestamp: ts,
                    group: group.clone(),
                };
                match self.conn.sync_truncate(&req).await {
                    Ok(()) => Ok(0),
                    Err(e) if e.status() == Some(errno::ENOENT) => {
                        self.send_whole(&name, ts, &group, true).await
                    }
                    Err(e) => Err(status_or_conn(e, |s| refused("truncate", s))),
                }
            }
        }
    }

    /// The local path of a binlog name (`-m` = metadata sidecar); None (logged) when the name
    /// cannot be mapped — such a record can never be sent.
    fn local_path(&self, filename: &str) -> Option<PathBuf> {
        match local_path(self.state.store(), filename) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(peer = %self.peer, file = filename, error = %e, "sync: binlog names a file this storage cannot map; skipped");
                None
            }
        }
    }

    /// SYNC_CREATE_FILE / SYNC_UPDATE_FILE of the file as it is now (skipped when gone).
    async fn send_whole(
        &mut self,
        name: &str,
        ts: u32,
        group: &str,
        update: bool,
    ) -> Result<u64, SendError> {
        let Some(path) = self.local_path(name) else {
            return Ok(0);
        };
        let state = Arc::clone(&self.state);
        let opened = tokio::task::spawn_blocking(move || state.store().open_to_send(&path))
            .await
            .map_err(|e| SendError::Local(name.to_string(), io::Error::other(e)))?;
        let file = match opened {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(SendError::Local(name.to_string(), e)),
        };
        let size = file.size;
        let req = SyncFileReq {
            filename: name.to_string(),
            file_size: size,
            timestamp: ts,
            group: group.to_string(),
        };
        let sent = if file.direct.is_some() {
            let mut chunks = DirectChunks::new(file);
            self.conn
                .sync_file_send_chunks(update, &req, &mut chunks)
                .await
        } else {
            self.conn.sync_file_send(update, &req, &file.file).await
        };
        match sent {
            Ok(()) => Ok(size),
            Err(e) if e.status().is_some() => Err(e.into()),
            Err(e) => Err(SendError::Conn(e)),
        }
    }
}

/// Bytes of a large file read per O_DIRECT request when sending it.
const SEND_CHUNK: usize = 1 << 20;

/// A large file read with O_DIRECT one chunk ahead of the socket: the disk reads the next
/// chunk while the peer takes this one, and only two chunk buffers are ever used.
struct DirectChunks {
    /// The chunk handed out last, sized to the bytes read into it.
    current: AlignedBuf,
    /// Offset of the next chunk to read.
    offset: u64,
    ahead: Option<tokio::task::JoinHandle<(FileToSend, AlignedBuf, io::Result<usize>)>>,
}

impl DirectChunks {
    fn new(file: FileToSend) -> Self {
        let mut chunks = DirectChunks {
            current: AlignedBuf::default(),
            offset: 0,
            ahead: None,
        };
        if file.size > 0 {
            chunks.read_ahead(file, AlignedBuf::default());
        }
        chunks
    }

    fn read_ahead(&mut self, mut file: FileToSend, mut buf: AlignedBuf) {
        let offset = self.offset;
        buf.resize(SEND_CHUNK);
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let read = file.read_chunk(offset, &mut buf);
            (file, buf, read)
        }));
    }
}

impl ChunkSource for DirectChunks {
    async fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let Some(pending) = self.ahead.take() else {
            return Ok(None);
        };
        let (file, mut buf, read) = pending.await.map_err(io::Error::other)?;
        let n = read?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        buf.resize(n);
        let spare = std::mem::replace(&mut self.current, buf);
        self.offset += n as u64;
        if self.offset < file.size {
            self.read_ahead(file, spare);
        }
        Ok(Some(&self.current))
    }
}

fn status_or_conn(e: ConnError, refused: impl FnOnce(u8) -> SendError) -> SendError {
    match e.status() {
        Some(s) => refused(s),
        None => SendError::Conn(e),
    }
}

/// Maps `M00/XX/YY/name[-m]` to the local file.
pub fn local_path(store: &Store, filename: &str) -> Result<PathBuf, String> {
    let (base, meta) = match filename.strip_suffix(METADATA_SUFFIX) {
        Some(b) => (b, true),
        None => (filename, false),
    };
    let name = RemoteName::parse_str(base).map_err(|e| e.to_string())?;
    let p = store.data_path(&name).map_err(|e| e.msg)?;
    Ok(if meta { Store::meta_path(&p) } else { p })
}

/// `length` bytes at `offset`; Ok(None) when the file is now shorter than that range.
fn read_range(path: &Path, offset: u64, length: u64) -> io::Result<Option<Vec<u8>>> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; length as usize];
    f.read_exact(&mut buf)?;
    Ok(Some(buf))
}

type Batch = Vec<(BinlogRecord, BinlogPos)>;

/// The newest watermark of `checkpoints` (oldest first) that holds once every record before
/// `applied` is at the peer; the ones it makes redundant are dropped, and it stays at the front
/// (as reached at `applied`) to be sent again after a reconnect. None: not one holds yet.
pub fn settled_watermark(
    checkpoints: &mut std::collections::VecDeque<(i64, BinlogPos)>,
    applied: BinlogPos,
) -> Option<i64> {
    let mut floor = None;
    while let Some(&(f, end)) = checkpoints.front() {
        if end > applied {
            break;
        }
        floor = Some(f);
        checkpoints.pop_front();
    }
    let floor = floor?;
    checkpoints.push_front((floor, applied));
    Some(floor)
}

/// Reads up to [`BATCH`] records off the async threads, with a sync checkpoint taken just
/// before reading them.
async fn read_batch(
    mut reader: BinlogReader,
    state: Arc<StorageState>,
) -> io::Result<(BinlogReader, (i64, BinlogPos), Batch)> {
    tokio::task::spawn_blocking(move || {
        let checkpoint = state.sync_checkpoint();
        let mut out = Vec::new();
        while out.len() < BATCH {
            match reader.next_record()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok((reader, checkpoint, out))
    })
    .await
    .map_err(io::Error::other)?
}

/// Asks the trackers (first that answers) who copies old data to `dest_id`.
async fn ask_sync_source(
    state: &StorageState,
    dest_id: &str,
) -> Result<Option<SyncSource>, String> {
    let cfg = state.config();
    let mut last = String::from("no trackers configured");
    for t in &cfg.trackers {
        let r = async {
            let mut s = tokio::time::timeout(
                cfg.network_timeout.get(),
                tokio::net::TcpStream::connect(t.as_str()),
            )
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
            let src = tokio::time::timeout(
                cfg.network_timeout.get(),
                crate::client::tracker::sync_src_req(&mut s, &cfg.group, dest_id),
            )
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
            let _ = crate::client::tracker::quit(&mut s).await;
            Ok::<_, String>(src)
        }
        .await;
        match r {
            Ok(src) => return Ok(src),
            Err(e) => last = format!("{t}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: BinlogOp, source: bool, ts: i64, extra: Option<&str>) -> BinlogRecord {
        BinlogRecord {
            timestamp: ts,
            op,
            source,
            filename: "M00/00/00/x.txt".into(),
            extra: extra.map(str::to_string),
        }
    }

    #[test]
    fn normal_peers_get_source_records_only() {
        let m = Mark::default();
        assert_eq!(
            plan(&rec(BinlogOp::Create, true, 5, None), &m),
            Plan::Create
        );
        assert_eq!(
            plan(&rec(BinlogOp::Delete, true, 5, None), &m),
            Plan::Delete
        );
        assert_eq!(
            plan(&rec(BinlogOp::Update, true, 5, None), &m),
            Plan::Update
        );
        assert!(matches!(
            plan(&rec(BinlogOp::Create, false, 5, None), &m),
            Plan::Skip(_)
        ));
        assert_eq!(
            plan(&rec(BinlogOp::Append, true, 5, Some("5 6")), &m),
            Plan::Append {
                offset: 5,
                length: 6
            }
        );
        assert_eq!(
            plan(&rec(BinlogOp::Modify, true, 5, Some("2 3")), &m),
            Plan::Modify {
                offset: 2,
                length: 3
            }
        );
        assert_eq!(
            plan(&rec(BinlogOp::Truncate, true, 5, Some("11 5")), &m),
            Plan::Truncate {
                old_size: 11,
                new_size: 5
            }
        );
        // A damaged tail still converges through a whole-file update.
        assert_eq!(
            plan(&rec(BinlogOp::Append, true, 5, Some("x")), &m),
            Plan::Update
        );
        assert!(matches!(
            plan(&rec(BinlogOp::Link, true, 5, None), &m),
            Plan::Skip(_)
        ));
    }

    #[test]
    fn designated_source_copies_old_replica_records_others_skip_old_ones() {
        let src = initial_mark("a", Some(("a", 100)));
        assert!(src.need_sync_old);
        assert_eq!(
            plan(&rec(BinlogOp::Create, false, 100, None), &src),
            Plan::Create
        );
        assert!(matches!(
            plan(&rec(BinlogOp::Create, false, 101, None), &src),
            Plan::Skip(_)
        ));
        assert_eq!(
            plan(&rec(BinlogOp::Create, true, 50, None), &src),
            Plan::Create
        );
        // Not after the copy: the file's source may have deleted it since.
        let done = Mark {
            sync_old_done: true,
            ..src.clone()
        };
        assert!(matches!(
            plan(&rec(BinlogOp::Create, false, 99, None), &done),
            Plan::Skip(_)
        ));
        assert_eq!(
            plan(&rec(BinlogOp::Create, true, 99, None), &done),
            Plan::Create
        );
        // Other members send all their own records, old ones included, and no replica ones.
        let other = initial_mark("b", Some(("a", 100)));
        assert!(!other.need_sync_old);
        assert_eq!(
            plan(&rec(BinlogOp::Create, true, 100, None), &other),
            Plan::Create
        );
        assert!(matches!(
            plan(&rec(BinlogOp::Create, false, 100, None), &other),
            Plan::Skip(_)
        ));
        assert_eq!(initial_mark("b", None), Mark::default());
    }

    #[test]
    fn a_watermark_holds_only_once_its_checkpoint_is_applied() {
        let at = |offset| BinlogPos { index: 0, offset };
        let mut cps: std::collections::VecDeque<_> =
            [(100, at(50)), (101, at(120)), (103, at(300))].into();
        assert_eq!(settled_watermark(&mut cps, at(40)), None);
        assert_eq!(settled_watermark(&mut cps, at(50)), Some(100));
        // Past two checkpoints: the newer one, and the older is no longer needed.
        assert_eq!(settled_watermark(&mut cps, at(200)), Some(101));
        assert_eq!(cps, [(101, at(200)), (103, at(300))]);
        // Still reachable after a reconnect (the peer may have restarted and forgotten it).
        assert_eq!(settled_watermark(&mut cps, at(200)), Some(101));
        // A new binlog file starts at offset 0 but lies after every offset of the old one.
        let next = BinlogPos {
            index: 1,
            offset: 0,
        };
        assert_eq!(settled_watermark(&mut cps, next), Some(103));
        assert_eq!(cps.len(), 1);
    }

    #[test]
    fn a_mark_from_an_earlier_membership_is_stale() {
        let src = |id: &str, until| SyncSource {
            src_id: id.into(),
            until_timestamp: until,
        };
        let copying = initial_mark("a", Some(("a", 100)));
        let done = Mark {
            sync_old_done: true,
            pos: BinlogPos {
                index: 0,
                offset: 580,
            },
            ..copying.clone()
        };
        // The copy in progress for this assignment carries on (e.g. after our restart).
        assert!(!mark_is_stale(&copying, "a", &src("a", 100)));
        // Added again under a new sync time: start over, designated or not.
        assert!(mark_is_stale(&done, "a", &src("a", 160)));
        let other = initial_mark("b", Some(("a", 100)));
        assert!(mark_is_stale(&other, "b", &src("a", 160)));
        // Added again within the same second: the designated source must still copy, and
        // any member that saw the delete starts over.
        assert!(mark_is_stale(&done, "a", &src("a", 100)));
        assert!(!mark_is_stale(&other, "b", &src("a", 100)));
        let seen_deleted = Mark {
            peer_deleted: true,
            ..other.clone()
        };
        assert!(mark_is_stale(&seen_deleted, "b", &src("a", 100)));
    }

    #[test]
    fn mark_round_trips_and_rejects_garbage() {
        let m = Mark {
            pos: BinlogPos {
                index: 2,
                offset: 1234,
            },
            need_sync_old: true,
            sync_old_done: false,
            until_timestamp: 1795272134,
            scan_row_count: 10,
            sync_row_count: 9,
            sync_bytes: 77,
            synced_timestamp: 1795272100,
            peer_deleted: true,
        };
        assert_eq!(Mark::parse(&m.encode()).unwrap(), m);
        assert!(Mark::parse("binlog_offset=3\n").is_err());
        assert!(Mark::parse("binlog_index=x\nbinlog_offset=3\n").is_err());
        assert!(Mark::parse("garbage").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = mark_path(dir.path(), "127.0.0.2_23000");
        assert_eq!(Mark::load(&p).unwrap(), None);
        m.store(&p).unwrap();
        assert_eq!(Mark::load(&p).unwrap(), Some(m));
        assert!(p.ends_with("127.0.0.2_23000.mark"));
    }

    #[test]
    fn a_file_and_its_metadata_share_a_lane_and_files_spread() {
        let f = "M00/00/00/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt";
        assert_eq!(lane_of(f, LANES), lane_of(&format!("{f}-m"), LANES));
        let used: std::collections::HashSet<usize> = (0..64)
            .map(|i| lane_of(&format!("M00/00/00/file{i}.txt"), LANES))
            .collect();
        assert_eq!(used.len(), LANES);
        assert_eq!(lane_of(f, 1), 0);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }

    #[test]
    fn peers_are_everyone_but_us_and_removed_members() {
        let b = |id: &str, port, st: StorageStatus| StorageBrief {
            status: st as u8,
            port,
            id: id.into(),
            ip: id.into(),
        };
        assert!(!wants_sender(
            &b("127.0.0.2", 23000, StorageStatus::Active),
            "127.0.0.2",
            23000
        ));
        assert!(wants_sender(
            &b("127.0.0.2", 23001, StorageStatus::Offline),
            "127.0.0.2",
            23000
        ));
        assert!(!wants_sender(
            &b("127.0.0.3", 23000, StorageStatus::Deleted),
            "127.0.0.2",
            23000
        ));
        assert_eq!(
            mark_name(&b("127.0.0.3", 23000, StorageStatus::Active), false),
            "127.0.0.3_23000"
        );
    }

    #[test]
    fn lag_counts_bytes_and_records_across_binlog_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("binlog.000"), "1 C a\n2 C b\n").unwrap();
        std::fs::write(dir.path().join("binlog.001"), "3 C c\n").unwrap();
        let from = BinlogPos {
            index: 0,
            offset: 6,
        };
        let to = BinlogPos {
            index: 1,
            offset: 6,
        };
        assert_eq!(bytes_between(dir.path(), from, to), 12);
        assert_eq!(records_between(dir.path(), from, to), 2);
        assert_eq!(bytes_between(dir.path(), to, to), 0);
        assert_eq!(records_between(dir.path(), BinlogPos::default(), to), 3);
    }
}
