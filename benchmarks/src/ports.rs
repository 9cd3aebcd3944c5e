//! Free TCP ports on the loopback interface.
//!
//! Ports are found by binding `127.0.0.1:0` and reading back the port the
//! kernel chose. All listeners of one call are held open together so that a
//! single call never returns the same port twice; they are closed before the
//! function returns, so another process could in principle grab a port before
//! the benchmarked server binds it (the window is a few milliseconds).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Errors while looking for free ports.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Binding an ephemeral port failed.
    #[error("failed to bind an ephemeral port on 127.0.0.1")]
    Bind(#[source] std::io::Error),
    /// The bound listener did not report its address.
    #[error("failed to read the address of an ephemeral listener")]
    LocalAddr(#[source] std::io::Error),
}

/// Returns `count` distinct free ports on 127.0.0.1.
pub fn free_ports(count: usize) -> Result<Vec<u16>, PortError> {
    let mut listeners = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    for _ in 0..count {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(PortError::Bind)?;
        ports.push(listener.local_addr().map_err(PortError::LocalAddr)?.port());
        listeners.push(listener);
    }
    drop(listeners);
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_nonzero() -> Result<(), PortError> {
        let ports = free_ports(6)?;
        assert_eq!(ports.len(), 6);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        assert!(ports.iter().all(|p| *p != 0));
        Ok(())
    }
}
