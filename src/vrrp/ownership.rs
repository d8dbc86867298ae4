//! Which VIPs this node serves right now, for the HTTP servers' keep-alive decisions.
//!
//! A client's keep-alive connection to the VIP lives on the node that accepted it. When the VIP
//! moves (a preempt-back, a graceful stop), the next request on that connection reaches the new
//! Master, which knows nothing of it and resets it. So a node that stops serving a VIP closes its
//! idle connections to that VIP and answers the rest with `Connection: close` (what nginx does
//! on a graceful stop): clients reconnect, and their new connections follow the ARP switch.
//!
//! The node is one process, so this is one process-wide value: the VRRP runner writes it, the
//! HTTP servers read it. With no VRRP configured no address is a VIP and nothing changes.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use tokio::sync::watch;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipOwnership {
    /// Every VIP of every instance on this node.
    configured: HashSet<IpAddr>,
    /// The VIPs of instances that are Master and not handing over.
    served: HashSet<IpAddr>,
}

impl VipOwnership {
    /// Whether a connection accepted on `local` may be kept alive: always for a node address,
    /// only while this node serves it for a VIP.
    pub fn keep_alive(&self, local: IpAddr) -> bool {
        !self.configured.contains(&local) || self.served.contains(&local)
    }

    pub fn is_vip(&self, local: IpAddr) -> bool {
        self.configured.contains(&local)
    }

    /// Whether any VIP is configured here (with none, connections need no look at their
    /// local address).
    pub fn has_vips(&self) -> bool {
        !self.configured.is_empty()
    }
}

fn channel() -> &'static watch::Sender<VipOwnership> {
    static CHANNEL: OnceLock<watch::Sender<VipOwnership>> = OnceLock::new();
    CHANNEL.get_or_init(|| watch::channel(VipOwnership::default()).0)
}

/// Registers an instance's VIPs (not served until `set_served`).
pub fn configure(vips: impl IntoIterator<Item = Ipv4Addr>) {
    channel().send_modify(|o| o.configured.extend(vips.into_iter().map(IpAddr::V4)));
}

/// Marks an instance's VIPs as served or not; wakes the servers only on a change.
pub fn set_served(vips: impl IntoIterator<Item = Ipv4Addr>, served: bool) {
    channel().send_if_modified(|o| {
        let mut changed = false;
        for v in vips {
            let ip = IpAddr::V4(v);
            changed |= if served {
                o.served.insert(ip)
            } else {
                o.served.remove(&ip)
            };
        }
        changed
    });
}

pub fn subscribe() -> watch::Receiver<VipOwnership> {
    channel().subscribe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_keep_alive_and_vips_only_while_served() {
        let vip: IpAddr = "192.168.3.100".parse().unwrap();
        let node: IpAddr = "192.168.3.21".parse().unwrap();
        let mut o = VipOwnership::default();
        assert!(
            o.keep_alive(vip) && o.keep_alive(node),
            "no VRRP: nothing changes"
        );
        o.configured.insert(vip);
        assert!(!o.keep_alive(vip), "a VIP we do not serve");
        assert!(o.keep_alive(node));
        o.served.insert(vip);
        assert!(o.keep_alive(vip));
    }
}
