//! The selection rules' tests, and property tests holding the indexed selection to the
//! scanning one on random cluster states.

use super::super::cluster::Identity;
use super::*;
use crate::proto::fileid::{new_name, FileInfo, Source};
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
        storage_id: id.into(),
        ..JoinReq::c_storage(group, port)
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

/// Groups and storages put into the view without the index's knowledge (positions moved) are
/// not mistaken for the ones the index holds at those positions: it falls back to names.
#[test]
fn a_view_changed_behind_the_index_is_answered_by_name() {
    let mut c = Cluster::new();
    add(&mut c, "g1", "1", 23000, 1000, 500);
    add(&mut c, "g3", "3", 23002, 1000, 500);
    add(&mut c, "g3", "4", 23003, 1000, 500);
    assert!(c.index().aligned_with(&c.groups));
    // g2 at position 1 (the index has g3 there); a storage "2" first in g3.
    let mut g2 = c.groups["g1"].clone();
    g2.name = "g2".into();
    c.groups.insert("g2".into(), g2);
    let g3 = c.groups.get_mut("g3").unwrap();
    let mut early = g3.storages["3"].clone();
    early.key = "2".into();
    g3.storages.insert("2".into(), early);
    assert!(!c.index().aligned_with(&c.groups));
    let mut s = Selector::new(cfg(StoreLookup::RoundRobin));
    let picks: Vec<(String, u16)> = (0..4)
        .map(|_| s.store(&c, None).unwrap())
        .map(|p| (p.group, p.addrs[0].port))
        .collect();
    // The index knows g1 and g3 (with "3" and "4"), and answers with them.
    assert_eq!(
        picks,
        [
            ("g1".into(), 23000),
            ("g3".into(), 23002),
            ("g1".into(), 23000),
            ("g3".into(), 23003)
        ]
    );
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
    c.reindex();
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
