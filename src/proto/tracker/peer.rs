//! Tracker-to-tracker messages of C FastDFS 6.16.1 (captured in tracker-pair.txt): leader
//! election, the followers' leader link, and the copy of the four system files.
//!
//! ```text
//! 64 GET_STATUS          ->  empty            <-  if_leader 1 | running_time 8 | restart_interval 8
//!                                                 (ENOENT while the tracker has no group)
//! 61 GET_SYS_FILES_START ->  empty            <-  empty
//! 63 GET_ONE_SYS_FILE    ->  index 1 | off 8  <-  file_size 8 | content from `off`
//! 62 GET_SYS_FILES_END   ->  empty            <-  empty
//! 58 JOIN_LEADER         ->  up_time 8 | version 8 | port 8   <- empty
//! 65 PING_LEADER         ->  three 4-byte connection counters <- first: per group 16 + 16
//!                                                                 (name, trunk server id)
//! 66 NOTIFY_NEXT_LEADER  ->  "ip:port" (text) <-  empty
//! 67 COMMIT_NEXT_LEADER  ->  "ip:port" (text) <-  empty
//! ```

use crate::proto::fields::{put_fixed, put_u64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, STORAGE_ID_LEN};

pub const TRACKER_JOIN_LEADER: u8 = 58;
pub const TRACKER_GET_SYS_FILES_START: u8 = 61;
pub const TRACKER_GET_SYS_FILES_END: u8 = 62;
pub const TRACKER_GET_ONE_SYS_FILE: u8 = 63;
pub const TRACKER_GET_STATUS: u8 = 64;
pub const TRACKER_PING_LEADER: u8 = 65;
pub const TRACKER_NOTIFY_NEXT_LEADER: u8 = 66;
pub const TRACKER_COMMIT_NEXT_LEADER: u8 = 67;

/// The system files in the order of their index in GET_ONE_SYS_FILE.
pub const SYS_FILE_NAMES: [&str; 4] = [
    "storage_groups_new.dat",
    "storage_servers_new.dat",
    "storage_sync_timestamp.dat",
    "storage_changelog.dat",
];

/// The GET_STATUS answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStatus {
    pub if_leader: bool,
    /// Seconds, rounded down to a multiple of 300.
    pub running_time: i64,
    /// Seconds the tracker was down before this start, rounded down to 300.
    pub restart_interval: i64,
}

impl TrackerStatus {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(self.if_leader as u8);
        put_u64(&mut out, self.running_time as u64);
        put_u64(&mut out, self.restart_interval as u64);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let if_leader = r.u8()? != 0;
        let running_time = r.i64()?;
        let restart_interval = r.i64()?;
        r.expect_end()?;
        Ok(TrackerStatus {
            if_leader,
            running_time,
            restart_interval,
        })
    }
}

/// GET_ONE_SYS_FILE request: (file index, offset).
pub fn decode_sys_file_req(body: &[u8]) -> Result<(usize, u64), ProtoError> {
    let mut r = Reader::new(body);
    let index = r.u8()? as usize;
    let offset = r.len64("offset")?;
    r.expect_end()?;
    if index >= SYS_FILE_NAMES.len() {
        return Err(ProtoError::InvalidField {
            field: "file index",
            reason: format!("{index} is not 0..=3"),
        });
    }
    Ok((index, offset))
}

/// GET_ONE_SYS_FILE answer: the whole file's size, then its bytes from `offset` (at most
/// `max_chunk`; the peer asks again with a larger offset until it has `size` bytes).
pub fn encode_sys_file(content: &[u8], offset: u64, max_chunk: usize) -> Vec<u8> {
    let start = (offset as usize).min(content.len());
    let end = content.len().min(start.saturating_add(max_chunk));
    let mut out = Vec::with_capacity(8 + end - start);
    put_u64(&mut out, content.len() as u64);
    out.extend_from_slice(&content[start..end]);
    out
}

/// The first PING_LEADER answer: per group its name and trunk server id (empty here).
pub fn encode_ping_groups<'a>(groups: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, trunk) in groups {
        put_fixed(&mut out, name.as_bytes(), GROUP_NAME_LEN);
        put_fixed(&mut out, trunk.as_bytes(), STORAGE_ID_LEN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tracker-pair.txt #24 and #27/#34.
    #[test]
    fn messages_match_the_capture() {
        let st = TrackerStatus {
            if_leader: false,
            running_time: 0,
            restart_interval: 0,
        };
        assert_eq!(st.encode(), vec![0u8; 17]);
        assert_eq!(TrackerStatus::decode(&st.encode()).unwrap(), st);
        assert_eq!(
            decode_sys_file_req(&[1, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            (1, 0)
        );
        assert!(decode_sys_file_req(&[4, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_sys_file_req(&[0; 8]).is_err());
        assert_eq!(encode_sys_file(b"", 0, 1024), vec![0u8; 8]);
        let f = encode_sys_file(b"abcdef", 2, 3);
        assert_eq!(&f[..8], &6u64.to_be_bytes());
        assert_eq!(&f[8..], b"cde");
        assert_eq!(encode_sys_file(b"abc", 99, 3).len(), 8);
        assert_eq!(encode_ping_groups([("group1", "")]).len(), 32);
    }
}
