//! SET_METADATA and GET_METADATA.

use super::{blocking, einval, Conn, Handled};
use crate::clock::unix_now;
use crate::proto::fileid;
use crate::proto::storage::{decode_metadata, FileReq, SetMetadataReq};
use crate::storage::binlog::BinlogOp;
use crate::storage::store::MetaChange;

impl Conn {
    pub(super) async fn set_metadata(&mut self, body: &[u8]) -> Handled {
        let req = SetMetadataReq::decode(body).map_err(einval)?;
        let max = self.state.config().max_metadata_size.0;
        if req.metadata.len() as u64 > max {
            return Err(einval(format!(
                "metadata of {} bytes over {max}",
                req.metadata.len()
            )));
        }
        let pairs = decode_metadata(&req.metadata).map_err(einval)?;
        self.check_group(&req.group)?;
        let (name, path) = self.locate(&req.filename)?;
        let filename = name.to_path_string();
        let st = self.state.clone();
        let _guard = self.state.store().lock_file(&filename).await;
        let op = req.op;
        let change = blocking(move || st.store().set_metadata(&path, op, pairs, max)).await?;
        let meta = format!("{filename}{}", fileid::METADATA_SUFFIX);
        let now = unix_now();
        match change {
            MetaChange::Created => self.log(BinlogOp::Create, now, &meta, None),
            MetaChange::Updated => self.log(BinlogOp::Update, now, &meta, None),
            MetaChange::Removed => self.log(BinlogOp::Delete, now, &meta, None),
            MetaChange::Unchanged => {}
        }
        Ok(Some(Vec::new()))
    }

    pub(super) async fn get_metadata(&mut self, body: &[u8]) -> Handled {
        let req = FileReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (_, path) = self.locate(&req.filename)?;
        let st = self.state.clone();
        let raw = blocking(move || st.store().get_metadata(&path)).await?;
        Ok(Some(raw))
    }
}
