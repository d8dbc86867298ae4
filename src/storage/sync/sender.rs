//! One sender per peer: its sessions (LANES connections), batches of binlog records spread
//! over the lanes, the watermarks that confirm them, and a newcomer's full copy.

use super::lane::{lane_of, Lane, LaneDone};
use super::mark::{initial_mark, mark_is_stale, mark_path, Mark};
use super::plan::{plan, Plan};
use super::report::bytes_between;
use super::status_of;
use crate::client::storage::StorageConn;
use crate::clock::unix_now;
use crate::proto::cmd::errno;
use crate::proto::connection::ConnError;
use crate::proto::sync::PeerSyncStatus;
use crate::proto::tracker::{StorageBrief, StorageStatus, SyncSource};
use crate::storage::binlog::{BinlogPos, BinlogReader, BinlogRecord};
use crate::storage::reporter::report_peer_status;
use crate::storage::state::StorageState;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Records read from the binlog per blocking read (and sent as one batch over the lanes).
pub(super) const BATCH: usize = 256;
/// Connections per peer: different files are sent in parallel (the receiver's fsyncs
/// overlap); one file's records always travel in order on one connection.
pub const LANES: usize = 4;
/// Longest sleep of an idle sender between looks at the binlog (flushes also wake it).
pub(super) const IDLE_POLL: Duration = Duration::from_millis(500);

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

#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
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

pub(super) struct Sender {
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
    /// The peer refused SYNC_WATERMARK once (a C FastDFS storage answers EINVAL and closes
    /// the connection): never sent to it again while this process runs, so only one session
    /// breaks instead of every one.
    no_watermark: bool,
    /// (watermark, binlog position) pairs, oldest first: once every record before the
    /// position is applied at the peer, the watermark holds (`StorageState::sync_checkpoint`).
    checkpoints: std::collections::VecDeque<(i64, BinlogPos)>,
}

pub(super) async fn peer_task(
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
        no_watermark: false,
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
    pub(super) fn peer(&self) -> StorageBrief {
        self.peer.borrow().clone()
    }

    /// The mark from disk, or a new one decided with the trackers' help (None: stopped).
    pub(super) async fn first_mark(&mut self, backoff: &mut Backoff) -> Option<Mark> {
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
        // Trackers name a member's original source even once it is ACTIVE (as C does): only a
        // peer still waiting for old data gets a full copy from us.
        let waiting = matches!(
            status_of(&self.peer()),
            Some(StorageStatus::WaitSync) | Some(StorageStatus::Syncing)
        );
        let designated = src
            .as_ref()
            .filter(|_| waiting)
            .map(|s| (s.src_id.as_str(), s.until_timestamp));
        let mark = initial_mark(&my_id, designated);
        let source = match designated {
            Some((id, until)) => format!("{id} until {until}"),
            None => "none".into(),
        };
        tracing::info!(peer = %self.name, %source, full_copy = mark.need_sync_old, "sync: first contact with peer");
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
    pub(super) async fn sync_source(
        &mut self,
        backoff: &mut Backoff,
    ) -> Option<Option<SyncSource>> {
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
    pub(super) async fn readded(&mut self, mark: &Mark, backoff: &mut Backoff) -> Option<Mark> {
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

    pub(super) fn publish(&mut self, what: &str) {
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

    pub(super) async fn save_mark(&mut self) {
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
    pub(super) async fn session(&mut self, backoff: &mut Backoff) -> Result<(), SendError> {
        let peer = self.peer();
        let addr = format!("{}:{}", peer.ip, peer.port);
        self.publish("connecting");
        let timeout = self.state.config().network_timeout.get();
        let my_id = self
            .state
            .tracker_identity()
            .map(|(id, _)| id)
            .unwrap_or_default();
        // A restarted peer forgot our watermark: tell it again on this connection (unless it
        // has no such command).
        self.watermark_sent = self.no_watermark.then_some(u32::MAX);
        // From the storage's own address: a C peer recognises its group member by the source
        // IP of the connection (C binds it too, client_bind = true).
        let local = self.local_ip();
        let mut lanes = Vec::with_capacity(LANES);
        for _ in 0..LANES {
            let mut conn = tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                c = StorageConn::connect_from(addr.as_str(), local, timeout) => c?,
            };
            conn.report_server_id(&my_id).await?;
            lanes.push(Lane {
                state: self.state.clone(),
                peer: self.name.clone(),
                conn,
            });
        }
        tracing::info!(peer = %self.name, %addr, from = %self.mark.pos, "sync: connected");
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

    /// The address sync connections leave from: the configured listen address, or else the
    /// one trackers see this storage at (GET_MY_IP); None lets the kernel choose.
    fn local_ip(&self) -> Option<std::net::IpAddr> {
        let listen = self.state.config().listen.ip();
        if !listen.is_unspecified() {
            return Some(listen);
        }
        self.state
            .tracker_identity()
            .and_then(|(_, ip)| ip.parse::<std::net::IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified())
    }

    /// The peer has applied every record before `applied`: tells it the newest watermark
    /// that makes true (see [`StorageState::sync_checkpoint`]), when that moved on, and also
    /// when `idle` and the peer has not confirmed `applied` yet. The peer answers once all it
    /// acknowledged is on its disk, and the mark moves to `applied`.
    pub(super) async fn send_watermark(
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
                tracing::warn!(peer = %self.name, error = %e, "sync: peer refused SYNC_WATERMARK; not sent to it again");
                self.watermark_sent = Some(u32::MAX);
                self.no_watermark = true;
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
    pub(super) fn confirmed(&mut self, applied: BinlogPos) {
        if self.mark.pos != applied {
            self.mark.pos = applied;
            self.unsaved = self.unsaved.max(1);
        }
    }

    /// At the end of the binlog: a designated source finishes the newcomer's copy.
    pub(super) async fn caught_up(&mut self) {
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
    pub(super) async fn report_peer(&self, status: StorageStatus) -> bool {
        let mut brief = self.peer();
        brief.status = status as u8;
        let cfg = self.state.config();
        let n = report_peer_status(&cfg.trackers, &cfg.group, &brief).await;
        if n == 0 {
            tracing::warn!(peer = %self.name, %status, "sync: no tracker accepted the peer's status");
        }
        n > 0
    }
}

pub(super) type Batch = Vec<(BinlogRecord, BinlogPos)>;

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
pub(super) async fn read_batch(
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
pub(super) async fn ask_sync_source(
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
