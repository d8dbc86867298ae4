//! Front gateway on 127.0.0.1: routing per group from a live cluster view, weighted round-robin,
//! failover and retries, timeouts, disk cache (hits without storages, restart, purge, single
//! flight, eviction) and hostile input.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "storage_http_support/mod.rs"]
mod support;

use fdfs_ha::config::GatewayConfig;
use fdfs_ha::gateway::directory::{ClusterView, MemoryDirectory, StorageNode};
use fdfs_ha::gateway::Gateway;
use fdfs_ha::http::server::Counters;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn gw_config(extra: &str) -> GatewayConfig {
    serde_saphyr::from_str(&format!("listen: 127.0.0.1:0\ntrackers: []\n{extra}"))
        .expect("gateway yaml")
}

fn view(groups: &[(&str, &[SocketAddr])]) -> ClusterView {
    ClusterView {
        groups: groups
            .iter()
            .map(|(g, addrs)| {
                let nodes = addrs
                    .iter()
                    .map(|a| StorageNode {
                        id: a.to_string(),
                        ip: a.ip(),
                        port: 23000,
                        http_port: a.port(),
                    })
                    .collect();
                (g.to_string(), nodes)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

struct Gw {
    addr: SocketAddr,
    run: Running,
    gw_counters: Arc<Counters>,
    upstreams: Arc<fdfs_ha::gateway::upstream::Upstreams>,
}

async fn start_gateway(cfg: &GatewayConfig, data: &Path, dir: Arc<MemoryDirectory>) -> Gw {
    let g = Gateway::bind_with_directory(cfg, data, dir)
        .await
        .expect("bind gateway");
    let addr = g.local_addr();
    let gw_counters = g.counters();
    let upstreams = g.upstreams();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(g.serve(stop.clone()));
    Gw {
        addr,
        run: Running { addr, stop, task },
        gw_counters,
        upstreams,
    }
}

/// One store shared by several storage-http instances (they all "have" every file).
struct Cluster {
    _store: tempfile::TempDir,
    ids: Vec<String>,
    contents: Vec<Vec<u8>>,
}

fn cluster_with_files(sizes: &[usize]) -> Cluster {
    let store = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    let mut contents = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let content: Vec<u8> = (0..*size).map(|j| ((i * 31 + j) % 256) as u8).collect();
        let name = name_for(localhost(), now_unix() - i as u32, &content, "jpg");
        ids.push(place(store.path(), &name, &content));
        contents.push(content);
    }
    Cluster {
        _store: store,
        ids,
        contents,
    }
}

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

/// Accepts connections, reads a request and closes without answering: a storage killed while
/// the gateway talks to it (no byte of the answer sent).
async fn dies_before_answering() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            // RST rather than FIN, as a killed process's kernel may answer.
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    (addr, task)
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
async fn cache_hits_skip_storages_survive_restart_and_purge() {
    let c = cluster_with_files(&[4096, 700_000]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let cache_dir = data.path().join("cache");
    let cfg = gw_config(&format!(
        "prefix: /dfs\nexpires: 30d\ncache:\n  path: {}\n  max_size: 10MiB\n  inactive: 30d\n  valid: {{\"200 304\": 12h}}\nupstream:\n  connect_timeout: 300ms\n  read_timeout: 300ms\n",
        cache_dir.display()
    ));
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let gw = start_gateway(&cfg, data.path(), dir.clone()).await;
    let url = format!("/dfs/group1/{}", c.ids[0]);
    let big = format!("/dfs/group1/{}", c.ids[1]);

    let r = get(gw.addr, &url).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, c.contents[0].as_slice())
    );
    assert_eq!(r.header("cache-control"), Some("max-age=2592000"));
    assert!(r.header("expires").is_some());
    let etag = r.header("etag").expect("etag").to_string();
    assert_eq!(get(gw.addr, &big).await.body, c.contents[1]);
    assert_eq!(Counters::get(&a_n.requests), 2);
    // Hits: full, range, conditional, HEAD: none reaches the storage.
    assert_eq!(get(gw.addr, &url).await.body, c.contents[0]);
    let r = request(gw.addr, "GET", &big, &[("Range", "bytes=100-199")]).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &c.contents[1][100..200])
    );
    assert_eq!(
        request(gw.addr, "GET", &url, &[("If-None-Match", &etag)])
            .await
            .status,
        304
    );
    let h = request(gw.addr, "HEAD", &url, &[]).await;
    assert_eq!(
        (h.status, h.body.len(), h.header("content-length")),
        (200, 0, Some("4096"))
    );
    assert_eq!(Counters::get(&a_n.requests), 2);
    // Storage gone, even its group gone from the view: the cache still answers.
    let a_addr = a.addr;
    a.shutdown().await;
    dir.set(ClusterView::default());
    assert_eq!(get(gw.addr, &url).await.body, c.contents[0]);
    dir.set(view(&[("group1", &[a_addr])]));
    gw.run.shutdown().await;

    // A new gateway on the same cache directory serves the entries (storage still down).
    let gw = start_gateway(&cfg, data.path(), dir.clone()).await;
    let r = get(gw.addr, &url).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, c.contents[0].as_slice())
    );
    assert_eq!(get(gw.addr, &big).await.body, c.contents[1]);

    // Purge by /purge/<uri> and by PURGE: the next request goes upstream (and fails: no storage).
    let r = get(gw.addr, &format!("/purge{url}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(gw.addr, &format!("/purge{url}")).await.status,
        404,
        "already purged"
    );
    assert_eq!(get(gw.addr, &url).await.status, 502);
    assert_eq!(request(gw.addr, "PURGE", &big, &[]).await.status, 200);
    assert_eq!(get(gw.addr, &big).await.status, 502);
    gw.run.shutdown().await;

    // Purge from an address outside purge_allow: 403, entry kept.
    let (a, _) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    dir.set(view(&[("group1", &[a.addr])]));
    let denied_cfg = gw_config(&format!(
        "prefix: /dfs\npurge_allow: [\"10.0.0.0/8\"]\ncache:\n  path: {}\n",
        cache_dir.display()
    ));
    let gw = start_gateway(&denied_cfg, data.path(), dir.clone()).await;
    assert_eq!(get(gw.addr, &url).await.status, 200);
    assert_eq!(get(gw.addr, &format!("/purge{url}")).await.status, 403);
    assert_eq!(request(gw.addr, "PURGE", &url, &[]).await.status, 403);
    assert!(Counters::get(&gw.gw_counters.bad_requests) >= 2);
    a.shutdown().await;
    assert_eq!(get(gw.addr, &url).await.status, 200, "still cached");
    gw.run.shutdown().await;
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_fetch() {
    let body = b"single flight body".repeat(500);
    let served = body.clone();
    let (slow, count) = fake_storage(Arc::new(move |path: &str| {
        if path.ends_with(".jpg") {
            (200, served.clone(), Duration::from_millis(300))
        } else {
            (404, b"nope".to_vec(), Duration::from_millis(100))
        }
    }))
    .await;
    let data = tempfile::tempdir().unwrap();
    let cfg = gw_config("cache: {}\n");
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[slow.addr])])));
    let gw = start_gateway(&cfg, data.path(), dir).await;
    let name = name_for(localhost(), now_unix(), &body, "jpg");
    let url = format!("/group1/M00/00/00/{name}");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let u = url.clone();
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move { get(addr, &u).await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // Args are part of the key.
    assert_eq!(get(gw.addr, &format!("{url}?v=2")).await.status, 200);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // Statuses without a validity (404 by default) are not cached.
    let missing = format!(
        "/group1/M00/00/00/{}",
        name_for(localhost(), now_unix(), b"x", "txt")
    );
    assert_eq!(get(gw.addr, &missing).await.status, 404);
    assert_eq!(get(gw.addr, &missing).await.status, 404);
    assert_eq!(count.load(Ordering::SeqCst), 4);
    gw.run.shutdown().await;
    slow.shutdown().await;
}

