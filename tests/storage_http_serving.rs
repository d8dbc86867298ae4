//! Storage-side HTTP over a temp store on 127.0.0.1: serving, validators, ranges, fallback to
//! the source storage for files not replicated yet, anti-steal tokens, and hostile input.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "storage_http_support/mod.rs"]
mod support;

use fdfs_ha::http::server::{Counters, LOOPBACK_RESERVE};
use fdfs_ha::proto::fileid::Source;
use fdfs_ha::storage::http::token::make_token;
use fdfs_ha::storage::http::MapResolver;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn get_and_head_with_type_validators_and_ranges() {
    let store = tempfile::tempdir().unwrap();
    let content = b"0123456789abcdef".repeat(64);
    let created = now_unix() - 100;
    let name = name_for(localhost(), created, &content, "jpg");
    let id = place(store.path(), &name, &content);
    let cfg = storage_config(store.path(), "", "");
    let (srv, _) = start_storage(&cfg, None).await;
    let url = format!("/group1/{id}");

    let r = get(srv.addr, &url).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("content-length"), Some("1024"));
    let etag = r.header("etag").expect("etag").to_string();
    let lm = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    // Last-Modified is the create time from the file ID, identical on every replica.
    assert_eq!(
        httpdate::parse_http_date(&lm).unwrap(),
        std::time::UNIX_EPOCH + Duration::from_secs(created as u64)
    );

    let h = request(srv.addr, "HEAD", &url, &[]).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("1024"));

    let r = request(srv.addr, "GET", &url, &[("Range", "bytes=10-19")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &content[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1024"));
    let r = request(srv.addr, "GET", &url, &[("Range", "bytes=-4")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &content[1020..]));
    let r = request(srv.addr, "GET", &url, &[("Range", "bytes=5000-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1024"));

    let r = request(srv.addr, "GET", &url, &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(srv.addr, "GET", &url, &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status, 304);
    let older =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(created as u64 - 10));
    let r = request(srv.addr, "GET", &url, &[("If-Modified-Since", &older)]).await;
    assert_eq!(r.status, 200);

    let r = get(srv.addr, &format!("{url}?filename=report.jpg")).await;
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report.jpg\"")
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn large_file_streams_intact() {
    let store = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let name = name_for(localhost(), now_unix(), &content, "bin");
    let id = place(store.path(), &name, &content);
    let (srv, counters) = start_storage(&storage_config(store.path(), "", ""), None).await;
    let r = get(srv.addr, &format!("/group1/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), content.len());
    assert!(r.body == content);
    // It left through sendfile, not through a user-space copy.
    assert_eq!(Counters::get(&counters.sendfile_responses), 1);
    let r = request(
        srv.addr,
        "GET",
        &format!("/group1/{id}"),
        &[("Range", "bytes=1000000-2999999")],
    )
    .await;
    assert_eq!(r.status, 206);
    assert!(r.body == content[1_000_000..3_000_000]);
    srv.shutdown().await;
}

/// sendfile bodies between ordinary ones on one kept-alive connection, requests pipelined: each
/// response has exactly its bytes, in order (the marker frames of one response never leak into
/// the next).
#[tokio::test]
async fn sendfile_and_copied_bodies_interleave_on_one_connection() {
    let store = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(5 << 20) + 4099)
        .map(|i| (i * 13 % 253) as u8)
        .collect();
    let small: Vec<u8> = (0..4096).map(|i| (i * 3 % 241) as u8).collect();
    let big_id = place(
        store.path(),
        &name_for(localhost(), now_unix(), &big, "bin"),
        &big,
    );
    let small_id = place(
        store.path(),
        &name_for(localhost(), now_unix(), &small, "jpg"),
        &small,
    );
    let (srv, counters) = start_storage(&storage_config(store.path(), "", ""), None).await;
    let (b, s) = (format!("/group1/{big_id}"), format!("/group1/{small_id}"));
    let mut req = String::new();
    for (target, extra) in [
        (&b, ""),
        (&s, ""),
        (&b, "Range: bytes=100000-\r\n"),
        (&b, ""),
        (&s, "Range: bytes=10-19\r\n"),
    ] {
        req.push_str(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
    }
    req.push_str(&format!("HEAD {b} HTTP/1.1\r\nHost: x\r\n\r\n"));
    req.push_str(&format!(
        "GET {s} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    // A small receive window and a late reader: sendfile sends part of a body, waits, and goes
    // on from where it stopped.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(8 * 1024).unwrap();
    let mut conn = sock.connect(srv.addr).await.unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut buf = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    let want: [(u16, &[u8]); 7] = [
        (200, &big),
        (200, &small),
        (206, &big[100_000..]),
        (200, &big),
        (206, &small[10..20]),
        (200, b""),
        (200, &small),
    ];
    let mut rest = buf.as_slice();
    for (i, (status, body)) in want.iter().enumerate() {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = parse_response(&rest[..end]);
        assert_eq!(head.status, *status, "response {i}");
        let len: usize = head.header("content-length").unwrap().parse().unwrap();
        let len = if i == 5 { 0 } else { len };
        assert!(&rest[end..end + len] == *body, "body of response {i}");
        rest = &rest[end + len..];
    }
    assert!(rest.is_empty(), "{} stray bytes", rest.len());
    // The three big GETs went out with sendfile; the 4 KiB ones and the HEAD did not.
    assert_eq!(Counters::get(&counters.sendfile_responses), 3);
    srv.shutdown().await;
}

#[tokio::test]
async fn url_without_group_name() {
    let store = tempfile::tempdir().unwrap();
    let name = name_for(localhost(), now_unix(), b"x", "txt");
    let id = place(store.path(), &name, b"x");
    let cfg = storage_config(store.path(), "  url_have_group_name: false\n", "");
    let (srv, _) = start_storage(&cfg, None).await;
    let r = get(srv.addr, &format!("/{id}")).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"x".as_slice()));
    assert_eq!(get(srv.addr, &format!("/group1/{id}")).await.status, 400);
    srv.shutdown().await;
}

/// Replication lag: the file exists only on its source; the replica streams it from there.
#[tokio::test]
async fn missing_file_is_fetched_from_its_source() {
    let src_store = tempfile::tempdir().unwrap();
    let rep_store = tempfile::tempdir().unwrap();
    let content = b"fresh upload not yet replicated".repeat(100);
    let by_ip = name_for(localhost(), now_unix(), &content, "txt");
    let by_id = name_for(Source::Id(100001), now_unix(), &content, "txt");
    let id_ip = place(src_store.path(), &by_ip, &content);
    let id_id = place(src_store.path(), &by_id, &content);
    let (source, source_count) =
        start_storage(&storage_config(src_store.path(), "", ""), None).await;

    let http = format!("  source_port: {}\n", source.addr.port());
    let resolver = Arc::new(MapResolver(HashMap::from([(
        100001,
        "127.0.0.1".parse().unwrap(),
    )])));
    let (replica, _) = start_storage(
        &storage_config(rep_store.path(), &http, "id: \"100002\""),
        Some(resolver),
    )
    .await;

    let r = get(replica.addr, &format!("/group1/{id_ip}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
    let r = get(replica.addr, &format!("/group1/{id_id}")).await;
    assert_eq!(r.status, 200, "source by storage id");
    assert_eq!(r.body, content);
    let r = request(
        replica.addr,
        "GET",
        &format!("/group1/{id_ip}"),
        &[("Range", "bytes=0-4")],
    )
    .await;
    assert_eq!((r.status, r.body.as_slice()), (206, b"fresh".as_slice()));
    assert!(Counters::get(&source_count.requests) >= 3);

    // Never proxied twice: a request already forwarded once is refused, not bounced.
    let r = get(replica.addr, &format!("/group1/{id_ip}?redirect=1")).await;
    assert_eq!(r.status, 400);
    // Gone for good: older than sync_file_max_delay → 404 without asking the source.
    let before = Counters::get(&source_count.requests);
    let old = name_for(localhost(), now_unix() - 2 * 86400, b"old", "txt");
    assert_eq!(
        get(replica.addr, &format!("/group1/M00/0A/0B/{old}"))
            .await
            .status,
        404
    );
    // Created by this storage itself (id 100002) → 404.
    let mine = name_for(Source::Id(100002), now_unix(), b"m", "txt");
    assert_eq!(
        get(replica.addr, &format!("/group1/M00/0A/0B/{mine}"))
            .await
            .status,
        404
    );
    assert_eq!(Counters::get(&source_count.requests), before);
    // Unknown storage id → 502, never a 404 for a possibly uploaded file.
    let unknown = name_for(Source::Id(777), now_unix(), b"u", "txt");
    assert_eq!(
        get(replica.addr, &format!("/group1/M00/0A/0B/{unknown}"))
            .await
            .status,
        502
    );
    replica.shutdown().await;

    // response_mode: redirect → 302 to the source with the loop marker.
    let http = format!(
        "  source_port: {}\n  response_mode: redirect\n",
        source.addr.port()
    );
    // The trackers list the source (127.0.0.1) in the group.
    let listed = Arc::new(MapResolver(HashMap::from([(
        100001,
        "127.0.0.1".parse().unwrap(),
    )])));
    let (redirector, _) =
        start_storage(&storage_config(rep_store.path(), &http, ""), Some(listed)).await;
    let r = get(redirector.addr, &format!("/group1/{id_ip}?x=1")).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "http://127.0.0.1:{}/group1/{id_ip}?x=1&redirect=1",
                source.addr.port()
            )
            .as_str()
        )
    );
    redirector.shutdown().await;
    source.shutdown().await;
}

/// Issue 24.2: a storage killed while it replicated a file to us. The bytes it had sent land a
/// moment after a client asked us for the file; until the last one lands, the file on disk is
/// shorter than its name says. Neither may turn into a truncated 200 or a 502.
#[tokio::test]
async fn a_replica_landing_after_its_source_died_is_served_whole() {
    let store = tempfile::tempdir().unwrap();
    let dead = dead_addr().await;
    let http = format!("  source_port: {}\n", dead.port());
    let listed = Arc::new(MapResolver(HashMap::from([(
        100001,
        "127.0.0.1".parse().unwrap(),
    )])));
    let (replica, _) = start_storage(&storage_config(store.path(), &http, ""), Some(listed)).await;
    let content = b"replicated a moment too late ".repeat(200);
    let land_later = |name: String, delay_ms: u64| {
        let (dir, content) = (store.path().to_path_buf(), content.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            place(&dir, &name, &content);
        })
    };

    // Not here yet; it lands 50 ms after the request, its source already gone.
    let missing = name_for(localhost(), now_unix(), &content, "txt");
    let landing = land_later(missing.clone(), 50);
    let r = get(replica.addr, &format!("/group1/M00/0A/0B/{missing}")).await;
    assert_eq!((r.status, r.body.len()), (200, content.len()));
    landing.await.unwrap();

    // Half written when asked, whole 50 ms later.
    let partial = name_for(localhost(), now_unix(), &content, "bin");
    place(store.path(), &partial, &content[..content.len() / 2]);
    let landing = land_later(partial.clone(), 50);
    let r = get(replica.addr, &format!("/group1/M00/0A/0B/{partial}")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body == content,
        "served {} of {} bytes",
        r.body.len(),
        content.len()
    );
    landing.await.unwrap();

    // Half written for good (its source gone): a gateway error, never a truncated 200.
    let torn = name_for(localhost(), now_unix(), &content, "dat");
    place(store.path(), &torn, &content[..100]);
    let r = get(replica.addr, &format!("/group1/M00/0A/0B/{torn}")).await;
    assert_eq!(r.status, 502, "{:?}", String::from_utf8_lossy(&r.body));
    replica.shutdown().await;
}

/// Issue 18 F9: a crafted file ID naming any IPv4 address made the storage fetch from it and
/// relay the answer. Only storages the trackers list in the group are asked.
#[tokio::test]
async fn missing_file_is_never_fetched_from_an_address_outside_the_group() {
    let rep_store = tempfile::tempdir().unwrap();
    let bait = tokio::net::TcpListener::bind("127.0.0.99:0").await.unwrap();
    let http = format!("  source_port: {}\n", bait.local_addr().unwrap().port());
    let listed = Arc::new(MapResolver(HashMap::from([(
        100001,
        "127.0.0.1".parse().unwrap(),
    )])));
    let (replica, counters) =
        start_storage(&storage_config(rep_store.path(), &http, ""), Some(listed)).await;
    let src = Source::Ip(std::net::Ipv4Addr::new(127, 0, 0, 99));
    let name = name_for(src, now_unix(), b"x", "txt");
    let r = get(replica.addr, &format!("/group1/M00/0A/0B/{name}")).await;
    assert_eq!(r.status, 502);
    assert!(Counters::get(&counters.bad_requests) >= 1);
    // Answered without connecting: nothing waits in the bait's accept queue.
    let tried = tokio::time::timeout(Duration::from_millis(200), bait.accept()).await;
    assert!(tried.is_err(), "the storage connected to 127.0.0.99");
    replica.shutdown().await;
}

/// A group list that lacks the source until it is read again (the source joined after our
/// last read, or the trackers had not answered yet at start-up); counts the reads asked for.
struct LateList {
    now: std::sync::Mutex<Vec<std::net::IpAddr>>,
    later: Vec<std::net::IpAddr>,
    reads: std::sync::atomic::AtomicUsize,
}

impl fdfs_ha::storage::http::SourceResolver for LateList {
    fn resolve(&self, _id: u32) -> Option<std::net::IpAddr> {
        None
    }
    fn is_member(&self, ip: std::net::IpAddr) -> bool {
        self.now.lock().unwrap().contains(&ip)
    }
    fn refreshed(&self) -> futures::future::BoxFuture<'_, ()> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.now.lock().unwrap() = self.later.clone();
        Box::pin(async {})
    }
}

/// Issue 24.1: at start-up a storage's list lacked a source that had just joined, so the first
/// requests for its new files got 502 until the next periodic read. A missing source is looked
/// up on a list read after the request came; a stranger is still refused on that list.
#[tokio::test]
async fn a_source_missing_from_an_old_list_is_followed_after_a_fresh_read() {
    let src_store = tempfile::tempdir().unwrap();
    let rep_store = tempfile::tempdir().unwrap();
    let content = b"uploaded to a storage that joined a moment ago".to_vec();
    let name = name_for(localhost(), now_unix(), &content, "txt");
    let id = place(src_store.path(), &name, &content);
    let (source, _) = start_storage(&storage_config(src_store.path(), "", ""), None).await;
    let list = Arc::new(LateList {
        now: Default::default(),
        later: vec!["127.0.0.1".parse().unwrap()],
        reads: Default::default(),
    });
    let http = format!("  source_port: {}\n", source.addr.port());
    let (replica, _) = start_storage(
        &storage_config(rep_store.path(), &http, ""),
        Some(list.clone()),
    )
    .await;
    let r = get(replica.addr, &format!("/group1/{id}")).await;
    assert_eq!((r.status, r.body), (200, content));
    assert_eq!(list.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Listed now: no further read.
    assert_eq!(
        get(replica.addr, &format!("/group1/{id}")).await.status,
        200
    );
    assert_eq!(list.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Not on the fresh list either: refused.
    let src = Source::Ip(std::net::Ipv4Addr::new(127, 0, 0, 99));
    let stranger = name_for(src, now_unix(), b"x", "txt");
    let r = get(replica.addr, &format!("/group1/M00/0A/0B/{stranger}")).await;
    assert_eq!(r.status, 502);
    replica.shutdown().await;
    source.shutdown().await;
}

#[tokio::test]
async fn anti_steal_token() {
    let store = tempfile::tempdir().unwrap();
    let name = name_for(localhost(), now_unix(), b"secret", "txt");
    let id = place(store.path(), &name, b"secret");
    let http = "  anti_steal:\n    secret_key: FastDFS1234567890\n    token_ttl: 60s\n";
    let (srv, counters) = start_storage(&storage_config(store.path(), http, ""), None).await;
    let now = now_unix() as u64;
    let good = make_token(&id, "FastDFS1234567890", now);
    let r = get(srv.addr, &format!("/group1/{id}?token={good}&ts={now}")).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"secret".as_slice()));
    let wrong = make_token(&id, "other", now);
    assert_eq!(
        get(srv.addr, &format!("/group1/{id}?token={wrong}&ts={now}"))
            .await
            .status,
        403
    );
    let old = now - 120;
    let expired = make_token(&id, "FastDFS1234567890", old);
    assert_eq!(
        get(srv.addr, &format!("/group1/{id}?token={expired}&ts={old}"))
            .await
            .status,
        403
    );
    assert_eq!(
        get(srv.addr, &format!("/group1/{id}?token=abc&ts={now}"))
            .await
            .status,
        403
    );
    assert_eq!(get(srv.addr, &format!("/group1/{id}")).await.status, 403);
    assert!(Counters::get(&counters.bad_requests) >= 4);
    srv.shutdown().await;

    // check_fail_file: its content with 200 instead of 403.
    let fail = store.path().join("denied.png");
    std::fs::write(&fail, b"PNGDENIED").unwrap();
    let http = format!(
        "  anti_steal:\n    secret_key: k\n    check_fail_file: {}\n",
        fail.display()
    );
    let (srv, _) = start_storage(&storage_config(store.path(), &http, ""), None).await;
    let r = get(srv.addr, &format!("/group1/{id}?token={wrong}&ts={now}")).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"PNGDENIED".as_slice())
    );
    assert_eq!(r.header("content-type"), Some("image/png"));
    srv.shutdown().await;
}

