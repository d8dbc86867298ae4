//! A group with one fdfs-ha storage and one C-like storage (issue 17, acceptances 2 and 3):
//! a stand-in that speaks only what the C FastDFS 6.16.1 captures show (tracker side: JOIN,
//! empty BEATs, SYNC_REPORT entries of 16-byte id + 4-byte timestamp, storage-sync.txt #28;
//! peer side: REPORT_SERVER_ID then SYNC_CREATE_FILE, success answers with empty bodies,
//! SYNC_WATERMARK refused and the connection closed as a C storage does), next to an fdfs-ha
//! tracker and storage on 127.0.0.x. Read routing follows the SYNC_REPORT timestamps both ways:
//! a storage is offered for a file created on the other only once it reported a sync
//! timestamp that covers the file's creation.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::connect_from;

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::config::{StorageConfig, TrackerConfig};
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::fileid::{new_name, FileInfo, Source};
use fdfs_ha::proto::header::{Header, HEADER_LEN};
use fdfs_ha::proto::storage::SyncFileReq;
use fdfs_ha::proto::tracker::{
    encode_sync_report, JoinReq, ReportStatusReq, StorageBrief, StorageStatus, SyncPosition,
};
use fdfs_ha::storage::StorageServer;
use fdfs_ha::tracker::TrackerServer;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Polls `$cond` (which may await) every 100 ms for up to 15 s.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let mut ok = false;
        for _ in 0..150 {
            if $cond {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "timed out waiting for {}", $what);
    }};
}

const GROUP: &str = "group1";
const C_IP: &str = "127.0.0.3";
const HA_IP: &str = "127.0.0.2";

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

async fn send(s: &mut TcpStream, command: u8, body: &[u8]) {
    let mut f = Header::new(command, 0, body.len() as u64).encode().to_vec();
    f.extend_from_slice(body);
    s.write_all(&f).await.unwrap();
}

async fn answer(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).await.unwrap();
    let h = Header::decode(&h).unwrap();
    let mut body = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut body).await.unwrap();
    (h.status, body)
}

async fn call(s: &mut TcpStream, command: u8, body: &[u8]) -> (u8, Vec<u8>) {
    send(s, command, body).await;
    answer(s).await
}

/// The SYNC_DEST_REQ answer a C-like newcomer got: (status, body).
type DestAnswer = Arc<Mutex<Option<(u8, Vec<u8>)>>>;

/// What the C-like storage received from its fdfs-ha peer: (command, body).
type Seen = Arc<Mutex<Vec<(u8, Vec<u8>)>>>;

/// The C-like storage's peer side: answers like a C storage (storage-sync.txt).
async fn c_peer_side(l: TcpListener, seen: Seen) {
    let mut conns = tokio::task::JoinSet::new();
    // Names created here: a create sent again is answered EEXIST, as C does on replays.
    let created: Arc<Mutex<std::collections::HashSet<Vec<u8>>>> = Arc::default();
    while let Ok((mut s, _)) = l.accept().await {
        let seen = seen.clone();
        let created = created.clone();
        conns.spawn(async move {
            loop {
                let mut h = [0u8; HEADER_LEN];
                if s.read_exact(&mut h).await.is_err() {
                    return;
                }
                let h = Header::decode(&h).unwrap();
                let mut body = vec![0u8; h.pkg_len as usize];
                if s.read_exact(&mut body).await.is_err() {
                    return;
                }
                let known = matches!(
                    h.cmd,
                    cmd::REPORT_SERVER_ID
                        | cmd::ACTIVE_TEST
                        | cmd::SYNC_CREATE_FILE
                        | cmd::SYNC_DELETE_FILE
                        | cmd::SYNC_UPDATE_FILE
                        | cmd::SYNC_APPEND_FILE
                        | cmd::SYNC_MODIFY_FILE
                        | cmd::SYNC_TRUNCATE_FILE
                        | cmd::SYNC_RENAME_FILE
                );
                let mut status = if known { 0 } else { errno::EINVAL };
                if h.cmd == cmd::SYNC_CREATE_FILE {
                    const FIXED: usize = SyncFileReq::FIXED_LEN;
                    let n = body
                        .get(..FIXED)
                        .and_then(|f| SyncFileReq::names_len(f).ok())
                        .unwrap_or(0) as usize;
                    let name = body.get(FIXED..FIXED + n).unwrap_or_default().to_vec();
                    if !created.lock().unwrap().insert(name) {
                        status = errno::EEXIST;
                    }
                }
                // The rename quirk (storage-sync.txt #271/#272): success echoes the request.
                let echo = if h.cmd == cmd::SYNC_RENAME_FILE {
                    body.clone()
                } else {
                    Vec::new()
                };
                seen.lock().unwrap().push((h.cmd, body));
                let mut f = Header::new(cmd::RESP, status, echo.len() as u64)
                    .encode()
                    .to_vec();
                f.extend_from_slice(&echo);
                if s.write_all(&f).await.is_err() || !known {
                    return; // a C storage closes on a command it does not know
                }
            }
        });
    }
}

