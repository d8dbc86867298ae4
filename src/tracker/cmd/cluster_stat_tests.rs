//! 95-98 against a tracker fed as C storages and trackers feed it. Requests are built as
//! C's client/tracker_client.c sends them (a 1-byte-field filter struct copied as is); every
//! answer is checked by length and field offset against C 6.16's tracker_service.c
//! (tracker_deal_server_get_leader, _tracker_cluster_stat, _storage_cluster_stat,
//! _storage_volumn_stat) and the structs of tracker/tracker_proto.h.

use crate::config::Reserved;
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{encode_disk_usage, JoinReq, PathUsage, STAT_BLOCK_LEN};
use crate::proto::tracker_peer as tp;
use crate::tracker::service::{Reply, Tracker};
use std::time::Instant;

fn tracker() -> Tracker {
    let mut cfg = crate::config::parse_str("node: t\ntracker: {}\n")
        .expect("config")
        .tracker
        .expect("tracker section");
    cfg.reserved_storage_space = Reserved::Percent(10.0);
    Tracker::new(cfg)
}

fn join_body(group: &str, port: u16, trackers: &[&str]) -> Vec<u8> {
    JoinReq {
        trackers: trackers.iter().map(|t| t.to_string()).collect(),
        ..JoinReq::for_test(group, port, "")
    }
    .encode()
}

fn answer(r: Reply) -> (u8, Vec<u8>) {
    match r {
        Reply::Send { status, body } => (status, body),
        r => panic!("no answer: {r:?}"),
    }
}

fn ask(t: &Tracker, command: u8, body: &[u8], unix: i64) -> (u8, Vec<u8>) {
    let mut c = t.new_conn("127.0.0.99".into());
    answer(t.handle(&mut c, command, body, Instant::now(), unix))
}

/// C answers EINVAL to a filter of any length but `len`: empty, one byte short, one too many.
fn refuses_other_lengths(t: &Tracker, command: u8, len: usize) {
    for bad in [0, len - 1, len + 1] {
        assert_eq!(
            ask(t, command, &vec![0; bad], 0),
            (errno::EINVAL, vec![]),
            "command {command}, {bad} bytes"
        );
    }
}

