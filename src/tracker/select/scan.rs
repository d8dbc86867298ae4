//! The selection rules by walking the groups and storages: linear in both. The reference the
//! indexed selection is tested against (same answers, same cursor moves), and the answer
//! where the result is a list anyway.

use super::{GroupRef, Selector, StorageRef};
use crate::config::{DownloadServer, StoreLookup, StoreServer};
use crate::proto::cmd::errno;
use crate::proto::fileid::{RemoteName, Source};
use crate::tracker::cluster::{has_room, Cluster, Errno, Group, StorageNode};

impl Selector {
    /// ACTIVE storages with room, in key order, with their positions in `g.storages`.
    pub(super) fn scan_writable<'a>(&self, g: &'a Group) -> Vec<StorageRef<'a>> {
        (g.storages.values().enumerate())
            .filter(|(_, s)| {
                s.is_active() && has_room(&self.cfg.reserved, s.total_mb(), s.free_mb())
            })
            .collect()
    }

    pub(super) fn scan_group_refusal(&self, g: &Group) -> Option<Errno> {
        if !g.storages.values().any(|s| s.is_active()) {
            return Some(errno::ENOENT);
        }
        let (total, free) = g.space_mb();
        if !has_room(&self.cfg.reserved, total, free) || self.scan_writable(g).is_empty() {
            return Some(errno::ENOSPC);
        }
        None
    }

    /// `store_lookup` over every group (no group named): its position and the group.
    pub(super) fn scan_pick_group<'a>(
        &mut self,
        cluster: &'a Cluster,
    ) -> Result<(usize, &'a Group), Errno> {
        let groups: Vec<&Group> = cluster.groups.values().collect();
        if groups.is_empty() {
            return Err(errno::ENOENT);
        }
        let usable: Vec<(usize, &Group)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| self.scan_group_refusal(g).is_none())
            .map(|(i, g)| (i, *g))
            .collect();
        if usable.is_empty() {
            // ENOSPC when some group has live storages but no room, ENOENT when none is live.
            let any_live = groups
                .iter()
                .any(|g| g.storages.values().any(|s| s.is_active()));
            return Err(if any_live {
                errno::ENOSPC
            } else {
                errno::ENOENT
            });
        }
        match self.cfg.store_lookup {
            StoreLookup::LoadBalance => Ok(usable
                .iter()
                .max_by(|a, b| a.1.space_mb().1.cmp(&b.1.space_mb().1).then(b.0.cmp(&a.0)))
                .copied()
                .ok_or(errno::ENOENT)?),
            _ => {
                let start = self.group_cursor % groups.len();
                let (i, g) = usable
                    .iter()
                    .find(|(i, _)| *i >= start)
                    .or_else(|| usable.first())
                    .copied()
                    .ok_or(errno::ENOENT)?;
                self.group_cursor = i + 1;
                Ok((i, g))
            }
        }
    }

    pub(super) fn scan_peek_server<'a>(
        &self,
        cluster: &Cluster,
        gr: GroupRef<'a>,
    ) -> Result<StorageRef<'a>, Errno> {
        let list = self.scan_writable(gr.g);
        if list.is_empty() {
            return Err(errno::ENOSPC);
        }
        let s = match self.cfg.store_server {
            StoreServer::RoundRobin => list[self.server_cursor(cluster, gr.at) % list.len()],
            StoreServer::FirstByIp => list
                .iter()
                .min_by(|(_, a), (_, b)| (a.ip.as_str(), a.port).cmp(&(b.ip.as_str(), b.port)))
                .copied()
                .ok_or(errno::ENOSPC)?,
            StoreServer::ByPriority => list
                .iter()
                .min_by_key(|(_, s)| s.upload_priority)
                .copied()
                .ok_or(errno::ENOSPC)?,
        };
        Ok(s)
    }

    pub(super) fn scan_source_of<'a>(g: &'a Group, name: &RemoteName) -> Option<&'a StorageNode> {
        match name.info.source {
            Source::Id(id) => g.find_by_id(&id.to_string()),
            Source::Ip(ip) => {
                let ip = ip.to_string();
                g.storages.values().find(|s| s.ip == ip)
            }
        }
    }

    /// ACTIVE storages that can serve `filename`, in the order to try them. Appender and slave
    /// files go to their source while it is ACTIVE. When none is known to have the file (e.g. a
    /// sync report is late and the source is down) every ACTIVE storage is offered: a miss costs
    /// the client the same ENOENT the tracker would have sent.
    pub(super) fn scan_readers<'a>(
        &mut self,
        cluster: &Cluster,
        gr: GroupRef<'a>,
        name: &RemoteName,
        unix_now: i64,
        rotate: bool,
    ) -> Vec<&'a StorageNode> {
        let g = gr.g;
        let active: Vec<&StorageNode> = g.storages.values().filter(|s| s.is_active()).collect();
        let src = Self::scan_source_of(g, name);
        let src_active = src.filter(|s| s.is_active());
        if name.info.is_appender() || name.is_slave() {
            if let Some(s) = src_active {
                return vec![s];
            }
        }
        let mut eligible: Vec<&StorageNode> = match src {
            // A source this tracker never saw: nothing to compare sync positions with.
            None => active.clone(),
            Some(_) => active
                .iter()
                .copied()
                .filter(|s| self.can_serve(s, src, name, unix_now))
                .collect(),
        };
        if eligible.is_empty() {
            eligible = active;
        }
        // FETCH_ALL answers in group order and moves no cursor, as C FastDFS does (captured:
        // storage-join.txt, every SERVICE_QUERY_FETCH_ALL answer).
        if eligible.len() > 1 && rotate {
            let first = match (self.cfg.download_server, src_active) {
                (DownloadServer::SourceFirst, Some(s))
                    if eligible.iter().any(|e| e.key == s.key) =>
                {
                    eligible.iter().position(|e| e.key == s.key).unwrap_or(0)
                }
                _ => self.next_reader(cluster, gr.at, eligible.len()),
            };
            eligible.rotate_left(first);
        }
        eligible
    }
}
