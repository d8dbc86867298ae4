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

use super::fields::{fixed_str, put_fixed, put_i64, put_u32, put_u64, Reader};
use super::{
    ProtoError, GROUP_NAME_LEN, IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE, STORAGE_ID_LEN, VERSION_LEN,
};
use std::collections::BTreeMap;

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

// ------------------------------------------------------------------------------------------------
// Storage -> tracker

/// GET_MY_IP (60): `group 17, port 4`; the reply is the peer's IP as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMyIpReq {
    pub group: String,
    pub port: u16,
}

impl GetMyIpReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_FIELD_IN_JOIN + 4);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_FIELD_IN_JOIN);
        put_u32(&mut out, self.port as u32);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_FIELD_IN_JOIN)?;
        let port = port_from(r.u32()? as i64, "port")?;
        r.expect_end()?;
        Ok(GetMyIpReq { group, port })
    }
}

/// JOIN (81): a storage announces itself on its long-lived connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReq {
    pub group: String,
    pub storage_port: u16,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    pub join_time: i64,
    pub up_time: i64,
    pub version: String,
    /// 1 while the storage has not finished copying old data from its sync source.
    pub init_flag: u8,
    /// The storage's own idea of its status.
    pub status: u8,
    pub storage_id: String,
    /// The tracker address the storage connected to.
    pub current_tracker_ip: String,
    /// `ip:port` of every tracker the storage reports to.
    pub trackers: Vec<String>,
}

impl JoinReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(161);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_FIELD_IN_JOIN);
        put_u64(&mut out, self.storage_port as u64);
        put_u64(&mut out, self.store_path_count as u64);
        put_u64(&mut out, self.subdir_count_per_path as u64);
        put_i64(&mut out, self.upload_priority);
        put_i64(&mut out, self.join_time);
        put_i64(&mut out, self.up_time);
        put_fixed(&mut out, self.version.as_bytes(), VERSION_LEN);
        out.push(self.init_flag);
        out.push(self.status);
        put_fixed(&mut out, self.storage_id.as_bytes(), STORAGE_ID_LEN);
        put_fixed(
            &mut out,
            self.current_tracker_ip.as_bytes(),
            IP_ADDRESS_SIZE,
        );
        put_u64(&mut out, self.trackers.len() as u64);
        for t in &self.trackers {
            out.extend_from_slice(t.as_bytes());
            out.push(b'\n');
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_FIELD_IN_JOIN)?;
        let storage_port = port_from(r.i64()?, "storage_port")?;
        let store_path_count = r.len64("store_path_count")?;
        let subdir_count_per_path = r.len64("subdir_count_per_path")?;
        if !(1..=256).contains(&store_path_count) {
            return Err(invalid(
                "store_path_count",
                format!("{store_path_count} not in 1..=256"),
            ));
        }
        if !(1..=256).contains(&subdir_count_per_path) {
            return Err(invalid(
                "subdir_count_per_path",
                format!("{subdir_count_per_path} not in 1..=256"),
            ));
        }
        let upload_priority = r.i64()?;
        let join_time = r.i64()?;
        let up_time = r.i64()?;
        let version = String::from_utf8_lossy(r.fixed(VERSION_LEN)?).into_owned();
        let init_flag = r.u8()?;
        let status = r.u8()?;
        let storage_id = r.fixed_string(STORAGE_ID_LEN, "storage_id")?;
        let current_tracker_ip = r.fixed_string(IP_ADDRESS_SIZE, "current_tracker_ip")?;
        let tracker_count = r.len64("tracker_count")?;
        let text = std::str::from_utf8(r.rest()).map_err(|_| invalid("trackers", "not UTF-8"))?;
        let trackers: Vec<String> = text
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if trackers.len() as u64 != tracker_count {
            return Err(invalid(
                "trackers",
                format!("count {tracker_count} but {} listed", trackers.len()),
            ));
        }
        Ok(JoinReq {
            group,
            storage_port,
            store_path_count: store_path_count as u32,
            subdir_count_per_path: subdir_count_per_path as u32,
            upload_priority,
            join_time,
            up_time,
            version,
            init_flag,
            status,
            storage_id,
            current_tracker_ip,
            trackers,
        })
    }
}

/// JOIN reply: the tracker's view of the storage and its sync source (may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReply {
    pub status: u8,
    pub src_id: String,
}

impl JoinReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.status];
        put_fixed(&mut out, self.src_id.as_bytes(), STORAGE_ID_LEN);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let status = r.u8()?;
        let src_id = r.fixed_string(STORAGE_ID_LEN, "src_id")?;
        r.expect_end()?;
        Ok(JoinReply { status, src_id })
    }
}

/// Names of the 42 eight-byte counters of the stats block, in wire order.
pub const STAT_NAMES: [&str; STAT_COUNTERS] = [
    "total_upload_count",
    "success_upload_count",
    "total_append_count",
    "success_append_count",
    "total_modify_count",
    "success_modify_count",
    "total_truncate_count",
    "success_truncate_count",
    "total_set_meta_count",
    "success_set_meta_count",
    "total_delete_count",
    "success_delete_count",
    "total_download_count",
    "success_download_count",
    "total_get_meta_count",
    "success_get_meta_count",
    "total_create_link_count",
    "success_create_link_count",
    "total_delete_link_count",
    "success_delete_link_count",
    "total_upload_bytes",
    "success_upload_bytes",
    "total_append_bytes",
    "success_append_bytes",
    "total_modify_bytes",
    "success_modify_bytes",
    "total_download_bytes",
    "success_download_bytes",
    "total_sync_in_bytes",
    "success_sync_in_bytes",
    "total_sync_out_bytes",
    "success_sync_out_bytes",
    "total_file_open_count",
    "success_file_open_count",
    "total_file_read_count",
    "success_file_read_count",
    "total_file_write_count",
    "success_file_write_count",
    "last_source_update",
    "last_sync_update",
    "last_synced_timestamp",
    "last_heart_beat_time",
];

/// The BEAT stats block (`FDFSStorageStatBuff`), also embedded in SERVER_LIST_STORAGE records.
/// Counters are kept as an array in wire order; [`STAT_NAMES`] names them and the `stat_*`
/// index constants pick the ones the tracker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageStats {
    /// alloc_count, current_count, max_count (connections).
    pub connections: [u32; 3],
    pub counters: [i64; STAT_COUNTERS],
}

impl Default for StorageStats {
    fn default() -> Self {
        StorageStats {
            connections: [0; 3],
            counters: [0; STAT_COUNTERS],
        }
    }
}

pub const STAT_TOTAL_UPLOAD_COUNT: usize = 0;
pub const STAT_SUCCESS_UPLOAD_COUNT: usize = 1;
pub const STAT_LAST_SOURCE_UPDATE: usize = 38;
pub const STAT_LAST_SYNC_UPDATE: usize = 39;
pub const STAT_LAST_SYNCED_TIMESTAMP: usize = 40;
pub const STAT_LAST_HEART_BEAT_TIME: usize = 41;

impl StorageStats {
    pub fn get(&self, name: &str) -> Option<i64> {
        STAT_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.counters[i])
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for c in self.connections {
            put_u32(out, c);
        }
        for c in self.counters {
            put_i64(out, c);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STAT_BLOCK_LEN);
        self.encode_into(&mut out);
        out
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        let mut s = StorageStats::default();
        for c in s.connections.iter_mut() {
            *c = r.u32()?;
        }
        for c in s.counters.iter_mut() {
            *c = r.i64()?;
        }
        Ok(s)
    }
}

