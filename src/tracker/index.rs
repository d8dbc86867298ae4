//! Selection indexes over the cluster view (issue 27), so that choosing a storage for an upload
//! or a download costs O(log n) whatever the number of groups and of storages in a group.
//!
//! Per group: its ACTIVE and its writable (ACTIVE with room) storages in key order (the round
//! robins are positions in these), the writable ones by address and by upload priority, the
//! ACTIVE ones by free space (the group's space is its fullest member's), who has which id and
//! address (a file's source), and per source id how far the ACTIVE storages have synced from it.
//! Over groups: the names in order (the group round robin is a position), the groups that can
//! take an upload, the same by free space, and how many have an ACTIVE storage.
//!
//! `Cluster` updates it after every change it makes (`update`, `synced`); only what differs
//! from the storage's previous entry moves, so a BEAT or disk report that changes nothing
//! selection depends on costs a few lookups. Whether a storage has room depends on
//! `reserved_storage_space`, which the index is built with (`Cluster::set_reserved`).

use super::cluster::{has_room, Errno, Group, StorageNode};
use super::sorted_map::SortedMap;
use crate::config::Reserved;
use crate::proto::cmd::errno;
use foldhash::HashMap;
use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;
use std::net::Ipv4Addr;

/// What the index holds about one storage; compared with the storage on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: String,
    ip: String,
    /// `ip` as the IPv4 address a file name carries (None: not an IPv4 address, so no file
    /// name can point at it, as a text comparison would find).
    ipv4: Option<Ipv4Addr>,
    port: u16,
    priority: i64,
    active: bool,
    writable: bool,
    /// (free, total) MiB of an ACTIVE storage that reported its paths.
    space: Option<(u64, u64)>,
}

impl Entry {
    fn of(s: &StorageNode, reserved: &Reserved) -> Self {
        let active = s.is_active();
        let (total, free) = (s.total_mb(), s.free_mb());
        Entry {
            id: s.id.clone(),
            ip: s.ip.clone(),
            ipv4: s.ip.parse().ok(),
            port: s.port,
            priority: s.upload_priority,
            active,
            writable: active && has_room(reserved, total, free),
            space: (active && !s.paths.is_empty()).then_some((free, total)),
        }
    }
}

/// A multiset of sync timestamps (how far each ACTIVE storage has synced from one source).
#[derive(Debug, Default)]
pub struct Synced {
    counts: BTreeMap<u32, u32>,
    len: usize,
}

impl Synced {
    fn add(&mut self, ts: u32) {
        *self.counts.entry(ts).or_insert(0) += 1;
        self.len += 1;
    }

    fn remove(&mut self, ts: u32) {
        if let Some(n) = self.counts.get_mut(&ts) {
            *n -= 1;
            self.len -= 1;
            if *n == 0 {
                self.counts.remove(&ts);
            }
        }
    }

    /// (count, min, max) of the timestamps without one occurrence of `except`.
    pub fn without(&self, except: Option<u32>) -> (usize, Option<u32>, Option<u32>) {
        let Some(x) = except.filter(|x| self.counts.contains_key(x)) else {
            let min = self.counts.keys().next().copied();
            return (self.len, min, self.counts.keys().next_back().copied());
        };
        let once = self.counts.get(&x) == Some(&1);
        let mut keys = self.counts.keys().copied().filter(|k| !(once && *k == x));
        let min = keys.next();
        let mut back = self.counts.keys().rev().copied();
        let max = back.find(|k| !(once && *k == x));
        (self.len - 1, min, max)
    }
}

fn insert_sorted(v: &mut Vec<String>, key: &str) {
    if let Err(i) = v.binary_search_by(|k| k.as_str().cmp(key)) {
        v.insert(i, key.to_string());
    }
}

fn remove_sorted(v: &mut Vec<String>, key: &str) {
    if let Ok(i) = v.binary_search_by(|k| k.as_str().cmp(key)) {
        v.remove(i);
    }
}

/// Moves `set` from holding `old` to holding `new`.
fn diff<T: Ord>(set: &mut BTreeSet<T>, old: Option<T>, new: Option<T>) {
    if old == new {
        return;
    }
    if let Some(o) = old {
        set.remove(&o);
    }
    if let Some(n) = new {
        set.insert(n);
    }
}

