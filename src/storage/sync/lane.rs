//! One connection of a peer's sender: sends its share of a batch's records in order, reading
//! each file's content at send time (O_DIRECT, one chunk ahead, for large files).

use super::plan::Plan;
use super::sender::SendError;
use crate::client::storage::{ChunkSource, StorageConn};
use crate::proto::cmd::errno;
use crate::proto::connection::ConnError;
use crate::proto::fileid::{RemoteName, METADATA_SUFFIX};
use crate::proto::rename::SyncRenameReq;
use crate::proto::storage::{SyncDeleteReq, SyncFileReq, SyncRangeReq, SyncTruncateReq};
use crate::storage::binlog::BinlogRecord;
use crate::storage::state::StorageState;
use crate::storage::store::{AlignedBuf, FileToSend, Store};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One connection of a peer's sender, working through the records of its share of files.
pub(super) struct Lane {
    pub(super) state: Arc<StorageState>,
    /// The peer's mark name (for logs).
    pub(super) peer: String,
    pub(super) conn: StorageConn,
}

/// What a lane sent of one batch.
#[derive(Debug, Default)]
pub(super) struct LaneDone {
    pub(super) records: u64,
    pub(super) bytes: u64,
    pub(super) newest: i64,
}

/// Which of `lanes` carries a file's records (a `-m` sidecar goes with its file).
pub fn lane_of(filename: &str, lanes: usize) -> usize {
    let base = filename.strip_suffix(METADATA_SUFFIX).unwrap_or(filename);
    (crc32fast::hash(base.as_bytes()) as usize) % lanes.max(1)
}

impl Lane {
    /// Sends `jobs` in order; stops at the first failure.
    pub(super) async fn run(
        &mut self,
        jobs: Vec<(BinlogRecord, Plan)>,
    ) -> Result<LaneDone, SendError> {
        let mut done = LaneDone::default();
        for (rec, p) in jobs {
            done.bytes += self.send(&rec, &p).await?;
            done.records += 1;
            done.newest = done.newest.max(rec.timestamp);
        }
        Ok(done)
    }

    /// Sends one record; returns the content bytes sent.
    pub(super) async fn send(&mut self, rec: &BinlogRecord, p: &Plan) -> Result<u64, SendError> {
        let group = self.state.group().to_string();
        let ts = rec.timestamp.clamp(0, u32::MAX as i64) as u32;
        let name = rec.filename.clone();
        let refused = |op, status| SendError::Refused {
            op,
            file: name.clone(),
            status,
        };
        match *p {
            Plan::Skip(_) => Ok(0),
            Plan::Create | Plan::Update => {
                let update = *p == Plan::Update;
                match self.send_whole(&name, ts, &group, update).await {
                    Err(SendError::Conn(e)) if !update && e.status() == Some(errno::EEXIST) => {
                        Ok(0)
                    }
                    r => r,
                }
            }
            Plan::Delete => {
                let req = SyncDeleteReq {
                    timestamp: ts,
                    group,
                    filename: name.clone(),
                };
                match self.conn.sync_delete(&req).await {
                    Ok(()) => Ok(0),
                    Err(e) if e.status() == Some(errno::ENOENT) => Ok(0),
                    Err(e) => Err(status_or_conn(e, |s| refused("delete", s))),
                }
            }
            Plan::Append { offset, length } | Plan::Modify { offset, length } => {
                let modify = matches!(p, Plan::Modify { .. });
                let Some(path) = self.local_path(&name) else {
                    return Ok(0);
                };
                let data = tokio::task::spawn_blocking(move || read_range(&path, offset, length))
                    .await
                    .map_err(|e| SendError::Local(name.clone(), io::Error::other(e)))?;
                let data = match data {
                    Ok(Some(d)) => d,
                    // The range is gone (truncated since): the whole file makes the peer equal.
                    Ok(None) => return self.send_whole(&name, ts, &group, true).await,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(SendError::Local(name.clone(), e)),
                };
                let req = SyncRangeReq {
                    filename: name.clone(),
                    offset,
                    length,
                    timestamp: ts,
                    group: group.clone(),
                };
                match self.conn.sync_range(modify, &req, &data).await {
                    Ok(()) => Ok(length),
                    // A replay the peer already applied: C's sender counts it as done.
                    Err(e) if e.status() == Some(errno::EEXIST) => Ok(0),
                    // The peer's copy is missing or behind: send the whole file instead.
                    Err(e) if e.status() == Some(errno::ENOENT) => {
                        self.send_whole(&name, ts, &group, true).await
                    }
                    Err(e) => Err(status_or_conn(e, |s| refused("append/modify", s))),
                }
            }
            Plan::Truncate { old_size, new_size } => {
                let req = SyncTruncateReq {
                    filename: name.clone(),
                    old_size,
                    new_size,
                    timestamp: ts,
                    group: group.clone(),
                };
                match self.conn.sync_truncate(&req).await {
                    Ok(()) => Ok(0),
                    Err(e) if e.status() == Some(errno::EEXIST) => Ok(0),
                    Err(e) if e.status() == Some(errno::ENOENT) => {
                        self.send_whole(&name, ts, &group, true).await
                    }
                    Err(e) => Err(status_or_conn(e, |s| refused("truncate", s))),
                }
            }
            Plan::Rename { ref old_name } => {
                let req = SyncRenameReq {
                    timestamp: ts,
                    group: group.clone(),
                    new_name: name.clone(),
                    old_name: old_name.clone(),
                };
                match self.conn.sync_rename(&req).await {
                    // EEXIST: the peer has the new name already (a replay), as C counts it.
                    Ok(()) => Ok(0),
                    Err(e) if e.status() == Some(errno::EEXIST) => Ok(0),
                    // The peer never had the appender: send the file under its new name.
                    Err(e) if e.status() == Some(errno::ENOENT) => {
                        self.send_whole(&name, ts, &group, false).await
                    }
                    Err(e) => Err(status_or_conn(e, |s| refused("rename", s))),
                }
            }
        }
    }

