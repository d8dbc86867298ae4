//! VRRPv2 (RFC 3768): packet codec, pure state machine, raw-socket, ARP and netlink adapters.
//!
//! Contract with the supervisor: `Vrrp::start(cfg, vips)` returns the runner and a cloneable
//! `VrrpControl` (probe results in, status and state changes out). `run(shutdown)` returns after a
//! graceful handover (priority-0 adverts, VIPs released) once `shutdown` is cancelled.
//!
//! ```text
//!                 raw socket (proto 112)      netlink (addr/link events)    VrrpControl
//!                        | adverts                 | VIP removed, link       | set_tracking
//!                        v                         v                         v
//!   packet::Expect::check (§7.1; drops counted by reason, logged rate-limited)
//!                        |                         |                         |
//!                        +-----------> fsm::Fsm::handle(now, Event) <--------+
//!                                      fsm::Fsm::poll(now) at next_deadline()
//!                                                  |
//!                                                  v  Vec<Action>
//!        SendAdvert -> socket.rs   AddVips/RemoveVips -> vip.rs   SendGarp -> arp.rs
//!        Notify -> status + StateChange broadcast (supervisor runs notify commands)
//! ```
//! One task per instance owns its FSM; nothing else mutates it. All of them run on the VRRP
//! thread (`thread.rs`), away from the node's main runtime (issue 23.5).
//! Each instance also has a `guard` process (`fdfs-ha vip-guard`) that removes its VIPs once
//! the peer has taken over if this process dies holding them (issue 23.2).

pub mod arp;
pub mod auth_hmac;
pub mod fsm;
pub mod guard;
pub mod ndisc;
pub mod ownership;
pub mod packet;
pub mod packet_v3;
mod peers;
mod receive;
pub mod reload;
pub mod socket;
pub mod socket6;
pub mod status;
mod thread;
pub mod vip;

pub use status::{InstanceStatus, PeerMismatch, StatusCarry};

use crate::clock::unix_millis;
use crate::config::{VrrpAuth, VrrpConfig, VrrpInstanceConfig};
use anyhow::{bail, Context};
use fsm::{Action, Event, Fsm, FsmConfig, State};
use packet::{Advert, Auth, Expect};
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use vip::{NetEvent, Netlink, Vip};

pub use thread::Vrrp;
// One log line per drop reason (or send error) per LOG_EVERY; the rest are counted.
use crate::log_limit::RateLimit;

const LOG: &str = "fdfs_ha::vrrp";
/// A Master handing over to a successor it heard keeps its VIPs this long, so requests in
/// flight to it finish (the successor's gratuitous ARPs already steer new traffic away).
const VIP_RELEASE_GRACE: Duration = Duration::from_millis(250);
/// At most this many queued packets are read before a due timer fires (see `Instance::run`).
const QUEUED_BEFORE_TIMER: usize = 8;

/// The instances of a `Vrrp`, resolved against the host; they run on the VRRP thread.
struct Engine {
    instances: Vec<Instance>,
    shared: Arc<Shared>,
    netlink: Netlink,
    net_events: broadcast::Sender<NetEvent>,
}

/// Handle the supervisor keeps: feeds probe results in, reads status and state changes out.
#[derive(Clone)]
pub struct VrrpControl {
    changes: broadcast::Sender<StateChange>,
    shared: Arc<Shared>,
}

/// A state transition, fired exactly once per transition (drives notify commands).
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    pub instance: String,
    /// `MASTER`, `BACKUP` or `FAULT`; `INIT` once the instance has stopped.
    pub state: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct Tracking {
    delta: i32,
    fault: bool,
    reason: String,
}

struct Shared {
    /// Per instance slot; the records outlive a restart (see `status::StatusCarry`).
    status: Vec<Arc<Mutex<InstanceStatus>>>,
    tracking: HashMap<String, watch::Sender<Tracking>>,
    /// New settings for a running instance (reload), latest wins.
    reconfig: HashMap<String, watch::Sender<Option<VrrpInstanceConfig>>>,
    /// The node's VIP ownership, read by its HTTP servers.
    vips: ownership::VipOwner,
}

