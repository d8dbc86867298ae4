//! The gateway's disk cache (nginx `proxy_cache` + `proxy_cache_lock` + ngx_cache_purge):
//! `policy` decides (pure), `disk` stores, this file ties them together and makes concurrent
//! misses for one key share a single upstream fetch.
//!
//! ```text
//!  lookup ─hit─> serve file          miss ─> begin_fill(key)
//!                                            ├─ Leader: fetch, store(), drop guard (wakes all)
//!                                            └─ Follower: wait for the leader, lookup again
//! ```

pub mod disk;
pub mod policy;

use crate::config::CacheConfig;
use bytes::Bytes;
use disk::{CachedEntry, EntryHeader};
use futures::{Stream, StreamExt};
use policy::{Key, Lookup, Policy, Validity};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// An access is written back to the file's mtime at most this often (it orders LRU after a
/// restart; doing it on every hit would cost a syscall per request).
const TOUCH_EVERY_SECS: u64 = 60;

pub struct Cache {
    dir: PathBuf,
    validity: Validity,
    max_size: u64,
    policy: Mutex<Policy<Arc<CachedEntry>>>,
    inflight: Mutex<HashMap<Key, watch::Receiver<bool>>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Misses whose stale entry was dropped on the way (`X-Cache: EXPIRED`), not in `misses`.
    pub expired: AtomicU64,
    /// Descriptors of recently hit entry files (a purge or eviction unlinks the file, which the
    /// next hit sees).
    pub open_files: Arc<crate::http::open_files::OpenFiles>,
}

/// Outcome of `begin_fill`.
pub enum Fill {
    /// This request fetches; dropping the guard wakes the followers.
    Leader(FillGuard),
    /// Another request is fetching this key; wait for it, then look up again.
    Follower(watch::Receiver<bool>),
}