    /// The local path of a binlog name (`-m` = metadata sidecar); None (logged) when the name
    /// cannot be mapped — such a record can never be sent.
    pub(super) fn local_path(&self, filename: &str) -> Option<PathBuf> {
        match local_path(self.state.store(), filename) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(peer = %self.peer, file = filename, error = %e, "sync: binlog names a file this storage cannot map; skipped");
                None
            }
        }
    }

    /// SYNC_CREATE_FILE / SYNC_UPDATE_FILE of the file as it is now (skipped when gone).
    pub(super) async fn send_whole(
        &mut self,
        name: &str,
        ts: u32,
        group: &str,
        update: bool,
    ) -> Result<u64, SendError> {
        let Some(path) = self.local_path(name) else {
            return Ok(0);
        };
        let state = Arc::clone(&self.state);
        let opened = tokio::task::spawn_blocking(move || state.store().open_to_send(&path))
            .await
            .map_err(|e| SendError::Local(name.to_string(), io::Error::other(e)))?;
        let file = match opened {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(SendError::Local(name.to_string(), e)),
        };
        let size = file.size;
        let req = SyncFileReq {
            filename: name.to_string(),
            file_size: size,
            timestamp: ts,
            group: group.to_string(),
        };
        let sent = if file.direct.is_some() {
            let mut chunks = DirectChunks::new(file);
            self.conn
                .sync_file_send_chunks(update, &req, &mut chunks)
                .await
        } else {
            self.conn.sync_file_send(update, &req, &file.file).await
        };
        match sent {
            Ok(()) => Ok(size),
            Err(e) if e.status().is_some() => Err(e.into()),
            Err(e) => Err(SendError::Conn(e)),
        }
    }
}

/// Bytes of a large file read per O_DIRECT request when sending it.
pub(super) const SEND_CHUNK: usize = 1 << 20;

/// A large file read with O_DIRECT one chunk ahead of the socket: the disk reads the next
/// chunk while the peer takes this one, and only two chunk buffers are ever used.
pub(super) struct DirectChunks {
    /// The chunk handed out last, sized to the bytes read into it.
    current: AlignedBuf,
    /// Offset of the next chunk to read.
    offset: u64,
    ahead: Option<tokio::task::JoinHandle<(FileToSend, AlignedBuf, io::Result<usize>)>>,
}

impl DirectChunks {
    pub(super) fn new(file: FileToSend) -> Self {
        let mut chunks = DirectChunks {
            current: AlignedBuf::default(),
            offset: 0,
            ahead: None,
        };
        if file.size > 0 {
            chunks.read_ahead(file, AlignedBuf::default());
        }
        chunks
    }

    pub(super) fn read_ahead(&mut self, mut file: FileToSend, mut buf: AlignedBuf) {
        let offset = self.offset;
        buf.resize(SEND_CHUNK);
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let read = file.read_chunk(offset, &mut buf);
            (file, buf, read)
        }));
    }
}

impl ChunkSource for DirectChunks {
    async fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let Some(pending) = self.ahead.take() else {
            return Ok(None);
        };
        let (file, mut buf, read) = pending.await.map_err(io::Error::other)?;
        let n = read?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        buf.resize(n);
        let spare = std::mem::replace(&mut self.current, buf);
        self.offset += n as u64;
        if self.offset < file.size {
            self.read_ahead(file, spare);
        }
        Ok(Some(&self.current))
    }
}

pub(super) fn status_or_conn(e: ConnError, refused: impl FnOnce(u8) -> SendError) -> SendError {
    match e.status() {
        Some(s) => refused(s),
        None => SendError::Conn(e),
    }
}

/// Maps `M00/XX/YY/name[-m]` to the local file.
pub fn local_path(store: &Store, filename: &str) -> Result<PathBuf, String> {
    let (base, meta) = match filename.strip_suffix(METADATA_SUFFIX) {
        Some(b) => (b, true),
        None => (filename, false),
    };
    let name = RemoteName::parse_str(base).map_err(|e| e.to_string())?;
    let p = store.data_path(&name).map_err(|e| e.msg)?;
    Ok(if meta { Store::meta_path(&p) } else { p })
}

/// `length` bytes at `offset`; Ok(None) when the file is now shorter than that range.
pub(super) fn read_range(path: &Path, offset: u64, length: u64) -> io::Result<Option<Vec<u8>>> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; length as usize];
    f.read_exact(&mut buf)?;
    Ok(Some(buf))
}