impl VrrpControl {
    /// Probe-derived tracking for an instance: the sum of the track weights that apply now
    /// (keepalived semantics) and whether a `fault` track is failing. Applied and advertised at once.
    pub fn set_tracking(&self, instance: &str, priority_delta: i32, fault: bool, reason: &str) {
        match self.shared.tracking.get(instance) {
            Some(tx) => {
                tx.send_replace(Tracking {
                    delta: priority_delta,
                    fault,
                    reason: reason.to_string(),
                });
            }
            None => tracing::warn!(target: LOG, instance, "set_tracking: no such VRRP instance"),
        }
    }

    /// Applies a reloaded instance config in place (see `reload`). The caller has checked
    /// `reload::restart_needed`; this validates the settings and hands them to the runner.
    pub fn reconfigure(&self, ic: &VrrpInstanceConfig) -> anyhow::Result<()> {
        validate(&VrrpConfig {
            instances: vec![ic.clone()],
        })?;
        match self.shared.reconfig.get(&ic.name) {
            Some(tx) => {
                tx.send_replace(Some(ic.clone()));
                Ok(())
            }
            None => bail!("no VRRP instance {}", ic.name),
        }
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        self.shared
            .status
            .iter()
            .map(|s| status::lock(s).clone())
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.changes.subscribe()
    }
}

/// One configured instance, resolved against the host (interface index, source address).
struct Instance {
    slot: usize,
    name: String,
    /// The settings it runs with (reloads are diffed against these).
    cfg: VrrpInstanceConfig,
    reconfig: watch::Receiver<Option<VrrpInstanceConfig>>,
    interface: String,
    ifindex: u32,
    vrid: u8,
    auth: Auth,
    hmac_keys: auth_hmac::HmacKeys,
    /// Last HMAC sequence number sent (see `auth_hmac::next_seq`).
    seq: std::sync::atomic::AtomicU64,
    /// Last HMAC sequence number accepted per sender.
    replay: Mutex<auth_hmac::ReplayGuard>,
    adver_int: u8,
    vips: Vec<Vip>,
    /// VRIDs of other instances on the same interface: their adverts are not drops.
    sibling_vrids: Vec<u8>,
    unicast_peers: Vec<Ipv4Addr>,
    fsm: FsmConfig,
    garp_repeat: u32,
    garp_interval: Duration,
    socket: socket::AdvertSocket,
    garp: Option<arp::GarpSender>,
    tracking: watch::Receiver<Tracking>,
    changes: broadcast::Sender<StateChange>,
    /// True between AddVips and RemoveVips: the VIPs should be on the interface.
    vips_added: std::sync::atomic::AtomicBool,
    /// What we last told `ownership` about our VIPs.
    vips_served: std::sync::atomic::AtomicBool,
    /// Removes our VIPs once the peer has taken over if this process dies (`guard`).
    guard: guard::Guard,
}

/// Config checks that need no host access: the same rule set `fdfs-ha check` applies
/// (`config::vrrp_rules`), so a config `check` accepts is never refused here, and the reverse.
fn validate(cfg: &VrrpConfig) -> anyhow::Result<()> {
    let broken = crate::config::vrrp_rules::check(cfg);
    if broken.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = broken.iter().map(|b| b.to_string()).collect();
    bail!("invalid vrrp config:\n  {}", lines.join("\n  "))
}

/// CAP_NET_ADMIN (bit 12) and CAP_NET_RAW (bit 13) in the effective set.
fn check_capabilities() -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
    if let Some(eff) = eff {
        let admin = eff & (1 << 12) != 0;
        let raw = eff & (1 << 13) != 0;
        if !admin || !raw {
            bail!(
                "{} (missing:{}{})",
                socket::privilege_hint(),
                if raw { "" } else { " CAP_NET_RAW" },
                if admin { "" } else { " CAP_NET_ADMIN" }
            );
        }
    }
    Ok(())
}

