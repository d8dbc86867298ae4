//! State shared by the storage service, the tracker reporter and (later) sync: who this storage
//! is (the source written into new file IDs), parameters learned from trackers, the file store,
//! the binlog, and the counters reported in BEAT.
//!
//! The reporter updates identity and parameters through the setters; request handlers read them
//! per request, so a change applies to the next upload.
//!
//! Replication state kept here (sync.rs drives it): what we received per source storage (the
//! newest record timestamp, reported to trackers with SYNC_REPORT), what each outgoing sender
//! has left to send (lag, shown by `fdfs-ha monitor`), and whether this storage still has to
//! receive its group's old data (`<base>/data/.data_init_flag` in C FastDFS's format, see
//! `init_flag`).

use super::binlog::{Binlog, BinlogOp, BinlogPos, BinlogRecord};
use super::store::{DiskUsage, Store};
use crate::clock::unix_now;
use crate::config::{IdType, Reserved, StorageConfig};
use crate::proto::fileid::Source;
use crate::proto::sync::PeerSyncStatus;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Parameters a tracker hands out (STORAGE_PARAMETER_REQ) that change how this storage behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupParams {
    pub use_storage_id: bool,
    pub id_type_in_filename: IdType,
    /// Overrides `storage.reserved_storage_space` when the tracker sends one.
    pub reserved_storage_space: Option<Reserved>,
    /// Address field size in QUERY_FILE_INFO responses: 16 (IPv4) or 46.
    pub response_ip_addr_size: usize,
}

impl Default for GroupParams {
    fn default() -> Self {
        GroupParams {
            use_storage_id: false,
            id_type_in_filename: IdType::Ip,
            reserved_storage_space: None,
            response_ip_addr_size: crate::proto::IPV4_ADDRESS_SIZE,
        }
    }
}

/// A total/success pair, as FastDFS counts every operation.
#[derive(Debug, Default)]
pub struct OpCounter {
    pub total: AtomicU64,
    pub success: AtomicU64,
}

