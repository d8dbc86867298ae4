//! Peers that disagree (issue 26.2) and start/stop timing (issue 26.4), on a virtual clock:
//! adverts dropped only for a config mismatch still run the election, a Master that stays after
//! a peer released re-announces its VIPs, the Master_Down_Timer follows the first probe result,
//! and a Master that never heard a peer stops at once.

use super::*;
use std::net::Ipv4Addr;

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 21));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 22));
const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// A preempting instance with make-before-break, garp timers off (shared with `preempt_tests`).
pub(super) fn cfg(priority: u8, ip: IpAddr, advert_int: Duration) -> FsmConfig {
    FsmConfig {
        priority,
        advert_int,
        version3: false,
        preempt: true,
        preempt_delay: Duration::ZERO,
        graceful_handover: true,
        handover_to_silent_backup: false,
        primary_ip: ip,
        garp_master_delay: 5 * SEC,
        garp_refresh: Duration::ZERO,
        garp_lower_prio_repeat: true,
        garp_reclaim: Duration::ZERO,
        garp_preempt_delay: Duration::ZERO,
        release_grace: Duration::from_millis(250),
    }
}

fn master(priority: u8) -> (Fsm, Instant) {
    master_with(cfg(priority, ME, SEC))
}

fn master_with(cfg: FsmConfig) -> (Fsm, Instant) {
    let t0 = Instant::now();
    let mut f = Fsm::new(cfg);
    f.handle(t0, Event::Startup);
    let now = t0 + f.master_down_interval();
    f.poll(now);
    assert_eq!(f.state(), State::Master);
    (f, now)
}

fn mismatched(src: impl Into<IpAddr>, priority: u8) -> Event {
    Event::MismatchedAdvert {
        src: src.into(),
        priority,
    }
}

#[test]
fn master_yields_to_a_mismatched_peer_that_wins_the_election() {
    let (mut f, now) = master(100);
    let a = f.handle(now, mismatched(PEER, 110));
    assert_eq!(f.state(), State::Backup);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Notify { reason, .. } if reason.contains("peer 192.168.3.22 higher priority"))));
    // Equal priority: the higher address wins (§6.4.3), mismatch or not.
    let (mut f, now) = master(100);
    f.handle(now, mismatched(PEER, 100));
    assert_eq!(f.state(), State::Backup);
    let (mut f, now) = master(100);
    f.handle(now, mismatched(Ipv4Addr::new(192, 168, 3, 20), 100));
    assert_eq!(f.state(), State::Master);
}

#[test]
fn master_keeps_the_vips_against_a_mismatched_loser_and_announces_them() {
    let (mut f, now) = master(100);
    let a = f.handle(now, mismatched(PEER, 90));
    assert_eq!(f.state(), State::Master);
    assert!(a.contains(&Action::SendGarp), "{a:?}");
    assert!(a.contains(&Action::SendAdvert { priority: 100 }), "{a:?}");
}

#[test]
fn backup_follows_a_mismatched_master_that_wins() {
    let t0 = Instant::now();
    let mut f = Fsm::new(cfg(90, ME, SEC));
    f.handle(t0, Event::Startup);
    // The peer advertises every 2 s (its advert_int), we expect 1 s: each of its adverts
    // restarts our Master_Down_Timer (3.65 s), so we never take over from it.
    let mut now = t0;
    for _ in 0..10 {
        f.handle(now, mismatched(PEER, 100));
        now += 2 * SEC;
        f.poll(now);
        assert_eq!(f.state(), State::Backup);
    }
    assert_eq!(f.master(), Some(PEER));
}

#[test]
fn master_staying_after_a_peer_released_announces_every_vip() {
    let (mut f, now) = master(100);
    let a = f.handle(
        now,
        Event::AdvertReceived {
            src: PEER,
            priority: 0,
        },
    );
    assert_eq!(f.state(), State::Master);
    assert!(a.contains(&Action::SendGarp), "{a:?}");
    assert!(a.contains(&Action::SendAdvert { priority: 100 }), "{a:?}");
}

/// Two FSMs on one link whose adverts the other drops for a config mismatch (advert_int 1 s
/// against 2 s): returns, per node, whether it holds the VIPs, sampled every 10 ms.
struct Pair {
    f: [Fsm; 2],
    ip: [IpAddr; 2],
    holds: [bool; 2],
    now: Instant,
}

impl Pair {
    fn deliver(&mut self, from: usize, actions: Vec<Action>) {
        let mut queue = vec![(from, actions)];
        while let Some((from, actions)) = queue.pop() {
            for a in actions {
                match a {
                    Action::AddVips => self.holds[from] = true,
                    Action::RemoveVips => self.holds[from] = false,
                    Action::SendAdvert { priority } => {
                        let to = 1 - from;
                        let ev = mismatched(self.ip[from], priority);
                        let out = self.f[to].handle(self.now, ev);
                        queue.push((to, out));
                    }
                    _ => {}
                }
            }
        }
    }
    fn run_until(&mut self, end: Instant) -> Vec<(Instant, [bool; 2])> {
        let mut samples = Vec::new();
        while self.now < end {
            self.now += 10 * MS;
            for i in 0..2 {
                let out = self.f[i].poll(self.now);
                self.deliver(i, out);
            }
            samples.push((self.now, self.holds));
        }
        samples
    }
}

