//! A UDP socket that answers each datagram from the address it was sent to (`IP_PKTINFO`).
//!
//! Needed because the server listens on 0.0.0.0 and clients reach it through a NAT redirect: a
//! host process asking the cluster DNS address is redirected to 127.0.0.1, and conntrack only
//! translates the reply back if it comes from 127.0.0.1. Without `IP_PKTINFO` the kernel would pick
//! the source by route (the host's own address), the reply would not match the connection, and the
//! client's connected socket would drop it. IPv6 sockets reply by route.

use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{self, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub len: usize,
    pub peer: SocketAddr,
    /// The local address it was sent to (IPv4 sockets only).
    pub local: Option<Ipv4Addr>,
}

/// A bound UDP socket that replies from the receiving address.
pub struct ReplyingSocket {
    socket: UdpSocket,
    pktinfo: bool,
}

impl ReplyingSocket {
    /// Wraps `socket`, asking the kernel for each datagram's destination when it is IPv4.
    pub fn new(socket: UdpSocket) -> std::io::Result<Self> {
        let pktinfo = socket.local_addr()?.is_ipv4();
        if pktinfo {
            socket::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
        }
        Ok(Self { socket, pktinfo })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives one datagram into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<Datagram> {
        if !self.pktinfo {
            let (len, peer) = self.socket.recv_from(buf).await?;
            return Ok(Datagram { len, peer, local: None });
        }
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(buf)];
                let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
                let msg = socket::recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
                let local = msg.cmsgs()?.find_map(|c| match c {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        Some(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes()))
                    }
                    _ => None,
                });
                let peer = msg.address.map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
                let peer = peer.ok_or_else(|| std::io::Error::other("datagram without a source address"))?;
                Ok(Datagram { len: msg.bytes, peer, local })
            })
            .await
    }

    /// Sends `data` to `peer`, from `local` when known.
    pub async fn send(&self, data: &[u8], peer: SocketAddr, local: Option<Ipv4Addr>) -> std::io::Result<()> {
        let (Some(local), SocketAddr::V4(peer_v4)) = (local.filter(|_| self.pktinfo), peer) else {
            self.socket.send_to(data, peer).await?;
            return Ok(());
        };
        let fd = self.socket.as_raw_fd();
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(local.octets()) },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let to = SockaddrIn::from(peer_v4);
        self.socket
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(data)];
                socket::sendmsg(fd, &iov, &[ControlMessage::Ipv4PacketInfo(&info)], MsgFlags::empty(), Some(&to))?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_come_from_the_address_the_request_was_sent_to() {
        let server = ReplyingSocket::new(UdpSocket::bind("0.0.0.0:0").await.expect("bind")).expect("pktinfo");
        let port = server.local_addr().expect("addr").port();
        // 127.0.0.2 is as local as 127.0.0.1; a reply by route would come from 127.0.0.1.
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client.connect(("127.0.0.2", port)).await.expect("connect");
        client.send(b"ping").await.expect("send");
        let mut buf = [0u8; 16];
        let got = server.recv(&mut buf).await.expect("recv");
        assert_eq!((&buf[..got.len], got.local), (&b"ping"[..], Some(Ipv4Addr::new(127, 0, 0, 2))));
        assert_eq!(got.peer, client.local_addr().expect("addr"));
        server.send(b"pong", got.peer, got.local).await.expect("send");
        // The connected client only accepts datagrams from 127.0.0.2.
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), client.recv(&mut buf))
            .await
            .expect("reply in time")
            .expect("recv");
        assert_eq!(&buf[..n], b"pong");
    }
}
