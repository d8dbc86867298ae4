//! The per-connection command loop of the storage: read a header, dispatch the command, answer.
//!
//! ```text
//!  socket ──► BufReader(64 KiB)  ──► header ──► small body (≤ max_body) ─► handler ─► response
//!                                      └──────► upload/append/modify head ─► content streamed to
//!                                               disk in 512 KiB aligned chunks (double-buffered;
//!                                               O_DIRECT for large files with fsync on) ─► response
//!  download: header, then sendfile(2) from the data file straight into the socket
//! ```
//! Group peers push their changes with the SYNC_* commands on the same port; those are applied
//! and logged as replica (lower-case) binlog records with the peer's timestamps. A peer's small
//! new file is answered before it is flushed (`Store::flush_replicas` flushes them in batches);
//! the answer to SYNC_WATERMARK comes after that flush and is the sender's confirmation.
//! A connection carries any number of requests. Every read and write is bounded by
//! `network_timeout`; a stalled or vanished client is dropped and its temp file removed.
//! Malformed requests get FastDFS's errno (EINVAL, ENOENT, ENOSPC, ...) and are counted; when the
//! rest of a refused body is small it is skipped so the connection stays usable, otherwise the
//! connection is closed after the answer.

use super::binlog::{BinlogOp, BinlogRecord};
use super::state::{unix_now, StorageState};
use super::store::{AlignedBuf, Created, StoreError, TempFile};
use crate::proto::cmd::{self, errno};
use crate::proto::connection::{read_header, send_file, write_response, ConnError};
use crate::proto::fileid::{self, FileInfo, RemoteName};
use crate::proto::storage::{
    decode_metadata, AppendReq, DownloadReq, FileInfoResp, FileReq, ModifyReq, ReportServerIdReq,
    SetMetadataReq, SyncDeleteReq, SyncFileReq, SyncRangeReq, SyncTruncateReq, TruncateReq,
    UploadReq, UploadResp, UploadSlaveReq, MAX_FILENAME_LEN, QUERY_FLAG_NO_CRC32,
    QUERY_FLAG_SILENT,
};
use crate::proto::{Header, HEADER_LEN};
use rand::Rng;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Socket read buffer: a header plus a small request (or a 4 KiB upload) arrives in one read.
/// Larger reads bypass it, so it stays small for idle connections (1024 of them = 64 MiB).
const READ_BUF: usize = 64 * 1024;
/// Uploads up to this size are received into memory and written in one blocking task.
const SMALL_FILE: u64 = 256 * 1024;
/// Chunk size for streamed content; two are in flight (one read from the socket, one written).
const CHUNK: usize = 512 * 1024;
/// Downloads up to this size are sent with the header in one write instead of sendfile.
const SMALL_DOWNLOAD: u64 = 64 * 1024;

/// Why a request failed, and what that means for the connection.
#[derive(Debug)]
enum Fail {
    /// Answer with this errno; the whole body was consumed, the connection stays open.
    Reply(u8, String),
    /// Answer, then close: the rest of the body was not read.
    ReplyClose(u8, String),
    /// Close without answering (I/O error, timeout, peer gone).
    Drop(String),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Reply(e.status, e.msg)
    }
}

impl From<ConnError> for Fail {
    fn from(e: ConnError) -> Self {
        Fail::Drop(e.to_string())
    }
}

fn einval(msg: impl std::fmt::Display) -> Fail {
    Fail::Reply(errno::EINVAL, msg.to_string())
}

/// Result of a handler: `Some(body)` = answer 0 with this body; `None` = already answered.
type Handled = Result<Option<Vec<u8>>, Fail>;

/// Where streamed content goes.
trait Sink: Send + 'static {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()>;
}

impl Sink for TempFile {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all(buf)
    }
}

/// A chunk being written by a blocking task; hands back the sink and the buffer for reuse.
type ChunkWrite<S> = tokio::task::JoinHandle<(S, AlignedBuf, io::Result<()>)>;

/// The content of an upload once received.
enum Content {
    Memory(Vec<u8>),
    File(TempFile),
}

/// An existing file written at an advancing offset (append, modify).
struct At {
    file: std::fs::File,
    offset: u64,
}

impl Sink for At {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(())
    }
}

/// Runs file I/O off the async scheduling: on the multi-thread runtime in place
/// (`block_in_place` hands this worker's other tasks to another thread), which spares a small
/// upload the two thread hand-offs of `spawn_blocking` (~70 us of its ~600 us at c=1 on this
/// machine); elsewhere (tests on a current-thread runtime) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Fail> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(f).map_err(Fail::from);
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Fail::from),
        Err(e) => Err(Fail::Drop(format!("blocking task failed: {e}"))),
    }
}

/// Serves one client connection until it closes, misbehaves, or `shutdown` fires.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    state: Arc<StorageState>,
    shutdown: CancellationToken,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let cfg = state.config();
    let mut conn = Conn {
        io: BufReader::with_capacity(READ_BUF, stream),
        timeout: cfg.network_timeout.get(),
        max_body: cfg.max_body.0,
        peer,
        peer_storage_id: None,
        state: state.clone(),
    };
    conn.run(shutdown).await;
}

struct Conn {
    io: BufReader<TcpStream>,
    state: Arc<StorageState>,
    timeout: Duration,
    max_body: u64,
    peer: String,
    /// Set by REPORT_SERVER_ID when the peer is another storage pushing sync records.
    peer_storage_id: Option<String>,
}

