//! Supervisor: starts the components ha.yaml enables, runs probes, feeds VRRP, handles signals,
//! reloads, serves the status endpoint.
//!
//! ```text
//!  signals (TERM/INT/HUP) ──► Control ─┐
//!  probe tasks ──── ProbeReport ───────┤                       ┌─► VrrpHandle::set_tracking
//!  component tasks ─ ComponentEvent ───┼─► supervisor loop ────┼─► ComponentCmd::Restart
//!  VRRP instances ── StateChange ──────┘   (Board, tracking)   ├─► notify queue (per instance)
//!                                                              └─► Board ◄── GET /status
//! ```
//! Pure rules live in [`policy`] (backoff, restart window, yield) and [`tracking`] (probe health
//! -> priority delta / FAULT); this module is the I/O around them.
//!
//! Start-up: status endpoint, components (a failed first start is retried with backoff; fatal,
//! exit 1, only for a node's only component), probes, then
//! each VRRP instance with its initial tracking already set (unchecked probes count as failing,
//! so a node never claims priority for a service it has not seen healthy).
//!
//! SIGHUP reload (an invalid file is refused and logged; the running config stays):
//! - components: restarted only when their section changed (or `data_dir`/`node` they use);
//!   new `supervisor` settings are sent to the running ones;
//! - probes: changed ones restart with no verdict, unchanged ones keep their state;
//! - VRRP: each instance runs as its own `Vrrp` runner, so only instances whose settings changed
//!   are restarted (graceful handover, then start); a change limited to `track` or `notify` is
//!   applied live through `set_tracking` (no flap). A change of global `vrrp` settings restarts
//!   every instance;
//! - `log.level` is applied live, `log.format` at the next start; `status.listen` is rebound.
//!
//! Stop (SIGTERM/SIGINT): VRRP instances hand over first while components keep serving (bounded by
//! 3 x advert_int + 5 s), then probes stop, then components drain (bounded by `drain_timeout`).
//! A second stop signal exits at once (code 1).

pub mod component;
pub mod faults;
pub mod metrics;
pub mod policy;
mod reload;
use reload::global_fingerprint;
pub mod status;
pub mod tracking;

use crate::config::{self, Config, OnFail, ProbeConfig, VrrpConfig, VrrpInstanceConfig};
use crate::probe::{self, Health, PidTable, ProbeReport, ProbeSpec};
use crate::vrrp::ownership::VipOwner;
use crate::vrrp::{InstanceStatus, StateChange};
use anyhow::Context;
use component::{ComponentCmd, ComponentEnv, ComponentEvent, ComponentSpec, RunState, ServeFuture};
use futures::future::BoxFuture;
use policy::RestartPolicy;
use status::{ComponentView, ProbeView, SharedBoard, TrackingView};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the supervisor needs from a VRRP instance (implemented by `VrrpControl`; tests record).
pub trait VrrpHandle: Send + Sync {
    fn set_tracking(&self, instance: &str, priority_delta: i32, fault: bool, reason: &str);
    fn status(&self) -> Vec<InstanceStatus>;
    /// Applies a reloaded instance config in place; an error means "restart it instead".
    fn reconfigure(&self, _cfg: &VrrpInstanceConfig) -> anyhow::Result<()> {
        anyhow::bail!("this VRRP engine cannot reconfigure in place")
    }
}

impl VrrpHandle for crate::vrrp::VrrpControl {
    fn set_tracking(&self, instance: &str, priority_delta: i32, fault: bool, reason: &str) {
        crate::vrrp::VrrpControl::set_tracking(self, instance, priority_delta, fault, reason)
    }
    fn status(&self) -> Vec<InstanceStatus> {
        crate::vrrp::VrrpControl::status(self)
    }
    fn reconfigure(&self, cfg: &VrrpInstanceConfig) -> anyhow::Result<()> {
        crate::vrrp::VrrpControl::reconfigure(self, cfg)
    }
}

