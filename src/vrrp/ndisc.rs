//! Unsolicited Neighbour Advertisements (RFC 4861 §7.2.6) for the IPv6 VIPs of a new Master:
//! what gratuitous ARP is for IPv4 (RFC 5798 §6.4.2: "for each IPv6 address ... send an
//! Unsolicited Neighbor Advertisement with the Router Flag (R) set to 1 if it is a router,
//! the Override flag (O) set"). Pure: the frame is built here, `arp::GarpSender` sends it.
//!
//! Frame (keepalived 2.2.7 capture, tests/vectors/keepalived-v3-vectors.txt [v3-5]): Ethernet
//! to 33:33:00:00:00:01 from the interface MAC; IPv6 from the VIP to ff02::1 (all nodes), hop
//! limit 255 (receivers drop other values, RFC 4861 §7.1.2); ICMPv6 type 136 code 0, flags O
//! only (we are no router: hosts must not pick us as their default gateway), target = the VIP,
//! option 2 (target link-layer address) = the MAC.

use super::packet::inet_checksum;
use std::net::Ipv6Addr;

/// Ethernet (14) + IPv6 (40) + NA (24) + target link-layer address option (8).
pub const NA_FRAME_LEN: usize = 86;
const ICMPV6: u8 = 58;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// 33:33 + the group's low 32 bits (RFC 2464 §7).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const FLAG_OVERRIDE: u8 = 0x20;

/// The ICMPv6 message (no IP header) announcing that `vip` is at `mac`, checksum included.
pub fn na_message(mac: [u8; 6], vip: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // Neighbor Advertisement
    m[4] = FLAG_OVERRIDE;
    m[8..24].copy_from_slice(&vip.octets());
    m[24] = 2; // Target Link-Layer Address
    m[25] = 1; // length in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    let mut pseudo = Vec::with_capacity(40 + m.len());
    pseudo.extend_from_slice(&vip.octets());
    pseudo.extend_from_slice(&ALL_NODES.octets());
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    pseudo.extend_from_slice(&m);
    m[2..4].copy_from_slice(&inet_checksum(&pseudo).to_be_bytes());
    m
}

/// The whole Ethernet frame of an unsolicited NA for `vip` from `mac`.
pub fn na_frame(mac: [u8; 6], vip: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let mut f = [0u8; NA_FRAME_LEN];
    f[0..6].copy_from_slice(&ALL_NODES_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f[14] = 0x60; // version 6, traffic class 0, flow label 0 (as keepalived)
    f[18..20].copy_from_slice(&32u16.to_be_bytes());
    f[20] = ICMPV6;
    f[21] = 255;
    f[22..38].copy_from_slice(&vip.octets());
    f[38..54].copy_from_slice(&ALL_NODES.octets());
    f[54..].copy_from_slice(&na_message(mac, vip));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 3, 0x21];
    const VIP: Ipv6Addr = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 0x100);

    #[test]
    fn na_matches_keepalived_vectors_v3_5_and_v3_7() {
        assert_eq!(
            na_message(MAC, VIP).to_vec(),
            hex("8800557720000000fd0000030000000000000000000001000201020000000321")
        );
        assert_eq!(
            na_frame(MAC, VIP).to_vec(),
            hex("33330000000102000000032186dd6000000000203afffd000003000000000000000000000100ff0200000000000000000000000000018800557720000000fd0000030000000000000000000001000201020000000321")
        );
    }

    #[test]
    fn na_checksum_covers_the_pseudo_header() {
        let other = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 0x101);
        let a = na_message(MAC, VIP);
        let b = na_message(MAC, other);
        assert_ne!(a[2..4], b[2..4]);
        // Verifying over pseudo-header + message gives 0.
        let mut p = Vec::new();
        p.extend_from_slice(&other.octets());
        p.extend_from_slice(&ALL_NODES.octets());
        p.extend_from_slice(&32u32.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, ICMPV6]);
        p.extend_from_slice(&b);
        assert_eq!(inet_checksum(&p), 0);
    }
}
