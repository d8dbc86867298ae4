//! The appender-rename commands: REGENERATE_APPENDER_FILENAME (38, client -> storage) and its
//! replication, SYNC_RENAME_FILE (40, storage -> storage).
//!
//! ```text
//! 38 request   appender filename (the whole body, no group)
//! 38 response  group 16 | new filename
//! 40 request   new_len 8 | old_len 8 | timestamp 4 | group 16 | new filename | old filename
//! 40 response  empty; a C 6.16.1 receiver echoes the request body on success (captured in
//!              storage-sync.txt #272), so a sender must accept any body with status 0
//! ```

use super::fields::{put_fixed, put_u32, put_u64, Reader};
use super::storage::MAX_FILENAME_LEN;
use super::{ProtoError, GROUP_NAME_LEN};

/// SYNC_RENAME_FILE (40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRenameReq {
    pub timestamp: u32,
    pub group: String,
    /// The name the file has now.
    pub new_name: String,
    /// The appender name it had.
    pub old_name: String,
}

fn name_len(r: &mut Reader<'_>, field: &'static str) -> Result<usize, ProtoError> {
    let n = r.len64(field)?;
    if n == 0 || n > MAX_FILENAME_LEN {
        return Err(ProtoError::InvalidField {
            field,
            reason: format!("length {n} out of range 1..={MAX_FILENAME_LEN}"),
        });
    }
    Ok(n as usize)
}

fn text(raw: &[u8], field: &'static str) -> Result<String, ProtoError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| ProtoError::InvalidField {
            field,
            reason: "not UTF-8".into(),
        })
}

impl SyncRenameReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let new_len = name_len(&mut r, "new filename_len")?;
        let old_len = name_len(&mut r, "old filename_len")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let new_name = text(r.bytes(new_len)?, "new filename")?;
        let old_name = text(r.bytes(old_len)?, "old filename")?;
        r.expect_end()?;
        Ok(SyncRenameReq {
            timestamp,
            group,
            new_name,
            old_name,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(36 + self.new_name.len() + self.old_name.len());
        put_u64(&mut out, self.new_name.len() as u64);
        put_u64(&mut out, self.old_name.len() as u64);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.new_name.as_bytes());
        out.extend_from_slice(self.old_name.as_bytes());
        out
    }
}

/// The REGENERATE_APPENDER_FILENAME answer.
pub fn encode_regenerate_resp(group: &str, new_name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GROUP_NAME_LEN + new_name.len());
    put_fixed(&mut out, group.as_bytes(), GROUP_NAME_LEN);
    out.extend_from_slice(new_name.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// storage-sync.txt #271: the C sender's SYNC_RENAME_FILE, byte for byte.
    #[test]
    fn sync_rename_matches_the_capture() {
        let new = "M00/00/00/fwAAF2sTzSyAbA70AAAAEFrSv48137.txt";
        let old = "M00/00/00/fwAAF2sTzSmEEH9AAAAAAFrSv48137.txt";
        let req = SyncRenameReq {
            timestamp: 1796459820,
            group: "group1".into(),
            new_name: new.into(),
            old_name: old.into(),
        };
        let body = req.encode();
        assert_eq!(body.len(), 124);
        assert_eq!(
            &body[..20],
            &[0, 0, 0, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 0, 0, 0, 0x2c, 0x6b, 0x13, 0xcd, 0x2c]
        );
        assert_eq!(SyncRenameReq::decode(&body).unwrap(), req);
        // Group field with left-over bytes after the NUL (a C sender's quirk) still decodes.
        let mut dirty = body.clone();
        dirty[27] = 0x7f;
        assert_eq!(SyncRenameReq::decode(&dirty).unwrap().group, "group1");
        assert!(SyncRenameReq::decode(&body[..100]).is_err());
    }
}
