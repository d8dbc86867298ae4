//! The tracker's metrics and status section, read from its cluster view at scrape time:
//! storages per group and status, requests, connections.

use crate::metrics::{labels, set_counter, set_gauge, CounterFamily, GaugeFamily, Source};
use crate::tracker::service::Tracker;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct TrackerSource(pub Arc<Tracker>);

impl Source for TrackerSource {
    fn register(&self, reg: &mut Registry) {
        let t = &self.0;
        let storages = GaugeFamily::default();
        {
            let st = t.state.lock().unwrap_or_else(|p| p.into_inner());
            for (name, g) in &st.cluster.groups {
                let mut by: std::collections::BTreeMap<String, u64> = Default::default();
                for s in g.storages.values() {
                    *by.entry(s.status.to_string()).or_default() += 1;
                }
                for (status, n) in by {
                    set_gauge(
                        &storages,
                        labels([("group", name), ("status", &status)]),
                        n as f64,
                    );
                }
            }
        }
        t.requests.register(reg);
        reg.register(
            "tracker_storages",
            "storages the tracker knows, by group and status",
            storages,
        );
        for (name, help, v) in [
            (
                "tracker_bad_requests",
                "malformed tracker requests",
                &t.counters.bad_requests,
            ),
            (
                "tracker_connections",
                "tracker connections accepted",
                &t.counters.connections,
            ),
            (
                "tracker_connections_refused",
                "tracker connections refused",
                &t.counters.refused_connections,
            ),
        ] {
            let f = CounterFamily::default();
            set_counter(&f, Vec::new(), v.load(Ordering::Relaxed));
            reg.register(name, help, f);
        }
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.0.logs.counts()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        let groups: Vec<serde_json::Value> = st
            .cluster
            .groups
            .iter()
            .map(|(name, g)| {
                let storages: Vec<serde_json::Value> = g
                    .storages
                    .values()
                    .map(|s| {
                        serde_json::json!({
                            "id": s.id, "ip": s.ip, "port": s.port,
                            "status": s.status.to_string(),
                            "free_mb": s.free_mb(), "total_mb": s.total_mb(),
                        })
                    })
                    .collect();
                serde_json::json!({ "group": name, "storages": storages })
            })
            .collect();
        Some(serde_json::json!({ "groups": groups }))
    }
}
