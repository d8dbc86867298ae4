//! Answers to C FastDFS trackers (issue 17): GET_STATUS (64), the system-file copy (61/63/62),
//! JOIN_LEADER (58), PING_LEADER (65) and the leader announcement (66/67), as a C 6.16.1
//! tracker answers them (tracker-pair.txt).
//!
//! An fdfs-ha tracker stands in C's election like a C tracker (`leader`: it reports its real
//! running_time and restart_interval, can win and lead, or follows the winner announced with
//! 66/67), among C trackers and among fdfs-ha trackers alike. A C tracker that starts empty copies
//! the cluster view from us as C-format system files (storage_groups_new.dat,
//! storage_servers_new.dat, storage_sync_timestamp.dat, storage_changelog.dat; formats in
//! tests/vectors/c-cluster/store-layout/LAYOUT.md), before it accepts any storage JOIN.
//!
//! Pure: the cluster view and the clock come in, (status, body) goes out.

use super::cluster::{Cluster, Errno};
use super::leader::Election;
use crate::proto::cmd::errno;
use crate::proto::tracker::{
    format_ip_port, split_ip_port, ServerListReply, StorageBrief, StorageStats, TrackerClusterStat,
    TrackerFilter,
};
use crate::proto::tracker_peer as tp;
use foldhash::{HashMap, HashMapExt};
use std::collections::HashSet;
use std::fmt::Write;

/// Largest GET_ONE_SYS_FILE chunk (C sends a file in pieces no larger than its buffer).
const SYS_FILE_CHUNK: usize = 256 * 1024;

/// Bounds the set of peer connections that got their first ping answer (and that joined).
const MAX_PINGED: usize = 256;

/// Bounds the followers remembered (C knows at most 16 trackers).
const MAX_FOLLOWERS: usize = 2 * super::leader::MAX_TRACKERS;

/// A follower is active while its last ping is at most this old (C: 3 s).
const ACTIVE_PING_AGE: i64 = 3;

/// What a tracker told the leader of itself: JOIN_LEADER's up_time and version, PING_LEADER's
/// connection counters and when it last pinged. SERVER_TRACKER_CLUSTER_STAT lists these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerInfo {
    pub up_time: i64,
    pub version: String,
    /// alloc_count, current_count, max_count.
    pub connections: [u32; 3],
    pub last_heartbeat: i64,
}

/// What this tracker knows about the trackers around it.
#[derive(Debug)]
pub struct Peers {
    /// Who leads, and whether it is us.
    pub election: Election,
    /// Announced by NOTIFY_NEXT_LEADER, not committed yet.
    pending_leader: Option<String>,
    /// Connections whose first PING_LEADER got the group list.
    pinged: HashSet<u64>,
    /// Per connection that sent JOIN_LEADER: the follower's "ip:port".
    joined: HashMap<u64, String>,
    /// Per follower "ip:port" (C's format): what it told us.
    followers: HashMap<String, TrackerInfo>,
    /// Per group, per storage key: the group's list version it was last sent. Per storage, not
    /// per connection, as C keeps it: a storage that reconnects is sent the list again only
    /// when the list changed. Bounded by the storages the view holds.
    pushed: HashMap<String, HashMap<String, u64>>,
    /// Set at a start without data (or after more than 600 s down): storage JOINs wait until
    /// the other trackers' system files were copied (`sys_files`), as in C.
    pub sys_files_needed: bool,
}

/// The BEAT counters in the order storage_servers_new.dat lists them (no modify/truncate).
const SERVER_FILE_COUNTERS: [&str; 36] = [
    "total_upload_count",
    "success_upload_count",
    "total_append_count",
    "success_append_count",
    "total_set_meta_count",
    "success_set_meta_count",
    "total_delete_count",
    "success_delete_count",
    "total_download_count",
    "success_download_count",
    "total_get_meta_count",
    "success_get_meta_count",
    "total_create_link_count",
    "success_create_link_count",
    "total_delete_link_count",
    "success_delete_link_count",
    "total_upload_bytes",
    "success_upload_bytes",
    "total_append_bytes",
    "success_append_bytes",
    "total_download_bytes",
    "success_download_bytes",
    "total_sync_in_bytes",
    "success_sync_in_bytes",
    "total_sync_out_bytes",
    "success_sync_out_bytes",
    "total_file_open_count",
    "success_file_open_count",
    "total_file_read_count",
    "success_file_read_count",
    "total_file_write_count",
    "success_file_write_count",
    "last_source_update",
    "last_sync_update",
    "last_synced_timestamp",
    "last_heart_beat_time",
];

