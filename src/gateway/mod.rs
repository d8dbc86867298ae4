//! Front HTTP gateway (what the caching nginx in front did): routes `[/prefix]/<group>/M00/...` to
//! that group's ACTIVE storages as learned live from the trackers, with weighted round-robin,
//! passive health and retries; caches responses on disk; answers purges from allowed networks.
//!
//! ```text
//!  client ─> server::serve (limits, timeouts) ─> handle
//!     /healthz ─> 200          PURGE or /purge/... ─> purge_allow? ─> cache.purge (200/404/403)
//!     GET/HEAD ─> path::parse (400)
//!        cache hit ─> file from cache dir (no storage touched, cluster view not needed)
//!        cache miss ─> directory.snapshot()[group] (404 unknown group) ─> single flight
//!                   ─> upstream.fetch (retry next storage) ─> cache.store ─> serve from cache
//!        no cache ─> directory.snapshot()[group] ─> upstream.fetch ─> stream through
//! ```
//! Contract with the supervisor: `Gateway::bind` then `serve(shutdown)`.

pub mod balancer;
pub mod cache;
pub mod directory;
mod fill;
pub mod filters;
pub mod metrics;
pub mod peers;
pub mod purge;
pub mod upstream;

use crate::clock;
use crate::config::GatewayConfig;
use crate::http::body::{self, Body, TimeoutBody};
use crate::http::observe::X_CACHE;
use crate::http::path;
use crate::http::server::{self, Counters, Limits};
use crate::http::validators;
use crate::storage::http::token;
use crate::vrrp::ownership::{self, VipOwnership};
use cache::{Cache, Fill};
use directory::{ClusterDirectory, DirectorySource, LiveDirectory, StorageNode};
use fill::{fill, serve_entry, FillOutcome};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use peers::{Marker, Peers};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use upstream::Upstreams;

/// Largest request body a client may send (GETs carry none; we read and drop what comes).
const MAX_REQUEST_BODY: u64 = 64 * 1024;

/// Response headers forwarded from storages and kept in cache entries.
pub(crate) const KEPT_HEADERS: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::ACCEPT_RANGES,
    header::CONTENT_DISPOSITION,
];

/// Request headers forwarded to storages when not filling the cache.
const FORWARDED_HEADERS: [HeaderName; 4] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

enum DirectoryKind {
    Fixed(Arc<dyn ClusterDirectory>),
    Source(Arc<dyn DirectorySource>),
}

pub struct Gateway {
    /// Each bound address with the prefixes it serves (longest first, `""` = none).
    listeners: Vec<(tokio::net::TcpListener, Arc<[String]>)>,
    cfg: GatewayConfig,
    directory: DirectoryKind,
    cache: Option<Arc<Cache>>,
    purge_allow: Vec<purge::Cidr>,
    counters: Arc<Counters>,
    upstreams: Arc<Upstreams>,
    peers: Arc<Peers>,
    warm_queue: tokio::sync::mpsc::Receiver<String>,
    trusted_proxies: Vec<purge::Cidr>,
    error_pages: filters::ErrorPages,
    /// Metrics and access log per request (`with_observer`; by default counted, not logged).
    observer: crate::http::observe::Observer,
    /// The node's VIP ownership (`with_vips`; by default no address is a VIP).
    vips: watch::Receiver<VipOwnership>,
}

impl Gateway {
    /// Binds with the cluster view from `gateway.trackers`.
    pub async fn bind(cfg: &GatewayConfig, data_dir: &Path) -> anyhow::Result<Self> {
        Self::bind_with_source(cfg, data_dir, directory::tracker_source(cfg)).await
    }

    /// Binds with views fetched from `source` every `refresh_interval`.
    pub async fn bind_with_source(
        cfg: &GatewayConfig,
        data_dir: &Path,
        source: Arc<dyn DirectorySource>,
    ) -> anyhow::Result<Self> {
        Self::bind_inner(cfg, data_dir, DirectoryKind::Source(source)).await
    }

