//! Choosing servers for clients (PROTOCOL.md section 8): the group and storage an upload goes
//! to (`store_lookup`, `store_server`), its store path (`store_path`), the storages a file can
//! be read from (`download_server` + sync positions) and the one that takes changes.
//!
//! Pure: reads a [`Cluster`], keeps only round-robin cursors, takes `unix_now` as an argument.
//! Never hands out a storage that is not ACTIVE, nor one (or a group) at or under
//! `reserved_storage_space`.
//!
//! The rules are implemented twice, with the same answers and cursor moves: `indexed` answers
//! from the cluster's indexes (`tracker::index`) in O(log n) of the groups and of a group's
//! storages (issue 27); `scan` walks the groups and storages. `scan` is the reference the
//! property tests (`equivalence`) hold `indexed` to; it also answers the questions whose answer
//! is a list anyway (the *_ALL queries), a read of a file some but not all storages have
//! synced, and everything when the index was built with another `reserved_storage_space`.

mod cursors;
#[cfg(test)]
mod equivalence;
mod indexed;
mod scan;
#[cfg(test)]
mod tests;

use super::cluster::{has_room, Cluster, Errno, Group, StorageNode};
use super::index::GroupIndex;
use crate::config::{
    DownloadServer, Reserved, StoreLookup, StorePathLookup, StoreServer, TrackerConfig,
};
use crate::proto::cmd::errno;
use crate::proto::fileid::RemoteName;
use crate::proto::tracker::StorageAddr;
use cursors::{step, ByPosition, GroupCursors};

/// The settings selection depends on (a slice of `TrackerConfig`).
#[derive(Debug, Clone)]
pub struct SelectConfig {
    pub store_lookup: StoreLookup,
    pub store_group: Option<String>,
    pub store_server: StoreServer,
    pub store_path: StorePathLookup,
    pub download_server: DownloadServer,
    pub reserved: Reserved,
    /// Seconds after which any storage is assumed to have a file (storage_sync_file_max_delay).
    pub sync_max_delay: i64,
    /// Seconds after which a storage synced up to the file's second may serve it.
    pub sync_max_time: i64,
}

impl SelectConfig {
    pub fn from_config(cfg: &TrackerConfig) -> Self {
        SelectConfig {
            store_lookup: cfg.store_lookup,
            store_group: cfg.store_group.clone(),
            store_server: cfg.store_server,
            store_path: cfg.store_path,
            download_server: cfg.download_server,
            reserved: cfg.reserved_storage_space,
            sync_max_delay: cfg.storage_sync_file_max_delay.get().as_secs() as i64,
            sync_max_time: cfg.storage_sync_file_max_time.get().as_secs() as i64,
        }
    }
}

/// Where one upload goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChoice {
    pub group: String,
    pub addrs: Vec<StorageAddr>,
    pub store_path_index: u8,
}

#[derive(Debug)]
pub struct Selector {
    cfg: SelectConfig,
    group_cursor: usize,
    /// Per group of the view (by position), its storage, read and store path round robins.
    cursors: ByPosition<GroupCursors>,
    /// Answer by scanning only (the reference the indexed answers are tested against).
    scan_only: bool,
}

fn addr(s: &StorageNode) -> StorageAddr {
    StorageAddr {
        ip: s.ip.clone(),
        port: s.port,
    }
}

/// A group of the view: its position in `Cluster::groups` (where its cursors are kept), and its
/// indexes when they answer for us.
#[derive(Clone, Copy)]
struct GroupRef<'a> {
    at: usize,
    g: &'a Group,
    gi: Option<&'a GroupIndex>,
}

/// A storage of a group, with its position in the group's `storages`.
type StorageRef<'a> = (usize, &'a StorageNode);

impl Selector {
    pub fn new(cfg: SelectConfig) -> Self {
        Selector {
            cfg,
            group_cursor: 0,
            cursors: ByPosition::default(),
            scan_only: false,
        }
    }

    /// A selector that always scans: the reference for the indexed one.
    pub fn scanning(cfg: SelectConfig) -> Self {
        Selector {
            scan_only: true,
            ..Selector::new(cfg)
        }
    }

    pub fn config(&self) -> &SelectConfig {
        &self.cfg
    }

    /// Whether the cluster's indexes answer for us (they judge room by our reserve).
    fn indexed(&self, cluster: &Cluster) -> bool {
        !self.scan_only && cluster.index().reserved() == &self.cfg.reserved
    }

