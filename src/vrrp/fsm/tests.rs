//! The state machine's tests: RFC 3768 §6 rules and our additions, on a virtual clock.

use super::*;
use std::net::Ipv4Addr;

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 21));
const LOWER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 20));
const HIGHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 22));
const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const GRACE: Duration = Duration::from_millis(250);

fn cfg(priority: u8) -> FsmConfig {
    FsmConfig {
        priority,
        advert_int: SEC,
        version3: false,
        preempt: true,
        preempt_delay: Duration::ZERO,
        graceful_handover: true,
        handover_to_silent_backup: false,
        primary_ip: ME,
        garp_master_delay: 5 * SEC,
        garp_refresh: Duration::ZERO,
        garp_lower_prio_repeat: true,
        garp_reclaim: Duration::ZERO,
        garp_preempt_delay: Duration::ZERO,
        release_grace: GRACE,
    }
}

/// An FSM on a virtual clock.
struct Sim {
    fsm: Fsm,
    t0: Instant,
    now: Instant,
}

impl Sim {
    fn new(c: FsmConfig) -> Sim {
        let t0 = Instant::now();
        let mut s = Sim {
            fsm: Fsm::new(c),
            t0,
            now: t0,
        };
        s.fsm.handle(t0, Event::Startup);
        s
    }
    fn master(priority: u8) -> Sim {
        let mut s = Sim::new(cfg(priority));
        let mdi = s.fsm.master_down_interval();
        s.advance(mdi);
        assert_eq!(s.fsm.state(), State::Master);
        s
    }
    /// Advances the clock, firing every timer on the way; returns the actions.
    fn advance(&mut self, d: Duration) -> Vec<Action> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.fsm.next_deadline() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            out.extend(self.fsm.poll(self.now));
        }
        self.now = end;
        out
    }
    fn event(&mut self, e: Event) -> Vec<Action> {
        self.fsm.handle(self.now, e)
    }
    fn advert(&mut self, src: impl Into<IpAddr>, priority: u8) -> Vec<Action> {
        self.event(Event::AdvertReceived {
            src: src.into(),
            priority,
        })
    }
    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

fn sends(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert { priority } => Some(*priority),
            _ => None,
        })
        .collect()
}

#[test]
fn rfc3768_6_1_skew_time_and_master_down_interval() {
    let f = Fsm::new(cfg(100));
    assert_eq!(f.skew_time(), Duration::from_secs(156) / 256);
    assert_eq!(
        f.master_down_interval(),
        3 * SEC + Duration::from_secs(156) / 256
    );
    let f = Fsm::new(cfg(254));
    assert_eq!(f.skew_time(), Duration::from_secs(2) / 256);
}

#[test]
fn rfc3768_6_4_1_address_owner_goes_master_at_once() {
    let mut f = Fsm::new(cfg(255));
    let a = f.handle(Instant::now(), Event::Startup);
    assert_eq!(f.state(), State::Master);
    assert!(a.contains(&Action::AddVips));
    assert!(a.contains(&Action::SendGarp));
    assert_eq!(sends(&a), vec![255]);
}

#[test]
fn rfc3768_6_4_1_non_owner_starts_backup() {
    let mut f = Fsm::new(cfg(100));
    let t0 = Instant::now();
    let a = f.handle(t0, Event::Startup);
    assert_eq!(f.state(), State::Backup);
    assert_eq!(sends(&a), Vec::<u8>::new());
    assert_eq!(f.next_deadline(), Some(t0 + f.master_down_interval()));
}

#[test]
fn rfc3768_6_4_2_backup_becomes_master_when_master_down_timer_fires() {
    let mut s = Sim::new(cfg(100));
    let mdi = s.fsm.master_down_interval();
    assert!(s.advance(mdi - MS).is_empty());
    assert_eq!(s.fsm.state(), State::Backup);
    let a = s.advance(MS);
    assert_eq!(s.fsm.state(), State::Master);
    assert_eq!(s.elapsed(), mdi);
    assert_eq!(
        &a[..3],
        &[
            Action::AddVips,
            Action::SendGarp,
            Action::SendAdvert { priority: 100 }
        ]
    );
}