impl OpCounter {
    pub fn record(&self, ok: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.success.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_bytes(&self, attempted: u64, ok: bool) {
        self.total.fetch_add(attempted, Ordering::Relaxed);
        if ok {
            self.success.fetch_add(attempted, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> Count {
        Count {
            total: self.total.load(Ordering::Relaxed),
            success: self.success.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub total: u64,
    pub success: u64,
}

/// The counters of the BEAT stats block (PROTOCOL.md section 5), in its order.
#[derive(Debug, Default)]
pub struct Stats {
    pub upload: OpCounter,
    pub append: OpCounter,
    pub modify: OpCounter,
    pub truncate: OpCounter,
    pub set_meta: OpCounter,
    pub delete: OpCounter,
    pub download: OpCounter,
    pub get_meta: OpCounter,
    pub create_link: OpCounter,
    pub delete_link: OpCounter,
    pub upload_bytes: OpCounter,
    pub append_bytes: OpCounter,
    pub modify_bytes: OpCounter,
    pub download_bytes: OpCounter,
    pub sync_in_bytes: OpCounter,
    pub sync_out_bytes: OpCounter,
    pub file_open: OpCounter,
    pub file_read: OpCounter,
    pub file_write: OpCounter,
    pub last_source_update: AtomicU64,
    pub last_sync_update: AtomicU64,
    pub last_synced_timestamp: AtomicU64,
    pub last_heart_beat_time: AtomicU64,
    /// Connections ever accepted, open now, most open at once, refused by max_connections.
    pub connections_total: AtomicU64,
    pub connections_current: AtomicU64,
    pub connections_max: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Requests refused as malformed (bad header, unknown command, bad body, bad name).
    pub bad_requests: AtomicU64,
}

/// A copy of [`Stats`] for reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub upload: Count,
    pub append: Count,
    pub modify: Count,
    pub truncate: Count,
    pub set_meta: Count,
    pub delete: Count,
    pub download: Count,
    pub get_meta: Count,
    pub create_link: Count,
    pub delete_link: Count,
    pub upload_bytes: Count,
    pub append_bytes: Count,
    pub modify_bytes: Count,
    pub download_bytes: Count,
    pub sync_in_bytes: Count,
    pub sync_out_bytes: Count,
    pub file_open: Count,
    pub file_read: Count,
    pub file_write: Count,
    pub last_source_update: u64,
    pub last_sync_update: u64,
    pub last_synced_timestamp: u64,
    pub last_heart_beat_time: u64,
    pub connections_total: u64,
    pub connections_current: u64,
    pub connections_max: u64,
    pub connections_refused: u64,
    pub bad_requests: u64,
}

impl Stats {
    /// One file opened and written (uploads, appends, modifies).
    pub fn count_file_write(&self) {
        self.file_open.record(true);
        self.file_write.record(true);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            upload: self.upload.get(),
            append: self.append.get(),
            modify: self.modify.get(),
            truncate: self.truncate.get(),
            set_meta: self.set_meta.get(),
            delete: self.delete.get(),
            download: self.download.get(),
            get_meta: self.get_meta.get(),
            create_link: self.create_link.get(),
            delete_link: self.delete_link.get(),
            upload_bytes: self.upload_bytes.get(),
            append_bytes: self.append_bytes.get(),
            modify_bytes: self.modify_bytes.get(),
            download_bytes: self.download_bytes.get(),
            sync_in_bytes: self.sync_in_bytes.get(),
            sync_out_bytes: self.sync_out_bytes.get(),
            file_open: self.file_open.get(),
            file_read: self.file_read.get(),
            file_write: self.file_write.get(),
            last_source_update: g(&self.last_source_update),
            last_sync_update: g(&self.last_sync_update),
            last_synced_timestamp: g(&self.last_synced_timestamp),
            last_heart_beat_time: g(&self.last_heart_beat_time),
            connections_total: g(&self.connections_total),
            connections_current: g(&self.connections_current),
            connections_max: g(&self.connections_max),
            connections_refused: g(&self.connections_refused),
            bad_requests: g(&self.bad_requests),
        }
    }
}

/// A new file being written (see [`StorageState::begin_create`]).
pub struct CreateGuard<'a> {
    state: &'a StorageState,
    time: u64,
}

impl CreateGuard<'_> {
    /// The file's creation time (unix seconds), for its name and its binlog record.
    pub fn time(&self) -> u64 {
        self.time
    }
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        let mut set = self
            .state
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = set.get_mut(&self.time) {
            *n -= 1;
            if *n == 0 {
                set.remove(&self.time);
            }
        }
    }
}

/// How long a sending peer may go without a watermark before it is taken for a C storage
/// (fdfs-ha senders send their first one within a second of their first records; until then
/// their record timestamps are not reported, as records arrive out of order on lanes).
pub const C_PEER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything about this storage that outlives one connection.
pub struct StorageState {
    cfg: StorageConfig,
    node: String,
    store: Store,
    binlog: Binlog,
    source: RwLock<Source>,
    params: RwLock<GroupParams>,
    /// Storage id -> IP (from FETCH_STORAGE_IDS), to answer QUERY_FILE_INFO for id-mode names.
    id_ips: RwLock<HashMap<u32, String>>,
    stats: Stats,
    /// Per command: count, latency (the `/metrics` families; `stats` are the tracker's).
    requests: crate::metrics::Requests,
    /// Clients' requests, one line each (`log.protocol_log`; set once by the supervisor).
    protocol_log: std::sync::OnceLock<crate::access_log::AccessLog>,
    join_time: u64,
    up_time: u64,
    port: u16,
    base: PathBuf,
    /// Per source storage id: the sender's watermark, every file it created before that second
    /// is here (SYNC_WATERMARK in, SYNC_REPORT out).
    synced_from: Mutex<HashMap<String, u32>>,
    /// Per sending peer: when its first record came and the newest record timestamp applied
    /// from it. For a peer that sends no watermark (a C storage) that is what is reported, as
    /// a C storage reports it (storage-sync.txt #28). Bounded by the group's members
    /// (replication is accepted only from them).
    records_from: Mutex<HashMap<String, (std::time::Instant, u32)>>,
    /// Creation times (with counts) of new files being written whose binlog records are not
    /// queued yet: senders' watermarks stay below them.
    creating: Mutex<std::collections::BTreeMap<u64, usize>>,
    /// Per peer (mark name): the outgoing sender's progress.
    peer_sync: Mutex<std::collections::BTreeMap<String, PeerSyncStatus>>,
    /// (id, ip) trackers know this storage by (storage id, or the IP they see).
    tracker_identity: RwLock<Option<(String, String)>>,
    /// False while this storage still waits for the group's old data (a newcomer).
    sync_old_done: AtomicBool,
    /// Woken after every binlog flush so idle senders look for new records at once.
    binlog_flushed: tokio::sync::Notify,
    /// The group's members as the last tracker reply listed them (sync's peer list).
    group_servers: RwLock<Vec<crate::proto::tracker::StorageBrief>>,
    group_servers_changed: tokio::sync::Notify,
    /// Set by the first list a tracker sent: until then nobody is known to be a member, and a
    /// replication command waits for the list (`wait_group_peer`) instead of being refused.
    group_list_known: tokio::sync::watch::Sender<bool>,
    /// allow_hosts and the per-address cap of the storage port, checked at accept.
    admission: Arc<crate::admission::Admission>,
    /// Rate limit for refusal lines (one per kind per 10 s, with the count held back).
    logs: Arc<crate::log_limit::SharedLimit>,
    /// SYNC_* commands refused because the peer is not a storage of this group.
    pub refused_sync_peers: std::sync::atomic::AtomicU64,
    /// The thread that stores small new files in batches (see `small_writer`).
    small_writer: super::small_writer::SmallWriter,
}

impl StorageState {
    /// Opens the store and the binlog for `cfg`; `port` is the port actually listened on.
    pub fn open(cfg: &StorageConfig, node: &str, port: u16) -> anyhow::Result<Self> {
        let store = Store::open(cfg)?;
        let base = cfg
            .base_path
            .clone()
            .unwrap_or_else(|| cfg.store_paths[0].clone());
        let binlog = Binlog::open(&base.join("data").join("sync")).map_err(|e| {
            anyhow::anyhow!("storage: cannot open binlog under {}: {e}", base.display())
        })?;
        // Files a crash caught before they settled: their binlog records may not have been
        // flushed. Logged again as they came: source records for files created here (a peer
        // that has one answers EEXIST), replica records for a peer's files (never sent back,
        // so a file its source deleted meanwhile does not return).
        let sealed = store.take_sealed_at_start();
        if !sealed.is_empty() {
            let moved = sealed.iter().filter(|f| f.moved).count();
            tracing::info!(
                files = sealed.len(),
                moved,
                "new files a crash caught before they settled: logged again"
            );
        }
        for file in sealed {
            binlog.append(&BinlogRecord {
                timestamp: file.create_time as i64,
                op: BinlogOp::Create,
                source: !file.replica,
                filename: file.filename,
                extra: None,
            });
        }
        let logs = Arc::new(crate::log_limit::SharedLimit::default());
        let admission = crate::admission::Admission::from_config(
            "storage",
            &cfg.allow_hosts,
            cfg.max_connections_per_ip,
            logs.clone(),
        );
        let now = unix_now();
        let has_history = binlog.flushed_position() != Default::default();
        let (sync_old_done, join_time) =
            super::init_flag::open(&base, &cfg.store_paths, has_history, now, port).map_err(
                |e| {
                    anyhow::anyhow!(
                        "storage: cannot write {}: {e}",
                        super::init_flag::path(&base).display()
                    )
                },
            )?;
        Ok(StorageState {
            requests: crate::metrics::Requests::new("storage"),
            protocol_log: std::sync::OnceLock::new(),
            cfg: cfg.clone(),
            node: node.to_string(),
            store,
            binlog,
            source: RwLock::new(initial_source(cfg)),
            params: RwLock::new(GroupParams::default()),
            id_ips: RwLock::new(HashMap::new()),
            stats: Stats::default(),
            join_time,
            up_time: now,
            port,
            base,
            synced_from: Mutex::new(HashMap::new()),
            records_from: Mutex::new(HashMap::new()),
            creating: Mutex::new(Default::default()),
            peer_sync: Mutex::new(Default::default()),
            tracker_identity: RwLock::new(None),
            sync_old_done: AtomicBool::new(sync_old_done),
            binlog_flushed: tokio::sync::Notify::new(),
            group_servers: RwLock::new(Vec::new()),
            group_servers_changed: tokio::sync::Notify::new(),
            group_list_known: tokio::sync::watch::Sender::new(false),
            admission,
            logs,
            refused_sync_peers: Default::default(),
            small_writer: Default::default(),
        })
    }