    /// Group `name`, with its indexes when they answer for us (found by the group's position
    /// when the index's groups are the cluster's: one lookup by name instead of two).
    fn named_group<'c>(&self, cluster: &'c Cluster, name: &str) -> Result<GroupRef<'c>, Errno> {
        let (at, g) = cluster.groups.get_full(name).ok_or(errno::ENOENT)?;
        if !self.indexed(cluster) {
            return Ok(GroupRef { at, g, gi: None });
        }
        let ix = cluster.index();
        let gi = if ix.aligned_with(&cluster.groups) {
            ix.group_at(at).map(|(_, gi)| gi)
        } else {
            ix.group(name)
        };
        Ok(GroupRef { at, g, gi })
    }

    /// Group `at`'s cursor of the storage round robin (0 before its first move).
    fn server_cursor(&self, cluster: &Cluster, at: usize) -> usize {
        self.cursors
            .get(&cluster.groups, at)
            .map_or(0, |c| c.server)
    }

    /// Moves group `at`'s read round robin over `n` readers; the one to use now.
    fn next_reader(&mut self, cluster: &Cluster, at: usize, n: usize) -> usize {
        (self.cursors.get_mut(&cluster.groups, at)).map_or(0, |c| step(&mut c.read, n))
    }

    /// Why a group cannot take an upload: ENOENT (no ACTIVE storage) or ENOSPC (no room).
    fn group_refusal(&self, g: &Group, gi: Option<&GroupIndex>) -> Option<Errno> {
        match gi {
            Some(gi) => gi.refusal(&self.cfg.reserved),
            None => self.scan_group_refusal(g),
        }
    }

    /// The group an upload goes to, with its indexes when they answer for us.
    fn pick_group<'a>(
        &mut self,
        cluster: &'a Cluster,
        group: Option<&str>,
    ) -> Result<GroupRef<'a>, Errno> {
        let wanted = match (group, self.cfg.store_lookup) {
            (Some(g), _) => Some(g),
            (None, StoreLookup::Specified) => {
                Some(self.cfg.store_group.as_deref().ok_or(errno::ENOENT)?)
            }
            (None, _) => None,
        };
        if let Some(name) = wanted {
            let gr = self.named_group(cluster, name)?;
            return match self.group_refusal(gr.g, gr.gi) {
                Some(e) => Err(e),
                None => Ok(gr),
            };
        }
        if self.indexed(cluster) {
            self.index_pick_group(cluster)
        } else {
            let (at, g) = self.scan_pick_group(cluster)?;
            Ok(GroupRef { at, g, gi: None })
        }
    }

    /// The storage an upload to `gr` goes to, moving the round robin.
    fn pick_server<'a>(
        &mut self,
        cluster: &Cluster,
        gr: GroupRef<'a>,
    ) -> Result<StorageRef<'a>, Errno> {
        let s = self.peek_server(cluster, gr)?;
        if self.cfg.store_server == StoreServer::RoundRobin {
            let n = match gr.gi {
                Some(gi) => gi.writable_len(),
                None => self.scan_writable(gr.g).len(),
            };
            if let Some(c) = self.cursors.get_mut(&cluster.groups, gr.at) {
                step(&mut c.server, n.max(1));
            }
        }
        Ok(s)
    }

    /// The storage `pick_server` would choose, without moving the round robin.
    fn peek_server<'a>(
        &self,
        cluster: &Cluster,
        gr: GroupRef<'a>,
    ) -> Result<StorageRef<'a>, Errno> {
        match gr.gi {
            Some(gi) => self.index_peek_server(cluster, gr, gi),
            None => self.scan_peek_server(cluster, gr),
        }
    }

    /// Store path on storage `s` of `gr`: round robin or most free, skipping paths at or under
    /// their reserve.
    fn pick_path(&mut self, cluster: &Cluster, gr: GroupRef, s: StorageRef) -> Result<u8, Errno> {
        let i = self.peek_path(cluster, gr, s)?;
        if self.cfg.store_path == StorePathLookup::RoundRobin {
            let group = self.cursors.get_mut(&cluster.groups, gr.at);
            if let Some(c) = group.and_then(|c| c.paths.get_mut(&gr.g.storages, s.0)) {
                *c = i as usize + 1;
            }
        }
        Ok(i)
    }

    /// The path `pick_path` would choose, without moving the round robin.
    fn peek_path(&self, cluster: &Cluster, gr: GroupRef, (at, s): StorageRef) -> Result<u8, Errno> {
        let ok = s
            .paths
            .iter()
            .enumerate()
            .filter(|(_, p)| has_room(&self.cfg.reserved, p.total_mb, p.free_mb))
            .map(|(i, _)| i);
        let i = match self.cfg.store_path {
            StorePathLookup::LoadBalance => {
                ok.max_by_key(|i| (s.paths[*i].free_mb, usize::MAX - i))
            }
            StorePathLookup::RoundRobin => {
                // The first usable path at or after the cursor, else the first usable one
                // (one pass, no allocation: this runs on every upload query).
                let group = self.cursors.get(&cluster.groups, gr.at);
                let c = group.and_then(|c| c.paths.get(&gr.g.storages, at));
                let c = c.copied().unwrap_or(0);
                let mut first = None;
                let mut at_or_after = None;
                for i in ok {
                    first.get_or_insert(i);
                    if i >= c {
                        at_or_after = Some(i);
                        break;
                    }
                }
                at_or_after.or(first)
            }
        };
        i.and_then(|i| u8::try_from(i).ok()).ok_or(errno::ENOSPC)
    }

    /// QUERY_STORE_*_ONE.
    pub fn store(&mut self, cluster: &Cluster, group: Option<&str>) -> Result<StoreChoice, Errno> {
        let gr = self.pick_group(cluster, group)?;
        let s = self.pick_server(cluster, gr)?;
        let store_path_index = self.pick_path(cluster, gr, s)?;
        Ok(StoreChoice {
            group: gr.g.name.clone(),
            addrs: vec![addr(s.1)],
            store_path_index,
        })
    }

    /// QUERY_STORE_*_ALL: every writable storage of the chosen group, in group order, and the
    /// path index of the storage `store_server` would pick next. Like C FastDFS it moves
    /// neither the storage nor the path round robin, so a following QUERY_STORE_*_ONE still
    /// gets the storage that was next (fdfs_test asks "all" then "one").
    pub fn store_all(
        &mut self,
        cluster: &Cluster,
        group: Option<&str>,
    ) -> Result<StoreChoice, Errno> {
        let gr = self.pick_group(cluster, group)?;
        let next = self.peek_server(cluster, gr)?;
        let store_path_index = self.peek_path(cluster, gr, next)?;
        let writable = self.scan_writable(gr.g).into_iter();
        Ok(StoreChoice {
            group: gr.g.name.clone(),
            addrs: writable.map(|(_, s)| addr(s)).collect(),
            store_path_index,
        })
    }

    /// Whether `s` is known to hold the file: it is the source, or it has synced from the source
    /// past the file's creation, or the file is old enough to have been synced by now.
    pub fn can_serve(
        &self,
        s: &StorageNode,
        src: Option<&StorageNode>,
        name: &RemoteName,
        unix_now: i64,
    ) -> bool {
        let created = name.info.create_time as i64;
        let age = unix_now - created;
        if src.is_some_and(|src| src.key == s.key) {
            return true;
        }
        if self.cfg.sync_max_delay > 0 && age > self.cfg.sync_max_delay {
            return true;
        }
        let synced = src
            .and_then(|src| s.synced_from.get(&src.id))
            .map(|t| *t as i64);
        match synced {
            Some(t) => t > created || (t + 1 >= created && age > self.cfg.sync_max_time),
            None => false,
        }
    }

    /// The group a file is in (with its indexes when they answer for us) and its parsed name.
    fn group_and_name<'a>(
        &self,
        cluster: &'a Cluster,
        group: &str,
        filename: &str,
    ) -> Result<(GroupRef<'a>, RemoteName), Errno> {
        let gr = self.named_group(cluster, group)?;
        let name = RemoteName::parse_str(filename).map_err(|_| errno::EINVAL)?;
        Ok((gr, name))
    }

    /// QUERY_FETCH_ONE (`all = false`) / QUERY_FETCH_ALL.
    pub fn fetch(
        &mut self,
        cluster: &Cluster,
        group: &str,
        filename: &str,
        unix_now: i64,
        all: bool,
    ) -> Result<Vec<StorageAddr>, Errno> {
        let (gr, name) = self.group_and_name(cluster, group, filename)?;
        if !all {
            if let Some(gi) = gr.gi {
                if let Some(one) = self.index_reader(cluster, gr, gi, &name, unix_now) {
                    return one.map(|s| vec![addr(s)]);
                }
            }
        }
        let mut list: Vec<StorageAddr> = self
            .scan_readers(cluster, gr, &name, unix_now, !all)
            .into_iter()
            .map(addr)
            .collect();
        if list.is_empty() {
            return Err(errno::ENOENT);
        }
        if !all {
            list.truncate(1);
        }
        Ok(list)
    }

    /// QUERY_UPDATE: the source while it is ACTIVE (it has every change first), else the
    /// storage an upload to this group would go to.
    pub fn update(
        &mut self,
        cluster: &Cluster,
        group: &str,
        filename: &str,
    ) -> Result<StorageAddr, Errno> {
        let (gr, name) = self.group_and_name(cluster, group, filename)?;
        let g = gr.g;
        let src = match gr.gi {
            Some(gi) => indexed::source_of(g, gi, &name),
            None => Self::scan_source_of(g, &name),
        };
        if let Some(s) = src.filter(|s| s.is_active()) {
            return Ok(addr(s));
        }
        let first_active = match gr.gi {
            Some(gi) => gi.active_at(&g.storages, 0).map(|(_, s)| s),
            None => g.storages.values().find(|s| s.is_active()),
        };
        let first_active = first_active.ok_or(errno::ENOENT)?;
        match self.pick_server(cluster, gr) {
            Ok((_, s)) => Ok(addr(s)),
            // Deletes must work on a full group too.
            Err(_) => Ok(addr(first_active)),
        }
    }
}
