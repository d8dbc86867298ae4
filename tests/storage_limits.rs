//! Who may talk to a storage and what a connection may cost it (issue 18): `allow_hosts` at
//! accept, replication commands only from the group's storages, inactivity deadlines (a slow
//! client that keeps sending finishes, a dripping refused body does not hold the connection),
//! and `reserved_storage_space` for every write that grows a file.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::{closed_silently, connect_from};

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::config::{Reserved, StorageConfig};
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::connection::read_message;
use fdfs_ha::proto::storage::{SyncDeleteReq, UploadReq, UploadResp};
use fdfs_ha::proto::tracker::StorageBrief;
use fdfs_ha::proto::Header;
use fdfs_ha::storage::{StorageServer, StorageState};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Storage {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    state: Arc<StorageState>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Storage {
    async fn start(extra_yaml: &str) -> Storage {
        let st = Storage::unlisted(extra_yaml).await;
        st.state.set_group_servers(group_list());
        st
    }

    /// A storage no tracker has sent its group's list yet (the first moments after start).
    async fn unlisted(extra_yaml: &str) -> Storage {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "group: group1\nlisten: 127.0.0.1:0\ntrackers: [\"127.0.0.1:1\"]\nstore_paths: [\"{}\"]\nreserved_storage_space: 0%\n{extra_yaml}",
            dir.path().join("store0").display()
        );
        let cfg: StorageConfig = serde_saphyr::from_str(&yaml).unwrap();
        let server = StorageServer::bind(&cfg, "test").await.unwrap();
        let addr = server.local_addr();
        let state = server.state();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(stop.clone()));
        Storage {
            _dir: dir,
            addr,
            state,
            stop,
            task,
        }
    }

    async fn conn(&self) -> StorageConn {
        StorageConn::connect_timeout(self.addr, Duration::from_secs(5))
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// As a tracker would list the group: one peer storage, on 127.0.0.1.
fn group_list() -> Vec<StorageBrief> {
    vec![StorageBrief {
        status: 7,
        port: 1,
        id: "100001".into(),
        ip: "127.0.0.1".into(),
    }]
}

fn frame(cmd: u8, pkg_len: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Header::new(cmd, 0, pkg_len).encode().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn allow_hosts_closes_other_addresses_at_accept() {
    let st = Storage::start("allow_hosts: [\"127.0.0.1\", \"127.0.0.[2-3]\"]").await;
    let mut ok = connect_from("127.0.0.3", st.addr).await;
    ok.write_all(&frame(cmd::ACTIVE_TEST, 0, &[]))
        .await
        .unwrap();
    let (h, _) = read_message(&mut ok, 16).await.unwrap();
    assert_eq!(h.status, 0);
    let mut no = connect_from("127.0.0.4", st.addr).await;
    assert!(closed_silently(&mut no, Duration::from_secs(5)).await);
    let adm = st.state.admission();
    assert_eq!(adm.refused_not_allowed.load(Ordering::Relaxed), 1);
    st.stop().await;
}

/// Issue 18 F2: SYNC_UPDATE_FILE / SYNC_TRUNCATE_FILE from a stranger changed files. Replication
/// commands are taken only from the storages the trackers list in this group.
#[tokio::test]
async fn replication_commands_from_a_stranger_are_refused() {
    let st = Storage::start("").await;
    let mut c = st.conn().await;
    let f = c.upload(0xFF, b"keep me", "txt").await.unwrap();
    let del = SyncDeleteReq {
        timestamp: 1,
        group: "group1".into(),
        filename: f.filename.clone(),
    }
    .encode();
    let mut stranger = connect_from("127.0.0.2", st.addr).await;
    stranger
        .write_all(&frame(cmd::SYNC_DELETE_FILE, del.len() as u64, &del))
        .await
        .unwrap();
    let (h, _) = read_message(&mut stranger, 16).await.unwrap();
    assert_eq!(h.status, errno::EACCES);
    assert_eq!(st.state.refused_sync_peers.load(Ordering::Relaxed), 1);
    assert_eq!(
        c.download("group1", &f.filename, 0, 0).await.unwrap(),
        b"keep me"
    );
    // The group's listed storage (127.0.0.1) may.
    let mut peer = connect_from("127.0.0.1", st.addr).await;
    peer.write_all(&frame(cmd::SYNC_DELETE_FILE, del.len() as u64, &del))
        .await
        .unwrap();
    let (h, _) = read_message(&mut peer, 16).await.unwrap();
    assert_eq!(h.status, 0);
    st.stop().await;
}

/// Issue 24.1: a peer's first replication command can come before any tracker sent this
/// storage its group's list (the trackers were still electing their leader); it was refused and
/// the newcomer's copy stalled. It now waits for the list, and is judged on it.
#[tokio::test]
async fn replication_before_the_group_list_came_waits_for_it() {
    let st = Storage::unlisted("").await;
    let mut c = st.conn().await;
    let f = c.upload(0xFF, b"delete me", "txt").await.unwrap();
    let del = SyncDeleteReq {
        timestamp: 1,
        group: "group1".into(),
        filename: f.filename.clone(),
    }
    .encode();
    let mut peer = connect_from("127.0.0.1", st.addr).await;
    peer.write_all(&frame(cmd::SYNC_DELETE_FILE, del.len() as u64, &del))
        .await
        .unwrap();
    let state = st.state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        state.set_group_servers(group_list());
    });
    let (h, _) = read_message(&mut peer, 16).await.unwrap();
    assert_eq!(h.status, 0, "the listed peer's command waited for the list");
    assert_eq!(st.state.refused_sync_peers.load(Ordering::Relaxed), 0);
    // The list is known now: a host it does not name is refused at once.
    let mut stranger = connect_from("127.0.0.2", st.addr).await;
    stranger
        .write_all(&frame(cmd::SYNC_DELETE_FILE, del.len() as u64, &del))
        .await
        .unwrap();
    let (h, _) = tokio::time::timeout(Duration::from_secs(1), read_message(&mut stranger, 16))
        .await
        .expect("refused without waiting")
        .unwrap();
    assert_eq!(h.status, errno::EACCES);
    st.stop().await;
}

