//! The tracker over real sockets on 127.0.0.1: fake storages (the real reporter with a fake
//! `ReporterSource`, or raw protocol) join and beat; clients query with `client::tracker`.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;

use fdfs_ha::client::tracker as tc;
use fdfs_ha::config::TrackerConfig;
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::connection::{read_message, write_message};
use fdfs_ha::proto::fileid::{new_name, FileInfo, Source};
use fdfs_ha::proto::tracker::{JoinReply, JoinReq, StorageStatus, StoreTarget};
use fdfs_ha::storage::reporter::{
    run_reporter, ReporterSource, StorageBrief, StorageStats, TrackerParams,
};
use fdfs_ha::tracker::TrackerServer;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const BEAT: Duration = Duration::from_millis(100);

fn tracker_cfg(extra: &str) -> TrackerConfig {
    let mut y = String::from("node: t\ntracker:\n  listen: 127.0.0.1:0\n");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        y.push_str("  ");
        y.push_str(line.trim());
        y.push('\n');
    }
    fdfs_ha::config::parse_str(&y)
        .unwrap_or_else(|e| panic!("config {y}: {e:?}"))
        .tracker
        .expect("tracker section")
}

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The tracker's data_dir (its saved view); removed when the test ends.
    dir: tempfile::TempDir,
}

impl Running {
    /// Stops the tracker and hands back its data_dir (to restart on it).
    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.task.await.expect("join").expect("serve");
        self.dir
    }
}

async fn start_tracker(cfg: &TrackerConfig) -> Running {
    start_tracker_in(cfg, tempfile::tempdir().expect("tempdir")).await
}

async fn start_tracker_in(cfg: &TrackerConfig, dir: tempfile::TempDir) -> Running {
    let server = TrackerServer::bind(cfg, dir.path()).await.expect("bind");
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));
    Running {
        addr,
        stop,
        task,
        dir,
    }
}

/// A storage as the reporter sees it: fixed answers, records what trackers tell it.
struct FakeStorage {
    group: String,
    port: u16,
    id: Option<String>,
    needs_sync: std::sync::atomic::AtomicBool,
    disk: Mutex<Vec<(u64, u64)>>,
    sync: Mutex<Vec<(String, u32)>>,
    identity: Mutex<Option<(String, TrackerParams)>>,
    servers: Mutex<Vec<StorageBrief>>,
    sync_source: Mutex<Option<Option<fdfs_ha::proto::tracker::SyncSource>>>,
}

impl FakeStorage {
    fn new(group: &str, port: u16, id: Option<&str>, free_mb: u64) -> Arc<Self> {
        Arc::new(FakeStorage {
            group: group.into(),
            port,
            id: id.map(str::to_owned),
            needs_sync: std::sync::atomic::AtomicBool::new(false),
            disk: Mutex::new(vec![(10_000, free_mb)]),
            sync: Mutex::new(Vec::new()),
            identity: Mutex::new(None),
            servers: Mutex::new(Vec::new()),
            sync_source: Mutex::new(None),
        })
    }
}

