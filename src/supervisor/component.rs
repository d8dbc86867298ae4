//! Components: what the supervisor starts, watches and restarts.
//!
//! A [`Component`] binds (so a bind error is a failed start) and returns the future that serves
//! until its token is cancelled. Built-ins wrap the entry points of tracker, storage and gateway;
//! [`External`] runs a command (e.g. a real nginx). [`supervise`] is the per-component task:
//! restart with backoff on exit or on request, report every state change, drain on stop.

use super::policy::{RestartHistory, RestartPolicy};
use crate::config::{Config, ExternalComponent, GatewayConfig, StorageConfig, TrackerConfig};
use crate::probe::PidTable;
use futures::future::BoxFuture;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The future a started component serves with; it returns when its token is cancelled (after
/// draining) or when the component fails.
pub type ServeFuture = BoxFuture<'static, anyhow::Result<()>>;

pub trait Component: Send + Sync + 'static {
    /// Binds listeners / spawns the process and returns the serving future.
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>>;
}

/// A component to run, with the config it was built from (compared on reload).
pub struct ComponentSpec {
    pub name: String,
    /// Serialized config section(s) this component depends on; a change means restart on reload.
    pub fingerprint: String,
    pub component: Arc<dyn Component>,
}

/// What components get from the supervisor besides their config section.
#[derive(Clone, Default)]
pub struct ComponentEnv {
    /// PIDs of external commands (for `pid` probes).
    pub pids: PidTable,
    /// The process's metrics: a built-in component adds its source when it starts.
    pub metrics: crate::metrics::Metrics,
    /// Access logs (reopened on SIGUSR1).
    pub logs: crate::access_log::AccessLogs,
    /// Which VIPs this node serves: the VRRP instances write it, the HTTP servers read it.
    pub vips: crate::vrrp::ownership::VipOwner,
}

/// Builds the components a config enables. Adding a component kind is one entry here.
pub fn from_config(cfg: &Config, env: &ComponentEnv) -> Vec<ComponentSpec> {
    let pids = &env.pids;
    let mut out = Vec::new();
    if let Some(t) = &cfg.tracker {
        out.push(ComponentSpec {
            name: "tracker".into(),
            fingerprint: fp(&(t, &cfg.data_dir)),
            component: Arc::new(Tracker {
                cfg: t.clone(),
                data_dir: cfg.data_dir.clone(),
                metrics: env.metrics.clone(),
            }),
        });
    }
    if let Some(s) = &cfg.storage {
        out.push(ComponentSpec {
            name: "storage".into(),
            fingerprint: fp(&(s, &cfg.node)),
            component: Arc::new(Storage {
                cfg: s.clone(),
                node: cfg.node.clone(),
                metrics: env.metrics.clone(),
                protocol_log: env.logs.protocol.clone(),
            }),
        });
        if s.http.is_some() {
            // The fastdfs-nginx-module replacement: serves the same store paths over http.
            out.push(ComponentSpec {
                name: "storage_http".into(),
                fingerprint: fp(&(s, &cfg.node)),
                component: Arc::new(StorageHttp {
                    cfg: s.clone(),
                    node: cfg.node.clone(),
                    env: env.clone(),
                }),
            });
        }
    }
    if let Some(g) = &cfg.gateway {
        out.push(ComponentSpec {
            name: "gateway".into(),
            fingerprint: fp(&(g, &cfg.data_dir)),
            component: Arc::new(Gateway {
                cfg: g.clone(),
                data_dir: cfg.data_dir.clone(),
                env: env.clone(),
            }),
        });
    }
    for e in &cfg.external {
        out.push(ComponentSpec {
            name: e.name.clone(),
            fingerprint: fp(e),
            component: Arc::new(External {
                spec: e.clone(),
                pids: pids.clone(),
            }),
        });
    }
    out
}

/// Stable text form of config sections, to tell whether a reload changed them.
pub fn fp<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

struct Tracker {
    cfg: TrackerConfig,
    data_dir: PathBuf,
    metrics: crate::metrics::Metrics,
}

impl Component for Tracker {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            let s = crate::tracker::TrackerServer::bind(&self.cfg, &self.data_dir).await?;
            tracing::info!(addr = %s.local_addr(), "tracker listening");
            let source = crate::tracker::metrics::TrackerSource(s.tracker());
            self.metrics.set_source("tracker", Arc::new(source));
            Ok(Box::pin(s.serve(shutdown)) as ServeFuture)
        })
    }
}

struct Storage {
    cfg: StorageConfig,
    node: String,
    metrics: crate::metrics::Metrics,
    protocol_log: crate::access_log::AccessLog,
}

impl Component for Storage {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            let s = crate::storage::StorageServer::bind(&self.cfg, &self.node).await?;
            tracing::info!(addr = %s.local_addr(), "storage listening");
            let state = s.state();
            state.set_protocol_log(self.protocol_log.clone());
            let source = crate::storage::metrics::StorageSource {
                requests: state.requests().clone(),
                state,
            };
            self.metrics.set_source("storage", Arc::new(source));
            Ok(Box::pin(s.serve(shutdown)) as ServeFuture)
        })
    }
}

