//! Prometheus metrics: the registry of metric sources and the `/metrics` exposition.
//!
//! Owns naming and encoding only. The supervisor creates one [`Metrics`] per process and hands it
//! to the status endpoint and to the components it starts; each component adds a [`Source`]
//! when it starts (replacing the one of its previous run). At every scrape each source registers
//! its families into a fresh `prometheus_client` registry with the `fdfs_ha` prefix:
//! - live families (counters and histograms updated on the request path, e.g. [`Requests`]) are
//!   cloned in: a `Family` is a shared handle, so cloning costs nothing and keeps counting;
//! - state the component already keeps (storage stats, sync lag, VRRP status, tracker cluster)
//!   is read then, so the request path pays nothing for it.
//!
//! The sources live with what they read (`tracker::metrics`, `storage::metrics`,
//! `gateway::metrics`, `supervisor::metrics`), so this module depends on none of them.
//!
//! Refusals are one family for the whole node, `refusals_total{component,reason}`: each source
//! lists its own ([`Source::refusals`], usually its rate-limited log's counts per kind), and the
//! source's name is the component.
//!
//! The output is OpenMetrics text (Prometheus scrapes it natively): counters end in `_total`,
//! units are in the names (`_seconds`, `_bytes`).

mod requests;

pub use requests::{HttpRequests, Requests};

use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Something that adds metric families at scrape time.
pub trait Source: Send + Sync {
    fn register(&self, reg: &mut Registry);
    /// A section of the status document (`GET /status`), if this source has one.
    fn status(&self) -> Option<serde_json::Value> {
        None
    }
    /// Requests and connections this source refused so far, per reason.
    fn refusals(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The process's metric sources, by name (`node`, `tracker`, `storage`, `gateway`, ...).
#[derive(Clone, Default)]
pub struct Metrics {
    sources: Arc<Mutex<BTreeMap<String, Arc<dyn Source>>>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the source called `name` (a restarted component replaces its own).
    pub fn set_source(&self, name: &str, source: Arc<dyn Source>) {
        self.lock().insert(name.to_string(), source);
    }

    pub fn remove_source(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<dyn Source>>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status sections of the sources that have one, by source name.
    pub fn status_sections(&self) -> serde_json::Map<String, serde_json::Value> {
        let sources: Vec<(String, Arc<dyn Source>)> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sources
            .into_iter()
            .filter_map(|(k, s)| Some((k, s.status()?)))
            .collect()
    }

    /// The exposition text of every source.
    pub fn render(&self) -> String {
        let sources: Vec<(String, Arc<dyn Source>)> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut reg = Registry::with_prefix("fdfs_ha");
        let refusals = CounterFamily::default();
        for (name, s) in &sources {
            s.register(&mut reg);
            for (reason, n) in s.refusals() {
                set_counter(
                    &refusals,
                    labels([("component", name), ("reason", reason)]),
                    n,
                );
            }
        }
        reg.register(
            "refusals",
            "connections and requests refused (or cut off), by component and reason; each kind is \
             also logged, at most one line per 10 s with the count held back",
            refusals,
        );
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

/// Label sets as name/value pairs: the families built at scrape time use these.
pub type Labels = Vec<(String, String)>;

/// Builds a label set from `(name, value)` pairs.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A gauge family filled at scrape time.
pub type GaugeFamily = prometheus_client::metrics::family::Family<
    Labels,
    prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
>;

/// A counter family filled at scrape time from a total the component keeps.
pub type CounterFamily = prometheus_client::metrics::family::Family<
    Labels,
    prometheus_client::metrics::counter::Counter<u64>,
>;

/// Sets a counter of a scrape-time family to `v` (the family is fresh, so add = set).
pub fn set_counter(f: &CounterFamily, l: Labels, v: u64) {
    f.get_or_create(&l).inc_by(v);
}

pub fn set_gauge(f: &GaugeFamily, l: Labels, v: f64) {
    f.get_or_create(&l).set(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(CounterFamily);
    impl Source for One {
        fn register(&self, reg: &mut Registry) {
            reg.register("things", "Things seen", self.0.clone());
        }
    }

    struct Refuses;
    impl Source for Refuses {
        fn register(&self, _: &mut Registry) {}
        fn refusals(&self) -> Vec<(&'static str, u64)> {
            vec![("not_allowed", 3)]
        }
    }

    #[test]
    fn refusals_of_every_source_are_one_family_by_component() {
        let m = Metrics::new();
        m.set_source("tracker", Arc::new(Refuses));
        m.set_source("storage", Arc::new(Refuses));
        let text = m.render();
        assert_eq!(text.matches("# TYPE fdfs_ha_refusals counter").count(), 1);
        for c in ["tracker", "storage"] {
            let line =
                format!("fdfs_ha_refusals_total{{component=\"{c}\",reason=\"not_allowed\"}} 3");
            assert!(text.contains(&line), "{text}");
        }
    }

    #[test]
    fn sources_render_with_prefix_and_total_suffix() {
        let m = Metrics::new();
        let f = CounterFamily::default();
        m.set_source("one", Arc::new(One(f.clone())));
        f.get_or_create(&labels([("kind", "a")])).inc();
        let text = m.render();
        assert!(text.contains("# TYPE fdfs_ha_things counter"), "{text}");
        assert!(
            text.contains("fdfs_ha_things_total{kind=\"a\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        m.remove_source("one");
        assert!(!m.render().contains("things"));
    }
}
