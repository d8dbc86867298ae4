//! fdfs-ha VRRP against real keepalived, in network namespaces this test creates (needs root,
//! iproute2 and keepalived; prints SKIP and passes otherwise). Node 0 is 192.168.3.21, node 1
//! 192.168.3.22, VIP 192.168.3.100, VRID 33, advert_int 1, PASS "1111".
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "vrrp/harness.rs"]
mod harness;

use harness::{keepalived_complaints, wait_until, Lab, VrrpOpts};
use std::time::Duration;

const TAKEOVER: Duration = Duration::from_secs(8);

fn assert_exactly(lab: &Lab, holder: usize, what: &str, logs: &[usize]) {
    let ok = wait_until(TAKEOVER, || lab.vip_holders() == vec![holder]);
    if !ok {
        for h in logs {
            eprintln!("---- log {h}:\n{}", lab.log(*h));
        }
    }
    assert!(
        ok,
        "{what}: VIP holders {:?}, want only node {holder}",
        lab.vip_holders()
    );
    // ...and it stays that way for a few adverts.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(lab.vip_holders(), vec![holder], "{what}: not stable");
}

fn assert_no_complaints(lab: &Lab, keepalived: usize) {
    let log = lab.log(keepalived);
    let c = keepalived_complaints(&log);
    assert!(
        c.is_empty(),
        "keepalived complained about our packets:\n{}",
        c.join("\n")
    );
}

#[test]
fn fdfs_master_keepalived_backup_failover_preempt_back_and_graceful_stop() {
    skip_unless_ready!(true);
    let lab = Lab::new(2);
    let a = lab.start_fdfs(0, &VrrpOpts::default());
    assert!(
        wait_until(TAKEOVER, || lab.has_vip(0)),
        "fdfs-ha alone did not become MASTER:\n{}",
        lab.log(a)
    );
    let k = lab.start_keepalived(
        1,
        &VrrpOpts {
            priority: 90,
            ..Default::default()
        },
        false,
    );
    assert_exactly(&lab, 0, "fdfs-ha MASTER + keepalived BACKUP", &[a, k]);

    // Master killed: keepalived takes over. The dead node's VIP carries a kernel lifetime that
    // only the live process renews, so it disappears by itself (4 x advert_int: after the
    // takeover, issue 23.2).
    lab.kill9(a);
    assert!(
        wait_until(TAKEOVER, || lab.has_vip(1)),
        "keepalived did not take over:\n{}",
        lab.log(k)
    );
    assert!(
        wait_until(Duration::from_secs(4), || !lab.has_vip(0)),
        "the killed node's VIP did not expire"
    );

    // A VIP left by some earlier run without a lifetime (planted here) is cleared at start-up;
    // then fdfs-ha waits as BACKUP and preempts.
    harness::run(
        "ip",
        &[
            "-n",
            lab.node(0),
            "addr",
            "add",
            harness::VIP_CIDR,
            "dev",
            "eth0",
        ],
    );
    let a2 = lab.start_fdfs(0, &VrrpOpts::default());
    assert_exactly(&lab, 0, "fdfs-ha preempted back", &[a2, k]);
    assert!(
        lab.log(a2).contains("removing VIP left on the interface"),
        "{}",
        lab.log(a2)
    );

    // Graceful stop: keepalived takes over, fdfs-ha releases and exits.
    lab.sigterm(a2);
    assert_eq!(
        lab.wait_exit(a2, Duration::from_secs(6)),
        Some(0),
        "{}",
        lab.log(a2)
    );
    assert_exactly(&lab, 1, "after graceful stop", &[a2, k]);
    let log = lab.log(a2);
    assert!(
        log.contains("handover: new master 192.168.3.22 heard"),
        "{log}"
    );
    assert_no_complaints(&lab, k);
}

#[test]
fn keepalived_master_fdfs_backup_takes_over_and_gives_back() {
    skip_unless_ready!(true);
    let lab = Lab::new(2);
    let k = lab.start_keepalived(0, &VrrpOpts::default(), true);
    assert!(
        wait_until(TAKEOVER, || lab.has_vip(0)),
        "keepalived alone did not become MASTER:\n{}",
        lab.log(k)
    );
    let b = lab.start_fdfs(
        1,
        &VrrpOpts {
            priority: 90,
            ..Default::default()
        },
    );
    assert_exactly(&lab, 0, "keepalived MASTER + fdfs-ha BACKUP", &[k, b]);
    assert_no_complaints(&lab, k);

    // keepalived dies with its host: kill -9 and drop its address like a dead box would.
    lab.kill9(k);
    harness::run(
        "ip",
        &[
            "-n",
            lab.node(0),
            "addr",
            "del",
            harness::VIP_CIDR,
            "dev",
            "eth0",
        ],
    );
    assert_exactly(&lab, 1, "fdfs-ha took over", &[b]);

    // keepalived returns with preempt and higher priority: fdfs-ha yields.
    let k2 = lab.start_keepalived(0, &VrrpOpts::default(), false);
    assert_exactly(&lab, 0, "keepalived preempted back", &[k2, b]);
    assert!(
        lab.log(b).contains("peer 192.168.3.21 higher priority"),
        "{}",
        lab.log(b)
    );
    assert_no_complaints(&lab, k2);
}

