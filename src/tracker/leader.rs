//! Leader election among trackers, as C FastDFS 6.16.1 trackers run it (tracker-pair.txt,
//! phases A-D; issue 17, acceptance 1). Pure: answers and failures come in, decisions go out;
//! `leader_link` does the I/O.
//!
//! ```text
//!  JOIN names the trackers ──learn──> peers (and who we are: "ip:port")
//!  Unknown ──round(GET_STATUS answers)──> a peer says if_leader ─────> Follower(peer)
//!                                         we rank first ─────────────> Leader (NOTIFY 66 + COMMIT 67 to every peer)
//!                                         another non-leader first ──> Unknown (wait to be told)
//!  any ──COMMIT_NEXT_LEADER(addr)──> Leader if addr is us, else Follower(addr)
//!  Follower ──3 failed pings in a row──> Unknown (next round: the peers still answering)
//! ```
//! Ranking (from the 17-byte GET_STATUS answers): a tracker that says it leads wins; then the
//! longer running_time (whole 300 s steps), the shorter restart_interval, the larger IP string,
//! the larger port. With one tracker only (storages name no other), it leads at once.
//!
//! Only the leader tells storages anything in BEAT / DISK_USAGE / SYNC_REPORT answers (the
//! leader brief and the group's storage list); followers answer a single flags byte 0.

use crate::proto::tracker_peer::TrackerStatus;
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// C rounds running_time and restart_interval down to this step.
pub const STATUS_STEP: i64 = 300;
/// Failed pings in a row after which the leader is given up (capture: the third failure).
pub const MAX_LEADER_FAILS: u32 = 3;
/// Most trackers a storage can name (C's FDFS_MAX_TRACKERS): bounds what JOINs can add.
pub const MAX_TRACKERS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No leader known: an election round is due.
    Unknown,
    Leader,
    /// Following this "ip:port".
    Follower(String),
}

/// What to do after an election round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// We won: announce ourselves to these trackers (66 then 67 with our "ip:port").
    Lead { notify: Vec<String>, me: String },
    /// A peer already leads: join it (58) and ping it (65) every second.
    Follow(String),
    /// Another tracker ranks first but does not lead yet: wait for its announcement.
    Wait,
}

/// One tracker's place in the ranking.
#[derive(Debug, Clone)]
struct Candidate {
    addr: String,
    status: TrackerStatus,
}

fn split_addr(addr: &str) -> (&str, u16) {
    match addr.rsplit_once(':') {
        Some((ip, port)) => (ip, port.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

/// `Greater` when `a` should lead rather than `b`.
fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    let (ip_a, port_a) = split_addr(&a.addr);
    let (ip_b, port_b) = split_addr(&b.addr);
    a.status
        .if_leader
        .cmp(&b.status.if_leader)
        .then(a.status.running_time.cmp(&b.status.running_time))
        .then(b.status.restart_interval.cmp(&a.status.restart_interval))
        .then(ip_a.as_bytes().cmp(ip_b.as_bytes()))
        .then(port_a.cmp(&port_b))
}

/// The "ip:port" C's ranking puts first among these GET_STATUS answers (None if empty).
pub fn best<'a>(answers: impl IntoIterator<Item = (&'a str, TrackerStatus)>) -> Option<&'a str> {
    let mut best: Option<(&str, Candidate)> = None;
    for (addr, status) in answers {
        let c = Candidate {
            addr: addr.to_string(),
            status,
        };
        if best
            .as_ref()
            .is_none_or(|(_, b)| rank(&c, b) == Ordering::Greater)
        {
            best = Some((addr, c));
        }
    }
    best.map(|(a, _)| a)
}

#[derive(Debug)]
pub struct Election {
    /// This tracker's "ip:port" as storages name it (learned from JOINs).
    me: Option<String>,
    /// The other trackers storages named.
    peers: BTreeSet<String>,
    role: Role,
    start_unix: i64,
    restart_interval: i64,
    leader_fails: u32,
    /// Bumped on every change of leader (a connection that saw an older count gets the
    /// leader brief in its next answer).
    pub leader_changes: u64,
}

