//! The VRRPv2 state machine of RFC 3768 §6.3-6.4, pure: events and `now` in, actions out.
//!
//! Owns the states (Initialize / Backup / Master, plus Fault for failed tracking or a down link),
//! the timers (Master_Down_Timer, Adver_Timer, gratuitous-ARP timers, the handover deadline) and
//! the effective priority. It never touches a socket, a clock or an address: the runner in
//! `mod.rs` feeds it received adverts and `poll(now)` calls at `next_deadline()`, and performs the
//! returned `Action`s in order. That is what lets every RFC rule be tested on a virtual clock.
//!
//! Beyond the RFC (make-before-break): on `Shutdown` a Master advertises priority 0 but keeps its
//! VIPs until it hears the new Master (any advert with priority > 0) or `3 x Advertisement_Interval`
//! passes; only then does it release them.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The timing and policy knobs of one instance.
#[derive(Debug, Clone)]
pub struct FsmConfig {
    /// Configured priority, 1..=255 (255 = address owner).
    pub priority: u8,
    pub advert_int: Duration,
    /// keepalived's `nopreempt` is `false`.
    pub preempt: bool,
    /// No preemption before `start + preempt_delay`.
    pub preempt_delay: Duration,
    /// Make-before-break on shutdown (see the module comment).
    pub graceful_handover: bool,
    /// Our advert source address: breaks equal-priority ties (§6.4.3).
    pub primary_ip: Ipv4Addr,
    /// Second gratuitous-ARP burst this long after becoming Master (zero = none).
    pub garp_master_delay: Duration,
    /// Periodic gratuitous ARPs while Master (zero = off).
    pub garp_refresh: Duration,
    /// Re-send gratuitous ARPs when a lower-priority advert is heard (heals a split brain).
    pub garp_lower_prio_repeat: bool,
    /// Gratuitous ARPs once more this long after taking over or hearing a lower-priority Master
    /// (zero = off). Hosts ignore gratuitous ARPs for addresses they have no entry for; one that
    /// resolves the VIP while two Masters answer (the competitor keeps it for `release_grace`)
    /// may cache the loser's MAC. Re-claiming after the loser has released fixes such caches
    /// within a second instead of at the `garp_master_delay` burst.
    pub garp_reclaim: Duration,
    /// Taking over from a Master we still hear (preemption): the first gratuitous ARPs wait
    /// this long after our first advert, so the old Master, which stops serving when it hears
    /// us, can close its keep-alive connections before clients' traffic moves (they would be
    /// reset by us otherwise). Must stay well below `release_grace`: the old Master keeps the
    /// VIPs meanwhile. Zero = at once.
    pub garp_preempt_delay: Duration,
    /// How long a Master that hands over to a successor it has heard (preempted, or stopping)
    /// keeps its VIPs: requests already in flight to it complete instead of being cut. The
    /// successor has already sent its gratuitous ARPs, so no new traffic arrives meanwhile.
    pub release_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instance starts (§6.4.1).
    Startup,
    /// A valid advert (it passed every §7.1 check) from `src`.
    AdvertReceived { src: Ipv4Addr, priority: u8 },
    /// Probe-derived tracking: summed weights, and whether a `fault` track is failing.
    TrackingChanged {
        delta: i32,
        fault: bool,
        reason: String,
    },
    /// The interface's link went down or came back.
    LinkChanged { up: bool },
    /// One of our VIPs disappeared from the interface (someone else removed it).
    VipsMissing,
    /// Stop the instance (SIGTERM).
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SendAdvert { priority: u8 },
    AddVips,
    RemoveVips,
    SendGarp,
    Notify { state: State, reason: String },
}

#[derive(Debug)]
pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    track_delta: i32,
    track_fault: bool,
    link_up: bool,
    master_down_at: Option<Instant>,
    adver_at: Option<Instant>,
    garp_at: Option<Instant>,
    garp_reclaim_at: Option<Instant>,
    /// The first gratuitous ARPs of a preemption (see `garp_preempt_delay`).
    garp_first_at: Option<Instant>,
    /// When we last discarded a lower-priority Master's advert as a preempting Backup.
    lower_master_heard: Option<Instant>,
    /// Set while a stopping Master waits for its successor.
    handover_until: Option<Instant>,
    /// VIPs still held after handing over, released at this time.
    release_at: Option<Instant>,
    /// Stop once the pending release is done (successor heard during a graceful stop).
    stop_after_release: bool,
    preempt_from: Option<Instant>,
    stopped: bool,
    /// Primary address of the current Master as last heard.
    master: Option<Ipv4Addr>,
}

