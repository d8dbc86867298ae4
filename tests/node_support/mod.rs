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

/// The body of a storage JOIN for `group` (a storage listening on `port`).
pub fn join(group: &str, port: u16) -> Vec<u8> {
    fdfs_ha::proto::tracker::JoinReq {
        group: group.into(),
        storage_port: port,
        store_path_count: 1,
        subdir_count_per_path: 256,
        upload_priority: 10,
        join_time: 0,
        up_time: 0,
        version: "6.16.1".into(),
        init_flag: 0,
        status: 0,
        storage_id: String::new(),
        current_tracker_ip: "127.0.0.1".into(),
        trackers: vec!["127.0.0.1:22122".into()],
    }
    .encode()
}
