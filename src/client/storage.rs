//! Client side of the storage protocol: one [`StorageConn`] per TCP connection, reused for any
//! number of requests (FastDFS connections are sequential: one request in flight).
//!
//! Used by the CLI, the gateway, tests and benchmarks. Every call is bounded by the connection's
//! timeout. A non-zero response status comes back as `ConnError::Proto(ProtoError::Status(errno))`
//! (see [`ConnError::status`]); after an I/O or protocol error the connection should be dropped.

use crate::proto::cmd;
use crate::proto::connection::{read_body, read_header, send_file, ConnError};
use crate::proto::storage::{
    decode_metadata, encode_metadata, AppendReq, DownloadReq, FileInfoResp, FileReq, MetaOp,
    MetaPair, ModifyReq, ReportServerIdReq, SyncDeleteReq, SyncFileReq, SyncRangeReq,
    SyncTruncateReq, TruncateReq, UploadReq, UploadResp, UploadSlaveReq,
};
use crate::proto::sync::{SyncReport, WatermarkReq, SYNC_STATUS_QUERY, SYNC_WATERMARK};
use crate::proto::{Header, ProtoError};
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, ToSocketAddrs};

/// Largest non-download response accepted (metadata lists, names).
const MAX_SMALL_RESPONSE: u64 = 16 << 20;
/// Most memory reserved up front for a download into memory (the rest as it arrives).
const MAX_PREALLOC: u64 = 64 << 20;
/// Copy buffer for streamed uploads and downloads.
const COPY_BUF: usize = 256 * 1024;

pub use crate::proto::storage::UploadResp as StoredFile;

/// Content handed over chunk by chunk, each chunk borrowed until the next is asked for.
pub trait ChunkSource {
    /// The next chunk, or None at the end.
    fn next_chunk(&mut self) -> impl Future<Output = io::Result<Option<&[u8]>>> + Send;
}

/// A connection to one storage server.
pub struct StorageConn {
    io: BufReader<TcpStream>,
    timeout: Duration,
}

