//! The gateway's view of the cluster: group → ACTIVE storages (address + http port), refreshed
//! live from the trackers so storages and groups come and go without a config edit or restart.
//!
//! ```text
//!  DirectorySource::fetch (tracker client, every refresh_interval)
//!        └──> LiveDirectory (keeps the last good view on errors) ──snapshot()──> routing
//! ```
//! Routing only ever calls `ClusterDirectory::snapshot()`, a cheap `Arc` clone, per request.

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One ACTIVE storage as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageNode {
    /// Storage id (or its IP when the cluster does not use storage ids); for logs.
    pub id: String,
    pub ip: IpAddr,
    /// FastDFS storage port (23000).
    pub port: u16,
    /// Port of its storage http (8888 unless configured otherwise).
    pub http_port: u16,
}

impl StorageNode {
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.http_port)
    }
}

/// Groups and their ACTIVE storages at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub groups: BTreeMap<String, Vec<StorageNode>>,
}

impl ClusterView {
    pub fn storages(&self, group: &str) -> Option<&[StorageNode]> {
        self.groups.get(group).map(|v| v.as_slice())
    }
}

/// What routing reads: the current view.
pub trait ClusterDirectory: Send + Sync {
    fn snapshot(&self) -> Arc<ClusterView>;
}

/// Where views come from: the tracker client (list_groups + list_storages, ACTIVE only, with
/// `http_port = upstream.storage_http_port`), or a fixed/test source.
pub trait DirectorySource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<ClusterView>>;
}

/// A view held in memory; `set` replaces it. Serves as a static directory and as a test source.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    view: RwLock<Arc<ClusterView>>,
}

impl MemoryDirectory {
    pub fn new(view: ClusterView) -> Self {
        MemoryDirectory {
            view: RwLock::new(Arc::new(view)),
        }
    }
    pub fn set(&self, view: ClusterView) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    }
}

impl ClusterDirectory for MemoryDirectory {
    fn snapshot(&self) -> Arc<ClusterView> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl DirectorySource for MemoryDirectory {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<ClusterView>> {
        let v = (*self.snapshot()).clone();
        Box::pin(async move { Ok(v) })
    }
}

/// A source that fails with a fixed message (used until the tracker source is plugged in, so a
/// misconfiguration shows up in logs instead of as an empty cluster).
pub struct UnavailableSource(pub String);

impl DirectorySource for UnavailableSource {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<ClusterView>> {
        let msg = self.0.clone();
        Box::pin(async move { Err(anyhow::anyhow!(msg)) })
    }
}

/// The tracker-backed source for `gateway.trackers`: every group the trackers know, with its
/// ACTIVE storages, each reached over http on `upstream.storage_http_port`. The FastDFS client
/// tries the trackers in turn, so one tracker down changes nothing.
pub fn tracker_source(cfg: &crate::config::GatewayConfig) -> Arc<dyn DirectorySource> {
    use std::net::ToSocketAddrs;
    let mut addrs = Vec::new();
    for t in &cfg.trackers {
        match t.to_socket_addrs() {
            Ok(a) => addrs.extend(a),
            Err(e) => {
                return Arc::new(UnavailableSource(format!(
                    "gateway.trackers: cannot resolve {t}: {e}"
                )))
            }
        }
    }
    let timeout = cfg.upstream.connect_timeout.get();
    Arc::new(TrackerSource {
        lister: AllTrackers(
            addrs
                .into_iter()
                .map(|a| crate::client::FdfsClient::with_timeout(vec![a], timeout))
                .collect(),
        ),
        storage_http_port: cfg.upstream.storage_http_port,
    })
}

/// Asks every tracker and merges the answers: a storage is ACTIVE if any tracker saw it ACTIVE.
/// Trackers are peers that each learn the cluster from the storages' reports, so one that has
/// just restarted knows less for a few heartbeats; trusting whichever answered first would drop
/// live storages from routing.
pub struct AllTrackers(pub Vec<crate::client::FdfsClient>);

impl TrackerLister for AllTrackers {
    fn list_groups(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let answers =
                futures::future::join_all(self.0.iter().map(TrackerLister::list_groups)).await;
            merge(answers, |mut all, groups| {
                all.extend(groups);
                all.sort();
                all.dedup();
                all
            })
        })
    }

    fn list_storages<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedStorage>>> {
        Box::pin(async move {
            let answers = futures::future::join_all(
                self.0
                    .iter()
                    .map(|c| TrackerLister::list_storages(c, group)),
            )
            .await;
            merge(answers, merge_storages)
        })
    }
}