#[test]
fn mismatched_pair_converges_to_one_holder_within_3_advert_intervals() {
    for (first_prio, second_prio) in [(90u8, 100u8), (100, 90)] {
        // The first node runs alone and becomes Master; the second starts while the first
        // holds the VIPs, with the other advert_int.
        let t0 = Instant::now();
        let mut p = Pair {
            f: [
                Fsm::new(cfg(first_prio, PEER, 2 * SEC)),
                Fsm::new(cfg(second_prio, ME, SEC)),
            ],
            ip: [PEER, ME],
            holds: [false; 2],
            now: t0,
        };
        let out = p.f[0].handle(t0, Event::Startup);
        p.deliver(0, out);
        p.run_until(t0 + 10 * SEC);
        assert_eq!(p.holds, [true, false]);
        let start = p.now;
        let out = p.f[1].handle(start, Event::Startup);
        p.deliver(1, out);
        let samples = p.run_until(start + 30 * SEC);
        // After 3 x the larger advert_int from the second start, exactly one holder, for good.
        let settled = start + 3 * 2 * SEC;
        for (t, h) in &samples {
            if *t >= settled {
                assert_eq!(
                    h.iter().filter(|x| **x).count(),
                    1,
                    "priorities {first_prio}/{second_prio}: at +{:?}: {h:?}",
                    *t - start
                );
            }
        }
        let winner = if first_prio > second_prio { 0 } else { 1 };
        assert!(p.holds[winner], "{first_prio}/{second_prio}: {:?}", p.holds);
    }
}

#[test]
fn master_down_interval_follows_the_first_probe_result() {
    // Started while the tracked probe is "not yet checked" (weight -20: priority 80), the
    // probe answers 100 ms later: the Master_Down_Timer is the one of priority 100.
    let t0 = Instant::now();
    let mut f = Fsm::new(cfg(100, ME, SEC));
    let unchecked = Event::TrackingChanged {
        delta: -20,
        fault: false,
        reason: "not yet checked".into(),
    };
    f.handle(t0, unchecked);
    f.handle(t0, Event::Startup);
    let ok = Event::TrackingChanged {
        delta: 0,
        fault: false,
        reason: "probe ok".into(),
    };
    f.handle(t0 + 100 * MS, ok);
    let want = t0 + 3 * SEC + Duration::from_secs(156) / 256;
    assert_eq!(f.next_deadline(), Some(want));
    f.poll(want);
    assert_eq!(f.state(), State::Master);
    // A drop in priority re-times it later again, from the same start.
    let mut g = Fsm::new(cfg(100, ME, SEC));
    g.handle(t0, Event::Startup);
    let down = Event::TrackingChanged {
        delta: -50,
        fault: false,
        reason: "probe failed".into(),
    };
    g.handle(t0 + SEC, down);
    assert_eq!(
        g.next_deadline(),
        Some(t0 + 3 * SEC + Duration::from_secs(206) / 256)
    );
}

#[test]
fn master_that_never_heard_a_peer_releases_at_once() {
    // Issue 26.4, as keepalived: priority 0 and the VIPs gone in the same step, stopped.
    let (mut f, now) = master(100);
    let a = f.handle(now, Event::Shutdown);
    assert_eq!(a[0], Action::SendAdvert { priority: 0 });
    assert!(a.contains(&Action::RemoveVips), "{a:?}");
    assert!(f.stopped());
    assert!(!f.handing_over());
    assert!(a.iter().any(|x| matches!(x, Action::Notify { reason, .. }
        if reason.starts_with("shutdown: no peer heard since start"))));
    assert_eq!(f.next_deadline(), None);
    // With a peer heard, the make-before-break handover waits for it.
    let (mut f, now) = master(100);
    f.handle(
        now,
        Event::AdvertReceived {
            src: PEER,
            priority: 50,
        },
    );
    let a = f.handle(now + SEC, Event::Shutdown);
    assert!(!a.contains(&Action::RemoveVips), "{a:?}");
    assert!(f.handing_over());
}

/// A Master (priority 100) with `handover_to_silent_backup` on.
fn master_waiting_for_silent_backup() -> (Fsm, Instant) {
    master_with(FsmConfig {
        handover_to_silent_backup: true,
        ..cfg(100, ME, SEC)
    })
}

#[test]
fn with_handover_to_silent_backup_a_master_that_heard_no_peer_waits_one_interval() {
    let (mut f, now) = master_waiting_for_silent_backup();
    let a = f.handle(now, Event::Shutdown);
    assert_eq!(a, vec![Action::SendAdvert { priority: 0 }]);
    assert!(f.handing_over());
    // Alone: released one advert interval later, not 3.
    assert_eq!(f.next_deadline(), Some(now + SEC));
    let a = f.poll(now + SEC);
    assert!(a.contains(&Action::RemoveVips), "{a:?}");
    assert!(f.stopped());
    assert!(a.iter().any(|x| matches!(x, Action::Notify { reason, .. }
        if reason.starts_with("shutdown: no peer heard since start, none answered"))));
    // A Backup (silent until now) answers within its Skew_Time: make-before-break as usual.
    let (mut f, now) = master_waiting_for_silent_backup();
    f.handle(now, Event::Shutdown);
    let skew = SEC * (256 - 1) / 256; // the slowest Backup, priority 1
    let a = f.handle(
        now + skew,
        Event::AdvertReceived {
            src: PEER,
            priority: 1,
        },
    );
    assert!(!a.contains(&Action::RemoveVips), "{a:?}");
    let a = f.poll(now + skew + Duration::from_millis(250));
    assert_eq!(a, vec![Action::RemoveVips]);
    assert!(f.stopped());
}
