//! Storage id -> address, learned from the trackers, for file IDs written with
//! `id_type_in_filename: id` whose source is another storage of the group.
//!
//! `resolve` is called per request and must not wait on the network, so a background task keeps
//! the map fresh (SERVER_LIST_STORAGE of our group every [`REFRESH`]); a failed refresh keeps the
//! last map, because a tracker hiccup must not make replicated files unreachable.

use super::SourceResolver;
use crate::client::FdfsClient;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the id list is re-read; a new storage's files are reachable within this time.
pub const REFRESH: Duration = Duration::from_secs(5);

pub struct TrackerResolver {
    group: String,
    client: FdfsClient,
    ids: RwLock<HashMap<u32, IpAddr>>,
    /// Every address in the group's list (also storages without a numeric id).
    members: RwLock<std::collections::HashSet<IpAddr>>,
}

impl TrackerResolver {
    pub fn new(trackers: Vec<SocketAddr>, group: &str) -> Arc<Self> {
        Arc::new(TrackerResolver {
            group: group.to_string(),
            client: FdfsClient::with_timeout(trackers, Duration::from_secs(5)),
            ids: RwLock::new(HashMap::new()),
            members: RwLock::new(Default::default()),
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
}