/// BEAT (83) body: empty (nothing changed) or the stats block.
pub fn decode_beat(body: &[u8]) -> Result<Option<StorageStats>, ProtoError> {
    match body.len() {
        0 => Ok(None),
        STAT_BLOCK_LEN => StorageStats::read(&mut Reader::new(body)).map(Some),
        n => Err(bad_len(n, format!("0 or {STAT_BLOCK_LEN}"))),
    }
}

/// One store path's disk usage in a REPORT_DISK_USAGE (84) body, in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathUsage {
    pub total_mb: u64,
    pub free_mb: u64,
}

pub fn encode_disk_usage(paths: &[PathUsage]) -> Vec<u8> {
    let mut out = Vec::with_capacity(paths.len() * 16);
    for p in paths {
        put_u64(&mut out, p.total_mb);
        put_u64(&mut out, p.free_mb);
    }
    out
}

pub fn decode_disk_usage(body: &[u8]) -> Result<Vec<PathUsage>, ProtoError> {
    if body.is_empty() || !body.len().is_multiple_of(16) || body.len() / 16 > 256 {
        return Err(bad_len(body.len(), "16 x store_path_count (1..=256)"));
    }
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(body.len() / 16);
    while r.remaining() > 0 {
        let total_mb = r.len64("total_mb")?;
        let free_mb = r.len64("free_mb")?;
        out.push(PathUsage { total_mb, free_mb });
    }
    Ok(out)
}

/// SYNC_REPORT (89): per peer, the newest timestamp this storage has synced from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPosition {
    pub src_id: String,
    pub timestamp: u32,
}

pub fn encode_sync_report(positions: &[SyncPosition]) -> Vec<u8> {
    let mut out = Vec::with_capacity(positions.len() * (STORAGE_ID_LEN + 4));
    for p in positions {
        put_fixed(&mut out, p.src_id.as_bytes(), STORAGE_ID_LEN);
        put_u32(&mut out, p.timestamp);
    }
    out
}

pub fn decode_sync_report(body: &[u8]) -> Result<Vec<SyncPosition>, ProtoError> {
    const REC: usize = STORAGE_ID_LEN + 4;
    if !body.len().is_multiple_of(REC) {
        return Err(bad_len(body.len(), format!("a multiple of {REC}")));
    }
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(body.len() / REC);
    while r.remaining() > 0 {
        let src_id = r.fixed_string(STORAGE_ID_LEN, "storage_id")?;
        let timestamp = r.u32()?;
        out.push(SyncPosition { src_id, timestamp });
    }
    Ok(out)
}

/// Sync source + the timestamp up to which it copies old data: SYNC_NOTIFY (88) body and the
/// non-empty reply of SYNC_DEST_REQ (87), SYNC_SRC_REQ (86), SYNC_DEST_QUERY (79).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSource {
    pub src_id: String,
    pub until_timestamp: i64,
}

impl SyncSource {
    pub const LEN: usize = STORAGE_ID_LEN + 8;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        put_fixed(&mut out, self.src_id.as_bytes(), STORAGE_ID_LEN);
        put_i64(&mut out, self.until_timestamp);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(bad_len(body.len(), Self::LEN.to_string()));
        }
        let mut r = Reader::new(body);
        let src_id = r.fixed_string(STORAGE_ID_LEN, "src_id")?;
        let until_timestamp = r.i64()?;
        Ok(SyncSource {
            src_id,
            until_timestamp,
        })
    }

    /// Replies are empty when there is no source.
    pub fn encode_reply(v: &Option<SyncSource>) -> Vec<u8> {
        v.as_ref().map(SyncSource::encode).unwrap_or_default()
    }

    pub fn decode_reply(body: &[u8]) -> Result<Option<SyncSource>, ProtoError> {
        if body.is_empty() {
            return Ok(None);
        }
        let s = Self::decode(body)?;
        Ok(if s.src_id.is_empty() { None } else { Some(s) })
    }
}

/// SYNC_SRC_REQ (86): `group 16, dest storage id 16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSrcReq {
    pub group: String,
    pub dest_id: String,
}

impl SyncSrcReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        put_fixed(&mut out, self.dest_id.as_bytes(), STORAGE_ID_LEN);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let dest_id = r.fixed_string(STORAGE_ID_LEN, "dest_id")?;
        r.expect_end()?;
        Ok(SyncSrcReq { group, dest_id })
    }
}

/// `FDFSStorageBrief`: one server in a BEAT reply's server list, or in REPORT_STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageBrief {
    pub status: u8,
    pub port: u16,
    pub id: String,
    pub ip: String,
}

impl StorageBrief {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.status);
        put_u32(out, self.port as u32);
        put_fixed(out, self.id.as_bytes(), STORAGE_ID_LEN);
        put_fixed(out, self.ip.as_bytes(), IP_ADDRESS_SIZE);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        let status = r.u8()?;
        let port = r.u32()?;
        let port = u16::try_from(port).map_err(|_| invalid("port", format!("{port}")))?;
        let id = r.fixed_string(STORAGE_ID_LEN, "id")?;
        let ip = r.fixed_string(IP_ADDRESS_SIZE, "ip")?;
        Ok(StorageBrief {
            status,
            port,
            id,
            ip,
        })
    }
}

/// Reply to BEAT / REPORT_DISK_USAGE / SYNC_REPORT: change flags, then the leader (flag 1), the
/// trunk server (flag 2) and every storage of the group (flag 4) as briefs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerListReply {
    pub leader: Option<StorageBrief>,
    pub trunk_server: Option<StorageBrief>,
    pub group_servers: Option<Vec<StorageBrief>>,
}

impl ServerListReply {
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.leader.is_some() {
            f |= FLAG_LEADER_CHANGED;
        }
        if self.trunk_server.is_some() {
            f |= FLAG_TRUNK_CHANGED;
        }
        if self.group_servers.is_some() {
            f |= FLAG_GROUP_SERVERS_CHANGED;
        }
        f
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags()];
        for b in self.leader.iter().chain(self.trunk_server.iter()) {
            b.encode_into(&mut out);
        }
        for b in self.group_servers.iter().flatten() {
            b.encode_into(&mut out);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let flags = r.u8()?;
        let mut reply = ServerListReply::default();
        if flags & FLAG_LEADER_CHANGED != 0 {
            reply.leader = Some(StorageBrief::read(&mut r)?);
        }
        if flags & FLAG_TRUNK_CHANGED != 0 {
            reply.trunk_server = Some(StorageBrief::read(&mut r)?);
        }
        if flags & FLAG_GROUP_SERVERS_CHANGED != 0 {
            if !r.remaining().is_multiple_of(BRIEF_LEN) {
                return Err(bad_len(body.len(), format!("flags + n x {BRIEF_LEN}")));
            }
            let mut list = Vec::with_capacity(r.remaining() / BRIEF_LEN);
            while r.remaining() > 0 {
                list.push(StorageBrief::read(&mut r)?);
            }
            reply.group_servers = Some(list);
        }
        r.expect_end()?;
        Ok(reply)
    }
}

