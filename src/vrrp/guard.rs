//! The VIP guard (issue 23.2 below 1 s adverts): a small process per VRRP instance that
//! outlives a crashed fdfs-ha and removes its stale VIPs the moment the peer has taken over.
//!
//! The Master's VIPs carry a kernel lifetime it renews with every advert (`vip::Netlink::add`),
//! so after a kill -9 they stay until the peer has taken over and then expire. Kernel lifetimes
//! are whole seconds, checked on whole-second boundaries: below 1 s adverts a stale VIP would
//! outlive the takeover by up to 1-2 s. The guard closes that:
//!
//! ```text
//!   fdfs-ha (instance) --stdin pipe--> fdfs-ha vip-guard
//!     Setup {config, ifindex, src}        remembers the latest
//!     Held(true) / Held(false)            whether the VIPs are on the interface
//!     Bye                                 clean stop: exit, do nothing
//!     EOF without Bye, Held(true)         the daemon died holding VIPs:
//!         note our VIPs with a lifetime and their `tstamp` (last renewal), open a raw VRRP
//!         socket, wait for a valid advert of our VRID from another router with priority > 0
//!         (the peer is Master now), wait `grace`, delete those VIPs still carrying the same
//!         `tstamp`, exit. Exits doing nothing once none is left unrenewed (expired, or a new
//!         fdfs-ha on this node renewed or re-added them: its stamp differs) or the lifetime
//!         window is over.
//! ```
//! This module owns the protocol on the pipe and the guard's decisions, pure and tested;
//! `spawn` the daemon's side, `process` the guard's I/O.

mod process;
mod spawn;

pub use process::main;
pub use spawn::{enable, Guard};

use super::auth_hmac::ReplayGuard;
use super::packet::{Auth, Expect};
use super::packet_v3::ExpectV3;
use super::socket6::Meta6;
use super::vip::{AddrState, Vip};
use crate::config::VrrpInstanceConfig;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// One line on the guard's stdin (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Msg {
    /// The instance's settings (at start and after each reload applied in place).
    Setup(Box<Setup>),
    /// The VIPs are (true) or are no longer (false) on the interface.
    Held(bool),
    /// Clean stop: the instance released its VIPs itself.
    Bye,
}

/// What the guard needs to recognise the peer's adverts and our VIPs. The config travels over
/// the pipe, never argv (its auth may hold secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    pub cfg: VrrpInstanceConfig,
    pub ifindex: u32,
    /// The instance's advert source address.
    pub src: IpAddr,
    /// Log as JSON (the daemon's `log.format`).
    pub json_log: bool,
}

impl Msg {
    pub fn encode(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// None for anything else (a line cut short by the daemon's death included).
    pub fn decode(line: &str) -> Option<Msg> {
        serde_json::from_str(line).ok()
    }
}

/// The guard while the daemon lives.
#[derive(Debug, Default)]
pub struct Attached {
    setup: Option<Setup>,
    held: bool,
}

impl Attached {
    /// Takes one message; false once the guard has nothing more to do (Bye).
    pub fn on_msg(&mut self, m: Msg) -> bool {
        match m {
            Msg::Setup(s) => self.setup = Some(*s),
            Msg::Held(h) => self.held = h,
            Msg::Bye => return false,
        }
        true
    }