#[tokio::test]
async fn hostile_paths_never_leave_the_store() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(root.path().join("secret.txt"), b"TOP SECRET").unwrap();
    let name = name_for(localhost(), now_unix(), b"ok", "txt");
    place(&store, &name, b"ok");
    let (srv, counters) = start_storage(&storage_config(&store, "", ""), None).await;
    for (target, want) in [
        ("/group1/M00/0A/0B/../../../../secret.txt", 400),
        ("/group1/M00/0A/0B/..%2F..%2F..%2F..%2Fsecret.txt", 400),
        ("/group1/M00/0A/0B/%2e%2e/%2e%2e/%2e%2e/secret.txt", 400),
        ("/group1/M00/0A/0B/%2E%2E%5C%2E%2E%5Csecret.txt", 400),
        ("/group1/M00/0A/0B/abc%00.txt", 400),
        ("/group1/M00/0A/0B/%zz", 400),
        ("/group1/M00/../../secret.txt", 400),
        ("/../secret.txt", 400),
    ] {
        let r = get(srv.addr, target).await;
        assert_eq!(r.status, want, "{target}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("TOP SECRET"),
            "{target}"
        );
    }
    let long = format!("/group1/M00/0A/0B/{}", "A".repeat(3000));
    assert_eq!(get(srv.addr, &long).await.status, 414);
    let big_header = "x".repeat(20 * 1024);
    let r = request(
        srv.addr,
        "GET",
        &format!("/group1/M00/0A/0B/{name}"),
        &[("X-Big", &big_header)],
    )
    .await;
    assert_eq!(r.status, 431);
    let r = request(srv.addr, "POST", &format!("/group1/M00/0A/0B/{name}"), &[]).await;
    assert_eq!(r.status, 405);
    let r = raw(
        srv.addr,
        b"GET /group1/M00/0A/0B/a\0b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(Counters::get(&counters.bad_requests) >= 9);
    srv.shutdown().await;
}

