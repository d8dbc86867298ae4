//! Cache policy, pure: keys, validity per status (`proxy_cache_valid`), size accounting with LRU
//! eviction (`max_size`) and expiry of entries not used for `inactive`. Times are unix seconds
//! passed in, because entries outlive the process (an `Instant` does not survive a restart).
//!
//! The value `V` is what the disk adapter needs to serve an entry; the policy never looks at it.

use crate::config::Dur;
use md5::{Digest, Md5};
use std::collections::{BTreeMap, HashMap};

/// MD5 of the cache key (nginx names cache files the same way).
pub type Key = [u8; 16];

/// MD5 of a key text (see `key_text`).
pub fn cache_key(key_text: &str) -> Key {
    Md5::digest(key_text.as_bytes()).into()
}

/// Query parameters that authorise a request but do not change the answer (the anti-steal
/// token); they are checked before a lookup and never part of a key.
const TOKEN_PARAMS: [&str; 2] = ["token", "ts"];

/// The key text of a download: the path as the router understood it (`/<group>/M00/XX/YY/<name>`,
/// percent-decoded, without any URL prefix) plus the remaining query parameters sorted, so every
/// spelling of one URL (`/dfs/%67roup1/...`, `/group1/...?ts=..&token=..`) names one entry and one
/// purge removes it.
pub fn key_text(group: &str, id_without_group: &str, query: Option<&str>) -> String {
    let mut params: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| !TOKEN_PARAMS.contains(&kv.split_once('=').map_or(*kv, |(k, _)| k)))
        .collect();
    params.sort_unstable();
    // Sized up front: one allocation per request instead of a format! that grows.
    let q_len = params.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut s = String::with_capacity(2 + group.len() + id_without_group.len() + q_len);
    for part in ["/", group, "/", id_without_group] {
        s.push_str(part);
    }
    if !params.is_empty() {
        for (i, p) in params.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(p);
        }
    }
    s
}

/// Whether the query carries anti-steal parameters.
pub fn has_token_params(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| TOKEN_PARAMS.contains(&kv.split_once('=').map_or(kv, |(k, _)| k)))
    })
}

pub fn key_hex(k: &Key) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn key_from_hex(s: &str) -> Option<Key> {
    if s.len() != 32 {
        return None;
    }
    let mut k = [0u8; 16];
    for (i, out) in k.iter_mut().enumerate() {
        *out = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusSel {
    Code(u16),
    Any,
}

/// `proxy_cache_valid`: how long a response with a given status stays fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity(Vec<(StatusSel, u64)>);

impl Validity {
    /// Parses `{"200 304": 12h, "404": 1m, "any": 1m}`. Exact codes win over `any`.
    pub fn parse(map: &BTreeMap<String, Dur>) -> Result<Self, String> {
        let mut v = Vec::new();
        for (codes, d) in map {
            for c in codes.split_whitespace() {
                let sel = if c.eq_ignore_ascii_case("any") {
                    StatusSel::Any
                } else {
                    match c.parse::<u16>() {
                        Ok(n) if (100..600).contains(&n) => StatusSel::Code(n),
                        _ => return Err(format!("cache.valid: bad status {c:?}")),
                    }
                };
                v.push((sel, d.get().as_secs()));
            }
        }
        Ok(Validity(v))
    }

    /// Seconds a response with `status` may be served from cache; `None` = not cached.
    pub fn for_status(&self, status: u16) -> Option<u64> {
        let exact = self.0.iter().find(|(s, _)| *s == StatusSel::Code(status));
        let any = self.0.iter().find(|(s, _)| *s == StatusSel::Any);
        exact.or(any).map(|(_, secs)| *secs).filter(|s| *s > 0)
    }
}

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    size: u64,
    /// Unix seconds after which the entry is stale.
    expires: u64,
    last_access: u64,
    /// Position in the LRU order (higher = used more recently).
    tick: u64,
}

/// Result of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// Fresh; `previous_access` lets the adapter decide whether to persist the new access time.
    Hit {
        value: V,
        previous_access: u64,
    },
    /// Present but stale or inactive: removed from the index, the caller deletes its file.
    Dropped(V),
    Miss,
}

#[derive(Debug)]
pub struct Policy<V> {
    max_size: u64,
    inactive: u64,
    entries: HashMap<Key, Entry<V>>,
    lru: BTreeMap<u64, Key>,
    next_tick: u64,
    total: u64,
}

impl<V: Clone> Policy<V> {
    pub fn new(max_size: u64, inactive_secs: u64) -> Self {
        Policy {
            max_size,
            inactive: inactive_secs,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
            total: 0,
        }
    }

