//! Validators: the ETag and Last-Modified a representation carries, and the conditional request
//! headers checked against them (If-None-Match, If-Modified-Since, If-Range). Pure.

use crate::clock::unix_secs;
use http::header::{self, HeaderMap};
use std::time::{Duration, UNIX_EPOCH};

/// nginx-style strong ETag: `"<mtime hex>-<size hex>"`.
pub fn etag(mtime_unix: u64, size: u64) -> String {
    use std::fmt::Write;
    // Sized up front (two u64 in hex, quotes, dash): one allocation, the storage makes one per
    // request.
    let mut s = String::with_capacity(35);
    let _ = write!(s, "\"{mtime_unix:x}-{size:x}\"");
    s
}

pub fn http_date(unix: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix))
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
pub fn if_range_holds(req: &HeaderMap, etag: &str, last_modified_unix: u64) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

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
}