/// A started VRRP instance, not yet running.
pub struct StartedVrrp {
    pub handle: Arc<dyn VrrpHandle>,
    pub changes: broadcast::Receiver<StateChange>,
    /// Runs the instance until the token is cancelled (then hands over gracefully).
    pub run: Box<dyn FnOnce(CancellationToken) -> ServeFuture + Send>,
}

/// Starts one VRRP instance. `global` is the `vrrp` section (its `instances` are all of them);
/// the instance tells `vips` which of its VIPs this node serves.
pub trait VrrpStarter: Send + Sync {
    fn start<'a>(
        &'a self,
        global: &'a VrrpConfig,
        instance: &'a VrrpInstanceConfig,
        vips: &'a VipOwner,
    ) -> BoxFuture<'a, anyhow::Result<StartedVrrp>>;
}

/// The real engine: one `crate::vrrp::Vrrp` per instance. Its status records outlive an
/// instance's restart (reload), so counters live as long as the instance name.
#[derive(Default)]
pub struct EngineVrrp {
    carry: crate::vrrp::StatusCarry,
}

impl VrrpStarter for EngineVrrp {
    fn start<'a>(
        &'a self,
        global: &'a VrrpConfig,
        instance: &'a VrrpInstanceConfig,
        vips: &'a VipOwner,
    ) -> BoxFuture<'a, anyhow::Result<StartedVrrp>> {
        Box::pin(async move {
            // Struct update keeps any global VRRP settings added later.
            #[allow(clippy::needless_update)]
            let one = VrrpConfig {
                instances: vec![instance.clone()],
                ..global.clone()
            };
            let names: Vec<String> = global.instances.iter().map(|i| i.name.clone()).collect();
            self.carry.retain(&names);
            let (vrrp, control) = crate::vrrp::Vrrp::start_carrying(&one, &self.carry, vips)
                .await
                .with_context(|| format!("vrrp instance {}", instance.name))?;
            let changes = control.subscribe();
            Ok(StartedVrrp {
                handle: Arc::new(control),
                changes,
                run: Box::new(move |token| Box::pin(vrrp.run(token)) as ServeFuture),
            })
        })
    }
}

/// Applies a new `log.level` filter at run time; installed by the binary, which owns the
/// tracing subscriber.
pub type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_RELOADER: std::sync::OnceLock<LogReloader> = std::sync::OnceLock::new();

pub fn set_log_reloader(f: LogReloader) {
    let _ = LOG_RELOADER.set(f);
}

type ComponentFactory = dyn Fn(&Config, &ComponentEnv) -> Vec<ComponentSpec> + Send + Sync;

/// Seams for tests: how components and VRRP instances are built.
#[derive(Clone)]
pub struct Hooks {
    pub components: Arc<ComponentFactory>,
    pub vrrp: Arc<dyn VrrpStarter>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            components: Arc::new(component::from_config),
            vrrp: Arc::new(EngineVrrp::default()),
        }
    }
}

/// Requests to the running supervisor (from signals, or from tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Graceful stop: VRRP hands over, then components drain.
    Stop,
    /// Re-read the config file and apply the differences.
    Reload,
    /// Reopen the access log files (SIGUSR1, after logrotate).
    ReopenLogs,
}

/// Runs a node until SIGTERM/SIGINT; SIGHUP reloads `config_path`.
pub async fn run(cfg: Config, config_path: PathBuf) -> anyhow::Result<()> {
    use futures::StreamExt;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let (tx, rx) = mpsc::unbounded_channel();
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .context("installing signal handlers")?;
    let handle = signals.handle();
    tokio::spawn(async move {
        let mut stopping = false;
        while let Some(sig) = signals.next().await {
            let c = if sig == SIGUSR1 {
                Control::ReopenLogs
            } else if sig == SIGHUP {
                Control::Reload
            } else {
                Control::Stop
            };
            if c == Control::Stop && stopping {
                // The operator insists (second Ctrl-C): skip the graceful path.
                tracing::error!(signal = sig, "second stop signal: exiting at once");
                std::process::exit(1);
            }
            stopping |= c == Control::Stop;
            tracing::info!(signal = sig, request = ?c, "signal received");
            if tx.send(c).is_err() {
                break;
            }
        }
    });
    let r = run_with(cfg, Some(config_path), Hooks::default(), rx).await;
    handle.close();
    r
}

