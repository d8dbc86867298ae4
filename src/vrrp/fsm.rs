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
//! passes; only then does it release them. A Master that has heard no peer since it started
//! releases at once, as keepalived does (a Backup is silent, so it may not be alone: with
//! `handover_to_silent_backup` it waits one advert interval for one to answer instead).
//!
//! Beyond the RFC (fast preemption): a preempting Backup whose followed Master now advertises a
//! priority below ours takes over after Skew_Time, as after a priority 0, not after the full
//! Master_Down_Interval (RFC 3768 §6.4.2 would discard the advert and wait).

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The timing and policy knobs of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    /// Configured priority, 1..=255 (255 = address owner).
    pub priority: u8,
    pub advert_int: Duration,
    /// RFC 5798 timing: Skew_Time scales with the Master's advert interval, which a Backup
    /// learns from its adverts (`Event::AdvertV3`). False: RFC 3768 (skew in seconds).
    pub version3: bool,
    /// keepalived's `nopreempt` is `false`.
    pub preempt: bool,
    /// No preemption before `start + preempt_delay`.
    pub preempt_delay: Duration,
    /// Make-before-break on shutdown (see the module comment).
    pub graceful_handover: bool,
    /// ... also when no peer was heard since the start: wait one advert interval for a silent
    /// Backup instead of releasing at once.
    pub handover_to_silent_backup: bool,
    /// Our advert source address: breaks equal-priority ties (§6.4.3).
    pub primary_ip: IpAddr,
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
    AdvertReceived { src: IpAddr, priority: u8 },
    /// An advert that passed authentication but was dropped (§7.1) only because its settings
    /// differ from ours (advert_int, address list). Beyond the RFC: it still says "a peer is
    /// Master here", so the election runs as if it had been accepted (priority, then address):
    /// a Master yields to a winner, a Backup follows it. Otherwise both sides drop each other's
    /// adverts and both hold the VIPs for good (issue 26.2).
    MismatchedAdvert { src: IpAddr, priority: u8 },
    /// A valid VRRPv3 advert: as `AdvertReceived`, plus the sender's Max Adver Int, which a
    /// Backup adopts as Master_Adver_Interval (RFC 5798 §6.4.2, §6.4.3).
    AdvertV3 {
        src: IpAddr,
        priority: u8,
        max_adver_int: Duration,
    },
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
    /// A reload changed settings applied in place (priority, preempt, intervals, garp, ...):
    /// no transition; a Master advertises a changed priority or interval at once, a Backup
    /// restarts its Master_Down_Timer from the new interval.
    Reconfigure(FsmConfig),
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
    master: Option<IpAddr>,
    /// The priority of the last advert we followed it for (see fast preemption).
    master_priority: u8,
    /// When a Master last answered a lower-priority advert, per source (see `answer_allowed`).
    answered: Vec<(IpAddr, Instant)>,
    /// When the running Master_Down_Timer was (re)started with a full interval: a priority
    /// change re-times it from here (None while it runs for Skew_Time only, after a priority 0).
    down_from: Option<Instant>,
    /// Whether any peer's advert (accepted or mismatched) was heard since the start. A Master
    /// that has heard none has no successor to wait for when it stops.
    peer_heard: bool,
    /// A stop that began with no peer heard: its wait for a successor is one advert interval.
    lone_stop: bool,
    /// VRRPv3 Master_Adver_Interval as learned from the Master (None: our own advert_int).
    master_adver_int: Option<Duration>,
}