impl ReporterSource for FakeStorage {
    fn group(&self) -> String {
        self.group.clone()
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn storage_id(&self) -> Option<String> {
        self.id.clone()
    }
    fn store_path_count(&self) -> u32 {
        1
    }
    fn subdir_count(&self) -> u32 {
        256
    }
    fn upload_priority(&self) -> i64 {
        10
    }
    fn join_time(&self) -> i64 {
        1_795_271_041
    }
    fn disk_usage(&self) -> Vec<(u64, u64)> {
        self.disk.lock().unwrap().clone()
    }
    fn stats(&self) -> StorageStats {
        let mut s = StorageStats::default();
        s.counters[0] = self.port as i64; // recognisable in SERVER_LIST_STORAGE
        s
    }
    fn sync_progress(&self) -> Vec<(String, u32)> {
        self.sync.lock().unwrap().clone()
    }
    fn on_identity(&self, my_ip: String, params: TrackerParams) {
        *self.identity.lock().unwrap() = Some((my_ip, params));
    }
    fn on_group_servers(&self, servers: Vec<StorageBrief>) {
        *self.servers.lock().unwrap() = servers;
    }
    fn needs_initial_sync(&self) -> bool {
        self.needs_sync.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn on_sync_source(&self, source: Option<fdfs_ha::proto::tracker::SyncSource>) {
        *self.sync_source.lock().unwrap() = Some(source);
    }
}

/// Starts the reporter of `storage` against `trackers`; cancel the token to stop it.
fn report(storage: &Arc<FakeStorage>, trackers: &[SocketAddr]) -> CancellationToken {
    let stop = CancellationToken::new();
    let source: Arc<dyn ReporterSource> = storage.clone();
    tokio::spawn(run_reporter(
        trackers.iter().map(|a| a.to_string()).collect(),
        BEAT,
        BEAT,
        source,
        stop.clone(),
    ));
    stop
}

async fn conn(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Polls `f` until it returns Some or `limit` passes.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the group has `n` ACTIVE storages on the tracker at `addr`.
async fn wait_active(addr: SocketAddr, group: &str, n: usize) {
    wait_for(Duration::from_secs(5), "storages ACTIVE", || async {
        let mut s = conn(addr).await;
        let list = tc::list_storages(&mut s, group, None).await.ok()?;
        let active = list
            .iter()
            .filter(|x| x.status == StorageStatus::Active as u8)
            .count();
        (active == n).then_some(())
    })
    .await
}

fn file_name(source: Source, created: u32) -> String {
    let info = FileInfo {
        source,
        create_time: created,
        size_field: FileInfo::size_field_for(5, false, 99),
        crc32: 0x3610a686,
    };
    format!("M00/00/00/{}", new_name(&info, "txt", 42))
}

fn now_unix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

const IDS: &str = r#"
use_storage_id: true
id_type_in_filename: id
storage_ids: [{id: "100001", group: group1, ip: 127.0.0.1, port: 23000}, {id: "100002", group: group1, ip: 127.0.0.1, port: 23001}, {id: "100003", group: group2, ip: 127.0.0.1, port: 23002}]
"#;

#[tokio::test]
async fn storages_join_beat_and_clients_get_them() {
    let t = start_tracker(&tracker_cfg(IDS)).await;
    let s1 = FakeStorage::new("group1", 23000, Some("100001"), 5000);
    let s2 = FakeStorage::new("group1", 23001, None, 5000); // found by ip:port in storage_ids
    let stops = [report(&s1, &[t.addr]), report(&s2, &[t.addr])];
    wait_active(t.addr, "group1", 2).await;

    // The reporter learned its address and the tracker's parameters.
    let (ip, params) = s1.identity.lock().unwrap().clone().expect("identity");
    assert_eq!(ip, "127.0.0.1");
    assert!(params.use_storage_id);
    assert_eq!(params.id_type_in_filename, "id");
    assert_eq!(params.response_ip_addr_size, 16);
    // ... and the group's server list (both members, both ACTIVE).
    let servers = wait_for(Duration::from_secs(3), "server list", || async {
        let l = s1.servers.lock().unwrap().clone();
        (l.len() == 2 && l.iter().all(|b| b.status == StorageStatus::Active as u8)).then_some(l)
    })
    .await;
    assert_eq!(servers[1].id, "100002");
    assert_eq!(servers[1].port, 23001);

    let mut c = conn(t.addr).await;
    tc::active_test(&mut c).await.unwrap();
    let target = tc::query_store(&mut c, None).await.unwrap();
    assert_eq!(target.group, "group1");
    assert_eq!(target.addr.ip, "127.0.0.1");
    let second = tc::query_store(&mut c, Some("group1")).await.unwrap();
    assert_ne!(
        target.addr.port, second.addr.port,
        "round robin over storages"
    );
    let all = tc::query_store_all(&mut c, None).await.unwrap();
    let mut ports: Vec<u16> = all.addrs.iter().map(|a| a.port).collect();
    ports.sort();
    assert_eq!(ports, [23000, 23001]);
    let all = tc::query_store_all(&mut c, Some("group1")).await.unwrap();
    assert_eq!(all.addrs.len(), 2);

    let groups = tc::list_groups(&mut c).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].storage_count, groups[0].writable_count), (2, 2));
    assert_eq!((groups[0].total_mb, groups[0].free_mb), (10_000, 5000));
    assert_eq!(groups[0].storage_port, -1);
    let g = tc::list_group(&mut c, "group1").await.unwrap();
    assert_eq!(g, groups[0]);
    let list = tc::list_storages(&mut c, "group1", None).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, "100001");
    assert_eq!(list[0].stats.counters[0], 23000);
    assert_eq!(list[0].version, "6.16.1");
    let one = tc::list_storages(&mut c, "group1", Some("100002"))
        .await
        .unwrap();
    assert_eq!((one.len(), one[0].storage_port), (1, 23001));

    // A file created on 100002 a moment ago: only its source serves reads and changes.
    let name = file_name(Source::Id(100002), now_unix() - 2);
    for _ in 0..3 {
        assert_eq!(
            tc::query_fetch_one(&mut c, "group1", &name)
                .await
                .unwrap()
                .port,
            23001
        );
        assert_eq!(
            tc::query_update(&mut c, "group1", &name)
                .await
                .unwrap()
                .port,
            23001
        );
    }
    assert_eq!(
        tc::query_fetch_all(&mut c, "group1", &name)
            .await
            .unwrap()
            .len(),
        1
    );
    // Once 100001 reports it has synced from 100002 past that time, both serve it.
    *s1.sync.lock().unwrap() = vec![("100002".into(), now_unix() + 1)];
    wait_for(Duration::from_secs(3), "sync report", || async {
        let mut c = conn(t.addr).await;
        let all = tc::query_fetch_all(&mut c, "group1", &name).await.ok()?;
        (all.len() == 2).then_some(())
    })
    .await;
    // Old files can be read anywhere.
    let old = file_name(Source::Id(100002), now_unix() - 100_000);
    assert_eq!(
        tc::query_fetch_all(&mut c, "group1", &old)
            .await
            .unwrap()
            .len(),
        2
    );
    // Unknown group, bad names.
    let e = tc::query_fetch_one(&mut c, "nogroup", &name)
        .await
        .unwrap_err();
    assert_eq!(tc::refusal(&e), Some(errno::ENOENT));
    let e = tc::query_fetch_one(&mut c, "group1", "M00/00/00/short")
        .await
        .unwrap_err();
    assert_eq!(tc::refusal(&e), Some(errno::EINVAL));
    let e = tc::query_store(&mut c, Some("group9")).await.unwrap_err();
    assert_eq!(tc::refusal(&e), Some(errno::ENOENT));

    for s in stops {
        s.cancel();
    }
    t.stop().await;
}