/// Sends an upload's content in `step`-byte pieces every `every`, returns the answer.
async fn slow_upload(s: &mut TcpStream, size: usize, step: usize, every: Duration) -> UploadResp {
    let head = UploadReq {
        store_path_index: 0xFF,
        file_size: size as u64,
        ext: "bin".into(),
    }
    .encode();
    s.write_all(&frame(cmd::UPLOAD_FILE, (head.len() + size) as u64, &head))
        .await
        .unwrap();
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    for piece in content.chunks(step) {
        tokio::time::sleep(every).await;
        s.write_all(piece).await.unwrap();
    }
    let (h, body) = read_message(s, 1024).await.unwrap();
    assert_eq!(h.status, 0);
    UploadResp::decode(&body).unwrap()
}

/// Issue 18 F5: the body deadline was per 512 KiB chunk (and whole for small files), so a
/// steady slow client was cut off. With network_timeout 1 s, uploads taking ~2 s at a steady
/// pace (a small file read whole, and a streamed one) succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_slow_upload_outlasting_network_timeout_succeeds() {
    let st = Storage::start("network_timeout: 1s").await;
    for size in [100 * 1024, 600 * 1024] {
        let mut s = connect_from("127.0.0.1", st.addr).await;
        let step = size / 20;
        let r = slow_upload(&mut s, size, step, Duration::from_millis(100)).await;
        let mut c = st.conn().await;
        let got = c.download("group1", &r.filename, 0, 0).await.unwrap();
        assert_eq!(got.len(), size);
    }
    st.stop().await;
}

/// Issue 18 F4: a refused body was skipped with a deadline per read, so 1 byte every
/// (network_timeout - e) held the connection for as long as the declared length lasted.
#[tokio::test]
async fn dripping_refused_body_is_closed_at_network_timeout() {
    let st = Storage::start("network_timeout: 1s").await;
    let mut s = connect_from("127.0.0.1", st.addr).await;
    // An unknown command with a 100-byte body: refused, its body skipped.
    s.write_all(&frame(99, 100, &[])).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // 1 byte every 300 ms: 30 s for the whole body, each byte well within network_timeout.
    let drip = tokio::spawn(async move {
        let mut sent = 0;
        while sent < 100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if wr.write_all(&[0]).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut b = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(20), rd.read(&mut b)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "connection still open: {closed:?}"
    );
    drip.abort();
    st.stop().await;
}

/// Issue 18 F10: reserved_storage_space held for uploads only; appends ran a disk full.
#[tokio::test]
async fn reserved_space_holds_for_every_write_that_grows_a_file() {
    let st = Storage::start("").await;
    let mut c = st.conn().await;
    let f = c.upload_appender(0xFF, b"0123456789", "log").await.unwrap();
    // No disk here keeps 99.99 % free: any growth is refused from now on.
    st.state.store().set_reserved(Reserved::Percent(99.99));
    let enospc =
        |r: Result<(), fdfs_ha::proto::connection::ConnError>| r.err().and_then(|e| e.status());
    assert_eq!(
        enospc(c.append(&f.filename, b"more").await),
        Some(errno::ENOSPC)
    );
    let mut c = st.conn().await;
    assert_eq!(
        enospc(c.modify(&f.filename, 8, b"past end").await),
        Some(errno::ENOSPC)
    );
    let mut c = st.conn().await;
    assert_eq!(
        enospc(c.truncate(&f.filename, 1 << 20).await),
        Some(errno::ENOSPC)
    );
    // Writes that do not grow the file still go through.
    c.modify(&f.filename, 0, b"ab").await.unwrap();
    c.truncate(&f.filename, 4).await.unwrap();
    assert_eq!(
        c.download("group1", &f.filename, 0, 0).await.unwrap(),
        b"ab23"
    );
    st.stop().await;
}
