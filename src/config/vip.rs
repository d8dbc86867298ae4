//! A virtual address as ha.yaml writes it (`a.b.c.d/len`): its syntax, checked by `check` and
//! used by the VRRP engine (`vrrp::vip` re-exports it), so config does not depend on vrrp.

use std::fmt;
use std::net::Ipv4Addr;

/// A VIP as written in ha.yaml: `a.b.c.d/len` (len defaults to 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vip {
    pub addr: Ipv4Addr,
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
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address (a.b.c.d/len)"))?;
    let prefix = match p {
        None => 32,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= 32 => n,
            _ => return Err(format!("{s:?}: prefix length must be 0..=32")),
        },
    };
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
        return Err(format!("{s:?} cannot be a virtual address"));
    }
    Ok(Vip { addr, prefix })
}
