//! Over real sockets, an fdfs-ha tracker next to stand-in C trackers that send exactly the bytes
//! C FastDFS 6.16.1 trackers sent (tracker-pair.pcap; issue 17, acceptance 1): a C tracker
//! starting empty copies the system files from us (T2's #23-#35 against T1), and a C leader
//! announces itself and is followed (#69-#74 against T1, then T2's pings #720-#725).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

// Shared with c_replay.rs, which uses every part of it.
#[allow(dead_code)]
#[path = "c_cluster/pcap.rs"]
mod pcap;

use fdfs_ha::proto::cmd;
use fdfs_ha::proto::tracker_peer as tp;
use fdfs_ha::proto::{Header, HEADER_LEN};
use fdfs_ha::tracker::TrackerServer;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

const PCAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/c-cluster/tracker-pair.pcap"
);

/// The client-side messages of capture connection `conn` (requests only), in order.
fn requests(cap: &pcap::Capture, conn: usize) -> Vec<pcap::Msg> {
    cap.messages()
        .filter(|m| m.conn == conn && m.from_client)
        .cloned()
        .collect()
}

fn frame(m: &pcap::Msg) -> Vec<u8> {
    let mut out = Header::new(m.cmd, m.status, m.body.len() as u64)
        .encode()
        .to_vec();
    out.extend_from_slice(&m.body);
    out
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    s.connect(to).await.unwrap()
}

async fn call(s: &mut TcpStream, bytes: &[u8]) -> (u8, Vec<u8>) {
    s.write_all(bytes).await.unwrap();
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).await.unwrap();
    let h = Header::decode(&h).unwrap();
    let mut body = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut body).await.unwrap();
    (h.status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_trackers_copy_our_system_files_and_lead_us() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let y = "node: t\ntracker:\n  listen: 127.0.0.21:0\n  reserved_storage_space: 1%\n";
    let cfg = fdfs_ha::config::parse_str(y).unwrap().tracker.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TrackerServer::bind(&cfg, dir.path()).await.unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));

    // Before any storage joined: GET_STATUS is ENOENT (#19/#22: "nobody has data").
    let t2 = requests(&cap, 12);
    let mut peer = connect_from("127.0.0.22", addr).await;
    assert_eq!(call(&mut peer, &frame(&t2[0])).await.0, 2);

    // S2 and S1 join as in #16 and #20 (kept open, as storages keep them).
    let mut s2 = connect_from("127.0.0.24", addr).await;
    assert_eq!(call(&mut s2, &frame(&requests(&cap, 7)[0])).await.0, 0);
    let mut s1 = connect_from("127.0.0.23", addr).await;
    assert_eq!(call(&mut s1, &frame(&requests(&cap, 10)[0])).await.0, 0);

    // T2 starting empty (#23-#35): status, then the four system files on one connection.
    assert_eq!(t2[0].cmd, tp::TRACKER_GET_STATUS);
    let (st, body) = call(&mut peer, &frame(&t2[0])).await;
    assert_eq!((st, body.len()), (0, 17));
    let status = tp::TrackerStatus::decode(&body).unwrap();
    assert!(!status.if_leader);
    assert!(status.restart_interval > 600, "ranks itself last");
    let copy: Vec<u8> = t2[1..7].iter().map(|m| m.cmd).collect();
    assert_eq!(copy, [61, 63, 63, 63, 63, 62]);
    let mut files = Vec::new();
    for m in &t2[1..7] {
        let (st, body) = call(&mut peer, &frame(m)).await;
        assert_eq!(st, 0, "cmd {}", m.cmd);
        if m.cmd == tp::TRACKER_GET_ONE_SYS_FILE {
            let size = u64::from_be_bytes(body[..8].try_into().unwrap()) as usize;
            assert_eq!(size, body.len() - 8, "whole file in one answer");
            files.push(String::from_utf8(body[8..].to_vec()).unwrap());
        }
    }
    assert!(files[0].contains("[Group001]\n\tgroup_name=group1\n\tstorage_port=23000\n"));
    assert!(files[1].contains("# storage: 127.0.0.23:23000\n"));
    assert!(files[1].contains("# storage: 127.0.0.24:23000\n"));
    assert!(files[1].ends_with("\n[Global]\n\tstorage_count=2\n"));
    assert_eq!(files[2].lines().count(), 2);
    assert!(files[3].is_empty());

    // Election (#69-#74): T2 asks our status, then announces itself; we accept.
    for m in &t2[7..10] {
        let (st, _) = call(&mut peer, &frame(m)).await;
        assert_eq!(st, 0, "cmd {}", m.cmd);
    }
    assert_eq!(
        t2[7..10].iter().map(|m| m.cmd).collect::<Vec<_>>(),
        [64, 66, 67]
    );
    // A follower's JOIN_LEADER and pings (T2 -> T1 after phase C, conn#48): the first ping
    // gets the group list (one 32-byte entry), later ones an empty body.
    let f = requests(&cap, 48);
    let mut follower = connect_from("127.0.0.22", addr).await;
    let (st, _) = call(&mut follower, &frame(&f[0])).await;
    assert_eq!(st, 0);
    let pings: Vec<&pcap::Msg> = f
        .iter()
        .filter(|m| m.cmd == tp::TRACKER_PING_LEADER)
        .collect();
    let (st, first) = call(&mut follower, &frame(&f[1])).await;
    assert_eq!((f[1].cmd, st, first.len()), (tp::TRACKER_JOIN_LEADER, 0, 0));
    let (st, first) = call(&mut follower, &frame(pings[0])).await;
    assert_eq!((st, first.len()), (0, 32));
    assert_eq!(&first[..6], b"group1");
    let (st, next) = call(&mut follower, &frame(pings[1])).await;
    assert_eq!((st, next.len()), (0, 0));

    // Storages are still served: a beat on S1's connection is answered.
    let beat = requests(&cap, 10)
        .into_iter()
        .find(|m| m.cmd == cmd::STORAGE_BEAT)
        .unwrap();
    assert_eq!(call(&mut s1, &frame(&beat)).await.0, 0);

    stop.cancel();
    drop((peer, follower, s1, s2));
    task.await.unwrap().unwrap();
}