    /// Binds with a directory maintained by the caller (tests, static setups).
    pub async fn bind_with_directory(
        cfg: &GatewayConfig,
        data_dir: &Path,
        dir: Arc<dyn ClusterDirectory>,
    ) -> anyhow::Result<Self> {
        Self::bind_inner(cfg, data_dir, DirectoryKind::Fixed(dir)).await
    }

    async fn bind_inner(
        cfg: &GatewayConfig,
        data_dir: &Path,
        directory: DirectoryKind,
    ) -> anyhow::Result<Self> {
        let purge_allow = cfg
            .purge_allow
            .iter()
            .map(|s| purge::Cidr::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("gateway.{e}"))?;
        let trusted_proxies = cfg
            .trusted_proxies
            .iter()
            .map(|s| purge::Cidr::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("gateway.trusted_proxies: {e}"))?;
        let error_pages = filters::ErrorPages::parse(&cfg.error_pages)
            .map_err(|e| anyhow::anyhow!("gateway.{e}"))?;
        let wanted = cfg.effective_listeners();
        for p in wanted.iter().flat_map(|l| l.effective_prefixes()) {
            if !p.is_empty() && (!p.starts_with('/') || p.ends_with('/') || p.contains("..")) {
                anyhow::bail!("gateway prefix {p:?}: must look like /dfs");
            }
        }
        let cache = match &cfg.cache {
            Some(c) => {
                let (c, dir) = (c.clone(), data_dir.to_path_buf());
                let cache =
                    tokio::task::spawn_blocking(move || Cache::open(&c, &dir, clock::unix_now()))
                        .await??;
                Some(Arc::new(cache))
            }
            None => None,
        };
        let mut listeners = Vec::new();
        for l in &wanted {
            let listener = tokio::net::TcpListener::bind(l.listen)
                .await
                .map_err(|e| anyhow::anyhow!("gateway listen {}: {e}", l.listen))?;
            listeners.push((listener, l.effective_prefixes().into()));
        }
        let upstreams = Arc::new(Upstreams::new(&cfg.upstream, cfg.weights.clone()));
        let (peers, warm_queue) = Peers::new(cfg.peers.clone(), upstreams.clone());
        Ok(Gateway {
            listeners,
            upstreams,
            peers: Arc::new(peers),
            warm_queue,
            trusted_proxies,
            error_pages,
            cfg: cfg.clone(),
            directory,
            cache,
            purge_allow,
            counters: Arc::default(),
            observer: crate::http::observe::Observer::new("gateway", Default::default(), true),
            vips: ownership::no_vips(),
        })
    }

    /// Where this server's requests are counted and logged (call before `serve`).
    pub fn with_observer(mut self, observer: crate::http::observe::Observer) -> Self {
        self.observer = observer;
        self
    }

    /// Which VIPs this node serves, for keep-alive decisions (call before `serve`).
    pub fn with_vips(mut self, vips: watch::Receiver<VipOwnership>) -> Self {
        self.vips = vips;
        self
    }

