//! The tracker service: one task per connection reading FastDFS requests, dispatching each to
//! the cluster view (`cluster`) or the selection rules (`select`) and writing the reply.
//!
//! ```text
//!  TcpListener --accept (max_connections)--> serve_connection (one per socket)
//!       read header (idle timeout) -> body (<= max_body; network_timeout of silence, or in
//!       total when skipping an unknown command's body)
//!       Tracker::handle(conn, cmd, body, now)  --lock--> Cluster + Selector
//!       write reply (network_timeout)
//!  ticker (every <= 1 s) -> Cluster::check_active -> OFFLINE transitions
//! ```
//! Bad input never panics and never takes the tracker down: an oversized or negative length gets
//! EINVAL and the connection is closed (the stream cannot be resynchronised); an unknown command
//! or a body of the wrong shape gets EINVAL and the connection goes on. Each refusal is logged
//! with its reason and counted in [`Counters`].

use super::cluster::{Cluster, Errno, Transition};
use super::select::{SelectConfig, Selector};
use crate::clock::unix_now_i64;
use crate::config::{IdType, IpAddrSize, Reserved, TrackerConfig};
use crate::proto::cmd::{self, errno};
use crate::proto::connection::{
    read_exact_idle, read_header, skip_refused, write_response, ConnError,
};
use crate::proto::tracker::TrackerParams;
use crate::proto::{IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What the service counts (read by status pages and tests).
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub refused_connections: AtomicU64,
    pub requests: AtomicU64,
    pub bad_requests: AtomicU64,
    /// JOINs refused by `max_groups` / `max_storages_per_group`.
    pub refused_joins: AtomicU64,
}

/// The response IP field size for `response_ip_addr_size` (PROTOCOL.md section 2).
pub fn response_ip_size(cfg: &TrackerConfig) -> usize {
    match cfg.response_ip_addr_size {
        IpAddrSize::Ipv4 => IPV4_ADDRESS_SIZE,
        IpAddrSize::Ipv6 => IP_ADDRESS_SIZE,
        IpAddrSize::Auto => {
            let v6 = cfg.storage_ids.iter().any(|e| e.ip.contains(':'));
            if cfg.use_storage_id && v6 {
                IP_ADDRESS_SIZE
            } else {
                IPV4_ADDRESS_SIZE
            }
        }
    }
}

/// FastDFS's text form of reserved_storage_space in PARAMETER_REQ replies.
fn reserved_text(r: &Reserved) -> String {
    match r {
        Reserved::Percent(p) => format!("{p:.2}%"),
        Reserved::Bytes(b) => b.to_string(),
    }
}

/// Mutable tracker state behind one lock: every request touches it briefly and never awaits.
#[derive(Debug)]
pub struct State {
    pub cluster: Cluster,
    pub selector: Selector,
    /// What C trackers next to this one told it (issue 17).
    pub peers: super::peers::Peers,
}

/// Shared by every connection task.
#[derive(Debug)]
pub struct Tracker {
    pub cfg: TrackerConfig,
    pub ip_size: usize,
    pub state: Mutex<State>,
    pub counters: Counters,
    /// Requests by command and result, with latency (`fdfs_ha_tracker_requests_total`, ...).
    pub requests: crate::metrics::Requests,
    /// allow_hosts and the per-address cap, checked at accept.
    pub admission: Arc<crate::admission::Admission>,
    /// Rate limit for every refusal line of this tracker.
    pub logs: Arc<crate::log_limit::SharedLimit>,
    next_conn_id: AtomicU64,
    /// One system-file copy at a time (`sys_files_link`).
    pub(super) sys_copy: tokio::sync::Mutex<()>,
}

/// Per-connection facts: who is on the other end and what it was last told.
#[derive(Debug)]
pub struct ConnState {
    pub id: u64,
    pub peer_ip: String,
    /// `(group, key)` once a storage has joined on this connection.
    pub storage: Option<(String, String)>,
    /// The leader-change count this connection last saw (C sends the leader brief to a
    /// connection whose count is old).
    pub leader_seen: u64,
}

/// What to do after a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Send {
        status: u8,
        body: Vec<u8>,
    },
    /// QUIT: close without answering.
    Close,
    /// A JOIN that must wait until the system files were copied from one of these trackers
    /// ("ip:port"); handle it again after `sys_files_link::copy`.
    Hold(Vec<String>),
}

