//! Appender file changes: APPEND_FILE (24), MODIFY_FILE (34), TRUNCATE_FILE (36).

use crate::proto::fields::{put_u64, Reader};
use crate::proto::ProtoError;

use super::{name, name_len};

/// APPEND_FILE (24) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReq {
    pub filename: String,
    pub size: u64,
}

impl AppendReq {
    pub const FIXED_LEN: usize = 16;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "appender_filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "appender_filename_len")?;
        let size = r.len64("append_size")?;
        let filename = name(&mut r, len, "appender_filename")?;
        r.expect_end()?;
        Ok(AppendReq { filename, size })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.size);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// MODIFY_FILE (34) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyReq {
    pub filename: String,
    pub offset: u64,
    pub size: u64,
}

impl ModifyReq {
    pub const FIXED_LEN: usize = 24;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "appender_filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "appender_filename_len")?;
        let offset = r.len64("file_offset")?;
        let size = r.len64("modify_size")?;
        let filename = name(&mut r, len, "appender_filename")?;
        r.expect_end()?;
        Ok(ModifyReq {
            filename,
            offset,
            size,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.size);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// TRUNCATE_FILE (36).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateReq {
    pub filename: String,
    pub new_size: u64,
}

impl TruncateReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let len = name_len(&mut r, "appender_filename_len")?;
        let new_size = r.len64("truncated_file_size")?;
        let filename = name(&mut r, len, "appender_filename")?;
        r.expect_end()?;
        Ok(TruncateReq { filename, new_size })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.new_size);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}
