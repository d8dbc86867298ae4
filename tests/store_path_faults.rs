//! Issue 18.8 on a real failing file system: a store path of a real `fdfs-ha run` node (tracker
//! and storage roles) is a small tmpfs, remounted read-only under the running node, then
//! read-write again; and a node is started with that path already read-only. Root only (mount);
//! CI runs as root, elsewhere the test says why and passes.
//!
//! The storage runs with `fsync: false`: with fsync on, the upload journal keeps its segments on
//! the store path open for writing, and the kernel refuses a read-only remount (EBUSY) while a
//! file is open for writing; a disk that fails (ext4's errors=remount-ro) does not ask. The
//! journal's own failures are covered by the store's unit tests.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::{free_port, run, Node};

use fdfs_ha::client::storage::StorageConn;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at);
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, mode: &str) {
        mount(&["-o", &format!("remount,{mode}")], &self.0);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a node still holding a file there must not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], at: &Path) {
    let out = Command::new("mount").args(args).arg(at).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mounting a tmpfs needs root (CI runs the tests as root); says so when it skips.
fn root_or_skip() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs the tests as root)");
    }
    root
}

/// GET `path` on the status listener with a bare HTTP/1.0 request; the body.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{head}");
    body.to_string()
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls `probe` every 100 ms until it returns Some, at most `within`.
async fn until<T>(within: Duration, what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node with a tracker and a storage whose store paths are `m0` and `m1`.
struct Cluster {
    node: Node,
    tracker: u16,
    storage: u16,
    status: String,
}

fn start(dir: &Path, name: &str, m0: &Path, m1: &Path) -> Cluster {
    let (tracker, storage, status) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "node: {name}\ndata_dir: \"{}\"\nlog: {{ level: warn }}\nstatus: {{ listen: \"127.0.0.1:{status}\" }}\n\
         tracker:\n  listen: 127.0.0.1:{tracker}\n\
         storage:\n  group: group1\n  listen: 127.0.0.1:{storage}\n  trackers: [\"127.0.0.1:{tracker}\"]\n  \
         store_paths: [\"{}\", \"{}\"]\n  reserved_storage_space: 0%\n  fsync: false\n  \
         heart_beat_interval: 300ms\n  stat_report_interval: 1s\n",
        dir.join(format!("data-{name}")).display(),
        m0.display(),
        m1.display()
    );
    let node_dir = dir.join(name);
    std::fs::create_dir_all(&node_dir).unwrap();
    Cluster {
        node: run(&node_dir, &yaml),
        tracker,
        storage,
        status: format!("127.0.0.1:{status}"),
    }
}

impl Cluster {
    async fn storage_conn(&mut self) -> StorageConn {
        let (port, node) = (self.storage, &mut self.node);
        until(Duration::from_secs(20), "storage up", async || {
            if let Ok(Some(s)) = node.0.try_wait() {
                panic!("fdfs-ha exited: {s}");
            }
            let mut c = StorageConn::connect(("127.0.0.1", port)).await.ok()?;
            c.active_test().await.ok()?;
            Some(c)
        })
        .await
    }

    /// The tracker's view of the storage: (free MB, total MB), once it has one.
    async fn tracker_view(&self) -> Option<(i64, i64)> {
        let mut t = tokio::net::TcpStream::connect(("127.0.0.1", self.tracker))
            .await
            .ok()?;
        let list = fdfs_ha::client::tracker::list_storages(&mut t, "group1", None)
            .await
            .ok()?;
        let s = list.first()?;
        (s.total_mb > 0).then_some((s.free_mb, s.total_mb))
    }

    /// What status (JSON and text) and /metrics say of M01 (`m1`): (unwritable reason, its
    /// text line, the writable gauge).
    fn shown(&self, m1: &Path) -> (Option<String>, String, Option<f64>) {
        let doc: serde_json::Value = serde_json::from_str(&get(&self.status, "/status")).unwrap();
        let path = &doc["roles"]["storage"]["store_paths"][1];
        assert_eq!(
            path["path"].as_str(),
            Some(&*m1.display().to_string()),
            "{doc}"
        );
        let why = path["unwritable"].as_str().map(str::to_string);
        let text = fdfs_ha::supervisor::status::render_text(&doc);
        let line = text
            .lines()
            .find(|l| l.contains(&m1.display().to_string()))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string();
        let series = format!(
            "fdfs_ha_storage_store_path_writable{{store_path=\"M01\",path=\"{}\"}}",
            m1.display()
        );
        let gauge = sample(&get(&self.status, "/metrics"), &series);
        (why, line, gauge)
    }
}

async fn upload(c: &mut StorageConn, index: u8, data: &str) -> (String, String) {
    let f = c
        .upload(index, data.as_bytes(), "txt")
        .await
        .unwrap_or_else(|e| panic!("upload of {data:?} to {index}: {e}"));
    (f.group, f.filename)
}

