//! A new, empty fdfs-ha storage whose sync source is a C storage holding real data (issue 17,
//! acceptance 2: "a new fdfs-ha storage can take a C one"): it gets all of it.
//!
//! The stand-in C source plays S1 of storage-join.pcap: the fdfs-ha storage is S3 (the empty
//! newcomer, 127.0.0.25), S1 (127.0.0.23) is an ACTIVE C storage known to our tracker, and
//! every byte S1 sent to S3's port during the captured full copy (REPORT_SERVER_ID, the five
//! parallel records of the first pass, then the second pass: SYNC_CREATE / UPDATE / APPEND /
//! MODIFY / TRUNCATE / RENAME / DELETE with C's group-field junk, the 512 KiB file, the
//! metadata files) is sent again, in the capture's order, one connection per captured
//! connection; SYNCING and OFFLINE are reported with REPORT_STATUS as S1 did (#86-#98,
//! #288-#292). C's S3 ended with exactly S1's files (README: same md5 everywhere); so must
//! ours: every data and `-m` file of S1's store path (store-layout.tar.gz) byte for byte,
//! except the one file S2 created after the copy (AF, sent to S3 by S2, not by S1).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::connect_from;

#[allow(dead_code)]
#[path = "c_cluster/pcap.rs"]
mod pcap;

use fdfs_ha::config::{StorageConfig, TrackerConfig};
use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::header::{Header, HEADER_LEN};
use fdfs_ha::proto::tracker::{JoinReq, ReportStatusReq, StorageBrief, StorageStatus};
use fdfs_ha::storage::StorageServer;
use fdfs_ha::tracker::TrackerServer;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/c-cluster");
const GROUP: &str = "group1";
const S1: &str = "127.0.0.23";
const S3: &str = "127.0.0.25";
/// Created on S2 after the copy and sent to S3 by S2 (storage-join.txt, +21.17).
const AF: &str = "fwAAGGsTzfGAX7_EAAAALz9-88A169.txt";

/// Polls `$cond` (which may await) every 100 ms for up to 20 s.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let mut ok = false;
        for _ in 0..200 {
            if $cond {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "timed out waiting for {}", $what);
    }};
}

async fn call(s: &mut TcpStream, command: u8, body: &[u8]) -> (u8, Vec<u8>) {
    let mut f = Header::new(command, 0, body.len() as u64).encode().to_vec();
    f.extend_from_slice(body);
    s.write_all(&f).await.unwrap();
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).await.unwrap();
    let h = Header::decode(&h).unwrap();
    let mut body = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut body).await.unwrap();
    (h.status, body)
}

/// S1's peer port: answers what a C storage answers to a peer with nothing to send
/// (REPORT_SERVER_ID, ACTIVE_TEST: OK; anything else EINVAL and close).
async fn s1_peer_side(l: TcpListener) {
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((mut s, _)) = l.accept().await {
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
                let known = matches!(h.cmd, cmd::REPORT_SERVER_ID | cmd::ACTIVE_TEST);
                let status = if known { 0 } else { errno::EINVAL };
                let f = Header::new(cmd::RESP, status, 0).encode();
                if s.write_all(&f).await.is_err() || !known {
                    return;
                }
            }
        });
    }
}