fn stat(stats: &StorageStats, name: &str) -> i64 {
    stats.get(name).unwrap_or(0)
}

/// The four system files a C tracker keeps, written from our view (index as in 63).
pub fn system_files(cluster: &Cluster) -> [String; 4] {
    let mut groups = format!("[Global]\n\tgroup_count={}\n\n", cluster.groups.len());
    let mut servers = String::new();
    let mut sync = String::new();
    let mut n_storage = 0;
    for (gi, g) in cluster.groups.values().enumerate() {
        let first = g.storages.values().next();
        let _ = write!(
            groups,
            "# group: {name}\n[Group{idx:03}]\n\tgroup_name={name}\n\tstorage_port={port}\n\
             \tstore_path_count={spc}\n\tsubdir_count_per_path={sub}\n\
             \tcurrent_trunk_file_id=0\n\ttrunk_server=\n\tlast_trunk_server=\n\n",
            name = g.name,
            idx = gi + 1,
            port = first.map_or(0, |s| s.port),
            spc = first.map_or(0, |s| s.store_path_count),
            sub = first.map_or(0, |s| s.subdir_count_per_path),
        );
        for s in g.storages.values() {
            n_storage += 1;
            let (src, until) = s.sync_src.as_ref().map_or((String::new(), 0), |x| {
                (x.src_id.clone(), x.until_timestamp)
            });
            let _ = write!(
                servers,
                "# storage: {ip}:{port}\n[Storage{idx:03}]\n\tgroup_name={group}\n\tip_addr={ip}\n\
                 \tstatus={status}\n\tversion={version}\n\tjoin_time={join}\n\tstorage_port={port}\n\
                 \tsync_src_server={src}\n\tsync_until_timestamp={until}\n\ttotal_mb={total}\n\
                 \tfree_mb={free}\n\tchangelog_offset=0\n\tstore_path_count={spc}\n\
                 \tsubdir_count_per_path={sub}\n\tupload_priority={prio}\n",
                ip = s.ip,
                port = s.port,
                idx = n_storage,
                group = g.name,
                status = s.status as u8,
                version = s.version,
                join = s.join_time,
                total = s.paths.iter().map(|p| p.total_mb).sum::<u64>(),
                free = s.paths.iter().map(|p| p.free_mb).sum::<u64>(),
                spc = s.store_path_count,
                sub = s.subdir_count_per_path,
                prio = s.upload_priority,
            );
            for name in SERVER_FILE_COUNTERS {
                let _ = writeln!(servers, "\t{name}={}", stat(&s.stats, name));
            }
            servers.push('\n');
        }
        // One row per source storage: what every member reported for it (0 on the diagonal).
        for src in g.storages.values() {
            let _ = write!(sync, "{},{}", g.name, src.id);
            for dst in g.storages.values() {
                let ts = if dst.key == src.key {
                    0
                } else {
                    dst.synced_from.get(&src.id).copied().unwrap_or(0)
                };
                let _ = write!(sync, ",{ts}");
            }
            sync.push('\n');
        }
    }
    let _ = write!(servers, "\n[Global]\n\tstorage_count={n_storage}\n");
    [groups, servers, sync, String::new()]
}

impl Peers {
    /// `start_unix`: when this tracker started; `restart_interval`: how long it was down.
    pub fn new(start_unix: i64, restart_interval: i64) -> Self {
        Peers {
            election: Election::new(start_unix, restart_interval),
            pending_leader: None,
            pinged: HashSet::new(),
            joined: HashMap::new(),
            followers: HashMap::new(),
            pushed: HashMap::new(),
            sys_files_needed: false,
        }
    }

    /// Whether the storage's list must be sent (the group's list changed since it was last
    /// sent to that storage); records it as sent.
    fn push_list(&mut self, group: &str, key: &str, version: u64) -> bool {
        // Looked up without allocating: this runs on every beat of every storage.
        if self.pushed.get(group).and_then(|g| g.get(key)) == Some(&version) {
            return false;
        }
        self.pushed
            .entry(group.to_string())
            .or_default()
            .insert(key.to_string(), version);
        true
    }

