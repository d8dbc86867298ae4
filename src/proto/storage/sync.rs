//! Storage-to-storage sync commands of FastDFS (REPORT_SERVER_ID 9, SYNC_* 16-19/25/35/37,
//! FETCH_ONE_PATH_BINLOG 26). fdfs-ha's own sync commands live in `proto::sync`.

use crate::proto::fields::{put_fixed, put_u32, put_u64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, STORAGE_ID_LEN};

use super::file::FileReq;
use super::{name, name_len};

/// REPORT_SERVER_ID (9): the sending storage's id, first message of a sync connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportServerIdReq {
    pub storage_id: String,
}

impl ReportServerIdReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let storage_id = r.fixed_string(STORAGE_ID_LEN, "storage_id")?;
        r.expect_end()?;
        Ok(ReportServerIdReq { storage_id })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STORAGE_ID_LEN);
        put_fixed(&mut out, self.storage_id.as_bytes(), STORAGE_ID_LEN);
        out
    }
}

/// SYNC_CREATE_FILE (16) and SYNC_UPDATE_FILE (18) head; the file content follows
/// (absent when the header status is EEXIST: the peer only announces the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFileReq {
    pub filename: String,
    pub file_size: u64,
    /// Timestamp of the binlog record being replayed.
    pub timestamp: u32,
    pub group: String,
}

impl SyncFileReq {
    pub const FIXED_LEN: usize = 8 + 8 + 4 + GROUP_NAME_LEN;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "filename_len")?;
        let file_size = r.len64("file_size")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        r.expect_end()?;
        Ok(SyncFileReq {
            filename,
            file_size,
            timestamp,
            group,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.file_size);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_DELETE_FILE (17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDeleteReq {
    pub timestamp: u32,
    pub group: String,
    pub filename: String,
}

impl SyncDeleteReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let timestamp = r.u32()?;
        let f = FileReq::decode(r.rest())?;
        Ok(SyncDeleteReq {
            timestamp,
            group: f.group,
            filename: f.filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + GROUP_NAME_LEN + self.filename.len());
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_APPEND_FILE (25) and SYNC_MODIFY_FILE (35) head; `length` content bytes follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRangeReq {
    pub filename: String,
    pub offset: u64,
    pub length: u64,
    pub timestamp: u32,
    pub group: String,
}

impl SyncRangeReq {
    pub const FIXED_LEN: usize = 8 + 8 + 8 + 4 + GROUP_NAME_LEN;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "filename_len")?;
        let offset = r.len64("start_offset")?;
        let length = r.len64("length")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        r.expect_end()?;
        Ok(SyncRangeReq {
            filename,
            offset,
            length,
            timestamp,
            group,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.length);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_TRUNCATE_FILE (37).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTruncateReq {
    pub filename: String,
    pub old_size: u64,
    pub new_size: u64,
    pub timestamp: u32,
    pub group: String,
}

impl SyncTruncateReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let len = name_len(&mut r, "filename_len")?;
        let old_size = r.len64("old_size")?;
        let new_size = r.len64("new_size")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        r.expect_end()?;
        Ok(SyncTruncateReq {
            filename,
            old_size,
            new_size,
            timestamp,
            group,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44 + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.old_size);
        put_u64(&mut out, self.new_size);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_CREATE_LINK (19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCreateLinkReq {
    pub timestamp: u32,
    pub group: String,
    pub dest_filename: String,
    pub src_filename: String,
}

impl SyncCreateLinkReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let dest_len = name_len(&mut r, "dest_filename_len")?;
        let src_len = name_len(&mut r, "src_filename_len")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let dest_filename = name(&mut r, dest_len, "dest_filename")?;
        let src_filename = name(&mut r, src_len, "src_filename")?;
        r.expect_end()?;
        Ok(SyncCreateLinkReq {
            timestamp,
            group,
            dest_filename,
            src_filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, self.dest_filename.len() as u64);
        put_u64(&mut out, self.src_filename.len() as u64);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.dest_filename.as_bytes());
        out.extend_from_slice(self.src_filename.as_bytes());
        out
    }
}

/// FETCH_ONE_PATH_BINLOG (26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOnePathBinlogReq {
    pub group: String,
    pub store_path_index: u8,
}

impl FetchOnePathBinlogReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let store_path_index = r.u8()?;
        r.expect_end()?;
        Ok(FetchOnePathBinlogReq {
            group,
            store_path_index,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + 1);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.push(self.store_path_index);
        out
    }
}
