//! Test harness for the VRRP netns tests and the failover drill: a bridge namespace, node
//! namespaces joined to it by veth pairs (subnet 192.168.3.0/24), fdfs-ha and keepalived started
//! inside them, a tiny HTTP server per node and an HTTP client loop, all in namespaces this
//! harness created. `Lab`'s Drop kills only the PIDs it spawned and deletes its namespaces, also
//! on panic.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub const VIP: &str = "192.168.3.100";
pub const VIP_CIDR: &str = "192.168.3.100/24";
/// The IPv6 VIP of `VrrpOpts { ipv6: true, .. }` (VRRPv3 only); nodes are fd00:3::21, ...,
/// the client fd00:3::50, each with its link-local fe80::ff:fe00:3xx from its MAC.
pub const VIP6: &str = "fd00:3::100";
pub const VIP6_CIDR: &str = "fd00:3::100/64";

static LAB_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Why the netns tests cannot run here, if they cannot (they then print it and pass).
pub fn skip_reason(need_keepalived: bool) -> Option<String> {
    if nix::unistd::geteuid().as_raw() != 0 {
        return Some("not root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) not installed".into());
    }
    if need_keepalived
        && Command::new("keepalived")
            .arg("--version")
            .output()
            .is_err()
    {
        return Some("keepalived not installed (apt-get install -y keepalived)".into());
    }
    None
}

#[macro_export]
macro_rules! skip_unless_ready {
    ($need_keepalived:expr) => {
        if let Some(why) = harness::skip_reason($need_keepalived) {
            eprintln!("SKIP {}: {why}", module_path!());
            return;
        }
    };
}

fn ns_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Refuses to go on in the initial network namespace: raw senders and test traffic the test
/// itself runs must stay inside the lab.
pub fn assert_not_initial_netns() {
    let me = ns_inode("/proc/thread-self/ns/net");
    let init = ns_inode("/proc/1/ns/net");
    assert!(
        me.is_some() && me != init,
        "refusing to send test traffic from the initial network namespace"
    );
}

/// Moves the calling thread into namespace `ns` (threads only: never the test's main thread).
pub fn enter_netns(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    assert_not_initial_netns();
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// One VRRP speaker in the lab.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub ip: Ipv4Addr,
    pub mac: String,
}

pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    /// keepalived's VRRP child (its pid file), killed together with the parent.
    pub extra_pidfile: Option<PathBuf>,
}

pub struct Lab {
    pub tag: String,
    pub sw: String,
    pub nodes: Vec<String>,
    pub dir: tempfile::TempDir,
    procs: Mutex<Vec<Proc>>,
    servers: Mutex<Vec<Arc<HttpServer>>>,
}

pub struct VrrpOpts {
    pub vrid: u8,
    pub priority: u8,
    pub preempt: bool,
    pub password: String,
    pub graceful_handover: bool,
    /// On by default here (fdfs-ha's default is off, keepalived's release at once): the pair
    /// tests' graceful stops of a Master whose Backup started second are make-before-break.
    pub handover_to_silent_backup: bool,
    /// Empty = multicast.
    pub unicast_peers: Vec<String>,
    /// VIPs besides `VIP_CIDR`.
    pub extra_vips: Vec<String>,
    /// Seconds (VRRPv2).
    pub advert_int: u8,
    /// fdfs-ha's `auth:` value as YAML instead of PASS with `password` (e.g. hmac keys).
    pub auth_yaml: Option<String>,
    /// VRRP version, 2 or 3 (3: no auth, `vrrp_version 3` for keepalived).
    pub version: u8,
    /// VRRPv3 advert interval in milliseconds (version 2 uses `advert_int`).
    pub advert_ms: u64,
    /// Serve the status endpoint on 127.0.0.1:8399 inside the node's namespace.
    pub status: bool,
    /// Track the node's web server with weight -20, checked every second, fall 1 / rise 1
    /// (start `Lab::http_server` first): fdfs-ha a TCP probe of 127.0.0.1:80, keepalived a
    /// `vrrp_script` that connects there (bash's /dev/tcp).
    pub track: bool,
    /// The instance's VIP is `VIP6_CIDR` instead of `VIP_CIDR` (needs version 3).
    pub ipv6: bool,
    /// fdfs-ha's `run_by_user` (the lab's directory is then opened to other users).
    pub run_by_user: Option<String>,
}

