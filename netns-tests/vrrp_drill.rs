//! VRRP failover drill (prints figures; asserts only generous bounds). Needs root and iproute2.
//!
//!   cargo test --release --test vrrp_drill -- --ignored --nocapture
//!
//! Lab: bridge namespace, nodes 192.168.3.21 (fdfs-ha, priority 100) and .22 (fdfs-ha, 90),
//! advert_int 1 s, PASS auth, VIP 192.168.3.100, a tiny HTTP server on port 80 in each node,
//! and a client (.50) fetching http://VIP/ every 20 ms with a 200 ms timeout. Each fault is
//! injected at a random phase of the advert interval. See netns-tests/VRRP.md for figures.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "vrrp/harness.rs"]
mod harness;

use harness::{outage, settle, wait_until, HttpClient, Lab, VrrpOpts};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const REPS: usize = 5;
/// Requests in flight when the fault is injected count toward the outage.
const IN_FLIGHT: Duration = Duration::from_millis(250);

fn stats(name: &str, v: &mut [f64], unit: &str) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let med = if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    };
    println!(
        "{name:<36} median {med:>7.3}{unit}  range {:.3}-{:.3}{unit}  (n={}) {:?}",
        v.first().copied().unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
        v.len(),
        v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>()
    );
}

fn random_phase() {
    let ms = rand::thread_rng().gen_range(0..1000);
    std::thread::sleep(Duration::from_millis(ms));
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    LinkDown,
    Kill9,
    Graceful,
}