impl Election {
    /// `restart_interval`: seconds this tracker was down before this start (0 if unknown).
    pub fn new(start_unix: i64, restart_interval: i64) -> Self {
        Election {
            me: None,
            peers: BTreeSet::new(),
            role: Role::Unknown,
            start_unix,
            restart_interval: restart_interval.max(0) / STATUS_STEP * STATUS_STEP,
            leader_fails: 0,
            leader_changes: 0,
        }
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// When this tracker started (its up_time in the monitoring lists).
    pub fn start_unix(&self) -> i64 {
        self.start_unix
    }

    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    pub fn peers(&self) -> Vec<String> {
        self.peers.iter().cloned().collect()
    }

    /// The leader's "ip:port", if one is known.
    pub fn leader(&self) -> Option<&str> {
        match &self.role {
            Role::Leader => self.me.as_deref(),
            Role::Follower(a) => Some(a),
            Role::Unknown => None,
        }
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            if role != Role::Unknown {
                self.leader_changes += 1;
            }
            tracing::info!(?role, "tracker leader role");
            self.role = role;
        }
        self.leader_fails = 0;
    }

    /// A storage JOINed through `current_tracker_ip` naming `trackers` ("ip:port" each).
    /// `listen_port` (0: any) tells our own entry apart when several share the address.
    pub fn learn(&mut self, current_tracker_ip: &str, listen_port: u16, trackers: &[String]) {
        // A storage that names one tracker only reached it: that is us (whatever address).
        let alone = trackers.len() <= 1;
        for t in trackers {
            let (ip, port) = split_addr(t);
            let ours =
                alone || (ip == current_tracker_ip && (listen_port == 0 || port == listen_port));
            if ours && self.me.is_none() {
                self.me = Some(t.clone());
            } else if !ours && self.peers.len() < MAX_TRACKERS && Some(t) != self.me.as_ref() {
                self.peers.insert(t.clone());
            }
        }
        if self.me.is_none() && trackers.is_empty() {
            self.me = Some(if listen_port != 0 {
                format!("{current_tracker_ip}:{listen_port}")
            } else {
                current_tracker_ip.to_string()
            });
        }
        if self.peers.is_empty() && self.me.is_some() && self.role == Role::Unknown {
            self.set_role(Role::Leader);
        }
    }

    /// The GET_STATUS answer about ourselves.
    pub fn status(&self, now_unix: i64) -> TrackerStatus {
        TrackerStatus {
            if_leader: self.is_leader(),
            running_time: (now_unix - self.start_unix).max(0) / STATUS_STEP * STATUS_STEP,
            restart_interval: self.restart_interval,
        }
    }

    /// One election round: every peer's GET_STATUS answer (None: unreachable or refused).
    pub fn round(
        &mut self,
        now_unix: i64,
        answers: &[(String, Option<TrackerStatus>)],
    ) -> Decision {
        if self.role != Role::Unknown {
            return match &self.role {
                Role::Follower(a) => Decision::Follow(a.clone()),
                _ => Decision::Wait,
            };
        }
        // Without knowing our own address we cannot announce ourselves: we only follow.
        let mut best = self.me.clone().map(|me| Candidate {
            addr: me,
            status: self.status(now_unix),
        });
        let mut best_is_me = best.is_some();
        for (addr, st) in answers {
            let Some(status) = st else { continue };
            let c = Candidate {
                addr: addr.clone(),
                status: *status,
            };
            if best
                .as_ref()
                .is_none_or(|b| rank(&c, b) == Ordering::Greater)
            {
                best = Some(c);
                best_is_me = false;
            }
        }
        let Some(best) = best else {
            return Decision::Wait;
        };
        if best_is_me {
            self.set_role(Role::Leader);
            Decision::Lead {
                notify: self.peers(),
                me: best.addr,
            }
        } else if best.status.if_leader {
            self.set_role(Role::Follower(best.addr.clone()));
            Decision::Follow(best.addr)
        } else {
            Decision::Wait
        }
    }

    /// COMMIT_NEXT_LEADER from the winner of an election.
    pub fn committed(&mut self, addr: &str) {
        if self.me.as_deref() == Some(addr) {
            self.set_role(Role::Leader);
        } else {
            self.set_role(Role::Follower(addr.to_string()));
        }
    }