/// `n` uploads asking for the store path `ask(i)` all land on M00 and read back whole.
async fn uploads_land_on_m00(
    c: &mut StorageConn,
    n: usize,
    label: &str,
    ask: impl Fn(usize) -> u8,
) {
    for i in 0..n {
        let data = format!("{label} {i}");
        let (g, f) = upload(c, ask(i), &data).await;
        assert!(f.starts_with("M00/"), "{f}");
        assert_eq!(c.download(&g, &f, 0, 0).await.unwrap(), data.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_path_remounted_read_only_is_skipped_shown_and_back_after_rw() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    // M00 is a 48 MiB tmpfs too: the tracker's free MB for the storage (the sum of its paths)
    // then says exactly which paths count, whatever the machine's disks do meanwhile.
    let (m0, m1) = (dir.path().join("m0"), dir.path().join("m1"));
    let _fs0 = Tmpfs::mount(&m0, "48m");
    let fs1 = Tmpfs::mount(&m1, "32m");
    let mut node = start(dir.path(), "rw", &m0, &m1);
    let mut conn = node.storage_conn().await;
    let mut on_m1 = Vec::new();
    for i in 0..3 {
        let data = format!("on M01 {i}");
        let (g, f) = upload(&mut conn, 1, &data).await;
        assert!(f.starts_with("M01/"), "{f}");
        on_m1.push((g, f, data));
    }
    // Both paths count: 80 MB in all, more than M00 alone has.
    let (free, total) = until(Duration::from_secs(20), "tracker view", async || {
        node.tracker_view().await.filter(|(free, _)| *free > 48)
    })
    .await;
    assert_eq!(total, 80, "free {free} of {total}");
    assert_eq!(node.shown(&m1).0, None);

    fs1.remount("ro");
    // Every upload succeeds and lands on M00, also those asking for M01.
    uploads_land_on_m00(&mut conn, 6, "while M01 is read-only", |i| {
        if i % 2 == 0 {
            1
        } else {
            0xFF
        }
    })
    .await;
    let (why, line, gauge) = node.shown(&m1);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("read-only")),
        "{why:?}"
    );
    assert!(line.contains("UNWRITABLE"), "{line}");
    assert_eq!(gauge, Some(0.0));
    // The trackers are told 0 MB free for M01: only M00's free space is left.
    let (free, total) = until(Duration::from_secs(10), "tracker told 0 MB", async || {
        node.tracker_view().await.filter(|(free, _)| *free <= 48)
    })
    .await;
    eprintln!("tracker view with M01 read-only: {free} MB free of {total} MB");
    assert!(free > 40, "{free}");
    // Files already on M01 still download.
    for (g, f, data) in &on_m1 {
        assert_eq!(conn.download(g, f, 0, 0).await.unwrap(), data.as_bytes());
    }

    fs1.remount("rw");
    let t0 = Instant::now();
    let (g, f) = until(Duration::from_secs(15), "M01 writable again", async || {
        let (g, f) = upload(&mut conn, 1, "after rw").await;
        f.starts_with("M01/").then_some((g, f))
    })
    .await;
    eprintln!(
        "M01 took new files again {:?} after remount,rw",
        t0.elapsed()
    );
    assert_eq!(conn.download(&g, &f, 0, 0).await.unwrap(), b"after rw");
    let (why, line, gauge) = node.shown(&m1);
    assert_eq!((why, gauge), (None, Some(1.0)), "{line}");
    assert!(!line.contains("UNWRITABLE"), "{line}");
    until(
        Duration::from_secs(10),
        "tracker counts M01 again",
        async || node.tracker_view().await.filter(|(free, _)| *free > 48),
    )
    .await;
    drop(conn);
    drop(node);

    // A node started with M01 already read-only (its files on it) runs, tracker included,
    // and takes uploads through M00.
    fs1.remount("ro");
    let mut node = start(dir.path(), "ro", &m0, &m1);
    let mut conn = node.storage_conn().await;
    uploads_land_on_m00(&mut conn, 3, "started read-only", |_| 1).await;
    for (g, f, data) in &on_m1 {
        assert_eq!(conn.download(g, f, 0, 0).await.unwrap(), data.as_bytes());
    }
    let (why, line, gauge) = node.shown(&m1);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("read-only")),
        "{why:?}"
    );
    assert!(line.contains("UNWRITABLE"), "{line}");
    assert_eq!(gauge, Some(0.0));
    until(
        Duration::from_secs(20),
        "tracker view of the read-only start",
        async || {
            node.tracker_view()
                .await
                .filter(|(free, _)| *free > 40 && *free <= 48)
        },
    )
    .await;
    assert!(node.node.0.try_wait().unwrap().is_none(), "the node exited");
}

/// A store path that is read-only and empty at start (its `data` directories cannot be made):
/// the node runs and serves uploads through its other path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_with_an_empty_read_only_store_path_serves_uploads() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    let (m0, m1) = (dir.path().join("m0"), dir.path().join("m1"));
    std::fs::create_dir_all(&m0).unwrap();
    let fs1 = Tmpfs::mount(&m1, "16m");
    fs1.remount("ro");
    let mut node = start(dir.path(), "empty-ro", &m0, &m1);
    let mut conn = node.storage_conn().await;
    uploads_land_on_m00(&mut conn, 3, "empty read-only", |_| 1).await;
    let (why, line, gauge) = node.shown(&m1);
    assert!(why.is_some(), "{line}");
    assert!(line.contains("UNWRITABLE"), "{line}");
    assert_eq!(gauge, Some(0.0));
    assert!(node.node.0.try_wait().unwrap().is_none(), "the node exited");
}
