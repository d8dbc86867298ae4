//! A virtual address as ha.yaml writes it (`a.b.c.d/len` or `ipv6/len`): its syntax, checked by
//! `check` and used by the VRRP engine (`vrrp::vip` re-exports it), so config does not depend on
//! vrrp.

use std::fmt;
use std::net::IpAddr;

/// A VIP as written in ha.yaml: `a.b.c.d/len` (len defaults to 32) or `x:y::z/len` (len
/// defaults to 128; IPv6 needs a `version: 3` instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

pub fn parse_vip(s: &str) -> Result<Vip, String> {
    let (a, p) = match s.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s.trim(), None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address (a.b.c.d/len or IPv6/len)"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{s:?}: prefix length must be 0..={max}")),
        },
    };
    let bad = match addr {
        IpAddr::V4(v) => v.is_unspecified() || v.is_multicast() || v.is_broadcast(),
        // A link-local VIP would compete with the interface's own fe80:: address, which is
        // what IPv6 adverts are sent from (RFC 5798 §5.1.2.1).
        IpAddr::V6(v) => {
            v.is_unspecified()
                || v.is_multicast()
                || v.is_loopback()
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if bad {
        return Err(format!("{s:?} cannot be a virtual address"));
    }
    Ok(Vip { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_vips_parse_like_keepalived_virtual_ipaddress() {
        let v = parse_vip("fd00:3::100/64").unwrap();
        assert_eq!(v.addr, "fd00:3::100".parse::<IpAddr>().unwrap());
        assert_eq!((v.prefix, v.to_string().as_str()), (64, "fd00:3::100/64"));
        assert_eq!(parse_vip("2001:db8::1").unwrap().prefix, 128);
        assert_eq!(parse_vip("10.0.0.1").unwrap().prefix, 32);
        for bad in [
            "2001:db8::1/129",
            "ff02::12",
            "::",
            "::1",
            "fe80::1/64",
            "10.0.0.1/33",
            "224.0.0.18",
        ] {
            assert!(parse_vip(bad).is_err(), "{bad}");
        }
    }
}
