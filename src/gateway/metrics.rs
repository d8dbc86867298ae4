//! The gateway cache's metrics, read from the cache at scrape time.

use crate::metrics::{labels, set_counter, set_gauge, CounterFamily, GaugeFamily, Source};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// The gateway cache: hits, misses, bytes and entries, read at scrape time.
pub struct CacheSource(pub Arc<crate::gateway::cache::Cache>);

impl Source for CacheSource {
    fn register(&self, reg: &mut Registry) {
        let c = &self.0;
        let hits = c.hits.load(std::sync::atomic::Ordering::Relaxed);
        let misses = c.misses.load(std::sync::atomic::Ordering::Relaxed);
        let lookups = CounterFamily::default();
        set_counter(&lookups, labels([("result", "hit")]), hits);
        set_counter(&lookups, labels([("result", "miss")]), misses);
        reg.register(
            "gateway_cache_lookups",
            "gateway cache lookups by result",
            lookups,
        );
        let size = GaugeFamily::default();
        set_gauge(&size, Vec::new(), c.total_size() as f64);
        reg.register_with_unit(
            "gateway_cache_size",
            "bytes the gateway cache holds",
            Unit::Bytes,
            size,
        );
        let entries = GaugeFamily::default();
        set_gauge(&entries, Vec::new(), c.entries() as f64);
        reg.register(
            "gateway_cache_entries",
            "objects in the gateway cache",
            entries,
        );
    }
}
