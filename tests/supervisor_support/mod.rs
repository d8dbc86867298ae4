//! What tests/supervisor_lifecycle.rs builds its nodes from: a recording VRRP and scripted
//! components for the in-process supervisor, configs, and the real binary's child process,
//! signals and status polling.

use fdfs_ha::config::{check_str, Config, VrrpConfig, VrrpInstanceConfig};
use fdfs_ha::supervisor::component::{Component, ComponentSpec, ServeFuture};
use fdfs_ha::supervisor::{run_with, Control, Hooks, StartedVrrp, VrrpHandle, VrrpStarter};
use fdfs_ha::vrrp::InstanceStatus;
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub type Calls = Arc<Mutex<Vec<(String, i32, bool, String)>>>;

/// Records `set_tracking` calls instead of driving a real VRRP engine.
pub struct Recorder {
    pub calls: Calls,
}

impl VrrpHandle for Recorder {
    fn set_tracking(&self, instance: &str, delta: i32, fault: bool, reason: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((instance.into(), delta, fault, reason.into()));
    }
    fn status(&self) -> Vec<InstanceStatus> {
        Vec::new()
    }
}

#[derive(Default)]
pub struct RecordingVrrp {
    pub calls: Calls,
    /// Names of the instances started, in order.
    pub started: Arc<Mutex<Vec<String>>>,
    /// When each instance's runner finished its (simulated, 200 ms) handover.
    pub handed_over: Arc<Mutex<Vec<Instant>>>,
    /// Lets a test emit state changes as the engine would.
    pub senders: Arc<Mutex<Vec<tokio::sync::broadcast::Sender<fdfs_ha::vrrp::StateChange>>>>,
}

impl VrrpStarter for RecordingVrrp {
    fn start<'a>(
        &'a self,
        _global: &'a VrrpConfig,
        instance: &'a VrrpInstanceConfig,
        _vips: &'a fdfs_ha::vrrp::ownership::VipOwner,
    ) -> BoxFuture<'a, anyhow::Result<StartedVrrp>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::broadcast::channel(8);
            self.started.lock().unwrap().push(instance.name.clone());
            self.senders.lock().unwrap().push(tx.clone());
            let handed_over = self.handed_over.clone();
            Ok(StartedVrrp {
                handle: Arc::new(Recorder {
                    calls: self.calls.clone(),
                }),
                changes: rx,
                run: Box::new(move |token: CancellationToken| {
                    Box::pin(async move {
                        token.cancelled().await;
                        // A Master's make-before-break handover takes a while.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        handed_over.lock().unwrap().push(Instant::now());
                        drop(tx);
                        Ok(())
                    }) as ServeFuture
                }),
            })
        })
    }
}

/// A component whose every start is timestamped; `behaviour(n)` decides how start n serves.
pub struct Scripted {
    pub starts: Arc<Mutex<Vec<Instant>>>,
    pub behaviour: Arc<dyn Fn(usize, CancellationToken) -> ServeFuture + Send + Sync>,
}

impl Component for Scripted {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            let n = {
                let mut s = self.starts.lock().unwrap();
                s.push(Instant::now());
                s.len()
            };
            Ok((self.behaviour)(n, shutdown))
        })
    }
}

pub fn config(extra: &str) -> Config {
    config_with(
        "restart_backoff_min: 20ms\n  restart_backoff_max: 200ms",
        extra,
    )
}

pub fn config_with(backoff_and_grace: &str, extra: &str) -> Config {
    let dir = std::env::temp_dir();
    let text = format!(
        "node: test
data_dir: {}
status: {{ listen: null }}
supervisor:
  {backoff_and_grace}
  max_restarts: 4
  restart_window: 30s
  drain_timeout: 1s
vrrp:
  instances:
    - name: VI_T
      interface: lo
      virtual_router_id: 9
      priority: 100
      virtual_ipaddress: [10.200.0.1]
{extra}",
        dir.display()
    );
    check_str(&text)
        .unwrap_or_else(|e| panic!("test config invalid: {e:?}"))
        .config
}

pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A component that serves `port` until told to crash; start `n` serves if `serves(n)`,
/// otherwise it runs without listening (hung).
pub fn crashable(
    port: u16,
    crash: Arc<tokio::sync::Notify>,
    serves: fn(usize) -> bool,
    starts: Arc<Mutex<Vec<Instant>>>,
) -> Arc<Scripted> {
    Arc::new(Scripted {
        starts,
        behaviour: Arc::new(move |n, token| {
            let crash = crash.clone();
            // Bound before start() returns, as the real components do: running means listening.
            let listener = serves(n).then(|| std::net::TcpListener::bind(("127.0.0.1", port)));
            Box::pin(async move {
                let _listener = listener.transpose()?;
                tokio::select! {
                    _ = crash.notified() => anyhow::bail!("simulated crash of start {n}"),
                    _ = token.cancelled() => Ok(()),
                }
            })
        }),
    })
}

/// Every start after the first takes `delay` (a component slow to come back).
pub struct SlowRestarts {
    pub inner: Arc<Scripted>,
    pub delay: Duration,
}

impl Component for SlowRestarts {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            if !self.inner.starts.lock().unwrap().is_empty() {
                tokio::time::sleep(self.delay).await;
            }
            self.inner.start(shutdown).await
        })
    }
}

pub fn one_component_hooks(component: Arc<dyn Component>, calls: &Calls) -> Hooks {
    Hooks {
        components: Arc::new(move |_: &Config, _: &_| {
            vec![ComponentSpec {
                name: "web".into(),
                fingerprint: "1".into(),
                component: component.clone(),
            }]
        }),
        vrrp: Arc::new(RecordingVrrp {
            calls: calls.clone(),
            ..Default::default()
        }),
    }
}