/// S1's tracker session: JOIN as the old ACTIVE member it is, then empty BEATs.
async fn s1_tracker_side(tracker: SocketAddr, port: u16, stop: CancellationToken) {
    let mut s = connect_from(S1, tracker).await;
    let join = JoinReq {
        join_time: 1796459533,
        up_time: 1796459533,
        status: StorageStatus::Active as u8,
        current_tracker_ip: tracker.ip().to_string(),
        trackers: vec![tracker.to_string()],
        ..JoinReq::c_storage(GROUP, port)
    };
    assert_eq!(call(&mut s, cmd::STORAGE_JOIN, &join.encode()).await.0, 0);
    let mut disk = 100_000u64.to_be_bytes().to_vec();
    disk.extend_from_slice(&50_000u64.to_be_bytes());
    assert_eq!(
        call(&mut s, cmd::STORAGE_REPORT_DISK_USAGE, &disk).await.0,
        0
    );
    while !stop.is_cancelled() {
        assert_eq!(call(&mut s, cmd::STORAGE_BEAT, &[]).await.0, 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// S1 tells the trackers the newcomer's status (83-byte body, port field 0 as C sends it).
async fn report_status(tracker: SocketAddr, to: StorageStatus) {
    let mut t = connect_from(S1, tracker).await;
    let req = ReportStatusReq {
        group: GROUP.into(),
        brief: StorageBrief {
            status: to as u8,
            port: 0,
            id: S3.into(),
            ip: S3.into(),
        },
    };
    assert_eq!(
        call(&mut t, cmd::STORAGE_REPORT_STATUS, &req.encode()).await,
        (0, vec![])
    );
}

async fn status_of(tracker: SocketAddr, ip: &str) -> Option<u8> {
    let mut t = TcpStream::connect(tracker).await.unwrap();
    fdfs_ha::client::tracker::list_storages(&mut t, GROUP, None)
        .await
        .ok()?
        .into_iter()
        .find(|s| s.ip == ip)
        .map(|s| s.status)
}

/// Every file of `data/00/00` (data and `-m`), by name.
fn files_in(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(store.join("data/00/00")) else {
        return BTreeMap::new();
    };
    dir.flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// S1's files after the captured runs (store-layout.tar.gz, read in memory: unpacking its
/// 65,536 directories takes seconds), without what S2 sent later.
fn s1_files() -> BTreeMap<String, Vec<u8>> {
    let gz = std::fs::File::open(format!("{DIR}/store-layout/store-layout.tar.gz")).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = BTreeMap::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let Some(name) = path.strip_prefix("s1/store0/data/00/00/") else {
            continue;
        };
        if name.is_empty() || name.starts_with(AF) || !e.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        out.insert(name.to_string(), bytes);
    }
    out
}

/// Every request S1 sent to S3's storage port, in capture order: (captured conn, cmd, body).
fn s1_to_s3() -> Vec<(usize, u8, Vec<u8>)> {
    let cap = pcap::read(&std::fs::read(format!("{DIR}/storage-join.pcap")).unwrap());
    cap.messages()
        .filter(|m| {
            let c = cap.conn(m.conn);
            m.from_client
                && c.client.ip().to_string() == S1
                && c.server.to_string() == format!("{S3}:23000")
        })
        .map(|m| {
            assert_eq!(m.declared, m.body.len(), "a cut message");
            (m.conn, m.cmd, m.body.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_fdfs_ha_storage_gets_all_of_a_c_source_s_data() {
    let dir = tempfile::tempdir().unwrap();
    let want = s1_files();
    // 11 data files (normal, appender, slave, renamed, the 512 KiB one) and one metadata file.
    assert_eq!(want.len(), 12, "{:?}", want.keys());
    let records = s1_to_s3();
    let kinds: std::collections::BTreeSet<u8> = records.iter().map(|r| r.1).collect();
    assert!(
        [9, 16, 17, 18, 25, 35, 37, 40]
            .iter()
            .all(|c| kinds.contains(c)),
        "the captured copy has every change kind: {kinds:?}"
    );

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

    // S1, the ACTIVE C storage with the data.
    let l = TcpListener::bind((S1.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let s1_port = l.local_addr().unwrap().port();
    let s1_peer = tokio::spawn(s1_peer_side(l));
    let s1 = tokio::spawn(s1_tracker_side(tracker, s1_port, stop.clone()));
    eventually!(
        "S1 ACTIVE",
        status_of(tracker, S1).await == Some(StorageStatus::Active as u8)
    );

    // S3, the empty fdfs-ha newcomer: the tracker names S1 as its source (WAIT_SYNC).
    let store = dir.path().join("s3");
    let cfg: StorageConfig = serde_saphyr::from_str(&format!(
        "group: {GROUP}\nlisten: \"{S3}:0\"\ntrackers: [\"{tracker}\"]\nstore_paths: [\"{}\"]\n\
         heart_beat_interval: 300ms\nstat_report_interval: 1s\nreserved_storage_space: 1%\n",
        store.display()
    ))
    .unwrap();
    let ha = StorageServer::bind(&cfg, S3).await.unwrap();
    let s3_addr = ha.local_addr();
    let ha_task = tokio::spawn(ha.serve(stop.clone()));
    eventually!(
        "S3 waiting for S1's data",
        status_of(tracker, S3).await == Some(StorageStatus::WaitSync as u8)
    );

    // S1's copy, as captured.
    report_status(tracker, StorageStatus::Syncing).await;
    let mut conns: HashMap<usize, TcpStream> = HashMap::new();
    let mut answers: BTreeMap<(u8, u8), usize> = BTreeMap::new();
    for (conn, command, body) in &records {
        if !conns.contains_key(conn) {
            conns.insert(*conn, connect_from(S1, s3_addr).await);
        }
        let s = conns.get_mut(conn).unwrap();
        let (status, _) = call(s, *command, body).await;
        *answers.entry((*command, status)).or_default() += 1;
    }
    drop(conns);
    eprintln!("answers (command, status) -> count: {answers:?}");
    report_status(tracker, StorageStatus::Offline).await;
    eventually!(
        "S3 ACTIVE",
        status_of(tracker, S3).await == Some(StorageStatus::Active as u8)
    );

    let got = files_in(&store);
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "not copied: {missing:?}");
    for (name, bytes) in &want {
        assert!(
            got[name] == *bytes,
            "{name}: {} bytes, S1 has {}",
            got[name].len(),
            bytes.len()
        );
    }
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "files S1 does not have: {extra:?}");

    stop.cancel();
    ha_task.await.unwrap().unwrap();
    ttask.await.unwrap().unwrap();
    s1.await.unwrap();
    s1_peer.abort();
}
