//! `run_by_user` started as root: the process switches to that user and keeps no capability
//! when it holds no VIP and binds no port below 1024 (issue 19.5). Needs root; as any other
//! user it says so and passes without checking (CI runs the suite as root).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::{free_port, run};

use std::time::{Duration, Instant};

/// The `Uid:` and `CapEff:` lines of /proc/<pid>/status.
fn ids(pid: u32) -> Option<(String, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    Some((field("Uid:")?, field("CapEff:")?))
}

#[test]
fn root_switches_to_run_by_user_with_no_capability_left() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("privileges: not root, run_by_user is not exercised here");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    nix::unistd::chown(&data, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let port = free_port();
    let yaml = format!(
        "node: priv-test\ndata_dir: \"{}\"\nrun_by_user: nobody\nlog: {{ level: warn }}\n\
         status: {{ listen: \"127.0.0.1:{}\" }}\ntracker:\n  listen: 127.0.0.1:{port}\n",
        data.display(),
        free_port()
    );
    let node = run(dir.path(), &yaml);
    let pid = node.0.id();
    let want_uid = format!("{0} {0} {0} {0}", nobody.uid);
    let t0 = Instant::now();
    loop {
        let serving = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        let now = ids(pid);
        if serving && now.as_ref().is_some_and(|(uid, _)| *uid == want_uid) {
            let (_, cap_eff) = now.unwrap();
            assert_eq!(cap_eff, "0000000000000000", "capabilities left");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not serving as nobody after 20 s: serving {serving}, ids {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(node);
}
