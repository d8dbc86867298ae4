//! Shared helpers for tests/gateway_routing.rs and tests/gateway_cache.rs: a gateway on
//! 127.0.0.1 port 0 over a memory directory, storage-http clusters sharing one store, and
//! storages that die, record requests or capture logs. Builds on tests/storage_http_support.
#![allow(dead_code)] // each test crate uses part of it

use crate::support::*;
use fdfs_ha::config::GatewayConfig;
use fdfs_ha::gateway::directory::{ClusterView, MemoryDirectory, StorageNode};
use fdfs_ha::gateway::Gateway;
use fdfs_ha::http::server::Counters;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

pub fn gw_config(extra: &str) -> GatewayConfig {
    serde_saphyr::from_str(&format!("listen: 127.0.0.1:0\ntrackers: []\n{extra}"))
        .expect("gateway yaml")
}

pub fn view(groups: &[(&str, &[SocketAddr])]) -> ClusterView {
    ClusterView {
        groups: groups
            .iter()
            .map(|(g, addrs)| {
                let nodes = addrs
                    .iter()
                    .map(|a| StorageNode {
                        id: a.to_string(),
                        ip: a.ip(),
                        port: 23000,
                        http_port: a.port(),
                    })
                    .collect();
                (g.to_string(), nodes)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

pub struct Gw {
    pub addr: SocketAddr,
    pub run: Running,
    pub gw_counters: Arc<Counters>,
    pub upstreams: Arc<fdfs_ha::gateway::upstream::Upstreams>,
}

pub async fn start_gateway(cfg: &GatewayConfig, data: &Path, dir: Arc<MemoryDirectory>) -> Gw {
    let g = Gateway::bind_with_directory(cfg, data, dir)
        .await
        .expect("bind gateway");
    let addr = g.local_addr();
    let gw_counters = g.counters();
    let upstreams = g.upstreams();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(g.serve(stop.clone()));
    Gw {
        addr,
        run: Running { addr, stop, task },
        gw_counters,
        upstreams,
    }
}

/// One store shared by several storage-http instances (they all "have" every file).
pub struct Cluster {
    pub _store: tempfile::TempDir,
    pub ids: Vec<String>,
    pub contents: Vec<Vec<u8>>,
}

pub fn cluster_with_files(sizes: &[usize]) -> Cluster {
    let store = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    let mut contents = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let content: Vec<u8> = (0..*size).map(|j| ((i * 31 + j) % 256) as u8).collect();
        let name = name_for(localhost(), now_unix() - i as u32, &content, "jpg");
        ids.push(place(store.path(), &name, &content));
        contents.push(content);
    }
    Cluster {
        _store: store,
        ids,
        contents,
    }
}

/// Accepts connections, reads a request and closes without answering: a storage killed while
/// the gateway talks to it (no byte of the answer sent).
pub async fn dies_before_answering() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            // RST rather than FIN, as a killed process's kernel may answer.
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    (addr, task)
}

pub fn token_query(id: &str, secret: &str, ts: u64) -> String {
    let t = fdfs_ha::storage::http::token::make_token(id, secret, ts);
    format!("token={t}&ts={ts}")
}

/// A free port on `ip` (the two gateways of a pair must know each other's address up front).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A storage that answers 200 "ok" and records each request's headers (lower-case names).
pub async fn recording_storage() -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let headers = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                            .collect();
                        seen.lock().unwrap().push(headers);
                        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: image/jpeg\r\n\r\nok";
                        if s.write_all(r).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen, task)
}

pub fn header_of<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A log sink for one test: what a `tracing` subscriber writes, kept in memory.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);