impl StorageConn {
    /// Connects with a 30 s timeout per operation.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, ConnError> {
        Self::connect_timeout(addr, Duration::from_secs(30)).await
    }

    pub async fn connect_timeout(
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> Result<Self, ConnError> {
        let stream = timed(timeout, TcpStream::connect(addr)).await?;
        stream.set_nodelay(true)?;
        Ok(Self::from_stream(stream, timeout))
    }

    /// Connects from `local` (port chosen by the kernel) when given; an address this host
    /// cannot bind falls back to the kernel's choice, logged.
    pub async fn connect_from(
        addr: &str,
        local: Option<std::net::IpAddr>,
        timeout: Duration,
    ) -> Result<Self, ConnError> {
        let (Some(local), Ok(remote)) = (local, addr.parse::<std::net::SocketAddr>()) else {
            return Self::connect_timeout(addr, timeout).await;
        };
        if local.is_ipv4() != remote.is_ipv4() {
            return Self::connect_timeout(addr, timeout).await;
        }
        let socket = if remote.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Err(e) = socket.bind(std::net::SocketAddr::new(local, 0)) {
            tracing::warn!(%local, error = %e, "cannot bind the storage's address for an outgoing connection; using the default");
            return Self::connect_timeout(addr, timeout).await;
        }
        let stream = timed(timeout, socket.connect(remote)).await?;
        stream.set_nodelay(true)?;
        Ok(Self::from_stream(stream, timeout))
    }

    pub fn from_stream(stream: TcpStream, timeout: Duration) -> Self {
        StorageConn {
            io: BufReader::with_capacity(COPY_BUF, stream),
            timeout,
        }
    }

    /// The raw socket (tests use it to send malformed bytes).
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        self.io.get_mut()
    }

    /// Writes a header announcing `body_len` bytes of body, then the body's first part `head`
    /// (a streamed rest follows separately).
    async fn send(
        &mut self,
        cmd: u8,
        status: u8,
        body_len: u64,
        head: &[u8],
    ) -> Result<(), ConnError> {
        self.send_parts(Header::new(cmd, status, body_len), head, &[])
            .await
    }

    /// Sends a message whose whole body is `head` then `data`.
    async fn send_with_data(&mut self, cmd: u8, head: &[u8], data: &[u8]) -> Result<(), ConnError> {
        let header = Header::new(cmd, 0, (head.len() + data.len()) as u64);
        self.send_parts(header, head, data).await
    }

    /// Header, head and data in vectored writes: never copied into one buffer first (a 256 MiB
    /// upload would be copied twice), and a small message still leaves in one segment.
    async fn send_parts(
        &mut self,
        header: Header,
        head: &[u8],
        data: &[u8],
    ) -> Result<(), ConnError> {
        let header = header.encode();
        let sock = self.io.get_mut();
        let mut parts: [&[u8]; 3] = [&header, head, data];
        timed(self.timeout, async move {
            loop {
                let first = parts.iter().position(|p| !p.is_empty());
                let Some(first) = first else { return Ok(()) };
                let slices = parts.map(io::IoSlice::new);
                let mut n = sock.write_vectored(&slices[first..]).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                for part in parts.iter_mut() {
                    let taken = n.min(part.len());
                    *part = &part[taken..];
                    n -= taken;
                }
            }
        })
        .await
    }

    async fn send_reader<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        size: u64,
    ) -> Result<(), ConnError> {
        let mut buf = vec![0u8; COPY_BUF.min(size.max(1) as usize)];
        let mut left = size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            timed(self.timeout, reader.read_exact(&mut buf[..n])).await?;
            timed(self.timeout, self.io.get_mut().write_all(&buf[..n])).await?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Reads a response header; a non-zero status becomes an error (its empty body consumed).
    async fn response_header(&mut self) -> Result<Header, ConnError> {
        let h = timed_conn(self.timeout, read_header(&mut self.io)).await?;
        if h.cmd != cmd::RESP {
            return Err(ProtoError::UnexpectedCommand(h.cmd).into());
        }
        if h.status != 0 {
            if h.pkg_len > 0 {
                let _ = timed_conn(
                    self.timeout,
                    read_body(&mut self.io, h.pkg_len, MAX_SMALL_RESPONSE),
                )
                .await;
            }
            return Err(ProtoError::Status(h.status).into());
        }
        Ok(h)
    }

    async fn response(&mut self) -> Result<Vec<u8>, ConnError> {
        let h = self.response_header().await?;
        timed_conn(
            self.timeout,
            read_body(&mut self.io, h.pkg_len, MAX_SMALL_RESPONSE),
        )
        .await
    }

    async fn empty_response(&mut self) -> Result<(), ConnError> {
        let body = self.response().await?;
        if !body.is_empty() {
            return Err(ProtoError::BadLength {
                have: body.len(),
                expected: "0".into(),
            }
            .into());
        }
        Ok(())
    }

    /// Sends `command` with the body `head` + `data` and expects an empty reply (status only).
    async fn call_empty(&mut self, command: u8, head: &[u8], data: &[u8]) -> Result<(), ConnError> {
        self.send_with_data(command, head, data).await?;
        self.empty_response().await
    }

    async fn upload_cmd(
        &mut self,
        command: u8,
        store_path_index: u8,
        data: &[u8],
        ext: &str,
    ) -> Result<StoredFile, ConnError> {
        let head = UploadReq {
            store_path_index,
            file_size: data.len() as u64,
            ext: ext.to_string(),
        }
        .encode();
        self.send_with_data(command, &head, data).await?;
        Ok(UploadResp::decode(&self.response().await?)?)
    }

    async fn upload_cmd_reader<R: AsyncRead + Unpin>(
        &mut self,
        command: u8,
        store_path_index: u8,
        reader: &mut R,
        size: u64,
        ext: &str,
    ) -> Result<StoredFile, ConnError> {
        let head = UploadReq {
            store_path_index,
            file_size: size,
            ext: ext.to_string(),
        }
        .encode();
        self.send(command, 0, head.len() as u64 + size, &head)
            .await?;
        self.send_reader(reader, size).await?;
        Ok(UploadResp::decode(&self.response().await?)?)
    }

    /// UPLOAD_FILE from a buffer. `store_path_index` as given by the tracker (255 = storage picks).
    pub async fn upload(
        &mut self,
        store_path_index: u8,
        data: &[u8],
        ext: &str,
    ) -> Result<StoredFile, ConnError> {
        self.upload_cmd(cmd::UPLOAD_FILE, store_path_index, data, ext)
            .await
    }

    /// UPLOAD_FILE streamed from a reader of exactly `size` bytes (e.g. a `tokio::fs::File`).
    pub async fn upload_from<R: AsyncRead + Unpin>(
        &mut self,
        store_path_index: u8,
        reader: &mut R,
        size: u64,
        ext: &str,
    ) -> Result<StoredFile, ConnError> {
        self.upload_cmd_reader(cmd::UPLOAD_FILE, store_path_index, reader, size, ext)
            .await
    }

    /// UPLOAD_APPENDER_FILE from a buffer.
    pub async fn upload_appender(
        &mut self,
        store_path_index: u8,
        data: &[u8],
        ext: &str,
    ) -> Result<StoredFile, ConnError> {
        self.upload_cmd(cmd::UPLOAD_APPENDER_FILE, store_path_index, data, ext)
            .await
    }

    /// UPLOAD_APPENDER_FILE streamed from a reader.
    pub async fn upload_appender_from<R: AsyncRead + Unpin>(
        &mut self,
        store_path_index: u8,
        reader: &mut R,
        size: u64,
        ext: &str,
    ) -> Result<StoredFile, ConnError> {
        self.upload_cmd_reader(
            cmd::UPLOAD_APPENDER_FILE,
            store_path_index,
            reader,
            size,
            ext,
        )
        .await
    }

    /// UPLOAD_SLAVE_FILE: `master` is the master's remote filename (`M00/...`, no group).
    pub async fn upload_slave(
        &mut self,
        master: &str,
        prefix: &str,
        ext: &str,
        data: &[u8],
    ) -> Result<StoredFile, ConnError> {
        let head = UploadSlaveReq {
            file_size: data.len() as u64,
            prefix: prefix.to_string(),
            ext: ext.to_string(),
            master_filename: master.to_string(),
        }
        .encode();
        self.send_with_data(cmd::UPLOAD_SLAVE_FILE, &head, data)
            .await?;
        Ok(UploadResp::decode(&self.response().await?)?)
    }

    /// APPEND_FILE to an appender file (remote filename, no group).
    pub async fn append(&mut self, filename: &str, data: &[u8]) -> Result<(), ConnError> {
        let head = AppendReq {
            filename: filename.to_string(),
            size: data.len() as u64,
        }
        .encode();
        self.call_empty(cmd::APPEND_FILE, &head, data).await
    }

    /// APPEND_FILE streamed from a reader.
    pub async fn append_from<R: AsyncRead + Unpin>(
        &mut self,
        filename: &str,
        reader: &mut R,
        size: u64,
    ) -> Result<(), ConnError> {
        let head = AppendReq {
            filename: filename.to_string(),
            size,
        }
        .encode();
        self.send(cmd::APPEND_FILE, 0, head.len() as u64 + size, &head)
            .await?;
        self.send_reader(reader, size).await?;
        self.empty_response().await
    }

    /// MODIFY_FILE: overwrite bytes of an appender file from `offset`.
    pub async fn modify(
        &mut self,
        filename: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ConnError> {
        let head = ModifyReq {
            filename: filename.to_string(),
            offset,
            size: data.len() as u64,
        }
        .encode();
        self.call_empty(cmd::MODIFY_FILE, &head, data).await
    }

    /// TRUNCATE_FILE: cut an appender file to `new_size`.
    pub async fn truncate(&mut self, filename: &str, new_size: u64) -> Result<(), ConnError> {
        let msg = TruncateReq {
            filename: filename.to_string(),
            new_size,
        }
        .encode();
        self.call_empty(cmd::TRUNCATE_FILE, &msg, &[]).await
    }

    /// DOWNLOAD_FILE into memory: `count` 0 = to the end.
    pub async fn download(
        &mut self,
        group: &str,
        filename: &str,
        offset: u64,
        count: u64,
    ) -> Result<Vec<u8>, ConnError> {
        let len = self
            .request_download(group, filename, offset, count)
            .await?;
        // Sized from the response header and filled straight from the socket: no copy buffer,
        // no regrowth copies, no zeroing. The up-front size is capped because it is the
        // server's claim; past the cap the Vec grows as bytes really arrive.
        let mut out = Vec::with_capacity(len.min(MAX_PREALLOC) as usize);
        let mut body = (&mut self.io).take(len);
        while (out.len() as u64) < len {
            if out.len() == out.capacity() {
                out.reserve((len - out.len() as u64).min(MAX_PREALLOC) as usize);
            }
            if timed(self.timeout, body.read_buf(&mut out)).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
        Ok(out)
    }

    /// Sends DOWNLOAD_FILE and reads the response header; returns the body length.
    async fn request_download(
        &mut self,
        group: &str,
        filename: &str,
        offset: u64,
        count: u64,
    ) -> Result<u64, ConnError> {
        let msg = DownloadReq {
            offset,
            count,
            group: group.to_string(),
            filename: filename.to_string(),
        }
        .encode();
        self.send(cmd::DOWNLOAD_FILE, 0, msg.len() as u64, &msg)
            .await?;
        Ok(self.response_header().await?.pkg_len)
    }

    /// DOWNLOAD_FILE streamed into a writer; returns the byte count.
    pub async fn download_to<W: AsyncWrite + Unpin>(
        &mut self,
        group: &str,
        filename: &str,
        offset: u64,
        count: u64,
        writer: &mut W,
    ) -> Result<u64, ConnError> {
        let total = self
            .request_download(group, filename, offset, count)
            .await?;
        let mut left = total;
        let mut buf = vec![0u8; COPY_BUF.min(left.max(1) as usize)];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            timed(self.timeout, self.io.read_exact(&mut buf[..n])).await?;
            timed(self.timeout, writer.write_all(&buf[..n])).await?;
            left -= n as u64;
        }
        timed(self.timeout, writer.flush()).await?;
        Ok(total)
    }

    /// DELETE_FILE.
    pub async fn delete(&mut self, group: &str, filename: &str) -> Result<(), ConnError> {
        let msg = FileReq {
            group: group.to_string(),
            filename: filename.to_string(),
        }
        .encode();
        self.call_empty(cmd::DELETE_FILE, &msg, &[]).await
    }

    /// SET_METADATA with `O` (overwrite) or `M` (merge).
    pub async fn set_metadata(
        &mut self,
        group: &str,
        filename: &str,
        pairs: &[MetaPair],
        op: MetaOp,
    ) -> Result<(), ConnError> {
        let msg = crate::proto::storage::SetMetadataReq {
            op,
            group: group.to_string(),
            filename: filename.to_string(),
            metadata: encode_metadata(pairs),
        }
        .encode();
        self.call_empty(cmd::SET_METADATA, &msg, &[]).await
    }

    /// GET_METADATA: the pairs, sorted by name as the storage keeps them.
    pub async fn get_metadata(
        &mut self,
        group: &str,
        filename: &str,
    ) -> Result<Vec<MetaPair>, ConnError> {
        let msg = FileReq {
            group: group.to_string(),
            filename: filename.to_string(),
        }
        .encode();
        self.send(cmd::GET_METADATA, 0, msg.len() as u64, &msg)
            .await?;
        let body = self.response().await?;
        decode_metadata(&body).map_err(|e| {
            ProtoError::InvalidField {
                field: "metadata",
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// QUERY_FILE_INFO; `flags` go in the header status (1 = skip CRC32, 2 = silent).
    pub async fn query_file_info(
        &mut self,
        group: &str,
        filename: &str,
        flags: u8,
    ) -> Result<FileInfoResp, ConnError> {
        let msg = FileReq {
            group: group.to_string(),
            filename: filename.to_string(),
        }
        .encode();
        self.send(cmd::QUERY_FILE_INFO, flags, msg.len() as u64, &msg)
            .await?;
        Ok(FileInfoResp::decode(&self.response().await?)?)
    }

    // --- storage -> storage sync (the sender side; see storage/sync.rs) ------------------------

    /// REPORT_SERVER_ID: names the sending storage on a sync connection (first message).
    pub async fn report_server_id(&mut self, storage_id: &str) -> Result<(), ConnError> {
        let body = ReportServerIdReq {
            storage_id: storage_id.to_string(),
        }
        .encode();
        self.call_empty(cmd::REPORT_SERVER_ID, &body, &[]).await
    }

    /// SYNC_CREATE_FILE (or SYNC_UPDATE_FILE when `update`): the whole of `file`, sent with
    /// sendfile(2) so the content never passes through our memory.
    pub async fn sync_file_send(
        &mut self,
        update: bool,
        req: &SyncFileReq,
        file: &std::fs::File,
    ) -> Result<(), ConnError> {
        self.sync_file_head(update, req).await?;
        send_file(self.io.get_mut(), file, 0, req.file_size, self.timeout).await?;
        self.empty_response().await
    }

    /// SYNC_CREATE_FILE (or SYNC_UPDATE_FILE when `update`) of `req.file_size` bytes taken
    /// from `body` chunk by chunk (the sync sender's O_DIRECT reads of a large file). A body
    /// that ends early or runs long is an error, and the connection must then be dropped.
    pub async fn sync_file_send_chunks(
        &mut self,
        update: bool,
        req: &SyncFileReq,
        body: &mut impl ChunkSource,
    ) -> Result<(), ConnError> {
        self.sync_file_head(update, req).await?;
        let mut sent = 0u64;
        while let Some(chunk) = body.next_chunk().await? {
            sent += chunk.len() as u64;
            if sent > req.file_size {
                return Err(io::Error::other("file content longer than announced").into());
            }
            timed(self.timeout, self.io.get_mut().write_all(chunk)).await?;
        }
        if sent < req.file_size {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        self.empty_response().await
    }

    /// The header and fixed part of a SYNC_CREATE_FILE / SYNC_UPDATE_FILE; the file's
    /// `req.file_size` bytes must follow.
    async fn sync_file_head(&mut self, update: bool, req: &SyncFileReq) -> Result<(), ConnError> {
        let head = req.encode();
        let command = if update {
            cmd::SYNC_UPDATE_FILE
        } else {
            cmd::SYNC_CREATE_FILE
        };
        self.send(command, 0, head.len() as u64 + req.file_size, &head)
            .await
    }

    /// SYNC_DELETE_FILE.
    pub async fn sync_delete(&mut self, req: &SyncDeleteReq) -> Result<(), ConnError> {
        let body = req.encode();
        self.call_empty(cmd::SYNC_DELETE_FILE, &body, &[]).await
    }

    /// SYNC_APPEND_FILE (or SYNC_MODIFY_FILE when `modify`): `req.length` bytes from `data`.
    pub async fn sync_range(
        &mut self,
        modify: bool,
        req: &SyncRangeReq,
        data: &[u8],
    ) -> Result<(), ConnError> {
        let command = if modify {
            cmd::SYNC_MODIFY_FILE
        } else {
            cmd::SYNC_APPEND_FILE
        };
        self.call_empty(command, &req.encode(), data).await
    }

    /// SYNC_TRUNCATE_FILE.
    pub async fn sync_truncate(&mut self, req: &SyncTruncateReq) -> Result<(), ConnError> {
        let body = req.encode();
        self.call_empty(cmd::SYNC_TRUNCATE_FILE, &body, &[]).await
    }

    /// SYNC_RENAME_FILE. Any body with status 0 is success: a C 6.16.1 receiver echoes the
    /// request body (storage-sync.txt #272).
    pub async fn sync_rename(
        &mut self,
        req: &crate::proto::rename::SyncRenameReq,
    ) -> Result<(), ConnError> {
        self.send_with_data(cmd::SYNC_RENAME_FILE, &req.encode(), &[])
            .await?;
        self.response().await.map(|_| ())
    }

    /// REGENERATE_APPENDER_FILENAME: the appender becomes a normal file; returns its new ID
    /// (`group/M00/...`).
    pub async fn regenerate_appender(&mut self, filename: &str) -> Result<String, ConnError> {
        self.send_with_data(cmd::REGENERATE_APPENDER_FILENAME, filename.as_bytes(), &[])
            .await?;
        let body = self.response().await?;
        let group = crate::proto::fields::fixed_str(&body[..body.len().min(16)]);
        let name = body.get(16..).unwrap_or_default();
        Ok(format!(
            "{}/{}",
            String::from_utf8_lossy(group),
            String::from_utf8_lossy(name)
        ))
    }

    /// SYNC_STATUS_QUERY (fdfs-ha extension): the storage's replication state and lag.
    pub async fn sync_status(&mut self) -> Result<SyncReport, ConnError> {
        self.send(SYNC_STATUS_QUERY, 0, 0, &[]).await?;
        let body = self.response().await?;
        serde_json::from_slice(&body).map_err(|e| {
            ConnError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad sync status: {e}"),
            ))
        })
    }

    /// SYNC_WATERMARK (fdfs-ha): the peer holds every file we created before `unix_second`.
    pub async fn sync_watermark(&mut self, unix_second: u32) -> Result<(), ConnError> {
        let body = WatermarkReq { unix_second }.encode();
        self.call_empty(SYNC_WATERMARK, &body, &[]).await
    }

    /// ACTIVE_TEST.
    pub async fn active_test(&mut self) -> Result<(), ConnError> {
        self.call_empty(cmd::ACTIVE_TEST, &[], &[]).await
    }

    /// QUIT: tells the storage this connection is done (no response).
    pub async fn quit(mut self) -> Result<(), ConnError> {
        self.send(cmd::QUIT, 0, 0, &[]).await
    }
}

async fn timed<T>(
    timeout: Duration,
    f: impl Future<Output = io::Result<T>>,
) -> Result<T, ConnError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, "storage did not answer in time").into())
        }
    }
}

