//! Choosing a storage inside a group: nginx's smooth weighted round-robin with passive health
//! (`max_fails` failures within `fail_timeout` take a peer out for `fail_timeout`).
//!
//! Pure: candidates, what was already tried for this request and `now` in; a choice out. Peer
//! state is keyed by address, so it survives cluster-view refreshes that keep the peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
struct PeerState {
    current_weight: i64,
    fails: u32,
    /// Time of the last failure.
    checked: Option<Instant>,
}

#[derive(Debug)]
pub struct Balancer {
    max_fails: u32,
    fail_timeout: Duration,
    peers: HashMap<SocketAddr, PeerState>,
}

impl Balancer {
    pub fn new(max_fails: u32, fail_timeout: Duration) -> Self {
        Balancer {
            max_fails,
            fail_timeout,
            peers: HashMap::new(),
        }
    }

    fn available(&self, addr: &SocketAddr, now: Instant) -> bool {
        let Some(p) = self.peers.get(addr) else {
            return true;
        };
        // max_fails = 0 disables accounting (nginx).
        if self.max_fails == 0 || p.fails < self.max_fails {
            return true;
        }
        p.checked
            .is_none_or(|c| now.saturating_duration_since(c) > self.fail_timeout)
    }

    /// Picks the next peer among `candidates` (address, weight) not in `tried`. `None` when every
    /// untried peer is down; then, as nginx does, the failure counts of `candidates` are reset so
    /// the next request probes them again instead of failing forever.
    pub fn pick(
        &mut self,
        candidates: &[(SocketAddr, u32)],
        tried: &[SocketAddr],
        now: Instant,
    ) -> Option<SocketAddr> {
        let mut total: i64 = 0;
        let mut best: Option<SocketAddr> = None;
        let mut best_weight = i64::MIN;
        for (addr, weight) in candidates {
            if tried.contains(addr) || !self.available(addr, now) {
                continue;
            }
            let w = (*weight).max(1) as i64;
            let p = self.peers.entry(*addr).or_default();
            p.current_weight += w;
            total += w;
            if p.current_weight > best_weight {
                best_weight = p.current_weight;
                best = Some(*addr);
            }
        }
        match best {
            Some(addr) => {
                if let Some(p) = self.peers.get_mut(&addr) {
                    p.current_weight -= total;
                }
                Some(addr)
            }
            None => {
                if tried.is_empty() {
                    for (addr, _) in candidates {
                        if let Some(p) = self.peers.get_mut(addr) {
                            p.fails = 0;
                        }
                    }
                }
                None
            }
        }
    }

    /// Records the outcome of one attempt.
    pub fn report(&mut self, addr: SocketAddr, ok: bool, now: Instant) {
        let p = self.peers.entry(addr).or_default();
        if ok {
            p.fails = 0;
            return;
        }
        // Failures count within a fail_timeout window; an old failure does not add up.
        if p.checked
            .is_some_and(|c| now.saturating_duration_since(c) > self.fail_timeout)
        {
            p.fails = 0;
        }
        p.fails += 1;
        p.checked = Some(now);
    }

    /// Forgets peers no longer in any group (called on view changes).
    pub fn retain(&mut self, keep: impl Fn(&SocketAddr) -> bool) {
        self.peers.retain(|a, _| keep(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn smooth_weighted_round_robin() {
        let mut b = Balancer::new(2, Duration::from_secs(30));
        let now = Instant::now();
        let c = [(a(1), 5), (a(2), 1), (a(3), 1)];
        let picks: Vec<u16> = (0..7)
            .map(|_| b.pick(&c, &[], now).unwrap().port())
            .collect();
        // nginx's documented sequence for weights 5,1,1: a a b a c a a
        assert_eq!(picks, vec![1, 1, 2, 1, 3, 1, 1]);
    }

    #[test]
    fn max_fails_take_a_peer_out_for_fail_timeout() {
        let mut b = Balancer::new(2, Duration::from_secs(30));
        let t0 = Instant::now();
        let c = [(a(1), 1), (a(2), 1)];
        b.report(a(1), false, t0);
        // One failure of two allowed: still used.
        assert!((0..4).any(|_| b.pick(&c, &[], t0) == Some(a(1))));
        b.report(a(1), false, t0 + Duration::from_secs(1));
        for _ in 0..4 {
            assert_eq!(b.pick(&c, &[], t0 + Duration::from_secs(2)), Some(a(2)));
        }
        // After fail_timeout it is tried again.
        let later = t0 + Duration::from_secs(32);
        assert!((0..4).any(|_| b.pick(&c, &[], later) == Some(a(1))));
        // Success clears the count.
        b.report(a(1), true, later);
        assert!((0..4).any(|_| b.pick(&c, &[], later) == Some(a(1))));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut b = Balancer::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        b.report(a(1), false, t0);
        b.report(a(1), false, t0 + Duration::from_secs(11));
        let c = [(a(1), 1)];
        assert_eq!(b.pick(&c, &[], t0 + Duration::from_secs(12)), Some(a(1)));
    }

    #[test]
    fn tried_peers_are_skipped_and_all_down_resets() {
        let mut b = Balancer::new(1, Duration::from_secs(30));
        let now = Instant::now();
        let c = [(a(1), 1), (a(2), 1)];
        let first = b.pick(&c, &[], now).unwrap();
        let second = b.pick(&c, &[first], now).unwrap();
        assert_ne!(first, second);
        assert_eq!(b.pick(&c, &[first, second], now), None);
        b.report(a(1), false, now);
        b.report(a(2), false, now);
        assert_eq!(b.pick(&c, &[], now), None, "no live upstreams");
        assert!(b.pick(&c, &[], now).is_some(), "reset after all-down");
    }
}