    pub fn total_size(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn bump(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    pub fn lookup(&mut self, key: &Key, now: u64) -> Lookup<V> {
        let Some(e) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        // Whole seconds, as nginx: an entry is fresh through the second it expires in, so a
        // validity of N s lasts at least N s wherever in a second it was stored.
        if now > e.expires || now.saturating_sub(e.last_access) > self.inactive {
            return match self.remove(key) {
                Some(v) => Lookup::Dropped(v),
                None => Lookup::Miss,
            };
        }
        let tick = self.bump();
        let Some(e) = self.entries.get_mut(key) else {
            return Lookup::Miss;
        };
        self.lru.remove(&e.tick);
        e.tick = tick;
        self.lru.insert(tick, *key);
        let previous_access = e.last_access;
        e.last_access = now.max(e.last_access);
        Lookup::Hit {
            value: e.value.clone(),
            previous_access,
        }
    }

    /// Adds (or replaces) an entry last used at `last_access`; returns entries evicted to stay
    /// within `max_size` (least recently used first), the replaced one included. An object larger
    /// than `max_size` is not admitted and comes back itself.
    pub fn insert(
        &mut self,
        key: Key,
        value: V,
        size: u64,
        expires: u64,
        last_access: u64,
    ) -> Vec<V> {
        let mut out = Vec::new();
        if let Some(old) = self.remove(&key) {
            out.push(old);
        }
        if size > self.max_size {
            out.push(value);
            return out;
        }
        while self.total + size > self.max_size {
            let Some((_, k)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&k) {
                self.total -= e.size;
                out.push(e.value);
            }
        }
        let tick = self.bump();
        self.lru.insert(tick, key);
        self.total += size;
        self.entries.insert(
            key,
            Entry {
                value,
                size,
                expires,
                last_access,
                tick,
            },
        );
        out
    }

    pub fn remove(&mut self, key: &Key) -> Option<V> {
        let e = self.entries.remove(key)?;
        self.lru.remove(&e.tick);
        self.total -= e.size;
        Some(e.value)
    }

    /// Removes entries unused for longer than `inactive` (nginx's cache manager).
    pub fn sweep_inactive(&mut self, now: u64) -> Vec<V> {
        let stale: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last_access) > self.inactive)
            .map(|(k, _)| *k)
            .collect();
        stale.iter().filter_map(|k| self.remove(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_drops_token_and_sorts_params() {
        let id = "M00/00/00/x.jpg";
        assert_eq!(key_text("group1", id, None), "/group1/M00/00/00/x.jpg");
        assert_eq!(
            key_text("group1", id, Some("ts=1&token=ab&filename=a&b=2")),
            "/group1/M00/00/00/x.jpg?b=2&filename=a"
        );
        assert_eq!(key_text("g", id, Some("token&ts")), "/g/M00/00/00/x.jpg");
        assert!(has_token_params(Some("a=1&token=x")));
        assert!(has_token_params(Some("ts")));
        assert!(!has_token_params(Some("tokens=1")));
        assert!(!has_token_params(None));
    }

    fn k(n: u8) -> Key {
        [n; 16]
    }

    #[test]
    fn validity_per_status() {
        let v = Validity::parse(&BTreeMap::from([
            ("200 304".to_string(), Dur::secs(43200)),
            ("404".to_string(), Dur::secs(60)),
        ]))
        .unwrap();
        assert_eq!(v.for_status(200), Some(43200));
        assert_eq!(v.for_status(304), Some(43200));
        assert_eq!(v.for_status(404), Some(60));
        assert_eq!(v.for_status(500), None);
        let any = Validity::parse(&BTreeMap::from([
            ("any".to_string(), Dur::secs(5)),
            ("200".to_string(), Dur::secs(50)),
        ]))
        .unwrap();
        assert_eq!(any.for_status(200), Some(50));
        assert_eq!(any.for_status(502), Some(5));
        assert!(Validity::parse(&BTreeMap::from([("20x".to_string(), Dur::secs(1))])).is_err());
    }

    #[test]
    fn key_is_uri_plus_args() {
        assert_ne!(cache_key("/g/M00/a"), cache_key("/g/M00/a?x=1"));
        let h = key_hex(&cache_key("/a"));
        assert_eq!(key_from_hex(&h), Some(cache_key("/a")));
        assert_eq!(key_from_hex("zz"), None);
    }

    #[test]
    fn hit_expiry_and_inactive() {
        let mut p: Policy<u8> = Policy::new(100, 50);
        p.insert(k(1), 1, 10, 1000, 0);
        assert_eq!(
            p.lookup(&k(1), 10),
            Lookup::Hit {
                value: 1,
                previous_access: 0
            }
        );
        // Used at 10, inactive after 60.
        assert_eq!(p.lookup(&k(1), 61), Lookup::Dropped(1));
        assert_eq!(p.lookup(&k(1), 62), Lookup::Miss);
        assert_eq!(p.total_size(), 0);
        // Validity ends after the second `expires` even when used constantly.
        p.insert(k(2), 2, 10, 100, 90);
        assert!(matches!(p.lookup(&k(2), 100), Lookup::Hit { .. }));
        assert_eq!(p.lookup(&k(2), 101), Lookup::Dropped(2));
    }

    #[test]
    fn lru_eviction_by_size() {
        let mut p: Policy<u8> = Policy::new(30, 1000);
        assert!(p.insert(k(1), 1, 10, 1000, 0).is_empty());
        assert!(p.insert(k(2), 2, 10, 1000, 0).is_empty());
        assert!(p.insert(k(3), 3, 10, 1000, 0).is_empty());
        // Touch 1: 2 becomes the least recently used.
        assert!(matches!(p.lookup(&k(1), 1), Lookup::Hit { .. }));
        assert_eq!(p.insert(k(4), 4, 15, 1000, 1), vec![2, 3]);
        assert_eq!(p.total_size(), 25);
        assert_eq!(p.len(), 2);
        // Too big for the cache at all.
        assert_eq!(p.insert(k(5), 5, 31, 1000, 1), vec![5]);
        // Replacing returns the old value.
        assert_eq!(p.insert(k(1), 9, 5, 1000, 2), vec![1]);
        assert_eq!(p.total_size(), 20);
    }

    #[test]
    fn sweep_removes_only_inactive() {
        let mut p: Policy<u8> = Policy::new(100, 50);
        p.insert(k(1), 1, 1, 1000, 0);
        p.insert(k(2), 2, 1, 1000, 40);
        assert_eq!(p.sweep_inactive(60), vec![1]);
        assert_eq!(p.len(), 1);
        assert_eq!(p.remove(&k(2)), Some(2));
        assert!(p.is_empty());
    }
}
