//! Byte-for-byte checks against `tests/vectors/fastdfs-vectors.txt` (captured from FastDFS 6.16.1's
//! own tools): every tracker message there is decoded and re-encoded to the same bytes.
use super::*;
use crate::proto::cmd;
use std::collections::BTreeMap;

use super::vectors::*;

/// Checks a request/reply pair of a tracker query that answers with one storage address.
fn check_fetch_one(req: &Msg, reply: &Msg, ip: &str, port: u16) {
    let q = FileQuery::decode(req.body()).unwrap();
    assert_eq!(q.group, "group1");
    assert!(crate::proto::fileid::RemoteName::parse_str(&q.filename).is_ok());
    assert_same(req, q.encode());
    let r = FetchTargets::decode(reply.body()).unwrap();
    assert_eq!(reply.body().len(), 39);
    assert_eq!(
        r.addrs,
        vec![StorageAddr {
            ip: ip.into(),
            port
        }]
    );
    assert_same(reply, r.encode(IPV4_ADDRESS_SIZE));
}

#[test]
fn vector_get_my_ip_and_quit() {
    let all = blocks();
    for n in [0, 3] {
        let b = block(&all, n);
        assert!(b[0].to_tracker && b[0].cmd() == cmd::STORAGE_GET_MY_IP);
        let req = GetMyIpReq::decode(b[0].body()).unwrap();
        assert_eq!(req.group, "group1");
        assert_eq!(req.port, if n == 0 { 23000 } else { 23001 });
        assert_same(&b[0], req.encode());
        assert_eq!(b[1].cmd(), cmd::RESP);
        assert_eq!(b[1].body(), b"127.0.0.1");
        assert_eq!(b[2].cmd(), cmd::QUIT);
        assert!(b[2].body().is_empty());
    }
}

#[test]
fn vector_parameter_req() {
    let all = blocks();
    for n in [1, 4] {
        let b = block(&all, n);
        assert_eq!(b[0].cmd(), cmd::STORAGE_PARAMETER_REQ);
        assert!(b[0].body().is_empty());
        let p = TrackerParams::decode(b[1].body()).unwrap();
        assert!(p.use_storage_id);
        assert_eq!(p.id_type_in_filename, "id");
        assert_eq!(p.response_ip_addr_size, 16);
        assert_eq!(p.storage_sync_file_max_delay, 86400);
        assert_eq!(p.reserved_storage_space, "20.00%");
        let ours = TrackerParams {
            use_storage_id: true,
            id_type_in_filename: "id".into(),
            trust_storage_server_id: true,
            response_ip_addr_size: 16,
            storage_ip_changed_auto_adjust: true,
            storage_sync_file_max_delay: 86400,
            store_path: 0,
            reserved_storage_space: "20.00%".into(),
            store_slave_file_use_link: false,
            raw: BTreeMap::new(),
        };
        assert_same(&b[1], ours.encode());
    }
}

#[test]
fn vector_fetch_storage_ids() {
    let all = blocks();
    for n in [2, 5] {
        let b = block(&all, n);
        assert_eq!(b[0].cmd(), cmd::STORAGE_FETCH_STORAGE_IDS);
        let req = FetchStorageIdsReq::decode(b[0].body()).unwrap();
        assert_eq!(
            req,
            FetchStorageIdsReq {
                start_index: 0,
                allow_empty: false
            }
        );
        assert_same(&b[0], req.encode());
        let reply = FetchStorageIdsReply::decode(b[1].body()).unwrap();
        assert_eq!(reply.total, 2);
        assert_eq!(
            reply.records[1],
            StorageIdRecord {
                id: "100002".into(),
                group: "group1".into(),
                addr: "127.0.0.1:23001".into()
            }
        );
        assert_same(&b[1], reply.encode());
    }
}

