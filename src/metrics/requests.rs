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
use std::sync::{Arc, OnceLock};

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
pub struct HttpRequests {
    all: Requests,
    /// GET and HEAD handles per status code, filled on first use: a request then costs no
    /// label formatting (`status.to_string()`) and no family lookups (a lock and a hash each).
    hot: Arc<[OnceLock<Handles>]>,
}

/// One label set's metrics; clones share the family's values.
struct Handles {
    count: Counter,
    /// Created on the first request that moved bytes, as the family lookup does.
    bytes: OnceLock<Counter>,
    latency: Histogram,
}

const STATUS_MIN: u16 = 100;
const STATUSES: usize = 500;

fn hot_slot(method: &http::Method, status: http::StatusCode) -> Option<usize> {
    let m = match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        _ => return None,
    };
    let s = status.as_u16().checked_sub(STATUS_MIN)? as usize;
    (s < STATUSES).then_some(m * STATUSES + s)
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        _ => "other",
    }
}

impl HttpRequests {
    pub fn new(component: &'static str) -> Self {
        HttpRequests {
            all: Requests::new(component),
            hot: (0..2 * STATUSES).map(|_| OnceLock::new()).collect(),
        }
    }

    pub fn observe(&self, method: &http::Method, status: http::StatusCode, bytes: u64, secs: f64) {
        let m = method_label(method);
        let Some(slot) = hot_slot(method, status) else {
            let result = Cow::Owned(status.as_u16().to_string());
            return self.all.observe(m, result, bytes, secs);
        };
        let label = || -> L {
            [
                ("command", Cow::Borrowed(m)),
                ("result", Cow::Owned(status.as_u16().to_string())),
            ]
        };
        let h = self.hot[slot].get_or_init(|| {
            let l = label();
            Handles {
                count: self.all.count.get_or_create_owned(&l),
                bytes: OnceLock::new(),
                latency: self.all.latency.get_or_create_owned(&l),
            }
        });
        h.count.inc();
        if bytes > 0 {
            h.bytes
                .get_or_init(|| self.all.bytes.get_or_create_owned(&label()))
                .inc_by(bytes);
        }
        h.latency.observe(secs);
    }
}

impl Source for HttpRequests {
    fn register(&self, reg: &mut Registry) {
        self.all.register(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

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

    /// The pre-resolved GET/HEAD handles render exactly what the family lookups do: same
    /// label sets, no bytes series for a request that moved none.
    #[test]
    fn http_handles_match_family_lookups() {
        use http::{Method, StatusCode};
        let render = |r: Arc<dyn Source>| {
            let m = Metrics::new();
            m.set_source("storage_http", r);
            m.render()
        };
        let fast = HttpRequests::new("storage_http");
        let slow = Requests::new("storage_http");
        let reqs = [
            (Method::GET, StatusCode::OK, 4096, 0.001),
            (Method::GET, StatusCode::OK, 4096, 0.3),
            (Method::HEAD, StatusCode::OK, 0, 0.0001),
            (Method::GET, StatusCode::NOT_FOUND, 0, 0.0002),
            (Method::GET, StatusCode::NOT_MODIFIED, 0, 0.0002),
            (Method::POST, StatusCode::METHOD_NOT_ALLOWED, 19, 0.0002),
            (Method::GET, StatusCode::PARTIAL_CONTENT, 100, 0.002),
        ];
        for (m, s, b, t) in reqs {
            fast.observe(&m, s, b, t);
            slow.observe(method_label(&m), s.as_u16().to_string().into(), b, t);
        }
        let (f, s) = (render(Arc::new(fast.clone())), render(Arc::new(slow)));
        let lines = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(lines(&f), lines(&s));
        assert!(f.contains("fdfs_ha_storage_http_requests_total{command=\"GET\",result=\"200\"} 2"));
        assert!(!f.contains("content_bytes_total{command=\"HEAD\""), "{f}");
        assert!(
            !f.contains("content_bytes_total{command=\"GET\",result=\"404\""),
            "{f}"
        );
    }
}