#[test]
fn fdfs_nopreempt_keeps_backup_role_then_takes_over_from_dead_keepalived() {
    skip_unless_ready!(true);
    let lab = Lab::new(2);
    let k = lab.start_keepalived(
        1,
        &VrrpOpts {
            priority: 90,
            ..Default::default()
        },
        true,
    );
    assert!(wait_until(TAKEOVER, || lab.has_vip(1)), "{}", lab.log(k));
    // Higher priority but nopreempt: must not take the VIP from a live Master.
    let a = lab.start_fdfs(
        0,
        &VrrpOpts {
            preempt: false,
            ..Default::default()
        },
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        lab.vip_holders(),
        vec![1],
        "nopreempt fdfs-ha took over:\n{}",
        lab.log(a)
    );
    lab.kill9(k);
    harness::run(
        "ip",
        &[
            "-n",
            lab.node(1),
            "addr",
            "del",
            harness::VIP_CIDR,
            "dev",
            "eth0",
        ],
    );
    assert_exactly(&lab, 0, "fdfs-ha took over from dead keepalived", &[a]);
    // keepalived (lower priority, preempt irrelevant) returns as BACKUP: fdfs-ha keeps the VIP.
    let k2 = lab.start_keepalived(
        1,
        &VrrpOpts {
            priority: 90,
            ..Default::default()
        },
        false,
    );
    assert_exactly(&lab, 0, "fdfs-ha kept the VIP", &[a, k2]);
    assert_no_complaints(&lab, k2);
}

#[test]
fn mismatched_password_and_vrid_are_logged_never_obeyed() {
    skip_unless_ready!(true);
    let lab = Lab::new(2);
    // Wrong password on keepalived's side: each side drops the other's adverts and both
    // become MASTER (what keepalived does too); we log and count the drop.
    let a = lab.start_fdfs(0, &VrrpOpts::default());
    let k = lab.start_keepalived(
        1,
        &VrrpOpts {
            priority: 90,
            password: "2222".into(),
            ..Default::default()
        },
        true,
    );
    assert!(
        wait_until(TAKEOVER, || lab.vip_holders() == vec![0, 1]),
        "{}\n{}",
        lab.log(a),
        lab.log(k)
    );
    assert!(
        wait_until(Duration::from_secs(3), || lab
            .log(a)
            .contains("auth password does not match ours")),
        "{}",
        lab.log(a)
    );
    assert!(lab.log(k).contains("invalid passwd"), "{}", lab.log(k));
    lab.kill9(k);
    lab.kill9(a);

    // Wrong VRID: likewise ignored by both, logged by us.
    let lab = Lab::new(2);
    let a = lab.start_fdfs(
        0,
        &VrrpOpts {
            priority: 90,
            ..Default::default()
        },
    );
    let k = lab.start_keepalived(
        1,
        &VrrpOpts {
            vrid: 34,
            ..Default::default()
        },
        true,
    );
    assert!(
        wait_until(TAKEOVER, || lab.vip_holders() == vec![0, 1]),
        "{}\n{}",
        lab.log(a),
        lab.log(k)
    );
    assert!(
        wait_until(Duration::from_secs(3), || lab
            .log(a)
            .contains("VRID 34 is not configured here")),
        "{}",
        lab.log(a)
    );
}

#[test]
fn vip_removed_by_someone_else_is_put_back() {
    skip_unless_ready!(false);
    let lab = Lab::new(1);
    let a = lab.start_fdfs(0, &VrrpOpts::default());
    assert!(wait_until(TAKEOVER, || lab.has_vip(0)), "{}", lab.log(a));
    harness::run(
        "ip",
        &[
            "-n",
            lab.node(0),
            "addr",
            "del",
            harness::VIP_CIDR,
            "dev",
            "eth0",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab.has_vip(0)),
        "VIP not restored:\n{}",
        lab.log(a)
    );
    // The warning may reach the log file a moment after the address is back.
    assert!(
        wait_until(Duration::from_secs(2), || lab
            .log(a)
            .contains("removed from the interface by someone else")),
        "{}",
        lab.log(a)
    );
}

