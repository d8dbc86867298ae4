use super::*;
use crate::vrrp::packet::{self, Advert, VRRP_GROUP};
use crate::vrrp::packet_v3::{self, AdvertV3};
use std::net::Ipv4Addr;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 100);
const US: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 21);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 22);

fn vip(a: Ipv4Addr) -> Vip {
    Vip {
        addr: IpAddr::V4(a),
        prefix: 24,
    }
}

fn state(a: Ipv4Addr, valid: Option<u32>, tstamp: u32) -> AddrState {
    AddrState {
        vip: vip(a),
        valid,
        tstamp,
    }
}

fn setup() -> Setup {
    let cfg: VrrpInstanceConfig = serde_json::from_value(serde_json::json!({
        "name": "VI_1", "interface": "eth0", "virtual_router_id": 33, "priority": 100,
        "version": 3, "advert_int": "100ms",
        "auth": {"type": "pass", "password": "secret1"},
        "virtual_ipaddress": ["192.168.3.100/24"]}))
    .unwrap();
    Setup {
        cfg,
        ifindex: 2,
        src: IpAddr::V4(US),
        json_log: false,
    }
}

#[test]
fn messages_round_trip_one_line_each_and_garbage_is_ignored() {
    for m in [Msg::Setup(Box::new(setup())), Msg::Held(true), Msg::Bye] {
        let line = m.encode();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with('\n'));
        assert_eq!(Msg::decode(line.trim_end()), Some(m));
    }
    let cut = Msg::Setup(Box::new(setup())).encode();
    assert_eq!(Msg::decode(&cut[..cut.len() / 2]), None);
    assert_eq!(Msg::decode("hello"), None);
}

#[test]
fn only_a_death_while_holding_vips_is_guarded() {
    // Bye ends the guard, whatever came before.
    let mut a = Attached::default();
    assert!(a.on_msg(Msg::Setup(Box::new(setup()))));
    assert!(a.on_msg(Msg::Held(true)));
    assert!(!a.on_msg(Msg::Bye));
    // EOF while holding: guard.
    let mut a = Attached::default();
    a.on_msg(Msg::Setup(Box::new(setup())));
    a.on_msg(Msg::Held(true));
    assert_eq!(a.on_eof(), Some(setup()));
    // EOF after the VIPs were released (Backup), or before any setup: nothing to do.
    let mut a = Attached::default();
    a.on_msg(Msg::Setup(Box::new(setup())));
    a.on_msg(Msg::Held(true));
    a.on_msg(Msg::Held(false));
    assert_eq!(a.on_eof(), None);
    let mut a = Attached::default();
    a.on_msg(Msg::Held(true));
    assert_eq!(a.on_eof(), None);
    // The latest setup (a reload) is the one guarded.
    let mut a = Attached::default();
    a.on_msg(Msg::Setup(Box::new(setup())));
    let mut s2 = setup();
    s2.cfg.virtual_ipaddress = vec!["192.168.3.101/24".into()];
    a.on_msg(Msg::Setup(Box::new(s2.clone())));
    a.on_msg(Msg::Held(true));
    assert_eq!(a.on_eof(), Some(s2));
}

#[test]
fn only_our_vips_with_a_lifetime_are_guarded_and_a_renewed_one_is_not_stale() {
    let other = Ipv4Addr::new(192, 168, 3, 101);
    let present = [
        state(US, None, 10),        // the node's own address
        state(VIP, Some(1), 500),   // ours, renewed by the dead daemon at 5.00 s
        state(other, Some(3), 400), // someone else's
    ];
    let g = guarded(&[vip(VIP)], &present);
    assert_eq!(g, vec![state(VIP, Some(1), 500)]);
    // Still there, same stamp: stale.
    assert_eq!(stale(&g, &[state(VIP, Some(0), 500)]), vec![vip(VIP)]);
    // A new run here renewed or re-added it: its stamp changed; not ours to delete.
    assert!(stale(&g, &[state(VIP, Some(1), 530)]).is_empty());
    // Expired or removed.
    assert!(stale(&g, &[state(US, None, 10)]).is_empty());
    // Re-added without a lifetime (by hand): never touched.
    assert!(stale(&g, &[state(VIP, None, 500)]).is_empty());
    // Present without a lifetime when the daemon died: not guarded at all.
    assert!(guarded(&[vip(VIP)], &[state(VIP, None, 500)]).is_empty());
}

