//! Replication inside a group (issue 5), in-process: one tracker on 127.0.0.1 and storages on
//! 127.0.0.2, .3, .4 (all of 127/8 is local on Linux), each with its own store directory.
//! Files are checked on disk (data/XX/YY), so a storage that lost or grew a file is seen.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "replication_support/mod.rs"]
mod support;

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::client::FdfsClient;
use fdfs_ha::proto::storage::{MetaOp, MetaPair};
use fdfs_ha::proto::tracker::StorageStatus;
use fdfs_ha::storage::sync::Mark;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_every_peer_with_the_same_id_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (t, s, client) = three(dir.path()).await;
    let mut c1 = StorageConn::connect(s[0].addr()).await.unwrap();
    let mut c2 = StorageConn::connect(s[1].addr()).await.unwrap();

    // Plain files uploaded to two different members.
    let a = bytes(1, 100_000);
    let fa = c1.upload(0, &a, "jpg").await.unwrap().filename;
    let b = bytes(2, 3000);
    let fb = c2.upload(0, &b, "txt").await.unwrap().filename;
    // An appender: append, modify, truncate.
    let app = c1
        .upload_appender(0, b"hello ", "log")
        .await
        .unwrap()
        .filename;
    c1.append(&app, b"world, again").await.unwrap();
    c1.modify(&app, 0, b"HELLO").await.unwrap();
    c1.truncate(&app, 11).await.unwrap();
    // Metadata: created, then merged.
    let pair = |n: &str, v: &str| -> MetaPair { (n.as_bytes().to_vec(), v.as_bytes().to_vec()) };
    c1.set_metadata(GROUP, &fa, &[pair("w", "1")], MetaOp::Overwrite)
        .await
        .unwrap();
    c1.set_metadata(GROUP, &fa, &[pair("h", "2")], MetaOp::Merge)
        .await
        .unwrap();
    // A file deleted after it was replicated, and one deleted at once.
    let gone = c2.upload(0, b"short lived", "bin").await.unwrap().filename;
    let want_gone = files_on_disk(&s[1].store);
    wait_for(
        "the short-lived file everywhere",
        Duration::from_secs(10),
        || {
            s.iter()
                .all(|st| files_on_disk(&st.store).contains_key(&gone))
        },
    )
    .await;
    assert!(want_gone.contains_key(&gone));
    c2.delete(GROUP, &gone).await.unwrap();
    let quick = c1
        .upload(0, b"deleted at once", "bin")
        .await
        .unwrap()
        .filename;
    c1.delete(GROUP, &quick).await.unwrap();

    // The delete done on s2 reaches s1 before s1's store is the reference.
    wait_for("the delete on s1", Duration::from_secs(10), || {
        !files_on_disk(&s[0].store).contains_key(&gone)
    })
    .await;
    let want = files_on_disk(&s[0].store);
    assert_eq!(want[&fa], a);
    assert_eq!(want[&fb], b);
    assert_eq!(want[&app], b"HELLO world");
    assert!(want.contains_key(&format!("{fa}-m")));
    assert!(!want.contains_key(&gone) && !want.contains_key(&quick));
    assert_eq!(want.len(), 4, "{:?}", want.keys());
    let refs: Vec<&Storage> = s.iter().collect();
    wait_converged(&refs, &want, Duration::from_secs(15)).await;
    // Same ID, same crc32 (the ID carries it) as the uploaded bytes, on every member.
    let name = fdfs_ha::proto::fileid::RemoteName::parse_str(&fa).unwrap();
    for st in &s {
        let got = files_on_disk(&st.store).remove(&fa).unwrap();
        assert_eq!(crc32fast::hash(&got), name.info.crc32);
    }
    // Metadata reads the same from a peer.
    let mut c3 = StorageConn::connect(s[2].addr()).await.unwrap();
    let mut meta = c3.get_metadata(GROUP, &fa).await.unwrap();
    meta.sort();
    assert_eq!(meta, vec![pair("h", "2"), pair("w", "1")]);

    // Trackers learn sync progress: a file created a second before newer records is handed
    // out by every member; a brand-new file only by its source.
    let mut tc = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let older = c1.upload(0, b"older", "txt").await.unwrap().filename;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _newer = c1.upload(0, b"newer", "txt").await.unwrap().filename;
    let t0 = Instant::now();
    loop {
        let all = fdfs_ha::client::tracker::query_fetch_all(&mut tc, GROUP, &older)
            .await
            .unwrap();
        if all.len() == 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "fetch_all {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = c1.upload(0, b"fresh", "txt").await.unwrap().filename;
    let all = fdfs_ha::client::tracker::query_fetch_all(&mut tc, GROUP, &fresh)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|a| a.ip.as_str()).collect::<Vec<_>>(),
        vec!["127.0.0.2"],
        "a file no peer is known to have is only fetched from its source"
    );
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_then_back_resumes_from_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, mut s, client) = three(dir.path()).await;
    let mut c1 = StorageConn::connect(s[0].addr()).await.unwrap();
    for i in 0..20 {
        c1.upload(0, &bytes(i, 500), "a").await.unwrap();
    }
    let want = files_on_disk(&s[0].store);
    let refs: Vec<&Storage> = s.iter().collect();
    wait_converged(&refs, &want, Duration::from_secs(15)).await;
    // Files on the peer's disk are not yet the peer's confirmation, nor that confirmation
    // saved: wait until the mark covers the whole binlog, so that stopping the peer leaves
    // nothing earlier for the sender to save later.
    let mark = s[0]
        .sync_dir()
        .join(format!("{}_{}.mark", s[2].ip, s[2].port));
    let binlog = s[0].sync_dir().join("binlog.000");
    wait_for(
        "the mark to cover the first 20 files",
        Duration::from_secs(10),
        || {
            let saved = Mark::load(&mark).ok().flatten().map(|m| m.pos.offset);
            saved.is_some_and(|o| o > 0 && std::fs::metadata(&binlog).is_ok_and(|b| b.len() == o))
        },
    )
    .await;

    s[2].shutdown().await;
    let before = std::fs::read_to_string(&mark).unwrap();
    for i in 100..160 {
        c1.upload(0, &bytes(i, 700), "b").await.unwrap();
    }
    c1.delete(GROUP, want.keys().next().unwrap()).await.unwrap();
    let want = files_on_disk(&s[0].store);
    // The live peer gets everything; the mark for the stopped one has not moved.
    wait_converged(&[&s[1]], &want, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), before);
    assert_eq!(files_on_disk(&s[2].store).len(), 20);
    // The source shows the lag: the down peer is 61 records behind (60 creates, 1 delete),
    // the live one caught up; `fdfs-ha monitor` prints both.
    let down = format!("{}_{}", s[2].ip, s[2].port);
    let up = format!("{}_{}", s[1].ip, s[1].port);
    let report = c1.sync_status().await.unwrap();
    let peer = |n: &str| report.peers.iter().find(|p| p.peer == n).cloned().unwrap();
    assert_eq!(peer(&down).records_behind, 61, "{report:?}");
    assert!(peer(&down).bytes_behind > 0 && peer(&down).failures > 0);
    assert_eq!((peer(&up).records_behind, peer(&up).bytes_behind), (0, 0));
    let text = fdfs_ha::client::cli::monitor(&client).await.unwrap();
    let line = |n: &str| {
        text.lines()
            .find(|l| l.contains(&format!("sync -> {n}: ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line(&down).contains("behind 61 records"), "{text}");
    assert!(line(&up).contains("idle, behind 0 records"), "{text}");
    // `/metrics` shows the same lag per peer in records, bytes and seconds.
    let metrics = fdfs_ha::metrics::Metrics::new();
    let state = s[0].state.clone().unwrap();
    let source = fdfs_ha::storage::metrics::StorageSource {
        requests: state.requests().clone(),
        state,
    };
    metrics.set_source("storage", Arc::new(source));
    let text = metrics.render();
    let sample = |name: &str, peer: &str| -> f64 {
        let series = format!("fdfs_ha_storage_sync_lag_{name}{{peer=\"{peer}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(sample("records", &down), 61.0);
    assert_eq!(sample("bytes", &down), peer(&down).bytes_behind as f64);
    assert!(sample("seconds", &down) >= 0.0);
    assert_eq!((sample("records", &up), sample("bytes", &up)), (0.0, 0.0));
    assert_eq!(sample("seconds", &up), 0.0);

    s[2].run().await;
    wait_active(&client, 3).await;
    let refs: Vec<&Storage> = s.iter().collect();
    wait_converged(&refs, &want, Duration::from_secs(20)).await;
    // The mark is written once the batch the files came in is acknowledged.
    wait_for("the mark to advance", Duration::from_secs(5), || {
        std::fs::read_to_string(&mark).unwrap() != before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_empty_storage_copies_everything_before_it_turns_active() {
    let dir = tempfile::tempdir().unwrap();
    let (t, s1, s2, client) = two(dir.path()).await;
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let mut c2 = StorageConn::connect(s2.addr()).await.unwrap();
    // Files from both members (s1 holds s2's as replica records), a deleted one, and a few
    // large files so the copy takes a while.
    for i in 0..150 {
        c1.upload(0, &bytes(i, 1000), "a").await.unwrap();
        c2.upload(0, &bytes(i + 1000, 1000), "b").await.unwrap();
    }
    for i in 0..6 {
        c2.upload(0, &bytes(i, 4 << 20), "big").await.unwrap();
    }
    let del = c1.upload(0, b"to delete", "d").await.unwrap().filename;
    c1.delete(GROUP, &del).await.unwrap();
    // 300 small + 6 big files (the deleted one is gone) on both members.
    wait_for("both members complete", Duration::from_secs(30), || {
        let a = files_on_disk(&s1.store);
        a.len() == 306 && a == files_on_disk(&s2.store)
    })
    .await;
    let want = files_on_disk(&s1.store);

    let s3 = Storage::start("127.0.0.4", dir.path().join("s3"), t.addr).await;
    let mut seen = Vec::new();
    let t0 = Instant::now();
    loop {
        let st = statuses(&client).await.get(&s3.port).copied();
        if let Some(v) = st {
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            if v == StorageStatus::Active as u8 {
                // ACTIVE only with the whole copy on disk.
                assert_eq!(
                    files_on_disk(&s3.store),
                    want,
                    "ACTIVE before the copy was complete"
                );
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "statuses seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.iter()
            .any(|v| *v == StorageStatus::WaitSync as u8 || *v == StorageStatus::Syncing as u8),
        "the newcomer went through WAIT_SYNC/SYNCING: {seen:?}"
    );
    // New changes after the copy reach it too, from both old members.
    let f1 = c1.upload(0, b"after-1", "x").await.unwrap().filename;
    let f2 = c2.upload(0, b"after-2", "x").await.unwrap().filename;
    let mut want = want;
    want.insert(f1, b"after-1".to_vec());
    want.insert(f2, b"after-2".to_vec());
    wait_converged(&[&s1, &s2, &s3], &want, Duration::from_secs(15)).await;
    // Its init flag says the copy is done, so a restart joins as an old member.
    // It sits where C FastDFS keeps it, in C's format (issue 17: a C storage can take it back).
    let flag = std::fs::read_to_string(s3.store.join("data/.data_init_flag")).unwrap();
    assert!(flag.lines().any(|l| l == "sync_old_done=1"), "{flag}");
    assert!(flag.starts_with("storage_join_time="), "{flag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_peer_loses_its_senders_and_rejoins_as_a_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let (t, mut s, client) = three(dir.path()).await;
    let mut c1 = StorageConn::connect(s[0].addr()).await.unwrap();
    for i in 0..10 {
        c1.upload(0, &bytes(i, 800), "a").await.unwrap();
    }
    let want = files_on_disk(&s[0].store);
    let refs: Vec<&Storage> = s.iter().collect();
    wait_converged(&refs, &want, Duration::from_secs(15)).await;

    // Stop the third storage and delete it on the tracker.
    s[2].shutdown().await;
    let key = format!("{}:{}", s[2].ip, s[2].port);
    let t0 = Instant::now();
    loop {
        let st = statuses(&client).await;
        if st.get(&s[2].port) == Some(&(StorageStatus::Offline as u8)) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut tc = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let req = fdfs_ha::proto::tracker::ListStorageReq {
        group: GROUP.into(),
        storage_id: Some(key),
    };
    fdfs_ha::client::tracker::request(
        &mut tc,
        fdfs_ha::proto::cmd::SERVER_DELETE_STORAGE,
        &req.encode(),
    )
    .await
    .unwrap();
    assert_eq!(
        statuses(&client).await.get(&s[2].port),
        Some(&(StorageStatus::Deleted as u8))
    );
    // Its peers stop sending to it.
    let gone = format!("{}_{}", s[2].ip, s[2].port);
    let t0 = Instant::now();
    while c1
        .sync_status()
        .await
        .unwrap()
        .peers
        .iter()
        .any(|p| p.peer == gone)
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "sender not stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and note it in their marks: back again, it is met as a newcomer (even within the
    // second of its first sync time, which the sync time alone could not tell apart).
    for old in &s[..2] {
        let mark = old.sync_dir().join(format!("{gone}.mark"));
        wait_for(
            "the deleted peer's mark to say so",
            Duration::from_secs(5),
            || std::fs::read_to_string(&mark).is_ok_and(|m| m.contains("peer_deleted=1")),
        )
        .await;
    }
    for i in 10..30 {
        c1.upload(0, &bytes(i, 800), "b").await.unwrap();
    }
    let want = files_on_disk(&s[0].store);
    wait_converged(&[&s[0], &s[1]], &want, Duration::from_secs(15)).await;

    // Back again: a newcomer (INIT -> WAIT_SYNC/SYNCING), ACTIVE only with every file.
    s[2].run().await;
    let mut seen = Vec::new();
    let t0 = Instant::now();
    loop {
        if let Some(v) = statuses(&client).await.get(&s[2].port).copied() {
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            if v == StorageStatus::Active as u8 {
                assert_eq!(files_on_disk(&s[2].store), want, "ACTIVE before its copy");
                break;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "statuses {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.iter()
            .any(|v| *v == StorageStatus::WaitSync as u8 || *v == StorageStatus::Syncing as u8),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sync_connections_outlive_the_peers_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let t = start_tracker(dir.path()).await;
    let client = FdfsClient::new(vec![t.addr]);
    let extra = "network_timeout: 1s\n";
    let s1 = Storage::start_with("127.0.0.2", dir.path().join("s1"), t.addr, extra).await;
    let s2 = Storage::start_with("127.0.0.3", dir.path().join("s2"), t.addr, extra).await;
    wait_active(&client, 2).await;
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let f = c1.upload(0, b"first", "txt").await.unwrap().filename;
    wait_for("first file", Duration::from_secs(10), || {
        files_on_disk(&s2.store).contains_key(&f)
    })
    .await;
    // Idle for three peer idle timeouts, then more changes: sent without a failed attempt.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let g = c1.upload(0, b"second", "txt").await.unwrap().filename;
    wait_for("second file", Duration::from_secs(10), || {
        files_on_disk(&s2.store).contains_key(&g)
    })
    .await;
    let report = c1.sync_status().await.unwrap();
    assert_eq!(report.peers.len(), 1);
    assert_eq!(report.peers[0].failures, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_id_mode_names_marks_and_sources_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let t = start_tracker_with(
        dir.path(),
        "use_storage_id: true\nid_type_in_filename: id\nstorage_ids: [{id: \"100001\", group: group1, ip: 127.0.0.2}, {id: \"100002\", group: group1, ip: 127.0.0.3}]\n",
    )
    .await;
    let client = FdfsClient::new(vec![t.addr]);
    let s1 = Storage::start_with(
        "127.0.0.2",
        dir.path().join("s1"),
        t.addr,
        "id: \"100001\"\n",
    )
    .await;
    let s2 = Storage::start_with(
        "127.0.0.3",
        dir.path().join("s2"),
        t.addr,
        "id: \"100002\"\n",
    )
    .await;
    wait_active(&client, 2).await;
    // Wait until s1 names its files by id (it learns the mode from the tracker).
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let t0 = Instant::now();
    let older = loop {
        let f = c1.upload(0, b"older", "txt").await.unwrap().filename;
        let n = fdfs_ha::proto::fileid::RemoteName::parse_str(&f).unwrap();
        if n.info.source == fdfs_ha::proto::fileid::Source::Id(100001) {
            break f;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no id-mode name: {f}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c1.upload(0, b"newer", "txt").await.unwrap();
    let want = files_on_disk(&s1.store);
    wait_converged(&[&s1, &s2], &want, Duration::from_secs(15)).await;
    assert!(s1.sync_dir().join("100002.mark").exists());
    assert!(s2.sync_dir().join("100001.mark").exists());
    // s2 reports progress from source 100001: the older file is fetched from both.
    let mut tc = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let t0 = Instant::now();
    loop {
        let all = fdfs_ha::client::tracker::query_fetch_all(&mut tc, GROUP, &older)
            .await
            .unwrap();
        if all.len() == 2 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "fetch_all {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = c1.sync_status().await.unwrap();
    assert_eq!(report.peers[0].peer, "100002");
}

/// Trackers hand a peer out for a file only once the peer holds it: while one storage takes
/// concurrent uploads, every QUERY_FETCH_ALL answer that names the other storage is checked
/// against that storage's disk at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_handed_out_only_for_files_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (t, s1, s2, _client) = two(dir.path()).await;
    let names: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let stop = CancellationToken::new();
    let mut uploaders = Vec::new();
    for u in 0..6u32 {
        let (names, stop, addr) = (names.clone(), stop.clone(), s1.addr());
        uploaders.push(tokio::spawn(async move {
            let mut c = StorageConn::connect(addr).await.unwrap();
            let mut i = 0;
            while !stop.is_cancelled() {
                let f = c
                    .upload(0, &bytes(u * 100_000 + i, 3000), "w")
                    .await
                    .unwrap();
                names.lock().unwrap().push(f.filename);
                i += 1;
            }
        }));
    }
    let s2_addr = s2.addr();
    let (mut checked, mut served_by_peer) = (0, 0);
    let mut tc = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        // The newest files (those a wrong answer would hit) and a spread over older ones.
        let sample: Vec<String> = {
            let n = names.lock().unwrap();
            let stride = (n.len() / 40).max(1);
            n.iter()
                .rev()
                .take(40)
                .chain(n.iter().step_by(stride))
                .cloned()
                .collect()
        };
        for name in sample {
            let addrs = fdfs_ha::client::tracker::query_fetch_all(&mut tc, GROUP, &name)
                .await
                .unwrap();
            checked += 1;
            if addrs
                .iter()
                .any(|a| a.ip == s2_addr.ip().to_string() && a.port == s2_addr.port())
            {
                served_by_peer += 1;
                assert!(
                    files_on_disk(&s2.store).contains_key(&name),
                    "the tracker handed out {s2_addr} for {name} before it had the file"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for u in uploaders {
        u.await.unwrap();
    }
    // Not vacuous: the peer is handed out once it holds files.
    assert!(served_by_peer > 0, "{checked} answers, none named the peer");
}

/// A record that cannot be sent (its file turned unreadable at the source) holds back what
/// trackers hand the peer out for, although newer files sent on other lanes have arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_stuck_on_one_lane_holds_back_the_peers_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (t, s1, mut s2, _client) = two(dir.path()).await;
    s2.shutdown().await;
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let x = c1.upload(0, b"stuck", "x").await.unwrap().filename;
    // Its content can no longer be read at the source, so its lane fails at it every time.
    let x_path = s1.store.join("data").join(&x["M00/".len()..]);
    std::fs::remove_file(&x_path).unwrap();
    std::fs::create_dir(&x_path).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut later = Vec::new();
    for i in 0..12 {
        later.push(c1.upload(0, &bytes(i, 500), "y").await.unwrap().filename);
    }
    s2.run().await;
    let on_s2 = |n: &str| s2.store.join("data").join(&n["M00/".len()..]).is_file();
    wait_for(
        "newer files on other lanes",
        Duration::from_secs(10),
        || later.iter().any(|n| on_s2(n)),
    )
    .await;
    let mut tc = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let s2_port = s2.addr().port();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        let addrs = fdfs_ha::client::tracker::query_fetch_all(&mut tc, GROUP, &x)
            .await
            .unwrap();
        assert!(
            addrs.iter().all(|a| a.port != s2_port),
            "the peer is handed out for {x}, which it does not have"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!on_s2(&x));
}

/// An idle sender keeps moving its peer's watermark up to the present, so files created a
/// moment ago are handed out on both storages without waiting for the next upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_senders_watermark_follows_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (_tracker, s1, s2, _client) = two(dir.path()).await;
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    c1.upload(0, b"one", "txt").await.unwrap();
    let mut c2 = StorageConn::connect(s2.addr()).await.unwrap();
    let t0 = Instant::now();
    loop {
        let now = fdfs_ha::clock::unix_now() as u32;
        let r = c2.sync_status().await.unwrap();
        let w = r.synced_from.first().map_or(0, |(_, w)| *w);
        if t0.elapsed() > Duration::from_secs(3) {
            assert!(w + 2 >= now, "watermark {w} lags now {now}: {r:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Uploads `n` small files to `storage`; returns their names (the last part of the file ID).
/// Files of `direct_io_min_size` (1 MiB) and more are sent to peers with O_DIRECT reads in
/// aligned 1 MiB chunks; sizes on and around the block and chunk edges arrive byte for byte,
/// and a smaller file is still sent from the page cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_reach_the_peer_byte_for_byte_whatever_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, s1, s2, _client) = two(dir.path()).await;
    let mut c1 = StorageConn::connect(s1.addr()).await.unwrap();
    let sizes = [
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        (2 << 20) + 4095,
        (3 << 20) + 4096,
        (5 << 20) + 12345,
    ];
    for (i, n) in sizes.into_iter().enumerate() {
        c1.upload(0, &bytes(i as u32, n), "big").await.unwrap();
    }
    let want = files_on_disk(&s1.store);
    assert_eq!(want.len(), sizes.len());
    wait_converged(&[&s2], &want, Duration::from_secs(20)).await;
}

/// A peer acknowledges a replicated small file before it is flushed (peers' files are flushed
/// in batches) and confirms them by answering SYNC_WATERMARK. A peer that goes away before it
/// confirms (a crash or a power cut may have lost those files) gets every such file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_goes_away_before_confirming_gets_those_files_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, s1, mut s2, _client) = two(dir.path()).await;
    let addr = s2.addr();
    s2.shutdown().await;
    let peer = StandIn::start(addr, OnWatermark::VanishOnceAfterFiles).await;
    let names = upload_some(s1.addr(), 3).await;
    wait_for("the stand-in to go away", Duration::from_secs(10), || {
        peer.generation.load(Ordering::SeqCst) == 2
    })
    .await;
    let unconfirmed: Vec<&String> = names
        .iter()
        .filter(|n| peer.received(|g| g == 1, n) > 0)
        .collect();
    assert!(!unconfirmed.is_empty());
    wait_for(
        "the files it had not confirmed to come again",
        Duration::from_secs(10),
        || unconfirmed.iter().all(|n| peer.received(|g| g > 1, n) > 0),
    )
    .await;
}

/// A peer without SYNC_WATERMARK (a C FastDFS storage answers EINVAL) still gets every change,
/// each once: its acknowledgements are taken as all it can confirm, and the mark moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refuses_watermarks_still_gets_every_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, s1, mut s2, _client) = two(dir.path()).await;
    let addr = s2.addr();
    let mark = s1.sync_dir().join(format!("{}_{}.mark", s2.ip, s2.port));
    s2.shutdown().await;
    let peer = StandIn::start(addr, OnWatermark::Refuse).await;
    let pos = || Mark::load(&mark).unwrap().unwrap().pos;
    let before = pos();
    let mut names = upload_some(s1.addr(), 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    names.extend(upload_some(s1.addr(), 3).await);
    wait_for("every file at the peer", Duration::from_secs(10), || {
        names.iter().all(|n| peer.received(|_| true, n) > 0)
    })
    .await;
    wait_for("the mark to move on", Duration::from_secs(5), || {
        pos() > before
    })
    .await;
    for n in &names {
        assert_eq!(peer.received(|_| true, n), 1, "{n} sent more than once");
    }
    assert_eq!(peer.generation.load(Ordering::SeqCst), 1);
}

/// Issue 17: with a C peer (EINVAL to SYNC_WATERMARK, then the connection closed) only one
/// session breaks: the refusal is remembered and later sessions never send it; every sync
/// connection leaves from the storage's own address (a C peer recognises its group member by
/// it), here 127.0.0.2 although the peer is reached on 127.0.0.3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_peer_gets_one_refused_watermark_and_connections_from_the_storage_s_address() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, s1, mut s2, _client) = two(dir.path()).await;
    let addr = s2.addr();
    s2.shutdown().await;
    let peer = StandIn::start(addr, OnWatermark::RefuseAndClose).await;
    let mut names = upload_some(s1.addr(), 3).await;
    wait_for(
        "the first files at the peer",
        Duration::from_secs(10),
        || names.iter().all(|n| peer.received(|_| true, n) > 0),
    )
    .await;
    wait_for("the refused watermark", Duration::from_secs(10), || {
        peer.watermarks.load(Ordering::SeqCst) > 0
    })
    .await;
    // New changes after the broken session: a new session, and no watermark again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    names.extend(upload_some(s1.addr(), 3).await);
    wait_for("every file at the peer", Duration::from_secs(15), || {
        names.iter().all(|n| peer.received(|_| true, n) > 0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(peer.watermarks.load(Ordering::SeqCst), 1);
    let sources = peer.sources.lock().unwrap().clone();
    assert!(!sources.is_empty());
    assert!(
        sources.iter().all(|ip| ip.to_string() == "127.0.0.2"),
        "{sources:?}"
    );
}
