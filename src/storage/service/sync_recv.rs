//! The receiving side of replication: SYNC_CREATE_FILE, SYNC_UPDATE_FILE, SYNC_DELETE_FILE,
//! SYNC_APPEND_FILE, SYNC_MODIFY_FILE, SYNC_TRUNCATE_FILE and SYNC_WATERMARK from group peers,
//! applied and logged as replica (lower-case) binlog records with the peer's timestamps.

use super::SMALL_FILE;
use super::{blocking, einval, Conn, Fail, Handled};
use crate::clock::unix_now;
use crate::proto::cmd::errno;
use crate::proto::fileid::{self, RemoteName};
use crate::proto::storage::{SyncDeleteReq, SyncFileReq, SyncRangeReq, SyncTruncateReq};
use crate::proto::sync::WatermarkReq;
use crate::proto::Header;
use crate::storage::binlog::{BinlogOp, BinlogRecord};
use crate::storage::small_writer::SmallWriter;
use crate::storage::store::{Store, TempFile};
use std::sync::atomic::Ordering;

/// Chunk size for a peer's streamed file: a sender has up to four lanes to us, each with two
/// chunks in flight, so 128 KiB keeps a catching-up storage at 1 MiB of buffers where the
/// uploads' 512 KiB chunks would take 4 MiB (issue 27.2).
const SYNC_CHUNK: usize = 128 * 1024;

impl Conn {
    /// As `locate`, also accepting a metadata sidecar name (`<name>-m`, sync only).
    /// Returns the logical name (`M00/XX/YY/name[-m]`), its path and its store path index.
    pub(super) fn locate_synced(
        &self,
        filename: &str,
    ) -> Result<(String, std::path::PathBuf, u8), Fail> {
        match filename.strip_suffix(fileid::METADATA_SUFFIX) {
            Some(base) => {
                let (name, path) = self.locate(base)?;
                Ok((
                    format!("{}{}", name.to_path_string(), fileid::METADATA_SUFFIX),
                    Store::meta_path(&path),
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
    pub(super) fn log_replica(
        &self,
        op: BinlogOp,
        timestamp: u32,
        filename: &str,
        extra: Option<String>,
    ) {
        self.state.binlog().append(&BinlogRecord {
            timestamp: timestamp as i64,
            op,
            source: false,
            filename: filename.to_string(),
            extra,
        });
        if let Some(peer) = &self.peer_storage_id {
            self.state.note_record_from(peer, timestamp);
        }
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
    pub(super) async fn sync_watermark(&self, body: &[u8]) -> Handled {
        let Some(src) = &self.peer_storage_id else {
            return Err(einval("SYNC_WATERMARK before REPORT_SERVER_ID"));
        };
        let ts = WatermarkReq::decode(body)
            .map_err(|_| einval(format!("SYNC_WATERMARK body of {} bytes", body.len())))?
            .unix_second;
        if self.state.store().unflushed_count() > 0 {
            let st = self.state.clone();
            blocking(move || Ok(st.store().flush_replicas()?)).await?;
        }
        self.state.note_synced_from(src, ts);
        Ok(Some(Vec::new()))
    }

    /// SYNC_CREATE_FILE / SYNC_UPDATE_FILE from a group peer: the whole file (or its `-m`).
    pub(super) async fn sync_file(&mut self, h: &Header, update: bool) -> Handled {
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
                Received::Streamed(self.receive_in(tmp, req.file_size, SYNC_CHUNK).await?.0)
            }
        };
        let st = self.state.clone();
        let _guard = self.state.store().lock_file(&filename).await;
        match received {
            // On the small-file writer: one hand-off instead of handing this worker's core
            // to another thread and back.
            Received::NewSmall(target, bytes) => {
                SmallWriter::run(&st, move |store| store.create_at(&target, &bytes)).await?
            }
            Received::Streamed(tmp) => {
                blocking(move || st.store().commit_to(tmp, &path, update)).await?
            }
        }
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
    pub(super) async fn sync_delete(&mut self, body: &[u8]) -> Handled {
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
    pub(super) async fn sync_range(&mut self, h: &Header, modify: bool) -> Handled {
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
        let st2 = st.clone();
        let opened = blocking(move || st2.store().open_for_write(&path)).await;
        let sink = match opened {
            Ok(v) => v,
            Err(Fail::Reply(s, m)) => return Err(self.skip(left, s, m).await),
            Err(f) => return Err(f),
        };
        if req.offset > sink.size() {
            return Err(self
                .skip(
                    left,
                    errno::ENOENT,
                    "local copy is behind the peer's".into(),
                )
                .await);
        }
        let (sink, _) = self
            .receive_in(sink.starting_at(req.offset), req.length, SYNC_CHUNK)
            .await?;
        if sink.needs_flush() {
            blocking(move || sink.finish()).await?;
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
    pub(super) async fn sync_truncate(&mut self, body: &[u8]) -> Handled {
        let req = SyncTruncateReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (filename, path) = self.appender(&req.filename)?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let new_size = req.new_size;
        let store = st.clone();
        blocking(move || store.store().truncate_replica(&path, new_size)).await?;
        self.log_replica(
            BinlogOp::Truncate,
            req.timestamp,
            &filename,
            Some(format!("{} {}", req.old_size, req.new_size)),
        );
        Ok(Some(Vec::new()))
    }
}
