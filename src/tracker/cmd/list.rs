//! SERVER_LIST_ONE_GROUP, SERVER_LIST_ALL_GROUPS, SERVER_LIST_STORAGE: the views fdfs_monitor
//! prints.

use super::{Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{decode_group, GroupStat, ListStorageReq, StorageStat};
use crate::tracker::cluster::Cluster;
use crate::tracker::service::Reply;

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    let reserved = &r.tracker.cfg.reserved_storage_space;
    match r.command {
        cmd::SERVER_LIST_ONE_GROUP => {
            let group = r.decode(decode_group(r.body))?;
            let st = r.tracker.lock();
            let Some(g) = st.cluster.groups.get(&group) else {
                return Err(Reply::err(errno::ENOENT));
            };
            let mut out = Vec::new();
            st.cluster.group_stat(g, reserved).encode_into(&mut out);
            Ok(Reply::ok(out))
        }
        cmd::SERVER_LIST_ALL_GROUPS => {
            r.empty_body()?;
            let st = r.tracker.lock();
            let stats: Vec<GroupStat> = st
                .cluster
                .groups
                .values()
                .map(|g| st.cluster.group_stat(g, reserved))
                .collect();
            Ok(Reply::ok(GroupStat::encode_list(&stats)))
        }
        _ => {
            let req = r.decode(ListStorageReq::decode(r.body))?;
            let st = r.tracker.lock();
            let Some(g) = st.cluster.groups.get(&req.group) else {
                return Err(Reply::err(errno::ENOENT));
            };
            let list: Vec<StorageStat> = g
                .storages
                .values()
                .filter(|s| match &req.storage_id {
                    Some(id) => s.id == *id || s.key == *id || s.ip == *id,
                    None => true,
                })
                .map(|s| Cluster::storage_stat(s, reserved, r.now, r.unix))
                .collect();
            if list.is_empty() && req.storage_id.is_some() {
                return Err(Reply::err(errno::ENOENT));
            }
            Ok(Reply::ok(StorageStat::encode_list(
                &list,
                r.tracker.ip_size,
            )))
        }
    }
}