struct StorageHttp {
    cfg: StorageConfig,
    node: String,
    env: ComponentEnv,
}

impl Component for StorageHttp {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            let obs = crate::http::observe::Observer::new(
                "storage_http",
                self.env.logs.http.clone(),
                false,
            );
            let requests = obs.requests.clone();
            let s = crate::storage::http::StorageHttp::bind(&self.cfg, &self.node)
                .await?
                .with_observer(obs)
                .with_vips(self.env.vips.subscribe());
            let source = crate::http::observe::HttpSource {
                component: "storage_http",
                requests,
                counters: s.counters(),
            };
            self.env
                .metrics
                .set_source("storage_http", Arc::new(source));
            tracing::info!(addr = %s.local_addr(), "storage http listening");
            Ok(Box::pin(s.serve(shutdown)) as ServeFuture)
        })
    }
}

struct Gateway {
    cfg: GatewayConfig,
    data_dir: PathBuf,
    env: ComponentEnv,
}

impl Component for Gateway {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            let obs =
                crate::http::observe::Observer::new("gateway", self.env.logs.http.clone(), true);
            let requests = obs.requests.clone();
            let s = crate::gateway::Gateway::bind(&self.cfg, &self.data_dir)
                .await?
                .with_observer(obs)
                .with_vips(self.env.vips.subscribe());
            let source = crate::gateway::metrics::GatewaySource {
                http: crate::http::observe::HttpSource {
                    component: "gateway",
                    requests,
                    counters: s.counters(),
                },
                cache: s.cache(),
                upstreams: s.upstreams(),
                peers: s.peer_counters(),
            };
            self.env.metrics.set_source("gateway", Arc::new(source));
            tracing::info!(addrs = ?s.local_addrs(), "gateway listening");
            Ok(Box::pin(s.serve(shutdown)) as ServeFuture)
        })
    }
}

/// An external command. On stop it gets SIGTERM, then SIGKILL if it outlives the drain time
/// (the supervisor drops the serving future, and the child is killed on drop).
pub struct External {
    pub spec: ExternalComponent,
    pub pids: PidTable,
}

impl Component for External {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            let (prog, args) = self
                .spec
                .command
                .split_first()
                .ok_or_else(|| anyhow::anyhow!("{}: empty command", self.spec.name))?;
            let mut child = tokio::process::Command::new(prog)
                .args(args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| anyhow::anyhow!("{}: cannot execute {prog}: {e}", self.spec.name))?;
            let name = self.spec.name.clone();
            let pids = self.pids.clone();
            let pid = child.id();
            pids.set(&name, pid);
            tracing::info!(component = %name, pid = ?pid, "external command started");
            Ok(Box::pin(async move {
                let result = tokio::select! {
                    status = child.wait() => {
                        let status = status?;
                        Err(anyhow::anyhow!("{name} exited: {status}"))
                    }
                    _ = shutdown.cancelled() => {
                        if let Some(p) = pid.and_then(|p| i32::try_from(p).ok()) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(p),
                                nix::sys::signal::Signal::SIGTERM,
                            );
                        }
                        let status = child.wait().await?;
                        tracing::info!(component = %name, %status, "external command stopped");
                        Ok(())
                    }
                };
                pids.set(&name, None);
                result
            }) as ServeFuture)
        })
    }
}

/// Lifecycle state shown in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Starting,
    Running,
    /// Waiting for the backoff delay before the next start.
    Backoff,
    Stopping,
    Stopped,
}

/// Reported by a component task to the supervisor loop.
#[derive(Debug, Clone)]
pub struct ComponentEvent {
    pub name: String,
    pub state: RunState,
    pub restarts: u64,
    /// Restarts inside the policy window at `at` (the supervisor yields at `max_restarts`).
    pub restarts_in_window: usize,
    pub yielding: bool,
    /// While yielding: when the yield ends if nothing else fails.
    pub yield_until: Option<Instant>,
    pub last_failure: Option<String>,
    pub at: Instant,
}

/// Commands to a component task.
#[derive(Debug)]
pub enum ComponentCmd {
    /// Restart now (a probe with `on_fail: restart` failed); counts as a failure.
    Restart { reason: String },
    /// New restart policy after a reload.
    Policy(RestartPolicy),
}