    /// `storage.base_path` (binlog, marks, flags), or `store_paths[0]`.
    pub fn base_path(&self) -> &Path {
        &self.base
    }

    /// Starts a new file: its creation time (the file name's), held in the in-progress set
    /// until the guard drops (after its binlog record is queued, or on failure).
    pub fn begin_create(&self) -> CreateGuard<'_> {
        let mut set = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock: a watermark computed after this sees the entry, one computed
        // before it read a clock no later than this.
        let time = unix_now();
        *set.entry(time).or_default() += 1;
        CreateGuard { state: self, time }
    }

    /// A replication checkpoint: (F, P) such that a peer that has applied every binlog record
    /// before P holds every file created here before second F. F is the oldest of the files
    /// being created, of the records past P, and now.
    pub fn sync_checkpoint(&self) -> (i64, BinlogPos) {
        let (now, creating) = {
            let set = self.creating.lock().unwrap_or_else(|e| e.into_inner());
            (unix_now() as i64, set.keys().next().map(|t| *t as i64))
        };
        // In this order: a file leaves the in-progress set only once its record is queued,
        // and the queue only once the record is readable.
        let (end, queued) = self.binlog.readable_end_and_oldest_beyond();
        let floor = creating.into_iter().chain(queued).fold(now, i64::min);
        (floor, end)
    }

