//! What a storage fetches from the tracker at start: FETCH_STORAGE_IDS (69) and the tracker's
//! parameters, PARAMETER_REQ (75).

use super::invalid;
use crate::proto::fields::{put_u32, Reader};
use crate::proto::{ProtoError, IPV4_ADDRESS_SIZE};
use std::collections::BTreeMap;

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