/// `n` connections that each sent part of a request line, held open.
async fn hold_connections(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET").await.unwrap();
        held.push(c);
    }
    held
}

#[tokio::test]
async fn slow_clients_time_out_and_connection_limit_holds() {
    let store = tempfile::tempdir().unwrap();
    let http = "  header_timeout: 300ms\n  max_connections: 2\n";
    let (srv, counters) = start_storage(&storage_config(store.path(), http, ""), None).await;
    // Half a request line, then silence: closed after header_timeout.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /group1/M00/0").await.unwrap();
    let started = std::time::Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(250));
    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(3)).await);

    assert_eq!(Counters::get(&counters.connections_refused), 0);
    srv.shutdown().await;

    // Connection limit (long header timeout so the held connections stay open on a slow host).
    let http = "  header_timeout: 30s\n  max_connections: 2\n";
    let (srv, counters) = start_storage(&storage_config(store.path(), http, ""), None).await;
    // 2, and the loopback reserve (this test's clients are all on 127.0.0.1).
    let held = hold_connections(srv.addr, 2 + LOOPBACK_RESERVE).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = get(srv.addr, "/group1/x").await;
    assert_eq!(r.status, 503);
    assert_eq!(Counters::get(&counters.connections_refused), 1);
    drop(held);
    // Slots come back when connections end.
    let mut served = false;
    for _ in 0..100 {
        if get(srv.addr, "/group1/x").await.status == 400 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served);
    srv.shutdown().await;
}

#[tokio::test]
async fn client_that_stops_reading_is_dropped_after_send_timeout() {
    let store = tempfile::tempdir().unwrap();
    let content = vec![7u8; 32 << 20];
    let name = name_for(localhost(), now_unix(), &content, "bin");
    let id = place(store.path(), &name, &content);
    let http = "  send_timeout: 1s\n  header_timeout: 30s\n  max_connections: 1\n";
    let (srv, _) = start_storage(&storage_config(store.path(), http, ""), None).await;
    // Ask for 32 MiB and read none of it: more than the socket buffers hold.
    let mut stuck = TcpStream::connect(srv.addr).await.unwrap();
    stuck
        .write_all(format!("GET /group1/{id} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // The loopback reserve is taken too (this test's clients are all on 127.0.0.1).
    let reserve = hold_connections(srv.addr, LOOPBACK_RESERVE).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(srv.addr, "/group1/x").await.status, 503, "slot held");
    // After send_timeout the stuck connection is dropped and its slot is free again.
    let mut freed = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if get(srv.addr, "/group1/x").await.status == 400 {
            freed = true;
            break;
        }
    }
    assert!(freed, "stuck reader still holds the connection");
    drop((stuck, reserve));
    srv.shutdown().await;
}
