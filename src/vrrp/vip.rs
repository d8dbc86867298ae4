//! Virtual IP addresses through rtnetlink: add, remove, list, and watch address/link events.
//!
//! Owns the netlink side only, for IPv4 and IPv6 VIPs (IPv6 ones are added with IFA_F_NODAD,
//! as keepalived does: duplicate address detection would hold a moving VIP tentative for a
//! second or more, and the peer that had it has released it). Adding an address that is already there and removing one that is
//! already gone both succeed, so the runner can apply "hold" / "release" idempotently.

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlag, AddressHeaderFlag, AddressMessage,
};
use netlink_packet_route::link::LinkFlag;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv6Addr};
use tokio::sync::broadcast;

pub use crate::config::vip::{parse_vip, Vip};

/// An address on an interface as the kernel reports it (see `Netlink::addr_states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrState {
    pub vip: Vip,
    /// Remaining valid lifetime in seconds; None: forever (not added by fdfs-ha).
    pub valid: Option<u32>,
    /// Last added or renewed, in 1/100 s since boot (ifa_cacheinfo.tstamp).
    pub tstamp: u32,
}

/// Something that happened to an interface, from the kernel's netlink broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    AddrRemoved { ifindex: u32, addr: IpAddr },
    Link { ifindex: u32, up: bool },
}

fn io_err(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// A netlink handle for address changes.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Must be called inside a tokio runtime (the connection runs as a task).
    pub fn connect() -> std::io::Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link_index(&self, name: &str) -> std::io::Result<u32> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.header.index),
            Ok(None) => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no interface {name}"),
            )),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no interface {name}"),
            )),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Whether the link is administratively up and running (carrier).
    pub async fn link_up(&self, ifindex: u32) -> std::io::Result<bool> {
        let mut links = self.handle.link().get().match_index(ifindex).execute();
        match links.try_next().await.map_err(io_err)? {
            Some(l) => Ok(link_flags_up(&l.header.flags)),
            None => Ok(false),
        }
    }

    /// IPv4 and IPv6 addresses on the interface, in the kernel's order (primary first).
    pub async fn addrs(&self, ifindex: u32) -> std::io::Result<Vec<Vip>> {
        Ok(self
            .addr_messages(ifindex)
            .await?
            .iter()
            .filter_map(|m| {
                local_addr(m).map(|addr| Vip {
                    addr,
                    prefix: m.header.prefix_len,
                })
            })
            .collect())
    }

    /// Like `addrs`, with each address's remaining valid lifetime in seconds (None: forever).
    /// A VIP with a lifetime was added by fdfs-ha (see `add`).
    pub async fn addrs_with_lifetime(
        &self,
        ifindex: u32,
    ) -> std::io::Result<Vec<(Vip, Option<u32>)>> {
        let states = self.addr_states(ifindex).await?;
        Ok(states.into_iter().map(|s| (s.vip, s.valid)).collect())
    }

    /// Each address with its remaining valid lifetime (None: forever) and `tstamp`, when it was
    /// last added or renewed (1/100 s since boot): a changed stamp means someone renewed it.
    pub async fn addr_states(&self, ifindex: u32) -> std::io::Result<Vec<AddrState>> {
        Ok(self
            .addr_messages(ifindex)
            .await?
            .iter()
            .filter_map(|m| {
                let addr = local_addr(m)?;
                let info = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::CacheInfo(c) => Some(*c),
                    _ => None,
                });
                Some(AddrState {
                    vip: Vip {
                        addr,
                        prefix: m.header.prefix_len,
                    },
                    valid: info.map(|c| c.ifa_valid).filter(|v| *v != u32::MAX),
                    tstamp: info.map_or(0, |c| c.tstamp),
                })
            })
            .collect())
    }

    /// The interface's link-local IPv6 address that has passed duplicate address detection:
    /// what IPv6 adverts are sent from (RFC 5798 §5.1.2.1). None while there is none yet.
    pub async fn link_local_v6(&self, ifindex: u32) -> std::io::Result<Option<Ipv6Addr>> {
        for m in self.addr_messages(ifindex).await? {
            if m.header.family != AddressFamily::Inet6 || tentative(&m) {
                continue;
            }
            if let Some(IpAddr::V6(a)) = local_addr(&m) {
                if (a.segments()[0] & 0xffc0) == 0xfe80 {
                    return Ok(Some(a));
                }
            }
        }
        Ok(None)
    }

    async fn addr_messages(&self, ifindex: u32) -> std::io::Result<Vec<AddressMessage>> {
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute();
        while let Some(m) = s.try_next().await.map_err(io_err)? {
            if m.header.index == ifindex
                && matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6)
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Adds `vip`, or refreshes it; already present is success.
    ///
    /// With `lifetime_secs`, the address carries a kernel lifetime (valid_lft = preferred_lft)
    /// that the live Master keeps renewing: if fdfs-ha is killed (-9) the kernel removes the VIP
    /// by itself once the lifetime runs out, instead of the dead node answering ARP for it next
    /// to the new Master until someone restarts it.
    pub async fn add(
        &self,
        ifindex: u32,
        vip: Vip,
        lifetime_secs: Option<u32>,
    ) -> std::io::Result<()> {
        let mut req = self.handle.address().add(ifindex, vip.addr, vip.prefix);
        if vip.addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(vec![AddressFlag::Nodad]));
        }
        if let Some(l) = lifetime_secs {
            req = req.replace();
            // CacheInfo is non-exhaustive: start from its default and set the lifetimes.
            let mut info = netlink_packet_route::address::CacheInfo::default();
            info.ifa_preferred = l;
            info.ifa_valid = l;
            req.message_mut()
                .attributes
                .push(AddressAttribute::CacheInfo(info));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Removes `vip`; already absent is success.
    pub async fn del(&self, ifindex: u32, vip: Vip) -> std::io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = if vip.addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        msg.header.prefix_len = vip.prefix;
        msg.header.index = ifindex;
        if vip.addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(vip.addr));
        }
        msg.attributes.push(AddressAttribute::Address(vip.addr));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}