impl Fsm {
    pub fn new(cfg: FsmConfig) -> Fsm {
        Fsm {
            cfg,
            state: State::Initialize,
            track_delta: 0,
            track_fault: false,
            link_up: true,
            master_down_at: None,
            adver_at: None,
            garp_at: None,
            garp_reclaim_at: None,
            garp_first_at: None,
            lower_master_heard: None,
            handover_until: None,
            release_at: None,
            stop_after_release: false,
            preempt_from: None,
            stopped: false,
            master: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// True once a shutdown has completed (VIPs released): the runner may exit.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// True while a stopping Master still holds its VIPs, waiting for its successor.
    pub fn handing_over(&self) -> bool {
        self.handover_until.is_some()
    }

    pub fn master(&self) -> Option<Ipv4Addr> {
        match self.state {
            State::Master => Some(self.cfg.primary_ip),
            State::Backup => self.master,
            _ => None,
        }
    }

    pub fn base_priority(&self) -> u8 {
        self.cfg.priority
    }

    /// keepalived semantics: base 255 is never changed; otherwise clamp(base + delta, 1, 254).
    pub fn effective_priority(&self) -> u8 {
        if self.cfg.priority == 255 {
            return 255;
        }
        (i32::from(self.cfg.priority) + self.track_delta).clamp(1, 254) as u8
    }

    /// Skew_Time = (256 - Priority) / 256 s (§6.1).
    pub fn skew_time(&self) -> Duration {
        Duration::from_secs(256 - u64::from(self.effective_priority())) / 256
    }

    /// Master_Down_Interval = 3 x Advertisement_Interval + Skew_Time (§6.1).
    pub fn master_down_interval(&self) -> Duration {
        self.cfg.advert_int * 3 + self.skew_time()
    }

    fn faulty(&self) -> bool {
        self.track_fault || !self.link_up
    }

    /// When the runner must call `poll` next.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let timers: [Option<Instant>; 5] = match self.state {
            State::Backup => [self.master_down_at, self.release_at, None, None, None],
            State::Master => [
                self.adver_at,
                self.garp_at,
                self.handover_until,
                self.garp_reclaim_at,
                self.garp_first_at,
            ],
            State::Initialize | State::Fault => [self.release_at, None, None, None, None],
        };
        timers.into_iter().flatten().min()
    }

