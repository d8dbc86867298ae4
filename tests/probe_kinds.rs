//! Every probe kind against real endpoints on 127.0.0.1, plus the runner's scheduling guarantees.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::probe::{self, checks::run_once, Health, PidTable, ProbeKind, ProbeSpec};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_millis(1500);

async fn check(kind: ProbeKind) -> Result<String, String> {
    run_once(&kind, T, &PidTable::default()).await
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

#[tokio::test]
async fn tcp_probe() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    assert!(check(ProbeKind::Tcp(addr)).await.is_ok());
    let err = check(ProbeKind::Tcp(closed_port().await))
        .await
        .unwrap_err();
    assert!(err.contains("connect"), "{err}");
}

/// Serves one canned HTTP response per connection.
async fn http_server(response: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_probe_status_and_body() {
    let ok =
        http_server("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nstatus=up")
            .await;
    let url = format!("http://{ok}/healthz");
    let http = |expect_status, expect_body: Option<&str>| ProbeKind::Http {
        url: url.clone(),
        expect_status,
        expect_body: expect_body.map(str::to_string),
    };
    assert_eq!(check(http(None, None)).await, Ok("HTTP 200".into()));
    assert!(check(http(Some(200), Some("=up"))).await.is_ok());
    let e = check(http(None, Some("down"))).await.unwrap_err();
    assert!(e.contains("body does not contain"), "{e}");
    let e = check(http(Some(204), None)).await.unwrap_err();
    assert!(e.contains("status 200, want 204"), "{e}");

    let bad = http_server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    let e = check(ProbeKind::Http {
        url: format!("http://{bad}/"),
        expect_status: None,
        expect_body: None,
    })
    .await
    .unwrap_err();
    assert!(e.contains("status 503"), "{e}");
}

#[tokio::test]
async fn http_probe_times_out_on_a_silent_server() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let started = Instant::now();
    let e = run_once(
        &ProbeKind::Http {
            url: format!("http://{addr}/"),
            expect_status: None,
            expect_body: None,
        },
        Duration::from_millis(200),
        &PidTable::default(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A fake FastDFS server answering ACTIVE_TEST with the given response header.
async fn fastdfs_server(cmd: u8, status: u8) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = [0u8; 10];
                if s.read_exact(&mut req).await.is_err() {
                    return;
                }
                // Only a well-formed ACTIVE_TEST (cmd 111, empty body) gets the answer.
                if req != [0, 0, 0, 0, 0, 0, 0, 0, 111, 0] {
                    return;
                }
                let _ = s.write_all(&[0, 0, 0, 0, 0, 0, 0, 0, cmd, status]).await;
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn fastdfs_active_test_probe() {
    let good = fastdfs_server(100, 0).await;
    assert!(check(ProbeKind::Fastdfs(good)).await.is_ok());
    let busy = fastdfs_server(100, 16).await;
    let e = check(ProbeKind::Fastdfs(busy)).await.unwrap_err();
    assert!(e.contains("status 16"), "{e}");
    let wrong = fastdfs_server(111, 0).await;
    let e = check(ProbeKind::Fastdfs(wrong)).await.unwrap_err();
    assert!(e.contains("answered cmd 111"), "{e}");
    assert!(check(ProbeKind::Fastdfs(closed_port().await))
        .await
        .is_err());
}

#[tokio::test]
async fn process_probe_follows_the_pid() {
    let pids = PidTable::default();
    let kind = ProbeKind::Process("nginx".into());
    let e = run_once(&kind, T, &pids).await.unwrap_err();
    assert!(e.contains("no running process"), "{e}");
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    pids.set("nginx", Some(child.id()));
    assert!(run_once(&kind, T, &pids).await.is_ok());
    child.kill().unwrap();
    // Not yet reaped: a zombie is not alive either.
    std::thread::sleep(Duration::from_millis(100));
    let e = run_once(&kind, T, &pids).await.unwrap_err();
    assert!(e.contains("is gone"), "{e}");
    child.wait().unwrap();
    assert!(run_once(&kind, T, &pids).await.is_err());
}

#[tokio::test]
async fn exec_probe_exit_status_and_unrunnable_commands() {
    let argv = |v: &[&str]| ProbeKind::Exec(v.iter().map(|s| s.to_string()).collect());
    assert!(check(argv(&["true"])).await.is_ok());
    let e = check(argv(&["sh", "-c", "exit 3"])).await.unwrap_err();
    assert!(e.contains("exit status: 3"), "{e}");
    // keepalived counts a script that cannot execute as success; we do not.
    let e = check(argv(&["/nonexistent/check.sh"])).await.unwrap_err();
    assert!(e.contains("cannot execute"), "{e}");
    let started = Instant::now();
    let e = run_once(
        &argv(&["sleep", "5"]),
        Duration::from_millis(200),
        &PidTable::default(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A timed-out script's children die with it.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let e = run_once(
        &argv(&["sh", "-c", &script]),
        Duration::from_millis(300),
        &PidTable::default(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !probe::checks::pid_alive(pid),
        "grandchild {pid} survived the timeout"
    );
}

fn spec(name: &str, kind: ProbeKind, interval_ms: u64, timeout_ms: u64) -> ProbeSpec {
    ProbeSpec {
        name: name.into(),
        kind,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        rise: 2,
        fall: 2,
    }
}

#[tokio::test]
async fn runner_applies_fall_and_rise() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task = probe::spawn(
        spec("t", ProbeKind::Tcp(addr.to_string()), 30, 200),
        PidTable::default(),
        tx,
        stop.clone(),
    );
    let first = rx.recv().await.unwrap();
    assert!(first.ok && first.changed && first.health == Health::Healthy);
    drop(l);
    // fall = 2: the first failure keeps Healthy, the second turns Failing.
    let f1 = rx.recv().await.unwrap();
    assert!(
        !f1.ok && !f1.changed && f1.health == Health::Healthy,
        "{f1:?}"
    );
    let f2 = rx.recv().await.unwrap();
    assert!(
        !f2.ok && f2.changed && f2.health == Health::Failing,
        "{f2:?}"
    );
    let _l = TcpListener::bind(addr).await.unwrap();
    let r1 = rx.recv().await.unwrap();
    assert!(r1.ok && r1.health == Health::Failing);
    let r2 = rx.recv().await.unwrap();
    assert!(r2.ok && r2.changed && r2.health == Health::Healthy);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_probe_never_overlaps_itself_and_never_blocks_another() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    // Fails if another copy of itself is running (the lock directory exists).
    let script = format!(
        "mkdir {l} || exit 1; sleep 0.3; rmdir {l}",
        l = lock.display()
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let slow = probe::spawn(
        spec(
            "slow",
            ProbeKind::Exec(vec!["sh".into(), "-c".into(), script]),
            20,
            2000,
        ),
        PidTable::default(),
        tx.clone(),
        stop.clone(),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast = probe::spawn(
        spec(
            "fast",
            ProbeKind::Tcp(l.local_addr().unwrap().to_string()),
            20,
            200,
        ),
        PidTable::default(),
        tx,
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    stop.cancel();
    slow.await.unwrap();
    fast.await.unwrap();
    let mut slow_results = Vec::new();
    let mut fast_count = 0;
    while let Ok(r) = rx.try_recv() {
        if r.name == "slow" {
            slow_results.push(r);
        } else {
            fast_count += 1;
        }
    }
    assert!(slow_results.len() >= 2, "{slow_results:?}");
    assert!(
        slow_results.iter().all(|r| r.ok),
        "a copy overlapped: {slow_results:?}"
    );
    // The 300 ms checks of `slow` do not hold back `fast` (20 ms interval).
    assert!(fast_count >= 15, "fast probe ran only {fast_count} times");
}

/// Issue 23.5: probes run on their own thread. With the only worker of the node's runtime
/// blocked for a second (a saturated data plane at its worst), a probe keeps checking at its
/// interval; on that runtime it would not run at all until the worker is free again, and its
/// timeouts would fire late or falsely.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_blocked_main_runtime_does_not_hold_up_probes() {
    use std::sync::{Arc, Mutex};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task = probe::spawn(
        spec(
            "t",
            ProbeKind::Tcp(l.local_addr().unwrap().to_string()),
            20,
            200,
        ),
        PidTable::default(),
        tx,
        stop.clone(),
    );
    assert!(rx.recv().await.unwrap().ok);
    // The hog runs on the runtime's one worker; this test's body runs on its own thread.
    let window: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    let hog = tokio::spawn({
        let window = window.clone();
        async move {
            let from = Instant::now();
            std::thread::sleep(Duration::from_secs(1));
            *window.lock().unwrap() = Some((from, Instant::now()));
        }
    });
    hog.await.unwrap();
    stop.cancel();
    task.await.unwrap();
    let (from, to) = window.lock().unwrap().unwrap();
    let mut during = 0;
    while let Ok(r) = rx.try_recv() {
        assert!(r.ok, "{r:?}");
        if r.at > from && r.at < to {
            during += 1;
        }
    }
    // About 50 at a 20 ms interval; none if the probe shared the blocked worker.
    assert!(during >= 10, "{during} checks while the worker was blocked");
}
