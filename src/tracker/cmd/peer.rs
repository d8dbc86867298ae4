//! Tracker <-> tracker commands (JOIN_LEADER, PING_LEADER, GET_STATUS, system files, ...),
//! answered by `tracker::peers` against the cluster view.

use super::{Handled, Req};
use crate::tracker::service::{Reply, State};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    let mut st = r.tracker.lock();
    let State { cluster, peers, .. } = &mut *st;
    match peers.handle(
        cluster,
        r.conn.id,
        &r.conn.peer_ip,
        r.command,
        r.body,
        r.unix,
    ) {
        Ok(b) => Ok(Reply::ok(b)),
        Err(status) => Err(Reply::err(status)),
    }
}