struct CompRunner {
    fingerprint: String,
    stop: CancellationToken,
    cmd: mpsc::UnboundedSender<ComponentCmd>,
    task: JoinHandle<()>,
}

struct ProbeRunner {
    cfg: ProbeConfig,
    /// Reports older than this come from a previous run of the same probe and are ignored.
    started: Instant,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct InstRunner {
    cfg: VrrpInstanceConfig,
    global_fp: String,
    handle: Arc<dyn VrrpHandle>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    forward: JoinHandle<()>,
    notify: mpsc::UnboundedSender<(Vec<String>, StateChange)>,
    last: Option<tracking::Tracking>,
}

enum VrrpEvent {
    Change(StateChange),
    /// An instance's runner returned without being asked to stop.
    Ended(String, String),
}

struct Sup {
    cfg: Config,
    path: Option<PathBuf>,
    hooks: Hooks,
    env: ComponentEnv,
    board: SharedBoard,
    components: BTreeMap<String, CompRunner>,
    comp_events: BTreeMap<String, ComponentEvent>,
    probes: BTreeMap<String, ProbeRunner>,
    health: BTreeMap<String, Health>,
    instances: BTreeMap<String, InstRunner>,
    yield_reason: Option<String>,
    /// Probes held healthy while their component restarts (`supervisor.restart_grace`).
    graces: tracking::Graces,
    status_server: Option<(std::net::SocketAddr, CancellationToken, JoinHandle<()>)>,
    comp_tx: mpsc::UnboundedSender<ComponentEvent>,
    probe_tx: mpsc::UnboundedSender<ProbeReport>,
    vrrp_tx: mpsc::UnboundedSender<VrrpEvent>,
}

/// Runs a node until `control` says stop (or closes). Exposed with [`Hooks`] for tests.
pub async fn run_with(
    cfg: Config,
    config_path: Option<PathBuf>,
    hooks: Hooks,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> anyhow::Result<()> {
    let (comp_tx, mut comp_rx) = mpsc::unbounded_channel();
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel();
    let (vrrp_tx, mut vrrp_rx) = mpsc::unbounded_channel();
    let board: SharedBoard = Arc::new(Mutex::new(status::Board {
        node: cfg.node.clone(),
        config_path: config_path.as_ref().map(|p| p.display().to_string()),
        started_unix_ms: crate::clock::unix_millis(),
        ..Default::default()
    }));
    // One registry per process, handed to the status endpoint (through the board) and to the
    // components; the node's own families are read from the board at scrape time.
    let metrics = crate::metrics::Metrics::new();
    metrics.set_source(
        "node",
        Arc::new(metrics::BoardSource(Arc::downgrade(&board))),
    );
    status::lock(&board).metrics = metrics.clone();
    let mut sup = Sup {
        cfg: cfg.clone(),
        path: config_path,
        hooks,
        env: ComponentEnv {
            pids: PidTable::default(),
            metrics: metrics.clone(),
            logs: crate::access_log::AccessLogs::from_config(&cfg.log),
            // One per node: shared by its VRRP instances and its HTTP servers only.
            vips: VipOwner::default(),
        },
        board,
        components: BTreeMap::new(),
        comp_events: BTreeMap::new(),
        probes: BTreeMap::new(),
        health: BTreeMap::new(),
        instances: BTreeMap::new(),
        yield_reason: None,
        graces: tracking::Graces::default(),
        status_server: None,
        comp_tx,
        probe_tx,
        vrrp_tx,
    };
    if let Err(e) = sup.start_all().await {
        sup.shutdown().await;
        return Err(e);
    }
    tracing::info!(node = %sup.cfg.node, "running");
    crate::systemd::ready();
    // The code and data only start-up ran need not stay resident (issue 21.5, crate::memory).
    match crate::memory::release_startup_pages() {
        Ok(kb) => tracing::debug!(kb, "start-up pages released"),
        Err(e) => tracing::debug!(error = %e, "start-up pages not released"),
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        let grace_end = sup.graces.next_deadline(sup.restart_grace());
        tokio::select! {
            c = control.recv() => match c {
                Some(Control::ReopenLogs) => sup.env.logs.reopen(),
                Some(Control::Reload) => {
                    crate::systemd::reloading();
                    sup.reload().await;
                    crate::systemd::ready();
                }
                Some(Control::Stop) | None => break Ok(()),
            },
            Some(r) = probe_rx.recv() => sup.on_probe(r),
            Some(e) = comp_rx.recv() => sup.on_component(e),
            Some(ev) = vrrp_rx.recv() => match ev {
                VrrpEvent::Change(c) => sup.on_state_change(c),
                VrrpEvent::Ended(name, why) => {
                    break Err(anyhow::anyhow!("vrrp instance {name} stopped unexpectedly: {why}"));
                }
            },
            _ = tick.tick() => sup.update_yield(),
            _ = sleep_until_or_never(grace_end) => sup.expire_graces(),
        }
    };
    tracing::info!("stopping");
    crate::systemd::stopping();
    sup.shutdown().await;
    tracing::info!("stopped");
    outcome
}

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Sup {
    fn policy(&self) -> RestartPolicy {
        RestartPolicy::from(&self.cfg.supervisor)
    }

    fn restart_grace(&self) -> Duration {
        self.cfg.supervisor.restart_grace.get()
    }

    /// The component a probe watches (its `component`, or the one listening where it points).
    fn probe_target(&self, probe: &str) -> Option<String> {
        let p = self.probes.get(probe)?;
        config::probe_target_component(&p.cfg, &self.cfg)
    }

    /// Probes (by name) watching `component`.
    fn probes_of(&self, component: &str) -> Vec<ProbeConfig> {
        self.probes
            .values()
            .filter(|p| {
                config::probe_target_component(&p.cfg, &self.cfg).as_deref() == Some(component)
            })
            .map(|p| p.cfg.clone())
            .collect()
    }

    /// The verdict VRRP tracking sees (`tracking::tracked_health`): the probe's own, held
    /// healthy while its component is in a restart grace, failing while the component is in
    /// backoff without one.
    fn tracked_health(&self, probe: &str, now: Instant) -> Health {
        let h = self.health.get(probe).copied().unwrap_or(Health::Unknown);
        let Some(c) = self.probe_target(probe) else {
            return h;
        };
        let down = self
            .comp_events
            .get(&c)
            .is_some_and(|e| e.state == RunState::Backoff);
        let grace = self.graces.holds(&c, now, self.restart_grace());
        tracking::tracked_health(h, down, grace)
    }

    fn expire_graces(&mut self) {
        for c in self.graces.expire(Instant::now(), self.restart_grace()) {
            tracing::warn!(component = %c, grace = ?self.restart_grace(), "restart grace over: its probes' verdicts apply again");
        }
        self.update_tracking();
    }

    /// Starts a restart grace for `component` if every probe watching it is healthy.
    fn begin_grace(&mut self, component: &str) {
        let healthy = self
            .probes_of(component)
            .iter()
            .all(|p| self.health.get(&p.name) == Some(&Health::Healthy));
        if self
            .graces
            .component_down(component, healthy, Instant::now())
        {
            tracing::info!(component = %component, grace = ?self.restart_grace(), "component restarting: its probes are held healthy meanwhile");
        }
    }

    async fn start_all(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.cfg.data_dir)
            .with_context(|| format!("creating data_dir {}", self.cfg.data_dir.display()))?;
        self.start_status_server().await?;
        let specs = (self.hooks.components)(&self.cfg, &self.env);
        // A component that cannot start must not take the others down (a read-only store
        // path stopped the tracker and the gateway too): it is retried with backoff like one
        // that died. Only a node with nothing else to run exits on it.
        let alone = specs.len() == 1;
        for spec in specs {
            self.start_component(spec, alone).await?;
        }
        for p in self.cfg.probes.clone() {
            self.start_probe(&p)?;
        }
        if let Some(vr) = self.cfg.vrrp.clone() {
            for inst in &vr.instances {
                self.start_instance(&vr, inst).await?;
            }
        }
        Ok(())
    }

    async fn start_status_server(&mut self) -> anyhow::Result<()> {
        let Some(addr) = self.cfg.status.listen else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("status endpoint: bind {addr}"))?;
        let stop = CancellationToken::new();
        let debug_on = self.cfg.status.debug_endpoints;
        let task = tokio::spawn(status::serve(
            listener,
            self.board.clone(),
            debug_on,
            stop.clone(),
        ));
        tracing::info!(%addr, debug_endpoints = debug_on, "status endpoint listening");
        self.status_server = Some((addr, stop, task));
        Ok(())
    }

