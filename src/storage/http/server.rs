//! The accept loop shared by the storage http and the gateway: connection limit, header-read
//! timeout (which also closes idle keep-alive connections), header size/count limits, and graceful
//! drain on shutdown. Handlers only see parsed requests.
//!
//! ```text
//!  accept ──> permit? ──no──> "503, Connection: close" (counted)
//!               │yes
//!               └──> hyper http1 conn (header_read_timeout, max_header_size, max_headers)
//!                        └──> handler(req, peer) -> Response<Body>
//! ```

use super::file::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits applied to every client connection.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// Time allowed for a full request head, and for the next request on an idle connection.
    pub header_timeout: Duration,
    /// Request line + headers; over it hyper answers 431 (414 for an over-long URI).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// How long in-flight requests may run after shutdown is requested.
    pub drain_timeout: Duration,
}

impl Limits {
    pub fn new(max_connections: usize, header_timeout: Duration) -> Self {
        Limits {
            max_connections: max_connections.max(1),
            header_timeout,
            // nginx's large_client_header_buffers is 4 x 8k; a FastDFS URL needs < 1 KiB.
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters visible to tests and the status endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub requests: AtomicU64,
    pub bad_requests: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves `listener` until `shutdown`, then lets connections finish for `drain_timeout`.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            Counters::bump(&counters.connections_refused);
            tracing::debug!(%peer, "connection limit reached, refusing");
            tracker.spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(BUSY_RESPONSE).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        Counters::bump(&counters.connections);
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let counters = counters.clone();
        let drain = limits.drain_timeout;
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                Counters::bump(&counters.requests);
                let fut = handler(req, peer);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(drain, conn.as_mut()).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(
        limits.drain_timeout + Duration::from_secs(1),
        tracker.wait(),
    )
    .await;
    Ok(())
}
