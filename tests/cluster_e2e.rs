//! A tracker and a storage running together on 127.0.0.1, driven end to end: by our own
//! `FdfsClient` (every operation, including those the PyPI clients get wrong) and by the
//! third-party PyPI clients listed in docs/CLIENTS.md (py3fdfs, fdfs-client-py3).
//!
//! The PyPI clients live in venvs made by `scripts/install-test-deps` (run by `scripts/test-all`);
//! their interpreters are passed in FDFS_HA_PY3FDFS / FDFS_HA_FDFS_CLIENT_PY3. A missing venv fails
//! the test unless FDFS_HA_SKIP_PYPI=1 says the caller knowingly runs without them.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::client::FdfsClient;
use fdfs_ha::config::{StorageConfig, TrackerConfig};
use fdfs_ha::proto::fileid::{split_file_id, RemoteName, Source};
use fdfs_ha::proto::storage::{MetaOp, MetaPair};
use fdfs_ha::storage::StorageServer;
use fdfs_ha::tracker::TrackerServer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Cluster {
    tracker: SocketAddr,
    stop: CancellationToken,
    /// The servers' tasks: waited for before the directory goes, so that none writes into it
    /// while it is removed (that left up to 17 MB in /tmp per run, issue 24).
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    /// Also on a failed test: stop the servers, wait for them (multi-thread runtime), and only
    /// then let the TempDir remove the directory.
    fn drop(&mut self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                for t in tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
                }
            })
        });
    }
}

async fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let tcfg: TrackerConfig = serde_saphyr::from_str(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\ncheck_active_interval: 5s\n",
    )
    .unwrap();
    let tracker = TrackerServer::bind(&tcfg, &dir.path().join("t"))
        .await
        .unwrap();
    let taddr = tracker.local_addr();
    let mut tasks = vec![tokio::spawn(tracker.serve(stop.clone()))];
    let scfg: StorageConfig = serde_saphyr::from_str(&format!(
        "group: group1\nlisten: \"127.0.0.1:0\"\ntrackers: [\"{taddr}\"]\nstore_paths: [\"{}\"]\nheart_beat_interval: 1s\nstat_report_interval: 1s\nreserved_storage_space: 1%\n",
        dir.path().join("store").display()
    ))
    .unwrap();
    let storage = StorageServer::bind(&scfg, "s1").await.unwrap();
    tasks.push(tokio::spawn(storage.serve(stop.clone())));
    // Built first: a start-up that fails still stops the servers before removing the dir.
    let cluster = Cluster {
        tracker: taddr,
        stop,
        tasks,
        _dir: dir,
    };
    let client = FdfsClient::new(vec![taddr]);
    for _ in 0..100 {
        if client.active_storage_count("group1").await.unwrap_or(0) == 1 {
            return cluster;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("storage did not become ACTIVE on the tracker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_does_every_operation_through_the_tracker() {
    let c = start_cluster().await;
    let client = FdfsClient::new(vec![c.tracker]);

    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let id = client.upload_buffer(&data, "jpg").await.unwrap();
    let (group, name) = split_file_id(&id).unwrap();
    assert_eq!(group, "group1");
    let parsed = RemoteName::parse_str(name).unwrap();
    assert_eq!(parsed.info.file_size(), data.len() as u64);
    assert_eq!(parsed.info.crc32, crc32fast::hash(&data));
    assert_eq!(parsed.info.source, Source::Ip("127.0.0.1".parse().unwrap()));
    assert_eq!(client.download_buffer(&id).await.unwrap(), data);
    // Ranged download.
    assert_eq!(
        client.download_range(&id, 1000, 500).await.unwrap(),
        &data[1000..1500]
    );
    // File info.
    let info = client.file_info(&id).await.unwrap();
    assert_eq!(
        (info.file_size, info.crc32),
        (data.len() as u64, crc32fast::hash(&data))
    );
    // Metadata: overwrite then merge.
    let pair = |n: &str, v: &str| -> MetaPair { (n.as_bytes().to_vec(), v.as_bytes().to_vec()) };
    client
        .set_metadata(
            &id,
            &[pair("width", "160"), pair("height", "80")],
            MetaOp::Overwrite,
        )
        .await
        .unwrap();
    client
        .set_metadata(
            &id,
            &[pair("height", "90"), pair("author", "x")],
            MetaOp::Merge,
        )
        .await
        .unwrap();
    let mut meta = client.get_metadata(&id).await.unwrap();
    meta.sort();
    assert_eq!(
        meta,
        vec![
            pair("author", "x"),
            pair("height", "90"),
            pair("width", "160")
        ]
    );
    // Appender + append.
    let app = client
        .upload_appender_buffer(b"part1-", "log")
        .await
        .unwrap();
    client.append_buffer(&app, b"part2").await.unwrap();
    assert_eq!(client.download_buffer(&app).await.unwrap(), b"part1-part2");
    // Upload from a path, download to a path.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("note.txt");
    std::fs::write(&src, b"from a file").unwrap();
    let id2 = client.upload_path(&src).await.unwrap();
    assert!(id2.ends_with(".txt"));
    let out = dir.path().join("out.txt");
    client.download_to_path(&id2, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"from a file");
    // Delete: gone afterwards, with ENOENT.
    client.delete(&id).await.unwrap();
    let err = client.download_buffer(&id).await.unwrap_err();
    assert_eq!(err.status(), Some(2), "{err}");
    // Monitor data.
    let groups = client.list_groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].group, "group1");
}

