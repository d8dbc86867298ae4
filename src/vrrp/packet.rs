//! VRRPv2 wire format (RFC 3768 §5) and the IPv4 header around it. Pure: bytes in, values out.
//!
//! Owns encoding and decoding of advertisements, the checksum, and the receive checks of §7.1
//! that need local configuration (`Expect::check`). Sockets live in `socket.rs`; nothing here does
//! I/O or keeps state. Every reason to drop a packet is its own `DropReason` variant, so the runner
//! can count and log drops per reason.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// Multicast group adverts go to (§5.2.2).
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// TTL adverts are sent with and must arrive with (§5.2.3).
pub const VRRP_TTL: u8 = 255;
/// TOS keepalived sends with (precedence 6, internetwork control); we match it.
pub const VRRP_TOS: u8 = 0xc0;
/// Fixed VRRP header before the address list.
const FIXED_LEN: usize = 8;
/// Authentication data after the address list (always present in v2, zero when unused).
const AUTH_LEN: usize = 8;
const IPV4_MIN_HEADER: usize = 20;

/// Authentication as carried in the advert (§5.3.6): none, or RFC 2338 simple text password.
/// Type 2 (IP Authentication Header) was removed by RFC 3768 and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Auth type 0: data sent as zero, ignored on receive (§5.3.10).
    None,
    /// Auth type 1: up to 8 bytes of password, zero padded.
    Pass([u8; AUTH_LEN]),
    /// fdfs-ha's HMAC adverts (`auth_hmac`): the data is the sender's sequence number; the
    /// tag follows the message. Only between fdfs-ha nodes configured with `hmac`.
    Hmac([u8; AUTH_LEN]),
}

impl Auth {
    /// Builds a PASS auth from a configured password; longer than 8 bytes is a config error.
    pub fn pass(password: &str) -> Result<Auth, String> {
        let bytes = password.as_bytes();
        if bytes.len() > AUTH_LEN {
            return Err(format!(
                "VRRP password is {} bytes; VRRPv2 carries at most {AUTH_LEN}",
                bytes.len()
            ));
        }
        let mut data = [0u8; AUTH_LEN];
        data[..bytes.len()].copy_from_slice(bytes);
        Ok(Auth::Pass(data))
    }

    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
            Auth::Hmac(_) => super::auth_hmac::AUTH_TYPE_HMAC,
        }
    }

    /// An HMAC auth carrying sequence number `seq`.
    pub fn hmac(seq: u64) -> Auth {
        Auth::Hmac(seq.to_be_bytes())
    }

    /// The sequence number of an HMAC auth.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Auth::Hmac(b) => Some(u64::from_be_bytes(*b)),
            _ => None,
        }
    }
}

/// A VRRPv2 advertisement (RFC 3768 §5.1):
///
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |   Auth Type   |   Adver Int   |          Checksum             |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                         IP Address (1)                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                            .                                  |
///    |                            .                                  |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                         IP Address (n)                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                     Authentication Data (1)                   |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                     Authentication Data (2)                   |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// Version is 2 and Type is 1 (ADVERTISEMENT), both implied. The checksum covers the VRRP
/// message only (no pseudo-header) and is computed by `encode`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    pub vrid: u8,
    pub priority: u8,
    /// Seconds (whole seconds in v2).
    pub adver_int: u8,
    pub auth: Auth,
    /// At most 255 (Count IP Addrs is one byte).
    pub addrs: Vec<Ipv4Addr>,
}

/// The parts of the IPv4 header a receiver checks (§7.1): TTL and source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Info {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub protocol: u8,
}