/// Runs one component until `stop` is cancelled: (re)starts it, applies the restart policy,
/// reports on `events`. `first` is an already started instance (the initial start happens
/// synchronously so that `run` fails fast on e.g. a port in use).
#[allow(clippy::too_many_arguments)]
pub async fn supervise(
    name: String,
    component: Arc<dyn Component>,
    mut policy: RestartPolicy,
    drain: Duration,
    first: Option<(ServeFuture, CancellationToken)>,
    mut cmds: mpsc::UnboundedReceiver<ComponentCmd>,
    events: mpsc::UnboundedSender<ComponentEvent>,
    stop: CancellationToken,
) {
    let mut history = RestartHistory::default();
    let mut last_failure: Option<String> = None;
    let report = |state: RunState, h: &RestartHistory, p: &RestartPolicy, f: &Option<String>| {
        let now = Instant::now();
        let _ = events.send(ComponentEvent {
            name: name.clone(),
            state,
            restarts: h.total_restarts,
            restarts_in_window: h.in_window(now, p),
            yielding: h.yielding(now, p),
            yield_until: h.yield_until(now, p),
            last_failure: f.clone(),
            at: now,
        });
    };
    let mut pending = first;
    loop {
        let (serve, token) = match pending.take() {
            Some(started) => started,
            None => {
                report(RunState::Starting, &history, &policy, &last_failure);
                let token = stop.child_token();
                match component.start(token.clone()).await {
                    Ok(serve) => (serve, token),
                    Err(e) => {
                        let reason = format!("start failed: {e:#}");
                        if stop.is_cancelled() {
                            break;
                        }
                        if !backoff(
                            &name,
                            reason,
                            &mut history,
                            &mut policy,
                            &mut last_failure,
                            &mut cmds,
                            &stop,
                            &report,
                        )
                        .await
                        {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        history.started(Instant::now());
        // Restarts ordered while this instance was starting were meant for the previous one.
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                ComponentCmd::Policy(p) => policy = p,
                ComponentCmd::Restart { reason } => {
                    tracing::info!(component = %name, %reason, "restart order for the previous instance dropped")
                }
            }
        }
        report(RunState::Running, &history, &policy, &last_failure);
        let mut task = tokio::spawn(serve);
        let reason = loop {
            tokio::select! {
                r = &mut task => {
                    break match r {
                        Ok(Ok(())) => "exited without being asked to stop".to_string(),
                        Ok(Err(e)) => format!("failed: {e:#}"),
                        Err(e) if e.is_panic() => "panicked".to_string(),
                        Err(e) => format!("task ended: {e}"),
                    };
                }
                cmd = cmds.recv() => match cmd {
                    Some(ComponentCmd::Policy(p)) => { policy = p; continue; }
                    Some(ComponentCmd::Restart { reason }) => {
                        report(RunState::Stopping, &history, &policy, &last_failure);
                        drain_task(&name, &token, &mut task, drain).await;
                        break reason;
                    }
                    None => {
                        // The supervisor is gone: stop.
                        report(RunState::Stopping, &history, &policy, &last_failure);
                        drain_task(&name, &token, &mut task, drain).await;
                        report(RunState::Stopped, &history, &policy, &last_failure);
                        return;
                    }
                },
                _ = stop.cancelled() => {
                    report(RunState::Stopping, &history, &policy, &last_failure);
                    drain_task(&name, &token, &mut task, drain).await;
                    report(RunState::Stopped, &history, &policy, &last_failure);
                    return;
                }
            }
        };
        if stop.is_cancelled() {
            break;
        }
        if !backoff(
            &name,
            reason,
            &mut history,
            &mut policy,
            &mut last_failure,
            &mut cmds,
            &stop,
            &report,
        )
        .await
        {
            break;
        }
    }
    report(RunState::Stopped, &history, &policy, &last_failure);
}

/// Records a failure and sleeps the backoff delay; false when stopped meanwhile.
#[allow(clippy::too_many_arguments)]
async fn backoff(
    name: &str,
    reason: String,
    history: &mut RestartHistory,
    policy: &mut RestartPolicy,
    last_failure: &mut Option<String>,
    cmds: &mut mpsc::UnboundedReceiver<ComponentCmd>,
    stop: &CancellationToken,
    report: &impl Fn(RunState, &RestartHistory, &RestartPolicy, &Option<String>),
) -> bool {
    let now = Instant::now();
    let delay = history.failed(now, policy);
    tracing::warn!(
        component = %name,
        %reason,
        restart_in = ?delay,
        restarts = history.total_restarts,
        in_window = history.in_window(now, policy),
        "component failed; restarting"
    );
    *last_failure = Some(reason);
    report(RunState::Backoff, history, policy, last_failure);
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            _ = stop.cancelled() => return false,
            cmd = cmds.recv() => match cmd {
                Some(ComponentCmd::Policy(p)) => *policy = p,
                // Already restarting: a probe failing meanwhile changes nothing.
                Some(ComponentCmd::Restart { .. }) => {}
                None => return false,
            },
        }
    }
}

/// Cancels a component and waits up to `drain` for it to finish in-flight work, then aborts it.
async fn drain_task(
    name: &str,
    token: &CancellationToken,
    task: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
    drain: Duration,
) {
    token.cancel();
    match tokio::time::timeout(drain, &mut *task).await {
        Ok(Ok(Ok(()))) => tracing::info!(component = %name, "stopped"),
        Ok(Ok(Err(e))) => {
            tracing::warn!(component = %name, error = %format!("{e:#}"), "stopped with an error")
        }
        Ok(Err(e)) => tracing::warn!(component = %name, error = %e, "task ended abnormally"),
        Err(_) => {
            tracing::warn!(component = %name, ?drain, "did not drain in time; aborting");
            task.abort();
            let _ = (&mut *task).await;
        }
    }
}
