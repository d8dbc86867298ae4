//! VRRPv3 wire format (RFC 5798 §5) for IPv4 and IPv6. Pure: bytes in, values out.
//!
//! Owns encoding and decoding of v3 adverts, the v3 checksum (which, unlike v2's, covers an IP
//! pseudo-header, §5.2.8) and the §7.1 receive checks of v3. The IPv4 framing and the drop reasons
//! are shared with v2 (`packet.rs`). v3 has no authentication (§9 of RFC 5798 removed it) and its
//! interval is in centiseconds; an advert whose interval differs from ours is not dropped (a
//! Backup adopts the Master's interval, §6.4.2), so the interval is returned, not checked.

use super::packet::{decode_ipv4, DropReason, VRRP_TTL};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Multicast group of IPv6 adverts (RFC 5798 §5.1.2.2).
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Max Adver Int is 12 bits of centiseconds (§5.2.7).
pub const MAX_INTERVAL_CS: u16 = 0x0fff;
const FIXED_LEN: usize = 8;
const IPPROTO_VRRP: u8 = super::packet::IPPROTO_VRRP;

/// A VRRPv3 advertisement (RFC 5798 §5.1):
///
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |(rsvd) |     Max Adver Int     |          Checksum             |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                  IPvX Address(es) (4 or 16 bytes each)        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// Version 3, type 1. Every address has the family of the IP packet carrying the advert.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdvertV3 {
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds, 12 bits (1..=4095 on the wire from a sane sender).
    pub max_adver_int: u16,
    pub addrs: Vec<IpAddr>,
}

impl AdvertV3 {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.max_adver_int) * 10)
    }
}

/// An interval as v3 carries it: centiseconds, clamped to 1..=4095 (config validation refuses
/// anything else, so the clamp never changes a configured value).
pub fn centiseconds(d: Duration) -> u16 {
    (d.as_millis() / 10).clamp(1, u128::from(MAX_INTERVAL_CS)) as u16
}

/// One's-complement sum of 16-bit words (RFC 1071), not yet inverted.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// §5.2.8: the checksum over the VRRP message and the pseudo-header of the carrying packet
/// (IPv4: RFC 768's; IPv6: RFC 8200 §8.1's). `None` when the two addresses differ in family.
pub fn checksum(src: IpAddr, dst: IpAddr, msg: &[u8]) -> Option<u16> {
    let len = msg.len() as u32;
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = Vec::with_capacity(12);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, IPPROTO_VRRP]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = Vec::with_capacity(40);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, IPPROTO_VRRP]);
            p
        }
        _ => return None,
    };
    Some(fold(sum16(sum16(0, &pseudo), msg)))
}

/// Encodes the VRRP message for a packet from `src` to `dst` (the checksum depends on both).
/// Addresses of the other family than `src` are left out; more than 255 are cut (config
/// validation refuses both, so this never drops a configured address).
pub fn encode(adv: &AdvertV3, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let addrs: Vec<&IpAddr> = adv
        .addrs
        .iter()
        .filter(|a| a.is_ipv4() == src.is_ipv4())
        .take(255)
        .collect();
    let mut out = Vec::with_capacity(FIXED_LEN + 16 * addrs.len());
    out.push(0x31); // version 3, type 1
    out.push(adv.vrid);
    out.push(adv.priority);
    out.push(addrs.len() as u8);
    out.extend_from_slice(&(adv.max_adver_int & MAX_INTERVAL_CS).to_be_bytes());
    out.extend_from_slice(&[0, 0]); // checksum, filled below
    for a in addrs {
        match a {
            IpAddr::V4(v) => out.extend_from_slice(&v.octets()),
            IpAddr::V6(v) => out.extend_from_slice(&v.octets()),
        }
    }
    let sum = checksum(src, dst, &out).unwrap_or(0);
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    out
}

