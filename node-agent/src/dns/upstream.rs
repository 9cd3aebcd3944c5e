//! Forwarding to the upstream resolvers: the request's bytes go unchanged to each upstream in turn
//! (over the client's transport, so a truncated UDP answer reaches the client, which retries over
//! TCP), each with a deadline; the first reply carrying the request's id comes back unchanged.
//! A fresh socket per request keeps replies from being mixed up or spoofed by port.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How the client asked (and how the request is forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers are configured")]
    NoUpstreams,
    #[error("upstream {addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("upstream {addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
}

/// The resolvers names outside the cluster go to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    addrs: Vec<SocketAddr>,
    /// Deadline of one attempt at one upstream.
    timeout: Duration,
}

impl Upstreams {
    pub fn new(addrs: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self { addrs, timeout }
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Sends `request` (whose id is `id`) to the upstreams in order until one answers.
    pub async fn forward(&self, request: &[u8], id: u16, transport: Transport) -> Result<Vec<u8>, ForwardError> {
        let mut last = ForwardError::NoUpstreams;
        for addr in &self.addrs {
            let attempt = async {
                match transport {
                    Transport::Udp => udp_exchange(*addr, request, id).await,
                    Transport::Tcp => tcp_exchange(*addr, request, id).await,
                }
            };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(source)) => last = ForwardError::Io { addr: *addr, source },
                Err(_) => last = ForwardError::Timeout { addr: *addr, timeout: self.timeout },
            }
        }
        Err(last)
    }
}

async fn udp_exchange(addr: SocketAddr, request: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    socket.send(request).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // A stray or late datagram with another id is not our answer; keep waiting.
        if is_reply_to(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(addr: SocketAddr, request: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    let len = u16::try_from(request.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "request longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await?;
    if !is_reply_to(&reply, id) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "reply with another id"));
    }
    Ok(reply)
}

/// Whether `bytes` is a response (QR set) with id `id`.
fn is_reply_to(bytes: &[u8], id: u16) -> bool {
    bytes.len() >= 12 && u16::from_be_bytes([bytes[0], bytes[1]]) == id && bytes[2] & 0x80 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query header with id `id`, and the matching reply.
    fn query(id: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q
    }

    fn reply_to(q: &[u8]) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r
    }

    #[tokio::test]
    async fn the_first_answering_upstream_wins_and_silence_is_a_timeout() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let answering = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let answering_addr = answering.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = answering.recv_from(&mut buf).await.expect("recv");
            // A stray reply with another id first: it must be skipped.
            let stray = reply_to(&query(1));
            answering.send_to(&stray, peer).await.expect("send");
            answering.send_to(&reply_to(&buf[..n]), peer).await.expect("send");
        });
        let timeout = Duration::from_millis(300);
        let upstreams = Upstreams::new(vec![silent.local_addr().expect("addr"), answering_addr], timeout);
        let got = upstreams.forward(&query(7), 7, Transport::Udp).await.expect("answer");
        assert_eq!(got, reply_to(&query(7)));

        let only_silent = Upstreams::new(vec![silent.local_addr().expect("addr")], timeout);
        let err = only_silent.forward(&query(8), 8, Transport::Udp).await.expect_err("silence");
        assert!(matches!(err, ForwardError::Timeout { .. }), "{err}");
        let none = Upstreams::new(Vec::new(), timeout);
        assert!(matches!(none.forward(&query(9), 9, Transport::Udp).await, Err(ForwardError::NoUpstreams)));
    }

    #[tokio::test]
    async fn tcp_requests_are_forwarded_framed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let len = s.read_u16().await.expect("len");
            let mut q = vec![0u8; usize::from(len)];
            s.read_exact(&mut q).await.expect("query");
            let r = reply_to(&q);
            s.write_all(&u16::try_from(r.len()).expect("len").to_be_bytes()).await.expect("write");
            s.write_all(&r).await.expect("write");
        });
        let upstreams = Upstreams::new(vec![addr], Duration::from_secs(5));
        assert_eq!(upstreams.forward(&query(3), 3, Transport::Tcp).await.expect("answer"), reply_to(&query(3)));
    }
}
