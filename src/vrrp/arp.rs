//! Gratuitous ARP for the VIPs of a new Master: frame layout (pure) and sending through a packet
//! socket.
//!
//! Frame (RULES.md, keepalived vector [4]): Ethernet dst ff:ff:ff:ff:ff:ff, src = interface MAC,
//! ethertype 0x0806; ARP request (op 1), sender = (MAC, VIP), target = (ff:ff:ff:ff:ff:ff, VIP).
//! The same socket sends the unsolicited Neighbour Advertisements of IPv6 VIPs (`ndisc.rs`).
//! Owns nothing else: when and how often to send is the FSM's and the runner's business.

use pnet::datalink;
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::util::MacAddr;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

/// Ethernet header (14) + ARP for IPv4 over Ethernet (28); veth sends it unpadded.
pub const GARP_FRAME_LEN: usize = 42;

/// Builds the gratuitous ARP request announcing that `vip` is at `mac`.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let mut frame = [0u8; GARP_FRAME_LEN];
    let mac = MacAddr::from(mac);
    // The buffers are exactly large enough, so the constructors cannot fail; fall back to an
    // all-zero frame (never sent as valid ARP) rather than panic if pnet ever disagrees.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[14..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(vip);
        arp.set_target_hw_addr(MacAddr::broadcast());
        arp.set_target_proto_addr(vip);
    }
    frame
}

/// Sends gratuitous ARPs on one interface through one packet socket, opened once.
///
/// The socket is `AF_PACKET`/`SOCK_RAW` with protocol 0: it receives nothing (no copy of the
/// interface's inbound traffic is ever queued to it) and it never sets the interface promiscuous.
/// pnet's channel did both (its `Config` defaults to `promiscuous: true`), and opening it per
/// burst made the kernel log `entered/left promiscuous mode` and emit link events every time.
#[derive(Clone)]
pub struct GarpSender {
    fd: Arc<OwnedFd>,
    ifindex: i32,
    mac: [u8; 6],
}

impl GarpSender {
    /// Looks the interface up and opens the socket. `Ok(None)` for interfaces that do no ARP
    /// (IFF_NOARP, no MAC).
    pub fn new(interface: &str) -> io::Result<Option<GarpSender>> {
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no interface {interface}"))
            })?;
        if iface.flags & (libc::IFF_NOARP as u32) != 0 {
            return Ok(None);
        }
        let mac = match iface.mac {
            Some(m) if m != MacAddr::zero() => m.octets(),
            _ => return Ok(None),
        };
        let ifindex = i32::try_from(iface.index)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Some(GarpSender {
            fd: Arc::new(fd),
            ifindex,
            mac,
        }))
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Announces every VIP `rounds` times: a gratuitous ARP per IPv4 VIP, an unsolicited
    /// Neighbour Advertisement per IPv6 VIP.
    pub fn send(&self, vips: &[IpAddr], rounds: u32) -> io::Result<()> {
        for _ in 0..rounds {
            for vip in vips {
                match vip {
                    IpAddr::V4(v) => {
                        self.send_frame(libc::ETH_P_ARP, [0xff; 6], &garp_frame(self.mac, *v))?
                    }
                    IpAddr::V6(v) => self.send_frame(
                        libc::ETH_P_IPV6,
                        super::ndisc::ALL_NODES_MAC,
                        &super::ndisc::na_frame(self.mac, *v),
                    )?,
                }
            }
        }
        Ok(())
    }

    fn send_frame(&self, proto: libc::c_int, dst: [u8; 6], frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = (proto as u16).to_be();
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&dst);
        // SAFETY: the frame and address outlive the call; lengths are theirs.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn garp_frame_matches_keepalived_vectors_4_and_5() {
        let vip = Ipv4Addr::new(192, 168, 3, 100);
        assert_eq!(
            garp_frame([2, 0, 0, 0, 3, 0x22], vip).to_vec(),
            hex("ffffffffffff02000000032208060001080006040001020000000322c0a80364ffffffffffffc0a80364")
        );
        assert_eq!(
            garp_frame([2, 0, 0, 0, 3, 0x21], vip).to_vec(),
            hex("ffffffffffff02000000032108060001080006040001020000000321c0a80364ffffffffffffc0a80364")
        );
    }
}
