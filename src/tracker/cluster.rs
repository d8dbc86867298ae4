//! The tracker's view of the cluster: groups, their storages, each storage's status, disk usage,
//! stats, last report time and sync positions. Pure state machine: events (join, beat, disk
//! report, sync report/notify/decision, status report, disconnect, liveness check) come in with
//! `now`; nothing here does I/O or reads a clock.
//!
//! Status rules (PROTOCOL.md section 9): a new storage that still has to copy old data joins as
//! INIT and gets a sync source (WAIT_SYNC) or goes ONLINE when its group has no other member; a
//! known storage (or one saying it has its data, `init_flag = 0`) joins ONLINE; ONLINE/OFFLINE
//! become ACTIVE on the next BEAT or REPORT_DISK_USAGE; ONLINE/ACTIVE become OFFLINE when their
//! connection closes or nothing was heard for `check_active_interval`. Only ACTIVE storages are
//! handed out (selection lives in `select`).
//!
//! Selection indexes (`index`) are updated here after every change, so `groups` is changed only
//! through these methods (or followed by `reindex`).
//!
//! Each group keeps a `version` that changes whenever its server list (members, status,
//! address) changes; the service sends the list to a storage when the version it last sent is old.

use super::index::Index;
use super::sorted_map::SortedMap;
use crate::config::{Reserved, StorageIdEntry};
use crate::proto::cmd::errno;
use crate::proto::tracker::{
    GroupStat, JoinReq, PathUsage, StorageBrief, StorageStat, StorageStats, StorageStatus,
    SyncPosition, SyncSource, RW_MODE_READ, RW_MODE_WRITE, STAT_LAST_HEART_BEAT_TIME,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Errno-valued refusal of an event (sent back as the response status).
pub type Errno = u8;

/// How a storage is named: `key` is unique in the tracker (storage id, or `ip:port` without
/// ids so several storages may share an address); `id` is what goes on the wire (id or ip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key: String,
    pub id: String,
    /// Address handed to clients.
    pub ip: String,
}

/// Works out who a joining storage is. With `use_storage_id` the id must be in `storage_ids`
/// (by the id it sends, else by its address) and belong to the group it claims.
pub fn identify(
    use_storage_id: bool,
    storage_ids: &[StorageIdEntry],
    group: &str,
    claimed_id: &str,
    peer_ip: &str,
    port: u16,
) -> Result<Identity, Errno> {
    if !use_storage_id {
        return Ok(Identity {
            key: format!("{peer_ip}:{port}"),
            id: peer_ip.to_string(),
            ip: peer_ip.to_string(),
        });
    }
    let entry = if claimed_id.is_empty() {
        storage_ids
            .iter()
            .find(|e| e.ip == peer_ip && e.port == Some(port))
            .or_else(|| {
                storage_ids
                    .iter()
                    .find(|e| e.ip == peer_ip && e.port.is_none())
            })
    } else {
        storage_ids.iter().find(|e| e.id == claimed_id)
    };
    let entry = entry.ok_or(errno::ENOENT)?;
    if entry.group != group {
        return Err(errno::EINVAL);
    }
    Ok(Identity {
        key: entry.id.clone(),
        id: entry.id.clone(),
        ip: entry.ip.clone(),
    })
}

/// One storage as the tracker knows it.
#[derive(Debug, Clone)]
pub struct StorageNode {
    pub key: String,
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub status: StorageStatus,
    pub version: String,
    pub join_time: i64,
    pub up_time: i64,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    /// Latest REPORT_DISK_USAGE, one entry per store path (empty until the first report).
    pub paths: Vec<PathUsage>,
    pub stats: StorageStats,
    pub last_heard: Instant,
    /// Source it copies old data from, and up to when (WAIT_SYNC / SYNCING).
    pub sync_src: Option<SyncSource>,
    /// Per source storage id: newest create timestamp this storage has synced from it.
    pub synced_from: BTreeMap<String, u32>,
    /// Which tracker connection this storage currently reports on.
    pub conn_id: u64,
}

impl StorageNode {
    /// Space of the fullest path counts: FastDFS refuses a storage whose chosen path is full.
    pub fn total_mb(&self) -> u64 {
        self.paths.iter().map(|p| p.total_mb).sum()
    }