#[test]
fn unicast_peers_elect_one_master_and_fail_over() {
    skip_unless_ready!(false);
    let lab = Lab::new(2);
    let a = lab.start_fdfs(
        0,
        &VrrpOpts {
            unicast_peers: vec!["192.168.3.22".into()],
            ..Default::default()
        },
    );
    assert!(wait_until(TAKEOVER, || lab.has_vip(0)), "{}", lab.log(a));
    let b = lab.start_fdfs(
        1,
        &VrrpOpts {
            priority: 90,
            unicast_peers: vec!["192.168.3.21".into()],
            ..Default::default()
        },
    );
    assert_exactly(&lab, 0, "unicast: one master", &[a, b]);
    lab.kill9(a);
    assert!(wait_until(TAKEOVER, || lab.has_vip(1)), "{}", lab.log(b));
}

#[test]
fn missing_capabilities_are_reported_clearly() {
    skip_unless_ready!(false);
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: setpriv not installed");
        return;
    }
    let lab = Lab::new(1);
    let (conf, _) = lab.fdfs_config(0, &VrrpOpts::default());
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.node(0),
            "setpriv",
            "--inh-caps",
            "-net_raw,-net_admin",
            "--bounding-set",
            "-net_raw,-net_admin",
            env!("CARGO_BIN_EXE_fdfs-ha"),
            "run",
            "-c",
        ])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("CAP_NET_ADMIN"),
        "{err}"
    );
    assert!(!lab.has_vip(0));
}

/// Sends raw VRRP packets from the client namespace (never from the initial one).
fn inject(lab: &Lab, packets: Vec<Vec<u8>>) {
    let ns = lab.client_ns().to_string();
    std::thread::spawn(move || {
        harness::enter_netns(&ns);
        harness::assert_not_initial_netns();
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(112)),
        )
        .unwrap();
        s.set_header_included_v4(true).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        s.set_multicast_if_v4(&std::net::Ipv4Addr::new(192, 168, 3, 50))
            .unwrap();
        let to: std::net::SocketAddr = "224.0.0.18:0".parse().unwrap();
        for p in packets {
            s.send_to(&p, &to.into()).unwrap();
        }
    })
    .join()
    .unwrap();
}

#[test]
fn invalid_adverts_are_dropped_counted_by_reason_and_never_obeyed() {
    use fdfs_ha::vrrp::packet::{encode, encode_ipv4, Advert, Auth};
    use std::net::Ipv4Addr;
    skip_unless_ready!(false);
    let lab = Lab::new(1);
    let a = lab.start_fdfs(0, &VrrpOpts::default());
    assert!(wait_until(TAKEOVER, || lab.has_vip(0)), "{}", lab.log(a));
    let src = Ipv4Addr::new(192, 168, 3, 50);
    let vip = Ipv4Addr::new(192, 168, 3, 100);
    // Every one of these would make the Master yield (priority 254) if it were obeyed.
    let good = Advert {
        vrid: 33,
        priority: 254,
        adver_int: 1,
        auth: Auth::pass("1111").unwrap(),
        addrs: vec![vip],
    };
    let pkt = |adv: &Advert| encode_ipv4(src, fdfs_ha::vrrp::packet::VRRP_GROUP, 0, &encode(adv));
    let mut ttl = pkt(&good);
    ttl[8] = 64;
    let mut csum = pkt(&good);
    csum[26] ^= 0xff;
    let mut version = pkt(&good);
    version[20] = 0x31;
    let bad = vec![
        ttl,
        csum,
        version,
        pkt(&Advert {
            vrid: 34,
            ..good.clone()
        }),
        pkt(&Advert {
            auth: Auth::pass("2222").unwrap(),
            ..good.clone()
        }),
        pkt(&Advert {
            auth: Auth::None,
            ..good.clone()
        }),
        // (Another advert_int with the right password is no longer here: it is dropped but
        // still runs the election, issue 26.2; see vrrp_peers.rs.)
    ];
    for _ in 0..3 {
        inject(&lab, bad.clone());
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        lab.vip_holders(),
        vec![0],
        "an invalid advert was obeyed:\n{}",
        lab.log(a)
    );
    let log = lab.log(a);
    for reason in [
        "IP TTL 64 != 255",
        "VRRP checksum invalid",
        "VRRP version 3 is not the configured one",
        "VRID 34 is not configured here",
        "auth password does not match ours",
        "auth type 0 differs from ours (1)",
    ] {
        assert!(
            log.contains(reason),
            "no drop logged for {reason:?}:\n{log}"
        );
        // Rate limit: one line per reason although each was sent 3 times.
        assert_eq!(
            log.matches(reason).count(),
            1,
            "{reason:?} not rate-limited:\n{log}"
        );
    }
    // The same advert, valid, is obeyed: the Master yields (so the drops above were real).
    inject(&lab, vec![pkt(&good)]);
    assert!(
        wait_until(Duration::from_secs(2), || !lab.has_vip(0)),
        "valid advert not obeyed:\n{log}"
    );
}