pub struct FillGuard {
    cache: Arc<Cache>,
    key: Key,
    done: watch::Sender<bool>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        lock(&self.cache.inflight).remove(&self.key);
        let _ = self.done.send(true);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn remove_files(entries: Vec<Arc<CachedEntry>>, keep: Option<&Path>) {
    for e in entries {
        if Some(e.path.as_path()) != keep {
            let _ = std::fs::remove_file(&e.path);
        }
    }
}

impl Cache {
    /// Opens (creating) the cache directory and rebuilds the index from the files in it.
    pub fn open(cfg: &CacheConfig, data_dir: &Path, now: u64) -> anyhow::Result<Self> {
        let dir = cfg
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("gateway-cache"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("gateway.cache.path {}: {e}", dir.display()))?;
        let validity = Validity::parse(&cfg.valid).map_err(|e| anyhow::anyhow!("gateway.{e}"))?;
        let mut policy = Policy::new(cfg.max_size.0, cfg.inactive.get().as_secs());
        let found = disk::scan(&dir)?;
        let n = found.len();
        for (entry, last_access) in found {
            let size = entry.body_offset + entry.body_len;
            let expires = entry.head.expires;
            let entry = Arc::new(entry);
            let dropped = policy.insert(entry.key, entry, size, expires, last_access);
            remove_files(dropped, None);
        }
        // Entries that went stale or inactive while we were down.
        remove_files(policy.sweep_inactive(now), None);
        tracing::info!(dir = %dir.display(), entries = policy.len(), scanned = n, bytes = policy.total_size(), "cache loaded");
        Ok(Cache {
            dir,
            validity,
            max_size: cfg.max_size.0,
            policy: Mutex::new(policy),
            inflight: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            open_files: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Seconds a response with `status` stays fresh, `None` when it is not cached.
    pub fn validity(&self, status: u16) -> Option<u64> {
        self.validity.for_status(status)
    }

    pub fn lookup(&self, key: &Key, now: u64) -> Option<Arc<CachedEntry>> {
        self.find(key, now).0
    }

    /// The fresh entry for `key`, and whether a stale one was just dropped (`X-Cache: EXPIRED`).
    pub fn find(&self, key: &Key, now: u64) -> (Option<Arc<CachedEntry>>, bool) {
        let r = lock(&self.policy).lookup(key, now);
        match r {
            Lookup::Hit {
                value,
                previous_access,
            } => {
                if now.saturating_sub(previous_access) >= TOUCH_EVERY_SECS {
                    touch(&value.path);
                }
                (Some(value), false)
            }
            Lookup::Dropped(e) => {
                let _ = std::fs::remove_file(&e.path);
                (None, true)
            }
            Lookup::Miss => (None, false),
        }
    }

    /// Forgets an entry whose file vanished under us (deleted by an operator).
    pub fn forget(&self, key: &Key) {
        lock(&self.policy).remove(key);
    }

    pub fn begin_fill(self: &Arc<Self>, key: Key) -> Fill {
        let mut inflight = lock(&self.inflight);
        if let Some(rx) = inflight.get(&key) {
            return Fill::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(false);
        inflight.insert(key, rx);
        Fill::Leader(FillGuard {
            cache: self.clone(),
            key,
            done: tx,
        })
    }

    /// Writes a response into the cache (temp file, then rename) and indexes it.
    pub async fn store<S>(
        &self,
        key_text: &str,
        head: EntryHeader,
        mut body: S,
        now: u64,
    ) -> std::io::Result<Arc<CachedEntry>>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let key = policy::cache_key(key_text);
        let final_path = disk::entry_path(&self.dir, &key);
        let tmp = disk::tmp_dir(&self.dir).join(format!(
            "{}.{:016x}",
            policy::key_hex(&key),
            rand::random::<u64>()
        ));
        let prefix = disk::encode_header(&head)?;
        let result: std::io::Result<u64> = async {
            let f = tokio::fs::File::create(&tmp).await?;
            let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, f);
            w.write_all(&prefix).await?;
            let mut body_len = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                body_len += chunk.len() as u64;
                if body_len + prefix.len() as u64 > self.max_size {
                    return Err(std::io::Error::other("response larger than the cache"));
                }
                w.write_all(&chunk).await?;
            }
            w.flush().await?;
            if let Some(parent) = final_path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::rename(&tmp, &final_path).await?;
            Ok(body_len)
        }
        .await;
        let body_len = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let body_offset = prefix.len() as u64;
        let expires = head.expires;
        let entry = Arc::new(CachedEntry {
            key,
            path: final_path.clone(),
            head,
            body_offset,
            body_len,
            serving: std::sync::OnceLock::new(),
        });
        let dropped =
            lock(&self.policy).insert(key, entry.clone(), body_offset + body_len, expires, now);
        let admitted = !dropped.iter().any(|e| Arc::ptr_eq(e, &entry));
        remove_files(dropped, admitted.then_some(final_path.as_path()));
        if !admitted {
            return Err(std::io::Error::other("entry larger than max_size"));
        }
        Ok(entry)
    }

    /// Removes the entry for `key_text`; false when it was not cached.
    pub fn purge(&self, key_text: &str) -> bool {
        let key = policy::cache_key(key_text);
        match lock(&self.policy).remove(&key) {
            Some(e) => {
                let _ = std::fs::remove_file(&e.path);
                true
            }
            None => false,
        }
    }

    /// Drops entries unused for `inactive` (run periodically).
    pub fn sweep(&self, now: u64) -> usize {
        let gone = lock(&self.policy).sweep_inactive(now);
        let n = gone.len();
        remove_files(gone, None);
        n
    }

    pub fn total_size(&self) -> u64 {
        lock(&self.policy).total_size()
    }

    pub fn entries(&self) -> usize {
        lock(&self.policy).len()
    }

    pub fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A miss, `expired` when a stale entry of the key was just dropped.
    pub fn count_miss(&self, expired: bool) {
        let c = if expired { &self.expired } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn touch(path: &Path) {
    let r = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Err(e) = r {
        tracing::debug!(path = %path.display(), error = %e, "cannot record cache access");
    }
}
