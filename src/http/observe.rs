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
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
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

/// The gateway's cache status header; a static name, so inserting it copies nothing.
pub const X_CACHE: http::header::HeaderName = http::header::HeaderName::from_static("x-cache");

#[derive(Clone)]
pub struct Observer {
    pub requests: HttpRequests,
    pub log: AccessLog,
    /// Gateway: answer `X-Cache: BYPASS` when the cache was not used.
    pub cache_header: bool,
}

/// What [`Observer::finish`] needs from the request, taken before the handler consumes it.
pub struct Started {
    started: Instant,
    method: http::Method,
    /// (time, target, version, referer, user agent), only when the access log is on.
    logged: Option<Logged>,
}

type Logged = (
    SystemTime,
    String,
    &'static str,
    Option<String>,
    Option<String>,
);

impl Observer {
    pub fn new(component: &'static str, log: AccessLog, cache_header: bool) -> Self {
        Observer {
            requests: HttpRequests::new(component),
            log,
            cache_header,
        }
    }

    /// `handler`, reporting each request it answers. The observer is shared (one reference
    /// count per request) and the handler's future is not boxed: no allocation per request.
    pub fn wrap<H, F>(
        self,
        handler: H,
    ) -> impl Fn(Request<Incoming>, SocketAddr) -> Observed<F> + Clone + Send + Sync + 'static
    where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let obs = Arc::new(self);
        move |req, peer| {
            let started = obs.start(&req);
            Observed {
                fut: handler(req, peer),
                done: Some((obs.clone(), started, peer)),
            }
        }
    }

    /// Called as a request arrives.
    pub fn start(&self, req: &Request<Incoming>) -> Started {
        let started = Instant::now();
        let logged = self.log.enabled().then(|| {
            let h = |n: http::header::HeaderName| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            (
                SystemTime::now(),
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
                version_name(req.version()),
                h(http::header::REFERER),
                h(http::header::USER_AGENT),
            )
        });
        Started {
            started,
            method: req.method().clone(),
            logged,
        }
    }

    /// Called with the handler's response: counts it, logs it.
    pub fn finish(&self, s: Started, peer: SocketAddr, mut resp: Response<Body>) -> Response<Body> {
        if self.cache_header && !resp.headers().contains_key(&X_CACHE) {
            resp.headers_mut()
                .insert(X_CACHE, HeaderValue::from_static("BYPASS"));
        }
        let secs = s.started.elapsed().as_secs_f64();
        let bytes = if s.method == http::Method::HEAD {
            0
        } else {
            resp.headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        self.requests.observe(&s.method, resp.status(), bytes, secs);
        if let Some((time, target, version, referer, ua)) = s.logged {
            let cache = resp.headers().get(&X_CACHE).and_then(|v| v.to_str().ok());
            self.log.write(&format_http(&HttpEntry {
                remote: peer.ip(),
                time,
                method: s.method.as_str(),
                target: &target,
                version,
                status: resp.status().as_u16(),
                bytes,
                referer: referer.as_deref(),
                user_agent: ua.as_deref(),
                request_secs: secs,
                cache,
            }));
        }
        resp
    }
}

/// `Version`'s Debug text ("HTTP/1.1"), without formatting it per request.
fn version_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

pin_project_lite::pin_project! {
    /// A handler's future, reported to its observer when it answers.
    pub struct Observed<F> {
        #[pin]
        fut: F,
        done: Option<(Arc<Observer>, Started, SocketAddr)>,
    }
}

impl<F: Future<Output = Response<Body>>> Future for Observed<F> {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        let this = self.project();
        let resp = std::task::ready!(this.fut.poll(cx));
        Poll::Ready(match this.done.take() {
            Some((obs, started, peer)) => obs.finish(started, peer, resp),
            None => resp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_are_debug_text() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(version_name(v), format!("{v:?}"));
        }
    }
}
