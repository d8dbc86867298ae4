//! Catch-up benchmark (issue 27.2): a new storage joining a group copies the old data from its
//! sync source; how fast, and how much memory the receiving storage needs for it.
//!
//! `fdfs-ha run` processes: a tracker on 127.0.0.1, storage A on 127.0.0.2, both of group1.
//! CATCHUP_FILES files of CATCHUP_SIZE bytes are uploaded to A (c=8); then storage B starts
//! empty on 127.0.0.3, gets A as its sync source and receives every file. Done when A's sender
//! to B has nothing behind and the tracker lists B ACTIVE. Prints files/s, MB/s (from B's start
//! to done) and B's peak RSS (VmHWM, sampled also during the copy), with C FastDFS 6.16.1's
//! figures from issue 27 for the two reference sizes.
//!
//! Run: `cargo bench --bench catchup_bench` (env: CATCHUP_FILES=2000, CATCHUP_SIZE=1024 bytes
//! (also 1K / 1M), CATCHUP_FSYNC=on|off, CATCHUP_BIN=path of another fdfs-ha build; the
//! issue's runs: 300000 x 1K and 3000 x 1M).
#![allow(clippy::unwrap_used)] // benchmark harness: a failed unwrap is a failed run

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::client::FdfsClient;
use fdfs_ha::proto::tracker::StorageStatus;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GROUP: &str = "group1";

/// C FastDFS 6.16.1, issue 27 (measured 2026-12 on this kind of machine): receiver RSS.
const C_REFERENCE: &[(usize, usize, &str)] = &[
    (300_000, 1024, "C 6.16.1: receiver RSS 3.5 MiB"),
    (3_000, 1 << 20, "C 6.16.1: receiver RSS 4 MiB"),
];

/// A running `fdfs-ha run -c` process, killed by its handle when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &Path, config: &Path, log: &Path) -> Proc {
    Proc(
        Command::new(bin)
            .args(["run", "-c"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start fdfs-ha"),
    )
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn storage_config(dir: &Path, ip: &str, port: u16, tracker: SocketAddr, fsync: bool) -> PathBuf {
    let base = dir.join(ip);
    std::fs::create_dir_all(&base).unwrap();
    let config = base.join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "node: storage-{ip}\ndata_dir: {d}/state\nstatus:\n  listen: null\nstorage:\n  group: {GROUP}\n  listen: \"{ip}:{port}\"\n  trackers: [\"{tracker}\"]\n  store_paths: [\"{d}/store\"]\n  heart_beat_interval: 500ms\n  stat_report_interval: 2s\n  reserved_storage_space: 1%\n  fsync: {fsync}\n  sync:\n    retry_backoff_min: 100ms\n    retry_backoff_max: 2s\n",
            d = base.display(),
        ),
    )
    .unwrap();
    config
}

fn size_env(name: &str, default: usize) -> usize {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    let v = v.trim();
    let (num, mult) = match v.chars().last() {
        Some('K' | 'k') => (&v[..v.len() - 1], 1 << 10),
        Some('M' | 'm') => (&v[..v.len() - 1], 1 << 20),
        _ => (v, 1),
    };
    num.parse::<usize>().expect(name) * mult
}