#[test]
fn vector_storage_long_connection_block_6() {
    let all = blocks();
    let b = block(&all, 6);
    // JOIN
    let join = JoinReq::decode(b[0].body()).unwrap();
    assert_eq!(b[0].body().len(), 161);
    assert_eq!(join.group, "group1");
    assert_eq!(join.storage_port, 23000);
    assert_eq!(join.store_path_count, 1);
    assert_eq!(join.subdir_count_per_path, 256);
    assert_eq!(join.upload_priority, 10);
    assert_eq!(join.join_time, 1795271041);
    assert_eq!(join.up_time, 1795272002);
    assert_eq!(join.version, "6.16.1");
    assert_eq!((join.init_flag, join.status), (0, 0));
    assert_eq!(join.storage_id, "100001");
    assert_eq!(join.current_tracker_ip, "127.0.0.1");
    assert_eq!(join.trackers, vec!["127.0.0.1:22122".to_string()]);
    assert_same(&b[0], join.encode());
    let jr = JoinReply::decode(b[1].body()).unwrap();
    assert_eq!(jr.status, StorageStatus::Online as u8);
    assert_eq!(jr.src_id, "100002");
    assert_same(&b[1], jr.encode());
    // SYNC_NOTIFY
    assert_eq!(b[2].cmd(), cmd::STORAGE_SYNC_NOTIFY);
    let sn = SyncSource::decode(b[2].body()).unwrap();
    assert_eq!(sn.src_id, "100002");
    assert_eq!(sn.until_timestamp, 1795271076);
    assert_same(&b[2], sn.encode());
    assert!(b[3].body().is_empty());

    let mut beats = 0;
    let mut briefs_seen = false;
    for pair in b[4..].chunks(2) {
        let (req, reply) = (&pair[0], &pair[1]);
        assert!(req.to_tracker && !reply.to_tracker);
        match req.cmd() {
            cmd::STORAGE_BEAT => {
                beats += 1;
                let stats = decode_beat(req.body()).unwrap().expect("348-byte stats");
                assert_eq!(req.body().len(), STAT_BLOCK_LEN);
                assert_same(req, stats.encode());
                if beats == 1 {
                    assert_eq!(stats.counters[STAT_TOTAL_UPLOAD_COUNT], 51018);
                    assert_eq!(stats.get("success_delete_count"), Some(51014));
                    assert_eq!(stats.get("total_download_bytes"), Some(8275733437));
                    assert_eq!(stats.get("success_sync_in_bytes"), Some(8044945078));
                    assert_eq!(stats.get("success_file_write_count"), Some(162155));
                    assert_eq!(stats.counters[STAT_LAST_SOURCE_UPDATE], 1795271983);
                    assert_eq!(stats.counters[STAT_LAST_SYNC_UPDATE], 1795271987);
                }
                if beats == 2 {
                    assert_eq!(stats.connections, [64, 0, 1]);
                }
                let r = ServerListReply::decode(reply.body()).unwrap();
                assert_same(reply, r.encode());
                if let Some(servers) = &r.group_servers {
                    briefs_seen = true;
                    assert_eq!(reply.body().len(), 1 + 3 * BRIEF_LEN);
                    assert_eq!(r.flags(), 5);
                    let leader = r.leader.as_ref().expect("leader brief");
                    assert_eq!((leader.port, leader.id.as_str()), (22122, "127.0.0.1"));
                    assert_eq!(
                        servers[1],
                        StorageBrief {
                            status: 7,
                            port: 23001,
                            id: "100002".into(),
                            ip: "127.0.0.1".into()
                        }
                    );
                }
            }
            cmd::STORAGE_CHANGELOG_REQ => {
                assert!(req.body().is_empty() && reply.body().is_empty());
            }
            cmd::STORAGE_REPORT_DISK_USAGE => {
                let du = decode_disk_usage(req.body()).unwrap();
                assert_eq!(
                    du,
                    vec![PathUsage {
                        total_mb: 258019,
                        free_mb: 81031
                    }]
                );
                assert_same(req, encode_disk_usage(&du));
                let r = ServerListReply::decode(reply.body()).unwrap();
                assert_eq!(r, ServerListReply::default());
                assert_same(reply, r.encode());
            }
            cmd::STORAGE_SYNC_REPORT => {
                let pos = decode_sync_report(req.body()).unwrap();
                assert_eq!(pos.len(), 2);
                assert_eq!(pos[1].src_id, "100002");
                assert_eq!(pos[1].timestamp, 1795272024);
                assert_same(req, encode_sync_report(&pos));
                let r = ServerListReply::decode(reply.body()).unwrap();
                assert_same(reply, r.encode());
            }
            other => panic!("unexpected command {other} in block [6]"),
        }
    }
    assert_eq!(beats, 3);
    assert!(briefs_seen, "block [6] carries a server list");
}