impl Engine {
    /// Resolves the instances and opens their sockets; runs on the VRRP thread (`thread.rs`),
    /// so netlink and the sockets belong to its runtime.
    async fn build(
        cfg: &VrrpConfig,
        carry: &StatusCarry,
        vips: &ownership::VipOwner,
    ) -> anyhow::Result<(Engine, VrrpControl)> {
        validate(cfg)?;
        check_capabilities()?;
        let (changes, _) = broadcast::channel(64);
        let netlink = Netlink::connect().context("opening rtnetlink")?;
        let net_events = vip::monitor().context("subscribing to netlink address/link events")?;
        let mut instances = Vec::new();
        let mut statuses = Vec::new();
        let mut tracking = HashMap::new();
        let mut reconfig = HashMap::new();
        for (slot, ic) in cfg.instances.iter().enumerate() {
            let (tx, rx) = watch::channel(Tracking::default());
            tracking.insert(ic.name.clone(), tx);
            let (re_tx, re_rx) = watch::channel(None);
            reconfig.insert(ic.name.clone(), re_tx);
            let siblings = cfg
                .instances
                .iter()
                .filter(|o| o.interface == ic.interface && o.name != ic.name)
                .map(|o| o.virtual_router_id)
                .collect();
            let inst = Instance::resolve(slot, ic, siblings, &netlink, rx, changes.clone())
                .await
                .with_context(|| format!("vrrp instance {}", ic.name))?;
            let inst = Instance {
                reconfig: re_rx,
                ..inst
            };
            vips.configure(inst.vips.iter().map(|v| v.addr));
            let rec = carry.take(&ic.name, ic.priority);
            {
                let mut s = status::lock(&rec);
                s.interface = ic.interface.clone();
                s.vips = ic.virtual_ipaddress.clone();
            }
            statuses.push(rec);
            instances.push(inst);
        }
        let shared = Arc::new(Shared {
            status: statuses,
            tracking,
            reconfig,
            vips: vips.clone(),
        });
        Ok((
            Engine {
                instances,
                shared: shared.clone(),
                netlink,
                net_events,
            },
            VrrpControl { changes, shared },
        ))
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for inst in self.instances {
            let ctx = RunCtx {
                shared: self.shared.clone(),
                netlink: self.netlink.clone(),
                net_events: self.net_events.subscribe(),
                shutdown: shutdown.clone(),
            };
            tasks.spawn(inst.run(ctx));
        }
        while let Some(r) = tasks.join_next().await {
            r.context("vrrp instance task")?;
        }
        Ok(())
    }
}

struct RunCtx {
    shared: Arc<Shared>,
    netlink: Netlink,
    net_events: broadcast::Receiver<NetEvent>,
    shutdown: CancellationToken,
}

impl Instance {
    async fn resolve(
        slot: usize,
        ic: &VrrpInstanceConfig,
        sibling_vrids: Vec<u8>,
        netlink: &Netlink,
        tracking: watch::Receiver<Tracking>,
        changes: broadcast::Sender<StateChange>,
    ) -> anyhow::Result<Instance> {
        let vips = parse_vips(ic)?;
        let ifindex = netlink
            .link_index(&ic.interface)
            .await
            .with_context(|| format!("interface {}", ic.interface))?;
        let with_lifetime = netlink
            .addrs_with_lifetime(ifindex)
            .await
            .with_context(|| format!("listing addresses of {}", ic.interface))?;
        let present: Vec<Vip> = with_lifetime.iter().map(|(v, _)| *v).collect();
        // VIPs left behind by an earlier run: we are not Master yet, so they must go. One with a
        // kernel lifetime was renewed by a run that died (a crash, kill -9, the VRRP thread
        // ended and its instance restarted): it stays until its lifetime, 4 x advert_int after
        // that run's last advert, runs out, so the node keeps answering until the peer has
        // taken over (issue 23.2). Removing it now would open a gap up to a Master_Down_Interval.
        for v in &vips {
            if Some(v.addr) == ic.src_ip.map(IpAddr::V4) {
                continue;
            }
            let Some((_, lifetime)) = with_lifetime.iter().find(|(p, _)| p.addr == v.addr) else {
                continue;
            };
            if let Some(secs) = lifetime {
                tracing::warn!(target: LOG, instance = %ic.name, vip = %v, interface = %ic.interface,
                    lifetime_left_s = secs,
                    "VIP left on the interface by an earlier run: left to expire, so clients are served until the peer takes over");
                continue;
            }
            tracing::warn!(target: LOG, instance = %ic.name, vip = %v, interface = %ic.interface,
                "removing VIP left on the interface by an earlier run");
            netlink
                .del(ifindex, *v)
                .await
                .with_context(|| format!("removing stale VIP {v} from {}", ic.interface))?;
        }
        let ipv6 = vips.first().is_some_and(|v| v.addr.is_ipv6());
        let socket = if ipv6 {
            let src = link_local(netlink, ifindex, &ic.interface).await?;
            socket6::VrrpSocket6::open(&ic.interface, ifindex, src).map(socket::AdvertSocket::V6)
        } else {
            let src = match ic.src_ip {
                Some(s) => s,
                None => present
                    .iter()
                    .find_map(|p| match p.addr {
                        IpAddr::V4(a) if !vips.iter().any(|v| v.addr == p.addr) => Some(a),
                        _ => None,
                    })
                    .with_context(|| {
                        format!(
                            "{} has no IPv4 address (other than a VIP) to send adverts from; \
                             configure one or set src_ip",
                            ic.interface
                        )
                    })?,
            };
            socket::VrrpSocket::open(&ic.interface, ifindex, src, ic.unicast_peers.clone())
                .map(socket::AdvertSocket::V4)
        }
        .map_err(|e| {
            if socket::is_permission_error(&e) {
                anyhow::anyhow!("{}: {e}", socket::privilege_hint())
            } else {
                anyhow::Error::new(e)
            }
        })
        .with_context(|| format!("opening the VRRP socket on {}", ic.interface))?;
        let src = socket.src();
        let garp = arp::GarpSender::new(&ic.interface)
            .with_context(|| format!("gratuitous ARP on {}", ic.interface))?;
        let settings = Settings::of(ic, src)?;
        let guard = guard::Guard::start(ic, ifindex, src);
        tracing::info!(target: LOG, instance = %ic.name, interface = %ic.interface, %src,
            vrid = ic.virtual_router_id, priority = ic.priority,
            mode = if ic.unicast_peers.is_empty() { "multicast" } else { "unicast" },
            "VRRP instance ready");
        let mut inst = Instance {
            slot,
            name: ic.name.clone(),
            cfg: ic.clone(),
            reconfig: watch::channel(None).1,
            interface: ic.interface.clone(),
            ifindex,
            vrid: ic.virtual_router_id,
            auth: settings.auth,
            hmac_keys: auth_hmac::HmacKeys::default(),
            seq: std::sync::atomic::AtomicU64::new(0),
            replay: Mutex::new(auth_hmac::ReplayGuard::default()),
            adver_int: settings.adver_int,
            vips: Vec::new(),
            sibling_vrids,
            unicast_peers: ic.unicast_peers.clone(),
            fsm: settings.fsm.clone(),
            vips_added: std::sync::atomic::AtomicBool::new(false),
            vips_served: std::sync::atomic::AtomicBool::new(false),
            garp_repeat: settings.garp_repeat,
            garp_interval: settings.garp_interval,
            socket,
            garp,
            tracking,
            changes,
            guard,
        };
        inst.apply(settings);
        Ok(inst)
    }