/// REPORT_STATUS (76): `group 16, brief 67` — a storage tells the tracker a peer's new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportStatusReq {
    pub group: String,
    pub brief: StorageBrief,
}

impl ReportStatusReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + BRIEF_LEN);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        self.brief.encode_into(&mut out);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let brief = StorageBrief::read(&mut r)?;
        r.expect_end()?;
        Ok(ReportStatusReq { group, brief })
    }
}

/// FETCH_STORAGE_IDS (69) request: `start_index 4, allow_empty 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStorageIdsReq {
    pub start_index: u32,
    pub allow_empty: bool,
}

impl FetchStorageIdsReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5);
        put_u32(&mut out, self.start_index);
        out.push(self.allow_empty as u8);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let start_index = r.u32()?;
        let allow_empty = r.u8()? != 0;
        r.expect_end()?;
        Ok(FetchStorageIdsReq {
            start_index,
            allow_empty,
        })
    }
}

/// One line of storage_ids.conf as sent in FETCH_STORAGE_IDS replies: `<id> <group> <ip[:port]>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageIdRecord {
    pub id: String,
    pub group: String,
    /// `ip` or `ip:port` (port given when several storages share an address).
    pub addr: String,
}

/// FETCH_STORAGE_IDS reply: `total 4, count 4`, then `count` text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchStorageIdsReply {
    pub total: u32,
    pub records: Vec<StorageIdRecord>,
}

impl FetchStorageIdsReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u32(&mut out, self.total);
        put_u32(&mut out, self.records.len() as u32);
        for r in &self.records {
            out.extend_from_slice(format!("{} {} {}\n", r.id, r.group, r.addr).as_bytes());
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let total = r.u32()?;
        let count = r.u32()?;
        let text = std::str::from_utf8(r.rest()).map_err(|_| invalid("records", "not UTF-8"))?;
        let mut records = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(group), Some(addr), None) => records.push(StorageIdRecord {
                    id: id.into(),
                    group: group.into(),
                    addr: addr.into(),
                }),
                _ => return Err(invalid("records", format!("bad line {line:?}"))),
            }
        }
        if records.len() as u32 != count {
            return Err(invalid(
                "records",
                format!("count {count} but {} lines", records.len()),
            ));
        }
        Ok(FetchStorageIdsReply { total, records })
    }
}

/// PARAMETER_REQ (75) reply: the tracker-wide settings a storage must follow, as
/// `name=value\n` text. Keys and order are those of FastDFS 6.16 (vectors.txt block [1]); trunk
/// settings are sent with FastDFS's defaults because fdfs-ha does not use trunk files.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerParams {
    pub use_storage_id: bool,
    /// `ip` or `id`.
    pub id_type_in_filename: String,
    pub trust_storage_server_id: bool,
    /// 16 or 46: the IP field size clients see.
    pub response_ip_addr_size: usize,
    pub storage_ip_changed_auto_adjust: bool,
    pub storage_sync_file_max_delay: u64,
    /// 0 round robin, 2 load balance.
    pub store_path: u8,
    /// FastDFS's text form: `20.00%` or a byte count.
    pub reserved_storage_space: String,
    pub store_slave_file_use_link: bool,
    /// Every key received (decode only; includes the ones above).
    pub raw: BTreeMap<String, String>,
}

/// FastDFS's defaults for the trunk settings, sent verbatim (trunk files are off).
const TRUNK_DEFAULTS: [(&str, &str); 17] = [
    ("use_trunk_file", "0"),
    ("slot_min_size", "256"),
    ("slot_max_size", "1048576"),
    ("trunk_alloc_alignment_size", "256"),
    ("trunk_file_size", "67108864"),
    ("trunk_create_file_advance", "0"),
    ("trunk_create_file_time_base", "02:00"),
    ("trunk_create_file_interval", "86400"),
    ("trunk_create_file_space_threshold", "21474836480"),
    ("trunk_init_check_occupying", "0"),
    ("trunk_init_reload_from_binlog", "0"),
    ("trunk_free_space_merge", "1"),
    ("delete_unused_trunk_files", "0"),
    ("trunk_compress_binlog_min_interval", "86400"),
    ("trunk_compress_binlog_interval", "86400"),
    ("trunk_compress_binlog_time_base", "03:00"),
    ("trunk_binlog_max_backups", "7"),
];

impl TrackerParams {
    pub fn encode(&self) -> Vec<u8> {
        let b = |v: bool| if v { "1" } else { "0" }.to_string();
        let mut pairs: Vec<(&str, String)> = vec![
            ("use_storage_id", b(self.use_storage_id)),
            ("id_type_in_filename", self.id_type_in_filename.clone()),
            ("trust_storage_server_id", b(self.trust_storage_server_id)),
            (
                "response_ip_addr_size",
                self.response_ip_addr_size.to_string(),
            ),
            (
                "storage_ip_changed_auto_adjust",
                b(self.storage_ip_changed_auto_adjust),
            ),
            (
                "storage_sync_file_max_delay",
                self.storage_sync_file_max_delay.to_string(),
            ),
            ("store_path", self.store_path.to_string()),
            (
                "reserved_storage_space",
                self.reserved_storage_space.clone(),
            ),
        ];
        pairs.extend(TRUNK_DEFAULTS.iter().map(|(k, v)| (*k, v.to_string())));
        pairs.push((
            "store_slave_file_use_link",
            b(self.store_slave_file_use_link),
        ));
        let mut out = String::new();
        for (k, v) in pairs {
            out.push_str(k);
            out.push('=');
            out.push_str(&v);
            out.push('\n');
        }
        out.into_bytes()
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let text = std::str::from_utf8(body).map_err(|_| invalid("parameters", "not UTF-8"))?;
        let mut raw = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| invalid("parameters", format!("line {line:?} has no '='")))?;
            raw.insert(k.trim().to_string(), v.trim().to_string());
        }
        let flag = |k: &str| raw.get(k).map(|v| v == "1" || v == "true").unwrap_or(false);
        let num = |k: &str, d: u64| raw.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        Ok(TrackerParams {
            use_storage_id: flag("use_storage_id"),
            id_type_in_filename: raw
                .get("id_type_in_filename")
                .cloned()
                .unwrap_or_else(|| "ip".into()),
            trust_storage_server_id: flag("trust_storage_server_id"),
            response_ip_addr_size: num("response_ip_addr_size", IPV4_ADDRESS_SIZE as u64) as usize,
            storage_ip_changed_auto_adjust: flag("storage_ip_changed_auto_adjust"),
            storage_sync_file_max_delay: num("storage_sync_file_max_delay", 86400),
            store_path: num("store_path", 0) as u8,
            reserved_storage_space: raw
                .get("reserved_storage_space")
                .cloned()
                .unwrap_or_default(),
            store_slave_file_use_link: flag("store_slave_file_use_link"),
            raw,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Client queries

/// Body of QUERY_STORE_WITH_GROUP_* / SERVER_LIST_ONE_GROUP: `group 16`.
pub fn encode_group(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GROUP_NAME_LEN);
    put_fixed(&mut out, group.as_bytes(), GROUP_NAME_LEN);
    out
}

pub fn decode_group(body: &[u8]) -> Result<String, ProtoError> {
    let mut r = Reader::new(body);
    let g = read_group(&mut r, GROUP_NAME_LEN)?;
    r.expect_end()?;
    Ok(g)
}

/// Body of QUERY_FETCH_ONE / QUERY_FETCH_ALL / QUERY_UPDATE: `group 16, remote filename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileQuery {
    pub group: String,
    pub filename: String,
}

