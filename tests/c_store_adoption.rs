//! An fdfs-ha storage started on the base path and store path a C FastDFS 6.16.1 storage wrote
//! (issue 17, acceptance 4): `tests/vectors/c-cluster/store-layout/store-layout.tar.gz` is S1
//! after the captured runs (13 files, metadata, appenders, binlog, marks, `.data_init_flag`).

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::config::StorageConfig;
use fdfs_ha::proto::fileid::RemoteName;
use fdfs_ha::storage::binlog::BinlogPos;
use fdfs_ha::storage::StorageServer;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LAYOUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/c-cluster/store-layout/store-layout.tar.gz"
);

fn unpack(into: &Path) {
    let gz = std::fs::File::open(LAYOUT).expect("layout tarball");
    tar::Archive::new(flate2::read::GzDecoder::new(gz))
        .unpack(into)
        .expect("unpack");
}

/// `M00/00/00/<name>` -> bytes, for every data file C stored (not the `-m` side files).
fn c_files(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let dir = store.join("data/00/00");
    std::fs::read_dir(&dir)
        .expect("data/00/00")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with("-m"))
        .map(|e| {
            (
                format!("M00/00/00/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_storage_s_paths_are_served_and_its_flag_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    unpack(dir.path());
    let base = dir.path().join("s1");
    let store = base.join("store0");
    let flag_before = std::fs::read(base.join("data/.data_init_flag")).expect("C flag");
    let binlog_lines = std::fs::read_to_string(base.join("data/sync/binlog.000"))
        .expect("binlog")
        .lines()
        .count();
    let files = c_files(&store);
    assert_eq!(files.len(), 12, "{:?}", files.keys());

    let yaml = format!(
        "group: group1\nlisten: 127.0.0.1:0\ntrackers: [\"127.0.0.1:1\"]\nstore_paths: [\"{}\"]\n\
         base_path: \"{}\"\nreserved_storage_space: 0%\n",
        store.display(),
        base.display()
    );
    let cfg: StorageConfig = serde_saphyr::from_str(&yaml).expect("config");
    let server = StorageServer::bind(&cfg, "test").await.expect("bind");
    let addr = server.local_addr();
    let state = server.state();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));

    // An old member: C's join time and sync_old_done, the flag untouched.
    assert!(state.sync_old_done());
    assert_eq!(state.join_time(), 1796459533);
    assert_eq!(
        std::fs::read(base.join("data/.data_init_flag")).unwrap(),
        flag_before
    );
    // C's binlog is resumed, not rewritten.
    state.binlog().flush().unwrap();
    let recs = state.binlog().reader(BinlogPos::default()).count();
    assert_eq!(recs, binlog_lines);

    let mut c = StorageConn::connect_timeout(addr, Duration::from_secs(5))
        .await
        .expect("connect");
    for (name, bytes) in &files {
        assert_eq!(
            &c.download("group1", name, 0, 0).await.expect(name),
            bytes,
            "{name}"
        );
        let info = c.query_file_info("group1", name, 0).await.expect(name);
        assert_eq!(info.file_size, bytes.len() as u64, "{name}");
        assert_eq!(info.crc32, crc32fast::hash(bytes), "{name}");
    }
    // The metadata C stored for P2 (`-m` side file).
    let p2 = "M00/00/00/fwAAF2sTzXaAQHy6AAAAYwLhge8256.txt";
    assert!(!c.get_metadata("group1", p2).await.expect("meta").is_empty());
    // C's appenders stay appenders: they can be appended to.
    let a = "M00/00/00/fwAAF2sTzQyERWCEAAAAAFrSv48305.txt";
    assert!(RemoteName::parse_str(a).unwrap().info.is_appender());
    c.append(a, b"+fdfs-ha").await.expect("append");
    let now = c.download("group1", a, 0, 0).await.unwrap();
    assert!(now.ends_with(b"+fdfs-ha"));
    assert_eq!(now.len(), files[a].len() + 8);

    stop.cancel();
    task.await.expect("join").expect("serve");
    // Rollback: the flag a C storage reads is still C's.
    assert_eq!(
        std::fs::read(base.join("data/.data_init_flag")).unwrap(),
        flag_before
    );
}
