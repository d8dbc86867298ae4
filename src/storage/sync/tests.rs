use super::*;
use crate::proto::tracker::SyncSource;
use crate::storage::binlog::{BinlogOp, BinlogPos, BinlogRecord};

fn rec(op: BinlogOp, source: bool, ts: i64, extra: Option<&str>) -> BinlogRecord {
    BinlogRecord {
        timestamp: ts,
        op,
        source,
        filename: "M00/00/00/x.txt".into(),
        extra: extra.map(str::to_string),
    }
}

#[test]
fn normal_peers_get_source_records_only() {
    let m = Mark::default();
    assert_eq!(
        plan(&rec(BinlogOp::Create, true, 5, None), &m),
        Plan::Create
    );
    assert_eq!(
        plan(&rec(BinlogOp::Delete, true, 5, None), &m),
        Plan::Delete
    );
    assert_eq!(
        plan(&rec(BinlogOp::Update, true, 5, None), &m),
        Plan::Update
    );
    assert!(matches!(
        plan(&rec(BinlogOp::Create, false, 5, None), &m),
        Plan::Skip(_)
    ));
    assert_eq!(
        plan(&rec(BinlogOp::Append, true, 5, Some("5 6")), &m),
        Plan::Append {
            offset: 5,
            length: 6
        }
    );
    assert_eq!(
        plan(&rec(BinlogOp::Modify, true, 5, Some("2 3")), &m),
        Plan::Modify {
            offset: 2,
            length: 3
        }
    );
    assert_eq!(
        plan(&rec(BinlogOp::Truncate, true, 5, Some("11 5")), &m),
        Plan::Truncate {
            old_size: 11,
            new_size: 5
        }
    );
    // A damaged tail still converges through a whole-file update.
    assert_eq!(
        plan(&rec(BinlogOp::Append, true, 5, Some("x")), &m),
        Plan::Update
    );
    assert!(matches!(
        plan(&rec(BinlogOp::Link, true, 5, None), &m),
        Plan::Skip(_)
    ));
}

#[test]
fn designated_source_copies_old_replica_records_others_skip_old_ones() {
    let src = initial_mark("a", Some(("a", 100)));
    assert!(src.need_sync_old);
    assert_eq!(
        plan(&rec(BinlogOp::Create, false, 100, None), &src),
        Plan::Create
    );
    assert!(matches!(
        plan(&rec(BinlogOp::Create, false, 101, None), &src),
        Plan::Skip(_)
    ));
    assert_eq!(
        plan(&rec(BinlogOp::Create, true, 50, None), &src),
        Plan::Create
    );
    // Not after the copy: the file's source may have deleted it since.
    let done = Mark {
        sync_old_done: true,
        ..src.clone()
    };
    assert!(matches!(
        plan(&rec(BinlogOp::Create, false, 99, None), &done),
        Plan::Skip(_)
    ));
    assert_eq!(
        plan(&rec(BinlogOp::Create, true, 99, None), &done),
        Plan::Create
    );
    // Other members send all their own records, old ones included, and no replica ones.
    let other = initial_mark("b", Some(("a", 100)));
    assert!(!other.need_sync_old);
    assert_eq!(
        plan(&rec(BinlogOp::Create, true, 100, None), &other),
        Plan::Create
    );
    assert!(matches!(
        plan(&rec(BinlogOp::Create, false, 100, None), &other),
        Plan::Skip(_)
    ));
    assert_eq!(initial_mark("b", None), Mark::default());
}

#[test]
fn a_watermark_holds_only_once_its_checkpoint_is_applied() {
    let at = |offset| BinlogPos { index: 0, offset };
    let mut cps: std::collections::VecDeque<_> =
        [(100, at(50)), (101, at(120)), (103, at(300))].into();
    assert_eq!(settled_watermark(&mut cps, at(40)), None);
    assert_eq!(settled_watermark(&mut cps, at(50)), Some(100));
    // Past two checkpoints: the newer one, and the older is no longer needed.
    assert_eq!(settled_watermark(&mut cps, at(200)), Some(101));
    assert_eq!(cps, [(101, at(200)), (103, at(300))]);
    // Still reachable after a reconnect (the peer may have restarted and forgotten it).
    assert_eq!(settled_watermark(&mut cps, at(200)), Some(101));
    // A new binlog file starts at offset 0 but lies after every offset of the old one.
    let next = BinlogPos {
        index: 1,
        offset: 0,
    };
    assert_eq!(settled_watermark(&mut cps, next), Some(103));
    assert_eq!(cps.len(), 1);
}