impl VrrpOpts {
    fn vip_cidr(&self) -> &'static str {
        if self.ipv6 {
            VIP6_CIDR
        } else {
            VIP_CIDR
        }
    }

    /// VRRPv3 with `advert_ms` adverts, otherwise the defaults.
    pub fn v3(advert_ms: u64) -> VrrpOpts {
        VrrpOpts {
            version: 3,
            advert_ms,
            ..Default::default()
        }
    }

    fn fdfs_auth(&self) -> String {
        match &self.auth_yaml {
            Some(a) => a.clone(),
            None if self.version == 3 => "null".into(),
            None => format!("{{ type: pass, password: \"{}\" }}", self.password),
        }
    }

    fn fdfs_advert_int(&self) -> String {
        if self.version == 3 {
            format!("{}ms", self.advert_ms)
        } else {
            format!("{}", self.advert_int)
        }
    }

    fn keepalived_advert_int(&self) -> f64 {
        if self.version == 3 {
            self.advert_ms as f64 / 1000.0
        } else {
            f64::from(self.advert_int)
        }
    }
}

impl Default for VrrpOpts {
    fn default() -> Self {
        VrrpOpts {
            vrid: 33,
            priority: 100,
            preempt: true,
            password: "1111".into(),
            graceful_handover: true,
            handover_to_silent_backup: true,
            unicast_peers: Vec::new(),
            extra_vips: Vec::new(),
            advert_int: 1,
            auth_yaml: None,
            version: 2,
            status: false,
            advert_ms: 1000,
            track: false,
            ipv6: false,
            run_by_user: None,
        }
    }
}

