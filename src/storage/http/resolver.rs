//! Storage id -> address, learned from the trackers, for file IDs written with
//! `id_type_in_filename: id` whose source is another storage of the group.
//!
//! `resolve` is called per request and must not wait on the network, so a background task keeps
//! the map fresh (SERVER_LIST_STORAGE of our group every [`REFRESH`]); a failed refresh keeps the
//! last map, because a tracker hiccup must not make replicated files unreachable. A request
//! whose source is not in the map asks for a refresh first (`refreshed`: shared by concurrent
//! requests, spaced, bounded), so a storage that joined since the last read is followed at once
//! and a stranger is still refused, on a list read after the request came.

use super::SourceResolver;
use crate::client::FdfsClient;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the id list is re-read; a new storage's files are reachable within this time.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Refreshes asked for by requests (`refreshed`) start at most this often, so requests naming
/// a stranger cost the trackers at most a few list queries a second.
const MIN_SPACING: Duration = Duration::from_millis(250);
/// The longest a request waits for a list read on its behalf (a tracker that does not answer).
const REFRESH_WAIT: Duration = Duration::from_secs(3);

pub struct TrackerResolver {
    group: String,
    client: FdfsClient,
    ids: RwLock<HashMap<u32, IpAddr>>,
    /// Every address in the group's list (also storages without a numeric id).
    members: RwLock<std::collections::HashSet<IpAddr>>,
    /// When the last on-demand refresh started; held across it, so concurrent requests share
    /// one refresh instead of each sending their own.
    on_demand: tokio::sync::Mutex<Option<Instant>>,
}

impl TrackerResolver {
    pub fn new(trackers: Vec<SocketAddr>, group: &str) -> Arc<Self> {
        Arc::new(TrackerResolver {
            group: group.to_string(),
            client: FdfsClient::with_timeout(trackers, Duration::from_secs(5)),
            ids: RwLock::new(HashMap::new()),
            members: RwLock::new(Default::default()),
            on_demand: tokio::sync::Mutex::new(None),
        })
    }

    /// Re-reads the group's storages; numeric ids are mapped to their addresses.
    pub async fn refresh(&self) -> Result<usize, crate::client::ClientError> {
        let list = self.client.list_storages(&self.group).await?;
        let map: HashMap<u32, IpAddr> = list
            .iter()
            .filter_map(|s| Some((s.id.parse().ok()?, s.ip.parse().ok()?)))
            .collect();
        let n = map.len();
        let members = list.iter().filter_map(|s| s.ip.parse().ok()).collect();
        *self.ids.write().unwrap_or_else(|e| e.into_inner()) = map;
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = members;
        Ok(n)
    }

    /// Re-reads the list unless a refresh that started after `asked` already did (then the
    /// caller's answer is in it); spaced by [`MIN_SPACING`], bounded by [`REFRESH_WAIT`].
    async fn refresh_after(&self, asked: Instant) {
        let wait = async {
            let mut last = self.on_demand.lock().await;
            if last.is_some_and(|t| t >= asked) {
                return;
            }
            if let Some(t) = *last {
                tokio::time::sleep_until((t + MIN_SPACING).into()).await;
            }
            *last = Some(Instant::now());
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %e, "storage http: group list refresh failed");
            }
        };
        let _ = tokio::time::timeout(REFRESH_WAIT, wait).await;
    }

    /// Refreshes now and then every [`REFRESH`] until `shutdown`.
    pub fn spawn_refresher(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = me.refresh().await {
                    tracing::debug!(error = %e, "storage http: storage id list refresh failed");
                }
            }
        });
    }
}

impl SourceResolver for TrackerResolver {
    fn resolve(&self, id: u32) -> Option<IpAddr> {
        self.ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }

    fn is_member(&self, ip: IpAddr) -> bool {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ip.to_canonical())
    }

    fn refreshed(&self) -> futures::future::BoxFuture<'_, ()> {
        let asked = Instant::now();
        Box::pin(self.refresh_after(asked))
    }
}