    pub fn free_mb(&self) -> u64 {
        self.paths.iter().map(|p| p.free_mb).sum()
    }

    pub fn is_active(&self) -> bool {
        self.status == StorageStatus::Active
    }

    /// Unix time of the last report heard from it (C's last_heart_beat_time).
    pub fn last_heard_unix(&self, now: Instant, unix_now: i64) -> i64 {
        unix_now - now.saturating_duration_since(self.last_heard).as_secs() as i64
    }

    pub fn brief(&self) -> StorageBrief {
        StorageBrief {
            status: self.status as u8,
            port: self.port,
            id: self.id.clone(),
            ip: self.ip.clone(),
        }
    }
}

/// Reserved space of `total_mb`, in MiB.
pub fn reserved_mb(reserved: &Reserved, total_mb: u64) -> u64 {
    match *reserved {
        Reserved::Percent(p) => (total_mb as f64 * p / 100.0) as u64,
        Reserved::Bytes(b) => b.div_ceil(1024 * 1024),
    }
}

/// True when a disk (or group) of `total_mb` with `free_mb` left is above the reserved space.
/// A storage that has not reported its disks yet is not known to have room.
pub fn has_room(reserved: &Reserved, total_mb: u64, free_mb: u64) -> bool {
    total_mb > 0 && free_mb > reserved_mb(reserved, total_mb)
}

#[derive(Debug, Clone, Default)]
pub struct Group {
    pub name: String,
    pub storages: SortedMap<StorageNode>,
    /// Bumped whenever the server list changes.
    pub version: u64,
}

impl Group {
    /// The group's usable space is its smallest ACTIVE member's: every member holds every file.
    pub fn space_mb(&self) -> (u64, u64) {
        self.storages
            .values()
            .filter(|s| s.is_active() && !s.paths.is_empty())
            .map(|s| (s.total_mb(), s.free_mb()))
            .min_by_key(|(_, free)| *free)
            .unwrap_or((0, 0))
    }

    pub fn find_by_id(&self, id: &str) -> Option<&StorageNode> {
        self.storages.values().find(|s| s.id == id)
    }

    pub fn briefs(&self) -> Vec<StorageBrief> {
        self.storages.values().map(StorageNode::brief).collect()
    }
}

/// A status change the service logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub group: String,
    pub key: String,
    pub from: StorageStatus,
    pub to: StorageStatus,
}

#[derive(Debug, Default)]
pub struct Cluster {
    /// Change only through the methods below (they keep `index` in step), or call `reindex`.
    pub groups: SortedMap<Group>,
    index: Index,
}

impl Cluster {
    pub fn new() -> Self {
        Cluster::default()
    }

    /// The selection indexes over `groups`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The `reserved_storage_space` the indexes judge room by (default 10 %); rebuilds them.
    pub fn set_reserved(&mut self, reserved: Reserved) {
        self.index.rebuild(&self.groups, reserved);
    }

    /// Rebuilds the indexes after `groups` was changed directly.
    pub fn reindex(&mut self) {
        let reserved = *self.index.reserved();
        self.index.rebuild(&self.groups, reserved);
    }

    /// Brings the indexes in line with the storage a status change moved.
    fn touched(&mut self, t: Option<Transition>) -> Option<Transition> {
        if let Some(t) = &t {
            self.touch(&t.group, &t.key);
        }
        t
    }

    /// Brings the indexes in line with storage `key` of `group` after a change.
    fn touch(&mut self, group: &str, key: &str) {
        if let Some(g) = self.groups.get(group) {
            self.index.update(g, key);
        }
        self.index.align(&self.groups);
    }

    pub fn storage(&self, group: &str, key: &str) -> Option<&StorageNode> {
        self.groups.get(group)?.storages.get(key)
    }

    fn node_mut(&mut self, group: &str, key: &str) -> Result<(&mut StorageNode, &mut u64), Errno> {
        let g = self.groups.get_mut(group).ok_or(errno::ENOENT)?;
        let node = g.storages.get_mut(key).ok_or(errno::ENOENT)?;
        Ok((node, &mut g.version))
    }

    fn set_status(
        node: &mut StorageNode,
        version: &mut u64,
        group: &str,
        to: StorageStatus,
    ) -> Option<Transition> {
        if node.status == to {
            return None;
        }
        let t = Transition {
            group: group.to_string(),
            key: node.key.clone(),
            from: node.status,
            to,
        };
        node.status = to;
        *version += 1;
        Some(t)
    }

