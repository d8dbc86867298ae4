//! SERVER_DELETE_STORAGE and SERVER_DELETE_GROUP (fdfs_monitor's delete commands).

use super::{done, Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{decode_group, ListStorageReq};
use crate::tracker::service::{log_transitions, Reply};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    if r.command == cmd::SERVER_DELETE_STORAGE {
        let req = r.decode(ListStorageReq::decode(r.body))?;
        let Some(id) = req.storage_id else {
            return Err(Reply::err(errno::EINVAL));
        };
        let t = done(r.tracker.lock().cluster.delete_storage(&req.group, &id))?;
        log_transitions(t);
        tracing::info!(group = %req.group, storage = %id, "storage deleted");
        return Ok(Reply::ok(Vec::new()));
    }
    let group = r.decode(decode_group(r.body))?;
    done(r.tracker.lock().cluster.delete_group(&group))?;
    tracing::info!(group = %group, "group deleted");
    Ok(Reply::ok(Vec::new()))
}
