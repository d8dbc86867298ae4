//! Health probes (tcp, http, fastdfs active-test, process, exec) with interval/timeout/rise/fall.
//!
//! Owns checking one thing and turning results into a debounced health ([`RiseFall`], pure). It
//! does not decide what a failure means (priority, FAULT, restart): the supervisor does. Each probe
//! is one task running its checks one after another, so a probe never runs two copies of itself,
//! and a slow probe never delays another.

pub mod checks;

use crate::config::{ConfigError, ProbeConfig};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Debounced health of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No verdict yet. Tracking treats it as failing: a node does not claim priority (or leave
    /// FAULT) for a service it has not seen healthy.
    Unknown,
    Healthy,
    Failing,
}

impl Health {
    /// The word the status endpoint and logs use (`healthy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Failing => "failing",
        }
    }
}

/// keepalived's rise/fall: `rise` successes in a row make a probe healthy, `fall` failures in a
/// row make it failing. From `Unknown`, one success is enough (start-up must not wait `rise`
/// intervals), while failing still needs `fall` results (a component just started gets time).
#[derive(Debug, Clone)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    health: Health,
    ok_streak: u32,
    fail_streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            health: Health::Unknown,
            ok_streak: 0,
            fail_streak: 0,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Feeds one check result; returns the new health when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<Health> {
        let next = if ok {
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
            match self.health {
                Health::Unknown => Health::Healthy,
                Health::Failing if self.ok_streak >= self.rise => Health::Healthy,
                h => h,
            }
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
            match self.health {
                Health::Unknown | Health::Healthy if self.fail_streak >= self.fall => {
                    Health::Failing
                }
                h => h,
            }
        };
        let changed = next != self.health;
        self.health = next;
        changed.then_some(next)
    }
}

/// What a probe checks, resolved from its config.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    Tcp(String),
    Http {
        url: String,
        expect_status: Option<u16>,
        expect_body: Option<String>,
    },
    Fastdfs(String),
    /// Name of an external component whose process must be alive.
    Process(String),
    Exec(Vec<String>),
}

impl ProbeKind {
    pub fn label(&self) -> &'static str {
        match self {
            ProbeKind::Tcp(_) => "tcp",
            ProbeKind::Http { .. } => "http",
            ProbeKind::Fastdfs(_) => "fastdfs",
            ProbeKind::Process(_) => "process",
            ProbeKind::Exec(_) => "exec",
        }
    }
}

/// A probe ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub name: String,
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl ProbeSpec {
    /// Builds a spec; config validation guarantees exactly one kind, this re-checks it.
    pub fn from_config(p: &ProbeConfig) -> Result<ProbeSpec, ConfigError> {
        let kind = match (&p.tcp, &p.http, &p.fastdfs, &p.process, &p.exec) {
            (Some(t), None, None, None, None) => ProbeKind::Tcp(t.clone()),
            (None, Some(u), None, None, None) => ProbeKind::Http {
                url: u.clone(),
                expect_status: p.expect_status,
                expect_body: p.expect_body.clone(),
            },
            (None, None, Some(t), None, None) => ProbeKind::Fastdfs(t.clone()),
            (None, None, None, Some(n), None) => ProbeKind::Process(n.clone()),
            (None, None, None, None, Some(argv)) if !argv.is_empty() => {
                ProbeKind::Exec(argv.clone())
            }
            _ => {
                return Err(ConfigError::at(
                    format!("probes.{}", p.name),
                    None,
                    "needs exactly one of tcp, http, fastdfs, process, exec",
                ))
            }
        };
        Ok(ProbeSpec {
            name: p.name.clone(),
            kind,
            interval: p.interval.get(),
            timeout: p.timeout.get(),
            rise: p.rise,
            fall: p.fall,
        })
    }
}

/// Pids of running external components, by component name (filled by the supervisor).
#[derive(Debug, Clone, Default)]
pub struct PidTable(Arc<Mutex<HashMap<String, u32>>>);