impl FileQuery {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let rest = r.rest();
        if rest.is_empty() || rest.len() > 256 {
            return Err(invalid(
                "filename",
                format!("length {} not in 1..=256", rest.len()),
            ));
        }
        let filename = std::str::from_utf8(rest)
            .map_err(|_| invalid("filename", "not UTF-8"))?
            .to_string();
        Ok(FileQuery { group, filename })
    }
}

/// A storage address as clients receive it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageAddr {
    pub ip: String,
    pub port: u16,
}

fn put_addr(out: &mut Vec<u8>, a: &StorageAddr, ip_size: usize) {
    put_fixed(out, a.ip.as_bytes(), ip_size - 1);
    put_u64(out, a.port as u64);
}

fn read_addr(r: &mut Reader<'_>, ip_size: usize) -> Result<StorageAddr, ProtoError> {
    let raw = r.bytes(ip_size - 1)?;
    let ip = std::str::from_utf8(fixed_str(raw))
        .map_err(|_| invalid("ip", "not UTF-8"))?
        .to_string();
    let port = port_from(r.i64()?, "port")?;
    Ok(StorageAddr { ip, port })
}

/// Reading an IP field of the wrong width leaves text after the NUL padding or a non-address;
/// used to choose between the 16- and 46-byte layouts when a length fits both.
fn plausible_ip(ip: &str) -> bool {
    !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_ok()
}

/// QUERY_STORE_*_ONE reply: where to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTarget {
    pub group: String,
    pub addr: StorageAddr,
    pub store_path_index: u8,
}

impl StoreTarget {
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        put_addr(&mut out, &self.addr, ip_size);
        out.push(self.store_path_index);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let ip_size = IP_SIZES
            .into_iter()
            .find(|s| body.len() == GROUP_NAME_LEN + s - 1 + 8 + 1)
            .ok_or_else(|| bad_len(body.len(), "40 or 70"))?;
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let addr = read_addr(&mut r, ip_size)?;
        let store_path_index = r.u8()?;
        Ok(StoreTarget {
            group,
            addr,
            store_path_index,
        })
    }
}

/// QUERY_STORE_*_ALL reply: `group 16, n x (ip, port 8), store_path_index 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTargets {
    pub group: String,
    pub addrs: Vec<StorageAddr>,
    pub store_path_index: u8,
}

impl StoreTargets {
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        for a in &self.addrs {
            put_addr(&mut out, a, ip_size);
        }
        out.push(self.store_path_index);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let inner = body
            .len()
            .checked_sub(GROUP_NAME_LEN + 1)
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_len(body.len(), "group + n x (ip, port) + 1"))?;
        let mut last_err = bad_len(body.len(), "group + n x (ip, port) + 1");
        for ip_size in IP_SIZES {
            let rec = ip_size - 1 + 8;
            if inner % rec != 0 {
                continue;
            }
            let attempt = (|| {
                let mut r = Reader::new(body);
                let group = read_group(&mut r, GROUP_NAME_LEN)?;
                let mut addrs = Vec::new();
                for _ in 0..inner / rec {
                    let a = read_addr(&mut r, ip_size)?;
                    if !plausible_ip(&a.ip) {
                        return Err(invalid("ip", format!("{:?}", a.ip)));
                    }
                    addrs.push(a);
                }
                let store_path_index = r.u8()?;
                Ok(StoreTargets {
                    group,
                    addrs,
                    store_path_index,
                })
            })();
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

/// QUERY_FETCH_ONE / QUERY_UPDATE reply (`group 16, ip, port 8`, 39 or 69 bytes) and
/// QUERY_FETCH_ALL reply (`group 16, n x (ip, port 8)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTargets {
    pub group: String,
    pub addrs: Vec<StorageAddr>,
}

impl FetchTargets {
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        for a in &self.addrs {
            put_addr(&mut out, a, ip_size);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let inner = body
            .len()
            .checked_sub(GROUP_NAME_LEN)
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_len(body.len(), "group + n x (ip, port)"))?;
        let mut last_err = bad_len(body.len(), "group + n x (ip, port)");
        for ip_size in IP_SIZES {
            let rec = ip_size - 1 + 8;
            if inner % rec != 0 {
                continue;
            }
            let attempt = (|| {
                let mut r = Reader::new(body);
                let group = read_group(&mut r, GROUP_NAME_LEN)?;
                let mut addrs = Vec::new();
                for _ in 0..inner / rec {
                    let a = read_addr(&mut r, ip_size)?;
                    if !plausible_ip(&a.ip) {
                        return Err(invalid("ip", format!("{:?}", a.ip)));
                    }
                    addrs.push(a);
                }
                Ok(FetchTargets { group, addrs })
            })();
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

/// SERVER_LIST_STORAGE (92) request: `group 16 [+ storage id or ip]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListStorageReq {
    pub group: String,
    pub storage_id: Option<String>,
}

impl ListStorageReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        if let Some(id) = &self.storage_id {
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let rest = fixed_str(r.rest());
        if rest.len() > IP_ADDRESS_SIZE {
            return Err(invalid("storage_id", "longer than an IP address"));
        }
        let storage_id = std::str::from_utf8(rest)
            .map_err(|_| invalid("storage_id", "not UTF-8"))?
            .to_string();
        Ok(ListStorageReq {
            group,
            storage_id: (!storage_id.is_empty()).then_some(storage_id),
        })
    }
}

/// `TrackerGroupStat` (113 B): one group in SERVER_LIST_ALL_GROUPS / SERVER_LIST_ONE_GROUP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupStat {
    pub group: String,
    pub total_mb: i64,
    pub free_mb: i64,
    pub reserved_mb: i64,
    pub trunk_free_mb: i64,
    pub storage_count: i64,
    /// The group's storage port, or -1 when its storages listen on different ports.
    pub storage_port: i64,
    pub readable_count: i64,
    pub writable_count: i64,
    pub current_write_server: i64,
    pub store_path_count: i64,
    pub subdir_count_per_path: i64,
    pub current_trunk_file_id: i64,
}

impl GroupStat {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_fixed(out, self.group.as_bytes(), GROUP_NAME_FIELD_IN_JOIN);
        for v in [
            self.total_mb,
            self.free_mb,
            self.reserved_mb,
            self.trunk_free_mb,
            self.storage_count,
            self.storage_port,
            self.readable_count,
            self.writable_count,
            self.current_write_server,
            self.store_path_count,
            self.subdir_count_per_path,
            self.current_trunk_file_id,
        ] {
            put_i64(out, v);
        }
    }

    pub fn encode_list(groups: &[GroupStat]) -> Vec<u8> {
        let mut out = Vec::with_capacity(groups.len() * GROUP_STAT_LEN);
        for g in groups {
            g.encode_into(&mut out);
        }
        out
    }

    pub fn decode_list(body: &[u8]) -> Result<Vec<GroupStat>, ProtoError> {
        if !body.len().is_multiple_of(GROUP_STAT_LEN) {
            return Err(bad_len(
                body.len(),
                format!("a multiple of {GROUP_STAT_LEN}"),
            ));
        }
        let mut r = Reader::new(body);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            let group = r.fixed_string(GROUP_NAME_FIELD_IN_JOIN, "group")?;
            let mut v = [0i64; 12];
            for x in v.iter_mut() {
                *x = r.i64()?;
            }
            out.push(GroupStat {
                group,
                total_mb: v[0],
                free_mb: v[1],
                reserved_mb: v[2],
                trunk_free_mb: v[3],
                storage_count: v[4],
                storage_port: v[5],
                readable_count: v[6],
                writable_count: v[7],
                current_write_server: v[8],
                store_path_count: v[9],
                subdir_count_per_path: v[10],
                current_trunk_file_id: v[11],
            });
        }
        Ok(out)
    }
}