#[test]
#[ignore = "drill: run with --ignored --nocapture (root, about 4 minutes)"]
fn vrrp_failover_drill() {
    skip_unless_ready!(false);
    let lab = Lab::new(2);
    let s0 = lab.http_server(0);
    let _s1 = lab.http_server(1);
    let client = HttpClient::start(&lab, Duration::from_millis(20), Duration::from_millis(200));
    let a_opts = VrrpOpts::default();
    let b_opts = VrrpOpts {
        priority: 90,
        ..Default::default()
    };

    // Start-alone-to-Master: a single node, nothing else on the link.
    let mut start_alone = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        let h = lab.start_fdfs(0, &a_opts);
        assert!(wait_until(Duration::from_secs(10), || lab.has_vip(0)));
        start_alone.push(t.elapsed().as_secs_f64());
        lab.sigterm(h);
        assert!(lab.wait_exit(h, Duration::from_secs(6)).is_some());
        assert!(wait_until(Duration::from_secs(2), || !lab.has_vip(0)));
    }

    let mut a = lab.start_fdfs(0, &a_opts);
    assert!(wait_until(Duration::from_secs(10), || lab.has_vip(0)));
    let _b = lab.start_fdfs(1, &b_opts);
    settle(&lab, &client, 0, Duration::from_secs(2));

    let mut gaps: Vec<(Fault, f64, usize)> = Vec::new();
    let mut preempt_back_failed = Vec::new();
    let mut preempt_back_gap = Vec::new();
    for fault in [Fault::LinkDown, Fault::Kill9, Fault::Graceful] {
        for _ in 0..REPS {
            random_phase();
            let t = Instant::now();
            match fault {
                Fault::LinkDown => lab.link(0, false),
                Fault::Kill9 => {
                    s0.enabled.store(false, Ordering::SeqCst);
                    lab.kill9(a);
                }
                Fault::Graceful => {
                    lab.sigterm(a);
                    // The gateway drains after VRRP has handed over, i.e. when fdfs-ha exits.
                    assert_eq!(lab.wait_exit(a, Duration::from_secs(6)), Some(0));
                    s0.enabled.store(false, Ordering::SeqCst);
                }
            }
            // B serves alone for a while (for kill -9 node 0 keeps the stale VIP until restart).
            let ok = wait_until(Duration::from_secs(15), || {
                let s = client.since(Instant::now() - Duration::from_millis(1500));
                lab.has_vip(1) && s.len() > 30 && s.iter().all(|x| x.ok)
            });
            assert!(ok, "node 1 did not take over");
            let (gap, failed) = outage(&client.since(t - IN_FLIGHT));
            gaps.push((fault, gap.as_secs_f64(), failed));
            println!(
                "{:<10} gap {:.3}s failed {failed}",
                format!("{:?}", fault),
                gap.as_secs_f64()
            );

            // Return of node 0 (preempt): must cost nothing.
            let t_back = Instant::now();
            match fault {
                Fault::LinkDown => lab.link(0, true),
                Fault::Kill9 | Fault::Graceful => {
                    s0.enabled.store(true, Ordering::SeqCst);
                    a = lab.start_fdfs(0, &a_opts);
                }
            }
            settle(&lab, &client, 0, Duration::from_secs(2));
            let back = client.since(t_back);
            let (g, f) = outage(&back);
            if f > 0 {
                println!(
                    "  preempt-back failures: {}",
                    harness::describe_failures(&back)
                );
            }
            preempt_back_gap.push(g.as_secs_f64());
            preempt_back_failed.push(f as f64);
            println!("  preempt-back gap {:.3}s failed {f}", g.as_secs_f64());
        }
    }

    // nopreempt return: node 0 (higher priority, preempt off) comes back while node 1 is Master.
    let mut nopreempt_failed = Vec::new();
    for _ in 0..REPS {
        s0.enabled.store(false, Ordering::SeqCst);
        lab.kill9(a);
        // Node 0 may hold a stale VIP (killed while Master); a restart would clear it, but
        // here node 1 must own the link first.
        let _ = std::process::Command::new("ip")
            .args([
                "-n",
                lab.node(0),
                "addr",
                "del",
                harness::VIP_CIDR,
                "dev",
                "eth0",
            ])
            .output();
        settle(&lab, &client, 1, Duration::from_secs(1));
        let t_back = Instant::now();
        s0.enabled.store(true, Ordering::SeqCst);
        a = lab.start_fdfs(
            0,
            &VrrpOpts {
                preempt: false,
                ..Default::default()
            },
        );
        std::thread::sleep(Duration::from_secs(6));
        assert_eq!(lab.vip_holders(), vec![1], "nopreempt node took over");
        nopreempt_failed.push(outage(&client.since(t_back)).1 as f64);
    }

    println!("\nVRRP failover drill: fdfs-ha 100/90, advert_int 1 s, client every 20 ms / 200 ms timeout, {REPS} reps");
    for (f, name) in [
        (Fault::LinkDown, "gap: master link down"),
        (Fault::Kill9, "gap: master fdfs-ha killed (-9)"),
        (Fault::Graceful, "gap: master graceful stop (SIGTERM)"),
    ] {
        let mut v: Vec<f64> = gaps.iter().filter(|g| g.0 == f).map(|g| g.1).collect();
        stats(name, &mut v, "s");
        let mut n: Vec<f64> = gaps
            .iter()
            .filter(|g| g.0 == f)
            .map(|g| g.2 as f64)
            .collect();
        stats(&format!("  failed requests ({name})"), &mut n, "");
    }
    stats("preempt-back gap", &mut preempt_back_gap, "s");
    stats("preempt-back failed requests", &mut preempt_back_failed, "");
    stats(
        "nopreempt return failed requests",
        &mut nopreempt_failed,
        "",
    );
    stats("start alone to MASTER", &mut start_alone, "s");

    // Generous bounds only: RFC timing says takeover <= 3 x 1 s + skew (+ detection slack).
    for (f, g, _) in &gaps {
        let bound = if *f == Fault::Graceful { 2.0 } else { 5.0 };
        assert!(*g < bound, "outage {g:.3}s over the {bound}s bound");
    }
    assert!(preempt_back_failed.iter().all(|f| *f <= 5.0));
    assert!(nopreempt_failed.iter().all(|f| *f == 0.0));
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum V3Fault {
    /// `ip link set eth0 down` in the Master.
    LinkDown,
    /// The whole node: the VRRP daemon killed (-9) and its HTTP server gone at the same instant.
    NodeCrash,
    /// Only the VRRP daemon killed (-9); the node's HTTP server (another process) lives on.
    VrrpOnly,
}