/// Moves `key` in or out of the sorted `v`; whether it did.
fn diff_sorted(v: &mut Vec<String>, key: &str, was: bool, is: bool) -> bool {
    match (was, is) {
        (false, true) => insert_sorted(v, key),
        (true, false) => remove_sorted(v, key),
        _ => return false,
    }
    true
}

/// Moves `key` from the keys listed under `old` to those under `new` (each list in key order);
/// whether they differed.
fn diff_listed<Q>(
    map: &mut HashMap<Q::Owned, Vec<String>>,
    key: &str,
    old: Option<&Q>,
    new: Option<&Q>,
) -> bool
where
    Q: Hash + Eq + ToOwned + ?Sized,
    Q::Owned: Hash + Eq + Borrow<Q>,
{
    if old == new {
        return false;
    }
    if let Some(o) = old {
        if let Some(keys) = map.get_mut(o) {
            remove_sorted(keys, key);
            if keys.is_empty() {
                map.remove(o);
            }
        }
    }
    if let Some(n) = new {
        insert_sorted(map.entry(n.to_owned()).or_default(), key);
    }
    true
}

/// The position in `storages` of the first key listed under each name of `map`, or None when
/// one is not there.
fn first_positions<K: Hash + Eq + Clone>(
    map: &HashMap<K, Vec<String>>,
    storages: &SortedMap<StorageNode>,
) -> Option<HashMap<K, usize>> {
    (map.iter())
        .map(|(k, keys)| Some((k.clone(), storages.position(keys.first()?)?)))
        .collect()
}

/// The storage listed first under `k` in `map`: by `positions` while `storages` has `layout`,
/// else by its key.
fn first_listed<'g, Q>(
    map: &HashMap<Q::Owned, Vec<String>>,
    positions: &HashMap<Q::Owned, usize>,
    layout: u64,
    storages: &'g SortedMap<StorageNode>,
    k: &Q,
) -> Option<&'g StorageNode>
where
    Q: Hash + Eq + ToOwned + ?Sized,
    Q::Owned: Hash + Eq + Borrow<Q>,
{
    if layout == storages.layout() {
        storages.value_at(*positions.get(k)?)
    } else {
        storages.get(map.get(k)?.first()?)
    }
}

/// Where a group's ACTIVE and writable storages sit in its `storages`, for the layout they
/// were taken from: a round robin then reaches its storage by position, without hashing a key
/// whose bytes (and whose map entry) the query has not touched since a thousand queries ago.
#[derive(Debug, Default)]
struct Located {
    /// `storages.layout()` when taken; 0 (no map's id): not usable.
    layout: u64,
    active: Vec<usize>,
    writable: Vec<usize>,
    /// The first storage (key order) per id and per address: a file's source.
    by_id: HashMap<String, usize>,
    by_ip: HashMap<Ipv4Addr, usize>,
}

impl Located {
    /// Positions of `keys` in `storages`, or None when one is not there.
    fn of(keys: &[String], storages: &SortedMap<StorageNode>) -> Option<Vec<usize>> {
        keys.iter().map(|k| storages.position(k)).collect()
    }
}

/// One group's indexes.
#[derive(Debug, Default)]
pub struct GroupIndex {
    entries: HashMap<String, Entry>,
    active: Vec<String>,
    writable: Vec<String>,
    by_addr: BTreeSet<(String, u16, String)>,
    by_priority: BTreeSet<(i64, String)>,
    /// (free, key, total) of ACTIVE storages with paths: the first is the group's space.
    by_free: BTreeSet<(u64, String, u64)>,
    /// Storage keys (in key order) by id and by address: a file's source.
    ids: HashMap<String, Vec<String>>,
    ips: HashMap<Ipv4Addr, Vec<String>>,
    synced: HashMap<String, Synced>,
    located: Located,
}

impl GroupIndex {
    /// Brings `key`'s entries in line with `node` (None: the storage is gone), then the
    /// positions of the ACTIVE and writable storages in line with `storages`. Only what
    /// changed moves, without allocating for what did not: a disk report (its free space is
    /// all that changes) runs this for every storage every second.
    fn update(
        &mut self,
        key: &str,
        node: Option<&StorageNode>,
        storages: &SortedMap<StorageNode>,
        reserved: &Reserved,
    ) {
        let lists_moved = self.update_entry(key, node, reserved);
        // (Lists here: ACTIVE, writable, and who has which id and address.)
        if lists_moved || self.located.layout != storages.layout() {
            self.locate(storages);
        }
    }

