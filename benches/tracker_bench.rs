//! Tracker benchmark (issue 27): how QUERY_STORE_WITHOUT_GROUP_ONE (101) and QUERY_FETCH_ONE
//! (102) hold up as the cluster grows.
//!
//! Per shape (storages / groups) a fresh `fdfs-ha run` tracker process on 127.0.0.1, and a
//! simulator of N storages, each connecting from its own 127.1.x.y address, joining as a C
//! FastDFS 6.16.1 storage (JOIN, version "6.16.1", port 23000), then sending BEAT and
//! REPORT_DISK_USAGE every second (free space moving a little each time, so the tracker's
//! selection indexes see real updates). Once every storage is ACTIVE, a client at c=8 (one
//! connection each) asks 101 for `BENCH_SECS` seconds, then 102 for a file of a rotating group
//! whose source is one of that group's storages (by address) and which was created two days ago
//! (older than storage_sync_file_max_delay, so every ACTIVE storage of the group may serve it
//! and the read round robin runs over all of them).
//!
//! Prints per shape and query: ops/s, p50 and p99 latency, the ratio to the first shape's
//! figure (issue 27.1: within 15 % at every shape), the tracker's CPU (% of one core, over the
//! measurement, and as µs per query), its CPU for the beats alone (2 s before the queries), its
//! RSS, and C FastDFS 6.16.1's figure from issue 27 where there is one.
//!
//! Run: `cargo bench --bench tracker_bench` (env: BENCH_SHAPES=10/5,100/50 picks shapes,
//! default all six; BENCH_SECS=3 seconds per query and shape; BENCH_CONC=8; BENCH_ROUNDS=3
//! runs every shape that many times, interleaved, and ends with each shape's median;
//! BENCH_BIN=path[,path] runs other builds of `fdfs-ha`, each shape with each build in turn,
//! for an A/B in one run; BENCH_PIN=1 puts the client and simulator on CPU 0 and the tracker on
//! CPU 1, which takes the scheduler's migrations out of the figures). The tracker is the
//! bottleneck (it uses ~95 % of one core), so the CPU column is also printed as µs of tracker
//! CPU per query, the steadiest figure when the machine's speed drifts between shapes.
#![allow(clippy::unwrap_used)] // benchmark harness: a failed unwrap is a failed run

#[path = "common/cluster.rs"]
mod cluster;

use cluster::{group_name, shapes_from_env, storage_ip};
use fdfs_ha::clock::unix_now_i64;
use fdfs_ha::proto::cmd;
use fdfs_ha::proto::fileid::{new_name, FileInfo, Source};
use fdfs_ha::proto::tracker::{encode_disk_usage, FileQuery, JoinReq, PathUsage};
use fdfs_ha::proto::Header;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// C FastDFS 6.16.1, issue 27 (measured 2026-12 on this kind of machine, same simulator,
/// c=8, median of 3): (storages, groups) -> (101 ops/s, 102 ops/s).
const C_REFERENCE: &[(usize, usize, f64, f64)] = &[
    (10, 5, 91_587.0, 79_576.0),
    (100, 50, 85_256.0, 76_057.0),
    (500, 250, 86_094.0, 73_206.0),
];

struct Tracker {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by handle
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_tracker(bin: &Path) -> Tracker {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = dir.path().join("tracker.yaml");
    std::fs::write(
        &cfg,
        format!(
            "node: bench-tracker\ndata_dir: {d}/t\nstatus: {{ listen: null }}\ntracker:\n  listen: \"{addr}\"\n  max_connections: 8192\n  max_groups: 4096\n  max_storages_per_group: 1024\n  check_active_interval: 100s\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    if let Some(cpu) = pinned().map(|(_, tracker)| tracker) {
        // SAFETY: between fork and exec the child only makes the sched_setaffinity system
        // call, which is async-signal-safe; nothing is allocated or locked.
        unsafe {
            cmd.pre_exec(move || pin_to(cpu).map_err(std::io::Error::from));
        }
    }
    let child = cmd
        .args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("tracker.log")).unwrap())
        .spawn()
        .expect("start fdfs-ha");
    Tracker {
        child,
        addr,
        _dir: dir,
    }
}

