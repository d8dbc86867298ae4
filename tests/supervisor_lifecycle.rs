//! Supervisor: restart with backoff, yield after max_restarts, probe-driven restarts (injected
//! components and a recording VRRP), and the real binary's signals (SIGHUP reload, SIGTERM stop).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "supervisor_support/mod.rs"]
mod support;

use fdfs_ha::config::Config;
use fdfs_ha::supervisor::component::ComponentSpec;
use fdfs_ha::supervisor::{run_with, Control, Hooks};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn a_crashing_component_is_restarted_with_backoff_then_the_node_yields() {
    let calls: Calls = Arc::default();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let component = Arc::new(Scripted {
        starts: starts.clone(),
        // Every start crashes after 5 ms.
        behaviour: Arc::new(|_, _| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                anyhow::bail!("simulated crash")
            })
        }),
    });
    let hooks = Hooks {
        components: Arc::new(move |_: &Config, _: &_| {
            vec![ComponentSpec {
                name: "flaky".into(),
                fingerprint: "1".into(),
                component: component.clone(),
            }]
        }),
        vrrp: Arc::new(RecordingVrrp {
            calls: calls.clone(),
            ..Default::default()
        }),
    };
    let (ctl, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = tokio::spawn(run_with(config(""), None, hooks, rx));

    wait_for("the yield", Duration::from_secs(10), || {
        calls.lock().unwrap().iter().any(|c| c.2)
    })
    .await;
    let recorded = calls.lock().unwrap().clone();
    assert_eq!(
        recorded[0],
        ("VI_T".into(), 0, false, "all tracked probes healthy".into())
    );
    let fault = recorded.iter().find(|c| c.2).unwrap();
    assert_eq!(fault.0, "VI_T");
    assert!(
        fault.3.contains("component flaky restarted 4 times"),
        "{}",
        fault.3
    );
    // The 4th failure yields at once (its restart is still pending); restarts go on meanwhile.
    assert!(starts.lock().unwrap().len() >= 4);
    wait_for("restart after the yield", Duration::from_secs(5), || {
        starts.lock().unwrap().len() >= 5
    })
    .await;
    let s = starts.lock().unwrap().clone();
    // Backoff doubles: 20, 40, 80, 160 ms between a crash and the next start.
    let gaps: Vec<Duration> = s.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, want_ms) in [20u64, 40, 80, 160].iter().enumerate() {
        assert!(
            gaps[i] >= Duration::from_millis(*want_ms),
            "gap {i} was {:?}, want >= {want_ms} ms (gaps {gaps:?})",
            gaps[i]
        );
    }
    assert!(gaps[3] > gaps[0] * 4, "backoff grows: {gaps:?}");

    stop_in_time(&ctl, node).await;
}

