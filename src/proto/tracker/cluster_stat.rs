//! The monitoring commands of C FastDFS 6.15.5 / 6.16 (`fdfs_tracker_stat`,
//! `fdfs_storage_stat`, `fdfs_volumn_stat`): SERVER_GET_LEADER (95),
//! SERVER_TRACKER_CLUSTER_STAT (96), SERVER_STORAGE_CLUSTER_STAT (97),
//! SERVER_STORAGE_VOLUMN_STAT (98).
//!
//! Layouts from C's tracker/tracker_proto.h and tracker/tracker_types.h (6.16.0 tree, the
//! version with all four; no capture holds them). Every field is a byte, a big-endian
//! integer or a NUL-padded string; no struct has padding.
//!
//! ```text
//!  95 request: empty          reply: "ip:port" (no NUL; "[ip]:port" for IPv6)
//!  96 request: filter_by 1 | is_active 1 | is_leader 1
//!     reply:   count 1 | count x 90:
//!              host 52 | is_leader 1 | is_active 1 | alloc 4 | current 4 | max 4 |
//!              version 8 | up_time 8 | last_heartbeat_time 8
//!  97 request: filter_by 1 | op_type 1 ('=' or '!') | status 1 | is_trunk_server 1
//!     reply:   use_storage_id 1 | use_trunk_file 1 | count 4 | count x 106:
//!              id 16 | host 52 | is_trunk_server 1 | status 1 | alloc 4 | current 4 |
//!              max 4 | version 8 | up_time 8 | last_heartbeat_time 8
//!  98 request: filter_by 1 | is_disk_available 1 | is_trunk_available 1 | is_space_available 1
//!     reply:   use_trunk_file 1 | count 4 | count x 59:
//!              group 17 | total_mb 8 | free_mb 8 | reserved_mb 8 | avail_mb 8 |
//!              trunk_free_mb 8 | is_disk_available 1 | is_trunk_available 1
//! ```
//! `host` is FDFS_MAX_IP_PORT_SIZE (IPV6_ADDRESS_SIZE 46 + 6) whatever response_ip_addr_size.

use super::{bad_len, GROUP_NAME_FIELD_IN_JOIN};
use crate::proto::fields::{put_fixed, put_i64, put_u32, Reader};
use crate::proto::{ProtoError, IP_ADDRESS_SIZE, STORAGE_ID_LEN, VERSION_LEN};

/// `host` fields: "ip:port" in IPV6_ADDRESS_SIZE + 6 bytes.
pub const HOST_LEN: usize = IP_ADDRESS_SIZE + 6;
/// `TrackerClusterStatRespBodyPart`.
pub const TRACKER_STAT_LEN: usize = HOST_LEN + 2 + 12 + VERSION_LEN + 16;
/// `StorageClusterStatRespBodyPart`.
pub const STORAGE_CLUSTER_STAT_LEN: usize = STORAGE_ID_LEN + HOST_LEN + 2 + 12 + VERSION_LEN + 16;
/// `StorageVolumnStatRespBodyPart`.
pub const VOLUMN_STAT_LEN: usize = GROUP_NAME_FIELD_IN_JOIN + 5 * 8 + 2;

/// `filter_by` bits of 96 (FDFS_TRACKER_STAT_FILTER_BY_*).
pub const TRACKER_FILTER_BY_IS_ACTIVE: u8 = 1;
pub const TRACKER_FILTER_BY_IS_LEADER: u8 = 2;
/// `filter_by` bits of 97 (FDFS_STORAGE_STAT_FILTER_BY_*).
pub const STORAGE_FILTER_BY_IS_TRUNK_SERVER: u8 = 1;
pub const STORAGE_FILTER_BY_STATUS: u8 = 2;
/// `filter_by` bits of 98 (FDFS_VOLUMN_STAT_FILTER_BY_*).
pub const VOLUMN_FILTER_BY_IS_DISK_AVAILABLE: u8 = 1;
pub const VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE: u8 = 2;
pub const VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE: u8 = 4;

/// C's `format_ip_port`: "ip:port", an IPv6 address in brackets.
pub fn format_ip_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// An "ip:port" (or "[ip]:port") as trackers are named, split; None without a port.
pub fn split_ip_port(addr: &str) -> Option<(&str, u16)> {
    let (ip, port) = addr.rsplit_once(':')?;
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    Some((ip, port.parse().ok()?))
}