async fn call(s: &mut TcpStream, cmd: u8, body: &[u8]) -> std::io::Result<(u8, Vec<u8>)> {
    let mut msg = Header::new(cmd, 0, body.len() as u64).encode().to_vec();
    msg.extend_from_slice(body);
    s.write_all(&msg).await?;
    let mut h = [0u8; 10];
    s.read_exact(&mut h).await?;
    let h = Header::decode(&h).map_err(std::io::Error::other)?;
    let mut reply = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut reply).await?;
    Ok((h.status, reply))
}

/// One simulated storage: JOIN, then BEAT + REPORT_DISK_USAGE every second until `stop`.
async fn storage(
    i: usize,
    groups: usize,
    tracker: SocketAddr,
    joined: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((storage_ip(i), 0))).unwrap();
    let mut s = sock.connect(tracker).await.unwrap();
    let now = unix_now_i64();
    let join = JoinReq {
        join_time: now,
        up_time: now,
        current_tracker_ip: tracker.ip().to_string(),
        trackers: vec![tracker.to_string()],
        ..JoinReq::c_storage(&group_name(i % groups), 23000)
    };
    let (status, _) = call(&mut s, cmd::STORAGE_JOIN, &join.encode())
        .await
        .unwrap();
    assert_eq!(status, 0, "JOIN of storage {i} refused");
    joined.fetch_add(1, Ordering::Relaxed);
    // Spread the beats over the second, as independent storages would.
    tokio::time::sleep(Duration::from_millis((i * 7919 % 1000) as u64)).await;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        call(&mut s, cmd::STORAGE_BEAT, &[]).await.unwrap();
        n += 1;
        let usage = [PathUsage {
            total_mb: 1_000_000,
            free_mb: 500_000 + (i as u64 * 13 + n) % 1000,
        }];
        call(
            &mut s,
            cmd::STORAGE_REPORT_DISK_USAGE,
            &encode_disk_usage(&usage),
        )
        .await
        .unwrap();
    }
}

/// The 102 request for client request `k`: a two-day-old file of group `k % groups` whose
/// source is that group's first storage (by address).
fn fetch_body(k: usize, groups: usize) -> Vec<u8> {
    let g = k % groups;
    let info = FileInfo {
        source: Source::Ip(storage_ip(g)),
        create_time: (unix_now_i64() - 2 * 86400) as u32,
        size_field: FileInfo::size_field_for(1024, false, 7),
        crc32: 1,
    };
    FileQuery {
        group: group_name(g),
        filename: format!("M00/00/00/{}", new_name(&info, "txt", k as u32)),
    }
    .encode()
}

