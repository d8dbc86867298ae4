//! Issue 23.3 and 23.6: HMAC-authenticated adverts between two fdfs-ha nodes, in network
//! namespaces this test creates (needs root and iproute2; prints SKIP and passes otherwise).
//! Node 0 is 192.168.3.21 (priority 100), node 1 192.168.3.22 (priority 90), the forger is the
//! client namespace 192.168.3.50, VIP 192.168.3.100, VRID 33, advert_int 1 s.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "vrrp/harness.rs"]
mod harness;

use fdfs_ha::vrrp::auth_hmac::sign;
use fdfs_ha::vrrp::packet::{encode, encode_ipv4, Advert, Auth, VRRP_GROUP};
use harness::{outage, wait_until, HttpClient, Lab, VrrpOpts};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const K1: &str = "rotation-key-one-0123456789";
const K2: &str = "rotation-key-two-0123456789";
const NODE0: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 21);
const FORGER: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 50);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 100);

fn hmac(priority: u8, keys: &[&str]) -> VrrpOpts {
    let list: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    VrrpOpts {
        priority,
        auth_yaml: Some(format!("{{ type: hmac, keys: [{}] }}", list.join(", "))),
        ..Default::default()
    }
}

fn transitions(lab: &Lab, h: usize) -> usize {
    lab.log(h).matches("VRRP state change").count()
}

/// Raw IPv4 socket for protocol 112 in the client namespace, on a thread of its own.
fn in_client<T: Send + 'static>(
    lab: &Lab,
    f: impl FnOnce(socket2::Socket) -> T + Send + 'static,
) -> T {
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
        s.set_multicast_if_v4(&FORGER).unwrap();
        f(s)
    })
    .join()
    .unwrap()
}

fn inject(lab: &Lab, packets: Vec<Vec<u8>>) {
    in_client(lab, move |s| {
        let to: std::net::SocketAddr = "224.0.0.18:0".parse().unwrap();
        for p in packets {
            s.send_to(&p, &to.into()).unwrap();
        }
    })
}

/// One advert node 0 sent, as captured on the client's link (IP header included).
fn capture_from_node0(lab: &Lab) -> Vec<u8> {
    in_client(lab, |mut s| {
        s.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 18), &FORGER)
            .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let mut buf = [0u8; 2048];
            if let Ok(n) = std::io::Read::read(&mut s, &mut buf) {
                let bytes = buf[..n].to_vec();
                if bytes.len() > 20 && bytes[12..16] == NODE0.octets() {
                    return bytes;
                }
            }
        }
        panic!("no advert from node 0 captured");
    })
}

fn forged(priority: u8, src: Ipv4Addr, auth: Auth, key: Option<&str>) -> Vec<u8> {
    let adv = Advert {
        vrid: 33,
        priority,
        adver_int: 1,
        auth,
        addrs: vec![VIP],
    };
    let mut msg = encode(&adv);
    match key {
        Some(k) => {
            let tag = sign(k.as_bytes(), src, &msg);
            msg.extend(tag);
        }
        None => msg.extend([0xa5u8; 16]),
    }
    encode_ipv4(src, VRRP_GROUP, 0, &msg)
}

