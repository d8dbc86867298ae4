//! Choosing servers for clients (PROTOCOL.md section 8): the group and storage an upload goes
//! to (`store_lookup`, `store_server`), its store path (`store_path`), the storages a file can
//! be read from (`download_server` + sync positions) and the one that takes changes.
//!
//! Pure: reads a [`Cluster`], keeps only round-robin cursors, takes `unix_now` as an argument.
//! Never hands out a storage that is not ACTIVE, nor one (or a group) at or under
//! `reserved_storage_space`.

use super::cluster::{has_room, Cluster, Errno, Group, StorageNode};
use crate::config::{
    DownloadServer, Reserved, StoreLookup, StorePathLookup, StoreServer, TrackerConfig,
};
use crate::proto::cmd::errno;
use crate::proto::fileid::{RemoteName, Source};
use crate::proto::tracker::StorageAddr;
use std::collections::HashMap;

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
    server_cursor: HashMap<String, usize>,
    path_cursor: HashMap<String, usize>,
    read_cursor: HashMap<String, usize>,
}

fn addr(s: &StorageNode) -> StorageAddr {
    StorageAddr {
        ip: s.ip.clone(),
        port: s.port,
    }
}

impl Selector {
    pub fn new(cfg: SelectConfig) -> Self {
        Selector {
            cfg,
            group_cursor: 0,
            server_cursor: HashMap::new(),
            path_cursor: HashMap::new(),
            read_cursor: HashMap::new(),
        }
    }

    pub fn config(&self) -> &SelectConfig {
        &self.cfg
    }