/// One VRRPv3 series: two nodes of one implementation (fdfs-ha or keepalived, priorities
/// 100/90, `advert_ms` adverts), `reps` faults of each kind at a random phase of the interval.
fn v3_series(keepalived: bool, advert_ms: u64, reps: usize) -> Vec<(V3Fault, f64, usize)> {
    let lab = Lab::new(2);
    let s0 = lab.http_server(0);
    let _s1 = lab.http_server(1);
    let client = HttpClient::start(&lab, Duration::from_millis(20), Duration::from_millis(200));
    let o = |priority| VrrpOpts {
        priority,
        ..VrrpOpts::v3(advert_ms)
    };
    let start0 = |first: bool| {
        if keepalived {
            lab.start_keepalived(0, &o(100), first)
        } else {
            lab.start_fdfs(0, &o(100))
        }
    };
    let mut a = start0(true);
    assert!(wait_until(Duration::from_secs(10), || lab.has_vip(0)));
    let _b = if keepalived {
        lab.start_keepalived(1, &o(90), false)
    } else {
        lab.start_fdfs(1, &o(90))
    };
    settle(&lab, &client, 0, Duration::from_secs(1));
    let mut out = Vec::new();
    for fault in [V3Fault::LinkDown, V3Fault::NodeCrash, V3Fault::VrrpOnly] {
        for _ in 0..reps {
            let ms = rand::thread_rng().gen_range(0..advert_ms);
            std::thread::sleep(Duration::from_millis(ms));
            let t = Instant::now();
            match fault {
                V3Fault::LinkDown => lab.link(0, false),
                V3Fault::NodeCrash => {
                    s0.enabled.store(false, Ordering::SeqCst);
                    lab.kill9(a);
                }
                V3Fault::VrrpOnly => lab.kill9(a),
            }
            let ok = wait_until(Duration::from_secs(15), || {
                let s = client.since(Instant::now() - Duration::from_millis(1000));
                lab.has_vip(1) && s.len() > 20 && s.iter().all(|x| x.ok)
            });
            assert!(ok, "node 1 did not take over ({fault:?})");
            let (gap, failed) = outage(&client.since(t - IN_FLIGHT));
            println!(
                "{} {fault:?} gap {:.3}s failed {failed}",
                if keepalived { "keepalived" } else { "fdfs-ha" },
                gap.as_secs_f64()
            );
            out.push((fault, gap.as_secs_f64(), failed));
            match fault {
                V3Fault::LinkDown => lab.link(0, true),
                V3Fault::NodeCrash | V3Fault::VrrpOnly => {
                    // keepalived leaves its VIP behind when killed; a restart clears it, but
                    // node 1 owns the link meanwhile.
                    let _ = std::process::Command::new("ip")
                        .args(["-n", lab.node(0), "addr", "del", harness::VIP_CIDR])
                        .args(["dev", "eth0"])
                        .output();
                    s0.enabled.store(true, Ordering::SeqCst);
                    a = start0(false);
                }
            }
            settle(&lab, &client, 0, Duration::from_secs(1));
        }
    }
    out
}

/// Issue 23.1/23.2 drill: VRRPv3 with 100 ms adverts, fdfs-ha and keepalived in the same lab.
///
///   VRRP_DRILL_REPS=20 cargo test --test vrrp_drill vrrp_v3_drill -- --ignored --nocapture
#[test]
#[ignore = "drill: run with --ignored --nocapture (root; about 1 minute per 5 reps and side)"]
fn vrrp_v3_drill() {
    skip_unless_ready!(true);
    let reps: usize = std::env::var("VRRP_DRILL_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let advert_ms = 100;
    let mut rows = Vec::new();
    for keepalived in [false, true] {
        rows.push((keepalived, v3_series(keepalived, advert_ms, reps)));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nVRRPv3 drill: advert_int {advert_ms} ms, priorities 100/90, client every 20 ms / 200 ms timeout, {reps} reps; load {load}");
    for (keepalived, v) in &rows {
        let who = if *keepalived { "keepalived" } else { "fdfs-ha" };
        for f in [V3Fault::LinkDown, V3Fault::NodeCrash, V3Fault::VrrpOnly] {
            let mut g: Vec<f64> = v.iter().filter(|r| r.0 == f).map(|r| r.1).collect();
            stats(&format!("{who} {f:?} gap"), &mut g, "s");
            let mut n: Vec<f64> = v.iter().filter(|r| r.0 == f).map(|r| r.2 as f64).collect();
            stats(&format!("{who} {f:?} failed requests"), &mut n, "");
        }
    }
    for (_, v) in &rows {
        for (f, g, _) in v {
            assert!(*g < 2.0, "{f:?}: outage {g:.3}s over the 2 s bound");
        }
    }
}
