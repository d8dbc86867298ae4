//! A peer's mark file: where its replay stands, and what a sender starts with for a peer it
//! meets for the first time.

use crate::proto::tracker::{StorageBrief, SyncSource};
use crate::storage::binlog::BinlogPos;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Where one peer's replay stands (persisted as `<peer>.mark`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    /// Next record to send: the peer confirmed every record before it (see `send_watermark`).
    pub pos: BinlogPos,
    /// We are the newcomer's designated source: send every old record, replica ones too.
    pub need_sync_old: bool,
    pub sync_old_done: bool,
    /// The newcomer's sync time (0: the peer was no newcomer when we met it).
    pub until_timestamp: i64,
    pub scan_row_count: u64,
    pub sync_row_count: u64,
    pub sync_bytes: u64,
    /// Timestamp of the newest record sent.
    pub synced_timestamp: i64,
    /// A tracker listed the peer DELETED when its sender stopped: if it comes back waiting
    /// for old data, it is a newcomer and this mark is not resumed (fdfs-ha key).
    pub peer_deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad mark file: {0}")]
pub struct MarkError(String);

impl Mark {
    pub fn encode(&self) -> String {
        format!(
            "binlog_index={}\nbinlog_offset={}\nneed_sync_old={}\nsync_old_done={}\n\
             until_timestamp={}\nscan_row_count={}\nsync_row_count={}\nsync_bytes={}\n\
             synced_timestamp={}\npeer_deleted={}\n",
            self.pos.index,
            self.pos.offset,
            self.need_sync_old as u8,
            self.sync_old_done as u8,
            self.until_timestamp,
            self.scan_row_count,
            self.sync_row_count,
            self.sync_bytes,
            self.synced_timestamp,
            self.peer_deleted as u8
        )
    }

    /// Parses a mark file; `binlog_index` and `binlog_offset` are required, unknown keys ignored.
    pub fn parse(text: &str) -> Result<Mark, MarkError> {
        let mut kv = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| MarkError(format!("line without '=': {line:?}")))?;
            kv.insert(k.trim(), v.trim());
        }
        fn num<T: std::str::FromStr + Default>(
            kv: &HashMap<&str, &str>,
            key: &str,
            required: bool,
        ) -> Result<T, MarkError> {
            match kv.get(key) {
                Some(v) => v
                    .parse()
                    .map_err(|_| MarkError(format!("{key}={v:?} is not a number"))),
                None if required => Err(MarkError(format!("{key} missing"))),
                None => Ok(T::default()),
            }
        }
        Ok(Mark {
            pos: BinlogPos {
                index: num(&kv, "binlog_index", true)?,
                offset: num(&kv, "binlog_offset", true)?,
            },
            need_sync_old: num::<u8>(&kv, "need_sync_old", false)? != 0,
            sync_old_done: num::<u8>(&kv, "sync_old_done", false)? != 0,
            until_timestamp: num(&kv, "until_timestamp", false)?,
            scan_row_count: num(&kv, "scan_row_count", false)?,
            sync_row_count: num(&kv, "sync_row_count", false)?,
            sync_bytes: num(&kv, "sync_bytes", false)?,
            synced_timestamp: num(&kv, "synced_timestamp", false)?,
            peer_deleted: num::<u8>(&kv, "peer_deleted", false)? != 0,
        })
    }

    /// Ok(None) when the peer has no mark yet.
    pub fn load(path: &Path) -> io::Result<Option<Mark>> {
        match std::fs::read_to_string(path) {
            Ok(t) => Mark::parse(&t)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the mark atomically (temp file, fsync, rename, fsync of the directory).
    pub fn store(&self, path: &Path) -> io::Result<()> {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.encode().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        crate::storage::durable::fsync_dir(dir)
    }
}

/// The mark file name of a peer: its storage id with `use_storage_id`, else `<ip>_<port>`.
pub fn mark_name(peer: &StorageBrief, use_storage_id: bool) -> String {
    if use_storage_id && !peer.id.is_empty() {
        peer.id.clone()
    } else {
        format!("{}_{}", peer.ip, peer.port)
    }
}

pub fn mark_path(sync_dir: &Path, name: &str) -> PathBuf {
    sync_dir.join(format!("{name}.mark"))
}

/// Whether a kept mark for a peer that now waits for old data under sync source `src` belongs
/// to an earlier membership (the peer was deleted and added again): we saw it deleted, or
/// another sync time, or the same second but we are its designated source with no copy in
/// progress.
pub fn mark_is_stale(mark: &Mark, my_id: &str, src: &SyncSource) -> bool {
    if mark.peer_deleted || src.until_timestamp != mark.until_timestamp {
        return true;
    }
    let copying = mark.need_sync_old && !mark.sync_old_done;
    src.src_id == my_id && !copying
}

/// The mark a sender starts with for a peer it never synced to. `designated` = the tracker's
/// answer to SYNC_SRC_REQ for that peer: (source id, until) while it waits for old data.
pub fn initial_mark(my_id: &str, designated: Option<(&str, i64)>) -> Mark {
    match designated {
        Some((src, until)) => Mark {
            need_sync_old: src == my_id,
            until_timestamp: until,
            ..Mark::default()
        },
        None => Mark::default(),
    }
}