impl Reply {
    pub(super) fn ok(body: Vec<u8>) -> Self {
        Reply::Send { status: 0, body }
    }
    pub(super) fn err(status: Errno) -> Self {
        Reply::Send {
            status,
            body: Vec::new(),
        }
    }
}

pub(super) fn log_transitions<I: IntoIterator<Item = Transition>>(ts: I) {
    for t in ts {
        tracing::info!(group = %t.group, storage = %t.key, from = t.from.name(), to = t.to.name(), "storage status");
    }
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self::with_cluster(cfg, Cluster::new())
    }

    /// A tracker starting from a known view (restored from disk).
    pub fn with_cluster(cfg: TrackerConfig, mut cluster: Cluster) -> Self {
        cluster.set_reserved(cfg.reserved_storage_space);
        let selector = Selector::new(SelectConfig::from_config(&cfg));
        let logs = Arc::new(crate::log_limit::SharedLimit::default());
        let admission = crate::admission::Admission::from_config(
            "tracker",
            &cfg.allow_hosts,
            cfg.max_connections_per_ip,
            logs.clone(),
        );
        Tracker {
            admission,
            logs,
            ip_size: response_ip_size(&cfg),
            cfg,
            state: Mutex::new(State {
                cluster,
                selector,
                peers: super::peers::Peers::new(unix_now_i64(), 0),
            }),
            counters: Counters::default(),
            requests: crate::metrics::Requests::new("tracker"),
            next_conn_id: AtomicU64::new(1),
            sys_copy: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets when this tracker started and how long it was down before (GET_STATUS reports
    /// both; they rank it in leader elections). Resets the election.
    pub fn started(&self, start_unix: i64, restart_interval: i64) {
        self.lock().peers.election = super::leader::Election::new(start_unix, restart_interval);
    }

    pub fn new_conn(&self, peer_ip: String) -> ConnState {
        ConnState {
            id: self.next_conn_id.fetch_add(1, Ordering::Relaxed),
            peer_ip,
            storage: None,
            leader_seen: 0,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the state is still consistent enough
        // to keep answering, so recover the guard instead of poisoning every later request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn params(&self) -> TrackerParams {
        TrackerParams {
            use_storage_id: self.cfg.use_storage_id,
            id_type_in_filename: match self.cfg.id_type_in_filename {
                IdType::Ip => "ip".into(),
                IdType::Id => "id".into(),
            },
            trust_storage_server_id: true,
            response_ip_addr_size: self.ip_size,
            storage_ip_changed_auto_adjust: true,
            storage_sync_file_max_delay: self.cfg.storage_sync_file_max_delay.get().as_secs(),
            store_path: match self.cfg.store_path {
                crate::config::StorePathLookup::RoundRobin => 0,
                crate::config::StorePathLookup::LoadBalance => 2,
            },
            reserved_storage_space: reserved_text(&self.cfg.reserved_storage_space),
            store_slave_file_use_link: false,
            raw: Default::default(),
        }
    }

    /// JOINs wait for a copy of the other trackers' system files (a start without data, or
    /// after more than 600 s down; `sys_files`).
    pub fn copy_sys_files_first(&self) {
        self.lock().peers.sys_files_needed = true;
    }

    pub fn sys_files_needed(&self) -> bool {
        self.lock().peers.sys_files_needed
    }

    /// The copy is over: `snap` is the other tracker's view (None: no tracker had data), it
    /// replaces ours; JOINs are served from now on.
    pub fn sys_files_copied(
        &self,
        snap: Option<&super::persist::Snapshot>,
        now: Instant,
        unix: i64,
    ) {
        let mut st = self.lock();
        if let Some(snap) = snap {
            let mut cluster =
                super::persist::restore(snap, now, unix, self.cfg.check_active_interval.get());
            cluster.set_reserved(self.cfg.reserved_storage_space);
            let storages: usize = cluster.groups.values().map(|g| g.storages.len()).sum();
            tracing::info!(
                groups = cluster.groups.len(),
                storages,
                "tracker view copied from another tracker"
            );
            st.cluster = cluster;
        }
        st.peers.sys_files_needed = false;
    }

    /// Runs the liveness check (called by the ticker).
    pub fn check_active(&self, now: Instant) {
        let ts = self
            .lock()
            .cluster
            .check_active(now, self.cfg.check_active_interval.get());
        log_transitions(ts);
    }

    /// The view as saved on disk (the lock is held only while it is copied).
    pub fn snapshot(&self, unix_now: i64) -> super::persist::Snapshot {
        super::persist::snapshot(&self.lock().cluster, unix_now)
    }

    /// The connection of a joined storage closed.
    pub fn disconnected(&self, conn: &ConnState) {
        self.lock().peers.disconnected(conn.id);
        if let Some((group, key)) = &conn.storage {
            let t = self.lock().cluster.disconnect(group, key, conn.id);
            log_transitions(t);
        }
    }

    /// The answer to BEAT / DISK_USAGE / SYNC_REPORT (`Peers::report_answer`).
    pub(super) fn server_list(
        &self,
        state: &mut State,
        conn: &mut ConnState,
        group: &str,
        key: &str,
    ) -> Vec<u8> {
        let State { cluster, peers, .. } = state;
        peers.report_answer(cluster, &mut conn.leader_seen, group, key)
    }

    /// Handles one request. Pure apart from the lock: `now` / `unix` are passed in.
    pub fn handle(
        &self,
        conn: &mut ConnState,
        command: u8,
        body: &[u8],
        now: Instant,
        unix: i64,
    ) -> Reply {
        let reply = super::cmd::dispatch(&mut super::cmd::Req {
            tracker: self,
            conn,
            command,
            body,
            now,
            unix,
        });
        // A held JOIN is handled (and counted) again once the system files were copied.
        if let Reply::Hold(_) = reply {
            return reply;
        }
        self.account(command, &reply, now);
        reply
    }

    /// Refuses a request from its header alone (`cmd::refused_unread`; its body was skipped):
    /// logged under `kind`, answered EINVAL and counted like a refusal by a handler.
    pub fn refuse_unread(
        &self,
        conn: &ConnState,
        command: u8,
        kind: &'static str,
        now: Instant,
    ) -> Reply {
        crate::limited!(self.logs, warn, kind, peer = %conn.peer_ip, command,
            "request refused before its body was read");
        let reply = Reply::err(errno::EINVAL);
        self.account(command, &reply, now);
        reply
    }

    /// Counts an answered request by command and result.
    fn account(&self, command: u8, reply: &Reply, now: Instant) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = match reply {
            Reply::Send { status, .. } => {
                if *status == errno::EINVAL {
                    self.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                }
                errno::name(*status)
            }
            Reply::Close | Reply::Hold(_) => "closed",
        };
        let secs = now.elapsed().as_secs_f64();
        self.requests
            .observe(cmd::name(command), result.into(), 0, secs);
    }
}

/// Handles a request whose body was read; a JOIN held for the system-file copy is handled
/// again once the copy is over.
async fn answer(tracker: &Arc<Tracker>, conn: &mut ConnState, command: u8, body: &[u8]) -> Reply {
    let reply = tracker.handle(conn, command, body, Instant::now(), unix_now_i64());
    let Reply::Hold(peers) = reply else {
        return reply;
    };
    match super::sys_files_link::copy(tracker, &peers).await {
        Ok(()) => match tracker.handle(conn, command, body, Instant::now(), unix_now_i64()) {
            Reply::Hold(_) => Reply::err(errno::EAGAIN),
            r => r,
        },
        // As C: the storage is told to try again (its next JOIN retries the copy).
        Err(_) => Reply::err(errno::EAGAIN),
    }
}

/// Reads the body of a request: the body, or the kind of refusal of a request refused from its
/// header (its body skipped), or None when the connection must close. `io_timeout` bounds each
/// wait for more bytes of a body that will be used, not the whole body: a slow client that
/// keeps sending is served. A refused body is skipped within `io_timeout` in total: a client
/// dripping it would otherwise hold the connection for as long as its declared length lasts.
async fn read_body(
    tracker: &Tracker,
    conn: &ConnState,
    stream: &mut TcpStream,
    header: &crate::proto::Header,
    io_timeout: Duration,
) -> Option<Result<Vec<u8>, &'static str>> {
    let refused = super::cmd::refused_unread(header.cmd, header.pkg_len);
    let mut body = Vec::new();
    let read = match refused {
        None => {
            body.resize(header.pkg_len as usize, 0);
            read_exact_idle(stream, &mut body, io_timeout).await
        }
        Some(_) => skip_refused(stream, header.pkg_len, io_timeout).await,
    };
    match read {
        Ok(()) => Some(refused.map_or(Ok(body), Err)),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            crate::limited!(tracker.logs, warn, "body_timeout", peer = %conn.peer_ip, command = header.cmd,
                len = header.pkg_len, "body not received within network_timeout; closing");
            None
        }
        Err(e) => {
            tracing::debug!(peer = %conn.peer_ip, error = %e, "truncated request");
            None
        }
    }
}