/// `TrackerStorageStat`: one storage in SERVER_LIST_STORAGE (487 B with 16-byte IPs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageStat {
    pub status: u8,
    pub rw_mode: u8,
    pub id: String,
    pub ip: String,
    pub src_id: String,
    pub version: String,
    pub join_time: i64,
    pub up_time: i64,
    pub total_mb: i64,
    pub free_mb: i64,
    pub reserved_mb: i64,
    pub upload_priority: i64,
    pub store_path_count: i64,
    pub subdir_count_per_path: i64,
    pub current_write_path: i64,
    pub storage_port: i64,
    pub stats: StorageStats,
    pub if_trunk_server: bool,
}

impl StorageStat {
    pub fn record_len(ip_size: usize) -> usize {
        STORAGE_STAT_FIXED_LEN + ip_size
    }

    pub fn encode_into(&self, out: &mut Vec<u8>, ip_size: usize) {
        out.push(self.status);
        out.push(self.rw_mode);
        put_fixed(out, self.id.as_bytes(), STORAGE_ID_LEN);
        put_fixed(out, self.ip.as_bytes(), ip_size);
        put_fixed(out, self.src_id.as_bytes(), STORAGE_ID_LEN);
        put_fixed(out, self.version.as_bytes(), VERSION_LEN);
        for v in [
            self.join_time,
            self.up_time,
            self.total_mb,
            self.free_mb,
            self.reserved_mb,
            self.upload_priority,
            self.store_path_count,
            self.subdir_count_per_path,
            self.current_write_path,
            self.storage_port,
        ] {
            put_i64(out, v);
        }
        self.stats.encode_into(out);
        out.push(self.if_trunk_server as u8);
    }

    pub fn encode_list(list: &[StorageStat], ip_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(list.len() * Self::record_len(ip_size));
        for s in list {
            s.encode_into(&mut out, ip_size);
        }
        out
    }

    fn read(r: &mut Reader<'_>, ip_size: usize) -> Result<Self, ProtoError> {
        let status = r.u8()?;
        let rw_mode = r.u8()?;
        let id = r.fixed_string(STORAGE_ID_LEN, "id")?;
        let ip = r.fixed_string(ip_size, "ip")?;
        let src_id = r.fixed_string(STORAGE_ID_LEN, "src_id")?;
        let version = String::from_utf8_lossy(r.fixed(VERSION_LEN)?).into_owned();
        let mut v = [0i64; 10];
        for x in v.iter_mut() {
            *x = r.i64()?;
        }
        let stats = StorageStats::read(r)?;
        let if_trunk_server = r.u8()? != 0;
        Ok(StorageStat {
            status,
            rw_mode,
            id,
            ip,
            src_id,
            version,
            join_time: v[0],
            up_time: v[1],
            total_mb: v[2],
            free_mb: v[3],
            reserved_mb: v[4],
            upload_priority: v[5],
            store_path_count: v[6],
            subdir_count_per_path: v[7],
            current_write_path: v[8],
            storage_port: v[9],
            stats,
            if_trunk_server,
        })
    }