    /// The answer to BEAT / DISK_USAGE / SYNC_REPORT, as C gives it: a follower (or a tracker
    /// that knows no leader yet) says nothing (flags 0); the leader sends its own brief to a
    /// connection whose `leader_seen` is old, then the group's list to a storage whose last
    /// list is out of date (tracker-pair.txt #95, #148; storage-join.txt #67).
    pub fn report_answer(
        &mut self,
        cluster: &Cluster,
        leader_seen: &mut u64,
        group: &str,
        key: &str,
    ) -> Vec<u8> {
        let mut reply = ServerListReply::default();
        if !self.election.is_leader() {
            return reply.encode();
        }
        if *leader_seen != self.election.leader_changes {
            *leader_seen = self.election.leader_changes;
            let me = self.election.me().unwrap_or_default();
            let (ip, port) = me.rsplit_once(':').unwrap_or((me, "0"));
            reply.leader = Some(StorageBrief {
                status: 0,
                port: port.parse().unwrap_or(0),
                id: ip.to_string(),
                ip: ip.to_string(),
            });
        }
        if let Some(g) = cluster.groups.get(group) {
            if self.push_list(group, key, g.version) {
                reply.group_servers = Some(g.briefs());
            }
        }
        reply.encode()
    }

    /// Whether `command` is a tracker-to-tracker command answered here.
    pub fn handles(command: u8) -> bool {
        matches!(command, tp::TRACKER_JOIN_LEADER | 61..=67)
    }

    /// The connection closed.
    pub fn disconnected(&mut self, conn_id: u64) {
        self.pinged.remove(&conn_id);
        self.joined.remove(&conn_id);
    }

    /// JOIN_LEADER (up_time 8 | version 8 | port 8) from `peer_ip`: remembers who is on
    /// this connection and what it said. Other lengths are not recorded.
    fn joined_leader(&mut self, conn_id: u64, peer_ip: &str, body: &[u8]) {
        let Ok(b) = <&[u8; 24]>::try_from(body) else {
            return;
        };
        let int = |r: &[u8]| i64::from_be_bytes(r.try_into().unwrap_or([0; 8]));
        let port = u16::try_from(int(&b[16..])).unwrap_or(0);
        let addr = format_ip_port(peer_ip, port);
        if !self.followers.contains_key(&addr) && self.followers.len() >= MAX_FOLLOWERS {
            return;
        }
        let info = self.followers.entry(addr.clone()).or_default();
        info.up_time = int(&b[..8]);
        info.version = String::from_utf8_lossy(crate::proto::fields::fixed_str(&b[8..16])).into();
        if self.joined.len() >= MAX_PINGED {
            self.joined.clear();
        }
        self.joined.insert(conn_id, addr);
    }

    /// A PING_LEADER answered: the joined follower's counters and heartbeat time.
    fn pinged_by(&mut self, conn_id: u64, body: &[u8], now_unix: i64) {
        let Some(info) = self
            .joined
            .get(&conn_id)
            .and_then(|a| self.followers.get_mut(a))
        else {
            return;
        };
        if let Ok(b) = <&[u8; 12]>::try_from(body) {
            for (i, c) in info.connections.iter_mut().enumerate() {
                *c = u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
            }
        }
        info.last_heartbeat = now_unix;
    }

    /// SERVER_TRACKER_CLUSTER_STAT's list, None unless we lead. Every tracker we know, by
    /// address (IP, then port); `own` describes us, the leader (always active).
    pub fn tracker_stats(
        &self,
        own: &TrackerInfo,
        filter: &TrackerFilter,
        now_unix: i64,
    ) -> Option<Vec<TrackerClusterStat>> {
        let me = self.election.me().filter(|_| self.election.is_leader())?;
        let mut all: Vec<(String, u16, bool)> = std::iter::once(me.to_string())
            .chain(self.election.peers())
            .filter_map(|a| {
                let (ip, port) = split_ip_port(&a)?;
                Some((ip.to_string(), port, a == me))
            })
            .collect();
        // By address; our own entry first among equal addresses, so dedup keeps it.
        all.sort_by(|a, b| (&a.0, a.1, !a.2).cmp(&(&b.0, b.1, !b.2)));
        all.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        let list = all.into_iter().filter_map(|(ip, port, is_me)| {
            let host = format_ip_port(&ip, port);
            let info = if is_me {
                own.clone()
            } else {
                self.followers.get(&host).cloned().unwrap_or_default()
            };
            let is_active = is_me || now_unix - info.last_heartbeat <= ACTIVE_PING_AGE;
            filter
                .admits(is_me, is_active)
                .then_some(TrackerClusterStat {
                    host,
                    is_leader: is_me,
                    is_active,
                    connections: info.connections,
                    version: info.version,
                    up_time: info.up_time,
                    last_heartbeat_time: info.last_heartbeat,
                })
        });
        Some(list.collect())
    }

