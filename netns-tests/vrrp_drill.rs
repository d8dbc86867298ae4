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

use harness::{outage, wait_until, HttpClient, Lab, VrrpOpts};
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

/// Waits until node `holder` alone has the VIP and the client has been served for `quiet`.
fn settle(lab: &Lab, client: &HttpClient, holder: usize, quiet: Duration) {
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
