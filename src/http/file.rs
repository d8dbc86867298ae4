//! Serving bytes of a stored file over HTTP: Content-Type by extension, ETag / Last-Modified,
//! conditional requests (304), single byte ranges (206 / 416), and the response body.
//!
//! The decisions (`parse_range`, `not_modified`, `content_type`) are pure; `file_body` is the I/O
//! edge. Shared by the storage http (store files) and the gateway (cache files).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Response body type of both servers.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Files up to this size are read in one `pread` on the request's task: a page-cache hit costs
/// microseconds, less than a round trip through the blocking pool (nginx reads inline too).
pub const INLINE_READ_MAX: u64 = 256 * 1024;
/// Larger files stream in chunks this big, each read on the blocking pool, so a slow disk never
/// stalls the runtime and memory per transfer stays bounded.
pub const STREAM_CHUNK: u64 = 512 * 1024;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
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

/// MIME type from the extension (nginx's mime.types for what FastDFS clusters usually hold).
pub fn content_type(ext: Option<&str>) -> &'static str {
    let lower;
    let ext = match ext {
        Some(e) if e.bytes().any(|b| b.is_ascii_uppercase()) => {
            lower = e.to_ascii_lowercase();
            lower.as_str()
        }
        Some(e) => e,
        None => "",
    };
    match ext {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "txt" | "log" => "text/plain",
        "xml" => "text/xml",
        "js" => "application/javascript",
        "json" => "application/json",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "bmp" => "image/x-ms-bmp",
        "ico" => "image/x-icon",
        "svg" => "image/svg+xml",
        "tif" | "tiff" => "image/tiff",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "m4a" => "audio/x-m4a",
        "mp4" => "video/mp4",
        "flv" => "video/x-flv",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "rar" => "application/x-rar-compressed",
        "7z" => "application/x-7z-compressed",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "apk" => "application/vnd.android.package-archive",
        _ => "application/octet-stream",
    }
}

/// nginx-style strong ETag: `"<mtime hex>-<size hex>"`.
pub fn etag(mtime_unix: u64, size: u64) -> String {
    format!("\"{mtime_unix:x}-{size:x}\"")
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn http_date(unix: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix))
}

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// No (usable) range: send everything with 200.
    Full,
    /// One satisfiable range, inclusive bounds: 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses a `Range` header. Multi-range requests get the whole file (RFC 9110 lets a server
/// ignore Range); syntax it cannot read is ignored the same way, as nginx does.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeSpec {
    let Some(v) = value else {
        return RangeSpec::Full;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes
        (true, false) => match num(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(n) if len > 0 => RangeSpec::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Full,
        },
        // bytes=S-
        (false, true) => match num(a) {
            Some(s) if s < len => RangeSpec::Partial {
                start: s,
                end: len - 1,
            },
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Full,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= len {
                    RangeSpec::Unsatisfiable
                } else {
                    RangeSpec::Partial {
                        start: s,
                        end: e.min(len - 1),
                    }
                }
            }
            _ => RangeSpec::Full,
        },
        (true, true) => RangeSpec::Full,
    }
}

fn etag_matches(list: &str, etag: &str) -> bool {
    // Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored.
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_string();
    let want = strip(etag);
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || strip(t) == want
    })
}

/// RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since.
pub fn not_modified(req: &HeaderMap, etag: &str, last_modified_unix: u64) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        return inm.to_str().map(|v| etag_matches(v, etag)).unwrap_or(false);
    }
    if let Some(ims) = req.get(header::IF_MODIFIED_SINCE) {
        if let Some(t) = ims
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok())
        {
            return last_modified_unix <= unix_secs(t);
        }
    }
    false
}

/// `If-Range`: the range applies only if the validator still matches.
fn if_range_holds(req: &HeaderMap, etag: &str, last_modified_unix: u64) -> bool {
    let Some(v) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if v.trim_start().starts_with('"') || v.trim_start().starts_with("W/") {
        // Strong comparison required; ours are strong.
        return v.trim() == etag;
    }
    httpdate::parse_http_date(v)
        .map(|t| unix_secs(t) == last_modified_unix)
        .unwrap_or(false)
}

/// The validators and type of a representation, plus extra headers to send with it.
#[derive(Debug, Clone)]
pub struct Representation {
    pub len: u64,
    pub last_modified_unix: u64,
    pub etag: String,
    pub content_type: HeaderValue,
}

