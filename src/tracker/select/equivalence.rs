//! Property tests: on random cluster histories (joins, beats, disk and sync reports, status
//! changes, deletions) and every selection setting, the indexed selector answers every query
//! exactly as the scanning one (same storage, same error, same round-robin moves).

use super::{SelectConfig, Selector};
use crate::config::{DownloadServer, Reserved, StoreLookup, StorePathLookup, StoreServer};
use crate::proto::fileid::{new_name, slave_name, FileInfo, Source};
use crate::proto::tracker::{JoinReq, PathUsage, StorageBrief, SyncPosition};
use crate::tracker::cluster::{Cluster, Identity};
use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const NOW: i64 = 1_800_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// JOIN with its data, a disk report with room and a BEAT: ACTIVE.
    Up(u8, u8),
    Join(u8, u8, bool),
    Beat(u8, u8),
    Disk(u8, u8, [(u64, u64); 2]),
    Sync(u8, u8, u8, i32),
    Disconnect(u8, u8),
    Silence,
    DestReq(u8, u8),
    Report(u8, u8, u8),
    Delete(u8, u8),
    DeleteGroup(u8),
    Store(Option<u8>, bool),
    Fetch(u8, u8, bool, i32, u8, bool),
    Update(u8, u8, bool, i32),
}

/// Seconds from NOW: around the sync rules' edges (a second either side of a file's creation,
/// `sync_max_time` = 300, `sync_max_delay` = 86,400).
fn when() -> impl Strategy<Value = i32> {
    proptest::sample::select(vec![-100_000, -302, -301, -300, -2, -1, 0])
}

fn op() -> impl Strategy<Value = Op> {
    let gs = || (0u8..3, 0u8..4);
    let disk = prop_oneof![Just(0u64), Just(100), Just(1000), Just(5000)]
        .prop_flat_map(|t| (Just(t), 0..=t));
    prop_oneof![
        4 => gs().prop_map(|(g, s)| Op::Up(g, s)),
        2 => (gs(), any::<bool>()).prop_map(|((g, s), i)| Op::Join(g, s, i)),
        3 => gs().prop_map(|(g, s)| Op::Beat(g, s)),
        4 => (gs(), disk.clone(), disk).prop_map(|((g, s), a, b)| Op::Disk(g, s, [a, b])),
        10 => (gs(), 0u8..4, when()).prop_map(|((g, s), src, d)| Op::Sync(g, s, src, d)),
        1 => gs().prop_map(|(g, s)| Op::Disconnect(g, s)),
        1 => Just(Op::Silence),
        1 => gs().prop_map(|(g, s)| Op::DestReq(g, s)),
        1 => (gs(), 1u8..8).prop_map(|((g, s), st)| Op::Report(g, s, st)),
        1 => gs().prop_map(|(g, s)| Op::Delete(g, s)),
        1 => (0u8..3).prop_map(Op::DeleteGroup),
        6 => (proptest::option::of(0u8..3), any::<bool>()).prop_map(|(g, a)| Op::Store(g, a)),
        8 => (gs(), any::<bool>(), when(), 0u8..3, any::<bool>())
            .prop_map(|((g, s), ip, age, kind, all)| Op::Fetch(g, s, ip, age, kind, all)),
        2 => (gs(), any::<bool>(), when()).prop_map(|((g, s), ip, a)| Op::Update(g, s, ip, a)),
    ]
}

fn config() -> impl Strategy<Value = SelectConfig> {
    (
        0u8..3,
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lookup, server, source_first, path_lb, bytes, no_delay)| SelectConfig {
                store_lookup: [
                    StoreLookup::RoundRobin,
                    StoreLookup::Specified,
                    StoreLookup::LoadBalance,
                ][lookup as usize],
                store_group: Some("g1".into()),
                store_server: [
                    StoreServer::RoundRobin,
                    StoreServer::FirstByIp,
                    StoreServer::ByPriority,
                ][server as usize],
                store_path: if path_lb {
                    StorePathLookup::LoadBalance
                } else {
                    StorePathLookup::RoundRobin
                },
                download_server: if source_first {
                    DownloadServer::SourceFirst
                } else {
                    DownloadServer::RoundRobin
                },
                reserved: if bytes {
                    Reserved::Bytes(100 << 20)
                } else {
                    Reserved::Percent(10.0)
                },
                sync_max_delay: if no_delay { 0 } else { 86400 },
                sync_max_time: 300,
            },
        )
}

/// Storage `s` by id (`1000s`) or, without ids, by `ip:port`; addresses are shared by pairs.
fn who(s: u8, ids: bool) -> Identity {
    let ip = format!("127.0.0.{}", s / 2 + 1);
    if ids {
        let id = format!("1000{s}");
        return Identity {
            key: id.clone(),
            id,
            ip,
        };
    }
    Identity {
        key: format!("{ip}:{}", 23000 + s as u16),
        id: ip.clone(),
        ip,
    }
}

fn group(g: u8) -> String {
    format!("g{g}")
}

