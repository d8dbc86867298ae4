//! Supervisor: starts the components ha.yaml enables, runs probes, feeds VRRP, handles signals.
//!
//! Interim version: starts every enabled component, stops them all on SIGTERM/SIGINT (VRRP first,
//! so a Master hands over before its services go away).

use crate::config::Config;
use tokio_util::sync::CancellationToken;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let components = CancellationToken::new();
    let vrrp_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    let mut vrrp_task = None;
    if let Some(v) = &cfg.vrrp {
        let (vrrp, _control) = crate::vrrp::Vrrp::start(v).await?;
        vrrp_task = Some(tokio::spawn(vrrp.run(vrrp_stop.clone())));
    }
    if let Some(t) = &cfg.tracker {
        let s = crate::tracker::TrackerServer::bind(t, &cfg.data_dir).await?;
        tracing::info!(addr = %s.local_addr(), "tracker listening");
        tasks.spawn(s.serve(components.clone()));
    }
    if let Some(st) = &cfg.storage {
        let s = crate::storage::StorageServer::bind(st, &cfg.node).await?;
        tracing::info!(addr = %s.local_addr(), "storage listening");
        tasks.spawn(s.serve(components.clone()));
    }
    if let Some(g) = &cfg.gateway {
        let s = crate::gateway::Gateway::bind(g, &cfg.data_dir).await?;
        tracing::info!(addr = %s.local_addr(), "gateway listening");
        tasks.spawn(s.serve(components.clone()));
    }

    wait_for_stop_signal().await?;
    tracing::info!("stop requested");
    vrrp_stop.cancel();
    if let Some(t) = vrrp_task {
        t.await??;
    }
    components.cancel();
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use futures::StreamExt;
    let mut signals = signal_hook_tokio::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    signals.next().await;
    Ok(())
}