    /// Starts a component; `fatal` makes a failed first start an error (start-up), otherwise the
    /// failure goes through the restart policy (reload).
    async fn start_component(&mut self, spec: ComponentSpec, fatal: bool) -> anyhow::Result<()> {
        let mut spec = spec;
        // Every component can be killed / broken from the loopback status endpoint (drills).
        spec.component = Arc::new(faults::Injectable {
            name: spec.name.clone(),
            inner: spec.component,
            faults: status::lock(&self.board).faults.clone(),
        });
        let stop = CancellationToken::new();
        let first = if fatal {
            let token = stop.child_token();
            let serve = spec
                .component
                .start(token.clone())
                .await
                .with_context(|| format!("starting {}", spec.name))?;
            Some((serve, token))
        } else {
            None
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(component::supervise(
            spec.name.clone(),
            spec.component.clone(),
            self.policy(),
            self.cfg.supervisor.drain_timeout.get(),
            first,
            cmd_rx,
            self.comp_tx.clone(),
            stop.clone(),
        ));
        self.components.insert(
            spec.name.clone(),
            CompRunner {
                fingerprint: spec.fingerprint,
                stop,
                cmd: cmd_tx,
                task,
            },
        );
        Ok(())
    }

    fn start_probe(&mut self, p: &ProbeConfig) -> anyhow::Result<()> {
        let spec = ProbeSpec::from_config(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        let stop = CancellationToken::new();
        // Taken before the spawn: a quick probe's first report is already newer than this.
        let started = Instant::now();
        let task = probe::spawn(
            spec.clone(),
            self.env.pids.clone(),
            self.probe_tx.clone(),
            stop.clone(),
        );
        self.health.insert(p.name.clone(), Health::Unknown);
        status::lock(&self.board).probes.insert(
            p.name.clone(),
            ProbeView {
                name: p.name.clone(),
                kind: spec.kind.label().into(),
                health: Health::Unknown,
                last_ok: None,
                last_detail: String::new(),
                last_check_unix_ms: None,
                last_took_ms: None,
                checks: 0,
                failures: 0,
                on_fail: match p.on_fail {
                    OnFail::None => "none".into(),
                    OnFail::Restart => format!(
                        "restart {}",
                        config::probe_target_component(p, &self.cfg).unwrap_or_default()
                    ),
                },
            },
        );
        self.probes.insert(
            p.name.clone(),
            ProbeRunner {
                cfg: p.clone(),
                started,
                stop,
                task,
            },
        );
        Ok(())
    }

    async fn stop_probe(&mut self, name: &str) {
        if let Some(r) = self.probes.remove(name) {
            r.stop.cancel();
            let _ = r.task.await;
        }
        self.health.remove(name);
        status::lock(&self.board).probes.remove(name);
    }

    async fn start_instance(
        &mut self,
        global: &VrrpConfig,
        inst: &VrrpInstanceConfig,
    ) -> anyhow::Result<()> {
        let started = self.hooks.vrrp.start(global, inst, &self.env.vips).await?;
        let stop = CancellationToken::new();
        let (notify_tx, notify_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_notify_queue(notify_rx));
        let forward = tokio::spawn(forward_changes(
            inst.name.clone(),
            started.changes,
            self.vrrp_tx.clone(),
        ));
        let mut runner = InstRunner {
            cfg: inst.clone(),
            global_fp: global_fingerprint(global),
            handle: started.handle.clone(),
            stop: stop.clone(),
            task: tokio::spawn(async { Ok(()) }),
            forward,
            notify: notify_tx,
            last: None,
        };
        // Tracking is set before the instance runs, so its first advert already carries it.
        self.apply_tracking(&mut runner);
        let run = (started.run)(stop.clone());
        let ended_tx = self.vrrp_tx.clone();
        let name = inst.name.clone();
        runner.task = tokio::spawn(async move {
            let r = run.await;
            if !stop.is_cancelled() {
                let why = match &r {
                    Ok(()) => "returned".to_string(),
                    Err(e) => format!("{e:#}"),
                };
                let _ = ended_tx.send(VrrpEvent::Ended(name, why));
            }
            r
        });
        status::lock(&self.board).instances.insert(
            inst.name.clone(),
            (started.handle, runner.last.as_ref().map(tracking_view)),
        );
        self.instances.insert(inst.name.clone(), runner);
        Ok(())
    }

    async fn stop_instance(&mut self, name: &str) {
        if let Some(mut r) = self.instances.remove(name) {
            r.stop.cancel();
            // The handover takes at most ~3 adverts (make-before-break); never hang a stop on it.
            let limit = r.cfg.advert_int.get() * 3 + Duration::from_secs(5);
            match tokio::time::timeout(limit, &mut r.task).await {
                Ok(Ok(Ok(()))) => tracing::info!(instance = %name, "vrrp instance stopped"),
                Ok(Ok(Err(e))) => {
                    tracing::warn!(instance = %name, error = %format!("{e:#}"), "vrrp instance stopped with an error")
                }
                Ok(Err(e)) => {
                    tracing::warn!(instance = %name, error = %e, "vrrp task ended abnormally")
                }
                Err(_) => {
                    tracing::error!(instance = %name, ?limit, "vrrp handover did not finish; aborted");
                    r.task.abort();
                }
            }
            r.forward.abort();
        }
        status::lock(&self.board).instances.remove(name);
    }

    fn apply_tracking(&self, r: &mut InstRunner) {
        let now = Instant::now();
        let t = tracking::compute(
            &r.cfg.track,
            |p| self.tracked_health(p, now),
            self.yield_reason.as_deref(),
        );
        if r.last.as_ref() == Some(&t) {
            return;
        }
        tracing::info!(
            instance = %r.cfg.name,
            priority = tracking::effective_priority(r.cfg.priority, t.priority_delta),
            delta = t.priority_delta,
            fault = t.fault,
            reason = %t.reason,
            "tracking changed"
        );
        r.handle
            .set_tracking(&r.cfg.name, t.priority_delta, t.fault, &t.reason);
        r.last = Some(t);
    }

    fn update_tracking(&mut self) {
        let mut runners = std::mem::take(&mut self.instances);
        for r in runners.values_mut() {
            self.apply_tracking(r);
        }
        let mut b = status::lock(&self.board);
        for (name, r) in &runners {
            if let Some(entry) = b.instances.get_mut(name) {
                entry.1 = r.last.as_ref().map(tracking_view);
            }
        }
        drop(b);
        self.instances = runners;
    }

    fn on_probe(&mut self, r: ProbeReport) {
        match self.probes.get(&r.name) {
            Some(p) if r.at >= p.started => {}
            // A report from a probe stopped by a reload or restarted meanwhile.
            _ => return,
        }
        {
            let mut b = status::lock(&self.board);
            if let Some(v) = b.probes.get_mut(&r.name) {
                v.health = r.health;
                v.last_ok = Some(r.ok);
                v.last_detail = r.detail.clone();
                v.last_check_unix_ms = Some(crate::clock::unix_millis());
                v.last_took_ms = Some(r.took.as_millis() as u64);
                v.checks += 1;
                v.failures += u64::from(!r.ok);
            }
        }
        let before = self.health.insert(r.name.clone(), r.health);
        // A health we did not know yet counts as a change even if the probe saw none (its
        // report of the change may have been dropped above).
        if !r.changed && before == Some(r.health) {
            return;
        }
        let target = self.probe_target(&r.name);
        if let Some(c) = &target {
            self.graces.verdict(c, r.at);
        }
        let Some(p) = self.probes.get(&r.name).map(|p| p.cfg.clone()) else {
            return;
        };
        let restart = r.health == Health::Failing && p.on_fail == OnFail::Restart;
        if restart && before == Some(Health::Healthy) {
            if let Some(c) = target
                .as_deref()
                .filter(|c| self.components.contains_key(*c))
            {
                self.begin_grace(c);
            }
        }
        self.update_tracking();
        if !restart {
            return;
        }
        let Some(target) = target else {
            return;
        };
        // A component the supervisor is already restarting failed its probe because it is down:
        // ordering another restart would kill the instance about to come up (a cascade that
        // reached max_restarts in the d1 drill). Its fresh probe judges it once it runs.
        let state = self.comp_events.get(&target).map(|e| e.state);
        if state.is_some_and(|s| s != RunState::Running) {
            tracing::info!(component = %target, probe = %r.name, ?state, "probe failing while the component restarts; no second restart");
            return;
        }
        match self.components.get(&target) {
            Some(c) => {
                let reason = format!("probe {} failing: {}", r.name, r.detail);
                tracing::warn!(component = %target, %reason, "restarting component");
                let _ = c.cmd.send(ComponentCmd::Restart { reason });
                // A fresh probe (no verdict, `fall` failures needed) judges the restarted
                // component, so a component that stays broken is restarted again, with backoff.
                self.restart_probe(&p);
            }
            None => {
                tracing::warn!(probe = %r.name, component = %target, "on_fail restart: no such component running")
            }
        }
    }

    fn restart_probe(&mut self, p: &ProbeConfig) {
        if let Some(old) = self.probes.remove(&p.name) {
            old.stop.cancel();
        }
        if let Err(e) = self.start_probe(p) {
            tracing::error!(probe = %p.name, error = %e, "cannot restart probe");
        }
        self.update_tracking();
    }

    fn on_component(&mut self, e: ComponentEvent) {
        if !self.components.contains_key(&e.name) {
            return;
        }
        status::lock(&self.board).components.insert(
            e.name.clone(),
            ComponentView {
                name: e.name.clone(),
                state: e.state,
                restarts: e.restarts,
                restarts_in_window: e.restarts_in_window,
                last_failure: e.last_failure.clone(),
                since_unix_ms: crate::clock::unix_millis(),
            },
        );
        match e.state {
            RunState::Backoff => self.begin_grace(&e.name),
            RunState::Running => {
                if self.graces.component_running(&e.name, e.at) {
                    // A fresh probe judges the new instance (the old one may have counted
                    // failures while the component was down).
                    for p in self.probes_of(&e.name) {
                        self.restart_probe(&p);
                    }
                }
            }
            RunState::Stopped => self.graces.forget(&e.name),
            RunState::Starting | RunState::Stopping => {}
        }
        self.comp_events.insert(e.name.clone(), e);
        self.update_yield();
        self.update_tracking();
    }

    /// The node yields (all instances FAULT) while any component restarted `max_restarts` times
    /// within the window — keepalived + nginx_check.sh's `killall keepalived`, but reversible.
    fn update_yield(&mut self) {
        let now = Instant::now();
        let p = self.policy();
        let reason = self
            .comp_events
            .values()
            .filter(|e| self.components.contains_key(&e.name))
            .find(|e| e.yield_until.is_some_and(|u| u > now))
            .map(|e| {
                format!(
                    "component {} restarted {} times within {:?} (max_restarts {})",
                    e.name, e.restarts_in_window, p.window, p.max_restarts
                )
            });
        if reason != self.yield_reason {
            match &reason {
                Some(r) => tracing::error!(reason = %r, "node yields: VRRP instances go FAULT"),
                None => tracing::info!("node stops yielding"),
            }
            self.yield_reason = reason.clone();
            status::lock(&self.board).yielding = reason;
            self.update_tracking();
        }
    }

    fn on_state_change(&mut self, c: StateChange) {
        // The VRRP instance logs the change itself (with its priority); one line per event.
        if let Some(r) = self.instances.get(&c.instance) {
            for cmd in &r.cfg.notify {
                let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
                if !argv.is_empty() {
                    let _ = r.notify.send((argv, c.clone()));
                }
            }
        }
    }

    /// Graceful stop: VRRP hands over first (components keep serving meanwhile), then probes
    /// stop (no restarts during the drain), then components drain, bounded by `drain_timeout`.
    async fn shutdown(&mut self) {
        let names: Vec<String> = self.instances.keys().cloned().collect();
        for r in self.instances.values() {
            r.stop.cancel();
        }
        for name in names {
            self.stop_instance(&name).await;
        }
        let probes: Vec<String> = self.probes.keys().cloned().collect();
        for name in probes {
            self.stop_probe(&name).await;
        }
        for c in self.components.values() {
            c.stop.cancel();
        }
        for (name, c) in std::mem::take(&mut self.components) {
            // supervise() itself bounds the drain; the extra second covers its bookkeeping.
            let limit = self.cfg.supervisor.drain_timeout.get() + Duration::from_secs(1);
            if tokio::time::timeout(limit, c.task).await.is_err() {
                tracing::warn!(component = %name, "did not stop in time");
            }
        }
        if let Some((_, stop, task)) = self.status_server.take() {
            stop.cancel();
            let _ = task.await;
        }
    }
}

fn tracking_view(t: &tracking::Tracking) -> TrackingView {
    TrackingView {
        priority_delta: t.priority_delta,
        fault: t.fault,
        reason: t.reason.clone(),
    }
}

async fn forward_changes(
    instance: String,
    mut rx: broadcast::Receiver<StateChange>,
    tx: mpsc::UnboundedSender<VrrpEvent>,
) {
    loop {
        match rx.recv().await {
            Ok(c) => {
                if tx.send(VrrpEvent::Change(c)).is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(%instance, missed = n, "state changes missed (notify skipped)");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Runs notify commands one after another per instance (in transition order), each with the
/// instance name and state appended, without ever blocking the VRRP state machine.
async fn run_notify_queue(mut rx: mpsc::UnboundedReceiver<(Vec<String>, StateChange)>) {
    /// A hung notify script must not hold back the next transition's notifications forever.
    const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
    while let Some((argv, change)) = rx.recv().await {
        let Some((prog, args)) = argv.split_first() else {
            continue;
        };
        let child = tokio::process::Command::new(prog)
            .args(args)
            .arg(&change.instance)
            .arg(&change.state)
            .env("FDFS_HA_INSTANCE", &change.instance)
            .env("FDFS_HA_STATE", &change.state)
            .env("FDFS_HA_REASON", &change.reason)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(command = %prog, error = %e, "notify command cannot execute");
                continue;
            }
        };
        match tokio::time::timeout(NOTIFY_TIMEOUT, child.wait()).await {
            Ok(Ok(s)) if s.success() => {
                tracing::debug!(command = %prog, instance = %change.instance, state = %change.state, "notify ok")
            }
            Ok(Ok(s)) => {
                tracing::warn!(command = %prog, status = %s, instance = %change.instance, state = %change.state, "notify command failed")
            }
            Ok(Err(e)) => tracing::warn!(command = %prog, error = %e, "notify wait failed"),
            Err(_) => {
                tracing::warn!(command = %prog, ?NOTIFY_TIMEOUT, "notify command timed out; killed")
            }
        }
    }
}
