//! The raw IPv4 socket for protocol 112: sends adverts (multicast 224.0.0.18 or unicast peers)
//! and receives them. Owns socket options only; bytes come from and go to `packet.rs`.
//!
//! Like keepalived we write the IP header ourselves (IP_HDRINCL) so that TTL is 255, TOS 0xc0 and
//! the source is the interface's primary address, never a VIP. The socket is bound to the
//! interface, joins 224.0.0.18 there, and has multicast loop off (we must not hear ourselves).

use super::packet::{self, VRRP_GROUP};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    src: Ipv4Addr,
    /// Empty = multicast to 224.0.0.18.
    unicast_peers: Vec<Ipv4Addr>,
}

/// True when an error means we lack CAP_NET_RAW / CAP_NET_ADMIN.
pub fn is_permission_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

pub fn privilege_hint() -> &'static str {
    "VRRP needs root, or CAP_NET_RAW (raw sockets, ARP) and CAP_NET_ADMIN (VIPs)"
}

pub(super) fn setsockopt_int(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a c_int of the stated length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// IP_MULTICAST_IF by interface index (struct ip_mreqn), which socket2 only offers by address.
fn set_multicast_if_index(sock: &Socket, ifindex: u32) -> io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as libc::c_int,
    };
    // SAFETY: a valid fd and a pointer to an ip_mreqn of the stated length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl VrrpSocket {
    /// Opens the socket on `interface` (index `ifindex`), sending from `src`.
    pub fn open(
        interface: &str,
        ifindex: u32,
        src: Ipv4Addr,
        unicast_peers: Vec<Ipv4Addr>,
    ) -> io::Result<VrrpSocket> {
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(packet::IPPROTO_VRRP))),
        )?;
        sock.set_header_included_v4(true)?;
        sock.bind_device(Some(interface.as_bytes()))?;
        // Only the groups joined on this socket, not every group any socket joined.
        setsockopt_int(&sock, libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, 0)?;
        sock.set_multicast_loop_v4(false)?;
        set_multicast_if_index(&sock, ifindex)?;
        if unicast_peers.is_empty() {
            sock.join_multicast_v4_n(
                &VRRP_GROUP,
                &socket2::InterfaceIndexOrAddress::Index(ifindex),
            )?;
        }
        sock.set_nonblocking(true)?;
        // SAFETY: the Socket owns its fd, keeps it open and unchanged while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(sock) }.map_err(|e| e.into_parts().1)?;
        Ok(VrrpSocket {
            fd,
            src,
            unicast_peers,
        })
    }

    pub fn src(&self) -> Ipv4Addr {
        self.src
    }

    /// Sends one VRRP message (IP header added here) to the group or to every unicast peer.
    pub fn send(&self, vrrp_msg: &[u8]) -> io::Result<()> {
        self.send_with(|_| vrrp_msg.to_vec())
    }

    /// Like `send`, with the message built per destination (VRRPv3's checksum covers it).
    pub fn send_with(&self, msg_for: impl Fn(Ipv4Addr) -> Vec<u8>) -> io::Result<()> {
        let group = [VRRP_GROUP];
        let dsts: &[Ipv4Addr] = if self.unicast_peers.is_empty() {
            &group
        } else {
            &self.unicast_peers
        };
        let mut first_err = None;
        for dst in dsts {
            let pkt = packet::encode_ipv4(self.src, *dst, 0, &msg_for(*dst));
            let to = SocketAddr::V4(SocketAddrV4::new(*dst, 0));
            if let Err(e) = self.fd.get_ref().send_to(&pkt, &to.into()) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A packet already queued on the socket, without waiting (`None` when there is none).
    /// The socket is non-blocking; asking the kernel directly also sees a packet whose
    /// readiness the runtime has not registered yet.
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: MaybeUninit<u8> has the layout of u8; recv only writes initialised bytes.
        let uninit: &mut [MaybeUninit<u8>] =
            unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.fd.get_ref().recv(uninit).ok()
    }

    /// Receives one IPv4 packet (header included, as raw sockets deliver it).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: MaybeUninit<u8> has the layout of u8; recv only writes initialised bytes.
            let uninit: &mut [MaybeUninit<u8>] =
                unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            match guard.try_io(|s| s.get_ref().recv(uninit)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// An instance's advert socket: IPv4 (VRRPv2 or v3) or IPv6 (VRRPv3, `socket6.rs`).
pub enum AdvertSocket {
    V4(VrrpSocket),
    V6(super::socket6::VrrpSocket6),
}

/// A received message: its length, and for IPv6 what the header carried (an IPv4 message
/// still has its header in the buffer).
pub type Received = (usize, Option<super::socket6::Meta6>);

impl AdvertSocket {
    pub fn src(&self) -> IpAddr {
        match self {
            AdvertSocket::V4(s) => IpAddr::V4(s.src()),
            AdvertSocket::V6(s) => IpAddr::V6(s.src()),
        }
    }

    /// The IPv4 source (VRRPv2's HMAC covers it); unspecified for IPv6.
    pub fn src_v4(&self) -> Ipv4Addr {
        match self {
            AdvertSocket::V4(s) => s.src(),
            AdvertSocket::V6(_) => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Sends one message per destination, built for it (its address is in v3's checksum).
    pub fn send_with(&self, msg_for: impl Fn(IpAddr) -> Vec<u8>) -> io::Result<()> {
        match self {
            AdvertSocket::V4(s) => s.send_with(|d| msg_for(IpAddr::V4(d))),
            AdvertSocket::V6(s) => s.send_with(|d| msg_for(IpAddr::V6(d))),
        }
    }

    pub fn try_recv(&self, buf: &mut [u8]) -> Option<Received> {
        match self {
            AdvertSocket::V4(s) => s.try_recv(buf).map(|n| (n, None)),
            AdvertSocket::V6(s) => s.try_recv(buf).map(|(n, m)| (n, Some(m))),
        }
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        match self {
            AdvertSocket::V4(s) => s.recv(buf).await.map(|n| (n, None)),
            AdvertSocket::V6(s) => s.recv(buf).await.map(|(n, m)| (n, Some(m))),
        }
    }
}
