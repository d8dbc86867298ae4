//! Who may talk to a tracker and how much it keeps for them (issue 18): `allow_hosts` and the
//! per-address cap close connections at accept; `max_groups` bounds the view, its saved file,
//! the log and a real tracker process's memory under a JOIN flood from 127.0.0.x.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::{closed_silently, connect_from, join};

use fdfs_ha::config::TrackerConfig;
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::connection::{read_message, write_message};
use fdfs_ha::tracker::service::Tracker;
use fdfs_ha::tracker::TrackerServer;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

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
    tracker: Arc<Tracker>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

async fn start(cfg: &TrackerConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let server = TrackerServer::bind(cfg, dir.path()).await.unwrap();
    let addr = server.local_addr();
    let tracker = server.tracker();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));
    Running {
        addr,
        tracker,
        stop,
        task,
        dir,
    }
}

impl Running {
    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        self.dir
    }
}

async fn active_test(s: &mut TcpStream) -> Option<u8> {
    write_message(s, cmd::ACTIVE_TEST, 0, &[]).await.ok()?;
    let (h, _) = read_message(s, 1024).await.ok()?;
    Some(h.status)
}

#[tokio::test]
async fn allow_hosts_closes_other_addresses_at_accept() {
    let t = start(&tracker_cfg(
        "allow_hosts: [\"127.0.0.1\", \"127.0.0.[2-3,7]\", \"127.0.1.0/24\"]",
    ))
    .await;
    for ok in ["127.0.0.2", "127.0.0.7", "127.0.1.200"] {
        let mut s = connect_from(ok, t.addr).await;
        assert_eq!(active_test(&mut s).await, Some(0), "{ok}");
    }
    for no in ["127.0.0.4", "127.0.0.8", "127.0.2.1"] {
        let mut s = connect_from(no, t.addr).await;
        assert!(
            closed_silently(&mut s, Duration::from_secs(5)).await,
            "{no} was let in"
        );
    }
    let adm = &t.tracker.admission;
    assert_eq!(adm.refused_not_allowed.load(Ordering::Relaxed), 3);
    // Refusals are logged once per 10 s, the rest counted.
    assert_eq!(t.tracker.logs.written(), 1);
    t.stop().await;
}

#[tokio::test]
async fn bad_allow_hosts_is_refused_at_bind_naming_the_key() {
    let cfg = tracker_cfg("allow_hosts: [\"10.0.0.[1-\"]");
    let dir = tempfile::tempdir().unwrap();
    let e = TrackerServer::bind(&cfg, dir.path())
        .await
        .err()
        .expect("bind refused")
        .to_string();
    assert!(e.contains("tracker.allow_hosts"), "{e}");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let t = start(&tracker_cfg(
        "max_connections: 8\nmax_connections_per_ip: 2",
    ))
    .await;
    let mut a1 = connect_from("127.0.0.5", t.addr).await;
    let mut a2 = connect_from("127.0.0.5", t.addr).await;
    assert_eq!(active_test(&mut a1).await, Some(0));
    assert_eq!(active_test(&mut a2).await, Some(0));
    let mut a3 = connect_from("127.0.0.5", t.addr).await;
    assert!(closed_silently(&mut a3, Duration::from_secs(5)).await);
    // Others still get in; and a closed connection frees its address's slot.
    let mut b = connect_from("127.0.0.6", t.addr).await;
    assert_eq!(active_test(&mut b).await, Some(0));
    drop(a1);
    let mut ok = None;
    for _ in 0..50 {
        let mut a4 = connect_from("127.0.0.5", t.addr).await;
        ok = active_test(&mut a4).await;
        if ok.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ok, Some(0));
    assert!(t.tracker.admission.refused_per_ip.load(Ordering::Relaxed) >= 1);
    t.stop().await;
}

/// Issue 18.3 (F5 on the tracker): a request body had network_timeout in total, so a client
/// sending a JOIN at a steady slow pace was cut off. With network_timeout 1 s, a JOIN whose body
/// takes ~2 s to arrive in small pieces is answered.
#[tokio::test]
async fn steady_slow_request_outlasting_network_timeout_is_answered() {
    let t = start(&tracker_cfg("network_timeout: 1s")).await;
    let mut s = connect_from("127.0.0.1", t.addr).await;
    let body = join("group1", 23000);
    let head = fdfs_ha::proto::Header::new(cmd::STORAGE_JOIN, 0, body.len() as u64).encode();
    s.write_all(&head).await.unwrap();
    let started = std::time::Instant::now();
    for piece in body.chunks(body.len().div_ceil(20)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(piece).await.unwrap();
    }
    assert!(started.elapsed() > Duration::from_millis(1500));
    let (h, _) = tokio::time::timeout(Duration::from_secs(5), read_message(&mut s, 1024))
        .await
        .expect("answered")
        .expect("answered, not closed");
    assert_eq!(h.status, 0);
    assert_eq!(t.tracker.state.lock().unwrap().cluster.groups.len(), 1);
    t.stop().await;
}

