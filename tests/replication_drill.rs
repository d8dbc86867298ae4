//! Replication drill (issue 5, point 5) with the real binary: `fdfs-ha run -c` processes for one
//! tracker (127.0.0.1) and storages on 127.0.0.2, .3, .4 (+ .5 added at the end), all in one
//! group. Uploads FDFS_HA_DRILL_SMALL small files (default 10000, 1-8 KiB) and FDFS_HA_DRILL_BIG
//! files of FDFS_HA_DRILL_BIG_MB MiB (default 20 x 16) to the first storage, `kill -9`s the third
//! one in the middle and restarts it, then adds a fourth, empty storage. Afterwards every
//! storage must hold exactly the uploaded files (names, sizes, crc32 of the bytes on disk; no
//! extra files). Prints the replication throughput and the lag at the end of the upload.
//!
//! Run: `cargo test --test replication_drill` (also part of `cargo test --all-targets`).
//! Processes are killed by PID when the drill ends, also on failure (Drop guard).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::client::FdfsClient;
use fdfs_ha::proto::tracker::StorageStatus;
use rand::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GROUP: &str = "group1";
/// Longest wait for the group to converge after the upload / after adding the fourth storage.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running `fdfs-ha run -c` process; killed (SIGKILL, by PID) when dropped.
struct Proc {
    name: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(name: &str, config: PathBuf, log: PathBuf) -> Proc {
        let mut p = Proc {
            name: name.into(),
            config,
            log,
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
            .args(["run", "-c"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// `kill -9` by PID.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    ip: String,
    port: u16,
    store: PathBuf,
    proc: Proc,
}

impl Node {
    fn addr(&self) -> SocketAddr {
        format!("{}:{}", self.ip, self.port).parse().unwrap()
    }
}

fn start_storage(dir: &Path, ip: &str, tracker: SocketAddr) -> Node {
    let port = free_port(ip);
    let base = dir.join(ip);
    std::fs::create_dir_all(&base).unwrap();
    let store = base.join("store");
    let config = base.join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "node: storage-{ip}\ndata_dir: {d}/state\nstatus:\n  listen: null\nstorage:\n  group: {GROUP}\n  listen: \"{ip}:{port}\"\n  trackers: [\"{tracker}\"]\n  store_paths: [\"{s}\"]\n  heart_beat_interval: 500ms\n  stat_report_interval: 2s\n  reserved_storage_space: 1%\n  sync:\n    retry_backoff_min: 100ms\n    retry_backoff_max: 2s\n",
            d = base.display(),
            s = store.display()
        ),
    )
    .unwrap();
    let proc = Proc::start(&format!("storage {ip}"), config, base.join("log.txt"));
    Node {
        ip: ip.into(),
        port,
        store,
        proc,
    }
}

/// name (M00/XX/YY/file) -> (size, crc32) of every file under data/XX/YY.
fn listing(store: &Path) -> BTreeMap<String, (u64, u32)> {
    let mut out = BTreeMap::new();
    let Ok(top) = std::fs::read_dir(store.join("data")) else {
        return out;
    };
    for a in top.flatten() {
        let an = a.file_name().to_string_lossy().to_string();
        if an.len() != 2 || !a.path().is_dir() {
            continue;
        }
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            let bn = b.file_name().to_string_lossy().to_string();
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                let fname = f.file_name().to_string_lossy().to_string();
                let Ok(bytes) = std::fs::read(f.path()) else {
                    continue;
                };
                out.insert(
                    format!("M00/{an}/{bn}/{fname}"),
                    (bytes.len() as u64, crc32fast::hash(&bytes)),
                );
            }
        }
    }
    out
}

/// Cheap check before the full crc comparison: same names and sizes.
fn names_and_sizes(store: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(top) = std::fs::read_dir(store.join("data")) else {
        return out;
    };
    for a in top.flatten() {
        let an = a.file_name().to_string_lossy().to_string();
        if an.len() != 2 {
            continue;
        }
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            let bn = b.file_name().to_string_lossy().to_string();
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                let size = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
                out.insert(
                    format!("M00/{an}/{bn}/{}", f.file_name().to_string_lossy()),
                    size,
                );
            }
        }
    }
    out
}

