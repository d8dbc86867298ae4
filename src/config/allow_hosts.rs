//! `allow_hosts`: which client addresses a tracker or storage port accepts, with FastDFS's
//! syntax and meaning (tracker.conf / storage.conf `allow_hosts`, one value per line there, one
//! list item here):
//!
//! - `*` matches every address (also the meaning of an empty list, FastDFS's default);
//! - an address (`10.0.0.5`, `::1`) or a host name, resolved once when the config is loaded;
//! - a range in one pair of brackets, expanded like FastDFS does: `10.0.0.[1-15,20]`,
//!   `host[01-08,20-25].example.com` (leading zeros give the width);
//! - a CIDR block: `192.168.5.64/26`, `fd00::/8`.
//!
//! A connection from any other address is closed at accept, before a byte is read.

use std::net::IpAddr;

/// Most addresses one value may expand to (a bracket range or a name's addresses): bounds
/// the table a config can make.
const MAX_EXPANDED: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Net(IpAddr, u8),
}

/// The parsed list; [`AllowHosts::allows`] is the accept-time check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowHosts {
    /// `None`: every address.
    rules: Option<Vec<Rule>>,
}

impl AllowHosts {
    /// Every address (`*` or no `allow_hosts`).
    pub fn any() -> Self {
        AllowHosts { rules: None }
    }

    /// No address at all (the fallback for a list that cannot be read).
    pub fn nobody() -> Self {
        AllowHosts {
            rules: Some(Vec::new()),
        }
    }

    /// Parses the values; host names are resolved with `resolve` (the system resolver in
    /// [`AllowHosts::parse`]).
    pub fn parse_with(
        values: &[String],
        resolve: &dyn Fn(&str) -> Result<Vec<IpAddr>, String>,
    ) -> Result<Self, String> {
        let mut rules = Vec::new();
        for v in values {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            if v == "*" {
                return Ok(Self::any());
            }
            if let Some((addr, bits)) = v.split_once('/') {
                let ip: IpAddr = addr
                    .trim()
                    .parse()
                    .map_err(|_| format!("{v:?}: {addr:?} is not an IP address"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits
                    .trim()
                    .parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{v:?}: prefix length must be 0..={max}"))?;
                rules.push(Rule::Net(ip, bits));
                continue;
            }
            for host in expand(v)? {
                let ips = match host.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => resolve(&host).map_err(|e| format!("{v:?}: {host}: {e}"))?,
                };
                for ip in ips {
                    let bits = if ip.is_ipv4() { 32 } else { 128 };
                    rules.push(Rule::Net(ip, bits));
                }
                if rules.len() > MAX_EXPANDED {
                    return Err(format!("{v:?}: more than {MAX_EXPANDED} addresses"));
                }
            }
        }
        if rules.is_empty() {
            return Ok(Self::any());
        }
        Ok(AllowHosts { rules: Some(rules) })
    }

    /// Parses the values, resolving host names with the system resolver.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        Self::parse_with(values, &|host| {
            use std::net::ToSocketAddrs;
            (host, 0)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .map_err(|e| format!("cannot resolve: {e}"))
        })
    }

    /// True when the list lets `ip` in (IPv4-mapped IPv6 addresses count as their IPv4 form).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        let ip = ip.to_canonical();
        rules
            .iter()
            .any(|Rule::Net(net, bits)| in_net(ip, *net, *bits))
    }

    /// True when every address is allowed.
    pub fn is_any(&self) -> bool {
        self.rules.is_none()
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits as u32).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits as u32).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Expands one `[...]` group: `a[1-3,7]b` -> a1b a2b a3b a7b. Numbers written with leading
/// zeros keep their width (`[01-03]` -> 01 02 03), as in FastDFS.
fn expand(v: &str) -> Result<Vec<String>, String> {
    let Some(open) = v.find('[') else {
        if v.contains(']') {
            return Err(format!("{v:?}: ']' without '['"));
        }
        return Ok(vec![v.to_string()]);
    };
    let close = v[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| format!("{v:?}: '[' without ']'"))?;
    let (head, inner, tail) = (&v[..open], &v[open + 1..close], &v[close + 1..]);
    if tail.contains('[') || tail.contains(']') {
        return Err(format!("{v:?}: only one [...] range per value"));
    }
    let mut out = Vec::new();
    for part in inner.split(',') {
        let part = part.trim();
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi) = (lo.trim(), hi.trim());
        let width = if lo.len() > 1 && lo.starts_with('0') {
            lo.len()
        } else {
            0
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{v:?}: {s:?} in [...] is not a number"))
        };
        let (a, b) = (num(lo)?, num(hi)?);
        if a > b {
            return Err(format!("{v:?}: range {part} runs backwards"));
        }
        if out.len() + (b - a) as usize >= MAX_EXPANDED {
            return Err(format!("{v:?}: more than {MAX_EXPANDED} addresses"));
        }
        for n in a..=b {
            out.push(format!("{head}{n:0width$}{tail}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<AllowHosts, String> {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        AllowHosts::parse_with(&v, &|h| match h {
            "host01.lab" => Ok(vec!["10.1.0.1".parse().unwrap()]),
            "host02.lab" => Ok(vec!["10.1.0.2".parse().unwrap()]),
            _ => Err("unknown host".into()),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn star_and_empty_allow_everyone() {
        for v in [&["*"][..], &[][..], &["10.0.0.1", "*"][..], &[" "][..]] {
            let a = parse(v).unwrap();
            assert!(a.is_any() && a.allows(ip("192.0.2.7")), "{v:?}");
        }
    }

    #[test]
    fn addresses_ranges_and_cidr_as_fastdfs_reads_them() {
        let a = parse(&[
            "10.0.0.[1-15,20]",
            "192.168.5.64/26",
            "127.0.0.1",
            "fd00::/8",
        ])
        .unwrap();
        for ok in [
            "10.0.0.1",
            "10.0.0.15",
            "10.0.0.20",
            "192.168.5.64",
            "192.168.5.127",
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "fd12::1",
        ] {
            assert!(a.allows(ip(ok)), "{ok}");
        }
        for no in [
            "10.0.0.16",
            "10.0.0.0",
            "192.168.5.128",
            "192.168.5.63",
            "127.0.0.2",
            "::1",
        ] {
            assert!(!a.allows(ip(no)), "{no}");
        }
    }

    #[test]
    fn host_names_with_ranges_resolve_once() {
        let a = parse(&["host[01-02].lab"]).unwrap();
        assert!(a.allows(ip("10.1.0.1")) && a.allows(ip("10.1.0.2")));
        assert!(!a.allows(ip("10.1.0.3")));
        assert!(parse(&["host[01-03].lab"])
            .unwrap_err()
            .contains("host03.lab"));
    }

    #[test]
    fn bad_values_are_refused_with_the_value() {
        for bad in [
            "10.0.0.[1-",
            "10.0.0.1]",
            "10.0.0.[5-1]",
            "10.0.0.[a-b]",
            "10.0.0.0/33",
            "nonsense/8",
            "10.[0-1].0.[1-2]",
            "10.0.[0-70000].1",
        ] {
            let e = parse(&[bad]).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
