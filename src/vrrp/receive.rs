//! The receive path of an instance: a raw packet in, the §7.1 checks (`packet::Expect`, or
//! `packet_v3` for version 3), the HMAC replay guard, counting and rate-limited logging of
//! drops, then the event for the FSM. Config mismatches go to `peers`.

use super::fsm::{Action, Event, Fsm};
use super::packet::{self, Auth, DropReason, Expect};
use super::{packet_v3, unix_ms, Instance, RunCtx, LOG};
use crate::log_limit::RateLimit;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

impl Instance {
    pub(super) fn on_packet(
        &self,
        fsm: &mut Fsm,
        expect: &Expect,
        pkt: &[u8],
        ctx: &RunCtx,
        logs: &mut RateLimit,
    ) -> Vec<Action> {
        let now = Instant::now();
        let src = pkt
            .get(12..16)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        if src == self.socket.src() {
            return Vec::new(); // our own advert (unicast to ourselves or looped back)
        }
        if self.fsm.version3 {
            return self.on_packet_v3(fsm, expect, pkt, ctx, logs, now);
        }
        // HMAC adverts whose tag verified still face the replay guard, mismatched ones too
        // (they run the election as well).
        let verdict = match expect.check(pkt) {
            Ok(acc) => self.replay_check(acc.src, acc.advert.auth).map(|()| acc),
            Err(r) if r.is_config_mismatch() => {
                let sender = packet::decode_ipv4(pkt)
                    .ok()
                    .and_then(|(ip, m)| Some((ip.src, packet::decode(m).ok()?.auth)));
                match sender {
                    Some((s, auth)) => self.replay_check(s, auth).and(Err(r)),
                    None => Err(r),
                }
            }
            Err(r) => Err(r),
        };
        match verdict {
            Ok(acc) => {
                let prio = acc.advert.priority;
                self.count_accepted(fsm, acc.src, prio, ctx, logs, now);
                fsm.handle(
                    now,
                    Event::AdvertReceived {
                        src: acc.src,
                        priority: prio,
                    },
                )
            }
            Err(reason) if reason.is_config_mismatch() => {
                self.on_mismatch(fsm, pkt, &reason, ctx, logs)
            }
            Err(reason) => self.on_drop(reason, src, ctx, logs, now),
        }
    }

    /// Counts an accepted advert; a lower-priority one is logged (rate-limited).
    fn count_accepted(
        &self,
        fsm: &Fsm,
        src: Ipv4Addr,
        prio: u8,
        ctx: &RunCtx,
        logs: &mut RateLimit,
        now: Instant,
    ) {
        let ours = fsm.effective_priority();
        self.with_status(ctx, |s| {
            s.adverts_received += 1;
            if prio == 0 {
                s.priority_zero_received += 1;
            } else if prio < ours {
                s.lower_priority_adverts += 1;
            }
        });
        if prio > 0 && prio < ours {
            // A Backup that thinks it is Master, or a rogue: keepalived logs these too.
            if let Some(n) = logs.allow("lower_priority", now) {
                tracing::info!(target: LOG, instance = %self.name, %src,
                    priority = prio, ours, suppressed = n, "lower-priority advert heard");
            }
        }
    }

    /// Counts and logs (rate-limited) a dropped packet.
    fn on_drop(
        &self,
        reason: DropReason,
        src: Ipv4Addr,
        ctx: &RunCtx,
        logs: &mut RateLimit,
        now: Instant,
    ) -> Vec<Action> {
        if let DropReason::OtherVrid(v) = reason {
            if self.sibling_vrids.contains(&v) {
                return Vec::new();
            }
        }
        let counter = reason.counter();
        self.with_status(ctx, |s| {
            *s.drops.entry(counter.to_string()).or_insert(0) += 1
        });
        if let Some(n) = logs.allow(counter, now) {
            tracing::warn!(target: LOG, instance = %self.name, %src, reason = %reason,
                suppressed = n, "dropped VRRP packet");
        }
        Vec::new()
    }

    /// The VRRPv3 receive path (RFC 5798 §7.1): no auth, the interval is the Master's to set.
    fn on_packet_v3(
        &self,
        fsm: &mut Fsm,
        expect: &Expect,
        pkt: &[u8],
        ctx: &RunCtx,
        logs: &mut RateLimit,
        now: Instant,
    ) -> Vec<Action> {
        let ex = packet_v3::ExpectV3 {
            vrid: expect.vrid,
            addrs: expect.addrs.iter().map(|a| IpAddr::V4(*a)).collect(),
            unicast_peers: expect
                .unicast_peers
                .iter()
                .map(|a| IpAddr::V4(*a))
                .collect(),
        };
        match ex.check_ipv4(pkt) {
            Ok(acc) => {
                let IpAddr::V4(src) = acc.src else {
                    return Vec::new();
                };
                let prio = acc.advert.priority;
                if acc.addr_list_mismatch && prio != 255 {
                    // As in v2 (issue 26.2): dropped, recorded, and still a Master to elect.
                    let got = acc
                        .advert
                        .addrs
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V4(v) => Some(*v),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                    let reason = DropReason::AddrListMismatch {
                        got,
                        want: expect.addrs.clone(),
                    };
                    return self.mismatch_heard(fsm, src, prio, &reason, ctx, logs);
                }
                self.count_accepted(fsm, src, prio, ctx, logs, now);
                fsm.handle(
                    now,
                    Event::AdvertV3 {
                        src,
                        priority: acc.advert.priority,
                        max_adver_int: acc.advert.interval(),
                    },
                )
            }
            Err(reason) => {
                let src = pkt
                    .get(12..16)
                    .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.on_drop(reason, src, ctx, logs, now)
            }
        }
    }

    /// The replay guard for HMAC adverts (a no-op for other auth types).
    fn replay_check(&self, src: Ipv4Addr, auth: Auth) -> Result<(), DropReason> {
        let Some(seq) = auth.seq() else {
            return Ok(());
        };
        let mut guard = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        guard.check(src, seq, unix_ms()).map_err(DropReason::Replay)
    }
}
