//! Who copies to whom: SYNC_DEST_REQ, SYNC_DEST_QUERY, SYNC_NOTIFY (from the new storage) and
//! SYNC_SRC_REQ (from a storage asking whether it is a new peer's source).

use super::{done, Handled, Req};
use crate::proto::cmd;
use crate::proto::tracker::{SyncSource, SyncSrcReq};
use crate::tracker::service::{log_transitions, Reply};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    match r.command {
        cmd::STORAGE_SYNC_DEST_REQ => {
            let (group, key) = r.joined()?;
            r.empty_body()?;
            let (src, t) = done(r.tracker.lock().cluster.sync_dest_req(&group, &key, r.unix))?;
            log_transitions(t);
            Ok(Reply::ok(SyncSource::encode_reply(&src)))
        }
        cmd::STORAGE_SYNC_DEST_QUERY => {
            let (group, key) = r.joined()?;
            r.empty_body()?;
            let src = done(r.tracker.lock().cluster.sync_source_of(&group, &key))?;
            Ok(Reply::ok(SyncSource::encode_reply(&src)))
        }
        cmd::STORAGE_SYNC_NOTIFY => {
            let (group, key) = r.joined()?;
            let src = r.decode(SyncSource::decode(r.body))?;
            let t = done(r.tracker.lock().cluster.sync_notify(&group, &key, src))?;
            log_transitions(t);
            Ok(Reply::ok(Vec::new()))
        }
        _ => {
            let req = r.decode(SyncSrcReq::decode(r.body))?;
            let src = done(
                r.tracker
                    .lock()
                    .cluster
                    .sync_src_for_dest(&req.group, &req.dest_id),
            )?;
            Ok(Reply::ok(SyncSource::encode_reply(&src)))
        }
    }
}