    /// Takes the positions of the listed storages in `storages` again.
    fn locate(&mut self, storages: &SortedMap<StorageNode>) {
        let located = || {
            Some(Located {
                layout: storages.layout(),
                active: Located::of(&self.active, storages)?,
                writable: Located::of(&self.writable, storages)?,
                by_id: first_positions(&self.ids, storages)?,
                by_ip: first_positions(&self.ips, storages)?,
            })
        };
        self.located = located().unwrap_or_default();
    }

    /// `update` for the entries; whether a list (ACTIVE, writable, by id, by address) changed.
    fn update_entry(&mut self, key: &str, node: Option<&StorageNode>, reserved: &Reserved) -> bool {
        let new = node.map(|n| Entry::of(n, reserved));
        if self.entries.get(key) == new.as_ref() {
            return false;
        }
        let old = match new {
            None => self.entries.remove(key),
            Some(new) => match self.entries.get_mut(key) {
                Some(slot) => Some(std::mem::replace(slot, new)),
                None => {
                    self.entries.insert(key.to_string(), new);
                    None
                }
            },
        };
        let (o, n) = (old.as_ref(), self.entries.get(key));
        let was_active = o.is_some_and(|e| e.active);
        let is_active = n.is_some_and(|e| e.active);
        if was_active != is_active {
            // Only ACTIVE storages serve reads: their sync positions join or leave. (A storage
            // is never removed from a group alone, so `node` is there when it was ACTIVE.)
            for (src, ts) in node.map(|n| &n.synced_from).into_iter().flatten() {
                let ms = self.synced.entry(src.clone()).or_default();
                if is_active {
                    ms.add(*ts)
                } else {
                    ms.remove(*ts)
                }
                if ms.len == 0 {
                    self.synced.remove(src);
                }
            }
        }
        let k = || key.to_string();
        let ids_moved = diff_listed(
            &mut self.ids,
            key,
            o.map(|e| e.id.as_str()),
            n.map(|e| e.id.as_str()),
        );
        let ips_moved = diff_listed(
            &mut self.ips,
            key,
            o.and_then(|e| e.ipv4.as_ref()),
            n.and_then(|e| e.ipv4.as_ref()),
        );
        let (old_space, new_space) = (o.and_then(|e| e.space), n.and_then(|e| e.space));
        if old_space != new_space {
            let free = |(free, total): (u64, u64)| (free, k(), total);
            diff(&mut self.by_free, old_space.map(free), new_space.map(free));
        }
        let writable = |e: &&Entry| e.writable;
        let (ow, nw) = (o.filter(writable), n.filter(writable));
        if ow.map(|e| (&e.ip, e.port)) != nw.map(|e| (&e.ip, e.port)) {
            let addr = |e: &Entry| (e.ip.clone(), e.port, k());
            diff(&mut self.by_addr, ow.map(addr), nw.map(addr));
        }
        if ow.map(|e| e.priority) != nw.map(|e| e.priority) {
            let prio = |e: &Entry| (e.priority, k());
            diff(&mut self.by_priority, ow.map(prio), nw.map(prio));
        }
        let active_moved = diff_sorted(&mut self.active, key, was_active, is_active);
        let writable_moved = diff_sorted(&mut self.writable, key, ow.is_some(), nw.is_some());
        active_moved || writable_moved || ids_moved || ips_moved
    }

    fn synced(&mut self, key: &str, src: &str, old: Option<u32>, new: u32) {
        if !self.entries.get(key).is_some_and(|e| e.active) {
            return;
        }
        let ms = self.synced.entry(src.to_string()).or_default();
        if let Some(old) = old {
            ms.remove(old);
        }
        ms.add(new);
    }

    /// Why the group cannot take an upload: ENOENT (no ACTIVE storage) or ENOSPC (no room).
    pub fn refusal(&self, reserved: &Reserved) -> Option<Errno> {
        if self.active.is_empty() {
            return Some(errno::ENOENT);
        }
        let (total, free) = self.space();
        if !has_room(reserved, total, free) || self.writable.is_empty() {
            return Some(errno::ENOSPC);
        }
        None
    }