    /// Fires every timer that is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.release_at) {
            self.release_at = None;
            out.push(Action::RemoveVips);
            if self.stop_after_release {
                self.stopped = true;
                return out;
            }
        }
        match self.state {
            State::Backup if due(self.master_down_at) => {
                self.become_master(now, "master down timer fired", &mut out);
            }
            State::Master => {
                if due(self.handover_until) {
                    self.finish_stop(
                        "handover: no new master heard within 3 x advert_int",
                        &mut out,
                    );
                    return out;
                }
                if due(self.adver_at) {
                    let prio = if self.handing_over() {
                        0
                    } else {
                        self.effective_priority()
                    };
                    out.push(Action::SendAdvert { priority: prio });
                    self.adver_at = Some(now + self.cfg.advert_int);
                }
                let reclaim = due(self.garp_reclaim_at);
                if reclaim {
                    self.garp_reclaim_at = None;
                }
                let first = due(self.garp_first_at);
                if first {
                    self.garp_first_at = None;
                }
                let burst = due(self.garp_at);
                if burst {
                    self.garp_at =
                        (!self.cfg.garp_refresh.is_zero()).then(|| now + self.cfg.garp_refresh);
                }
                if (reclaim || burst || first) && !self.handing_over() {
                    out.push(Action::SendGarp);
                }
            }
            _ => {}
        }
        out
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match event {
            Event::Startup => self.startup(now, &mut out),
            Event::AdvertReceived { src, priority } => self.advert(now, src, priority, &mut out),
            Event::TrackingChanged {
                delta,
                fault,
                reason,
            } => {
                let before = self.effective_priority();
                self.track_delta = delta;
                self.track_fault = fault;
                self.tracking_changed(now, before, &reason, &mut out);
            }
            Event::LinkChanged { up } => {
                let before = self.effective_priority();
                self.link_up = up;
                let reason = if up { "link up" } else { "link down" };
                self.tracking_changed(now, before, reason, &mut out);
            }
            Event::VipsMissing => {
                if self.state == State::Master && !self.handing_over() {
                    out.push(Action::AddVips);
                    out.push(Action::SendGarp);
                }
            }
            Event::Shutdown => self.shutdown(now, &mut out),
        }
        out
    }

    fn startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            return;
        }
        self.preempt_from = Some(now + self.cfg.preempt_delay);
        if self.faulty() {
            self.enter_fault("fault at startup", out);
        } else if self.cfg.priority == 255 {
            self.become_master(now, "address owner (priority 255)", out);
        } else {
            self.enter_backup(now, "startup", out);
        }
    }

    fn advert(&mut self, now: Instant, src: Ipv4Addr, priority: u8, out: &mut Vec<Action>) {
        match self.state {
            State::Master if self.handing_over() => {
                if priority > 0 {
                    self.master = Some(src);
                    self.clear_timers();
                    self.state = State::Initialize;
                    if self.cfg.release_grace.is_zero() {
                        self.finish_stop(&format!("handover: new master {src} heard"), out);
                    } else {
                        self.release_at = Some(now + self.cfg.release_grace);
                        self.stop_after_release = true;
                        out.push(Action::Notify {
                            state: State::Initialize,
                            reason: format!("handover: new master {src} heard"),
                        });
                    }
                }
            }
            State::Master => {
                let mine = self.effective_priority();
                if priority == 0 {
                    // §6.4.3: another Master is leaving; assert ourselves at once.
                    out.push(Action::SendAdvert { priority: mine });
                    self.adver_at = Some(now + self.cfg.advert_int);
                } else if priority > mine || (priority == mine && src > self.cfg.primary_ip) {
                    self.adver_at = None;
                    self.garp_at = None;
                    self.garp_reclaim_at = None;
                    self.master = Some(src);
                    self.enter_backup(
                        now,
                        &format!("higher priority master {src} (priority {priority})"),
                        out,
                    );
                    if self.cfg.release_grace.is_zero() {
                        out.push(Action::RemoveVips);
                    } else {
                        self.release_at = Some(now + self.cfg.release_grace);
                    }
                } else {
                    // A lower-priority Master exists: a split brain is healing. Re-claim the
                    // VIPs in the LAN's ARP caches and make it yield now.
                    if self.cfg.garp_lower_prio_repeat {
                        out.push(Action::SendGarp);
                        self.schedule_reclaim(now);
                    }
                    out.push(Action::SendAdvert { priority: mine });
                    self.adver_at = Some(now + self.cfg.advert_int);
                }
            }
            State::Backup => {
                if priority == 0 {
                    self.master_down_at = Some(now + self.skew_time());
                } else if !self.may_preempt(now) || priority >= self.effective_priority() {
                    self.master = Some(src);
                    self.master_down_at = Some(now + self.master_down_interval());
                    self.lower_master_heard = None;
                } else {
                    // Discard; the Master_Down_Timer will make us preempt.
                    self.lower_master_heard = Some(now);
                }
            }
            State::Fault | State::Initialize => {}
        }
    }

    fn may_preempt(&self, now: Instant) -> bool {
        self.cfg.preempt && self.preempt_from.is_none_or(|t| now >= t)
    }

    fn tracking_changed(&mut self, now: Instant, before: u8, reason: &str, out: &mut Vec<Action>) {
        match self.state {
            State::Initialize => {}
            State::Fault => {
                if !self.faulty() {
                    self.enter_backup(now, reason, out);
                }
            }
            State::Master | State::Backup if self.faulty() => {
                if self.state == State::Master {
                    // Yield at once, like a stop: the peer takes over after its Skew_Time.
                    out.push(Action::SendAdvert { priority: 0 });
                    out.push(Action::RemoveVips);
                    self.handover_until = None;
                }
                self.enter_fault(reason, out);
            }
            State::Master => {
                let now_prio = self.effective_priority();
                if now_prio != before && !self.handing_over() {
                    out.push(Action::SendAdvert { priority: now_prio });
                    self.adver_at = Some(now + self.cfg.advert_int);
                }
            }
            State::Backup => {}
        }
    }

    fn shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Master if self.handing_over() => {}
            State::Master if self.cfg.graceful_handover => {
                out.push(Action::SendAdvert { priority: 0 });
                self.adver_at = Some(now + self.cfg.advert_int);
                self.garp_at = None;
                self.handover_until = Some(now + self.cfg.advert_int * 3);
            }
            State::Master => {
                out.push(Action::SendAdvert { priority: 0 });
                self.finish_stop("shutdown", out);
            }
            State::Backup | State::Fault => {
                self.clear_timers();
                if self.release_at.take().is_some() {
                    out.push(Action::RemoveVips);
                }
                self.state = State::Initialize;
                self.stopped = true;
                out.push(Action::Notify {
                    state: State::Initialize,
                    reason: "shutdown".into(),
                });
            }
            State::Initialize => {
                if self.release_at.take().is_some() {
                    out.push(Action::RemoveVips);
                }
                self.stopped = true;
            }
        }
    }

    fn finish_stop(&mut self, reason: &str, out: &mut Vec<Action>) {
        out.push(Action::RemoveVips);
        self.clear_timers();
        self.release_at = None;
        self.state = State::Initialize;
        self.stopped = true;
        out.push(Action::Notify {
            state: State::Initialize,
            reason: reason.into(),
        });
    }

    fn clear_timers(&mut self) {
        self.master_down_at = None;
        self.adver_at = None;
        self.garp_at = None;
        self.garp_reclaim_at = None;
        self.garp_first_at = None;
        self.handover_until = None;
    }

    fn schedule_reclaim(&mut self, now: Instant) {
        if !self.cfg.garp_reclaim.is_zero() {
            self.garp_reclaim_at = Some(now + self.cfg.garp_reclaim);
        }
    }

    fn become_master(&mut self, now: Instant, reason: &str, out: &mut Vec<Action>) {
        self.clear_timers();
        self.release_at = None;
        self.state = State::Master;
        let preempting = self
            .lower_master_heard
            .take()
            .is_some_and(|t| now.saturating_duration_since(t) <= self.master_down_interval());
        // VIPs and ARP caches first, then the advert: a stopping Master that releases its VIPs
        // on hearing us leaves no gap (make-before-break). When we preempt a live Master, the
        // ARPs wait a little so it can close its keep-alive connections first.
        out.push(Action::AddVips);
        if preempting && !self.cfg.garp_preempt_delay.is_zero() {
            self.garp_first_at = Some(now + self.cfg.garp_preempt_delay);
        } else {
            out.push(Action::SendGarp);
        }
        out.push(Action::SendAdvert {
            priority: self.effective_priority(),
        });
        self.adver_at = Some(now + self.cfg.advert_int);
        self.schedule_reclaim(now);
        self.garp_at = if !self.cfg.garp_master_delay.is_zero() {
            Some(now + self.cfg.garp_master_delay)
        } else if !self.cfg.garp_refresh.is_zero() {
            Some(now + self.cfg.garp_refresh)
        } else {
            None
        };
        out.push(Action::Notify {
            state: State::Master,
            reason: reason.into(),
        });
    }

    fn enter_backup(&mut self, now: Instant, reason: &str, out: &mut Vec<Action>) {
        self.clear_timers();
        self.state = State::Backup;
        self.master_down_at = Some(now + self.master_down_interval());
        out.push(Action::Notify {
            state: State::Backup,
            reason: reason.into(),
        });
    }

    fn enter_fault(&mut self, reason: &str, out: &mut Vec<Action>) {
        self.clear_timers();
        if self.release_at.take().is_some() {
            out.push(Action::RemoveVips);
        }
        self.state = State::Fault;
        out.push(Action::Notify {
            state: State::Fault,
            reason: reason.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 21);
    const LOWER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 20);
    const HIGHER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 22);
    const SEC: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);
    const GRACE: Duration = Duration::from_millis(250);

    fn cfg(priority: u8) -> FsmConfig {
        FsmConfig {
            priority,
            advert_int: SEC,
            preempt: true,
            preempt_delay: Duration::ZERO,
            graceful_handover: true,
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
        fn advert(&mut self, src: Ipv4Addr, priority: u8) -> Vec<Action> {
            self.event(Event::AdvertReceived { src, priority })
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
}
