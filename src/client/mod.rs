//! FastDFS client used by the CLI, the gateway, tests and benchmarks.
//!
//! [`FdfsClient`] does what FastDFS's C client does for one operation: ask a tracker (101/102/103),
//! then run the command on the storage it named — both over pooled keep-alive connections. The
//! per-connection protocol lives in [`tracker`] and [`storage`]; this module adds tracker
//! fail-over (next tracker on a connection error), pooling, and file-ID handling.

pub mod cli;
pub mod pool;
pub mod storage;
pub mod tracker;

use crate::proto::connection::ConnError;
use crate::proto::fileid::{split_file_id, valid_ext};
use crate::proto::storage::{FileInfoResp, MetaOp, MetaPair};
use crate::proto::tracker::{GroupStat, StorageAddr, StorageStat, StorageStatus};
use crate::proto::ProtoError;
use futures::future::BoxFuture;
use pool::Pool;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use storage::StorageConn;
use tokio::net::TcpStream;

/// Idle connections kept per tracker or storage (the C client's pool keeps a handful).
const IDLE_PER_ADDR: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no tracker reachable ({0})")]
    NoTracker(String),
    #[error("invalid file ID: {0}")]
    BadFileId(ProtoError),
    #[error("server answered {}", errno_text(*.0))]
    Status(u8),
    #[error("storage {addr}: {source}")]
    Storage { addr: String, source: ConnError },
    /// No connection to the storage could be made: nothing reached it, so an upload may ask
    /// the tracker for another one.
    #[error("storage {addr}: {source}")]
    StorageUnreachable { addr: String, source: ConnError },
    #[error("tracker answered an unusable storage address {0:?}")]
    BadAddress(String),
    #[error("local file: {0}")]
    Local(std::io::Error),
}

impl ClientError {
    /// The FastDFS status (errno) the server answered, if that is what failed.
    pub fn status(&self) -> Option<u8> {
        match self {
            ClientError::Status(s) => Some(*s),
            _ => None,
        }
    }
}

fn errno_text(s: u8) -> String {
    format!("{s} ({})", std::io::Error::from_raw_os_error(s as i32))
}

fn status_of(e: &ConnError) -> Option<u8> {
    e.status()
}

/// The peer had closed a pooled connection: the request never reached a live server loop.
fn is_stale(e: &ConnError) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(e, ConnError::Io(io) if matches!(io.kind(), UnexpectedEof | ConnectionReset | BrokenPipe))
}

/// A tracker that failed to connect or answer in time is asked last for this long (nginx's
/// `fail_timeout`), so a dead or partitioned tracker costs one timeout, not one per call.
pub const TRACKER_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// A FastDFS client for a list of trackers.
pub struct FdfsClient {
    trackers: Vec<SocketAddr>,
    next_tracker: AtomicUsize,
    /// Per tracker (same index): asked last until then.
    tracker_failed_until: std::sync::Mutex<Vec<Option<std::time::Instant>>>,
    tracker_pool: Pool<TcpStream>,
    storage_pool: Pool<StorageConn>,
    timeout: Duration,
}

impl FdfsClient {
    pub fn new(trackers: Vec<SocketAddr>) -> Self {
        Self::with_timeout(trackers, Duration::from_secs(30))
    }

    /// `timeout` bounds each connect and each exchange.
    pub fn with_timeout(trackers: Vec<SocketAddr>, timeout: Duration) -> Self {
        FdfsClient {
            tracker_failed_until: std::sync::Mutex::new(vec![None; trackers.len()]),
            trackers,
            next_tracker: AtomicUsize::new(0),
            tracker_pool: Pool::new(IDLE_PER_ADDR),
            storage_pool: Pool::new(IDLE_PER_ADDR),
            timeout,
        }
    }

