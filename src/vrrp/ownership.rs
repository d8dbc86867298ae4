//! Which VIPs this node serves right now, for the HTTP servers' keep-alive decisions.
//!
//! A client's keep-alive connection to the VIP lives on the node that accepted it. When the VIP
//! moves (a preempt-back, a graceful stop), the next request on that connection reaches the new
//! Master, which knows nothing of it and resets it. So a node that stops serving a VIP closes its
//! idle connections to that VIP and answers the rest with `Connection: close` (what nginx does
//! on a graceful stop): clients reconnect, and their new connections follow the ARP switch.
//!
//! One value per node, not per process: the supervisor creates a [`VipOwner`], hands it to every
//! VRRP instance (which write it) and subscribes every HTTP server to it (which read it), so two
//! nodes in one process (tests) do not share it. With no VRRP configured no address is a VIP and
//! nothing changes.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
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

/// A node's VIP ownership, the writing side: cloned into every VRRP instance of the node; the
/// HTTP servers [`subscribe`](VipOwner::subscribe).
#[derive(Debug, Clone)]
pub struct VipOwner(Arc<watch::Sender<VipOwnership>>);

impl Default for VipOwner {
    fn default() -> Self {
        VipOwner(Arc::new(watch::channel(VipOwnership::default()).0))
    }
}

impl VipOwner {
    /// Registers an instance's VIPs (not served until `set_served`).
    pub fn configure<A: Into<IpAddr>>(&self, vips: impl IntoIterator<Item = A>) {
        self.0
            .send_modify(|o| o.configured.extend(vips.into_iter().map(Into::into)));
    }

    /// Marks an instance's VIPs as served or not; wakes the servers only on a change.
    pub fn set_served<A: Into<IpAddr>>(&self, vips: impl IntoIterator<Item = A>, served: bool) {
        self.0.send_if_modified(|o| {
            let mut changed = false;
            for ip in vips.into_iter().map(Into::into) {
                changed |= if served {
                    o.served.insert(ip)
                } else {
                    o.served.remove(&ip)
                };
            }
            changed
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<VipOwnership> {
        self.0.subscribe()
    }
}

/// What a server outside any VRRP node reads: no address is a VIP, every connection may be kept
/// alive.
pub fn no_vips() -> watch::Receiver<VipOwnership> {
    watch::channel(VipOwnership::default()).1
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