/// Injects `packets` from the client namespace and returns the gratuitous ARPs for the VIP seen
/// on the client's link within `listen` afterwards (sender MAC of each).
fn inject_and_capture_garps(lab: &Lab, packets: Vec<Vec<u8>>, listen: Duration) -> Vec<[u8; 6]> {
    use pnet::datalink::{self, Channel};
    let ns = lab.client_ns().to_string();
    std::thread::spawn(move || {
        harness::enter_netns(&ns);
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == "eth0")
            .unwrap();
        let cfg = datalink::Config {
            read_timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        };
        let Channel::Ethernet(_tx, mut rx) = datalink::channel(&iface, cfg).unwrap() else {
            panic!("not ethernet")
        };
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(112)),
        )
        .unwrap();
        s.set_header_included_v4(true).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        s.set_multicast_if_v4(&std::net::Ipv4Addr::new(192, 168, 3, 50))
            .unwrap();
        let to: std::net::SocketAddr = "224.0.0.18:0".parse().unwrap();
        harness::assert_not_initial_netns();
        for p in packets {
            s.send_to(&p, &to.into()).unwrap();
        }
        let end = std::time::Instant::now() + listen;
        let mut seen = Vec::new();
        while std::time::Instant::now() < end {
            if let Ok(f) = rx.next() {
                // Ethernet broadcast, ARP request, sender IP == target IP == VIP.
                if f.len() >= 42
                    && f[0..6] == [0xff; 6]
                    && f[12..14] == [0x08, 0x06]
                    && f[20..22] == [0, 1]
                    && f[28..32] == [192, 168, 3, 100]
                    && f[38..42] == [192, 168, 3, 100]
                {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&f[22..28]);
                    seen.push(mac);
                }
            }
        }
        seen
    })
    .join()
    .unwrap()
}