    /// Runs one tracker exchange, trying each tracker once (round-robin start) until one answers.
    async fn tracker_call<'g, T, F>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(TcpStream) -> BoxFuture<'g, (TcpStream, Result<T, ConnError>)>,
    {
        if self.trackers.is_empty() {
            return Err(ClientError::NoTracker("no tracker configured".into()));
        }
        let mut last = String::new();
        let mut refusal = None;
        for i in self.tracker_order() {
            let addr = self.trackers[i];
            // A pooled connection may have been closed by the tracker: one fresh retry.
            for fresh in [false, true] {
                let pooled = if fresh {
                    None
                } else {
                    self.tracker_pool.take(addr)
                };
                let reused = pooled.is_some();
                let stream = match pooled {
                    Some(s) => s,
                    None => {
                        match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
                            Ok(Ok(s)) => {
                                let _ = s.set_nodelay(true);
                                s
                            }
                            Ok(Err(e)) => {
                                last = format!("{addr}: {e}");
                                self.tracker_failed(i);
                                break;
                            }
                            Err(_) => {
                                last = format!("{addr}: connect timed out");
                                self.tracker_failed(i);
                                break;
                            }
                        }
                    }
                };
                match tokio::time::timeout(self.timeout, f(stream)).await {
                    Ok((stream, Ok(v))) => {
                        self.tracker_pool.put(addr, stream);
                        self.tracker_ok(i);
                        return Ok(v);
                    }
                    Ok((stream, Err(e))) => {
                        if let Some(s) = status_of(&e) {
                            // A FastDFS refusal: the connection is still in step. Another tracker
                            // may know better (one that just restarted has not heard every
                            // storage yet), so ask the others before giving up.
                            self.tracker_pool.put(addr, stream);
                            refusal.get_or_insert(s);
                            break;
                        }
                        last = format!("{addr}: {e}");
                        self.tracker_pool.forget(addr);
                        if !reused {
                            break;
                        }
                    }
                    Err(_) => {
                        last = format!("{addr}: timed out");
                        self.tracker_pool.forget(addr);
                        self.tracker_failed(i);
                        break;
                    }
                }
            }
        }
        match refusal {
            Some(s) => Err(ClientError::Status(s)),
            None => Err(ClientError::NoTracker(last)),
        }
    }

    /// Tracker indexes in the order to ask them: round-robin from a moving start, trackers that
    /// failed within `TRACKER_FAIL_TIMEOUT` last (still asked if all others fail).
    fn tracker_order(&self) -> Vec<usize> {
        let n = self.trackers.len();
        let start = self.next_tracker.fetch_add(1, Ordering::Relaxed);
        let now = std::time::Instant::now();
        let failed = self
            .tracker_failed_until
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        let mut order: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
        // Stable: keeps the round-robin order within each class.
        order.sort_by_key(|&i| failed.get(i).copied().flatten().is_some_and(|t| t > now));
        order
    }

    fn tracker_failed(&self, i: usize) {
        if let Ok(mut f) = self.tracker_failed_until.lock() {
            if let Some(slot) = f.get_mut(i) {
                *slot = Some(std::time::Instant::now() + TRACKER_FAIL_TIMEOUT);
            }
        }
    }

    fn tracker_ok(&self, i: usize) {
        if let Ok(mut f) = self.tracker_failed_until.lock() {
            if let Some(slot) = f.get_mut(i) {
                *slot = None;
            }
        }
    }

    /// Runs one storage exchange on a pooled connection to `addr`.
    async fn storage_call<'g, T, F>(&self, addr: SocketAddr, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(StorageConn) -> BoxFuture<'g, (StorageConn, Result<T, ConnError>)>,
    {
        for fresh in [false, true] {
            let pooled = if fresh {
                None
            } else {
                self.storage_pool.take(addr)
            };
            let reused = pooled.is_some();
            let conn = match pooled {
                Some(c) => c,
                None => StorageConn::connect_timeout(addr, self.timeout)
                    .await
                    .map_err(|e| ClientError::StorageUnreachable {
                        addr: addr.to_string(),
                        source: e,
                    })?,
            };
            match f(conn).await {
                (conn, Ok(v)) => {
                    self.storage_pool.put(addr, conn);
                    return Ok(v);
                }
                (conn, Err(e)) => {
                    if let Some(s) = status_of(&e) {
                        self.storage_pool.put(addr, conn);
                        return Err(ClientError::Status(s));
                    }
                    self.storage_pool.forget(addr);
                    // Retrying is only safe when nothing could have reached the storage's disk:
                    // a stale pooled connection fails on its first read/write.
                    if !reused || !is_stale(&e) {
                        return Err(ClientError::Storage {
                            addr: addr.to_string(),
                            source: e,
                        });
                    }
                }
            }
        }
        unreachable!("the fresh attempt always returns")
    }

    /// Uploads `data`; returns the file ID (`group1/M00/..`).
    pub async fn upload_buffer(&self, data: &[u8], ext: &str) -> Result<String, ClientError> {
        self.upload_kind(data, ext, false).await
    }

    /// Uploads `data` as an appender file (APPEND/MODIFY/TRUNCATE allowed later).
    pub async fn upload_appender_buffer(
        &self,
        data: &[u8],
        ext: &str,
    ) -> Result<String, ClientError> {
        self.upload_kind(data, ext, true).await
    }

    /// How many times an upload asks the tracker again when the storage it named could not be
    /// connected to (stopped or killed a moment ago; the tracker takes it offline when its
    /// connection drops, so the next answer names another storage).
    const UPLOAD_REQUERIES: u32 = 2;

    async fn upload_kind(
        &self,
        data: &[u8],
        ext: &str,
        appender: bool,
    ) -> Result<String, ClientError> {
        self.with_requeries(|| self.upload_once(data, ext, appender))
            .await
    }

    /// Runs an upload `attempt` again while it fails because the storage the tracker named
    /// could not be connected to (nothing was sent to it), at most `UPLOAD_REQUERIES` times.
    async fn with_requeries<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut requeries = 0;
        loop {
            match attempt().await {
                Err(ClientError::StorageUnreachable { addr, source })
                    if requeries < Self::UPLOAD_REQUERIES =>
                {
                    requeries += 1;
                    tracing::debug!(%addr, error = %source, "storage unreachable; asking the tracker again");
                    // The tracker may not have seen the storage go yet: give it a moment.
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(requeries))).await;
                }
                other => return other,
            }
        }
    }

    /// The storage (and store path) the tracker names for a new file.
    async fn store_target(
        &self,
    ) -> Result<(crate::proto::tracker::StoreTarget, SocketAddr), ClientError> {
        let target = self
            .tracker_call(|mut s| {
                Box::pin(async move {
                    let r = tracker::query_store(&mut s, None).await;
                    (s, r)
                })
            })
            .await?;
        let addr = socket_addr(&target.addr)?;
        Ok((target, addr))
    }

    /// One upload: the tracker names a storage, the storage takes the file.
    async fn upload_once(
        &self,
        data: &[u8],
        ext: &str,
        appender: bool,
    ) -> Result<String, ClientError> {
        let (target, addr) = self.store_target().await?;
        let idx = target.store_path_index;
        let stored = self
            .storage_call(addr, |mut c| {
                Box::pin(async move {
                    let r = if appender {
                        c.upload_appender(idx, data, ext).await
                    } else {
                        c.upload(idx, data, ext).await
                    };
                    (c, r)
                })
            })
            .await?;
        Ok(format!("{}/{}", stored.group, stored.filename))
    }

    /// Uploads a local file, streamed; the extension comes from the file name.
    pub async fn upload_path(&self, path: &Path) -> Result<String, ClientError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| valid_ext(e))
            .unwrap_or("")
            .to_string();
        let size = tokio::fs::metadata(path)
            .await
            .map_err(ClientError::Local)?
            .len();
        self.with_requeries(|| self.upload_path_once(path, size, &ext))
            .await
    }

    async fn upload_path_once(
        &self,
        path: &Path,
        size: u64,
        ext: &str,
    ) -> Result<String, ClientError> {
        let (target, addr) = self.store_target().await?;
        // Streaming cannot be retried from the pool's stale-connection path: use a fresh one.
        let mut conn = StorageConn::connect_timeout(addr, self.timeout)
            .await
            .map_err(|e| ClientError::StorageUnreachable {
                addr: addr.to_string(),
                source: e,
            })?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(ClientError::Local)?;
        let stored = conn
            .upload_from(target.store_path_index, &mut file, size, ext)
            .await
            .map_err(|e| match status_of(&e) {
                Some(s) => ClientError::Status(s),
                None => ClientError::Storage {
                    addr: addr.to_string(),
                    source: e,
                },
            })?;
        self.storage_pool.put(addr, conn);
        Ok(format!("{}/{}", stored.group, stored.filename))
    }

    /// Group, remote name, and a storage that holds the file (QUERY_FETCH_ONE).
    async fn locate_for_fetch<'i>(
        &self,
        file_id: &'i str,
    ) -> Result<(&'i str, &'i str, SocketAddr), ClientError> {
        let (group, name) = split_file_id(file_id).map_err(ClientError::BadFileId)?;
        let a = self
            .tracker_call(|mut s| {
                Box::pin(async move {
                    let r = tracker::query_fetch_one(&mut s, group, name).await;
                    (s, r)
                })
            })
            .await?;
        Ok((group, name, socket_addr(&a)?))
    }

    /// Group, remote name, and the storage to change the file on (QUERY_UPDATE).
    async fn locate_for_update<'i>(
        &self,
        file_id: &'i str,
    ) -> Result<(&'i str, &'i str, SocketAddr), ClientError> {
        let (group, name) = split_file_id(file_id).map_err(ClientError::BadFileId)?;
        let a = self
            .tracker_call(|mut s| {
                Box::pin(async move {
                    let r = tracker::query_update(&mut s, group, name).await;
                    (s, r)
                })
            })
            .await?;
        Ok((group, name, socket_addr(&a)?))
    }

    /// Downloads a whole file.
    pub async fn download_buffer(&self, file_id: &str) -> Result<Vec<u8>, ClientError> {
        self.download_range(file_id, 0, 0).await
    }

    /// Downloads `count` bytes from `offset` (count 0 = to the end).
    pub async fn download_range(
        &self,
        file_id: &str,
        offset: u64,
        count: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let (group, name, addr) = self.locate_for_fetch(file_id).await?;
        self.storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.download(group, name, offset, count).await;
                (c, r)
            })
        })
        .await
    }

    /// Downloads a file into a local path (written whole, then renamed into place).
    pub async fn download_to_path(&self, file_id: &str, out: &Path) -> Result<u64, ClientError> {
        let (group, name, addr) = self.locate_for_fetch(file_id).await?;
        let tmp = out.with_extension("fdfs-ha-part");
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(ClientError::Local)?;
        let mut conn = StorageConn::connect_timeout(addr, self.timeout)
            .await
            .map_err(|e| ClientError::Storage {
                addr: addr.to_string(),
                source: e,
            })?;
        let n = match conn.download_to(group, name, 0, 0, &mut file).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(match status_of(&e) {
                    Some(s) => ClientError::Status(s),
                    None => ClientError::Storage {
                        addr: addr.to_string(),
                        source: e,
                    },
                });
            }
        };
        use tokio::io::AsyncWriteExt;
        file.flush().await.map_err(ClientError::Local)?;
        tokio::fs::rename(&tmp, out)
            .await
            .map_err(ClientError::Local)?;
        self.storage_pool.put(addr, conn);
        Ok(n)
    }

    pub async fn delete(&self, file_id: &str) -> Result<(), ClientError> {
        let (group, name, addr) = self.locate_for_update(file_id).await?;
        self.storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.delete(group, name).await;
                (c, r)
            })
        })
        .await
    }

    pub async fn append_buffer(&self, file_id: &str, data: &[u8]) -> Result<(), ClientError> {
        let (_, name, addr) = self.locate_for_update(file_id).await?;
        self.storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.append(name, data).await;
                (c, r)
            })
        })
        .await
    }

    /// QUERY_FILE_INFO on a storage holding the file.
    pub async fn file_info(&self, file_id: &str) -> Result<FileInfoResp, ClientError> {
        let (group, name, addr) = self.locate_for_fetch(file_id).await?;
        self.storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.query_file_info(group, name, 0).await;
                (c, r)
            })
        })
        .await
    }

    pub async fn set_metadata(
        &self,
        file_id: &str,
        pairs: &[MetaPair],
        op: MetaOp,
    ) -> Result<(), ClientError> {
        let (group, name, addr) = self.locate_for_update(file_id).await?;
        self.storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.set_metadata(group, name, pairs, op).await;
                (c, r)
            })
        })
        .await
    }

    pub async fn get_metadata(&self, file_id: &str) -> Result<Vec<MetaPair>, ClientError> {
        let (group, name, addr) = self.locate_for_fetch(file_id).await?;
        self.storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.get_metadata(group, name).await;
                (c, r)
            })
        })
        .await
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupStat>, ClientError> {
        self.tracker_call(|mut s| {
            Box::pin(async move {
                let r = tracker::list_groups(&mut s).await;
                (s, r)
            })
        })
        .await
    }

    pub async fn list_storages(&self, group: &str) -> Result<Vec<StorageStat>, ClientError> {
        self.tracker_call(|mut s| {
            Box::pin(async move {
                let r = tracker::list_storages(&mut s, group, None).await;
                (s, r)
            })
        })
        .await
    }

    /// How many storages of `group` a tracker reports ACTIVE.
    pub async fn active_storage_count(&self, group: &str) -> Result<usize, ClientError> {
        let list = self.list_storages(group).await?;
        Ok(list
            .iter()
            .filter(|s| s.status == StorageStatus::Active as u8)
            .count())
    }
}

/// The storage address a tracker answered, as a socket address.
fn socket_addr(a: &StorageAddr) -> Result<SocketAddr, ClientError> {
    let ip: IpAddr =
        a.ip.parse()
            .map_err(|_| ClientError::BadAddress(a.ip.clone()))?;
    Ok(SocketAddr::new(ip, a.port))
}
