//! Failover drills in the lab (netns-tests/lab): faults injected while a client in the client
//! namespace uploads through the trackers and downloads through the VIP every 20 ms.
//!
//! ```text
//!  drill process (initial netns, sends nothing itself)
//!    ├─ thread in <p>-client : upload loop (trackers .21/.22) + download loop (http://VIP/dfs/..)
//!    ├─ thread in <p>-ha1    : samples "VIP on eth0?" every 20 ms   ┐ getifaddrs: netlink of the
//!    ├─ thread in <p>-ha2    : samples "VIP on eth0?" every 20 ms   ┘ thread's own namespace
//!    └─ fault injection      : kill -9 / SIGTERM / link down / restart, by PID from the lab
//! ```
//! Reports per drill: client-visible gap, failed requests outside the gap, acknowledged uploads not
//! readable afterwards (must be 0), corrupt downloads (must be 0), 20 ms slots in which both nodes
//! held the VIP while they could hear each other (must be 0 beyond a graceful overlap of one advert
//! interval). Writes `<out>/<drill>-<rep>.txt` and `.svg` timelines.
//!
//! `cargo test --test drills` (root) runs each drill once and fails on a must-be-0 violation;
//! `cargo test --release --test drills -- --repeat 20 --only a,b,c` prints median / worst per figure.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::client::FdfsClient;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "drills/analysis.rs"]
mod analysis;
#[path = "drills/download.rs"]
mod download;
#[path = "drills/load.rs"]
mod load;
#[path = "drills/report.rs"]
mod report;

use analysis::{analyse, Outcome, Req, Timeline};
use download::Got;
use report::{print_summary, write_timeline};

/// Acknowledged uploads: file ID and the bytes sent.
type Acked = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

const SLOT: Duration = Duration::from_millis(20);
const VIP: &str = "192.168.3.100";
const ADVERT_INT: Duration = Duration::from_secs(1);
/// Before a fault, ha1 alone must have held the VIP this long (past its gratuitous-ARP bursts).
const SETTLED: Duration = Duration::from_secs(6);
/// A lab that has not settled by then fails the run (a start-up problem, reported as such).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut repeat = 1usize;
    let mut only: Option<Vec<String>> = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--repeat" => {
                repeat = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1);
                i += 1;
            }
            "--only" => {
                only = args
                    .get(i + 1)
                    .map(|v| v.split(',').map(str::to_owned).collect());
                i += 1;
            }
            _ => {} // cargo test passes its own flags through; ignore them
        }
        i += 1;
    }
    if let Some(why) = cannot_run() {
        println!("drills: skipped: {why}");
        println!("0 passed, 0 failed, 1 skipped");
        return;
    }
    let drills = all_drills()
        .into_iter()
        .filter(|d| match &only {
            Some(o) => o.iter().any(|x| x == d.id),
            // "s" (start-up only) repeats what every drill's start-up measures; "l" takes
            // 10 minutes.
            None => d.id != "s" && d.id != "l",
        })
        .collect::<Vec<_>>();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/drills");
    std::fs::create_dir_all(&out).expect("create target/drills");
    let mut results: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    let (mut passed, mut failed) = (0, 0);
    for rep in 0..repeat {
        for d in &drills {
            let outcome = run_drill(d, rep, &out);
            print!("{}", outcome.report(d, rep));
            if outcome.violations().is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
            results.entry(d.id).or_default().push(outcome);
        }
    }
    print_summary(&drills, &results);
    println!("{passed} passed, {failed} failed");
    // Stored files of every drill (hundreds of MB); a failed drill's logs are in target/drills.
    let _ = std::fs::remove_dir_all(lab_dir());
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Why the drills cannot run here (they need root, iproute2 and a built binary).
fn cannot_run() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2".into());
    }
    None
}

struct Drill {
    id: &'static str,
    title: &'static str,
    preempt: bool,
    fault: fn(&Lab),
    /// Restore the lab after the fault (before measuring read-back).
    heal: fn(&Lab),
    /// Both nodes are expected to hold the VIP during a partition: don't count that overlap.
    partition: bool,
}

