//! Live reconfiguration of a running instance (SIGHUP): what a reload may change in place, the
//! words that describe it, and applying it to the runner without a transition.
//!
//! Only what the instance is bound to needs a restart: its interface, VRID, advert source address
//! and unicast peers (the socket). Everything else (priority, track weights, preempt and its
//! delay, advert_int, auth, garp settings, the VIP list) is applied in place: the FSM gets
//! `Event::Reconfigure` and a Master keeps its VIPs; added VIPs are put on the interface and
//! announced, removed ones released.

use super::fsm::{Action, Event, Fsm};
use super::packet::Expect;
use super::{Instance, RunCtx, LOG};
use crate::config::VrrpInstanceConfig;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Why a reload cannot be applied in place, if it cannot.
pub fn restart_needed(old: &VrrpInstanceConfig, new: &VrrpInstanceConfig) -> Option<&'static str> {
    if old.name != new.name {
        Some("name")
    } else if old.interface != new.interface {
        Some("interface")
    } else if old.virtual_router_id != new.virtual_router_id {
        Some("virtual_router_id")
    } else if old.version != new.version {
        // The socket and the advert format differ between VRRPv2 and VRRPv3.
        Some("version")
    } else if old.src_ip != new.src_ip {
        Some("src_ip")
    } else if old.unicast_peers != new.unicast_peers {
        Some("unicast_peers")
    } else if is_ipv6(old) != is_ipv6(new) {
        // IPv4 and IPv6 adverts go through different sockets from different sources.
        Some("virtual_ipaddress family")
    } else {
        None
    }
}

/// Whether the instance's VIPs are IPv6 (one family per instance, `config::vrrp_rules`).
pub fn is_ipv6(ic: &VrrpInstanceConfig) -> bool {
    ic.virtual_ipaddress
        .first()
        .and_then(|v| super::vip::parse_vip(v).ok())
        .is_some_and(|v| v.addr.is_ipv6())
}

/// The settings a reload changed, in words (`priority 100 -> 110`, `VIPs added [..]`).
/// Track and notify changes are the supervisor's and not listed.
pub fn describe(old: &VrrpInstanceConfig, new: &VrrpInstanceConfig) -> Vec<String> {
    let mut out = Vec::new();
    if old.priority != new.priority {
        out.push(format!("priority {} -> {}", old.priority, new.priority));
    }
    if old.preempt != new.preempt {
        out.push(format!("preempt {} -> {}", old.preempt, new.preempt));
    }
    if old.preempt_delay != new.preempt_delay {
        out.push(format!(
            "preempt_delay {:?} -> {:?}",
            old.preempt_delay.get(),
            new.preempt_delay.get()
        ));
    }
    if old.advert_int != new.advert_int {
        out.push(format!(
            "advert_int {:?} -> {:?}",
            old.advert_int.get(),
            new.advert_int.get()
        ));
    }
    if old.auth != new.auth {
        out.push("auth changed".into());
    }
    if old.garp != new.garp {
        out.push("garp settings changed".into());
    }
    if old.graceful_handover != new.graceful_handover {
        out.push(format!(
            "graceful_handover {} -> {}",
            old.graceful_handover, new.graceful_handover
        ));
    }
    if old.handover_to_silent_backup != new.handover_to_silent_backup {
        out.push(format!(
            "handover_to_silent_backup {} -> {}",
            old.handover_to_silent_backup, new.handover_to_silent_backup
        ));
    }
    let added: Vec<&String> = new
        .virtual_ipaddress
        .iter()
        .filter(|v| !old.virtual_ipaddress.contains(v))
        .collect();
    let removed: Vec<&String> = old
        .virtual_ipaddress
        .iter()
        .filter(|v| !new.virtual_ipaddress.contains(v))
        .collect();
    if !added.is_empty() {
        out.push(format!("VIPs added {added:?}"));
    }
    if !removed.is_empty() {
        out.push(format!("VIPs removed {removed:?}"));
    }
    out
}

