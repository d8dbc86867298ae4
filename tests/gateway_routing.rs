//! Front gateway on 127.0.0.1: routing per group from a live cluster view, weighted round-robin,
//! failover and retries, timeouts, hostile input, client address headers, FLV starts, hotlink
//! rules, gzip and error pages, logged refusals. The disk cache: tests/gateway_cache.rs.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "storage_http_support/mod.rs"]
mod support;

#[path = "gateway_support/mod.rs"]
mod gateway_support;

use fdfs_ha::gateway::directory::MemoryDirectory;
use fdfs_ha::http::server::Counters;
use gateway_support::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn routes_by_group_with_prefix_weights_and_live_view() {
    let c = cluster_with_files(&[1000, 2000]);
    let cfg = storage_config(c._store.path(), "", "");
    let (a, a_n) = start_storage(&cfg, None).await;
    let (b, b_n) = start_storage(&cfg, None).await;
    let (g2, g2_n) =
        start_storage(&storage_config_in("group2", c._store.path(), "", ""), None).await;
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr, b.addr])])));
    let data = tempfile::tempdir().unwrap();
    let gw = start_gateway(&gw_config("prefix: /dfs\n"), data.path(), dir.clone()).await;

    let url = format!("/dfs/group1/{}", c.ids[0]);
    for _ in 0..4 {
        let r = get(gw.addr, &url).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, c.contents[0]);
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
    }
    assert_eq!(Counters::get(&a_n.requests), 2, "round-robin");
    assert_eq!(Counters::get(&b_n.requests), 2, "round-robin");
    // Keep-alive pool: both requests to a storage went over one connection.
    assert_eq!(Counters::get(&a_n.connections), 1, "pooled");
    assert_eq!(Counters::get(&b_n.connections), 1, "pooled");
    let r = request(gw.addr, "GET", &url, &[("Range", "bytes=0-9")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &c.contents[0][..10]));
    assert_eq!(
        get(gw.addr, &format!("/group1/{}", c.ids[0])).await.status,
        404,
        "prefix required"
    );
    assert_eq!(get(gw.addr, "/healthz").await.status, 200);

    // A group added to the cluster is routed at once, a removed one is dropped: no restart.
    let url2 = format!("/dfs/group2/{}", c.ids[1]);
    assert_eq!(get(gw.addr, &url2).await.status, 404);
    dir.set(view(&[
        ("group1", &[a.addr, b.addr]),
        ("group2", &[g2.addr]),
    ]));
    let r = get(gw.addr, &url2).await;
    assert_eq!((r.status, r.body.len()), (200, 2000));
    assert_eq!(Counters::get(&g2_n.requests), 1);
    dir.set(view(&[("group2", &[g2.addr])]));
    assert_eq!(get(gw.addr, &url).await.status, 404);
    // A storage added to a group takes traffic.
    let (g2b, g2b_n) =
        start_storage(&storage_config_in("group2", c._store.path(), "", ""), None).await;
    dir.set(view(&[("group2", &[g2.addr, g2b.addr])]));
    for _ in 0..2 {
        assert_eq!(get(gw.addr, &url2).await.status, 200);
    }
    assert_eq!(Counters::get(&g2b_n.requests), 1);
    gw.run.shutdown().await;

    // Weights: 3:1.
    let weights = format!("weights:\n  \"{}\": 3\n", a.addr);
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr, b.addr])])));
    let gw = start_gateway(&gw_config(&weights), data.path(), dir).await;
    let (a0, b0) = (Counters::get(&a_n.requests), Counters::get(&b_n.requests));
    for _ in 0..8 {
        assert_eq!(
            get(gw.addr, &format!("/group1/{}", c.ids[0])).await.status,
            200
        );
    }
    assert_eq!(Counters::get(&a_n.requests) - a0, 6);
    assert_eq!(Counters::get(&b_n.requests) - b0, 2);
    gw.run.shutdown().await;
    for s in [a, b, g2, g2b] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn failover_retries_and_timeouts() {
    let c = cluster_with_files(&[500]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let dead = dead_addr().await;
    let (bad, bad_n) =
        fake_storage(Arc::new(|_| (502, b"bad gateway".to_vec(), Duration::ZERO))).await;
    let url = format!("/group1/{}", c.ids[0]);
    let data = tempfile::tempdir().unwrap();
    let cfg = gw_config("upstream:\n  read_timeout: 300ms\n  connect_timeout: 300ms\n  max_fails: 2\n  fail_timeout: 30s\n");

    // Dead storage first in the list: every request still succeeds.
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[dead, a.addr])])));
    let gw = start_gateway(&cfg, data.path(), dir.clone()).await;
    for _ in 0..6 {
        let r = get(gw.addr, &url).await;
        assert_eq!((r.status, r.body.len()), (200, 500));
    }
    // After max_fails the dead one is skipped: one attempt per request.
    let attempts = gw.upstreams.attempts.load(Ordering::Relaxed);
    for _ in 0..4 {
        assert_eq!(get(gw.addr, &url).await.status, 200);
    }
    assert_eq!(gw.upstreams.attempts.load(Ordering::Relaxed), attempts + 4);

    // A storage answering 502 is retried on the next.
    dir.set(view(&[("group1", &[bad.addr, a.addr])]));
    for _ in 0..4 {
        assert_eq!(get(gw.addr, &url).await.status, 200);
    }
    assert!(bad_n.load(Ordering::SeqCst) >= 1);
    let served = Counters::get(&a_n.requests);
    assert!(served >= 14);

    // Nothing alive: 502, fast.
    dir.set(view(&[("group1", &[dead])]));
    assert_eq!(get(gw.addr, &url).await.status, 502);
    // A storage that accepts and never answers: 504 after the configured timeouts, no hang.
    let (hole, _hole_task) = black_hole().await;
    dir.set(view(&[("group1", &[hole])]));
    let t = Instant::now();
    assert_eq!(get(gw.addr, &url).await.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    gw.run.shutdown().await;
    a.shutdown().await;
    bad.shutdown().await;
}