impl PidTable {
    pub fn set(&self, name: &str, pid: Option<u32>) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match pid {
            Some(p) => t.insert(name.to_string(), p),
            None => t.remove(name),
        };
    }
    pub fn get(&self, name: &str) -> Option<u32> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }
}

/// One check result, sent by a running probe after every check.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub name: String,
    pub ok: bool,
    /// Why it failed, or what succeeded (`HTTP 200`).
    pub detail: String,
    pub health: Health,
    /// True when this result changed `health`.
    pub changed: bool,
    pub at: Instant,
    pub took: Duration,
}

/// The probes' own runtime: one thread with a current-thread runtime, started with the first
/// probe and kept for the life of the process. Checks run there, not on the node's main
/// runtime, so a saturated data plane (thousands of HTTP clients, uploads at full speed) delays
/// neither a check's interval and timeout timers nor its sockets' readiness: a false "timed
/// out" would move the VIP (issue 23.5; VRRP has its own thread for the same reason). `None`
/// when the thread cannot be started; the caller's runtime runs the probes then.
fn probe_runtime() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Handle>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| tracing::warn!(error = %e, "probe runtime: cannot build it; probes run on the main runtime"))
                .ok()?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name("fdfs-ha-probes".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map_err(|e| tracing::warn!(error = %e, "probe runtime: cannot start its thread; probes run on the main runtime"))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Runs `spec` on the probes' own thread until `stop` is cancelled, reporting every result on
/// `reports`.
pub fn spawn(
    spec: ProbeSpec,
    pids: PidTable,
    reports: mpsc::UnboundedSender<ProbeReport>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let probe = run(spec, pids, reports, stop);
    match probe_runtime() {
        Some(rt) => rt.spawn(probe),
        None => tokio::spawn(probe),
    }
}

async fn run(
    spec: ProbeSpec,
    pids: PidTable,
    reports: mpsc::UnboundedSender<ProbeReport>,
    stop: CancellationToken,
) {
    let mut state = RiseFall::new(spec.rise, spec.fall);
    // Validation refuses 0; a zero period would make tokio panic, so never pass one.
    let mut ticks = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
    // A check slower than the interval delays the next one instead of bursting to catch up.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = Instant::now();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = checks::run_once(&spec.kind, spec.timeout, &pids) => r,
        };
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        let changed = state.observe(ok).is_some();
        if changed {
            tracing::info!(probe = %spec.name, health = state.health().as_str(), %detail, "probe health changed");
        } else if !ok {
            tracing::debug!(probe = %spec.name, %detail, "probe check failed");
        }
        let report = ProbeReport {
            name: spec.name.clone(),
            ok,
            detail,
            health: state.health(),
            changed,
            at: Instant::now(),
            took: started.elapsed(),
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_success_is_healthy_but_failing_needs_fall() {
        let mut s = RiseFall::new(2, 3);
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), Some(Health::Healthy));
        let mut s = RiseFall::new(2, 3);
        s.observe(false);
        s.observe(false);
        assert_eq!(s.observe(false), Some(Health::Failing));
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut s = RiseFall::new(2, 2);
        s.observe(true);
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(true), None, "a success resets the failure streak");
        assert_eq!(s.observe(false), None);
        assert_eq!(s.observe(false), Some(Health::Failing));
        assert_eq!(s.observe(true), None);
        assert_eq!(
            s.observe(false),
            None,
            "a failure resets the success streak"
        );
        assert_eq!(s.observe(true), None);
        assert_eq!(s.observe(true), Some(Health::Healthy));
        assert_eq!(s.observe(true), None);
    }

    #[test]
    fn zero_rise_fall_act_as_one() {
        let mut s = RiseFall::new(0, 0);
        assert_eq!(s.observe(false), Some(Health::Failing));
        assert_eq!(s.observe(true), Some(Health::Healthy));
    }
}