pub fn web_probe(port: u16, extra: &str) -> String {
    format!(
        "      track: [{{ probe: web, weight: -30 }}]
external:
  - {{ name: web, command: [\"true\"] }}
probes:
  - {{ name: web, tcp: \"127.0.0.1:{port}\", interval: 20ms, timeout: 100ms, fall: 1, rise: 1, component: web{extra} }}
"
    )
}

/// A node supervising one `crashable` component "web" (serving when `serves(start)`), tracked
/// by a tcp probe with weight -30; started and waited for until healthy.
pub struct WebNode {
    pub calls: Calls,
    pub starts: Arc<Mutex<Vec<Instant>>>,
    pub crash: Arc<tokio::sync::Notify>,
    pub ctl: tokio::sync::mpsc::UnboundedSender<Control>,
    pub node: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl WebNode {
    pub async fn start(supervisor: &str, serves: fn(usize) -> bool) -> WebNode {
        Self::start_with(supervisor, serves, "", Duration::ZERO).await
    }

    /// `probe_extra` is appended to the probe's flow mapping; restarts take `restart_delay`.
    pub async fn start_with(
        supervisor: &str,
        serves: fn(usize) -> bool,
        probe_extra: &str,
        restart_delay: Duration,
    ) -> WebNode {
        let port = free_port();
        let calls: Calls = Arc::default();
        let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let crash = Arc::new(tokio::sync::Notify::new());
        let component = Arc::new(SlowRestarts {
            inner: crashable(port, crash.clone(), serves, starts.clone()),
            delay: restart_delay,
        });
        let cfg = config_with(supervisor, &web_probe(port, probe_extra));
        let (ctl, rx) = tokio::sync::mpsc::unbounded_channel();
        let node = tokio::spawn(run_with(
            cfg,
            None,
            one_component_hooks(component, &calls),
            rx,
        ));
        wait_for("healthy", Duration::from_secs(10), || {
            calls.lock().unwrap().last().is_some_and(|c| c.1 == 0)
        })
        .await;
        WebNode {
            calls,
            starts,
            crash,
            ctl,
            node,
        }
    }

    pub async fn priority_lowered(&self) {
        wait_for("priority lowered", Duration::from_secs(5), || {
            self.calls
                .lock()
                .unwrap()
                .last()
                .is_some_and(|c| c.1 == -30)
        })
        .await;
    }

    pub async fn stop(self) {
        self.ctl.send(Control::Stop).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.node)
            .await
            .expect("stops in time")
            .unwrap()
            .expect("clean stop");
    }
}

pub fn instance_yaml(name: &str, vrid: u8, priority: u8, weight: i32, notify: &str) -> String {
    format!(
        "    - name: {name}
      interface: lo
      virtual_router_id: {vrid}
      priority: {priority}
      virtual_ipaddress: [10.201.0.{vrid}]
      track: [{{ probe: up, weight: {weight} }}]
      notify: [\"{notify}\"]
"
    )
}

pub fn reload_yaml(dir: &std::path::Path, a_weight: i32, b_priority: u8, notify: &str) -> String {
    format!(
        "node: reload
data_dir: {d}
status: {{ listen: null }}
probes:
  - {{ name: up, exec: [\"true\"], interval: 50ms }}
vrrp:
  instances:
{a}{b}",
        d = dir.display(),
        a = instance_yaml("VI_A", 1, 100, a_weight, notify),
        b = instance_yaml("VI_B", 2, b_priority, 10, notify),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn node_yaml(dir: &std::path::Path, status_port: u16, probes: &[&str]) -> String {
    let mut y = format!(
        "node: sighup
data_dir: {d}/data
status:
  listen: 127.0.0.1:{status_port}
tracker:
  listen: 127.0.0.1:0
probes:
",
        d = dir.display()
    );
    for p in probes {
        y.push_str(&format!(
            "  - {{ name: {p}, tcp: \"127.0.0.1:{status_port}\", interval: 100ms }}\n"
        ));
    }
    y
}

pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, sig).unwrap();
}

pub async fn status_of(port: u16) -> Option<serde_json::Value> {
    fdfs_ha::supervisor::status::fetch(([127, 0, 0, 1], port).into())
        .await
        .ok()
}

pub async fn wait_status(
    port: u16,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = status_of(port).await {
            if cond(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn probe_names(v: &serde_json::Value) -> Vec<String> {
    v["probes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A storage-only node (no `vrrp`): spawned, and a storage connection once it answers.
pub async fn storage_node(
    dir: &std::path::Path,
    port: u16,
) -> (Child, fdfs_ha::client::storage::StorageConn) {
    let path = dir.join("storage.yaml");
    let yaml = format!(
        "node: storage-only\ndata_dir: \"{d}/data\"\nstatus: {{ listen: null }}\n\
         storage:\n  group: group1\n  listen: 127.0.0.1:{port}\n  trackers: [\"127.0.0.1:1\"]\n  \
         store_paths: [\"{d}/store0\"]\n  reserved_storage_space: 0%\n",
        d = dir.display()
    );
    std::fs::write(&path, yaml).unwrap();
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
            .args(["run", "-c"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = fdfs_ha::client::storage::StorageConn::connect(("127.0.0.1", port)).await
        {
            if c.active_test().await.is_ok() {
                return (child, c);
            }
        }
        if let Ok(Some(s)) = child.0.try_wait() {
            panic!("fdfs-ha exited early: {s}");
        }
        assert!(Instant::now() < deadline, "storage did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
