//! REGENERATE_APPENDER_FILENAME (38) and SYNC_RENAME_FILE (40): an appender file becomes a
//! normal file under a new name (new create time and size in the name; source, crc32 field,
//! random digits and extension kept, as C FastDFS 6.16.1 does: storage-sync.txt #268/#269),
//! logged as `R new old` and replicated as a rename.

use super::{blocking, einval, Conn, Handled};
use crate::clock::unix_now;
use crate::proto::cmd::errno;
use crate::proto::fileid::{self, FileInfo, RemoteName};
use crate::proto::rename::{encode_regenerate_resp, SyncRenameReq};
use crate::proto::storage::MAX_FILENAME_LEN;
use crate::storage::binlog::BinlogOp;
use crate::storage::store::StoreError;
use rand::Rng;
use std::path::PathBuf;

/// Length of the base64 part of a file name (20 bytes of file info).
const B64_LEN: usize = 27;

/// The name an appender gets when it is turned into a normal file of `size` bytes at `now`.
pub fn regenerated_name(old: &RemoteName, size: u64, now: u32, rand: u32) -> RemoteName {
    let info = FileInfo {
        source: old.info.source,
        create_time: now,
        size_field: FileInfo::size_field_for(size, false, rand),
        crc32: old.info.crc32,
    };
    let mut name = fileid::b64_encode(&info.encode());
    name.push_str(old.name.get(B64_LEN..).unwrap_or_default());
    RemoteName {
        store_path_index: old.store_path_index,
        dir1: old.dir1,
        dir2: old.dir2,
        name,
        info,
    }
}

impl Conn {
    pub(super) async fn regenerate_appender(&mut self, body: &[u8]) -> Handled {
        if body.is_empty() || body.len() as u64 > MAX_FILENAME_LEN {
            return Err(einval("appender filename length out of range"));
        }
        let filename = std::str::from_utf8(body).map_err(einval)?;
        let (old, old_path) = self.locate(filename)?;
        if !old.info.is_appender() || old.is_slave() {
            return Err(einval("not an appender file"));
        }
        let old_name = old.to_path_string();
        let st = self.state.clone();
        let _guard = st.store().lock_file(&old_name).await;
        let size = {
            let p = old_path.clone();
            blocking(move || Ok(std::fs::metadata(&p)?.len())).await?
        };
        let now = unix_now();
        let rand = rand::thread_rng().gen::<u32>();
        let new = regenerated_name(&old, size, now as u32, rand);
        let new_name = new.to_path_string();
        let new_path = st.store().data_path(&new)?;
        {
            let st = st.clone();
            let (o, n) = (old_path.clone(), new_path.clone());
            blocking(move || st.store().rename(&o, &n)).await?;
        }
        self.log(BinlogOp::Rename, now, &new_name, Some(old_name));
        Ok(Some(encode_regenerate_resp(st.group(), &new_name)))
    }

    /// A peer's rename. EEXIST when the new name is already here (a replay), ENOENT when the
    /// old one is not (the sender then creates the new name whole).
    pub(super) async fn sync_rename(&mut self, body: &[u8]) -> Handled {
        let req = SyncRenameReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (old, old_path) = self.locate(&req.old_name)?;
        let (new, new_path) = self.locate(&req.new_name)?;
        let (old_name, new_name) = (old.to_path_string(), new.to_path_string());
        let st = self.state.clone();
        let _guard = st.store().lock_file(&old_name).await;
        let (o, n): (PathBuf, PathBuf) = (old_path, new_path);
        let st2 = st.clone();
        blocking(move || {
            if n.exists() {
                return Err(StoreError::new(errno::EEXIST, "new name exists"));
            }
            st2.store().rename(&o, &n)
        })
        .await?;
        self.log_replica(BinlogOp::Rename, req.timestamp, &new_name, Some(old_name));
        Ok(Some(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// storage-sync.txt #268/#269: A2 regenerated at 1796459820 with 16 bytes.
    #[test]
    fn regenerated_name_follows_c() {
        let old = RemoteName::parse_str("M00/00/00/fwAAF2sTzSmEEH9AAAAAAFrSv48137.txt").unwrap();
        // C's random bits, read from its new name's size field (0x806c0ef4_00000010).
        let rand = 0x006c_0ef4;
        let new = regenerated_name(&old, 16, 1796459820, rand);
        assert_eq!(
            new.to_path_string(),
            "M00/00/00/fwAAF2sTzSyAbA70AAAAEFrSv48137.txt"
        );
        assert!(!new.info.is_appender());
        assert_eq!(new.info.file_size(), 16);
    }
}
