//! Replication lag and the status query (fdfs-ha extension, used by `fdfs-ha monitor` and the
//! drills).

use crate::clock::unix_now;
use crate::proto::sync::SyncReport;
use crate::storage::binlog::{BinlogPos, BinlogReader};
use crate::storage::state::StorageState;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Records-behind is counted by reading the unsent binlog only up to this many bytes.
pub(super) const COUNT_RECORDS_LIMIT: u64 = 64 << 20;

/// Bytes of binlog from `from` to `to` (`to` at or after `from`), using the binlog file sizes
/// for the files in between.
pub fn bytes_between(dir: &Path, from: BinlogPos, to: BinlogPos) -> u64 {
    if to <= from {
        return 0;
    }
    if from.index == to.index {
        return to.offset - from.offset;
    }
    let size = |i: u32| {
        std::fs::metadata(dir.join(format!("binlog.{i:03}")))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut total = size(from.index).saturating_sub(from.offset);
    for i in from.index + 1..to.index {
        total += size(i);
    }
    total + to.offset
}

/// Records between `from` and the flushed end (at most [`COUNT_RECORDS_LIMIT`] bytes read;
/// beyond that the count is a lower bound).
pub fn records_between(dir: &Path, from: BinlogPos, to: BinlogPos) -> u64 {
    let mut n = 0u64;
    let mut read = 0u64;
    let mut pos = from;
    let mut buf = vec![0u8; 64 * 1024];
    while pos < to && read < COUNT_RECORDS_LIMIT {
        let Ok(mut f) = std::fs::File::open(dir.join(format!("binlog.{:03}", pos.index))) else {
            break;
        };
        if f.seek(SeekFrom::Start(pos.offset)).is_err() {
            break;
        }
        let end = if pos.index == to.index {
            to.offset
        } else {
            u64::MAX
        };
        let mut off = pos.offset;
        while off < end && read < COUNT_RECORDS_LIMIT {
            let want = (end - off).min(buf.len() as u64) as usize;
            let got = match f.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(g) => g,
            };
            n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
            off += got as u64;
            read += got as u64;
        }
        pos = BinlogPos {
            index: pos.index + 1,
            offset: 0,
        };
    }
    n
}

/// Builds the report (blocking: counts unsent binlog records).
pub fn sync_report(state: &StorageState) -> SyncReport {
    let dir = state.binlog().dir();
    let end = state.binlog().flushed_position();
    let (pending_bytes, pending_records, pending_oldest) = state.binlog().pending_summary();
    let now = unix_now() as i64;
    let peers = state
        .peer_sync()
        .into_iter()
        .map(|mut p| {
            let from = BinlogPos {
                index: p.binlog_index,
                offset: p.binlog_offset,
            };
            p.bytes_behind = bytes_between(dir, from, end) + pending_bytes;
            p.records_behind = records_between(dir, from, end) + pending_records;
            // Age of the oldest change the peer has not been sent.
            let oldest = BinlogReader::new(dir, from)
                .next_record()
                .ok()
                .flatten()
                .map(|(r, _)| r.timestamp)
                .or(pending_oldest);
            p.seconds_behind = oldest.map_or(0, |t| (now - t).max(0) as u64);
            p
        })
        .collect();
    SyncReport {
        sync_old_done: state.sync_old_done(),
        binlog_index: end.index,
        binlog_offset: end.offset,
        peers,
        synced_from: state.synced_from(),
    }
}