/// Issue 18.3 (F4 on the tracker): a body the tracker refuses from the header (a command it
/// does not know, a body for ACTIVE_TEST, which has none) is skipped when it comes at once, and
/// closed at network_timeout when it drips (1 byte every 300 ms, each well within
/// network_timeout, would otherwise hold the connection for 30 s).
#[tokio::test]
async fn dripping_refused_body_is_closed_at_network_timeout() {
    let t = start(&tracker_cfg("network_timeout: 1s")).await;
    for (n, command) in [250, cmd::ACTIVE_TEST].into_iter().enumerate() {
        let head = fdfs_ha::proto::Header::new(command, 0, 100).encode();
        let mut s = connect_from("127.0.0.1", t.addr).await;
        s.write_all(&head).await.unwrap();
        s.write_all(&[0; 100]).await.unwrap();
        let (h, _) = read_message(&mut s, 1024).await.unwrap();
        assert_eq!(h.status, errno::EINVAL, "command {command}");
        assert_eq!(active_test(&mut s).await, Some(0), "still in step");
        s.write_all(&head).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let drip = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if wr.write_all(&[0]).await.is_err() {
                    break;
                }
            }
        });
        let started = std::time::Instant::now();
        let mut b = [0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(20), rd.read(&mut b)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "command {command}: connection still open: {closed:?}"
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "command {command}: {took:?}");
        drip.abort();
        let counts = t.tracker.logs.counts();
        assert!(
            counts.contains(&("body_timeout", n as u64 + 1)),
            "{counts:?}"
        );
    }
    let counts = t.tracker.logs.counts();
    assert!(counts.contains(&("unknown_command", 1)), "{counts:?}");
    assert!(counts.contains(&("body_not_empty", 1)), "{counts:?}");
    t.stop().await;
}

/// Issue 18 F3: 20,000 JOINs with new group names from 127.0.0.x grew the view, its saved file
/// (6 MB) and the log (2 lines per JOIN) without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_flood_of_new_groups_is_capped() {
    const FLOOD: usize = 20_000;
    const SOURCES: usize = 10;
    let cfg = tracker_cfg("");
    let max_groups = cfg.max_groups;
    let t = start(&cfg).await;
    let mut tasks = Vec::new();
    for src in 0..SOURCES {
        let from = format!("127.0.0.{}", 10 + src);
        tasks.push(tokio::spawn(join_new_groups(
            from,
            t.addr,
            src,
            FLOOD / SOURCES,
        )));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    let groups = t.tracker.state.lock().unwrap().cluster.groups.len();
    assert_eq!(groups, max_groups);
    assert_eq!(refused, FLOOD - max_groups);
    assert_eq!(
        t.tracker.counters.refused_joins.load(Ordering::Relaxed) as usize,
        FLOOD - max_groups
    );
    // One refusal line per 10 s (the flood takes less), the rest counted.
    assert!(
        t.tracker.logs.written() <= 3,
        "{}",
        t.tracker.logs.written()
    );
    assert!(t.tracker.logs.suppressed() as usize >= FLOOD - max_groups - 3);
    // The saved view is bounded by the caps: well under 1 KB per group.
    let dir = t.stop().await;
    let saved = std::fs::metadata(dir.path().join("tracker-cluster.json"))
        .unwrap()
        .len();
    eprintln!("saved view after the flood: {saved} bytes for {max_groups} groups");
    assert!(saved < (max_groups as u64) * 1024, "{saved} bytes");
}

/// The resident memory (VmRSS, KiB) of process `pid`.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Sends `n` JOINs with new group names from `from` and returns how many were refused with
/// ENOSPC (the others accepted).
async fn join_new_groups(from: String, to: SocketAddr, tag: usize, n: usize) -> usize {
    let s = connect_from(&from, to).await;
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..n {
            let group = format!("f{tag}x{i}");
            write_message(&mut wr, cmd::STORAGE_JOIN, 0, &join(&group, 23000))
                .await
                .unwrap();
        }
        wr
    });
    let mut refused = 0;
    for _ in 0..n {
        let (h, _) = read_message(&mut rd, 1024).await.unwrap();
        match h.status {
            0 => {}
            errno::ENOSPC => refused += 1,
            other => panic!("JOIN answered {other}"),
        }
    }
    let _wr = writer.await.unwrap();
    refused
}

/// Issue 18 F3's memory: the same flood against a real `fdfs-ha run` tracker (a child process,
/// so its VmRSS is the tracker's alone) grew it from 13 to 163 MB. Capped at `max_groups`
/// (1,024) it grew by 8.6-9.6 MiB here over 6 runs (12-13 -> 22 MiB); with
/// `max_groups: 1000000` (no cap in effect) by 149 MiB (12 -> 161 MiB), far over the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_flood_leaves_the_tracker_process_memory_bounded() {
    const FLOOD: usize = 20_000;
    const SOURCES: usize = 10;
    /// Growth allowed over the flood (KiB): 2.5 times the capped tracker's measured growth.
    const BOUND_KIB: u64 = 24 << 10;
    let dir = tempfile::tempdir().unwrap();
    let port = node_support::free_port();
    let yaml = format!(
        "node: rss-test\ndata_dir: \"{}\"\nlog: {{ level: warn }}\ntracker:\n  listen: 127.0.0.1:{port}\n",
        dir.path().join("data").display(),
    );
    let mut node = node_support::run(dir.path(), &yaml);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            if active_test(&mut s).await == Some(0) {
                break;
            }
        }
        if let Ok(Some(s)) = node.0.try_wait() {
            panic!("fdfs-ha exited early: {s}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "tracker did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = node.0.id();
    let before = vm_rss_kib(pid);
    let flood = std::time::Instant::now();
    let tasks: Vec<_> = (0..SOURCES)
        .map(|src| {
            let from = format!("127.0.0.{}", 10 + src);
            tokio::spawn(join_new_groups(from, addr, src, FLOOD / SOURCES))
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    let took = flood.elapsed();
    let after = vm_rss_kib(pid);
    eprintln!(
        "tracker VmRSS {before} KiB before, {after} KiB after {FLOOD} JOINs of new groups \
         ({} accepted) in {took:?}: +{} KiB",
        FLOOD - refused,
        after.saturating_sub(before)
    );
    assert!(refused > 0, "the flood was not capped");
    assert!(
        after.saturating_sub(before) < BOUND_KIB,
        "VmRSS {before} -> {after} KiB: grew more than {BOUND_KIB} KiB"
    );
}