    /// Takes over the reloadable settings.
    fn apply(&mut self, s: Settings) {
        self.auth = s.auth;
        self.hmac_keys = s.hmac_keys;
        self.adver_int = s.adver_int;
        self.vips = s.vips;
        self.fsm = s.fsm;
        self.garp_repeat = s.garp_repeat;
        self.garp_interval = s.garp_interval;
    }

    /// What a received advert must match (§7.1).
    fn expect(&self) -> Expect {
        Expect {
            vrid: self.vrid,
            auth: self.auth,
            adver_int: self.adver_int,
            addrs: self.vips.iter().filter_map(|v| v4(v.addr)).collect(),
            unicast_peers: self.unicast_peers.clone(),
            hmac_keys: self.hmac_keys.clone(),
        }
    }

    async fn run(mut self, mut ctx: RunCtx) {
        let mut expect = self.expect();
        let mut fsm = Fsm::new(self.fsm.clone());
        let mut logs = RateLimit::default();
        let mut link_up = ctx.netlink.link_up(self.ifindex).await.unwrap_or(true);
        let now = Instant::now();
        if !link_up {
            fsm.handle(now, Event::LinkChanged { up: false });
        }
        let t = self.tracking.borrow_and_update().clone();
        if t.delta != 0 || t.fault {
            fsm.handle(
                now,
                Event::TrackingChanged {
                    delta: t.delta,
                    fault: t.fault,
                    reason: t.reason,
                },
            );
        }
        let actions = fsm.handle(now, Event::Startup);
        self.execute(&fsm, actions, &ctx, &mut logs).await;
        let mut buf = vec![0u8; 4096];
        let mut shutdown_seen = false;
        let mut tracking_open = true;
        let mut reconfig_open = true;
        while !fsm.stopped() {
            let deadline = fsm.next_deadline().map(tokio::time::Instant::from_std);
            let actions = tokio::select! {
                _ = ctx.shutdown.cancelled(), if !shutdown_seen => {
                    shutdown_seen = true;
                    tracing::info!(target: LOG, instance = %self.name, state = fsm.state().as_str(), "stopping");
                    fsm.handle(Instant::now(), Event::Shutdown)
                }
                r = self.socket.recv(&mut buf) => match r {
                    Ok((n, meta)) => self.on_packet(&mut fsm, &expect, &buf[..n], meta, &ctx, &mut logs),
                    Err(e) => {
                        if logs.allow("recv_error", Instant::now()).is_some() {
                            tracing::warn!(target: LOG, instance = %self.name, error = %e, "VRRP receive failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Vec::new()
                    }
                },
                r = self.tracking.changed(), if tracking_open => match r {
                    Ok(()) => {
                        let t = self.tracking.borrow_and_update().clone();
                        tracing::info!(target: LOG, instance = %self.name, delta = t.delta, fault = t.fault, reason = %t.reason, "tracking changed");
                        fsm.handle(Instant::now(), Event::TrackingChanged { delta: t.delta, fault: t.fault, reason: t.reason })
                    }
                    Err(_) => { tracking_open = false; Vec::new() }
                },
                r = self.reconfig.changed(), if reconfig_open && !shutdown_seen => match r {
                    Ok(()) => {
                        let ic = self.reconfig.borrow_and_update().clone();
                        match ic {
                            Some(ic) => self.reload(&mut fsm, &mut expect, ic, &ctx).await,
                            None => Vec::new(),
                        }
                    }
                    Err(_) => { reconfig_open = false; Vec::new() }
                },
                ev = ctx.net_events.recv() => self.on_net_event(&mut fsm, ev, &mut link_up, &ctx).await,
                _ = sleep_until(deadline) => {
                    let mut actions = Vec::new();
                    // Adverts already queued are heard before a timer acts: a late wake-up
                    // (loaded host) finds both ready, and a Backup whose Master_Down_Timer won
                    // would become Master next to the Master whose advert it had not read
                    // (start-up split, issue 24). Bounded, so a flood cannot starve the timers.
                    for _ in 0..QUEUED_BEFORE_TIMER {
                        let Some((n, meta)) = self.socket.try_recv(&mut buf) else { break };
                        actions.extend(self.on_packet(&mut fsm, &expect, &buf[..n], meta, &ctx, &mut logs));
                    }
                    actions.extend(fsm.poll(Instant::now()));
                    actions
                }
            };
            self.execute(&fsm, actions, &ctx, &mut logs).await;
        }
        if !self.vips_added.load(std::sync::atomic::Ordering::Relaxed) {
            // Stopped cleanly; holding VIPs still, the guard takes the pipe's close for a death.
            self.guard.bye();
        }
        tracing::info!(target: LOG, instance = %self.name, "stopped");
    }

    async fn on_net_event(
        &self,
        fsm: &mut Fsm,
        ev: Result<NetEvent, broadcast::error::RecvError>,
        link_up: &mut bool,
        ctx: &RunCtx,
    ) -> Vec<Action> {
        let now = Instant::now();
        let mut out = Vec::new();
        // (re-check the VIPs, the VIP the kernel says was removed)
        let (check_vips, removed) = match ev {
            Ok(NetEvent::Link { ifindex, up }) if ifindex == self.ifindex => {
                if up != *link_up {
                    *link_up = up;
                    tracing::warn!(target: LOG, instance = %self.name, interface = %self.interface, up, "link state changed");
                    out.extend(fsm.handle(now, Event::LinkChanged { up }));
                }
                (false, None)
            }
            Ok(NetEvent::AddrRemoved { ifindex, addr })
                if ifindex == self.ifindex && self.vips.iter().any(|v| v.addr == addr) =>
            {
                (true, Some(addr))
            }
            Ok(_) => (false, None),
            // Missed events: re-check what we can.
            Err(broadcast::error::RecvError::Lagged(_)) => (true, None),
            Err(broadcast::error::RecvError::Closed) => {
                // The monitor is gone; avoid a busy loop on a closed channel.
                tokio::time::sleep(Duration::from_secs(1)).await;
                (false, None)
            }
        };
        if check_vips && fsm.state() == State::Master && !fsm.handing_over() {
            if let Ok(present) = ctx.netlink.addrs(self.ifindex).await {
                let missing: Vec<String> = self
                    .vips
                    .iter()
                    .filter(|v| !present.iter().any(|p| p.addr == v.addr))
                    .map(|v| v.to_string())
                    .collect();
                // A Master never removes its own VIPs, so the event alone says someone else did,
                // even when the renewal with our last advert has already put the address back.
                if removed.is_some() || !missing.is_empty() {
                    tracing::warn!(target: LOG, instance = %self.name, interface = %self.interface,
                        ?removed, ?missing, "VIP removed from the interface by someone else while MASTER; putting it back");
                }
                if !missing.is_empty() {
                    out.extend(fsm.handle(now, Event::VipsMissing));
                }
            }
        }
        out
    }

    fn with_status<R>(&self, ctx: &RunCtx, f: impl FnOnce(&mut InstanceStatus) -> R) -> Option<R> {
        ctx.shared
            .status
            .get(self.slot)
            .map(|s| f(&mut status::lock(s)))
    }

    async fn execute(&self, fsm: &Fsm, actions: Vec<Action>, ctx: &RunCtx, logs: &mut RateLimit) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => {
                    self.with_status(ctx, |s| s.adverts_sent += 1);
                    if let Err(e) = self.send_advert(priority) {
                        if let Some(n) = logs.allow("send_error", Instant::now()) {
                            tracing::warn!(target: LOG, instance = %self.name, error = %e, suppressed = n, "sending advert failed");
                        }
                    }
                    if fsm.state() == State::Master
                        && self.vips_added.load(std::sync::atomic::Ordering::Relaxed)
                    {
                        // Renew the VIPs' kernel lifetime with every advert (see vip::add); this
                        // also puts back a VIP someone removed (the netlink event path says so).
                        for v in &self.vips {
                            if let Err(e) = ctx
                                .netlink
                                .add(self.ifindex, *v, Some(self.vip_lifetime_secs()))
                                .await
                            {
                                if let Some(n) = logs.allow("vip_refresh", Instant::now()) {
                                    tracing::warn!(target: LOG, instance = %self.name, vip = %v, error = %e, suppressed = n, "renewing VIP lifetime failed");
                                }
                            }
                        }
                    }
                }
                Action::AddVips => {
                    self.vips_added
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    self.guard.held(true);
                    for v in &self.vips {
                        if let Err(e) = ctx
                            .netlink
                            .add(self.ifindex, *v, Some(self.vip_lifetime_secs()))
                            .await
                        {
                            tracing::error!(target: LOG, instance = %self.name, vip = %v, error = %e, "adding VIP failed");
                        }
                    }
                }
                Action::RemoveVips => {
                    self.vips_added
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    for v in &self.vips {
                        if let Err(e) = ctx.netlink.del(self.ifindex, *v).await {
                            tracing::error!(target: LOG, instance = %self.name, vip = %v, error = %e, "removing VIP failed");
                        }
                    }
                    self.guard.held(false);
                }
                Action::SendGarp => self.send_garps(),
                Action::Notify { state, reason } => {
                    tracing::info!(target: LOG, instance = %self.name, state = state.as_str(),
                        priority = fsm.effective_priority(), %reason, "VRRP state change");
                    let _ = self.changes.send(StateChange {
                        instance: self.name.clone(),
                        state: state.as_str().into(),
                        reason: reason.clone(),
                    });
                    self.with_status(ctx, |s| {
                        s.last_transition_unix_ms = unix_millis();
                        s.last_reason = reason;
                        s.transitions += 1;
                    });
                }
            }
        }
        self.with_status(ctx, |s| {
            s.state = fsm.state().as_str().into();
            s.effective_priority = fsm.effective_priority();
            s.master = fsm.master();
            s.handing_over = fsm.handing_over();
        });
        // Once we stop serving the VIPs (preempted, stopping, fault), the HTTP servers close
        // their keep-alive connections to them before the successor's ARP switch cuts them.
        // Only on a change: this runs after every advert sent or received.
        let served = fsm.state() == State::Master && !fsm.handing_over();
        if self
            .vips_served
            .swap(served, std::sync::atomic::Ordering::Relaxed)
            != served
        {
            ctx.shared
                .vips
                .set_served(self.vips.iter().map(|v| v.addr), served);
        }
    }

    /// Sends one advert in the instance's version (v3: the checksum covers each destination).
    fn send_advert(&self, priority: u8) -> std::io::Result<()> {
        if self.fsm.version3 {
            let adv = packet_v3::AdvertV3 {
                vrid: self.vrid,
                priority,
                max_adver_int: packet_v3::centiseconds(self.fsm.advert_int),
                addrs: self.vips.iter().map(|v| v.addr).collect(),
            };
            let src = self.socket.src();
            return self
                .socket
                .send_with(|dst| packet_v3::encode(&adv, src, dst));
        }
        let addrs: Vec<Ipv4Addr> = self.vips.iter().filter_map(|v| v4(v.addr)).collect();
        let auth = match self.auth {
            Auth::Hmac(_) => {
                let seq = auth_hmac::next_seq(
                    self.seq.load(std::sync::atomic::Ordering::Relaxed),
                    unix_millis(),
                );
                self.seq.store(seq, std::sync::atomic::Ordering::Relaxed);
                Auth::hmac(seq)
            }
            other => other,
        };
        let adv = Advert {
            vrid: self.vrid,
            priority,
            adver_int: self.adver_int,
            auth,
            addrs,
        };
        let mut msg = packet::encode(&adv);
        if let (Auth::Hmac(_), Some(key)) = (auth, self.hmac_keys.0.first()) {
            let tag = auth_hmac::sign(key, self.socket.src_v4(), &msg);
            msg.extend_from_slice(&tag);
        }
        self.socket.send_with(|_| msg.clone())
    }

    /// Kernel lifetime of our VIPs: 4 x advert_int, renewed with every advert (issue 23.2).
    ///
    /// When only our VRRP dies (kill -9, a crash) while the node still serves (the gateway in
    /// another process), the VIP must stay until the peer has taken over, and go soon after.
    /// The peer takes over a Master_Down_Interval (3 x advert_int + Skew_Time, Skew_Time <
    /// advert_int) after our last advert; the VIP runs out 4 x advert_int after it: after the
    /// takeover (no gap: clients are served here until the peer's gratuitous ARPs move them),
    /// and less than one advert interval later (the stale VIP cannot linger). With 3 x advert_int
    /// it ran out before the takeover: a 0.5-0.65 s gap at 1 s adverts. Kernel lifetimes are whole
    /// seconds, so below 1 s adverts the VIP lingers up to 1 s after its last renewal.
    fn vip_lifetime_secs(&self) -> u32 {
        lifetime_secs(self.fsm.advert_int)
    }

    fn send_garps(&self) {
        let Some(garp) = self.garp.clone() else {
            return;
        };
        let vips: Vec<IpAddr> = self.vips.iter().map(|v| v.addr).collect();
        let name = self.name.clone();
        if self.garp_interval.is_zero() {
            if let Err(e) = garp.send(&vips, self.garp_repeat) {
                tracing::warn!(target: LOG, instance = %name, error = %e, "gratuitous ARP failed");
            }
            return;
        }
        let (repeat, interval) = (self.garp_repeat, self.garp_interval);
        tokio::spawn(async move {
            for i in 0..repeat {
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                if let Err(e) = garp.send(&vips, 1) {
                    tracing::warn!(target: LOG, instance = %name, error = %e, "gratuitous ARP failed");
                    return;
                }
            }
        });
    }
}

