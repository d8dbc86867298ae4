//! A map from names to values that iterates in name order, like `BTreeMap<String, V>`, but
//! finds a name with one hash lookup and keeps its values side by side in one `Vec`.
//!
//! Why (issue 27.1): the tracker's groups and a group's storages are looked up by name on
//! every query. In a `BTreeMap<String, _>` that walks the tree comparing the name with keys
//! whose bytes each sit in their own allocation: with 1,000 groups or 500 storages in a group,
//! two dozen cache misses a lookup, so a query slowed with the size of the cluster. Inserts
//! and removals (a group or a storage appears or goes) are O(n); they are rare.
//!
//! Positions are stable between inserts and removals, and `layout()` says when they moved: an
//! index may keep positions instead of names and check, with one comparison, that they still
//! point where they did.

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicU64, Ordering};

/// A layout id no map in this process had before.
fn new_layout() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Clone)]
pub struct SortedMap<V> {
    /// Names in order; `values[i]` belongs to `keys[i]`.
    keys: Vec<String>,
    values: Vec<V>,
    /// Name -> its position in `keys` / `values`.
    positions: HashMap<String, usize>,
    /// Changes whenever a key comes or goes (positions move); a clone keeps it (same keys).
    layout: u64,
}

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        SortedMap {
            keys: Vec::new(),
            values: Vec::new(),
            positions: HashMap::new(),
            layout: new_layout(),
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for SortedMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> SortedMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.positions.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.positions.get(key).map(|&i| &self.values[i])
    }

    /// `key`'s position in name order and its value.
    pub fn get_full(&self, key: &str) -> Option<(usize, &V)> {
        let i = *self.positions.get(key)?;
        Some((i, &self.values[i]))
    }

    /// The value at position `i` in name order.
    pub fn value_at(&self, i: usize) -> Option<&V> {
        self.values.get(i)
    }

    /// Which arrangement of keys this is: equal ids mean equal keys at equal positions (ids
    /// are never reused within a process).
    pub fn layout(&self) -> u64 {
        self.layout
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.get_full_mut(key).map(|(_, v)| v)
    }

    /// `key`'s position in name order and its value.
    pub fn get_full_mut(&mut self, key: &str) -> Option<(usize, &mut V)> {
        let i = *self.positions.get(key)?;
        Some((i, &mut self.values[i]))
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.positions.get(&key) {
            Some(&i) => Some(std::mem::replace(&mut self.values[i], value)),
            None => {
                self.insert_new(key, value);
                None
            }
        }
    }

    /// The value of `key`, inserted first from `make` when it is not there.
    pub fn get_or_insert_with(&mut self, key: String, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.positions.get(&key) {
            Some(&i) => i,
            None => self.insert_new(key, make()),
        };
        &mut self.values[i]
    }

    /// Puts a key that is not there at its place in name order; returns the position.
    fn insert_new(&mut self, key: String, value: V) -> usize {
        let i = self.keys.partition_point(|k| *k < key);
        self.keys.insert(i, key);
        self.values.insert(i, value);
        self.renumber(i);
        self.layout = new_layout();
        i
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.positions.remove(key)?;
        self.keys.remove(i);
        let v = self.values.remove(i);
        self.renumber(i);
        self.layout = new_layout();
        Some(v)
    }

    /// Records the positions of `keys[from..]` (they moved).
    fn renumber(&mut self, from: usize) {
        for (i, k) in self.keys.iter().enumerate().skip(from) {
            match self.positions.get_mut(k) {
                Some(p) => *p = i,
                None => {
                    self.positions.insert(k.clone(), i);
                }
            }
        }
    }

    /// Where `key` is in name order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.positions.get(key).copied()
    }

    /// The name and value at position `i` in name order.
    pub fn entry_at(&self, i: usize) -> Option<(&str, &V)> {
        Some((self.keys.get(i)?.as_str(), self.values.get(i)?))
    }

    pub fn keys(&self) -> std::slice::Iter<'_, String> {
        self.keys.iter()
    }

    pub fn values(&self) -> std::slice::Iter<'_, V> {
        self.values.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, V> {
        self.values.iter_mut()
    }

    pub fn iter(&self) -> std::iter::Zip<std::slice::Iter<'_, String>, std::slice::Iter<'_, V>> {
        self.keys.iter().zip(self.values.iter())
    }

    pub fn iter_mut(
        &mut self,
    ) -> std::iter::Zip<std::slice::Iter<'_, String>, std::slice::IterMut<'_, V>> {
        self.keys.iter().zip(self.values.iter_mut())
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, String>, std::slice::Iter<'a, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> std::ops::Index<&str> for SortedMap<V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        self.get(key).expect("no entry for this key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Any mix of inserts and removals leaves it equal to a BTreeMap fed the same.
        #[test]
        fn behaves_as_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u8..40, any::<u16>()), 0..200)) {
            let mut ours = SortedMap::new();
            let mut reference = BTreeMap::new();
            for (op, k, v) in ops {
                let key = format!("k{k}");
                let layout = ours.layout();
                let keys_before: Vec<String> = ours.keys().cloned().collect();
                match op {
                    0 => prop_assert_eq!(ours.insert(key.clone(), v), reference.insert(key, v)),
                    1 => prop_assert_eq!(ours.remove(&key), reference.remove(&key)),
                    _ => {
                        let r = *reference.entry(key.clone()).or_insert(v);
                        prop_assert_eq!(*ours.get_or_insert_with(key, || v), r);
                    }
                }
                prop_assert_eq!(ours.len(), reference.len());
                prop_assert!(ours.iter().eq(reference.iter()));
                // Same layout id exactly when the keys did not move.
                prop_assert_eq!(ours.layout() == layout, ours.keys().eq(keys_before.iter()));
                for (i, (k, v)) in reference.iter().enumerate() {
                    prop_assert_eq!(ours.get(k), Some(v));
                    prop_assert_eq!(ours.position(k), Some(i));
                    prop_assert_eq!(ours.entry_at(i), Some((k.as_str(), v)));
                    prop_assert_eq!(ours.get_full(k), Some((i, v)));
                    prop_assert_eq!(ours.value_at(i), Some(v));
                }
            }
        }
    }

    #[test]
    fn iter_mut_walks_in_name_order() {
        let mut m = SortedMap::new();
        for k in ["b", "c", "a"] {
            m.insert(k.to_string(), 0);
        }
        for (i, (_, v)) in m.iter_mut().enumerate() {
            *v = i;
        }
        assert_eq!(m["a"], 0);
        assert_eq!(m["b"], 1);
        assert_eq!(m["c"], 2);
        assert!(m.get("d").is_none());
    }
}
