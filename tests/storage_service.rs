//! The storage over real sockets on 127.0.0.1, in-process: every client command through our own
//! client (including those PyPI clients get wrong) and replayed sync messages. Bad input, limits
//! and interrupted uploads: tests/storage_service_faults.rs.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "storage_service_support/mod.rs"]
mod support;

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::fileid::{RemoteName, Source};
use fdfs_ha::proto::storage::MetaOp;
use fdfs_ha::proto::sync::SYNC_WATERMARK;
use fdfs_ha::storage::binlog::{BinlogOp, BinlogPos};
use std::net::Ipv4Addr;
use support::*;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_query_delete_on_one_connection() {
    let st = Storage::start("", 1).await;
    let mut c = st.conn().await;
    let t0 = fdfs_ha::clock::unix_now();
    let f = c.upload(0, b"hello", "txt").await.unwrap();
    assert_eq!(f.group, "group1");
    // FastDFS shape: M00/XX/YY/<27 b64><3 digits>.txt = 44 chars.
    assert_eq!(f.filename.len(), 44, "{}", f.filename);
    assert!(f.filename.starts_with("M00/00/00/") && f.filename.ends_with(".txt"));
    let name = RemoteName::parse_str(&f.filename).unwrap();
    assert_eq!(name.info.source, Source::Ip(Ipv4Addr::LOCALHOST));
    assert_eq!(name.info.file_size(), 5);
    assert_eq!(name.info.crc32, crc32fast::hash(b"hello"));
    assert!(!name.info.is_appender());
    assert!((name.info.create_time as u64) >= t0);
    let on_disk = st.paths[0].join(name.relative_data_path());
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"hello");

    assert_eq!(
        c.download("group1", &f.filename, 0, 0).await.unwrap(),
        b"hello"
    );
    assert_eq!(
        c.download("group1", &f.filename, 1, 3).await.unwrap(),
        b"ell"
    );
    assert_eq!(
        c.download("group1", &f.filename, 2, 0).await.unwrap(),
        b"llo"
    );
    // A range past the end is cut to the file; an offset past the end is EINVAL.
    assert_eq!(
        c.download("group1", &f.filename, 3, 100).await.unwrap(),
        b"lo"
    );
    assert_eq!(
        status(c.download("group1", &f.filename, 6, 0).await),
        errno::EINVAL
    );
    let mut sink = Vec::new();
    assert_eq!(
        c.download_to("group1", &f.filename, 0, 0, &mut sink)
            .await
            .unwrap(),
        5
    );
    assert_eq!(sink, b"hello");

    let info = c.query_file_info("group1", &f.filename, 0).await.unwrap();
    assert_eq!(info.file_size, 5);
    assert_eq!(info.crc32, crc32fast::hash(b"hello"));
    assert_eq!(info.source_ip, "127.0.0.1");
    assert_eq!(info.create_timestamp, name.info.create_time as u64);
    c.active_test().await.unwrap();

    c.delete("group1", &f.filename).await.unwrap();
    assert!(!on_disk.exists());
    assert_eq!(
        status(c.download("group1", &f.filename, 0, 0).await),
        errno::ENOENT
    );
    assert_eq!(status(c.delete("group1", &f.filename).await), errno::ENOENT);
    assert_eq!(
        status(c.query_file_info("group1", &f.filename, 2).await),
        errno::ENOENT
    );
    // Empty files and files without extension work too.
    let e = c.upload(0, b"", "").await.unwrap();
    assert_eq!(e.filename.len(), 44);
    assert!(c
        .download("group1", &e.filename, 0, 0)
        .await
        .unwrap()
        .is_empty());

    let ops = st.binlog_ops();
    assert_eq!(
        ops,
        vec![
            (BinlogOp::Create, f.filename.clone(), None),
            (BinlogOp::Delete, f.filename.clone(), None),
            (BinlogOp::Create, e.filename.clone(), None),
        ]
    );
    let text = std::fs::read_to_string(st.paths[0].join("data/sync/binlog.000")).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.ends_with(&format!(" C {}", f.filename)), "{first}");
    c.quit().await.unwrap();
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_stream_both_ways() {
    let st = Storage::start("", 1).await;
    let mut c = st.conn().await;
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), &data).unwrap();
    let mut file = tokio::fs::File::open(src.path()).await.unwrap();
    let f = c
        .upload_from(0, &mut file, data.len() as u64, "bin")
        .await
        .unwrap();
    let name = RemoteName::parse_str(&f.filename).unwrap();
    assert_eq!(name.info.file_size(), data.len() as u64);
    assert_eq!(name.info.crc32, crc32fast::hash(&data));
    // Streamed download into a file, then a ranged one across chunk boundaries.
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut w = tokio::fs::File::create(out.path()).await.unwrap();
    let n = c
        .download_to("group1", &f.filename, 0, 0, &mut w)
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(std::fs::read(out.path()).unwrap(), data);
    let part = c
        .download("group1", &f.filename, 1_000_000, 2_000_000)
        .await
        .unwrap();
    assert_eq!(part, &data[1_000_000..3_000_000]);
    // From memory: one vectored send of header + head + 3 MiB (many partial writes), stored
    // with O_DIRECT (fsync on, over direct_io_min_size) except the last 17 bytes, read back
    // whole into memory.
    let g = c.upload(0, &data, "bin").await.unwrap();
    assert_eq!(c.download("group1", &g.filename, 0, 0).await.unwrap(), data);
    // The same connection still serves small requests.
    let small = c.upload(0, &data[..4096], "bin").await.unwrap();
    assert_eq!(
        c.download("group1", &small.filename, 0, 0).await.unwrap(),
        &data[..4096]
    );
    st.settle();
    assert!(files_under(&st.tmp_dir(0)).is_empty());
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appender_append_modify_truncate() {
    let st = Storage::start("", 1).await;
    let mut c = st.conn().await;
    let a = c.upload_appender(0, b"hello", "log").await.unwrap();
    let name = RemoteName::parse_str(&a.filename).unwrap();
    assert!(name.info.is_appender());
    assert_eq!(name.info.crc32, crc32fast::hash(b"hello"));
    c.append(&a.filename, b" world").await.unwrap();
    assert_eq!(
        c.download("group1", &a.filename, 0, 0).await.unwrap(),
        b"hello world"
    );
    let mut more: &[u8] = b"!!";
    c.append_from(&a.filename, &mut more, 2).await.unwrap();
    c.modify(&a.filename, 0, b"HELLO").await.unwrap();
    assert_eq!(
        c.download("group1", &a.filename, 0, 0).await.unwrap(),
        b"HELLO world!!"
    );
    // Modify may extend the file from any offset up to its end.
    c.modify(&a.filename, 13, b"??").await.unwrap();
    assert_eq!(
        c.download("group1", &a.filename, 6, 0).await.unwrap(),
        b"world!!??"
    );
    assert_eq!(status(c.modify(&a.filename, 16, b"x").await), errno::EINVAL);
    c.truncate(&a.filename, 5).await.unwrap();
    assert_eq!(
        c.download("group1", &a.filename, 0, 0).await.unwrap(),
        b"HELLO"
    );
    // A larger size pads with zeros, as C FastDFS does (issue 17).
    c.truncate(&a.filename, 8).await.unwrap();
    assert_eq!(
        c.download("group1", &a.filename, 0, 0).await.unwrap(),
        b"HELLO\0\0\0"
    );
    c.truncate(&a.filename, 5).await.unwrap();
    // File info of an appender comes from its content.
    let info = c.query_file_info("group1", &a.filename, 0).await.unwrap();
    assert_eq!((info.file_size, info.crc32), (5, crc32fast::hash(b"HELLO")));
    let fast = c.query_file_info("group1", &a.filename, 1).await.unwrap();
    assert_eq!((fast.file_size, fast.crc32), (5, crc32fast::hash(b"hello")));

    // Only appender files change; a normal file is EINVAL, a missing appender ENOENT.
    let normal = c.upload(0, b"fixed", "txt").await.unwrap();
    assert_eq!(
        status(c.append(&normal.filename, b"x").await),
        errno::EINVAL
    );
    assert_eq!(
        status(c.modify(&normal.filename, 0, b"x").await),
        errno::EINVAL
    );
    assert_eq!(status(c.truncate(&normal.filename, 1).await), errno::EINVAL);
    let missing = a.filename.replace("/00/00/", "/00/01/");
    assert_eq!(status(c.append(&missing, b"x").await), errno::ENOENT);
    assert_eq!(status(c.truncate(&missing, 0).await), errno::ENOENT);
    c.active_test().await.unwrap();

    let ops = st.binlog_ops();
    let f = a.filename.clone();
    assert_eq!(
        ops[..8],
        [
            (BinlogOp::Create, f.clone(), None),
            (BinlogOp::Append, f.clone(), Some("5 6".into())),
            (BinlogOp::Append, f.clone(), Some("11 2".into())),
            (BinlogOp::Modify, f.clone(), Some("0 5".into())),
            (BinlogOp::Modify, f.clone(), Some("13 2".into())),
            (BinlogOp::Truncate, f.clone(), Some("15 5".into())),
            (BinlogOp::Truncate, f.clone(), Some("5 8".into())),
            (BinlogOp::Truncate, f.clone(), Some("8 5".into())),
        ]
    );
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_files_sit_next_to_their_master() {
    let st = Storage::start("", 1).await;
    let mut c = st.conn().await;
    let m = c.upload(0, b"master", "jpg").await.unwrap();
    let s = c
        .upload_slave(&m.filename, "_150x150", "jpg", b"thumb")
        .await
        .unwrap();
    let base = &m.filename[..m.filename.len() - 4];
    assert_eq!(s.filename, format!("{base}_150x150.jpg"));
    assert_eq!(
        c.download("group1", &s.filename, 0, 0).await.unwrap(),
        b"thumb"
    );
    let info = c.query_file_info("group1", &s.filename, 0).await.unwrap();
    assert_eq!((info.file_size, info.crc32), (5, crc32fast::hash(b"thumb")));
    let keep_ext = c
        .upload_slave(&m.filename, "_s", "", b"small")
        .await
        .unwrap();
    assert_eq!(keep_ext.filename, format!("{base}_s.jpg"));
    // Same slave again, a missing master, bad prefixes and a bad extension.
    assert_eq!(
        status(c.upload_slave(&m.filename, "_150x150", "jpg", b"x").await),
        errno::EEXIST
    );
    let missing = m.filename.replace("/00/00/", "/00/02/");
    assert_eq!(
        status(c.upload_slave(&missing, "_s", "jpg", b"x").await),
        errno::ENOENT
    );
    for prefix in ["a/b", "x-m", "", "a.b"] {
        assert_eq!(
            status(c.upload_slave(&m.filename, prefix, "jpg", b"x").await),
            errno::EINVAL,
            "{prefix:?}"
        );
    }
    assert_eq!(
        status(c.upload_slave(&m.filename, "_s", "j/g", b"x").await),
        errno::EINVAL
    );
    // Streams stayed in sync through the refusals.
    c.active_test().await.unwrap();
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_overwrite_merge_and_limits() {
    let st = Storage::start("max_metadata_size: 200\n", 1).await;
    let mut c = st.conn().await;
    let f = c.upload(0, b"meta", "txt").await.unwrap();
    let p = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
    assert_eq!(
        status(c.get_metadata("group1", &f.filename).await),
        errno::ENOENT
    );
    c.set_metadata(
        "group1",
        &f.filename,
        &[p("width", "1024"), p("author", "fdfs")],
        MetaOp::Overwrite,
    )
    .await
    .unwrap();
    assert_eq!(
        c.get_metadata("group1", &f.filename).await.unwrap(),
        vec![p("author", "fdfs"), p("width", "1024")]
    );
    c.set_metadata(
        "group1",
        &f.filename,
        &[p("width", "800"), p("color", "red")],
        MetaOp::Merge,
    )
    .await
    .unwrap();
    assert_eq!(
        c.get_metadata("group1", &f.filename).await.unwrap(),
        vec![p("author", "fdfs"), p("color", "red"), p("width", "800")]
    );
    c.set_metadata(
        "group1",
        &f.filename,
        &[p("only", "one")],
        MetaOp::Overwrite,
    )
    .await
    .unwrap();
    assert_eq!(
        c.get_metadata("group1", &f.filename).await.unwrap(),
        vec![p("only", "one")]
    );
    // Limits: name > 64, value > 256, list > max_metadata_size (200 here).
    let long_name = "n".repeat(65);
    assert_eq!(
        status(
            c.set_metadata("group1", &f.filename, &[p(&long_name, "v")], MetaOp::Merge)
                .await
        ),
        errno::EINVAL
    );
    assert_eq!(
        status(
            c.set_metadata(
                "group1",
                &f.filename,
                &[p("k", &"v".repeat(257))],
                MetaOp::Merge
            )
            .await
        ),
        errno::EINVAL
    );
    let many: Vec<_> = (0..10)
        .map(|i| p(&format!("key{i}"), &"v".repeat(30)))
        .collect();
    assert_eq!(
        status(
            c.set_metadata("group1", &f.filename, &many, MetaOp::Merge)
                .await
        ),
        errno::EINVAL
    );
    assert_eq!(
        c.get_metadata("group1", &f.filename).await.unwrap(),
        vec![p("only", "one")]
    );
    // Missing file; delete removes the sidecar too.
    let missing = f.filename.replace("/00/00/", "/00/03/");
    assert_eq!(
        status(
            c.set_metadata("group1", &missing, &[p("a", "b")], MetaOp::Merge)
                .await
        ),
        errno::ENOENT
    );
    c.delete("group1", &f.filename).await.unwrap();
    let meta = format!("{}-m", f.filename);
    let ops = st.binlog_ops();
    assert_eq!(
        ops[1..],
        [
            (BinlogOp::Create, meta.clone(), None),
            (BinlogOp::Update, meta.clone(), None),
            (BinlogOp::Update, meta.clone(), None),
            (BinlogOp::Delete, f.filename.clone(), None),
            (BinlogOp::Delete, meta.clone(), None),
        ]
    );
    assert!(!st.paths[0]
        .join(format!("data/00/00/{}-m", &f.filename[10..]))
        .exists());
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_id_and_several_store_paths() {
    let st = Storage::start("", 2).await;
    let mut c = st.conn().await;
    // As after PARAMETER_REQ with use_storage_id + id_type_in_filename = id.
    st.state.set_source(Source::Id(100001));
    let f = c.upload(1, b"on M01", "txt").await.unwrap();
    assert!(f.filename.starts_with("M01/"), "{}", f.filename);
    let name = RemoteName::parse_str(&f.filename).unwrap();
    assert_eq!(name.info.source, Source::Id(100001));
    assert!(st.paths[1].join(name.relative_data_path()).is_file());
    assert_eq!(
        c.download("group1", &f.filename, 0, 0).await.unwrap(),
        b"on M01"
    );
    // Own id resolves to our address; other ids through the tracker's id list.
    let info = c.query_file_info("group1", &f.filename, 0).await.unwrap();
    assert_eq!(info.source_ip, "127.0.0.1");
    st.state
        .set_storage_ips([(100001, "10.0.0.1".to_string())].into_iter().collect());
    let info = c.query_file_info("group1", &f.filename, 0).await.unwrap();
    assert_eq!(info.source_ip, "10.0.0.1");
    // 255: the storage picks the path with the most free space.
    let any = c.upload(255, b"anywhere", "txt").await.unwrap();
    assert!(any.filename.starts_with("M00/") || any.filename.starts_with("M01/"));
    assert_eq!(st.state.store_path_count(), 2);
    assert_eq!(st.state.port(), st.addr.port());
    assert_eq!(st.state.disk_usage().len(), 2);
    let snap = st.state.stats().snapshot();
    assert_eq!((snap.upload.total, snap.upload.success), (2, 2));
    assert_eq!(snap.upload_bytes.success, 14);
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_distinct_ids() {
    let st = Storage::start("", 1).await;
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let addr = st.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = StorageConn::connect(addr).await.unwrap();
            let mut ids = Vec::new();
            for i in 0..25u8 {
                let body = vec![t, i];
                let f = c.upload(0, &body, "dat").await.unwrap();
                assert_eq!(c.download("group1", &f.filename, 0, 0).await.unwrap(), body);
                ids.push(f.filename);
            }
            ids
        }));
    }
    let mut all = std::collections::HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(all.insert(id));
        }
    }
    assert_eq!(all.len(), 200);
    // Round robin moves to the next directory every file_distribute_rotate_count (100) files.
    assert!(all.iter().any(|f| f.starts_with("M00/00/01/")));
    st.stop().await;
}