impl Drill {
    /// The Master must keep the VIP throughout, no VRRP transition (restart path, reload).
    fn vip_stays_on_ha1(&self) -> bool {
        matches!(self.id, "d1" | "h" | "l")
    }

    /// Whether the drill client's requests are judged after the fault. Under drill l's load a
    /// late answer is the data plane's latency, not a failover: reported only.
    fn judges_requests(&self) -> bool {
        self.id != "l"
    }

    /// Nothing may fail at all: a reload must be invisible to clients, and a killed storage
    /// leaves its group's other storages to answer (issue 24.2).
    fn no_failures(&self) -> bool {
        matches!(self.id, "h" | "f")
    }

    /// The drill kills a storage (an upload in flight on it is cut off).
    fn kills_a_storage(&self) -> bool {
        self.id == "f"
    }
}

fn all_drills() -> Vec<Drill> {
    vec![
        Drill {
            id: "s",
            title: "start-up only (no fault; --only s --repeat 20)",
            preempt: true,
            fault: |_| {},
            heal: |_| {},
            partition: false,
        },
        Drill {
            id: "a",
            title: "kill -9 the Master's fdfs-ha",
            preempt: true,
            fault: |l| l.signal("ha1", "KILL"),
            heal: |l| l.restart("ha1"),
            partition: false,
        },
        Drill {
            id: "b",
            title: "graceful stop of the Master",
            preempt: true,
            fault: |l| l.signal("ha1", "TERM"),
            heal: |l| l.restart("ha1"),
            partition: false,
        },
        Drill {
            id: "c",
            title: "Master link down, then heal",
            preempt: true,
            fault: |l| l.link("ha1", false),
            heal: |l| l.link("ha1", true),
            partition: true,
        },
        Drill {
            id: "e",
            title: "preempt-back when ha1 returns",
            preempt: true,
            fault: |l| {
                l.signal("ha1", "KILL");
                std::thread::sleep(Duration::from_secs(5));
                l.restart("ha1")
            },
            heal: |_| {},
            partition: false,
        },
        Drill {
            id: "e2",
            title: "ha1 returns with preempt: false",
            preempt: false,
            fault: |l| {
                l.signal("ha1", "KILL");
                std::thread::sleep(Duration::from_secs(5));
                l.restart("ha1")
            },
            heal: |_| {},
            partition: false,
        },
        Drill {
            id: "f",
            title: "a group1 storage killed and returns",
            preempt: true,
            fault: |l| l.signal("s23", "KILL"),
            heal: |l| l.restart("s23"),
            partition: false,
        },
        Drill {
            id: "d1",
            title: "gateway component killed on the Master (restart path)",
            preempt: true,
            fault: |l| l.inject("ha1", "gateway", "kill"),
            heal: |_| {},
            partition: false,
        },
        Drill {
            id: "d2",
            title: "gateway made unrestartable on the Master (yield path)",
            preempt: true,
            fault: |l| l.inject("ha1", "gateway", "break"),
            heal: |l| {
                l.signal("ha1", "TERM");
                l.restart("ha1")
            },
            partition: false,
        },
        Drill {
            id: "g",
            title: "ha1's tracker component killed",
            preempt: true,
            fault: |l| l.inject("ha1", "tracker", "kill"),
            heal: |_| {},
            partition: false,
        },
        Drill {
            id: "l",
            title: "load on the Master: uploads at full speed, 1,000 HTTP clients (DRILL_LOAD_SECS, 600)",
            preempt: true,
            fault: load::run,
            heal: |_| {},
            partition: false,
        },
        Drill {
            id: "h",
            title: "SIGHUP on the Master with a changed probe interval",
            preempt: true,
            fault: |l| {
                let cfg = l.dir.join("ha1.yaml");
                let y = std::fs::read_to_string(&cfg).expect("ha1.yaml");
                std::fs::write(&cfg, y.replace("interval: 200ms", "interval: 300ms"))
                    .expect("rewrite ha1.yaml");
                l.signal("ha1", "HUP")
            },
            heal: |_| {},
            partition: false,
        },
    ]
}