/// One storage listed by several trackers counts once, ACTIVE if any of them saw it ACTIVE.
fn merge_storages(mut all: Vec<ListedStorage>, list: Vec<ListedStorage>) -> Vec<ListedStorage> {
    for s in list {
        match all.iter_mut().find(|x| x.ip == s.ip && x.port == s.port) {
            Some(x) if s.status == STORAGE_STATUS_ACTIVE => x.status = s.status,
            Some(_) => {}
            None => all.push(s),
        }
    }
    all
}

/// Folds the successful answers; fails only when no tracker answered.
fn merge<T: Default>(
    answers: Vec<anyhow::Result<T>>,
    fold: impl Fn(T, T) -> T,
) -> anyhow::Result<T> {
    let mut acc: Option<T> = None;
    let mut last_err = None;
    for a in answers {
        match a {
            Ok(v) => {
                acc = Some(match acc.take() {
                    Some(prev) => fold(prev, v),
                    None => fold(T::default(), v),
                })
            }
            Err(e) => last_err = Some(e),
        }
    }
    acc.ok_or_else(|| last_err.unwrap_or_else(|| anyhow::anyhow!("no tracker configured")))
}

impl TrackerLister for crate::client::FdfsClient {
    fn list_groups(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let groups = crate::client::FdfsClient::list_groups(self).await?;
            Ok(groups.into_iter().map(|g| g.group).collect())
        })
    }

    fn list_storages<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedStorage>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for s in crate::client::FdfsClient::list_storages(self, group).await? {
                let Ok(ip) = s.ip.parse::<IpAddr>() else {
                    tracing::warn!(ip = %s.ip, "tracker listed a storage with an unusable address");
                    continue;
                };
                out.push(ListedStorage {
                    id: if s.id.is_empty() {
                        s.ip.clone()
                    } else {
                        s.id.clone()
                    },
                    ip,
                    port: u16::try_from(s.storage_port).unwrap_or(0),
                    status: s.status,
                });
            }
            Ok(out)
        })
    }
}

/// FastDFS storage status ACTIVE (tracker_types.h): the only status that serves reads.
pub const STORAGE_STATUS_ACTIVE: u8 = 7;

/// One storage as a tracker lists it (SERVER_LIST_STORAGE, cmd 92).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStorage {
    pub id: String,
    pub ip: IpAddr,
    pub port: u16,
    pub status: u8,
}

