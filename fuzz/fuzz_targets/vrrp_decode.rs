//! Fuzzes the VRRP receive path: IPv4 framing, VRRP decode and the RFC 3768 §7.1 checks must
//! never panic, and whatever decodes must re-encode to the same message bytes.
#![no_main]

use fdfs_ha::vrrp::packet::{self, Auth, Expect};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let expect = Expect {
        vrid: 33,
        auth: Auth::Pass(*b"1111\0\0\0\0"),
        adver_int: 1,
        addrs: vec![Ipv4Addr::new(192, 168, 3, 100)],
        unicast_peers: vec![],
        hmac_keys: Default::default(),
    };
    let _ = expect.check(data);
    let _ = packet::decode_ipv4(data);
    if let Ok(adv) = packet::decode(data) {
        let re = packet::encode(&adv);
        // Auth type 0 re-encodes its (ignored) data as zeros; everything else is byte-exact,
        // except the checksum, where 0x0000 and 0xffff are the same one's-complement zero.
        if adv.auth != Auth::None {
            assert_eq!(&re[..6], &data[..6]);
            assert_eq!(&re[8..], &data[8..re.len()]);
        }
        assert_eq!(packet::decode(&re), Ok(adv));
    }
});
