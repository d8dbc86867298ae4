//! Defaults an installed node relies on: `run` and `check` read /etc/fdfs-ha/ha.yaml without
//! `-c`, and `--pidfile` holds the pid while the node runs and is gone after a graceful stop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn check_without_config_reads_the_default_path() {
    if std::path::Path::new("/etc/fdfs-ha/ha.yaml").exists() {
        return; // an installed node: its file may well be valid
    }
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/etc/fdfs-ha/ha.yaml"), "{err}");
}

#[test]
fn pidfile_holds_the_pid_until_a_graceful_stop() {
    let dir = tempfile::TempDir::new().unwrap();
    let cfg = dir.path().join("ha.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &cfg,
        format!(
            "node: pid-test\ndata_dir: \"{}\"\nstatus: {{ listen: null }}\ntracker:\n  listen: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let pidfile = dir.path().join("run/fdfs-ha.pid");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("--pidfile")
        .arg(&pidfile)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // The pid file is written before anything binds; the port says the node is up.
    while !pidfile.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "tracker did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(text.trim(), child.id().to_string());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!pidfile.exists(), "pid file left behind");
}
