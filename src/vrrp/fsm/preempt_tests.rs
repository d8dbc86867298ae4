//! Fast preemption (issue 23.5, beyond RFC 3768 §6.4.2): a Backup whose followed Master drops
//! below it (the Master's tracked service died) takes over after Skew_Time, not after the full
//! Master_Down_Interval; lower adverts from anyone else still only let the timer run out.

use super::*;
use std::net::Ipv4Addr;

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 21));
const MASTER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 22));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 50));
const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn cfg(priority: u8, ip: IpAddr) -> FsmConfig {
    super::peer_tests::cfg(priority, ip, SEC)
}

fn advert(src: IpAddr, priority: u8) -> Event {
    Event::AdvertReceived { src, priority }
}

/// A Backup of priority 90 (or as `c` says) that follows MASTER at 100 from `t0 + 1 s`.
fn following(c: FsmConfig) -> (Fsm, Instant) {
    let t0 = Instant::now();
    let mut f = Fsm::new(c);
    f.handle(t0, Event::Startup);
    f.handle(t0 + SEC, advert(MASTER, 100));
    assert_eq!(f.state(), State::Backup);
    assert_eq!(f.master(), Some(MASTER));
    (f, t0 + SEC)
}

#[test]
fn followed_master_dropping_below_us_is_preempted_after_skew_time() {
    let (mut f, t) = following(cfg(90, ME));
    let drop = t + SEC;
    f.handle(drop, advert(MASTER, 80));
    let skew = f.skew_time();
    // Skew_Time (0.65 s), not Master_Down_Interval (3.65 s) as RFC 3768 would wait.
    assert_eq!(f.next_deadline(), Some(drop + skew));
    assert!(f.poll(drop + skew - MS).is_empty());
    assert_eq!(f.state(), State::Backup);
    let a = f.poll(drop + skew);
    assert_eq!(f.state(), State::Master);
    assert!(a.contains(&Action::SendAdvert { priority: 90 }), "{a:?}");
    assert!(a.iter().any(|x| matches!(x, Action::Notify { reason, .. }
        if reason == "preempting a lower-priority master")));
}

#[test]
fn early_preemption_of_a_live_master_delays_its_arps_as_any_preemption() {
    let delay = 50 * MS;
    let (mut f, t) = following(FsmConfig {
        garp_preempt_delay: delay,
        ..cfg(90, ME)
    });
    f.handle(t + SEC, advert(MASTER, 80));
    let at = t + SEC + f.skew_time();
    let a = f.poll(at);
    assert_eq!(f.state(), State::Master);
    assert!(!a.contains(&Action::SendGarp), "{a:?}");
    assert_eq!(f.poll(at + delay), vec![Action::SendGarp]);
}

#[test]
fn a_lower_advert_from_anyone_but_the_followed_master_is_only_discarded() {
    let (mut f, t) = following(cfg(90, ME));
    let deadline = f.next_deadline();
    assert_eq!(deadline, Some(t + f.master_down_interval()));
    // A forged or stale advert naming another source: the running timer is left alone.
    f.handle(t + SEC, advert(OTHER, 80));
    assert_eq!(f.next_deadline(), deadline);
    f.poll(t + SEC + f.skew_time());
    assert_eq!(f.state(), State::Backup);
    // Before any Master is followed, too.
    let t0 = Instant::now();
    let mut g = Fsm::new(cfg(90, ME));
    g.handle(t0, Event::Startup);
    let deadline = g.next_deadline();
    g.handle(t0 + SEC, advert(MASTER, 80));
    assert_eq!(g.next_deadline(), deadline);
}

#[test]
fn nopreempt_follows_the_dropped_master_and_never_takes_over() {
    let (mut f, t) = following(FsmConfig {
        preempt: false,
        ..cfg(90, ME)
    });
    for i in 1..=10 {
        let now = t + i * SEC;
        f.handle(now, advert(MASTER, 80));
        assert_eq!(f.next_deadline(), Some(now + f.master_down_interval()));
        f.poll(now + SEC - MS);
        assert_eq!(f.state(), State::Backup);
    }
}

#[test]
fn preempt_delay_holds_preemption_and_then_the_rfc_timer_decides() {
    let (mut f, t) = following(FsmConfig {
        preempt_delay: 10 * SEC,
        ..cfg(90, ME)
    });
    // The followed Master advertises 80 every second from t + 1 s; preemption allowed from
    // t0 + 10 s = t + 9 s. Until then its adverts are followed (at 80, below us), so it is not
    // a Master that dropped below us: the advert at t + 9 s is discarded and the RFC timer from
    // the last followed advert (t + 8 s) makes us preempt.
    for i in 1..=9 {
        let now = t + i * SEC;
        f.handle(now, advert(MASTER, 80));
        if i < 9 {
            assert_eq!(f.next_deadline(), Some(now + f.master_down_interval()));
            f.poll(now + SEC - MS);
            assert_eq!(f.state(), State::Backup, "advert {i}");
        }
    }
    let last_followed = t + 8 * SEC;
    assert_eq!(
        f.next_deadline(),
        Some(last_followed + f.master_down_interval())
    );
    f.poll(last_followed + f.master_down_interval() - MS);
    assert_eq!(f.state(), State::Backup);
    f.poll(last_followed + f.master_down_interval());
    assert_eq!(f.state(), State::Master);
}