impl Lab {
    /// Creates the bridge namespace and `n` node namespaces, node i at 192.168.3.(21+i),
    /// plus a client namespace at 192.168.3.50 (last in `nodes`).
    pub fn new(n: usize) -> Lab {
        let seq = LAB_SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("fv{}x{seq}", std::process::id());
        let sw = format!("{tag}-sw");
        let mut lab = Lab {
            tag: tag.clone(),
            sw: sw.clone(),
            nodes: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            procs: Mutex::new(Vec::new()),
            servers: Mutex::new(Vec::new()),
        };
        run("ip", &["netns", "add", &sw]);
        lab.nodes.push(String::new()); // placeholder so Drop sees sw even if a later step fails
        lab.nodes.clear();
        run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        run("ip", &["-n", &sw, "link", "set", "br0", "up"]);
        let mut specs: Vec<(String, String, String)> = (0..n)
            .map(|i| {
                (
                    format!("{tag}-n{i}"),
                    format!("192.168.3.{}/24", 21 + i),
                    format!("02:00:00:00:03:{:02x}", 0x21 + i),
                )
            })
            .collect();
        specs.push((
            format!("{tag}-cl"),
            "192.168.3.50/24".into(),
            "02:00:00:00:03:50".into(),
        ));
        let v6 = |ip: &str| ip.replace("192.168.3.", "fd00:3::").replace("/24", "/64");
        for (i, (ns, ip, mac)) in specs.iter().enumerate() {
            run("ip", &["netns", "add", ns]);
            lab.nodes.push(ns.clone());
            // No duplicate address detection on the lab's fresh links: keepalived sends its
            // first IPv6 adverts at once and fails (EINVAL) while the link-local address is
            // still tentative. (fdfs-ha waits for it, up to 5 s.)
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ],
            );
            let port = format!("p{i}");
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &port,
                    "netns", &sw,
                ],
            );
            run("ip", &["-n", ns, "link", "set", "eth0", "address", mac]);
            run("ip", &["-n", ns, "addr", "add", ip, "dev", "eth0"]);
            run("ip", &["-n", ns, "addr", "add", &v6(ip), "dev", "eth0"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &sw, "link", "set", &port, "master", "br0"]);
            run("ip", &["-n", &sw, "link", "set", &port, "up"]);
        }
        lab
    }

    pub fn node(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    pub fn client_ns(&self) -> &str {
        self.nodes.last().map(String::as_str).unwrap_or_default()
    }

    pub fn has_vip(&self, i: usize) -> bool {
        // Either family: a test uses one VIP, IPv4 or IPv6.
        let out = Command::new("ip")
            .args(["-n", self.node(i), "addr", "show", "dev", "eth0"])
            .output();
        match out {
            Ok(o) => {
                let s = String::from_utf8_lossy(&o.stdout);
                s.contains(&format!(" {VIP}/")) || s.contains(&format!(" {VIP6}/"))
            }
            Err(_) => false,
        }
    }

    /// Indices of the nodes (not the client) holding the VIP.
    pub fn vip_holders(&self) -> Vec<usize> {
        (0..self.nodes.len() - 1)
            .filter(|i| self.has_vip(*i))
            .collect()
    }

    fn spawn(&self, ns: &str, args: &[&str], log: &Path, extra_pidfile: Option<PathBuf>) -> usize {
        let out = File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().expect("spawn");
        let mut procs = self.procs.lock().unwrap();
        procs.push(Proc {
            child,
            log: log.to_path_buf(),
            extra_pidfile,
        });
        procs.len() - 1
    }

    /// Starts `fdfs-ha run` in node `i`; returns a process handle index.
    pub fn start_fdfs(&self, i: usize, o: &VrrpOpts) -> usize {
        let (conf, log) = self.fdfs_config(i, o);
        self.spawn(
            self.node(i),
            &[
                env!("CARGO_BIN_EXE_fdfs-ha"),
                "run",
                "-c",
                conf.to_str().unwrap(),
            ],
            &log,
            None,
        )
    }

    /// Writes node `i`'s ha.yaml; returns (config path, log path).
    pub fn fdfs_config(&self, i: usize, o: &VrrpOpts) -> (PathBuf, PathBuf) {
        let yaml = self.fdfs_yaml(i, o);
        if o.run_by_user.is_some() {
            use std::os::unix::fs::PermissionsExt;
            let open = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(self.dir.path(), open).unwrap();
        }
        let seq = self.procs.lock().unwrap().len();
        let conf = self.dir.path().join(format!("fdfs-n{i}-{seq}.yaml"));
        std::fs::write(&conf, yaml).unwrap();
        let log = self.dir.path().join(format!("fdfs-n{i}-{seq}.log"));
        (conf, log)
    }

    /// Rewrites the config of fdfs-ha process `h` (node `i`) and sends it SIGHUP.
    pub fn reload_fdfs(&self, h: usize, i: usize, o: &VrrpOpts) {
        let conf = self.procs.lock().unwrap()[h].log.with_extension("yaml");
        std::fs::write(&conf, self.fdfs_yaml(i, o)).unwrap();
        self.signal(h, nix::sys::signal::Signal::SIGHUP);
    }

    /// Whether node `i` has `addr` (without prefix) on eth0.
    pub fn has_addr(&self, i: usize, addr: &str) -> bool {
        run(
            "ip",
            &["-n", self.node(i), "-4", "addr", "show", "dev", "eth0"],
        )
        .contains(&format!(" {addr}/"))
    }

    fn fdfs_yaml(&self, i: usize, o: &VrrpOpts) -> String {
        format!(
            r#"node: n{i}
data_dir: {dir}
{user}status: {{ listen: {status} }}
log: {{ level: "fdfs_ha::vrrp=debug,netlink_packet_route=error,info" }}
{probes}vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: {vrid}
      priority: {prio}
      version: {version}
      advert_int: {adv}
      preempt: {preempt}
      graceful_handover: {gh}
      handover_to_silent_backup: {silent}
      auth: {auth}
      virtual_ipaddress: ["{vip}"{extra}]
      unicast_peers: [{peers}]
{track}"#,
            dir = self.dir.path().display(),
            user = o
                .run_by_user
                .as_ref()
                .map(|u| format!("run_by_user: {u}\n"))
                .unwrap_or_default(),
            vrid = o.vrid,
            prio = o.priority,
            preempt = o.preempt,
            gh = o.graceful_handover,
            silent = o.handover_to_silent_backup,
            version = o.version,
            status = if o.status {
                "\"127.0.0.1:8399\""
            } else {
                "null"
            },
            adv = o.fdfs_advert_int(),
            auth = o.fdfs_auth(),
            peers = o.unicast_peers.join(", "),
            vip = o.vip_cidr(),
            probes = if o.track {
                "probes: [{ name: web, tcp: \"127.0.0.1:80\", interval: 1s, rise: 1, fall: 1 }]\n"
            } else {
                ""
            },
            track = if o.track {
                "      track: [{ probe: web, weight: -20 }]\n"
            } else {
                ""
            },
            extra = o
                .extra_vips
                .iter()
                .map(|v| format!(", {v}"))
                .collect::<String>(),
        )
    }

    /// keepalived's check of the node's web server, as fdfs-ha's TCP probe checks it: a connect
    /// to 127.0.0.1:80 (refused when `HttpServer::enabled` is false).
    fn web_check(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("web-check.sh");
        if path.exists() {
            // Written once: a running keepalived may be executing it.
            return path;
        }
        std::fs::write(&path, "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/80\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Starts keepalived (VRRP only) in node `i`.
    pub fn start_keepalived(&self, i: usize, o: &VrrpOpts, initial_master: bool) -> usize {
        let conf = format!(
            "global_defs {{\n  router_id n{i}\n  vrrp_version {version}\n{script_user}}}\n{script}vrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id {vrid}\n  priority {prio}\n  advert_int {adv}\n{nopreempt}{auth}{track}  virtual_ipaddress {{\n    {vip}\n{extra}  }}\n}}\n",
            vip = o.vip_cidr(),
            script_user = if o.track { "  script_user root\n" } else { "" },
            script = if o.track {
                format!(
                    "vrrp_script web {{\n  script \"{}\"\n  interval 1\n  timeout 1\n  fall 1\n  rise 1\n  weight -20\n}}\n",
                    self.web_check().display()
                )
            } else {
                String::new()
            },
            track = if o.track {
                "  track_script {\n    web\n  }\n"
            } else {
                ""
            },
            state = if initial_master { "MASTER" } else { "BACKUP" },
            vrid = o.vrid,
            prio = o.priority,
            nopreempt = if o.preempt { "" } else { "  nopreempt\n" },
            version = o.version,
            adv = o.keepalived_advert_int(),
            auth = if o.version == 3 {
                String::new()
            } else {
                format!(
                    "  authentication {{\n    auth_type PASS\n    auth_pass {}\n  }}\n",
                    o.password
                )
            },
            extra = o
                .extra_vips
                .iter()
                .map(|v| format!("    {v}\n"))
                .collect::<String>(),
        );
        let seq = self.procs.lock().unwrap().len();
        let d = self.dir.path();
        let conf_path = d.join(format!("keepalived-n{i}-{seq}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let pid = d.join(format!("keepalived-n{i}-{seq}.pid"));
        let vpid = d.join(format!("keepalived-n{i}-{seq}.vrrp.pid"));
        let log = d.join(format!("keepalived-n{i}-{seq}.log"));
        self.spawn(
            self.node(i),
            &[
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
                conf_path.to_str().unwrap(),
                "-p",
                pid.to_str().unwrap(),
                "-r",
                vpid.to_str().unwrap(),
            ],
            &log,
            Some(vpid.clone()),
        )
    }

    fn signal(&self, h: usize, sig: nix::sys::signal::Signal) {
        let procs = self.procs.lock().unwrap();
        let p = &procs[h];
        if let Some(pf) = &p.extra_pidfile {
            if let Some(pid) = read_pid(pf) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
            }
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.child.id() as i32), sig);
    }

    /// The PIDs of the children of process `h` (fdfs-ha's `vip-guard`s), while it runs.
    pub fn children(&self, h: usize) -> Vec<i32> {
        let pid = self.procs.lock().unwrap()[h].child.id();
        let mut out = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(c.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
        out
    }

    pub fn kill9(&self, h: usize) {
        self.signal(h, nix::sys::signal::Signal::SIGKILL);
        let _ = self.procs.lock().unwrap()[h].child.wait();
    }

    pub fn sigterm(&self, h: usize) {
        self.signal(h, nix::sys::signal::Signal::SIGTERM);
    }

    /// Waits for process `h` to exit; returns its exit code if it did within `timeout`.
    pub fn wait_exit(&self, h: usize, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        loop {
            {
                let mut procs = self.procs.lock().unwrap();
                if let Ok(Some(st)) = procs[h].child.try_wait() {
                    return Some(st.code().unwrap_or(-1));
                }
            }
            if Instant::now() > end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self, h: usize) -> String {
        let p = self.procs.lock().unwrap()[h].log.clone();
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// Starts a tiny HTTP server on port 80 inside node `i`.
    pub fn http_server(&self, i: usize) -> Arc<HttpServer> {
        let s = HttpServer::start(self.node(i).to_string(), i);
        self.servers.lock().unwrap().push(s.clone());
        s
    }

    pub fn link(&self, i: usize, up: bool) {
        run(
            "ip",
            &[
                "-n",
                self.node(i),
                "link",
                "set",
                "eth0",
                if up { "up" } else { "down" },
            ],
        );
    }
}

/// Whether `pid` runs (a zombie waiting for its reaper does not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(mut procs) = self.procs.lock() {
            for p in procs.iter_mut() {
                if let Some(pf) = &p.extra_pidfile {
                    if let Some(pid) = read_pid(pf) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        if let Ok(servers) = self.servers.lock() {
            for s in servers.iter() {
                s.stop.store(true, Ordering::SeqCst);
            }
        }
        for ns in self.nodes.iter().chain(std::iter::once(&self.sw)) {
            run_quiet("ip", &["netns", "del", ns]);
        }
    }
}

/// `HTTP/1.1 200` for any request, served in a node namespace; `enabled` false closes the
/// listener (new connections are refused, like a dead gateway).
pub struct HttpServer {
    pub enabled: AtomicBool,
    stop: AtomicBool,
}

impl HttpServer {
    fn start(ns: String, node: usize) -> Arc<HttpServer> {
        let s = Arc::new(HttpServer {
            enabled: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let me = s.clone();
        thread::spawn(move || {
            enter_netns(&ns);
            let mut listener: Option<TcpListener> = None;
            while !me.stop.load(Ordering::SeqCst) {
                if !me.enabled.load(Ordering::SeqCst) {
                    listener = None;
                    thread::sleep(Duration::from_millis(2));
                    continue;
                }
                if listener.is_none() {
                    // [::]:80 takes IPv4 too (bindv6only is 0 in a fresh namespace).
                    match TcpListener::bind("[::]:80") {
                        Ok(l) => {
                            l.set_nonblocking(true).unwrap();
                            listener = Some(l);
                        }
                        Err(_) => {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    }
                }
                let Some(l) = &listener else { continue };
                // Wait for a connection in poll(2), not in a sleep loop: a connection left in
                // the accept queue for a millisecond would widen the window in which a VIP
                // switch can cut it, which no real server (nginx) has.
                let mut fds = [PollFd::new(l.as_fd(), PollFlags::POLLIN)];
                if !matches!(poll(&mut fds, PollTimeout::from(5u8)), Ok(n) if n > 0) {
                    continue;
                }
                match l.accept() {
                    Ok((mut c, _)) => {
                        thread::spawn(move || {
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut buf = [0u8; 1024];
                            let mut got = Vec::new();
                            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                                match c.read(&mut buf) {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => got.extend_from_slice(&buf[..n]),
                                }
                            }
                            // One write, as nginx does: `write!` straight to the socket would
                            // send the pieces as separate segments, and Nagle would make the
                            // client acknowledge mid-response.
                            let body = format!("node{node}\n");
                            let response = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = c.write_all(response.as_bytes());
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        s
    }
}

/// One client request: when it started and whether it got a 200 within the timeout.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub ok: bool,
    /// Which node answered (0, 1, ...) or, on failure, at which step it failed.
    pub detail: &'static str,
}

/// Fetches http://VIP/ every `every` with `timeout`, from the client namespace.
pub struct HttpClient {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl HttpClient {
    pub fn start(lab: &Lab, every: Duration, timeout: Duration) -> HttpClient {
        Self::start_to(lab, format!("{VIP}:80").parse().unwrap(), every, timeout)
    }

    /// As `start`, to `addr` (e.g. the IPv6 VIP).
    pub fn start_to(lab: &Lab, addr: SocketAddr, every: Duration, timeout: Duration) -> HttpClient {
        let ns = lab.client_ns().to_string();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (samples.clone(), stop.clone());
        let handle = thread::spawn(move || {
            enter_netns(&ns);
            let mut next = Instant::now();
            while !st2.load(Ordering::SeqCst) {
                let at = Instant::now();
                let (ok, detail) = fetch(addr, timeout);
                s2.lock().unwrap().push(Sample { at, ok, detail });
                next += every;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        HttpClient {
            samples,
            stop,
            handle: Some(handle),
        }
    }

    pub fn since(&self, t: Instant) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.at >= t)
            .copied()
            .collect()
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn fetch(addr: SocketAddr, timeout: Duration) -> (bool, &'static str) {
    let start = Instant::now();
    let mut c = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return (false, "refused"),
        Err(_) => return (false, "connect"),
    };
    let left = timeout.saturating_sub(start.elapsed());
    if left.is_zero() {
        return (false, "slow connect");
    }
    let _ = c.set_read_timeout(Some(left));
    let _ = c.set_write_timeout(Some(left));
    if c.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return (false, "write");
    }
    // Read until the response is complete by its Content-Length (as curl does), not until
    // the peer's FIN.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !response_complete(&buf) {
        if start.elapsed() > timeout {
            return (false, "slow read");
        }
        match c.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (false, "read"),
        }
    }
    if !buf.starts_with(b"HTTP/1.1 200") {
        return (false, "status");
    }
    if buf.ends_with(b"node0\n") {
        (true, "node0")
    } else if buf.ends_with(b"node1\n") {
        (true, "node1")
    } else {
        (true, "node?")
    }
}

/// Whether `buf` holds a whole HTTP response: its head and `Content-Length` bytes of body.
fn response_complete(buf: &[u8]) -> bool {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => buf.len() >= head_end + 4 + n,
        None => false,
    }
}

/// Client-visible outage in `samples`: from the start of the first failed request to the start
/// of the first successful one after it (zero when nothing failed), and the failed count.
pub fn outage(samples: &[Sample]) -> (Duration, usize) {
    let failed = samples.iter().filter(|s| !s.ok).count();
    let Some(first_fail) = samples.iter().position(|s| !s.ok) else {
        return (Duration::ZERO, 0);
    };
    let last_fail = samples.iter().rposition(|s| !s.ok).unwrap_or(first_fail);
    let end = samples
        .get(last_fail + 1)
        .map(|s| s.at)
        .unwrap_or(samples[last_fail].at);
    (end - samples[first_fail].at, failed)
}

/// Failed samples with their failure step and what the neighbours answered, for diagnosis.
pub fn describe_failures(samples: &[Sample]) -> String {
    let mut out = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if !s.ok {
            let prev = i
                .checked_sub(1)
                .and_then(|j| samples.get(j))
                .map_or("-", |p| p.detail);
            let next = samples.get(i + 1).map_or("-", |p| p.detail);
            out.push(format!("{prev} -> FAIL({}) -> {next}", s.detail));
        }
    }
    out.join("; ")
}

/// Lines of a keepalived log that complain about received packets. ("received lower priority
/// advert - discarding" is normal preempt behaviour, not a complaint.)
pub fn keepalived_complaints(log: &str) -> Vec<String> {
    const NEEDLES: &[&str] = &[
        "invalid",
        "mismatch",
        "wrong",
        "bogus",
        "not present",
        "checksum",
        "bad ",
        "ttl",
        "unknown",
    ];
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            NEEDLES.iter().any(|n| l.contains(n))
        })
        .map(str::to_string)
        .collect()
}

/// Waits until node `holder` alone has the VIP and the client has been served for `quiet`.
pub fn settle(lab: &Lab, client: &HttpClient, holder: usize, quiet: Duration) {
    let ok = wait_until(Duration::from_secs(20), || {
        if lab.vip_holders() != vec![holder] {
            return false;
        }
        let s = client.since(Instant::now() - quiet);
        s.len() as u128 >= quiet.as_millis() / 40 && s.iter().all(|x| x.ok)
    });
    assert!(
        ok,
        "lab did not settle with node {holder} as the only VIP holder"
    );
}