async fn statuses(client: &FdfsClient) -> BTreeMap<String, u8> {
    client
        .list_storages(GROUP)
        .await
        .map(|l| {
            l.into_iter()
                .map(|s| (format!("{}:{}", s.ip, s.storage_port), s.status))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_active(client: &FdfsClient, nodes: &[&Node], timeout: Duration) {
    let t0 = Instant::now();
    loop {
        let st = statuses(client).await;
        if nodes
            .iter()
            .all(|n| st.get(&n.addr().to_string()) == Some(&(StorageStatus::Active as u8)))
        {
            return;
        }
        assert!(t0.elapsed() < timeout, "storages not ACTIVE: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Expected = Arc<Mutex<BTreeMap<String, (u64, u32)>>>;

async fn upload_worker(
    addr: SocketAddr,
    jobs: Arc<Mutex<std::vec::IntoIter<(u64, usize)>>>,
    expected: Expected,
    done: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut conn = StorageConn::connect(addr).await.unwrap();
    loop {
        let job = jobs.lock().unwrap().next();
        let Some((seed, size)) = job else { return };
        let mut data = vec![0u8; size];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
        let crc = crc32fast::hash(&data);
        let name = conn.upload(0, &data, "bin").await.unwrap().filename;
        expected.lock().unwrap().insert(name, (size as u64, crc));
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Waits until every node lists exactly `want` (names and sizes), then checks crc32s.
/// Returns when each node converged (seconds since `t0`).
async fn converge(nodes: &[&Node], want: &BTreeMap<String, (u64, u32)>, t0: Instant) -> Vec<f64> {
    let sizes: BTreeMap<String, u64> = want.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let mut when = vec![None; nodes.len()];
    let start = Instant::now();
    while when.iter().any(Option::is_none) {
        for (i, n) in nodes.iter().enumerate() {
            if when[i].is_none() && names_and_sizes(&n.store) == sizes {
                when[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        if start.elapsed() > CONVERGE_TIMEOUT {
            for n in nodes {
                let have = names_and_sizes(&n.store);
                let missing = sizes.keys().filter(|k| !have.contains_key(*k)).count();
                let extra: Vec<_> = have.keys().filter(|k| !sizes.contains_key(*k)).collect();
                eprintln!(
                    "{}: {} files, {missing} missing, extra {extra:?}",
                    n.ip,
                    have.len()
                );
            }
            panic!("the group did not converge in {CONVERGE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for n in nodes {
        let have = listing(&n.store);
        assert_eq!(have.len(), want.len(), "{}", n.ip);
        for (k, v) in want {
            assert_eq!(have.get(k), Some(v), "{} {k}: size/crc32 differ", n.ip);
        }
    }
    when.into_iter().map(|w| w.unwrap_or_default()).collect()
}

fn main() {
    // `cargo test <filter>`: run only when the filter names this drill (or there is none).
    let mut filters: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--skip" => {
                if args
                    .next()
                    .is_some_and(|s| "replication_drill".contains(s.as_str()))
                {
                    return;
                }
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a),
        }
    }
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "replication_drill".contains(f.as_str()))
    {
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("replication_drill: test");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drill());
    println!("test result: ok. replication drill passed");
}

async fn drill() {
    let n_small = knob("FDFS_HA_DRILL_SMALL", 10_000);
    let n_big = knob("FDFS_HA_DRILL_BIG", 20);
    let big_mb = knob("FDFS_HA_DRILL_BIG_MB", 16);
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var("FDFS_HA_DRILL_KEEP").is_ok();
    let t_all = Instant::now();

    let tport = free_port("127.0.0.1");
    let tracker: SocketAddr = format!("127.0.0.1:{tport}").parse().unwrap();
    let tcfg = dir.path().join("tracker.yaml");
    std::fs::write(
        &tcfg,
        format!(
            "node: tracker\ndata_dir: {d}/tracker\nstatus:\n  listen: null\ntracker:\n  listen: \"{tracker}\"\n  reserved_storage_space: 1%\n  check_active_interval: 5s\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let _tracker = Proc::start("tracker", tcfg, dir.path().join("tracker.log"));
    let client = FdfsClient::new(vec![tracker]);
    let s1 = start_storage(dir.path(), "127.0.0.2", tracker);
    let s2 = start_storage(dir.path(), "127.0.0.3", tracker);
    let mut s3 = start_storage(dir.path(), "127.0.0.4", tracker);
    wait_active(&client, &[&s1, &s2, &s3], Duration::from_secs(30)).await;
    println!(
        "drill: 3 storages ACTIVE after {:.1}s; uploading {n_small} small + {n_big} x {big_mb} MiB to {}",
        t_all.elapsed().as_secs_f64(),
        s1.addr()
    );

    // Jobs: small files with the big ones spread among them.
    let mut jobs: Vec<(u64, usize)> = (0..n_small as u64)
        .map(|i| (i, 1024 + (i as usize * 7919) % (7 * 1024)))
        .collect();
    for b in 0..n_big {
        let at = (b + 1) * jobs.len() / (n_big + 1);
        jobs.insert(at, (1_000_000 + b as u64, big_mb << 20));
    }
    let total_files = jobs.len();
    let total_bytes: u64 = jobs.iter().map(|j| j.1 as u64).sum();
    let jobs = Arc::new(Mutex::new(jobs.into_iter()));
    let expected: Expected = Arc::new(Mutex::new(BTreeMap::new()));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t_up = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(upload_worker(
                s1.addr(),
                jobs.clone(),
                expected.clone(),
                done.clone(),
            ))
        })
        .collect();

    // kill -9 the third storage at 40 % of the upload, restart it at 60 %.
    let progress = || done.load(std::sync::atomic::Ordering::Relaxed);
    while progress() < total_files * 2 / 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s3.proc.kill9();
    println!(
        "drill: kill -9 {} at {} files ({:.1}s into the upload)",
        s3.ip,
        progress(),
        t_up.elapsed().as_secs_f64()
    );
    while progress() < total_files * 3 / 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s3.proc.spawn();
    println!(
        "drill: restarted {} at {} files ({:.1}s)",
        s3.ip,
        progress(),
        t_up.elapsed().as_secs_f64()
    );
    for w in workers {
        w.await.unwrap();
    }
    let up_secs = t_up.elapsed().as_secs_f64();
    let mb = total_bytes as f64 / (1 << 20) as f64;
    println!(
        "drill: upload done: {total_files} files, {mb:.0} MiB in {up_secs:.1}s ({:.0} files/s, {:.1} MB/s)",
        total_files as f64 / up_secs,
        mb / up_secs
    );

    // Lag at the end of the upload, as the source sees it.
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let report = c1.sync_status().await.unwrap();
    for p in &report.peers {
        println!(
            "drill: lag at end of upload: {} -> {}: {} records / {} bytes / {} s behind ({})",
            s1.ip, p.peer, p.records_behind, p.bytes_behind, p.seconds_behind, p.state
        );
    }

    let want = expected.lock().unwrap().clone();
    assert_eq!(want.len(), total_files, "every upload acknowledged once");
    let when = converge(&[&s1, &s2, &s3], &want, t_up).await;
    println!(
        "drill: converged: {} at {:.1}s, {} (never stopped) at {:.1}s, {} (killed) at {:.1}s after the upload started",
        s1.ip, when[0], s2.ip, when[1], s3.ip, when[2]
    );
    println!(
        "drill: replication to {} (upload start to convergence): {:.0} files/s, {:.1} MB/s",
        s2.ip,
        total_files as f64 / when[1],
        mb / when[1]
    );
    if let Some(p) = report.peers.iter().find(|p| p.peer.starts_with(&s2.ip)) {
        let drain = (when[1] - up_secs).max(0.001);
        println!(
            "drill: {} drained its end-of-upload lag of {} records in {drain:.1}s ({:.0} records/s)",
            s2.ip,
            p.records_behind,
            p.records_behind as f64 / drain
        );
    }

    // A fourth, empty storage: full copy from a member, ACTIVE only when done.
    let t_new = Instant::now();
    let s4 = start_storage(dir.path(), "127.0.0.5", tracker);
    let mut seen = Vec::new();
    loop {
        let st = statuses(&client).await.get(&s4.addr().to_string()).copied();
        if let Some(v) = st {
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            if v == StorageStatus::Active as u8 {
                let have = names_and_sizes(&s4.store);
                assert_eq!(
                    have.len(),
                    want.len(),
                    "ACTIVE before its copy was complete"
                );
                break;
            }
        }
        assert!(
            t_new.elapsed() < CONVERGE_TIMEOUT,
            "4th storage not ACTIVE; statuses {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let when4 = converge(&[&s1, &s2, &s3, &s4], &want, t_new).await;
    let names: Vec<&str> = seen
        .iter()
        .filter_map(|v| StorageStatus::from_u8(*v).map(|s| s.name()))
        .collect();
    println!(
        "drill: 4th storage statuses {names:?}; full copy of {total_files} files / {mb:.0} MiB in {:.1}s ({:.0} files/s, {:.1} MB/s)",
        when4[3],
        total_files as f64 / when4[3],
        mb / when4[3]
    );
    println!(
        "drill: all 4 storages hold exactly the {total_files} uploaded files (names, sizes, crc32); total {:.1}s",
        t_all.elapsed().as_secs_f64()
    );
    if keep {
        println!("drill: kept {}", dir.keep().display());
    }
}
