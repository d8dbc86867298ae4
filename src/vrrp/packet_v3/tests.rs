//! v3 codec tests: keepalived 2.2.7 `vrrp_version 3` captures (tests/vectors/
//! keepalived-v3-vectors.txt) and RFC 5798 §5 / §7.1 rules.

use super::*;
use crate::vrrp::packet::{encode_ipv4, VRRP_GROUP};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const LB1: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 21);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 100);
const LB1_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x321);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 0x100);

/// (vector, IPv4 packet hex, IP id, priority)
const V4: &[(&str, &str, u16, u8)] = &[
    (
        "v3-1",
        "45c0002000160000ff7016c8c0a80315e000001231216401000a027ac0a80364",
        0x16,
        100,
    ),
    (
        "v3-2",
        "45c0002000110000ff7016cdc0a80315e000001231210001000a667ac0a80364",
        0x11,
        0,
    ),
];
/// (vector, VRRP message hex, priority), from fe80::ff:fe00:321 to ff02::12.
const V6: &[(&str, &str, u8)] = &[
    (
        "v3-3",
        "31226401000a6c8ffd000003000000000000000000000100",
        100,
    ),
    (
        "v3-4",
        "31220001000ad08ffd000003000000000000000000000100",
        0,
    ),
];

fn v4_expect() -> ExpectV3 {
    ExpectV3 {
        vrid: 33,
        addrs: vec![VIP4.into()],
        unicast_peers: vec![],
    }
}

#[test]
fn keepalived_v3_ipv4_captures_decode_and_encode_byte_for_byte() {
    for &(n, h, id, prio) in V4 {
        let acc = v4_expect().check_ipv4(&hex(h)).unwrap();
        let want = AdvertV3 {
            vrid: 33,
            priority: prio,
            max_adver_int: 10,
            addrs: vec![VIP4.into()],
        };
        assert_eq!(acc.advert, want, "{n}");
        assert_eq!(acc.src, IpAddr::V4(LB1), "{n}");
        assert!(!acc.addr_list_mismatch, "{n}");
        assert_eq!(acc.advert.interval(), Duration::from_millis(100), "{n}");
        let msg = encode(&want, LB1.into(), VRRP_GROUP.into());
        assert_eq!(encode_ipv4(LB1, VRRP_GROUP, id, &msg), hex(h), "{n}");
    }
}

#[test]
fn keepalived_v3_ipv6_captures_decode_and_encode_byte_for_byte() {
    let ex = ExpectV3 {
        vrid: 34,
        addrs: vec![VIP6.into()],
        unicast_peers: vec![],
    };
    for &(n, h, prio) in V6 {
        let acc = ex.check_ipv6(LB1_LL, VRRP_GROUP_V6, 255, &hex(h)).unwrap();
        let want = AdvertV3 {
            vrid: 34,
            priority: prio,
            max_adver_int: 10,
            addrs: vec![VIP6.into()],
        };
        assert_eq!(acc.advert, want, "{n}");
        assert_eq!(
            encode(&want, LB1_LL.into(), VRRP_GROUP_V6.into()),
            hex(h),
            "{n}"
        );
    }
}

#[test]
fn rfc5798_5_2_8_checksum_covers_the_pseudo_header() {
    // The same message is invalid when it claims to come from another address: a v2-style
    // checksum (message only) would accept it.
    let ex = v4_expect();
    let mut p = hex(V4[0].1);
    p[15] = 0x16; // source 192.168.3.22; the IP header checksum is not ours to check
    assert_eq!(ex.check_ipv4(&p), Err(DropReason::BadChecksum));
    let msg = hex(V6[0].1);
    let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x322);
    let ex6 = ExpectV3 {
        vrid: 34,
        ..v4_expect()
    };
    assert_eq!(
        ex6.check_ipv6(other, VRRP_GROUP_V6, 255, &msg),
        Err(DropReason::BadChecksum)
    );
    assert_ne!(
        crate::vrrp::packet::inet_checksum(&msg[..]),
        0,
        "a message-only checksum must not verify"
    );
}