#[tokio::test]
async fn cache_evicts_least_recently_used_beyond_max_size() {
    let c = cluster_with_files(&[40_000, 40_000, 40_000]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let gw = start_gateway(&gw_config("cache:\n  max_size: 100000\n"), data.path(), dir).await;
    let urls: Vec<String> = c.ids.iter().map(|id| format!("/group1/{id}")).collect();
    get(gw.addr, &urls[0]).await;
    get(gw.addr, &urls[1]).await;
    get(gw.addr, &urls[0]).await; // 0 is now more recent than 1
    assert_eq!(Counters::get(&a_n.requests), 2);
    get(gw.addr, &urls[2]).await; // evicts 1
    assert_eq!(Counters::get(&a_n.requests), 3);
    get(gw.addr, &urls[0]).await;
    assert_eq!(Counters::get(&a_n.requests), 3, "0 still cached");
    get(gw.addr, &urls[1]).await;
    assert_eq!(Counters::get(&a_n.requests), 4, "1 was evicted");
    gw.run.shutdown().await;
    a.shutdown().await;
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

    // Connection limit: 3 held, the 4th refused with 503 (long header timeout so the held
    // connections stay open on a slow host).
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg = gw_config("header_timeout: 30s\nmax_connections: 3\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    let mut held = Vec::new();
    for _ in 0..3 {
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

#[tokio::test]
async fn cache_entries_expire_by_validity_and_inactivity() {
    let c = cluster_with_files(&[300]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let url = format!("/group1/{}", c.ids[0]);
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));

    // Validity: "200": 1s → refetched once stale, even though it is used constantly.
    let data = tempfile::tempdir().unwrap();
    let cfg = gw_config("cache:\n  valid: {\"200\": 1s}\n  inactive: 1h\n");
    let gw = start_gateway(&cfg, data.path(), dir.clone()).await;
    get(gw.addr, &url).await;
    get(gw.addr, &url).await;
    assert_eq!(Counters::get(&a_n.requests), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(gw.addr, &url).await.status, 200);
    assert_eq!(Counters::get(&a_n.requests), 2, "stale entry refetched");
    gw.run.shutdown().await;

    // Inactive: 1s → an entry nobody asked for is dropped (valid for 12h or not).
    let data = tempfile::tempdir().unwrap();
    let cfg = gw_config("cache:\n  inactive: 1s\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    get(gw.addr, &url).await;
    assert_eq!(Counters::get(&a_n.requests), 3);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(get(gw.addr, &url).await.status, 200);
    assert_eq!(Counters::get(&a_n.requests), 4, "inactive entry dropped");
    gw.run.shutdown().await;
    a.shutdown().await;
}

fn token_query(id: &str, secret: &str, ts: u64) -> String {
    let t = fdfs_ha::storage::http::token::make_token(id, secret, ts);
    format!("token={t}&ts={ts}")
}

/// Issue 18.5: one cache entry per file whatever the spelling or token; tokens are checked before
/// a cached answer is served; a purge of any spelling removes it.
#[tokio::test]
async fn cache_key_is_the_normalised_path_and_tokens_are_checked_first() {
    let c = cluster_with_files(&[3000]);
    let anti = "  anti_steal:\n    secret_key: s3cret\n    token_ttl: 60s\n";
    let (a, a_n) = start_storage(&storage_config(c._store.path(), anti, ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg =
        gw_config("prefix: /dfs\ncache: {}\nanti_steal:\n  secret_key: s3cret\n  token_ttl: 60s\n");
    let gw = start_gateway(&cfg, data.path(), dir.clone()).await;
    let id = &c.ids[0];
    let now = now_unix() as u64;
    let url = format!("/dfs/group1/{id}?{}", token_query(id, "s3cret", now));
    let r = get(gw.addr, &url).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(r.body, c.contents[0]);
    // Another valid token, another spelling of the path: the same entry.
    let spelled = id.replace("M00", "%4D00");
    let other = format!(
        "/dfs/%67roup1/{spelled}?{}",
        token_query(id, "s3cret", now - 1)
    );
    let r = get(gw.addr, &other).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(r.body, c.contents[0]);
    assert_eq!(Counters::get(&a_n.requests), 1);
    // Expired, wrong or missing token: refused although the file is cached.
    let expired = format!("/dfs/group1/{id}?{}", token_query(id, "s3cret", now - 1000));
    assert_eq!(get(gw.addr, &expired).await.status, 403);
    let wrong = format!("/dfs/group1/{id}?{}", token_query(id, "other", now));
    assert_eq!(get(gw.addr, &wrong).await.status, 403);
    assert_eq!(get(gw.addr, &format!("/dfs/group1/{id}")).await.status, 403);
    assert_eq!(Counters::get(&a_n.requests), 1);
    // Purge one spelling (with the prefix or without, escaped): every spelling is gone.
    let r = get(gw.addr, &format!("/purge/dfs/%67roup1/{spelled}")).await;
    assert_eq!(r.status, 200, "purged");
    assert_eq!(
        get(gw.addr, &format!("/purge/group1/{id}")).await.status,
        404
    );
    let r = get(gw.addr, &url).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(Counters::get(&a_n.requests), 2);
    assert_eq!(
        get(gw.addr, &format!("/purge/group1/{id}")).await.status,
        200
    );
    gw.run.shutdown().await;

    // A gateway without the secret cannot judge tokens: tokened requests go to the storage.
    let cfg = gw_config("prefix: /dfs\ncache: {}\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    for _ in 0..2 {
        let r = get(gw.addr, &url).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some("BYPASS")));
    }
    assert_eq!(get(gw.addr, &expired).await.status, 403);
    assert_eq!(Counters::get(&a_n.requests), 5);
    gw.run.shutdown().await;
    a.shutdown().await;
}

/// Issue 18.10: a file up to and including max_size downloads (uncached when entry + header do
/// not fit), as nginx serves it.
#[tokio::test]
async fn files_up_to_max_size_download_uncached_when_they_do_not_fit() {
    let c = cluster_with_files(&[100_000, 99_990, 50_000]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let gw = start_gateway(&gw_config("cache:\n  max_size: 100000\n"), data.path(), dir).await;
    for (i, want_requests) in [(0, 2), (1, 4)] {
        for _ in 0..2 {
            let r = get(gw.addr, &format!("/group1/{}", c.ids[i])).await;
            assert_eq!(r.status, 200, "file {i}");
            assert_eq!(r.body, c.contents[i], "file {i}");
        }
        assert_eq!(
            Counters::get(&a_n.requests),
            want_requests,
            "file {i} uncached"
        );
    }
    for _ in 0..2 {
        let r = get(gw.addr, &format!("/group1/{}", c.ids[2])).await;
        assert_eq!(r.body, c.contents[2]);
    }
    assert_eq!(Counters::get(&a_n.requests), 5, "a fitting file is cached");
    gw.run.shutdown().await;
    a.shutdown().await;
}

/// Issue 22.1: one gateway serves every URL shape of the seeds at once (000: `/dfs` on :80 and
/// no prefix on :8000; 003: `/fastdfs`), one cache behind all of them.
#[tokio::test]
async fn several_listeners_each_with_its_prefixes_share_one_cache() {
    let c = cluster_with_files(&[2000]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg = gw_config(
        "listeners:\n  - listen: 127.0.0.1:0\n    prefixes: [/dfs, /fastdfs]\n  - listen: 127.0.0.1:0\n  - listen: 127.0.0.1:0\n    prefixes: [/dfs, \"\"]\ncache: {}\n",
    );
    let g = Gateway::bind_with_directory(&cfg, data.path(), dir)
        .await
        .unwrap();
    let addrs = g.local_addrs();
    assert_eq!(addrs.len(), 3);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(g.serve(stop.clone()));
    let id = &c.ids[0];
    let (front, bare, both) = (addrs[0], addrs[1], addrs[2]);
    let r = get(front, &format!("/dfs/group1/{id}")).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(r.body, c.contents[0]);
    for (addr, url) in [
        (front, format!("/fastdfs/group1/{id}")),
        (bare, format!("/group1/{id}")),
        (both, format!("/group1/{id}")),
        (both, format!("/dfs/group1/{id}")),
    ] {
        let r = get(addr, &url).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")), "{url}");
        assert_eq!(r.body, c.contents[0]);
    }
    assert_eq!(
        Counters::get(&a_n.requests),
        1,
        "one cache behind every listener"
    );
    assert_eq!(get(front, &format!("/group1/{id}")).await.status, 404);
    // Without a prefix `/dfs` reads as a group and the rest is no file name.
    assert_eq!(get(bare, &format!("/dfs/group1/{id}")).await.status, 400);
    assert_eq!(get(front, &format!("/dfsx/group1/{id}")).await.status, 404);
    stop.cancel();
    let _ = task.await;
    a.shutdown().await;
}

/// A free port on `ip` (the two gateways of a pair must know each other's address up front).
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Issue 22.2: the two gateways of a VRRP pair on 127.0.0.1 and 127.0.0.2. The "Master"'s misses
/// warm the peer (it fetches them from the storage itself), so after a failover the first
/// requests are hits; a purge answered by either (in the seeds' prefix-less shape) empties both.
#[tokio::test]
async fn peer_gateways_share_misses_and_purges() {
    let c = cluster_with_files(&[1000, 2000, 3000, 4000, 5000]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let conf = |me: &str, port: u16, peer: &str, peer_port: u16| {
        let yaml = format!(
            "listen: {me}:{port}\nprefix: /dfs\ntrackers: []\ncache: {{}}\npurge_allow: [127.0.0.0/8]\npeers: [\"{peer}:{peer_port}\"]\n"
        );
        serde_saphyr::from_str::<GatewayConfig>(&yaml).unwrap()
    };
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ga = Gateway::bind_with_directory(
        &conf("127.0.0.1", pa, "127.0.0.2", pb),
        data_a.path(),
        dir.clone(),
    )
    .await
    .unwrap();
    let gb =
        Gateway::bind_with_directory(&conf("127.0.0.2", pb, "127.0.0.1", pa), data_b.path(), dir)
            .await
            .unwrap();
    let (a_peers, b_peers) = (ga.peer_counters(), gb.peer_counters());
    let (a_cache, b_cache) = (ga.cache().unwrap(), gb.cache().unwrap());
    let (addr_a, addr_b) = (ga.local_addr(), gb.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    let ta = tokio::spawn(ga.serve(stop.clone()));
    let tb = tokio::spawn(gb.serve(stop.clone()));

    // The Master serves the hot files: misses, each passed to the peer.
    for (id, content) in c.ids.iter().zip(&c.contents) {
        let r = get(addr_a, &format!("/dfs/group1/{id}")).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
        assert_eq!(&r.body, content);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while a_peers.warm_sent.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a_peers.warm_sent.load(Ordering::Relaxed), 5);
    assert_eq!(b_cache.entries(), 5, "the peer filled its cache");
    assert_eq!(
        Counters::get(&a_n.requests),
        10,
        "each node fetched from the storage"
    );
    // "Failover": the peer's first requests are hits, and it does not send them back.
    for (id, content) in c.ids.iter().zip(&c.contents) {
        let r = get(addr_b, &format!("/dfs/group1/{id}")).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
        assert_eq!(&r.body, content);
    }
    assert_eq!(Counters::get(&a_n.requests), 10);
    assert_eq!(
        b_peers.warm_queued.load(Ordering::Relaxed),
        0,
        "warm-ups are not passed on"
    );

    // A purge on either node, in the seeds' shape without the prefix, removes it on both.
    let r = get(addr_b, &format!("/purge/group1/{}", c.ids[0])).await;
    assert_eq!(r.status, 200);
    assert_eq!((a_cache.entries(), b_cache.entries()), (4, 4));
    assert_eq!(b_peers.purge_forwarded.load(Ordering::Relaxed), 1);
    assert_eq!(
        a_peers.purge_forwarded.load(Ordering::Relaxed),
        0,
        "not forwarded back"
    );
    let r = request(addr_a, "PURGE", &format!("/dfs/group1/{}", c.ids[1]), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!((a_cache.entries(), b_cache.entries()), (3, 3));
    let r = get(addr_a, &format!("/dfs/group1/{}", c.ids[0])).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    stop.cancel();
    let _ = (ta.await, tb.await);
    a.shutdown().await;
}

/// A storage that answers 200 "ok" and records each request's headers (lower-case names).
async fn recording_storage() -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let headers = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                            .collect();
                        seen.lock().unwrap().push(headers);
                        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: image/jpeg\r\n\r\nok";
                        if s.write_all(r).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen, task)
}

fn header_of<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
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

/// Issue 22.3: `X-Cache: EXPIRED` when a stale entry is fetched again.
#[tokio::test]
async fn stale_entry_is_reported_expired() {
    let c = cluster_with_files(&[500]);
    let (a, a_n) = start_storage(&storage_config(c._store.path(), "", ""), None).await;
    let data = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemoryDirectory::new(view(&[("group1", &[a.addr])])));
    let cfg = gw_config("cache:\n  valid: {\"200\": 1s}\n");
    let gw = start_gateway(&cfg, data.path(), dir).await;
    let url = format!("/group1/{}", c.ids[0]);
    let status = |r: &Resp| r.header("x-cache").map(str::to_string);
    assert_eq!(status(&get(gw.addr, &url).await).as_deref(), Some("MISS"));
    assert_eq!(status(&get(gw.addr, &url).await).as_deref(), Some("HIT"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(gw.addr, &url).await;
    assert_eq!((r.status, status(&r).as_deref()), (200, Some("EXPIRED")));
    assert_eq!(r.body, c.contents[0]);
    assert_eq!(status(&get(gw.addr, &url).await).as_deref(), Some("HIT"));
    assert_eq!(Counters::get(&a_n.requests), 2);
    gw.run.shutdown().await;
    a.shutdown().await;
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

/// A log sink for one test: what a `tracing` subscriber writes, kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 18.4: refused HTTP requests (gateway and storage http) are logged at `info`, one line
/// per kind per 10 s with the count held back, and counted per kind (`/metrics` refusals).
#[tokio::test]
async fn http_refusals_are_logged_at_info_rate_limited_and_counted() {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    // A current-thread runtime: the servers' tasks log on this thread, to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
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