#[tokio::test]
async fn a_failing_probe_restarts_its_component_and_moves_priority() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let calls: Calls = Arc::default();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let serving = Arc::new(AtomicUsize::new(0));
    let serving2 = serving.clone();
    let component = Arc::new(Scripted {
        starts: starts.clone(),
        // Start 1 is hung (runs but does not listen); start 2 serves the port.
        behaviour: Arc::new(move |n, token| {
            let serving = serving2.clone();
            Box::pin(async move {
                if n >= 2 {
                    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
                    serving.store(n, Ordering::SeqCst);
                    token.cancelled().await;
                    drop(l);
                } else {
                    token.cancelled().await;
                }
                Ok(())
            })
        }),
    });
    let hooks = Hooks {
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
    };
    let cfg = config(&format!(
        "      track: [{{ probe: web, weight: -30 }}]
external:
  - {{ name: web, command: [\"true\"] }}
probes:
  - {{ name: web, tcp: \"127.0.0.1:{port}\", interval: 30ms, timeout: 100ms, fall: 2, rise: 1, on_fail: restart, component: web }}
"
    ));
    let (ctl, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = tokio::spawn(run_with(cfg, None, hooks, rx));
    wait_for("restart by the probe", Duration::from_secs(10), || {
        serving.load(Ordering::SeqCst) >= 2
    })
    .await;
    wait_for("priority restored", Duration::from_secs(10), || {
        calls.lock().unwrap().last().is_some_and(|c| c.1 == 0)
    })
    .await;
    let recorded = calls.lock().unwrap().clone();
    // Not yet checked counts as failing: -30 from the start, then 0 once healthy.
    assert_eq!(recorded[0].1, -30, "{recorded:?}");
    assert!(recorded.iter().all(|c| !c.2), "no FAULT: {recorded:?}");
    assert_eq!(starts.lock().unwrap().len(), 2);
    stop_in_time(&ctl, node).await;
}

#[tokio::test]
async fn a_quick_restart_keeps_priority_and_a_broken_comeback_moves_it() {
    // Starts 1 and 2 serve; start 3 comes back hung.
    let web = WebNode::start(
        "restart_backoff_min: 20ms\n  restart_backoff_max: 200ms\n  restart_grace: 2s",
        |n| n <= 2,
    )
    .await;
    let settled = web.calls.lock().unwrap().len();

    // Crash 1: restarted within ~20 ms; the probe sees it down (fall 1) but VRRP must not.
    web.crash.notify_one();
    wait_for("second start", Duration::from_secs(5), || {
        web.starts.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_quick: Vec<_> = web.calls.lock().unwrap()[settled..].to_vec();
    assert!(
        after_quick.iter().all(|c| c.1 == 0 && !c.2),
        "a quick restart changed the priority: {after_quick:?}"
    );

    // Crash 2: start 3 runs but never listens; its fresh probe's verdict applies at once.
    let crashed_at = Instant::now();
    web.crash.notify_one();
    web.priority_lowered().await;
    let third_start = web.starts.lock().unwrap()[2];
    assert!(third_start > crashed_at);
    assert!(
        crashed_at.elapsed() < Duration::from_secs(2),
        "the broken comeback was judged by its fresh probe, not held for the whole grace"
    );
    web.stop().await;
}

#[tokio::test]
async fn a_failing_probe_does_not_restart_a_component_already_restarting() {
    // on_fail: restart, fall 1 every 20 ms; the restart takes 200 ms, during which the probe
    // fails several times. Those failures must not order more restarts (a cascade that used to
    // reach max_restarts and yield) nor move the priority.
    let web = WebNode::start_with(
        "restart_backoff_min: 20ms\n  restart_backoff_max: 200ms\n  restart_grace: 2s",
        |_| true,
        ", on_fail: restart",
        Duration::from_millis(200),
    )
    .await;
    let settled = web.calls.lock().unwrap().len();
    web.crash.notify_one();
    wait_for("second start", Duration::from_secs(5), || {
        web.starts.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        web.starts.lock().unwrap().len(),
        2,
        "one crash, one restart"
    );
    let after: Vec<_> = web.calls.lock().unwrap()[settled..].to_vec();
    assert!(
        after.iter().all(|c| c.1 == 0 && !c.2),
        "priority moved: {after:?}"
    );
    web.stop().await;
}

#[tokio::test]
async fn a_component_still_down_when_the_grace_ends_moves_priority() {
    // The restart waits 1.5 s of backoff; the grace is 300 ms.
    let web = WebNode::start(
        "restart_backoff_min: 1500ms\n  restart_backoff_max: 2s\n  restart_grace: 300ms",
        |_| true,
    )
    .await;
    let crashed_at = Instant::now();
    web.crash.notify_one();
    web.priority_lowered().await;
    let lowered_after = crashed_at.elapsed();
    assert!(
        lowered_after >= Duration::from_millis(300),
        "held for the grace: lowered after {lowered_after:?}"
    );
    assert_eq!(
        web.starts.lock().unwrap().len(),
        1,
        "lowered before the restart, not after it"
    );
    web.stop().await;
}

/// Issue 18.8: while a component is held in backoff, the priority of an instance tracking it
/// drops even when its probe cannot see it go (an `exec` probe that keeps succeeding), and
/// comes back once the component runs again.
#[tokio::test]
async fn a_component_in_backoff_lowers_the_priority_its_probe_cannot_see() {
    let port = free_port();
    let calls: Calls = Arc::default();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let crash = Arc::new(tokio::sync::Notify::new());
    let component = crashable(port, crash.clone(), |_| true, starts.clone());
    let probe = "      track: [{ probe: web, weight: -30 }]
external:
  - { name: web, command: [\"true\"] }
probes:
  - { name: web, exec: [\"true\"], interval: 20ms, timeout: 1s, fall: 1, rise: 1, component: web }
";
    let cfg = config_with(
        "restart_backoff_min: 1500ms\n  restart_backoff_max: 2s\n  restart_grace: 200ms",
        probe,
    );
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
    crash.notify_one();
    // Lowered once the grace is over, while the component waits out its backoff.
    wait_for("priority lowered", Duration::from_secs(5), || {
        calls.lock().unwrap().last().is_some_and(|c| c.1 == -30)
    })
    .await;
    assert_eq!(
        starts.lock().unwrap().len(),
        1,
        "lowered during the backoff"
    );
    let reason = calls.lock().unwrap().last().unwrap().3.clone();
    assert!(reason.contains("probe web failing: -30"), "{reason}");
    // Running again: the probe (healthy all along) decides again.
    wait_for("priority restored", Duration::from_secs(10), || {
        calls.lock().unwrap().last().is_some_and(|c| c.1 == 0)
    })
    .await;
    assert_eq!(starts.lock().unwrap().len(), 2);
    stop_in_time(&ctl, node).await;
}

/// Issue 23.5: a tracked service that dies (not a supervised component: the probe alone can see
/// it) lowers the priority handed to VRRP within interval x fall. It dies just after a check,
/// the worst phase (the next check is a whole interval away), so the verdict comes fall
/// intervals later: a fall count one too high would land an interval late, one too low an
/// interval early; both fall outside the window asserted here.
#[tokio::test]
async fn a_dead_tracked_service_lowers_the_priority_within_interval_times_fall() {
    const INTERVAL: Duration = Duration::from_millis(200);
    const FALL: u32 = 3;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls: Calls = Arc::default();
    let hooks = Hooks {
        components: Arc::new(|_: &Config, _: &_| Vec::new()),
        vrrp: Arc::new(RecordingVrrp {
            calls: calls.clone(),
            ..Default::default()
        }),
    };
    let cfg = config(&format!(
        "      track: [{{ probe: web, weight: -20 }}]
probes:
  - {{ name: web, tcp: \"127.0.0.1:{port}\", interval: {}ms, timeout: 100ms, fall: {FALL}, rise: 1 }}
",
        INTERVAL.as_millis()
    ));
    let (ctl, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = tokio::spawn(run_with(cfg, None, hooks, rx));
    let delta = |calls: &Calls| calls.lock().unwrap().last().map(|c| c.1);
    // Healthy, then two more checks seen by the listener: the last one has just happened.
    for _ in 0..3 {
        listener.accept().await.unwrap();
    }
    let died = Instant::now();
    drop(listener);
    assert_eq!(delta(&calls), Some(0), "healthy before the kill");
    let deadline = died + INTERVAL * (FALL + 2);
    while delta(&calls) != Some(-20) {
        assert!(Instant::now() < deadline, "no verdict: {:?}", calls.lock());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = died.elapsed();
    let earliest = INTERVAL * (FALL - 1) + INTERVAL / 4;
    let latest = INTERVAL * FALL + INTERVAL / 2;
    assert!(
        took >= earliest && took <= latest,
        "priority lowered {took:?} after the death; want {earliest:?}..={latest:?} \
         (interval {INTERVAL:?} x fall {FALL})"
    );
    eprintln!(
        "priority lowered {took:?} after the death (interval x fall = {:?})",
        INTERVAL * FALL
    );
    stop_in_time(&ctl, node).await;
}

#[tokio::test]
async fn stop_hands_over_first_then_drains_components_with_a_bound() {
    let vrrp = Arc::new(RecordingVrrp::default());
    let cancelled_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let cancelled = cancelled_at.clone();
    let polite = Arc::new(Scripted {
        starts: Arc::default(),
        behaviour: Arc::new(move |_, token| {
            let cancelled = cancelled.clone();
            Box::pin(async move {
                token.cancelled().await;
                *cancelled.lock().unwrap() = Some(Instant::now());
                Ok(())
            })
        }),
    });
    // Ignores its token: must be cut off after drain_timeout (1 s).
    let stuck = Arc::new(Scripted {
        starts: Arc::default(),
        behaviour: Arc::new(|_, _| Box::pin(futures::future::pending())),
    });
    let hooks = Hooks {
        components: Arc::new(move |_: &Config, _: &_| {
            vec![
                ComponentSpec {
                    name: "polite".into(),
                    fingerprint: "1".into(),
                    component: polite.clone(),
                },
                ComponentSpec {
                    name: "stuck".into(),
                    fingerprint: "1".into(),
                    component: stuck.clone(),
                },
            ]
        }),
        vrrp: vrrp.clone(),
    };
    let (ctl, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = tokio::spawn(run_with(config(""), None, hooks, rx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    ctl.send(Control::Stop).unwrap();
    tokio::time::timeout(Duration::from_secs(5), node)
        .await
        .expect("stop is bounded")
        .unwrap()
        .expect("clean stop");
    let took = asked.elapsed();
    let handed_over = vrrp.handed_over.lock().unwrap()[0];
    let component_stopped = cancelled_at.lock().unwrap().expect("polite was stopped");
    assert!(
        component_stopped >= handed_over,
        "components keep serving until the VRRP handover is done"
    );
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_secs(3),
        "handover 200 ms + drain bound 1 s, took {took:?}"
    );
}

#[tokio::test]
async fn reload_keeps_unchanged_instances_and_notify_runs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notify.log");
    let script = dir.path().join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $2\" >> {}\n", out.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let notify = script.display().to_string();
    let path = dir.path().join("ha.yaml");
    std::fs::write(&path, reload_yaml(dir.path(), 20, 100, &notify)).unwrap();
    let cfg = fdfs_ha::config::load(&path).unwrap();

    let vrrp = Arc::new(RecordingVrrp::default());
    let hooks = Hooks {
        components: Arc::new(|_: &Config, _: &_| Vec::new()),
        vrrp: vrrp.clone(),
    };
    let (ctl, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = tokio::spawn(run_with(cfg, Some(path.clone()), hooks, rx));
    let calls = vrrp.calls.clone();
    wait_for("probe healthy", Duration::from_secs(10), || {
        calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.0 == "VI_A" && c.1 == 20)
    })
    .await;
    assert_eq!(*vrrp.started.lock().unwrap(), vec!["VI_A", "VI_B"]);

    // Notify: every change runs the command with instance and state, in order.
    let senders = vrrp.senders.lock().unwrap().clone();
    for state in ["BACKUP", "MASTER", "FAULT"] {
        senders[0]
            .send(fdfs_ha::vrrp::StateChange {
                instance: "VI_A".into(),
                state: state.into(),
                reason: "test".into(),
            })
            .unwrap();
    }
    wait_for("notify output", Duration::from_secs(10), || {
        std::fs::read_to_string(&out)
            .map(|s| s.lines().count() >= 3)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "VI_A BACKUP\nVI_A MASTER\nVI_A FAULT\n"
    );

    // VI_A changes only its track weight (applied live, no restart); VI_B changes its priority
    // (restarted).
    std::fs::write(&path, reload_yaml(dir.path(), 30, 90, &notify)).unwrap();
    ctl.send(Control::Reload).unwrap();
    wait_for("VI_B restarted", Duration::from_secs(10), || {
        vrrp.started.lock().unwrap().len() == 3
    })
    .await;
    wait_for("new weight applied", Duration::from_secs(10), || {
        calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.0 == "VI_A" && c.1 == 30)
    })
    .await;
    assert_eq!(*vrrp.started.lock().unwrap(), vec!["VI_A", "VI_B", "VI_B"]);

    // An invalid file changes nothing.
    std::fs::write(
        &path,
        reload_yaml(dir.path(), 30, 90, &notify).replace("priority: 90", "priority: 0"),
    )
    .unwrap();
    ctl.send(Control::Reload).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vrrp.started.lock().unwrap().len(), 3);

    stop_in_time(&ctl, node).await;
}

// ------------------------------------------------------------------------------------------------
// The real binary.

#[tokio::test]
async fn sighup_with_an_invalid_file_keeps_the_old_config_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.yaml");
    let port = free_port();
    std::fs::write(&path, node_yaml(dir.path(), port, &["p1"])).unwrap();
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
            .args(["run", "-c"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let v = wait_status(port, "start-up", |v| {
        v["probes"][0]["health"] == "healthy" && v["components"][0]["state"] == "running"
    })
    .await;
    assert_eq!(probe_names(&v), vec!["p1"]);
    assert_eq!(v["components"][0]["name"], "tracker");
    let pid_before = v["pid"].clone();

    // An invalid file: refused, the old config keeps running.
    std::fs::write(
        &path,
        node_yaml(dir.path(), port, &["p1", "p2"]) + "bogus_key: 1\n",
    )
    .unwrap();
    signal(&child, nix::sys::signal::Signal::SIGHUP);
    let v = wait_status(port, "refused reload", |v| v["last_reload"]["ok"] == false).await;
    assert!(
        v["last_reload"]["message"]
            .as_str()
            .unwrap()
            .contains("bogus_key"),
        "{v}"
    );
    assert_eq!(probe_names(&v), vec!["p1"]);
    assert_eq!(v["pid"], pid_before);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "process still running"
    );

    // A file that hung the old YAML scanner (issue 26): refused at once, with file:line:column,
    // and the node still answers and stops on SIGTERM below.
    std::fs::write(&path, "node: x\ntrackers: [\"127.0.0.1:22122\"}\n").unwrap();
    signal(&child, nix::sys::signal::Signal::SIGHUP);
    let v = wait_status(port, "refused reload of a syntax error", |v| {
        v["last_reload"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("YAML syntax"))
    })
    .await;
    let message = v["last_reload"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}:2:11: ", path.display())),
        "{message}"
    );
    assert_eq!(probe_names(&v), vec!["p1"]);
    assert_eq!(v["pid"], pid_before);

    // A valid change: applied, unchanged parts keep running (tracker not restarted).
    std::fs::write(&path, node_yaml(dir.path(), port, &["p1", "p2"])).unwrap();
    signal(&child, nix::sys::signal::Signal::SIGHUP);
    let v = wait_status(port, "applied reload", |v| v["last_reload"]["ok"] == true).await;
    assert_eq!(probe_names(&v), vec!["p1", "p2"]);
    assert_eq!(v["components"][0]["restarts"], 0);
    assert_eq!(v["components"][0]["state"], "running");

    // `fdfs-ha status` renders the same document.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["status", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("node sighup") && text.contains("p2") && text.contains("tracker"),
        "{text}"
    );

    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "clean stop exits 0");
}

#[test]
fn exit_codes_config_error_2_runtime_failure_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "node: x\nnonsense: 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["run", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:1: nonsense: unknown key"));

    // The tracker's port is taken: start-up fails with a runtime error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = dir.path().join("busy.yaml");
    std::fs::write(
        &cfg,
        format!(
            "node: x\ndata_dir: {}/d\nstatus: {{ listen: null }}\ntracker: {{ listen: \"127.0.0.1:{port}\" }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("starting tracker"));
}

#[tokio::test]
async fn a_node_without_vrrp_runs_unprivileged() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.path().join("node.yaml");
    let port = free_port();
    std::fs::write(&path, node_yaml(dir.path(), port, &["p1"])).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"));
    cmd.args(["run", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534); // nobody
    }
    let mut child = Child(cmd.spawn().unwrap());
    let v = wait_status(port, "unprivileged start-up", |v| {
        v["components"][0]["state"] == "running"
    })
    .await;
    assert_eq!(v["node"], "sighup");
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

/// Issue 26.4: SIGTERM to a node without `vrrp` (nothing to hand over) ends the process
/// promptly (the time is printed), with an idle client connection and a half-sent request
/// open, and every upload it acknowledged is there after a restart.
#[tokio::test]
async fn a_node_without_vrrp_exits_quickly_on_sigterm_keeping_acknowledged_uploads() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, mut conn) = storage_node(dir.path(), port).await;
    let mut uploaded = Vec::new();
    for i in 0..20u32 {
        let data: Vec<u8> = (0..5000u32).map(|j| (i * 7 + j) as u8).collect();
        let f = conn.upload(0, &data, "bin").await.unwrap();
        uploaded.push((f, data));
    }
    // An idle connection (conn) and one in the middle of an upload request header.
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    half.write_all(&[0, 0, 0, 0, 0, 0, 0x40]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let t = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "did not exit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = t.elapsed();
    eprintln!("storage-only node: exit {:?} after SIGTERM", took);
    assert!(status.success(), "{status}");
    // The figure (acceptance: 0.5 s, C's fdfs_storaged 0.49 s) is printed, not asserted: on
    // this shared machine load alone moves it (66-195 ms at load 19). The bound only catches a
    // stop that waits for something (the 3 s handover wait, a drain, a blocking thread).
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    drop((conn, half));

    let (_child2, mut conn2) = storage_node(dir.path(), port).await;
    for (f, data) in &uploaded {
        let back = conn2.download(&f.group, &f.filename, 0, 0).await.unwrap();
        assert_eq!(&back, data, "{}", f.filename);
    }
}

/// Sends Stop and requires a clean stop within 5 s.
async fn stop_in_time<T, E: std::fmt::Debug>(
    ctl: &tokio::sync::mpsc::UnboundedSender<Control>,
    node: tokio::task::JoinHandle<Result<T, E>>,
) {
    ctl.send(Control::Stop).unwrap();
    tokio::time::timeout(Duration::from_secs(5), node)
        .await
        .expect("stops in time")
        .unwrap()
        .expect("clean stop");
}
