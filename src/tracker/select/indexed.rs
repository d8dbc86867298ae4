//! The selection rules answered from the cluster's indexes (`tracker::index`): O(log n) in the
//! number of groups and of storages in a group, with the same answers and cursor moves as
//! `scan` (held to it by the property tests in `tests`).

use super::{GroupRef, Selector, StorageRef};
use crate::config::{DownloadServer, StoreLookup, StoreServer};
use crate::proto::cmd::errno;
use crate::proto::fileid::{RemoteName, Source};
use crate::tracker::cluster::{Cluster, Errno, Group, StorageNode};
use crate::tracker::index::GroupIndex;

/// The storage a file name says it was uploaded to (the first with that id or address).
pub(super) fn source_of<'a>(
    g: &'a Group,
    gi: &GroupIndex,
    name: &RemoteName,
) -> Option<&'a StorageNode> {
    // No String per download query: the id is formatted on the stack, the address is a key.
    match name.info.source {
        Source::Id(id) => gi.by_id(&g.storages, itoa::Buffer::new().format(id)),
        Source::Ip(ip) => gi.by_ip(&g.storages, ip),
    }
}

impl Selector {
    /// `store_lookup` over every group (no group named): the group and its indexes, found
    /// together (one lookup less per upload query).
    pub(super) fn index_pick_group<'a>(
        &mut self,
        cluster: &'a Cluster,
    ) -> Result<GroupRef<'a>, Errno> {
        let ix = cluster.index();
        let n = ix.group_count();
        if n == 0 {
            return Err(errno::ENOENT);
        }
        let round_robin = self.cfg.store_lookup != StoreLookup::LoadBalance;
        let at = if round_robin {
            let at = (ix.usable_from(self.group_cursor % n)).or_else(|| ix.first_usable());
            if let Some(i) = at {
                self.group_cursor = i + 1;
            }
            at
        } else {
            ix.most_free().and_then(|name| ix.position(name))
        };
        let Some((i, (name, gi))) = at.and_then(|i| Some((i, ix.group_at(i)?))) else {
            // ENOSPC when some group has live storages but no room, ENOENT when none is live.
            return Err(if ix.any_live() {
                errno::ENOSPC
            } else {
                errno::ENOENT
            });
        };
        let found = if ix.aligned_with(&cluster.groups) {
            cluster.groups.value_at(i).map(|g| (i, g))
        } else {
            cluster.groups.get_full(name)
        };
        let (at, g) = found.ok_or(errno::ENOENT)?;
        Ok(GroupRef {
            at,
            g,
            gi: Some(gi),
        })
    }

    pub(super) fn index_peek_server<'a>(
        &self,
        cluster: &Cluster,
        gr: GroupRef<'a>,
        gi: &GroupIndex,
    ) -> Result<StorageRef<'a>, Errno> {
        let n = gi.writable_len();
        if n == 0 {
            return Err(errno::ENOSPC);
        }
        let storages = &gr.g.storages;
        let s = match self.cfg.store_server {
            StoreServer::RoundRobin => {
                gi.writable_at(storages, self.server_cursor(cluster, gr.at) % n)
            }
            StoreServer::FirstByIp => gi.first_by_addr().and_then(|k| storages.get_full(k)),
            StoreServer::ByPriority => gi.first_by_priority().and_then(|k| storages.get_full(k)),
        };
        s.ok_or(errno::ENOSPC)
    }

    /// The storage QUERY_FETCH_ONE answers (moving the read round robin as `scan_readers`
    /// does), or None when only a scan can tell: some but not all storages have synced the file.
    pub(super) fn index_reader<'a>(
        &mut self,
        cluster: &Cluster,
        gr: GroupRef<'a>,
        gi: &GroupIndex,
        name: &RemoteName,
        unix_now: i64,
    ) -> Option<Result<&'a StorageNode, Errno>> {
        let g = gr.g;
        let src = source_of(g, gi, name);
        let src_active = src.filter(|s| s.is_active());
        if name.info.is_appender() || name.is_slave() {
            if let Some(s) = src_active {
                return Some(Ok(s));
            }
        }
        let everyone = match src {
            // A source this tracker never saw: nothing to compare sync positions with.
            None => true,
            Some(src) => self.others_can_serve(gi, src, src_active.is_some(), name, unix_now)?,
        };
        if !everyone {
            if let Some(s) = src_active {
                return Some(Ok(s));
            }
            // Nobody is known to have it: every ACTIVE storage is offered.
        }
        let n = gi.active_len();
        let i = match (n, self.cfg.download_server, src_active) {
            (0, _, _) => return Some(Err(errno::ENOENT)),
            (1, _, _) => 0,
            (_, DownloadServer::SourceFirst, Some(s)) => return Some(Ok(s)),
            _ => self.next_reader(cluster, gr.at, n),
        };
        Some(
            gi.active_at(&g.storages, i)
                .map(|(_, s)| s)
                .ok_or(errno::ENOENT),
        )
    }

    /// Whether every ACTIVE storage besides the source can serve the file (Some(true)), none
    /// can (Some(false)), or some can (None), from the spread of their sync positions.
    fn others_can_serve(
        &self,
        gi: &GroupIndex,
        src: &StorageNode,
        src_active: bool,
        name: &RemoteName,
        unix_now: i64,
    ) -> Option<bool> {
        let created = name.info.create_time as i64;
        let age = unix_now - created;
        if self.cfg.sync_max_delay > 0 && age > self.cfg.sync_max_delay {
            return Some(true);
        }
        // `can_serve`: synced past the file's second, or up to it once the file is old enough.
        let least = if age > self.cfg.sync_max_time {
            created - 1
        } else {
            created + 1
        };
        let others = gi.active_len() - usize::from(src_active);
        let Some(synced) = gi.synced_from(&src.id) else {
            return Some(others == 0);
        };
        // The source's own position for itself (if any) is not another storage's.
        let own = src_active
            .then(|| src.synced_from.get(&src.id).copied())
            .flatten();
        let (count, min, max) = synced.without(own);
        if max.is_none_or(|m| (m as i64) < least) {
            return Some(false);
        }
        if count == others && min.is_some_and(|m| m as i64 >= least) {
            return Some(true);
        }
        None
    }
}
