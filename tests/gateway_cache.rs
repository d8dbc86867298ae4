//! Front gateway's disk cache on 127.0.0.1: hits without storages, restart, purge, single
//! flight, eviction, expiry, cache keys and tokens, files too big to cache, several listeners
//! and peer gateways sharing one cache.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "storage_http_support/mod.rs"]
mod support;

#[path = "gateway_support/mod.rs"]
mod gateway_support;

use fdfs_ha::config::GatewayConfig;
use fdfs_ha::gateway::directory::{ClusterView, MemoryDirectory};
use fdfs_ha::gateway::Gateway;
use fdfs_ha::http::server::Counters;
use gateway_support::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

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
