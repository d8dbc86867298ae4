//! The other gateways of the VRRP pair (`gateway.peers`), so both front nodes' caches agree:
//! - a purge answered here is forwarded to every peer (once: the forwarded request carries
//!   `FORWARDED: purge`, which a peer never forwards again);
//! - every key this node had to fetch into its cache is sent to the peers as a `HEAD` carrying
//!   `FORWARDED: warm`; a peer's cache turns a HEAD miss into a full fill from the storages, so
//!   the Backup holds the Master's working set when the VIP moves to it.
//!
//! Why misses and not copies: the peer fetches from the storages itself, so the Master's uplink
//! does not carry every body twice, and only new content costs anything (hits send nothing).
//! The queue is bounded and drops on overflow (counted): a miss storm never grows memory and a
//! dead peer costs one timed-out request per key at most. Peers must be in each other's
//! `purge_allow`: a marked request from anyone else is refused.

use super::upstream::Upstreams;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Marks a request sent by a peer gateway: `purge` or `warm`.
pub const FORWARDED: &str = "x-fdfs-ha-forwarded";

/// Keys waiting to be sent to the peers; more are dropped.
const WARM_QUEUE: usize = 4096;
/// Warm-ups in flight at once (per node, across peers).
const WARM_CONCURRENCY: usize = 4;

/// What a marked request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Purge,
    Warm,
}

impl Marker {
    pub fn of(headers: &HeaderMap) -> Option<Marker> {
        match headers.get(FORWARDED)?.as_bytes() {
            b"purge" => Some(Marker::Purge),
            b"warm" => Some(Marker::Warm),
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct PeerCounters {
    pub warm_queued: AtomicU64,
    pub warm_dropped: AtomicU64,
    pub warm_sent: AtomicU64,
    pub warm_failed: AtomicU64,
    pub purge_forwarded: AtomicU64,
    pub purge_failed: AtomicU64,
}

pub struct Peers {
    addrs: Vec<SocketAddr>,
    upstreams: Arc<Upstreams>,
    warm_tx: mpsc::Sender<String>,
    pub counters: Arc<PeerCounters>,
}

impl Peers {
    /// The peers and the queue their warm-up task (`run_warm`) drains.
    pub fn new(
        addrs: Vec<SocketAddr>,
        upstreams: Arc<Upstreams>,
    ) -> (Self, mpsc::Receiver<String>) {
        let (warm_tx, rx) = mpsc::channel(WARM_QUEUE);
        let p = Peers {
            addrs,
            upstreams,
            warm_tx,
            counters: Arc::default(),
        };
        (p, rx)
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Queues `target` (`/<group>/M00/...?args`, no prefix) for the peers; drops it when full.
    pub fn warm(&self, target: &str) {
        if self.addrs.is_empty() {
            return;
        }
        match self.warm_tx.try_send(target.to_string()) {
            Ok(()) => self.counters.warm_queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.warm_dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Sends `PURGE target` to every peer; true when some peer had it cached.
    pub async fn forward_purge(&self, target: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED, HeaderValue::from_static("purge"));
        let method = Method::from_bytes(b"PURGE").unwrap_or(Method::DELETE);
        let sends = self.addrs.iter().map(|addr| {
            let (method, headers) = (method.clone(), headers.clone());
            async move {
                let r = self.upstreams.send(*addr, &method, target, &headers).await;
                (addr, r)
            }
        });
        let mut purged = false;
        for (addr, r) in futures::future::join_all(sends).await {
            self.counters
                .purge_forwarded
                .fetch_add(1, Ordering::Relaxed);
            match r {
                Ok(resp) if resp.status() == StatusCode::OK => purged = true,
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {}
                Ok(resp) => {
                    self.counters.purge_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %addr, status = %resp.status(), target, "peer refused a forwarded purge");
                }
                Err(e) => {
                    self.counters.purge_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %addr, error = ?e, target, "purge not forwarded to peer");
                }
            }
        }
        purged
    }

    /// Drains the warm-up queue until `stop`.
    pub async fn run_warm(self: Arc<Self>, rx: mpsc::Receiver<String>, stop: CancellationToken) {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED, HeaderValue::from_static("warm"));
        let queue =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) });
        let jobs = queue
            .flat_map(|t| {
                futures::stream::iter(self.addrs.clone().into_iter().map(move |a| (a, t.clone())))
            })
            .map(|(addr, target)| {
                let (me, headers) = (self.clone(), headers.clone());
                async move { me.warm_one(addr, &target, &headers).await }
            })
            .buffer_unordered(WARM_CONCURRENCY)
            .for_each(|_| async {});
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = jobs => {}
        }
    }

    async fn warm_one(&self, addr: SocketAddr, target: &str, headers: &HeaderMap) {
        let r = self
            .upstreams
            .send(addr, &Method::HEAD, target, headers)
            .await;
        let ok = match r {
            Ok(resp) => {
                let ok = resp.status().is_success();
                // Drain (HEAD has no body) so the connection goes back to the pool.
                let _ = resp.into_body().collect().await.map(|b| b.to_bytes());
                ok
            }
            Err(_) => false,
        };
        let c = if ok {
            &self.counters.warm_sent
        } else {
            &self.counters.warm_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}
