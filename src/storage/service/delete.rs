//! DELETE_FILE.

use super::{blocking, einval, Conn, Handled};
use crate::clock::unix_now;
use crate::proto::fileid;
use crate::proto::storage::FileReq;
use crate::storage::binlog::BinlogOp;

impl Conn {
    pub(super) async fn delete(&mut self, body: &[u8]) -> Handled {
        let req = FileReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (name, path) = self.locate(&req.filename)?;
        let filename = name.to_path_string();
        let st = self.state.clone();
        let _guard = self.state.store().lock_file(&filename).await;
        let had_meta = blocking(move || st.store().delete(&path)).await?;
        let now = unix_now();
        self.log(BinlogOp::Delete, now, &filename, None);
        if had_meta {
            let meta = format!("{filename}{}", fileid::METADATA_SUFFIX);
            self.log(BinlogOp::Delete, now, &meta, None);
        }
        Ok(Some(Vec::new()))
    }
}
