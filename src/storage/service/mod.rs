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
//!
//! This file is the connection loop and the dispatch; `connection` reads bodies and streams
//! content; one file per command family handles it: `upload` (UPLOAD_*, slave), `download`,
//! `delete`, `metadata`, `appender` (APPEND, MODIFY, TRUNCATE), `query` (QUERY_FILE_INFO) and
//! `sync_recv` (the SYNC_* commands of group peers).

mod appender;
mod connection;
mod delete;
mod download;
mod metadata;
mod query;
mod rename;
mod sync_recv;
mod upload;

use super::binlog::{BinlogOp, BinlogRecord};
use super::state::StorageState;
use super::store::StoreError;
use crate::proto::cmd::{self, errno};
use crate::proto::connection::{read_header, ConnError};
use crate::proto::fileid::RemoteName;
use crate::proto::storage::ReportServerIdReq;
use crate::proto::sync::{SYNC_STATUS_QUERY, SYNC_WATERMARK};
use crate::proto::Header;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Socket read buffer: a header plus a small request (or a 4 KiB upload) arrives in one read.
/// Larger reads bypass it, so it stays small for idle connections (1024 of them = 64 MiB).
const READ_BUF: usize = 64 * 1024;
/// How long a replication command waits for the group's first list from a tracker.
const LIST_WAIT: Duration = Duration::from_secs(5);
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

/// The commands that change this group's files on behalf of a peer, and SYNC_WATERMARK
/// (which makes this storage report a peer's files as held).
fn is_replication(c: u8) -> bool {
    matches!(
        c,
        cmd::SYNC_CREATE_FILE
            | cmd::SYNC_UPDATE_FILE
            | cmd::SYNC_DELETE_FILE
            | cmd::SYNC_APPEND_FILE
            | cmd::SYNC_MODIFY_FILE
            | cmd::SYNC_TRUNCATE_FILE
            | cmd::SYNC_RENAME_FILE
            | SYNC_WATERMARK
    )
}

/// Result of a handler: `Some(body)` = answer 0 with this body; `None` = already answered.
type Handled = Result<Option<Vec<u8>>, Fail>;

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
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let cfg = state.config();
    let mut conn = Conn {
        io: BufReader::with_capacity(READ_BUF, stream),
        timeout: cfg.network_timeout.get(),
        max_body: cfg.max_body.0,
        peer,
        peer_ip: peer_addr.map(|a| a.ip()),
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
    peer_ip: Option<std::net::IpAddr>,
    /// Set by REPORT_SERVER_ID when the peer is another storage pushing sync records.
    peer_storage_id: Option<String>,
}

impl Conn {
    /// One line in the protocol access log for a client's request, as FastDFS's
    /// `use_access_log` (peers' sync traffic and ACTIVE_TEST are not clients' requests).
    fn log_access(&self, h: &Header, status: u8, secs: f64) {
        let Some(log) = self.state.protocol_log() else {
            return;
        };
        if self.peer_storage_id.is_some() || h.cmd == cmd::ACTIVE_TEST {
            return;
        }
        let ip = self
            .peer
            .rsplit_once(':')
            .map_or(self.peer.as_str(), |(ip, _)| ip);
        log.write(&crate::access_log::format_protocol(
            ip,
            std::time::SystemTime::now(),
            cmd::name(h.cmd),
            status,
            h.pkg_len,
            secs,
            None,
        ));
    }

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
                    crate::limited!(self.state.logs(), warn, "bad_header", peer = %self.peer, error = %e, "bad request header");
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
            let started = std::time::Instant::now();
            let outcome = self.dispatch(h).await;
            let status = match &outcome {
                Ok(_) => 0,
                Err(Fail::Reply(s, _) | Fail::ReplyClose(s, _)) => *s,
                Err(Fail::Drop(_)) => errno::EIO,
            };
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
                    crate::limited!(self.state.logs(), info, "closing", peer = %self.peer, cmd = h.cmd, reason = %msg, "closing connection");
                    false
                }
            };
            self.state.requests().observe(
                cmd::name(h.cmd),
                errno::name(status).into(),
                0,
                started.elapsed().as_secs_f64(),
            );
            self.log_access(&h, status, started.elapsed().as_secs_f64());
            if !keep {
                return;
            }
        }
    }

    /// Whether the connected host is a storage the trackers list in this group; before the
    /// first list came, waits for it up to [`LIST_WAIT`] (a peer's first replication command
    /// can come before our first BEAT answer did).
    async fn is_group_peer(&self, st: &StorageState) -> bool {
        match self.peer_ip {
            Some(ip) => st.wait_group_peer(ip, LIST_WAIT).await,
            None => false,
        }
    }

    async fn dispatch(&mut self, h: Header) -> Handled {
        let st = self.state.clone();
        let stats = st.stats();
        if is_replication(h.cmd) && !self.is_group_peer(&st).await {
            // Independent of allow_hosts: changes to this group's files come only from
            // storages the trackers list in it (a stranger could replace or grow any file).
            st.refused_sync_peers.fetch_add(1, Ordering::Relaxed);
            crate::limited!(st.logs(), warn, "sync_stranger", peer = %self.peer, cmd = h.cmd,
                "replication command from a host that is not a storage of this group; refused");
            return Err(self
                .refuse(h.pkg_len, errno::EACCES, "not a storage of this group")
                .await);
        }
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
            cmd::REGENERATE_APPENDER_FILENAME => {
                let body = self.small_body(&h).await?;
                self.regenerate_appender(&body).await
            }
            cmd::SYNC_RENAME_FILE => {
                let body = self.small_body(&h).await?;
                self.sync_rename(&body).await
            }
            SYNC_WATERMARK => {
                let body = self.small_body(&h).await?;
                self.sync_watermark(&body).await
            }
            SYNC_STATUS_QUERY => {
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

    /// Parses a remote filename and maps it to its data path.
    fn locate(&self, filename: &str) -> Result<(RemoteName, std::path::PathBuf), Fail> {
        let name = RemoteName::parse_str(filename).map_err(einval)?;
        let path = self.state.store().data_path(&name)?;
        Ok((name, path))
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
}
