//! SERVER_GET_LEADER (95), SERVER_TRACKER_CLUSTER_STAT (96), SERVER_STORAGE_CLUSTER_STAT (97),
//! SERVER_STORAGE_VOLUMN_STAT (98): the monitoring views of `fdfs_tracker_stat`,
//! `fdfs_storage_stat` and `fdfs_volumn_stat`, answered as C 6.16's tracker_service.c does
//! (layouts in `proto::tracker::cluster_stat`).
//!
//! - 95: body must be empty (EINVAL); no leader known: ENOENT. Any tracker answers.
//! - 96: filter of exactly 3 bytes (EINVAL); only the leader answers (EOPNOTSUPP).
//! - 97, 98: filter of exactly 4 bytes (EINVAL); any tracker answers, matching nothing is an
//!   empty list with status 0. Trunk files do not exist here: use_trunk_file 0, no storage
//!   is a trunk server, no group has trunk space, and the trunk filter bits are ignored, as C
//!   ignores them when use_trunk_file is off.

use super::{Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{
    format_ip_port, split_ip_port, StorageClusterReply, StorageClusterStat, StorageFilter,
    TrackerClusterStat, TrackerFilter, VolumnFilter, VolumnReply, VolumnStat,
};
use crate::tracker::cluster::has_room;
use crate::tracker::peers::TrackerInfo;
use crate::tracker::service::Reply;
use std::sync::atomic::Ordering;

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    match r.command {
        cmd::SERVER_GET_LEADER => get_leader(r),
        cmd::SERVER_TRACKER_CLUSTER_STAT => trackers(r),
        cmd::SERVER_STORAGE_CLUSTER_STAT => storages(r),
        _ => volumns(r),
    }
}

/// The leader's address in C's `format_ip_port` form, without a NUL.
fn get_leader(r: &mut Req<'_>) -> Handled {
    r.empty_body()?;
    let st = r.tracker.lock();
    let Some(addr) = st.peers.election.leader() else {
        return Err(Reply::err(errno::ENOENT));
    };
    let text = match split_ip_port(addr) {
        Some((ip, port)) => format_ip_port(ip, port),
        None => addr.to_string(),
    };
    Ok(Reply::ok(text.into_bytes()))
}

fn trackers(r: &mut Req<'_>) -> Handled {
    let filter = r.decode(TrackerFilter::decode(r.body))?;
    // Our own counters as we would report them in a ping: allowed, current, max (0).
    let conns = r.tracker.counters.connections.load(Ordering::Relaxed);
    let st = r.tracker.lock();
    let own = TrackerInfo {
        up_time: st.peers.election.start_unix(),
        version: crate::tracker::leader_link::VERSION.to_string(),
        connections: [
            u32::try_from(r.tracker.cfg.max_connections).unwrap_or(u32::MAX),
            u32::try_from(conns).unwrap_or(u32::MAX),
            0,
        ],
        last_heartbeat: 0,
    };
    match st.peers.tracker_stats(&own, &filter, r.unix) {
        Some(list) => Ok(Reply::ok(TrackerClusterStat::encode_list(&list))),
        None => Err(Reply::err(errno::EOPNOTSUPP)),
    }
}

/// Every storage, groups by name, storages in the order SERVER_LIST_STORAGE lists them.
fn storages(r: &mut Req<'_>) -> Handled {
    let filter = r.decode(StorageFilter::decode(r.body))?;
    let st = r.tracker.lock();
    let storages = st
        .cluster
        .groups
        .values()
        .flat_map(|g| g.storages.values())
        .filter(|s| filter.admits(s.status as u8, false, false))
        .map(|s| StorageClusterStat {
            id: s.id.clone(),
            host: format_ip_port(&s.ip, s.port),
            is_trunk_server: false,
            status: s.status as u8,
            connections: s.stats.connections,
            version: s.version.clone(),
            up_time: s.up_time,
            last_heartbeat_time: s.last_heard_unix(r.now, r.unix),
        })
        .collect();
    Ok(Reply::ok(
        StorageClusterReply {
            use_storage_id: r.tracker.cfg.use_storage_id,
            use_trunk_file: false,
            storages,
        }
        .encode(),
    ))
}

/// Every group's space as SERVER_LIST_ALL_GROUPS reports it, with C's availability test
/// (free above the reserved space).
fn volumns(r: &mut Req<'_>) -> Handled {
    let filter = r.decode(VolumnFilter::decode(r.body))?;
    let reserved = &r.tracker.cfg.reserved_storage_space;
    let st = r.tracker.lock();
    let groups = st
        .cluster
        .groups
        .values()
        .map(|g| st.cluster.group_stat(g, reserved))
        .filter_map(|g| {
            let disk = has_room(reserved, g.total_mb as u64, g.free_mb as u64);
            filter.admits(disk, false, false).then(|| VolumnStat {
                avail_mb: if disk {
                    (g.free_mb - g.reserved_mb).max(0)
                } else {
                    0
                },
                group: g.group,
                total_mb: g.total_mb,
                free_mb: g.free_mb,
                reserved_mb: g.reserved_mb,
                trunk_free_mb: 0,
                is_disk_available: disk,
                is_trunk_available: false,
            })
        })
        .collect();
    Ok(Reply::ok(
        VolumnReply {
            use_trunk_file: false,
            groups,
        }
        .encode(),
    ))
}

#[cfg(test)]
#[path = "cluster_stat_tests.rs"]
mod tests;