    /// The first listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs()[0]
    }

    /// Every listener's address, in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .map(|(l, _)| l.local_addr().expect("bound listener has an address"))
            .collect()
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn cache(&self) -> Option<Arc<Cache>> {
        self.cache.clone()
    }

    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.clone()
    }

    pub fn peer_counters(&self) -> Arc<peers::PeerCounters> {
        self.peers.counters.clone()
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let directory: Arc<dyn ClusterDirectory> = match self.directory {
            DirectoryKind::Fixed(d) => d,
            DirectoryKind::Source(s) => {
                LiveDirectory::start(s, self.cfg.refresh_interval.get(), shutdown.child_token())
                    .await
            }
        };
        if let Some(cache) = &self.cache {
            crate::http::open_files::spawn_sweeper(
                cache.open_files.clone(),
                shutdown.child_token(),
            );
            let cache = cache.clone();
            let stop = shutdown.child_token();
            let every = self
                .cfg
                .cache
                .as_ref()
                .map(|c| c.inactive.get() / 2)
                .unwrap_or_default()
                .clamp(Duration::from_secs(1), Duration::from_secs(60));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(every) => {
                            let c = cache.clone();
                            let _ = tokio::task::spawn_blocking(move || c.sweep(clock::unix_now())).await;
                        }
                    }
                }
            });
        }
        if !self.peers.is_empty() {
            tokio::spawn(
                self.peers
                    .clone()
                    .run_warm(self.warm_queue, shutdown.child_token()),
            );
        }
        let mut limits = Limits::new(self.cfg.max_connections, self.cfg.header_timeout.get());
        limits.send_timeout = self.cfg.send_timeout.get();
        let all_prefixes: Vec<String> = {
            let mut v: Vec<String> = self
                .listeners
                .iter()
                .flat_map(|(_, p)| p.iter().cloned())
                .collect();
            v.sort_by_key(|p| std::cmp::Reverse(p.len()));
            v.dedup();
            v
        };
        let state = Arc::new(State {
            body_timeout: self.cfg.body_timeout.get(),
            expires: self.cfg.expires.map(|d| d.get().as_secs()),
            expires_headers: std::sync::Mutex::new((
                0,
                HeaderValue::from_static(""),
                HeaderValue::from_static(""),
            )),
            all_prefixes,
            purge_allow: self.purge_allow,
            anti_steal: self.cfg.anti_steal.clone(),
            directory,
            upstreams: self.upstreams,
            peers: self.peers,
            cache: self.cache,
            counters: self.counters.clone(),
            trusted_proxies: self.trusted_proxies,
            hotlink: self.cfg.hotlink.as_ref().map(filters::Hotlink::new),
            gzip: self.cfg.gzip.as_ref().map(filters::Gzip::new),
            error_pages: self.error_pages,
        });
        let servers = self.listeners.into_iter().map(|(listener, prefixes)| {
            let state = state.clone();
            server::serve(
                listener,
                limits.clone(),
                self.counters.clone(),
                self.vips.clone(),
                shutdown.clone(),
                self.observer.clone().wrap(move |req, peer| {
                    let (state, prefixes) = (state.clone(), prefixes.clone());
                    async move { state.handle(req, peer, &prefixes).await }
                }),
            )
        });
        futures::future::try_join_all(servers).await.map(|_| ())
    }
}

struct State {
    body_timeout: Duration,
    expires: Option<u64>,
    /// (second, Expires, Cache-Control) rendered once per second rather than per response.
    expires_headers: std::sync::Mutex<(u64, HeaderValue, HeaderValue)>,
    /// Every prefix of every listener: a purge may name any of them, or none.
    all_prefixes: Vec<String>,
    purge_allow: Vec<purge::Cidr>,
    anti_steal: Option<crate::config::AntiStealConfig>,
    directory: Arc<dyn ClusterDirectory>,
    upstreams: Arc<Upstreams>,
    peers: Arc<Peers>,
    cache: Option<Arc<Cache>>,
    counters: Arc<Counters>,
    trusted_proxies: Vec<purge::Cidr>,
    hotlink: Option<filters::Hotlink>,
    gzip: Option<filters::Gzip>,
    error_pages: filters::ErrorPages,
}

/// What a download asks the cache for.
struct Wanted<'a> {
    /// `/<group>/M00/...?args` as sent to storages (no prefix).
    target: &'a str,
    key_text: String,
    /// Sent by a peer gateway to warm this cache: its misses are not passed on again.
    from_peer: bool,
    /// X-Real-IP and friends for the storages.
    client: ClientAddr<'a>,
}

/// Who asked, for the X-Real-IP family of headers; rendered only when a storage is asked (a
/// cache hit pays nothing for it).
#[derive(Clone, Copy)]
struct ClientAddr<'a> {
    headers: &'a HeaderMap,
    peer: std::net::IpAddr,
}

/// The path below the first of `prefixes` (longest first, `""` = none) that it starts with.
fn strip_prefix<'a>(path: &'a str, prefixes: &[String]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| {
        path.strip_prefix(p.as_str())
            .filter(|rest| rest.starts_with('/'))
    })
}

fn has_body(h: &HeaderMap) -> bool {
    let len = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    len > 0 || h.contains_key(header::TRANSFER_ENCODING)
}