    /// A ping to the leader (or the connection for it) succeeded or failed.
    pub fn leader_ping(&mut self, ok: bool) {
        if ok {
            self.leader_fails = 0;
            return;
        }
        self.leader_fails += 1;
        if self.leader_fails >= MAX_LEADER_FAILS && matches!(self.role, Role::Follower(_)) {
            tracing::warn!(leader = ?self.leader(), "tracker leader lost");
            self.role = Role::Unknown;
            self.leader_fails = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(if_leader: bool, running: i64, restart: i64) -> Option<TrackerStatus> {
        Some(TrackerStatus {
            if_leader,
            running_time: running,
            restart_interval: restart,
        })
    }

    fn two(me: &str) -> Election {
        let mut e = Election::new(1000, 0);
        let ip = me.split(':').next().unwrap_or_default().to_string();
        e.learn(
            &ip,
            22122,
            &["127.0.0.21:22122".into(), "127.0.0.22:22122".into()],
        );
        e
    }

    /// Phase A: equal numbers, the larger address wins; the loser waits for 66/67.
    #[test]
    fn equal_trackers_elect_the_larger_address() {
        let mut t2 = two("127.0.0.22:22122");
        assert_eq!(t2.me(), Some("127.0.0.22:22122"));
        let d = t2.round(1002, &[("127.0.0.21:22122".into(), st(false, 0, 0))]);
        assert_eq!(
            d,
            Decision::Lead {
                notify: vec!["127.0.0.21:22122".into()],
                me: "127.0.0.22:22122".into()
            }
        );
        assert!(t2.status(1002).if_leader);
        let mut t1 = two("127.0.0.21:22122");
        assert_eq!(
            t1.round(1002, &[("127.0.0.22:22122".into(), st(false, 0, 0))]),
            Decision::Wait
        );
        assert!(!t1.status(1002).if_leader);
        let before = t1.leader_changes;
        t1.committed("127.0.0.22:22122");
        assert_eq!(t1.leader(), Some("127.0.0.22:22122"));
        assert!(t1.leader_changes > before);
    }

    /// Phases B-D: a restarted tracker follows the one that says it leads; a leader that
    /// stops answering is given up after three failures and the survivor leads.
    #[test]
    fn follow_the_leader_then_take_over_when_it_is_gone() {
        let mut t1 = two("127.0.0.21:22122");
        assert_eq!(
            t1.round(1000, &[("127.0.0.22:22122".into(), st(true, 0, 0))]),
            Decision::Follow("127.0.0.22:22122".into())
        );
        t1.leader_ping(false);
        t1.leader_ping(true);
        t1.leader_ping(false);
        t1.leader_ping(false);
        assert_eq!(t1.role(), &Role::Follower("127.0.0.22:22122".into()));
        t1.leader_ping(false);
        assert_eq!(t1.role(), &Role::Unknown);
        assert!(matches!(
            t1.round(1100, &[("127.0.0.22:22122".into(), None)]),
            Decision::Lead { .. }
        ));
        // Later rounds keep the role.
        assert!(matches!(
            t1.round(1200, &[("127.0.0.22:22122".into(), st(false, 0, 0))]),
            Decision::Wait
        ));
        assert!(t1.is_leader());
    }

    #[test]
    fn ranking_order() {
        let mut young = two("127.0.0.22:22122");
        // The peer has run 300 s longer: it wins despite the smaller address.
        assert_eq!(
            young.round(1000, &[("127.0.0.21:22122".into(), st(false, 300, 0))]),
            Decision::Wait
        );
        // A shorter restart_interval wins over ours.
        let mut restarted = Election::new(1000, 900);
        restarted.learn(
            "127.0.0.22",
            0,
            &["127.0.0.22:22122".into(), "127.0.0.21:22122".into()],
        );
        assert_eq!(restarted.status(1000).restart_interval, 900);
        assert_eq!(
            restarted.round(1000, &[("127.0.0.21:22122".into(), st(false, 0, 0))]),
            Decision::Wait
        );
    }

    #[test]
    fn a_lone_tracker_leads_at_once_and_joins_cannot_grow_the_peer_set() {
        let mut e = Election::new(0, 0);
        e.learn("10.0.0.1", 22122, &["10.0.0.1:22122".into()]);
        assert!(e.is_leader());
        let mut e = Election::new(0, 0);
        e.learn("10.0.0.1", 22122, &[]);
        assert_eq!(e.me(), Some("10.0.0.1:22122"));
        assert!(e.is_leader());
        let mut e = Election::new(0, 0);
        for i in 0..100 {
            e.learn(
                "10.0.0.1",
                22122,
                &["10.0.0.1:22122".into(), format!("10.0.1.{i}:22122")],
            );
        }
        assert_eq!(e.peers().len(), MAX_TRACKERS);
    }
}
