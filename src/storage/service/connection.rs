//! Reading requests and writing answers on a connection: small bodies, streamed heads,
//! content received into a sink while the previous chunk is written, refusals that keep the
//! connection in step.

use super::{Conn, Fail, CHUNK};
use crate::proto::cmd::{self, errno};
use crate::proto::connection::{read_exact_idle, skip_refused, write_response};
use crate::proto::storage::{MAX_FILENAME_LEN, QUERY_FLAG_SILENT};
use crate::proto::Header;
use crate::storage::store::{AlignedBuf, StoreError, TempFile, WriteAt};
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where streamed content goes.
pub(super) trait Sink: Send + 'static {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()>;
}

impl Sink for TempFile {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all(buf)
    }
}

/// A chunk being written by a blocking task; hands back the sink and the buffer for reuse.
pub(super) type ChunkWrite<S> = tokio::task::JoinHandle<(S, AlignedBuf, io::Result<()>)>;

impl Sink for WriteAt {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        WriteAt::write_chunk(self, buf)
    }
}

impl Conn {
    /// Closes after an answer while the client may still be sending a body we will not read:
    /// send FIN, then swallow input for a moment, so the kernel does not answer the unread
    /// bytes with a reset that would destroy our answer before the client reads it.
    pub(super) async fn linger_close(&mut self) {
        let _ = self.io.get_mut().shutdown().await;
        let mut rest = (&mut self.io).take(64 << 20);
        let mut sink = tokio::io::sink();
        let wait = self.timeout.min(Duration::from_secs(2));
        let _ = tokio::time::timeout(wait, tokio::io::copy(&mut rest, &mut sink)).await;
    }

    pub(super) fn count_bad(&self) {
        self.state
            .stats()
            .bad_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn log_fail(&self, h: &Header, status: u8, msg: &str) {
        if status == errno::EINVAL {
            self.count_bad();
        }
        let silent = h.cmd == cmd::QUERY_FILE_INFO && h.status & QUERY_FLAG_SILENT != 0;
        if !silent {
            crate::limited!(self.state.logs(), info, "request_refused", peer = %self.peer,
                cmd = h.cmd, status, reason = %msg, "request refused");
        }
    }

    pub(super) async fn reply(&mut self, status: u8, body: &[u8]) -> Result<(), Fail> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, write_response(self.io.get_mut(), status, body)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Fail::Drop(e.to_string())),
            Err(_) => Err(Fail::Drop("network timeout".into())),
        }
    }

    pub(super) async fn read_vec(&mut self, n: usize) -> Result<Vec<u8>, Fail> {
        let mut buf = vec![0u8; n];
        self.read_idle(&mut buf).await?;
        Ok(buf)
    }

    /// Fills `buf`, `network_timeout` bounding each wait for more bytes (inactivity), never the
    /// whole read ([`read_exact_idle`]).
    pub(super) async fn read_idle(&mut self, buf: &mut [u8]) -> Result<(), Fail> {
        read_exact_idle(&mut self.io, buf, self.timeout)
            .await
            .map_err(body_failed)
    }

    /// Reads a whole small body, refusing one over `max_body`.
    pub(super) async fn small_body(&mut self, h: &Header) -> Result<Vec<u8>, Fail> {
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
    pub(super) async fn refuse(&mut self, left: u64, status: u8, msg: impl Into<String>) -> Fail {
        let msg = msg.into();
        if left > self.max_body {
            return Fail::ReplyClose(status, msg);
        }
        self.skip(left, status, msg).await
    }

    /// Skips `left` unread body bytes whatever their size, then answers `status`. For sync
    /// peers, whose refusals (EEXIST, ENOENT) are part of the normal flow and whose connection
    /// should survive them.
    pub(super) async fn skip(&mut self, left: u64, status: u8, msg: String) -> Fail {
        match skip_refused(&mut self.io, left, self.timeout).await {
            Ok(()) => Fail::Reply(status, msg),
            Err(e) => body_failed(e),
        }
    }

    /// Receives `size` content bytes into `sink`, overlapping socket reads and disk writes.
    /// Returns the sink and the CRC-32 of the content.
    pub(super) async fn receive<S: Sink>(&mut self, sink: S, size: u64) -> Result<(S, u32), Fail> {
        self.receive_in(sink, size, CHUNK).await
    }

    /// As `receive`, in chunks of `chunk` bytes (a multiple of the O_DIRECT alignment).
    pub(super) async fn receive_in<S: Sink>(
        &mut self,
        mut sink: S,
        size: u64,
        chunk: usize,
    ) -> Result<(S, u32), Fail> {
        let mut hasher = crc32fast::Hasher::new();
        let mut left = size;
        // Aligned so that a large upload's chunks can go to an O_DIRECT temp file untouched.
        let mut spare = AlignedBuf::default();
        let mut pending: Option<ChunkWrite<S>> = None;
        let mut idle = Some(sink);
        while left > 0 {
            let n = (left as usize).min(chunk);
            let mut buf = std::mem::take(&mut spare);
            buf.resize(n);
            // Inactivity, not a deadline per chunk: a steady slow client finishes.
            if let Err(fail) = self.read_idle(&mut buf).await {
                // Let the in-flight write finish so the sink (temp file) is dropped, not leaked.
                if let Some(p) = pending.take() {
                    let _ = p.await;
                }
                return Err(fail);
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

    /// Reads the fixed part and the file name of a streamed command.
    /// Returns (head bytes, body bytes still unread).
    pub(super) async fn streamed_head(
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
}

/// Why a body read or skip ended the connection.
fn body_failed(e: io::Error) -> Fail {
    Fail::Drop(match e.kind() {
        io::ErrorKind::UnexpectedEof => "peer closed mid-body".into(),
        io::ErrorKind::TimedOut => "network timeout".into(),
        _ => format!("i/o: {e}"),
    })
}

pub(super) async fn timed<T>(
    timeout: Duration,
    f: impl Future<Output = io::Result<T>>,
) -> Result<T, Fail> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Fail::Drop(format!("i/o: {e}"))),
        Err(_) => Err(Fail::Drop("network timeout".into())),
    }
}