/// A filter body of exactly `N` bytes (C refuses any other length with EINVAL).
fn filter<const N: usize>(body: &[u8]) -> Result<[u8; N], ProtoError> {
    body.try_into()
        .map_err(|_| bad_len(body.len(), N.to_string()))
}

/// 96's request (`TrackerStatFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackerFilter {
    pub filter_by: u8,
    pub is_active: u8,
    pub is_leader: u8,
}

impl TrackerFilter {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let [filter_by, is_active, is_leader] = filter::<3>(body)?;
        Ok(TrackerFilter {
            filter_by,
            is_active,
            is_leader,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![self.filter_by, self.is_active, self.is_leader]
    }

    /// Whether a tracker with these flags is listed.
    pub fn admits(&self, is_leader: bool, is_active: bool) -> bool {
        (self.filter_by & TRACKER_FILTER_BY_IS_LEADER == 0 || self.is_leader == is_leader as u8)
            && (self.filter_by & TRACKER_FILTER_BY_IS_ACTIVE == 0
                || self.is_active == is_active as u8)
    }
}

/// One tracker in 96's reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackerClusterStat {
    pub host: String,
    pub is_leader: bool,
    pub is_active: bool,
    /// alloc_count, current_count, max_count.
    pub connections: [u32; 3],
    pub version: String,
    pub up_time: i64,
    pub last_heartbeat_time: i64,
}

impl TrackerClusterStat {
    /// The reply: a one-byte count, then the records.
    pub fn encode_list(list: &[TrackerClusterStat]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + list.len() * TRACKER_STAT_LEN);
        out.push(list.len().min(u8::MAX as usize) as u8);
        for t in list.iter().take(u8::MAX as usize) {
            put_fixed(&mut out, t.host.as_bytes(), HOST_LEN);
            out.push(t.is_leader as u8);
            out.push(t.is_active as u8);
            t.connections.iter().for_each(|&c| put_u32(&mut out, c));
            put_fixed(&mut out, t.version.as_bytes(), VERSION_LEN);
            put_i64(&mut out, t.up_time);
            put_i64(&mut out, t.last_heartbeat_time);
        }
        out
    }

    pub fn decode_list(body: &[u8]) -> Result<Vec<TrackerClusterStat>, ProtoError> {
        let mut r = Reader::new(body);
        let count = r.u8()? as usize;
        if r.remaining() != count * TRACKER_STAT_LEN {
            return Err(bad_len(
                body.len(),
                format!("1 + {count} x {TRACKER_STAT_LEN}"),
            ));
        }
        (0..count)
            .map(|_| {
                Ok(TrackerClusterStat {
                    host: r.fixed_string(HOST_LEN, "host")?,
                    is_leader: r.u8()? != 0,
                    is_active: r.u8()? != 0,
                    connections: [r.u32()?, r.u32()?, r.u32()?],
                    version: r.fixed_string(VERSION_LEN, "version")?,
                    up_time: r.i64()?,
                    last_heartbeat_time: r.i64()?,
                })
            })
            .collect()
    }
}

/// 97's request (`StorageStatFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageFilter {
    pub filter_by: u8,
    /// b'=' (status equal) or b'!' (status differs); anything else matches no storage.
    pub op_type: u8,
    pub status: u8,
    pub is_trunk_server: u8,
}

impl StorageFilter {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let [filter_by, op_type, status, is_trunk_server] = filter::<4>(body)?;
        Ok(StorageFilter {
            filter_by,
            op_type,
            status,
            is_trunk_server,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![
            self.filter_by,
            self.op_type,
            self.status,
            self.is_trunk_server,
        ]
    }

    /// Whether a storage is listed. The trunk bit counts only when trunk files are in use.
    pub fn admits(&self, status: u8, is_trunk_server: bool, use_trunk_file: bool) -> bool {
        if use_trunk_file
            && self.filter_by & STORAGE_FILTER_BY_IS_TRUNK_SERVER != 0
            && self.is_trunk_server != is_trunk_server as u8
        {
            return false;
        }
        if self.filter_by & STORAGE_FILTER_BY_STATUS == 0 {
            return true;
        }
        match self.op_type {
            b'=' => status == self.status,
            b'!' => status != self.status,
            _ => false,
        }
    }
}

/// One storage in 97's reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageClusterStat {
    pub id: String,
    pub host: String,
    pub is_trunk_server: bool,
    pub status: u8,
    pub connections: [u32; 3],
    pub version: String,
    pub up_time: i64,
    pub last_heartbeat_time: i64,
}