async fn timed_conn<T>(
    timeout: Duration,
    f: impl Future<Output = Result<T, ConnError>>,
) -> Result<T, ConnError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r,
        Err(_) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, "storage did not answer in time").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake storage that answers the first request with `header_len` in its header, then
    /// `body` bytes, then closes.
    async fn fake_storage(header_len: u64, body: Vec<u8>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 512];
            let _ = s.read(&mut req).await;
            let mut out = Header::new(cmd::RESP, 0, header_len).encode().to_vec();
            out.extend_from_slice(&body);
            let _ = s.write_all(&out).await;
        });
        addr
    }

    #[tokio::test]
    async fn download_reads_exactly_the_announced_body() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let addr = fake_storage(body.len() as u64, body.clone()).await;
        let mut c = StorageConn::connect(addr).await.unwrap();
        let got = c.download("group1", "M00/00/00/x.jpg", 0, 0).await.unwrap();
        assert_eq!(got, body);
    }

    #[tokio::test]
    async fn a_storage_announcing_more_than_it_sends_is_an_error_not_a_huge_allocation() {
        // 1 EiB announced, 100 bytes sent: the client reserves at most MAX_PREALLOC and fails
        // with end-of-file when the peer closes.
        let addr = fake_storage(1 << 60, vec![7u8; 100]).await;
        let mut c = StorageConn::connect(addr).await.unwrap();
        let err = c
            .download("group1", "M00/00/00/x.jpg", 0, 0)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ConnError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{err}"
        );
    }
}