/// The interface's link-local IPv6 address, the source of IPv6 adverts. Right after the link
/// came up it may still be in duplicate address detection (about 1 s): wait for it, bounded.
async fn link_local(netlink: &Netlink, ifindex: u32, interface: &str) -> anyhow::Result<Ipv6Addr> {
    const WAIT: Duration = Duration::from_secs(5);
    let start = Instant::now();
    loop {
        let found = netlink
            .link_local_v6(ifindex)
            .await
            .with_context(|| format!("listing addresses of {interface}"))?;
        match found {
            Some(a) => return Ok(a),
            None if start.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(100)).await,
            None => bail!(
                "{interface} has no usable link-local IPv6 address (fe80::/10) to send IPv6 adverts \
                 from (RFC 5798 5.1.2.1) after {WAIT:?}; is IPv6 enabled on it?"
            ),
        }
    }
}

/// 4 x advert_int in whole seconds (the kernel's unit), rounded up, at least 1.
fn lifetime_secs(advert_int: Duration) -> u32 {
    let ms = (advert_int.as_millis() * 4).min(u128::from(u32::MAX));
    (ms as u32).div_ceil(1000).max(1)
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    }
}

fn parse_vips(ic: &VrrpInstanceConfig) -> anyhow::Result<Vec<Vip>> {
    ic.virtual_ipaddress
        .iter()
        .map(|v| vip::parse_vip(v).map_err(anyhow::Error::msg))
        .collect()
}