/// This process's namespace prefix: its drills run one after another in one lab.
fn lab_prefix() -> String {
    format!("dr{}", std::process::id() % 100000)
}

/// The lab's state (data, logs), reused by this process's drills and removed after the last.
fn lab_dir() -> PathBuf {
    std::env::temp_dir().join(format!("{}-lab", lab_prefix()))
}

/// One lab instance with its own namespace prefix; torn down on drop, also on panic.
struct Lab {
    prefix: String,
    dir: PathBuf,
    script: PathBuf,
    bin: PathBuf,
}

impl Lab {
    /// Starts `netns-tests/lab up` without waiting for it (the drill samples the start-up);
    /// `wait_up` waits for it. Whatever an earlier run left is torn down first.
    fn start(preempt: bool) -> (Lab, std::process::Child) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let lab = Lab {
            prefix: lab_prefix(),
            dir: lab_dir(),
            script: root.join("netns-tests/lab"),
            bin: PathBuf::from(env!("CARGO_BIN_EXE_fdfs-ha")),
        };
        lab.down();
        let child = Command::new(&lab.script)
            .args(["up", "--bin"])
            .arg(&lab.bin)
            .env("LAB_PREFIX", &lab.prefix)
            .env("LAB_DIR", &lab.dir)
            .env("LAB_PREEMPT", if preempt { "true" } else { "false" })
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run netns-tests/lab");
        (lab, child)
    }

    /// Tears the lab down (the script stops the nodes gracefully and removes its state).
    fn down(&self) {
        let _ = Command::new(&self.script)
            .arg("down")
            .env("LAB_PREFIX", &self.prefix)
            .env("LAB_DIR", &self.dir)
            .stdout(std::process::Stdio::null())
            .status();
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn pid(&self, node: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("pids/{node}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Signals the node's fdfs-ha, which this lab started (PID from its pid file).
    fn signal(&self, node: &str, sig: &str) {
        if let Some(pid) = self.pid(node) {
            let sig = match sig {
                "KILL" => nix::sys::signal::SIGKILL,
                "HUP" => nix::sys::signal::SIGHUP,
                _ => nix::sys::signal::SIGTERM,
            };
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    fn restart(&self, node: &str) {
        if let Some(pid) = self.pid(node) {
            // Wait for the old process to be gone (a graceful stop takes up to 3 x advert_int).
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let cfg = self.dir.join(format!("{node}.yaml"));
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join(format!("logs/{node}.log")))
            .expect("log");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .arg(&self.bin)
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart node");
        std::fs::write(
            self.dir.join(format!("pids/{node}.pid")),
            child.id().to_string(),
        )
        .expect("pid file");
        // Reap it when it exits (the lab's teardown or a later drill step ends it).
        std::thread::spawn(move || child.wait());
    }

    /// Fault injection through the node's loopback status endpoint (see src/supervisor/faults.rs).
    fn inject(&self, node: &str, component: &str, action: &str) {
        let url = format!("http://127.0.0.1:8399/debug/components/{component}/{action}");
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(node),
                "curl",
                "-sf",
                "-X",
                "POST",
                &url,
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("curl");
        assert!(
            st.success(),
            "fault injection {action} {component} on {node} failed"
        );
    }

    fn link(&self, node: &str, up: bool) {
        let _ = Command::new("ip")
            .args([
                "-n",
                &self.ns(node),
                "link",
                "set",
                "eth0",
                if up { "up" } else { "down" },
            ])
            .status();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.down();
    }
}

/// Ends the run on a drill that could not be measured, keeping the nodes' logs first (the lab's
/// teardown removes its state).
fn abort(lab: &Lab, d: &Drill, rep: usize, out: &Path, why: &str) -> ! {
    keep_logs(lab, &out.join(format!("{}-{rep}-logs", d.id)));
    print_warnings(lab);
    panic!("drill {}: {why}", d.id);
}

/// Copies a failed drill's node logs next to its timeline (the lab directory is reused).
fn keep_logs(lab: &Lab, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    if let Ok(entries) = std::fs::read_dir(lab.dir.join("logs")) {
        for e in entries.flatten() {
            let _ = std::fs::copy(e.path(), to.join(e.file_name()));
        }
    }
    println!("  logs kept in {}", to.display());
}

/// Prints the last warnings and errors fdfs-ha itself logged on every node (a dependency's
/// notices, such as netlink's about new kernel attributes, would crowd them out).
fn print_warnings(lab: &Lab) {
    let Ok(entries) = std::fs::read_dir(lab.dir.join("logs")) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let warnings: Vec<String> = text
            .lines()
            .map(strip_colours)
            .filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && l.contains("fdfs_ha::"))
            .collect();
        let node = path.file_stem().unwrap_or_default().to_string_lossy();
        for l in &warnings[warnings.len().saturating_sub(12)..] {
            println!("  [{node}] {l}");
        }
    }
}

/// A log line without its terminal colour codes (ESC [ ... m).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs `f` on a new thread whose network namespace is `ns` (sockets it opens live there).
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        // The lab may still be creating it (the samplers start before the nodes): `ip netns
        // add` creates the file, then mounts the namespace on it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let entered = std::fs::File::open(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| e.to_string())
                });
            match entered {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => panic!("enter {path}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        f()
    })
}

