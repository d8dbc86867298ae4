//! Sync source decisions: SYNC_SRC_REQ (86), SYNC_DEST_REQ (87), SYNC_NOTIFY (88),
//! SYNC_DEST_QUERY (79).

use super::{bad_len, read_group};
use crate::proto::fields::{put_fixed, put_i64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, STORAGE_ID_LEN};

/// Sync source + the timestamp up to which it copies old data: SYNC_NOTIFY (88) body and the
/// non-empty reply of SYNC_DEST_REQ (87), SYNC_SRC_REQ (86), SYNC_DEST_QUERY (79).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSource {
    pub src_id: String,
    pub until_timestamp: i64,
}

impl SyncSource {
    pub const LEN: usize = STORAGE_ID_LEN + 8;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        put_fixed(&mut out, self.src_id.as_bytes(), STORAGE_ID_LEN);
        put_i64(&mut out, self.until_timestamp);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        if body.len() != Self::LEN {
            return Err(bad_len(body.len(), Self::LEN.to_string()));
        }
        let mut r = Reader::new(body);
        let src_id = r.fixed_string(STORAGE_ID_LEN, "src_id")?;
        let until_timestamp = r.i64()?;
        Ok(SyncSource {
            src_id,
            until_timestamp,
        })
    }

    /// Replies are empty when there is no source.
    pub fn encode_reply(v: &Option<SyncSource>) -> Vec<u8> {
        v.as_ref().map(SyncSource::encode).unwrap_or_default()
    }

    pub fn decode_reply(body: &[u8]) -> Result<Option<SyncSource>, ProtoError> {
        if body.is_empty() {
            return Ok(None);
        }
        let s = Self::decode(body)?;
        Ok(if s.src_id.is_empty() { None } else { Some(s) })
    }
}

/// SYNC_SRC_REQ (86): `group 16, dest storage id 16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSrcReq {
    pub group: String,
    pub dest_id: String,
}

impl SyncSrcReq {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        put_fixed(&mut out, self.dest_id.as_bytes(), STORAGE_ID_LEN);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let dest_id = r.fixed_string(STORAGE_ID_LEN, "dest_id")?;
        r.expect_end()?;
        Ok(SyncSrcReq { group, dest_id })
    }
}
