//! fdfs-ha's own storage-to-storage commands, beside FastDFS's (their codes are unused there):
//! SYNC_WATERMARK, which a sync sender tells its peer, and SYNC_STATUS_QUERY, which
//! `fdfs-ha monitor`, the drills and the benches ask a storage, with the JSON report it answers.
//! Both the storage (service, sender) and the client use these; neither knows the other.

use super::ProtoError;

/// SYNC_STATUS_QUERY: empty body; the reply body is a JSON [`SyncReport`]. Not a FastDFS
/// command (FastDFS has no way to ask a storage for its sync lag); 200 is unused there.
pub const SYNC_STATUS_QUERY: u8 = 200;

/// SYNC_WATERMARK (fdfs-ha extension, sender -> peer): body an 8-byte big-endian unix second
/// W, meaning "you now hold every file I created before W"; empty reply. The peer reports W to
/// the trackers (SYNC_REPORT), which hand it out to readers of this storage's files created
/// before W. FastDFS's receiver reports the timestamp of the last record it applied instead;
/// with parallel lanes that can run ahead of records still in flight on another lane, and a
/// record can be logged after a newer one (an upload's fsync takes its time).
pub const SYNC_WATERMARK: u8 = 201;

/// SYNC_WATERMARK's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkReq {
    pub unix_second: u32,
}

impl WatermarkReq {
    pub const LEN: usize = 8;

    pub fn encode(&self) -> [u8; Self::LEN] {
        (self.unix_second as u64).to_be_bytes()
    }

    /// Exactly 8 bytes; a second beyond u32 is taken as the last one u32 holds.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let raw: [u8; Self::LEN] = body.try_into().map_err(|_| ProtoError::BadLength {
            have: body.len(),
            expected: Self::LEN.to_string(),
        })?;
        Ok(WatermarkReq {
            unix_second: u64::from_be_bytes(raw).min(u32::MAX as u64) as u32,
        })
    }
}

/// One storage's replication state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    /// False while this storage still waits for its group's old data.
    pub sync_old_done: bool,
    /// End of the binlog readers can see.
    pub binlog_index: u32,
    pub binlog_offset: u64,
    /// Outgoing: one entry per peer.
    pub peers: Vec<PeerSyncStatus>,
    /// Incoming: per source storage id, the newest record timestamp applied.
    pub synced_from: Vec<(String, u32)>,
}

/// One outgoing sender's progress, as `fdfs-ha monitor` and the logs show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerSyncStatus {
    pub peer: String,
    /// starting / connecting / backing off / waiting ... / full copy / sending / idle.
    pub state: String,
    pub binlog_index: u32,
    pub binlog_offset: u64,
    /// Binlog bytes written here and not yet sent to the peer.
    pub bytes_behind: u64,
    /// Binlog records not yet looked at (counted only when small enough to count cheaply).
    pub records_behind: u64,
    /// Now minus the timestamp of the newest record sent (0 when caught up).
    pub seconds_behind: u64,
    pub synced_timestamp: i64,
    pub records_sent: u64,
    pub bytes_sent: u64,
    pub failures: u64,
    pub last_error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_eight_big_endian_bytes_and_saturates() {
        let w = WatermarkReq {
            unix_second: 1795272200,
        };
        assert_eq!(w.encode(), 1795272200u64.to_be_bytes());
        assert_eq!(WatermarkReq::decode(&w.encode()).unwrap(), w);
        let far = WatermarkReq::decode(&u64::MAX.to_be_bytes()).unwrap();
        assert_eq!(far.unix_second, u32::MAX);
        assert!(WatermarkReq::decode(&[1, 2, 3]).is_err());
    }
}