fn be64(b: &[u8], off: usize) -> i64 {
    i64::from_be_bytes(b[off..off + 8].try_into().unwrap())
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

/// A NUL-padded text field of `len` bytes at `off`.
fn text(b: &[u8], off: usize, len: usize, want: &str) {
    let mut padded = want.as_bytes().to_vec();
    padded.resize(len, 0);
    assert_eq!(&b[off..off + len], &padded[..], "field at {off}");
}

/// A storage joins from `ip` (naming `trackers`); `beat`: it beats once with these
/// connection counters (ACTIVE) and reports one path of `total`/`free` MB.
fn storage(
    t: &Tracker,
    ip: &str,
    group: &str,
    port: u16,
    trackers: &[&str],
    beat: Option<(u64, u64)>,
) {
    let now = Instant::now();
    let mut c = t.new_conn(ip.into());
    let (st, _) = answer(t.handle(
        &mut c,
        cmd::STORAGE_JOIN,
        &join_body(group, port, trackers),
        now,
        0,
    ));
    assert_eq!(st, 0);
    let Some((total, free)) = beat else { return };
    let mut stats = vec![0u8; STAT_BLOCK_LEN];
    stats[..12].copy_from_slice(&[0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 5]);
    assert_eq!(
        answer(t.handle(&mut c, cmd::STORAGE_BEAT, &stats, now, 0)).0,
        0
    );
    let du = encode_disk_usage(&[PathUsage {
        total_mb: total,
        free_mb: free,
    }]);
    assert_eq!(
        answer(t.handle(&mut c, cmd::STORAGE_REPORT_DISK_USAGE, &du, now, 0)).0,
        0
    );
}

/// C: any body is EINVAL; no leader is ENOENT; the answer is `format_ip_port` without NUL.
#[test]
fn get_leader_is_the_leader_address_without_a_nul() {
    let t = tracker();
    assert_eq!(
        ask(&t, cmd::SERVER_GET_LEADER, &[], 0),
        (errno::ENOENT, vec![])
    );
    assert_eq!(ask(&t, cmd::SERVER_GET_LEADER, &[0], 0).0, errno::EINVAL);
    // Named alone by a storage, this tracker leads.
    storage(&t, "127.0.0.5", "group1", 23000, &["127.0.0.1:22122"], None);
    assert_eq!(
        ask(&t, cmd::SERVER_GET_LEADER, &[], 0),
        (0, b"127.0.0.1:22122".to_vec())
    );
    // A follower names the leader it was told of.
    let t = tracker();
    storage(
        &t,
        "127.0.0.5",
        "group1",
        23000,
        &["127.0.0.1:22122", "127.0.0.22:22122"],
        None,
    );
    for c in [
        tp::TRACKER_NOTIFY_NEXT_LEADER,
        tp::TRACKER_COMMIT_NEXT_LEADER,
    ] {
        assert_eq!(ask(&t, c, b"127.0.0.22:22122", 0).0, 0);
    }
    assert_eq!(
        ask(&t, cmd::SERVER_GET_LEADER, &[], 0),
        (0, b"127.0.0.22:22122".to_vec())
    );
    // Only the leader lists trackers.
    assert_eq!(
        ask(&t, cmd::SERVER_TRACKER_CLUSTER_STAT, &[0, 0, 0], 0),
        (errno::EOPNOTSUPP, vec![])
    );
}

/// TrackerClusterStatRespHeader (count 1) + TrackerClusterStatRespBodyPart (90 B): host 52
/// at 0, is_leader 52, is_active 53, alloc/current/max 54/58/62 (4 B), version 66 (8 B),
/// up_time 74, last_heartbeat_time 82 (8 B). A follower is active while its last ping is
/// at most 3 s old; the leader always is.
#[test]
fn tracker_cluster_stat_lists_leader_and_followers_with_c_offsets() {
    let t = tracker();
    t.started(1000, 0);
    storage(
        &t,
        "127.0.0.5",
        "group1",
        23000,
        &["127.0.0.1:22122", "127.0.0.22:22122"],
        None,
    );
    assert_eq!(
        ask(&t, tp::TRACKER_COMMIT_NEXT_LEADER, b"127.0.0.1:22122", 0).0,
        0
    );
    // The follower joins (up_time 500, "6.16.1", port 22122) and pings (10, 3, 4) at 2000.
    let now = Instant::now();
    let mut f = t.new_conn("127.0.0.22".into());
    let mut join = 500i64.to_be_bytes().to_vec();
    join.extend_from_slice(b"6.16.1\0\0");
    join.extend_from_slice(&22122i64.to_be_bytes());
    assert_eq!(
        answer(t.handle(&mut f, tp::TRACKER_JOIN_LEADER, &join, now, 1999)).0,
        0
    );
    let ping = [0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0, 4];
    assert_eq!(
        answer(t.handle(&mut f, tp::TRACKER_PING_LEADER, &ping, now, 2000)).0,
        0
    );

    let (st, b) = ask(&t, cmd::SERVER_TRACKER_CLUSTER_STAT, &[0, 0, 0], 2003);
    assert_eq!((st, b.len(), b[0]), (0, 1 + 2 * 90, 2));
    let max = t.cfg.max_connections as u32;
    let rec = |i: usize| 1 + 90 * i;
    // The leader (us) first: 127.0.0.1 sorts before 127.0.0.22.
    text(&b, rec(0), 52, "127.0.0.1:22122");
    assert_eq!((b[rec(0) + 52], b[rec(0) + 53]), (1, 1));
    assert_eq!(
        [
            be32(&b, rec(0) + 54),
            be32(&b, rec(0) + 58),
            be32(&b, rec(0) + 62)
        ],
        [max, 0, 0]
    );
    text(&b, rec(0) + 66, 8, "6.16.1");
    assert_eq!((be64(&b, rec(0) + 74), be64(&b, rec(0) + 82)), (1000, 0));
    text(&b, rec(1), 52, "127.0.0.22:22122");
    assert_eq!((b[rec(1) + 52], b[rec(1) + 53]), (0, 1));
    assert_eq!(
        [
            be32(&b, rec(1) + 54),
            be32(&b, rec(1) + 58),
            be32(&b, rec(1) + 62)
        ],
        [10, 3, 4]
    );
    text(&b, rec(1) + 66, 8, "6.16.1");
    assert_eq!((be64(&b, rec(1) + 74), be64(&b, rec(1) + 82)), (500, 2000));

    // 4 s after its ping the follower is no longer active. Filters (fdfs_tracker_stat
    // -A / -N / -L / -F): filter_by 1 = is_active, 2 = is_leader.
    let hosts = |filter: [u8; 3]| {
        let (st, b) = ask(&t, cmd::SERVER_TRACKER_CLUSTER_STAT, &filter, 2004);
        assert_eq!((st, b.len()), (0, 1 + 90 * b[0] as usize));
        (0..b[0] as usize)
            .map(|i| {
                (
                    b[rec(i) + 53],
                    String::from_utf8_lossy(&b[rec(i)..rec(i) + 16]).into(),
                )
            })
            .collect::<Vec<(u8, String)>>()
    };
    let leader = || (1, "127.0.0.1:22122\0".to_string());
    let follower = || (0, "127.0.0.22:22122".to_string());
    assert_eq!(hosts([0, 0, 0]), [leader(), follower()]);
    assert_eq!(hosts([1, 1, 0]), [leader()]);
    assert_eq!(hosts([1, 0, 0]), [follower()]);
    assert_eq!(hosts([2, 0, 1]), [leader()]);
    assert_eq!(hosts([2, 0, 0]), [follower()]);
    assert_eq!(hosts([3, 0, 1]), []);
    refuses_other_lengths(&t, cmd::SERVER_TRACKER_CLUSTER_STAT, 3);
}

/// StorageClusterStatRespHeader (use_storage_id 1, use_trunk_file 1, count 4) +
/// StorageClusterStatRespBodyPart (106 B): id 16 at 0, host 52 at 16, is_trunk_server 68,
/// status 69, alloc/current/max 70/74/78, version 82 (8 B), up_time 90,
/// last_heartbeat_time 98.
#[test]
fn storage_cluster_stat_lists_every_storage_with_c_offsets() {
    let t = tracker();
    storage(
        &t,
        "127.0.0.5",
        "group1",
        23000,
        &["127.0.0.1:22122"],
        Some((1000, 900)),
    );
    storage(&t, "127.0.0.6", "group2", 23001, &["127.0.0.1:22122"], None);
    let (st, b) = ask(&t, cmd::SERVER_STORAGE_CLUSTER_STAT, &[0; 4], 3000);
    assert_eq!((st, b.len()), (0, 6 + 2 * 106));
    assert_eq!((b[0], b[1], be32(&b, 2)), (0, 0, 2));
    let rec = |i: usize| 6 + 106 * i;
    text(&b, rec(0), 16, "127.0.0.5");
    text(&b, rec(0) + 16, 52, "127.0.0.5:23000");
    assert_eq!((b[rec(0) + 68], b[rec(0) + 69]), (0, 7));
    assert_eq!(
        [
            be32(&b, rec(0) + 70),
            be32(&b, rec(0) + 74),
            be32(&b, rec(0) + 78)
        ],
        [9, 2, 5]
    );
    text(&b, rec(0) + 82, 8, "6.16.1");
    assert_eq!((be64(&b, rec(0) + 90), be64(&b, rec(0) + 98)), (2, 3000));
    text(&b, rec(1) + 16, 52, "127.0.0.6:23001");
    assert_eq!(b[rec(1) + 69], 6, "joined, never beat: ONLINE");

    // fdfs_storage_stat -A / -N: filter_by 2 = status, op '=' or '!', status 7 (ACTIVE).
    let count = |filter: &[u8]| {
        let (st, b) = ask(&t, cmd::SERVER_STORAGE_CLUSTER_STAT, filter, 3000);
        assert_eq!((st, b.len()), (0, 6 + 106 * be32(&b, 2) as usize));
        (
            be32(&b, 2),
            b.get(rec(0) + 16..rec(0) + 25).map(<[u8]>::to_vec),
        )
    };
    assert_eq!(count(b"\x02=\x07\x00"), (1, Some(b"127.0.0.5".to_vec())));
    assert_eq!(count(b"\x02!\x07\x00"), (1, Some(b"127.0.0.6".to_vec())));
    assert_eq!(
        count(b"\x02<\x07\x00"),
        (0, None),
        "other operators match nothing"
    );
    // -T / -t count only with trunk files, which fdfs-ha does not use.
    assert_eq!(count(&[1, 0, 0, 1]).0, 2);
    refuses_other_lengths(&t, cmd::SERVER_STORAGE_CLUSTER_STAT, 4);
}

/// StorageVolumnStatRespHeader (use_trunk_file 1, count 4) + StorageVolumnStatRespBodyPart
/// (59 B): group 17 at 0, total/free/reserved/avail/trunk_free MB at 17/25/33/41/49,
/// is_disk_available 57, is_trunk_available 58. avail = free - reserved when the disk is
/// available (free above the reserved space), else 0.
#[test]
fn volumn_stat_reports_each_group_with_c_offsets() {
    let t = tracker();
    storage(
        &t,
        "127.0.0.5",
        "group1",
        23000,
        &["127.0.0.1:22122"],
        Some((1000, 900)),
    );
    storage(
        &t,
        "127.0.0.6",
        "group2",
        23000,
        &["127.0.0.1:22122"],
        Some((2000, 150)),
    );
    let (st, b) = ask(&t, cmd::SERVER_STORAGE_VOLUMN_STAT, &[0; 4], 0);
    assert_eq!((st, b.len()), (0, 5 + 2 * 59));
    assert_eq!((b[0], be32(&b, 1)), (0, 2));
    let rec = |i: usize| 5 + 59 * i;
    let fields = |i: usize| -> [i64; 5] { std::array::from_fn(|k| be64(&b, rec(i) + 17 + 8 * k)) };
    text(&b, rec(0), 17, "group1");
    assert_eq!(fields(0), [1000, 900, 100, 800, 0]);
    assert_eq!((b[rec(0) + 57], b[rec(0) + 58]), (1, 0));
    text(&b, rec(1), 17, "group2");
    assert_eq!(fields(1), [2000, 150, 200, 0, 0]);
    assert_eq!((b[rec(1) + 57], b[rec(1) + 58]), (0, 0));

    // fdfs_volumn_stat -D / -d (bit 1), -A / -N (bit 4); -T / -t (bit 2) need trunk files.
    let groups = |filter: [u8; 4]| {
        let (st, b) = ask(&t, cmd::SERVER_STORAGE_VOLUMN_STAT, &filter, 0);
        assert_eq!((st, b.len()), (0, 5 + 59 * be32(&b, 1) as usize));
        (0..be32(&b, 1) as usize)
            .map(|i| String::from_utf8_lossy(&b[rec(i)..rec(i) + 6]).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(groups([1, 1, 0, 0]), ["group1"]);
    assert_eq!(groups([1, 0, 0, 0]), ["group2"]);
    assert_eq!(groups([4, 0, 0, 1]), ["group1"]);
    assert_eq!(groups([4, 0, 0, 0]), ["group2"]);
    assert_eq!(groups([2, 0, 1, 0]), ["group1", "group2"]);
    assert_eq!(groups([5, 1, 0, 0]), Vec::<String>::new());
    refuses_other_lengths(&t, cmd::SERVER_STORAGE_VOLUMN_STAT, 4);
}
