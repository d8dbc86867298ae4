//! Storage-side HTTP (what nginx + fastdfs-nginx-module did on every storage): serves
//! `/<group>/M00/XX/YY/<name>` from the local store paths, and while a file has not been
//! replicated here yet, fetches it from its source storage (decoded from the file ID) so a client
//! never sees a 404 for an uploaded file.
//!
//! ```text
//!  GET/HEAD ─> path::parse (400) ─> token::check (403) ─> store_path/data/XX/YY/name
//!     found, as long as its name says ─> file::respond (200/206/304/416)
//!     missing or still being written ─> source is us / older than sync_file_max_delay ─> 404
//!             ─> request already proxied (redirect=) ─> 400 (no loops)
//!             ─> proxy (stream from source) | redirect (302 to source)
//!             ─> source unreachable: look here again for 300 ms (a replica in flight) ─> 502
//! ```
//! Owns only the HTTP view of the store: it never writes files (the storage service does).

pub mod resolver;
pub mod token;

use crate::config::{ResponseMode, StorageConfig, StorageHttpConfig};
use crate::http::body::{self, Body};
use crate::http::open_files::{self, OpenFiles};
use crate::http::{file, path, server, validators};
use crate::proto::fileid::Source;
use crate::vrrp::ownership::{self, VipOwnership};
use bytes::Bytes;
use file::{FileSource, Representation};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use server::{Counters, Limits};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Maps a numeric storage id (file IDs written with `id_type_in_filename = id`) to its address.
/// The tracker's storage-id list implements this in production.
pub trait SourceResolver: Send + Sync {
    fn resolve(&self, id: u32) -> Option<IpAddr>;
    /// True when `ip` is a storage the trackers list in this group: the only addresses a
    /// missing file is fetched from (a file ID naming any other address is not followed).
    fn is_member(&self, ip: IpAddr) -> bool;
    /// Waits until the list was re-read after this call (a storage that joined since the last
    /// refresh, or a list not fetched yet at start-up), bounded by the implementation. A fixed
    /// list has nothing to re-read.
    fn refreshed(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A fixed id → address map (storage_ids.conf as data; tests).
#[derive(Debug, Clone, Default)]
pub struct MapResolver(pub HashMap<u32, IpAddr>);

impl SourceResolver for MapResolver {
    fn resolve(&self, id: u32) -> Option<IpAddr> {
        self.0.get(&id).copied()
    }
    fn is_member(&self, ip: IpAddr) -> bool {
        self.0.values().any(|a| *a == ip)
    }
}

/// Query parameter marking a request made by a storage on behalf of a client; a storage never
/// forwards such a request again (fastdfs-nginx-module uses the same name).
pub const PROXIED_MARK: &str = "redirect";

/// How long a file whose source cannot be reached is looked for again before 502 (a replica
/// in flight when its source died), and how often.
const REPLICA_ARRIVAL_WAIT: Duration = Duration::from_millis(300);
const REPLICA_ARRIVAL_POLL: Duration = Duration::from_millis(10);

pub struct StorageHttp {
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    /// Kept fresh while serving unless `with_resolver` replaced it.
    tracker_resolver: Option<Arc<resolver::TrackerResolver>>,
    /// Metrics and access log per request (`with_observer`; by default counted, not logged).
    observer: crate::http::observe::Observer,
    /// The node's VIP ownership (`with_vips`; by default no address is a VIP).
    vips: watch::Receiver<VipOwnership>,
}

struct State {
    group: String,
    store_paths: Vec<PathBuf>,
    cfg: StorageHttpConfig,
    own_port: u16,
    own_ip: Option<IpAddr>,
    own_id: Option<u32>,
    network_timeout: Duration,
    resolver: Arc<dyn SourceResolver>,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// Refusals are logged at info through `counters.logs`, one line per kind per 10 s with
    /// the count held back.
    counters: Arc<Counters>,
    /// Descriptors of recently served files (a hit costs one fstat).
    open_files: Arc<OpenFiles>,
}

impl StorageHttp {
    pub async fn bind(cfg: &StorageConfig, node: &str) -> anyhow::Result<Self> {
        let http = cfg
            .http
            .clone()
            .ok_or_else(|| anyhow::anyhow!("storage.http is not configured"))?;
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .map_err(|e| anyhow::anyhow!("storage.http.listen {}: {e}", http.listen))?;
        let own_port = listener.local_addr()?.port();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.network_timeout.get()));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(16)
            .build(connector);
        tracing::debug!(node, group = %cfg.group, "storage http bound");
        // Storage ids in file IDs are resolved through the group's list on the trackers.
        let tracker_addrs: Vec<SocketAddr> = cfg
            .trackers
            .iter()
            .filter_map(|t| std::net::ToSocketAddrs::to_socket_addrs(t).ok())
            .flatten()
            .collect();
        let tracker_resolver = (!tracker_addrs.is_empty())
            .then(|| resolver::TrackerResolver::new(tracker_addrs, &cfg.group));
        let state = State {
            group: cfg.group.clone(),
            store_paths: cfg.store_paths.clone(),
            own_port,
            own_ip: cfg.advertise_ip.as_deref().and_then(|s| s.parse().ok()),
            own_id: cfg.id.as_deref().and_then(|s| s.parse().ok()),
            network_timeout: cfg.network_timeout.get(),
            resolver: tracker_resolver.clone().map_or_else(
                || Arc::new(MapResolver::default()) as Arc<dyn SourceResolver>,
                |r| r as Arc<dyn SourceResolver>,
            ),
            client,
            counters: Arc::default(),
            open_files: Arc::default(),
            cfg: http,
        };
        Ok(StorageHttp {
            listener,
            state: Arc::new(state),
            tracker_resolver,
            observer: crate::http::observe::Observer::new(
                "storage_http",
                Default::default(),
                false,
            ),
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

    /// Plugs in the id → address resolver for files named by storage id (call before `serve`).
    pub fn with_resolver(mut self, resolver: Arc<dyn SourceResolver>) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.state) {
            s.resolver = resolver;
            self.tracker_resolver = None;
        }
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.state.counters.clone()
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        if let Some(r) = &self.tracker_resolver {
            r.spawn_refresher(shutdown.clone());
        }
        open_files::spawn_sweeper(self.state.open_files.clone(), shutdown.child_token());
        let mut limits = Limits::new(
            self.state.cfg.max_connections,
            self.state.cfg.header_timeout.get(),
        );
        limits.send_timeout = self.state.cfg.send_timeout.get();
        let state = self.state.clone();
        server::serve(
            self.listener,
            limits,
            self.state.counters.clone(),
            self.vips,
            shutdown,
            self.observer.wrap(move |req, peer| {
                let state = state.clone();
                async move { state.handle(req, peer).await }
            }),
        )
        .await
    }
}

impl State {
    fn bad_request(&self, peer: SocketAddr, status: StatusCode, why: &str) -> Response<Body> {
        Counters::bump(&self.counters.bad_requests);
        crate::limited!(self.counters.logs, info, server::refusal_kind(status), %peer, %status,
            reason = why, "storage http: request refused");
        body::text(status, why)
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let head_only = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut r =
                    self.bad_request(peer, StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return r;
            }
        };
        let target_len = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().len())
            .unwrap_or(0);
        if target_len > path::MAX_URI_LEN {
            return self.bad_request(peer, StatusCode::URI_TOO_LONG, "request target too long");
        }
        let dl = match path::parse_download_path(req.uri().path(), self.cfg.url_have_group_name) {
            Ok(p) => p,
            Err(e) => {
                let status = if e == path::PathError::TooLong {
                    StatusCode::URI_TOO_LONG
                } else {
                    StatusCode::BAD_REQUEST
                };
                return self.bad_request(peer, status, &e.to_string());
            }
        };
        let query = req.uri().query();
        if let Some(anti) = &self.cfg.anti_steal {
            let check = token::check_token(
                &dl.id_without_group(),
                &anti.secret_key,
                anti.token_ttl.get().as_secs(),
                path::query_param(query, "token"),
                path::query_param(query, "ts"),
                crate::clock::unix_now(),
            );
            if let Err(e) = check {
                return self.token_refused(peer, &e.to_string(), head_only).await;
            }
        }
        let ours = dl.group.as_deref().is_none_or(|g| g == self.group);
        let local = self
            .store_paths
            .get(dl.name.store_path_index as usize)
            .filter(|_| ours)
            .map(|p| dl.name.data_path_in(p));
        if let Some(local) = &local {
            match self.open_complete(local, &dl) {
                Ok(Some((f, meta))) => {
                    let mut resp = self.serve_local(&req, head_only, &dl, f, meta);
                    add_disposition(&mut resp, query);
                    return resp;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %local.display(), error = %e, "cannot open stored file");
                    return body::text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file");
                }
            }
        }
        self.not_here(req, peer, &dl, local.as_deref(), head_only)
            .await
    }

    /// The stored file, unless it is missing or still being written: a peer's replica is
    /// written in place (`Store::create_at`), and until its last byte lands it is shorter than
    /// the size its name records (0 for appender files, whose size changes).
    fn open_complete(
        &self,
        local: &Path,
        dl: &path::DownloadPath,
    ) -> std::io::Result<Option<(Arc<std::fs::File>, std::fs::Metadata)>> {
        let opened = self.open_files.open(local)?;
        Ok(opened.filter(|(_, meta)| meta.len() >= dl.name.info.file_size()))
    }

    /// The source could not be reached, but it may have handed us the file just before it
    /// went: bytes already on their way land within milliseconds. Looking again for a moment
    /// before answering 502 keeps a storage killed mid-replication from failing the request.
    async fn await_replica(
        &self,
        req: &Request<Incoming>,
        head_only: bool,
        dl: &path::DownloadPath,
        local: &Path,
    ) -> Option<Response<Body>> {
        let deadline = tokio::time::Instant::now() + REPLICA_ARRIVAL_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(REPLICA_ARRIVAL_POLL).await;
            if let Ok(Some((f, meta))) = self.open_complete(local, dl) {
                tracing::debug!(file = %local.display(), "replica arrived after its source went");
                let mut resp = self.serve_local(req, head_only, dl, f, meta);
                add_disposition(&mut resp, req.uri().query());
                return Some(resp);
            }
        }
        None
    }

    fn serve_local(
        &self,
        req: &Request<Incoming>,
        head_only: bool,
        dl: &path::DownloadPath,
        f: Arc<std::fs::File>,
        meta: std::fs::Metadata,
    ) -> Response<Body> {
        // Normal files: the create time in the ID, identical on every replica, so caches in front
        // see one validator per file. Appender files change, so their mtime counts.
        let last_modified = if dl.name.info.is_appender() {
            meta.modified().map(crate::clock::unix_secs).unwrap_or(0)
        } else {
            dl.name.info.create_time as u64
        };
        let ct = file::content_type(dl.name.ext());
        let rep = Representation::new(
            meta.len(),
            last_modified,
            validators::etag(last_modified, meta.len()),
            HeaderValue::from_static(ct),
        );
        let flv_start = dl
            .name
            .ext()
            .filter(|e| self.cfg.flv_support && e.eq_ignore_ascii_case("flv"))
            .and_then(|_| path::query_param(req.uri().query(), "start"))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0 && *s < meta.len());
        if let Some(start) = flv_start {
            let src = FileSource { file: f, offset: 0 };
            if let Some(r) = file::flv_from(&rep, head_only, src, start) {
                return r;
            }
            return body::text(StatusCode::INTERNAL_SERVER_ERROR, "flv");
        }
        file::respond_owned(
            req.headers(),
            head_only,
            rep,
            FileSource { file: f, offset: 0 },
        )
    }

    async fn token_refused(&self, peer: SocketAddr, why: &str, head_only: bool) -> Response<Body> {
        Counters::bump(&self.counters.bad_requests);
        crate::limited!(self.counters.logs, info, "token", %peer, reason = why, "storage http: anti-steal token refused");
        let Some(path) = self
            .cfg
            .anti_steal
            .as_ref()
            .and_then(|a| a.check_fail_file.clone())
        else {
            return body::text(StatusCode::FORBIDDEN, "invalid token");
        };
        // As fastdfs-nginx-module: the configured "token check failed" file with 200.
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let ext = path.extension().and_then(|e| e.to_str());
                let len = bytes.len();
                let mut r = Response::new(if head_only {
                    body::empty()
                } else {
                    body::full(bytes)
                });
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(file::content_type(ext)),
                );
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                r
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "check_fail_file unreadable");
                body::text(StatusCode::FORBIDDEN, "invalid token")
            }
        }
    }

    fn is_self(&self, src: Source) -> bool {
        match src {
            Source::Id(id) => self.own_id == Some(id),
            Source::Ip(ip) => self.own_ip == Some(IpAddr::V4(ip)),
        }
    }

    /// The file is not in our store: 404 if it never will be, else fetch it from its source.
    async fn not_here(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        dl: &path::DownloadPath,
        local: Option<&Path>,
        head_only: bool,
    ) -> Response<Body> {
        let info = dl.name.info;
        let age = crate::clock::unix_now().saturating_sub(info.create_time as u64);
        if self.is_self(info.source) || age > self.cfg.sync_file_max_delay.get().as_secs() {
            return body::text(StatusCode::NOT_FOUND, "not found");
        }
        let query = req.uri().query();
        if path::query_param(query, PROXIED_MARK).is_some() {
            // Already forwarded once by a peer: answering 400 (as FastDFS) instead of forwarding
            // again is what keeps two storages from bouncing a request forever.
            return self.bad_request(peer, StatusCode::BAD_REQUEST, "file not found on source");
        }
        let lookup = || match info.source {
            Source::Ip(ip) => Some(IpAddr::V4(ip)),
            Source::Id(id) => self.resolver.resolve(id),
        };
        let mut ip = lookup();
        if !ip.is_some_and(|ip| self.resolver.is_member(ip)) {
            // Our copy of the group's list may predate the source (it joined since, or the
            // trackers had not answered yet when we started): decide on a list read now.
            self.resolver.refreshed().await;
            ip = lookup();
        }
        let Some(ip) = ip else {
            crate::limited!(self.counters.logs, warn, "unknown_source", source = %info.source, "source storage of a missing file is unknown");
            return body::text(StatusCode::BAD_GATEWAY, "source storage unknown");
        };
        if !self.resolver.is_member(ip) {
            // A crafted file ID must not make this storage fetch from (and relay) any address.
            Counters::bump(&self.counters.bad_requests);
            crate::limited!(self.counters.logs, info, "not_member", %peer, source = %ip,
                "storage http: file's source is not a storage of this group; not fetched");
            return body::text(StatusCode::BAD_GATEWAY, "source storage unknown");
        }
        let port = self.cfg.source_port.unwrap_or(self.own_port);
        let mut target = req.uri().path().to_string();
        match query {
            Some(q) => target.push_str(&format!("?{q}&{PROXIED_MARK}=1")),
            None => target.push_str(&format!("?{PROXIED_MARK}=1")),
        }
        let host = SocketAddr::new(ip, port);
        if self.cfg.response_mode == ResponseMode::Redirect {
            let mut r = body::text(StatusCode::FOUND, "moved");
            if let Ok(v) = HeaderValue::from_str(&format!("http://{host}{target}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        match (self.proxy(&req, host, &target).await, local) {
            (Ok(resp), _) | (Err(resp), None) => resp,
            (Err(refusal), Some(local)) => self
                .await_replica(&req, head_only, dl, local)
                .await
                .unwrap_or(refusal),
        }
    }

    /// Streams the file from its source storage; `Err` when the source could not be reached.
    async fn proxy(
        &self,
        req: &Request<Incoming>,
        host: SocketAddr,
        target: &str,
    ) -> Result<Response<Body>, Response<Body>> {
        let uri = match format!("http://{host}{target}").parse::<http::Uri>() {
            Ok(u) => u,
            Err(_) => return Ok(body::text(StatusCode::BAD_REQUEST, "bad target")),
        };
        let mut up = Request::new(Empty::<Bytes>::new());
        *up.method_mut() = req.method().clone();
        *up.uri_mut() = uri;
        for h in [
            header::RANGE,
            header::IF_RANGE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
        ] {
            if let Some(v) = req.headers().get(&h) {
                up.headers_mut().insert(h, v.clone());
            }
        }
        let resp = match tokio::time::timeout(self.network_timeout, self.client.request(up)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(%host, error = %e, "source storage unreachable");
                return Err(body::text(
                    StatusCode::BAD_GATEWAY,
                    "source storage unreachable",
                ));
            }
            Err(_) => {
                tracing::warn!(%host, "source storage timed out");
                return Err(body::text(
                    StatusCode::GATEWAY_TIMEOUT,
                    "source storage timed out",
                ));
            }
        };
        tracing::debug!(%host, status = %resp.status(), "streamed file from source storage");
        let (parts, body) = resp.into_parts();
        // A source that stalls mid-body is cut off like one that never answers.
        let body = body::TimeoutBody::new(body, self.network_timeout);
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        for h in [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ETAG,
            header::LAST_MODIFIED,
            header::ACCEPT_RANGES,
            header::CONTENT_DISPOSITION,
        ] {
            if let Some(v) = parts.headers.get(&h) {
                out.headers_mut().insert(h, v.clone());
            }
        }
        Ok(out)
    }
}

/// `?filename=report.pdf` → `Content-Disposition: attachment; filename="report.pdf"`.
fn add_disposition(resp: &mut Response<Body>, query: Option<&str>) {
    let Some(raw) = path::query_param(query, "filename") else {
        return;
    };
    let Ok(name) = path::percent_decode(raw) else {
        return;
    };
    let name = String::from_utf8_lossy(&name);
    // Quotes, backslashes and controls cannot be carried safely in a quoted-string.
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    if clean.is_empty() || !resp.status().is_success() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{clean}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
}
