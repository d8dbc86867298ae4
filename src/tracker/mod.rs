//! FastDFS tracker: cluster view (groups, storages, status), storage selection, tracker service.
//!
//! Contract with the supervisor: `TrackerServer::bind` then `serve(shutdown)`; `serve` returns when
//! `shutdown` is cancelled (after in-flight requests finish) or on a fatal error.
//!
//! Every storage reports to every tracker in its list, so each tracker builds the same cluster
//! view from the same reports and answers any query the same way. As in C FastDFS, the trackers
//! elect a leader (`leader`), and only the leader pushes the group lists and its own address in
//! BEAT answers, so storages learn status changes from one place. The view is also kept in
//! `<data_dir>/tracker-cluster.json` (`persist`) so a restarted tracker answers at once; storages must report again within a short grace or
//! go OFFLINE. Without the file (or after more than 600 s down) a tracker first copies the view
//! of another tracker the storages name, C or fdfs-ha, as C's system files (`sys_files`), then
//! learns the rest from JOINs and reports (a storage that says it has its data,
//! `init_flag = 0`, is trusted: ONLINE, then ACTIVE).
//!
//! - `cluster`: the cluster view, a pure state machine.
//! - `index`: the selection indexes `cluster` keeps in step with every change.
//! - `select`: which group/storage/path serves an upload, a download or a change (pure).
//! - `service`: connections, limits, the per-connection state every command sees.
//! - `cmd`: one handler per command family, and the dispatch that picks it.
//! - `persist`: the view on disk.
//! - `peers`, `leader`, `leader_link`: C FastDFS trackers' commands among themselves (issue 17):
//!   the leader election (only the leader pushes lists in BEAT answers), the system-file copy.
//! - `sys_files`, `sys_files_link`: a tracker starting without data copies another tracker's
//!   system files before it answers storage JOINs, as C does.

pub mod cluster;
mod cmd;
pub mod index;
pub mod leader;
pub mod leader_link;
pub mod metrics;
pub mod peers;
pub mod persist;
pub mod select;
pub mod service;
pub mod sorted_map;
pub mod sys_files;
mod sys_files_link;

use crate::config::TrackerConfig;
use service::Tracker;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Writes the view to disk when it differs from what was last written. Failures are logged
/// once per change and never stop the tracker (the view is only a warm-start aid).
async fn save_if_changed(
    tracker: &Arc<Tracker>,
    data_dir: &Path,
    saved: &mut Option<persist::Snapshot>,
) {
    // Compared without the timestamp, so an unchanged view is not rewritten every tick; one
    // copy of the view per tick, taken under the lock (queries wait meanwhile).
    let mut snap = tracker.snapshot(0);
    if saved.as_ref() == Some(&snap) {
        return;
    }
    snap.saved_at_unix = crate::clock::unix_now_i64();
    let Ok(json) = serde_json::to_string(&snap) else {
        return;
    };
    snap.saved_at_unix = 0;
    let dir = data_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || persist::save(&dir, &json)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(dir = %data_dir.display(), error = %e, "cannot save tracker view")
        }
        Err(e) => tracing::warn!(error = %e, "tracker view save task failed"),
    }
    *saved = Some(snap);
}

/// Refuses settings the tracker could only fail on later, naming the key.
fn check_config(cfg: &TrackerConfig) -> anyhow::Result<()> {
    use crate::config::StoreLookup;
    if cfg.store_lookup == StoreLookup::Specified {
        let g = cfg.store_group.as_deref().ok_or_else(|| {
            anyhow::anyhow!("tracker.store_group is required with store_lookup: specified")
        })?;
        crate::proto::tracker::validate_group(g)
            .map_err(|e| anyhow::anyhow!("tracker.store_group: {e}"))?;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, e) in cfg.storage_ids.iter().enumerate() {
        crate::proto::tracker::validate_group(&e.group)
            .map_err(|err| anyhow::anyhow!("tracker.storage_ids[{i}].group: {err}"))?;
        if e.id.is_empty() || e.id.len() > crate::proto::STORAGE_ID_LEN {
            anyhow::bail!(
                "tracker.storage_ids[{i}].id: {:?} must be 1..=16 characters",
                e.id
            );
        }
        if !seen.insert(e.id.as_str()) {
            anyhow::bail!("tracker.storage_ids[{i}].id: {:?} is listed twice", e.id);
        }
    }
    if cfg.use_storage_id && cfg.storage_ids.is_empty() {
        anyhow::bail!("tracker.storage_ids must list the storages when use_storage_id is true");
    }
    Ok(())
}

