//! The receive path of an instance: a raw packet in, the §7.1 checks (`packet::Expect`, or
//! `packet_v3` for version 3, over IPv4 or IPv6), the HMAC replay guard, counting and rate-limited logging of
//! drops, then the event for the FSM. Config mismatches go to `peers`.

use super::fsm::{Action, Event, Fsm};
use super::packet::{self, Auth, DropReason, Expect};
use super::socket6::Meta6;
use super::{packet_v3, Instance, RunCtx, LOG};
use crate::clock::unix_millis;
use crate::log_limit::RateLimit;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

impl Instance {
    pub(super) fn on_packet(
        &self,
        fsm: &mut Fsm,
        expect: &Expect,
        pkt: &[u8],
        meta: Option<Meta6>,
        ctx: &RunCtx,
        logs: &mut RateLimit,
    ) -> Vec<Action> {
        let now = Instant::now();
        if let Some(m) = meta {
            if IpAddr::V6(m.src) == self.socket.src() {
                return Vec::new(); // our own advert
            }
            let ex = self.expect_v3();
            let verdict = ex.check_ipv6(m.src, m.dst, m.hop_limit, pkt);
            return self.on_verdict_v3(fsm, verdict, IpAddr::V6(m.src), ctx, logs, now);
        }
        let src = pkt
            .get(12..16)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        if src == self.socket.src_v4() {
            return Vec::new(); // our own advert (unicast to ourselves or looped back)
        }
        if self.fsm.version3 {
            let verdict = self.expect_v3().check_ipv4(pkt);
            return self.on_verdict_v3(fsm, verdict, IpAddr::V4(src), ctx, logs, now);
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
                self.count_accepted(fsm, IpAddr::V4(acc.src), prio, ctx, logs, now);
                fsm.handle(
                    now,
                    Event::AdvertReceived {
                        src: IpAddr::V4(acc.src),
                        priority: prio,
                    },
                )
            }
            Err(reason) if reason.is_config_mismatch() => {
                self.on_mismatch(fsm, pkt, &reason, ctx, logs)
            }
            Err(reason) => self.on_drop(reason, IpAddr::V4(src), ctx, logs, now),
        }
    }

    /// Counts an accepted advert; a lower-priority one is logged (rate-limited).
    fn count_accepted(
        &self,
        fsm: &Fsm,
        src: IpAddr,
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
        src: IpAddr,
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

    /// What a received v3 advert must match (RFC 5798 §7.1).
    fn expect_v3(&self) -> packet_v3::ExpectV3 {
        packet_v3::ExpectV3 {
            vrid: self.vrid,
            addrs: self.vips.iter().map(|v| v.addr).collect(),
            unicast_peers: self.unicast_peers.iter().map(|a| IpAddr::V4(*a)).collect(),
        }
    }

    /// The VRRPv3 receive path (RFC 5798 §7.1), IPv4 or IPv6: no auth, the interval is the
    /// Master's to set. `src` is the packet's source, for the drop log.
    fn on_verdict_v3(
        &self,
        fsm: &mut Fsm,
        verdict: Result<packet_v3::AcceptedV3, DropReason>,
        src: IpAddr,
        ctx: &RunCtx,
        logs: &mut RateLimit,
        now: Instant,
    ) -> Vec<Action> {
        let acc = match verdict {
            Ok(acc) => acc,
            Err(reason) => return self.on_drop(reason, src, ctx, logs, now),
        };
        let prio = acc.advert.priority;
        if acc.addr_list_mismatch && prio != 255 {
            // As in v2 (issue 26.2): dropped, recorded, and still a Master to elect.
            let reason = DropReason::AddrListMismatch {
                got: acc.advert.addrs.clone(),
                want: self.vips.iter().map(|v| v.addr).collect(),
            };
            return self.mismatch_heard(fsm, acc.src, prio, &reason, ctx, logs);
        }
        self.count_accepted(fsm, acc.src, prio, ctx, logs, now);
        fsm.handle(
            now,
            Event::AdvertV3 {
                src: acc.src,
                priority: prio,
                max_adver_int: acc.advert.interval(),
            },
        )
    }

    /// The replay guard for HMAC adverts (a no-op for other auth types).
    fn replay_check(&self, src: Ipv4Addr, auth: Auth) -> Result<(), DropReason> {
        let Some(seq) = auth.seq() else {
            return Ok(());
        };
        let mut guard = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .check(src, seq, unix_millis())
            .map_err(DropReason::Replay)
    }
}
