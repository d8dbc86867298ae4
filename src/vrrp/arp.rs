//! Gratuitous ARP for the VIPs of a new Master: frame layout (pure) and sending through pnet.
//!
//! Frame (RULES.md, keepalived vector [4]): Ethernet dst ff:ff:ff:ff:ff:ff, src = interface MAC,
//! ethertype 0x0806; ARP request (op 1), sender = (MAC, VIP), target = (ff:ff:ff:ff:ff:ff, VIP).
//! Owns nothing else: when and how often to send is the FSM's and the runner's business.

use pnet::datalink::{self, Channel, NetworkInterface};
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::util::MacAddr;
use std::io;
use std::net::Ipv4Addr;

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

/// Sends gratuitous ARPs on one interface.
#[derive(Clone)]
pub struct GarpSender {
    iface: NetworkInterface,
    mac: [u8; 6],
}

impl GarpSender {
    /// Looks the interface up. `Ok(None)` for interfaces that do no ARP (IFF_NOARP, no MAC).
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
        match iface.mac {
            Some(m) if m != MacAddr::zero() => Ok(Some(GarpSender {
                mac: m.octets(),
                iface,
            })),
            _ => Ok(None),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Sends one gratuitous ARP per VIP, `rounds` times. The packet socket is opened per call
    /// and closed after, so it never queues the interface's inbound traffic while idle.
    pub fn send(&self, vips: &[Ipv4Addr], rounds: u32) -> io::Result<()> {
        let cfg = datalink::Config {
            read_buffer_size: 64,
            ..Default::default()
        };
        let mut tx = match datalink::channel(&self.iface, cfg)? {
            Channel::Ethernet(tx, _rx) => tx,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "not an Ethernet channel",
                ))
            }
        };
        for _ in 0..rounds {
            for vip in vips {
                let frame = garp_frame(self.mac, *vip);
                if let Some(r) = tx.send_to(&frame, None) {
                    r?;
                }
            }
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