pub struct TrackerServer {
    listener: tokio::net::TcpListener,
    tracker: Arc<Tracker>,
    data_dir: std::path::PathBuf,
    start_unix: i64,
}

impl TrackerServer {
    pub async fn bind(cfg: &TrackerConfig, data_dir: &Path) -> anyhow::Result<Self> {
        check_config(cfg)?;
        crate::config::allow_hosts::AllowHosts::parse(&cfg.allow_hosts)
            .map_err(|e| anyhow::anyhow!("tracker.allow_hosts: {e}"))?;
        let listener = crate::listen::bind(cfg.listen)
            .map_err(|e| anyhow::anyhow!("tracker: cannot listen on {}: {e}", cfg.listen))?;
        let start_unix = crate::clock::unix_now_i64();
        let mut restart_interval = 0;
        let restored = persist::load(data_dir);
        let had_data = restored.is_some();
        let cluster = match restored {
            Some(snap) => {
                // How long this tracker was down (C's restart_interval, ranks it in elections).
                restart_interval = (start_unix - snap.saved_at_unix).max(0);
                let c = persist::restore(
                    &snap,
                    Instant::now(),
                    crate::clock::unix_now_i64(),
                    cfg.check_active_interval.get(),
                );
                let storages: usize = c.groups.values().map(|g| g.storages.len()).sum();
                tracing::info!(
                    groups = c.groups.len(),
                    storages,
                    "tracker view restored from disk"
                );
                c
            }
            None => cluster::Cluster::new(),
        };
        // The port actually bound (listen may say 0): the election tells our own entry in the
        // storages' tracker lists by it.
        let mut cfg = cfg.clone();
        if let Ok(a) = listener.local_addr() {
            cfg.listen = a;
        }
        let tracker = Arc::new(Tracker::with_cluster(cfg, cluster));
        tracker.started(start_unix, restart_interval);
        // C copies the other trackers' view when it starts without data or after more than
        // 600 s down (LAYOUT.md, `.tracker_status`).
        if !had_data || restart_interval > sys_files::COPY_AFTER_DOWN_SECS {
            tracker.copy_sys_files_first();
        }
        Ok(TrackerServer {
            listener,
            tracker,
            data_dir: data_dir.to_path_buf(),
            start_unix,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The shared service state (counters, cluster view) for status pages and tests.
    pub fn tracker(&self) -> Arc<Tracker> {
        self.tracker.clone()
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = self.tracker;
        let limit = Arc::new(tokio::sync::Semaphore::new(
            tracker.cfg.max_connections.max(1),
        ));
        let mut conns = tokio::task::JoinSet::new();

        // Liveness: check often enough that OFFLINE follows check_active_interval closely.
        let tick = (tracker.cfg.check_active_interval.get() / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let ticker = {
            let tracker = tracker.clone();
            let shutdown = shutdown.clone();
            let data_dir = self.data_dir.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(tick);
                let mut saved = None;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = every.tick() => {
                            tracker.check_active(Instant::now());
                            save_if_changed(&tracker, &data_dir, &mut saved).await;
                        }
                    }
                }
                save_if_changed(&tracker, &data_dir, &mut saved).await;
            })
        };

        let election = tokio::spawn(leader_link::run(
            tracker.clone(),
            self.start_unix,
            shutdown.clone(),
        ));

        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = self.listener.accept() => a,
            };
            // Reap finished connection tasks so the set does not grow without bound.
            while conns.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(v) => v,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "tracker accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // allow_hosts and max_connections_per_ip: closed before a byte is read.
            let Ok(admitted) = tracker.admission.admit(peer.ip()) else {
                drop(stream);
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracker
                    .counters
                    .refused_connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::limited!(tracker.logs, warn, "max_connections", %peer,
                    max = tracker.cfg.max_connections, "max_connections reached; refusing");
                drop(stream);
                continue;
            };
            tracker
                .counters
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let tracker = tracker.clone();
            let shutdown = shutdown.clone();
            conns.spawn(async move {
                service::serve_connection(tracker, stream, shutdown).await;
                drop(permit);
                drop(admitted);
            });
        }
        // Connections finish their current request, then see the cancelled token.
        while conns.join_next().await.is_some() {}
        let _ = ticker.await;
        let _ = election.await;
        Ok(())
    }
}
