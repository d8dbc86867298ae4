//! The storage side of the storage <-> tracker conversation: one task per tracker in the
//! storage's `trackers` list keeps this storage registered and reported there.
//!
//! ```text
//!  run_reporter ──spawns one per tracker──> report_to(tracker)
//!    short connection: GET_MY_IP, PARAMETER_REQ, [FETCH_STORAGE_IDS], QUIT
//!        -> source.on_identity(my_ip, params)
//!    long connection:  JOIN -> [SYNC_DEST_REQ when the tracker says INIT]
//!        every heart_beat_interval: BEAT (stats), SYNC_REPORT when positions changed,
//!          (a newcomer's sync source reports it OFFLINE when its copy is done -> ACTIVE)
//!        every stat_report_interval: REPORT_DISK_USAGE
//!        server lists in the replies -> source.on_group_servers(briefs)
//!    any failure: close, back off (100 ms doubling to 5 s), start over
//! ```
//! The storage itself is reached only through [`ReporterSource`], so this module does not depend
//! on how the storage keeps its files, stats or sync marks.

use crate::client::tracker::{quit, report_status, request};
use crate::proto::cmd;
use crate::proto::connection::ConnError;
use crate::proto::tracker::{
    encode_disk_usage, encode_sync_report, FetchStorageIdsReply, FetchStorageIdsReq, GetMyIpReq,
    JoinReply, JoinReq, PathUsage, ServerListReply, StorageStatus, SyncPosition, SyncSource,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub use crate::proto::tracker::{StorageBrief, StorageIdRecord, StorageStats, TrackerParams};

/// Version string sent in JOIN (trackers and monitors display it).
pub const REPORTED_VERSION: &str = "6.16.1";
/// Longest wait for a tracker's reply or a connect before the session is restarted.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the reporter needs from the storage, and where it delivers what trackers say.
/// Called from the reporter tasks; implementations should return quickly.
pub trait ReporterSource: Send + Sync + 'static {
    fn group(&self) -> String;
    /// The storage service port.
    fn port(&self) -> u16;
    /// The storage id when trackers use `use_storage_id` (None: trackers find it by address).
    fn storage_id(&self) -> Option<String>;
    fn store_path_count(&self) -> u32;
    fn subdir_count(&self) -> u32;
    fn upload_priority(&self) -> i64;
    /// Unix time this storage first joined its group (kept across restarts).
    fn join_time(&self) -> i64;
    /// Per store path: (total MiB, free MiB).
    fn disk_usage(&self) -> Vec<(u64, u64)>;
    /// The counters sent with every BEAT.
    fn stats(&self) -> StorageStats;
    /// Per peer storage id: the newest create timestamp synced from it.
    fn sync_progress(&self) -> Vec<(String, u32)>;
    /// What a tracker says about us: our IP as it sees it, and the cluster-wide parameters.
    fn on_identity(&self, my_ip: String, params: TrackerParams);
    /// The latest server list of our group (every member, us included) from a tracker.
    fn on_group_servers(&self, servers: Vec<StorageBrief>);

    /// Unix time this process started (JOIN's up_time).
    fn up_time(&self) -> i64 {
        self.join_time()
    }
    /// True while this storage still has to copy the group's old data from a sync source
    /// (a brand-new member); the tracker then assigns a source with SYNC_DEST_REQ.
    fn needs_initial_sync(&self) -> bool {
        false
    }
    /// storage_ids as the tracker knows them (only with `use_storage_id`).
    fn on_storage_ids(&self, _ids: Vec<StorageIdRecord>) {}
    /// The sync source a tracker assigned on SYNC_DEST_REQ. Some(..) comes once: the other
    /// trackers are then told the same source (SYNC_NOTIFY). None: the tracker asked knew no
    /// member to copy from (a Some from another tracker may still follow).
    fn on_sync_source(&self, _source: Option<SyncSource>) {}
    /// The status a tracker gave us at JOIN.
    fn on_joined(&self, _tracker: &str, _status: u8) {}
    /// The address to connect to trackers from (so a storage listening on one address of a
    /// multi-address host is seen — and named — by that address). None: the kernel picks.
    fn local_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
    /// True once a tracker sent the group's list. Until then BEATs go out every
    /// [`FAST_BEAT`]: only the leader answers with the list, and right after start the
    /// trackers may still be electing it, so the first BEAT often comes back empty.
    fn group_list_known(&self) -> bool {
        true
    }
}

/// The BEAT interval while the group's list is not known yet (for at most [`FAST_BEAT_FOR`]
/// of a session: a tracker pair that never elects a leader must not be beaten this often).
const FAST_BEAT: Duration = Duration::from_millis(200);
const FAST_BEAT_FOR: Duration = Duration::from_secs(15);

