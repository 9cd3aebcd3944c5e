//! The cluster DNS server: UDP and TCP on one address, each request decided by
//! [`exchange::handle`] against the latest [`ServiceCatalog`] and answered here or forwarded to the
//! [`Upstreams`]; an upstream failure is SERVFAIL. UDP replies leave from the address the request
//! came to ([`ReplyingSocket`]). Records requests by rcode and latency.
//!
//! Owns the sockets and the per-request tasks; decides nothing about records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, debug_span, warn, Instrument};

use super::answer::Zone;
use super::exchange::{self, Step};
use super::names::ClusterDomain;
use super::udp::ReplyingSocket;
use super::upstream::{Transport, Upstreams};
use crate::metrics::AgentMetrics;
use crate::services::ServiceCatalog;

/// Requests in flight at once; beyond, UDP requests are dropped (the client retries) and TCP
/// connections wait.
pub const MAX_IN_FLIGHT: usize = 512;
/// A TCP connection without a request for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    #[error("binding cluster DNS to {transport} {addr}: {source}")]
    Bind { transport: &'static str, addr: SocketAddr, source: std::io::Error },
}

/// The server's bound sockets.
pub struct DnsSockets {
    pub udp: ReplyingSocket,
    pub tcp: TcpListener,
}

impl DnsSockets {
    /// Binds UDP and TCP on `addr` (the UDP port is taken first when `addr` has port 0).
    pub async fn bind(addr: SocketAddr) -> Result<Self, DnsServerError> {
        let udp =
            UdpSocket::bind(addr).await.map_err(|source| DnsServerError::Bind { transport: "udp", addr, source })?;
        let udp_err = |source| DnsServerError::Bind { transport: "udp", addr, source };
        let udp = ReplyingSocket::new(udp).map_err(udp_err)?;
        let tcp_addr = udp.local_addr().map_err(udp_err)?;
        let tcp = TcpListener::bind(tcp_addr).await.map_err(|source| DnsServerError::Bind {
            transport: "tcp",
            addr: tcp_addr,
            source,
        })?;
        Ok(Self { udp, tcp })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }
}

/// What the server answers with.
pub struct DnsServer {
    pub domain: ClusterDomain,
    /// The SOA serial (the agent's start time: there are no zone transfers to order).
    pub serial: u32,
    pub upstreams: Upstreams,
    pub catalog: watch::Receiver<Option<Arc<ServiceCatalog>>>,
    pub metrics: Arc<AgentMetrics>,
}

impl DnsServer {
    /// Serves until `shutdown` becomes true.
    pub async fn run(self: Arc<Self>, sockets: DnsSockets, mut shutdown: watch::Receiver<bool>) {
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let udp = Arc::new(sockets.udp);
        let mut buf = vec![0u8; 65_535];
        loop {
            tokio::select! {
                received = udp.recv(&mut buf) => match received {
                    Ok(datagram) => {
                        let peer = datagram.peer;
                        let Ok(permit) = limit.clone().try_acquire_owned() else {
                            debug!(%peer, "dns: too many requests in flight; dropping one");
                            continue;
                        };
                        let (server, socket, request) = (self.clone(), udp.clone(), buf[..datagram.len].to_vec());
                        tokio::spawn(async move {
                            if let Some(reply) = server.query(&request, Transport::Udp).await {
                                if let Err(e) = socket.send(&reply, peer, datagram.local).await {
                                    debug!(%peer, error = %e, "dns: sending a reply");
                                }
                            }
                            drop(permit);
                        });
                    }
                    Err(e) => debug!(error = %e, "dns: udp receive"),
                },
                accepted = sockets.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(self.clone().serve_tcp(stream, peer, limit.clone()));
                    }
                    Err(e) => {
                        warn!(error = %e, "dns: tcp accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Length-prefixed requests on one connection, answered in order.
    async fn serve_tcp(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr, limit: Arc<Semaphore>) {
        loop {
            let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else { return };
            let mut request = vec![0u8; usize::from(len)];
            if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request)).await.is_err() {
                return;
            }
            let Ok(_permit) = limit.acquire().await else { return };
            let Some(reply) = self.query(&request, Transport::Tcp).await else { return };
            let Ok(reply_len) = u16::try_from(reply.len()) else { return };
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&reply_len.to_be_bytes());
            framed.extend_from_slice(&reply);
            if let Err(e) = stream.write_all(&framed).await {
                debug!(%peer, error = %e, "dns: writing a tcp reply");
                return;
            }
        }
    }

    /// The encoded reply to `bytes`, if any.
    pub async fn query(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let started = Instant::now();
        let Ok(request) = Message::from_vec(bytes) else {
            let reply = exchange::format_error(bytes);
            if let Some(reply) = &reply {
                self.metrics.dns_request(exchange::rcode_label(reply), "cluster", started.elapsed().as_secs_f64());
            }
            return reply;
        };
        let question = request.queries.first().map(|q| format!("{} {}", q.name(), q.query_type())).unwrap_or_default();
        let span = debug_span!("dns", %question, ?transport);
        let catalog = self.catalog.borrow().clone();
        let zone = Zone { domain: &self.domain, serial: self.serial };
        let limit = match transport {
            Transport::Udp => exchange::udp_limit(&request),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let (reply, source) = match exchange::handle(&request, catalog.as_deref(), zone) {
            Step::Drop => return None,
            Step::Reply(message) => (self.encode(&request, &message, limit), "cluster"),
            Step::Forward => {
                let forwarded =
                    self.upstreams.forward(bytes, request.metadata.id, transport).instrument(span.clone()).await;
                match forwarded {
                    Ok(reply) => (Some(reply), "upstream"),
                    Err(e) => {
                        span.in_scope(|| debug!(error = %e, "dns: forwarding failed"));
                        let failed = exchange::reply(&request, ResponseCode::ServFail);
                        (self.encode(&request, &failed, limit), "upstream")
                    }
                }
            }
        };
        if let Some(reply) = &reply {
            let rcode = exchange::rcode_label(reply);
            span.in_scope(|| debug!(rcode, source, "dns: answered"));
            self.metrics.dns_request(rcode, source, started.elapsed().as_secs_f64());
        }
        reply
    }

    fn encode(&self, request: &Message, reply: &Message, limit: usize) -> Option<Vec<u8>> {
        match exchange::encode(reply, limit) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!(error = %e, "dns: encoding a reply; answering SERVFAIL");
                exchange::reply(request, ResponseCode::ServFail).to_vec().ok()
            }
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