/// 97's reply header fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageClusterReply {
    pub use_storage_id: bool,
    pub use_trunk_file: bool,
    pub storages: Vec<StorageClusterStat>,
}

impl StorageClusterReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.storages.len() * STORAGE_CLUSTER_STAT_LEN);
        out.push(self.use_storage_id as u8);
        out.push(self.use_trunk_file as u8);
        put_u32(&mut out, self.storages.len() as u32);
        for s in &self.storages {
            put_fixed(&mut out, s.id.as_bytes(), STORAGE_ID_LEN);
            put_fixed(&mut out, s.host.as_bytes(), HOST_LEN);
            out.push(s.is_trunk_server as u8);
            out.push(s.status);
            s.connections.iter().for_each(|&c| put_u32(&mut out, c));
            put_fixed(&mut out, s.version.as_bytes(), VERSION_LEN);
            put_i64(&mut out, s.up_time);
            put_i64(&mut out, s.last_heartbeat_time);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let use_storage_id = r.u8()? != 0;
        let use_trunk_file = r.u8()? != 0;
        let count = r.u32()? as usize;
        if r.remaining() != count.saturating_mul(STORAGE_CLUSTER_STAT_LEN) {
            return Err(bad_len(body.len(), format!("6 + {count} x 106")));
        }
        let storages = (0..count)
            .map(|_| {
                Ok(StorageClusterStat {
                    id: r.fixed_string(STORAGE_ID_LEN, "id")?,
                    host: r.fixed_string(HOST_LEN, "host")?,
                    is_trunk_server: r.u8()? != 0,
                    status: r.u8()?,
                    connections: [r.u32()?, r.u32()?, r.u32()?],
                    version: r.fixed_string(VERSION_LEN, "version")?,
                    up_time: r.i64()?,
                    last_heartbeat_time: r.i64()?,
                })
            })
            .collect::<Result<_, ProtoError>>()?;
        Ok(StorageClusterReply {
            use_storage_id,
            use_trunk_file,
            storages,
        })
    }
}

/// 98's request (`VolumnStatFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumnFilter {
    pub filter_by: u8,
    pub is_disk_available: u8,
    pub is_trunk_available: u8,
    pub is_space_available: u8,
}

impl VolumnFilter {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let [filter_by, is_disk_available, is_trunk_available, is_space_available] =
            filter::<4>(body)?;
        Ok(VolumnFilter {
            filter_by,
            is_disk_available,
            is_trunk_available,
            is_space_available,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![
            self.filter_by,
            self.is_disk_available,
            self.is_trunk_available,
            self.is_space_available,
        ]
    }

    /// Whether a group is listed. The trunk bit counts only when trunk files are in use;
    /// "space available" is disk or trunk available.
    pub fn admits(&self, disk: bool, trunk: bool, use_trunk_file: bool) -> bool {
        let by = |bit: u8| self.filter_by & bit != 0;
        !(by(VOLUMN_FILTER_BY_IS_DISK_AVAILABLE) && self.is_disk_available != disk as u8
            || use_trunk_file
                && by(VOLUMN_FILTER_BY_IS_TRUNK_AVAILABLE)
                && self.is_trunk_available != trunk as u8
            || by(VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE)
                && self.is_space_available != (disk || trunk) as u8)
    }
}

/// One group in 98's reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumnStat {
    pub group: String,
    pub total_mb: i64,
    pub free_mb: i64,
    pub reserved_mb: i64,
    /// free - reserved (at least 0) when the disk is available, else 0.
    pub avail_mb: i64,
    /// The trunk free space when trunk space is available, else 0.
    pub trunk_free_mb: i64,
    pub is_disk_available: bool,
    pub is_trunk_available: bool,
}