/// At most this many sources are remembered for the answer rate limit; beyond, no answers.
const ANSWERED_SOURCES: usize = 64;

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
            master_priority: 0,
            answered: Vec::new(),
            down_from: None,
            peer_heard: false,
            lone_stop: false,
            master_adver_int: None,
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

    pub fn master(&self) -> Option<IpAddr> {
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

    /// Skew_Time = (256 - Priority) / 256 s (RFC 3768 §6.1); in VRRPv3
    /// ((256 - Priority) x Master_Adver_Interval) / 256 (RFC 5798 §6.1).
    pub fn skew_time(&self) -> Duration {
        let unit = if self.cfg.version3 {
            self.master_adver_interval()
        } else {
            Duration::from_secs(1)
        };
        unit * (256 - u32::from(self.effective_priority())) / 256
    }

    /// The Master's advert interval: learned from its VRRPv3 adverts, else our own.
    pub fn master_adver_interval(&self) -> Duration {
        match (self.cfg.version3, self.master_adver_int) {
            (true, Some(d)) => d,
            _ => self.cfg.advert_int,
        }
    }

    /// Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time (both RFCs, §6.1).
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval() * 3 + self.skew_time()
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
                let why = match (self.down_from, self.master, self.lower_master_heard) {
                    (None, Some(m), _) => format!("master {m} released (priority 0)"),
                    (_, _, Some(_)) => "preempting a lower-priority master".to_string(),
                    _ => "no master heard within Master_Down_Interval".to_string(),
                };
                self.become_master(now, &why, &mut out);
            }
            State::Master => {
                if due(self.handover_until) {
                    let why = if self.lone_stop {
                        "shutdown: no peer heard since start, none answered within advert_int"
                    } else {
                        "handover: no new master heard within 3 x advert_int"
                    };
                    self.finish_stop(why, &mut out);
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
            Event::AdvertReceived { src, priority } | Event::MismatchedAdvert { src, priority } => {
                if src != self.cfg.primary_ip {
                    self.peer_heard = true;
                }
                self.advert(now, src, priority, None, &mut out)
            }
            Event::AdvertV3 {
                src,
                priority,
                max_adver_int,
            } => {
                if src != self.cfg.primary_ip {
                    self.peer_heard = true;
                }
                self.advert(now, src, priority, Some(max_adver_int), &mut out)
            }
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
            Event::Reconfigure(cfg) => self.reconfigure(now, cfg, &mut out),
            Event::Shutdown => self.shutdown(now, &mut out),
        }
        out
    }

    fn reconfigure(&mut self, now: Instant, cfg: FsmConfig, out: &mut Vec<Action>) {
        let before = self.effective_priority();
        let old = std::mem::replace(&mut self.cfg, cfg);
        // preempt_delay counts from the start, not from the reload.
        if let Some(start) = self
            .preempt_from
            .and_then(|t| t.checked_sub(old.preempt_delay))
        {
            self.preempt_from = Some(start + self.cfg.preempt_delay);
        }
        let interval_changed = old.advert_int != self.cfg.advert_int;
        match self.state {
            State::Master if !self.handing_over() => {
                if interval_changed || before != self.effective_priority() {
                    out.push(Action::SendAdvert {
                        priority: self.effective_priority(),
                    });
                    self.adver_at = Some(now + self.cfg.advert_int);
                }
                if old.garp_refresh != self.cfg.garp_refresh {
                    self.garp_at =
                        (!self.cfg.garp_refresh.is_zero()).then(|| now + self.cfg.garp_refresh);
                }
            }
            State::Backup if interval_changed || before != self.effective_priority() => {
                self.retime_down_timer(now);
            }
            _ => {}
        }
    }

    /// Master_Down_Interval follows the effective priority (and interval) at once: the running
    /// timer is re-timed from when it was last started, never pushed later than a fresh start.
    /// A pending priority-0 takeover (Skew_Time only) is left alone. A pending early preemption
    /// (the followed Master dropped below us) is re-timed like a full timer: our priority moved,
    /// so the followed Master's next advert decides again.
    fn retime_down_timer(&mut self, now: Instant) {
        if let (Some(_), Some(from)) = (self.master_down_at, self.down_from) {
            self.master_down_at = Some((from + self.master_down_interval()).max(now));
        }
    }

    /// Takes over after Skew_Time at the latest: a deadline already nearer stays.
    fn take_over_after_skew(&mut self, now: Instant) {
        let at = now + self.skew_time();
        self.master_down_at = Some(self.master_down_at.map_or(at, |t| t.min(at)));
    }

    /// Starts the Master_Down_Timer with a full interval.
    fn start_down_timer(&mut self, now: Instant) {
        self.down_from = Some(now);
        self.master_down_at = Some(now + self.master_down_interval());
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

    fn advert(
        &mut self,
        now: Instant,
        src: IpAddr,
        priority: u8,
        interval: Option<Duration>,
        out: &mut Vec<Action>,
    ) {
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
                    // §6.4.3: another Master is leaving; assert ourselves at once (once per
                    // interval and source: a forged stream must not make us an amplifier).
                    // It held the VIPs too (a split brain healing), so hosts that followed it
                    // must learn our MAC again: we stay Master, we announce every VIP.
                    if self.answer_allowed(now, src) {
                        out.push(Action::SendGarp);
                        out.push(Action::SendAdvert { priority: mine });
                        self.adver_at = Some(now + self.cfg.advert_int);
                    }
                } else if priority > mine || (priority == mine && src > self.cfg.primary_ip) {
                    self.adver_at = None;
                    self.garp_at = None;
                    self.garp_reclaim_at = None;
                    self.master = Some(src);
                    self.enter_backup(
                        now,
                        &if priority > mine {
                            format!("peer {src} higher priority ({priority} > {mine})")
                        } else {
                            format!("peer {src} same priority {priority}, higher address")
                        },
                        out,
                    );
                    if interval.is_some() {
                        // RFC 5798 §6.4.3: adopt the new Master's interval.
                        self.master_adver_int = interval;
                        self.start_down_timer(now);
                    }
                    if self.cfg.release_grace.is_zero() {
                        out.push(Action::RemoveVips);
                    } else {
                        self.release_at = Some(now + self.cfg.release_grace);
                    }
                } else if self.answer_allowed(now, src) {
                    // A lower-priority Master exists: a split brain is healing. Re-claim the
                    // VIPs in the LAN's ARP caches and make it yield now. Once per advert
                    // interval per source (issue 23.4: 20 forged adverts made 105 ARPs).
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
                    // Only the Master we follow can announce that it is leaving: a priority 0
                    // from anyone else (forged, or a stale Backup) is ignored (issue 23.4).
                    if self.master == Some(src) {
                        self.take_over_after_skew(now);
                        self.down_from = None;
                    }
                } else if !self.may_preempt(now) || priority >= self.effective_priority() {
                    if interval.is_some() {
                        // RFC 5798 §6.4.2: Master_Adver_Interval follows the Master's adverts.
                        self.master_adver_int = interval;
                    }
                    self.master = Some(src);
                    self.master_priority = priority;
                    self.start_down_timer(now);
                    self.lower_master_heard = None;
                } else {
                    // Discard; the Master_Down_Timer will make us preempt.
                    self.lower_master_heard = Some(now);
                    if self.master == Some(src) && self.master_priority >= self.effective_priority()
                    {
                        // Beyond the RFC: the Master we follow dropped below us (its tracked
                        // service died). Its advert already tells us the election result, so
                        // preempt after Skew_Time, as for a priority 0, instead of 3 intervals
                        // more; skew keeps the highest Backup first. Anyone else's lower advert
                        // (forged, stale) still only lets the running timer expire (issue 23.4),
                        // and so does our own priority rising above an unchanged Master (a node
                        // starting up): preempting then waits as the RFC says.
                        self.take_over_after_skew(now);
                    }
                }
            }
            State::Fault | State::Initialize => {}
        }
    }

    /// Whether a Master may answer `src`'s lower-priority (or priority-0) advert now: once per
    /// advert interval per source, for at most `ANSWERED_SOURCES` sources at a time.
    fn answer_allowed(&mut self, now: Instant, src: IpAddr) -> bool {
        let every = self.cfg.advert_int;
        self.answered
            .retain(|(_, t)| now.saturating_duration_since(*t) < every);
        if self.answered.iter().any(|(a, _)| *a == src) || self.answered.len() >= ANSWERED_SOURCES {
            return false;
        }
        self.answered.push((src, now));
        true
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
            State::Backup => {
                if self.effective_priority() != before {
                    self.retime_down_timer(now);
                }
            }
        }
    }

    fn shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Master if self.handing_over() => {}
            State::Master => {
                out.push(Action::SendAdvert { priority: 0 });
                let silent = !self.peer_heard;
                // How long the VIPs stay for a successor to advertise (make-before-break).
                let wait = match self.cfg.graceful_handover {
                    false => None,
                    true if !silent => Some(self.cfg.advert_int * 3),
                    // No peer advert since we started: we are alone, or our peer is a Backup,
                    // which is silent until it takes over. By default release at once, as
                    // keepalived (issue 26.4); with `handover_to_silent_backup` wait one
                    // interval, within which a Backup answers our priority 0 (its Skew_Time).
                    true if self.cfg.handover_to_silent_backup => Some(self.cfg.advert_int),
                    true => None,
                };
                match wait {
                    Some(wait) => {
                        self.adver_at = Some(now + self.cfg.advert_int);
                        self.garp_at = None;
                        self.handover_until = Some(now + wait);
                        self.lone_stop = silent;
                    }
                    None if self.cfg.graceful_handover => self
                        .finish_stop("shutdown: no peer heard since start, released at once", out),
                    None => self.finish_stop("shutdown", out),
                }
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
        self.down_from = None;
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
        // A Master advertises at its own interval; a learned one was the old Master's.
        self.master_adver_int = None;
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
        // RFC 5798 §6.4.1: a new Backup starts from its own interval.
        self.master_adver_int = None;
        self.start_down_timer(now);
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
mod peer_tests;
#[cfg(test)]
mod preempt_tests;
#[cfg(test)]
mod tests;
