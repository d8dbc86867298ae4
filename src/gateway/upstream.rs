//! Requests to storages: pooled keep-alive connections, connect/read timeouts, and nginx's
//! `proxy_next_upstream error timeout http_500 http_502 http_503 http_504` retry over a group's
//! storages.
//!
//! Only GET/HEAD without a body are ever sent, so retrying on another storage is always safe;
//! once response bytes reach the client nothing is retried (a failure then aborts the body).
//! A storage killed or stopping fails before its answer's first byte (refused, reset, closed,
//! or 503 from its overloaded/stopping server): the request goes to the group's next ACTIVE
//! storage and the client sees nothing (issue 24).

use super::balancer::Balancer;
use super::directory::StorageNode;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::UpstreamConfig;

/// Why no usable response came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// Every storage of the group is marked down (nginx: "no live upstreams").
    NoLiveUpstream,
    /// Last attempt failed to connect or broke.
    Failed,
    /// Last attempt timed out.
    Timeout,
}

impl FetchError {
    pub fn status(self) -> StatusCode {
        match self {
            FetchError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

pub struct Upstreams {
    client: Client<HttpConnector, Empty<Bytes>>,
    balancer: Mutex<Balancer>,
    read_timeout: Duration,
    connect_timeout: Duration,
    weights: BTreeMap<String, u32>,
    /// Attempts sent to storages (tests count these).
    pub attempts: AtomicU64,
    /// Failed attempts per storage, by [`FAILURE_REASONS`] (metrics); a storage that leaves the
    /// view leaves this table too (`retain`), so it is bounded by the cluster.
    failures: Mutex<BTreeMap<SocketAddr, [u64; 3]>>,
}

/// Why an attempt failed: connect/transport error, timeout, or a 500/502/503/504 answer.
pub const FAILURE_REASONS: [&str; 3] = ["error", "timeout", "http_5xx"];

impl Upstreams {
    pub fn new(cfg: &UpstreamConfig, weights: BTreeMap<String, u32>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout.get()));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(cfg.keepalive)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Upstreams {
            client,
            balancer: Mutex::new(Balancer::new(cfg.max_fails, cfg.fail_timeout.get())),
            read_timeout: cfg.read_timeout.get(),
            connect_timeout: cfg.connect_timeout.get(),
            weights,
            attempts: AtomicU64::new(0),
            failures: Mutex::default(),
        }
    }

    fn weight(&self, n: &StorageNode) -> u32 {
        let keys = [
            n.http_addr().to_string(),
            SocketAddr::new(n.ip, n.port).to_string(),
            n.ip.to_string(),
        ];
        keys.iter()
            .find_map(|k| self.weights.get(k).copied())
            .unwrap_or(1)
    }

    /// Sends `method path_and_query` to the group's storages until one answers with something
    /// other than 500/502/503/504, trying each storage at most once.
    pub async fn fetch(
        &self,
        nodes: &[StorageNode],
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, FetchError> {
        let candidates: Vec<(SocketAddr, u32)> = nodes
            .iter()
            .map(|n| (n.http_addr(), self.weight(n)))
            .collect();
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last_err = FetchError::NoLiveUpstream;
        let mut last_bad: Option<Response<Incoming>> = None;
        loop {
            let pick = self
                .balancer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pick(&candidates, &tried, Instant::now());
            let Some(addr) = pick else {
                break;
            };
            tried.push(addr);
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let outcome = self.attempt(addr, method, path_and_query, headers).await;
            let ok = matches!(&outcome, Ok(r) if !retryable(r.status()));
            self.balancer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .report(addr, ok, Instant::now());
            let failed = match &outcome {
                _ if ok => None,
                Ok(_) => Some(2),
                Err(FetchError::Timeout) => Some(1),
                Err(_) => Some(0),
            };
            if let Some(i) = failed {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(addr)
                    .or_default()[i] += 1;
            }
            match outcome {
                Ok(r) if ok => return Ok(r),
                Ok(r) => {
                    tracing::warn!(upstream = %addr, status = %r.status(), "storage answered a gateway error; trying the next");
                    last_bad = Some(r);
                }
                Err(e) => {
                    tracing::warn!(upstream = %addr, error = ?e, "storage failed; trying the next");
                    last_err = e;
                    last_bad = None;
                }
            }
        }
        // nginx passes the last storage's own 502/504 on when every storage failed that way.
        match last_bad {
            Some(r) => Ok(r),
            None => Err(last_err),
        }
    }

    /// One request to `addr` (a peer gateway): no balancer, no retry, the same timeouts.
    pub async fn send(
        &self,
        addr: SocketAddr,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, FetchError> {
        self.attempt(addr, method, path_and_query, headers).await
    }

    async fn attempt(
        &self,
        addr: SocketAddr,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, FetchError> {
        let uri: http::Uri = format!("http://{addr}{path_and_query}")
            .parse()
            .map_err(|_| FetchError::Failed)?;
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers.clone();
        let budget = self.connect_timeout + self.read_timeout;
        match tokio::time::timeout(budget, self.client.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                if e.is_connect() && format!("{e:?}").contains("timed out") {
                    Err(FetchError::Timeout)
                } else {
                    Err(FetchError::Failed)
                }
            }
            Err(_) => Err(FetchError::Timeout),
        }
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Failed attempts so far: (storage, reason, count) for each non-zero count.
    pub fn failures(&self) -> Vec<(SocketAddr, &'static str, u64)> {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.iter()
            .flat_map(|(a, n)| {
                FAILURE_REASONS
                    .iter()
                    .zip(n)
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| (*a, *r, *n))
            })
            .collect()
    }

    /// Drops balancer state and failure counts of storages no longer in the view.
    pub fn retain(&self, keep: impl Fn(&SocketAddr) -> bool) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|a, _| keep(a));
        self.balancer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(keep);
    }
}

/// Answers after which another storage is asked (the last one's is passed on if all fail).
fn retryable(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}
