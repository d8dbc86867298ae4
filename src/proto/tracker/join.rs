//! GET_MY_IP (60), JOIN (81) and BEAT (83): a storage announcing itself to the tracker and
//! the stats block it beats with.

use super::{
    bad_len, invalid, port_from, read_group, GROUP_NAME_FIELD_IN_JOIN, STAT_BLOCK_LEN,
    STAT_COUNTERS,
};
use crate::proto::fields::{put_fixed, put_i64, put_u32, put_u64, Reader};
use crate::proto::{ProtoError, IP_ADDRESS_SIZE, STORAGE_ID_LEN, VERSION_LEN};

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
    /// The JOIN a C FastDFS 6.16.1 storage with one store path (256 subdirectories, upload
    /// priority 10) sends, before its times, id and trackers are filled in (`..` overrides).
    /// Tests, benchmarks and simulators start from it instead of a literal each.
    pub fn c_storage(group: &str, port: u16) -> JoinReq {
        JoinReq {
            group: group.into(),
            storage_port: port,
            store_path_count: 1,
            subdir_count_per_path: 256,
            upload_priority: 10,
            join_time: 0,
            up_time: 0,
            version: "6.16.1".into(),
            init_flag: 0,
            status: 0,
            storage_id: String::new(),
            current_tracker_ip: String::new(),
            trackers: vec![],
        }
    }

    /// `c_storage` as the unit tests send it: with an id, times and this host's tracker.
    #[cfg(test)]
    pub fn for_test(group: &str, port: u16, id: &str) -> JoinReq {
        JoinReq {
            join_time: 1,
            up_time: 2,
            storage_id: id.into(),
            current_tracker_ip: "127.0.0.1".into(),
            trackers: vec!["127.0.0.1:22122".into()],
            ..JoinReq::c_storage(group, port)
        }
    }

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
