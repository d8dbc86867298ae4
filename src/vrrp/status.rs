//! What an instance reports about itself (`fdfs-ha status`, `/metrics`): its state, the reason
//! of its last transition in words, and its counters (adverts sent and received, lower-priority
//! and priority-0 adverts heard, transitions, drops by reason, peers whose settings differ).
//!
//! Counters belong to the instance *name*, not to one run of it: a [`StatusCarry`] (kept by the
//! supervisor's VRRP starter) hands the same record to a restarted instance, so a reload that
//! restarts it (changed interface or VRID) does not zero them.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// At most this many (peer, kind) mismatch records per instance; the oldest goes first. Only
/// authenticated senders get here, but a bound keeps a misconfigured LAN from growing it.
const MISMATCH_RECORDS: usize = 16;

/// One instance's state for `fdfs-ha status`.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    /// `INIT`, `BACKUP`, `MASTER` or `FAULT`.
    pub state: String,
    pub base_priority: u8,
    pub effective_priority: u8,
    /// Primary address of the current Master as last heard (ourselves when Master).
    pub master: Option<IpAddr>,
    pub interface: String,
    pub vips: Vec<String>,
    pub last_transition_unix_ms: u64,
    /// Why the last transition (or in-place reload) happened, in words:
    /// `peer 192.168.3.22 higher priority (110 > 100)`, `reload: priority 100 -> 110`.
    pub last_reason: String,
    /// Dropped adverts by reason (ttl, version, checksum, vrid, auth, advert_interval,
    /// addr_list, ...).
    pub drops: BTreeMap<String, u64>,
    /// A stopping Master still holding its VIPs until its successor speaks.
    pub handing_over: bool,
    /// What the last reload changed in place (`reload: priority 100 -> 110`), if any.
    pub last_reload: Option<String>,
    pub adverts_sent: u64,
    /// Adverts that passed every check (§7.1), from any peer.
    pub adverts_received: u64,
    /// Accepted adverts with a priority below ours (1..ours): a Backup that thinks it is
    /// Master, or a rogue.
    pub lower_priority_adverts: u64,
    /// Accepted adverts with priority 0 (a Master leaving).
    pub priority_zero_received: u64,
    pub transitions: u64,
    /// Authenticated peers whose adverts we drop for a config mismatch, by peer and kind.
    pub peer_mismatches: Vec<PeerMismatch>,
}

/// Adverts from `peer` dropped because `kind` (`advert_int`, `addr_list`) differs from ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerMismatch {
    pub peer: IpAddr,
    pub kind: String,
    pub theirs: String,
    pub ours: String,
    pub count: u64,
    pub last_unix_ms: u64,
}

impl InstanceStatus {
    pub fn new(name: &str, base_priority: u8) -> InstanceStatus {
        InstanceStatus {
            name: name.to_string(),
            state: "INIT".into(),
            base_priority,
            effective_priority: base_priority,
            master: None,
            interface: String::new(),
            vips: Vec::new(),
            last_transition_unix_ms: crate::clock::unix_millis(),
            last_reason: "starting".into(),
            drops: BTreeMap::new(),
            handing_over: false,
            last_reload: None,
            adverts_sent: 0,
            adverts_received: 0,
            lower_priority_adverts: 0,
            priority_zero_received: 0,
            transitions: 0,
            peer_mismatches: Vec::new(),
        }
    }

    /// A new run of the instance: the state starts over, the counters stay.
    pub fn restart(&mut self, base_priority: u8) {
        self.state = "INIT".into();
        self.base_priority = base_priority;
        self.effective_priority = base_priority;
        self.master = None;
        self.handing_over = false;
        self.last_transition_unix_ms = crate::clock::unix_millis();
        self.last_reason = "starting (restarted)".into();
    }