/// Serves one connection until the peer closes it, a limit is hit, or shutdown.
pub async fn serve_connection(
    tracker: Arc<Tracker>,
    mut stream: TcpStream,
    shutdown: CancellationToken,
) {
    let peer_ip = stream
        .peer_addr()
        .map(|a| a.ip().to_canonical().to_string())
        .unwrap_or_default();
    let mut conn = tracker.new_conn(peer_ip);
    let io_timeout = tracker
        .cfg
        .network_timeout
        .get()
        .max(Duration::from_millis(100));
    // Storages beat every heart_beat_interval and SDK pools keep idle connections: an idle
    // connection may wait as long as a storage may stay silent before it is declared OFFLINE.
    let idle_timeout = io_timeout.max(tracker.cfg.check_active_interval.get());
    let max_body = tracker.cfg.max_body.0;
    // On shutdown the tracker goes away, not the storage: its status stays as it was (and is
    // saved that way for the restart).
    let mut stopping = false;
    loop {
        let header = tokio::select! {
            _ = shutdown.cancelled() => {
                stopping = true;
                break;
            }
            h = tokio::time::timeout(idle_timeout, read_header(&mut stream)) => h,
        };
        let header = match header {
            Err(_) => {
                tracing::debug!(peer = %conn.peer_ip, "idle connection closed");
                break;
            }
            Ok(Err(e)) if e.is_eof() => break,
            Ok(Err(ConnError::Proto(e))) => {
                crate::limited!(tracker.logs, warn, "bad_header", peer = %conn.peer_ip, error = %e, "bad header; closing");
                tracker
                    .counters
                    .bad_requests
                    .fetch_add(1, Ordering::Relaxed);
                let _ = tokio::time::timeout(
                    io_timeout,
                    write_response(&mut stream, errno::EINVAL, &[]),
                )
                .await;
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %conn.peer_ip, error = %e, "read failed");
                break;
            }
            Ok(Ok(h)) => h,
        };
        if header.pkg_len > max_body {
            crate::limited!(tracker.logs, warn, "over_max_body", peer = %conn.peer_ip, command = header.cmd, len = header.pkg_len, max_body, "body over max_body; closing");
            tracker
                .counters
                .bad_requests
                .fetch_add(1, Ordering::Relaxed);
            let _ =
                tokio::time::timeout(io_timeout, write_response(&mut stream, errno::EINVAL, &[]))
                    .await;
            break;
        }
        let reply = match read_body(&tracker, &conn, &mut stream, &header, io_timeout).await {
            None => break,
            Some(Err(kind)) => tracker.refuse_unread(&conn, header.cmd, kind, Instant::now()),
            Some(Ok(body)) => answer(&tracker, &mut conn, header.cmd, &body).await,
        };
        match reply {
            Reply::Close | Reply::Hold(_) => break,
            Reply::Send { status, body } => {
                match tokio::time::timeout(io_timeout, write_response(&mut stream, status, &body))
                    .await
                {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
    }
    if !stopping {
        tracker.disconnected(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageIdEntry;
    use crate::proto::tracker::{
        GetMyIpReq, JoinReply, JoinReq, ServerListReply, StorageStat, StorageStatus, StoreTarget,
        STAT_BLOCK_LEN,
    };

    fn cfg() -> TrackerConfig {
        crate::config::parse_str("node: t\ntracker: {}\n")
            .expect("config")
            .tracker
            .expect("tracker section")
    }

    fn join_body(port: u16, id: &str) -> Vec<u8> {
        JoinReq::for_test("group1", port, id).encode()
    }

    fn status_of(r: &Reply) -> u8 {
        match r {
            Reply::Send { status, .. } => *status,
            Reply::Close | Reply::Hold(_) => 255,
        }
    }

    fn body_of(r: Reply) -> Vec<u8> {
        match r {
            Reply::Send { body, .. } => body,
            r => panic!("no answer: {r:?}"),
        }
    }

    #[test]
    fn response_ip_size_follows_the_setting() {
        let mut c = cfg();
        assert_eq!(response_ip_size(&c), 16);
        c.response_ip_addr_size = IpAddrSize::Ipv6;
        assert_eq!(response_ip_size(&c), 46);
        c.response_ip_addr_size = IpAddrSize::Auto;
        c.use_storage_id = true;
        c.storage_ids.push(StorageIdEntry {
            id: "100001".into(),
            group: "group1".into(),
            ip: "::1".into(),
            port: None,
        });
        assert_eq!(response_ip_size(&c), 46);
        c.use_storage_id = false;
        assert_eq!(response_ip_size(&c), 16);
    }

    /// A restarted storage has no list: its first beat after the new JOIN must carry one even
    /// though the group did not change since the list last went to that storage.
    #[test]
    fn a_storage_that_joins_again_gets_the_list_again() {
        let t = Tracker::new(cfg());
        let now = Instant::now();
        for round in 0..2 {
            let mut conn = t.new_conn("127.0.0.1".into());
            body_of(t.handle(&mut conn, cmd::STORAGE_JOIN, &join_body(23000, ""), now, 0));
            let r = body_of(t.handle(&mut conn, cmd::STORAGE_BEAT, &[0; STAT_BLOCK_LEN], now, 0));
            let list = ServerListReply::decode(&r).unwrap().group_servers;
            assert_eq!(list.map(|l| l.len()), Some(1), "join {round}");
            let r = body_of(t.handle(&mut conn, cmd::STORAGE_BEAT, &[0; STAT_BLOCK_LEN], now, 0));
            assert_eq!(r, vec![0], "join {round}: sent once");
        }
    }

    #[test]
    fn storage_conversation_then_client_queries() {
        let t = Tracker::new(cfg());
        let now = Instant::now();
        let mut conn = t.new_conn("127.0.0.1".into());
        // Storage commands before JOIN are refused.
        assert_eq!(
            status_of(&t.handle(&mut conn, cmd::STORAGE_BEAT, &[], now, 0)),
            errno::EINVAL
        );
        let r = body_of(t.handle(&mut conn, cmd::STORAGE_JOIN, &join_body(23000, ""), now, 0));
        assert_eq!(
            JoinReply::decode(&r).unwrap().status,
            StorageStatus::Online as u8
        );
        // First beat: ACTIVE, and the server list is sent once.
        let r = body_of(t.handle(&mut conn, cmd::STORAGE_BEAT, &[0; STAT_BLOCK_LEN], now, 0));
        let list = ServerListReply::decode(&r).unwrap().group_servers.unwrap();
        assert_eq!(list[0].status, StorageStatus::Active as u8);
        let r = body_of(t.handle(&mut conn, cmd::STORAGE_BEAT, &[], now, 0));
        assert_eq!(r, vec![0]);
        let du = crate::proto::tracker::encode_disk_usage(&[crate::proto::tracker::PathUsage {
            total_mb: 1000,
            free_mb: 900,
        }]);
        assert_eq!(
            body_of(t.handle(&mut conn, cmd::STORAGE_REPORT_DISK_USAGE, &du, now, 0)),
            vec![0]
        );

        let mut client = t.new_conn("127.0.0.2".into());
        let r = body_of(t.handle(
            &mut client,
            cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE,
            &[],
            now,
            0,
        ));
        let target = StoreTarget::decode(&r).unwrap();
        assert_eq!((target.group.as_str(), target.addr.port), ("group1", 23000));
        assert_eq!(target.addr.ip, "127.0.0.1");
        let r = body_of(
            t.handle(
                &mut client,
                cmd::STORAGE_GET_MY_IP,
                &GetMyIpReq {
                    group: "group1".into(),
                    port: 1,
                }
                .encode(),
                now,
                0,
            ),
        );
        assert_eq!(r, b"127.0.0.2");
        // Bad inputs each get EINVAL and the connection stays usable.
        for (c, b) in [
            (cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE, &b"x"[..]),
            (cmd::SERVICE_QUERY_STORE_WITH_GROUP_ONE, &b"bad/group"[..]),
            (cmd::SERVICE_QUERY_FETCH_ONE, &b"group1"[..]),
            (cmd::STORAGE_JOIN, &[1, 2, 3][..]),
            (200, &[][..]),
        ] {
            assert_eq!(
                status_of(&t.handle(&mut client, c, b, now, 0)),
                errno::EINVAL,
                "cmd {c}"
            );
        }
        assert_eq!(
            status_of(&t.handle(&mut client, cmd::ACTIVE_TEST, &[], now, 0)),
            0
        );
        assert_eq!(t.handle(&mut client, cmd::QUIT, &[], now, 0), Reply::Close);
        assert!(t.counters.bad_requests.load(Ordering::Relaxed) >= 6);
        // Disconnecting the storage takes it out of service.
        t.disconnected(&conn);
        let r = t.handle(
            &mut client,
            cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE,
            &[],
            now,
            0,
        );
        assert_eq!(status_of(&r), errno::ENOENT);
    }

    #[test]
    fn parameters_reflect_the_config() {
        let mut c = cfg();
        c.use_storage_id = true;
        c.id_type_in_filename = IdType::Id;
        c.reserved_storage_space = Reserved::Percent(20.0);
        let p = TrackerParams::decode(&Tracker::new(c).params().encode()).unwrap();
        assert!(p.use_storage_id);
        assert_eq!(p.id_type_in_filename, "id");
        assert_eq!(p.reserved_storage_space, "20.00%");
        assert_eq!(p.response_ip_addr_size, 16);
    }

    /// STORAGE_FETCH_STORAGE_IDS (69) with `ip:port` entries in storage_ids (C 6.x allows
    /// them): the captured answer byte for byte (fastdfs-vectors.txt blocks [2] and [5]:
    /// total 2, count 2, "100001 group1 127.0.0.1:23000\n100002 group1 127.0.0.1:23001\n").
    /// Issue 17.5; an entry without a port (`id group ip`) is not in any capture (LIMITS.md).
    #[test]
    fn storage_ids_with_port_are_fetched_as_captured() {
        use crate::proto::tracker::vectors::{assert_same, block, blocks};
        let all = blocks();
        let mut c = cfg();
        c.use_storage_id = true;
        for (id, port) in [("100001", 23000), ("100002", 23001)] {
            c.storage_ids.push(StorageIdEntry {
                id: id.into(),
                group: "group1".into(),
                ip: "127.0.0.1".into(),
                port: Some(port),
            });
        }
        let t = Tracker::new(c);
        for n in [2, 5] {
            let b = block(&all, n);
            assert_eq!(b[0].cmd(), cmd::STORAGE_FETCH_STORAGE_IDS);
            let mut conn = t.new_conn("127.0.0.1".into());
            let r = t.handle(&mut conn, b[0].cmd(), b[0].body(), Instant::now(), 0);
            assert_eq!(status_of(&r), 0);
            let body = body_of(r);
            assert!(body.ends_with(b"100002 group1 127.0.0.1:23001\n"));
            assert_same(&b[1], body);
        }
    }

    /// Replays the captured FastDFS 6.16.1 conversation (vectors.txt) into the tracker,
    /// configured as the captured one was, and checks that our replies are the captured bytes.
    #[test]
    fn replies_match_the_captured_fastdfs_tracker() {
        use crate::proto::tracker::vectors::{assert_same, block, blocks, Msg};
        let all = blocks();
        let mut c = cfg();
        c.use_storage_id = true;
        c.id_type_in_filename = IdType::Id;
        c.reserved_storage_space = Reserved::Percent(20.0);
        for (id, port) in [("100001", 23000), ("100002", 23001)] {
            c.storage_ids.push(StorageIdEntry {
                id: id.into(),
                group: "group1".into(),
                ip: "127.0.0.1".into(),
                port: Some(port),
            });
        }
        let t = Tracker::new(c);
        let now = Instant::now();
        // Capture time, so file ages are what they were then.
        let unix = 1_795_272_030;
        let ask = |conn: &mut ConnState, m: &Msg| -> Reply {
            assert!(m.to_tracker);
            t.handle(conn, m.cmd(), m.body(), now, unix)
        };
        let expect = |conn: &mut ConnState, req: &Msg, reply: &Msg| match ask(conn, req) {
            Reply::Send { status, body } => {
                assert_eq!(status, reply.header().status, "cmd {}", req.cmd());
                assert_same(reply, body);
            }
            r => panic!("no answer to cmd {}: {r:?}", req.cmd()),
        };

        // Start-up exchanges of both storages.
        let mut short = t.new_conn("127.0.0.1".into());
        for n in [0, 1, 2, 3, 4, 5] {
            let b = block(&all, n);
            expect(&mut short, &b[0], &b[1]);
        }
        // Storage 2 (block 7) joins a tracker that knows nothing: ONLINE, no source - as captured.
        let b7 = block(&all, 7);
        let mut s2 = t.new_conn("127.0.0.1".into());
        expect(&mut s2, &b7[0], &b7[1]);
        expect(&mut s2, &b7[2], &b7[3]);
        // Storage 1 (block 6): same JOIN. (The captured tracker had remembered a sync source
        // from before its restart; ours starts empty, so only the status is compared.)
        let b6 = block(&all, 6);
        let mut s1 = t.new_conn("127.0.0.1".into());
        let r = body_of(ask(&mut s1, &b6[0]));
        assert_eq!(
            JoinReply::decode(&r).unwrap().status,
            StorageStatus::Online as u8
        );
        expect(&mut s1, &b6[2], &b6[3]);
        // Their reports: beats, changelog polls, disk usage, sync report.
        for (conn, b) in [(&mut s1, b6), (&mut s2, b7)] {
            for pair in b[4..].chunks(2) {
                let r = ask(conn, &pair[0]);
                assert_eq!(status_of(&r), 0, "cmd {}", pair[0].cmd());
                if pair[0].cmd() == cmd::STORAGE_CHANGELOG_REQ {
                    assert_same(&pair[1], body_of(r));
                }
            }
        }
        // Storage 2 became ACTIVE after storage 1's last report: storage 1 is told once ...
        let du = &b6[8];
        assert_eq!(du.cmd(), cmd::STORAGE_REPORT_DISK_USAGE);
        let r = ServerListReply::decode(&body_of(ask(&mut s1, du))).unwrap();
        let servers = r.group_servers.expect("changed list");
        assert!(servers
            .iter()
            .all(|b| b.status == StorageStatus::Active as u8));
        // ... then, nothing having changed, the reply is the bare flags byte, as captured.
        expect(&mut s1, du, &b6[9]);

        // Client queries, answered exactly as the real tracker did.
        let mut client = t.new_conn("127.0.0.1".into());
        let b8 = block(&all, 8);
        expect(&mut client, &b8[0], &b8[1]); // SERVER_LIST_ALL_GROUPS: 113-byte group stat
        let r = body_of(ask(&mut client, &b8[2]));
        let list = StorageStat::decode_list(&r).unwrap();
        let captured = StorageStat::decode_list(b8[3].body()).unwrap();
        assert_eq!(r.len(), b8[3].body().len());
        for (ours, theirs) in list.iter().zip(&captured) {
            assert_eq!(
                (ours.status, &ours.id, &ours.ip),
                (theirs.status, &theirs.id, &theirs.ip)
            );
            assert_eq!(
                (ours.total_mb, ours.free_mb, ours.reserved_mb),
                (theirs.total_mb, theirs.free_mb, theirs.reserved_mb)
            );
            assert_eq!(
                (ours.join_time, ours.up_time, ours.storage_port),
                (theirs.join_time, theirs.up_time, theirs.storage_port)
            );
            assert_eq!(&ours.version, &theirs.version);
            assert_eq!(
                ours.stats.counters[crate::proto::tracker::STAT_LAST_HEART_BEAT_TIME],
                unix
            );
        }
        // QUERY_STORE alternates 23000 / 23001 / 23000 (round robin), as captured.
        for n in [9, 21, 33] {
            let b = block(&all, n);
            expect(&mut client, &b[0], &b[1]);
        }
        // Updates and reads go to each file's source (100001 for the normal files, 100002 for
        // the appender); nobody had reported syncing 100001's files yet.
        for n in [11, 13, 15, 17, 23, 25, 27, 35, 40] {
            let b = block(&all, n);
            expect(&mut client, &b[0], &b[1]);
        }
        let b = block(&all, 19);
        expect(&mut client, &b[0], &b[1]);
    }
}