#[test]
fn rfc5798_7_1_ttl_and_hop_limit_must_be_255() {
    let mut p = hex(V4[0].1);
    p[8] = 64;
    assert_eq!(v4_expect().check_ipv4(&p), Err(DropReason::BadTtl(64)));
    let ex6 = ExpectV3 {
        vrid: 34,
        ..v4_expect()
    };
    assert_eq!(
        ex6.check_ipv6(LB1_LL, VRRP_GROUP_V6, 1, &hex(V6[0].1)),
        Err(DropReason::BadTtl(1))
    );
}

#[test]
fn rfc5798_7_1_version_2_advert_is_dropped_by_a_v3_instance() {
    let v2 =
        hex("45c0002800070000ff7016cfc0a80315e0000012212164010101536dc0a803643131313100000000");
    assert_eq!(v4_expect().check_ipv4(&v2), Err(DropReason::BadVersion(2)));
}

#[test]
fn rfc5798_7_1_vrid_peers_and_length() {
    let ex = ExpectV3 {
        vrid: 34,
        ..v4_expect()
    };
    assert_eq!(ex.check_ipv4(&hex(V4[0].1)), Err(DropReason::OtherVrid(33)));
    let uni = ExpectV3 {
        unicast_peers: vec![Ipv4Addr::new(192, 168, 3, 22).into()],
        ..v4_expect()
    };
    assert_eq!(
        uni.check_ipv4(&hex(V4[0].1)),
        Err(DropReason::UnknownPeer(LB1.into()))
    );
    let msg = hex(V6[0].1);
    assert_eq!(
        decode(&msg[..23], LB1_LL.into(), VRRP_GROUP_V6.into()),
        Err(DropReason::Truncated { need: 24, got: 23 })
    );
}

#[test]
fn rfc5798_5_2_6_reserved_bits_are_ignored_and_interval_is_not_checked() {
    let adv = AdvertV3 {
        vrid: 33,
        priority: 90,
        max_adver_int: 4095,
        addrs: vec![VIP4.into()],
    };
    let mut msg = encode(&adv, LB1.into(), VRRP_GROUP.into());
    msg[4] |= 0xf0;
    let sum = checksum(LB1.into(), VRRP_GROUP.into(), &{
        let mut m = msg.clone();
        m[6] = 0;
        m[7] = 0;
        m
    })
    .unwrap();
    msg[6..8].copy_from_slice(&sum.to_be_bytes());
    let p = encode_ipv4(LB1, VRRP_GROUP, 0, &msg);
    let acc = v4_expect().check_ipv4(&p).unwrap();
    assert_eq!(acc.advert, adv);
    assert_eq!(acc.advert.interval(), Duration::from_millis(40_950));
}

#[test]
fn centiseconds_of_configured_intervals() {
    assert_eq!(centiseconds(Duration::from_millis(10)), 1);
    assert_eq!(centiseconds(Duration::from_millis(100)), 10);
    assert_eq!(centiseconds(Duration::from_secs(1)), 100);
    assert_eq!(centiseconds(Duration::from_millis(40_950)), 4095);
}

fn arb_advert(v6: bool) -> impl Strategy<Value = AdvertV3> {
    let addr = if v6 {
        any::<u128>().prop_map(|a| IpAddr::V6(a.into())).boxed()
    } else {
        any::<u32>().prop_map(|a| IpAddr::V4(a.into())).boxed()
    };
    (
        any::<u8>(),
        any::<u8>(),
        0..=MAX_INTERVAL_CS,
        proptest::collection::vec(addr, 0..=255),
    )
        .prop_map(|(vrid, priority, max_adver_int, addrs)| AdvertV3 {
            vrid,
            priority,
            max_adver_int,
            addrs,
        })
}

proptest! {
    #[test]
    fn roundtrip_v4(adv in arb_advert(false)) {
        let msg = encode(&adv, LB1.into(), VRRP_GROUP.into());
        prop_assert_eq!(decode(&msg, LB1.into(), VRRP_GROUP.into()).unwrap(), adv);
    }

    #[test]
    fn roundtrip_v6(adv in arb_advert(true)) {
        let msg = encode(&adv, LB1_LL.into(), VRRP_GROUP_V6.into());
        prop_assert_eq!(decode(&msg, LB1_LL.into(), VRRP_GROUP_V6.into()).unwrap(), adv);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = v4_expect().check_ipv4(&bytes);
        let _ = v4_expect().check_ipv6(LB1_LL, VRRP_GROUP_V6, 255, &bytes);
    }
}
