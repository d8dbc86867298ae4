//! QUERY_STORE_{WITH,WITHOUT}_GROUP_{ONE,ALL}: where a client uploads.

use super::{done, Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{decode_group, StoreTarget, StoreTargets};
use crate::tracker::service::{Reply, State};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    let with_group = matches!(
        r.command,
        cmd::SERVICE_QUERY_STORE_WITH_GROUP_ONE | cmd::SERVICE_QUERY_STORE_WITH_GROUP_ALL
    );
    let group = if with_group {
        Some(r.decode(decode_group(r.body))?)
    } else {
        r.empty_body()?;
        None
    };
    let ip_size = r.tracker.ip_size;
    let mut st = r.tracker.lock();
    let State {
        cluster, selector, ..
    } = &mut *st;
    if matches!(
        r.command,
        cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE | cmd::SERVICE_QUERY_STORE_WITH_GROUP_ONE
    ) {
        let c = done(selector.store(cluster, group.as_deref()))?;
        let Some(addr) = c.addrs.into_iter().next() else {
            return Err(Reply::err(errno::ENOENT));
        };
        return Ok(Reply::ok(
            StoreTarget {
                group: c.group,
                addr,
                store_path_index: c.store_path_index,
            }
            .encode(ip_size),
        ));
    }
    let c = done(selector.store_all(cluster, group.as_deref()))?;
    Ok(Reply::ok(
        StoreTargets {
            group: c.group,
            addrs: c.addrs,
            store_path_index: c.store_path_index,
        }
        .encode(ip_size),
    ))
}
