//! HTTP benchmark: fdfs-ha storage http and gateway (cache hits) against Debian's nginx serving
//! the same files statically (`root` + `sendfile on`), in one run, same worker count, same CPUs.
//!
//! ```text
//!  http_bench            prepares a store (4 KiB + 1 MiB files), starts
//!   ├─ taskset -c <server cpus> http_bench serve ...   (storage http + gateway, W tokio workers)
//!   ├─ taskset -c <server cpus> nginx (W worker processes, daemon off; we kill its master PID)
//!   └─ taskset -c <wrk cpus> wrk -t1 -c<conns> -d<secs>  per row, ours then nginx
//! ```
//! Prints req/s, MB/s and the ratio to nginx per row. See benches/HTTP.md.
//! Usage: `cargo build --release && target/release/http_bench [--workers 1] [--server-cpus 1]
//!         [--wrk-cpus 0] [--connections 32,256] [--duration 5] [--rounds 3]`

use fdfs_ha::config::{GatewayConfig, StorageConfig};
use fdfs_ha::gateway::directory::{ClusterView, MemoryDirectory, StorageNode};
use fdfs_ha::gateway::Gateway;
use fdfs_ha::proto::fileid::{new_name, FileInfo, Source};
use fdfs_ha::storage::http::StorageHttp;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Opts {
    workers: usize,
    server_cpus: String,
    wrk_cpus: String,
    /// One table per entry (`--connections 32,256`).
    connections: Vec<usize>,
    duration: u64,
    rounds: usize,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let store = PathBuf::from(arg(&args, "--store").unwrap_or_default());
        let workers: usize = arg(&args, "--workers")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        return serve(&store, workers);
    }
    let opts = Opts {
        workers: arg(&args, "--workers")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
        server_cpus: arg(&args, "--server-cpus").unwrap_or_else(|| "1".into()),
        wrk_cpus: arg(&args, "--wrk-cpus").unwrap_or_else(|| "0".into()),
        connections: arg(&args, "--connections")
            .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![32]),
        duration: arg(&args, "--duration")
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
        rounds: arg(&args, "--rounds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    };
    run(&opts)
}

/// Child mode: storage http + gateway on 127.0.0.1, ports on stdout, exit on stdin EOF.
fn serve(store: &Path, workers: usize) -> anyhow::Result<()> {
    // FDFS_BENCH_RUNTIME=current: a single-threaded runtime (only with --workers 1).
    let rt = if std::env::var("FDFS_BENCH_RUNTIME").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    rt.block_on(async {
        let scfg: StorageConfig = serde_saphyr::from_str(&format!(
            "group: group1\nlisten: 127.0.0.1:0\ntrackers: []\nstore_paths: [{}]\nhttp:\n  listen: 127.0.0.1:0\n  max_connections: 4096\n",
            store.display()
        ))?;
        let storage = StorageHttp::bind(&scfg, "bench").await?;
        let saddr = storage.local_addr();
        let gcfg: GatewayConfig = serde_saphyr::from_str(&format!(
            "listen: 127.0.0.1:0\ntrackers: []\nmax_connections: 4096\nexpires: 30d\ncache:\n  path: {}\n  max_size: 1GiB\n",
            store.join("../gw-cache").display()
        ))?;
        let view = ClusterView {
            groups: BTreeMap::from([(
                "group1".to_string(),
                vec![StorageNode {
                    id: "bench".into(),
                    ip: saddr.ip(),
                    port: 23000,
                    http_port: saddr.port(),
                }],
            )]),
        };
        let gw = Gateway::bind_with_directory(
            &gcfg,
            &store.join(".."),
            Arc::new(MemoryDirectory::new(view)),
        )
        .await?;
        let gaddr = gw.local_addr();
        let stop = tokio_util::sync::CancellationToken::new();
        let t1 = tokio::spawn(storage.serve(stop.clone()));
        let t2 = tokio::spawn(gw.serve(stop.clone()));
        println!("READY {} {}", saddr.port(), gaddr.port());
        std::io::stdout().flush()?;
        // Parent closes our stdin to stop us.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        stop.cancel();
        let _ = t1.await;
        let _ = t2.await;
        anyhow::Ok(())
    })
}

