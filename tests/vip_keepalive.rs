//! The HTTP servers keep connections to a VIP alive only while this node serves that VIP: when
//! it stops (preempted, stopping), idle keep-alive connections to the VIP are closed and new ones
//! get `Connection: close`, so clients reconnect and follow the ARP switch instead of being
//! reset by the new Master. Connections to the node's own address are untouched.
//!
//! The ownership is one value per node (a `VipOwner`), not per process: two nodes in this process
//! each see only their own. 127.0.0.2 plays the VIP.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::http::{body, server};
use fdfs_ha::vrrp::ownership::VipOwner;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const VIP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

async fn listen(ip: &str, node: &VipOwner) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let vips = node.subscribe();
    tokio::spawn(async move {
        server::serve(
            listener,
            server::Limits::new(64, Duration::from_secs(5)),
            Arc::new(server::Counters::default()),
            vips,
            s,
            |_req, _peer| async { http::Response::new(body::full("hello")) },
        )
        .await
    });
    (addr, stop)
}

/// Sends one request on `c` and returns the response head (lower-cased).
fn request(c: &mut TcpStream) -> String {
    c.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"hello") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).to_ascii_lowercase()
}

/// Whether the server closes `c` (EOF) within `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let until = Instant::now() + within;
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => panic!("unexpected bytes"),
            Err(_) => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_vip_are_kept_alive_only_while_it_is_served_here() {
    let node = VipOwner::default();
    node.configure([VIP]);
    node.set_served([VIP], true);
    let (vip_addr, stop_vip) = listen("127.0.0.2", &node).await;
    let (node_addr, stop_node) = listen("127.0.0.1", &node).await;

    tokio::task::spawn_blocking(move || {
        let mut to_vip = TcpStream::connect(vip_addr).unwrap();
        let mut to_node = TcpStream::connect(node_addr).unwrap();
        assert!(!request(&mut to_vip).contains("connection: close"));
        assert!(!request(&mut to_node).contains("connection: close"));
        assert!(
            !closed_within(&mut to_vip, Duration::from_millis(200)),
            "served: kept alive"
        );

        // This node stops serving the VIP (preempted or stopping).
        node.set_served([VIP], false);
        assert!(
            closed_within(&mut to_vip, Duration::from_secs(2)),
            "the idle keep-alive connection to the VIP is closed"
        );
        assert!(
            !closed_within(&mut to_node, Duration::from_millis(300)),
            "a connection to the node's own address stays"
        );
        assert!(!request(&mut to_node).contains("connection: close"));

        let mut late = TcpStream::connect(vip_addr).unwrap();
        assert!(
            request(&mut late).contains("connection: close"),
            "a new connection to a VIP we do not serve is answered, then closed"
        );
        assert!(closed_within(&mut late, Duration::from_secs(2)));

        // Master again: keep-alive as usual.
        node.set_served([VIP], true);
        let mut again = TcpStream::connect(vip_addr).unwrap();
        assert!(!request(&mut again).contains("connection: close"));
        assert!(!closed_within(&mut again, Duration::from_millis(200)));
    })
    .await
    .unwrap();
    stop_vip.cancel();
    stop_node.cancel();
}

/// Two nodes in one process, both configured with the VIP: the Master's server keeps its VIP
/// connections alive, the Backup's closes them, and the Backup losing nothing does not touch
/// the Master's (each server reads its own node's ownership).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_do_not_share_the_ownership() {
    let master = VipOwner::default();
    master.configure([VIP]);
    master.set_served([VIP], true);
    let backup = VipOwner::default();
    backup.configure([VIP]);
    let (master_addr, stop_master) = listen("127.0.0.2", &master).await;
    let (backup_addr, stop_backup) = listen("127.0.0.2", &backup).await;

    tokio::task::spawn_blocking(move || {
        let mut to_master = TcpStream::connect(master_addr).unwrap();
        let mut to_backup = TcpStream::connect(backup_addr).unwrap();
        assert!(!request(&mut to_master).contains("connection: close"));
        assert!(
            request(&mut to_backup).contains("connection: close"),
            "the Backup does not serve the VIP"
        );
        assert!(closed_within(&mut to_backup, Duration::from_secs(2)));

        // The Backup's instance marks the VIP unserved again (as a reload would): the Master's
        // connection stays.
        backup.set_served([VIP], true);
        backup.set_served([VIP], false);
        assert!(
            !closed_within(&mut to_master, Duration::from_millis(300)),
            "the Master's keep-alive connection is not closed by the other node"
        );
        assert!(!request(&mut to_master).contains("connection: close"));

        // The Master hands over: only now its connection closes.
        master.set_served([VIP], false);
        assert!(closed_within(&mut to_master, Duration::from_secs(2)));
    })
    .await
    .unwrap();
    stop_master.cancel();
    stop_backup.cancel();
}