/// Why a received packet was dropped. One variant per RFC 3768 §7.1 rule (plus IPv4 framing),
/// so drops can be counted by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than an IPv4 header, wrong IP version/IHL, or total length beyond what arrived.
    MalformedIp,
    /// IP protocol is not 112.
    NotVrrp(u8),
    /// §7.1: TTL must be 255 (the sender is on our link).
    BadTtl(u8),
    /// §7.1: the version must be the instance's (2, or 3 for RFC 5798).
    BadVersion(u8),
    /// §5.3.2: type must be 1 (ADVERTISEMENT).
    BadType(u8),
    /// §7.1: shorter than 8 + 4 x count + 8 bytes.
    Truncated { need: usize, got: usize },
    /// §7.1: checksum does not verify.
    BadChecksum,
    /// §5.3.6: auth type other than 0 or 1.
    UnknownAuthType(u8),
    /// §7.1: VRID not configured here.
    OtherVrid(u8),
    /// §7.1: auth type differs from ours.
    AuthTypeMismatch { got: u8, want: u8 },
    /// §7.1: password differs from ours.
    BadPassword,
    /// HMAC auth: the tag is missing or verifies under none of our keys (forged, wrong key).
    BadHmac,
    /// HMAC auth: a valid tag, but the advert was seen before or is too old (a replay).
    Replay(super::auth_hmac::Replay),
    /// §7.1: advert interval differs from ours.
    IntervalMismatch { got: u8, want: u8 },
    /// §7.1: the address list differs from ours (priority < 255 MUST be dropped; an address
    /// owner's advert is accepted whatever its list).
    AddrListMismatch { got: Vec<IpAddr>, want: Vec<IpAddr> },
    /// Unicast mode: the sender is not a configured peer (keepalived drops these too).
    UnknownPeer(IpAddr),
}

impl DropReason {
    /// Stable counter name for status output.
    pub fn counter(&self) -> &'static str {
        match self {
            DropReason::MalformedIp => "malformed_ip",
            DropReason::NotVrrp(_) => "not_vrrp",
            DropReason::BadTtl(_) => "ttl",
            DropReason::BadVersion(_) => "version",
            DropReason::BadType(_) => "type",
            DropReason::Truncated { .. } => "truncated",
            DropReason::BadChecksum => "checksum",
            DropReason::UnknownAuthType(_) => "auth_type_unknown",
            DropReason::OtherVrid(_) => "vrid",
            DropReason::AuthTypeMismatch { .. } => "auth_type",
            DropReason::BadPassword => "auth_password",
            DropReason::BadHmac => "auth_hmac",
            DropReason::Replay(_) => "replay",
            DropReason::IntervalMismatch { .. } => "advert_interval",
            DropReason::AddrListMismatch { .. } => "addr_list",
            DropReason::UnknownPeer(_) => "unknown_peer",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::MalformedIp => write!(f, "malformed IPv4 header"),
            DropReason::NotVrrp(p) => write!(f, "IP protocol {p} is not VRRP (112)"),
            DropReason::BadTtl(t) => write!(f, "IP TTL {t} != 255 (sender not on our link)"),
            DropReason::BadVersion(v) => write!(f, "VRRP version {v} is not the configured one"),
            DropReason::BadType(t) => write!(f, "VRRP type {t} != 1 (ADVERTISEMENT)"),
            DropReason::Truncated { need, got } => {
                write!(f, "packet truncated: need {need} bytes, got {got}")
            }
            DropReason::BadChecksum => write!(f, "VRRP checksum invalid"),
            DropReason::UnknownAuthType(t) => write!(f, "unknown auth type {t}"),
            DropReason::OtherVrid(v) => write!(f, "VRID {v} is not configured here"),
            DropReason::AuthTypeMismatch { got, want } => {
                write!(f, "auth type {got} differs from ours ({want})")
            }
            DropReason::BadPassword => write!(f, "auth password does not match ours"),
            DropReason::BadHmac => write!(f, "HMAC tag missing or not made with any of our keys"),
            DropReason::Replay(super::auth_hmac::Replay::Old { seq, last }) => write!(
                f,
                "replayed advert: sequence {seq} is not above the last one accepted ({last})"
            ),
            DropReason::Replay(super::auth_hmac::Replay::Stale { seq, now }) => write!(
                f,
                "stale advert: sequence {seq} is {}s away from our clock ({now}); replay, or clocks apart",
                seq.abs_diff(*now) / 1000
            ),
            DropReason::IntervalMismatch { got, want } => {
                write!(f, "advert interval {got}s differs from ours ({want}s)")
            }
            DropReason::UnknownPeer(a) => write!(f, "sender {a} is not a configured unicast peer"),
            DropReason::AddrListMismatch { got, want } => {
                write!(f, "address list {got:?} differs from ours ({want:?})")
            }
        }
    }
}