/// py3fdfs's low-level storage client (what its tracker-driven API calls after QUERY_STORE)
/// against our storage: upload, full and ranged download, appender upload, append, delete.
/// Runs where scripts/install-test-deps set FDFS_HA_PY3FDFS (scripts/test-all does).
const PY3FDFS_SCRIPT: &str = r#"
import sys
from fdfs_client.storage_client import Storage_client
from fdfs_client.fdfs_protol import Storage_server
port = int(sys.argv[1])
ss = Storage_server()
ss.ip_addr = '127.0.0.1'; ss.port = port; ss.group_name = b'group1'; ss.store_path_index = 0
c = Storage_client('127.0.0.1', port, 30)
fid = c.storage_upload_by_buffer(None, ss, b'hello', file_ext_name='txt')['Remote file_id']
name = fid.split(b'/', 1)[1]
assert c.storage_download_to_buffer(None, ss, None, 0, 0, name)['Content'] == b'hello'
assert c.storage_download_to_buffer(None, ss, None, 1, 3, name)['Content'] == b'ell'
a = c.storage_upload_appender_by_buffer(None, ss, b'part1-', file_ext_name='log')['Remote file_id']
an = a.split(b'/', 1)[1]
c.storage_append_by_buffer(None, ss, b'part2', an)
assert c.storage_download_to_buffer(None, ss, None, 0, 0, an)['Content'] == b'part1-part2'
c.storage_delete_file(None, ss, name)
print(fid.decode())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py3fdfs_storage_client_works_unchanged() {
    let Ok(python) = std::env::var("FDFS_HA_PY3FDFS") else {
        eprintln!("FDFS_HA_PY3FDFS not set (run scripts/test-all): skipping py3fdfs check");
        return;
    };
    let st = Storage::start("", 1).await;
    let port = st.addr.port().to_string();
    let out = tokio::process::Command::new(python)
        .args(["-c", PY3FDFS_SCRIPT, &port])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "py3fdfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (group, filename) = fid.split_once('/').unwrap();
    assert_eq!(group, "group1");
    // The file it uploaded had our ID shape and is gone after its delete.
    RemoteName::parse_str(filename).unwrap();
    let mut c = st.conn().await;
    assert_eq!(
        status(c.download("group1", filename, 0, 0).await),
        errno::ENOENT
    );
    st.stop().await;
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Storage-to-storage sync messages captured from FastDFS 6.16.1 (vectors.txt blocks [29]-[38])
/// replayed byte for byte into our storage: same answers as the C storage gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_sync_messages_are_applied_as_replica_changes() {
    use fdfs_ha::proto::storage::SyncTruncateReq;
    let st = Storage::start("", 1).await;
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let n262 = "M00/01/FE/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt";
    let n966 = "M00/01/FE/ooYBAGsBrViEDNbfAAAAADYQpoY966.txt";
    // [29]/[30] REPORT_SERVER_ID.
    let m = hex("0000000000000010090031303030303100000000000000000000");
    assert_eq!(raw_request(&mut s, &m).await.unwrap().0.status, 0);
    // [37] SYNC_CREATE_FILE 'hello', then [38] its metadata sidecar.
    let create = hex("00000000000000551000000000000000002c00000000000000056b01adc667726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e74787468656c6c6f");
    assert_eq!(raw_request(&mut s, &create).await.unwrap().0.status, 0);
    let meta = hex("00000000000000681000000000000000002e00000000000000166b01adc667726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e7478742d6d617574686f7202666466730177696474680231303234");
    assert_eq!(raw_request(&mut s, &meta).await.unwrap().0.status, 0);
    let mut c = st.conn().await;
    assert_eq!(c.download("group1", n262, 0, 0).await.unwrap(), b"hello");
    assert_eq!(c.get_metadata("group1", n262).await.unwrap().len(), 2);
    // Creating it again: EEXIST (what the C storage logs for an already-synced file).
    assert_eq!(
        raw_request(&mut s, &create).await.unwrap().0.status,
        errno::EEXIST
    );
    // [37]/[38] SYNC_DELETE_FILE of the file and its sidecar; a second delete is ENOENT ([29]).
    let del = hex("000000000000004011006b01adcc67726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e747874");
    let del_m = hex("000000000000004211006b01adcc67726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e7478742d6d");
    assert_eq!(raw_request(&mut s, &del).await.unwrap().0.status, 0);
    assert_eq!(raw_request(&mut s, &del_m).await.unwrap().0.status, 0);
    assert_eq!(
        raw_request(&mut s, &del).await.unwrap().0.status,
        errno::ENOENT
    );
    // [32] SYNC_APPEND_FILE to an appender we never received: ENOENT, so the sender falls back
    // to SYNC_UPDATE_FILE of the whole file (the captured group fields carry junk after NUL).
    let append = hex("000000000000005e1900000000000000002c000000000000000500000000000000066b01ad5967726f757031000000003132372e302e4d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e74787420776f726c64");
    assert_eq!(
        raw_request(&mut s, &append).await.unwrap().0.status,
        errno::ENOENT
    );
    let update = hex("000000000000005b1200000000000000002c000000000000000b6b01ad5967726f75703100445951706f593936364d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e74787468656c6c6f20776f726c64");
    assert_eq!(raw_request(&mut s, &update).await.unwrap().0.status, 0);
    assert_eq!(
        c.download("group1", n966, 0, 0).await.unwrap(),
        b"hello world"
    );
    // Now the append applies (same bytes at offset 5), then a truncate.
    assert_eq!(raw_request(&mut s, &append).await.unwrap().0.status, 0);
    let trunc = SyncTruncateReq {
        filename: n966.into(),
        old_size: 11,
        new_size: 5,
        timestamp: 1795272030,
        group: "group1".into(),
    }
    .encode();
    let (h, _) = raw_request(&mut s, &frame(cmd::SYNC_TRUNCATE_FILE, &trunc))
        .await
        .unwrap();
    assert_eq!(h.status, 0);
    assert_eq!(c.download("group1", n966, 0, 0).await.unwrap(), b"hello");

    // Replica records: lower-case ops with the peer's timestamps.
    st.state.binlog().flush().unwrap();
    let recs: Vec<_> = st
        .state
        .binlog()
        .reader(BinlogPos::default())
        .map(|r| r.unwrap().0)
        .collect();
    let lines: Vec<String> = recs.iter().map(|r| r.encode()).collect();
    assert_eq!(
        lines,
        vec![
            format!("1795272134 c {n262}\n"),
            format!("1795272134 c {n262}-m\n"),
            format!("1795272140 d {n262}\n"),
            format!("1795272140 d {n262}-m\n"),
            format!("1795272025 u {n966}\n"),
            format!("1795272025 a {n966} 5 6\n"),
            format!("1795272030 t {n966} 11 5\n"),
        ]
    );
    assert_eq!(
        st.state.stats().snapshot().last_synced_timestamp,
        1795272140
    );
    // Applied records alone do not say what we hold of the sender's files (its lanes run in
    // parallel); its SYNC_WATERMARK does, and only on an identified connection.
    assert!(st.state.synced_from().is_empty());
    // A peer's small new file is acknowledged before it is flushed; answering the watermark
    // confirms it is on the disk (the sender resends what a peer never confirmed).
    assert_eq!(raw_request(&mut s, &create).await.unwrap().0.status, 0);
    assert_eq!(st.state.store().unflushed_count(), 1);
    let wm = frame(SYNC_WATERMARK, &1795272200u64.to_be_bytes());
    assert_eq!(raw_request(&mut s, &wm).await.unwrap().0.status, 0);
    assert_eq!(st.state.store().unflushed_count(), 0);
    assert_eq!(c.download("group1", n262, 0, 0).await.unwrap(), b"hello");
    assert_eq!(
        st.state.synced_from(),
        vec![("100001".to_string(), 1795272200)]
    );
    let short = frame(SYNC_WATERMARK, &[1, 2, 3]);
    assert_eq!(
        raw_request(&mut s, &short).await.unwrap().0.status,
        errno::EINVAL
    );
    let mut anon = TcpStream::connect(st.addr).await.unwrap();
    assert_eq!(
        raw_request(&mut anon, &wm).await.unwrap().0.status,
        errno::EINVAL
    );
    st.stop().await;
}

