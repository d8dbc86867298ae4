//! The HTTP servers keep connections to a VIP alive only while this node serves that VIP: when
//! it stops (preempted, stopping), idle keep-alive connections to the VIP are closed and new ones
//! get `Connection: close`, so clients reconnect and follow the ARP switch instead of being
//! reset by the new Master. Connections to the node's own address are untouched.
//!
//! Its own test binary: the VIP ownership is process-wide. 127.0.0.2 plays the VIP.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::http::{body, server};
use fdfs_ha::vrrp::ownership;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const VIP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

async fn listen(ip: &str) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        server::serve(
            listener,
            server::Limits::new(64, Duration::from_secs(5)),
            Arc::new(server::Counters::default()),
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
    ownership::configure([VIP]);
    ownership::set_served([VIP], true);
    let (vip_addr, stop_vip) = listen("127.0.0.2").await;
    let (node_addr, stop_node) = listen("127.0.0.1").await;

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
        ownership::set_served([VIP], false);
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
        ownership::set_served([VIP], true);
        let mut again = TcpStream::connect(vip_addr).unwrap();
        assert!(!request(&mut again).contains("connection: close"));
        assert!(!closed_within(&mut again, Duration::from_millis(200)));
    })
    .await
    .unwrap();
    stop_vip.cancel();
    stop_node.cancel();
}
