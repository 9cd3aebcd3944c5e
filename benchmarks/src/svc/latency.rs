//! What a ClusterIP adds to a request: a "pod" (a network namespace of the benchmark's own, joined to
//! the host by a veth pair) runs a TCP echo server (this executable, re-run inside the namespace with
//! [`ECHO_SERVER_ARG`]); the host sends small requests and reads the echo, alternately to the pod's
//! address and to a ClusterIP the agent DNATs to it, so both paths see the same machine load.

//!
//! Two shapes: one request per new connection (the NAT rules are evaluated for each: connection
//! set-up is timed too) and many requests over one kept-open connection (only conntrack's lookup).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::latency::{LatencyError, LatencyRecorder, LatencySummary};
use crate::process::{ManagedProcess, ProcessError};

/// First argument that makes the benchmark binary an echo server (`<exe> __echo-server ADDR`).
pub const ECHO_SERVER_ARG: &str = "__echo-server";
/// The pod's address (inside its namespace) and the host's end of the veth pair.
pub const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 254, 254, 2);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 254, 254, 1);
/// The slices' target port: the latency Service reaches the server there.
pub const ECHO_PORT: u16 = super::objects::TARGET_PORT;
/// Bytes per request (and per answer).
const MESSAGE: usize = 32;
/// A lost packet must fail the run rather than hang it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures of the latency set-up or run.
#[derive(Debug, thiserror::Error)]
pub enum LatencyRunError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("running `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the echo server at {addr} did not answer within {timeout:?}")]
    EchoNotUp { addr: SocketAddr, timeout: Duration },
    #[error("request to {addr}: {source}")]
    Request { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Histogram(#[from] LatencyError),
}

/// Serves echo on `addr` until killed: for each connection, writes back whatever arrives.
pub fn echo_server(addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; 4096];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<(), LatencyRunError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| LatencyRunError::Spawn { command: command.clone(), source })?;
    if !out.status.success() {
        return Err(LatencyRunError::Command { command, stderr: String::from_utf8_lossy(&out.stderr).trim().into() });
    }
    Ok(())
}

/// The pod: a network namespace with the echo server, joined to the host by a veth pair. Removed
/// (server killed, namespace and veth deleted) on drop.
pub struct EchoPod {
    namespace: String,
    host_link: String,
    server: Option<ManagedProcess>,
}

impl EchoPod {
    /// Creates the namespace and link and starts `exe` as the echo server inside.
    pub fn start(exe: &Path, log_dir: &Path) -> Result<Self, LatencyRunError> {
        let id = std::process::id();
        let namespace = format!("svcbench-{id}");
        let host_link = format!("svcb{}", id % 100_000_000);
        // Leftovers of a killed run with the same pid would make `add` fail.
        let _ = run("ip", &["netns", "delete", &namespace]);
        let _ = run("ip", &["link", "delete", &host_link]);
        let mut pod = Self { namespace, host_link, server: None };
        let ns = pod.namespace.clone();
        let host = pod.host_link.clone();
        run("ip", &["netns", "add", &ns])?;
        run("ip", &["link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        run("ip", &["addr", "add", &format!("{HOST_IP}/30"), "dev", &host])?;
        run("ip", &["link", "set", &host, "up"])?;
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", &format!("{POD_IP}/30"), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["route", "add", "default", "via", &format!("{HOST_IP}")],
        ] {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend(args);
            run("ip", &all)?;
        }
        let args: Vec<String> = ["netns", "exec", &ns]
            .iter()
            .map(|s| s.to_string())
            .chain([exe.to_string_lossy().into_owned(), ECHO_SERVER_ARG.into(), format!("{POD_IP}:{ECHO_PORT}")])
            .collect();
        let log = log_dir.join("echo-server.log");
        pod.server = Some(ManagedProcess::spawn("echo-server", Path::new("ip"), &args, &[], &log)?);
        let addr = SocketAddr::from((POD_IP, ECHO_PORT));
        let deadline = Instant::now() + Duration::from_secs(10);
        while round_trip_new_connection(addr).is_err() {
            if Instant::now() >= deadline {
                return Err(LatencyRunError::EchoNotUp { addr, timeout: Duration::from_secs(10) });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pod)
    }
}

impl Drop for EchoPod {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.stop(Duration::from_secs(2));
        }
        let _ = run("ip", &["link", "delete", &self.host_link]);
        let _ = run("ip", &["netns", "delete", &self.namespace]);
    }
}