/// Issue 17: REGENERATE_APPENDER_FILENAME (38) turns an appender into a normal file under a new
/// name (metadata follows, binlog `R new old`), and SYNC_RENAME_FILE (40) applies a peer's
/// rename: the captured C request (storage-sync.txt #271) byte for byte, EEXIST on a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_appender_and_sync_rename() {
    let st = Storage::start("", 1).await;
    let mut c = st.conn().await;
    let a = c.upload_appender(0, b"hello", "txt").await.unwrap();
    c.append(&a.filename, b" world").await.unwrap();
    let pair = (b"k".to_vec(), b"v".to_vec());
    c.set_metadata(
        "group1",
        &a.filename,
        std::slice::from_ref(&pair),
        MetaOp::Overwrite,
    )
    .await
    .unwrap();
    let id = c.regenerate_appender(&a.filename).await.unwrap();
    let new = id.strip_prefix("group1/").expect("group prefix");
    let (old_n, new_n) = (
        RemoteName::parse_str(&a.filename).unwrap(),
        RemoteName::parse_str(new).unwrap(),
    );
    assert!(!new_n.info.is_appender());
    assert_eq!(new_n.info.file_size(), 11);
    assert_eq!(new_n.info.crc32, old_n.info.crc32);
    assert_eq!(&new_n.name[27..], &old_n.name[27..]);
    assert_eq!(
        c.download("group1", new, 0, 0).await.unwrap(),
        b"hello world"
    );
    assert_eq!(c.get_metadata("group1", new).await.unwrap(), vec![pair]);
    assert_eq!(
        status(c.download("group1", &a.filename, 0, 0).await),
        errno::ENOENT
    );
    // A normal file cannot be regenerated.
    assert_eq!(status(c.regenerate_appender(new).await), errno::EINVAL);
    let ops = st.binlog_ops();
    assert_eq!(
        ops.last().unwrap(),
        &(BinlogOp::Rename, new.to_string(), Some(a.filename.clone()))
    );

    // A C peer's rename of A2 -> N2 (#271), after A2 arrived by SYNC_CREATE_FILE.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let a2 = "M00/00/00/fwAAF2sTzSmEEH9AAAAAAFrSv48137.txt";
    let n2 = "M00/00/00/fwAAF2sTzSyAbA70AAAAEFrSv48137.txt";
    let create = fdfs_ha::proto::storage::SyncFileReq {
        filename: a2.into(),
        file_size: 16,
        timestamp: 1796459817,
        group: "group1".into(),
    }
    .encode();
    let msg = frame(
        cmd::SYNC_CREATE_FILE,
        &[create, b"0123456789abcdef".to_vec()].concat(),
    );
    assert_eq!(raw_request(&mut s, &msg).await.unwrap().0.status, 0);
    // #271 as captured.
    let captured = hex("000000000000002c000000000000002c6b13cd2c67726f757031000000000000000000004d30302f30302f30302f66774141463273547a5379416241373041414141454672537634383133372e7478744d30302f30302f30302f66774141463273547a536d454548394141414141414672537634383133372e747874");
    let body = fdfs_ha::proto::rename::SyncRenameReq {
        timestamp: 1796459820,
        group: "group1".into(),
        new_name: n2.into(),
        old_name: a2.into(),
    }
    .encode();
    assert_eq!(body, captured);
    let (h, _) = raw_request(&mut s, &frame(cmd::SYNC_RENAME_FILE, &body))
        .await
        .unwrap();
    assert_eq!(h.status, 0);
    assert_eq!(
        c.download("group1", n2, 0, 0).await.unwrap(),
        b"0123456789abcdef"
    );
    assert_eq!(status(c.download("group1", a2, 0, 0).await), errno::ENOENT);
    // The replay C's sender makes after the echoed answer: EEXIST, which C counts as done.
    let (h, _) = raw_request(&mut s, &frame(cmd::SYNC_RENAME_FILE, &body))
        .await
        .unwrap();
    assert_eq!(h.status, errno::EEXIST);
    st.stop().await;
}