/// What every per-tracker task shares.
struct Reporting {
    trackers: Vec<String>,
    heart_beat: Duration,
    stat_report: Duration,
    source: Arc<dyn ReporterSource>,
    shutdown: CancellationToken,
    /// What the first tracker asked decided for this newcomer (a source, or nothing to copy).
    /// Later trackers are told it (SYNC_NOTIFY) instead of being asked, so every tracker
    /// records the same decision. The lock is held across the asking so two trackers are not
    /// asked at once.
    assigned_source: tokio::sync::Mutex<Option<Decided>>,
}

/// A tracker's answer to SYNC_DEST_REQ: the source to copy from, or None (nothing to copy).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decided(Option<SyncSource>);

/// What a session whose JOIN was answered INIT does next.
#[derive(Debug, PartialEq, Eq)]
enum AfterJoin {
    /// No tracker was asked yet: SYNC_DEST_REQ.
    Ask,
    /// Tell this tracker what the first one decided (SYNC_NOTIFY; an empty source id says
    /// "nothing to copy", which sets us ONLINE there).
    Notify(SyncSource),
}

/// Every tracker must hear the same decision. "Nothing to copy" is a decision too: asking the
/// next tracker again could name a member that became ACTIVE meanwhile, possibly another
/// newcomer that was itself told to copy from us (each then waits for the other, WAIT_SYNC for
/// good). C's storage records the empty answer as "old data done" and JOINs the others with
/// init_flag 0, to the same effect.
fn after_join(decided: Option<&Decided>) -> AfterJoin {
    match decided {
        None => AfterJoin::Ask,
        Some(Decided(src)) => AfterJoin::Notify(src.clone().unwrap_or(SyncSource {
            src_id: String::new(),
            until_timestamp: 0,
        })),
    }
}