#[test]
fn a_master_that_drops_but_stays_at_or_above_us_is_followed_as_before() {
    for prio in [95, 90] {
        let (mut f, t) = following(cfg(90, ME));
        let now = t + SEC;
        f.handle(now, advert(MASTER, prio));
        assert_eq!(f.next_deadline(), Some(now + f.master_down_interval()));
        f.poll(now + f.master_down_interval() - MS);
        assert_eq!(f.state(), State::Backup, "master at {prio}");
    }
}

#[test]
fn an_earlier_deadline_is_never_pushed_later() {
    let (mut f, t) = following(cfg(90, ME));
    // The Master went silent; its timer fires in 10 ms, then a late lower advert arrives.
    let deadline = t + f.master_down_interval();
    f.handle(deadline - 10 * MS, advert(MASTER, 80));
    assert_eq!(f.next_deadline(), Some(deadline));
    // A second lower advert does not postpone the skew deadline either.
    let (mut g, t) = following(cfg(90, ME));
    g.handle(t + SEC, advert(MASTER, 80));
    let early = g.next_deadline();
    g.handle(t + SEC + 100 * MS, advert(MASTER, 80));
    assert_eq!(g.next_deadline(), early);
}

#[test]
fn our_priority_falling_meanwhile_cancels_the_early_takeover() {
    let (mut f, t) = following(cfg(90, ME));
    f.handle(t + SEC, advert(MASTER, 80));
    let down = Event::TrackingChanged {
        delta: -20,
        fault: false,
        reason: "probe failed".into(),
    };
    // Now 70: below the Master's 80. The full timer from the last accepted advert runs again.
    f.handle(t + SEC + 100 * MS, down);
    assert_eq!(f.next_deadline(), Some(t + f.master_down_interval()));
    // The Master's next advert (80 >= 70) is followed.
    f.handle(t + 2 * SEC, advert(MASTER, 80));
    assert_eq!(f.state(), State::Backup);
    assert_eq!(
        f.next_deadline(),
        Some(t + 2 * SEC + f.master_down_interval())
    );
}

/// A node starting up follows the Master while its own probe is not yet checked (priority
/// lowered), then rises above it: the Master did not drop, so preempting waits the RFC's
/// Master_Down_Interval from the last accepted advert, as before the fast preemption.
#[test]
fn our_priority_rising_above_an_unchanged_master_waits_the_rfc_timer() {
    let (mut f, t) = following(cfg(90, ME));
    // Followed at 100 with ourselves at 90 - 20 = 70, then our probe passes: 90 + 20 = 110.
    let down = Event::TrackingChanged {
        delta: -20,
        fault: false,
        reason: "not yet checked".into(),
    };
    f.handle(t + 10 * MS, down);
    f.handle(t + SEC, advert(MASTER, 100));
    let up = Event::TrackingChanged {
        delta: 20,
        fault: false,
        reason: "probe passed".into(),
    };
    f.handle(t + SEC + 100 * MS, up);
    f.handle(t + 2 * SEC, advert(MASTER, 100));
    // Discarded (lower than our 110), and no early takeover: the full timer from t + 1 s runs.
    assert_eq!(f.state(), State::Backup);
    assert_eq!(f.next_deadline(), Some(t + SEC + f.master_down_interval()));
}

#[test]
fn of_several_backups_the_highest_takes_over_first_and_the_other_follows_it() {
    let high_ip = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 23));
    let (mut low, t) = following(cfg(90, ME));
    let (mut high, _) = following(cfg(95, high_ip));
    let drop = t + SEC;
    low.handle(drop, advert(MASTER, 80));
    high.handle(drop, advert(MASTER, 80));
    let high_at = high.next_deadline().unwrap();
    let low_at = low.next_deadline().unwrap();
    assert!(high_at < low_at, "{high_at:?} {low_at:?}");
    let a = high.poll(high_at);
    assert_eq!(high.state(), State::Master);
    assert!(a.contains(&Action::SendAdvert { priority: 95 }));
    low.handle(high_at, advert(high_ip, 95));
    low.poll(low_at);
    assert_eq!(low.state(), State::Backup);
    assert_eq!(low.master(), Some(high_ip));
}

#[test]
fn version3_takes_over_after_the_masters_skew_time() {
    let t0 = Instant::now();
    let mut f = Fsm::new(FsmConfig {
        version3: true,
        advert_int: 100 * MS,
        ..cfg(90, ME)
    });
    f.handle(t0, Event::Startup);
    let v3 = |priority| Event::AdvertV3 {
        src: MASTER,
        priority,
        max_adver_int: 100 * MS,
    };
    f.handle(t0 + 100 * MS, v3(100));
    let drop = t0 + 200 * MS;
    f.handle(drop, v3(80));
    // (256 - 90) x 100 ms / 256 = 64.8 ms instead of 364.8 ms.
    assert_eq!(f.next_deadline(), Some(drop + 100 * MS * 166 / 256));
}