    /// The pipe closed without Bye: the daemon died. Some when it held VIPs (guard them).
    pub fn on_eof(self) -> Option<Setup> {
        self.setup.filter(|_| self.held)
    }
}

/// Our VIPs present when the daemon died that carry a kernel lifetime (added by fdfs-ha; one
/// without is the operator's or the address owner's and is never touched).
pub fn guarded(vips: &[Vip], present: &[AddrState]) -> Vec<AddrState> {
    present
        .iter()
        .filter(|p| p.valid.is_some() && vips.iter().any(|v| v.addr == p.vip.addr))
        .copied()
        .collect()
}

/// Of the `guarded` VIPs, those still present and not renewed since (same `tstamp`): stale.
/// A new fdfs-ha instance on this node that added or renewed one changed its stamp.
pub fn stale(guarded: &[AddrState], now: &[AddrState]) -> Vec<Vip> {
    guarded
        .iter()
        .filter(|g| {
            now.iter()
                .any(|n| n.vip.addr == g.vip.addr && n.tstamp == g.tstamp && n.valid.is_some())
        })
        .map(|g| g.vip)
        .collect()
}

/// How long a stale VIP stays after the peer's first advert: requests already received here
/// can still be answered (the peer's gratuitous ARPs steer new ones away), and the peer's
/// ARPs (keepalived sends them after its advert) are on the wire. A quarter of the interval,
/// at most the graceful handover's grace.
pub fn grace(advert_int: Duration) -> Duration {
    (advert_int / 4).min(super::VIP_RELEASE_GRACE)
}

/// The instance's own receive checks, as the guard applies them.
pub struct Checks {
    pub version3: bool,
    pub v2: Expect,
    pub v3: ExpectV3,
    pub replay: ReplayGuard,
}

impl Checks {
    /// The advert in `pkt` (`meta` for IPv6) as (sender, priority), if it passes the instance's
    /// §7.1 checks, address list included (a peer advertising other VIPs is not taking over
    /// ours), and for HMAC the replay guard.
    pub fn accept(&mut self, pkt: &[u8], meta: Option<Meta6>, now_ms: u64) -> Option<(IpAddr, u8)> {
        if let Some(m) = meta {
            let acc = self.v3.check_ipv6(m.src, m.dst, m.hop_limit, pkt).ok()?;
            return (!acc.addr_list_mismatch).then_some((acc.src, acc.advert.priority));
        }
        if self.version3 {
            let acc = self.v3.check_ipv4(pkt).ok()?;
            return (!acc.addr_list_mismatch).then_some((acc.src, acc.advert.priority));
        }
        let acc = self.v2.check(pkt).ok()?;
        if let Auth::Hmac(_) = acc.advert.auth {
            let seq = acc.advert.auth.seq()?;
            self.replay.check(acc.src, seq, now_ms).ok()?;
        }
        Some((IpAddr::V4(acc.src), acc.advert.priority))
    }
}

/// Whether an accepted advert says another router is Master now: not from this node (our
/// addresses), and not priority 0 (a Master releasing).
pub fn peer_is_master(src: IpAddr, priority: u8, own: &[IpAddr]) -> bool {
    priority > 0 && !own.contains(&src) && src != IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// What the orphaned guard does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Listen for adverts until then.
    Wait(Instant),
    /// Delete the stale VIPs now, then exit.
    Delete { master: IpAddr },
    /// Exit doing nothing.
    Exit(&'static str),
}

/// The orphaned guard's clock: the lifetime window and the grace after the peer's advert.
#[derive(Debug, Clone)]
pub struct Watch {
    deadline: Instant,
    grace: Duration,
    tick: Duration,
    master: Option<(IpAddr, Instant)>,
}

impl Watch {
    /// From the daemon's death (`eof`): its VIPs were renewed at most `lifetime_secs` before
    /// and the kernel removes them by then, with up to a second of slack (whole-second checks).
    pub fn new(eof: Instant, advert_int: Duration, lifetime_secs: u32) -> Watch {
        Watch {
            deadline: eof + Duration::from_secs(u64::from(lifetime_secs) + 1),
            grace: grace(advert_int),
            // How often the VIPs are re-read while nothing is heard.
            tick: advert_int.clamp(Duration::from_millis(50), Duration::from_millis(250)),
            master: None,
        }
    }

    /// A peer's advert was heard at `now` (the first one counts).
    pub fn heard_master(&mut self, src: IpAddr, now: Instant) {
        self.master.get_or_insert((src, now + self.grace));
    }

    /// The next step at `now`, `stale_left` being whether any guarded VIP is still stale.
    pub fn next(&self, now: Instant, stale_left: bool) -> Step {
        if !stale_left {
            return Step::Exit("no stale VIP left (expired, removed, or renewed by a new run)");
        }
        if let Some((master, at)) = self.master {
            if now >= at {
                return Step::Delete { master };
            }
            return Step::Wait(at);
        }
        if now >= self.deadline {
            return Step::Exit("the VIPs' lifetime is over and no peer was heard");
        }
        Step::Wait((now + self.tick).min(self.deadline))
    }
}

#[cfg(test)]
mod tests;
