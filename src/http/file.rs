//! Serving bytes of a stored file over HTTP: Content-Type by extension, ETag / Last-Modified,
//! conditional requests (304), single byte ranges (206 / 416), and the response body.
//!
//! The decisions (`content_type` here, `range` and `validators`) are pure; `file_body` is the I/O
//! edge. Shared by the storage http (store files) and the gateway (cache files).

use super::body::{empty, full, text, Body};
use super::range::{parse_range, RangeSpec};
use super::validators::{http_date, if_range_holds, not_modified};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Files up to this size are read in one `pread` on the request's task: a page-cache hit costs
/// microseconds, less than a round trip through the blocking pool (nginx reads inline too).
pub const INLINE_READ_MAX: u64 = 256 * 1024;
/// Larger files stream in chunks this big, each read on the blocking pool, so a slow disk never
/// stalls the runtime and memory per transfer stays bounded.
pub const STREAM_CHUNK: u64 = 512 * 1024;

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

/// The header nginx's flv module and fastdfs-nginx-module send before the bytes from `start`:
/// signature, version 1, audio+video, header size 9, then a zero PreviousTagSize.
pub const FLV_HEADER: [u8; 13] = *b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// flv pseudo-streaming (`?start=<byte offset>`): 200 with `FLV_HEADER` + the file from `start`.
/// `None` when `start` is 0 or not inside the file (the caller serves the whole file).
pub fn flv_from(
    rep: &Representation,
    head_only: bool,
    src: FileSource,
    start: u64,
) -> Option<Response<Body>> {
    if start == 0 || start >= rep.len {
        return None;
    }
    let count = rep.len - start;
    let mut resp = Response::new(empty());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(count + FLV_HEADER.len() as u64),
    );
    if head_only {
        return Some(resp);
    }
    let rest = match file_body(src, start, count) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "reading file failed");
            return Some(text(StatusCode::INTERNAL_SERVER_ERROR, "read error"));
        }
    };
    let head = futures::stream::once(async { Ok(Frame::data(Bytes::from_static(&FLV_HEADER))) });
    let stream = futures::StreamExt::chain(head, http_body_util::BodyStream::new(rest));
    *resp.body_mut() = StreamBody::new(stream).boxed_unsync();
    Some(resp)
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn types() {
        assert_eq!(content_type(Some("JPG")), "image/jpeg");
        assert_eq!(content_type(Some("txt")), "text/plain");
        assert_eq!(content_type(None), "application/octet-stream");
        assert_eq!(content_type(Some("weird")), "application/octet-stream");
    }
}