impl DropReason {
    /// Dropped only because a setting differs (advert_int, address list): the advert passed
    /// every integrity and authentication check, so its sender is a real peer (issue 26.2).
    pub fn is_config_mismatch(&self) -> bool {
        matches!(
            self,
            DropReason::IntervalMismatch { .. } | DropReason::AddrListMismatch { .. }
        )
    }
}

impl std::error::Error for DropReason {}

/// Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words.
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Encodes the VRRP message (no IP header). More than 255 addresses cannot be represented:
/// callers validate that at config time; here the list is cut at 255 rather than panicking.
pub fn encode(adv: &Advert) -> Vec<u8> {
    let addrs = &adv.addrs[..adv.addrs.len().min(255)];
    let mut out = Vec::with_capacity(FIXED_LEN + 4 * addrs.len() + AUTH_LEN);
    out.push(0x21); // version 2, type 1
    out.push(adv.vrid);
    out.push(adv.priority);
    out.push(addrs.len() as u8);
    out.push(adv.auth.type_code());
    out.push(adv.adver_int);
    out.extend_from_slice(&[0, 0]); // checksum, filled below
    for a in addrs {
        out.extend_from_slice(&a.octets());
    }
    match adv.auth {
        Auth::None => out.extend_from_slice(&[0u8; AUTH_LEN]),
        Auth::Pass(data) | Auth::Hmac(data) => out.extend_from_slice(&data),
    }
    let sum = inet_checksum(&out);
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    out
}

/// Decodes a VRRP message (no IP header). Bytes after the auth data (e.g. Ethernet padding
/// that made it into the IP payload) are tolerated and not covered by the checksum.
pub fn decode(msg: &[u8]) -> Result<Advert, DropReason> {
    if msg.len() < FIXED_LEN {
        return Err(DropReason::Truncated {
            need: FIXED_LEN + AUTH_LEN,
            got: msg.len(),
        });
    }
    let version = msg[0] >> 4;
    let kind = msg[0] & 0x0f;
    if version != 2 {
        return Err(DropReason::BadVersion(version));
    }
    if kind != 1 {
        return Err(DropReason::BadType(kind));
    }
    let count = usize::from(msg[3]);
    let need = FIXED_LEN + 4 * count + AUTH_LEN;
    if msg.len() < need {
        return Err(DropReason::Truncated {
            need,
            got: msg.len(),
        });
    }
    let body = &msg[..need];
    if inet_checksum(body) != 0 {
        return Err(DropReason::BadChecksum);
    }
    let auth_data = &body[FIXED_LEN + 4 * count..need];
    let auth = match msg[4] {
        0 => Auth::None,
        1 => {
            let mut data = [0u8; AUTH_LEN];
            data.copy_from_slice(auth_data);
            Auth::Pass(data)
        }
        super::auth_hmac::AUTH_TYPE_HMAC => {
            let mut data = [0u8; AUTH_LEN];
            data.copy_from_slice(auth_data);
            Auth::Hmac(data)
        }
        other => return Err(DropReason::UnknownAuthType(other)),
    };
    let addrs = body[FIXED_LEN..FIXED_LEN + 4 * count]
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    Ok(Advert {
        vrid: msg[1],
        priority: msg[2],
        adver_int: msg[5],
        auth,
        addrs,
    })
}