#[test]
fn vector_join_without_sync_source_block_7() {
    let all = blocks();
    let b = block(&all, 7);
    let join = JoinReq::decode(b[0].body()).unwrap();
    assert_eq!(
        (join.storage_port, join.storage_id.as_str()),
        (23001, "100002")
    );
    assert_same(&b[0], join.encode());
    let jr = JoinReply::decode(b[1].body()).unwrap();
    assert_eq!((jr.status, jr.src_id.as_str()), (6, ""));
    assert_same(&b[1], jr.encode());
    let sn = SyncSource::decode(b[2].body()).unwrap();
    assert_eq!((sn.src_id.as_str(), sn.until_timestamp), ("", 0));
    assert_same(&b[2], sn.encode());
    assert_eq!(SyncSource::decode_reply(b[2].body()).unwrap(), None);
    // The rest: beats (possibly empty), changelog requests, disk usage.
    let mut empty_beats = 0;
    for pair in b[4..].chunks(2) {
        let req = &pair[0];
        match req.cmd() {
            cmd::STORAGE_BEAT => {
                let stats = decode_beat(req.body()).unwrap();
                empty_beats += stats.is_none() as usize;
                let again = stats.map(|s| s.encode()).unwrap_or_default();
                assert_same(req, again);
            }
            cmd::STORAGE_REPORT_DISK_USAGE => {
                assert_same(
                    req,
                    encode_disk_usage(&decode_disk_usage(req.body()).unwrap()),
                );
            }
            cmd::STORAGE_CHANGELOG_REQ => assert!(req.body().is_empty()),
            other => panic!("unexpected command {other} in block [7]"),
        }
        let r = ServerListReply::decode(pair[1].body());
        if req.cmd() != cmd::STORAGE_CHANGELOG_REQ {
            assert_same(&pair[1], r.unwrap().encode());
        }
    }
    assert_eq!(empty_beats, 1, "block [7] has one empty BEAT");
}

#[test]
fn vector_list_groups_and_storages_block_8() {
    let all = blocks();
    let b = block(&all, 8);
    assert_eq!(b[0].cmd(), cmd::SERVER_LIST_ALL_GROUPS);
    assert!(b[0].body().is_empty());
    let groups = GroupStat::decode_list(b[1].body()).unwrap();
    assert_eq!(b[1].body().len(), GROUP_STAT_LEN);
    let g = &groups[0];
    assert_eq!(g.group, "group1");
    assert_eq!(
        (g.total_mb, g.free_mb, g.reserved_mb),
        (258019, 81031, 51603)
    );
    assert_eq!(g.storage_count, 2);
    assert_eq!((g.readable_count, g.writable_count), (2, 2));
    assert_eq!((g.store_path_count, g.subdir_count_per_path), (1, 256));
    assert_same(&b[1], GroupStat::encode_list(&groups));

    let req = ListStorageReq::decode(b[2].body()).unwrap();
    assert_eq!(
        (req.group.as_str(), req.storage_id.as_deref()),
        ("group1", None)
    );
    assert_same(&b[2], req.encode());
    let list = StorageStat::decode_list(b[3].body()).unwrap();
    assert_eq!(StorageStat::record_len(16), 487);
    assert_eq!(list.len(), 2);
    let s = &list[0];
    assert_eq!(
        (s.status, s.id.as_str(), s.ip.as_str()),
        (7, "100001", "127.0.0.1")
    );
    assert_eq!(
        (s.src_id.as_str(), s.version.as_str()),
        ("100002", "6.16.1")
    );
    assert_eq!((s.storage_port, s.upload_priority), (23000, 10));
    assert_eq!((s.total_mb, s.free_mb), (258019, 81031));
    assert_eq!(s.stats.counters[STAT_TOTAL_UPLOAD_COUNT], 51018);
    assert_eq!(list[1].storage_port, 23001);
    assert_same(&b[3], StorageStat::encode_list(&list, IPV4_ADDRESS_SIZE));
}

#[test]
fn vector_query_store_one() {
    let all = blocks();
    for (n, port) in [(9, 23000), (21, 23001), (33, 23000)] {
        let b = block(&all, n);
        assert_eq!(b[0].cmd(), cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE);
        assert!(b[0].body().is_empty());
        let t = StoreTarget::decode(b[1].body()).unwrap();
        assert_eq!(b[1].body().len(), 40);
        assert_eq!(t.group, "group1");
        assert_eq!(t.addr.ip, "127.0.0.1");
        assert_eq!((t.addr.port, t.store_path_index), (port, 0));
        assert_same(&b[1], t.encode(IPV4_ADDRESS_SIZE));
    }
}