/// 98's reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumnReply {
    pub use_trunk_file: bool,
    pub groups: Vec<VolumnStat>,
}

impl VolumnReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.groups.len() * VOLUMN_STAT_LEN);
        out.push(self.use_trunk_file as u8);
        put_u32(&mut out, self.groups.len() as u32);
        for g in &self.groups {
            put_fixed(&mut out, g.group.as_bytes(), GROUP_NAME_FIELD_IN_JOIN);
            for v in [
                g.total_mb,
                g.free_mb,
                g.reserved_mb,
                g.avail_mb,
                g.trunk_free_mb,
            ] {
                put_i64(&mut out, v);
            }
            out.push(g.is_disk_available as u8);
            out.push(g.is_trunk_available as u8);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let use_trunk_file = r.u8()? != 0;
        let count = r.u32()? as usize;
        if r.remaining() != count.saturating_mul(VOLUMN_STAT_LEN) {
            return Err(bad_len(body.len(), format!("5 + {count} x 59")));
        }
        let groups = (0..count)
            .map(|_| {
                Ok(VolumnStat {
                    group: r.fixed_string(GROUP_NAME_FIELD_IN_JOIN, "group")?,
                    total_mb: r.i64()?,
                    free_mb: r.i64()?,
                    reserved_mb: r.i64()?,
                    avail_mb: r.i64()?,
                    trunk_free_mb: r.i64()?,
                    is_disk_available: r.u8()? != 0,
                    is_trunk_available: r.u8()? != 0,
                })
            })
            .collect::<Result<_, ProtoError>>()?;
        Ok(VolumnReply {
            use_trunk_file,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_are_c_struct_sizes() {
        // 52 + 1 + 1 + 3 x 4 + 8 + 8 + 8; 16 + 52 + 1 + 1 + 12 + 8 + 8 + 8; 17 + 5 x 8 + 2.
        assert_eq!(
            (TRACKER_STAT_LEN, STORAGE_CLUSTER_STAT_LEN, VOLUMN_STAT_LEN),
            (90, 106, 59)
        );
    }

    #[test]
    fn filters_must_have_their_exact_length() {
        assert!(TrackerFilter::decode(&[0, 0]).is_err());
        assert!(TrackerFilter::decode(&[0, 0, 0, 0]).is_err());
        assert!(StorageFilter::decode(&[0; 3]).is_err());
        assert!(VolumnFilter::decode(&[0; 5]).is_err());
        assert_eq!(
            StorageFilter::decode(b"\x02=\x07\x00").unwrap().encode(),
            b"\x02=\x07\x00"
        );
    }

    #[test]
    fn filter_rules() {
        let leader_only = TrackerFilter {
            filter_by: TRACKER_FILTER_BY_IS_LEADER,
            is_active: 0,
            is_leader: 1,
        };
        assert!(leader_only.admits(true, true));
        assert!(!leader_only.admits(false, true));
        let not_active = StorageFilter {
            filter_by: STORAGE_FILTER_BY_STATUS | STORAGE_FILTER_BY_IS_TRUNK_SERVER,
            op_type: b'!',
            status: 7,
            is_trunk_server: 1,
        };
        assert!(not_active.admits(5, false, false), "trunk bit ignored");
        assert!(!not_active.admits(5, false, true));
        assert!(!not_active.admits(7, true, true));
        let bad_op = StorageFilter {
            op_type: b'<',
            ..not_active
        };
        assert!(!bad_op.admits(5, true, true));
        let no_space = VolumnFilter {
            filter_by: VOLUMN_FILTER_BY_IS_SPACE_AVAILABLE,
            is_space_available: 0,
            ..Default::default()
        };
        assert!(no_space.admits(false, false, false));
        assert!(!no_space.admits(true, false, false));
        assert!(!no_space.admits(false, true, true));
    }

    #[test]
    fn hosts_are_formatted_as_c_does() {
        assert_eq!(format_ip_port("10.0.0.1", 22122), "10.0.0.1:22122");
        assert_eq!(format_ip_port("::1", 22122), "[::1]:22122");
        assert_eq!(split_ip_port("[::1]:22122"), Some(("::1", 22122)));
        assert_eq!(split_ip_port("10.0.0.1:x"), None);
    }
}
