//! What tests/replication.rs builds its groups from: a tracker and storages on 127.0.0.x with
//! their own store directories, waits for statuses and convergence (checked on disk), and a
//! stand-in peer that records what a storage replicates to it.

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::client::FdfsClient;
use fdfs_ha::config::{StorageConfig, TrackerConfig};
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::header::{Header, HEADER_LEN};
use fdfs_ha::proto::tracker::StorageStatus;
use fdfs_ha::storage::StorageServer;
use fdfs_ha::tracker::TrackerServer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub const GROUP: &str = "group1";

pub struct Tracker {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start_tracker(dir: &Path) -> Tracker {
    start_tracker_with(dir, "").await
}

pub async fn start_tracker_with(dir: &Path, extra: &str) -> Tracker {
    let stop = CancellationToken::new();
    let cfg: TrackerConfig = serde_saphyr::from_str(&format!(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\ncheck_active_interval: 3s\n{extra}"
    ))
    .unwrap();
    let t = TrackerServer::bind(&cfg, &dir.join("tracker"))
        .await
        .unwrap();
    let addr = t.local_addr();
    tokio::spawn(t.serve(stop.clone()));
    Tracker { addr, stop }
}

/// One storage; `stop` shuts it down (the directory and port stay for a restart).
pub struct Storage {
    pub ip: String,
    pub port: u16,
    pub store: PathBuf,
    pub tracker: SocketAddr,
    /// Extra top-level storage settings (YAML lines).
    pub extra: String,
    pub stop: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The running server's state (metrics).
    pub state: Option<Arc<fdfs_ha::storage::state::StorageState>>,
}

impl Storage {
    pub fn addr(&self) -> SocketAddr {
        format!("{}:{}", self.ip, self.port).parse().unwrap()
    }

    pub fn config(&self) -> StorageConfig {
        serde_saphyr::from_str(&format!(
            "group: {GROUP}\nlisten: \"{}:{}\"\ntrackers: [\"{}\"]\nstore_paths: [\"{}\"]\n\
             heart_beat_interval: 300ms\nstat_report_interval: 1s\nreserved_storage_space: 1%\n\
             sync:\n  binlog_flush_interval: 100ms\n  retry_backoff_min: 50ms\n  retry_backoff_max: 500ms\n  write_mark_every: 10\n{}",
            self.ip,
            self.port,
            self.tracker,
            self.store.display(),
            self.extra
        ))
        .unwrap()
    }

    pub async fn start(ip: &str, store: PathBuf, tracker: SocketAddr) -> Storage {
        Self::start_with(ip, store, tracker, "").await
    }

    pub async fn start_with(ip: &str, store: PathBuf, tracker: SocketAddr, extra: &str) -> Storage {
        let mut s = Storage {
            ip: ip.into(),
            port: 0,
            store,
            tracker,
            extra: extra.into(),
            stop: CancellationToken::new(),
            task: None,
            state: None,
        };
        s.run().await;
        s
    }

