//! The selector's round-robin cursors: per group, which writable storage takes the next upload
//! and which reader serves the next download; per storage, which store path is next. C FastDFS
//! keeps them in its group and storage structs.
//!
//! Kept by position (issue 27.1): in maps by name, every query hashed a name whose entry it had
//! not touched since the round robin last came by, a cache miss or three each with 1,000 groups.
//! Here a query indexes a `Vec` by the group's position in the view (and the storage's in its
//! group). When groups or storages come or go, the view's `SortedMap` gets a new layout id and
//! the cursors are carried over by name on the next move; those of entries gone are dropped
//! (C frees them with the group or storage).

use crate::tracker::sorted_map::SortedMap;
use foldhash::{HashMap, HashMapExt};

/// A value per entry of one `SortedMap`, by the entry's position there.
#[derive(Debug)]
pub(super) struct ByPosition<T> {
    /// The layout of the map `slots` follows; 0 (no map's id) before the first move.
    layout: u64,
    /// (name, value) per position of the map.
    slots: Vec<(String, T)>,
}

impl<T> Default for ByPosition<T> {
    fn default() -> Self {
        ByPosition {
            layout: 0,
            slots: Vec::new(),
        }
    }
}

impl<T: Default> ByPosition<T> {
    /// The value for entry `i` of `map`, if one was ever moved.
    pub fn get<V>(&self, map: &SortedMap<V>, i: usize) -> Option<&T> {
        if self.layout == map.layout() {
            return self.slots.get(i).map(|(_, t)| t);
        }
        // The map changed since the last move (until the next one carries the values over):
        // by name, once per query at most.
        let (name, _) = map.entry_at(i)?;
        self.slots.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The value for entry `i` of `map` (default at first), to move it.
    pub fn get_mut<V>(&mut self, map: &SortedMap<V>, i: usize) -> Option<&mut T> {
        if self.layout != map.layout() {
            self.carry_over(map);
        }
        self.slots.get_mut(i).map(|(_, t)| t)
    }

    /// Follows `map`'s names: the values of names still there move to their new positions.
    fn carry_over<V>(&mut self, map: &SortedMap<V>) {
        let mut old: HashMap<String, T> = HashMap::with_capacity(self.slots.len());
        old.extend(self.slots.drain(..));
        self.slots = map
            .keys()
            .map(|k| (k.clone(), old.remove(k).unwrap_or_default()))
            .collect();
        self.layout = map.layout();
    }
}

/// One group's cursors.
#[derive(Debug, Default)]
pub(super) struct GroupCursors {
    /// Next writable storage (a position in the group's writable list).
    pub server: usize,
    /// Next reader (a position in the list of storages that can serve the file).
    pub read: usize,
    /// Per storage of the group, the store path after the one it was last given.
    pub paths: ByPosition<usize>,
}

/// Round-robin step over `n` entries: the position to use now (`cursor % n`), and the cursor
/// moved past it.
pub(super) fn step(cursor: &mut usize, n: usize) -> usize {
    let i = *cursor % n;
    *cursor = (i + 1) % n;
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> SortedMap<()> {
        let mut m = SortedMap::new();
        for k in keys {
            m.insert(k.to_string(), ());
        }
        m
    }

    #[test]
    fn values_follow_their_names_when_entries_come_and_go() {
        let mut m = map(&["b", "d"]);
        let mut c: ByPosition<usize> = ByPosition::default();
        assert_eq!(c.get(&m, 0), None);
        *c.get_mut(&m, 0).unwrap() = 7; // b
        *c.get_mut(&m, 1).unwrap() = 9; // d
        m.insert("a".into(), ());
        m.insert("c".into(), ());
        // Read before any move: found by name.
        assert_eq!(c.get(&m, 1), Some(&7));
        assert_eq!(c.get(&m, 3), Some(&9));
        assert_eq!(c.get(&m, 0), None);
        // A move carries every value over.
        assert_eq!(c.get_mut(&m, 0), Some(&mut 0));
        assert_eq!(c.get(&m, 1), Some(&7));
        assert_eq!(c.get(&m, 3), Some(&9));
        m.remove("b");
        assert_eq!(c.get_mut(&m, 2), Some(&mut 9)); // d, now third
        assert_eq!(c.slots.len(), 3, "b's value is dropped with it");
        assert_eq!(c.get_mut(&m, 3), None);
    }

    #[test]
    fn step_wraps() {
        let mut c = 0;
        let seen: Vec<usize> = (0..5).map(|_| step(&mut c, 3)).collect();
        assert_eq!(seen, [0, 1, 2, 0, 1]);
        c = 7; // left from a longer list
        assert_eq!(step(&mut c, 3), 1);
    }
}
