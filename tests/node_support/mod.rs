//! A real `fdfs-ha run` for integration tests: started from a YAML text, killed and reaped when
//! dropped (also when the test fails), plus a free loopback port for its listeners.
#![allow(dead_code)] // each test crate uses part of it

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