    /// (total, free) MiB of the ACTIVE member with the least free space, or (0, 0).
    pub fn space(&self) -> (u64, u64) {
        self.by_free
            .first()
            .map(|(free, _, total)| (*total, *free))
            .unwrap_or((0, 0))
    }

    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// The `i`-th ACTIVE storage in key order, of this group's `storages`, with its position
    /// there.
    pub fn active_at<'g>(
        &self,
        storages: &'g SortedMap<StorageNode>,
        i: usize,
    ) -> Option<(usize, &'g StorageNode)> {
        self.nth(&self.active, &self.located.active, storages, i)
    }

    pub fn writable_len(&self) -> usize {
        self.writable.len()
    }

    /// The `i`-th writable storage in key order, of this group's `storages`, with its position
    /// there.
    pub fn writable_at<'g>(
        &self,
        storages: &'g SortedMap<StorageNode>,
        i: usize,
    ) -> Option<(usize, &'g StorageNode)> {
        self.nth(&self.writable, &self.located.writable, storages, i)
    }

    /// Whether the positions of the listed storages are current for `storages`.
    #[cfg(test)]
    pub fn located_in(&self, storages: &SortedMap<StorageNode>) -> bool {
        self.located.layout == storages.layout()
    }

    /// The `i`-th of `keys`: by its position while `storages` has the layout the positions
    /// were taken from, else by its key.
    fn nth<'g>(
        &self,
        keys: &[String],
        positions: &[usize],
        storages: &'g SortedMap<StorageNode>,
        i: usize,
    ) -> Option<(usize, &'g StorageNode)> {
        if self.located.layout == storages.layout() {
            let at = *positions.get(i)?;
            Some((at, storages.value_at(at)?))
        } else {
            storages.get_full(keys.get(i)?)
        }
    }

    /// The writable storage with the lowest (ip, port), then key.
    pub fn first_by_addr(&self) -> Option<&str> {
        self.by_addr.first().map(|(_, _, k)| k.as_str())
    }

    /// The writable storage with the lowest upload priority, then key.
    pub fn first_by_priority(&self) -> Option<&str> {
        self.by_priority.first().map(|(_, k)| k.as_str())
    }

    /// The first storage (key order) with this id, of this group's `storages`.
    pub fn by_id<'g>(
        &self,
        storages: &'g SortedMap<StorageNode>,
        id: &str,
    ) -> Option<&'g StorageNode> {
        let l = &self.located;
        first_listed(&self.ids, &l.by_id, l.layout, storages, id)
    }

    /// The first storage (key order) with this address, of this group's `storages`.
    pub fn by_ip<'g>(
        &self,
        storages: &'g SortedMap<StorageNode>,
        ip: Ipv4Addr,
    ) -> Option<&'g StorageNode> {
        let l = &self.located;
        first_listed(&self.ips, &l.by_ip, l.layout, storages, &ip)
    }

    /// How far the ACTIVE storages have synced from source `src_id` (None: none has).
    pub fn synced_from(&self, src_id: &str) -> Option<&Synced> {
        self.synced.get(src_id)
    }
}

/// What the cross-group indexes hold about one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Summary {
    live: bool,
    /// The group's free space when it can take an upload.
    usable: Option<u64>,
}

/// Every group's indexes and the cross-group ones.
#[derive(Debug, Default)]
pub struct Index {
    reserved: Reserved,
    /// Every group's indexes, in name order: the group round robin's positions.
    groups: SortedMap<(GroupIndex, Summary)>,
    /// Positions (in `groups`) of the groups that can take an upload: the round robin finds
    /// the next one without comparing names.
    usable: BTreeSet<usize>,
    /// Usable groups, most free space first, then by name.
    by_space: BTreeSet<(Reverse<u64>, String)>,
    live: usize,
    /// The layouts (the cluster's groups, ours) last compared, and whether both held the same
    /// names then, so the same positions: a query may then take a group's position from one
    /// and find the group in the other without a lookup by name.
    compared: (u64, u64),
    same_names: bool,
}

impl Index {
    pub fn reserved(&self) -> &Reserved {
        &self.reserved
    }

    /// Indexes `groups` from scratch with `reserved`.
    pub fn rebuild(&mut self, groups: &SortedMap<Group>, reserved: Reserved) {
        *self = Index {
            reserved,
            ..Index::default()
        };
        let reserved = self.reserved;
        for g in groups.values() {
            self.ensure_group(&g.name);
            if let Some((gi, _)) = self.groups.get_mut(&g.name) {
                // Positions once per group, not once per storage (O(n) each time).
                for (key, node) in g.storages.iter() {
                    gi.update_entry(key, Some(node), &reserved);
                }
                gi.locate(&g.storages);
            }
            self.resummarise(&g.name);
        }
        self.align(groups);
    }