    /// A peer's sender says we hold every file storage `source_id` created before `timestamp`.
    pub fn note_synced_from(&self, source_id: &str, timestamp: u32) {
        let mut m = self.synced_from.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(source_id.to_string()).or_insert(0);
        *e = (*e).max(timestamp);
    }

    /// A change from peer `source_id` stamped `timestamp` was applied (and is readable).
    pub fn note_record_from(&self, source_id: &str, timestamp: u32) {
        let mut m = self.records_from.lock().unwrap_or_else(|e| e.into_inner());
        let e = m
            .entry(source_id.to_string())
            .or_insert((std::time::Instant::now(), 0));
        e.1 = e.1.max(timestamp);
    }

    /// Per source storage id: its sender's newest watermark or, for a sender that sent none
    /// within [`C_PEER_GRACE`] of its first record (a C storage), the newest record timestamp
    /// applied from it, as C reports; sorted.
    pub fn synced_from(&self) -> Vec<(String, u32)> {
        let wm = self.synced_from.lock().unwrap_or_else(|e| e.into_inner());
        let rec = self.records_from.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = wm.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.extend(
            rec.iter()
                .filter(|(k, (first, _))| !wm.contains_key(*k) && first.elapsed() >= C_PEER_GRACE)
                .map(|(k, (_, ts))| (k.clone(), *ts)),
        );
        v.sort();
        v
    }

    pub fn set_peer_sync(&self, status: PeerSyncStatus) {
        self.peer_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(status.peer.clone(), status);
    }

    pub fn remove_peer_sync(&self, peer: &str) {
        self.peer_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(peer);
    }

