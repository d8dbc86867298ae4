//! Listing commands (SERVER_LIST_STORAGE 92, SERVER_LIST_ONE_GROUP 90,
//! SERVER_LIST_ALL_GROUPS 91): group and storage stat records.

use super::join::StorageStats;
use super::query::{encode_group, plausible_ip};
use super::{
    bad_len, invalid, read_group, GROUP_NAME_FIELD_IN_JOIN, GROUP_STAT_LEN, IP_SIZES,
    STORAGE_STAT_FIXED_LEN,
};
use crate::proto::fields::{fixed_str, put_fixed, put_i64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, IP_ADDRESS_SIZE, STORAGE_ID_LEN, VERSION_LEN};

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