    /// Compares our groups with the cluster's `groups`, name for name, when either was
    /// rearranged since the last comparison (groups come and go rarely; this runs after every
    /// change the cluster makes).
    pub fn align(&mut self, groups: &SortedMap<Group>) {
        let now = (groups.layout(), self.groups.layout());
        if self.compared != now {
            self.compared = now;
            self.same_names = groups.keys().eq(self.groups.keys());
        }
    }

    /// Whether a group has the same position in `groups` (the cluster's) as here.
    pub fn aligned_with(&self, groups: &SortedMap<Group>) -> bool {
        self.same_names && self.compared == (groups.layout(), self.groups.layout())
    }

    fn ensure_group(&mut self, name: &str) {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_string(), Default::default());
            self.renumber_usable();
        }
    }

    /// Recomputes the usable positions after a group came or went (the ones after it moved).
    fn renumber_usable(&mut self) {
        self.usable = (self.groups.values().enumerate())
            .filter(|(_, (_, s))| s.usable.is_some())
            .map(|(i, _)| i)
            .collect();
    }

    /// Brings storage `key` of `g` in line with the view (also when it is new or gone).
    pub fn update(&mut self, g: &Group, key: &str) {
        self.ensure_group(&g.name);
        let reserved = self.reserved;
        if let Some((gi, _)) = self.groups.get_mut(&g.name) {
            gi.update(key, g.storages.get(key), &g.storages, &reserved);
        }
        self.resummarise(&g.name);
    }

    /// Storage `key` of `group` now has synced from `src` up to `new` (was `old`).
    pub fn synced(&mut self, group: &str, key: &str, src: &str, old: Option<u32>, new: u32) {
        if let Some((gi, _)) = self.groups.get_mut(group) {
            gi.synced(key, src, old, new);
        }
    }

    pub fn remove_group(&mut self, name: &str) {
        if let Some((_, s)) = self.groups.remove(name) {
            if s.live {
                self.live -= 1;
            }
            if let Some(free) = s.usable {
                self.by_space.remove(&(Reverse(free), name.to_string()));
            }
            self.renumber_usable();
        }
    }

    fn resummarise(&mut self, name: &str) {
        let reserved = self.reserved;
        let Some((pos, (gi, old))) = self.groups.get_full_mut(name) else {
            return;
        };
        let new = Summary {
            live: gi.active_len() > 0,
            usable: gi.refusal(&reserved).is_none().then(|| gi.space().1),
        };
        let old = std::mem::replace(old, new);
        if old == new {
            return;
        }
        // Usually only the group's free space moved (a disk report): one set changes.
        if old.live != new.live {
            if new.live {
                self.live += 1;
            } else {
                self.live -= 1;
            }
        }
        match (old.usable.is_some(), new.usable.is_some()) {
            (false, true) => {
                self.usable.insert(pos);
            }
            (true, false) => {
                self.usable.remove(&pos);
            }
            _ => {}
        }
        if old.usable != new.usable {
            if let Some(free) = old.usable {
                self.by_space.remove(&(Reverse(free), name.to_string()));
            }
            if let Some(free) = new.usable {
                self.by_space.insert((Reverse(free), name.to_string()));
            }
        }
    }

    pub fn group(&self, name: &str) -> Option<&GroupIndex> {
        self.groups.get(name).map(|(gi, _)| gi)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The group at position `i` of the name order, and its indexes.
    pub fn group_at(&self, i: usize) -> Option<(&str, &GroupIndex)> {
        self.groups.entry_at(i).map(|(name, (gi, _))| (name, gi))
    }

    /// The position of group `name` in name order.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.groups.position(name)
    }

    /// The position (in name order) of the first group at or after position `i` that can take
    /// an upload.
    pub fn usable_from(&self, i: usize) -> Option<usize> {
        self.usable.range(i..).next().copied()
    }

    /// The position of the first group (in name order) that can take an upload.
    pub fn first_usable(&self) -> Option<usize> {
        self.usable.first().copied()
    }

    /// The usable group with the most free space (the first by name among equals).
    pub fn most_free(&self) -> Option<&str> {
        self.by_space.first().map(|(_, n)| n.as_str())
    }

    /// Whether some group has an ACTIVE storage.
    pub fn any_live(&self) -> bool {
        self.live > 0
    }
}