fn closing(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

impl State {
    fn refuse(&self, peer: SocketAddr, status: StatusCode, why: &str) -> Response<Body> {
        Counters::bump(&self.counters.bad_requests);
        crate::limited!(self.counters.logs, info, server::refusal_kind(status), %peer, %status,
            reason = why, "gateway: request refused");
        body::text(status, why)
    }

    /// Answers a request, then applies gzip and the error pages to whatever came out.
    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        prefixes: &[String],
    ) -> Response<Body> {
        let head_only = req.method() == Method::HEAD;
        let wants_gzip = self.gzip.as_ref().map(|_| req.headers().clone());
        let mut resp = self.answer(req, peer, prefixes).await;
        if let (Some(gz), Some(h)) = (&self.gzip, wants_gzip) {
            resp = gz.apply(&h, head_only, resp).await;
        }
        if resp.status().as_u16() >= 400 {
            resp = self.error_pages.apply(head_only, resp).await;
        }
        resp
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        prefixes: &[String],
    ) -> Response<Body> {
        let target_len = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().len())
            .unwrap_or(0);
        if target_len > path::MAX_URI_LEN {
            return self.refuse(peer, StatusCode::URI_TOO_LONG, "request target too long");
        }
        let (parts, body) = req.into_parts();
        if has_body(&parts.headers) {
            // Nothing we serve takes a body, but reading it (bounded in size and time) keeps the
            // connection usable; a client trickling it is cut off by body_timeout.
            let drained = tokio::time::timeout(self.body_timeout, async {
                let mut body = body;
                let mut n = 0u64;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
                    n += frame.data_ref().map(|d| d.len() as u64).unwrap_or(0);
                    if n > MAX_REQUEST_BODY {
                        return Err(StatusCode::PAYLOAD_TOO_LARGE);
                    }
                }
                Ok(())
            })
            .await;
            match drained {
                Ok(Ok(())) => {}
                Ok(Err(status)) => {
                    return closing(self.refuse(peer, status, "request body refused"))
                }
                Err(_) => {
                    return closing(self.refuse(
                        peer,
                        StatusCode::REQUEST_TIMEOUT,
                        "request body timed out",
                    ))
                }
            }
        }
        let path_str = parts.uri.path();
        if parts.method == Method::GET && path_str == "/healthz" {
            return body::text(StatusCode::OK, "ok");
        }
        let marker = Marker::of(&parts.headers);
        if marker.is_some() && !purge::allowed(&self.purge_allow, peer.ip()) {
            return self.refuse(peer, StatusCode::FORBIDDEN, "peer not in purge_allow");
        }
        if parts.method.as_str() == "PURGE" || path_str.starts_with("/purge/") {
            return self.purge(&parts, peer, marker).await;
        }
        let head_only = match parts.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut r = self.refuse(peer, StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, PURGE"));
                return r;
            }
        };
        let inner = match (strip_prefix(path_str, prefixes), marker) {
            (Some(inner), _) => inner,
            // A peer names the file without any prefix.
            (None, Some(_)) => strip_prefix(path_str, &self.all_prefixes).unwrap_or(path_str),
            (None, None) => return body::text(StatusCode::NOT_FOUND, "not found"),
        };
        let dl = match path::parse_download_path(inner, true) {
            Ok(d) => d,
            Err(e) => {
                let status = if e == path::PathError::TooLong {
                    StatusCode::URI_TOO_LONG
                } else {
                    StatusCode::BAD_REQUEST
                };
                return self.refuse(peer, status, &e.to_string());
            }
        };
        let group = dl.group.clone().unwrap_or_default();
        let query = parts.uri.query();
        let id = dl.id_without_group();
        // Checked before the cache is looked at: an expired token never gets a cached answer.
        if let Some(anti) = &self.anti_steal {
            if let Err(e) = token::check_token(
                &id,
                &anti.secret_key,
                anti.token_ttl.get().as_secs(),
                path::query_param(query, "token"),
                path::query_param(query, "ts"),
                clock::unix_now(),
            ) {
                return self.refuse(peer, StatusCode::FORBIDDEN, &format!("invalid token: {e}"));
            }
        }
        if let Some(h) = &self.hotlink {
            let referer = parts.headers.get(header::REFERER).map(|v| v.as_bytes());
            if !h.allows(dl.name.ext(), referer) {
                return self.refuse(peer, StatusCode::FORBIDDEN, "referer not allowed");
            }
        }
        let client = ClientAddr {
            headers: &parts.headers,
            peer: peer.ip(),
        };
        // Without the secret we cannot tell a valid token from an expired one: the storage
        // decides, every time.
        let bypass = self.anti_steal.is_none() && cache::policy::has_token_params(query);
        let key_text = cache::policy::key_text(&group, &id, query);
        // The view is read only on a miss: cached files stay served while their group is
        // unknown (tracker unreachable at start, group being re-added).
        let view = self.directory.snapshot();
        let nodes = view.storages(&group);
        let mut target = inner.to_string();
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        let mut resp = match (&self.cache, nodes) {
            (Some(cache), _) if !bypass => {
                let want = Wanted {
                    target: &target,
                    key_text,
                    from_peer: marker == Some(Marker::Warm),
                    client,
                };
                self.cached(cache, &parts, head_only, nodes, want).await
            }
            (_, Some(nodes)) => self.pass(&parts, nodes, &target, client).await,
            (_, None) => body::text(StatusCode::NOT_FOUND, "unknown group"),
        };
        self.add_expires(&mut resp);
        resp
    }

    fn forwarded(&self, c: ClientAddr<'_>) -> HeaderMap {
        filters::forwarded_headers(&self.trusted_proxies, c.headers, c.peer)
    }

    fn add_expires(&self, resp: &mut Response<Body>) {
        let Some(secs) = self.expires else {
            return;
        };
        if !matches!(resp.status().as_u16(), 200 | 206 | 304) {
            return;
        }
        let now = clock::unix_now();
        let (expires, cache_control) = {
            let mut cached = self
                .expires_headers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if cached.0 != now {
                let e = HeaderValue::from_str(&validators::http_date(now + secs));
                let c = HeaderValue::from_str(&format!("max-age={secs}"));
                if let (Ok(e), Ok(c)) = (e, c) {
                    *cached = (now, e, c);
                }
            }
            (cached.1.clone(), cached.2.clone())
        };
        let h = resp.headers_mut();
        h.insert(header::EXPIRES, expires);
        h.insert(header::CACHE_CONTROL, cache_control);
    }

    async fn purge(
        &self,
        parts: &Parts,
        peer: SocketAddr,
        marker: Option<Marker>,
    ) -> Response<Body> {
        if !purge::allowed(&self.purge_allow, peer.ip()) {
            return self.refuse(peer, StatusCode::FORBIDDEN, "purge not allowed");
        }
        let path = parts.uri.path();
        let path = if parts.method.as_str() == "PURGE" {
            path
        } else {
            path.strip_prefix("/purge").unwrap_or(path)
        };
        // The prefix is optional here: the seeds purge `/purge/group1/M00/...` on a gateway
        // that serves `/dfs/group1/M00/...`.
        let inner = strip_prefix(path, &self.all_prefixes).unwrap_or(path);
        let key = match path::parse_download_path(inner, true) {
            Ok(dl) => cache::policy::key_text(
                dl.group.as_deref().unwrap_or_default(),
                &dl.id_without_group(),
                parts.uri.query(),
            ),
            Err(e) => return self.refuse(peer, StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let here = self.cache.as_ref().is_some_and(|c| c.purge(&key));
        if here {
            tracing::info!(%peer, key, "purged");
        }
        // Forwarded once: a purge a peer sent us is not sent on.
        let mut there = false;
        if marker != Some(Marker::Purge) && !self.peers.is_empty() {
            let mut target = inner.to_string();
            if let Some(q) = parts.uri.query() {
                target.push('?');
                target.push_str(q);
            }
            there = self.peers.forward_purge(&target).await;
        }
        if here || there {
            body::text(StatusCode::OK, "purged")
        } else {
            body::text(StatusCode::NOT_FOUND, "not cached")
        }
    }

    /// No cache: forward the request (with its range/conditional headers) and stream the reply.
    async fn pass(
        &self,
        parts: &Parts,
        nodes: &[StorageNode],
        target: &str,
        client: ClientAddr<'_>,
    ) -> Response<Body> {
        let mut fwd = self.forwarded(client);
        for h in FORWARDED_HEADERS {
            if let Some(v) = parts.headers.get(&h) {
                fwd.insert(h, v.clone());
            }
        }
        match self
            .upstreams
            .fetch(nodes, &parts.method, target, &fwd)
            .await
        {
            Ok(r) => self.stream_through(r, parts.method == Method::HEAD),
            Err(e) => body::text(e.status(), "no storage answered"),
        }
    }

    fn stream_through(&self, r: Response<Incoming>, head_only: bool) -> Response<Body> {
        let (up, body) = r.into_parts();
        let body = if head_only {
            body::empty()
        } else {
            Body::new(TimeoutBody::new(body, self.upstreams.read_timeout()))
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = up.status;
        for h in KEPT_HEADERS {
            if let Some(v) = up.headers.get(&h) {
                resp.headers_mut().insert(h, v.clone());
            }
        }
        resp
    }

    async fn cached(
        &self,
        cache: &Arc<Cache>,
        parts: &Parts,
        head_only: bool,
        nodes: Option<&[StorageNode]>,
        want: Wanted<'_>,
    ) -> Response<Body> {
        let Wanted {
            target,
            key_text,
            from_peer,
            client,
        } = want;
        let key = cache::policy::cache_key(&key_text);
        let mut waited = false;
        let mut expired = false;
        loop {
            let (found, stale) = cache.find(&key, clock::unix_now());
            expired |= stale;
            if let Some(entry) = found {
                if let Some(mut r) = serve_entry(parts, head_only, &entry, &cache.open_files) {
                    cache.count_hit();
                    r.headers_mut()
                        .insert(X_CACHE, HeaderValue::from_static("HIT"));
                    return r;
                }
                cache.forget(&key);
            }
            let Some(nodes) = nodes else {
                return body::text(StatusCode::NOT_FOUND, "unknown group");
            };
            if waited {
                // The leader's response was not cacheable: fetch on our own.
                return self.pass(parts, nodes, target, client).await;
            }
            match cache.begin_fill(key) {
                Fill::Follower(mut rx) => {
                    let _ = rx.wait_for(|done| *done).await;
                    waited = true;
                }
                Fill::Leader(guard) => {
                    cache.count_miss(expired);
                    // Detached: a client hanging up must neither abort the fill nor wake the
                    // followers early into fetches of their own.
                    let fill = fill(
                        self.upstreams.clone(),
                        cache.clone(),
                        nodes.to_vec(),
                        target.to_string(),
                        key_text.clone(),
                        self.forwarded(client),
                    );
                    let outcome = tokio::spawn(async move {
                        let out = fill.await;
                        drop(guard);
                        out
                    })
                    .await;
                    let mut resp = match outcome {
                        Ok(FillOutcome::Stored(entry)) => {
                            if !from_peer {
                                self.peers.warm(target);
                            }
                            serve_entry(parts, head_only, &entry, &cache.open_files).unwrap_or_else(
                                || {
                                    body::text(
                                        StatusCode::INTERNAL_SERVER_ERROR,
                                        "cache read failed",
                                    )
                                },
                            )
                        }
                        Ok(FillOutcome::Pass(r)) => self.stream_through(r, head_only),
                        Ok(FillOutcome::Failed(status, why)) => body::text(status, why),
                        Err(e) => {
                            tracing::error!(error = %e, "cache fill task failed");
                            body::text(StatusCode::INTERNAL_SERVER_ERROR, "cache fill failed")
                        }
                    };
                    let status = if expired { "EXPIRED" } else { "MISS" };
                    resp.headers_mut()
                        .insert(X_CACHE, HeaderValue::from_static(status));
                    return resp;
                }
            }
        }
    }
}
