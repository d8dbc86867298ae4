//! The one VRRP rule set: what a `vrrp` section must satisfy, from the section alone.
//!
//! Owns every VRRP rule that needs neither the host nor the other sections. `check` (through
//! [`super::validate`], which adds positions and the host/cross-section checks) and `run`
//! (`vrrp::Vrrp::start`, for configs built in code or reloaded) both call [`check`], so whatever
//! `run` refuses, `check` refuses first, in the same words.

use super::schema::{TrackWeight, VrrpAuth, VrrpConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// HMAC adverts (`auth: {type: hmac}`): keys shorter than this are refused.
pub const HMAC_MIN_KEY_LEN: usize = 16;
/// At most this many keys (the first signs, the others are accepted during a rotation).
pub const HMAC_MAX_KEYS: usize = 4;

/// VRRPv2 advert: the address count is one byte (RFC 3768 §5.3.5).
pub const MAX_VIPS: usize = 255;
/// VRRPv2 simple-text authentication carries at most 8 bytes.
pub const MAX_PASSWORD: usize = 8;

/// One broken rule: the key path (`vrrp.instances[0].priority`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct Out(Vec<Broken>);

impl Out {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Broken {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Every rule the section breaks (empty: the section is valid on its own).
pub fn check(vr: &VrrpConfig) -> Vec<Broken> {
    let mut v = Out(Vec::new());
    if vr.instances.is_empty() {
        v.err(
            "vrrp.instances",
            "must list at least one instance (or remove the `vrrp` section)",
        );
    }
    let mut names = BTreeSet::new();
    let mut vrids: BTreeMap<(String, u8), usize> = BTreeMap::new();
    let mut vips_seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, inst) in vr.instances.iter().enumerate() {
        let at = |k: &str| format!("vrrp.instances[{i}].{k}");
        if inst.name.is_empty() {
            v.err(at("name"), "must not be empty");
        } else if !names.insert(inst.name.clone()) {
            v.err(
                at("name"),
                format!("duplicate instance name `{}`", inst.name),
            );
        }
        if let Err(e) = check_ifname(&inst.interface) {
            v.err(at("interface"), e);
        }
        if inst.virtual_router_id == 0 {
            v.err(at("virtual_router_id"), "must be in 1..=255");
        } else if let Some(j) = vrids.insert((inst.interface.clone(), inst.virtual_router_id), i) {
            v.err(
                at("virtual_router_id"),
                format!(
                    "VRID {} is already used on {} by vrrp.instances[{j}]",
                    inst.virtual_router_id, inst.interface
                ),
            );
        }
        if inst.priority == 0 {
            v.err(
                at("priority"),
                "must be in 1..=255 (0 is reserved for a stopping Master)",
            );
        }
        let adv = inst.advert_int.get();
        match inst.version {
            2 => {
                if adv.subsec_nanos() != 0 || !(1..=255).contains(&adv.as_secs()) {
                    v.err(
                        at("advert_int"),
                        format!("VRRPv2 needs whole seconds in 1..=255, got {adv:?} (or use `version: 3` for centiseconds)"),
                    );
                }
            }
            3 => {
                if adv.subsec_nanos() % 10_000_000 != 0
                    || !(Duration::from_millis(10)..=Duration::from_millis(40_950)).contains(&adv)
                {
                    v.err(
                        at("advert_int"),
                        format!("VRRPv3 needs a multiple of 10ms in 10ms..=40.95s, got {adv:?}"),
                    );
                }
                if !matches!(inst.auth, None | Some(VrrpAuth::None)) {
                    v.err(
                        at("auth"),
                        "VRRPv3 has no authentication (RFC 5798 removed it; keepalived ignores it too): remove `auth` or use `version: 2`",
                    );
                }
            }
            other => v.err(at("version"), format!("must be 2 or 3, got {other}")),
        }
        if let Some(VrrpAuth::Pass { password }) = &inst.auth {
            if password.is_empty() || password.len() > MAX_PASSWORD {
                v.err(
                    at("auth.password"),
                    format!("must be 1..={MAX_PASSWORD} bytes, got {}", password.len()),
                );
            }
        }
        if let Some(VrrpAuth::Hmac { keys }) = &inst.auth {
            if keys.is_empty() || keys.len() > HMAC_MAX_KEYS {
                v.err(
                    at("auth.keys"),
                    format!(
                        "must list 1..={HMAC_MAX_KEYS} keys (the first signs, all are accepted), got {}",
                        keys.len()
                    ),
                );
            }
            for (k, key) in keys.iter().enumerate() {
                if key.len() < HMAC_MIN_KEY_LEN {
                    v.err(
                        at(&format!("auth.keys[{k}]")),
                        format!(
                            "must be at least {HMAC_MIN_KEY_LEN} bytes, got {}",
                            key.len()
                        ),
                    );
                }
            }
        }
        if inst.priority == 255 && !inst.preempt {
            v.err(
                at("preempt"),
                "an address owner (priority 255) always takes over; `preempt: false` cannot apply",
            );
        }
        let vip_ips = check_vips(&mut v, i, inst, &mut vips_seen);
        if vip_ips.iter().any(IpAddr::is_ipv6) {
            check_ipv6_instance(&mut v, i, inst);
        }
        if let Some(src) = inst.src_ip {
            if vip_ips.contains(&IpAddr::V4(src)) {
                v.err(
                    at("src_ip"),
                    format!("{src} is one of this instance's VIPs"),
                );
            }
        }
        let mut peers = BTreeSet::new();
        for (k, peer) in inst.unicast_peers.iter().enumerate() {
            let p = format!("vrrp.instances[{i}].unicast_peers[{k}]");
            if peer.is_multicast()
                || peer.is_unspecified()
                || peer.is_broadcast()
                || peer.is_loopback()
            {
                v.err(p, format!("{peer} is not a unicast peer address"));
            } else if vip_ips.contains(&IpAddr::V4(*peer)) {
                v.err(p, format!("{peer} is one of this instance's VIPs"));
            } else if Some(*peer) == inst.src_ip {
                v.err(p, format!("{peer} is this node's own src_ip"));
            } else if !peers.insert(*peer) {
                v.err(p, format!("duplicate peer {peer}"));
            }
        }
        for (k, t) in inst.track.iter().enumerate() {
            if let TrackWeight::Weight(w) = t.weight {
                let p = format!("vrrp.instances[{i}].track[{k}].weight");
                if w == 0 {
                    v.err(
                        p,
                        "0 has no effect: use a non-zero weight, or `fault` to go FAULT while failing",
                    );
                } else if !(-253..=253).contains(&w) {
                    v.err(p, format!("{w} is outside -253..=253"));
                }
            }
        }
    }
    v.0
}

/// The VIP list of instance `i`: count, syntax (the parser `run` uses) and uniqueness across
/// instances. Returns the addresses that parsed.
fn check_vips(
    v: &mut Out,
    i: usize,
    inst: &super::schema::VrrpInstanceConfig,
    seen: &mut BTreeMap<IpAddr, usize>,
) -> Vec<IpAddr> {
    let list = &inst.virtual_ipaddress;
    let at = format!("vrrp.instances[{i}].virtual_ipaddress");
    if list.is_empty() {
        v.err(&at, "must list at least one address");
    }
    if list.len() > MAX_VIPS {
        v.err(
            &at,
            format!(
                "at most {MAX_VIPS} addresses fit in a VRRPv2 advert, got {}",
                list.len()
            ),
        );
    }
    let mut ips = Vec::new();
    // The family of the first address that parsed: one family per instance (an advert carries
    // the addresses of its own IP version only; keepalived requires the same).
    let mut family: Option<(usize, IpAddr)> = None;
    for (k, vip) in list.iter().enumerate() {
        let p = format!("{at}[{k}]");
        match super::vip::parse_vip(vip) {
            Err(e) => v.err(p, e),
            Ok(parsed) => {
                match family {
                    None => family = Some((k, parsed.addr)),
                    Some((first, a)) if a.is_ipv4() != parsed.addr.is_ipv4() => {
                        v.err(
                            &p,
                            format!(
                                "{} is {} but {at}[{first}] ({a}) is {}: one address family per \
                                 instance (a VRRP advert carries one); put the {} VIPs in an \
                                 instance of their own",
                                parsed.addr,
                                family_name(parsed.addr),
                                family_name(a),
                                family_name(parsed.addr)
                            ),
                        );
                        continue;
                    }
                    Some(_) => {}
                }
                if let Some(j) = seen.insert(parsed.addr, i) {
                    let whose = if j == i {
                        "listed twice in this instance".to_string()
                    } else {
                        format!("already a VIP of vrrp.instances[{j}]")
                    };
                    v.err(p, format!("{} is {whose}", parsed.addr));
                }
                ips.push(parsed.addr);
            }
        }
    }
    ips
}

fn family_name(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// What an instance with IPv6 VIPs needs: VRRPv3 (RFC 3768 is IPv4 only), multicast to
/// ff02::12 from the interface's link-local address (RFC 5798 §5.1.2).
fn check_ipv6_instance(v: &mut Out, i: usize, inst: &super::schema::VrrpInstanceConfig) {
    let at = |k: &str| format!("vrrp.instances[{i}].{k}");
    if inst.version != 3 {
        v.err(
            at("virtual_ipaddress"),
            "IPv6 VIPs need `version: 3` (VRRPv2, RFC 3768, is IPv4 only; keepalived: vrrp_version 3)",
        );
    }
    if inst.src_ip.is_some() {
        v.err(
            at("src_ip"),
            "an IPv6 instance sends from the interface's link-local address (RFC 5798 §5.1.2.1): remove src_ip",
        );
    }
    if !inst.unicast_peers.is_empty() {
        v.err(
            at("unicast_peers"),
            "unicast peers are IPv4 only: an IPv6 instance advertises to ff02::12",
        );
    }
}

/// A Linux interface name: 1..=15 bytes, no '/', whitespace or ':'.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\t', ':']) {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(extra: &str) -> Vec<String> {
        let yaml = format!(
            "instances:\n  - {{ name: VI_1, interface: eth0, virtual_router_id: 33, priority: 100, virtual_ipaddress: [192.168.3.100/24], {extra} }}\n"
        );
        let cfg: VrrpConfig = serde_saphyr::from_str(&yaml).unwrap();
        check(&cfg).iter().map(|b| b.to_string()).collect()
    }

    #[test]
    fn version_3_takes_centisecond_intervals_and_no_auth() {
        assert!(one("version: 3, advert_int: 100ms").is_empty());
        assert!(one("version: 3, advert_int: 10ms").is_empty());
        assert!(one("version: 3, advert_int: 40950ms").is_empty());
        assert!(one("version: 3, advert_int: 1").is_empty());
        for bad in ["5ms", "105ms", "41s"] {
            let e = one(&format!("version: 3, advert_int: {bad}"));
            assert!(
                e[0].contains("advert_int") && e[0].contains("VRRPv3"),
                "{bad}: {e:?}"
            );
        }
        let e = one("version: 3, auth: { type: pass, password: \"1111\" }");
        assert!(
            e[0].contains(".auth: VRRPv3 has no authentication"),
            "{e:?}"
        );
        assert!(one("version: 3, auth: { type: none }").is_empty());
    }

    fn one_with(vips: &str, extra: &str) -> Vec<String> {
        let yaml = format!(
            "instances:\n  - {{ name: VI_1, interface: eth0, virtual_router_id: 33, priority: 100, virtual_ipaddress: [{vips}], {extra} }}\n"
        );
        let cfg: VrrpConfig = serde_saphyr::from_str(&yaml).unwrap();
        check(&cfg).iter().map(|b| b.to_string()).collect()
    }

    #[test]
    fn ipv6_vips_need_version_3_and_one_family_per_instance() {
        assert!(one_with("\"fd00:3::100/64\", \"fd00:3::101/64\"", "version: 3").is_empty());
        let e = one_with("\"fd00:3::100/64\"", "version: 2");
        assert!(
            e[0].starts_with("vrrp.instances[0].virtual_ipaddress: IPv6 VIPs need `version: 3`"),
            "{e:?}"
        );
        let e = one_with("192.168.3.100/24, \"fd00:3::100/64\"", "version: 3");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("vrrp.instances[0].virtual_ipaddress[1]: fd00:3::100 is IPv6 but vrrp.instances[0].virtual_ipaddress[0] (192.168.3.100) is IPv4: one address family per instance"),
            "{e:?}"
        );
        let e = one_with(
            "\"fd00:3::100/64\"",
            "version: 3, src_ip: 192.168.3.21, unicast_peers: [192.168.3.22]",
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("vrrp.instances[0].src_ip: an IPv6 instance")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m
                    .starts_with("vrrp.instances[0].unicast_peers: unicast peers are IPv4 only")),
            "{e:?}"
        );
    }

    #[test]
    fn version_2_keeps_whole_seconds_and_other_versions_are_refused() {
        assert!(one("advert_int: 1").is_empty());
        let e = one("advert_int: 100ms");
        assert!(e[0].contains("VRRPv2 needs whole seconds"), "{e:?}");
        let e = one("version: 4");
        assert!(e[0].contains(".version: must be 2 or 3"), "{e:?}");
    }
}
