//! Shared helpers for tests/storage_service.rs and tests/storage_service_faults.rs: an
//! in-process storage on 127.0.0.1 with its own store directories, raw protocol frames, and
//! looks at what landed on disk.
#![allow(dead_code)] // each test crate uses part of it

use fdfs_ha::client::storage::StorageConn;
use fdfs_ha::config::StorageConfig;
use fdfs_ha::proto::{Header, HEADER_LEN};
use fdfs_ha::storage::binlog::{BinlogOp, BinlogPos};
use fdfs_ha::storage::{StorageServer, StorageState};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub struct Storage {
    pub _dir: tempfile::TempDir,
    pub paths: Vec<PathBuf>,
    pub addr: SocketAddr,
    pub state: Arc<StorageState>,
    pub stop: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Storage {
    pub async fn start(extra_yaml: &str, store_paths: usize) -> Storage {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..store_paths)
            .map(|i| dir.path().join(format!("store{i}")))
            .collect();
        let yaml = format!(
            "group: group1\nlisten: 127.0.0.1:0\ntrackers: [\"127.0.0.1:1\"]\nstore_paths: [{}]\nreserved_storage_space: 0%\nsync: {{ binlog_flush_interval: 50ms }}\n{extra_yaml}",
            paths
                .iter()
                .map(|p| format!("\"{}\"", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let cfg: StorageConfig = serde_saphyr::from_str(&yaml).unwrap();
        let server = StorageServer::bind(&cfg, "test").await.unwrap();
        let addr = server.local_addr();
        let state = server.state();
        // What a tracker would list: a peer of this group on 127.0.0.1 (the tests' sync peer;
        // replication commands from other hosts are refused).
        state.set_group_servers(vec![fdfs_ha::proto::tracker::StorageBrief {
            status: 7,
            port: 1,
            id: "100001".into(),
            ip: "127.0.0.1".into(),
        }]);
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(stop.clone()));
        Storage {
            _dir: dir,
            paths,
            addr,
            state,
            stop,
            task: Some(task),
        }
    }

    pub async fn conn(&self) -> StorageConn {
        StorageConn::connect_timeout(self.addr, Duration::from_secs(5))
            .await
            .unwrap()
    }

    pub fn tmp_dir(&self, i: usize) -> PathBuf {
        self.paths[i].join("data/.tmp")
    }

    /// What the binlog flusher does every `binlog_flush_interval`: new small files drop their
    /// sealed names in `.tmp` once their directories are fsynced.
    pub fn settle(&self) {
        let store = self.state.store();
        store.settle(store.unsettled()).unwrap();
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    pub fn binlog_ops(&self) -> Vec<(BinlogOp, String, Option<String>)> {
        self.state.binlog().flush().unwrap();
        self.state
            .binlog()
            .reader(BinlogPos::default())
            .map(|r| {
                let (rec, _) = r.unwrap();
                assert!(rec.source);
                (rec.op, rec.filename, rec.extra)
            })
            .collect()
    }
}

pub fn status<T: std::fmt::Debug>(r: Result<T, fdfs_ha::proto::connection::ConnError>) -> u8 {
    r.expect_err("expected an error status")
        .status()
        .expect("expected a status, not an i/o error")
}

/// Files (not directories) anywhere under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files under a store path's `data/` that stand for file IDs: not the binlog (`sync/`), not
/// the upload journal's segments (`.journal/`), not the base path's `.data_init_flag` (kept
/// where C FastDFS keeps it, `<base>/data/`, and the base is the first store path here).
pub fn stored_files(store_path: &Path) -> Vec<PathBuf> {
    let (sync, journal, flag) = (
        store_path.join("data/sync"),
        store_path.join("data/.journal"),
        store_path.join("data/.data_init_flag"),
    );
    files_under(&store_path.join("data"))
        .into_iter()
        .filter(|p| !p.starts_with(&sync) && !p.starts_with(&journal) && *p != flag)
        .collect()
}

pub async fn raw_request(s: &mut TcpStream, bytes: &[u8]) -> Option<(Header, Vec<u8>)> {
    s.write_all(bytes).await.ok()?;
    read_raw_response(s).await
}

pub async fn read_raw_response(s: &mut TcpStream) -> Option<(Header, Vec<u8>)> {
    let mut h = [0u8; HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut h))
        .await
        .ok()?
        .ok()?;
    let h = Header::decode(&h).ok()?;
    let mut body = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut body).await.ok()?;
    Some((h, body))
}

pub fn frame(cmd: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Header::new(cmd, 0, body.len() as u64).encode().to_vec();
    out.extend_from_slice(body);
    out
}

/// True when the server closed the connection (EOF or reset) within 5 s.
pub async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