fn make_file(store: &Path, size: usize, ext: &str) -> anyhow::Result<String> {
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let info = FileInfo {
        source: Source::Ip(Ipv4Addr::LOCALHOST),
        create_time: 1_800_000_000,
        size_field: FileInfo::size_field_for(size as u64, false, 7),
        crc32: crc32fast::hash(&content),
    };
    let name = new_name(&info, ext, 1234);
    let dir = store.join("data/0A/0B");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(&name), &content)?;
    Ok(format!("/group1/M00/0A/0B/{name}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn http_get_status(port: u16, path: &str) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let line = String::from_utf8_lossy(&buf[..buf.len().min(20)]).to_string();
    Ok(line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

#[derive(Clone, Copy, Default)]
struct WrkResult {
    rps: f64,
    mb_s: f64,
    /// 99th percentile latency in ms (wrk --latency).
    p99_ms: f64,
}

fn parse_transfer(s: &str) -> f64 {
    // wrk prints e.g. "1.23GB" with 1024-based units.
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let n: f64 = s[..split].parse().unwrap_or(0.0);
    let mult = match &s[split..] {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    n * mult / 1e6
}

fn parse_latency_ms(s: &str) -> f64 {
    // wrk prints e.g. "812.00us", "3.21ms", "1.02s".
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let n: f64 = s[..split].parse().unwrap_or(0.0);
    match &s[split..] {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

fn wrk(opts: &Opts, conns: usize, port: u16, path: &str) -> anyhow::Result<WrkResult> {
    let out = Command::new("taskset")
        .args(["-c", &opts.wrk_cpus, "wrk", "-t1", "--latency"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", opts.duration))
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = WrkResult::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("99%") {
            r.p99_ms = parse_latency_ms(v);
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Transfer/sec:") {
            r.mb_s = parse_transfer(v);
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            eprintln!("  wrk {port}{path}: {line}");
        }
    }
    Ok(r)
}

struct Guard {
    server: Option<Child>,
    nginx: Option<Child>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            drop(s.stdin.take()); // EOF = stop
            let _ = s.wait();
        }
        if let Some(mut n) = self.nginx.take() {
            // Only the master we started, by its PID (it stops its workers).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(n.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = n.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(opts: &Opts) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("fdfs-ha-http-bench-{}", std::process::id()));
    let store = dir.join("store");
    std::fs::create_dir_all(&store)?;
    let mut guard = Guard {
        server: None,
        nginx: None,
        dir: dir.clone(),
    };
    let small = make_file(&store, 4096, "jpg")?;
    let large = make_file(&store, 1 << 20, "bin")?;
    // nginx maps /group1/M00/... onto the same files through a symlink under its root.
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("group1"))?;
    std::os::unix::fs::symlink(store.join("data"), root.join("group1/M00"))?;
    set_world_readable(&dir)?;

    let exe = std::env::current_exe()?;
    let mut server = Command::new("taskset")
        .args(["-c", &opts.server_cpus])
        .arg(&exe)
        .args(["serve", "--store"])
        .arg(&store)
        .args(["--workers", &opts.workers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(
        server
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    )
    .read_line(&mut line)?;
    guard.server = Some(server);
    let ports: Vec<u16> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    let (sport, gport) = match ports.as_slice() {
        [s, g] => (*s, *g),
        _ => anyhow::bail!("bench server did not start: {line:?}"),
    };

    let nport = free_port()?;
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes {w};\ndaemon off;\nmaster_process on;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
               types {{ image/jpeg jpg; application/octet-stream bin; }}\n  default_type application/octet-stream;\n\
               server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}\n}}\n",
            w = opts.workers,
            p = prefix.display(),
            port = nport,
            root = root.display()
        ),
    )?;
    let nginx = Command::new("taskset")
        .args(["-c", &opts.server_cpus, "nginx", "-p"])
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()?;
    guard.nginx = Some(nginx);

    // Wait for all three, warm the gateway cache and check every URL answers 200.
    for _ in 0..100 {
        if http_get_status(nport, &small).unwrap_or(0) == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (port, path) in [
        (sport, &small),
        (sport, &large),
        (nport, &small),
        (nport, &large),
        (gport, &small),
        (gport, &large),
    ] {
        let s = http_get_status(port, path)?;
        anyhow::ensure!(s == 200, "GET 127.0.0.1:{port}{path} -> {s}");
    }

    for &conns in &opts.connections {
        run_rows(opts, conns, [sport, gport, nport], [&small, &large])?;
    }
    drop(guard);
    Ok(())
}

/// One table: the four rows at `conns` connections, alternating ours and nginx per round.
fn run_rows(opts: &Opts, conns: usize, ports: [u16; 3], paths: [&str; 2]) -> anyhow::Result<()> {
    let [sport, gport, nport] = ports;
    let [small, large] = paths;
    println!(
        "fdfs-ha HTTP bench: wrk -t1 -c{conns} -d{}s on CPUs {}, servers on CPUs {} with {} worker(s) each; \
         best of {} alternating rounds per side; p99 = median over the rounds; load {}",
        opts.duration, opts.wrk_cpus, opts.server_cpus, opts.workers, opts.rounds, load_average()
    );
    println!(
        "{:<26} {:>10} {:>9} {:>11} {:>10} {:>6}  {:>8} {:>9}  per-round ratios",
        "row",
        "ours req/s",
        "ours MB/s",
        "nginx req/s",
        "nginx MB/s",
        "ratio",
        "p99 ours",
        "p99 nginx"
    );
    let rows = [
        ("storage http, 4 KiB", sport, small),
        ("storage http, 1 MiB", sport, large),
        ("gateway cache hit, 4 KiB", gport, small),
        ("gateway cache hit, 1 MiB", gport, large),
    ];
    for (label, port, path) in rows {
        // Alternating rounds, best of each side: other load on a shared host only ever lowers a
        // run, so the best run is the closest to what each server can do.
        let mut ours = WrkResult::default();
        let mut theirs = WrkResult::default();
        let (mut p99_ours, mut p99_theirs) = (Vec::new(), Vec::new());
        let mut per_round = Vec::new();
        for _ in 0..opts.rounds.max(1) {
            let o = wrk(opts, conns, port, path)?;
            let t = wrk(opts, conns, nport, path)?;
            per_round.push(if t.rps > 0.0 { o.rps / t.rps } else { 0.0 });
            p99_ours.push(o.p99_ms);
            p99_theirs.push(t.p99_ms);
            if o.rps > ours.rps {
                ours = o;
            }
            if t.rps > theirs.rps {
                theirs = t;
            }
        }
        let ratio = if theirs.rps > 0.0 {
            ours.rps / theirs.rps
        } else {
            0.0
        };
        let rounds: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{:<26} {:>10.0} {:>9.1} {:>11.0} {:>10.1} {:>5.2}x  {:>6.2}ms {:>7.2}ms  {}",
            label,
            ours.rps,
            ours.mb_s,
            theirs.rps,
            theirs.mb_s,
            ratio,
            median(&mut p99_ours),
            median(&mut p99_theirs),
            rounds.join(" ")
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn set_world_readable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // nginx workers run as an unprivileged user; the temp tree must be readable by them.
    fn walk(d: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(d)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = if meta.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(d)? {
                walk(&e?.path())?;
            }
        }
        Ok(())
    }
    walk(dir)
}
