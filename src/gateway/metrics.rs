//! The gateway's metrics, read at scrape time: its HTTP requests, connections and refusals; the
//! cache (lookups by result, bytes, entries); failed attempts per storage; the forwarding of
//! purges and warm-ups to the peer gateways.

use crate::gateway::cache::Cache;
use crate::gateway::peers::PeerCounters;
use crate::gateway::upstream::Upstreams;
use crate::http::observe::HttpSource;
use crate::metrics::{labels, set_counter, set_gauge, CounterFamily, GaugeFamily, Source};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct GatewaySource {
    pub http: HttpSource,
    pub cache: Option<Arc<Cache>>,
    pub upstreams: Arc<Upstreams>,
    pub peers: Arc<PeerCounters>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Source for GatewaySource {
    fn register(&self, reg: &mut Registry) {
        self.http.register(reg);
        if let Some(c) = &self.cache {
            cache(reg, c);
        }
        let failures = CounterFamily::default();
        for (addr, reason, n) in self.upstreams.failures() {
            let l = labels([("storage", &addr.to_string()), ("reason", reason)]);
            set_counter(&failures, l, n);
        }
        reg.register(
            "gateway_upstream_failures",
            "requests to a storage that failed (and went to the next one), by storage and reason",
            failures,
        );
        let attempts = CounterFamily::default();
        set_counter(&attempts, Vec::new(), get(&self.upstreams.attempts));
        reg.register(
            "gateway_upstream_attempts",
            "requests sent to storages",
            attempts,
        );
        let p = &self.peers;
        let purges = CounterFamily::default();
        // `purge_forwarded` counts every forward, failed ones included.
        let failed = get(&p.purge_failed);
        let ok = get(&p.purge_forwarded).saturating_sub(failed);
        set_counter(&purges, labels([("result", "ok")]), ok);
        set_counter(&purges, labels([("result", "failed")]), failed);
        reg.register(
            "gateway_peer_purges",
            "purges forwarded to the peer gateways, by result",
            purges,
        );
        let warm = CounterFamily::default();
        for (result, c) in [
            ("queued", &p.warm_queued),
            ("dropped", &p.warm_dropped),
            ("sent", &p.warm_sent),
            ("failed", &p.warm_failed),
        ] {
            set_counter(&warm, labels([("result", result)]), get(c));
        }
        reg.register(
            "gateway_peer_warmups",
            "cache misses passed to the peer gateways to warm their caches, by outcome",
            warm,
        );
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.http.refusals()
    }
}

/// Hits, misses, expired entries refetched, bytes and entries.
fn cache(reg: &mut Registry, c: &Cache) {
    let lookups = CounterFamily::default();
    for (result, n) in [
        ("hit", &c.hits),
        ("miss", &c.misses),
        ("expired", &c.expired),
    ] {
        set_counter(&lookups, labels([("result", result)]), get(n));
    }
    reg.register(
        "gateway_cache_lookups",
        "gateway cache lookups by result (expired: a stale entry was dropped and refetched)",
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