    /// Counts a dropped advert of `kind` from `peer`; returns the record.
    pub fn record_mismatch(
        &mut self,
        peer: impl Into<IpAddr>,
        kind: &str,
        theirs: String,
        ours: String,
        now_ms: u64,
    ) -> &PeerMismatch {
        let peer = peer.into();
        let i = match self
            .peer_mismatches
            .iter()
            .position(|m| m.peer == peer && m.kind == kind)
        {
            Some(i) => i,
            None => {
                if self.peer_mismatches.len() >= MISMATCH_RECORDS {
                    if let Some(oldest) = self
                        .peer_mismatches
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, m)| m.last_unix_ms)
                        .map(|(i, _)| i)
                    {
                        self.peer_mismatches.remove(oldest);
                    }
                }
                self.peer_mismatches.push(PeerMismatch {
                    peer,
                    kind: kind.to_string(),
                    theirs: String::new(),
                    ours: String::new(),
                    count: 0,
                    last_unix_ms: 0,
                });
                self.peer_mismatches.len() - 1
            }
        };
        let m = &mut self.peer_mismatches[i];
        m.theirs = theirs;
        m.ours = ours;
        m.count += 1;
        m.last_unix_ms = now_ms;
        m
    }
}

/// Instance status records by name, outliving the runs of an instance (see the module doc).
#[derive(Clone, Default)]
pub struct StatusCarry(Arc<Mutex<HashMap<String, Arc<Mutex<InstanceStatus>>>>>);

impl StatusCarry {
    /// The record for `name`: the earlier run's (state reset, counters kept) or a new one.
    pub fn take(&self, name: &str, base_priority: u8) -> Arc<Mutex<InstanceStatus>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let rec = map
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(InstanceStatus::new(name, base_priority))))
            .clone();
        lock(&rec).restart(base_priority);
        rec
    }

    /// Forgets instances no longer configured (called with the names that are).
    pub fn retain(&self, names: &[String]) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| names.contains(k));
    }
}

pub fn lock(s: &Mutex<InstanceStatus>) -> std::sync::MutexGuard<'_, InstanceStatus> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 22);

    #[test]
    fn counters_outlive_a_restart_of_the_instance() {
        let carry = StatusCarry::default();
        let a = carry.take("VI_1", 100);
        {
            let mut s = lock(&a);
            s.adverts_received = 7;
            s.transitions = 2;
            s.state = "MASTER".into();
            *s.drops.entry("ttl".into()).or_insert(0) += 3;
        }
        let b = carry.take("VI_1", 110);
        let s = lock(&b);
        assert_eq!((s.adverts_received, s.transitions), (7, 2));
        assert_eq!(s.drops["ttl"], 3);
        assert_eq!(s.state, "INIT");
        assert_eq!(s.base_priority, 110);
        assert_eq!(lock(&carry.take("VI_2", 90)).adverts_received, 0);
        carry.retain(&["VI_2".to_string()]);
        assert_eq!(lock(&carry.take("VI_1", 100)).adverts_received, 0);
    }

    #[test]
    fn mismatches_are_kept_by_peer_and_kind_and_bounded() {
        let mut s = InstanceStatus::new("VI_1", 100);
        s.record_mismatch(PEER, "advert_int", "2s".into(), "1s".into(), 1);
        let m = s.record_mismatch(PEER, "advert_int", "2s".into(), "1s".into(), 2);
        assert_eq!(m.count, 2);
        s.record_mismatch(PEER, "addr_list", "a".into(), "b".into(), 3);
        assert_eq!(s.peer_mismatches.len(), 2);
        for i in 0..40u8 {
            let p = Ipv4Addr::new(10, 0, 0, i);
            s.record_mismatch(
                p,
                "addr_list",
                String::new(),
                String::new(),
                10 + u64::from(i),
            );
        }
        assert_eq!(s.peer_mismatches.len(), MISMATCH_RECORDS);
        assert!(s
            .peer_mismatches
            .iter()
            .any(|m| m.peer == Ipv4Addr::new(10, 0, 0, 39)));
    }
}
