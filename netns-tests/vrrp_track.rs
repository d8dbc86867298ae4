//! Issue 23.5: the tracked service killed on the Master, fdfs-ha against keepalived 2.2.7 in the
//! same run (needs root, iproute2 and keepalived; prints SKIP and passes otherwise).
//!
//!   flock /work/heavy.lock cargo test --test vrrp_track -- --nocapture
//!   VRRP_TRACK_REPS=10 ...   (default 3 kills per implementation)
//!
//! Two nodes of one implementation, priorities 100/90, advert_int 1 s, PASS auth, both tracking
//! their node's web server on 127.0.0.1:80 with weight -20 (checked every second, fall 1,
//! rise 1; keepalived through a bash /dev/tcp connect). The client fetches http://VIP/ every
//! 20 ms. At a random phase the Master's web server stops listening (connections refused); the
//! gap is the client's outage. Then the server comes back and the Master preempts back.
//!
//! keepalived, as RFC 3768 says, has its Backup discard the Master's lowered advert (80 < 90)
//! and wait out the Master_Down_Interval; fdfs-ha's Backup takes over after its Skew_Time
//! (see src/vrrp/fsm.rs "fast preemption").
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "vrrp/harness.rs"]
mod harness;

use harness::{outage, settle, wait_until, HttpClient, Lab, VrrpOpts};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Requests in flight when the server is killed count toward the outage.
const IN_FLIGHT: Duration = Duration::from_millis(250);
/// The probe's interval x fall (1 s x 1).
const DETECTION: Duration = Duration::from_secs(1);
/// Skew_Time of the Backup, priority 90: (256 - 90) / 256 s.
const SKEW_90: Duration = Duration::from_millis(648);
/// Bound on every fdfs-ha gap. Detection takes at most interval x fall (the probe's next check
/// after the death fails, fall 1); the Master advertises 80 at once; its Backup takes over
/// Skew_Time later and sends its gratuitous ARPs `garp.preempt_delay` (50 ms) after its first
/// advert: 1.70 s at most, as measured (2026-12-07, 15 kills). 0.75 s of slack covers those
/// 50 ms, the client's 20 ms period and scheduling on a loaded shared machine. Under the RFC
/// rule the Backup's timer runs 3 x advert_int + Skew_Time from the last advert it accepted
/// (at most 1 s before the drop), so every gap was >= 2.65 s (3.40-4.54 s measured): above
/// this bound (2.40 s) whatever the phase.
const BOUND: Duration = Duration::from_millis(DETECTION.as_millis() as u64 + 648 + 750);

struct Series {
    /// Client outage per kill, seconds.
    gaps: Vec<f64>,
    /// Failed requests while the Master preempted back, per return.
    back_failed: Vec<usize>,
}

fn series(keepalived: bool, reps: usize) -> Series {
    let who = if keepalived { "keepalived" } else { "fdfs-ha" };
    let lab = Lab::new(2);
    let web0 = lab.http_server(0);
    let _web1 = lab.http_server(1);
    let client = HttpClient::start(&lab, Duration::from_millis(20), Duration::from_millis(200));
    let o = |priority| VrrpOpts {
        priority,
        track: true,
        ..Default::default()
    };
    let a = if keepalived {
        lab.start_keepalived(0, &o(100), true)
    } else {
        lab.start_fdfs(0, &o(100))
    };
    assert!(wait_until(Duration::from_secs(10), || lab.has_vip(0)));
    let b = if keepalived {
        lab.start_keepalived(1, &o(90), false)
    } else {
        lab.start_fdfs(1, &o(90))
    };
    settle(&lab, &client, 0, Duration::from_secs(2));
    let mut out = Series {
        gaps: Vec::new(),
        back_failed: Vec::new(),
    };
    for _ in 0..reps {
        let ms = rand::thread_rng().gen_range(0..1000);
        std::thread::sleep(Duration::from_millis(ms));
        let t = Instant::now();
        web0.enabled.store(false, Ordering::SeqCst);
        let ok = wait_until(Duration::from_secs(15), || {
            let s = client.since(Instant::now() - Duration::from_millis(1000));
            lab.vip_holders() == vec![1] && s.len() > 20 && s.iter().all(|x| x.ok)
        });
        assert!(
            ok,
            "{who}: node 1 did not take over\n{}\n{}",
            lab.log(a),
            lab.log(b)
        );
        let (gap, failed) = outage(&client.since(t - IN_FLIGHT));
        out.gaps.push(gap.as_secs_f64());
        let t_back = Instant::now();
        web0.enabled.store(true, Ordering::SeqCst);
        settle(&lab, &client, 0, Duration::from_secs(1));
        let back_samples = client.since(t_back);
        let back = outage(&back_samples).1;
        out.back_failed.push(back);
        println!(
            "{who} web server killed: gap {:.3}s, {failed} failed; back: {back} failed {}",
            gap.as_secs_f64(),
            harness::describe_failures(&back_samples)
        );
    }
    if !keepalived {
        let log = lab.log(b);
        assert!(log.contains("preempting a lower-priority master"), "{log}");
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    s[s.len() / 2]
}

fn show(who: &str, s: &Series) {
    let (lo, hi) = s
        .gaps
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), g| (l.min(*g), h.max(*g)));
    println!(
        "{who:<10} gap median {:.3}s range {lo:.3}-{hi:.3}s (n={}) {:?}; preempt-back failed {:?}",
        median(&s.gaps),
        s.gaps.len(),
        s.gaps.iter().map(|g| format!("{g:.3}")).collect::<Vec<_>>(),
        s.back_failed
    );
}

#[test]
fn tracked_service_killed_gap_is_at_most_keepalived_s() {
    skip_unless_ready!(true);
    let reps: usize = std::env::var("VRRP_TRACK_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let fdfs = series(false, reps);
    let keepalived = series(true, reps);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\ntracked web server killed on the Master: priorities 100/90, advert_int 1 s, weight -20, interval 1 s, fall 1; client every 20 ms; {reps} reps; load {}", load.trim());
    show("fdfs-ha", &fdfs);
    show("keepalived", &keepalived);
    for g in &fdfs.gaps {
        assert!(
            *g <= BOUND.as_secs_f64(),
            "fdfs-ha gap {g:.3}s over {BOUND:?} (interval x fall + Skew_Time {SKEW_90:?} + 0.75 s)"
        );
    }
    assert!(
        median(&fdfs.gaps) <= median(&keepalived.gaps),
        "fdfs-ha's median gap is above keepalived's: {:?} vs {:?}",
        fdfs.gaps,
        keepalived.gaps
    );
    assert!(fdfs.gaps.iter().all(|g| *g > 0.0), "the kill cost nothing?");
}