/// Splits a received IPv4 packet into the header fields we check and its payload. The payload
/// is cut at the IP total length, so link-layer padding never reaches the VRRP decoder.
pub fn decode_ipv4(packet: &[u8]) -> Result<(Ipv4Info, &[u8]), DropReason> {
    if packet.len() < IPV4_MIN_HEADER || packet[0] >> 4 != 4 {
        return Err(DropReason::MalformedIp);
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if ihl < IPV4_MIN_HEADER || total < ihl || total > packet.len() {
        return Err(DropReason::MalformedIp);
    }
    let info = Ipv4Info {
        ttl: packet[8],
        protocol: packet[9],
        src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
    };
    if info.protocol != IPPROTO_VRRP {
        return Err(DropReason::NotVrrp(info.protocol));
    }
    Ok((info, &packet[ihl..total]))
}

/// Builds the IPv4 header keepalived writes (IP_HDRINCL): TOS 0xc0, TTL 255, no fragmentation,
/// protocol 112. `id` 0 lets the kernel pick one (it fills the id and the checksum anyway).
pub fn encode_ipv4(src: Ipv4Addr, dst: Ipv4Addr, id: u16, payload: &[u8]) -> Vec<u8> {
    let total = (IPV4_MIN_HEADER + payload.len()).min(usize::from(u16::MAX)) as u16;
    let mut out = Vec::with_capacity(usize::from(total));
    out.push(0x45);
    out.push(VRRP_TOS);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // flags / fragment offset
    out.push(VRRP_TTL);
    out.push(IPPROTO_VRRP);
    out.extend_from_slice(&[0, 0]); // header checksum, filled below
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let sum = inet_checksum(&out);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a received advert must match locally (§7.1).
#[derive(Debug, Clone)]
pub struct Expect {
    pub vrid: u8,
    pub auth: Auth,
    pub adver_int: u8,
    /// Our VIPs, compared with the advert's address list (§7.1: a mismatch is dropped).
    pub addrs: Vec<Ipv4Addr>,
    /// Non-empty in unicast mode: only these senders are accepted.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// With `auth` HMAC: the keys a tag may verify under (`auth_hmac`).
    pub hmac_keys: super::auth_hmac::HmacKeys,
}

/// Result of the §7.1 checks on a packet that passed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub src: Ipv4Addr,
    pub advert: Advert,
}

impl Expect {
    /// Full receive path: IPv4 framing, TTL, VRRP decode, then the local checks, in the order of
    /// RFC 3768 §7.1. `packet` is what a raw IPv4 socket returns (IP header included).
    pub fn check(&self, packet: &[u8]) -> Result<Accepted, DropReason> {
        let (ip, msg) = decode_ipv4(packet)?;
        if ip.ttl != VRRP_TTL {
            return Err(DropReason::BadTtl(ip.ttl));
        }
        let advert = decode(msg)?;
        if advert.vrid != self.vrid {
            return Err(DropReason::OtherVrid(advert.vrid));
        }
        if !self.unicast_peers.is_empty() && !self.unicast_peers.contains(&ip.src) {
            return Err(DropReason::UnknownPeer(IpAddr::V4(ip.src)));
        }
        match (self.auth, advert.auth) {
            (Auth::None, Auth::None) => {}
            (Auth::Pass(ours), Auth::Pass(theirs)) => {
                if ours != theirs {
                    return Err(DropReason::BadPassword);
                }
            }
            (Auth::Hmac(_), Auth::Hmac(_)) => {
                // The message is what `decode` checked; the tag follows it.
                let len = FIXED_LEN + 4 * advert.addrs.len() + AUTH_LEN;
                if !super::auth_hmac::verify(&self.hmac_keys.0, ip.src, msg, len) {
                    return Err(DropReason::BadHmac);
                }
            }
            (ours, theirs) => {
                return Err(DropReason::AuthTypeMismatch {
                    got: theirs.type_code(),
                    want: ours.type_code(),
                })
            }
        }
        if advert.adver_int != self.adver_int {
            return Err(DropReason::IntervalMismatch {
                got: advert.adver_int,
                want: self.adver_int,
            });
        }
        let mut theirs = advert.addrs.clone();
        let mut ours = self.addrs.clone();
        theirs.sort();
        ours.sort();
        if theirs != ours && advert.priority != 255 {
            return Err(DropReason::AddrListMismatch {
                got: advert.addrs.into_iter().map(IpAddr::V4).collect(),
                want: self.addrs.iter().copied().map(IpAddr::V4).collect(),
            });
        }
        Ok(Accepted {
            src: ip.src,
            advert,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 100);
    const LB1: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 21);
    const LB2: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 22);

    /// (vector number, IP packet hex, IP id, src, vrid, priority, password) from
    /// tests/vectors/keepalived-vectors.txt.
    const CAPTURES: &[(u8, &str, u16, Ipv4Addr, u8, u8, &str)] = &[
        (
            1,
            "45c0002800070000ff7016cfc0a80315e0000012212164010101536dc0a803643131313100000000",
            7,
            LB1,
            33,
            100,
            "1111",
        ),
        (
            2,
            "45c0002800090000ff7016cdc0a80315e0000012212100010101b76dc0a803643131313100000000",
            9,
            LB1,
            33,
            0,
            "1111",
        ),
        (
            3,
            "45c0002800010000ff7016d4c0a80316e000001221215a0101015d6dc0a803643131313100000000",
            1,
            LB2,
            33,
            90,
            "1111",
        ),
        (
            6,
            "45c0002800090000ff7016cdc0a80315e0000012212150010101676dc0a803643131313100000000",
            9,
            LB1,
            33,
            80,
            "1111",
        ),
        (
            7,
            "45c0002800010000ff7016d4c0a80316e000001221215a0101015b6bc0a803643232323200000000",
            1,
            LB2,
            33,
            90,
            "2222",
        ),
        (
            8,
            "45c0002800010000ff7016d4c0a80316e000001221225a0101015d6cc0a803643131313100000000",
            1,
            LB2,
            34,
            90,
            "1111",
        ),
    ];

    fn lab_expect() -> Expect {
        Expect {
            vrid: 33,
            auth: Auth::pass("1111").unwrap(),
            adver_int: 1,
            addrs: vec![VIP],
            unicast_peers: vec![],
            hmac_keys: Default::default(),
        }
    }

    #[test]
    fn keepalived_captures_decode_to_annotated_fields() {
        for &(n, h, _, src, vrid, prio, pass) in CAPTURES {
            let bytes = hex(h);
            let (ip, msg) = decode_ipv4(&bytes).unwrap();
            assert_eq!(ip.src, src, "vector {n}");
            assert_eq!(ip.dst, VRRP_GROUP, "vector {n}");
            assert_eq!(ip.ttl, 255, "vector {n}");
            let adv = decode(msg).unwrap();
            assert_eq!(
                adv,
                Advert {
                    vrid,
                    priority: prio,
                    adver_int: 1,
                    auth: Auth::pass(pass).unwrap(),
                    addrs: vec![VIP],
                },
                "vector {n}"
            );
        }
    }

    #[test]
    fn encoder_reproduces_keepalived_captures_byte_for_byte() {
        for &(n, h, id, src, vrid, prio, pass) in CAPTURES {
            let adv = Advert {
                vrid,
                priority: prio,
                adver_int: 1,
                auth: Auth::pass(pass).unwrap(),
                addrs: vec![VIP],
            };
            let packet = encode_ipv4(src, VRRP_GROUP, id, &encode(&adv));
            assert_eq!(packet, hex(h), "vector {n}");
        }
    }

    #[test]
    fn receive_checks_accept_lab_peer_and_reject_wrong_password_and_vrid() {
        let ex = lab_expect();
        let ok = ex.check(&hex(CAPTURES[0].1)).unwrap();
        assert_eq!(ok.src, LB1);
        assert_eq!(ex.check(&hex(CAPTURES[4].1)), Err(DropReason::BadPassword));
        assert_eq!(
            ex.check(&hex(CAPTURES[5].1)),
            Err(DropReason::OtherVrid(34))
        );
    }

    fn lab_packet(mutate: impl FnOnce(&mut Advert)) -> Vec<u8> {
        let mut adv = Advert {
            vrid: 33,
            priority: 100,
            adver_int: 1,
            auth: Auth::pass("1111").unwrap(),
            addrs: vec![VIP],
        };
        mutate(&mut adv);
        encode_ipv4(LB1, VRRP_GROUP, 0, &encode(&adv))
    }

    #[test]
    fn rfc3768_7_1_ttl_must_be_255() {
        let mut p = lab_packet(|_| {});
        p[8] = 64;
        assert_eq!(lab_expect().check(&p), Err(DropReason::BadTtl(64)));
    }

    #[test]
    fn rfc3768_7_1_version_must_be_2() {
        let mut p = lab_packet(|_| {});
        p[20] = 0x31;
        assert_eq!(lab_expect().check(&p), Err(DropReason::BadVersion(3)));
    }

    #[test]
    fn rfc3768_5_3_2_type_must_be_advertisement() {
        let mut p = lab_packet(|_| {});
        p[20] = 0x22;
        assert_eq!(lab_expect().check(&p), Err(DropReason::BadType(2)));
    }

    #[test]
    fn rfc3768_7_1_checksum_must_verify() {
        let mut p = lab_packet(|_| {});
        p[22] ^= 1; // priority changed after the checksum was computed
        assert_eq!(lab_expect().check(&p), Err(DropReason::BadChecksum));
    }

    #[test]
    fn rfc3768_7_1_packet_must_hold_count_addresses_and_auth() {
        let p = lab_packet(|a| a.addrs = vec![VIP, VIP, VIP]);
        let (_, msg) = decode_ipv4(&p).unwrap();
        assert_eq!(
            decode(&msg[..msg.len() - 1]),
            Err(DropReason::Truncated { need: 28, got: 27 })
        );
        // IP total length claiming more than arrived.
        assert_eq!(
            lab_expect().check(&p[..p.len() - 2]),
            Err(DropReason::MalformedIp)
        );
    }

    #[test]
    fn ethernet_padding_after_the_ip_packet_is_tolerated() {
        let mut p = lab_packet(|_| {});
        p.extend_from_slice(&[0u8; 6]);
        assert!(lab_expect().check(&p).is_ok());
    }

    #[test]
    fn rfc3768_7_1_vrid_must_be_ours() {
        let p = lab_packet(|a| a.vrid = 34);
        assert_eq!(lab_expect().check(&p), Err(DropReason::OtherVrid(34)));
    }

    #[test]
    fn rfc3768_7_1_auth_type_must_match() {
        let p = lab_packet(|a| a.auth = Auth::None);
        assert_eq!(
            lab_expect().check(&p),
            Err(DropReason::AuthTypeMismatch { got: 0, want: 1 })
        );
        let mut p = lab_packet(|_| {});
        p[24] = 2; // IP AH, removed by RFC 3768
        let sum = inet_checksum(&{
            let mut m = p[20..].to_vec();
            m[6] = 0;
            m[7] = 0;
            m
        });
        p[26..28].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(lab_expect().check(&p), Err(DropReason::UnknownAuthType(2)));
    }

    #[test]
    fn rfc3768_5_3_10_auth_none_ignores_auth_data() {
        let mut p = lab_packet(|a| a.auth = Auth::None);
        // Non-zero auth data with type 0: still accepted (checksum fixed up).
        p[32] = 0x55;
        let mut m = p[20..].to_vec();
        m[6] = 0;
        m[7] = 0;
        let sum = inet_checksum(&m);
        p[26..28].copy_from_slice(&sum.to_be_bytes());
        let ex = Expect {
            auth: Auth::None,
            ..lab_expect()
        };
        assert_eq!(ex.check(&p).unwrap().advert.auth, Auth::None);
    }

    #[test]
    fn rfc3768_7_1_advert_interval_must_match() {
        let p = lab_packet(|a| a.adver_int = 2);
        assert_eq!(
            lab_expect().check(&p),
            Err(DropReason::IntervalMismatch { got: 2, want: 1 })
        );
    }

    #[test]
    fn rfc3768_7_1_address_list_mismatch_is_dropped_below_priority_255() {
        let other = Ipv4Addr::new(192, 168, 3, 101);
        let p = lab_packet(|a| a.addrs = vec![VIP, other]);
        let e = lab_expect().check(&p).unwrap_err();
        assert_eq!(
            e,
            DropReason::AddrListMismatch {
                got: vec![VIP.into(), other.into()],
                want: vec![VIP.into()]
            }
        );
        assert!(e.is_config_mismatch());
        assert_eq!(e.counter(), "addr_list");
        // The same list in another order is the same list.
        let mut ex = lab_expect();
        ex.addrs = vec![other, VIP];
        assert!(ex.check(&p).is_ok());
        // An address owner is accepted whatever its list (§7.1).
        let p = lab_packet(|a| {
            a.addrs = vec![other];
            a.priority = 255;
        });
        assert!(lab_expect().check(&p).is_ok());
        assert!(!DropReason::BadPassword.is_config_mismatch());
    }

    #[test]
    fn hmac_adverts_verify_under_a_listed_key_only() {
        use crate::vrrp::auth_hmac::{sign, HmacKeys, AUTH_TYPE_HMAC, TAG_LEN};
        let k1 = b"0123456789abcdef-one".to_vec();
        let k2 = b"0123456789abcdef-two".to_vec();
        let ex = Expect {
            auth: Auth::hmac(0),
            hmac_keys: HmacKeys(vec![k1.clone(), k2.clone()]),
            ..lab_expect()
        };
        let adv = Advert {
            vrid: 33,
            priority: 255,
            adver_int: 1,
            auth: Auth::hmac(1_800_000_000_000),
            addrs: vec![VIP],
        };
        let signed = |key: &[u8], src: Ipv4Addr| {
            let mut msg = encode(&adv);
            assert_eq!(msg[4], AUTH_TYPE_HMAC);
            let tag = sign(key, src, &msg);
            assert_eq!(tag.len(), TAG_LEN);
            msg.extend(tag);
            encode_ipv4(src, VRRP_GROUP, 0, &msg)
        };
        // Either key (rotation); the sequence comes back out.
        for k in [&k1, &k2] {
            let acc = ex.check(&signed(k, LB1)).unwrap();
            assert_eq!(acc.advert.auth.seq(), Some(1_800_000_000_000));
        }
        // Wrong key, a tag made for another source, no tag at all: forged.
        let wrong = b"0123456789abcdef-bad".to_vec();
        assert_eq!(ex.check(&signed(&wrong, LB1)), Err(DropReason::BadHmac));
        let mut spoofed = signed(&k1, LB2);
        spoofed[12..16].copy_from_slice(&LB1.octets());
        assert_eq!(ex.check(&spoofed), Err(DropReason::BadHmac));
        let bare = encode_ipv4(LB1, VRRP_GROUP, 0, &encode(&adv));
        assert_eq!(ex.check(&bare), Err(DropReason::BadHmac));
        // PASS (the keepalived way) is not accepted by an HMAC instance, nor the reverse.
        assert_eq!(
            ex.check(&lab_packet(|_| {})),
            Err(DropReason::AuthTypeMismatch {
                got: 1,
                want: AUTH_TYPE_HMAC
            })
        );
        assert_eq!(
            lab_expect().check(&signed(&k1, LB1)),
            Err(DropReason::AuthTypeMismatch {
                got: AUTH_TYPE_HMAC,
                want: 1
            })
        );
    }

    #[test]
    fn unicast_mode_drops_unknown_senders() {
        let ex = Expect {
            unicast_peers: vec![LB2],
            ..lab_expect()
        };
        assert_eq!(
            ex.check(&lab_packet(|_| {})),
            Err(DropReason::UnknownPeer(LB1.into()))
        );
    }

    #[test]
    fn password_longer_than_8_bytes_is_refused() {
        assert!(Auth::pass("123456789").is_err());
        assert_eq!(Auth::pass("12345678").unwrap(), Auth::Pass(*b"12345678"));
    }

    #[test]
    fn encode_handles_255_addresses() {
        let addrs: Vec<Ipv4Addr> = (0..255u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        let adv = Advert {
            vrid: 1,
            priority: 1,
            adver_int: 1,
            auth: Auth::None,
            addrs,
        };
        let bytes = encode(&adv);
        assert_eq!(bytes.len(), 8 + 4 * 255 + 8);
        assert_eq!(decode(&bytes).unwrap(), adv);
    }

    fn arb_advert() -> impl Strategy<Value = Advert> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            prop_oneof![
                Just(Auth::None),
                any::<[u8; 8]>().prop_map(Auth::Pass),
                any::<[u8; 8]>().prop_map(Auth::Hmac)
            ],
            proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 0..=255),
        )
            .prop_map(|(vrid, priority, adver_int, auth, addrs)| Advert {
                vrid,
                priority,
                adver_int,
                auth,
                addrs,
            })
    }

    proptest! {
        #[test]
        fn roundtrip_random_adverts(adv in arb_advert()) {
            let bytes = encode(&adv);
            prop_assert_eq!(inet_checksum(&bytes), 0);
            prop_assert_eq!(decode(&bytes).unwrap(), adv.clone());
            let ip = encode_ipv4(LB1, VRRP_GROUP, 0, &bytes);
            let (info, msg) = decode_ipv4(&ip).unwrap();
            prop_assert_eq!(info.ttl, 255);
            prop_assert_eq!(info.src, LB1);
            prop_assert_eq!(decode(msg).unwrap(), adv);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = decode(&bytes);
            let _ = lab_expect().check(&bytes);
        }
    }
}