#[test]
fn vector_query_update_and_fetch_one() {
    let all = blocks();
    for (n, port) in [
        (11, 23000),
        (13, 23000),
        (15, 23000),
        (17, 23000),
        (23, 23001),
        (25, 23001),
        (27, 23000),
        (35, 23000),
        (40, 23000),
    ] {
        let b = block(&all, n);
        let c = b[0].cmd();
        assert!(c == cmd::SERVICE_QUERY_UPDATE || c == cmd::SERVICE_QUERY_FETCH_ONE);
        check_fetch_one(&b[0], &b[1], "127.0.0.1", port);
    }
}

#[test]
fn vector_active_test() {
    let all = blocks();
    let b = block(&all, 19);
    assert_eq!(b[0].cmd(), cmd::ACTIVE_TEST);
    assert_same(&b[0], Vec::new());
    assert_eq!(b[1].cmd(), cmd::RESP);
    assert_same(&b[1], Vec::new());
}

#[test]
fn vector_sync_report_block_39() {
    let all = blocks();
    let b = block(&all, 39);
    let pos = decode_sync_report(b[0].body()).unwrap();
    assert_eq!(
        pos,
        vec![
            SyncPosition {
                src_id: "100001".into(),
                timestamp: 1795272134
            },
            SyncPosition {
                src_id: "100002".into(),
                timestamp: 0
            }
        ]
    );
    assert_same(&b[0], encode_sync_report(&pos));
    assert_eq!(ServerListReply::decode(b[1].body()).unwrap().flags(), 0);
}

#[test]
fn every_tracker_message_in_the_vectors_is_understood() {
    // Each tracker block's requests decode with the codec for their command.
    let all = blocks();
    let tracker_blocks = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
    ];
    let more = [33, 35, 39, 40];
    for n in tracker_blocks.iter().chain(more.iter()) {
        for m in block(&all, *n).iter().filter(|m| m.to_tracker) {
            let body = m.body();
            let ok = match m.cmd() {
                cmd::STORAGE_GET_MY_IP => GetMyIpReq::decode(body).is_ok(),
                cmd::STORAGE_JOIN => JoinReq::decode(body).is_ok(),
                cmd::STORAGE_BEAT => decode_beat(body).is_ok(),
                cmd::STORAGE_REPORT_DISK_USAGE => decode_disk_usage(body).is_ok(),
                cmd::STORAGE_SYNC_REPORT => decode_sync_report(body).is_ok(),
                cmd::STORAGE_SYNC_NOTIFY => SyncSource::decode(body).is_ok(),
                cmd::STORAGE_FETCH_STORAGE_IDS => FetchStorageIdsReq::decode(body).is_ok(),
                cmd::SERVER_LIST_STORAGE => ListStorageReq::decode(body).is_ok(),
                cmd::SERVICE_QUERY_FETCH_ONE | cmd::SERVICE_QUERY_UPDATE => {
                    FileQuery::decode(body).is_ok()
                }
                cmd::QUIT
                | cmd::ACTIVE_TEST
                | cmd::STORAGE_PARAMETER_REQ
                | cmd::STORAGE_CHANGELOG_REQ
                | cmd::SERVER_LIST_ALL_GROUPS
                | cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE => body.is_empty(),
                other => panic!("block [{n}]: no codec for command {other}"),
            };
            assert!(ok, "block [{n}] command {} did not decode", m.cmd());
        }
    }
}

// --- layouts without a captured example: built from PROTOCOL.md section 3 and 5 -----------