    /// JOIN: registers or refreshes a storage and returns its status and sync source.
    /// Whether a JOIN of `key` into `group` stays within `max_groups` and
    /// `max_storages_per_group` (a storage already known may always rejoin).
    pub fn join_fits(
        &self,
        group: &str,
        key: &str,
        cfg: &crate::config::TrackerConfig,
    ) -> Result<(), &'static str> {
        match self.groups.get(group) {
            None if self.groups.len() >= cfg.max_groups => {
                Err("max_groups reached: a new group is refused")
            }
            Some(g)
                if !g.storages.contains_key(key)
                    && g.storages.len() >= cfg.max_storages_per_group =>
            {
                Err("max_storages_per_group reached: a new storage is refused")
            }
            _ => Ok(()),
        }
    }

    pub fn join(
        &mut self,
        who: &Identity,
        req: &JoinReq,
        conn_id: u64,
        now: Instant,
    ) -> (StorageStatus, Option<SyncSource>, Option<Transition>) {
        let out = self.join_inner(who, req, conn_id, now);
        self.touch(&req.group, &who.key);
        out
    }

    fn join_inner(
        &mut self,
        who: &Identity,
        req: &JoinReq,
        conn_id: u64,
        now: Instant,
    ) -> (StorageStatus, Option<SyncSource>, Option<Transition>) {
        use StorageStatus::*;
        let g = self.groups.get_or_insert_with(req.group.clone(), || Group {
            name: req.group.clone(),
            ..Group::default()
        });
        let node = g.storages.get_or_insert_with(who.key.clone(), || {
            g.version += 1;
            StorageNode {
                key: who.key.clone(),
                id: who.id.clone(),
                ip: who.ip.clone(),
                port: req.storage_port,
                // A newcomer still copying old data waits for a sync decision (SYNC_DEST_REQ).
                status: if req.init_flag != 0 { Init } else { None },
                version: String::new(),
                join_time: req.join_time,
                up_time: req.up_time,
                store_path_count: req.store_path_count,
                subdir_count_per_path: req.subdir_count_per_path,
                upload_priority: req.upload_priority,
                paths: Vec::new(),
                stats: StorageStats::default(),
                last_heard: now,
                sync_src: Option::None,
                synced_from: BTreeMap::new(),
                conn_id,
            }
        });
        if node.ip != who.ip || node.port != req.storage_port || node.id != who.id {
            node.ip = who.ip.clone();
            node.port = req.storage_port;
            node.id = who.id.clone();
            g.version += 1;
        }
        node.version = req.version.clone();
        node.join_time = req.join_time;
        node.up_time = req.up_time;
        node.store_path_count = req.store_path_count;
        node.subdir_count_per_path = req.subdir_count_per_path;
        node.upload_priority = req.upload_priority;
        node.last_heard = now;
        node.conn_id = conn_id;
        if node.paths.len() != req.store_path_count as usize {
            node.paths.clear();
        }
        if node.status == Deleted {
            // Removed by an administrator and back: its data is stale (peers stopped syncing
            // to it), so it starts over as a newcomer.
            node.sync_src = Option::None;
            node.synced_from.clear();
            let t = Self::set_status(node, &mut g.version, &req.group, Init);
            return (Init, Option::None, t);
        }
        // A copy in progress (a source was assigned) ends only when the source reports it.
        let still_copying = matches!(node.status, Init | WaitSync | Syncing)
            && (req.init_flag != 0 || node.sync_src.is_some());
        let to = if still_copying { node.status } else { Online };
        let t = Self::set_status(node, &mut g.version, &req.group, to);
        (node.status, node.sync_src.clone(), t)
    }

    /// ONLINE / OFFLINE storages that report become ACTIVE.
    fn heard(
        node: &mut StorageNode,
        version: &mut u64,
        group: &str,
        now: Instant,
    ) -> Option<Transition> {
        node.last_heard = now;
        match node.status {
            StorageStatus::Online | StorageStatus::Offline => {
                Self::set_status(node, version, group, StorageStatus::Active)
            }
            _ => None,
        }
    }

    pub fn beat(
        &mut self,
        group: &str,
        key: &str,
        stats: Option<StorageStats>,
        now: Instant,
    ) -> Result<Option<Transition>, Errno> {
        let (node, version) = self.node_mut(group, key)?;
        if let Some(s) = stats {
            node.stats = s;
        }
        let t = Self::heard(node, version, group, now);
        if t.is_some() {
            self.touch(group, key);
        }
        Ok(t)
    }

    pub fn disk_usage(
        &mut self,
        group: &str,
        key: &str,
        paths: Vec<PathUsage>,
        now: Instant,
    ) -> Result<Option<Transition>, Errno> {
        let (node, version) = self.node_mut(group, key)?;
        if paths.len() != node.store_path_count as usize {
            return Err(errno::EINVAL);
        }
        node.paths = paths;
        let t = Self::heard(node, version, group, now);
        self.touch(group, key);
        Ok(t)
    }

    pub fn sync_report(
        &mut self,
        group: &str,
        key: &str,
        positions: &[SyncPosition],
        now: Instant,
    ) -> Result<(), Errno> {
        let (node, _) = self.node_mut(group, key)?;
        node.last_heard = now;
        let mut moved = Vec::new();
        for p in positions {
            if p.src_id != node.id && !p.src_id.is_empty() {
                let old = node.synced_from.insert(p.src_id.clone(), p.timestamp);
                if old != Some(p.timestamp) {
                    moved.push((p.src_id.as_str(), old, p.timestamp));
                }
            }
        }
        for (src, old, new) in moved {
            self.index.synced(group, key, src, old, new);
        }
        Ok(())
    }

    /// SYNC_DEST_REQ: a newcomer asks whom to copy old data from. An ACTIVE member becomes its
    /// source with `until = unix_now`; ENOENT while members with data are not ACTIVE; with no
    /// such member there is nothing to copy and the newcomer goes ONLINE.
    pub fn sync_dest_req(
        &mut self,
        group: &str,
        key: &str,
        unix_now: i64,
    ) -> Result<(Option<SyncSource>, Option<Transition>), Errno> {
        use StorageStatus::*;
        let g = self.groups.get_mut(group).ok_or(errno::ENOENT)?;
        let me = g.storages.get(key).ok_or(errno::ENOENT)?;
        if matches!(me.status, WaitSync | Syncing) && me.sync_src.is_some() {
            return Ok((me.sync_src.clone(), Option::None));
        }
        // As C (tracker-pair.txt #41, #56, #78): only an ACTIVE member is a source; a member
        // that holds data but is not ACTIVE yet (ONLINE, OFFLINE) means "ask again later"
        // (ENOENT); members still copying themselves (INIT, WAIT_SYNC, SYNCING) or deleted do
        // not count, so the first of two newcomers starting together has nothing to copy.
        let others = || g.storages.values().filter(|s| s.key != key);
        let src = others().find(|s| s.status == Active).map(|s| s.id.clone());
        if src.is_none() && others().any(|s| matches!(s.status, Online | Offline)) {
            return Err(errno::ENOENT);
        }
        let node = g.storages.get_mut(key).ok_or(errno::ENOENT)?;
        match src {
            Some(src_id) => {
                let s = SyncSource {
                    src_id,
                    until_timestamp: unix_now,
                };
                node.sync_src = Some(s.clone());
                let t = Self::set_status(node, &mut g.version, group, WaitSync);
                Ok((Some(s), self.touched(t)))
            }
            Option::None => {
                node.sync_src = Option::None;
                let t = Self::set_status(node, &mut g.version, group, Online);
                Ok((Option::None, self.touched(t)))
            }
        }
    }

    /// SYNC_NOTIFY: the storage tells this tracker the source another tracker gave it.
    pub fn sync_notify(
        &mut self,
        group: &str,
        key: &str,
        src: SyncSource,
    ) -> Result<Option<Transition>, Errno> {
        let (node, version) = self.node_mut(group, key)?;
        let to = if src.src_id.is_empty() {
            StorageStatus::Online
        } else {
            node.sync_src = Some(src);
            StorageStatus::WaitSync
        };
        if node.status != StorageStatus::Init {
            return Ok(None);
        }
        let t = Self::set_status(node, version, group, to);
        Ok(self.touched(t))
    }

    pub fn sync_source_of(&self, group: &str, key: &str) -> Result<Option<SyncSource>, Errno> {
        Ok(self
            .storage(group, key)
            .ok_or(errno::ENOENT)?
            .sync_src
            .clone())
    }

    /// SYNC_SRC_REQ: a storage asks who feeds `dest_id` (so it knows whether it must push).
    pub fn sync_src_for_dest(
        &self,
        group: &str,
        dest_id: &str,
    ) -> Result<Option<SyncSource>, Errno> {
        let g = self.groups.get(group).ok_or(errno::ENOENT)?;
        let dest = g.find_by_id(dest_id).ok_or(errno::ENOENT)?;
        // C names the source the destination was given, whatever its status now
        // (storage-join.txt #73: an ACTIVE member's original source). Storages act on it only
        // while the destination waits for old data (storage::sync).
        Ok(dest.sync_src.clone())
    }

    /// REPORT_STATUS: a source storage moves its destination through SYNCING -> OFFLINE
    /// (old data copied); that storage's own beats then make it ACTIVE. Applied only while the
    /// destination is copying here (INIT, WAIT_SYNC, SYNCING): the source decides from a
    /// server list that may be another tracker's or older, and a report that arrives after
    /// the storage moved on must not take a serving storage out of service.
    pub fn report_status(
        &mut self,
        group: &str,
        brief: &StorageBrief,
    ) -> Result<Option<Transition>, Errno> {
        use StorageStatus::*;
        let to = StorageStatus::from_u8(brief.status).ok_or(errno::EINVAL)?;
        let g = self.groups.get_mut(group).ok_or(errno::ENOENT)?;
        let node = g
            .storages
            .values_mut()
            .find(|s| s.id == brief.id && (s.port == brief.port || brief.port == 0))
            .ok_or(errno::ENOENT)?;
        if !matches!(node.status, Init | WaitSync | Syncing) {
            return Ok(Option::None);
        }
        let t = Self::set_status(node, &mut g.version, group, to);
        Ok(self.touched(t))
    }

    /// The storage's reporting connection closed: it is no longer serving.
    pub fn disconnect(&mut self, group: &str, key: &str, conn_id: u64) -> Option<Transition> {
        let (node, version) = self.node_mut(group, key).ok()?;
        if node.conn_id != conn_id {
            return None; // already reporting on a newer connection
        }
        let t = match node.status {
            StorageStatus::Online | StorageStatus::Active => {
                Self::set_status(node, version, group, StorageStatus::Offline)
            }
            _ => None,
        };
        self.touched(t)
    }

    /// Marks OFFLINE every ONLINE/ACTIVE storage not heard from for `check_active_interval`.
    pub fn check_active(
        &mut self,
        now: Instant,
        check_active_interval: Duration,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            for node in g.storages.values_mut() {
                let silent = now.saturating_duration_since(node.last_heard);
                if matches!(node.status, StorageStatus::Online | StorageStatus::Active)
                    && silent >= check_active_interval
                {
                    out.extend(Self::set_status(
                        node,
                        &mut g.version,
                        &g.name,
                        StorageStatus::Offline,
                    ));
                }
            }
        }
        for t in &out {
            self.touch(&t.group, &t.key);
        }
        out
    }

    /// SERVER_DELETE_STORAGE: only a storage that is not serving can be deleted. Like FastDFS
    /// it stays listed as DELETED (so its peers see it and stop syncing to it) and is never
    /// handed out; if it joins again it starts over as a newcomer (INIT).
    pub fn delete_storage(&mut self, group: &str, id: &str) -> Result<Option<Transition>, Errno> {
        let g = self.groups.get_mut(group).ok_or(errno::ENOENT)?;
        let node = g
            .storages
            .values_mut()
            .find(|s| s.id == id || s.key == id)
            .ok_or(errno::ENOENT)?;
        match node.status {
            StorageStatus::Online | StorageStatus::Active => return Err(errno::EBUSY),
            StorageStatus::Deleted => return Err(errno::ENOENT),
            _ => {}
        }
        node.sync_src = None;
        node.synced_from.clear();
        let t = Self::set_status(node, &mut g.version, group, StorageStatus::Deleted);
        Ok(self.touched(t))
    }

    /// SERVER_DELETE_GROUP: only a group none of whose storages is serving.
    pub fn delete_group(&mut self, group: &str) -> Result<(), Errno> {
        let g = self.groups.get(group).ok_or(errno::ENOENT)?;
        if g.storages
            .values()
            .any(|s| matches!(s.status, StorageStatus::Online | StorageStatus::Active))
        {
            return Err(errno::EBUSY);
        }
        self.groups.remove(group);
        self.index.remove_group(group);
        self.index.align(&self.groups);
        Ok(())
    }

    pub fn group_stat(&self, g: &Group, reserved: &Reserved) -> GroupStat {
        let (total, free) = g.space_mb();
        let active = g.storages.values().filter(|s| s.is_active()).count() as i64;
        let writable = g
            .storages
            .values()
            .filter(|s| s.is_active() && has_room(reserved, s.total_mb(), s.free_mb()))
            .count() as i64;
        let mut ports = g.storages.values().map(|s| s.port);
        let first_port = ports.next();
        let storage_port = match first_port {
            Some(p) if g.storages.values().all(|s| s.port == p) => p as i64,
            Some(_) => -1,
            None => 0,
        };
        let first = g.storages.values().next();
        GroupStat {
            group: g.name.clone(),
            total_mb: total as i64,
            free_mb: free as i64,
            reserved_mb: reserved_mb(reserved, total) as i64,
            trunk_free_mb: 0,
            storage_count: g.storages.len() as i64,
            storage_port,
            readable_count: active,
            writable_count: writable,
            current_write_server: 0,
            store_path_count: first.map(|s| s.store_path_count as i64).unwrap_or(0),
            subdir_count_per_path: first.map(|s| s.subdir_count_per_path as i64).unwrap_or(0),
            // No trunk files: FastDFS reports -1 then.
            current_trunk_file_id: -1,
        }
    }

    /// One storage's record for SERVER_LIST_STORAGE. Like FastDFS, the tracker fills in
    /// `last_heart_beat_time` itself (unix time of the last report it received).
    pub fn storage_stat(
        s: &StorageNode,
        reserved: &Reserved,
        now: Instant,
        unix_now: i64,
    ) -> StorageStat {
        let total = s.total_mb();
        let mut stats = s.stats;
        stats.counters[STAT_LAST_HEART_BEAT_TIME] = s.last_heard_unix(now, unix_now);
        StorageStat {
            status: s.status as u8,
            rw_mode: RW_MODE_READ | RW_MODE_WRITE,
            id: s.id.clone(),
            ip: s.ip.clone(),
            src_id: s
                .sync_src
                .as_ref()
                .map(|x| x.src_id.clone())
                .unwrap_or_default(),
            version: s.version.clone(),
            join_time: s.join_time,
            up_time: s.up_time,
            total_mb: total as i64,
            free_mb: s.free_mb() as i64,
            reserved_mb: reserved_mb(reserved, total) as i64,
            upload_priority: s.upload_priority,
            store_path_count: s.store_path_count as i64,
            subdir_count_per_path: s.subdir_count_per_path as i64,
            current_write_path: 0,
            storage_port: s.port as i64,
            stats,
            if_trunk_server: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_req(group: &str, port: u16, id: &str, init_flag: u8) -> JoinReq {
        JoinReq {
            init_flag,
            ..JoinReq::for_test(group, port, id)
        }
    }

    fn who(id: &str) -> Identity {
        Identity {
            key: id.into(),
            id: id.into(),
            ip: "127.0.0.1".into(),
        }
    }

    fn usage(total: u64, free: u64) -> Vec<PathUsage> {
        vec![PathUsage {
            total_mb: total,
            free_mb: free,
        }]
    }

    #[test]
    fn join_online_then_active_on_beat_then_offline_when_silent() {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        let (st, src, _) = c.join(&who("100001"), &join_req("g1", 23000, "100001", 0), 1, t0);
        assert_eq!((st, src), (StorageStatus::Online, None));
        let v0 = c.groups["g1"].version;
        let t = c.beat("g1", "100001", None, t0).unwrap().unwrap();
        assert_eq!(
            (t.from, t.to),
            (StorageStatus::Online, StorageStatus::Active)
        );
        assert!(c.groups["g1"].version > v0);
        // Heard at t0 + 5s; with a 10s interval it is still ACTIVE at t0 + 14s.
        c.disk_usage("g1", "100001", usage(100, 50), t0 + Duration::from_secs(5))
            .unwrap();
        assert!(c
            .check_active(t0 + Duration::from_secs(14), Duration::from_secs(10))
            .is_empty());
        let off = c.check_active(t0 + Duration::from_secs(15), Duration::from_secs(10));
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].to, StorageStatus::Offline);
        // The next report brings it back.
        let t = c
            .beat("g1", "100001", None, t0 + Duration::from_secs(16))
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.from, t.to),
            (StorageStatus::Offline, StorageStatus::Active)
        );
    }

    #[test]
    fn newcomer_gets_a_source_only_when_the_group_has_a_member() {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        let (st, _, _) = c.join(&who("a"), &join_req("g1", 23000, "a", 1), 1, t0);
        assert_eq!(st, StorageStatus::Init);
        let (src, _) = c.sync_dest_req("g1", "a", 1000).unwrap();
        assert_eq!(src, None);
        assert_eq!(c.storage("g1", "a").unwrap().status, StorageStatus::Online);
        c.beat("g1", "a", None, t0).unwrap();

        let (st, _, _) = c.join(&who("b"), &join_req("g1", 23001, "b", 1), 2, t0);
        assert_eq!(st, StorageStatus::Init);
        let (src, _) = c.sync_dest_req("g1", "b", 2000).unwrap();
        let src = src.unwrap();
        assert_eq!((src.src_id.as_str(), src.until_timestamp), ("a", 2000));
        assert_eq!(
            c.storage("g1", "b").unwrap().status,
            StorageStatus::WaitSync
        );
        // Beats do not make a WAIT_SYNC storage ACTIVE.
        assert_eq!(c.beat("g1", "b", None, t0).unwrap(), None);
        assert_eq!(c.sync_src_for_dest("g1", "b").unwrap(), Some(src.clone()));
        // The source reports progress: SYNCING, then OFFLINE when done; then beats activate.
        let mut brief = c.storage("g1", "b").unwrap().brief();
        brief.status = StorageStatus::Syncing as u8;
        c.report_status("g1", &brief).unwrap();
        brief.status = StorageStatus::Offline as u8;
        c.report_status("g1", &brief).unwrap();
        let t = c.beat("g1", "b", None, t0).unwrap().unwrap();
        assert_eq!(t.to, StorageStatus::Active);
        // A late or repeated report does not take the serving storage out again.
        assert_eq!(c.report_status("g1", &brief).unwrap(), None);
        assert_eq!(c.storage("g1", "b").unwrap().status, StorageStatus::Active);
        // Rejoining while still copying keeps WAIT_SYNC; rejoining after the copy is ONLINE.
        let (st, src2, _) = c.join(&who("b"), &join_req("g1", 23001, "b", 0), 3, t0);
        assert_eq!(st, StorageStatus::Online);
        assert_eq!(src2, Some(src.clone()));
        // As C: SYNC_SRC_REQ still names the source once the storage serves (storage-join #73).
        c.beat("g1", "b", None, t0).unwrap();
        assert_eq!(c.sync_src_for_dest("g1", "b").unwrap(), Some(src));
        assert_eq!(c.sync_src_for_dest("g1", "a").unwrap(), None);
    }

    /// tracker-pair.txt #41/#56/#78: the first of two newcomers has nothing to copy; the
    /// second is told ENOENT until the first is ACTIVE, then gets it as its source.
    #[test]
    fn second_newcomer_waits_until_the_first_is_active() {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        c.join(&who("a"), &join_req("g1", 23000, "a", 1), 1, t0);
        c.join(&who("b"), &join_req("g1", 23001, "b", 1), 2, t0);
        assert_eq!(c.sync_dest_req("g1", "a", 1000).unwrap().0, None);
        assert_eq!(c.sync_dest_req("g1", "b", 1000), Err(errno::ENOENT));
        assert_eq!(c.storage("g1", "b").unwrap().status, StorageStatus::Init);
        c.beat("g1", "a", None, t0).unwrap();
        let src = c.sync_dest_req("g1", "b", 1005).unwrap().0.unwrap();
        assert_eq!((src.src_id.as_str(), src.until_timestamp), ("a", 1005));
        // An OFFLINE member with data: ask again later, not "nothing to copy".
        c.join(&who("c"), &join_req("g1", 23002, "c", 1), 3, t0);
        c.disconnect("g1", "a", 1);
        assert_eq!(c.sync_dest_req("g1", "c", 1010), Err(errno::ENOENT));
    }

    #[test]
    fn a_deleted_storage_stays_listed_and_comes_back_as_a_newcomer() {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        c.join(&who("a"), &join_req("g1", 23000, "a", 0), 1, t0);
        c.beat("g1", "a", None, t0).unwrap();
        c.join(&who("b"), &join_req("g1", 23001, "b", 0), 2, t0);
        c.beat("g1", "b", None, t0).unwrap();
        assert_eq!(c.delete_storage("g1", "b"), Err(errno::EBUSY));
        c.disconnect("g1", "b", 2);
        let v = c.groups["g1"].version;
        let t = c.delete_storage("g1", "b").unwrap().unwrap();
        assert_eq!(t.to, StorageStatus::Deleted);
        assert!(c.groups["g1"].version > v);
        assert_eq!(c.delete_storage("g1", "b"), Err(errno::ENOENT));
        // Still in the server list (peers stop their senders), never activated by reports.
        let briefs = c.groups["g1"].briefs();
        assert!(briefs
            .iter()
            .any(|b| b.id == "b" && b.status == StorageStatus::Deleted as u8));
        assert_eq!(c.beat("g1", "b", None, t0).unwrap(), None);
        // Joining again: INIT, then a source like any newcomer.
        let (st, src, _) = c.join(&who("b"), &join_req("g1", 23001, "b", 0), 3, t0);
        assert_eq!((st, src), (StorageStatus::Init, None));
        let (src, _) = c.sync_dest_req("g1", "b", 5000).unwrap();
        assert_eq!(src.unwrap().src_id, "a");
        // A reconnect during the copy keeps it copying, whatever init_flag says.
        let (st, _, _) = c.join(&who("b"), &join_req("g1", 23001, "b", 0), 4, t0);
        assert_eq!(st, StorageStatus::WaitSync);
    }

    #[test]
    fn disconnect_of_an_old_connection_does_not_touch_the_new_one() {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        c.join(&who("a"), &join_req("g1", 23000, "a", 0), 1, t0);
        c.join(&who("a"), &join_req("g1", 23000, "a", 0), 2, t0);
        assert_eq!(c.disconnect("g1", "a", 1), None);
        let t = c.disconnect("g1", "a", 2).unwrap();
        assert_eq!(t.to, StorageStatus::Offline);
    }

    #[test]
    fn identity_by_id_or_address() {
        let ids = vec![
            StorageIdEntry {
                id: "100001".into(),
                group: "g1".into(),
                ip: "127.0.0.1".into(),
                port: Some(23000),
            },
            StorageIdEntry {
                id: "100002".into(),
                group: "g1".into(),
                ip: "127.0.0.1".into(),
                port: Some(23001),
            },
        ];
        let w = identify(true, &ids, "g1", "", "127.0.0.1", 23001).unwrap();
        assert_eq!(w.id, "100002");
        assert_eq!(
            identify(true, &ids, "g2", "100001", "127.0.0.1", 1),
            Err(errno::EINVAL)
        );
        assert_eq!(
            identify(true, &ids, "g1", "9", "127.0.0.1", 1),
            Err(errno::ENOENT)
        );
        let w = identify(false, &ids, "g1", "", "10.0.0.1", 23000).unwrap();
        assert_eq!(
            (w.key.as_str(), w.id.as_str()),
            ("10.0.0.1:23000", "10.0.0.1")
        );
    }

    #[test]
    fn disk_report_must_match_path_count_and_reserved_space_is_respected() {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        c.join(&who("a"), &join_req("g1", 23000, "a", 0), 1, t0);
        assert_eq!(
            c.disk_usage("g1", "a", vec![PathUsage::default(); 2], t0),
            Err(errno::EINVAL)
        );
        let r = Reserved::Percent(10.0);
        assert!(has_room(&r, 1000, 101));
        assert!(!has_room(&r, 1000, 100));
        assert!(!has_room(&r, 0, 0));
        assert!(has_room(&Reserved::Bytes(1 << 20), 10, 2));
        assert!(!has_room(&Reserved::Bytes(1 << 20), 10, 1));
    }
}
