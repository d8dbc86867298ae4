//! The VRRP thread (issue 23.5): every instance's timers, sockets and netlink connections run on
//! one OS thread with its own current-thread tokio runtime, never on the node's main runtime.
//!
//! A node's data plane (uploads at full speed, a thousand HTTP clients, a blocking call someone
//! slipped into an async task) can keep the main runtime's workers busy for longer than a
//! Master_Down_Interval; adverts scheduled there would go out late and the peer would take over
//! from a healthy Master. Here nothing but VRRP competes for the runtime, and the kernel
//! schedules the thread like any other. The supervisor talks to it through `VrrpControl`
//! (watch/broadcast channels and a mutex: all thread-safe) and this handle.

use super::ownership::VipOwner;
use super::status::StatusCarry;
use super::{Engine, VrrpControl};
use crate::config::VrrpConfig;
use anyhow::Context;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Running VRRP instances, started by `start` and driven by `run`. Dropping it without `run`
/// stops the thread (its instances never ran: no advert was sent, no VIP added).
pub struct Vrrp {
    go: oneshot::Sender<CancellationToken>,
    done: oneshot::Receiver<anyhow::Result<()>>,
}

impl Vrrp {
    /// Starts the instances; they tell `vips` which of their VIPs this node serves.
    pub async fn start(cfg: &VrrpConfig, vips: &VipOwner) -> anyhow::Result<(Vrrp, VrrpControl)> {
        Self::start_carrying(cfg, &StatusCarry::default(), vips).await
    }

    /// `start`, with status records (counters) carried over from earlier runs of the same
    /// instance names. The instances are resolved on the VRRP thread; errors come back here.
    pub async fn start_carrying(
        cfg: &VrrpConfig,
        carry: &StatusCarry,
        vips: &VipOwner,
    ) -> anyhow::Result<(Vrrp, VrrpControl)> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (go, go_rx) = oneshot::channel::<CancellationToken>();
        let (done_tx, done) = oneshot::channel();
        let (cfg, carry, vips) = (cfg.clone(), carry.clone(), vips.clone());
        std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e).context("VRRP runtime")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (engine, control) = match Engine::build(&cfg, &carry, &vips).await {
                        Ok(started) => started,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if ready_tx.send(Ok(control)).is_err() {
                        return;
                    }
                    if let Ok(shutdown) = go_rx.await {
                        let _ = done_tx.send(engine.run(shutdown).await);
                    }
                });
            })
            .context("spawning the VRRP thread")?;
        let control = ready_rx
            .await
            .context("the VRRP thread ended while starting")??;
        Ok((Vrrp { go, done }, control))
    }

    /// Runs the instances until `shutdown` is cancelled, then hands over gracefully; returns
    /// when they have stopped. The work happens on the VRRP thread; this only waits for it.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        if self.go.send(shutdown).is_err() {
            anyhow::bail!("the VRRP thread ended before it ran");
        }
        self.done
            .await
            .context("the VRRP thread ended abnormally")?
    }
}