    /// Decodes a list, choosing the IP field width whose records parse as addresses.
    pub fn decode_list(body: &[u8]) -> Result<Vec<StorageStat>, ProtoError> {
        if body.is_empty() {
            return Ok(Vec::new());
        }
        let mut last_err = bad_len(body.len(), "n x 487 or n x 517");
        for ip_size in IP_SIZES {
            let rec = Self::record_len(ip_size);
            if !body.len().is_multiple_of(rec) {
                continue;
            }
            let attempt = (|| {
                let mut r = Reader::new(body);
                let mut out = Vec::new();
                while r.remaining() > 0 {
                    let s = Self::read(&mut r, ip_size)?;
                    if !plausible_ip(&s.ip) {
                        return Err(invalid("ip", format!("{:?}", s.ip)));
                    }
                    out.push(s);
                }
                Ok(out)
            })();
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

#[cfg(test)]
pub(crate) mod vectors {
    //! A small reader for `tests/vectors/fastdfs-vectors.txt`: blocks of captured messages, as bytes.
    use crate::proto::{Header, HEADER_LEN};
    use std::collections::BTreeMap;

    /// One captured message: who sent it and its complete bytes (header + body).
    pub(crate) struct Msg {
        pub(crate) to_tracker: bool,
        pub(crate) raw: Vec<u8>,
    }

    impl Msg {
        pub(crate) fn header(&self) -> Header {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&self.raw[..HEADER_LEN]);
            Header::decode(&h).expect("captured header")
        }
        pub(crate) fn body(&self) -> &[u8] {
            &self.raw[HEADER_LEN..]
        }
        pub(crate) fn cmd(&self) -> u8 {
            self.header().cmd
        }
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    /// The FastDFS 6.16.1 captures, kept in the repository (tests/vectors/) so a clone tests alone.
    pub(crate) fn vectors_text() -> String {
        const PATH: &str = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/fastdfs-vectors.txt"
        );
        std::fs::read_to_string(PATH).unwrap_or_else(|e| panic!("{PATH}: {e}"))
    }

    /// Block number -> its messages in capture order.
    pub(crate) fn blocks() -> BTreeMap<u32, Vec<Msg>> {
        let text = vectors_text();
        let mut out: BTreeMap<u32, Vec<Msg>> = BTreeMap::new();
        let mut current: Option<u32> = None;
        let mut to_tracker = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("### [") {
                let n = rest.split(']').next().and_then(|n| n.parse().ok());
                current = n;
                if let Some(n) = n {
                    out.entry(n).or_default();
                }
            } else if line.starts_with("  ") && !line.starts_with("   ") && line.contains(" -> ") {
                // Direction line: `  client(...) -> tracker:22122  cmd=...`.
                let (_, dest) = line.split_once(" -> ").expect("arrow");
                to_tracker = dest.starts_with("tracker") || dest.starts_with("storage");
                to_tracker = to_tracker && !line.trim_start().starts_with("tracker");
            } else if let Some(h) = line.trim_start().strip_prefix("HEX ") {
                if let Some(n) = current {
                    out.entry(n).or_default().push(Msg {
                        to_tracker,
                        raw: hex(h.trim()),
                    });
                }
            }
        }
        out
    }

    pub(crate) fn block(all: &BTreeMap<u32, Vec<Msg>>, n: u32) -> &Vec<Msg> {
        let b = all.get(&n).unwrap_or_else(|| panic!("block [{n}] missing"));
        assert!(!b.is_empty(), "block [{n}] has no messages");
        b
    }

    /// Re-frames `body` as `msg`'s command/status and compares with the captured bytes.
    pub(crate) fn assert_same(msg: &Msg, body: Vec<u8>) {
        let h = msg.header();
        let mut framed = Header::new(h.cmd, h.status, body.len() as u64)
            .encode()
            .to_vec();
        framed.extend_from_slice(&body);
        assert_eq!(hex_of(&framed), hex_of(&msg.raw), "cmd {}", h.cmd);
    }

    pub(crate) fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    //! Byte-for-byte checks against `tests/vectors/fastdfs-vectors.txt` (captured from FastDFS 6.16.1's
    //! own tools): every tracker message there is decoded and re-encoded to the same bytes.
    use super::*;
    use crate::proto::cmd;

    use super::vectors::*;

    /// Checks a request/reply pair of a tracker query that answers with one storage address.
    fn check_fetch_one(req: &Msg, reply: &Msg, ip: &str, port: u16) {
        let q = FileQuery::decode(req.body()).unwrap();
        assert_eq!(q.group, "group1");
        assert!(crate::proto::fileid::RemoteName::parse_str(&q.filename).is_ok());
        assert_same(req, q.encode());
        let r = FetchTargets::decode(reply.body()).unwrap();
        assert_eq!(reply.body().len(), 39);
        assert_eq!(
            r.addrs,
            vec![StorageAddr {
                ip: ip.into(),
                port
            }]
        );
        assert_same(reply, r.encode(IPV4_ADDRESS_SIZE));
    }

    #[test]
    fn vector_get_my_ip_and_quit() {
        let all = blocks();
        for n in [0, 3] {
            let b = block(&all, n);
            assert!(b[0].to_tracker && b[0].cmd() == cmd::STORAGE_GET_MY_IP);
            let req = GetMyIpReq::decode(b[0].body()).unwrap();
            assert_eq!(req.group, "group1");
            assert_eq!(req.port, if n == 0 { 23000 } else { 23001 });
            assert_same(&b[0], req.encode());
            assert_eq!(b[1].cmd(), cmd::RESP);
            assert_eq!(b[1].body(), b"127.0.0.1");
            assert_eq!(b[2].cmd(), cmd::QUIT);
            assert!(b[2].body().is_empty());
        }
    }

    #[test]
    fn vector_parameter_req() {
        let all = blocks();
        for n in [1, 4] {
            let b = block(&all, n);
            assert_eq!(b[0].cmd(), cmd::STORAGE_PARAMETER_REQ);
            assert!(b[0].body().is_empty());
            let p = TrackerParams::decode(b[1].body()).unwrap();
            assert!(p.use_storage_id);
            assert_eq!(p.id_type_in_filename, "id");
            assert_eq!(p.response_ip_addr_size, 16);
            assert_eq!(p.storage_sync_file_max_delay, 86400);
            assert_eq!(p.reserved_storage_space, "20.00%");
            let ours = TrackerParams {
                use_storage_id: true,
                id_type_in_filename: "id".into(),
                trust_storage_server_id: true,
                response_ip_addr_size: 16,
                storage_ip_changed_auto_adjust: true,
                storage_sync_file_max_delay: 86400,
                store_path: 0,
                reserved_storage_space: "20.00%".into(),
                store_slave_file_use_link: false,
                raw: BTreeMap::new(),
            };
            assert_same(&b[1], ours.encode());
        }
    }

    #[test]
    fn vector_fetch_storage_ids() {
        let all = blocks();
        for n in [2, 5] {
            let b = block(&all, n);
            assert_eq!(b[0].cmd(), cmd::STORAGE_FETCH_STORAGE_IDS);
            let req = FetchStorageIdsReq::decode(b[0].body()).unwrap();
            assert_eq!(
                req,
                FetchStorageIdsReq {
                    start_index: 0,
                    allow_empty: false
                }
            );
            assert_same(&b[0], req.encode());
            let reply = FetchStorageIdsReply::decode(b[1].body()).unwrap();
            assert_eq!(reply.total, 2);
            assert_eq!(
                reply.records[1],
                StorageIdRecord {
                    id: "100002".into(),
                    group: "group1".into(),
                    addr: "127.0.0.1:23001".into()
                }
            );
            assert_same(&b[1], reply.encode());
        }
    }

    #[test]
    fn vector_storage_long_connection_block_6() {
        let all = blocks();
        let b = block(&all, 6);
        // JOIN
        let join = JoinReq::decode(b[0].body()).unwrap();
        assert_eq!(b[0].body().len(), 161);
        assert_eq!(join.group, "group1");
        assert_eq!(join.storage_port, 23000);
        assert_eq!(join.store_path_count, 1);
        assert_eq!(join.subdir_count_per_path, 256);
        assert_eq!(join.upload_priority, 10);
        assert_eq!(join.join_time, 1795271041);
        assert_eq!(join.up_time, 1795272002);
        assert_eq!(join.version, "6.16.1");
        assert_eq!((join.init_flag, join.status), (0, 0));
        assert_eq!(join.storage_id, "100001");
        assert_eq!(join.current_tracker_ip, "127.0.0.1");
        assert_eq!(join.trackers, vec!["127.0.0.1:22122".to_string()]);
        assert_same(&b[0], join.encode());
        let jr = JoinReply::decode(b[1].body()).unwrap();
        assert_eq!(jr.status, StorageStatus::Online as u8);
        assert_eq!(jr.src_id, "100002");
        assert_same(&b[1], jr.encode());
        // SYNC_NOTIFY
        assert_eq!(b[2].cmd(), cmd::STORAGE_SYNC_NOTIFY);
        let sn = SyncSource::decode(b[2].body()).unwrap();
        assert_eq!(sn.src_id, "100002");
        assert_eq!(sn.until_timestamp, 1795271076);
        assert_same(&b[2], sn.encode());
        assert!(b[3].body().is_empty());

        let mut beats = 0;
        let mut briefs_seen = false;
        for pair in b[4..].chunks(2) {
            let (req, reply) = (&pair[0], &pair[1]);
            assert!(req.to_tracker && !reply.to_tracker);
            match req.cmd() {
                cmd::STORAGE_BEAT => {
                    beats += 1;
                    let stats = decode_beat(req.body()).unwrap().expect("348-byte stats");
                    assert_eq!(req.body().len(), STAT_BLOCK_LEN);
                    assert_same(req, stats.encode());
                    if beats == 1 {
                        assert_eq!(stats.counters[STAT_TOTAL_UPLOAD_COUNT], 51018);
                        assert_eq!(stats.get("success_delete_count"), Some(51014));
                        assert_eq!(stats.get("total_download_bytes"), Some(8275733437));
                        assert_eq!(stats.get("success_sync_in_bytes"), Some(8044945078));
                        assert_eq!(stats.get("success_file_write_count"), Some(162155));
                        assert_eq!(stats.counters[STAT_LAST_SOURCE_UPDATE], 1795271983);
                        assert_eq!(stats.counters[STAT_LAST_SYNC_UPDATE], 1795271987);
                    }
                    if beats == 2 {
                        assert_eq!(stats.connections, [64, 0, 1]);
                    }
                    let r = ServerListReply::decode(reply.body()).unwrap();
                    assert_same(reply, r.encode());
                    if let Some(servers) = &r.group_servers {
                        briefs_seen = true;
                        assert_eq!(reply.body().len(), 1 + 3 * BRIEF_LEN);
                        assert_eq!(r.flags(), 5);
                        let leader = r.leader.as_ref().expect("leader brief");
                        assert_eq!((leader.port, leader.id.as_str()), (22122, "127.0.0.1"));
                        assert_eq!(
                            servers[1],
                            StorageBrief {
                                status: 7,
                                port: 23001,
                                id: "100002".into(),
                                ip: "127.0.0.1".into()
                            }
                        );
                    }
                }
                cmd::STORAGE_CHANGELOG_REQ => {
                    assert!(req.body().is_empty() && reply.body().is_empty());
                }
                cmd::STORAGE_REPORT_DISK_USAGE => {
                    let du = decode_disk_usage(req.body()).unwrap();
                    assert_eq!(
                        du,
                        vec![PathUsage {
                            total_mb: 258019,
                            free_mb: 81031
                        }]
                    );
                    assert_same(req, encode_disk_usage(&du));
                    let r = ServerListReply::decode(reply.body()).unwrap();
                    assert_eq!(r, ServerListReply::default());
                    assert_same(reply, r.encode());
                }
                cmd::STORAGE_SYNC_REPORT => {
                    let pos = decode_sync_report(req.body()).unwrap();
                    assert_eq!(pos.len(), 2);
                    assert_eq!(pos[1].src_id, "100002");
                    assert_eq!(pos[1].timestamp, 1795272024);
                    assert_same(req, encode_sync_report(&pos));
                    let r = ServerListReply::decode(reply.body()).unwrap();
                    assert_same(reply, r.encode());
                }
                other => panic!("unexpected command {other} in block [6]"),
            }
        }
        assert_eq!(beats, 3);
        assert!(briefs_seen, "block [6] carries a server list");
    }

    #[test]
    fn vector_join_without_sync_source_block_7() {
        let all = blocks();
        let b = block(&all, 7);
        let join = JoinReq::decode(b[0].body()).unwrap();
        assert_eq!(
            (join.storage_port, join.storage_id.as_str()),
            (23001, "100002")
        );
        assert_same(&b[0], join.encode());
        let jr = JoinReply::decode(b[1].body()).unwrap();
        assert_eq!((jr.status, jr.src_id.as_str()), (6, ""));
        assert_same(&b[1], jr.encode());
        let sn = SyncSource::decode(b[2].body()).unwrap();
        assert_eq!((sn.src_id.as_str(), sn.until_timestamp), ("", 0));
        assert_same(&b[2], sn.encode());
        assert_eq!(SyncSource::decode_reply(b[2].body()).unwrap(), None);
        // The rest: beats (possibly empty), changelog requests, disk usage.
        let mut empty_beats = 0;
        for pair in b[4..].chunks(2) {
            let req = &pair[0];
            match req.cmd() {
                cmd::STORAGE_BEAT => {
                    let stats = decode_beat(req.body()).unwrap();
                    empty_beats += stats.is_none() as usize;
                    let again = stats.map(|s| s.encode()).unwrap_or_default();
                    assert_same(req, again);
                }
                cmd::STORAGE_REPORT_DISK_USAGE => {
                    assert_same(
                        req,
                        encode_disk_usage(&decode_disk_usage(req.body()).unwrap()),
                    );
                }
                cmd::STORAGE_CHANGELOG_REQ => assert!(req.body().is_empty()),
                other => panic!("unexpected command {other} in block [7]"),
            }
            let r = ServerListReply::decode(pair[1].body());
            if req.cmd() != cmd::STORAGE_CHANGELOG_REQ {
                assert_same(&pair[1], r.unwrap().encode());
            }
        }
        assert_eq!(empty_beats, 1, "block [7] has one empty BEAT");
    }

    #[test]
    fn vector_list_groups_and_storages_block_8() {
        let all = blocks();
        let b = block(&all, 8);
        assert_eq!(b[0].cmd(), cmd::SERVER_LIST_ALL_GROUPS);
        assert!(b[0].body().is_empty());
        let groups = GroupStat::decode_list(b[1].body()).unwrap();
        assert_eq!(b[1].body().len(), GROUP_STAT_LEN);
        let g = &groups[0];
        assert_eq!(g.group, "group1");
        assert_eq!(
            (g.total_mb, g.free_mb, g.reserved_mb),
            (258019, 81031, 51603)
        );
        assert_eq!(g.storage_count, 2);
        assert_eq!((g.readable_count, g.writable_count), (2, 2));
        assert_eq!((g.store_path_count, g.subdir_count_per_path), (1, 256));
        assert_same(&b[1], GroupStat::encode_list(&groups));

        let req = ListStorageReq::decode(b[2].body()).unwrap();
        assert_eq!(
            (req.group.as_str(), req.storage_id.as_deref()),
            ("group1", None)
        );
        assert_same(&b[2], req.encode());
        let list = StorageStat::decode_list(b[3].body()).unwrap();
        assert_eq!(StorageStat::record_len(16), 487);
        assert_eq!(list.len(), 2);
        let s = &list[0];
        assert_eq!(
            (s.status, s.id.as_str(), s.ip.as_str()),
            (7, "100001", "127.0.0.1")
        );
        assert_eq!(
            (s.src_id.as_str(), s.version.as_str()),
            ("100002", "6.16.1")
        );
        assert_eq!((s.storage_port, s.upload_priority), (23000, 10));
        assert_eq!((s.total_mb, s.free_mb), (258019, 81031));
        assert_eq!(s.stats.counters[STAT_TOTAL_UPLOAD_COUNT], 51018);
        assert_eq!(list[1].storage_port, 23001);
        assert_same(&b[3], StorageStat::encode_list(&list, IPV4_ADDRESS_SIZE));
    }

    #[test]
    fn vector_query_store_one() {
        let all = blocks();
        for (n, port) in [(9, 23000), (21, 23001), (33, 23000)] {
            let b = block(&all, n);
            assert_eq!(b[0].cmd(), cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE);
            assert!(b[0].body().is_empty());
            let t = StoreTarget::decode(b[1].body()).unwrap();
            assert_eq!(b[1].body().len(), 40);
            assert_eq!(t.group, "group1");
            assert_eq!(t.addr.ip, "127.0.0.1");
            assert_eq!((t.addr.port, t.store_path_index), (port, 0));
            assert_same(&b[1], t.encode(IPV4_ADDRESS_SIZE));
        }
    }

    #[test]
    fn vector_query_update_and_fetch_one() {
        let all = blocks();
        for (n, port) in [
            (11, 23000),
            (13, 23000),
            (15, 23000),
            (17, 23000),
            (23, 23001),
            (25, 23001),
            (27, 23000),
            (35, 23000),
            (40, 23000),
        ] {
            let b = block(&all, n);
            let c = b[0].cmd();
            assert!(c == cmd::SERVICE_QUERY_UPDATE || c == cmd::SERVICE_QUERY_FETCH_ONE);
            check_fetch_one(&b[0], &b[1], "127.0.0.1", port);
        }
    }

    #[test]
    fn vector_active_test() {
        let all = blocks();
        let b = block(&all, 19);
        assert_eq!(b[0].cmd(), cmd::ACTIVE_TEST);
        assert_same(&b[0], Vec::new());
        assert_eq!(b[1].cmd(), cmd::RESP);
        assert_same(&b[1], Vec::new());
    }

    #[test]
    fn vector_sync_report_block_39() {
        let all = blocks();
        let b = block(&all, 39);
        let pos = decode_sync_report(b[0].body()).unwrap();
        assert_eq!(
            pos,
            vec![
                SyncPosition {
                    src_id: "100001".into(),
                    timestamp: 1795272134
                },
                SyncPosition {
                    src_id: "100002".into(),
                    timestamp: 0
                }
            ]
        );
        assert_same(&b[0], encode_sync_report(&pos));
        assert_eq!(ServerListReply::decode(b[1].body()).unwrap().flags(), 0);
    }

    #[test]
    fn every_tracker_message_in_the_vectors_is_understood() {
        // Each tracker block's requests decode with the codec for their command.
        let all = blocks();
        let tracker_blocks = [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
        ];
        let more = [33, 35, 39, 40];
        for n in tracker_blocks.iter().chain(more.iter()) {
            for m in block(&all, *n).iter().filter(|m| m.to_tracker) {
                let body = m.body();
                let ok = match m.cmd() {
                    cmd::STORAGE_GET_MY_IP => GetMyIpReq::decode(body).is_ok(),
                    cmd::STORAGE_JOIN => JoinReq::decode(body).is_ok(),
                    cmd::STORAGE_BEAT => decode_beat(body).is_ok(),
                    cmd::STORAGE_REPORT_DISK_USAGE => decode_disk_usage(body).is_ok(),
                    cmd::STORAGE_SYNC_REPORT => decode_sync_report(body).is_ok(),
                    cmd::STORAGE_SYNC_NOTIFY => SyncSource::decode(body).is_ok(),
                    cmd::STORAGE_FETCH_STORAGE_IDS => FetchStorageIdsReq::decode(body).is_ok(),
                    cmd::SERVER_LIST_STORAGE => ListStorageReq::decode(body).is_ok(),
                    cmd::SERVICE_QUERY_FETCH_ONE | cmd::SERVICE_QUERY_UPDATE => {
                        FileQuery::decode(body).is_ok()
                    }
                    cmd::QUIT
                    | cmd::ACTIVE_TEST
                    | cmd::STORAGE_PARAMETER_REQ
                    | cmd::STORAGE_CHANGELOG_REQ
                    | cmd::SERVER_LIST_ALL_GROUPS
                    | cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE => body.is_empty(),
                    other => panic!("block [{n}]: no codec for command {other}"),
                };
                assert!(ok, "block [{n}] command {} did not decode", m.cmd());
            }
        }
    }

    // --- layouts without a captured example: built from PROTOCOL.md section 3 and 5 -----------

    #[test]
    fn ipv6_sized_replies_are_70_and_69_bytes_and_decode() {
        let t = StoreTarget {
            group: "group1".into(),
            addr: StorageAddr {
                ip: "127.0.0.1".into(),
                port: 23000,
            },
            store_path_index: 1,
        };
        let wire = t.encode(IP_ADDRESS_SIZE);
        assert_eq!(wire.len(), 70);
        assert_eq!(StoreTarget::decode(&wire).unwrap(), t);
        let f = FetchTargets {
            group: "group1".into(),
            addrs: vec![t.addr.clone()],
        };
        assert_eq!(f.encode(IP_ADDRESS_SIZE).len(), 69);
        assert_eq!(FetchTargets::decode(&f.encode(IP_ADDRESS_SIZE)).unwrap(), f);
        let stat = StorageStat {
            ip: "::1".into(),
            ..Default::default()
        };
        let one = StorageStat::encode_list(std::slice::from_ref(&stat), IP_ADDRESS_SIZE);
        assert_eq!(one.len(), 517);
        assert_eq!(StorageStat::decode_list(&one).unwrap(), vec![stat]);
    }

    #[test]
    fn store_all_and_fetch_all_layouts() {
        let addrs: Vec<StorageAddr> = (0..3)
            .map(|i| StorageAddr {
                ip: format!("10.0.0.{i}"),
                port: 23000 + i,
            })
            .collect();
        for ip_size in IP_SIZES {
            let all = StoreTargets {
                group: "g1".into(),
                addrs: addrs.clone(),
                store_path_index: 2,
            };
            let wire = all.encode(ip_size);
            assert_eq!(wire.len(), 16 + 3 * (ip_size - 1 + 8) + 1);
            assert_eq!(*wire.last().unwrap(), 2);
            assert_eq!(StoreTargets::decode(&wire).unwrap(), all);
            let f = FetchTargets {
                group: "g1".into(),
                addrs: addrs.clone(),
            };
            let wire = f.encode(ip_size);
            assert_eq!(wire.len(), 16 + 3 * (ip_size - 1 + 8));
            assert_eq!(FetchTargets::decode(&wire).unwrap(), f);
        }
    }

    #[test]
    fn sync_dest_and_report_status_round_trip() {
        let s = Some(SyncSource {
            src_id: "100002".into(),
            until_timestamp: 1795271076,
        });
        let wire = SyncSource::encode_reply(&s);
        assert_eq!(wire.len(), 24);
        assert_eq!(SyncSource::decode_reply(&wire).unwrap(), s);
        assert_eq!(SyncSource::decode_reply(&[]).unwrap(), None);
        assert!(SyncSource::decode_reply(&[0; 23]).is_err());
        let rs = ReportStatusReq {
            group: "group1".into(),
            brief: StorageBrief {
                status: StorageStatus::Syncing as u8,
                port: 23001,
                id: "100002".into(),
                ip: "127.0.0.1".into(),
            },
        };
        let wire = rs.encode();
        assert_eq!(wire.len(), 16 + BRIEF_LEN);
        assert_eq!(ReportStatusReq::decode(&wire).unwrap(), rs);
        let src = SyncSrcReq {
            group: "group1".into(),
            dest_id: "100002".into(),
        };
        assert_eq!(SyncSrcReq::decode(&src.encode()).unwrap(), src);
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert!(JoinReq::decode(&[0; 10]).is_err());
        assert!(GetMyIpReq::decode(b"\0\0\0").is_err());
        assert!(decode_beat(&[0; 347]).is_err());
        assert!(decode_disk_usage(&[]).is_err());
        assert!(decode_disk_usage(&[0; 15]).is_err());
        assert!(decode_sync_report(&[0; 19]).is_err());
        assert!(FileQuery::decode(b"group1").is_err());
        assert!(decode_group(b"bad group name!!").is_err());
        assert!(StoreTarget::decode(&[0; 41]).is_err());
        assert!(FetchTargets::decode(&[0; 16]).is_err());
        assert!(ServerListReply::decode(&[4, 0, 0]).is_err());
        assert!(GroupStat::decode_list(&[0; 112]).is_err());
        assert!(StorageStat::decode_list(&[0; 486]).is_err());
        let mut join = JoinReq::decode(&hex(
            "67726f757031000000000000000000000000000000000059d800000000000000010000000000000100000000000000000a000000006b01a981000000006b01ad42362e31362e3100000000313030303031000000000000000000003132372e302e302e310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000013132372e302e302e313a32323132320a",
        ))
        .unwrap();
        join.trackers.push("x:1".into());
        let mut wire = join.encode();
        // Claim one tracker but list two.
        wire[137..145].copy_from_slice(&1u64.to_be_bytes());
        assert!(JoinReq::decode(&wire).is_err());
    }
}
