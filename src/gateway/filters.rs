//! What the seeds' front nginx did around proxying, each configured under `gateway:`:
//! - `X-Real-IP` / `X-Forwarded-For` / `X-Forwarded-Proto` to the storages
//!   (`proxy_set_header ... $proxy_add_x_forwarded_for`), trusting incoming ones only from
//!   `trusted_proxies`;
//! - `hotlink`: nginx `valid_referers none blocked <names>` for some extensions, 403 otherwise;
//! - `gzip`: compress answers of configured text types for clients that accept it;
//! - `error_pages`: nginx `error_page 500 502 503 504 /50x.html` with the configured files.
//!
//! The decisions are pure functions; `Gzip::apply` and `ErrorPages::apply` do the I/O.

use super::purge::Cidr;
use crate::config::{GzipConfig, HotlinkConfig};
use crate::http::body::{self, Body};
use crate::http::file;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

pub const X_REAL_IP: &str = "x-real-ip";
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The client headers sent to storages for a request from `peer`.
pub fn forwarded_headers(trusted: &[Cidr], incoming: &HeaderMap, peer: IpAddr) -> HeaderMap {
    let peer = peer.to_canonical();
    let from_proxy = super::purge::allowed(trusted, peer);
    let chain: Vec<&str> = if from_proxy {
        incoming
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        Vec::new()
    };
    let peer_s = peer.to_string();
    // The client is the last address, right to left, that is not one of our proxies.
    let mut full = chain.clone();
    full.push(&peer_s);
    let real = full
        .iter()
        .rev()
        .copied()
        .find(|a| {
            a.parse::<IpAddr>()
                .map_or(true, |ip| !super::purge::allowed(trusted, ip))
        })
        .or(full.first().copied())
        .unwrap_or(peer_s.as_str());
    let mut xff = chain.join(", ");
    if !xff.is_empty() {
        xff.push_str(", ");
    }
    xff.push_str(&peer_s);
    let proto = incoming
        .get(X_FORWARDED_PROTO)
        .filter(|_| from_proxy)
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v == "http" || *v == "https")
        .unwrap_or("http");
    let mut h = HeaderMap::new();
    for (name, value) in [
        (X_REAL_IP, real),
        (X_FORWARDED_FOR, xff.as_str()),
        (X_FORWARDED_PROTO, proto),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    h
}

/// `valid_referers` for files with some extensions.
#[derive(Debug, Clone)]
pub struct Hotlink {
    extensions: Vec<String>,
    none: bool,
    blocked: bool,
    names: Vec<String>,
}

impl Hotlink {
    pub fn new(cfg: &HotlinkConfig) -> Self {
        let mut h = Hotlink {
            extensions: cfg
                .extensions
                .iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            none: false,
            blocked: false,
            names: Vec::new(),
        };
        for r in &cfg.valid_referers {
            match r.as_str() {
                "none" => h.none = true,
                "blocked" => h.blocked = true,
                name => h.names.push(name.to_ascii_lowercase()),
            }
        }
        h
    }

    /// Whether a file with extension `ext` may be served to a request with `referer`.
    pub fn allows(&self, ext: Option<&str>, referer: Option<&[u8]>) -> bool {
        let guarded = self.extensions.is_empty()
            || ext.is_some_and(|e| self.extensions.iter().any(|x| x.eq_ignore_ascii_case(e)));
        if !guarded {
            return true;
        }
        let Some(referer) = referer else {
            return self.none;
        };
        let r = String::from_utf8_lossy(referer).to_ascii_lowercase();
        let Some(rest) = r
            .strip_prefix("http://")
            .or_else(|| r.strip_prefix("https://"))
        else {
            // A Referer a firewall or proxy mangled (no scheme).
            return self.blocked;
        };
        let host = rest.split(['/', ':', '?']).next().unwrap_or("");
        self.names.iter().any(|n| {
            if n.contains('/') {
                rest.starts_with(n.as_str())
            } else if let Some(suffix) = n.strip_prefix("*.") {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            } else if let Some(prefix) = n.strip_suffix(".*") {
                host.starts_with(prefix) && host.as_bytes().get(prefix.len()) == Some(&b'.')
            } else {
                host == n
            }
        })
    }
}

/// Bodies larger than this are sent as they are (compressing means holding them in memory).
pub const GZIP_MAX: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Gzip {
    types: Vec<String>,
    min_length: u64,
    level: u32,
}

impl Gzip {
    pub fn new(cfg: &GzipConfig) -> Self {
        Gzip {
            types: cfg.types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            min_length: cfg.min_length.0,
            level: cfg.level.clamp(1, 9),
        }
    }