struct Run {
    ops_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_pct: f64,
    rss_kib: u64,
    join_s: f64,
    /// Tracker CPU (% of one core) with only the storages' beats and reports, no queries.
    beats_cpu_pct: f64,
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// VmRSS and VmHWM of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn measure(
    tracker: SocketAddr,
    pid: u32,
    cmd: u8,
    groups: usize,
    conc: usize,
    secs: f64,
) -> Run {
    let ticks = cpu_ticks(pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for t in 0..conc {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(tracker).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut lat = Vec::new();
            let mut k = t;
            while Instant::now() < deadline {
                let body = if cmd == cmd::SERVICE_QUERY_FETCH_ONE {
                    fetch_body(k, groups)
                } else {
                    Vec::new()
                };
                let t0 = Instant::now();
                let (status, _) = call(&mut s, cmd, &body).await.unwrap();
                lat.push(t0.elapsed().as_nanos() as u64);
                assert_eq!(status, 0, "query {cmd} failed with {status}");
                k += conc;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - ticks) as f64 / 100.0 / elapsed * 100.0;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    Run {
        ops_s: lat.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_pct: cpu,
        rss_kib: 0,
        join_s: 0.0,
        beats_cpu_pct: 0.0,
    }
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measured row: which round, build and shape, and the two queries' runs.
struct Row {
    bin: usize,
    shape: (usize, usize),
    runs: Vec<(&'static str, Run)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Starts build `bins[b]`'s tracker, joins `n` simulated storages in `groups` groups, measures
/// 101 and 102.
async fn measure_shape(
    bins: &[PathBuf],
    b: usize,
    shape: (usize, usize),
    conc: usize,
    secs: f64,
) -> Row {
    let (n, groups) = shape;
    let tracker = start_tracker(&bins[b]);
    let pid = tracker.child.id();
    // Wait for the listener.
    let t0 = Instant::now();
    while TcpStream::connect(tracker.addr).await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "tracker did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let sims: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(storage(
                i,
                groups,
                tracker.addr,
                joined.clone(),
                stop.clone(),
            ))
        })
        .collect();
    while joined.load(Ordering::Relaxed) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "storages did not join in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let join_s = start.elapsed().as_secs_f64();
    // Every storage beats within a second of joining: then all are ACTIVE.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // What the beats and disk reports alone cost the tracker, before any query.
    let ticks = cpu_ticks(pid);
    let idle_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let beats_cpu_pct =
        (cpu_ticks(pid) - ticks) as f64 / 100.0 / idle_from.elapsed().as_secs_f64() * 100.0;
    let mut runs = Vec::new();
    for (label, cmd) in [
        ("101", cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE),
        ("102", cmd::SERVICE_QUERY_FETCH_ONE),
    ] {
        let mut r = measure(tracker.addr, pid, cmd, groups, conc, secs).await;
        r.rss_kib = rss_kib(pid).0;
        r.join_s = join_s;
        r.beats_cpu_pct = beats_cpu_pct;
        runs.push((label, r));
    }
    stop.store(true, Ordering::Relaxed);
    for s in sims {
        s.abort();
    }
    drop(tracker);
    Row {
        bin: b,
        shape,
        runs,
    }
}

fn c_figure(shape: (usize, usize), query: usize) -> Option<f64> {
    C_REFERENCE
        .iter()
        .find(|c| c.0 == shape.0 && c.1 == shape.1)
        .map(|c| if query == 0 { c.2 } else { c.3 })
}

fn print_header() {
    println!(
        "{:>4} {:>13} {:>5} {:>9} {:>8} {:>8} {:>7} {:>6} {:>7} {:>6} {:>9} {:>7} {:>8} {:>7}",
        "bin",
        "storages/grp",
        "query",
        "ops/s",
        "p50 us",
        "p99 us",
        "vs 1st",
        "CPU %",
        "us/op",
        "beats%",
        "RSS KiB",
        "join s",
        "C ops/s",
        "vs C"
    );
}

/// Prints `row`; `base` is the same build's first shape (ops/s of 101, 102).
fn print_row(row: &Row, base: (f64, f64)) {
    for (i, (label, r)) in row.runs.iter().enumerate() {
        let b = if i == 0 { base.0 } else { base.1 };
        let c = c_figure(row.shape, i);
        println!(
            "{:>4} {:>13} {:>5} {:>9.0} {:>8.1} {:>8.1} {:>6.2}x {:>6.0} {:>7.2} {:>6.1} {:>9} {:>7.2} {:>8} {:>7}",
            row.bin,
            format!("{}/{}", row.shape.0, row.shape.1),
            label,
            r.ops_s,
            r.p50_us,
            r.p99_us,
            r.ops_s / b,
            r.cpu_pct,
            r.cpu_pct / 100.0 * 1e6 / r.ops_s,
            r.beats_cpu_pct,
            r.rss_kib,
            r.join_s,
            c.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into()),
            c.map(|c| format!("{:.2}x", r.ops_s / c))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

/// Per build and shape: the median ops/s and µs of tracker CPU per op over the rounds, and the
/// ratio of the median to the first shape's median.
fn print_medians(rows: &[Row], bins: &[PathBuf], shapes: &[(usize, usize)]) {
    println!("medians over the rounds (each round's figures above):");
    for (b, path) in bins.iter().enumerate() {
        println!("bin {b}: {}", path.display());
        // (shape, query) -> (median ops/s, each round's ops/s, median us CPU per op)
        let stats = |shape: (usize, usize), q: usize| {
            let runs: Vec<&Run> = rows
                .iter()
                .filter(|r| r.bin == b && r.shape == shape)
                .map(|r| &r.runs[q].1)
                .collect();
            let each: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.ops_s)).collect();
            let us = median(
                runs.iter()
                    .map(|r| r.cpu_pct / 100.0 * 1e6 / r.ops_s)
                    .collect(),
            );
            (median(runs.iter().map(|r| r.ops_s).collect()), each, us)
        };
        let base = [stats(shapes[0], 0).0, stats(shapes[0], 1).0];
        for &shape in shapes {
            let mut line = format!("{:>13}", format!("{}/{}", shape.0, shape.1));
            for (q, base) in base.iter().enumerate() {
                let (ops, each, us) = stats(shape, q);
                let c = c_figure(shape, q)
                    .map(|c| format!(", {:.2}x C", ops / c))
                    .unwrap_or_default();
                line += &format!(
                    "  {}: {ops:>7.0} ops/s ({}) {:.2}x{c}, {us:.2} us CPU/op",
                    ["101", "102"][q],
                    each.join(" "),
                    ops / base,
                );
            }
            println!("{line}");
        }
    }
}

/// `BENCH_PIN=1`: the CPUs of (this bench, the tracker), when the machine has two to give.
/// Decided once, before the pinning narrows what `available_parallelism` sees.
fn pinned() -> Option<(usize, usize)> {
    static PINNED: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *PINNED.get_or_init(|| {
        let wanted = std::env::var("BENCH_PIN").is_ok_and(|v| v == "1");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (wanted && cpus >= 2).then_some((0, 1))
    })
}

fn pin_to(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here
    }
    // Pinned before the runtime starts, so its threads inherit the CPU.
    if let Some((bench, _)) = pinned() {
        pin_to(bench).expect("BENCH_PIN: sched_setaffinity");
    }
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(run());
}