#[tokio::test]
async fn storage_not_in_storage_ids_is_refused() {
    let t = start_tracker(&tracker_cfg(IDS)).await;
    let mut s = conn(t.addr).await;
    let join = JoinReq {
        storage_id: "999".into(),
        current_tracker_ip: "127.0.0.1".into(),
        ..JoinReq::c_storage("group1", 24000)
    };
    write_message(&mut s, cmd::STORAGE_JOIN, 0, &join.encode())
        .await
        .unwrap();
    let (h, _) = read_message(&mut s, 1024).await.unwrap();
    assert_eq!(h.status, errno::ENOENT);
    // Wrong group for a known id.
    let join = JoinReq {
        group: "group2".into(),
        storage_id: "100001".into(),
        ..join
    };
    write_message(&mut s, cmd::STORAGE_JOIN, 0, &join.encode())
        .await
        .unwrap();
    let (h, _) = read_message(&mut s, 1024).await.unwrap();
    assert_eq!(h.status, errno::EINVAL);
    t.stop().await;
}

#[tokio::test]
async fn store_lookup_modes_and_reserved_space() {
    // round robin across groups, keyed by ip:port (no storage ids).
    let t = start_tracker(&tracker_cfg(
        "store_lookup: round_robin\nreserved_storage_space: 10%",
    ))
    .await;
    let a = FakeStorage::new("ga", 23010, None, 6000);
    let b = FakeStorage::new("gb", 23011, None, 3000);
    let stops = [report(&a, &[t.addr]), report(&b, &[t.addr])];
    wait_active(t.addr, "ga", 1).await;
    wait_active(t.addr, "gb", 1).await;
    let mut c = conn(t.addr).await;
    let mut picks = Vec::new();
    for _ in 0..4 {
        picks.push(tc::query_store(&mut c, None).await.unwrap().group);
    }
    assert_eq!(picks, ["ga", "gb", "ga", "gb"]);
    // gb drops under the reserve: every upload goes to ga, gb refuses with ENOSPC.
    *b.disk.lock().unwrap() = vec![(10_000, 900)];
    wait_for(Duration::from_secs(3), "gb full", || async {
        let mut c = conn(t.addr).await;
        let e = tc::query_store(&mut c, Some("gb")).await.err()?;
        (tc::refusal(&e) == Some(errno::ENOSPC)).then_some(())
    })
    .await;
    for _ in 0..4 {
        assert_eq!(tc::query_store(&mut c, None).await.unwrap().group, "ga");
    }
    // Both full: ENOSPC.
    *a.disk.lock().unwrap() = vec![(10_000, 1000)];
    wait_for(Duration::from_secs(3), "all full", || async {
        let mut c = conn(t.addr).await;
        let e = tc::query_store(&mut c, None).await.err()?;
        (tc::refusal(&e) == Some(errno::ENOSPC)).then_some(())
    })
    .await;
    for s in &stops {
        s.cancel();
    }
    t.stop().await;

    // specified: always store_group.
    let t = start_tracker(&tracker_cfg("store_lookup: specified\nstore_group: gb")).await;
    let stops2 = [report(&a, &[t.addr]), report(&b, &[t.addr])];
    *a.disk.lock().unwrap() = vec![(10_000, 6000)];
    *b.disk.lock().unwrap() = vec![(10_000, 3000)];
    wait_active(t.addr, "ga", 1).await;
    wait_active(t.addr, "gb", 1).await;
    let mut c = conn(t.addr).await;
    for _ in 0..3 {
        assert_eq!(tc::query_store(&mut c, None).await.unwrap().group, "gb");
    }
    // An explicit group still wins.
    assert_eq!(
        tc::query_store(&mut c, Some("ga")).await.unwrap().group,
        "ga"
    );
    for s in &stops2 {
        s.cancel();
    }
    t.stop().await;

    // load_balance: the group with the most free space, following disk reports.
    let t = start_tracker(&tracker_cfg("store_lookup: load_balance")).await;
    let stops3 = [report(&a, &[t.addr]), report(&b, &[t.addr])];
    wait_active(t.addr, "ga", 1).await;
    wait_active(t.addr, "gb", 1).await;
    let mut c = conn(t.addr).await;
    for _ in 0..3 {
        assert_eq!(tc::query_store(&mut c, None).await.unwrap().group, "ga");
    }
    *b.disk.lock().unwrap() = vec![(10_000, 8000)];
    wait_for(Duration::from_secs(3), "gb has more room", || async {
        let mut c = conn(t.addr).await;
        let g = tc::query_store(&mut c, None).await.ok()?.group;
        (g == "gb").then_some(())
    })
    .await;
    for s in &stops3 {
        s.cancel();
    }
    t.stop().await;
}

