//! FastDFS storage: file store, storage service, reporting to trackers, binlog and sync, http.
//!
//! ```text
//!            accept (max_connections)          ┌──────────── StorageState ─────────────┐
//!  clients, peers ────► service (per conn) ────►│ store (files, -m)   binlog (C D A M T U)│
//!                                              │ source/params       stats (BEAT)        │
//!  reporter (tracker link) ── set_source ─────►└───────────────────────────────────────┘
//!  binlog flusher: every sync.binlog_flush_interval, and at shutdown (then wakes the senders)
//!  sync (sync.rs): one sender per group peer replays the binlog with SYNC_* commands
//! ```
//! Contract with the supervisor: `StorageServer::bind` then `serve(shutdown)`; `serve` returns when
//! `shutdown` is cancelled (after in-flight requests finish) or on a fatal error. The storage
//! serves clients without any tracker; the reporter (another module) adds itself via `state()`.
//!
//! For the reporter: `StorageState::{set_source, set_group_params, set_storage_ips}` after
//! GET_MY_IP / PARAMETER_REQ / FETCH_STORAGE_IDS; `disk_usage()`, `stats().snapshot()` (BEAT
//! block), `join_time()`, `up_time()`, `store_path_count()`, `subdir_count()`,
//! `upload_priority()`, `current_write_path()`. For sync: `binlog().reader(pos)` iterates records
//! from a `BinlogPos { index, offset }`.

pub mod binlog;
pub mod durable;
pub mod http;
pub mod init_flag;
pub mod journal;
pub mod metrics;
pub mod service;
pub mod small_writer;
pub mod state;
pub mod store;

pub use state::{GroupParams, StatsSnapshot, StorageState};
pub use store::DiskUsage;

pub mod reporter;
pub mod sync;
pub mod tracker_link;

use crate::config::StorageConfig;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct StorageServer {
    listener: tokio::net::TcpListener,
    state: Arc<StorageState>,
}

impl StorageServer {
    /// Opens the store paths and the binlog, and binds the listening socket.
    pub async fn bind(cfg: &StorageConfig, node: &str) -> anyhow::Result<Self> {
        crate::config::allow_hosts::AllowHosts::parse(&cfg.allow_hosts)
            .map_err(|e| anyhow::anyhow!("storage.allow_hosts: {e}"))?;
        let listener = crate::listen::bind(cfg.listen)
            .map_err(|e| anyhow::anyhow!("storage.listen {}: {e}", cfg.listen))?;
        let port = listener.local_addr()?.port();
        let cfg2 = cfg.clone();
        let node2 = node.to_string();
        let state =
            tokio::task::spawn_blocking(move || StorageState::open(&cfg2, &node2, port)).await??;
        Ok(StorageServer {
            listener,
            state: Arc::new(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Shared state for the tracker reporter and sync (identity setters, stats, disk usage).
    pub fn state(&self) -> Arc<StorageState> {
        self.state.clone()
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state;
        let cfg = state.config().clone();
        let limit = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        let conns = TaskTracker::new();
        let flusher = tokio::spawn(flush_binlog(
            state.clone(),
            cfg.sync.binlog_flush_interval.get(),
            shutdown.clone(),
        ));
        // Keep this storage registered and reported on every tracker of its list.
        let port = self.listener.local_addr()?.port();
        let link = Arc::new(tracker_link::TrackerLink::new(state.clone(), port));
        let reporter = tokio::spawn(reporter::run_reporter(
            cfg.trackers.clone(),
            cfg.heart_beat_interval.get(),
            cfg.stat_report_interval.get(),
            link,
            shutdown.clone(),
        ));
        let sync = tokio::spawn(sync::run_sync(state.clone(), shutdown.clone()));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(v) => v,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "storage: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let stats = state.stats();
            // allow_hosts and max_connections_per_ip: closed before a byte is read.
            let Ok(admitted) = state.admission().admit(peer.ip()) else {
                stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                crate::limited!(state.logs(), warn, "max_connections", %peer,
                    max = cfg.max_connections, "storage: connection refused, max_connections reached");
                drop(stream);
                continue;
            };
            stats.connections_total.fetch_add(1, Ordering::Relaxed);
            let now = stats.connections_current.fetch_add(1, Ordering::Relaxed) + 1;
            stats.connections_max.fetch_max(now, Ordering::Relaxed);
            let st = state.clone();
            let stop = shutdown.clone();
            conns.spawn(async move {
                service::serve_connection(stream, st.clone(), stop).await;
                st.stats()
                    .connections_current
                    .fetch_sub(1, Ordering::Relaxed);
                drop(permit);
                drop(admitted);
            });
        }
        drop(self.listener);
        conns.close();
        conns.wait().await;
        let _ = flusher.await;
        let _ = reporter.await;
        let _ = sync.await;
        let st = state.clone();
        tokio::task::spawn_blocking(move || flush_and_settle(&st)).await??;
        Ok(())
    }
}

/// Flushes (write + fdatasync) the binlog every `interval` until shutdown.
async fn flush_binlog(
    state: Arc<StorageState>,
    interval: std::time::Duration,
    stop: CancellationToken,
) {
    let period = interval.max(std::time::Duration::from_millis(10));
    // First tick one period after start, not at once: whenever the task first ran, that
    // immediate tick settled what had been uploaded by then, earlier than any interval says.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            _ = state.binlog().flush_wanted() => {}
            _ = state.store().settle_wanted() => {}
        }
        if state.binlog().pending() == 0
            && state.store().unsettled_count() == 0
            && state.store().unflushed_count() == 0
            && !state.store().journal_pending()
        {
            continue;
        }
        let st = state.clone();
        match tokio::task::spawn_blocking(move || flush_and_settle(&st)).await {
            Ok(Ok(())) => state.notify_binlog_flushed(),
            Ok(Err(e)) => tracing::error!(error = %e, "storage: binlog flush failed; will retry"),
            Err(e) => tracing::error!(error = %e, "storage: binlog flush task failed"),
        }
    }
}

/// Flushes peers' files (`Store::flush_replicas`), then the binlog, then settles the files
/// created before it (`Store::settle`, `Store::retire_journals`): a file's sealed name or
/// journal record, which start-up re-logs, outlives the flush of its binlog record (but for an
/// upload caught between its file and its record, microseconds apart).
fn flush_and_settle(state: &StorageState) -> std::io::Result<()> {
    state.store().flush_replicas()?;
    let batch = state.store().unsettled();
    state.store().close_journals();
    if let Err(e) = state.binlog().flush() {
        state.store().put_back(batch);
        return Err(e);
    }
    if let Err(e) = state.store().settle(batch) {
        tracing::error!(error = %e, "storage: could not settle new files; will retry");
    }
    if let Err(e) = state.store().retire_journals() {
        tracing::error!(error = %e, "storage: could not settle journaled files; will retry");
    }
    Ok(())
}