/// Runs one reporting task per tracker until `shutdown`.
pub async fn run_reporter(
    trackers: Vec<String>,
    heart_beat_interval: Duration,
    stat_report_interval: Duration,
    source: Arc<dyn ReporterSource>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Reporting {
        trackers,
        heart_beat: heart_beat_interval,
        stat_report: stat_report_interval,
        source,
        shutdown,
        assigned_source: tokio::sync::Mutex::new(None),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for t in shared.trackers.iter() {
        tasks.spawn(report_to(t.clone(), shared.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

/// Keeps reporting to one tracker, reconnecting with backoff.
async fn report_to(tracker: String, shared: Arc<Reporting>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut joined = false;
        match session(&tracker, &shared, &mut joined).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(%tracker, error = %e, "tracker report session ended; reconnecting")
            }
        }
        if joined {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(std::io::Error),
}

async fn timed<T, E: Into<SessionError>>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(IO_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(SessionError::Timeout(IO_TIMEOUT)),
    }
}

async fn connect(tracker: &str) -> Result<TcpStream, SessionError> {
    connect_from(tracker, None).await
}

/// Connects, binding the local side to `local` when given.
async fn connect_from(
    tracker: &str,
    local: Option<std::net::IpAddr>,
) -> Result<TcpStream, SessionError> {
    let s = timed(async {
        let Some(ip) = local else {
            return TcpStream::connect(tracker)
                .await
                .map_err(SessionError::Connect);
        };
        let addr = tokio::net::lookup_host(tracker)
            .await
            .map_err(SessionError::Connect)?
            .find(|a| a.is_ipv4() == ip.is_ipv4())
            .ok_or_else(|| {
                SessionError::Connect(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "tracker address has no entry of the local address's family",
                ))
            })?;
        let sock = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(SessionError::Connect)?;
        sock.bind(std::net::SocketAddr::new(ip, 0))
            .map_err(SessionError::Connect)?;
        sock.connect(addr).await.map_err(SessionError::Connect)
    })
    .await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Sets a storage's status on every tracker (each keeps its own view); returns how many
/// trackers accepted it. Replication uses it to move a newcomer through SYNCING -> OFFLINE.
pub async fn report_peer_status(trackers: &[String], group: &str, brief: &StorageBrief) -> usize {
    let mut accepted = 0;
    for t in trackers {
        let r: Result<(), SessionError> = async {
            let mut s = connect(t).await?;
            timed(report_status(&mut s, group, brief)).await?;
            let _ = quit(&mut s).await;
            Ok(())
        }
        .await;
        match r {
            Ok(()) => accepted += 1,
            Err(e) => tracing::warn!(tracker = %t, error = %e, "REPORT_STATUS failed"),
        }
    }
    accepted
}

/// Start-up exchange on a short connection: who am I, what are the rules.
async fn identify(
    tracker: &str,
    source: &dyn ReporterSource,
) -> Result<(String, TrackerParams), SessionError> {
    let mut s = connect_from(tracker, source.local_ip()).await?;
    let me = GetMyIpReq {
        group: source.group(),
        port: source.port(),
    };
    let ip = timed(request(&mut s, cmd::STORAGE_GET_MY_IP, &me.encode())).await?;
    let my_ip = String::from_utf8_lossy(&ip)
        .trim_end_matches('\0')
        .to_string();
    let raw = timed(request(&mut s, cmd::STORAGE_PARAMETER_REQ, &[])).await?;
    let params = TrackerParams::decode(&raw).map_err(ConnError::from)?;
    if params.use_storage_id {
        let req = FetchStorageIdsReq {
            start_index: 0,
            allow_empty: true,
        };
        let raw = timed(request(
            &mut s,
            cmd::STORAGE_FETCH_STORAGE_IDS,
            &req.encode(),
        ))
        .await?;
        let ids = FetchStorageIdsReply::decode(&raw).map_err(ConnError::from)?;
        source.on_storage_ids(ids.records);
    }
    let _ = quit(&mut s).await;
    source.on_identity(my_ip.clone(), params.clone());
    Ok((my_ip, params))
}

fn disk_usage_of(source: &dyn ReporterSource) -> Vec<PathUsage> {
    source
        .disk_usage()
        .into_iter()
        .map(|(total_mb, free_mb)| PathUsage { total_mb, free_mb })
        .collect()
}

fn sync_positions_of(source: &dyn ReporterSource) -> Vec<SyncPosition> {
    source
        .sync_progress()
        .into_iter()
        .map(|(src_id, timestamp)| SyncPosition { src_id, timestamp })
        .collect()
}

/// Hands a server list from a BEAT / report reply to the storage.
fn deliver(source: &dyn ReporterSource, reply: &[u8]) -> Result<(), SessionError> {
    let list = ServerListReply::decode(reply).map_err(ConnError::from)?;
    if let Some(servers) = list.group_servers {
        source.on_group_servers(servers);
    }
    Ok(())
}

/// One connected session; Ok(()) only on shutdown.
async fn session(tracker: &str, shared: &Reporting, joined: &mut bool) -> Result<(), SessionError> {
    let source = &*shared.source;
    let (heart_beat, stat_report, shutdown) =
        (shared.heart_beat, shared.stat_report, &shared.shutdown);
    identify(tracker, source).await?;
    let mut s = connect_from(tracker, source.local_ip()).await?;
    let tracker_host = tracker
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(tracker)
        .to_string();
    let join = JoinReq {
        group: source.group(),
        storage_port: source.port(),
        store_path_count: source.store_path_count(),
        subdir_count_per_path: source.subdir_count(),
        upload_priority: source.upload_priority(),
        join_time: source.join_time(),
        up_time: source.up_time(),
        version: REPORTED_VERSION.into(),
        init_flag: source.needs_initial_sync() as u8,
        status: 0,
        storage_id: source.storage_id().unwrap_or_default(),
        current_tracker_ip: tracker_host,
        trackers: shared.trackers.clone(),
    };
    let raw = timed(request(&mut s, cmd::STORAGE_JOIN, &join.encode())).await?;
    let reply = JoinReply::decode(&raw).map_err(ConnError::from)?;
    *joined = true;
    tracing::info!(%tracker, status = %crate::proto::tracker::status_name(reply.status), src = %reply.src_id, "joined tracker");
    source.on_joined(tracker, reply.status);
    // While the tracker has us copying old data we are not handed out; remember it so the
    // end of the copy can be reported.
    let mut copying = [
        StorageStatus::Init,
        StorageStatus::WaitSync,
        StorageStatus::Syncing,
    ]
    .iter()
    .any(|s| *s as u8 == reply.status);
    if reply.status == StorageStatus::Init as u8 {
        let mut assigned = shared.assigned_source.lock().await;
        match after_join(assigned.as_ref()) {
            AfterJoin::Notify(src) => {
                timed(request(&mut s, cmd::STORAGE_SYNC_NOTIFY, &src.encode())).await?;
                copying = !src.src_id.is_empty();
            }
            AfterJoin::Ask => {
                let raw = timed(request(&mut s, cmd::STORAGE_SYNC_DEST_REQ, &[])).await?;
                let src = SyncSource::decode_reply(&raw).map_err(ConnError::from)?;
                copying = src.is_some();
                *assigned = Some(Decided(src.clone()));
                source.on_sync_source(src);
            }
        }
    }
    // Report at once so the tracker can hand us out without waiting a full interval.
    let mut beat = tokio::time::interval(heart_beat.max(Duration::from_millis(10)));
    let mut disk = tokio::time::interval(stat_report.max(Duration::from_millis(10)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    disk.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync: Option<Vec<SyncPosition>> = None;
    let joined_at = tokio::time::Instant::now();
    loop {
        let fast = !source.group_list_known() && joined_at.elapsed() < FAST_BEAT_FOR;
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = quit(&mut s).await;
                return Ok(());
            }
            _ = disk.tick() => {
                let body = encode_disk_usage(&disk_usage_of(source));
                let raw = timed(request(&mut s, cmd::STORAGE_REPORT_DISK_USAGE, &body)).await?;
                deliver(source, &raw)?;
            }
            _ = tokio::time::sleep(FAST_BEAT), if fast => {
                let raw = timed(request(&mut s, cmd::STORAGE_BEAT, &source.stats().encode())).await?;
                deliver(source, &raw)?;
            }
            _ = beat.tick() => {
                let raw = timed(request(&mut s, cmd::STORAGE_BEAT, &source.stats().encode())).await?;
                deliver(source, &raw)?;
                let positions = sync_positions_of(source);
                if !positions.is_empty() && last_sync.as_ref() != Some(&positions) {
                    let body = encode_sync_report(&positions);
                    let raw = timed(request(&mut s, cmd::STORAGE_SYNC_REPORT, &body)).await?;
                    deliver(source, &raw)?;
                    last_sync = Some(positions);
                }
                if copying && !source.needs_initial_sync() {
                    // The sync source reported us OFFLINE ("has its data, not serving yet") on
                    // every tracker; this tracker's server list showed it, and our BEATs now
                    // make us ACTIVE. Reporting it ourselves too would bounce an ACTIVE storage.
                    tracing::info!(%tracker, "initial sync done");
                    copying = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tracker::JoinReq;
    use crate::tracker::cluster::{Cluster, Identity};
    use std::time::Instant;

    fn join(t: &mut Cluster, key: &str) -> StorageStatus {
        let who = Identity {
            key: key.into(),
            id: key.into(),
            ip: key.into(),
        };
        let req = JoinReq {
            group: "g".into(),
            storage_port: 23000,
            store_path_count: 1,
            subdir_count_per_path: 256,
            upload_priority: 10,
            join_time: 1,
            up_time: 1,
            version: REPORTED_VERSION.into(),
            init_flag: 1,
            status: 0,
            storage_id: String::new(),
            current_tracker_ip: String::new(),
            trackers: Vec::new(),
        };
        t.join(&who, &req, 0, Instant::now()).0
    }

    /// One storage's session with one tracker after its JOIN was answered INIT, as `session`
    /// does it (`decided` is the storage's shared decision), then one BEAT.
    fn settle(t: &mut Cluster, key: &str, decided: &mut Option<Decided>) {
        match after_join(decided.as_ref()) {
            AfterJoin::Ask => {
                let (src, _) = t.sync_dest_req("g", key, 1000).unwrap();
                *decided = Some(Decided(src));
            }
            AfterJoin::Notify(src) => {
                t.sync_notify("g", key, src).unwrap();
            }
        }
        t.beat("g", key, None, Instant::now()).unwrap();
    }

    /// Issue 24: two empty newcomers started together under two trackers. A asks T1 and B asks
    /// T2 first; both are told "nothing to copy" and turn ACTIVE there. When each then settled
    /// with the other tracker by asking it again, T2 named B as A's source and T1 named A as
    /// B's: each waited for the other in WAIT_SYNC for good. The first answer is carried to the
    /// other tracker instead, and both end ACTIVE at both.
    #[test]
    fn two_empty_newcomers_under_two_trackers_both_turn_active() {
        let (mut t1, mut t2) = (Cluster::new(), Cluster::new());
        for t in [&mut t1, &mut t2] {
            assert_eq!(join(t, "a"), StorageStatus::Init);
            assert_eq!(join(t, "b"), StorageStatus::Init);
        }
        let (mut a, mut b) = (None, None);
        settle(&mut t1, "a", &mut a);
        settle(&mut t2, "b", &mut b);
        assert_eq!(a, Some(Decided(None)));
        assert_eq!(b, Some(Decided(None)));
        settle(&mut t2, "a", &mut a);
        settle(&mut t1, "b", &mut b);
        for (name, t) in [("T1", &t1), ("T2", &t2)] {
            for key in ["a", "b"] {
                let n = t.storage("g", key).unwrap();
                assert_eq!(
                    (n.status, n.sync_src.clone()),
                    (StorageStatus::Active, None),
                    "{key} at {name}"
                );
            }
        }
    }

    #[test]
    fn a_source_decided_by_one_tracker_is_what_the_others_hear() {
        assert_eq!(after_join(None), AfterJoin::Ask);
        let src = SyncSource {
            src_id: "10.0.0.1".into(),
            until_timestamp: 7,
        };
        assert_eq!(
            after_join(Some(&Decided(Some(src.clone())))),
            AfterJoin::Notify(src)
        );
    }
}
