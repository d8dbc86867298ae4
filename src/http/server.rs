//! The accept loop shared by the storage http and the gateway: connection limit, header-read
//! timeout (which also closes idle keep-alive connections), header size/count limits, and graceful
//! drain on shutdown. Handlers only see parsed requests.
//!
//! ```text
//!  accept ──> permit? ──no──> "503, Connection: close" (counted)
//!               │yes
//!               └──> hyper http1 conn (header_read_timeout, max_header_size, max_headers)
//!                        └──> handler(req, peer) -> Response<Body>
//!                               file body >= SENDFILE_MIN ──> sent with sendfile (`sendfile`)
//! ```

use super::body::Body;
use super::sendfile::{Jobs, SendfileIo};
use crate::vrrp::ownership::VipOwnership;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
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
    /// A connection whose writes make no progress for this long is dropped (slow readers).
    pub send_timeout: Duration,
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
            send_timeout: Duration::from_secs(60),
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
    /// Refusals, logged (at most one line per kind per 10 s) and counted per kind: the
    /// server's `fdfs_ha_refusals_total`.
    pub logs: crate::log_limit::SharedLimit,
    /// Responses whose file body went to the socket with sendfile.
    pub sendfile_responses: AtomicU64,
}

/// The refusal kind (log limiter key, metrics reason) of a refused request's status.
pub fn refusal_kind(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "body_too_large",
        414 => "uri_too_long",
        416 => "range_not_satisfiable",
        431 => "header_too_large",
        _ => "other",
    }
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connections from this node itself (loopback) allowed beyond `max_connections`: its own
/// health probe and `curl` on the box must get through when clients have taken every slot.
/// Refusing the probe as busy made a saturated node fail its probe, restart its gateway and
/// give up the VIP (drill l, issue 23.5). Bounded, like every other resource here.
pub const LOOPBACK_RESERVE: usize = 16;

const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves `listener` until `shutdown`, then lets connections finish for `drain_timeout`.
/// `vips` is the node's VIP ownership (`VipOwner::subscribe`, or `ownership::no_vips()`).
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    counters: Arc<Counters>,
    vips: watch::Receiver<VipOwnership>,
    shutdown: CancellationToken,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    // Names the server (gateway or storage http) in the lines of refusals made here.
    let listen = listener.local_addr().ok();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let loopback_permits = Arc::new(Semaphore::new(LOOPBACK_RESERVE));
    let tracker = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        // Body buffers are queued, never copied into hyper's buffer: sendfile's marker frames
        // must reach `SendfileIo` as they are.
        .writev(true)
        .keep_alive(true);
    // Connections to a VIP this node does not serve (any more) are not kept alive; see
    // `crate::vrrp::ownership`.
    let mut closing = builder.clone();
    closing.keep_alive(false);
    let (builder, closing) = (Arc::new(builder), Arc::new(closing));
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
        let permit = permits.clone().try_acquire_owned().or_else(|e| {
            if peer.ip().is_loopback() {
                loopback_permits.clone().try_acquire_owned()
            } else {
                Err(e)
            }
        });
        let Ok(permit) = permit else {
            Counters::bump(&counters.connections_refused);
            crate::limited!(counters.logs, warn, "max_connections", %peer,
                max = limits.max_connections, "connection refused: max_connections reached");
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
        let mut vip = vips.clone();
        // The VIP this connection came in on, if any. Without VRRP no address is a VIP: no
        // getsockname per connection then.
        let local_vip = if vip.borrow().has_vips() {
            let o = vip.borrow_and_update();
            stream
                .local_addr()
                .ok()
                .map(|a| a.ip())
                .filter(|ip| o.is_vip(*ip))
        } else {
            None
        };
        let keep_alive = local_vip.is_none_or(|ip| vip.borrow().keep_alive(ip));
        let builder = if keep_alive {
            builder.clone()
        } else {
            closing.clone()
        };
        let shutdown = shutdown.clone();
        let counters = counters.clone();
        let refusals = counters.clone();
        let drain = limits.drain_timeout;
        let send_timeout = limits.send_timeout;
        tracker.spawn(async move {
            let jobs = Jobs::default();
            let io = TokioIo::new(SendTimeoutIo::new(
                SendfileIo::new(stream, jobs.clone()),
                send_timeout,
            ));
            let service = hyper::service::service_fn(move |req| {
                Counters::bump(&counters.requests);
                let fut = handler(req, peer);
                let (jobs, counters) = (jobs.clone(), counters.clone());
                async move {
                    let mut resp = fut.await;
                    if let Some(f) = resp.body_mut().file_mut() {
                        if f.use_socket(&jobs) {
                            Counters::bump(&counters.sendfile_responses);
                        }
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            // Watch the VIP only while this connection is kept alive to it.
            let mut watched = local_vip.filter(|_| keep_alive);
            let result = loop {
                tokio::select! {
                    r = conn.as_mut() => break r,
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        break tokio::time::timeout(drain, conn.as_mut()).await.unwrap_or(Ok(()));
                    }
                    _ = vip_lost(&mut vip, watched), if watched.is_some() => {
                        // Idle: closed now; busy: closed after the response in progress.
                        tracing::debug!(%peer, "VIP no longer served here: closing keep-alive connection");
                        conn.as_mut().graceful_shutdown();
                        watched = None;
                    }
                }
            };
            if let Err(e) = result {
                refused_or_ended(&refusals, listen, peer, &e);
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

/// A connection that ended with an error: a request hyper could not parse was answered 400
/// (431 or 414 when too large) by hyper, before any handler saw it; that is a refusal like the
/// handlers' own, logged at `info` through the limiter and counted. Anything else (reset,
/// timeout, client gone) is the client's business: debug only.
fn refused_or_ended(
    counters: &Counters,
    listen: Option<SocketAddr>,
    peer: SocketAddr,
    e: &hyper::Error,
) {
    let kind = if e.is_parse_too_large() {
        "header_too_large"
    } else if e.is_parse() {
        "bad_request"
    } else {
        tracing::debug!(%peer, error = %e, "connection ended with error");
        return;
    };
    Counters::bump(&counters.bad_requests);
    let listen = listen.map(|a| a.to_string()).unwrap_or_default();
    crate::limited!(counters.logs, info, kind, %peer, %listen, error = %e,
        "http: malformed request refused");
}

/// Resolves once this node no longer serves the VIP `watched` (never for None).
async fn vip_lost(vip: &mut watch::Receiver<VipOwnership>, watched: Option<std::net::IpAddr>) {
    let Some(ip) = watched else {
        return std::future::pending().await;
    };
    if vip.wait_for(|o| !o.keep_alive(ip)).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for `timeout`:
/// a client that stops reading cannot pin a connection (and a connection-limit slot) forever.
pub struct SendTimeoutIo<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> SendTimeoutIo<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        SendTimeoutIo {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn check<R>(
        &mut self,
        r: Poll<std::io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<R>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                Poll::Ready(v)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "client stopped reading (send_timeout)",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(r, cx)
    }
}