/// Issue 24: a storage killed or stopped costs no failed request when the group has another
/// ACTIVE storage: GET and HEAD are retried there before any byte of the answer is sent.
#[tokio::test]
async fn a_dead_or_stopping_storage_costs_no_request() {
    let c = cluster_with_files(&[700]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let (dying, _dying_task) = dies_before_answering().await;
    let dead = dead_addr().await;
    let (stopping, stopping_n) =
        fake_storage(Arc::new(|_| (503, Vec::new(), Duration::ZERO))).await;
    let url = format!("/group1/{}", c.ids[0]);
    let data = tempfile::tempdir().unwrap();
    // max_fails high: every request really meets the broken storage first or second.
    let cfg = gw_config("upstream:\n  max_fails: 1000\n  fail_timeout: 30s\n");
    for broken in [dying, dead, stopping.addr] {
        let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[broken, a.addr])])));
        let gw = start_gateway(&cfg, data.path(), dir).await;
        for i in 0..8 {
            let r = get(gw.addr, &url).await;
            assert_eq!(
                (r.status, r.body.len()),
                (200, 700),
                "GET {i} with {broken} broken"
            );
            let h = request(gw.addr, "HEAD", &url, &[]).await;
            assert_eq!(h.status, 200, "HEAD {i} with {broken} broken");
        }
        // The broken storage was asked (round robin), so the retry was exercised.
        assert!(gw.upstreams.attempts.load(Ordering::Relaxed) > 16);
        gw.run.shutdown().await;
    }
    assert!(stopping_n.load(Ordering::SeqCst) >= 1);
    assert!(Counters::get(&a_n.requests) >= 16);
    a.shutdown().await;
    stopping.shutdown().await;
}

