//! `/metrics` on the status listener of a real `fdfs-ha run`: the named families are there in
//! OpenMetrics text, and the storage's counters move after an upload and a download.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::{free_port, run, Node};
#[path = "storage_http_support/mod.rs"]
mod support;

use fdfs_ha::client::storage::StorageConn;
use std::path::Path;
use std::time::{Duration, Instant};

fn start(dir: &Path, port: u16, status: u16) -> Node {
    let yaml = format!(
        "node: metrics-test\ndata_dir: \"{}\"\nlog: {{ level: warn, protocol_log: \"{}\" }}\nstatus: {{ listen: \"127.0.0.1:{status}\" }}\n\
         storage:\n  group: group1\n  listen: 127.0.0.1:{port}\n  trackers: [\"127.0.0.1:1\"]\n  store_paths: [\"{}\"]\n  reserved_storage_space: 0%\n",
        dir.join("data").display(),
        dir.join("protocol.log").display(),
        dir.join("store0").display()
    );
    run(dir, &yaml)
}

/// GET `path` with a bare HTTP/1.0 request; the body.
fn get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    assert!(head.contains(" 200 "), "{head}");
    if path == "/metrics" {
        assert!(head.contains("application/openmetrics-text"), "{head}");
    }
    Some(body.to_string())
}