#[test]
fn rfc3768_6_4_2_backup_resets_master_down_timer_on_higher_priority_advert() {
    let mut s = Sim::new(cfg(90));
    for _ in 0..10 {
        s.advance(SEC);
        s.advert(HIGHER_IP, 100);
    }
    assert_eq!(s.fsm.state(), State::Backup);
    assert_eq!(s.fsm.master(), Some(HIGHER_IP));
    let mdi = s.fsm.master_down_interval();
    s.advance(mdi - MS);
    assert_eq!(s.fsm.state(), State::Backup);
    s.advance(MS);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn rfc3768_6_4_2_priority_zero_advert_makes_backup_take_over_after_skew_time() {
    let mut s = Sim::new(cfg(90));
    s.advance(SEC);
    s.advert(HIGHER_IP, 100);
    s.advance(SEC / 2);
    s.advert(HIGHER_IP, 0);
    let skew = s.fsm.skew_time();
    s.advance(skew - MS);
    assert_eq!(s.fsm.state(), State::Backup);
    s.advance(MS);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn rfc3768_6_4_2_preempt_backup_discards_lower_priority_and_takes_over() {
    let mut s = Sim::new(cfg(100));
    let mdi = s.fsm.master_down_interval();
    s.advance(SEC);
    s.advert(LOWER_IP, 90);
    // The lower advert did not reset the timer: takeover at the first MDI.
    s.advance(mdi - SEC);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn preempting_a_live_master_sends_the_advert_first_and_the_arps_after_a_delay() {
    let delay = 50 * MS;
    let garps = |a: &[Action]| a.iter().filter(|x| **x == Action::SendGarp).count();
    let mut s = Sim::new(FsmConfig {
        garp_preempt_delay: delay,
        ..cfg(100)
    });
    let mdi = s.fsm.master_down_interval();
    s.advance(SEC);
    s.advert(LOWER_IP, 90);
    let a = s.advance(mdi - SEC);
    assert_eq!(s.fsm.state(), State::Master);
    assert!(a.contains(&Action::AddVips));
    assert!(a.contains(&Action::SendAdvert { priority: 100 }));
    assert_eq!(garps(&a), 0, "the old Master hears us before clients move");
    assert_eq!(garps(&s.advance(delay - MS)), 0);
    assert_eq!(garps(&s.advance(MS)), 1, "then the ARP switch");

    // Nobody to preempt (alone on the link): the ARPs go at once, as before.
    let mut alone = Sim::new(FsmConfig {
        garp_preempt_delay: delay,
        ..cfg(100)
    });
    let a = alone.advance(mdi);
    assert_eq!(alone.fsm.state(), State::Master);
    assert_eq!(garps(&a), 1);
}

#[test]
fn nopreempt_backup_stays_backup_under_lower_priority_master() {
    let mut s = Sim::new(FsmConfig {
        preempt: false,
        ..cfg(100)
    });
    for _ in 0..10 {
        s.advance(SEC);
        s.advert(LOWER_IP, 90);
    }
    assert_eq!(s.fsm.state(), State::Backup);
    // Once the lower Master goes silent, we take over after Master_Down_Interval.
    let mdi = s.fsm.master_down_interval();
    s.advance(mdi);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn preempt_delay_holds_preemption_until_it_has_passed() {
    let mut s = Sim::new(FsmConfig {
        preempt_delay: 10 * SEC,
        ..cfg(100)
    });
    for _ in 0..9 {
        s.advance(SEC);
        s.advert(LOWER_IP, 90);
    }
    assert_eq!(s.fsm.state(), State::Backup);
    // From t = 10 s on, lower adverts are discarded and the timer runs out.
    for _ in 0..6 {
        s.advance(SEC);
        s.advert(LOWER_IP, 90);
    }
    assert_eq!(s.fsm.state(), State::Master);
    assert!(s.elapsed() >= 10 * SEC);
}

#[test]
fn rfc3768_6_4_3_master_sends_an_advert_every_interval() {
    let mut s = Sim::master(100);
    let a = s.advance(5 * SEC);
    assert_eq!(sends(&a), vec![100; 5]);
}

#[test]
fn rfc3768_6_4_3_master_answers_priority_zero_with_an_immediate_advert() {
    let mut s = Sim::master(100);
    s.advance(SEC / 2);
    let a = s.advert(HIGHER_IP, 0);
    assert_eq!(sends(&a), vec![100]);
    assert_eq!(s.fsm.state(), State::Master);
    assert_eq!(s.fsm.next_deadline(), Some(s.now + SEC));
}

#[test]
fn rfc3768_6_4_3_master_yields_to_higher_priority() {
    let mut s = Sim::master(90);
    let a = s.advert(LOWER_IP, 100);
    assert_eq!(s.fsm.state(), State::Backup);
    assert_eq!(sends(&a), Vec::<u8>::new());
    assert_eq!(s.fsm.master(), Some(LOWER_IP));
    // VIPs go after the release grace (in-flight requests finish), then nothing more.
    assert!(!a.contains(&Action::RemoveVips));
    assert!(s.advance(GRACE - MS).is_empty());
    assert_eq!(s.advance(MS), vec![Action::RemoveVips]);
}

#[test]
fn yielded_master_that_wins_again_within_the_grace_keeps_its_vips() {
    let mut s = Sim::new(FsmConfig {
        release_grace: 2 * SEC,
        ..cfg(100)
    });
    let mdi = s.fsm.master_down_interval();
    s.advance(mdi);
    s.advert(HIGHER_IP, 110);
    s.advance(GRACE / 2);
    s.advert(HIGHER_IP, 0);
    let a = s.advance(s.fsm.skew_time());
    assert_eq!(s.fsm.state(), State::Master);
    assert!(!a.contains(&Action::RemoveVips));
    assert!(!s.advance(2 * SEC).contains(&Action::RemoveVips));
}

#[test]
fn rfc3768_6_4_3_master_yields_to_equal_priority_from_higher_ip() {
    let mut s = Sim::master(100);
    s.advert(HIGHER_IP, 100);
    assert_eq!(s.fsm.state(), State::Backup);
}

#[test]
fn rfc3768_6_4_3_master_keeps_role_against_equal_priority_from_lower_ip() {
    let mut s = Sim::master(100);
    let a = s.advert(LOWER_IP, 100);
    assert_eq!(s.fsm.state(), State::Master);
    assert_eq!(sends(&a), vec![100]);
}

#[test]
fn master_hearing_lower_priority_resends_garp_and_advert() {
    let mut s = Sim::master(100);
    let a = s.advert(HIGHER_IP, 90);
    assert_eq!(s.fsm.state(), State::Master);
    assert_eq!(
        a,
        vec![Action::SendGarp, Action::SendAdvert { priority: 100 }]
    );
}

#[test]
fn master_reclaims_the_vip_once_more_after_taking_over_and_after_a_competitor() {
    let mut s = Sim::new(FsmConfig {
        garp_reclaim: SEC,
        ..cfg(100)
    });
    let garps = |a: &[Action]| a.iter().filter(|x| **x == Action::SendGarp).count();
    let mdi = s.fsm.master_down_interval();
    assert_eq!(garps(&s.advance(mdi)), 1, "takeover burst");
    assert_eq!(garps(&s.advance(SEC - MS)), 0);
    assert_eq!(garps(&s.advance(MS)), 1, "re-claim one interval later");
    assert_eq!(garps(&s.advance(SEC)), 0, "only once");
    // A lower-priority Master appears (split brain healing): now and once more later.
    assert_eq!(garps(&s.advert(HIGHER_IP, 90)), 1);
    assert_eq!(garps(&s.advance(SEC)), 1);
    assert_eq!(garps(&s.advance(SEC)), 0);
    // No re-claim once we are no longer Master.
    s.advert(HIGHER_IP, 90);
    s.advert(HIGHER_IP, 110);
    assert_eq!(s.fsm.state(), State::Backup);
    assert_eq!(garps(&s.advance(2 * SEC)), 0);
}

#[test]
fn master_sends_second_garp_burst_after_master_delay_and_refreshes() {
    let mut s = Sim::new(FsmConfig {
        garp_refresh: 60 * SEC,
        ..cfg(100)
    });
    let mdi = s.fsm.master_down_interval();
    s.advance(mdi);
    let garps = |a: &[Action]| a.iter().filter(|x| **x == Action::SendGarp).count();
    assert_eq!(garps(&s.advance(5 * SEC - MS)), 0);
    assert_eq!(garps(&s.advance(MS)), 1);
    assert_eq!(garps(&s.advance(60 * SEC)), 1);
}

#[test]
fn rfc3768_6_4_3_shutdown_without_handover_sends_priority_zero_and_releases() {
    let mut s = Sim::new(FsmConfig {
        graceful_handover: false,
        ..cfg(100)
    });
    let mdi = s.fsm.master_down_interval();
    s.advance(mdi);
    let a = s.event(Event::Shutdown);
    assert_eq!(
        &a[..2],
        &[Action::SendAdvert { priority: 0 }, Action::RemoveVips]
    );
    assert!(s.fsm.stopped());
}

#[test]
fn graceful_shutdown_keeps_vips_until_the_new_master_is_heard() {
    let mut s = Sim::master(100);
    s.advert(LOWER_IP, 50); // a peer exists: there is someone to hand over to
    s.advance(SEC);
    let a = s.event(Event::Shutdown);
    assert_eq!(a, vec![Action::SendAdvert { priority: 0 }]);
    assert!(!s.fsm.stopped());
    // Still priority 0 on the next interval; VIPs still held.
    let a = s.advance(SEC);
    assert_eq!(sends(&a), vec![0]);
    assert!(!a.contains(&Action::RemoveVips));
    // A peer's priority-0 advert is not a successor.
    assert!(s.advert(HIGHER_IP, 0).is_empty());
    let a = s.advert(HIGHER_IP, 90);
    assert_eq!(s.fsm.state(), State::Initialize);
    assert!(!a.contains(&Action::RemoveVips));
    assert!(!s.fsm.stopped());
    // Released after the grace, so requests in flight to us complete.
    assert!(s.advance(GRACE - MS).is_empty());
    assert_eq!(s.advance(MS), vec![Action::RemoveVips]);
    assert!(s.fsm.stopped());
}

#[test]
fn graceful_shutdown_releases_vips_after_3_intervals_without_a_successor() {
    let mut s = Sim::master(100);
    s.advert(LOWER_IP, 50);
    s.event(Event::Shutdown);
    let a = s.advance(3 * SEC - MS);
    assert!(!a.contains(&Action::RemoveVips));
    let a = s.advance(MS);
    assert!(a.contains(&Action::RemoveVips));
    assert!(s.fsm.stopped());
}

#[test]
fn rfc3768_6_4_2_backup_shutdown_goes_initialize_silently() {
    let mut s = Sim::new(cfg(90));
    let a = s.event(Event::Shutdown);
    assert_eq!(sends(&a), Vec::<u8>::new());
    assert!(!a.contains(&Action::RemoveVips));
    assert!(s.fsm.stopped());
    assert!(s.advance(10 * SEC).is_empty());
}

#[test]
fn effective_priority_is_clamped_and_owner_is_never_changed() {
    let mut f = Fsm::new(cfg(100));
    let t = Instant::now();
    for (delta, want) in [(-20, 80), (-200, 1), (200, 254), (0, 100)] {
        f.handle(
            t,
            Event::TrackingChanged {
                delta,
                fault: false,
                reason: "probe".into(),
            },
        );
        assert_eq!(f.effective_priority(), want);
    }
    let mut f = Fsm::new(cfg(255));
    f.handle(
        t,
        Event::TrackingChanged {
            delta: -50,
            fault: false,
            reason: "probe".into(),
        },
    );
    assert_eq!(f.effective_priority(), 255);
}

#[test]
fn changed_priority_is_advertised_at_once() {
    let mut s = Sim::master(100);
    s.advance(SEC / 3);
    let a = s.event(Event::TrackingChanged {
        delta: -20,
        fault: false,
        reason: "gateway probe failing".into(),
    });
    assert_eq!(sends(&a), vec![80]);
    // Same priority again: nothing extra.
    let a = s.event(Event::TrackingChanged {
        delta: -20,
        fault: false,
        reason: "gateway probe failing".into(),
    });
    assert!(a.is_empty());
}

#[test]
fn master_going_fault_yields_at_once_with_priority_zero() {
    let mut s = Sim::master(100);
    let a = s.event(Event::TrackingChanged {
        delta: 0,
        fault: true,
        reason: "gateway down".into(),
    });
    assert_eq!(
        &a[..2],
        &[Action::SendAdvert { priority: 0 }, Action::RemoveVips]
    );
    assert_eq!(s.fsm.state(), State::Fault);
    // FAULT sends nothing and never takes over.
    assert!(s.advance(60 * SEC).is_empty());
    assert_eq!(s.fsm.state(), State::Fault);
}

#[test]
fn fault_cleared_returns_to_backup_then_master_down_interval() {
    let mut s = Sim::new(cfg(100));
    s.event(Event::LinkChanged { up: false });
    assert_eq!(s.fsm.state(), State::Fault);
    s.advance(10 * SEC);
    let a = s.event(Event::LinkChanged { up: true });
    assert_eq!(s.fsm.state(), State::Backup);
    assert!(matches!(
        a[0],
        Action::Notify {
            state: State::Backup,
            ..
        }
    ));
    let mdi = s.fsm.master_down_interval();
    s.advance(mdi);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn fault_at_startup_stays_fault() {
    let mut f = Fsm::new(cfg(255));
    let t = Instant::now();
    f.handle(t, Event::LinkChanged { up: false });
    f.handle(t, Event::Startup);
    assert_eq!(f.state(), State::Fault);
}

#[test]
fn vips_removed_under_a_master_are_put_back() {
    let mut s = Sim::master(100);
    assert_eq!(
        s.event(Event::VipsMissing),
        vec![Action::AddVips, Action::SendGarp]
    );
    let mut b = Sim::new(cfg(90));
    assert!(b.event(Event::VipsMissing).is_empty());
}

#[test]
fn each_transition_notifies_exactly_once() {
    let mut s = Sim::new(cfg(100));
    let mdi = s.fsm.master_down_interval();
    let a = s.advance(mdi + 10 * SEC);
    let notes = a
        .iter()
        .filter(|x| matches!(x, Action::Notify { .. }))
        .count();
    assert_eq!(notes, 1);
}

fn notifies(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Notify { .. }))
        .count()
}

#[test]
fn reload_raising_a_masters_priority_is_advertised_at_once_without_a_transition() {
    let mut s = Sim::master(100);
    let a = s.event(Event::Reconfigure(cfg(110)));
    assert_eq!(a, vec![Action::SendAdvert { priority: 110 }]);
    assert_eq!(s.fsm.state(), State::Master);
    assert_eq!(s.fsm.effective_priority(), 110);
    // The next periodic advert carries it too, one interval after the reload.
    assert_eq!(sends(&s.advance(SEC)), vec![110]);
}

#[test]
fn reload_with_the_same_settings_does_nothing() {
    let mut s = Sim::master(100);
    assert!(s.event(Event::Reconfigure(cfg(100))).is_empty());
    let mut b = Sim::new(cfg(90));
    let before = b.fsm.next_deadline();
    assert!(b.event(Event::Reconfigure(cfg(90))).is_empty());
    assert_eq!(b.fsm.next_deadline(), before);
}

#[test]
fn reload_putting_a_master_below_its_peer_hands_over_make_before_break() {
    let mut s = Sim::master(100);
    let a = s.event(Event::Reconfigure(cfg(80)));
    assert_eq!(a, vec![Action::SendAdvert { priority: 80 }]);
    assert_eq!(
        s.fsm.state(),
        State::Master,
        "keeps the VIPs until the peer speaks"
    );
    // The peer (priority 90, preempting) takes over after its Master_Down_Interval.
    let a = s.advert(HIGHER_IP, 90);
    assert_eq!(s.fsm.state(), State::Backup);
    assert_eq!(notifies(&a), 1);
    assert!(
        !a.contains(&Action::RemoveVips),
        "released only after the grace"
    );
    assert_eq!(s.advance(GRACE), vec![Action::RemoveVips]);
}

#[test]
fn reload_of_advert_int_re_times_master_adverts_and_the_backups_down_timer() {
    let mut s = Sim::master(100);
    s.advance(SEC / 2);
    let mut c = cfg(100);
    c.advert_int = 2 * SEC;
    assert_eq!(
        s.event(Event::Reconfigure(c)),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert!(sends(&s.advance(2 * SEC - MS)).is_empty());
    assert_eq!(sends(&s.advance(MS)), vec![100]);

    let mut b = Sim::new(cfg(90));
    b.advert(HIGHER_IP, 100);
    let mut c = cfg(90);
    c.advert_int = 2 * SEC;
    assert!(b.event(Event::Reconfigure(c)).is_empty());
    let want = b.now + 6 * SEC + Duration::from_secs(166) / 256;
    assert_eq!(b.fsm.next_deadline(), Some(want));
    assert_eq!(b.fsm.state(), State::Backup);
}

#[test]
fn reload_of_preempt_delay_counts_from_the_start() {
    let mut s = Sim::new(cfg(100));
    s.advert(LOWER_IP, 50);
    let mut c = cfg(100);
    c.preempt_delay = 10 * SEC;
    s.advance(2 * SEC);
    s.event(Event::Reconfigure(c));
    // A lower-priority Master keeps being obeyed until 10 s after the start.
    for _ in 0..7 {
        s.advert(LOWER_IP, 50);
        s.advance(SEC);
    }
    assert_eq!(s.fsm.state(), State::Backup, "at {:?}", s.elapsed());
    s.advance(5 * SEC);
    assert_eq!(s.fsm.state(), State::Master, "at {:?}", s.elapsed());
}

#[test]
fn reload_turning_preempt_off_keeps_a_backup_under_a_lower_master() {
    let mut s = Sim::new(cfg(100));
    let mut c = cfg(100);
    c.preempt = false;
    s.event(Event::Reconfigure(c));
    for _ in 0..10 {
        s.advert(LOWER_IP, 50);
        s.advance(SEC);
    }
    assert_eq!(s.fsm.state(), State::Backup);
}

#[test]
fn backup_ignores_priority_zero_from_anyone_but_its_master() {
    let mut s = Sim::new(cfg(90));
    // Before any Master is heard, and from a third address once one is: no early takeover.
    s.advert(LOWER_IP, 0);
    s.advance(SEC);
    s.advert(HIGHER_IP, 100);
    let deadline = s.fsm.next_deadline();
    s.advert(Ipv4Addr::new(192, 168, 3, 50), 0);
    assert_eq!(s.fsm.next_deadline(), deadline);
    s.advance(SEC);
    assert_eq!(s.fsm.state(), State::Backup);
    // The real Master leaving is still obeyed after Skew_Time.
    s.advert(HIGHER_IP, 0);
    s.advance(s.fsm.skew_time());
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn master_answers_lower_priority_adverts_once_per_interval_per_source() {
    let mut s = Sim::master(100);
    let rogue = Ipv4Addr::new(192, 168, 3, 50);
    let mut answers = 0;
    // 20 forged adverts within 100 ms: one answer (GARP + advert), not 20.
    for _ in 0..20 {
        let a = s.advert(rogue, 50);
        answers += a.iter().filter(|x| **x == Action::SendGarp).count();
        s.advance(5 * MS);
    }
    assert_eq!(answers, 1);
    // Another source gets its own answer; the first one again after an interval.
    assert!(s.advert(HIGHER_IP, 90).contains(&Action::SendGarp));
    s.advance(SEC);
    assert!(s.advert(rogue, 50).contains(&Action::SendGarp));
    // Priority-0 floods are answered at most once per interval too.
    s.advance(SEC);
    let n: usize = (0..20).map(|_| sends(&s.advert(rogue, 0)).len()).sum();
    assert_eq!(n, 1);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn answer_rate_limit_remembers_a_bounded_number_of_sources() {
    let mut s = Sim::master(100);
    let answered = (0..=255u8)
        .filter(|i| !s.advert(Ipv4Addr::new(10, 0, 0, *i), 50).is_empty())
        .count();
    assert_eq!(answered, ANSWERED_SOURCES);
    s.advance(SEC);
    assert!(!s.advert(Ipv4Addr::new(10, 0, 1, 1), 50).is_empty());
}

fn cfg_v3(priority: u8, advert_int: Duration) -> FsmConfig {
    FsmConfig {
        advert_int,
        version3: true,
        ..cfg(priority)
    }
}

#[test]
fn rfc5798_6_1_skew_and_master_down_interval_scale_with_the_interval() {
    let mut s = Sim::new(cfg_v3(90, 100 * MS));
    // 3 x 100 ms + (256 - 90) x 100 ms / 256 = 364.84 ms; RFC 3768's formula would add 648 ms.
    assert_eq!(
        s.fsm.skew_time(),
        Duration::from_micros(64_843) + Duration::from_nanos(750)
    );
    assert_eq!(s.fsm.master_down_interval(), 300 * MS + s.fsm.skew_time());
    s.advance(364 * MS);
    assert_eq!(s.fsm.state(), State::Backup);
    s.advance(MS);
    assert_eq!(s.fsm.state(), State::Master);
}

#[test]
fn rfc5798_6_4_2_backup_adopts_the_masters_interval() {
    let mut s = Sim::new(cfg_v3(90, 100 * MS));
    let now = s.now;
    s.fsm.handle(
        now,
        Event::AdvertV3 {
            src: HIGHER_IP,
            priority: 100,
            max_adver_int: SEC,
        },
    );
    // Master_Down_Interval is now 3 s + 166/256 s: our own 100 ms would have fired long ago.
    assert_eq!(s.fsm.master_down_interval(), 3 * SEC + SEC * 166 / 256);
    s.advance(3 * SEC);
    assert_eq!(s.fsm.state(), State::Backup);
    s.advance(SEC);
    assert_eq!(s.fsm.state(), State::Master);
    // As Master it advertises at its own interval again.
    assert_eq!(s.fsm.master_adver_interval(), 100 * MS);
}

#[test]
fn rfc5798_6_4_3_preempted_master_takes_the_new_masters_interval() {
    let mut s = Sim::new(cfg_v3(90, 100 * MS));
    s.advance(SEC);
    assert_eq!(s.fsm.state(), State::Master);
    let now = s.now;
    s.fsm.handle(
        now,
        Event::AdvertV3 {
            src: HIGHER_IP,
            priority: 100,
            max_adver_int: 200 * MS,
        },
    );
    assert_eq!(s.fsm.state(), State::Backup);
    assert_eq!(
        s.fsm.master_down_interval(),
        600 * MS + 200 * MS * 166 / 256
    );
}

#[test]
fn version2_ignores_intervals_in_its_skew() {
    let s = Sim::new(cfg(90));
    assert_eq!(s.fsm.skew_time(), SEC * 166 / 256);
}