    pub async fn run(&mut self) {
        let server = StorageServer::bind(&self.config(), &self.ip).await.unwrap();
        self.port = server.local_addr().port();
        self.state = Some(server.state());
        self.stop = CancellationToken::new();
        self.task = Some(tokio::spawn(server.serve(self.stop.clone())));
    }

    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    pub fn sync_dir(&self) -> PathBuf {
        self.store.join("data").join("sync")
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Every stored file (data/XX/YY/*, metadata sidecars included) -> its bytes.
pub fn files_on_disk(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let data = store.join("data");
    let Ok(top) = std::fs::read_dir(&data) else {
        return out;
    };
    for a in top.flatten() {
        let an = a.file_name().to_string_lossy().to_string();
        if an.len() != 2 || !a.path().is_dir() {
            continue;
        }
        for b in std::fs::read_dir(a.path()).unwrap().flatten() {
            let bn = b.file_name().to_string_lossy().to_string();
            for f in std::fs::read_dir(b.path()).unwrap().flatten() {
                let fname = f.file_name().to_string_lossy().to_string();
                out.insert(
                    format!("M00/{an}/{bn}/{fname}"),
                    std::fs::read(f.path()).unwrap(),
                );
            }
        }
    }
    out
}

pub async fn wait_for<F: FnMut() -> bool>(what: &str, timeout: Duration, mut cond: F) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn statuses(client: &FdfsClient) -> BTreeMap<u16, u8> {
    client
        .list_storages(GROUP)
        .await
        .map(|l| {
            l.into_iter()
                .map(|s| (s.storage_port as u16, s.status))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn wait_active(client: &FdfsClient, n: usize) {
    let t0 = Instant::now();
    loop {
        let st = statuses(client).await;
        if st
            .values()
            .filter(|s| **s == StorageStatus::Active as u8)
            .count()
            == n
        {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not {n} ACTIVE: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every storage holds exactly `want` (names and bytes).
pub async fn wait_converged(
    stores: &[&Storage],
    want: &BTreeMap<String, Vec<u8>>,
    timeout: Duration,
) {
    let t0 = Instant::now();
    loop {
        let mut ok = true;
        for s in stores {
            let have = files_on_disk(&s.store);
            if &have != want {
                ok = false;
                if t0.elapsed() > timeout {
                    let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
                    let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
                    let differ: Vec<_> = want
                        .iter()
                        .filter(|(k, v)| have.get(*k).is_some_and(|h| h != *v))
                        .map(|(k, _)| k)
                        .collect();
                    panic!(
                        "{}:{} did not converge: missing {missing:?}, extra {extra:?}, differ {differ:?}",
                        s.ip, s.port
                    );
                }
            }
        }
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn bytes(seed: u32, n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

pub async fn three(dir: &Path) -> (Tracker, Vec<Storage>, FdfsClient) {
    let t = start_tracker(dir).await;
    let mut v = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
        v.push(Storage::start(ip, dir.join(format!("s{i}")), t.addr).await);
    }
    let client = FdfsClient::new(vec![t.addr]);
    wait_active(&client, 3).await;
    (t, v, client)
}

/// A tracker and two ACTIVE storages (127.0.0.2, 127.0.0.3) of one group.
pub async fn two(dir: &Path) -> (Tracker, Storage, Storage, FdfsClient) {
    let t = start_tracker(dir).await;
    let client = FdfsClient::new(vec![t.addr]);
    let s1 = Storage::start("127.0.0.2", dir.join("s1"), t.addr).await;
    let s2 = Storage::start("127.0.0.3", dir.join("s2"), t.addr).await;
    wait_active(&client, 2).await;
    (t, s1, s2, client)
}

/// How a stand-in peer answers SYNC_WATERMARK.
#[derive(Clone, Copy, PartialEq)]
pub enum OnWatermark {
    /// Goes away unanswered (closes that connection) the first time one comes after files;
    /// its connections from then on are generation 2, and answer.
    VanishOnceAfterFiles,
    /// EINVAL, as a C FastDFS storage answers a command it does not know.
    Refuse,
    /// EINVAL, then the connection closed (what a C 6.16.1 storage does).
    RefuseAndClose,
}

/// (connection generation, request body) of each SYNC_CREATE_FILE a stand-in received.
pub type CreatesSeen = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

/// Stands in for a group peer on its address: answers every other request with success and
/// keeps the body of every SYNC_CREATE_FILE, with the generation of its connection.
pub struct StandIn {
    pub creates: CreatesSeen,
    pub generation: Arc<AtomicU32>,
    /// SYNC_WATERMARKs received.
    pub watermarks: Arc<AtomicU32>,
    /// Source address of every connection accepted.
    pub sources: Arc<Mutex<Vec<std::net::IpAddr>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    pub async fn start(addr: SocketAddr, on_watermark: OnWatermark) -> StandIn {
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let creates: CreatesSeen = Default::default();
        let generation = Arc::new(AtomicU32::new(1));
        let watermarks = Arc::new(AtomicU32::new(0));
        let sources: Arc<Mutex<Vec<std::net::IpAddr>>> = Default::default();
        let (log, gen) = (creates.clone(), generation.clone());
        let (wm, src) = (watermarks.clone(), sources.clone());
        let task = tokio::spawn(async move {
            loop {
                let (conn, from) = listener.accept().await.unwrap();
                src.lock().unwrap().push(from.ip());
                let mine = gen.load(Ordering::SeqCst);
                tokio::spawn(Self::serve(
                    conn,
                    mine,
                    log.clone(),
                    gen.clone(),
                    wm.clone(),
                    on_watermark,
                ));
            }
        });
        StandIn {
            creates,
            generation,
            watermarks,
            sources,
            task,
        }
    }

    pub async fn serve(
        mut conn: tokio::net::TcpStream,
        mine: u32,
        log: CreatesSeen,
        gen: Arc<AtomicU32>,
        watermarks: Arc<AtomicU32>,
        on_watermark: OnWatermark,
    ) {
        let mut head = [0u8; HEADER_LEN];
        while conn.read_exact(&mut head).await.is_ok() {
            let h = Header::decode(&head).unwrap();
            let mut body = vec![0u8; h.pkg_len as usize];
            if conn.read_exact(&mut body).await.is_err() {
                return;
            }
            let mut status = 0;
            if h.cmd == fdfs_ha::proto::sync::SYNC_WATERMARK {
                watermarks.fetch_add(1, Ordering::SeqCst);
                match on_watermark {
                    OnWatermark::Refuse => status = errno::EINVAL,
                    OnWatermark::RefuseAndClose => {
                        let answer = Header::new(cmd::RESP, errno::EINVAL, 0).encode();
                        let _ = conn.write_all(&answer).await;
                        return;
                    }
                    OnWatermark::VanishOnceAfterFiles
                        if mine == 1 && log.lock().unwrap().iter().any(|(g, _)| *g == 1) =>
                    {
                        gen.store(2, Ordering::SeqCst);
                        return;
                    }
                    OnWatermark::VanishOnceAfterFiles => {}
                }
            }
            if h.cmd == cmd::SYNC_CREATE_FILE {
                log.lock().unwrap().push((mine, body));
            }
            let answer = Header::new(cmd::RESP, status, 0).encode();
            if conn.write_all(&answer).await.is_err() {
                return;
            }
        }
    }

    /// How many times the file `name` was sent on connections of the generations `gens` picks.
    pub fn received(&self, gens: impl Fn(u32) -> bool, name: &str) -> usize {
        let creates = self.creates.lock().unwrap();
        let has = |body: &[u8]| body.windows(name.len()).any(|w| w == name.as_bytes());
        creates.iter().filter(|(g, b)| gens(*g) && has(b)).count()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn upload_some(storage: SocketAddr, n: u32) -> Vec<String> {
    let mut conn = StorageConn::connect(storage).await.unwrap();
    let mut names = Vec::new();
    for i in 0..n {
        let id = conn.upload(0, &bytes(i, 300), "c").await.unwrap().filename;
        names.push(id.rsplit('/').next().unwrap().to_string());
    }
    names
}