/// The address of an IPv4 or IPv6 address message (IPv4: IFA_LOCAL, the interface's own side
/// of a point-to-point link; IPv6 sends IFA_ADDRESS only).
fn local_addr(m: &AddressMessage) -> Option<IpAddr> {
    let mut addr = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(v) => return Some(*v),
            AddressAttribute::Address(v) => addr = Some(*v),
            _ => {}
        }
    }
    addr
}

/// Still in duplicate address detection (or failed it): not usable as a source.
fn tentative(m: &AddressMessage) -> bool {
    let in_attr = m.attributes.iter().any(|a| {
        matches!(a, AddressAttribute::Flags(f)
            if f.contains(&AddressFlag::Tentative) || f.contains(&AddressFlag::Dadfailed))
    });
    in_attr
        || m.header.flags.contains(&AddressHeaderFlag::Tentative)
        || m.header.flags.contains(&AddressHeaderFlag::Dadfailed)
}

fn link_flags_up(flags: &[LinkFlag]) -> bool {
    flags.contains(&LinkFlag::Up) && flags.contains(&LinkFlag::Running)
}

/// rtnetlink multicast groups (RTNLGRP_*), joined with NETLINK_ADD_MEMBERSHIP.
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

/// Subscribes to address and link events; they are broadcast to every instance.
pub fn monitor() -> std::io::Result<broadcast::Sender<NetEvent>> {
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection()?;
    use netlink_sys::AsyncSocket;
    let sock = conn.socket_mut().socket_mut();
    // Multicast delivery needs a bound socket.
    sock.bind_auto()?;
    sock.add_membership(RTNLGRP_LINK)?;
    sock.add_membership(RTNLGRP_IPV4_IFADDR)?;
    sock.add_membership(RTNLGRP_IPV6_IFADDR)?;
    tokio::spawn(conn);
    let (tx, _) = broadcast::channel(256);
    let events = tx.clone();
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let ev = match msg.payload {
                netlink_packet_core::NetlinkPayload::InnerMessage(m) => m,
                _ => continue,
            };
            let out = match ev {
                RouteNetlinkMessage::DelAddress(m)
                    if matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) =>
                {
                    local_addr(&m).map(|addr| NetEvent::AddrRemoved {
                        ifindex: m.header.index,
                        addr,
                    })
                }
                RouteNetlinkMessage::NewLink(l) => Some(NetEvent::Link {
                    ifindex: l.header.index,
                    up: link_flags_up(&l.header.flags),
                }),
                RouteNetlinkMessage::DelLink(l) => Some(NetEvent::Link {
                    ifindex: l.header.index,
                    up: false,
                }),
                _ => None,
            };
            if let Some(e) = out {
                // No receivers yet (or any more) is fine.
                let _ = events.send(e);
            }
        }
        tracing::warn!(target: "fdfs_ha::vrrp", "netlink event stream ended");
    });
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_parse_like_keepalived_virtual_ipaddress() {
        assert_eq!(
            parse_vip("192.168.3.100/24").unwrap(),
            Vip {
                addr: IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 3, 100)),
                prefix: 24
            }
        );
        assert_eq!(parse_vip("10.0.0.1").unwrap().prefix, 32);
        assert!(parse_vip("10.0.0.1/33").is_err());
        assert!(parse_vip("224.0.0.18/32").is_err());
        assert!(parse_vip("nonsense").is_err());
    }
}
