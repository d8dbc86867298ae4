//! Shared helpers for tests/storage_http_*.rs and tests/gateway_*.rs: stores with FastDFS-named
//! files, servers on 127.0.0.1 port 0, fake storages, and a raw HTTP/1.1 client (so malformed
//! requests can be sent as bytes).
#![allow(dead_code)]

use fdfs_ha::config::StorageConfig;
use fdfs_ha::proto::fileid::{new_name, FileInfo, Source};
use fdfs_ha::storage::http::StorageHttp;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub fn now_unix() -> u32 {
    fdfs_ha::clock::unix_now() as u32
}

/// A FastDFS name for `content` created by `source` at `create_time`.
pub fn name_for(source: Source, create_time: u32, content: &[u8], ext: &str) -> String {
    let info = FileInfo {
        source,
        create_time,
        size_field: FileInfo::size_field_for(content.len() as u64, false, 0x1234),
        crc32: crc32fast::hash(content),
    };
    new_name(&info, ext, 4242)
}

pub fn localhost() -> Source {
    Source::Ip(Ipv4Addr::LOCALHOST)
}

/// Writes `content` at `<store>/data/0A/0B/<name>` and returns the file ID without group.
pub fn place(store: &Path, name: &str, content: &[u8]) -> String {
    let dir = store.join("data/0A/0B");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), content).unwrap();
    format!("M00/0A/0B/{name}")
}

pub fn storage_config(store: &Path, http_yaml: &str, extra: &str) -> StorageConfig {
    storage_config_in("group1", store, http_yaml, extra)
}

pub fn storage_config_in(group: &str, store: &Path, http_yaml: &str, extra: &str) -> StorageConfig {
    let yaml = format!(
        "group: {group}\nlisten: 127.0.0.1:0\ntrackers: []\nstore_paths: [{}]\n{extra}\nhttp:\n  listen: 127.0.0.1:0\n{http_yaml}",
        store.display()
    );
    serde_saphyr::from_str(&yaml).expect("storage yaml")
}

pub struct Running {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub async fn start_storage(
    cfg: &StorageConfig,
    resolver: Option<Arc<dyn fdfs_ha::storage::http::SourceResolver>>,
) -> (Running, Arc<fdfs_ha::http::server::Counters>) {
    let mut s = StorageHttp::bind(cfg, "test")
        .await
        .expect("bind storage http");
    if let Some(r) = resolver {
        s = s.with_resolver(r);
    }
    let addr = s.local_addr();
    let counters = s.counters();
    let stop = CancellationToken::new();
    let task = tokio::spawn(s.serve(stop.clone()));
    (Running { addr, stop, task }, counters)
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes, reads until the server closes (requests carry `Connection: close`).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("send");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response within 10s")
        .expect("read");
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
    out
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

pub async fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, &[]).await
}

/// How a fake storage answers: (status, body, delay before answering).
pub type Behaviour = Arc<dyn Fn(&str) -> (u16, Vec<u8>, Duration) + Send + Sync>;

/// A minimal HTTP server counting the requests it receives.
pub async fn fake_storage(behaviour: Behaviour) -> (Running, Arc<AtomicUsize>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (c, st) = (count.clone(), stop.clone());
    let task = tokio::spawn(async move {
        loop {
            let (s, _) = tokio::select! {
                _ = st.cancelled() => break,
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            };
            let (c, b) = (c.clone(), behaviour.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    c.fetch_add(1, Ordering::SeqCst);
                    let (status, body, delay) = b(req.uri().path());
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut r = hyper::Response::new(Full::new(bytes::Bytes::from(body)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
        Ok(())
    });
    (Running { addr, stop, task }, count)
}

/// Accepts connections and never answers.
pub async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

/// An address on which nothing listens.
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// True when the server closed the connection within `within`.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}