#[test]
fn the_peers_first_advert_ends_the_wait_after_the_grace() {
    let t0 = Instant::now();
    let adv = Duration::from_millis(100);
    let mut w = Watch::new(t0, adv, 1);
    assert_eq!(grace(adv), Duration::from_millis(25));
    assert_eq!(grace(Duration::from_secs(1)), Duration::from_millis(250));
    assert_eq!(grace(Duration::from_secs(3)), Duration::from_millis(250));
    // Nothing heard: wait a tick at a time.
    assert_eq!(w.next(t0, true), Step::Wait(t0 + adv));
    let heard = t0 + Duration::from_millis(350);
    let peer = IpAddr::V4(PEER);
    w.heard_master(peer, heard);
    // A later advert does not push the deletion back.
    w.heard_master(IpAddr::V4(Ipv4Addr::new(192, 168, 3, 23)), heard + adv);
    let at = heard + Duration::from_millis(25);
    assert_eq!(w.next(heard, true), Step::Wait(at));
    assert_eq!(w.next(at, true), Step::Delete { master: peer });
    // Within one advert interval of the takeover.
    assert!(at - heard < adv);
    // Renewed meanwhile (a new run here): nothing to delete.
    assert!(matches!(w.next(at, false), Step::Exit(_)));
}

#[test]
fn the_wait_is_bounded_by_the_vips_lifetime() {
    let t0 = Instant::now();
    let w = Watch::new(t0, Duration::from_millis(100), 1);
    let end = t0 + Duration::from_secs(2);
    assert_eq!(
        w.next(end - Duration::from_millis(30), true),
        Step::Wait(end)
    );
    assert!(matches!(w.next(end, true), Step::Exit(_)));
    // Gone before: exit at once.
    assert!(matches!(w.next(t0, false), Step::Exit(_)));
    // 1 s adverts: lifetime 4 s, re-read every 250 ms.
    let w = Watch::new(t0, Duration::from_secs(1), 4);
    assert_eq!(
        w.next(t0, true),
        Step::Wait(t0 + Duration::from_millis(250))
    );
    assert!(matches!(
        w.next(t0 + Duration::from_secs(5), true),
        Step::Exit(_)
    ));
}

#[test]
fn adverts_from_this_node_or_at_priority_zero_are_not_a_takeover() {
    let own = [IpAddr::V4(US), IpAddr::V4(VIP)];
    assert!(peer_is_master(IpAddr::V4(PEER), 90, &own));
    assert!(peer_is_master(IpAddr::V4(PEER), 255, &own));
    assert!(!peer_is_master(IpAddr::V4(PEER), 0, &own));
    assert!(!peer_is_master(IpAddr::V4(US), 100, &own));
    assert!(!peer_is_master(IpAddr::V4(VIP), 100, &own));
}

fn checks(version3: bool, auth: Auth) -> Checks {
    Checks {
        version3,
        v2: Expect {
            vrid: 33,
            auth,
            adver_int: 1,
            addrs: vec![VIP],
            unicast_peers: Vec::new(),
            hmac_keys: Default::default(),
        },
        v3: ExpectV3 {
            vrid: 33,
            addrs: vec![IpAddr::V4(VIP)],
            unicast_peers: Vec::new(),
        },
        replay: ReplayGuard::default(),
    }
}