fn run_drill(d: &Drill, rep: usize, out: &Path) -> Outcome {
    // The start-up is judged too: the samplers watch it from before the first node starts.
    let (lab, mut lab_up) = Lab::start(d.preempt);
    let trackers: Vec<SocketAddr> = vec![
        "192.168.3.21:22122".parse().unwrap(),
        "192.168.3.22:22122".parse().unwrap(),
    ];
    // The read-back at the end asks the same trackers.
    let trackers2 = trackers.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let slot_of =
        move |t: Instant| (t.duration_since(start).as_millis() / SLOT.as_millis()) as usize;

    // VIP samplers; `latest` holds each one's last sample as (holds, slot of its last change).
    let latest: Arc<Mutex<[(bool, usize); 2]>> = Arc::default();
    let samplers: Vec<_> = ["ha1", "ha2"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let stop = Arc::clone(&stop);
            let latest = Arc::clone(&latest);
            in_netns(&lab.ns(n), move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let slot = slot_of(Instant::now());
                    let has = nix::ifaddrs::getifaddrs()
                        .map(|mut it| {
                            it.any(|a| {
                                a.interface_name == "eth0"
                                    && a.address
                                        .and_then(|s| {
                                            s.as_sockaddr_in().map(|v| v.ip().to_string())
                                        })
                                        .as_deref()
                                        == Some(VIP)
                            })
                        })
                        .unwrap_or(false);
                    held.push((slot, has));
                    {
                        let mut l = latest.lock().expect("latest");
                        if l[i].0 != has {
                            l[i] = (has, slot);
                        }
                    }
                    std::thread::sleep(SLOT);
                }
                held
            })
        })
        .collect();

    // The client starts as soon as a node holds the VIP: from then on nothing may fail.
    let vip_deadline = Instant::now() + SETTLE_TIMEOUT;
    let first_vip_slot = loop {
        let l = *latest.lock().expect("latest");
        if l[0].0 || l[1].0 {
            break l.iter().filter(|h| h.0).map(|h| h.1).min().unwrap_or(0);
        }
        let exited = lab_up.try_wait().ok().flatten();
        if exited.is_some_and(|st| !st.success()) || Instant::now() > vip_deadline {
            stop.store(true, Ordering::Relaxed);
            abort(
                &lab,
                d,
                rep,
                out,
                "lab up failed or no node took the VIP in time",
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };

    // Client loops in the client namespace.
    let acked: Acked = Arc::default();
    let client_stop = Arc::clone(&stop);
    let acked2 = Arc::clone(&acked);
    let client = in_netns(&lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(client_loops(trackers, acked2, client_stop, slot_of))
    });

    let up_ok = lab_up.wait().is_ok_and(|st| st.success());
    if !up_ok {
        stop.store(true, Ordering::Relaxed);
        abort(&lab, d, rep, out, "lab up failed");
    }

    // Faults are injected from a settled state: ha1 alone has held the VIP for SETTLED (past its
    // gratuitous-ARP bursts), however long the lab took to start on this machine.
    let settle_deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let now_slot = slot_of(Instant::now());
        let l = *latest.lock().expect("latest");
        let stable_for = |(_, since): (bool, usize)| now_slot.saturating_sub(since) * 20;
        if l[0].0
            && !l[1].0
            && stable_for(l[0]) as u128 >= SETTLED.as_millis()
            && stable_for(l[1]) as u128 >= SETTLED.as_millis()
        {
            break;
        }
        if Instant::now() > settle_deadline {
            stop.store(true, Ordering::Relaxed);
            abort(
                &lab,
                d,
                rep,
                out,
                &format!("the lab did not settle (ha1 alone holding the VIP for {SETTLED:?}) within {SETTLE_TIMEOUT:?}"),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(
        rand::random::<u64>() % ADVERT_INT.as_millis() as u64,
    ));
    let fault_slot = slot_of(Instant::now());
    if d.id != "s" {
        (d.fault)(&lab);
        std::thread::sleep(Duration::from_secs(6));
        (d.heal)(&lab);
        std::thread::sleep(Duration::from_secs(5));
    }
    stop.store(true, Ordering::Relaxed);
    let (downloads, uploads) = client.join().expect("client thread");
    let mut tl = Timeline {
        fault_slot,
        first_vip_slot,
        downloads,
        uploads,
        ..Default::default()
    };
    let held: Vec<Vec<(usize, bool)>> = samplers
        .into_iter()
        .map(|s| s.join().expect("sampler"))
        .collect();
    let slots = held
        .iter()
        .flat_map(|h| h.iter().map(|(s, _)| *s))
        .max()
        .unwrap_or(0)
        + 1;
    tl.vip = vec![(false, false); slots];
    for (i, h) in held.iter().enumerate() {
        // A sampler can miss a 20 ms slot (getifaddrs is not free): carry the last sample over.
        let mut last = (0usize, false);
        for &(s, has) in h.iter().chain(std::iter::once(&(slots, false))) {
            for slot in tl.vip.iter_mut().take(s).skip(last.0) {
                if i == 0 {
                    slot.0 = last.1
                } else {
                    slot.1 = last.1
                }
            }
            last = (s, has);
        }
    }

    // Read back every acknowledged upload after the dust settled (through the trackers).
    let acked = std::mem::take(&mut *acked.lock().expect("acked"));
    let read_back = in_netns(&lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(read_back(trackers2, acked))
    })
    .join()
    .expect("read-back thread");
    let lost = read_back.lost;

    let mut outcome = analyse(&tl, d.partition, lost);
    outcome.late_uploads = read_back.late;
    outcome.storage_killed = d.kills_a_storage();
    outcome.requests_judged = d.judges_requests();
    for line in &read_back.details {
        println!("  {line}");
    }
    if d.vip_stays_on_ha1() {
        outcome.vip_away = Some(
            tl.vip
                .iter()
                .skip(tl.fault_slot)
                .filter(|h| **h != (true, false))
                .count(),
        );
    }
    if d.no_failures() {
        outcome.failed_after_fault = Some(
            tl.downloads
                .iter()
                .chain(tl.uploads.iter())
                .filter(|(s, r)| *s >= tl.faulted_from() && r.bad())
                .count(),
        );
    }
    write_timeline(out, d, rep, &tl, &outcome);
    // FDFS_HA_DRILL_KEEP_LOGS=1 keeps them always (with LAB_LOG_LEVEL=debug, say).
    if !outcome.violations().is_empty() || std::env::var_os("FDFS_HA_DRILL_KEEP_LOGS").is_some() {
        keep_logs(&lab, &out.join(format!("{}-{rep}-logs", d.id)));
    }
    if !outcome.violations().is_empty() {
        // CI keeps only what is printed: the nodes' warnings say what went wrong.
        print_warnings(&lab);
    }
    outcome
}

