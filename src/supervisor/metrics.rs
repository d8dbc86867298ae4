//! The node's own metrics, read from the status board at scrape time: VRRP instances, probes and
//! components. Read from the board's JSON document so the scrape and `fdfs-ha status` always
//! agree, and counters a VRRP instance adds to its status appear here without a second path.

use crate::metrics::{labels, set_counter, set_gauge, CounterFamily, GaugeFamily, Source};
use crate::supervisor::status::lock;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;

/// Weak: the board owns the metrics that own this source.
pub struct BoardSource(pub std::sync::Weak<std::sync::Mutex<crate::supervisor::status::Board>>);

const VRRP_STATES: &[&str] = &["INIT", "BACKUP", "MASTER", "FAULT"];
const RUN_STATES: &[&str] = &["starting", "running", "backoff", "stopping", "stopped"];
const HEALTH: &[&str] = &["unknown", "healthy", "failing"];

fn u(v: &Value) -> Option<f64> {
    v.as_u64().map(|n| n as f64).or_else(|| v.as_f64())
}

impl Source for BoardSource {
    fn register(&self, reg: &mut Registry) {
        let Some(board) = self.0.upgrade() else {
            return;
        };
        let doc = lock(&board).to_json();
        vrrp(reg, &doc);
        probes(reg, &doc);
        components(reg, &doc);
    }
}

fn vrrp(reg: &mut Registry, doc: &Value) {
    let state = GaugeFamily::default();
    let prio = GaugeFamily::default();
    let drops = CounterFamily::default();
    let handing_over = GaugeFamily::default();
    let mismatches = CounterFamily::default();
    let counters: [(&str, &str, CounterFamily); 5] = [
        (
            "adverts_sent",
            "vrrp_adverts_sent",
            CounterFamily::default(),
        ),
        (
            "adverts_received",
            "vrrp_adverts_received",
            CounterFamily::default(),
        ),
        ("transitions", "vrrp_transitions", CounterFamily::default()),
        (
            "lower_priority_adverts",
            "vrrp_lower_priority_adverts_received",
            CounterFamily::default(),
        ),
        (
            "priority_zero_received",
            "vrrp_priority_zero_adverts_received",
            CounterFamily::default(),
        ),
    ];
    for i in doc["instances"].as_array().into_iter().flatten() {
        let name = i["name"].as_str().unwrap_or("");
        let cur = i["state"].as_str().unwrap_or("UNKNOWN");
        for s in VRRP_STATES {
            let v = if *s == cur { 1.0 } else { 0.0 };
            set_gauge(&state, labels([("vrrp_instance", name), ("state", s)]), v);
        }
        for kind in ["base", "effective"] {
            if let Some(p) = u(&i[format!("{kind}_priority")]) {
                set_gauge(&prio, labels([("vrrp_instance", name), ("kind", kind)]), p);
            }
        }
        for (reason, n) in i["drops"].as_object().into_iter().flatten() {
            if let Some(n) = n.as_u64() {
                set_counter(
                    &drops,
                    labels([("vrrp_instance", name), ("reason", reason)]),
                    n,
                );
            }
        }
        let h = if i["handing_over"] == true { 1.0 } else { 0.0 };
        set_gauge(&handing_over, labels([("vrrp_instance", name)]), h);
        for m in i["peer_mismatches"].as_array().into_iter().flatten() {
            let peer = m["peer"].as_str().unwrap_or("");
            let kind = m["kind"].as_str().unwrap_or("");
            if let Some(n) = m["count"].as_u64() {
                set_counter(
                    &mismatches,
                    labels([("vrrp_instance", name), ("peer", peer), ("kind", kind)]),
                    n,
                );
            }
        }
        for (key, _, fam) in &counters {
            if let Some(n) = i[*key].as_u64() {
                set_counter(fam, labels([("vrrp_instance", name)]), n);
            }
        }
    }
    reg.register(
        "vrrp_state",
        "VRRP state per instance (1 for the current one)",
        state,
    );
    reg.register(
        "vrrp_priority",
        "VRRP priority per instance: configured (base) and after tracking (effective)",
        prio,
    );
    reg.register("vrrp_drops", "VRRP adverts dropped, by reason", drops);
    reg.register(
        "vrrp_handing_over",
        "1 while a stopping Master holds its VIPs until its successor is heard",
        handing_over,
    );
    reg.register(
        "vrrp_peer_config_mismatch_adverts",
        "authenticated adverts dropped for a config mismatch (advert_int, addr_list), by peer",
        mismatches,
    );
    for (_, metric, fam) in counters {
        reg.register(metric, metric.replace('_', " "), fam);
    }
}