fn python_for(env: &str, venv: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(venv)
        .join("bin/python");
    p.exists().then_some(p)
}

async fn run_pypi_client(kind: &str, env: &str, venv: &str) {
    let Some(python) = python_for(env, venv) else {
        if std::env::var("FDFS_HA_SKIP_PYPI").as_deref() == Ok("1") {
            eprintln!("skipping {kind}: FDFS_HA_SKIP_PYPI=1");
            return;
        }
        panic!("{kind} venv missing: run scripts/install-test-deps (or scripts/test-all)");
    };
    let c = start_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "connect_timeout=10\nnetwork_timeout=30\ntracker_server={}\n",
            c.tracker
        ),
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/compat_ops.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(&script)
            .arg(kind)
            .arg(&conf)
            .arg(dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("PyPI client script timed out")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{kind} failed:\n{stdout}\n{stderr}");
    for op in [
        "upload_by_buffer",
        "download_to_buffer",
        "upload_by_filename",
        "download_to_file",
        "file_id_fields",
        "upload_appender_by_buffer",
        "append_by_buffer",
        "delete_file",
    ] {
        assert!(
            stdout.contains(&format!("ok {op}")),
            "{kind}: {op} not confirmed:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypi_py3fdfs_works_unchanged() {
    run_pypi_client("py3fdfs", "FDFS_HA_PY3FDFS", ".venv-py3fdfs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypi_fdfs_client_py3_works_unchanged() {
    run_pypi_client(
        "fdfs-client-py3",
        "FDFS_HA_FDFS_CLIENT_PY3",
        ".venv-fdfs-client-py3",
    )
    .await;
}

/// Two storages in `id_type_in_filename: id` mode: a file not present on the storage asked over
/// http is fetched from its source, whose address comes from the trackers' storage-id list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_http_finds_an_id_named_source_through_the_trackers() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    // The ports must be known before anything binds them (the tracker's storage_ids name
    // them). Picked below the kernel's ephemeral range (32768+), so that no connection another
    // test opens meanwhile, and no other test's port-0 bind, can take one of them first.
    let port = || {
        use std::sync::atomic::{AtomicU16, Ordering};
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let base = 20_000 + (std::process::id() % 1_000) as u16 * 10;
        loop {
            let p = base + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                return p;
            }
        }
    };
    let (p1, p2, h1, h2) = (port(), port(), port(), port());
    let tcfg: TrackerConfig = serde_saphyr::from_str(&format!(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\nuse_storage_id: true\nid_type_in_filename: id\nstorage_ids:\n  - {{ id: \"100001\", group: group1, ip: 127.0.0.1, port: {p1} }}\n  - {{ id: \"100002\", group: group1, ip: 127.0.0.1, port: {p2} }}\n"
    ))
    .unwrap();
    let tracker = TrackerServer::bind(&tcfg, &dir.path().join("t"))
        .await
        .unwrap();
    let taddr = tracker.local_addr();
    let mut tasks = vec![tokio::spawn(tracker.serve(stop.clone()))];
    // Each storage http proxies misses to the other's http port (both live on 127.0.0.1).
    for (id, p, h, other_h) in [("100001", p1, h1, h2), ("100002", p2, h2, h1)] {
        let scfg: StorageConfig = serde_saphyr::from_str(&format!(
            "group: group1\nid: \"{id}\"\nlisten: \"127.0.0.1:{p}\"\ntrackers: [\"{taddr}\"]\nstore_paths: [\"{}\"]\nheart_beat_interval: 1s\nstat_report_interval: 1s\nreserved_storage_space: 1%\nhttp: {{ listen: \"127.0.0.1:{h}\", source_port: {other_h} }}\n",
            dir.path().join(id).display()
        ))
        .unwrap();
        let s = StorageServer::bind(&scfg, id).await.unwrap();
        tasks.push(tokio::spawn(s.serve(stop.clone())));
        let web = fdfs_ha::storage::http::StorageHttp::bind(&scfg, id)
            .await
            .unwrap();
        tasks.push(tokio::spawn(web.serve(stop.clone())));
    }
    // Stops the servers and waits for them before the dir goes, also when the test fails.
    let _cluster = Cluster {
        tracker: taddr,
        stop: stop.clone(),
        tasks,
        _dir: dir,
    };
    let client = FdfsClient::new(vec![taddr]);
    let mut ready = false;
    for _ in 0..100 {
        if client.active_storage_count("group1").await.unwrap_or(0) == 2 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "both storages ACTIVE");
    // The reporter learns id mode from the tracker's parameters before the first upload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = b"named by storage id".to_vec();
    let id = client.upload_buffer(&data, "txt").await.unwrap();
    let (_, name) = split_file_id(&id).unwrap();
    let source = RemoteName::parse_str(name).unwrap().info.source;
    let other_http = match source {
        Source::Id(100001) => h2,
        Source::Id(100002) => h1,
        other => panic!("file ID should carry a storage id, got {other}"),
    };
    // Let the resolver's first refresh happen, then ask the storage that does not have the file.
    let url = format!("http://127.0.0.1:{other_http}/{id}");
    let mut body = None;
    for _ in 0..50 {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "-f", &url])
            .output()
            .await
            .unwrap();
        if out.status.success() {
            body = Some(out.stdout);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        body.as_deref(),
        Some(data.as_slice()),
        "fetched through the source"
    );
    stop.cancel();
}
