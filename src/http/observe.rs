//! What the HTTP servers report per request: the `/metrics` families (by method and status, body
//! bytes, latency) and the access log line (nginx `combined` + request time + cache status).
//!
//! Wraps a server's handler, so neither server counts anything itself. Body bytes are the
//! response's `Content-Length` (0 for HEAD), and the time is to the response head: the
//! streaming of a large body is not waited for. The gateway's cache status comes from the
//! `X-Cache` header it sets; a gateway response without one did not use the cache (`BYPASS`).

use super::body::Body;
use super::server::Counters;
use crate::access_log::{format_http, AccessLog, HttpEntry};
use crate::metrics::{set_counter, CounterFamily, HttpRequests, Source};
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// An HTTP server's metrics: its requests (from its [`Observer`]), its connections and its
/// refusals (from its server [`Counters`]).
pub struct HttpSource {
    pub component: &'static str,
    pub requests: HttpRequests,
    pub counters: Arc<Counters>,
}

impl Source for HttpSource {
    fn register(&self, reg: &mut prometheus_client::registry::Registry) {
        self.requests.register(reg);
        let c = self.component;
        for (name, help, v) in [
            (
                "connections",
                "connections accepted",
                &self.counters.connections,
            ),
            (
                "connections_refused",
                "connections refused at max_connections",
                &self.counters.connections_refused,
            ),
        ] {
            let f = CounterFamily::default();
            set_counter(&f, Vec::new(), v.load(Ordering::Relaxed));
            reg.register(format!("{c}_{name}"), format!("{c} {help}"), f);
        }
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.counters.logs.counts()
    }
}

#[derive(Clone)]
pub struct Observer {
    pub requests: HttpRequests,
    pub log: AccessLog,
    /// Gateway: answer `X-Cache: BYPASS` when the cache was not used.
    pub cache_header: bool,
}

impl Observer {
    pub fn new(component: &'static str, log: AccessLog, cache_header: bool) -> Self {
        Observer {
            requests: HttpRequests::new(component),
            log,
            cache_header,
        }
    }

    /// `handler`, reporting each request it answers.
    pub fn wrap<H, F>(
        self,
        handler: H,
    ) -> impl Fn(Request<Incoming>, SocketAddr) -> futures::future::BoxFuture<'static, Response<Body>>
           + Clone
           + Send
           + Sync
           + 'static
    where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        move |req, peer| {
            let obs = self.clone();
            let started = Instant::now();
            let time = SystemTime::now();
            let method = req.method().clone();
            let logged = obs.log.enabled().then(|| {
                let h = |n: http::header::HeaderName| {
                    req.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                (
                    req.uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".into()),
                    format!("{:?}", req.version()),
                    h(http::header::REFERER),
                    h(http::header::USER_AGENT),
                )
            });
            let fut = handler(req, peer);
            Box::pin(async move {
                let mut resp = fut.await;
                if obs.cache_header && !resp.headers().contains_key("x-cache") {
                    resp.headers_mut()
                        .insert("x-cache", HeaderValue::from_static("BYPASS"));
                }
                let secs = started.elapsed().as_secs_f64();
                let bytes = if method == http::Method::HEAD {
                    0
                } else {
                    resp.headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                obs.requests.observe(&method, resp.status(), bytes, secs);
                if let Some((target, version, referer, ua)) = logged {
                    let cache = resp.headers().get("x-cache").and_then(|v| v.to_str().ok());
                    obs.log.write(&format_http(&HttpEntry {
                        remote: peer.ip(),
                        time,
                        method: method.as_str(),
                        target: &target,
                        version: &version,
                        status: resp.status().as_u16(),
                        bytes,
                        referer: referer.as_deref(),
                        user_agent: ua.as_deref(),
                        request_secs: secs,
                        cache,
                    }));
                }
                resp
            })
        }
    }
}