fn probes(reg: &mut Registry, doc: &Value) {
    let health = GaugeFamily::default();
    let checks = CounterFamily::default();
    let failures = CounterFamily::default();
    let took = GaugeFamily::default();
    for p in doc["probes"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        let kind = p["kind"].as_str().unwrap_or("");
        let cur = p["health"].as_str().unwrap_or("");
        for h in HEALTH {
            let v = if *h == cur { 1.0 } else { 0.0 };
            set_gauge(
                &health,
                labels([("probe", name), ("kind", kind), ("health", h)]),
                v,
            );
        }
        set_counter(
            &checks,
            labels([("probe", name)]),
            p["checks"].as_u64().unwrap_or(0),
        );
        set_counter(
            &failures,
            labels([("probe", name)]),
            p["failures"].as_u64().unwrap_or(0),
        );
        if let Some(ms) = u(&p["last_took_ms"]) {
            set_gauge(&took, labels([("probe", name)]), ms / 1000.0);
        }
    }
    reg.register(
        "probe_health",
        "probe health (1 for the current one)",
        health,
    );
    reg.register("probe_checks", "probe checks run", checks);
    reg.register("probe_failures", "probe checks that failed", failures);
    reg.register_with_unit(
        "probe_last_duration",
        "how long the last check took",
        Unit::Seconds,
        took,
    );
}

fn components(reg: &mut Registry, doc: &Value) {
    let state = GaugeFamily::default();
    let restarts = CounterFamily::default();
    for c in doc["components"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("");
        let cur = c["state"].as_str().unwrap_or("");
        for s in RUN_STATES {
            let v = if *s == cur { 1.0 } else { 0.0 };
            set_gauge(&state, labels([("component", name), ("state", s)]), v);
        }
        set_counter(
            &restarts,
            labels([("component", name)]),
            c["restarts"].as_u64().unwrap_or(0),
        );
    }
    reg.register(
        "component_state",
        "component lifecycle state (1 for the current one)",
        state,
    );
    reg.register("component_restarts", "component restarts", restarts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::InstanceStatus;
    use std::net::Ipv4Addr;

    /// An instance status as the engine reports it, with every VRRP counter moved.
    pub(crate) fn instance_doc() -> Value {
        let mut s = InstanceStatus::new("VI_1", 100);
        s.state = "MASTER".into();
        s.effective_priority = 80;
        s.handing_over = true;
        s.adverts_sent = 12;
        s.adverts_received = 5;
        s.lower_priority_adverts = 3;
        s.priority_zero_received = 1;
        s.transitions = 2;
        s.drops.insert("advert_interval".into(), 4);
        s.record_mismatch(
            Ipv4Addr::new(192, 168, 3, 22),
            "advert_int",
            "2s".into(),
            "1s".into(),
            1,
        );
        serde_json::json!({ "instances": [serde_json::to_value(&s).unwrap()] })
    }

    #[test]
    fn vrrp_metrics_cover_state_priorities_adverts_transitions_drops_and_mismatches() {
        let mut reg = Registry::with_prefix("fdfs_ha");
        vrrp(&mut reg, &instance_doc());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        for line in [
            "fdfs_ha_vrrp_state{vrrp_instance=\"VI_1\",state=\"MASTER\"} 1",
            "fdfs_ha_vrrp_priority{vrrp_instance=\"VI_1\",kind=\"base\"} 100",
            "fdfs_ha_vrrp_priority{vrrp_instance=\"VI_1\",kind=\"effective\"} 80",
            "fdfs_ha_vrrp_adverts_sent_total{vrrp_instance=\"VI_1\"} 12",
            "fdfs_ha_vrrp_adverts_received_total{vrrp_instance=\"VI_1\"} 5",
            "fdfs_ha_vrrp_lower_priority_adverts_received_total{vrrp_instance=\"VI_1\"} 3",
            "fdfs_ha_vrrp_priority_zero_adverts_received_total{vrrp_instance=\"VI_1\"} 1",
            "fdfs_ha_vrrp_transitions_total{vrrp_instance=\"VI_1\"} 2",
            "fdfs_ha_vrrp_drops_total{vrrp_instance=\"VI_1\",reason=\"advert_interval\"} 4",
            "fdfs_ha_vrrp_handing_over{vrrp_instance=\"VI_1\"} 1",
            "fdfs_ha_vrrp_peer_config_mismatch_adverts_total{vrrp_instance=\"VI_1\",peer=\"192.168.3.22\",kind=\"advert_int\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