async fn run() {
    let bins: Vec<PathBuf> = match std::env::var("BENCH_BIN") {
        Ok(v) => v.split(',').map(PathBuf::from).collect(),
        Err(_) => vec![PathBuf::from(env!("CARGO_BIN_EXE_fdfs-ha"))],
    };
    let secs = env_num("BENCH_SECS", 3.0);
    let conc = env_num("BENCH_CONC", 8.0) as usize;
    let rounds = env_num("BENCH_ROUNDS", 1.0).max(1.0) as usize;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "tracker_bench: c={conc}, {secs} s per query and shape, {rounds} round(s); load average at start: {}",
        load.trim()
    );
    for (i, b) in bins.iter().enumerate() {
        println!("bin {i}: {}", b.display());
    }
    match pinned() {
        Some((bench, tracker)) => {
            println!("pinned: client and simulator on CPU {bench}, tracker on CPU {tracker}")
        }
        None => println!("not pinned (BENCH_PIN=1 pins on a machine with 2 or more CPUs)"),
    }
    print_header();
    let shapes = shapes_from_env();
    let mut rows: Vec<Row> = Vec::new();
    for _ in 0..rounds {
        for &shape in &shapes {
            for b in 0..bins.len() {
                let row = measure_shape(&bins, b, shape, conc, secs).await;
                // Ratios are to this build's first row.
                let first = rows.iter().find(|r| r.bin == b).unwrap_or(&row);
                print_row(&row, (first.runs[0].1.ops_s, first.runs[1].1.ops_s));
                rows.push(row);
            }
        }
    }
    if rounds > 1 || bins.len() > 1 {
        print_medians(&rows, &bins, &shapes);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
