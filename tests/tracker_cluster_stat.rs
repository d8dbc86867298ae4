//! The monitoring commands 95-98 over TCP, framed as C 6.16's client/tracker_client.c frames
//! them (tracker_get_leader, do_tracker_cluster_stat, storage_cluster_stat,
//! storage_volumn_stat): a 10-byte header, then the 3- or 4-byte filter struct. The answers
//! are checked as those functions check them: status, then body length = header + count x
//! record size.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;

use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::tracker::{JoinReq, StorageClusterReply, TrackerClusterStat, VolumnReply};
use fdfs_ha::tracker::TrackerServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Sends one C-framed request and reads the whole answer: (status, body).
async fn call(s: &mut TcpStream, command: u8, body: &[u8]) -> (u8, Vec<u8>) {
    let mut frame = (body.len() as u64).to_be_bytes().to_vec();
    frame.extend_from_slice(&[command, 0]);
    frame.extend_from_slice(body);
    s.write_all(&frame).await.unwrap();
    let mut head = [0u8; 10];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[8], cmd::RESP);
    let mut body = vec![0u8; u64::from_be_bytes(head[..8].try_into().unwrap()) as usize];
    s.read_exact(&mut body).await.unwrap();
    (head[9], body)
}

#[tokio::test]
async fn fdfs_stat_tools_get_c_shaped_answers_over_tcp() {
    let cfg = fdfs_ha::config::parse_str("node: t\ntracker:\n  listen: 127.0.0.1:0\n")
        .unwrap()
        .tracker
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TrackerServer::bind(&cfg, dir.path()).await.unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));

    // A storage names this tracker alone: it leads.
    let join = JoinReq {
        up_time: 7,
        ..node_support::join_req("group1", 23000)
    };
    let (_storage, _) = node_support::hand_storage(addr, join).await;

    let mut c = TcpStream::connect(addr).await.unwrap();
    // 95: the leader's "ip:port", no NUL; a body is refused and the connection goes on.
    let (st, leader) = call(&mut c, cmd::SERVER_GET_LEADER, &[]).await;
    assert_eq!((st, leader), (0, addr.to_string().into_bytes()));
    assert_eq!(
        call(&mut c, cmd::SERVER_GET_LEADER, &[0]).await.0,
        errno::EINVAL
    );
    // 96 (no filter): count 1, one 90-byte record for us.
    let (st, b) = call(&mut c, cmd::SERVER_TRACKER_CLUSTER_STAT, &[0, 0, 0]).await;
    assert_eq!((st, b.len(), b[0]), (0, 1 + 90, 1));
    let me = &TrackerClusterStat::decode_list(&b).unwrap()[0];
    assert_eq!(
        (me.host.as_str(), me.is_leader, me.is_active),
        (addr.to_string().as_str(), true, true)
    );
    // 97 (-A: status = ACTIVE): the storage went ACTIVE with its first beat.
    let (st, b) = call(&mut c, cmd::SERVER_STORAGE_CLUSTER_STAT, b"\x02=\x07\x00").await;
    assert_eq!((st, b.len()), (0, 6 + 106));
    let s = &StorageClusterReply::decode(&b).unwrap().storages[0];
    assert_eq!(
        (s.host.as_str(), s.status, s.up_time),
        ("127.0.0.1:23000", 7, 7)
    );
    // 98 (no filter): group1, 1000 MB, 800 free, available = free - reserved.
    let (st, b) = call(&mut c, cmd::SERVER_STORAGE_VOLUMN_STAT, &[0; 4]).await;
    assert_eq!((st, b.len()), (0, 5 + 59));
    let g = &VolumnReply::decode(&b).unwrap().groups[0];
    assert_eq!(
        (g.group.as_str(), g.total_mb, g.free_mb, g.is_disk_available),
        ("group1", 1000, 800, true)
    );
    assert_eq!(g.avail_mb, g.free_mb - g.reserved_mb);
    // Filters of another length: EINVAL, as C.
    assert_eq!(
        call(&mut c, cmd::SERVER_STORAGE_VOLUMN_STAT, &[0; 3])
            .await
            .0,
        errno::EINVAL
    );

    stop.cancel();
    task.await.unwrap().unwrap();
}