    /// ACTIVE storages with room, in key order.
    fn writable<'a>(&self, g: &'a Group) -> Vec<&'a StorageNode> {
        g.storages
            .values()
            .filter(|s| s.is_active() && has_room(&self.cfg.reserved, s.total_mb(), s.free_mb()))
            .collect()
    }

    /// Why a group cannot take an upload: ENOENT (no ACTIVE storage) or ENOSPC (no room).
    fn group_refusal(&self, g: &Group) -> Option<Errno> {
        if !g.storages.values().any(|s| s.is_active()) {
            return Some(errno::ENOENT);
        }
        let (total, free) = g.space_mb();
        if !has_room(&self.cfg.reserved, total, free) || self.writable(g).is_empty() {
            return Some(errno::ENOSPC);
        }
        None
    }

    fn pick_group<'a>(
        &mut self,
        cluster: &'a Cluster,
        group: Option<&str>,
    ) -> Result<&'a Group, Errno> {
        let wanted = match (group, self.cfg.store_lookup) {
            (Some(g), _) => Some(g.to_string()),
            (None, StoreLookup::Specified) => {
                Some(self.cfg.store_group.clone().ok_or(errno::ENOENT)?)
            }
            (None, _) => None,
        };
        if let Some(name) = wanted {
            let g = cluster.groups.get(&name).ok_or(errno::ENOENT)?;
            return match self.group_refusal(g) {
                Some(e) => Err(e),
                None => Ok(g),
            };
        }
        let groups: Vec<&Group> = cluster.groups.values().collect();
        if groups.is_empty() {
            return Err(errno::ENOENT);
        }
        let usable: Vec<(usize, &Group)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| self.group_refusal(g).is_none())
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
                .map(|(_, g)| *g)
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
                Ok(g)
            }
        }
    }

    fn pick_server<'a>(&mut self, g: &'a Group) -> Result<&'a StorageNode, Errno> {
        let s = self.peek_server(g)?;
        if self.cfg.store_server == StoreServer::RoundRobin {
            let n = self.writable(g).len().max(1);
            let c = self.server_cursor.entry(g.name.clone()).or_insert(0);
            *c = (*c % n + 1) % n;
        }
        Ok(s)
    }

    /// The storage `pick_server` would choose, without moving the round robin.
    fn peek_server<'a>(&self, g: &'a Group) -> Result<&'a StorageNode, Errno> {
        let list = self.writable(g);
        if list.is_empty() {
            return Err(errno::ENOSPC);
        }
        let s = match self.cfg.store_server {
            StoreServer::RoundRobin => {
                let c = self.server_cursor.get(&g.name).copied().unwrap_or(0);
                list[c % list.len()]
            }
            StoreServer::FirstByIp => list
                .iter()
                .min_by(|a, b| (a.ip.as_str(), a.port).cmp(&(b.ip.as_str(), b.port)))
                .copied()
                .ok_or(errno::ENOSPC)?,
            StoreServer::ByPriority => list
                .iter()
                .min_by_key(|s| s.upload_priority)
                .copied()
                .ok_or(errno::ENOSPC)?,
        };
        Ok(s)
    }

    /// Store path on `s`: round robin or most free, skipping paths at or under their reserve.
    fn pick_path(&mut self, s: &StorageNode) -> Result<u8, Errno> {
        let i = self.peek_path(s)?;
        if self.cfg.store_path == StorePathLookup::RoundRobin {
            self.path_cursor.insert(s.key.clone(), i as usize + 1);
        }
        Ok(i)
    }

    /// The path `pick_path` would choose, without moving the round robin.
    fn peek_path(&self, s: &StorageNode) -> Result<u8, Errno> {
        let ok: Vec<usize> = s
            .paths
            .iter()
            .enumerate()
            .filter(|(_, p)| has_room(&self.cfg.reserved, p.total_mb, p.free_mb))
            .map(|(i, _)| i)
            .collect();
        let i = match self.cfg.store_path {
            StorePathLookup::LoadBalance => ok
                .iter()
                .copied()
                .max_by_key(|i| (s.paths[*i].free_mb, usize::MAX - i)),
            StorePathLookup::RoundRobin => {
                let c = self.path_cursor.get(&s.key).copied().unwrap_or(0);
                ok.iter()
                    .copied()
                    .find(|i| *i >= c)
                    .or_else(|| ok.first().copied())
            }
        };
        i.and_then(|i| u8::try_from(i).ok()).ok_or(errno::ENOSPC)
    }

    /// QUERY_STORE_*_ONE.
    pub fn store(&mut self, cluster: &Cluster, group: Option<&str>) -> Result<StoreChoice, Errno> {
        let g = self.pick_group(cluster, group)?;
        let s = self.pick_server(g)?;
        let store_path_index = self.pick_path(s)?;
        Ok(StoreChoice {
            group: g.name.clone(),
            addrs: vec![addr(s)],
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
        let g = self.pick_group(cluster, group)?;
        let next = self.peek_server(g)?;
        let store_path_index = self.peek_path(next)?;
        Ok(StoreChoice {
            group: g.name.clone(),
            addrs: self.writable(g).into_iter().map(addr).collect(),
            store_path_index,
        })
    }

    fn source_of<'a>(g: &'a Group, name: &RemoteName) -> Option<&'a StorageNode> {
        match name.info.source {
            Source::Id(id) => g.find_by_id(&id.to_string()),
            Source::Ip(ip) => {
                let ip = ip.to_string();
                g.storages.values().find(|s| s.ip == ip)
            }
        }
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

    /// ACTIVE storages that can serve `filename`, in the order to try them. Appender and slave
    /// files go to their source while it is ACTIVE. When none is known to have the file (e.g. a
    /// sync report is late and the source is down) every ACTIVE storage is offered: a miss costs
    /// the client the same ENOENT the tracker would have sent.
    fn readers<'a>(
        &mut self,
        g: &'a Group,
        name: &RemoteName,
        unix_now: i64,
        rotate: bool,
    ) -> Vec<&'a StorageNode> {
        let active: Vec<&StorageNode> = g.storages.values().filter(|s| s.is_active()).collect();
        let src = Self::source_of(g, name);
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
                _ => {
                    let c = self.read_cursor.entry(g.name.clone()).or_insert(0);
                    let i = *c % eligible.len();
                    *c = (i + 1) % eligible.len();
                    i
                }
            };
            eligible.rotate_left(first);
        }
        eligible
    }

    fn group_and_name<'a>(
        cluster: &'a Cluster,
        group: &str,
        filename: &str,
    ) -> Result<(&'a Group, RemoteName), Errno> {
        let g = cluster.groups.get(group).ok_or(errno::ENOENT)?;
        let name = RemoteName::parse_str(filename).map_err(|_| errno::EINVAL)?;
        Ok((g, name))
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
        let (g, name) = Self::group_and_name(cluster, group, filename)?;
        let mut list: Vec<StorageAddr> = self
            .readers(g, &name, unix_now, !all)
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
        let (g, name) = Self::group_and_name(cluster, group, filename)?;
        if let Some(s) = Self::source_of(g, &name).filter(|s| s.is_active()) {
            return Ok(addr(s));
        }
        let active: Vec<&StorageNode> = g.storages.values().filter(|s| s.is_active()).collect();
        if active.is_empty() {
            return Err(errno::ENOENT);
        }
        match self.pick_server(g) {
            Ok(s) => Ok(addr(s)),
            // Deletes must work on a full group too.
            Err(_) => Ok(addr(active[0])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cluster::Identity;
    use super::*;
    use crate::proto::fileid::{new_name, FileInfo};
    use crate::proto::tracker::{JoinReq, PathUsage, StorageStatus, SyncPosition};
    use std::time::Instant;

    fn cfg(lookup: StoreLookup) -> SelectConfig {
        SelectConfig {
            store_lookup: lookup,
            store_group: Some("g2".into()),
            store_server: StoreServer::RoundRobin,
            store_path: StorePathLookup::RoundRobin,
            download_server: DownloadServer::RoundRobin,
            reserved: Reserved::Percent(10.0),
            sync_max_delay: 86400,
            sync_max_time: 300,
        }
    }

    /// Adds an ACTIVE storage `id` (numeric) on 127.0.0.1:`port` with one path.
    fn add(c: &mut Cluster, group: &str, id: &str, port: u16, total: u64, free: u64) {
        let req = JoinReq {
            group: group.into(),
            storage_port: port,
            store_path_count: 1,
            subdir_count_per_path: 256,
            upload_priority: 10,
            join_time: 0,
            up_time: 0,
            version: "6.16.1".into(),
            init_flag: 0,
            status: 0,
            storage_id: id.into(),
            current_tracker_ip: String::new(),
            trackers: vec![],
        };
        let who = Identity {
            key: id.into(),
            id: id.into(),
            ip: "127.0.0.1".into(),
        };
        let now = Instant::now();
        c.join(&who, &req, 0, now);
        c.disk_usage(
            group,
            id,
            vec![PathUsage {
                total_mb: total,
                free_mb: free,
            }],
            now,
        )
        .unwrap();
        assert_eq!(c.storage(group, id).unwrap().status, StorageStatus::Active);
    }

    fn file_from(src_id: u32, created: u32) -> String {
        let info = FileInfo {
            source: Source::Id(src_id),
            create_time: created,
            size_field: FileInfo::size_field_for(5, false, 7),
            crc32: 1,
        };
        format!("M00/00/00/{}", new_name(&info, "txt", 123))
    }

    #[test]
    fn round_robin_alternates_groups_and_skips_full_ones() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 500);
        add(&mut c, "g2", "2", 23001, 1000, 500);
        add(&mut c, "g3", "3", 23002, 1000, 50); // under 10 % reserved
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        let picks: Vec<String> = (0..4).map(|_| s.store(&c, None).unwrap().group).collect();
        assert_eq!(picks, ["g1", "g2", "g1", "g2"]);
        assert_eq!(s.store(&c, Some("g3")), Err(errno::ENOSPC));
        assert_eq!(s.store(&c, Some("nope")), Err(errno::ENOENT));
    }

    #[test]
    fn specified_and_load_balance() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 900);
        add(&mut c, "g2", "2", 23001, 1000, 500);
        let mut s = Selector::new(cfg(StoreLookup::Specified));
        assert_eq!(s.store(&c, None).unwrap().group, "g2");
        let mut s = Selector::new(cfg(StoreLookup::LoadBalance));
        assert_eq!(s.store(&c, None).unwrap().group, "g1");
        c.disk_usage(
            "g2",
            "2",
            vec![PathUsage {
                total_mb: 1000,
                free_mb: 950,
            }],
            Instant::now(),
        )
        .unwrap();
        assert_eq!(s.store(&c, None).unwrap().group, "g2");
    }

    #[test]
    fn all_groups_full_is_enospc_and_no_storage_is_enoent() {
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        assert_eq!(s.store(&Cluster::new(), None), Err(errno::ENOENT));
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 100);
        assert_eq!(s.store(&c, None), Err(errno::ENOSPC));
    }

    #[test]
    fn storage_round_robin_skips_offline_members_and_a_full_member_fills_the_group() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 900);
        add(&mut c, "g1", "2", 23001, 1000, 900);
        add(&mut c, "g1", "3", 23002, 1000, 10);
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        // Every member holds every file: one full member means the group is full.
        assert_eq!(s.store(&c, None), Err(errno::ENOSPC));
        c.disconnect("g1", "3", 0);
        let ports: Vec<u16> = (0..4)
            .map(|_| s.store(&c, None).unwrap().addrs[0].port)
            .collect();
        assert_eq!(ports, [23000, 23001, 23000, 23001]);
        let all = s.store_all(&c, None).unwrap();
        assert_eq!(all.addrs.len(), 2);
        c.disconnect("g1", "1", 0);
        let ports: Vec<u16> = (0..3)
            .map(|_| s.store(&c, None).unwrap().addrs[0].port)
            .collect();
        assert_eq!(ports, [23001; 3]);
    }

    /// Issue 17: C FastDFS's QUERY_STORE_*_ALL neither advances the storage/path round robin
    /// nor rotates the list; FETCH_ALL lists readers in group order too.
    #[test]
    fn all_queries_keep_group_order_and_move_no_round_robin() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 900);
        add(&mut c, "g1", "2", 23001, 1000, 900);
        add(&mut c, "g1", "3", 23002, 1000, 900);
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        assert_eq!(s.store(&c, None).unwrap().addrs[0].port, 23000);
        for _ in 0..3 {
            let all = s.store_all(&c, None).unwrap();
            let ports: Vec<u16> = all.addrs.iter().map(|a| a.port).collect();
            assert_eq!(ports, [23000, 23001, 23002]);
        }
        // "all" then "one" (fdfs_test): "one" gets the storage that was next.
        assert_eq!(s.store(&c, None).unwrap().addrs[0].port, 23001);
        assert_eq!(s.store(&c, None).unwrap().addrs[0].port, 23002);
        let now = 1_800_000_000;
        let old = file_from(1, (now - 90_000) as u32);
        for _ in 0..3 {
            let ports: Vec<u16> = s
                .fetch(&c, "g1", &old, now, true)
                .unwrap()
                .iter()
                .map(|a| a.port)
                .collect();
            assert_eq!(ports, [23000, 23001, 23002]);
        }
    }

    #[test]
    fn fetch_follows_sync_positions() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 900);
        add(&mut c, "g1", "2", 23001, 1000, 900);
        let now = 1_800_000_000;
        let name = file_from(1, (now - 10) as u32);
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        // Storage 2 has not synced from 1 yet: only the source serves it.
        let all = s.fetch(&c, "g1", &name, now, true).unwrap();
        assert_eq!(all.iter().map(|a| a.port).collect::<Vec<_>>(), [23000]);
        for _ in 0..3 {
            assert_eq!(s.fetch(&c, "g1", &name, now, false).unwrap()[0].port, 23000);
        }
        // Synced exactly up to the create second: not yet (FastDFS requires newer) ...
        let pos = [SyncPosition {
            src_id: "1".into(),
            timestamp: (now - 10) as u32,
        }];
        c.sync_report("g1", "2", &pos, Instant::now()).unwrap();
        assert_eq!(s.fetch(&c, "g1", &name, now, true).unwrap().len(), 1);
        // ... unless the file is older than storage_sync_file_max_time.
        assert_eq!(s.fetch(&c, "g1", &name, now + 400, true).unwrap().len(), 2);
        let pos = [SyncPosition {
            src_id: "1".into(),
            timestamp: (now - 5) as u32,
        }];
        c.sync_report("g1", "2", &pos, Instant::now()).unwrap();
        let ports: Vec<u16> = (0..2)
            .map(|_| s.fetch(&c, "g1", &name, now, false).unwrap()[0].port)
            .collect();
        assert!(ports.contains(&23000) && ports.contains(&23001));
        // Old files are everywhere.
        let old = file_from(1, (now - 90_000) as u32);
        c.sync_report("g1", "2", &[], Instant::now()).unwrap();
        assert_eq!(s.fetch(&c, "g1", &old, now, true).unwrap().len(), 2);
        // Source down and nobody known to have it: every ACTIVE storage is offered.
        c.disconnect("g1", "1", 0);
        let fresh = file_from(1, (now - 1) as u32);
        assert_eq!(s.fetch(&c, "g1", &fresh, now, true).unwrap()[0].port, 23001);
        assert_eq!(s.fetch(&c, "g1", "garbage", now, true), Err(errno::EINVAL));
    }

    #[test]
    fn update_goes_to_the_source_while_active() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 900);
        add(&mut c, "g1", "2", 23001, 1000, 900);
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        let name = file_from(2, 1_800_000_000);
        for _ in 0..3 {
            assert_eq!(s.update(&c, "g1", &name).unwrap().port, 23001);
        }
        c.disconnect("g1", "2", 0);
        assert_eq!(s.update(&c, "g1", &name).unwrap().port, 23000);
        c.disconnect("g1", "1", 0);
        assert_eq!(s.update(&c, "g1", &name), Err(errno::ENOENT));
    }

    #[test]
    fn store_path_round_robin_skips_full_paths() {
        let mut c = Cluster::new();
        add(&mut c, "g1", "1", 23000, 1000, 900);
        let node = c
            .groups
            .get_mut("g1")
            .unwrap()
            .storages
            .get_mut("1")
            .unwrap();
        node.store_path_count = 3;
        node.paths = vec![
            PathUsage {
                total_mb: 100,
                free_mb: 50,
            },
            PathUsage {
                total_mb: 100,
                free_mb: 5,
            },
            PathUsage {
                total_mb: 100,
                free_mb: 70,
            },
        ];
        let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
        let idx: Vec<u8> = (0..4)
            .map(|_| s.store(&c, None).unwrap().store_path_index)
            .collect();
        assert_eq!(idx, [0, 2, 0, 2]);
        let mut lb = cfg(StoreLookup::RoundRobin);
        lb.store_path = StorePathLookup::LoadBalance;
        let mut s = Selector::new(lb);
        assert_eq!(s.store(&c, None).unwrap().store_path_index, 2);
    }
}
