//! Response bodies both servers send: the body type (any boxed body, or bytes of a file that the
//! connection may send with sendfile), empty / full / short text bodies, and a body wrapper that
//! gives up on an upstream that stalls mid-transfer.

use super::sendfile::FileBody;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Response body type of both servers: any body, or a range of a file. A file body read by
/// anyone (a filter, a test) yields its bytes like any body; the connection that sends it may
/// instead hand the file to the socket (`super::sendfile`).
pub struct Body(Kind);

enum Kind {
    Boxed(UnsyncBoxBody<Bytes, std::io::Error>),
    File(FileBody),
}

impl Body {
    pub fn new<B>(b: B) -> Body
    where
        B: HttpBody<Data = Bytes, Error = std::io::Error> + Send + 'static,
    {
        Body(Kind::Boxed(b.boxed_unsync()))
    }

    pub fn file(f: FileBody) -> Body {
        Body(Kind::File(f))
    }

    /// The file body inside, if this is one and nothing was read from it yet.
    pub fn file_mut(&mut self) -> Option<&mut FileBody> {
        match &mut self.0 {
            Kind::File(f) => Some(f),
            Kind::Boxed(_) => None,
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut self.0 {
            Kind::Boxed(b) => Pin::new(b).poll_frame(cx),
            Kind::File(f) => Pin::new(f).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Boxed(b) => b.is_end_stream(),
            Kind::File(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Boxed(b) => b.size_hint(),
            Kind::File(f) => f.size_hint(),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Boxed(_) => f.write_str("Body::Boxed"),
            Kind::File(b) => write!(f, "Body::File({} bytes)", b.remaining()),
        }
    }
}

pub fn empty() -> Body {
    Body::new(Empty::new().map_err(|never| match never {}))
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Body::new(Full::new(b.into()).map_err(|never| match never {}))
}

/// A short plain-text response (errors, purge results).
pub fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{msg}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
/// A body that fails when no frame arrives for `timeout` (nginx `proxy_read_timeout` between two
/// reads), so a storage that stalls mid-transfer cannot hold a client connection forever.
pub struct TimeoutBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<B> TimeoutBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimeoutBody {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B> HttpBody for TimeoutBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                let deadline = tokio::time::Instant::now() + this.timeout;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(r.map(|f| f.map_err(std::io::Error::other)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "upstream read timed out",
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