/// Reads until `done` holds or `within` has passed, and returns the last read: what a server
/// publishes just after answering is judged once it had time to appear.
async fn read_until(
    within: Duration,
    mut read: impl FnMut() -> String,
    done: impl Fn(&str) -> bool,
) -> String {
    let t0 = Instant::now();
    loop {
        let text = read();
        if done(&text) || t0.elapsed() > within {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a FastDFS header (`len` bytes of length, then `cmd`, status 0) and reads the answer
/// or the close.
async fn refused_header(port: u16, len: &[u8], cmd: u8) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut h = len.to_vec();
    h.extend([cmd, 0]);
    s.write_all(&h).await.unwrap();
    let mut answer = [0u8; 10];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut answer)).await;
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_families_exist_and_storage_counters_move() {
    let dir = tempfile::TempDir::new().unwrap();
    let (port, status) = (free_port(), free_port());
    let mut node = start(dir.path(), port, status);
    let t0 = Instant::now();
    let mut conn = loop {
        if let Ok(mut c) = StorageConn::connect(("127.0.0.1", port)).await {
            if c.active_test().await.is_ok() {
                break c;
            }
        }
        if let Ok(Some(s)) = node.0.try_wait() {
            panic!("fdfs-ha exited early: {s}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "storage did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let addr = format!("127.0.0.1:{status}");
    let families = [
        "# TYPE fdfs_ha_component_state gauge",
        "# TYPE fdfs_ha_component_restarts counter",
        "# TYPE fdfs_ha_storage_requests counter",
        "# TYPE fdfs_ha_storage_request_duration_seconds histogram",
        "# TYPE fdfs_ha_storage_file_bytes counter",
        "# TYPE fdfs_ha_storage_operations counter",
        "# TYPE fdfs_ha_storage_store_path_free_bytes gauge",
        "# TYPE fdfs_ha_storage_journal_pending gauge",
    ];
    // The supervisor publishes a component's state, and the storage its source, around the
    // time the storage first answers: scrape until all are there (or 20 s), then judge.
    let running = "fdfs_ha_component_state{component=\"storage\",state=\"running\"} 1";
    let before = read_until(
        Duration::from_secs(20),
        || get(&addr, "/metrics").expect("scrape"),
        |text| families.iter().all(|f| text.contains(f)) && text.contains(running),
    )
    .await;
    for family in families {
        assert!(before.contains(family), "{family} missing:\n{before}");
    }
    assert_eq!(
        sample(
            &before,
            "fdfs_ha_component_state{component=\"storage\",state=\"running\"}"
        ),
        Some(1.0),
        "{before}"
    );
    let up_ok = "fdfs_ha_storage_operations_total{op=\"upload\",result=\"ok\"}";
    let down_ok = "fdfs_ha_storage_operations_total{op=\"download\",result=\"ok\"}";
    let up_bytes = "fdfs_ha_storage_file_bytes_total{op=\"upload\"}";
    assert_eq!(sample(&before, up_ok), Some(0.0), "{before}");

    let data = vec![7u8; 10_000];
    let f = conn.upload(0, &data, "bin").await.unwrap();
    let back = conn.download(&f.group, &f.filename, 0, 0).await.unwrap();
    assert_eq!(back, data);

    // A download is counted once its last byte is written, which the client may see first.
    let after = read_until(
        Duration::from_secs(5),
        || get(&addr, "/metrics").expect("scrape"),
        |text| sample(text, down_ok) == Some(1.0),
    )
    .await;
    assert_eq!(sample(&after, up_ok), Some(1.0), "{after}");
    assert_eq!(sample(&after, down_ok), Some(1.0), "{after}");
    assert_eq!(sample(&after, up_bytes), Some(10_000.0), "{after}");
    assert_eq!(
        sample(
            &after,
            "fdfs_ha_storage_request_duration_seconds_count{command=\"upload_file\",result=\"ok\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert!(after.ends_with("# EOF\n"));
    // fsync is on by default: the 10,000-byte upload went through the upload journal (one
    // flush, one record), which the journal's own families show per store path.
    let flushes = "fdfs_ha_storage_journal_flushes_total{store_path=\"M00\"}";
    assert!(sample(&after, flushes).unwrap_or(0.0) >= 1.0, "{after}");
    let used = "fdfs_ha_storage_journal_active_segment_used_bytes{store_path=\"M00\"}";
    let settled = "fdfs_ha_storage_journal_settled_files_total{store_path=\"M00\"}";
    let unsettled = "fdfs_ha_storage_journal_unsettled_files{store_path=\"M00\"}";
    assert!(
        sample(&after, used).unwrap_or(0.0) >= 10_000.0
            || sample(&after, settled).unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    // The file settles with the next binlog flush (binlog_flush_interval, 1 s by default).
    let settled_text = read_until(
        Duration::from_secs(10),
        || get(&addr, "/metrics").expect("scrape"),
        |text| sample(text, settled) == Some(1.0),
    )
    .await;
    assert_eq!(
        sample(&settled_text, unsettled),
        Some(0.0),
        "{settled_text}"
    );
    assert_eq!(
        sample(
            &settled_text,
            "fdfs_ha_storage_journal_failed{store_path=\"M00\"}"
        ),
        Some(0.0),
        "{settled_text}"
    );

    // A header with a negative length is refused, logged once and counted by reason.
    refused_header(port, &[0xFF; 8], 11).await;
    let text = read_until(
        Duration::from_secs(5),
        || get(&addr, "/metrics").expect("scrape"),
        |text| text.contains("reason=\"bad_header\""),
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "fdfs_ha_refusals_total{component=\"storage\",reason=\"bad_header\"}"
        ),
        Some(1.0),
        "{text}"
    );

    // The protocol access log has the client's upload and download, not its ACTIVE_TEST.
    let log = read_until(
        Duration::from_secs(5),
        || std::fs::read_to_string(dir.path().join("protocol.log")).unwrap(),
        |log| log.lines().count() >= 2,
    )
    .await;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("127.0.0.1 [") && lines[0].contains("] upload_file 0 "),
        "{log}"
    );
    assert!(lines[1].contains("] download_file 0 "), "{log}");

    // The status document and its text rendering show the storage: group, store path, free space.
    let doc: serde_json::Value =
        serde_json::from_str(&get(&addr, "/status").expect("status")).unwrap();
    assert_eq!(doc["roles"]["storage"]["group"], "group1", "{doc}");
    let text = fdfs_ha::supervisor::status::render_text(&doc);
    assert!(text.contains("Storage: group group1"), "{text}");
    assert!(
        text.contains("store path") && text.contains("MB of"),
        "{text}"
    );
    assert!(
        text.contains("upload journal M00: ok; 0 files not settled yet"),
        "{text}"
    );
}

/// A tracker counts its requests by command and result, and times them.
#[tokio::test]
async fn tracker_requests_are_counted_by_command_and_result() {
    let dir = tempfile::TempDir::new().unwrap();
    let (port, status) = (free_port(), free_port());
    let yaml = format!(
        "node: metrics-tracker\ndata_dir: \"{}\"\nlog: {{ level: warn }}\nstatus: {{ listen: \"127.0.0.1:{status}\" }}\n\
         tracker:\n  listen: 127.0.0.1:{port}\n",
        dir.path().join("data").display(),
    );
    let _node = run(dir.path(), &yaml);
    let t0 = Instant::now();
    let mut conn = loop {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            break c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "tracker did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // No storage has joined: both queries are refused with ENOENT, and counted as such.
    for _ in 0..2 {
        let refused = fdfs_ha::client::tracker::query_store(&mut conn, None).await;
        assert!(refused.is_err(), "{refused:?}");
    }
    // A command the tracker does not know is refused and counted by reason.
    refused_header(port, &0u64.to_be_bytes(), 250).await;
    let addr = format!("127.0.0.1:{status}");
    let text = read_until(
        Duration::from_secs(5),
        || get(&addr, "/metrics").expect("scrape"),
        |text| text.contains("reason=\"unknown_command\""),
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "fdfs_ha_refusals_total{component=\"tracker\",reason=\"unknown_command\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        text.matches("# TYPE fdfs_ha_tracker_requests ").count(),
        1,
        "{text}"
    );
    let series =
        "fdfs_ha_tracker_requests_total{command=\"query_store_without_group_one\",result=\"ENOENT\"}";
    assert_eq!(sample(&text, series), Some(2.0), "{text}");
    assert!(
        text.contains("# TYPE fdfs_ha_tracker_request_duration_seconds histogram"),
        "{text}"
    );
}

/// Issue 18.1/18.2/19.1: who was turned away shows in `/metrics` by component and reason: a
/// host outside allow_hosts (tracker and storage), one over the per-address cap, a JOIN over
/// max_groups, a replication command from a host that is not a storage of the group.
#[tokio::test]
async fn refusals_of_strangers_and_caps_are_counted_by_reason() {
    use fdfs_ha::proto::cmd::{self, errno};
    use fdfs_ha::proto::connection::{read_message, write_message};
    use node_support::{closed_silently, connect_from, join};
    let dir = tempfile::TempDir::new().unwrap();
    let (tport, sport, status) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "node: metrics-refusals\ndata_dir: \"{}\"\nlog: {{ level: warn }}\nstatus: {{ listen: \"127.0.0.1:{status}\" }}\n\
         tracker:\n  listen: 127.0.0.1:{tport}\n  allow_hosts: [\"127.0.0.[1-9]\"]\n  max_connections_per_ip: 3\n  max_groups: 1\n\
         storage:\n  group: group1\n  listen: 127.0.0.1:{sport}\n  trackers: [\"127.0.0.1:{tport}\"]\n  store_paths: [\"{}\"]\n  reserved_storage_space: 0%\n  allow_hosts: [\"127.0.0.[1-9]\"]\n",
        dir.path().join("data").display(),
        dir.path().join("store0").display()
    );
    let _node = run(dir.path(), &yaml);
    let addr = format!("127.0.0.1:{status}");
    // The node's storage holds the one group max_groups allows.
    let joined = "fdfs_ha_tracker_storages{group=\"group1\"";
    let text = read_until(
        Duration::from_secs(20),
        || get(&addr, "/metrics").unwrap_or_default(),
        |text| text.contains(joined),
    )
    .await;
    assert!(text.contains(joined), "storage never joined:\n{text}");
    let (tracker, storage) = (
        format!("127.0.0.1:{tport}").parse().unwrap(),
        format!("127.0.0.1:{sport}").parse().unwrap(),
    );
    let limit = Duration::from_secs(5);
    for to in [tracker, storage] {
        let mut s = connect_from("127.0.0.50", to).await;
        assert!(
            closed_silently(&mut s, limit).await,
            "{to}: stranger let in"
        );
    }
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.5", tracker).await;
        write_message(&mut s, cmd::ACTIVE_TEST, 0, &[])
            .await
            .unwrap();
        assert_eq!(read_message(&mut s, 16).await.unwrap().0.status, 0);
        held.push(s);
    }
    let mut fourth = connect_from("127.0.0.5", tracker).await;
    assert!(closed_silently(&mut fourth, limit).await, "over the cap");
    let mut s = connect_from("127.0.0.6", tracker).await;
    write_message(&mut s, cmd::STORAGE_JOIN, 0, &join("group2", 23000))
        .await
        .unwrap();
    assert_ne!(read_message(&mut s, 1024).await.unwrap().0.status, 0);
    let del = fdfs_ha::proto::storage::SyncDeleteReq {
        timestamp: 1,
        group: "group1".into(),
        filename: "M00/00/00/x.txt".into(),
    }
    .encode();
    let mut s = connect_from("127.0.0.7", storage).await;
    write_message(&mut s, cmd::SYNC_DELETE_FILE, 0, &del)
        .await
        .unwrap();
    let (h, _) = tokio::time::timeout(Duration::from_secs(10), read_message(&mut s, 16))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.status, errno::EACCES);
    let series = [
        ("tracker", "not_allowed"),
        ("storage", "not_allowed"),
        ("tracker", "per_ip_cap"),
        ("tracker", "join_cap"),
        ("storage", "sync_stranger"),
    ]
    .map(|(c, r)| format!("fdfs_ha_refusals_total{{component=\"{c}\",reason=\"{r}\"}}"));
    let text = read_until(
        Duration::from_secs(5),
        || get(&addr, "/metrics").expect("scrape"),
        |text| series.iter().all(|s| sample(text, s).is_some()),
    )
    .await;
    for s in &series {
        // At least the one sent here (the node's own storage may have been refused too).
        assert!(sample(&text, s).unwrap_or(0.0) >= 1.0, "{s}:\n{text}");
    }
    drop(held);
}

/// The gateway's families move with real events: a failed storage (per storage and reason), a
/// cache miss, hit and expiry, a purge its dead peer did not take, refused requests (gateway and
/// storage http), connections.
#[tokio::test]
async fn gateway_and_storage_http_metrics_move_with_real_events() {
    use fdfs_ha::gateway::directory::{ClusterView, MemoryDirectory, StorageNode};
    use fdfs_ha::http::observe::{HttpSource, Observer};
    use fdfs_ha::metrics::Metrics;
    use std::sync::Arc;

    let store = tempfile::TempDir::new().unwrap();
    let content = vec![5u8; 3000];
    let name = support::name_for(support::localhost(), support::now_unix(), &content, "jpg");
    let id = support::place(store.path(), &name, &content);
    let (live, live_counters) =
        support::start_storage(&support::storage_config(store.path(), "", ""), None).await;
    let dead = support::dead_addr().await;
    let dead_peer = support::dead_addr().await;
    let node = |a: std::net::SocketAddr| StorageNode {
        id: a.to_string(),
        ip: a.ip(),
        port: 23000,
        http_port: a.port(),
    };
    let view = |addrs: &[std::net::SocketAddr]| ClusterView {
        groups: [(
            "group1".to_string(),
            addrs.iter().map(|a| node(*a)).collect(),
        )]
        .into(),
    };
    let dir = Arc::new(MemoryDirectory::new(view(&[dead])));
    let cfg: fdfs_ha::config::GatewayConfig = serde_saphyr::from_str(&format!(
        "listen: 127.0.0.1:0\ntrackers: []\npurge_allow: [127.0.0.1/32]\npeers: [\"{dead_peer}\"]\n\
         upstream: {{ max_fails: 0 }}\ncache: {{ valid: {{ \"200\": 1s }} }}\n"
    ))
    .unwrap();
    let data = tempfile::TempDir::new().unwrap();
    let obs = Observer::new("gateway", Default::default(), true);
    let requests = obs.requests.clone();
    let gw = fdfs_ha::gateway::Gateway::bind_with_directory(&cfg, data.path(), dir.clone())
        .await
        .unwrap()
        .with_observer(obs);
    let addr = gw.local_addr();
    let metrics = Metrics::new();
    let source = fdfs_ha::gateway::metrics::GatewaySource {
        http: HttpSource {
            component: "gateway",
            requests,
            counters: gw.counters(),
        },
        cache: gw.cache(),
        upstreams: gw.upstreams(),
        peers: gw.peer_counters(),
    };
    metrics.set_source("gateway", Arc::new(source));
    let sh = HttpSource {
        component: "storage_http",
        requests: fdfs_ha::metrics::HttpRequests::new("storage_http"),
        counters: live_counters,
    };
    metrics.set_source("storage_http", Arc::new(sh));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(gw.serve(stop.clone()));

    let url = format!("/group1/{id}");
    // Only the dead storage is listed: the request fails, counted against that storage.
    assert_eq!(support::get(addr, &url).await.status, 502);
    dir.set(view(&[live.addr]));
    assert_eq!(support::get(addr, &url).await.status, 200); // miss
    assert_eq!(support::get(addr, &url).await.status, 200); // hit
                                                            // Entries are valid for 1 s (whole seconds): past that, the next request refetches.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = support::get(addr, &url).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("EXPIRED")));
    // A purge is forwarded to the (dead) peer gateway, which fails.
    let r = support::request(addr, "PURGE", &url, &[]).await;
    assert_eq!(r.status, 200);
    // Refused requests, at the gateway and at the storage http.
    assert_eq!(support::get(addr, "/group1/M00/../x").await.status, 400);
    assert_eq!(
        support::get(live.addr, "/group1/M00/../x").await.status,
        400
    );

    let text = metrics.render();
    for (series, want) in [
        (
            format!(
                "fdfs_ha_gateway_upstream_failures_total{{storage=\"{dead}\",reason=\"error\"}}"
            ),
            1.0,
        ),
        // The failed first request was a miss too.
        (
            "fdfs_ha_gateway_cache_lookups_total{result=\"miss\"}".into(),
            2.0,
        ),
        (
            "fdfs_ha_gateway_cache_lookups_total{result=\"hit\"}".into(),
            1.0,
        ),
        (
            "fdfs_ha_gateway_cache_lookups_total{result=\"expired\"}".into(),
            1.0,
        ),
        // The purge removed the one entry.
        ("fdfs_ha_gateway_cache_entries".into(), 0.0),
        ("fdfs_ha_gateway_cache_size_bytes".into(), 0.0),
        (
            "fdfs_ha_gateway_peer_purges_total{result=\"failed\"}".into(),
            1.0,
        ),
        (
            "fdfs_ha_gateway_peer_purges_total{result=\"ok\"}".into(),
            0.0,
        ),
        (
            "fdfs_ha_refusals_total{component=\"gateway\",reason=\"bad_request\"}".into(),
            1.0,
        ),
        (
            "fdfs_ha_refusals_total{component=\"storage_http\",reason=\"bad_request\"}".into(),
            1.0,
        ),
        ("fdfs_ha_gateway_connections_total".into(), 6.0),
        (
            "fdfs_ha_gateway_requests_total{command=\"GET\",result=\"502\"}".into(),
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
    }
    stop.cancel();
    let _ = task.await;
    live.shutdown().await;
}

/// Issue 18.8: a store path whose data directory is gone takes no new files; uploads, even
/// those the tracker sent to it, land on the other path; status and metrics name it.
#[tokio::test]
async fn an_unwritable_store_path_is_skipped_and_shown() {
    let dir = tempfile::TempDir::new().unwrap();
    let (port, status) = (free_port(), free_port());
    let (m0, m1) = (dir.path().join("store0"), dir.path().join("store1"));
    let yaml = format!(
        "node: store-path-test\ndata_dir: \"{}\"\nlog: {{ level: warn }}\nstatus: {{ listen: \"127.0.0.1:{status}\" }}\n\
         storage:\n  group: group1\n  listen: 127.0.0.1:{port}\n  trackers: [\"127.0.0.1:1\"]\n  store_paths: [\"{}\", \"{}\"]\n  reserved_storage_space: 0%\n",
        dir.path().join("data").display(),
        m0.display(),
        m1.display()
    );
    let mut node = run(dir.path(), &yaml);
    let t0 = Instant::now();
    let mut conn = loop {
        if let Ok(mut c) = StorageConn::connect(("127.0.0.1", port)).await {
            if c.active_test().await.is_ok() {
                break c;
            }
        }
        if let Ok(Some(s)) = node.0.try_wait() {
            panic!("fdfs-ha exited early: {s}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "storage did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let f = conn.upload(1, b"before", "txt").await.unwrap();
    assert!(f.filename.starts_with("M01/"), "{}", f.filename);
    std::fs::remove_dir_all(m1.join("data")).unwrap();
    for i in 0..5 {
        let data = format!("after {i}");
        let f = conn.upload(1, data.as_bytes(), "txt").await.unwrap();
        assert!(f.filename.starts_with("M00/"), "{}", f.filename);
        let back = conn.download(&f.group, &f.filename, 0, 0).await.unwrap();
        assert_eq!(back, data.as_bytes());
    }
    let addr = format!("127.0.0.1:{status}");
    let metrics = get(&addr, "/metrics").expect("scrape");
    let series = |i: u8, p: &Path| {
        format!(
            "fdfs_ha_storage_store_path_writable{{store_path=\"M{i:02}\",path=\"{}\"}}",
            p.display()
        )
    };
    assert_eq!(sample(&metrics, &series(0, &m0)), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, &series(1, &m1)), Some(0.0), "{metrics}");
    let doc: serde_json::Value =
        serde_json::from_str(&get(&addr, "/status").expect("status")).unwrap();
    let paths = &doc["roles"]["storage"]["store_paths"];
    assert!(paths[0]["unwritable"].is_null(), "{doc}");
    assert!(
        paths[1]["unwritable"].as_str().unwrap().contains("missing"),
        "{doc}"
    );
    assert_eq!(paths[1]["free_mb"], 0, "{doc}");
    let text = fdfs_ha::supervisor::status::render_text(&doc);
    let line = text
        .lines()
        .find(|l| l.contains(&m1.display().to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("UNWRITABLE"), "{text}");
}
