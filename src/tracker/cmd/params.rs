//! PARAMETER_REQ and FETCH_STORAGE_IDS: the settings and the storage id table a storage fetches
//! from the tracker at start.

use super::{Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{FetchStorageIdsReply, FetchStorageIdsReq, StorageIdRecord};
use crate::tracker::service::Reply;

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    if r.command == cmd::STORAGE_PARAMETER_REQ {
        r.empty_body()?;
        return Ok(Reply::ok(r.tracker.params().encode()));
    }
    let req = r.decode(FetchStorageIdsReq::decode(r.body))?;
    let all: Vec<StorageIdRecord> = r
        .tracker
        .cfg
        .storage_ids
        .iter()
        .map(|e| StorageIdRecord {
            id: e.id.clone(),
            group: e.group.clone(),
            addr: match e.port {
                Some(p) => format!("{}:{p}", e.ip),
                None => e.ip.clone(),
            },
        })
        .collect();
    if all.is_empty() && !req.allow_empty {
        return Err(Reply::err(errno::ENOENT));
    }
    let start = (req.start_index as usize).min(all.len());
    Ok(Reply::ok(
        FetchStorageIdsReply {
            total: all.len() as u32,
            records: all[start..].to_vec(),
        }
        .encode(),
    ))
}
