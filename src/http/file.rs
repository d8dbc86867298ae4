//! Serving bytes of a stored file over HTTP: Content-Type by extension, ETag / Last-Modified,
//! conditional requests (304), single byte ranges (206 / 416), and the response body.
//!
//! The decisions (`content_type` here, `range` and `validators`) are pure; the body is a
//! `sendfile::FileBody` (the I/O edge). Shared by the storage http (store files) and the gateway (cache files).

use super::body::{empty, text, Body};
use super::range::{parse_range, RangeSpec};
use super::sendfile::FileBody;
use super::validators::{http_date, if_range_holds, not_modified};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use http::StatusCode;

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
    /// ETag and Last-Modified as header values (None: not a valid value), rendered once: the
    /// gateway keeps its entries' representations, so a cache hit formats no date.
    validators: (Option<HeaderValue>, Option<HeaderValue>),
}

impl Representation {
    pub fn new(len: u64, last_modified_unix: u64, etag: String, content_type: HeaderValue) -> Self {
        let validators = (
            HeaderValue::from_str(&etag).ok(),
            HeaderValue::from_str(&http_date(last_modified_unix)).ok(),
        );
        Representation {
            len,
            last_modified_unix,
            etag,
            content_type,
            validators,
        }
    }
}

/// Where the bytes of a representation live: `file` from `offset` (cache files carry a header
/// before the body).
pub struct FileSource {
    pub file: std::sync::Arc<std::fs::File>,
    pub offset: u64,
}

/// Builds the response for GET/HEAD of a representation: 304, 416, 206 or 200.
pub fn respond(
    req: &HeaderMap,
    head_only: bool,
    rep: &Representation,
    src: FileSource,
) -> Response<Body> {
    respond_with(req, head_only, rep, rep.validators.clone(), src)
}

/// `respond` for a representation built for this one response: its header values are moved,
/// not cloned (a clone of a fresh value allocates its shared form).
pub fn respond_owned(
    req: &HeaderMap,
    head_only: bool,
    mut rep: Representation,
    src: FileSource,
) -> Response<Body> {
    let validators = std::mem::take(&mut rep.validators);
    respond_with(req, head_only, &rep, validators, src)
}

fn respond_with(
    req: &HeaderMap,
    head_only: bool,
    rep: &Representation,
    (etag, last_modified): (Option<HeaderValue>, Option<HeaderValue>),
    src: FileSource,
) -> Response<Body> {
    let mut resp = Response::new(empty());
    let h = resp.headers_mut();
    if let Some(v) = etag {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = last_modified {
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
        .insert(header::CONTENT_LENGTH, length_value(count));
    if !head_only {
        *resp.body_mut() = file_body(src, start, count);
    }
    resp
}

/// `HeaderValue::from(n)` in one allocation instead of two (it grows a `BytesMut` and then
/// gives it a shared form, as its capacity is not its length).
fn length_value(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_str(digits.format(n)).unwrap_or_else(|_| HeaderValue::from(n))
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
    let body = FileBody::new(src.file, src.offset + start, count)
        .with_prefix(Bytes::from_static(&FLV_HEADER));
    *resp.body_mut() = Body::file(body);
    Some(resp)
}

/// The body for `count` bytes at `start` (relative to the source's offset). Nothing is read
/// here: the connection sends it with sendfile, or it is read when polled (`super::sendfile`).
pub fn file_body(src: FileSource, start: u64, count: u64) -> Body {
    Body::file(FileBody::new(src.file, src.offset + start, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn length_values_are_the_decimal_length() {
        for n in [0, 7, 4096, 1 << 20, u64::MAX] {
            assert_eq!(length_value(n), HeaderValue::from(n));
        }
    }

    #[test]
    fn types() {
        assert_eq!(content_type(Some("JPG")), "image/jpeg");
        assert_eq!(content_type(Some("txt")), "text/plain");
        assert_eq!(content_type(None), "application/octet-stream");
        assert_eq!(content_type(Some("weird")), "application/octet-stream");
    }
}