/// What the gateway needs from a tracker client: SERVER_LIST_ALL_GROUPS (91) and
/// SERVER_LIST_STORAGE (92). The tracker client implements this (trying each tracker in turn).
pub trait TrackerLister: Send + Sync {
    fn list_groups(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    fn list_storages<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedStorage>>>;
}

/// Builds views from a tracker: every group, with its ACTIVE storages, reached on
/// `storage_http_port` (the tracker knows storage ports, not http ports).
pub struct TrackerSource<L> {
    pub lister: L,
    pub storage_http_port: u16,
}

impl<L: TrackerLister> DirectorySource for TrackerSource<L> {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<ClusterView>> {
        Box::pin(async move {
            let mut view = ClusterView::default();
            for group in self.lister.list_groups().await? {
                // One failing group fails the refresh: a partial view would drop the group's
                // routes, while keeping the previous view keeps them.
                let mut nodes: Vec<StorageNode> = self
                    .lister
                    .list_storages(&group)
                    .await?
                    .into_iter()
                    .filter(|s| s.status == STORAGE_STATUS_ACTIVE)
                    .map(|s| StorageNode {
                        id: s.id,
                        ip: s.ip,
                        port: s.port,
                        http_port: self.storage_http_port,
                    })
                    .collect();
                nodes.sort();
                view.groups.insert(group, nodes);
            }
            Ok(view)
        })
    }
}

/// A directory kept fresh by a background refresher.
pub struct LiveDirectory {
    current: MemoryDirectory,
    refreshes: Mutex<u64>,
}

impl LiveDirectory {
    /// Fetches once (so the first requests already route), then refreshes every `interval` until
    /// `shutdown`. A failed fetch keeps the previous view: a tracker hiccup must not empty routing.
    pub async fn start(
        source: Arc<dyn DirectorySource>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let dir = Arc::new(LiveDirectory {
            current: MemoryDirectory::default(),
            refreshes: Mutex::new(0),
        });
        dir.refresh(source.as_ref()).await;
        let d = dir.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => d.refresh(source.as_ref()).await,
                }
            }
        });
        dir
    }

    async fn refresh(&self, source: &dyn DirectorySource) {
        match source.fetch().await {
            Ok(view) => {
                if *self.current.snapshot() != view {
                    tracing::info!(
                        groups = view.groups.len(),
                        storages = view.groups.values().map(Vec::len).sum::<usize>(),
                        "cluster view changed"
                    );
                    self.current.set(view);
                }
                *self.refreshes.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster view refresh failed; keeping the last one")
            }
        }
    }

    /// Successful refreshes so far (tests, status).
    pub fn refresh_count(&self) -> u64 {
        *self.refreshes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClusterDirectory for LiveDirectory {
    fn snapshot(&self) -> Arc<ClusterView> {
        self.current.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_active_on_any_tracker_stays_routable() {
        let st = |last: u8, status: u8| ListedStorage {
            id: format!("s{last}"),
            ip: IpAddr::from([192, 168, 3, last]),
            port: 23000,
            status,
        };
        // The restarted tracker still has s23 OFFLINE and does not know s24 yet.
        let fresh = vec![st(23, 5)];
        let warm = vec![st(23, STORAGE_STATUS_ACTIVE), st(24, STORAGE_STATUS_ACTIVE)];
        let merged = merge(
            vec![Ok(fresh), Ok(warm), Err(anyhow::anyhow!("down"))],
            merge_storages,
        )
        .unwrap();
        assert_eq!(
            merged,
            vec![st(23, STORAGE_STATUS_ACTIVE), st(24, STORAGE_STATUS_ACTIVE)]
        );
        let none: Vec<anyhow::Result<Vec<ListedStorage>>> = vec![Err(anyhow::anyhow!("down"))];
        assert!(merge(none, merge_storages).is_err());
    }

    fn node(last: u8) -> StorageNode {
        StorageNode {
            id: format!("s{last}"),
            ip: IpAddr::from([127, 0, 0, last]),
            port: 23000,
            http_port: 8888,
        }
    }

    struct FakeTracker;

    impl TrackerLister for FakeTracker {
        fn list_groups(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
            Box::pin(async { Ok(vec!["group1".to_string(), "group2".to_string()]) })
        }
        fn list_storages<'a>(
            &'a self,
            group: &'a str,
        ) -> BoxFuture<'a, anyhow::Result<Vec<ListedStorage>>> {
            Box::pin(async move {
                let s = |last: u8, status: u8| ListedStorage {
                    id: format!("{group}-{last}"),
                    ip: IpAddr::from([192, 168, 3, last]),
                    port: 23000,
                    status,
                };
                Ok(match group {
                    "group1" => vec![s(24, STORAGE_STATUS_ACTIVE), s(23, STORAGE_STATUS_ACTIVE)],
                    _ => vec![s(25, 5 /* OFFLINE */), s(26, 2 /* SYNCING */)],
                })
            })
        }
    }

    #[tokio::test]
    async fn tracker_source_keeps_active_storages_with_http_port() {
        let src = TrackerSource {
            lister: FakeTracker,
            storage_http_port: 8888,
        };
        let view = src.fetch().await.unwrap();
        let g1 = view.storages("group1").unwrap();
        assert_eq!(g1.len(), 2);
        assert_eq!(g1[0].http_addr(), "192.168.3.23:8888".parse().unwrap());
        assert_eq!(g1[0].port, 23000);
        // A group whose storages are all unusable is known but empty (502, not 404).
        assert_eq!(view.storages("group2").map(|s| s.len()), Some(0));
    }

    #[tokio::test]
    async fn live_directory_follows_source_and_survives_errors() {
        let src = Arc::new(MemoryDirectory::new(ClusterView {
            groups: BTreeMap::from([("group1".into(), vec![node(1)])]),
        }));
        let stop = CancellationToken::new();
        let dir = LiveDirectory::start(src.clone(), Duration::from_millis(10), stop.clone()).await;
        assert_eq!(dir.snapshot().storages("group1").map(|s| s.len()), Some(1));
        src.set(ClusterView {
            groups: BTreeMap::from([
                ("group1".into(), vec![node(1), node(2)]),
                ("group2".into(), vec![node(3)]),
            ]),
        });
        for _ in 0..2000 {
            if dir.snapshot().groups.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(dir.snapshot().storages("group1").map(|s| s.len()), Some(2));
        assert_eq!(dir.snapshot().storages("group2").map(|s| s.len()), Some(1));
        stop.cancel();

        let failing = LiveDirectory::start(
            Arc::new(UnavailableSource("down".into())),
            Duration::from_secs(60),
            CancellationToken::new(),
        )
        .await;
        assert!(failing.snapshot().groups.is_empty());
        assert_eq!(failing.refresh_count(), 0);
    }
}