fn exchange(stream: &mut TcpStream, addr: SocketAddr) -> Result<(), LatencyRunError> {
    let request = [b'x'; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let io = |source| LatencyRunError::Request { addr, source };
    stream.write_all(&request).map_err(io)?;
    stream.read_exact(&mut answer).map_err(io)?;
    Ok(())
}

/// Connect, one request/response, close.
fn round_trip_new_connection(addr: SocketAddr) -> Result<(), LatencyRunError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|source| LatencyRunError::Request { addr, source })?;
    prepare(&stream);
    exchange(&mut stream, addr)
}

fn prepare(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
}

/// Says when and in which shape a request failed (to line up with the agent's log).
fn failed(shape: &str, e: &LatencyRunError) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    eprintln!("latency: a {shape} request failed at {:.3} s since the epoch: {e}", now.as_secs_f64());
}

/// Latency of one path in both shapes.
#[derive(Debug, Clone, Serialize)]
pub struct PathLatency {
    pub target: String,
    pub new_connection: LatencySummary,
    pub kept_connection: LatencySummary,
    pub new_connection_p90_ms: f64,
    pub kept_connection_p90_ms: f64,
}

/// The two paths side by side.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyComparison {
    pub pod: PathLatency,
    pub cluster_ip: PathLatency,
}

/// Alternates requests between the pod IP and `cluster_ip` (both on [`ECHO_PORT`] / `service_port`):
/// `connections` new connections each, then `round_trips` exchanges over one connection each.
pub fn compare(
    cluster_ip: Ipv4Addr,
    service_port: u16,
    connections: usize,
    round_trips: usize,
) -> Result<LatencyComparison, LatencyRunError> {
    let targets = [SocketAddr::from((POD_IP, ECHO_PORT)), SocketAddr::from((cluster_ip, service_port))];
    let mut fresh = [LatencyRecorder::new()?, LatencyRecorder::new()?];
    // Warm-up: ARP, conntrack and the server's threads.
    for _ in 0..50 {
        for addr in targets {
            round_trip_new_connection(addr).inspect_err(|e| failed("warm-up", e))?;
        }
    }
    for _ in 0..connections {
        for (i, addr) in targets.iter().enumerate() {
            let started = Instant::now();
            round_trip_new_connection(*addr).inspect_err(|e| failed("new connection", e))?;
            fresh[i].record(started.elapsed());
        }
    }
    let mut kept = [LatencyRecorder::new()?, LatencyRecorder::new()?];
    let mut streams = Vec::with_capacity(2);
    for addr in targets {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|source| LatencyRunError::Request { addr, source })?;
        prepare(&stream);
        streams.push((stream, addr));
    }
    for _ in 0..round_trips {
        for (i, (stream, addr)) in streams.iter_mut().enumerate() {
            let started = Instant::now();
            exchange(stream, *addr).inspect_err(|e| failed("kept connection", e))?;
            kept[i].record(started.elapsed());
        }
    }
    let path = |i: usize, target: SocketAddr| PathLatency {
        target: target.to_string(),
        new_connection: fresh[i].summary(),
        kept_connection: kept[i].summary(),
        new_connection_p90_ms: fresh[i].quantile(0.9).as_secs_f64() * 1000.0,
        kept_connection_p90_ms: kept[i].quantile(0.9).as_secs_f64() * 1000.0,
    };
    Ok(LatencyComparison { pod: path(0, targets[0]), cluster_ip: path(1, targets[1]) })
}
