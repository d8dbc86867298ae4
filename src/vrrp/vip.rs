//! Virtual IP addresses through rtnetlink: add, remove, list, and watch address/link events.
//!
//! Owns the netlink side only. Adding an address that is already there and removing one that is
//! already gone both succeed, so the runner can apply "hold" / "release" idempotently.

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::LinkFlag;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};
use tokio::sync::broadcast;

pub use crate::config::vip::{parse_vip, Vip};

/// Something that happened to an interface, from the kernel's netlink broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    AddrRemoved { ifindex: u32, addr: Ipv4Addr },
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

    /// IPv4 addresses on the interface, in the kernel's order (primary first).
    pub async fn ipv4_addrs(&self, ifindex: u32) -> std::io::Result<Vec<Vip>> {
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute();
        while let Some(m) = s.try_next().await.map_err(io_err)? {
            if m.header.family != AddressFamily::Inet || m.header.index != ifindex {
                continue;
            }
            if let Some(addr) = local_v4(&m) {
                out.push(Vip {
                    addr,
                    prefix: m.header.prefix_len,
                });
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
        let mut req = self
            .handle
            .address()
            .add(ifindex, IpAddr::V4(vip.addr), vip.prefix);
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
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = vip.prefix;
        msg.header.index = ifindex;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(vip.addr)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(vip.addr)));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}

fn local_v4(m: &AddressMessage) -> Option<Ipv4Addr> {
    let mut addr = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(IpAddr::V4(v)) => return Some(*v),
            AddressAttribute::Address(IpAddr::V4(v)) => addr = Some(*v),
            _ => {}
        }
    }
    addr
}

fn link_flags_up(flags: &[LinkFlag]) -> bool {
    flags.contains(&LinkFlag::Up) && flags.contains(&LinkFlag::Running)
}

/// rtnetlink multicast groups (RTNLGRP_*), joined with NETLINK_ADD_MEMBERSHIP.
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;

/// Subscribes to address and link events; they are broadcast to every instance.
pub fn monitor() -> std::io::Result<broadcast::Sender<NetEvent>> {
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection()?;
    use netlink_sys::AsyncSocket;
    let sock = conn.socket_mut().socket_mut();
    // Multicast delivery needs a bound socket.
    sock.bind_auto()?;
    sock.add_membership(RTNLGRP_LINK)?;
    sock.add_membership(RTNLGRP_IPV4_IFADDR)?;
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
                RouteNetlinkMessage::DelAddress(m) if m.header.family == AddressFamily::Inet => {
                    local_v4(&m).map(|addr| NetEvent::AddrRemoved {
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
                addr: Ipv4Addr::new(192, 168, 3, 100),
                prefix: 24
            }
        );
        assert_eq!(parse_vip("10.0.0.1").unwrap().prefix, 32);
        assert!(parse_vip("10.0.0.1/33").is_err());
        assert!(parse_vip("224.0.0.18/32").is_err());
        assert!(parse_vip("nonsense").is_err());
    }
}