/// Joins, reports disks and beats once by hand, then falls silent with the connection open.
async fn raw_storage(addr: SocketAddr, group: &str, port: u16) -> TcpStream {
    let (s, joined) = node_support::hand_storage(addr, node_support::join_req(group, port)).await;
    assert_eq!(
        JoinReply::decode(&joined).unwrap().status,
        StorageStatus::Online as u8
    );
    s
}

#[tokio::test]
async fn silent_or_gone_storage_goes_offline_and_is_not_handed_out() {
    let t = start_tracker(&tracker_cfg("check_active_interval: 1s")).await;
    let _silent = raw_storage(t.addr, "group1", 23100).await;
    let live = FakeStorage::new("group1", 23101, None, 5000);
    let live_stop = report(&live, &[t.addr]);
    wait_active(t.addr, "group1", 2).await;
    // The silent one times out after ~1 s although its connection stays open.
    let started = Instant::now();
    wait_for(Duration::from_secs(4), "silent storage OFFLINE", || async {
        let mut c = conn(t.addr).await;
        let list = tc::list_storages(&mut c, "group1", None).await.ok()?;
        let silent = list.iter().find(|s| s.storage_port == 23100)?;
        (silent.status == StorageStatus::Offline as u8).then_some(())
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    let mut c = conn(t.addr).await;
    for _ in 0..4 {
        assert_eq!(
            tc::query_store(&mut c, None).await.unwrap().addr.port,
            23101
        );
    }
    let name = file_name(
        Source::Ip("127.0.0.1".parse().unwrap()),
        now_unix() - 100_000,
    );
    assert_eq!(
        tc::query_fetch_all(&mut c, "group1", &name)
            .await
            .unwrap()
            .iter()
            .map(|a| a.port)
            .collect::<Vec<_>>(),
        [23101]
    );
    // The live one stops reporting (its connection closes): nothing left to hand out.
    live_stop.cancel();
    wait_for(Duration::from_secs(3), "no storage left", || async {
        let mut c = conn(t.addr).await;
        let e = tc::query_store(&mut c, None).await.err()?;
        (tc::refusal(&e) == Some(errno::ENOENT)).then_some(())
    })
    .await;
    let e = tc::query_fetch_one(&mut c, "group1", &name)
        .await
        .unwrap_err();
    assert_eq!(tc::refusal(&e), Some(errno::ENOENT));
    t.stop().await;
}

#[tokio::test]
async fn two_trackers_are_peers_and_answer_alike() {
    let cfg = tracker_cfg(&format!(
        "{IDS}\nstore_lookup: specified\nstore_group: group1\nstore_server: first_by_ip"
    ));
    let t1 = start_tracker(&cfg).await;
    let t2 = start_tracker(&cfg).await;
    let both = [t1.addr, t2.addr];
    let s1 = FakeStorage::new("group1", 23000, Some("100001"), 5000);
    let s2 = FakeStorage::new("group1", 23001, Some("100002"), 5000);
    let s3 = FakeStorage::new("group2", 23002, Some("100003"), 5000);
    let stops = [report(&s1, &both), report(&s2, &both), report(&s3, &both)];
    for a in both {
        wait_active(a, "group1", 2).await;
        wait_active(a, "group2", 1).await;
    }
    let fresh = file_name(Source::Id(100002), now_unix() - 1);
    let mut answers = Vec::new();
    for a in both {
        let mut c = conn(a).await;
        let store = tc::query_store(&mut c, None).await.unwrap();
        let store2 = tc::query_store(&mut c, Some("group2")).await.unwrap();
        let fetch = tc::query_fetch_all(&mut c, "group1", &fresh).await.unwrap();
        let update = tc::query_update(&mut c, "group1", &fresh).await.unwrap();
        let groups = tc::list_groups(&mut c).await.unwrap();
        let storages: Vec<(String, u8, i64)> = tc::list_storages(&mut c, "group1", None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.status, s.storage_port))
            .collect();
        answers.push((store, store2, fetch, update, groups, storages));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0.addr.port, 23000);
    assert_eq!(answers[0].3.port, 23001);
    // One tracker goes away: the other still answers, the reporters keep running.
    t1.stop().await;
    let mut c = conn(t2.addr).await;
    assert_eq!(tc::query_store(&mut c, None).await.unwrap().group, "group1");
    tokio::time::sleep(BEAT * 3).await;
    wait_active(t2.addr, "group1", 2).await;
    for s in stops {
        s.cancel();
    }
    t2.stop().await;
}

#[tokio::test]
async fn reporter_reconnects_when_a_tracker_comes_back() {
    let cfg = tracker_cfg("");
    // Find a free port, then start the reporter before anything listens there.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let s = FakeStorage::new("group1", 23200, None, 5000);
    let stop = report(&s, &[addr]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cfg_at = cfg.clone();
    cfg_at.listen = addr;
    let t = start_tracker(&cfg_at).await;
    wait_active(t.addr, "group1", 1).await;
    // Restart the tracker on a fresh data_dir: it knows nothing, the reporter joins again.
    t.stop().await;
    let t = start_tracker(&cfg_at).await;
    wait_active(t.addr, "group1", 1).await;
    stop.cancel();
    t.stop().await;
}

#[tokio::test]
async fn restarted_tracker_answers_at_once_from_its_saved_view() {
    let cfg = tracker_cfg("");
    let t = start_tracker(&cfg).await;
    let storage = raw_storage(t.addr, "group1", 23500).await;
    wait_active(t.addr, "group1", 1).await;
    // Stop the tracker while the storage is still up: the view is saved on the way out.
    let dir = t.stop().await;
    assert!(dir.path().join("tracker-cluster.json").exists());
    let t = start_tracker_in(&cfg, dir).await;
    let mut c = conn(t.addr).await;
    let target = tc::query_store(&mut c, None).await.unwrap();
    assert_eq!(target.addr.port, 23500);
    drop(storage);
    t.stop().await;
}

#[tokio::test]
async fn newcomer_gets_a_sync_source_from_the_group() {
    let t = start_tracker(&tracker_cfg(IDS)).await;
    let s1 = FakeStorage::new("group1", 23000, Some("100001"), 5000);
    let stop1 = report(&s1, &[t.addr]);
    wait_active(t.addr, "group1", 1).await;
    let s2 = FakeStorage::new("group1", 23001, Some("100002"), 5000);
    s2.needs_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let stop2 = report(&s2, &[t.addr]);
    let src = wait_for(Duration::from_secs(3), "sync source", || async {
        s2.sync_source.lock().unwrap().clone()
    })
    .await
    .expect("a source");
    assert_eq!(src.src_id, "100001");
    assert!(src.until_timestamp > 0);
    // WAIT_SYNC storages are not handed out.
    let mut c = conn(t.addr).await;
    let list = tc::list_storages(&mut c, "group1", Some("100002"))
        .await
        .unwrap();
    assert_eq!(list[0].status, StorageStatus::WaitSync as u8);
    assert_eq!(list[0].src_id, "100001");
    for _ in 0..3 {
        assert_eq!(
            tc::query_store(&mut c, None).await.unwrap().addr.port,
            23000
        );
    }
    stop1.cancel();
    stop2.cancel();
    t.stop().await;
}

#[tokio::test]
async fn ipv6_size_mode_gives_46_byte_fields() {
    let t = start_tracker(&tracker_cfg("response_ip_addr_size: ipv6")).await;
    let s = FakeStorage::new("group1", 23300, None, 5000);
    let stop = report(&s, &[t.addr]);
    wait_active(t.addr, "group1", 1).await;
    let params = s.identity.lock().unwrap().clone().expect("identity").1;
    assert_eq!(params.response_ip_addr_size, 46);
    let mut c = conn(t.addr).await;
    write_message(&mut c, cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE, 0, &[])
        .await
        .unwrap();
    let (h, body) = read_message(&mut c, 4096).await.unwrap();
    assert_eq!((h.status, body.len()), (0, 70));
    assert_eq!(StoreTarget::decode(&body).unwrap().addr.port, 23300);
    let name = file_name(Source::Ip("127.0.0.1".parse().unwrap()), now_unix() - 5);
    let q = fdfs_ha::proto::tracker::FileQuery {
        group: "group1".into(),
        filename: name.clone(),
    };
    write_message(&mut c, cmd::SERVICE_QUERY_FETCH_ONE, 0, &q.encode())
        .await
        .unwrap();
    let (_, body) = read_message(&mut c, 4096).await.unwrap();
    assert_eq!(body.len(), 69);
    write_message(
        &mut c,
        cmd::SERVER_LIST_STORAGE,
        0,
        &fdfs_ha::proto::tracker::encode_group("group1"),
    )
    .await
    .unwrap();
    let (_, body) = read_message(&mut c, 4096).await.unwrap();
    assert_eq!(body.len(), 517);
    // The typed client reads the wide layout too.
    assert_eq!(
        tc::query_store(&mut c, None).await.unwrap().addr.ip,
        "127.0.0.1"
    );
    assert_eq!(
        tc::query_fetch_one(&mut c, "group1", &name)
            .await
            .unwrap()
            .port,
        23300
    );
    assert_eq!(
        tc::list_storages(&mut c, "group1", None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        tc::query_store_all(&mut c, None).await.unwrap().addrs.len(),
        1
    );
    stop.cancel();
    t.stop().await;
}

/// Sends raw bytes and reads the reply header's status (None when the tracker closed).
async fn raw_exchange(s: &mut TcpStream, bytes: &[u8]) -> Option<u8> {
    use tokio::io::AsyncWriteExt;
    s.write_all(bytes).await.ok()?;
    let (h, _) = read_message(s, 1 << 20).await.ok()?;
    Some(h.status)
}

fn frame(pkg_len: i64, command: u8, body: &[u8]) -> Vec<u8> {
    let mut v = pkg_len.to_be_bytes().to_vec();
    v.push(command);
    v.push(0);
    v.extend_from_slice(body);
    v
}

async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn bad_input_gets_an_errno_and_the_tracker_survives() {
    let t = start_tracker(&tracker_cfg("max_body: 1KiB\nmax_connections: 4")).await;
    // Unknown command, wrong body shapes: EINVAL, connection goes on.
    let mut first = conn(t.addr).await;
    let s = &mut first;
    assert_eq!(
        raw_exchange(s, &frame(0, 250, &[])).await,
        Some(errno::EINVAL)
    );
    assert_eq!(
        raw_exchange(s, &frame(3, 250, b"abc")).await,
        Some(errno::EINVAL)
    );
    assert_eq!(
        raw_exchange(
            s,
            &frame(2, cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE, b"xx")
        )
        .await,
        Some(errno::EINVAL)
    );
    assert_eq!(
        raw_exchange(
            s,
            &frame(5, cmd::SERVICE_QUERY_STORE_WITH_GROUP_ONE, b"group")
        )
        .await,
        Some(errno::EINVAL)
    );
    assert_eq!(
        raw_exchange(s, &frame(10, cmd::STORAGE_JOIN, &[7; 10])).await,
        Some(errno::EINVAL)
    );
    assert_eq!(
        raw_exchange(s, &frame(0, cmd::STORAGE_BEAT, &[])).await,
        Some(errno::EINVAL),
        "BEAT before JOIN"
    );
    assert_eq!(
        raw_exchange(s, &frame(16, cmd::SERVICE_QUERY_FETCH_ONE, &[b'g'; 16])).await,
        Some(errno::EINVAL),
        "no filename"
    );
    assert_eq!(
        raw_exchange(s, &frame(0, cmd::ACTIVE_TEST, &[])).await,
        Some(0)
    );

    // Oversized and negative lengths: EINVAL, then the connection is closed.
    let mut s = conn(t.addr).await;
    assert_eq!(
        raw_exchange(&mut s, &frame(1 << 40, cmd::SERVER_LIST_ALL_GROUPS, &[])).await,
        Some(errno::EINVAL)
    );
    assert!(closed(&mut s).await);
    let mut s = conn(t.addr).await;
    assert_eq!(
        raw_exchange(&mut s, &frame(-5, cmd::ACTIVE_TEST, &[])).await,
        Some(errno::EINVAL)
    );
    assert!(closed(&mut s).await);
    // A truncated body followed by EOF: the tracker just drops the connection.
    let mut s = conn(t.addr).await;
    {
        use tokio::io::AsyncWriteExt;
        s.write_all(&frame(100, cmd::STORAGE_JOIN, &[0; 10]))
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    }
    assert!(closed(&mut s).await);
    // QUIT closes without a reply.
    let mut s = conn(t.addr).await;
    {
        use tokio::io::AsyncWriteExt;
        s.write_all(&frame(0, cmd::QUIT, &[])).await.unwrap();
    }
    assert!(closed(&mut s).await);

    // max_connections: the fifth concurrent connection is refused, the others keep working.
    drop(first);
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = conn(t.addr).await;
        tc::active_test(&mut c).await.unwrap();
        held.push(c);
    }
    let mut extra = conn(t.addr).await;
    assert!(closed(&mut extra).await);
    tc::active_test(&mut held[0]).await.unwrap();
    drop(held);
    // And the tracker is still fine for new clients.
    let mut c = wait_for(Duration::from_secs(2), "a free slot", || async {
        let mut c = conn(t.addr).await;
        tc::active_test(&mut c).await.ok()?;
        Some(c)
    })
    .await;
    tc::active_test(&mut c).await.unwrap();
    t.stop().await;
}

#[tokio::test]
async fn newcomer_gets_the_same_source_on_every_tracker() {
    let cfg = tracker_cfg(IDS);
    let t1 = start_tracker(&cfg).await;
    let t2 = start_tracker(&cfg).await;
    let both = [t1.addr, t2.addr];
    let s1 = FakeStorage::new("group1", 23000, Some("100001"), 5000);
    let stop1 = report(&s1, &both);
    for a in both {
        wait_active(a, "group1", 1).await;
    }
    let s2 = FakeStorage::new("group1", 23001, Some("100002"), 5000);
    s2.needs_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let stop2 = report(&s2, &both);
    let mut seen = Vec::new();
    for a in both {
        let st = wait_for(Duration::from_secs(3), "WAIT_SYNC everywhere", || async {
            let mut c = conn(a).await;
            let l = tc::list_storages(&mut c, "group1", Some("100002"))
                .await
                .ok()?;
            (l[0].status == StorageStatus::WaitSync as u8).then_some(())?;
            tc::sync_src_req(&mut c, "group1", "100002").await.ok()?
        })
        .await;
        seen.push(st);
    }
    assert_eq!(
        seen[0], seen[1],
        "same source and until_timestamp on both trackers"
    );
    assert_eq!(seen[0].src_id, "100001");
    stop1.cancel();
    stop2.cancel();
    t1.stop().await;
    t2.stop().await;
}

#[tokio::test]
async fn config_mistakes_are_refused_at_bind() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for bad in [
        "store_lookup: specified",
        "use_storage_id: true",
        "storage_ids: [{id: \"1\", group: g1, ip: 127.0.0.1}, {id: \"1\", group: g1, ip: 127.0.0.2}]",
        "storage_ids: [{id: \"1\", group: \"bad group\", ip: 127.0.0.1}]",
    ] {
        let cfg = tracker_cfg(bad);
        let err = TrackerServer::bind(&cfg, dir).await.err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("tracker."), "{bad}: {msg:?}");
    }
}