/// The C-like storage's tracker side: JOIN as an old member (init_flag 0, status ACTIVE as a
/// restarted C storage sends it), then an empty BEAT every 300 ms and, when `report` holds
/// one, a SYNC_REPORT (each entry: peer id 16 + timestamp 4, itself included with 0).
async fn c_tracker_side(
    tracker: SocketAddr,
    port: u16,
    report: Arc<Mutex<Option<u32>>>,
    stop: CancellationToken,
) {
    c_tracker_session(tracker, port, report, None, stop).await
}

/// As `c_tracker_side`; with `newcomer`, joins as an empty C storage does (status 0xFF,
/// init_flag 1, tracker-pair.txt #16) and asks SYNC_DEST_REQ (87), keeping the answer there.
async fn c_tracker_session(
    tracker: SocketAddr,
    port: u16,
    report: Arc<Mutex<Option<u32>>>,
    newcomer: Option<DestAnswer>,
    stop: CancellationToken,
) {
    let mut s = connect_from(C_IP, tracker).await;
    let now = unix_now() as i64;
    let join = JoinReq {
        join_time: now - 3600,
        up_time: now,
        init_flag: u8::from(newcomer.is_some()),
        status: if newcomer.is_some() {
            0xFF
        } else {
            StorageStatus::Active as u8
        },
        current_tracker_ip: tracker.ip().to_string(),
        trackers: vec![tracker.to_string()],
        ..JoinReq::c_storage(GROUP, port)
    };
    assert_eq!(call(&mut s, cmd::STORAGE_JOIN, &join.encode()).await.0, 0);
    if let Some(dest) = &newcomer {
        let a = call(&mut s, cmd::STORAGE_SYNC_DEST_REQ, &[]).await;
        *dest.lock().unwrap() = Some(a);
    }
    let mut disk = Vec::new();
    disk.extend_from_slice(&100_000u64.to_be_bytes());
    disk.extend_from_slice(&50_000u64.to_be_bytes());
    assert_eq!(
        call(&mut s, cmd::STORAGE_REPORT_DISK_USAGE, &disk).await.0,
        0
    );
    let mut sent = None;
    while !stop.is_cancelled() {
        assert_eq!(call(&mut s, cmd::STORAGE_BEAT, &[]).await.0, 0);
        let want = *report.lock().unwrap();
        if want != sent {
            if let Some(ts) = want {
                let body = encode_sync_report(&[
                    SyncPosition {
                        src_id: HA_IP.into(),
                        timestamp: ts,
                    },
                    SyncPosition {
                        src_id: C_IP.into(),
                        timestamp: 0,
                    },
                ]);
                assert_eq!(call(&mut s, cmd::STORAGE_SYNC_REPORT, &body).await.0, 0);
            }
            sent = want;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn ha_config(tracker: SocketAddr, store: &Path) -> StorageConfig {
    serde_saphyr::from_str(&format!(
        "group: {GROUP}\nlisten: \"{HA_IP}:0\"\ntrackers: [\"{tracker}\"]\nstore_paths: [\"{}\"]\n\
         heart_beat_interval: 300ms\nstat_report_interval: 1s\nreserved_storage_space: 1%\n\
         sync:\n  binlog_flush_interval: 100ms\n  retry_backoff_min: 50ms\n  retry_backoff_max: 500ms\n",
        store.display()
    ))
    .unwrap()
}

/// The fdfs-ha storage joined empty and the tracker gave it the ACTIVE C storage as its sync
/// source (WAIT_SYNC). The C source, with nothing to copy, reports it SYNCING then OFFLINE with
/// REPORT_STATUS on short connections (tracker-pair.txt #115-#125); the newcomer's next beat
/// makes it ACTIVE.
async fn activate_from_c_source(tracker: SocketAddr, ha_addr: SocketAddr) {
    eventually!(
        "the fdfs-ha storage waiting for the C storage's data",
        status_of(tracker, HA_IP).await == Some(StorageStatus::WaitSync as u8)
    );
    for to in [StorageStatus::Syncing, StorageStatus::Offline] {
        let mut t = connect_from(C_IP, tracker).await;
        let req = ReportStatusReq {
            group: GROUP.into(),
            brief: StorageBrief {
                status: to as u8,
                port: ha_addr.port(),
                id: HA_IP.into(),
                ip: HA_IP.into(),
            },
        };
        assert_eq!(
            call(&mut t, cmd::STORAGE_REPORT_STATUS, &req.encode()).await,
            (0, vec![])
        );
        send(&mut t, cmd::QUIT, &[]).await;
    }
    eventually!(
        "the fdfs-ha storage ACTIVE",
        status_of(tracker, HA_IP).await == Some(StorageStatus::Active as u8)
    );
}

/// The status the tracker lists for the storage at `ip`.
async fn status_of(tracker: SocketAddr, ip: &str) -> Option<u8> {
    let mut t = TcpStream::connect(tracker).await.unwrap();
    fdfs_ha::client::tracker::list_storages(&mut t, GROUP, None)
        .await
        .ok()?
        .into_iter()
        .find(|s| s.ip == ip)
        .map(|s| s.status)
}

/// The creation second encoded in a file name (M00/XX/YY/name).
fn f_created(name: &str) -> u32 {
    fdfs_ha::proto::fileid::RemoteName::parse_str(name)
        .unwrap()
        .info
        .create_time
}

/// The storages the tracker offers for reading `name` (ip, port).
async fn readers(tracker: SocketAddr, name: &str) -> Vec<(String, u16)> {
    let mut t = TcpStream::connect(tracker).await.unwrap();
    fdfs_ha::client::tracker::query_fetch_all(&mut t, GROUP, name)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.ip, a.port))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_the_sync_reports_of_a_c_storage_and_an_fdfs_ha_storage() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let tcfg: TrackerConfig = serde_saphyr::from_str(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\ncheck_active_interval: 3s\n",
    )
    .unwrap();
    let tserver = TrackerServer::bind(&tcfg, &dir.path().join("tracker"))
        .await
        .unwrap();
    let tracker = tserver.local_addr();
    let ttask = tokio::spawn(tserver.serve(stop.clone()));

    // The C-like storage: its peer listener, then its tracker session.
    let cl = TcpListener::bind((C_IP.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let c_addr = cl.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let c_peer = tokio::spawn(c_peer_side(cl, seen.clone()));
    let report: Arc<Mutex<Option<u32>>> = Arc::default();
    let c_tracker = tokio::spawn(c_tracker_side(
        tracker,
        c_addr.port(),
        report.clone(),
        stop.clone(),
    ));

    let store = dir.path().join("ha");
    let ha = StorageServer::bind(&ha_config(tracker, &store), HA_IP)
        .await
        .unwrap();
    let ha_addr = ha.local_addr();
    let ha_task = tokio::spawn(ha.serve(stop.clone()));
    let c_key = (C_IP.to_string(), c_addr.port());
    let ha_key = (HA_IP.to_string(), ha_addr.port());

    // 0. The fdfs-ha storage joins empty: the tracker gives it the ACTIVE C storage as its
    //    sync source (WAIT_SYNC). The C source, with nothing to copy, reports it SYNCING then
    //    OFFLINE with REPORT_STATUS on short connections (tracker-pair.txt #115-#125); the
    //    newcomer's next beat makes it ACTIVE.
    activate_from_c_source(tracker, ha_addr).await;

    // 1. A file the C storage created (source 127.0.0.3, created now): offered on the C
    //    storage only, until the fdfs-ha storage got it and reported a covering timestamp.
    let created = unix_now();
    let info = FileInfo {
        source: Source::Ip(C_IP.parse().unwrap()),
        create_time: created,
        size_field: FileInfo::size_field_for(5, false, 7),
        crc32: crc32fast::hash(b"hello"),
    };
    let name = format!("M00/00/00/{}", new_name(&info, "txt", 42));
    eventually!(
        "the C-like storage offered for its file",
        readers(tracker, &name).await == vec![c_key.clone()]
    );
    // Offered only there while the fdfs-ha storage has not got it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(readers(tracker, &name).await, vec![c_key.clone()]);
    // The C sender: REPORT_SERVER_ID, then SYNC_CREATE_FILE with the record's timestamp.
    let mut s = connect_from(C_IP, ha_addr).await;
    let mut id = C_IP.as_bytes().to_vec();
    id.resize(16, 0);
    assert_eq!(call(&mut s, cmd::REPORT_SERVER_ID, &id).await, (0, vec![]));
    let mut body = SyncFileReq {
        filename: name.clone(),
        file_size: 5,
        timestamp: created,
        group: GROUP.into(),
    }
    .encode();
    body.extend_from_slice(b"hello");
    assert_eq!(
        call(&mut s, cmd::SYNC_CREATE_FILE, &body).await,
        (0, vec![])
    );
    // As in C, a replica is offered only for files created before the newest record it got
    // from their source (t > create time; storage-join.txt, read routing): a later record.
    let later = FileInfo {
        create_time: created + 2,
        ..info
    };
    let name2 = format!("M00/00/00/{}", new_name(&later, "txt", 43));
    let mut body = SyncFileReq {
        filename: name2.clone(),
        file_size: 5,
        timestamp: created + 2,
        group: GROUP.into(),
    }
    .encode();
    body.extend_from_slice(b"hello");
    assert_eq!(
        call(&mut s, cmd::SYNC_CREATE_FILE, &body).await,
        (0, vec![])
    );
    let on_disk = store.join("data").join(&name["M00/".len()..]);
    eventually!("the fdfs-ha storage offered for the C storage's file", {
        let offered = readers(tracker, &name).await.contains(&ha_key);
        assert!(
            !offered || on_disk.exists(),
            "offered before it had the file"
        );
        offered
    });
    // The newest one stays on its source until a still later record comes (C's rule).
    assert_eq!(readers(tracker, &name2).await, vec![c_key.clone()]);

    // 2. A file created on the fdfs-ha storage: the C storage is offered for it only once
    //    its SYNC_REPORT covers the file's creation.
    let mut up = StorageConn::connect(ha_addr).await.unwrap();
    let f = up.upload(0, b"from fdfs-ha", "txt").await.unwrap();
    let g = f.filename.clone();
    eventually!(
        "the file at the C-like storage",
        seen.lock().unwrap().iter().any(|(c, b)| {
            *c == cmd::SYNC_CREATE_FILE && b.windows(g.len()).any(|w| w == g.as_bytes())
        })
    );
    let ts = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(c, b)| *c == cmd::SYNC_CREATE_FILE && b.windows(g.len()).any(|w| w == g.as_bytes()))
        .map(|(_, b)| {
            SyncFileReq::decode(&b[..SyncFileReq::FIXED_LEN + g.len()])
                .unwrap()
                .timestamp
        })
        .unwrap();
    // Received, but not reported yet: not offered there.
    assert_eq!(readers(tracker, &g).await, vec![ha_key.clone()]);
    // A report at the file's own second does not cover it (t > create time, as C).
    let created_g = f_created(&g);
    assert!(ts >= created_g);
    *report.lock().unwrap() = Some(created_g);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        readers(tracker, &g).await,
        vec![ha_key.clone()],
        "report at the creation second"
    );
    *report.lock().unwrap() = Some(ts.max(created_g) + 1);
    eventually!(
        "the C-like storage offered once its report covers the file",
        readers(tracker, &g).await.contains(&c_key)
    );

    stop.cancel();
    ha_task.await.unwrap().unwrap();
    ttask.await.unwrap().unwrap();
    c_tracker.await.unwrap();
    c_peer.abort();
}

/// A new, empty C storage takes an fdfs-ha storage as its sync source (acceptance 2): the
/// tracker names the fdfs-ha storage, which copies every file it holds to the newcomer with
/// what a C receiver accepts, reports it SYNCING then OFFLINE, and the newcomer's beats make
/// it ACTIVE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_c_storage_copies_from_an_fdfs_ha_source_and_turns_active() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let tcfg: TrackerConfig = serde_saphyr::from_str(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\ncheck_active_interval: 3s\n",
    )
    .unwrap();
    let tserver = TrackerServer::bind(&tcfg, &dir.path().join("tracker"))
        .await
        .unwrap();
    let tracker = tserver.local_addr();
    let ttask = tokio::spawn(tserver.serve(stop.clone()));
    let store = dir.path().join("ha");
    let ha = StorageServer::bind(&ha_config(tracker, &store), HA_IP)
        .await
        .unwrap();
    let ha_addr = ha.local_addr();
    let ha_task = tokio::spawn(ha.serve(stop.clone()));
    eventually!(
        "the fdfs-ha storage ACTIVE",
        status_of(tracker, HA_IP).await == Some(StorageStatus::Active as u8)
    );
    let mut up = StorageConn::connect(ha_addr).await.unwrap();
    let mut names = Vec::new();
    for i in 0..3u8 {
        names.push(
            up.upload(0, &[b'a' + i; 100], "bin")
                .await
                .unwrap()
                .filename,
        );
    }

    let cl = TcpListener::bind((C_IP.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let c_addr = cl.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let c_peer = tokio::spawn(c_peer_side(cl, seen.clone()));
    let dest: DestAnswer = Arc::default();
    let c_tracker = tokio::spawn(c_tracker_session(
        tracker,
        c_addr.port(),
        Arc::default(),
        Some(dest.clone()),
        stop.clone(),
    ));
    eventually!("the SYNC_DEST_REQ answer", dest.lock().unwrap().is_some());
    let (st, body) = dest.lock().unwrap().clone().unwrap();
    let src = fdfs_ha::proto::tracker::SyncSource::decode_reply(&body).unwrap();
    assert_eq!((st, src.map(|s| s.src_id)), (0, Some(HA_IP.to_string())));
    eventually!(
        "the new C storage ACTIVE",
        status_of(tracker, C_IP).await == Some(StorageStatus::Active as u8)
    );
    let got = seen.lock().unwrap().clone();
    for n in &names {
        assert!(
            got.iter().any(|(c, b)| *c == cmd::SYNC_CREATE_FILE
                && b.windows(n.len()).any(|w| w == n.as_bytes())),
            "{n} was not copied to the newcomer"
        );
    }
    // A C storage refuses SYNC_WATERMARK and closes: it is tried once, never again.
    let watermarks = got
        .iter()
        .filter(|(c, _)| *c == fdfs_ha::proto::sync::SYNC_WATERMARK)
        .count();
    assert!(watermarks <= 1, "{watermarks} watermarks sent to a C peer");
    stop.cancel();
    ha_task.await.unwrap().unwrap();
    ttask.await.unwrap().unwrap();
    c_tracker.await.unwrap();
    c_peer.abort();
}

/// Every change kind made on the fdfs-ha storage reaches the C-like peer with the commands a C
/// storage uses (storage-sync.txt part 1), and the sender tolerates the C receiver's quirks:
/// the echoed rename answer and EEXIST on a create sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_kind_reaches_a_c_peer_with_c_commands() {
    use fdfs_ha::proto::storage::{MetaOp, MetaPair};
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let tcfg: TrackerConfig = serde_saphyr::from_str(
        "listen: \"127.0.0.1:0\"\nreserved_storage_space: 1%\ncheck_active_interval: 3s\n",
    )
    .unwrap();
    let tserver = TrackerServer::bind(&tcfg, &dir.path().join("tracker"))
        .await
        .unwrap();
    let tracker = tserver.local_addr();
    let ttask = tokio::spawn(tserver.serve(stop.clone()));
    let cl = TcpListener::bind((C_IP.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let c_addr = cl.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let c_peer = tokio::spawn(c_peer_side(cl, seen.clone()));
    let c_tracker = tokio::spawn(c_tracker_side(
        tracker,
        c_addr.port(),
        Arc::default(),
        stop.clone(),
    ));
    let store = dir.path().join("ha");
    let ha = StorageServer::bind(&ha_config(tracker, &store), HA_IP)
        .await
        .unwrap();
    let ha_addr = ha.local_addr();
    let ha_task = tokio::spawn(ha.serve(stop.clone()));
    activate_from_c_source(tracker, ha_addr).await;

    let has = |cmd: u8, name: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(c, b)| *c == cmd && b.windows(name.len()).any(|w| w == name.as_bytes()))
            .count()
    };
    // One change at a time, each seen at the peer before the next (as in storage-sync.txt
    // part 1): a later rename or delete would otherwise make the sender skip an earlier one.
    macro_rules! reaches {
        ($what:expr, $cmd:expr, $name:expr, $n:expr) => {
            eventually!(
                format!("{} of {} at the C peer", $what, $name),
                has($cmd, &$name) >= $n
            )
        };
    }
    let mut c = StorageConn::connect(ha_addr).await.unwrap();
    let n = c.upload(0, b"normal file", "txt").await.unwrap().filename;
    reaches!("create", cmd::SYNC_CREATE_FILE, n, 1);
    let a = c
        .upload_appender(0, b"appender", "txt")
        .await
        .unwrap()
        .filename;
    reaches!("appender create", cmd::SYNC_CREATE_FILE, a, 1);
    c.append(&a, b" and more").await.unwrap();
    reaches!("append", cmd::SYNC_APPEND_FILE, a, 1);
    c.modify(&a, 2, b"XY").await.unwrap();
    reaches!("modify", cmd::SYNC_MODIFY_FILE, a, 1);
    c.truncate(&a, 5).await.unwrap();
    reaches!("truncate (shrink)", cmd::SYNC_TRUNCATE_FILE, a, 1);
    c.truncate(&a, 30).await.unwrap();
    reaches!("truncate (grow)", cmd::SYNC_TRUNCATE_FILE, a, 2);
    let slave = c
        .upload_slave(&n, "_s", "txt", b"slave")
        .await
        .unwrap()
        .filename;
    reaches!("slave", cmd::SYNC_CREATE_FILE, slave, 1);
    let pair = |k: &str, v: &str| -> MetaPair { (k.as_bytes().to_vec(), v.as_bytes().to_vec()) };
    let meta = format!("{n}-m");
    c.set_metadata(GROUP, &n, &[pair("w", "1")], MetaOp::Overwrite)
        .await
        .unwrap();
    reaches!("metadata", cmd::SYNC_CREATE_FILE, meta, 1);
    c.set_metadata(GROUP, &n, &[pair("h", "2")], MetaOp::Merge)
        .await
        .unwrap();
    reaches!("metadata merge", cmd::SYNC_UPDATE_FILE, meta, 1);
    let renamed = c.regenerate_appender(&a).await.unwrap();
    let renamed = renamed
        .rsplit_once(GROUP)
        .map(|(_, r)| r.trim_start_matches('/').to_string())
        .unwrap_or(renamed);
    reaches!("rename (answer echoed)", cmd::SYNC_RENAME_FILE, renamed, 1);
    c.delete(GROUP, &slave).await.unwrap();
    reaches!(
        "delete after the echoed rename",
        cmd::SYNC_DELETE_FILE,
        slave,
        1
    );
    let got = seen.lock().unwrap().clone();
    let truncates = got
        .iter()
        .filter(|(c, b)| {
            *c == cmd::SYNC_TRUNCATE_FILE && b.windows(a.len()).any(|w| w == a.as_bytes())
        })
        .count();
    assert!(truncates >= 2, "shrink and grow: {truncates} truncates");
    let watermarks = got
        .iter()
        .filter(|(c, _)| *c == fdfs_ha::proto::sync::SYNC_WATERMARK)
        .count();
    assert!(watermarks <= 1, "{watermarks} watermarks sent to a C peer");
    stop.cancel();
    ha_task.await.unwrap().unwrap();
    ttask.await.unwrap().unwrap();
    c_tracker.await.unwrap();
    c_peer.abort();
}
