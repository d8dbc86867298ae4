//! A real `fdfs-ha run` for integration tests: started from a YAML text, killed and reaped when
//! dropped (also when the test fails), plus a free loopback port for its listeners and client
//! connections from any 127.0.0.x (allow_hosts, per-address caps and group membership tests).
#![allow(dead_code)] // each test crate uses part of it

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Node(pub Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `fdfs-ha run` on `yaml`, written to `dir/ha.yaml`.
pub fn run(dir: &Path, yaml: &str) -> Node {
    let path = dir.join("ha.yaml");
    std::fs::write(&path, yaml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["run", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Node(child)
}

/// A connection from `from` (any 127.0.0.x: the whole block is local) to `to`.
pub async fn connect_from(from: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    s.connect(to).await.unwrap()
}

/// True when the server closed the connection without answering, within `limit`.
pub async fn closed_silently(s: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 16];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A storage JOIN for `group` (a storage listening on `port`), as a C 6.16.1 storage sends it.
pub fn join_req(group: &str, port: u16) -> fdfs_ha::proto::tracker::JoinReq {
    fdfs_ha::proto::tracker::JoinReq {
        current_tracker_ip: "127.0.0.1".into(),
        trackers: vec!["127.0.0.1:22122".into()],
        ..fdfs_ha::proto::tracker::JoinReq::c_storage(group, port)
    }
}

/// The body of `join_req`.
pub fn join(group: &str, port: u16) -> Vec<u8> {
    join_req(group, port).encode()
}

/// A storage driven by hand on one connection to `tracker`: `join` sent (naming that tracker
/// alone), one disk report (1000 MB, 800 free) and one beat, each answered 0. Returns the
/// connection, left open and silent, and JOIN's answer body.
pub async fn hand_storage(
    tracker: SocketAddr,
    join: fdfs_ha::proto::tracker::JoinReq,
) -> (tokio::net::TcpStream, Vec<u8>) {
    use fdfs_ha::proto::cmd;
    use fdfs_ha::proto::connection::{read_message, write_message};
    let mut s = tokio::net::TcpStream::connect(tracker)
        .await
        .expect("connect");
    let join = fdfs_ha::proto::tracker::JoinReq {
        trackers: vec![tracker.to_string()],
        ..join
    };
    write_message(&mut s, cmd::STORAGE_JOIN, 0, &join.encode())
        .await
        .expect("send JOIN");
    let (h, joined) = read_message(&mut s, 1024).await.expect("JOIN answer");
    assert_eq!(h.status, 0, "JOIN");
    let du = fdfs_ha::proto::tracker::encode_disk_usage(&[fdfs_ha::proto::tracker::PathUsage {
        total_mb: 1000,
        free_mb: 800,
    }]);
    for (command, body) in [
        (cmd::STORAGE_REPORT_DISK_USAGE, &du[..]),
        (cmd::STORAGE_BEAT, &[]),
    ] {
        write_message(&mut s, command, 0, body).await.expect("send");
        let (h, _) = read_message(&mut s, 4096).await.expect("answer");
        assert_eq!(h.status, 0, "command {command}");
    }
    (s, joined)
}