#[tokio::test]
async fn many_clients_at_once_while_storages_report() {
    let t = start_tracker(&tracker_cfg("")).await;
    let stores: Vec<Arc<FakeStorage>> = (0..3)
        .map(|i| FakeStorage::new("group1", 23400 + i, None, 5000))
        .collect();
    let stops: Vec<CancellationToken> = stores.iter().map(|s| report(s, &[t.addr])).collect();
    wait_active(t.addr, "group1", 3).await;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let addr = t.addr;
        clients.spawn(async move {
            let mut c = conn(addr).await;
            let mut ports = std::collections::BTreeSet::new();
            for _ in 0..50 {
                ports.insert(tc::query_store(&mut c, None).await.unwrap().addr.port);
                tc::list_groups(&mut c).await.unwrap();
            }
            ports
        });
    }
    let mut all = std::collections::BTreeSet::new();
    while let Some(r) = clients.join_next().await {
        all.extend(r.unwrap());
    }
    assert_eq!(all.into_iter().collect::<Vec<_>>(), [23400, 23401, 23402]);
    for s in stops {
        s.cancel();
    }
    t.stop().await;
}

#[tokio::test]
async fn client_asks_a_tracker_that_timed_out_last_for_a_while() {
    // Tracker A accepts connections but never answers (hung or cut off); B is a real tracker.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let held2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = hung.accept().await {
            held2.lock().unwrap().push(s);
        }
    });
    let good = start_tracker(&tracker_cfg("")).await;
    let client = fdfs_ha::client::FdfsClient::with_timeout(
        vec![hung_addr, good.addr],
        Duration::from_millis(300),
    );
    // The first call starts at A: one timeout, then B answers.
    let t = Instant::now();
    client
        .list_groups()
        .await
        .expect("B answers after A times out");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // Round-robin would start at A again on every other call; A is now asked last.
    for _ in 0..4 {
        let t = Instant::now();
        client.list_groups().await.expect("B answers");
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "a tracker that just timed out was asked first again ({:?})",
            t.elapsed()
        );
    }
    assert_eq!(held.lock().unwrap().len(), 1, "A was not asked again");
}
