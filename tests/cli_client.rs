//! The fdfs_* verbs of the `fdfs-ha` binary (issue 20.2) against a real tracker + storage on
//! 127.0.0.1: client.conf given as the C tools take it (first argument, or `-c`), every verb the
//! operators' scripts use, and exit codes that follow the errno the server answered.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::client::FdfsClient;
use fdfs_ha::config::{StorageConfig, TrackerConfig};
use fdfs_ha::storage::StorageServer;
use fdfs_ha::tracker::TrackerServer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Cluster {
    tracker: SocketAddr,
    storage: SocketAddr,
    stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A tracker and one storage; with `ids`, the storage is "100001" and file IDs carry that ID.
async fn start_cluster(ids: bool) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let id_conf = if ids {
        "use_storage_id: true\nid_type_in_filename: id\nstorage_ids: [{id: \"100001\", group: group1, ip: 127.0.0.1}]\n"
    } else {
        ""
    };
    let tcfg: TrackerConfig = serde_saphyr::from_str(&format!(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\ncheck_active_interval: 5s\n{id_conf}"
    ))
    .unwrap();
    let tracker = TrackerServer::bind(&tcfg, &dir.path().join("t"))
        .await
        .unwrap();
    let taddr = tracker.local_addr();
    tokio::spawn(tracker.serve(stop.clone()));
    let scfg: StorageConfig = serde_saphyr::from_str(&format!(
        "group: group1\n{}listen: \"127.0.0.1:0\"\ntrackers: [\"{taddr}\"]\nstore_paths: [\"{}\", \"{}\"]\nheart_beat_interval: 1s\nstat_report_interval: 1s\nreserved_storage_space: 1%\n",
        if ids { "id: \"100001\"\n" } else { "" },
        dir.path().join("store0").display(),
        dir.path().join("store1").display()
    ))
    .unwrap();
    let storage = StorageServer::bind(&scfg, "s1").await.unwrap();
    let saddr = storage.local_addr();
    tokio::spawn(storage.serve(stop.clone()));
    let client = FdfsClient::new(vec![taddr]);
    for _ in 0..100 {
        if client.active_storage_count("group1").await.unwrap_or(0) == 1 {
            // The storage learns id mode from the tracker's parameters after it joins.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Cluster {
                tracker: taddr,
                storage: saddr,
                stop,
                dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("storage did not become ACTIVE on the tracker");
}

/// Runs the binary off the runtime's threads (the servers keep running meanwhile).
async fn fdfs(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(a: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<String> {
    a.iter()
        .map(|x| x.as_ref().to_string_lossy().to_string())
        .collect()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fdfs_verbs_work_with_client_conf() {
    let c = start_cluster(false).await;
    let d = c.dir.path();
    let conf = write(
        d,
        "client.conf",
        format!(
            "connect_timeout=5\nnetwork_timeout=30\nbase_path=/tmp\ntracker_server={}\n\
             use_storage_id = false\n",
            c.tracker
        )
        .as_bytes(),
    );
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = write(d, "photo.jpg", &data);

    // fdfs_upload_file /etc/fdfs/client.conf FILE: the config first, the ID on stdout, and the
    // output stays free of progress when not on a terminal.
    let o = fdfs(args(&[&"upload", &conf, &file])).await;
    let id = ok(&o);
    assert!(id.starts_with("group1/M0") && id.ends_with(".jpg"), "{id}");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // x.tar.gz keeps `tar.gz`, as fdfs_upload_file sends it.
    let tgz = write(d, "x.tar.gz", b"not really gzip");
    let tid = ok(&fdfs(args(&[&"upload", &conf, &tgz])).await);
    assert!(tid.ends_with(".tar.gz"), "{tid}");
    let back = d.join("x.back");
    ok(&fdfs(args(&[&"download", &conf, &tid, &back])).await);
    assert_eq!(std::fs::read(&back).unwrap(), b"not really gzip");
    let info = ok(&fdfs(args(&[&"info", &conf, &tid])).await);
    assert!(info.contains("GET FROM SERVER: true"), "{info}");

    // download whole (with -c), then a range.
    let out = d.join("back.jpg");
    ok(&fdfs(args(&[&"download", &"-c", &conf, &id, &out])).await);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let part = d.join("part");
    ok(&fdfs(args(&[&"download", &conf, &id, &part, &"1000", &"500"])).await);
    assert_eq!(std::fs::read(&part).unwrap(), &data[1000..1500]);

    // info and crc32 agree with the content.
    let info = ok(&fdfs(args(&[&"info", &conf, &id])).await);
    assert!(info.contains("GET FROM SERVER: true"), "{info}");
    assert!(
        info.contains(&format!("{:#010x}", crc32fast::hash(&data))),
        "{info}"
    );
    let crc = ok(&fdfs(args(&[&"crc32", &file])).await);
    assert_eq!(crc, crc32fast::hash(&data).to_string());

    // Upload straight to a given storage and store path (fdfs_upload_file's 3rd/4th argument).
    let id1 = ok(&fdfs(args(&[
        &"upload",
        &conf,
        &file,
        &c.storage.to_string(),
        &"1",
    ]))
    .await);
    assert!(id1.starts_with("group1/M01/"), "{id1}");

    // Appender: upload, append, modify, truncate, regenerate.
    let a = write(d, "log.txt", b"hello ");
    let b = write(d, "more.txt", b"world");
    let app = ok(&fdfs(args(&[&"upload-appender", &conf, &a])).await);
    ok(&fdfs(args(&[&"append", &conf, &app, &b])).await);
    let m = write(d, "m.txt", b"HE");
    ok(&fdfs(args(&[&"modify", &conf, &app, &"0", &m])).await);
    let got = d.join("app.out");
    ok(&fdfs(args(&[&"download", &conf, &app, &got])).await);
    assert_eq!(std::fs::read(&got).unwrap(), b"HEllo world");
    ok(&fdfs(args(&[&"truncate", &conf, &app, &"5"])).await);
    ok(&fdfs(args(&[&"download", &conf, &app, &got])).await);
    assert_eq!(std::fs::read(&got).unwrap(), b"HEllo");
    let normal = ok(&fdfs(args(&[&"regenerate", &conf, &app])).await);
    assert!(normal.starts_with("group1/") && normal != app, "{normal}");
    ok(&fdfs(args(&[&"download", &conf, &normal, &got])).await);
    assert_eq!(std::fs::read(&got).unwrap(), b"HEllo");

    // A long transfer: quiet when piped; progress when stderr is a terminal (a pty from
    // util-linux `script`).
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let bigf = write(d, "big.bin", &big);
    let o = fdfs(args(&[&"upload", &conf, &bigf])).await;
    let big_id = ok(&o);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cmd = format!(
        "{} download {} {big_id} {}",
        env!("CARGO_BIN_EXE_fdfs-ha"),
        conf.display(),
        d.join("big.back").display()
    );
    let o = tokio::task::spawn_blocking(move || {
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{tty}");
    assert!(tty.contains("download: 2.9/2.9 MiB (100%)"), "{tty:?}");
    assert_eq!(std::fs::read(d.join("big.back")).unwrap(), big);

    // monitor lists the storage.
    let mon = ok(&fdfs(args(&[&"monitor", &conf])).await);
    assert!(mon.contains("ACTIVE"), "{mon}");

    // delete; then the server's ENOENT (2) is the exit code.
    ok(&fdfs(args(&[&"delete", &conf, &id])).await);
    let o = fdfs(args(&[&"download", &conf, &id, &out])).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = fdfs(args(&[&"delete", &conf, &id])).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_client_conf_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "client.conf", b"base_path=/tmp\n");
    let o = fdfs(args(&[&"upload", &conf, &"x"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tracker_server"));
    let o = fdfs(args(&[&"modify", &"id-only"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_resolves_a_storage_id_with_use_storage_id() {
    let c = start_cluster(true).await;
    let d = c.dir.path();
    let conf = write(
        d,
        "client.conf",
        format!("tracker_server={}\nuse_storage_id = true\n", c.tracker).as_bytes(),
    );
    let f = write(d, "a.txt", b"named by storage id");
    let id = ok(&fdfs(args(&[&"upload", &conf, &f])).await);
    let info = ok(&fdfs(args(&[&"info", &conf, &id])).await);
    assert!(
        info.contains("source storage id 100001: 127.0.0.1"),
        "{info}"
    );
}
