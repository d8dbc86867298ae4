//! Cache fills and cached answers: fetch a whole object from the group's storages into the cache
//! (or hand it through when it cannot be cached), and serve an entry with full HTTP semantics.

use super::cache::disk::{CachedEntry, EntryHeader};
use super::cache::{self, Cache};
use super::directory::StorageNode;
use super::upstream::Upstreams;
use super::KEPT_HEADERS;
use crate::http::body::TimeoutBody;
use crate::http::body::{self, Body};
use crate::http::file::{self, FileSource, Representation};
use crate::http::open_files::OpenFiles;
use crate::http::validators;
use futures::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::BodyStream;
use hyper::body::Incoming;
use std::sync::Arc;

/// What a cache fill produced.
pub(super) enum FillOutcome {
    Stored(Arc<CachedEntry>),
    /// Not cacheable (status without validity, no-store, too big): stream it to this client.
    Pass(Response<Incoming>),
    Failed(StatusCode, &'static str),
}

/// Fetches the whole object (HEAD and ranges become a plain GET, as nginx's cache does) and
/// stores it when its status is cacheable.
pub(super) async fn fill(
    upstreams: Arc<Upstreams>,
    cache: Arc<Cache>,
    nodes: Vec<StorageNode>,
    target: String,
    key_text: String,
    client: HeaderMap,
) -> FillOutcome {
    let r = match upstreams
        .fetch(&nodes, &Method::GET, &target, &client)
        .await
    {
        Ok(r) => r,
        Err(e) => return FillOutcome::Failed(e.status(), "no storage answered"),
    };
    let status = r.status().as_u16();
    let no_store = r.headers().contains_key(header::SET_COOKIE)
        || r.headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store") || v.contains("private"));
    let Some(valid_secs) = cache.validity(status).filter(|_| !no_store) else {
        return FillOutcome::Pass(r);
    };
    let now = crate::clock::unix_now();
    let mut headers = Vec::new();
    for h in KEPT_HEADERS {
        if h == header::CONTENT_LENGTH || h == header::CONTENT_RANGE {
            continue;
        }
        if let Some(v) = r.headers().get(&h).and_then(|v| v.to_str().ok()) {
            headers.push((h.as_str().to_string(), v.to_string()));
        }
    }
    let head = EntryHeader {
        key: key_text.clone(),
        status,
        headers,
        expires: now + valid_secs,
        created: now,
    };
    // An entry is its header plus the body: one that cannot fit is served uncached (as nginx
    // does), never fetched into the cache and then refused.
    let header_len = cache::disk::encode_header(&head).map_or(u64::MAX, |h| h.len() as u64);
    let too_big = r
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n.saturating_add(header_len) > cache.max_size());
    if too_big {
        return FillOutcome::Pass(r);
    }
    let body = TimeoutBody::new(r.into_body(), upstreams.read_timeout());
    let data = BodyStream::new(body).filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    });
    match cache.store(&key_text, head, Box::pin(data), now).await {
        Ok(entry) => FillOutcome::Stored(entry),
        Err(e) => {
            tracing::warn!(key = key_text, error = %e, "caching failed");
            FillOutcome::Failed(StatusCode::BAD_GATEWAY, "storage transfer failed")
        }
    }
}

/// Validators of a 200 entry, from the storage's headers (or derived when it sent none).
fn serving_of(entry: &CachedEntry) -> cache::disk::Serving {
    let last_modified = entry
        .header("last-modified")
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .map(crate::clock::unix_secs)
        .unwrap_or(entry.head.created);
    cache::disk::Serving {
        rep: Representation::new(
            entry.body_len,
            last_modified,
            entry
                .header("etag")
                .map(str::to_string)
                .unwrap_or_else(|| validators::etag(last_modified, entry.body_len)),
            entry
                .header("content-type")
                .and_then(|v| HeaderValue::from_str(v).ok())
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ),
        disposition: entry
            .header("content-disposition")
            .and_then(|v| HeaderValue::from_str(v).ok()),
    }
}

/// Serves a cache entry: full HTTP semantics (ranges, 304) for 200 entries, verbatim otherwise.
/// `None` when its file vanished.
pub(super) fn serve_entry(
    parts: &Parts,
    head_only: bool,
    entry: &CachedEntry,
    open_files: &OpenFiles,
) -> Option<Response<Body>> {
    let (f, _) = open_files.open(&entry.path).ok()??;
    let src = FileSource {
        file: f,
        offset: entry.body_offset,
    };
    if entry.head.status == 200 {
        let serving = entry.serving.get_or_init(|| serving_of(entry));
        let mut r = file::respond(&parts.headers, head_only, &serving.rep, src);
        if let Some(v) = &serving.disposition {
            r.headers_mut()
                .insert(header::CONTENT_DISPOSITION, v.clone());
        }
        return Some(r);
    }
    let body = if head_only {
        body::empty()
    } else {
        file::file_body(src, 0, entry.body_len)
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(entry.head.status).ok()?;
    for (n, v) in &entry.head.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(n.as_str()), HeaderValue::from_str(v)) {
            r.headers_mut().insert(n, v);
        }
    }
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body_len));
    Some(r)
}