#[test]
fn master_hearing_lower_priority_resends_gratuitous_arps() {
    use fdfs_ha::vrrp::packet::{encode, encode_ipv4, Advert, Auth, VRRP_GROUP};
    use std::net::Ipv4Addr;
    skip_unless_ready!(false);
    let lab = Lab::new(1);
    // Every link event in node 0 while it sends its bursts: a packet socket opened promiscuous
    // per burst (pnet's default) shows up here as RTM_NEWLINK twice per burst.
    let mut monitor = std::process::Command::new("ip")
        .args(["-n", lab.node(0), "-o", "monitor", "link"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ip monitor");
    let a = lab.start_fdfs(0, &VrrpOpts::default());
    assert!(wait_until(TAKEOVER, || lab.has_vip(0)), "{}", lab.log(a));
    // Past the second GARP burst (5 s after becoming Master), the link is quiet.
    std::thread::sleep(Duration::from_millis(5500));
    let quiet = inject_and_capture_garps(&lab, vec![], Duration::from_millis(1200));
    assert!(quiet.is_empty(), "unexpected GARPs: {quiet:?}");
    // A lower-priority "Master" appears (a split brain healing): node 0 re-announces the VIP.
    let lower = Advert {
        vrid: 33,
        priority: 50,
        adver_int: 1,
        auth: Auth::pass("1111").unwrap(),
        addrs: vec![Ipv4Addr::new(192, 168, 3, 100)],
    };
    let pkt = encode_ipv4(
        Ipv4Addr::new(192, 168, 3, 50),
        VRRP_GROUP,
        0,
        &encode(&lower),
    );
    let garps = inject_and_capture_garps(&lab, vec![pkt.clone()], Duration::from_millis(500));
    assert_eq!(
        garps.len(),
        5,
        "want one burst of 5 GARPs (keepalived default), got {garps:?}"
    );
    assert!(
        garps.iter().all(|m| *m == [0x02, 0, 0, 0, 0x03, 0x21]),
        "{garps:?}"
    );
    assert_eq!(lab.vip_holders(), vec![0]);
    // Issue 23.4, no amplifier: 20 such adverts at once get one answer (one burst of 5), not 20.
    std::thread::sleep(Duration::from_millis(1200));
    let flood = inject_and_capture_garps(&lab, vec![pkt; 20], Duration::from_millis(800));
    assert_eq!(flood.len(), 5, "20 lower-priority adverts: {flood:?}");
    // Four bursts sent (takeover, +5 s, lower priority heard twice): no promiscuity change, no link
    // event, and the interface is not promiscuous now.
    let _ = monitor.kill(); // our own child, by handle
    let events = {
        use std::io::Read;
        let mut out = String::new();
        let _ = monitor
            .stdout
            .take()
            .map(|mut o| o.read_to_string(&mut out));
        let _ = monitor.wait();
        out
    };
    assert!(events.trim().is_empty(), "link events: {events}");
    let link = harness::run("ip", &["-n", lab.node(0), "-d", "link", "show", "eth0"]);
    assert!(link.contains("promiscuity 0"), "{link}");
}

/// Transitions logged so far by process `h`: fdfs-ha's one line per state change, or
/// keepalived's `Entering ... STATE` lines.
fn transitions(lab: &Lab, h: usize) -> usize {
    let log = lab.log(h);
    log.matches("VRRP state change").count() + log.matches("Entering ").count()
}

/// Issue 26.1: the Master's config is rewritten and SIGHUP'd; each change is applied in place.
/// Every step waits past the peer's Master_Down_Interval (3.65 s) so a peer that dropped the
/// new adverts would have taken over by then.
fn reload_applied_in_place(peer_is_keepalived: bool) {
    let lab = Lab::new(2);
    let a = lab.start_fdfs(0, &VrrpOpts::default());
    assert!(wait_until(TAKEOVER, || lab.has_vip(0)), "{}", lab.log(a));
    let peer = VrrpOpts {
        priority: 90,
        ..Default::default()
    };
    let b = if peer_is_keepalived {
        lab.start_keepalived(1, &peer, false)
    } else {
        lab.start_fdfs(1, &peer)
    };
    assert_exactly(&lab, 0, "before the reloads", &[a, b]);
    std::thread::sleep(Duration::from_secs(1));
    let (ta, tb) = (transitions(&lab, a), transitions(&lab, b));
    let extra = "192.168.3.101/24".to_string();
    let mut steps = vec![
        (110, vec![], "priority 100 -> 110"),
        (95, vec![], "priority 110 -> 95"),
        (100, vec![], "priority 95 -> 100"),
    ];
    // keepalived drops adverts whose address list differs from its own (RFC 3768 7.1), so a VIP
    // added on one side only is a configuration mismatch there (issue 26.2), not a reload row.
    if !peer_is_keepalived {
        steps.push((100, vec![extra.clone()], "VIPs added"));
        steps.push((100, vec![], "VIPs removed"));
    }
    for (n, (priority, extra_vips, words)) in steps.into_iter().enumerate() {
        let has_extra = !extra_vips.is_empty();
        let o = VrrpOpts {
            priority,
            extra_vips,
            ..Default::default()
        };
        lab.reload_fdfs(a, 0, &o);
        assert!(
            wait_until(Duration::from_secs(3), || lab
                .log(a)
                .matches("applied in place")
                .count()
                == n + 1),
            "step {words}: not applied in place:\n{}",
            lab.log(a)
        );
        assert!(lab.log(a).contains(words), "{}", lab.log(a));
        assert!(
            wait_until(Duration::from_secs(2), || lab.has_addr(0, "192.168.3.101")
                == has_extra),
            "step {words}: second VIP on node 0 should be {has_extra}"
        );
        std::thread::sleep(Duration::from_millis(4500));
        assert_eq!(lab.vip_holders(), vec![0], "step {words}");
        assert!(!lab.has_addr(1, "192.168.3.101"), "step {words}");
        assert_eq!(
            (transitions(&lab, a), transitions(&lab, b)),
            (ta, tb),
            "step {words}: a transition happened\n{}\n{}",
            lab.log(a),
            lab.log(b)
        );
    }
    // A reload below the peer: it preempts, make-before-break.
    lab.reload_fdfs(
        a,
        0,
        &VrrpOpts {
            priority: 80,
            ..Default::default()
        },
    );
    assert_exactly(&lab, 1, "after a reload below the peer", &[a, b]);
    assert!(!lab.log(a).contains("instance stopped"), "{}", lab.log(a));
}

#[test]
fn reload_is_applied_in_place_with_fdfs_peer() {
    skip_unless_ready!(false);
    reload_applied_in_place(false);
}

#[test]
fn reload_is_applied_in_place_with_keepalived_peer() {
    skip_unless_ready!(true);
    reload_applied_in_place(true);
}
