//! Uploads: UPLOAD_FILE (11), UPLOAD_APPENDER_FILE (23), UPLOAD_SLAVE_FILE (21) and their
//! reply.

use crate::proto::fields::{put_fixed, put_u64, Reader};
use crate::proto::{ProtoError, FILE_EXT_NAME_LEN, FILE_PREFIX_LEN, GROUP_NAME_LEN};

use super::{name, name_len, text};

/// UPLOAD_FILE (11) and UPLOAD_APPENDER_FILE (23): the 15-byte prefix in front of the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReq {
    /// Store path chosen by the tracker; 0xFF lets the storage choose.
    pub store_path_index: u8,
    pub file_size: u64,
    pub ext: String,
}

impl UploadReq {
    pub const FIXED_LEN: usize = 1 + 8 + FILE_EXT_NAME_LEN;

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let store_path_index = r.u8()?;
        let file_size = r.len64("file_size")?;
        let ext = r.fixed_string(FILE_EXT_NAME_LEN, "ext")?;
        r.expect_end()?;
        Ok(UploadReq {
            store_path_index,
            file_size,
            ext,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN);
        out.push(self.store_path_index);
        put_u64(&mut out, self.file_size);
        put_fixed(&mut out, self.ext.as_bytes(), FILE_EXT_NAME_LEN);
        out
    }
}

/// UPLOAD_SLAVE_FILE (21) head: fixed fields plus the master filename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSlaveReq {
    pub file_size: u64,
    pub prefix: String,
    pub ext: String,
    /// Master remote filename (`M00/..`), no group.
    pub master_filename: String,
}

impl UploadSlaveReq {
    pub const FIXED_LEN: usize = 8 + 8 + FILE_PREFIX_LEN + FILE_EXT_NAME_LEN;

    /// How many name bytes follow the fixed part.
    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "master_filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "master_filename_len")?;
        let file_size = r.len64("file_size")?;
        let prefix = r.fixed_string(FILE_PREFIX_LEN, "prefix")?;
        let ext = r.fixed_string(FILE_EXT_NAME_LEN, "ext")?;
        let master_filename = name(&mut r, len, "master_filename")?;
        r.expect_end()?;
        Ok(UploadSlaveReq {
            file_size,
            prefix,
            ext,
            master_filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.master_filename.len());
        put_u64(&mut out, self.master_filename.len() as u64);
        put_u64(&mut out, self.file_size);
        put_fixed(&mut out, self.prefix.as_bytes(), FILE_PREFIX_LEN);
        put_fixed(&mut out, self.ext.as_bytes(), FILE_EXT_NAME_LEN);
        out.extend_from_slice(self.master_filename.as_bytes());
        out
    }
}

/// Response to the upload commands: group and remote filename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResp {
    pub group: String,
    pub filename: String,
}

impl UploadResp {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = text(r.rest(), "filename")?;
        if filename.is_empty() {
            return Err(ProtoError::Truncated {
                need: GROUP_NAME_LEN + 1,
                have: body.len(),
            });
        }
        Ok(UploadResp { group, filename })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + self.filename.len());
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }

    /// `group1/M00/..`
    pub fn file_id(&self) -> String {
        format!("{}/{}", self.group, self.filename)
    }
}