/// (VmRSS, VmHWM, RssAnon) of `pid` in KiB.
fn rss_kib(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

async fn status_of(client: &FdfsClient, addr: SocketAddr) -> Option<u8> {
    let list = client.list_storages(GROUP).await.ok()?;
    list.into_iter()
        .find(|s| s.ip == addr.ip().to_string() && s.storage_port == addr.port() as i64)
        .map(|s| s.status)
}

async fn wait_status(client: &FdfsClient, addr: SocketAddr, want: StorageStatus, limit: Duration) {
    let t0 = Instant::now();
    while status_of(client, addr).await != Some(want as u8) {
        assert!(t0.elapsed() < limit, "{addr} not {want:?} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether A has sent B everything (its sender to B reports nothing behind).
async fn a_caught_up(a: SocketAddr, b: SocketAddr) -> bool {
    let Ok(mut c) = StorageConn::connect(a).await else {
        return false;
    };
    let Ok(report) = c.sync_status().await else {
        return false;
    };
    let b_ip = b.ip().to_string();
    report
        .peers
        .iter()
        .any(|p| p.peer.contains(&b_ip) && p.bytes_behind == 0 && p.records_behind == 0)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let files = size_env("CATCHUP_FILES", 2000);
    let size = size_env("CATCHUP_SIZE", 1024);
    let fsync = std::env::var("CATCHUP_FSYNC").map_or(true, |v| v != "off");
    // CATCHUP_BIN: another build of fdfs-ha (a release build's figures with a deb-ci driver).
    let bin = std::env::var_os("CATCHUP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fdfs-ha")));
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "catchup_bench: {files} files of {size} bytes, fsync {}; load average at start: {}",
        if fsync { "on" } else { "off" },
        load.trim()
    );

    let tracker: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1"))
        .parse()
        .unwrap();
    let tcfg = dir.path().join("tracker.yaml");
    std::fs::write(
        &tcfg,
        format!(
            "node: bench-tracker\ndata_dir: {d}/t\nstatus: {{ listen: null }}\ntracker:\n  listen: \"{tracker}\"\n  reserved_storage_space: 1%\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let _t = spawn(&bin, &tcfg, &dir.path().join("tracker.log"));
    let a: SocketAddr = format!("127.0.0.2:{}", free_port("127.0.0.2"))
        .parse()
        .unwrap();
    let acfg = storage_config(dir.path(), "127.0.0.2", a.port(), tracker, fsync);
    let _a = spawn(&bin, &acfg, &dir.path().join("a.log"));
    let client = FdfsClient::new(vec![tracker]);
    wait_status(&client, a, StorageStatus::Active, Duration::from_secs(30)).await;

    // Upload to A at c=8.
    let t_up = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = StorageConn::connect(a).await.unwrap();
            let mut data = vec![0u8; size];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return;
                }
                data[..8.min(size)].copy_from_slice(&(i as u64).to_le_bytes()[..8.min(size)]);
                conn.upload(0, &data, "bin").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("uploaded to A in {:.1} s", t_up.elapsed().as_secs_f64());

    // B joins empty and copies everything from A.
    let b: SocketAddr = format!("127.0.0.3:{}", free_port("127.0.0.3"))
        .parse()
        .unwrap();
    let bcfg = storage_config(dir.path(), "127.0.0.3", b.port(), tracker, fsync);
    let t0 = Instant::now();
    let b_proc = spawn(&bin, &bcfg, &dir.path().join("b.log"));
    let pid = b_proc.0.id();
    let (mut peak, mut peak_anon) = (0, 0);
    let limit = Duration::from_secs(3600);
    loop {
        let (now, _, anon) = rss_kib(pid);
        peak = peak.max(now);
        peak_anon = peak_anon.max(anon);
        if a_caught_up(a, b).await
            && status_of(&client, b).await == Some(StorageStatus::Active as u8)
        {
            break;
        }
        assert!(t0.elapsed() < limit, "B did not catch up in {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (rss, hwm, _) = rss_kib(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let detail: Vec<&str> = status
        .lines()
        .filter(|l| {
            l.starts_with("RssAnon") || l.starts_with("RssFile") || l.starts_with("Threads")
        })
        .collect();
    let peak = peak.max(hwm);
    println!(
        "catch-up: {secs:.2} s, {:.0} files/s, {:.1} MB/s; receiver peak RSS {:.1} MiB (now {:.1} MiB; anonymous peak {:.1} MiB, sampled)",
        files as f64 / secs,
        (files * size) as f64 / secs / 1e6,
        peak as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak_anon as f64 / 1024.0
    );
    println!(
        "receiver at the end: {}",
        detail.join(", ").replace('\t', " ")
    );
    if let Some(c) = C_REFERENCE.iter().find(|c| c.0 == files && c.1 == size) {
        println!("reference (issue 27, 2026-12): {}", c.2);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
