//! What a storage reports on its tracker connection (REPORT_DISK_USAGE 84, SYNC_REPORT 89,
//! REPORT_STATUS 76) and the server-list reply those and BEAT get.

use super::{
    bad_len, invalid, read_group, BRIEF_LEN, FLAG_GROUP_SERVERS_CHANGED, FLAG_LEADER_CHANGED,
    FLAG_TRUNK_CHANGED,
};
use crate::proto::fields::{put_fixed, put_u32, put_u64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, IP_ADDRESS_SIZE, STORAGE_ID_LEN};

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