    /// Every outgoing sender's progress, by peer.
    pub fn peer_sync(&self) -> Vec<PeerSyncStatus> {
        self.peer_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Called by the tracker link: the id and IP trackers know us by.
    pub fn set_tracker_identity(&self, id: String, ip: String) {
        *self
            .tracker_identity
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some((id, ip));
    }

    /// (id, ip) as trackers know this storage; None before the first tracker answered.
    pub fn tracker_identity(&self) -> Option<(String, String)> {
        self.tracker_identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True once this storage holds its group's old data (or never had to copy any).
    pub fn sync_old_done(&self) -> bool {
        self.sync_old_done.load(Ordering::Acquire)
    }

    /// Records durably that the initial copy is done (trackers moved us past SYNCING).
    pub fn set_sync_old_done(&self) -> std::io::Result<()> {
        if self.sync_old_done.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        tracing::info!("storage: initial copy of the group's data is complete");
        super::init_flag::set_done(&self.base)
    }

    /// Wakes senders waiting for new binlog records (called after a flush).
    pub fn notify_binlog_flushed(&self) {
        self.binlog_flushed.notify_waiters();
    }

    /// Called by the tracker link with every server list a tracker sends.
    pub fn set_group_servers(&self, servers: Vec<crate::proto::tracker::StorageBrief>) {
        let mut cur = self
            .group_servers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if *cur != servers {
            *cur = servers;
            self.group_servers_changed.notify_waiters();
        }
        drop(cur);
        self.group_list_known
            .send_if_modified(|known| !std::mem::replace(known, true));
    }

    /// True once a tracker sent this storage its group's list (the leader does so in its
    /// first BEAT answer after the JOIN).
    pub fn group_list_known(&self) -> bool {
        *self.group_list_known.borrow()
    }

    /// Like `is_group_peer`, but a request that comes before any tracker sent the group's list
    /// (the first moments after start, while the trackers elect their leader) waits for that
    /// list up to `limit` instead of being refused. Once the list is known the answer is
    /// immediate: a host it does not name is refused as before.
    pub async fn wait_group_peer(&self, ip: std::net::IpAddr, limit: std::time::Duration) -> bool {
        if self.is_group_peer(ip) {
            return true;
        }
        let mut known = self.group_list_known.subscribe();
        let _ = tokio::time::timeout(limit, known.wait_for(|k| *k)).await;
        self.is_group_peer(ip)
    }

    pub fn group_servers(&self) -> Vec<crate::proto::tracker::StorageBrief> {
        self.group_servers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True when `ip` is the address of a storage the trackers list in this group: only those
    /// may push replication (SYNC_*) commands.
    pub fn is_group_peer(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.group_servers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|b| b.ip.parse::<std::net::IpAddr>().ok() == Some(ip))
    }

    pub fn admission(&self) -> &Arc<crate::admission::Admission> {
        &self.admission
    }

    pub fn logs(&self) -> &crate::log_limit::SharedLimit {
        &self.logs
    }

    pub async fn group_servers_changed(&self) {
        self.group_servers_changed.notified().await
    }

    pub async fn binlog_flushed(&self) {
        self.binlog_flushed.notified().await
    }

    /// The storage port clients use (the bound port, also when `listen` asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn config(&self) -> &StorageConfig {
        &self.cfg
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn group(&self) -> &str {
        &self.cfg.group
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn small_writer(&self) -> &super::small_writer::SmallWriter {
        &self.small_writer
    }

    pub fn binlog(&self) -> &Binlog {
        &self.binlog
    }

    pub fn requests(&self) -> &crate::metrics::Requests {
        &self.requests
    }

    /// Where clients' requests are logged; the first call wins (the supervisor's, at start).
    pub fn set_protocol_log(&self, log: crate::access_log::AccessLog) {
        let _ = self.protocol_log.set(log);
    }

    pub fn protocol_log(&self) -> Option<&crate::access_log::AccessLog> {
        self.protocol_log.get().filter(|l| l.enabled())
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The source written into new file IDs (`id_type_in_filename`: id or IPv4).
    pub fn source(&self) -> Source {
        *self.source.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the reporter after GET_MY_IP / PARAMETER_REQ.
    pub fn set_source(&self, s: Source) {
        let mut cur = self.source.write().unwrap_or_else(|e| e.into_inner());
        if *cur != s {
            tracing::info!(old = %*cur, new = %s, "storage: file ID source changed");
            *cur = s;
        }
    }

    pub fn group_params(&self) -> GroupParams {
        self.params
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_group_params(&self, p: GroupParams) {
        if let Some(r) = p.reserved_storage_space {
            self.store.set_reserved(r);
        }
        *self.params.write().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Storage id -> IP map (from the tracker's storage ids list).
    pub fn set_storage_ips(&self, map: HashMap<u32, String>) {
        *self.id_ips.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// The IP to report for a file's source (QUERY_FILE_INFO).
    pub fn source_ip(&self, s: Source) -> String {
        match s {
            Source::Ip(ip) => ip.to_string(),
            Source::Id(id) => {
                if let Some(ip) = self
                    .id_ips
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                {
                    return ip.clone();
                }
                if self.source() == s {
                    return self.advertised_ip().to_string();
                }
                String::new()
            }
        }
    }

    /// The address this storage announces: `advertise_ip`, else the listen address when it is
    /// not a wildcard, else 127.0.0.1 (the reporter learns the real one from GET_MY_IP).
    pub fn advertised_ip(&self) -> Ipv4Addr {
        match initial_source(&self.cfg) {
            Source::Ip(ip) => ip,
            Source::Id(_) => Ipv4Addr::LOCALHOST,
        }
    }

    /// Space per store path (blocking statvfs calls; cheap).
    pub fn disk_usage(&self) -> Vec<DiskUsage> {
        self.store.disk_usage()
    }

    pub fn store_path_count(&self) -> usize {
        self.store.path_count()
    }

    /// Store path index of the most recent upload (`current_write_path`).
    pub fn current_write_path(&self) -> u8 {
        self.store.current_write_path()
    }

    pub fn subdir_count(&self) -> u32 {
        self.store.subdir_count()
    }

    pub fn upload_priority(&self) -> i64 {
        self.cfg.upload_priority
    }

    /// Unix time this storage first started (FastDFS persists it; we use the process start).
    pub fn join_time(&self) -> u64 {
        self.join_time
    }

    pub fn up_time(&self) -> u64 {
        self.up_time
    }

    pub fn storage_id(&self) -> Option<&str> {
        self.cfg.id.as_deref()
    }
}

fn initial_source(cfg: &StorageConfig) -> Source {
    if let Some(ip) = cfg.advertise_ip.as_deref().and_then(|s| s.parse().ok()) {
        return Source::Ip(ip);
    }
    match cfg.listen.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Source::Ip(ip),
        _ => Source::Ip(Ipv4Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_checkpoint_stays_below_files_not_yet_readable_in_the_binlog() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: StorageConfig = serde_saphyr::from_str(&format!(
            "group: group1\ntrackers: []\nstore_paths: [\"{}\"]\nreserved_storage_space: 0%\n",
            dir.path().display()
        ))
        .unwrap();
        let st = StorageState::open(&cfg, "t", 23000).unwrap();
        let now = unix_now() as i64;
        let floor = || st.sync_checkpoint().0;
        assert!(floor() >= now);
        // A file being written holds the floor at its creation second ...
        let creating = st.begin_create();
        let t = creating.time() as i64;
        assert!(floor() <= t);
        // ... and so does a queued record logged after a newer one (an older upload whose
        // fsync took longer), until it is flushed where readers see it.
        let rec = |ts| BinlogRecord::source(BinlogOp::Create, ts, "M00/00/00/x".into(), None);
        st.binlog().append(&rec(t - 5));
        st.binlog().append(&rec(t - 9));
        st.binlog().append(&rec(t - 7));
        drop(creating);
        let (f, end) = st.sync_checkpoint();
        assert_eq!((f, end.offset), (t - 9, 0));
        // Flushed: readable before the new end, and no longer holding the floor back.
        st.binlog().flush().unwrap();
        let (f, end) = st.sync_checkpoint();
        assert!(f >= t && end.offset > 0);
    }
}