impl Instance {
    /// Applies `ic` (already validated, `restart_needed` is `None`) in place.
    pub(super) async fn reload(
        &mut self,
        fsm: &mut Fsm,
        expect: &mut Expect,
        ic: VrrpInstanceConfig,
        ctx: &RunCtx,
    ) -> Vec<Action> {
        let what = describe(&self.cfg, &ic).join(", ");
        let settings = match super::Settings::of(&ic, self.socket.src()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: LOG, instance = %self.name, error = %format!("{e:#}"),
                    "reload not applied; the running settings stay");
                return Vec::new();
            }
        };
        let added: Vec<_> = settings
            .vips
            .iter()
            .filter(|v| !self.vips.iter().any(|o| o.addr == v.addr))
            .copied()
            .collect();
        let removed: Vec<_> = self
            .vips
            .iter()
            .filter(|o| !settings.vips.iter().any(|v| v.addr == o.addr))
            .copied()
            .collect();
        let holding = self.vips_added.load(Ordering::Relaxed);
        if holding {
            for v in &added {
                if let Err(e) = ctx
                    .netlink
                    .add(self.ifindex, *v, Some(settings.vip_lifetime_secs()))
                    .await
                {
                    tracing::error!(target: LOG, instance = %self.name, vip = %v, error = %e, "adding VIP failed");
                }
            }
        }
        for v in &removed {
            if holding {
                if let Err(e) = ctx.netlink.del(self.ifindex, *v).await {
                    tracing::error!(target: LOG, instance = %self.name, vip = %v, error = %e, "removing VIP failed");
                }
            }
        }
        let owner = &ctx.shared.vips;
        owner.set_served(removed.iter().map(|v| v.addr), false);
        owner.configure(added.iter().map(|v| v.addr));
        if self.vips_served.load(Ordering::Relaxed) {
            owner.set_served(added.iter().map(|v| v.addr), true);
        }
        self.apply(settings);
        *expect = self.expect();
        self.guard.reconfigure(&ic, self.ifindex, self.socket.src());
        self.cfg = ic;
        tracing::info!(target: LOG, instance = %self.name, changes = %what, state = fsm.state().as_str(),
            "VRRP settings applied in place (reload)");
        let base = self.fsm.priority;
        let vips = self.cfg.virtual_ipaddress.clone();
        self.with_status(ctx, |s| {
            s.base_priority = base;
            s.vips = vips;
            s.last_reload = Some(format!("reload: {what}"));
            // Applied in place, no transition: the reason shown is the reload's, not `startup`.
            if !what.is_empty() {
                s.last_reason = format!("reload: {what}");
            }
        });
        let mut out = fsm.handle(Instant::now(), Event::Reconfigure(self.fsm.clone()));
        if holding && !added.is_empty() {
            out.push(Action::SendGarp);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance from JSON (the config types are serde; no YAML parser needed here).
    fn inst(extra: serde_json::Value) -> VrrpInstanceConfig {
        let mut v = serde_json::json!({"name": "VI_1", "interface": "eth0",
            "virtual_router_id": 33, "priority": 100,
            "virtual_ipaddress": ["192.168.3.100/24"]});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_what_the_socket_is_bound_to_restarts() {
        let a = inst(serde_json::json!({}));
        assert_eq!(
            restart_needed(&a, &inst(serde_json::json!({"priority": 110}))),
            None
        );
        assert_eq!(
            restart_needed(&a, &inst(serde_json::json!({"advert_int": "2s"}))),
            None
        );
        assert_eq!(
            restart_needed(
                &a,
                &inst(serde_json::json!({"unicast_peers": ["192.168.3.22"]}))
            ),
            Some("unicast_peers")
        );
        let mut b = a.clone();
        b.virtual_router_id = 34;
        assert_eq!(restart_needed(&a, &b), Some("virtual_router_id"));
        b = a.clone();
        b.interface = "eth1".into();
        assert_eq!(restart_needed(&a, &b), Some("interface"));
    }

    #[test]
    fn changes_are_described_in_words() {
        let a = inst(serde_json::json!({}));
        let mut b = a.clone();
        b.priority = 110;
        b.virtual_ipaddress.push("192.168.3.101/24".into());
        assert_eq!(
            describe(&a, &b),
            vec![
                "priority 100 -> 110".to_string(),
                "VIPs added [\"192.168.3.101/24\"]".to_string()
            ]
        );
        assert!(describe(&a, &a).is_empty());
    }
}
