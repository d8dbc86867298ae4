//! The raw IPv6 socket for protocol 112 (VRRPv3 over IPv6, RFC 5798 §5.1.2): sends adverts to
//! ff02::12 from the interface's link-local address with hop limit 255, and receives them with
//! their source, destination and hop limit (a raw IPv6 socket strips the header, so these come
//! as IPV6_PKTINFO / IPV6_HOPLIMIT control messages). Owns socket options only; bytes come from
//! and go to `packet_v3.rs`.

use super::packet::IPPROTO_VRRP;
use super::packet_v3::VRRP_GROUP_V6;
use super::socket::setsockopt_int;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;

/// Only the groups joined on this socket (linux/in6.h; not in the libc crate for glibc).
const IPV6_MULTICAST_ALL: libc::c_int = 29;

/// What a received advert came with besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
}

pub struct VrrpSocket6 {
    fd: AsyncFd<Socket>,
    src: Ipv6Addr,
}

impl VrrpSocket6 {
    /// Opens the socket on `interface` (index `ifindex`), sending from its link-local `src`.
    pub fn open(interface: &str, ifindex: u32, src: Ipv6Addr) -> io::Result<VrrpSocket6> {
        let sock = Socket::new(
            Domain::IPV6,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        sock.bind_device(Some(interface.as_bytes()))?;
        // The source of every advert: bound, so the kernel never picks another address.
        sock.bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, ifindex)))?;
        sock.set_multicast_hops_v6(255)?;
        sock.set_unicast_hops_v6(255)?;
        sock.set_multicast_loop_v6(false)?;
        sock.set_multicast_if_v6(ifindex)?;
        setsockopt_int(&sock, libc::IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)?;
        setsockopt_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        setsockopt_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        sock.join_multicast_v6(&VRRP_GROUP_V6, ifindex)?;
        // Traffic class 0xc0 (network control), as keepalived sends.
        setsockopt_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 0xc0)?;
        sock.set_nonblocking(true)?;
        // SAFETY: the Socket owns its fd, keeps it open and unchanged while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(sock) }.map_err(|e| e.into_parts().1)?;
        Ok(VrrpSocket6 { fd, src })
    }

    pub fn src(&self) -> Ipv6Addr {
        self.src
    }

    /// Sends one VRRP message to ff02::12 (the checksum depends on the destination).
    pub fn send_with(&self, msg_for: impl Fn(Ipv6Addr) -> Vec<u8>) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV6::new(VRRP_GROUP_V6, 0, 0, 0));
        self.fd
            .get_ref()
            .send_to(&msg_for(VRRP_GROUP_V6), &to)
            .map(|_| ())
    }

    /// A message already queued, without waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(usize, Meta6)> {
        recvmsg6(self.fd.get_ref(), buf).ok()
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Meta6)> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| recvmsg6(s.get_ref(), buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// recvmsg(2) with the source address and the IPV6_PKTINFO / IPV6_HOPLIMIT control messages.
/// A message without them (never from this socket) gets hop limit 0, which the checks drop.
fn recvmsg6(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, Meta6)> {
    // SAFETY: all-zero is valid for these plain C structs.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16]; // 128 bytes, aligned for cmsghdr
                                  // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::addr_of_mut!(from).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in msg refers to live buffers of the stated lengths.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut meta = Meta6 {
        src: Ipv6Addr::from(from.sin6_addr.s6_addr),
        dst: Ipv6Addr::UNSPECIFIED,
        hop_limit: 0,
    };
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                    meta.dst = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                }
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let h: libc::c_int = std::ptr::read_unaligned(data.cast());
                    meta.hop_limit = u8::try_from(h).unwrap_or(0);
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, meta))
}
