//! The cluster view on disk (`<data_dir>/tracker-cluster.json`), so a restarted tracker answers
//! at once instead of refusing every query until the storages have reported again.
//!
//! Written atomically (temp file + rename) whenever the view changed, at most once per ticker
//! period, and on shutdown. On start, storages that were ONLINE/ACTIVE come back as they were
//! but must report again within [`REJOIN_GRACE`] (they reconnect within seconds) or they go
//! OFFLINE; a snapshot older than `check_active_interval` brings them back OFFLINE. Sync
//! sources and sync positions are kept either way (they steer reads and newcomers).

use super::cluster::{Cluster, Group, StorageNode};
use crate::proto::tracker::{PathUsage, StorageStats, StorageStatus, SyncSource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a restored ONLINE/ACTIVE storage stays handed out without reporting again.
pub const REJOIN_GRACE: Duration = Duration::from_secs(15);
pub const FILE_NAME: &str = "tracker-cluster.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub saved_at_unix: i64,
    pub groups: Vec<SavedGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedGroup {
    pub name: String,
    pub storages: Vec<SavedStorage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedStorage {
    pub key: String,
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub status: u8,
    pub version: String,
    pub join_time: i64,
    pub up_time: i64,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    /// (total MiB, free MiB) per store path.
    pub paths: Vec<(u64, u64)>,
    pub sync_src: Option<(String, i64)>,
    pub synced_from: BTreeMap<String, u32>,
}

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

pub fn snapshot(cluster: &Cluster, unix_now: i64) -> Snapshot {
    Snapshot {
        saved_at_unix: unix_now,
        groups: cluster
            .groups
            .values()
            .map(|g| SavedGroup {
                name: g.name.clone(),
                storages: g
                    .storages
                    .values()
                    .map(|s| SavedStorage {
                        key: s.key.clone(),
                        id: s.id.clone(),
                        ip: s.ip.clone(),
                        port: s.port,
                        status: s.status as u8,
                        version: s.version.clone(),
                        join_time: s.join_time,
                        up_time: s.up_time,
                        store_path_count: s.store_path_count,
                        subdir_count_per_path: s.subdir_count_per_path,
                        upload_priority: s.upload_priority,
                        paths: s.paths.iter().map(|p| (p.total_mb, p.free_mb)).collect(),
                        sync_src: s
                            .sync_src
                            .as_ref()
                            .map(|x| (x.src_id.clone(), x.until_timestamp)),
                        synced_from: s.synced_from.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Rebuilds a cluster view from a snapshot (see the module comment for the status rules).
pub fn restore(
    snap: &Snapshot,
    now: Instant,
    unix_now: i64,
    check_active_interval: Duration,
) -> Cluster {
    let fresh = unix_now - snap.saved_at_unix <= check_active_interval.as_secs() as i64;
    // Backdate the last report so the liveness check fires REJOIN_GRACE from now.
    let heard = now
        .checked_sub(check_active_interval.saturating_sub(REJOIN_GRACE))
        .unwrap_or(now);
    let mut cluster = Cluster::new();
    for g in &snap.groups {
        let mut group = Group {
            name: g.name.clone(),
            ..Group::default()
        };
        for s in &g.storages {
            let Some(mut status) = StorageStatus::from_u8(s.status) else {
                continue;
            };
            if !fresh && matches!(status, StorageStatus::Online | StorageStatus::Active) {
                status = StorageStatus::Offline;
            }
            group.storages.insert(
                s.key.clone(),
                StorageNode {
                    key: s.key.clone(),
                    id: s.id.clone(),
                    ip: s.ip.clone(),
                    port: s.port,
                    status,
                    version: s.version.clone(),
                    join_time: s.join_time,
                    up_time: s.up_time,
                    store_path_count: s.store_path_count,
                    subdir_count_per_path: s.subdir_count_per_path,
                    upload_priority: s.upload_priority,
                    paths: s
                        .paths
                        .iter()
                        .map(|(total_mb, free_mb)| PathUsage {
                            total_mb: *total_mb,
                            free_mb: *free_mb,
                        })
                        .collect(),
                    stats: StorageStats::default(),
                    last_heard: heard,
                    sync_src: s.sync_src.as_ref().map(|(id, until)| SyncSource {
                        src_id: id.clone(),
                        until_timestamp: *until,
                    }),
                    synced_from: s.synced_from.clone(),
                    // No connection yet: a disconnect of any live connection cannot match.
                    conn_id: 0,
                },
            );
        }
        group.version = 1;
        cluster.groups.insert(group.name.clone(), group);
    }
    cluster.reindex();
    cluster
}

/// Reads the snapshot; a missing file is None, an unreadable one is logged and ignored.
pub fn load(data_dir: &Path) -> Option<Snapshot> {
    let path = path_in(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read tracker snapshot; starting empty");
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "bad tracker snapshot; starting empty");
            None
        }
    }
}

/// Writes `text` to the snapshot file atomically.
pub fn save(data_dir: &Path, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let path = path_in(data_dir);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tracker::{JoinReq, SyncPosition};
    use crate::tracker::cluster::Identity;

    fn cluster_with_one_active(now: Instant) -> Cluster {
        let mut c = Cluster::new();
        let req = JoinReq {
            join_time: 5,
            up_time: 6,
            storage_id: "1".into(),
            ..JoinReq::c_storage("g1", 23000)
        };
        let who = Identity {
            key: "1".into(),
            id: "1".into(),
            ip: "127.0.0.1".into(),
        };
        c.join(&who, &req, 7, now);
        c.disk_usage(
            "g1",
            "1",
            vec![PathUsage {
                total_mb: 100,
                free_mb: 60,
            }],
            now,
        )
        .unwrap();
        let pos = [SyncPosition {
            src_id: "2".into(),
            timestamp: 99,
        }];
        c.sync_report("g1", "1", &pos, now).unwrap();
        c
    }

    #[test]
    fn restored_storages_serve_until_the_grace_ends_unless_they_report() {
        let now = Instant::now();
        let c = cluster_with_one_active(now);
        let snap = snapshot(&c, 1000);
        let json = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        let interval = Duration::from_secs(100);
        let mut r = restore(&back, now, 1010, interval);
        let s = r.storage("g1", "1").unwrap();
        assert_eq!(s.status, StorageStatus::Active);
        assert_eq!(s.synced_from.get("2"), Some(&99));
        assert_eq!(s.free_mb(), 60);
        assert!(r
            .check_active(now + REJOIN_GRACE - Duration::from_secs(1), interval)
            .is_empty());
        let off = r.check_active(now + REJOIN_GRACE, interval);
        assert_eq!(off.len(), 1);
        // A storage that reports again in time stays.
        let mut r = restore(&back, now, 1010, interval);
        r.beat("g1", "1", None, now + Duration::from_secs(1))
            .unwrap();
        assert!(r.check_active(now + REJOIN_GRACE, interval).is_empty());
    }

    #[test]
    fn an_old_snapshot_brings_storages_back_offline() {
        let now = Instant::now();
        let snap = snapshot(&cluster_with_one_active(now), 1000);
        let r = restore(&snap, now, 1000 + 101, Duration::from_secs(100));
        let s = r.storage("g1", "1").unwrap();
        assert_eq!(s.status, StorageStatus::Offline);
        assert_eq!(s.synced_from.get("2"), Some(&99));
    }

    #[test]
    fn save_and_load_round_trip_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        let snap = snapshot(&cluster_with_one_active(Instant::now()), 1);
        save(dir.path(), &serde_json::to_string(&snap).unwrap()).unwrap();
        assert_eq!(load(dir.path()), Some(snap));
        std::fs::write(path_in(dir.path()), "{not json").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
