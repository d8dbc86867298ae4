//! QUERY_FETCH_ONE / QUERY_FETCH_ALL (where to read a file) and QUERY_UPDATE (where to change it).

use super::{done, Handled, Req};
use crate::proto::cmd;
use crate::proto::tracker::{FetchTargets, FileQuery};
use crate::tracker::service::{Reply, State};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    let q = r.decode(FileQuery::decode(r.body))?;
    let ip_size = r.tracker.ip_size;
    let mut st = r.tracker.lock();
    let State {
        cluster, selector, ..
    } = &mut *st;
    let addrs = if r.command == cmd::SERVICE_QUERY_UPDATE {
        vec![done(selector.update(cluster, &q.group, &q.filename))?]
    } else {
        let all = r.command == cmd::SERVICE_QUERY_FETCH_ALL;
        done(selector.fetch(cluster, &q.group, &q.filename, r.unix, all))?
    };
    Ok(Reply::ok(
        FetchTargets {
            group: q.group,
            addrs,
        }
        .encode(ip_size),
    ))
}