#[test]
fn ipv6_sized_replies_are_70_and_69_bytes_and_decode() {
    let t = StoreTarget {
        group: "group1".into(),
        addr: StorageAddr {
            ip: "127.0.0.1".into(),
            port: 23000,
        },
        store_path_index: 1,
    };
    let wire = t.encode(IP_ADDRESS_SIZE);
    assert_eq!(wire.len(), 70);
    assert_eq!(StoreTarget::decode(&wire).unwrap(), t);
    let f = FetchTargets {
        group: "group1".into(),
        addrs: vec![t.addr.clone()],
    };
    assert_eq!(f.encode(IP_ADDRESS_SIZE).len(), 69);
    assert_eq!(FetchTargets::decode(&f.encode(IP_ADDRESS_SIZE)).unwrap(), f);
    let stat = StorageStat {
        ip: "::1".into(),
        ..Default::default()
    };
    let one = StorageStat::encode_list(std::slice::from_ref(&stat), IP_ADDRESS_SIZE);
    assert_eq!(one.len(), 517);
    assert_eq!(StorageStat::decode_list(&one).unwrap(), vec![stat]);
}

#[test]
fn store_all_and_fetch_all_layouts() {
    let addrs: Vec<StorageAddr> = (0..3)
        .map(|i| StorageAddr {
            ip: format!("10.0.0.{i}"),
            port: 23000 + i,
        })
        .collect();
    for ip_size in IP_SIZES {
        let all = StoreTargets {
            group: "g1".into(),
            addrs: addrs.clone(),
            store_path_index: 2,
        };
        let wire = all.encode(ip_size);
        assert_eq!(wire.len(), 16 + 3 * (ip_size - 1 + 8) + 1);
        assert_eq!(*wire.last().unwrap(), 2);
        assert_eq!(StoreTargets::decode(&wire).unwrap(), all);
        let f = FetchTargets {
            group: "g1".into(),
            addrs: addrs.clone(),
        };
        let wire = f.encode(ip_size);
        assert_eq!(wire.len(), 16 + 3 * (ip_size - 1 + 8));
        assert_eq!(FetchTargets::decode(&wire).unwrap(), f);
    }
}

#[test]
fn sync_dest_and_report_status_round_trip() {
    let s = Some(SyncSource {
        src_id: "100002".into(),
        until_timestamp: 1795271076,
    });
    let wire = SyncSource::encode_reply(&s);
    assert_eq!(wire.len(), 24);
    assert_eq!(SyncSource::decode_reply(&wire).unwrap(), s);
    assert_eq!(SyncSource::decode_reply(&[]).unwrap(), None);
    assert!(SyncSource::decode_reply(&[0; 23]).is_err());
    let rs = ReportStatusReq {
        group: "group1".into(),
        brief: StorageBrief {
            status: StorageStatus::Syncing as u8,
            port: 23001,
            id: "100002".into(),
            ip: "127.0.0.1".into(),
        },
    };
    let wire = rs.encode();
    assert_eq!(wire.len(), 16 + BRIEF_LEN);
    assert_eq!(ReportStatusReq::decode(&wire).unwrap(), rs);
    let src = SyncSrcReq {
        group: "group1".into(),
        dest_id: "100002".into(),
    };
    assert_eq!(SyncSrcReq::decode(&src.encode()).unwrap(), src);
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    assert!(JoinReq::decode(&[0; 10]).is_err());
    assert!(GetMyIpReq::decode(b"\0\0\0").is_err());
    assert!(decode_beat(&[0; 347]).is_err());
    assert!(decode_disk_usage(&[]).is_err());
    assert!(decode_disk_usage(&[0; 15]).is_err());
    assert!(decode_sync_report(&[0; 19]).is_err());
    assert!(FileQuery::decode(b"group1").is_err());
    assert!(decode_group(b"bad group name!!").is_err());
    assert!(StoreTarget::decode(&[0; 41]).is_err());
    assert!(FetchTargets::decode(&[0; 16]).is_err());
    assert!(ServerListReply::decode(&[4, 0, 0]).is_err());
    assert!(GroupStat::decode_list(&[0; 112]).is_err());
    assert!(StorageStat::decode_list(&[0; 486]).is_err());
    let mut join = JoinReq::decode(&hex(
            "67726f757031000000000000000000000000000000000059d800000000000000010000000000000100000000000000000a000000006b01a981000000006b01ad42362e31362e3100000000313030303031000000000000000000003132372e302e302e310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000013132372e302e302e313a32323132320a",
        ))
        .unwrap();
    join.trackers.push("x:1".into());
    let mut wire = join.encode();
    // Claim one tracker but list two.
    wire[137..145].copy_from_slice(&1u64.to_be_bytes());
    assert!(JoinReq::decode(&wire).is_err());
}