/// How long an acknowledged upload that the trackers could not serve at once is retried.
const LATE_READ_GRACE: Duration = Duration::from_secs(15);

/// The lab's storages per group (netns-tests/lab).
const STORAGES: [(&str, [&str; 2]); 2] = [
    ("group1", ["192.168.3.23:23000", "192.168.3.24:23000"]),
    ("group2", ["192.168.3.25:23000", "192.168.3.26:23000"]),
];

#[derive(Default)]
struct ReadBack {
    /// Not readable (or not the bytes sent) even after LATE_READ_GRACE.
    lost: usize,
    /// Not readable through the trackers at once, but within LATE_READ_GRACE.
    late: usize,
    /// A few failures with what each storage of the group answered.
    details: Vec<String>,
}

/// Reads every acknowledged upload back through the trackers, retries the failures for
/// LATE_READ_GRACE, and for the first few says what each storage of the group holds, so a
/// failure in CI (where only stdout is kept) tells a routing miss from a lost file.
async fn read_back(trackers: Vec<SocketAddr>, acked: Vec<(String, Vec<u8>)>) -> ReadBack {
    let c = FdfsClient::new(trackers);
    async fn read(c: &FdfsClient, id: &str, data: &[u8]) -> Result<(), String> {
        match c.download_buffer(id).await {
            Ok(got) if got == data => Ok(()),
            Ok(got) => Err(format!("{} bytes, not the {} sent", got.len(), data.len())),
            Err(e) => Err(e.to_string()),
        }
    }
    let mut failed = Vec::new();
    for (id, data) in acked {
        if let Err(why) = read(&c, &id, &data).await {
            failed.push((id, data, why));
        }
    }
    let mut out = ReadBack::default();
    for (id, _, why) in failed.iter().take(5) {
        let mut held = Vec::new();
        if let Some((group, name)) = id.split_once('/') {
            for (_, addrs) in STORAGES.iter().filter(|(g, _)| *g == group) {
                for a in addrs {
                    let answer = match fdfs_ha::client::storage::StorageConn::connect_timeout(
                        *a,
                        Duration::from_secs(2),
                    )
                    .await
                    {
                        Ok(mut s) => match s.download(group, name, 0, 0).await {
                            Ok(b) => format!("has it ({} bytes)", b.len()),
                            Err(e) => e.to_string(),
                        },
                        Err(e) => format!("connect: {e}"),
                    };
                    held.push(format!("{a}: {answer}"));
                }
            }
        }
        out.details.push(format!(
            "read-back of {id} failed: {why}; storages: {}",
            held.join(", ")
        ));
    }
    let deadline = Instant::now() + LATE_READ_GRACE;
    let initially = failed.len();
    while !failed.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut still = Vec::new();
        for (id, data, why) in failed {
            if read(&c, &id, &data).await.is_err() {
                still.push((id, data, why));
            }
        }
        failed = still;
    }
    out.lost = failed.len();
    out.late = initially - failed.len();
    out
}