#[tokio::test]
async fn hostile_requests_and_slow_clients() {
    let c = cluster_with_files(&[100]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg = gw_config("header_timeout: 300ms\nbody_timeout: 300ms\nmax_connections: 3\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    for target in [
        "/group1/M00/0A/0B/../../../../etc/passwd",
        "/group1/M00/0A/0B/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/group1/M00/0A/0B/x%00.txt",
        "/group1/..%5c..%5cetc/passwd",
        "/../../etc/passwd",
    ] {
        assert_eq!(get(gw.addr, target).await.status, 400, "{target}");
    }
    assert_eq!(
        Counters::get(&a_n.requests),
        0,
        "nothing hostile reached a storage"
    );
    let long = format!("/group1/M00/0A/0B/{}", "A".repeat(3000));
    assert_eq!(get(gw.addr, &long).await.status, 414);
    let big = "y".repeat(20 * 1024);
    assert_eq!(
        request(gw.addr, "GET", "/group1/x", &[("X-Big", &big)])
            .await
            .status,
        431
    );
    assert_eq!(
        request(gw.addr, "DELETE", &format!("/group1/{}", c.ids[0]), &[])
            .await
            .status,
        405
    );

    // A body trickled slower than body_timeout: 408 and the connection closes.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "GET /group1/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
        c.ids[0]
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let t = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await
    .expect("closed")
    .unwrap();
    assert_eq!(parse_response(&buf).status, 408);
    assert!(t.elapsed() >= Duration::from_millis(250));
    // A small body sent promptly is read and ignored.
    let r = raw(
        gw.addr,
        format!("GET /group1/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc", c.ids[0]).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);

    // Header trickle: closed after header_timeout.
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /group1/M00/").await.unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);

    gw.run.shutdown().await;

    // Connection limit: 3 held, and the loopback reserve (this test's clients are all on
    // 127.0.0.1), then the next one refused with 503 (long header timeout so the held
    // connections stay open on a slow host).
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg = gw_config("header_timeout: 30s\nmax_connections: 3\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    let mut held = Vec::new();
    for _ in 0..3 + fdfs_ha::http::server::LOOPBACK_RESERVE {
        let mut h = TcpStream::connect(gw.addr).await.unwrap();
        h.write_all(b"GET").await.unwrap();
        held.push(h);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(gw.addr, "/healthz").await.status, 503);
    assert!(Counters::get(&gw.gw_counters.connections_refused) >= 1);
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if get(gw.addr, "/healthz").await.status == 200 {
            served = true;
            break;
        }
    }
    assert!(served, "slots come back");
    gw.run.shutdown().await;
    a.shutdown().await;
}

/// Issue 22.3: X-Real-IP / X-Forwarded-For / X-Forwarded-Proto reach the storages, incoming ones
/// believed only from trusted_proxies; on pass-through and on cache fills.
#[tokio::test]
async fn client_address_headers_reach_storages() {
    let (st, seen, task) = recording_storage().await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[st])])));
    let name = name_for(localhost(), now_unix(), b"ok", "jpg");
    let url = format!("/group1/M00/00/00/{name}");
    let spoof = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
    ];
    let gw = start_gateway(&gw_config(""), data.path(), dir.clone()).await;
    assert_eq!(request(gw.addr, "GET", &url, &spoof).await.status, 200);
    gw.run.shutdown().await;
    let cfg = gw_config("cache: {}\ntrusted_proxies: [127.0.0.0/8]\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    let r = request(
        gw.addr,
        "GET",
        &url,
        &[("X-Forwarded-For", "1.2.3.4"), spoof[1]],
    )
    .await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    gw.run.shutdown().await;
    task.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (untrusted, trusted) = (&seen[0], &seen[1]);
    assert_eq!(header_of(untrusted, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(header_of(untrusted, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header_of(untrusted, "x-forwarded-proto"), Some("http"));
    assert_eq!(header_of(trusted, "x-real-ip"), Some("1.2.3.4"));
    assert_eq!(
        header_of(trusted, "x-forwarded-for"),
        Some("1.2.3.4, 127.0.0.1")
    );
    assert_eq!(header_of(trusted, "x-forwarded-proto"), Some("https"));
}

/// Issue 22.3: flv `start=` pseudo-streaming (mod_fastdfs flv_support), directly and through the
/// gateway.
#[tokio::test]
async fn flv_start_sends_header_and_bytes_from_offset() {
    let store = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let id = place(
        store.path(),
        &name_for(localhost(), now_unix(), &content, "flv"),
        &content,
    );
    let (a, _) = start_storage(&storage_config(store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let gw = start_gateway(&gw_config("cache: {}\n"), data.path(), dir).await;
    let mut want = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    want.extend_from_slice(&content[400..]);
    for addr in [a.addr, gw.addr, gw.addr] {
        let r = get(addr, &format!("/group1/{id}?start=400")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("video/x-flv"));
        assert_eq!(r.header("content-length"), Some("613"));
        assert_eq!(r.body, want);
        let whole = get(addr, &format!("/group1/{id}?start=0")).await;
        assert_eq!(whole.body, content);
        let beyond = get(addr, &format!("/group1/{id}?start=5000")).await;
        assert_eq!(beyond.body, content);
    }
    let (off, _) = start_storage(
        &storage_config(store.path(), "  flv_support: false\n", ""),
        None,
    )
    .await;
    assert_eq!(
        get(off.addr, &format!("/group1/{id}?start=400")).await.body,
        content
    );
    for s in [a, off] {
        s.shutdown().await;
    }
    gw.run.shutdown().await;
}

/// Issue 22.3: seed 001's `valid_referers none blocked www.dbspread.com` for some extensions.
#[tokio::test]
async fn hotlink_rule_refuses_foreign_referers() {
    let store = tempfile::tempdir().unwrap();
    let jpg = place(
        store.path(),
        &name_for(localhost(), now_unix(), b"img", "jpg"),
        b"img",
    );
    let txt = place(
        store.path(),
        &name_for(localhost(), now_unix() - 1, b"txt", "txt"),
        b"txt",
    );
    let (a, _) = start_storage(&storage_config(store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg = gw_config(
        "cache: {}\nhotlink:\n  extensions: [rmvb, jpg, png, swf, flv]\n  valid_referers: [none, blocked, www.dbspread.com]\n",
    );
    let gw = start_gateway(&cfg, data.path(), dir).await;
    let jpg_url = format!("/group1/{jpg}");
    let with = |r: &'static str| [("Referer", r)];
    assert_eq!(get(gw.addr, &jpg_url).await.status, 200, "none");
    let ok = request(
        gw.addr,
        "GET",
        &jpg_url,
        &with("http://www.dbspread.com/index.html"),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        request(gw.addr, "GET", &jpg_url, &with("dbspread"))
            .await
            .status,
        200,
        "blocked"
    );
    let bad = request(
        gw.addr,
        "GET",
        &jpg_url,
        &with("http://www.test.com/index.html"),
    )
    .await;
    assert_eq!(bad.status, 403, "foreign referer, even though cached");
    let txt_url = format!("/group1/{txt}");
    let other = request(gw.addr, "GET", &txt_url, &with("http://www.test.com/")).await;
    assert_eq!(other.status, 200, "extension not guarded");
    gw.run.shutdown().await;
    a.shutdown().await;
}

/// Issue 22.3: gzip for configured text types (from cache and passed through), error pages.
#[tokio::test]
async fn gzip_for_text_types_and_error_pages() {
    use std::io::Read;
    let store = tempfile::tempdir().unwrap();
    let text = b"fdfs-ha gzip test line\n".repeat(200);
    let txt = place(
        store.path(),
        &name_for(localhost(), now_unix(), &text, "txt"),
        &text,
    );
    let img = vec![7u8; 5000];
    let jpg = place(
        store.path(),
        &name_for(localhost(), now_unix() - 1, &img, "jpg"),
        &img,
    );
    let (a, _) = start_storage(&storage_config(store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(pages.path().join("50x.html"), b"<h1>sorry</h1>").unwrap();
    std::fs::write(pages.path().join("404.html"), b"<h1>no such file</h1>").unwrap();
    let dead = dead_addr().await;
    let dir = Arc::new(MemoryDirectory::new(view(&[
        ("group1", &[a.addr]),
        ("group2", &[dead]),
    ])));
    for cache in ["cache: {}\n", ""] {
        let cfg = gw_config(&format!(
            "{cache}gzip:\n  types: [text/plain]\n  min_length: 100\nerror_pages:\n  \"500 502 503 504\": {}\n  \"404\": {}\n",
            pages.path().join("50x.html").display(),
            pages.path().join("404.html").display()
        ));
        let gw = start_gateway(&cfg, data.path(), dir.clone()).await;
        let gz = [("Accept-Encoding", "gzip, deflate")];
        for _ in 0..2 {
            let r = request(gw.addr, "GET", &format!("/group1/{txt}"), &gz).await;
            assert_eq!(
                (r.status, r.header("content-encoding")),
                (200, Some("gzip"))
            );
            assert!(
                r.body.len() < text.len() / 4,
                "compressed: {}",
                r.body.len()
            );
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(r.body.as_slice())
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, text);
        }
        let r = get(gw.addr, &format!("/group1/{txt}")).await;
        assert_eq!(
            (r.header("content-encoding"), r.body.as_slice()),
            (None, text.as_slice())
        );
        let r = request(gw.addr, "GET", &format!("/group1/{jpg}"), &gz).await;
        assert_eq!((r.header("content-encoding"), r.body.len()), (None, 5000));
        let r = get(gw.addr, &format!("/group2/{jpg}")).await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (502, b"<h1>sorry</h1>".as_slice())
        );
        assert_eq!(r.header("content-type"), Some("text/html"));
        let r = get(gw.addr, &format!("/group3/{jpg}")).await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (404, b"<h1>no such file</h1>".as_slice())
        );
        gw.run.shutdown().await;
    }
    a.shutdown().await;
}

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines at `info` and above on this thread, captured without ANSI codes.
fn capture_info_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

/// Issue 18.4: refused HTTP requests (gateway and storage http) are logged at `info`, one line
/// per kind per 10 s with the count held back, and counted per kind (`/metrics` refusals).
#[tokio::test]
async fn http_refusals_are_logged_at_info_rate_limited_and_counted() {
    // A current-thread runtime: the servers' tasks log on this thread, to this subscriber.
    let (log, _guard) = capture_info_logs();
    let c = cluster_with_files(&[100]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let gw = start_gateway(&gw_config(""), data.path(), dir).await;
    for _ in 0..20 {
        assert_eq!(get(gw.addr, "/group1/M00/../x").await.status, 400);
        assert_eq!(get(a.addr, "/group1/M00/../x").await.status, 400);
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for what in ["gateway: request refused", "storage http: request refused"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(what)).collect();
        assert_eq!(lines.len(), 1, "{what}:\n{text}");
        assert!(lines[0].contains(" INFO "), "{}", lines[0]);
        assert!(lines[0].contains("suppressed=0"), "{}", lines[0]);
    }
    for logs in [&gw.gw_counters.logs, &a_n.logs] {
        assert_eq!((logs.written(), logs.suppressed()), (1, 19));
        assert_eq!(logs.counts(), vec![("bad_request", 20)]);
    }
}

/// Issue 18.4: a request hyper cannot parse is answered 400 by hyper before any handler sees
/// it, and was logged at `debug` only. Now it is a refusal like the others: `info`, one line per
/// kind per 10 s for each server with the count held back, counted per kind.
#[tokio::test]
async fn malformed_http_is_logged_at_info_rate_limited_and_counted() {
    use tokio::io::AsyncReadExt;
    // A current-thread runtime: the servers' tasks log on this thread, to this subscriber.
    let (log, _guard) = capture_info_logs();
    let c = cluster_with_files(&[100]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let gw = start_gateway(&gw_config(""), data.path(), dir).await;
    for _ in 0..20 {
        for addr in [gw.addr, a.addr] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /x HTTP/1.1\r\nbad header line\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
            assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
        }
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("malformed request refused"))
        .collect();
    assert_eq!(lines.len(), 2, "one per server:\n{text}");
    for line in &lines {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("suppressed=0"), "{line}");
    }
    for addr in [gw.addr, a.addr] {
        let listen = format!("listen={addr}");
        assert!(
            lines.iter().any(|l| l.contains(&listen)),
            "{listen}: {lines:?}"
        );
    }
    for logs in [&gw.gw_counters.logs, &a_n.logs] {
        assert_eq!((logs.written(), logs.suppressed()), (1, 19));
        assert_eq!(logs.counts(), vec![("bad_request", 20)]);
    }
}