/// Where the bytes of a representation live: `file` from `offset` (cache files carry a header
/// before the body).
pub struct FileSource {
    pub file: std::fs::File,
    pub offset: u64,
}

/// Builds the response for GET/HEAD of a representation: 304, 416, 206 or 200.
pub fn respond(
    req: &HeaderMap,
    head_only: bool,
    rep: &Representation,
    src: FileSource,
) -> Response<Body> {
    let mut resp = Response::new(empty());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rep.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(rep.last_modified_unix)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    if not_modified(req, &rep.etag, rep.last_modified_unix) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }
    let range_hdr = req.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = if if_range_holds(req, &rep.etag, rep.last_modified_unix) {
        parse_range(range_hdr, rep.len)
    } else {
        RangeSpec::Full
    };
    let (start, count) = match range {
        RangeSpec::Full => (0, rep.len),
        RangeSpec::Partial { start, end } => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", rep.len)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (start, end - start + 1)
        }
        RangeSpec::Unsatisfiable => {
            let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", rep.len)) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if !head_only {
        match file_body(src, start, count) {
            Ok(b) => *resp.body_mut() = b,
            Err(e) => {
                tracing::warn!(error = %e, "reading file failed");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "read error");
            }
        }
    }
    resp
}

/// The body for `count` bytes at `start` (relative to the source's offset).
pub fn file_body(src: FileSource, start: u64, count: u64) -> std::io::Result<Body> {
    let pos = src.offset + start;
    if count <= INLINE_READ_MAX {
        let mut buf = vec![0u8; count as usize];
        src.file.read_exact_at(&mut buf, pos)?;
        return Ok(full(buf));
    }
    let file = Arc::new(src.file);
    let stream = futures::stream::unfold((file, pos, count), |(file, pos, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let n = remaining.min(STREAM_CHUNK);
        let f = file.clone();
        let chunk = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n as usize];
            f.read_exact_at(&mut buf, pos).map(|_| Bytes::from(buf))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match chunk {
            Ok(b) => Some((Ok(Frame::data(b)), (file, pos + n, remaining - n))),
            // A file shrinking under us ends the body with an error: the client sees a
            // truncated transfer instead of wrong bytes.
            Err(e) => Some((Err(e), (file, pos, 0))),
        }
    });
    Ok(StreamBody::new(stream).boxed_unsync())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-3"), 10),
            Partial { start: 0, end: 3 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-"), 10),
            Partial { start: 5, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Partial { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=8-100"), 10),
            Partial { start: 8, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-12"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=3-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
    }

    #[test]
    fn conditionals() {
        let tag = etag(0x65, 0x10);
        assert_eq!(tag, "\"65-10\"");
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, &tag, 1000));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"65-10\""),
        );
        assert!(not_modified(&h, &tag, 1000));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_str(&http_date(2000)).unwrap(),
        );
        // If-None-Match present and not matching: If-Modified-Since is ignored.
        assert!(!not_modified(&h, &tag, 1000));
        h.remove(header::IF_NONE_MATCH);
        assert!(not_modified(&h, &tag, 1000));
        assert!(!not_modified(&h, &tag, 2001));
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("garbage"),
        );
        assert!(!not_modified(&h, &tag, 1000));
    }

    #[test]
    fn if_range() {
        let tag = etag(1, 2);
        let mut h = HeaderMap::new();
        assert!(if_range_holds(&h, &tag, 5));
        h.insert(header::IF_RANGE, HeaderValue::from_str(&tag).unwrap());
        assert!(if_range_holds(&h, &tag, 5));
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"nope\""));
        assert!(!if_range_holds(&h, &tag, 5));
        h.insert(
            header::IF_RANGE,
            HeaderValue::from_str(&http_date(5)).unwrap(),
        );
        assert!(if_range_holds(&h, &tag, 5));
        assert!(!if_range_holds(&h, &tag, 6));
    }

    #[test]
    fn types() {
        assert_eq!(content_type(Some("JPG")), "image/jpeg");
        assert_eq!(content_type(Some("txt")), "text/plain");
        assert_eq!(content_type(None), "application/octet-stream");
        assert_eq!(content_type(Some("weird")), "application/octet-stream");
    }
}