fn file(src: u8, by_ip: bool, age: i32, kind: u8) -> String {
    let info = FileInfo {
        source: if by_ip {
            Source::Ip(Ipv4Addr::new(127, 0, 0, src / 2 + 1))
        } else {
            Source::Id(10000 + src as u32)
        },
        create_time: (NOW + age as i64) as u32,
        size_field: FileInfo::size_field_for(5, kind == 1, 7),
        crc32: 1,
    };
    let name = new_name(&info, "txt", 123);
    let name = if kind == 2 {
        slave_name(&name, "_s", "txt")
    } else {
        name
    };
    format!("M00/00/00/{name}")
}

fn apply(c: &mut Cluster, op: &Op, ids: bool, t0: Instant) {
    let key = |s: u8| who(s, ids).key;
    match *op {
        Op::Up(g, s) => {
            apply(c, &Op::Join(g, s, false), ids, t0);
            apply(
                c,
                &Op::Disk(g, s, [(1000, 900), (1000, 800 + s as u64)]),
                ids,
                t0,
            );
            apply(c, &Op::Beat(g, s), ids, t0);
        }
        Op::Join(g, s, init) => {
            let req = JoinReq {
                store_path_count: 1 + u32::from(s % 2),
                upload_priority: i64::from(s % 3),
                init_flag: u8::from(init),
                storage_id: who(s, ids).id,
                ..JoinReq::c_storage(&group(g), 23000 + s as u16)
            };
            c.join(&who(s, ids), &req, s as u64, t0);
        }
        Op::Beat(g, s) => drop(c.beat(&group(g), &key(s), None, t0)),
        Op::Disk(g, s, paths) => {
            let n = 1 + usize::from(s % 2);
            let paths = paths[..n]
                .iter()
                .map(|&(total_mb, free_mb)| PathUsage { total_mb, free_mb })
                .collect();
            drop(c.disk_usage(&group(g), &key(s), paths, t0));
        }
        Op::Sync(g, s, src, d) => {
            let pos = [SyncPosition {
                src_id: who(src, ids).id,
                timestamp: (NOW + d as i64) as u32,
            }];
            let _ = c.sync_report(&group(g), &key(s), &pos, t0);
        }
        Op::Disconnect(g, s) => drop(c.disconnect(&group(g), &key(s), s as u64)),
        Op::Silence => drop(c.check_active(t0 + Duration::from_secs(3600), Duration::from_secs(1))),
        Op::DestReq(g, s) => drop(c.sync_dest_req(&group(g), &key(s), NOW)),
        Op::Report(g, s, status) => {
            let brief = StorageBrief {
                status,
                port: 23000 + s as u16,
                id: who(s, ids).id,
                ip: who(s, ids).ip,
            };
            drop(c.report_status(&group(g), &brief));
        }
        Op::Delete(g, s) => drop(c.delete_storage(&group(g), &key(s))),
        Op::DeleteGroup(g) => drop(c.delete_group(&group(g))),
        _ => {}
    }
}

/// Asks both selectors; the answers must be equal.
fn ask(c: &Cluster, a: &mut Selector, b: &mut Selector, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Store(g, all) => {
            let g = g.map(group);
            let (x, y) = if all {
                (a.store_all(c, g.as_deref()), b.store_all(c, g.as_deref()))
            } else {
                (a.store(c, g.as_deref()), b.store(c, g.as_deref()))
            };
            prop_assert_eq!(x, y);
        }
        Op::Fetch(g, src, by_ip, age, kind, all) => {
            let f = file(src, by_ip, age, kind);
            let x = a.fetch(c, &group(g), &f, NOW, all);
            prop_assert_eq!(x, b.fetch(c, &group(g), &f, NOW, all));
        }
        Op::Update(g, src, by_ip, age) => {
            let f = file(src, by_ip, age, 0);
            prop_assert_eq!(a.update(c, &group(g), &f), b.update(c, &group(g), &f));
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn indexed_selection_answers_as_the_scan(
        cfg in config(),
        ids in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut c = Cluster::new();
        c.set_reserved(cfg.reserved);
        let mut indexed = Selector::new(cfg.clone());
        let mut scan = Selector::scanning(cfg.clone());
        for op in &ops {
            apply(&mut c, op, ids, t0);
            // Every change keeps the index's groups and positions in step with the view, so
            // the answers compared here are the ones found by position.
            prop_assert!(c.index().aligned_with(&c.groups));
            for g in c.groups.values() {
                prop_assert!(c.index().group(&g.name).is_some_and(|gi| gi.located_in(&g.storages)));
            }
            ask(&c, &mut indexed, &mut scan, op)?;
        }
        // The indexes kept in step answer as ones built from scratch.
        let mut rebuilt = Cluster::new();
        rebuilt.groups = c.groups.clone();
        rebuilt.set_reserved(*c.index().reserved());
        let (mut a, mut b) = (Selector::new(cfg.clone()), Selector::new(cfg));
        for g in 0..4 {
            for src in 0..6 {
                let f = file(src, src % 2 == 0, -200, 0);
                prop_assert_eq!(a.fetch(&c, &group(g), &f, NOW, false), b.fetch(&rebuilt, &group(g), &f, NOW, false));
            }
            prop_assert_eq!(a.store(&c, Some(&group(g))), b.store(&rebuilt, Some(&group(g))));
            prop_assert_eq!(a.store(&c, None), b.store(&rebuilt, None));
        }
    }
}
