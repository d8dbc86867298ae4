//! What a binlog record turns into on the wire for one peer (FastDFS's rules on what is sent).

use super::mark::Mark;
use crate::storage::binlog::{BinlogOp, BinlogRecord};

/// What a binlog record turns into on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to send (the reason is for logs and tests).
    Skip(&'static str),
    Create,
    Update,
    Delete,
    Append {
        offset: u64,
        length: u64,
    },
    Modify {
        offset: u64,
        length: u64,
    },
    Truncate {
        old_size: u64,
        new_size: u64,
    },
    /// SYNC_RENAME_FILE: the record's file had this (appender) name before.
    Rename {
        old_name: String,
    },
}

pub(super) fn two_numbers(extra: Option<&str>) -> Option<(u64, u64)> {
    let mut it = extra?.split_whitespace();
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b))
}

/// Decides what to send to a peer for one record, given the peer's mark.
pub fn plan(rec: &BinlogRecord, mark: &Mark) -> Plan {
    // Source records always go (also to a newcomer: its copy from the designated source may
    // end before a record still travelling to that source arrived there). Replica records go
    // only while we copy a newcomer's old data: forwarding them later could bring back a file
    // its source deleted in the meantime.
    let copying = mark.need_sync_old && !mark.sync_old_done;
    let old_replica = copying && rec.timestamp <= mark.until_timestamp;
    if !(rec.source || old_replica) {
        return Plan::Skip("replica record: its source sends it");
    }
    let range = two_numbers(rec.extra.as_deref());
    match rec.op {
        BinlogOp::Create => Plan::Create,
        BinlogOp::Update => Plan::Update,
        BinlogOp::Delete => Plan::Delete,
        // A malformed tail still converges: send the whole file.
        BinlogOp::Append => range.map_or(Plan::Update, |(offset, length)| Plan::Append {
            offset,
            length,
        }),
        BinlogOp::Modify => range.map_or(Plan::Update, |(offset, length)| Plan::Modify {
            offset,
            length,
        }),
        BinlogOp::Truncate => range.map_or(Plan::Update, |(old_size, new_size)| Plan::Truncate {
            old_size,
            new_size,
        }),
        // A rename without the old name can only send the file under its new name.
        BinlogOp::Rename => match rec.extra.as_deref().map(str::trim) {
            Some(old) if !old.is_empty() => Plan::Rename {
                old_name: old.to_string(),
            },
            _ => Plan::Create,
        },
        BinlogOp::Link => Plan::Skip("links are not produced here"),
    }
}