/// The settings of an instance that a reload may change in place (see `reload`).
struct Settings {
    auth: Auth,
    hmac_keys: auth_hmac::HmacKeys,
    adver_int: u8,
    vips: Vec<Vip>,
    fsm: FsmConfig,
    garp_repeat: u32,
    garp_interval: Duration,
}

impl Settings {
    fn of(ic: &VrrpInstanceConfig, src: IpAddr) -> anyhow::Result<Settings> {
        let mut hmac_keys = auth_hmac::HmacKeys::default();
        let auth = match &ic.auth {
            None | Some(VrrpAuth::None) => Auth::None,
            Some(VrrpAuth::Pass { password }) => {
                Auth::pass(password).map_err(anyhow::Error::msg)?
            }
            Some(VrrpAuth::Hmac { keys }) => {
                hmac_keys.0 = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
                Auth::hmac(0)
            }
        };
        let version3 = ic.version == 3;
        let adver_int = ic.advert_int.get().as_secs().clamp(1, 255) as u8;
        // v2: whole seconds on the wire; v3: centiseconds (config validation refused the rest).
        let advert_int = if version3 {
            Duration::from_millis(10 * u64::from(packet_v3::centiseconds(ic.advert_int.get())))
        } else {
            Duration::from_secs(u64::from(adver_int))
        };
        Ok(Settings {
            auth,
            hmac_keys,
            adver_int,
            vips: parse_vips(ic)?,
            fsm: FsmConfig {
                priority: ic.priority,
                advert_int,
                version3,
                preempt: ic.preempt,
                preempt_delay: ic.preempt_delay.get(),
                graceful_handover: ic.graceful_handover,
                handover_to_silent_backup: ic.handover_to_silent_backup,
                primary_ip: src,
                garp_master_delay: ic.garp.master_delay.get(),
                garp_refresh: ic.garp.refresh.get(),
                garp_lower_prio_repeat: ic.garp.lower_prio_repeat,
                // One advert interval, at least 1 s: well after a competitor's release.
                garp_reclaim: advert_int.max(Duration::from_secs(1)),
                // Below the old Master's release grace, which keeps its VIPs meanwhile.
                garp_preempt_delay: ic.garp.preempt_delay.get().min(VIP_RELEASE_GRACE / 2),
                release_grace: VIP_RELEASE_GRACE,
            },
            garp_repeat: ic.garp.repeat,
            garp_interval: ic.garp.interval.get(),
        })
    }