impl Conn {
    async fn run(&mut self, shutdown: CancellationToken) {
        loop {
            let header = tokio::select! {
                _ = shutdown.cancelled() => return,
                h = tokio::time::timeout(self.timeout, read_header(&mut self.io)) => h,
            };
            let h = match header {
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "idle connection timed out");
                    return;
                }
                Ok(Err(e)) if e.is_eof() => return,
                Ok(Err(e)) => {
                    // A negative length: the stream cannot be re-synchronised.
                    self.count_bad();
                    tracing::warn!(peer = %self.peer, error = %e, "bad request header");
                    if self.reply(errno::EINVAL, &[]).await.is_ok() {
                        self.linger_close().await;
                    }
                    return;
                }
                Ok(Ok(h)) => h,
            };
            if h.cmd == cmd::QUIT {
                return;
            }
            let outcome = self.dispatch(h).await;
            let keep = match outcome {
                Ok(Some(body)) => self.reply(0, &body).await.is_ok(),
                Ok(None) => true,
                Err(Fail::Reply(status, msg)) => {
                    self.log_fail(&h, status, &msg);
                    self.reply(status, &[]).await.is_ok()
                }
                Err(Fail::ReplyClose(status, msg)) => {
                    self.log_fail(&h, status, &msg);
                    if self.reply(status, &[]).await.is_ok() {
                        self.linger_close().await;
                    }
                    false
                }
                Err(Fail::Drop(msg)) => {
                    tracing::info!(peer = %self.peer, cmd = h.cmd, reason = %msg, "closing connection");
                    false
                }
            };
            if !keep {
                return;
            }
        }
    }

    /// Closes after an answer while the client may still be sending a body we will not read:
    /// send FIN, then swallow input for a moment, so the kernel does not answer the unread
    /// bytes with a reset that would destroy our answer before the client reads it.
    async fn linger_close(&mut self) {
        let _ = self.io.get_mut().shutdown().await;
        let mut rest = (&mut self.io).take(64 << 20);
        let mut sink = tokio::io::sink();
        let wait = self.timeout.min(Duration::from_secs(2));
        let _ = tokio::time::timeout(wait, tokio::io::copy(&mut rest, &mut sink)).await;
    }

    fn count_bad(&self) {
        self.state
            .stats()
            .bad_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    fn log_fail(&self, h: &Header, status: u8, msg: &str) {
        if status == errno::EINVAL {
            self.count_bad();
        }
        let silent = h.cmd == cmd::QUERY_FILE_INFO && h.status & QUERY_FLAG_SILENT != 0;
        if !silent {
            tracing::info!(peer = %self.peer, cmd = h.cmd, status, reason = %msg, "request refused");
        }
    }

    async fn reply(&mut self, status: u8, body: &[u8]) -> Result<(), Fail> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, write_response(self.io.get_mut(), status, body)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Fail::Drop(e.to_string())),
            Err(_) => Err(Fail::Drop("network timeout".into())),
        }
    }

    async fn read_vec(&mut self, n: usize) -> Result<Vec<u8>, Fail> {
        let mut buf = vec![0u8; n];
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.io.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Ok(buf),
            Ok(Err(e)) => Err(Fail::Drop(format!("i/o: {e}"))),
            Err(_) => Err(Fail::Drop("network timeout".into())),
        }
    }

    /// Reads a whole small body, refusing one over `max_body`.
    async fn small_body(&mut self, h: &Header) -> Result<Vec<u8>, Fail> {
        if h.pkg_len > self.max_body {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!(
                    "body of {} bytes over max_body {}",
                    h.pkg_len, self.max_body
                ),
            ));
        }
        self.read_vec(h.pkg_len as usize).await
    }

    /// Refuses a request whose remaining `left` body bytes are unread: skips them when small so
    /// the connection stays usable, else answers and closes.
    async fn refuse(&mut self, left: u64, status: u8, msg: impl Into<String>) -> Fail {
        let msg = msg.into();
        if left > self.max_body {
            return Fail::ReplyClose(status, msg);
        }
        self.skip(left, status, msg).await
    }

    /// Skips `left` unread body bytes whatever their size, then answers `status`. For sync
    /// peers, whose refusals (EEXIST, ENOENT) are part of the normal flow and whose connection
    /// should survive them.
    async fn skip(&mut self, left: u64, status: u8, msg: String) -> Fail {
        let mut rest = left;
        let mut buf = vec![0u8; (left as usize).clamp(1, CHUNK)];
        while rest > 0 {
            let n = (rest as usize).min(buf.len());
            // network_timeout bounds each read, not the whole (possibly large) body.
            match tokio::time::timeout(self.timeout, self.io.read(&mut buf[..n])).await {
                Ok(Ok(0)) => return Fail::Drop("peer closed mid-body".into()),
                Ok(Ok(got)) => rest -= got as u64,
                Ok(Err(e)) => return Fail::Drop(format!("i/o: {e}")),
                Err(_) => return Fail::Drop("network timeout".into()),
            }
        }
        Fail::Reply(status, msg)
    }

    async fn dispatch(&mut self, h: Header) -> Handled {
        let st = self.state.clone();
        let stats = st.stats();
        match h.cmd {
            cmd::UPLOAD_FILE | cmd::UPLOAD_APPENDER_FILE => {
                let r = self.upload(&h, h.cmd == cmd::UPLOAD_APPENDER_FILE).await;
                stats.upload.record(r.is_ok());
                r
            }
            cmd::UPLOAD_SLAVE_FILE => {
                let r = self.upload_slave(&h).await;
                stats.upload.record(r.is_ok());
                r
            }
            cmd::APPEND_FILE => {
                let r = self.append(&h).await;
                stats.append.record(r.is_ok());
                r
            }
            cmd::MODIFY_FILE => {
                let r = self.modify(&h).await;
                stats.modify.record(r.is_ok());
                r
            }
            cmd::TRUNCATE_FILE => {
                let body = self.small_body(&h).await?;
                let r = self.truncate(&body).await;
                stats.truncate.record(r.is_ok());
                r
            }
            cmd::DELETE_FILE => {
                let body = self.small_body(&h).await?;
                let r = self.delete(&body).await;
                stats.delete.record(r.is_ok());
                r
            }
            cmd::SET_METADATA => {
                let body = self.small_body(&h).await?;
                let r = self.set_metadata(&body).await;
                stats.set_meta.record(r.is_ok());
                r
            }
            cmd::GET_METADATA => {
                let body = self.small_body(&h).await?;
                let r = self.get_metadata(&body).await;
                stats.get_meta.record(r.is_ok());
                r
            }
            cmd::QUERY_FILE_INFO => {
                let body = self.small_body(&h).await?;
                self.query_file_info(&body, h.status).await
            }
            cmd::DOWNLOAD_FILE => {
                let body = self.small_body(&h).await?;
                let r = self.download(&body).await;
                stats.download.record(r.is_ok());
                r
            }
            cmd::ACTIVE_TEST => {
                if h.pkg_len != 0 {
                    return Err(self
                        .refuse(h.pkg_len, errno::EINVAL, "ACTIVE_TEST with a body")
                        .await);
                }
                Ok(Some(Vec::new()))
            }
            cmd::REPORT_SERVER_ID => {
                let body = self.small_body(&h).await?;
                let r = ReportServerIdReq::decode(&body).map_err(einval)?;
                tracing::debug!(peer = %self.peer, id = %r.storage_id, "peer storage identified");
                self.peer_storage_id = Some(r.storage_id);
                Ok(Some(Vec::new()))
            }
            cmd::SYNC_CREATE_FILE | cmd::SYNC_UPDATE_FILE => {
                self.sync_file(&h, h.cmd == cmd::SYNC_UPDATE_FILE).await
            }
            cmd::SYNC_DELETE_FILE => {
                let body = self.small_body(&h).await?;
                self.sync_delete(&body).await
            }
            cmd::SYNC_APPEND_FILE | cmd::SYNC_MODIFY_FILE => {
                self.sync_range(&h, h.cmd == cmd::SYNC_MODIFY_FILE).await
            }
            cmd::SYNC_TRUNCATE_FILE => {
                let body = self.small_body(&h).await?;
                self.sync_truncate(&body).await
            }
            super::sync::SYNC_WATERMARK => {
                let body = self.small_body(&h).await?;
                self.sync_watermark(&body).await
            }
            super::sync::SYNC_STATUS_QUERY => {
                if h.pkg_len != 0 {
                    return Err(self
                        .refuse(h.pkg_len, errno::EINVAL, "SYNC_STATUS_QUERY with a body")
                        .await);
                }
                let st = self.state.clone();
                let report = blocking(move || Ok(super::sync::sync_report(&st))).await?;
                Ok(Some(serde_json::to_vec(&report).map_err(einval)?))
            }
            other => Err(self
                .refuse(
                    h.pkg_len,
                    errno::EINVAL,
                    format!("unsupported command {other}"),
                )
                .await),
        }
    }

    fn check_group(&self, group: &str) -> Result<(), Fail> {
        if group != self.state.group() {
            return Err(einval(format!(
                "group {group:?} is not this storage's group {:?}",
                self.state.group()
            )));
        }
        Ok(())
    }

    /// As `locate`, also accepting a metadata sidecar name (`<name>-m`, sync only).
    /// Returns the logical name (`M00/XX/YY/name[-m]`), its path and its store path index.
    fn locate_synced(&self, filename: &str) -> Result<(String, std::path::PathBuf, u8), Fail> {
        match filename.strip_suffix(fileid::METADATA_SUFFIX) {
            Some(base) => {
                let (name, path) = self.locate(base)?;
                Ok((
                    format!("{}{}", name.to_path_string(), fileid::METADATA_SUFFIX),
                    super::store::Store::meta_path(&path),
                    name.store_path_index,
                ))
            }
            None => {
                let (name, path) = self.locate(filename)?;
                Ok((name.to_path_string(), path, name.store_path_index))
            }
        }
    }

    /// Records a change applied on behalf of a peer: lower-case binlog op, with the peer's
    /// record timestamp, and the sync counters.
    fn log_replica(&self, op: BinlogOp, timestamp: u32, filename: &str, extra: Option<String>) {
        self.state.binlog().append(&BinlogRecord {
            timestamp: timestamp as i64,
            op,
            source: false,
            filename: filename.to_string(),
            extra,
        });
        let stats = self.state.stats();
        stats.last_sync_update.store(unix_now(), Ordering::Relaxed);
        stats
            .last_synced_timestamp
            .fetch_max(timestamp as u64, Ordering::Relaxed);
    }

    /// SYNC_WATERMARK from a group peer's sender: we hold every file it created before this
    /// second (reported to trackers, which then hand us out for those files). Our reply also
    /// tells the sender that every change we acknowledged before is on our disk: peers' new
    /// files are flushed in batches (`Store::flush_replicas`), so the batch is flushed first.
    async fn sync_watermark(&self, body: &[u8]) -> Handled {
        let Some(src) = &self.peer_storage_id else {
            return Err(einval("SYNC_WATERMARK before REPORT_SERVER_ID"));
        };
        let ts: [u8; 8] = body
            .try_into()
            .map_err(|_| einval(format!("SYNC_WATERMARK body of {} bytes", body.len())))?;
        let ts = u64::from_be_bytes(ts).min(u32::MAX as u64) as u32;
        if self.state.store().unflushed_count() > 0 {
            let st = self.state.clone();
            blocking(move || Ok(st.store().flush_replicas()?)).await?;
        }
        self.state.note_synced_from(src, ts);
        Ok(Some(Vec::new()))
    }

    /// SYNC_CREATE_FILE / SYNC_UPDATE_FILE from a group peer: the whole file (or its `-m`).
    async fn sync_file(&mut self, h: &Header, update: bool) -> Handled {
        let (head, left) = self
            .streamed_head(h, SyncFileReq::FIXED_LEN, SyncFileReq::names_len)
            .await?;
        let req = match SyncFileReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        if let Err(Fail::Reply(s, m)) = self.check_group(&req.group) {
            return Err(self.refuse(left, s, m).await);
        }
        let (filename, path, index) = match self.locate_synced(&req.filename) {
            Ok(v) => v,
            Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
            Err(f) => return Err(f),
        };
        if h.status == errno::EEXIST && left == 0 {
            // The peer only announces a file it knows we have.
            return Ok(Some(Vec::new()));
        }
        if req.file_size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                "file_size disagrees with body".into(),
            ));
        }
        if !update && path.exists() {
            return Err(self.skip(left, errno::EEXIST, "file exists".into()).await);
        }
        // A peer's new small file is received into memory and stored the way a small upload
        // is (`Store::create_at`: one flush when its name vouches for it); the rest streams
        // into a temp file.
        enum Received {
            NewSmall(RemoteName, Vec<u8>),
            Streamed(TempFile),
        }
        let new_small = (!update && left <= SMALL_FILE)
            .then(|| RemoteName::parse_str(&filename).ok())
            .flatten();
        let received = match new_small {
            Some(target) => Received::NewSmall(target, self.read_vec(left as usize).await?),
            None => {
                let st = self.state.clone();
                let tmp = match blocking(move || st.store().temp_file(index, left)).await {
                    Ok(t) => t,
                    Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
                    Err(f) => return Err(f),
                };
                Received::Streamed(self.receive(tmp, req.file_size).await?.0)
            }
        };
        let st = self.state.clone();
        let _guard = self.state.store().lock_file(&filename).await;
        blocking(move || match received {
            Received::NewSmall(target, bytes) => st.store().create_at(&target, &bytes),
            Received::Streamed(tmp) => st.store().commit_to(tmp, &path, update),
        })
        .await?;
        let op = if update {
            BinlogOp::Update
        } else {
            BinlogOp::Create
        };
        self.log_replica(op, req.timestamp, &filename, None);
        self.state
            .stats()
            .sync_in_bytes
            .record_bytes(req.file_size, true);
        Ok(Some(Vec::new()))
    }

    /// SYNC_DELETE_FILE: ENOENT when we never had the file (the sender ignores that).
    async fn sync_delete(&mut self, body: &[u8]) -> Handled {
        let req = SyncDeleteReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (filename, path, _) = self.locate_synced(&req.filename)?;
        let _guard = self.state.store().lock_file(&filename).await;
        let st = self.state.clone();
        blocking(move || Ok(st.store().remove(&path)?)).await?;
        self.log_replica(BinlogOp::Delete, req.timestamp, &filename, None);
        Ok(Some(Vec::new()))
    }

    /// SYNC_APPEND_FILE / SYNC_MODIFY_FILE: bytes at an offset of an appender file we hold.
    /// ENOENT when the file is missing or shorter than the offset, so the sender falls back
    /// to SYNC_UPDATE_FILE of the whole file.
    async fn sync_range(&mut self, h: &Header, modify: bool) -> Handled {
        let (head, left) = self
            .streamed_head(h, SyncRangeReq::FIXED_LEN, SyncRangeReq::names_len)
            .await?;
        let req = match SyncRangeReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        if req.length != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                "length disagrees with body".into(),
            ));
        }
        if let Err(Fail::Reply(s, m)) = self.check_group(&req.group) {
            return Err(self.refuse(left, s, m).await);
        }
        let (filename, path) = match self.appender(&req.filename) {
            Ok(v) => v,
            Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
            Err(f) => return Err(f),
        };
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let opened = blocking(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            let len = f.metadata()?.len();
            Ok((f, len))
        })
        .await;
        let (file, size) = match opened {
            Ok(v) => v,
            Err(Fail::Reply(s, m)) => return Err(self.skip(left, s, m).await),
            Err(f) => return Err(f),
        };
        if req.offset > size {
            return Err(self
                .skip(
                    left,
                    errno::ENOENT,
                    "local copy is behind the peer's".into(),
                )
                .await);
        }
        let sink = At {
            file,
            offset: req.offset,
        };
        let (sink, _) = self.receive(sink, req.length).await?;
        if st.store().fsync_enabled() {
            blocking(move || Ok(sink.file.sync_data()?)).await?;
        }
        let op = if modify {
            BinlogOp::Modify
        } else {
            BinlogOp::Append
        };
        self.log_replica(
            op,
            req.timestamp,
            &filename,
            Some(format!("{} {}", req.offset, req.length)),
        );
        st.stats().sync_in_bytes.record_bytes(req.length, true);
        Ok(Some(Vec::new()))
    }

    /// SYNC_TRUNCATE_FILE.
    async fn sync_truncate(&mut self, body: &[u8]) -> Handled {
        let req = SyncTruncateReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (filename, path) = self.appender(&req.filename)?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let fsync = st.store().fsync_enabled();
        let new_size = req.new_size;
        blocking(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(new_size)?;
            if fsync {
                f.sync_data()?;
            }
            Ok(())
        })
        .await?;
        self.log_replica(
            BinlogOp::Truncate,
            req.timestamp,
            &filename,
            Some(format!("{} {}", req.old_size, req.new_size)),
        );
        Ok(Some(Vec::new()))
    }

    /// Parses a remote filename and maps it to its data path.
    fn locate(&self, filename: &str) -> Result<(RemoteName, std::path::PathBuf), Fail> {
        let name = RemoteName::parse_str(filename).map_err(einval)?;
        let path = self.state.store().data_path(&name)?;
        Ok((name, path))
    }

    /// Receives `size` content bytes into `sink`, overlapping socket reads and disk writes.
    /// Returns the sink and the CRC-32 of the content.
    async fn receive<S: Sink>(&mut self, mut sink: S, size: u64) -> Result<(S, u32), Fail> {
        let mut hasher = crc32fast::Hasher::new();
        let mut left = size;
        // Aligned so that a large upload's chunks can go to an O_DIRECT temp file untouched.
        let mut spare = AlignedBuf::default();
        let mut pending: Option<ChunkWrite<S>> = None;
        let mut idle = Some(sink);
        while left > 0 {
            let n = (left as usize).min(CHUNK);
            let mut buf = std::mem::take(&mut spare);
            buf.resize(n);
            let timeout = self.timeout;
            let read = tokio::time::timeout(timeout, self.io.read_exact(&mut buf)).await;
            let read_err = match read {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("client gone mid-body: {e}")),
                Err(_) => Some("network timeout mid-body".to_string()),
            };
            if let Some(msg) = read_err {
                // Let the in-flight write finish so the sink (temp file) is dropped, not leaked.
                if let Some(p) = pending.take() {
                    let _ = p.await;
                }
                return Err(Fail::Drop(msg));
            }
            hasher.update(&buf);
            left -= n as u64;
            let mut s = match pending.take() {
                Some(p) => {
                    let (s, old, res) = p
                        .await
                        .map_err(|e| Fail::Drop(format!("write task failed: {e}")))?;
                    if let Err(e) = res {
                        return Err(Fail::ReplyClose(
                            StoreError::from(e).status,
                            "write failed".into(),
                        ));
                    }
                    spare = old;
                    s
                }
                None => match idle.take() {
                    Some(s) => s,
                    None => return Err(Fail::Drop("no sink".into())),
                },
            };
            pending = Some(tokio::task::spawn_blocking(move || {
                let res = s.write_chunk(&buf);
                (s, buf, res)
            }));
        }
        sink = match pending.take() {
            Some(p) => {
                let (s, _, res) = p
                    .await
                    .map_err(|e| Fail::Drop(format!("write task failed: {e}")))?;
                res.map_err(|e| Fail::Reply(StoreError::from(e).status, "write failed".into()))?;
                s
            }
            None => match idle.take() {
                Some(s) => s,
                None => return Err(Fail::Drop("no sink".into())),
            },
        };
        Ok((sink, hasher.finalize()))
    }

    async fn upload(&mut self, h: &Header, appender: bool) -> Handled {
        let fixed = UploadReq::FIXED_LEN as u64;
        if h.pkg_len < fixed {
            return Err(self
                .refuse(h.pkg_len, errno::EINVAL, "upload body too short")
                .await);
        }
        let head = self.read_vec(UploadReq::FIXED_LEN).await?;
        let left = h.pkg_len - fixed;
        let req = match UploadReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        if req.file_size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!("file_size {} but {left} body bytes follow", req.file_size),
            ));
        }
        if !fileid::valid_ext(&req.ext) {
            return Err(self
                .refuse(left, errno::EINVAL, format!("bad extension {:?}", req.ext))
                .await);
        }
        let max = self.state.config().max_file_size.0;
        if req.file_size > max {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!("file of {} bytes over max_file_size {max}", req.file_size),
            ));
        }
        let index = match self
            .state
            .store()
            .choose_path(req.store_path_index, req.file_size)
        {
            Ok(i) => i,
            Err(e) => return Err(self.refuse(left, e.status, e.msg).await),
        };
        let size = req.file_size;
        let st = self.state.clone();
        // Small files are received into memory and written, synced and renamed in one blocking
        // task; larger ones stream into a temp file first.
        let (content, crc32) = if size <= SMALL_FILE {
            let content = self.read_vec(size as usize).await?;
            let crc = crc32fast::hash(&content);
            (Content::Memory(content), crc)
        } else {
            let st2 = st.clone();
            let tmp = match blocking(move || st2.store().temp_file(index, size)).await {
                Ok(t) => t,
                Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
                Err(f) => return Err(f),
            };
            let (tmp, crc) = self.receive(tmp, size).await?;
            (Content::File(tmp), crc)
        };
        let ext = req.ext;
        let source = st.source();
        // Held until the binlog record is queued: replication watermarks stay below this file.
        let creating = st.begin_create();
        let now = creating.time();
        let st2 = st.clone();
        let created = blocking(move || {
            let store = st2.store();
            let mut rng = rand::thread_rng();
            let make_name = || {
                let info = FileInfo {
                    source,
                    create_time: now as u32,
                    size_field: FileInfo::size_field_for(size, appender, rng.gen()),
                    crc32,
                };
                fileid::new_name(&info, &ext, rng.gen())
            };
            let dirs = |name: &str| store.next_dirs(crc32fast::hash(name.as_bytes()));
            match content {
                Content::Memory(bytes) => store.create(index, &bytes, make_name, dirs),
                Content::File(t) => {
                    store
                        .commit(t, make_name, dirs)
                        .map(|(d1, d2, name)| Created {
                            dirs: (d1, d2),
                            name,
                            record: None,
                        })
                }
            }
        })
        .await?;
        let (d1, d2) = created.dirs;
        let filename = format!("M{index:02X}/{d1:02X}/{d2:02X}/{}", created.name);
        self.log(BinlogOp::Create, now, &filename, None);
        // Its journal record may stop counting once the binlog record is queued.
        drop(created.record);
        drop(creating);
        st.stats().upload_bytes.record_bytes(size, true);
        st.stats().count_file_write();
        Ok(Some(
            UploadResp {
                group: st.group().to_string(),
                filename,
            }
            .encode(),
        ))
    }

    fn log(&self, op: BinlogOp, now: u64, filename: &str, extra: Option<String>) {
        self.state.binlog().append(&BinlogRecord::source(
            op,
            now as i64,
            filename.to_string(),
            extra,
        ));
        self.state
            .stats()
            .last_source_update
            .store(now, Ordering::Relaxed);
    }

    /// Reads the fixed part and the file name of a streamed command.
    /// Returns (head bytes, body bytes still unread).
    async fn streamed_head(
        &mut self,
        h: &Header,
        fixed: usize,
        names_len: fn(&[u8]) -> Result<u64, crate::proto::ProtoError>,
    ) -> Result<(Vec<u8>, u64), Fail> {
        if h.pkg_len < fixed as u64 {
            return Err(self
                .refuse(h.pkg_len, errno::EINVAL, "body too short")
                .await);
        }
        let mut head = self.read_vec(fixed).await?;
        let left = h.pkg_len - fixed as u64;
        let n = match names_len(&head) {
            Ok(n) if n <= left && n <= MAX_FILENAME_LEN => n,
            Ok(n) => {
                return Err(Fail::ReplyClose(
                    errno::EINVAL,
                    format!("name length {n} too long"),
                ))
            }
            Err(e) => return Err(Fail::ReplyClose(errno::EINVAL, e.to_string())),
        };
        head.extend_from_slice(&self.read_vec(n as usize).await?);
        Ok((head, left - n))
    }

    async fn upload_slave(&mut self, h: &Header) -> Handled {
        let (head, left) = self
            .streamed_head(h, UploadSlaveReq::FIXED_LEN, UploadSlaveReq::names_len)
            .await?;
        let req = match UploadSlaveReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        if req.file_size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                "file_size disagrees with body".into(),
            ));
        }
        let prefix_ok = !req.prefix.is_empty()
            && req
                .prefix
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            && !req.prefix.ends_with(fileid::METADATA_SUFFIX);
        if !prefix_ok {
            return Err(self
                .refuse(
                    left,
                    errno::EINVAL,
                    format!("bad slave prefix {:?}", req.prefix),
                )
                .await);
        }
        if !fileid::valid_ext(&req.ext) {
            return Err(self
                .refuse(left, errno::EINVAL, format!("bad extension {:?}", req.ext))
                .await);
        }
        if req.file_size > self.state.config().max_file_size.0 {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                "file over max_file_size".into(),
            ));
        }
        let located = self.locate(&req.master_filename);
        let (master, master_path) = match located {
            Ok(v) => v,
            Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
            Err(f) => return Err(f),
        };
        if !master_path.is_file() {
            return Err(self
                .refuse(left, errno::ENOENT, "master file does not exist")
                .await);
        }
        // Like FastDFS, a slave without its own extension keeps the master's.
        let ext = match req.ext.as_str() {
            "" => master.ext().unwrap_or(""),
            e => e,
        };
        let slave = fileid::slave_name(&master.name, &req.prefix, ext);
        let filename = format!(
            "M{:02X}/{:02X}/{:02X}/{slave}",
            master.store_path_index, master.dir1, master.dir2
        );
        if RemoteName::parse_str(&filename).is_err() {
            return Err(self.refuse(left, errno::EINVAL, "slave name invalid").await);
        }
        let dst = master_path.with_file_name(&slave);
        if dst.exists() {
            return Err(self.refuse(left, errno::EEXIST, "slave file exists").await);
        }
        let index = master.store_path_index;
        match self.state.store().choose_path(index, req.file_size) {
            Ok(i) if i == index => {}
            _ => return Err(self.refuse(left, errno::ENOSPC, "store path full").await),
        }
        let st = self.state.clone();
        let tmp = match blocking(move || st.store().temp_file(index, left)).await {
            Ok(t) => t,
            Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
            Err(f) => return Err(f),
        };
        let (tmp, _crc) = self.receive(tmp, req.file_size).await?;
        let st = self.state.clone();
        let creating = self.state.begin_create();
        blocking(move || st.store().commit_as(tmp, &dst)).await?;
        self.log(BinlogOp::Create, creating.time(), &filename, None);
        drop(creating);
        self.state
            .stats()
            .upload_bytes
            .record_bytes(req.file_size, true);
        self.state.stats().count_file_write();
        Ok(Some(
            UploadResp {
                group: self.state.group().to_string(),
                filename,
            }
            .encode(),
        ))
    }

    /// Opens an appender file for a change; EINVAL if the name is not an appender's.
    fn appender(&self, filename: &str) -> Result<(String, std::path::PathBuf), Fail> {
        let (name, path) = self.locate(filename)?;
        if !name.info.is_appender() || name.is_slave() {
            return Err(einval("not an appender file"));
        }
        Ok((name.to_path_string(), path))
    }

    async fn append(&mut self, h: &Header) -> Handled {
        let (head, left) = self
            .streamed_head(h, AppendReq::FIXED_LEN, AppendReq::names_len)
            .await?;
        let req = match AppendReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        let (filename, path) = self
            .streamed_appender(left, req.size, &req.filename, "append")
            .await?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let (file, old_size) = self.open_for_write(left, &path).await?;
        if old_size.saturating_add(req.size) > st.config().max_file_size.0 {
            return Err(self
                .refuse(left, errno::EINVAL, "file would exceed max_file_size")
                .await);
        }
        let sink = At {
            file,
            offset: old_size,
        };
        let written = self.receive(sink, req.size).await;
        let sink = match written {
            Ok((s, _)) => s,
            Err(f) => {
                // Cut a partial append back so the file never holds half a request.
                let p = path.clone();
                let _ = blocking(move || {
                    let f = std::fs::OpenOptions::new().write(true).open(&p)?;
                    f.set_len(old_size)?;
                    Ok(())
                })
                .await;
                return Err(f);
            }
        };
        self.finish_appender_write(sink, BinlogOp::Append, &filename, old_size, req.size)
            .await
    }

    async fn modify(&mut self, h: &Header) -> Handled {
        let (head, left) = self
            .streamed_head(h, ModifyReq::FIXED_LEN, ModifyReq::names_len)
            .await?;
        let req = match ModifyReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        let (filename, path) = self
            .streamed_appender(left, req.size, &req.filename, "modify")
            .await?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let (file, size) = self.open_for_write(left, &path).await?;
        if req.offset > size {
            return Err(self
                .refuse(
                    left,
                    errno::EINVAL,
                    format!("offset {} beyond size {size}", req.offset),
                )
                .await);
        }
        if req.offset.saturating_add(req.size) > st.config().max_file_size.0 {
            return Err(self
                .refuse(left, errno::EINVAL, "file would exceed max_file_size")
                .await);
        }
        let sink = At {
            file,
            offset: req.offset,
        };
        let (sink, _) = self.receive(sink, req.size).await?;
        self.finish_appender_write(sink, BinlogOp::Modify, &filename, req.offset, req.size)
            .await
    }

    /// Front half of APPEND and MODIFY: the streamed body must be exactly `size` bytes and the
    /// name an appender's. A refusal drains the body first so the connection stays in step.
    async fn streamed_appender(
        &mut self,
        left: u64,
        size: u64,
        raw_name: &str,
        what: &str,
    ) -> Result<(String, std::path::PathBuf), Fail> {
        if size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!("{what} size disagrees with body"),
            ));
        }
        match self.appender(raw_name) {
            Ok(v) => Ok(v),
            Err(Fail::Reply(s, m)) => Err(self.refuse(left, s, m).await),
            Err(f) => Err(f),
        }
    }

    /// Opens an existing file for writing and reads its length (refusing, with the body drained,
    /// when it cannot be opened).
    async fn open_for_write(
        &mut self,
        left: u64,
        path: &std::path::Path,
    ) -> Result<(std::fs::File, u64), Fail> {
        let p = path.to_path_buf();
        let opened = blocking(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&p)?;
            let len = f.metadata()?.len();
            Ok((f, len))
        })
        .await;
        match opened {
            Ok(v) => Ok(v),
            Err(Fail::Reply(s, m)) => Err(self.refuse(left, s, m).await),
            Err(f) => Err(f),
        }
    }

    /// Back half of APPEND and MODIFY: make the bytes durable (when fsync is on), log the change
    /// as `<offset> <length>` and count it.
    async fn finish_appender_write(
        &self,
        sink: At,
        op: BinlogOp,
        filename: &str,
        offset: u64,
        len: u64,
    ) -> Handled {
        let st = self.state.clone();
        if st.store().fsync_enabled() {
            blocking(move || Ok(sink.file.sync_data()?)).await?;
        }
        self.log(op, unix_now(), filename, Some(format!("{offset} {len}")));
        let bytes = if matches!(op, BinlogOp::Append) {
            &st.stats().append_bytes
        } else {
            &st.stats().modify_bytes
        };
        bytes.record_bytes(len, true);
        st.stats().count_file_write();
        Ok(Some(Vec::new()))
    }

    async fn truncate(&mut self, body: &[u8]) -> Handled {
        let req = TruncateReq::decode(body).map_err(einval)?;
        let (filename, path) = self.appender(&req.filename)?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let fsync = st.store().fsync_enabled();
        let new_size = req.new_size;
        let old_size = blocking(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            let len = f.metadata()?.len();
            if new_size > len {
                return Err(StoreError::new(
                    errno::EINVAL,
                    format!("truncate to {new_size} beyond size {len}"),
                ));
            }
            f.set_len(new_size)?;
            if fsync {
                f.sync_data()?;
            }
            Ok(len)
        })
        .await?;
        self.log(
            BinlogOp::Truncate,
            unix_now(),
            &filename,
            Some(format!("{old_size} {new_size}")),
        );
        Ok(Some(Vec::new()))
    }

    async fn delete(&mut self, body: &[u8]) -> Handled {
        let req = FileReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (name, path) = self.locate(&req.filename)?;
        let filename = name.to_path_string();
        let st = self.state.clone();
        let _guard = self.state.store().lock_file(&filename).await;
        let had_meta = blocking(move || st.store().delete(&path)).await?;
        let now = unix_now();
        self.log(BinlogOp::Delete, now, &filename, None);
        if had_meta {
            let meta = format!("{filename}{}", fileid::METADATA_SUFFIX);
            self.log(BinlogOp::Delete, now, &meta, None);
        }
        Ok(Some(Vec::new()))
    }

    async fn set_metadata(&mut self, body: &[u8]) -> Handled {
        let req = SetMetadataReq::decode(body).map_err(einval)?;
        let max = self.state.config().max_metadata_size.0;
        if req.metadata.len() as u64 > max {
            return Err(einval(format!(
                "metadata of {} bytes over {max}",
                req.metadata.len()
            )));
        }
        let pairs = decode_metadata(&req.metadata).map_err(einval)?;
        self.check_group(&req.group)?;
        let (name, path) = self.locate(&req.filename)?;
        let filename = name.to_path_string();
        let st = self.state.clone();
        let _guard = self.state.store().lock_file(&filename).await;
        let op = req.op;
        let change = blocking(move || st.store().set_metadata(&path, op, pairs, max)).await?;
        let meta = format!("{filename}{}", fileid::METADATA_SUFFIX);
        let now = unix_now();
        match change {
            super::store::MetaChange::Created => self.log(BinlogOp::Create, now, &meta, None),
            super::store::MetaChange::Updated => self.log(BinlogOp::Update, now, &meta, None),
            super::store::MetaChange::Removed => self.log(BinlogOp::Delete, now, &meta, None),
            super::store::MetaChange::Unchanged => {}
        }
        Ok(Some(Vec::new()))
    }

    async fn get_metadata(&mut self, body: &[u8]) -> Handled {
        let req = FileReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (_, path) = self.locate(&req.filename)?;
        let st = self.state.clone();
        let raw = blocking(move || st.store().get_metadata(&path)).await?;
        Ok(Some(raw))
    }

    async fn query_file_info(&mut self, body: &[u8], flags: u8) -> Handled {
        let req = FileReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (name, path) = self.locate(&req.filename)?;
        // Appender and slave files changed after their name was made: size and CRC come from
        // the content (the CRC only when the client did not ask to skip it).
        let from_content = name.info.is_appender() || name.is_slave();
        let want_crc = from_content && flags & QUERY_FLAG_NO_CRC32 == 0;
        let (size, crc) = blocking(move || {
            let f = std::fs::File::open(&path)?;
            let size = f.metadata()?.len();
            let crc = if want_crc {
                let mut h = crc32fast::Hasher::new();
                let mut buf = vec![0u8; CHUNK];
                let mut off = 0u64;
                loop {
                    let n = f.read_at(&mut buf, off)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    off += n as u64;
                }
                Some(h.finalize())
            } else {
                None
            };
            Ok((size, crc))
        })
        .await?;
        let resp = FileInfoResp {
            file_size: size,
            create_timestamp: name.info.create_time as u64,
            crc32: crc.unwrap_or(name.info.crc32),
            source_ip: self.state.source_ip(name.info.source),
        };
        Ok(Some(
            resp.encode(self.state.group_params().response_ip_addr_size),
        ))
    }

    async fn download(&mut self, body: &[u8]) -> Handled {
        let req = DownloadReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (_, path) = self.locate(&req.filename)?;
        let file = std::fs::File::open(&path).map_err(StoreError::from)?;
        let size = file.metadata().map_err(StoreError::from)?.len();
        if req.offset > size {
            return Err(einval(format!("offset {} beyond size {size}", req.offset)));
        }
        let avail = size - req.offset;
        let count = if req.count == 0 {
            avail
        } else {
            req.count.min(avail)
        };
        if count <= SMALL_DOWNLOAD {
            let mut out = Vec::with_capacity(HEADER_LEN + count as usize);
            out.extend_from_slice(&Header::new(cmd::RESP, 0, count).encode());
            out.resize(HEADER_LEN + count as usize, 0);
            let mut got = 0;
            while got < count as usize {
                let n = file
                    .read_at(&mut out[HEADER_LEN + got..], req.offset + got as u64)
                    .map_err(StoreError::from)?;
                if n == 0 {
                    return Err(Fail::Reply(errno::EIO, "file shrank while reading".into()));
                }
                got += n;
            }
            timed(self.timeout, self.io.get_mut().write_all(&out)).await?;
        } else {
            let hdr = Header::new(cmd::RESP, 0, count).encode();
            timed(self.timeout, self.io.get_mut().write_all(&hdr)).await?;
            self.sendfile(&file, req.offset, count).await?;
        }
        let stats = self.state.stats();
        stats.download_bytes.record_bytes(count, true);
        stats.file_open.record(true);
        stats.file_read.record(true);
        Ok(None)
    }

    /// Copies `count` bytes of `file` from `offset` into the socket with sendfile(2).
    async fn sendfile(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        count: u64,
    ) -> Result<(), Fail> {
        match send_file(self.io.get_mut(), file, offset, count, self.timeout).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err(Fail::Drop("network timeout during download".into()))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(Fail::Drop("file shrank during download".into()))
            }
            Err(e) => Err(Fail::Drop(format!("sendfile: {e}"))),
        }
    }
}

async fn timed<T>(timeout: Duration, f: impl Future<Output = io::Result<T>>) -> Result<T, Fail> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Fail::Drop(format!("i/o: {e}"))),
        Err(_) => Err(Fail::Drop("network timeout".into())),
    }
}
