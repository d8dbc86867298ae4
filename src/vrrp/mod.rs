//! VRRPv2 (RFC 3768): packet codec, pure state machine, raw-socket, ARP and netlink adapters.
//!
//! Contract with the supervisor: `Vrrp::start(cfg)` returns the runner and a cloneable
//! `VrrpControl` (probe results in, status and state changes out). `run(shutdown)` returns after a
//! graceful handover (priority-0 adverts, VIPs released) once `shutdown` is cancelled.

use crate::config::VrrpConfig;
use tokio_util::sync::CancellationToken;

pub struct Vrrp {
    _cfg: VrrpConfig,
}

#[derive(Clone, Default)]
pub struct VrrpControl {}

impl Vrrp {
    pub async fn start(cfg: &VrrpConfig) -> anyhow::Result<(Vrrp, VrrpControl)> {
        Ok((Vrrp { _cfg: cfg.clone() }, VrrpControl::default()))
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await; // interim: replaced by the VRRP engine
        Ok(())
    }
}
