//! Crash safety of the real binary: an acknowledged upload survives `kill -9` + restart, and a
//! crash in the middle of an upload leaves neither a partial file under any ID nor a temp file.
//! The storage runs without a tracker (the configured one is an unused 127.0.0.1 port).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::proto::cmd;
use fdfs_ha::proto::storage::MetaOp;
use fdfs_ha::proto::Header;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    write_config_with(dir, port, "")
}

/// `extra`: more keys of the `storage` section, each line indented by two spaces.
fn write_config_with(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let store = dir.join("store0");
    let yaml = format!(
        "node: crash-test\ndata_dir: \"{}\"\nlog: {{ level: warn }}\nstatus: {{ listen: null }}\nstorage:\n  group: group1\n  listen: 127.0.0.1:{port}\n  trackers: [\"127.0.0.1:1\"]\n  store_paths: [\"{}\"]\n  reserved_storage_space: 0%\n  fsync: true\n{extra}",
        dir.join("data").display(),
        store.display()
    );
    let path = dir.join("ha.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn start(config: &Path, port: u16) -> Node {
    let child = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["run", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Node { child, port };
    let t0 = Instant::now();
    loop {
        if let Ok(mut c) = StorageConn::connect(("127.0.0.1", port)).await {
            if c.active_test().await.is_ok() {
                return node;
            }
        }
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!("fdfs-ha exited early: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "storage did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL by PID: no shutdown code runs.
fn kill9(mut node: Node) {
    let pid = node.child.id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = node.child.wait();
}

/// Where a file ID's file lives: `M00/XX/YY/<name>` -> `<store>/data/XX/YY/<name>`.
fn placed(store: &Path, filename: &str) -> PathBuf {
    let parts: Vec<&str> = filename.split('/').collect();
    store
        .join("data")
        .join(parts[1])
        .join(parts[2])
        .join(parts[3])
}

fn data_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![store.join("data")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                // Not files under an ID: the binlog and the upload journal's segments.
                if !p.ends_with("sync") && !p.ends_with(".journal") {
                    stack.push(p);
                }
            } else if !p.ends_with(".data_init_flag") {
                // (The base path's init flag sits in data/ as in C FastDFS.)
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_upload_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let node = start(&config, port).await;

    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i % 253) as u8).collect();
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    let small = c.upload(0, b"hello", "txt").await.unwrap();
    let large = c.upload(0, &big, "bin").await.unwrap();
    let app = c.upload_appender(0, b"part1-", "log").await.unwrap();
    c.append(&app.filename, b"part2").await.unwrap();
    let meta = vec![(b"k".to_vec(), b"v".to_vec())];
    c.set_metadata("group1", &small.filename, &meta, MetaOp::Overwrite)
        .await
        .unwrap();
    // Acknowledged: kill at once, no graceful stop.
    kill9(node);

    let node = start(&config, port).await;
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    assert_eq!(
        c.download("group1", &small.filename, 0, 0).await.unwrap(),
        b"hello"
    );
    assert_eq!(
        c.download("group1", &large.filename, 0, 0).await.unwrap(),
        big
    );
    assert_eq!(
        c.download("group1", &app.filename, 0, 0).await.unwrap(),
        b"part1-part2"
    );
    assert_eq!(
        c.get_metadata("group1", &small.filename).await.unwrap(),
        meta
    );
    kill9(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_upload_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let store = dir.path().join("store0");
    let node = start(&config, port).await;

    // Half of an 8 MiB upload, then the storage dies.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let size = 8u64 << 20;
    let mut msg = Header::new(cmd::UPLOAD_FILE, 0, 15 + size)
        .encode()
        .to_vec();
    msg.push(0);
    msg.extend_from_slice(&size.to_be_bytes());
    msg.extend_from_slice(b"bin\0\0\0");
    msg.extend(std::iter::repeat_n(9u8, 4 << 20));
    s.write_all(&msg).await.unwrap();
    let t0 = Instant::now();
    while data_files(&store).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "upload never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill9(node);
    drop(s);
    // The partial upload exists only as a temp file...
    let left = data_files(&store);
    assert!(
        left.iter()
            .all(|p| p.parent().unwrap().file_name() == Some(std::ffi::OsStr::new(".tmp"))),
        "{left:?}"
    );

    // ...which the restart sweeps away; no file exists under any ID.
    let node = start(&config, port).await;
    assert_eq!(data_files(&store), Vec::<PathBuf>::new());
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    c.active_test().await.unwrap();
    kill9(node);
}

/// A small upload the upload journal had no room for is acknowledged after one flush of its
/// own, before its directory is fsynced (that waits for the flusher). Here the worst case a
/// power cut can leave is staged by hand: the file's entry in `data/XX/YY` is gone and only its
/// sealed name in `.tmp` remains. Start-up must put
/// the file back under its ID and log it again for replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_move_into_place_was_lost_is_finished_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let store = dir.path().join("store0");
    let node = start(&config, port).await;
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    let up = c.upload(0, b"survivor", "jpg").await.unwrap();
    let peers = c.upload(0, b"a peer's file", "jpg").await.unwrap();
    kill9(node);

    // M00/XX/YY/<name> -> data/XX/YY/<name> and .tmp/sealed-XX-YY-<name>
    let parts: Vec<&str> = up.filename.split('/').collect();
    let up_placed = placed(&store, &up.filename);
    let sealed = store
        .join("data/.tmp")
        .join(format!("sealed-{}-{}-{}", parts[1], parts[2], parts[3]));
    if sealed.exists() {
        std::fs::remove_file(&up_placed).unwrap();
    } else {
        // No sealed name (the upload went through the journal, or the flusher had settled
        // it already): stage the same state from the placed file.
        std::fs::rename(&up_placed, &sealed).unwrap();
    }
    assert!(!up_placed.exists());
    // The same state for a file a peer had replicated here: its sealed name says so.
    let p: Vec<&str> = peers.filename.split('/').collect();
    let peers_placed = placed(&store, &peers.filename);
    let peers_sealed = store
        .join("data/.tmp")
        .join(format!("replica-{}-{}-{}", p[1], p[2], p[3]));
    let _ = std::fs::remove_file(
        store
            .join("data/.tmp")
            .join(format!("sealed-{}-{}-{}", p[1], p[2], p[3])),
    );
    std::fs::rename(&peers_placed, &peers_sealed).unwrap();
    let binlog = store.join("data/sync/binlog.000");
    let binlog2 = binlog.clone();
    let record = format!(" C {}", up.filename);
    let records = move || {
        std::fs::read_to_string(&binlog)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with(&record))
            .count()
    };
    let before = records();

    let node = start(&config, port).await;
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    assert_eq!(
        c.download("group1", &up.filename, 0, 0).await.unwrap(),
        b"survivor"
    );
    assert!(!sealed.exists());
    let t0 = Instant::now();
    while records() == before {
        assert!(t0.elapsed() < Duration::from_secs(10), "not re-logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The peer's file is back too, logged as a replica record (never sent back to its source).
    assert_eq!(
        c.download("group1", &peers.filename, 0, 0).await.unwrap(),
        b"a peer's file"
    );
    let replica_record = format!(" c {}", peers.filename);
    assert!(std::fs::read_to_string(&binlog2)
        .unwrap()
        .lines()
        .any(|l| l.ends_with(&replica_record)));
    kill9(node);
}

/// A small upload is acknowledged once its record in the upload journal is flushed; its file
/// and directory entry reach the disk later, with the settle that follows. Here what a power
/// cut in between can leave is staged by hand (nothing settles: the flush interval is an
/// hour): one file's entry lost, one file empty (its data never written), one deleted file
/// back (its unlink lost). Start-up must write the first two again from the journal, remove
/// the third, and log the survivors again for replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_uploads_a_power_cut_lost_are_written_again_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config_with(dir.path(), port, "  sync: { binlog_flush_interval: 1h }\n");
    let store = dir.path().join("store0");
    let node = start(&config, port).await;
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    let lost = c.upload(0, b"entry lost", "jpg").await.unwrap();
    let empty = c.upload(0, b"data never written", "jpg").await.unwrap();
    let deleted = c.upload(0, b"deleted", "jpg").await.unwrap();
    c.delete("group1", &deleted.filename).await.unwrap();
    kill9(node);

    std::fs::remove_file(placed(&store, &lost.filename)).unwrap();
    std::fs::File::create(placed(&store, &empty.filename)).unwrap();
    std::fs::write(placed(&store, &deleted.filename), b"deleted").unwrap();

    let node = start(&config, port).await;
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    assert_eq!(
        c.download("group1", &lost.filename, 0, 0).await.unwrap(),
        b"entry lost"
    );
    assert_eq!(
        c.download("group1", &empty.filename, 0, 0).await.unwrap(),
        b"data never written"
    );
    let gone = c.download("group1", &deleted.filename, 0, 0).await;
    assert!(gone.is_err(), "a deleted file came back");
    assert!(!placed(&store, &deleted.filename).exists());
    // Logged again: the first run's binlog records died with it (never flushed, the interval
    // is an hour), so any record of a survivor was queued at start-up (flushed at shutdown).
    drop(c);
    let pid = nix::unistd::Pid::from_raw(node.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut node = node;
    let _ = node.child.wait();
    let binlog = std::fs::read_to_string(store.join("data/sync/binlog.000")).unwrap();
    for f in [&lost.filename, &empty.filename] {
        let record = format!(" C {f}");
        assert!(
            binlog.lines().filter(|l| l.ends_with(&record)).count() >= 1,
            "{f} not logged"
        );
    }
    assert!(!std::fs::read_dir(store.join("data/.tmp"))
        .unwrap()
        .any(|_| true));
}

/// Concurrent small uploads are acknowledged together, after one shared flush of their
/// records in the upload journal (group commit: the storage's small-file writer hands every
/// upload waiting to the journal at once). What a power cut right after the acknowledgements
/// can leave is staged by hand for every one of them (nothing settles: the flush interval is
/// an hour): half the files' entries lost, the other half's data never written. Start-up must
/// write each one again from its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_acknowledged_in_one_group_all_survive_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config_with(dir.path(), port, "  sync: { binlog_flush_interval: 1h }\n");
    let store = dir.path().join("store0");
    let node = start(&config, port).await;
    let uploads: Vec<_> = (0..8)
        .map(|t| {
            tokio::spawn(async move {
                let mut c = StorageConn::connect(("127.0.0.1", port)).await.unwrap();
                let mut done = Vec::new();
                for n in 0..4 {
                    let body = format!("upload {n} of connection {t}").into_bytes();
                    let id = c.upload(0, &body, "txt").await.unwrap();
                    done.push((id.filename, body));
                }
                done
            })
        })
        .collect();
    let mut acked = Vec::new();
    for u in uploads {
        acked.extend(u.await.unwrap());
    }
    kill9(node);

    for (i, (filename, _)) in acked.iter().enumerate() {
        let path = placed(&store, filename);
        if i % 2 == 0 {
            std::fs::remove_file(path).unwrap();
        } else {
            std::fs::File::create(path).unwrap();
        }
    }
    let node = start(&config, port).await;
    let mut c = StorageConn::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    for (filename, body) in &acked {
        assert_eq!(
            &c.download("group1", filename, 0, 0).await.unwrap(),
            body,
            "{filename}"
        );
    }
    kill9(node);
}