    /// Whether this answer is compressed for this request (pure).
    pub fn wanted(&self, req: &HeaderMap, head_only: bool, resp: &Response<Body>) -> bool {
        let accepts = req
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|e| {
                let mut parts = e.split(';').map(str::trim);
                parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                    && !parts.any(|p| p.replace(' ', "") == "q=0")
            });
        let h = resp.headers();
        let len = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let ct = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        accepts
            && !head_only
            && resp.status() == StatusCode::OK
            && !h.contains_key(header::CONTENT_ENCODING)
            && len.is_some_and(|n| n >= self.min_length && n <= GZIP_MAX)
            && ct.is_some_and(|ct| self.types.contains(&ct))
    }

    pub async fn apply(
        &self,
        req: &HeaderMap,
        head_only: bool,
        resp: Response<Body>,
    ) -> Response<Body> {
        if !self.wanted(req, head_only, &resp) {
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        let Ok(collected) = body.collect().await else {
            return body::text(StatusCode::BAD_GATEWAY, "body read failed");
        };
        let plain = collected.to_bytes();
        let level = self.level;
        let zipped = tokio::task::spawn_blocking(move || {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(&plain)?;
            e.finish()
        })
        .await;
        let Ok(Ok(zipped)) = zipped else {
            return body::text(StatusCode::INTERNAL_SERVER_ERROR, "gzip failed");
        };
        let h = &mut parts.headers;
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(zipped.len()));
        h.remove(header::ACCEPT_RANGES);
        // Another representation: its validator is weak, as nginx makes it.
        if let Some(weak) = h
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.starts_with("W/"))
            .and_then(|v| HeaderValue::from_str(&format!("W/{v}")).ok())
        {
            h.insert(header::ETAG, weak);
        }
        Response::from_parts(parts, body::full(zipped))
    }
}

/// `error_page <codes> <file>`: the configured file as the body of those errors.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages(Vec<(u16, PathBuf)>);

impl ErrorPages {
    /// From `{"500 502 503 504": /srv/50x.html}`.
    pub fn parse(map: &std::collections::BTreeMap<String, PathBuf>) -> Result<Self, String> {
        let mut v = Vec::new();
        for (codes, file) in map {
            for n in crate::config::values::error_page_codes(codes)? {
                v.push((n, file.clone()));
            }
        }
        Ok(ErrorPages(v))
    }

    pub fn page_for(&self, status: StatusCode) -> Option<&PathBuf> {
        self.0
            .iter()
            .find(|(c, _)| *c == status.as_u16())
            .map(|(_, p)| p)
    }

    pub async fn apply(&self, head_only: bool, resp: Response<Body>) -> Response<Body> {
        let Some(path) = self.page_for(resp.status()) else {
            return resp;
        };
        let bytes = match tokio::fs::read(path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "error page unreadable");
                return resp;
            }
        };
        let (mut parts, _) = resp.into_parts();
        let ext = path.extension().and_then(|e| e.to_str());
        let h = &mut parts.headers;
        for gone in [
            header::CONTENT_RANGE,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_DISPOSITION,
            header::ACCEPT_RANGES,
        ] {
            h.remove(gone);
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file::content_type(ext)),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        let body = if head_only {
            body::empty()
        } else {
            body::full(bytes)
        };
        Response::from_parts(parts, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(v: &[&str]) -> Vec<Cidr> {
        v.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    #[test]
    fn forwarded_headers_trust_only_listed_proxies() {
        let mut inc = HeaderMap::new();
        inc.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("1.2.3.4, 10.0.0.9"),
        );
        inc.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let h = forwarded_headers(&[], &inc, "192.168.3.5".parse().unwrap());
        assert_eq!(h[X_REAL_IP], "192.168.3.5");
        assert_eq!(h[X_FORWARDED_FOR], "192.168.3.5");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        let trusted = cidrs(&["10.0.0.0/8"]);
        let h = forwarded_headers(&trusted, &inc, "10.0.0.2".parse().unwrap());
        assert_eq!(h[X_REAL_IP], "1.2.3.4");
        assert_eq!(h[X_FORWARDED_FOR], "1.2.3.4, 10.0.0.9, 10.0.0.2");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        let h = forwarded_headers(&trusted, &HeaderMap::new(), "10.0.0.2".parse().unwrap());
        assert_eq!(h[X_REAL_IP], "10.0.0.2");
    }

    #[test]
    fn hotlink_as_valid_referers() {
        let cfg = HotlinkConfig {
            extensions: vec!["jpg".into(), "flv".into()],
            valid_referers: [
                "none",
                "blocked",
                "www.dbspread.com",
                "*.example.org",
                "site.*",
            ]
            .map(String::from)
            .to_vec(),
        };
        let h = Hotlink::new(&cfg);
        let ok = |ext: &str, r: Option<&str>| h.allows(Some(ext), r.map(str::as_bytes));
        assert!(ok("jpg", None));
        assert!(ok("jpg", Some("www.dbspread.com/x")), "blocked: no scheme");
        assert!(ok("jpg", Some("http://www.dbspread.com/index.html")));
        assert!(ok("JPG", Some("https://WWW.dbspread.com:8080/")));
        assert!(ok("jpg", Some("http://img.example.org/")));
        assert!(!ok("jpg", Some("http://example.org/")));
        assert!(ok("jpg", Some("http://site.cn/")));
        assert!(!ok("jpg", Some("http://www.test.com/index.html")));
        assert!(!ok("flv", Some("http://www.dbspread.com.evil.net/")));
        assert!(
            ok("txt", Some("http://www.test.com/")),
            "extension not guarded"
        );
    }

    #[test]
    fn error_page_codes() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("500 502 503 504".to_string(), PathBuf::from("/x/50x.html"));
        let p = ErrorPages::parse(&m).unwrap();
        assert!(p.page_for(StatusCode::BAD_GATEWAY).is_some());
        assert!(p.page_for(StatusCode::NOT_FOUND).is_none());
        m.insert("200".to_string(), PathBuf::from("/x"));
        assert!(ErrorPages::parse(&m).is_err());
    }
}