    /// Answers one tracker-to-tracker request. `started_unix` is when this tracker started.
    pub fn handle(
        &mut self,
        cluster: &Cluster,
        conn_id: u64,
        peer_ip: &str,
        command: u8,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Vec<u8>, Errno> {
        match command {
            tp::TRACKER_GET_STATUS => {
                if !body.is_empty() {
                    return Err(errno::EINVAL);
                }
                // Like C: a tracker without any group says it has nothing to offer.
                if cluster.groups.is_empty() {
                    return Err(errno::ENOENT);
                }
                Ok(self.election.status(now_unix).encode())
            }
            tp::TRACKER_GET_SYS_FILES_START | tp::TRACKER_GET_SYS_FILES_END => {
                if !body.is_empty() {
                    return Err(errno::EINVAL);
                }
                Ok(Vec::new())
            }
            tp::TRACKER_GET_ONE_SYS_FILE => {
                let (index, offset) = tp::decode_sys_file_req(body).map_err(|_| errno::EINVAL)?;
                let files = system_files(cluster);
                Ok(tp::encode_sys_file(
                    files[index].as_bytes(),
                    offset,
                    SYS_FILE_CHUNK,
                ))
            }
            tp::TRACKER_JOIN_LEADER => {
                self.joined_leader(conn_id, peer_ip, body);
                Ok(Vec::new())
            }
            // A follower pinged as if it led (two trackers that announced themselves to each
            // other at once follow each other): refused as C does, so the pinger gives it up
            // after three failures and a new round finds the real leader.
            tp::TRACKER_PING_LEADER if !self.election.is_leader() => Err(errno::EOPNOTSUPP),
            tp::TRACKER_PING_LEADER => {
                if self.pinged.len() >= MAX_PINGED {
                    self.pinged.clear();
                }
                self.pinged_by(conn_id, body, now_unix);
                if self.pinged.insert(conn_id) {
                    Ok(tp::encode_ping_groups(
                        cluster.groups.keys().map(|g| (g.as_str(), "")),
                    ))
                } else {
                    Ok(Vec::new())
                }
            }
            tp::TRACKER_NOTIFY_NEXT_LEADER | tp::TRACKER_COMMIT_NEXT_LEADER => {
                let addr = std::str::from_utf8(body)
                    .ok()
                    .map(|s| s.trim_end_matches('\0').trim().to_string())
                    .filter(|s| !s.is_empty() && s.len() <= 64)
                    .ok_or(errno::EINVAL)?;
                if command == tp::TRACKER_NOTIFY_NEXT_LEADER {
                    self.pending_leader = Some(addr);
                } else {
                    if self.pending_leader.as_deref() != Some(addr.as_str()) {
                        tracing::info!(leader = %addr, "tracker leader committed without notify");
                    }
                    tracing::info!(leader = %addr, "trackers elected a leader");
                    self.pending_leader = None;
                    self.election.committed(&addr);
                }
                Ok(Vec::new())
            }
            _ => Err(errno::EINVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tracker_says_enoent_and_follows_the_announced_leader() {
        let mut p = Peers::new(0, 0);
        let c = Cluster::new();
        assert_eq!(
            p.handle(&c, 1, "127.0.0.9", tp::TRACKER_GET_STATUS, &[], 0),
            Err(errno::ENOENT)
        );
        let files = system_files(&c);
        assert_eq!(files[0], "[Global]\n\tgroup_count=0\n\n");
        assert_eq!(files[1], "\n[Global]\n\tstorage_count=0\n");
        assert_eq!(
            p.handle(
                &c,
                1,
                "127.0.0.9",
                tp::TRACKER_GET_ONE_SYS_FILE,
                &[3, 0, 0, 0, 0, 0, 0, 0, 0],
                0
            ),
            Ok(vec![0; 8])
        );
        assert_eq!(
            p.handle(
                &c,
                1,
                "127.0.0.9",
                tp::TRACKER_NOTIFY_NEXT_LEADER,
                b"127.0.0.22:22122",
                0
            ),
            Ok(vec![])
        );
        assert_eq!(
            p.handle(
                &c,
                1,
                "127.0.0.9",
                tp::TRACKER_COMMIT_NEXT_LEADER,
                b"127.0.0.22:22122",
                0
            ),
            Ok(vec![])
        );
        assert_eq!(p.election.leader(), Some("127.0.0.22:22122"));
        // Only the leader takes pings (C: "i am not the leader!", EOPNOTSUPP).
        assert_eq!(
            p.handle(&c, 1, "127.0.0.9", tp::TRACKER_PING_LEADER, &[0; 12], 0),
            Err(errno::EOPNOTSUPP)
        );
        assert_eq!(
            p.handle(&c, 1, "127.0.0.9", tp::TRACKER_GET_STATUS, &[1], 0),
            Err(errno::EINVAL)
        );
    }
}
