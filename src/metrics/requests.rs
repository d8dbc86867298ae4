//! Live request families: count, bytes and latency per command and result.
//!
//! Shared by the FastDFS protocol servers (`storage`, `tracker`) and, with the status code as the
//! result, by the HTTP servers (`storage_http`, `gateway`). Label values are static words, so the
//! request path does not allocate for them.

use super::Source;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;

type L = [(&'static str, Cow<'static, str>); 2];

fn new_histogram() -> Histogram {
    // 0.25 ms .. 8 s: a 4 KiB upload on a local disk to a large download over a slow link.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// Requests of one server, labelled `command` and `result`.
#[derive(Clone, Debug)]
pub struct Requests {
    component: &'static str,
    count: Family<L, Counter>,
    bytes: Family<L, Counter>,
    latency: Family<L, Histogram, fn() -> Histogram>,
}

impl Requests {
    /// `component` starts the metric names: `fdfs_ha_<component>_requests_total`.
    pub fn new(component: &'static str) -> Self {
        Requests {
            component,
            count: Family::default(),
            bytes: Family::default(),
            latency: Family::new_with_constructor(new_histogram),
        }
    }

    /// One finished request: `bytes` of file content moved (0 for none), `secs` from its header
    /// to its answer.
    pub fn observe(&self, command: &'static str, result: Cow<'static, str>, bytes: u64, secs: f64) {
        let l: L = [("command", Cow::Borrowed(command)), ("result", result)];
        self.count.get_or_create(&l).inc();
        if bytes > 0 {
            self.bytes.get_or_create(&l).inc_by(bytes);
        }
        self.latency.get_or_create(&l).observe(secs);
    }
}

impl Source for Requests {
    fn register(&self, reg: &mut Registry) {
        let c = self.component;
        reg.register(
            format!("{c}_requests"),
            format!("{c} requests by command and result"),
            self.count.clone(),
        );
        reg.register_with_unit(
            format!("{c}_content"),
            format!("file content moved by {c} requests (upload and download bodies)"),
            Unit::Bytes,
            self.bytes.clone(),
        );
        reg.register_with_unit(
            format!("{c}_request_duration"),
            format!("{c} request latency, header to answer"),
            Unit::Seconds,
            self.latency.clone(),
        );
    }
}

/// Requests of an HTTP server (`storage_http`, `gateway`): by method and status code.
#[derive(Clone)]
pub struct HttpRequests(Requests);

impl HttpRequests {
    pub fn new(component: &'static str) -> Self {
        HttpRequests(Requests::new(component))
    }

    pub fn observe(&self, method: &http::Method, status: http::StatusCode, bytes: u64, secs: f64) {
        let m = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            _ => "other",
        };
        self.0
            .observe(m, Cow::Owned(status.as_u16().to_string()), bytes, secs);
    }
}

impl Source for HttpRequests {
    fn register(&self, reg: &mut Registry) {
        self.0.register(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;

    #[test]
    fn requests_count_bytes_and_latency() {
        let m = Metrics::new();
        let r = Requests::new("storage");
        m.set_source("storage", Arc::new(r.clone()));
        r.observe("upload", "ok".into(), 4096, 0.001);
        r.observe("upload", "ok".into(), 4096, 0.002);
        r.observe("download", "ENOENT".into(), 0, 0.0001);
        let t = m.render();
        assert!(
            t.contains("fdfs_ha_storage_requests_total{command=\"upload\",result=\"ok\"} 2"),
            "{t}"
        );
        assert!(
            t.contains(
                "fdfs_ha_storage_content_bytes_total{command=\"upload\",result=\"ok\"} 8192"
            ),
            "{t}"
        );
        assert!(t.contains("fdfs_ha_storage_request_duration_seconds_count{command=\"download\",result=\"ENOENT\"} 1"), "{t}");
    }
}