async fn client_loops(
    trackers: Vec<SocketAddr>,
    acked: Acked,
    stop: Arc<AtomicBool>,
    slot_of: impl Fn(Instant) -> usize + Copy + Send + 'static,
) -> (Vec<(usize, Req)>, Vec<(usize, Req)>) {
    // Its own timeouts below the loop's 500 ms deadline, so a cut-off tracker is noticed and
    // asked last (FdfsClient::TRACKER_FAIL_TIMEOUT) instead of costing every other upload.
    let client = Arc::new(FdfsClient::with_timeout(
        trackers,
        Duration::from_millis(400),
    ));
    // Seed a few files so downloads have targets from the first slot (judged like the rest).
    let mut seeded = Vec::new();
    for i in 0..5u8 {
        let data = vec![i; 2048];
        let slot = slot_of(Instant::now());
        match client.upload_buffer(&data, "bin").await {
            Ok(id) => {
                acked.lock().expect("acked").push((id, data));
                seeded.push((slot, Req::Ok));
            }
            Err(e) => {
                eprintln!("  seed upload failed at slot {slot}: {e}");
                seeded.push((slot, Req::Failed))
            }
        }
    }
    let up = {
        let (client, acked, stop) = (Arc::clone(&client), Arc::clone(&acked), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut res = Vec::new();
            let mut tick = tokio::time::interval(SLOT);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let data = format!("drill upload {n} ").repeat(64).into_bytes();
                let slot = slot_of(Instant::now());
                match tokio::time::timeout(
                    Duration::from_millis(500),
                    client.upload_buffer(&data, "txt"),
                )
                .await
                {
                    Ok(Ok(id)) => {
                        acked.lock().expect("acked").push((id, data));
                        res.push((slot, Req::Ok));
                    }
                    Ok(Err(e)) if cut_off(&e) => {
                        eprintln!("  upload cut off at slot {slot}: {e}");
                        res.push((slot, Req::CutOff))
                    }
                    r => {
                        // The first failure of a streak says why.
                        if res.last().is_none_or(|(_, r)| *r == Req::Ok) {
                            let why = match r {
                                Ok(Err(e)) => e.to_string(),
                                _ => "timeout (500 ms)".to_string(),
                            };
                            eprintln!("  upload failed at slot {slot}: {why}");
                        }
                        res.push((slot, Req::Failed))
                    }
                }
            }
            res
        })
    };
    let mut http = download::Downloader::new();
    let mut downloads = Vec::new();
    let mut tick = tokio::time::interval(SLOT);
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let target = {
            let a = acked.lock().expect("acked");
            if a.is_empty() {
                None
            } else {
                Some(a[k % a.len()].clone())
            }
        };
        k += 1;
        let Some((id, data)) = target else { continue };
        let slot = slot_of(Instant::now());
        let uri: hyper::Uri = format!("http://{VIP}/dfs/{id}").parse().expect("uri");
        let got = tokio::time::timeout(Duration::from_millis(200), http.get(&uri)).await;
        let mut outcome = match &got {
            Ok(Got::Body { body, .. }) if body.as_ref() != data.as_slice() => Req::Corrupt,
            Ok(Got::Body {
                repeated: Some(why),
                ..
            }) => {
                eprintln!("  download at slot {slot} repeated on a new connection after: {why}");
                Req::Retried
            }
            Ok(Got::Body { .. }) => Req::Ok,
            _ => Req::Failed,
        };
        if outcome == Req::Failed && !held_by_a_live_storage(&id).await {
            outcome = Req::Unavailable;
        }
        // The first failure of a streak says why (the rest of a gap would only repeat it).
        if outcome == Req::Failed
            && downloads
                .last()
                .is_none_or(|(_, r): &(usize, Req)| r.served())
        {
            let why = match got {
                Ok(Got::Failed(e)) => e,
                _ => "timeout (200 ms)".to_string(),
            };
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            eprintln!(
                "  download failed at slot {slot} (unix {}.{:06}): {why}",
                unix.as_secs(),
                unix.subsec_micros()
            );
        }
        downloads.push((slot, outcome));
    }
    seeded.extend(up.await.unwrap_or_default());
    let uploads = seeded;
    (downloads, uploads)
}

/// The storage closed or reset the connection after the upload went out (killed mid-request).
fn cut_off(e: &fdfs_ha::client::ClientError) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(e, fdfs_ha::client::ClientError::Storage { source: fdfs_ha::proto::connection::ConnError::Io(io), .. }
        if matches!(io.kind(), UnexpectedEof | ConnectionReset | BrokenPipe))
}

/// Whether a storage of the file's group that answers now holds it (asked directly, not
/// through the VIP); a stopped storage does not answer.
async fn held_by_a_live_storage(id: &str) -> bool {
    let Some((group, name)) = id.split_once('/') else {
        return true;
    };
    for (_, addrs) in STORAGES.iter().filter(|(g, _)| *g == group) {
        for a in addrs {
            let asked = tokio::time::timeout(Duration::from_millis(500), async {
                let mut s = fdfs_ha::client::storage::StorageConn::connect_timeout(
                    a.parse::<SocketAddr>().unwrap(),
                    Duration::from_millis(300),
                )
                .await
                .ok()?;
                s.download(group, name, 0, 0).await.ok()
            })
            .await;
            if matches!(asked, Ok(Some(_))) {
                return true;
            }
        }
    }
    false
}