#[test]
fn a_mark_from_an_earlier_membership_is_stale() {
    let src = |id: &str, until| SyncSource {
        src_id: id.into(),
        until_timestamp: until,
    };
    let copying = initial_mark("a", Some(("a", 100)));
    let done = Mark {
        sync_old_done: true,
        pos: BinlogPos {
            index: 0,
            offset: 580,
        },
        ..copying.clone()
    };
    // The copy in progress for this assignment carries on (e.g. after our restart).
    assert!(!mark_is_stale(&copying, "a", &src("a", 100)));
    // Added again under a new sync time: start over, designated or not.
    assert!(mark_is_stale(&done, "a", &src("a", 160)));
    let other = initial_mark("b", Some(("a", 100)));
    assert!(mark_is_stale(&other, "b", &src("a", 160)));
    // Added again within the same second: the designated source must still copy, and
    // any member that saw the delete starts over.
    assert!(mark_is_stale(&done, "a", &src("a", 100)));
    assert!(!mark_is_stale(&other, "b", &src("a", 100)));
    let seen_deleted = Mark {
        peer_deleted: true,
        ..other.clone()
    };
    assert!(mark_is_stale(&seen_deleted, "b", &src("a", 100)));
}

#[test]
fn mark_round_trips_and_rejects_garbage() {
    let m = Mark {
        pos: BinlogPos {
            index: 2,
            offset: 1234,
        },
        need_sync_old: true,
        sync_old_done: false,
        until_timestamp: 1795272134,
        scan_row_count: 10,
        sync_row_count: 9,
        sync_bytes: 77,
        synced_timestamp: 1795272100,
        peer_deleted: true,
    };
    assert_eq!(Mark::parse(&m.encode()).unwrap(), m);
    assert!(Mark::parse("binlog_offset=3\n").is_err());
    assert!(Mark::parse("binlog_index=x\nbinlog_offset=3\n").is_err());
    assert!(Mark::parse("garbage").is_err());
    let dir = tempfile::tempdir().unwrap();
    let p = mark_path(dir.path(), "127.0.0.2_23000");
    assert_eq!(Mark::load(&p).unwrap(), None);
    m.store(&p).unwrap();
    assert_eq!(Mark::load(&p).unwrap(), Some(m));
    assert!(p.ends_with("127.0.0.2_23000.mark"));
}

#[test]
fn a_file_and_its_metadata_share_a_lane_and_files_spread() {
    let f = "M00/00/00/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt";
    assert_eq!(lane_of(f, LANES), lane_of(&format!("{f}-m"), LANES));
    let used: std::collections::HashSet<usize> = (0..64)
        .map(|i| lane_of(&format!("M00/00/00/file{i}.txt"), LANES))
        .collect();
    assert_eq!(used.len(), LANES);
    assert_eq!(lane_of(f, 1), 0);
}

#[test]
fn backoff_doubles_to_the_cap_and_resets() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
    let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(got, vec![100, 200, 350, 350]);
    b.reset();
    assert_eq!(b.next_delay().as_millis(), 100);
}

#[test]
fn peers_are_everyone_but_us_and_removed_members() {
    let b = |id: &str, port, st: StorageStatus| StorageBrief {
        status: st as u8,
        port,
        id: id.into(),
        ip: id.into(),
    };
    assert!(!wants_sender(
        &b("127.0.0.2", 23000, StorageStatus::Active),
        "127.0.0.2",
        23000
    ));
    assert!(wants_sender(
        &b("127.0.0.2", 23001, StorageStatus::Offline),
        "127.0.0.2",
        23000
    ));
    assert!(!wants_sender(
        &b("127.0.0.3", 23000, StorageStatus::Deleted),
        "127.0.0.2",
        23000
    ));
    assert_eq!(
        mark_name(&b("127.0.0.3", 23000, StorageStatus::Active), false),
        "127.0.0.3_23000"
    );
}

#[test]
fn lag_counts_bytes_and_records_across_binlog_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("binlog.000"), "1 C a\n2 C b\n").unwrap();
    std::fs::write(dir.path().join("binlog.001"), "3 C c\n").unwrap();
    let from = BinlogPos {
        index: 0,
        offset: 6,
    };
    let to = BinlogPos {
        index: 1,
        offset: 6,
    };
    assert_eq!(bytes_between(dir.path(), from, to), 12);
    assert_eq!(records_between(dir.path(), from, to), 2);
    assert_eq!(bytes_between(dir.path(), to, to), 0);
    assert_eq!(records_between(dir.path(), BinlogPos::default(), to), 3);
}

/// Issue 17: a regenerated appender (`R new old`) goes out as SYNC_RENAME_FILE; without the
/// old name only the new file can be sent.
#[test]
fn renames_are_sent_as_renames() {
    let m = Mark::default();
    assert_eq!(
        plan(
            &rec(BinlogOp::Rename, true, 5, Some("M00/00/00/old.txt")),
            &m
        ),
        Plan::Rename {
            old_name: "M00/00/00/old.txt".into()
        }
    );
    assert_eq!(
        plan(&rec(BinlogOp::Rename, true, 5, None), &m),
        Plan::Create
    );
    assert!(matches!(
        plan(
            &rec(BinlogOp::Rename, false, 5, Some("M00/00/00/old.txt")),
            &m
        ),
        Plan::Skip(_)
    ));
}