    fn vip_lifetime_secs(&self) -> u32 {
        lifetime_secs(self.fsm.advert_int)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_lifetime_outlives_the_peers_takeover_by_less_than_an_interval() {
        for secs in 1..=10u64 {
            let adv = Duration::from_secs(secs);
            let life = Duration::from_secs(u64::from(lifetime_secs(adv)));
            // The slowest takeover: priority 1, Skew_Time 255/256 x advert_int (v3 formula;
            // v2's 255/256 s is never larger).
            let slowest = adv * 3 + adv * 255 / 256;
            let fastest = adv * 3;
            assert!(life > slowest, "{secs}s: VIP gone before the takeover");
            assert!(life <= fastest + adv, "{secs}s: VIP lingers");
        }
        assert_eq!(lifetime_secs(Duration::from_millis(100)), 1);
        assert_eq!(lifetime_secs(Duration::from_millis(300)), 2);
    }

    fn inst(yaml: &str) -> VrrpConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn config_validation_names_each_problem() {
        let cfg = inst(
            r#"
instances:
  - { name: VI_1, interface: eth0, virtual_router_id: 0, priority: 0, advert_int: 1500ms,
      auth: { type: pass, password: "123456789" }, virtual_ipaddress: ["300.1.1.1/24"],
      unicast_peers: [224.0.0.18] }
"#,
        );
        let e = validate(&cfg).unwrap_err().to_string();
        for needle in [
            "virtual_router_id",
            "priority",
            "advert_int",
            "password",
            "virtual_ipaddress[0]",
            "unicast_peers[0]",
        ] {
            assert!(e.contains(needle), "{needle} missing in {e}");
        }
        let ok = inst(
            r#"
instances:
  - { name: VI_1, interface: eth0, virtual_router_id: 33, priority: 100,
      auth: { type: pass, password: "1111" }, virtual_ipaddress: ["192.168.3.100/24"] }
"#,
        );
        validate(&ok).unwrap();
    }
}