fn v2_packet(vrid: u8, priority: u8, password: &str, addrs: Vec<Ipv4Addr>) -> Vec<u8> {
    let adv = Advert {
        vrid,
        priority,
        adver_int: 1,
        auth: Auth::pass(password).unwrap(),
        addrs,
    };
    packet::encode_ipv4(PEER, VRRP_GROUP, 0, &packet::encode(&adv))
}

fn v3_packet(vrid: u8, priority: u8, addrs: Vec<IpAddr>) -> Vec<u8> {
    let adv = AdvertV3 {
        vrid,
        priority,
        max_adver_int: 10,
        addrs,
    };
    let msg = packet_v3::encode(&adv, IpAddr::V4(PEER), IpAddr::V4(VRRP_GROUP));
    packet::encode_ipv4(PEER, VRRP_GROUP, 0, &msg)
}

#[test]
fn the_instances_own_checks_decide_which_adverts_count() {
    let pass = Auth::pass("1111").unwrap();
    let mut c = checks(false, pass);
    let peer = IpAddr::V4(PEER);
    assert_eq!(
        c.accept(&v2_packet(33, 90, "1111", vec![VIP]), None, 0),
        Some((peer, 90))
    );
    // Another VRID, a wrong password, another address list: not our peer taking over.
    assert_eq!(
        c.accept(&v2_packet(34, 90, "1111", vec![VIP]), None, 0),
        None
    );
    assert_eq!(
        c.accept(&v2_packet(33, 90, "2222", vec![VIP]), None, 0),
        None
    );
    let other = Ipv4Addr::new(192, 168, 3, 101);
    assert_eq!(
        c.accept(&v2_packet(33, 90, "1111", vec![other]), None, 0),
        None
    );
    assert_eq!(c.accept(b"junk", None, 0), None);
    let mut c = checks(true, Auth::None);
    assert_eq!(
        c.accept(&v3_packet(33, 90, vec![IpAddr::V4(VIP)]), None, 0),
        Some((peer, 90))
    );
    assert_eq!(
        c.accept(&v3_packet(34, 90, vec![IpAddr::V4(VIP)]), None, 0),
        None
    );
    assert_eq!(
        c.accept(&v3_packet(33, 90, vec![IpAddr::V4(other)]), None, 0),
        None
    );
    // A v2 advert to a v3 instance.
    assert_eq!(
        c.accept(&v2_packet(33, 90, "1111", vec![VIP]), None, 0),
        None
    );
}

#[test]
fn hmac_adverts_count_once_with_a_valid_tag_and_a_fresh_sequence() {
    let key = b"0123456789abcdef-key-one".to_vec();
    let mut c = checks(false, Auth::hmac(0));
    c.v2.hmac_keys = crate::vrrp::auth_hmac::HmacKeys(vec![key.clone()]);
    let now_ms = 1_000_000_000;
    let signed = |seq: u64, key: &[u8]| {
        let adv = Advert {
            vrid: 33,
            priority: 90,
            adver_int: 1,
            auth: Auth::hmac(seq),
            addrs: vec![VIP],
        };
        let mut msg = packet::encode(&adv);
        let tag = crate::vrrp::auth_hmac::sign(key, PEER, &msg);
        msg.extend_from_slice(&tag);
        packet::encode_ipv4(PEER, VRRP_GROUP, 0, &msg)
    };
    let p = signed(now_ms, &key);
    assert_eq!(c.accept(&p, None, now_ms), Some((IpAddr::V4(PEER), 90)));
    // Replayed, signed with another key, or an old capture replayed to a fresh guard: no.
    assert_eq!(c.accept(&p, None, now_ms + 10), None);
    let other = b"0123456789abcdef-key-two";
    assert_eq!(
        c.accept(&signed(now_ms + 20, other), None, now_ms + 20),
        None
    );
    let mut fresh = checks(false, Auth::hmac(0));
    fresh.v2.hmac_keys = crate::vrrp::auth_hmac::HmacKeys(vec![key.clone()]);
    assert_eq!(fresh.accept(&p, None, now_ms + 3_600_000), None);
}
