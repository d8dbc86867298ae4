//! Issue 26.4: start and stop of a lone node, fdfs-ha against keepalived 2.2.7 with the same
//! config in the same lab and the same test run (needs root, iproute2 and keepalived; prints
//! SKIP and passes otherwise). Node 0 is 192.168.3.21, VIP 192.168.3.100, VRID 33, priority 100,
//! a healthy tracked check with weight -20 (fdfs-ha: a TCP probe of the node's web server,
//! keepalived: a `vrrp_script`), keepalived in `state BACKUP` (fdfs-ha has no initial state).
//!
//! Alone, each becomes Master after its Master_Down_Interval; fdfs-ha used to compute it from
//! the priority of a not-yet-checked probe (80: skew 176/256 s instead of 156/256 s) and never
//! recompute it, and a lone Master waited 3 x advert_int for a successor on SIGTERM.
//!
//! On SIGTERM keepalived drops the VIP at once (and exits about 1 s later); so does fdfs-ha when
//! it has heard no peer (it used to keep the VIP one advert interval for a silent Backup to
//! answer its priority-0 advert). Asserted: Master no later than keepalived, exit no later than
//! keepalived, each with one advert interval of tolerance, and the VIP released no later than
//! keepalived's plus half an interval (the old wait fails that). All times are printed.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "vrrp/harness.rs"]
mod harness;

use harness::{Lab, VrrpOpts};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(15);

/// Polls `cond` every 5 ms (finer than `wait_until`: these are the figures being compared).
fn time_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

struct Run {
    /// Start of the process -> VIP on the interface.
    master_after: Duration,
    /// SIGTERM -> VIP gone.
    released_after: Duration,
    /// SIGTERM -> process exited.
    exited_after: Duration,
}

/// Starts one speaker alone (through `start`), waits for its VIP, holds it 2 s, stops it.
fn lone_run(lab: &Lab, start: impl FnOnce() -> usize) -> Run {
    assert!(
        lab.vip_holders().is_empty(),
        "a VIP left from the earlier run"
    );
    let t = Instant::now();
    let h = start();
    let Some(_) = time_until(LIMIT, || lab.has_vip(0)) else {
        panic!("never became MASTER alone:\n{}", lab.log(h));
    };
    let master_after = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    // keepalived's VRRP child; fdfs-ha's vip-guard, which ignores SIGTERM and ends on the
    // clean-exit message: none may outlive the stop (systemd would wait for it).
    let children = lab.children(h);
    let t = Instant::now();
    lab.sigterm(h);
    for c in &children {
        // As systemd's stop signals every process of the unit.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*c),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let released_after = time_until(LIMIT, || !lab.has_vip(0))
        .unwrap_or_else(|| panic!("VIP kept after SIGTERM:\n{}", lab.log(h)));
    assert!(lab.wait_exit(h, LIMIT).is_some(), "{}", lab.log(h));
    let exited_after = t.elapsed();
    assert!(
        harness::wait_until(Duration::from_secs(1), || !children
            .iter()
            .any(|c| harness::alive(*c))),
        "a child of {h} ({children:?}) outlived it"
    );
    Run {
        master_after,
        released_after,
        exited_after,
    }
}

fn compare(o: &VrrpOpts, tolerance: Duration) {
    let lab = Lab::new(1);
    let _web = lab.http_server(0);
    let k = lone_run(&lab, || lab.start_keepalived(0, o, false));
    let mut fdfs = 0;
    let f = lone_run(&lab, || {
        fdfs = lab.start_fdfs(0, o);
        fdfs
    });
    let log = lab.log(fdfs);
    let show = |who: &str, r: &Run| {
        println!(
            "{who:<10} MASTER alone after {:.3}s; SIGTERM -> VIP released {:.3}s, exit {:.3}s",
            r.master_after.as_secs_f64(),
            r.released_after.as_secs_f64(),
            r.exited_after.as_secs_f64()
        )
    };
    println!("version {} advert_int {:?}:", o.version, tolerance);
    show("keepalived", &k);
    show("fdfs-ha", &f);
    assert!(
        f.master_after <= k.master_after + tolerance,
        "fdfs-ha became MASTER {:?} after keepalived:\n{log}",
        f.master_after.saturating_sub(k.master_after)
    );
    assert!(
        f.exited_after <= k.exited_after + tolerance,
        "fdfs-ha exited {:?} after keepalived:\n{log}",
        f.exited_after.saturating_sub(k.exited_after)
    );
    assert!(
        f.released_after <= k.released_after + tolerance / 2,
        "fdfs-ha released the VIP {:?} after keepalived:\n{log}",
        f.released_after.saturating_sub(k.released_after)
    );
    assert!(log.contains("released at once"), "{log}");
    assert!(!log.contains("handover"), "{log}");
}

#[test]
fn alone_master_and_stop_no_later_than_keepalived_v2() {
    skip_unless_ready!(true);
    compare(
        &VrrpOpts {
            track: true,
            handover_to_silent_backup: false,
            ..Default::default()
        },
        Duration::from_secs(1),
    );
}

#[test]
fn alone_master_and_stop_no_later_than_keepalived_v3() {
    skip_unless_ready!(true);
    compare(
        &VrrpOpts {
            track: true,
            handover_to_silent_backup: false,
            ..VrrpOpts::v3(100)
        },
        Duration::from_millis(100),
    );
}