/// Decodes a v3 message received from `src` to `dst` (no IP header). Bytes after the address
/// list are tolerated and not covered by the checksum (as in v2: link padding).
pub fn decode(msg: &[u8], src: IpAddr, dst: IpAddr) -> Result<AdvertV3, DropReason> {
    if msg.len() < FIXED_LEN {
        return Err(DropReason::Truncated {
            need: FIXED_LEN,
            got: msg.len(),
        });
    }
    let version = msg[0] >> 4;
    let kind = msg[0] & 0x0f;
    if version != 3 {
        return Err(DropReason::BadVersion(version));
    }
    if kind != 1 {
        return Err(DropReason::BadType(kind));
    }
    let width = if src.is_ipv4() { 4 } else { 16 };
    let count = usize::from(msg[3]);
    let need = FIXED_LEN + width * count;
    if msg.len() < need {
        return Err(DropReason::Truncated {
            need,
            got: msg.len(),
        });
    }
    let body = &msg[..need];
    if checksum(src, dst, body) != Some(0) {
        return Err(DropReason::BadChecksum);
    }
    let addrs = body[FIXED_LEN..]
        .chunks_exact(width)
        .map(|c| match <[u8; 4]>::try_from(c) {
            Ok(b) => IpAddr::V4(Ipv4Addr::from(b)),
            Err(_) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(b))
            }
        })
        .collect();
    Ok(AdvertV3 {
        vrid: msg[1],
        priority: msg[2],
        // The top 4 bits are reserved: ignored on receipt (§5.2.6).
        max_adver_int: u16::from_be_bytes([msg[4], msg[5]]) & MAX_INTERVAL_CS,
        addrs,
    })
}

/// What a received v3 advert must match locally (RFC 5798 §7.1).
#[derive(Debug, Clone)]
pub struct ExpectV3 {
    pub vrid: u8,
    /// Our VIPs, compared with the advert's list (a mismatch is flagged, not dropped).
    pub addrs: Vec<IpAddr>,
    /// Non-empty in unicast mode: only these senders are accepted.
    pub unicast_peers: Vec<IpAddr>,
}

/// A v3 advert that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedV3 {
    pub src: IpAddr,
    pub advert: AdvertV3,
    pub addr_list_mismatch: bool,
}

impl ExpectV3 {
    /// Full receive path for IPv4: `packet` is what a raw IPv4 socket returns (header included).
    pub fn check_ipv4(&self, packet: &[u8]) -> Result<AcceptedV3, DropReason> {
        let (ip, msg) = decode_ipv4(packet)?;
        self.check(IpAddr::V4(ip.src), IpAddr::V4(ip.dst), ip.ttl, msg)
    }

    /// Receive path for IPv6: a raw IPv6 socket strips the header, so the source, destination
    /// (IPV6_PKTINFO) and hop limit (IPV6_HOPLIMIT) come from the socket.
    pub fn check_ipv6(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &[u8],
    ) -> Result<AcceptedV3, DropReason> {
        self.check(IpAddr::V6(src), IpAddr::V6(dst), hop_limit, msg)
    }

    fn check(
        &self,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        msg: &[u8],
    ) -> Result<AcceptedV3, DropReason> {
        if ttl != VRRP_TTL {
            return Err(DropReason::BadTtl(ttl));
        }
        let advert = decode(msg, src, dst)?;
        if advert.vrid != self.vrid {
            return Err(DropReason::OtherVrid(advert.vrid));
        }
        if !self.unicast_peers.is_empty() && !self.unicast_peers.contains(&src) {
            return Err(DropReason::UnknownPeer(src));
        }
        let mut theirs = advert.addrs.clone();
        let mut ours: Vec<IpAddr> = self
            .addrs
            .iter()
            .filter(|a| a.is_ipv4() == src.is_ipv4())
            .copied()
            .collect();
        theirs.sort();
        ours.sort();
        Ok(AcceptedV3 {
            src,
            addr_list_mismatch: theirs != ours,
            advert,
        })
    }
}

#[cfg(test)]
mod tests;
