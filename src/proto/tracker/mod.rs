//! Tracker message codecs: storage <-> tracker (join, beat, reports, sync decisions) and client
//! queries (store / fetch / update / list). Pure: typed values to bytes and back.
//!
//! Owns the layouts of PROTOCOL.md sections 3 and 5; framing lives in `connection`, field
//! primitives in `fields`. Client-facing replies carry IP fields of `response_ip_addr_size`
//! (16 or 46): QUERY_* replies write `size - 1` bytes, list replies the full size. Decoders
//! accept both layouts and tell them apart by body length, because SDKs hard-code one or the other.
//!
//! ```text
//!  QUERY_STORE_*_ONE reply (40 B with 16-byte IPs, 70 B with 46-byte IPs)
//!  +----------+-----------------+---------+-----------------+
//!  | group 16 | ip (size-1)     | port 8  | store_path_idx 1|
//!  +----------+-----------------+---------+-----------------+
//!  storage brief (67 B, in BEAT replies and REPORT_STATUS)
//!  +----------+--------+-------+--------+
//!  | status 1 | port 4 | id 16 | ip 46  |
//!  +----------+--------+-------+--------+
//! ```
//!
//! One file per message family, all re-exported here: `join` (GET_MY_IP, JOIN, BEAT), `report`
//! (disk usage, sync report, status, the server-list reply), `sync_src` (sync source decisions),
//! `params` (storage ids, parameters), `query` (QUERY_STORE / FETCH / UPDATE), `list`
//! (SERVER_LIST_*), `cluster_stat` (the monitoring commands 95-98), `peer` (tracker <-> tracker,
//! 58-67). Shared field helpers stay here.

use super::fields::Reader;
use super::{
    ProtoError, GROUP_NAME_LEN, IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE, STORAGE_ID_LEN, VERSION_LEN,
};

mod cluster_stat;
mod join;
mod list;
mod params;
pub mod peer;
mod query;
mod report;
mod sync_src;

pub use cluster_stat::*;
pub use join::*;
pub use list::*;
pub use params::*;
pub use query::*;
pub use report::*;
pub use sync_src::*;

#[cfg(test)]
pub(crate) mod vectors;

#[cfg(test)]
mod tests;

/// Group field inside JOIN and GET_MY_IP bodies (16 + NUL).
pub const GROUP_NAME_FIELD_IN_JOIN: usize = GROUP_NAME_LEN + 1;
/// `FDFSStorageStatBuff`: 3 x 4-byte connection counters + 42 x 8-byte counters.
pub const STAT_BLOCK_LEN: usize = 3 * 4 + STAT_COUNTERS * 8;
pub const STAT_COUNTERS: usize = 42;
/// `FDFSStorageBrief`: status 1, port 4, id 16, ip 46.
pub const BRIEF_LEN: usize = 1 + 4 + STORAGE_ID_LEN + IP_ADDRESS_SIZE;
/// `TrackerGroupStat` in 6.16: group 17 + 12 x 8.
pub const GROUP_STAT_LEN: usize = GROUP_NAME_FIELD_IN_JOIN + 12 * 8;
/// Bytes of a `TrackerStorageStat` besides its IP field.
const STORAGE_STAT_FIXED_LEN: usize =
    1 + 1 + STORAGE_ID_LEN + STORAGE_ID_LEN + VERSION_LEN + 10 * 8 + STAT_BLOCK_LEN + 1;
/// The two IP field sizes a client-facing reply may use.
pub const IP_SIZES: [usize; 2] = [IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE];

/// Change flags in the first byte of BEAT / REPORT_DISK_USAGE / SYNC_REPORT replies.
pub const FLAG_LEADER_CHANGED: u8 = 1;
pub const FLAG_TRUNK_CHANGED: u8 = 2;
pub const FLAG_GROUP_SERVERS_CHANGED: u8 = 4;

/// `rw_mode` bits in a storage stat record (6.13+): readable 2, writable 4.
pub const RW_MODE_READ: u8 = 2;
pub const RW_MODE_WRITE: u8 = 4;

/// Storage status as the tracker sees it (tracker_types.h, PROTOCOL.md section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum StorageStatus {
    Init = 0,
    WaitSync = 1,
    Syncing = 2,
    IpChanged = 3,
    Deleted = 4,
    Offline = 5,
    Online = 6,
    Active = 7,
    Recovery = 9,
    None = 99,
}

impl StorageStatus {
    pub fn from_u8(v: u8) -> Option<Self> {
        use StorageStatus::*;
        Some(match v {
            0 => Init,
            1 => WaitSync,
            2 => Syncing,
            3 => IpChanged,
            4 => Deleted,
            5 => Offline,
            6 => Online,
            7 => Active,
            9 => Recovery,
            99 => None,
            _ => return Option::None,
        })
    }

    pub fn name(self) -> &'static str {
        use StorageStatus::*;
        match self {
            Init => "INIT",
            WaitSync => "WAIT_SYNC",
            Syncing => "SYNCING",
            IpChanged => "IP_CHANGED",
            Deleted => "DELETED",
            Offline => "OFFLINE",
            Online => "ONLINE",
            Active => "ACTIVE",
            Recovery => "RECOVERY",
            None => "NONE",
        }
    }
}

/// The C names (`ACTIVE`, `SYNCING`), as fdfs_monitor prints them.
impl std::fmt::Display for StorageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A raw status byte by its name; a value C does not define is shown as a number.
pub fn status_name(v: u8) -> std::borrow::Cow<'static, str> {
    match StorageStatus::from_u8(v) {
        Some(s) => s.name().into(),
        None => format!("UNKNOWN({v})").into(),
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ProtoError {
    ProtoError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn bad_len(have: usize, expected: impl Into<String>) -> ProtoError {
    ProtoError::BadLength {
        have,
        expected: expected.into(),
    }
}

/// Group names: 1..=16 of `[A-Za-z0-9_-]` (what FastDFS's `fdfs_validate_group_name` allows).
pub fn validate_group(name: &str) -> Result<(), ProtoError> {
    if name.is_empty() || name.len() > GROUP_NAME_LEN {
        return Err(invalid(
            "group",
            format!("length {} not in 1..=16", name.len()),
        ));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(invalid(
            "group",
            format!("{name:?} has characters outside [A-Za-z0-9_-]"),
        ));
    }
    Ok(())
}

fn read_group(r: &mut Reader<'_>, size: usize) -> Result<String, ProtoError> {
    let g = r.fixed_string(size, "group")?;
    validate_group(&g)?;
    Ok(g)
}

/// A positive port carried in an 8- or 4-byte field.
fn port_from(v: i64, field: &'static str) -> Result<u16, ProtoError> {
    u16::try_from(v)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(field, format!("port {v} out of range")))
}
