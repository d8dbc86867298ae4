//! VRRPv2 (RFC 3768): packet codec, pure state machine, raw-socket, ARP and netlink adapters.
//!
//! Contract with the supervisor: `Vrrp::start(cfg)` returns the runner and a cloneable
//! `VrrpControl` (probe results in, status and state changes out). `run(shutdown)` returns after a
//! graceful handover (priority-0 adverts, VIPs released) once `shutdown` is cancelled.

use crate::config::VrrpConfig;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use tokio_util::sync::CancellationToken;

pub struct Vrrp {
    _cfg: VrrpConfig,
}

/// Handle the supervisor keeps: feeds probe results in, reads status and state changes out.
#[derive(Clone)]
pub struct VrrpControl {
    changes: tokio::sync::broadcast::Sender<StateChange>,
}

/// One instance's state for `fdfs-ha status`.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    /// `INIT`, `BACKUP`, `MASTER` or `FAULT`.
    pub state: String,
    pub base_priority: u8,
    pub effective_priority: u8,
    /// Primary address of the current Master as last heard (ourselves when Master).
    pub master: Option<Ipv4Addr>,
    pub last_transition_unix_ms: u64,
    pub last_reason: String,
    /// Dropped adverts by reason (ttl, version, checksum, vrid, auth, interval, ...).
    pub drops: BTreeMap<String, u64>,
}

/// A state transition, fired exactly once per transition (drives notify commands).
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    pub instance: String,
    /// `MASTER`, `BACKUP` or `FAULT`.
    pub state: String,
    pub reason: String,
}

impl VrrpControl {
    /// Probe-derived tracking for an instance: the sum of the track weights that apply now
    /// (keepalived semantics) and whether a `fault` track is failing. Applied and advertised at once.
    pub fn set_tracking(&self, _instance: &str, _priority_delta: i32, _fault: bool, _reason: &str) {
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        Vec::new()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StateChange> {
        self.changes.subscribe()
    }
}

impl Vrrp {
    pub async fn start(cfg: &VrrpConfig) -> anyhow::Result<(Vrrp, VrrpControl)> {
        let (changes, _) = tokio::sync::broadcast::channel(64);
        Ok((Vrrp { _cfg: cfg.clone() }, VrrpControl { changes }))
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await; // interim: replaced by the VRRP engine
        Ok(())
    }
}