#[test]
fn forged_and_replayed_adverts_change_nothing_with_hmac() {
    skip_unless_ready!(false);
    let lab = Lab::new(2);
    lab.http_server(0);
    lab.http_server(1);
    let a = lab.start_fdfs(0, &hmac(100, &[K1]));
    assert!(
        wait_until(Duration::from_secs(8), || lab.has_vip(0)),
        "{}",
        lab.log(a)
    );
    let b = lab.start_fdfs(1, &hmac(90, &[K1]));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.vip_holders(), vec![0], "{}\n{}", lab.log(a), lab.log(b));
    let captured = capture_from_node0(&lab);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (ta, tb) = (transitions(&lab, a), transitions(&lab, b));
    let client = HttpClient::start(&lab, Duration::from_millis(20), Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let wrong = "not-our-key-0123456789abcdef";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // No key: a made-up tag.
        (
            "priority 255, no key",
            forged(255, FORGER, Auth::hmac(now_ms), None),
        ),
        // The Master's own address, leaving: the Backup would take over after Skew_Time.
        (
            "priority 0 as node 0, no key",
            forged(0, NODE0, Auth::hmac(now_ms + 5000), None),
        ),
        (
            "priority 255, wrong key",
            forged(255, FORGER, Auth::hmac(now_ms), Some(wrong)),
        ),
        (
            "priority 0 as node 0, wrong key",
            forged(0, NODE0, Auth::hmac(now_ms + 5000), Some(wrong)),
        ),
        // PASS with the password keepalived pairs use: the wrong auth type here.
        (
            "priority 255 PASS",
            forged(255, FORGER, Auth::pass("1111").unwrap(), None),
        ),
        ("replay of a captured valid advert", captured.clone()),
    ];
    for _ in 0..20 {
        inject(&lab, cases.iter().map(|(_, p)| p.clone()).collect());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Past node 1's Master_Down_Interval: a priority 0 obeyed would have moved the VIP by now.
    let mut holders_seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        let h = lab.vip_holders();
        if holders_seen.last() != Some(&h) {
            holders_seen.push(h);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, failed) = outage(&client.since(t0));
    drop(client);
    let (la, lb) = (lab.log(a), lab.log(b));
    assert_eq!(holders_seen, vec![vec![0]], "\n{la}\n{lb}");
    assert_eq!(failed, 0, "failed probes");
    assert_eq!(
        (transitions(&lab, a), transitions(&lab, b)),
        (ta, tb),
        "state changes:\n{la}\n{lb}"
    );
    for needle in ["HMAC tag missing", "auth type 1 differs from ours (128)"] {
        assert!(
            la.contains(needle) && lb.contains(needle),
            "{needle}:\n{la}\n{lb}"
        );
    }
    assert!(lb.contains("replayed advert"), "{lb}");
    eprintln!(
        "{} forged cases x 20: 0 state changes, {failed} failed probes",
        cases.len()
    );

    // The replay guard is what lets the Backup take over from a dead Master whose adverts a
    // forger keeps replaying: without it, each replay would restart the Master_Down_Timer.
    lab.kill9(a);
    let dead = Instant::now();
    while dead.elapsed() < Duration::from_secs(6) {
        inject(&lab, vec![captured.clone()]);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        lab.has_vip(1),
        "Backup held hostage by replays:\n{}",
        lab.log(b)
    );
}

#[test]
fn hmac_key_rotation_is_applied_in_place_without_a_flap() {
    skip_unless_ready!(false);
    let lab = Lab::new(2);
    let a = lab.start_fdfs(0, &hmac(100, &[K1]));
    assert!(
        wait_until(Duration::from_secs(8), || lab.has_vip(0)),
        "{}",
        lab.log(a)
    );
    let b = lab.start_fdfs(1, &hmac(90, &[K1]));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.vip_holders(), vec![0]);
    let (ta, tb) = (transitions(&lab, a), transitions(&lab, b));
    // Accept both everywhere, sign with the new one everywhere, drop the old one: at every
    // step the key each node signs with is one the other accepts, so no advert is dropped.
    let steps: [(usize, usize, &[&str]); 5] = [
        (b, 1, &[K1, K2]),
        (a, 0, &[K1, K2]),
        (a, 0, &[K2, K1]),
        (b, 1, &[K2, K1]),
        (a, 0, &[K2]),
    ];
    for (h, node, keys) in steps {
        let prio = if node == 0 { 100 } else { 90 };
        lab.reload_fdfs(h, node, &hmac(prio, keys));
        // Past the Backup's Master_Down_Interval: dropped adverts would have moved the VIP.
        let end = Instant::now() + Duration::from_millis(4500);
        while Instant::now() < end {
            assert_eq!(lab.vip_holders(), vec![0], "after {keys:?} on node {node}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    lab.reload_fdfs(b, 1, &hmac(90, &[K2]));
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(lab.vip_holders(), vec![0]);
    let (la, lb) = (lab.log(a), lab.log(b));
    assert_eq!(
        (transitions(&lab, a), transitions(&lab, b)),
        (ta, tb),
        "\n{la}\n{lb}"
    );
    assert!(
        !la.contains("HMAC tag") && !lb.contains("HMAC tag"),
        "\n{la}\n{lb}"
    );
    assert!(la.contains("applied in place") && lb.contains("applied in place"));
}
