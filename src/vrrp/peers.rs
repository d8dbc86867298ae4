//! Peers whose adverts pass authentication but whose settings differ from ours (issue 26.2).
//!
//! RFC 3768 §7.1 makes us drop such adverts (another advert_int, another address list), and we
//! do: they are counted by reason and never accepted. But a peer that sends them is still a
//! Master on this link; ignoring it entirely leaves both nodes holding the VIPs for good (each
//! drops the other's adverts). So the drop is also recorded per peer and kind (status, metrics,
//! an ERROR line with both values) and handed to the FSM as `Event::MismatchedAdvert`, which
//! runs the election as usual: we never stay Master against a peer that wins it.

use super::fsm::{Action, Event, Fsm};
use super::packet::{self, DropReason};
use super::{Instance, RunCtx, LOG};
use crate::clock::unix_millis;
use crate::log_limit::RateLimit;
use std::net::IpAddr;
use std::time::Instant;

fn list(addrs: &[IpAddr]) -> String {
    let v: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    format!("[{}]", v.join(" "))
}

/// The mismatch `reason` in words: (kind, theirs, ours), or None if it is not one.
pub fn mismatch_values(reason: &DropReason) -> Option<(&'static str, String, String)> {
    match reason {
        DropReason::IntervalMismatch { got, want } => {
            Some(("advert_int", format!("{got}s"), format!("{want}s")))
        }
        DropReason::AddrListMismatch { got, want } => Some(("addr_list", list(got), list(want))),
        _ => None,
    }
}

impl Instance {
    /// An authenticated advert dropped for a config mismatch: counted, recorded, logged
    /// (rate-limited) and still fed to the election.
    pub(super) fn on_mismatch(
        &self,
        fsm: &mut Fsm,
        pkt: &[u8],
        reason: &DropReason,
        ctx: &RunCtx,
        logs: &mut RateLimit,
    ) -> Vec<Action> {
        if mismatch_values(reason).is_none() {
            return Vec::new();
        }
        // It passed the checks that decode it, so this cannot fail; no advert, no event.
        let Ok((ip, msg)) = packet::decode_ipv4(pkt) else {
            return Vec::new();
        };
        let Ok(adv) = packet::decode(msg) else {
            return Vec::new();
        };
        self.mismatch_heard(fsm, IpAddr::V4(ip.src), adv.priority, reason, ctx, logs)
    }

    /// The mismatched advert of `src` (VRRPv2 or v3), decoded: recorded and fed to the election.
    pub(super) fn mismatch_heard(
        &self,
        fsm: &mut Fsm,
        src: IpAddr,
        priority: u8,
        reason: &DropReason,
        ctx: &RunCtx,
        logs: &mut RateLimit,
    ) -> Vec<Action> {
        let now = Instant::now();
        let Some((kind, theirs, ours)) = mismatch_values(reason) else {
            return Vec::new();
        };
        let counter = reason.counter();
        self.with_status(ctx, |s| {
            *s.drops.entry(counter.to_string()).or_insert(0) += 1;
            s.record_mismatch(src, kind, theirs.clone(), ours.clone(), unix_millis());
        });
        if let Some(n) = logs.allow(counter, now) {
            tracing::error!(target: LOG, instance = %self.name, peer = %src, kind, %theirs, %ours,
                priority, suppressed = n,
                "peer config mismatch: its adverts are dropped (RFC 3768 7.1) but it still counts as a Master for the election");
        }
        fsm.handle(now, Event::MismatchedAdvert { src, priority })
    }
}
