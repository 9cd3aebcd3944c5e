//! The agent's command line (a contract: tests and `cargo xtask up` start the binary with these flags)
//! and its validation. Owns nothing else; must not touch the API or the runtime.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--node-name {0:?} is not a valid DNS subdomain (lowercase alphanumerics, '-' and '.', at most 253)")]
    NodeName(String),
    #[error("--listen {0:?} is not HOST:PORT with an IP host")]
    Listen(String),
    #[error("--runtime-endpoint {0:?} must be unix:///path or an absolute socket path")]
    RuntimeEndpoint(String),
    #[error("--root-dir {0:?} must be an absolute path")]
    RootDir(PathBuf),
    #[error("--allowed-host-paths entry {0:?} must be an absolute path without '..'")]
    AllowedHostPath(PathBuf),
    #[error("--eviction-hard: {0}")]
    EvictionHard(String),
    #[error("--cluster-domain: {0}")]
    ClusterDomain(#[from] crate::dns::names::DomainError),
    #[error("--dns-listen {0:?} is not HOST:PORT with an IP host")]
    DnsListen(String),
    #[error("--dns-upstream entry {0:?} is not an IP address or IP:PORT")]
    DnsUpstream(String),
    #[error("--dns-upstream entry {0} is the cluster DNS address itself: forwarded queries would come back")]
    DnsUpstreamLoop(SocketAddr),
}

/// How the agent proxies Services (`--proxy-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// An nftables table per node (needs the `nft` command).
    Nftables,
    /// No service proxy (another proxy runs, or the host has no nftables).
    None,
}

/// `gantry-node-agent` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "gantry-node-agent", about = "Gantry node agent: runs the pods bound to this node over CRI")]
pub struct Config {
    /// Kubeconfig with the API server address and the agent's credentials.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The Node object's name.
    #[arg(long)]
    pub node_name: String,
    /// CRI endpoint of the container runtime (`unix:///run/containerd/containerd.sock`).
    #[arg(long)]
    pub runtime_endpoint: String,
    /// Directory for pod log and state directories.
    #[arg(long)]
    pub root_dir: PathBuf,
    /// Address of the agent's own server; its host is also the node's InternalIP.
    #[arg(long, default_value = "127.0.0.1:10250")]
    pub listen: String,
    /// The node's `spec.podCIDR`, if the network assigns one.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// CPU kept back from allocatable, in millicores.
    #[arg(long, default_value_t = 0)]
    pub reserved_cpu_millis: u64,
    /// Memory kept back from allocatable, in MiB.
    #[arg(long, default_value_t = 0)]
    pub reserved_memory_mib: u64,
    /// Maximum number of pods (capacity `pods`).
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// How often the agent renews its Lease.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub lease_renew_seconds: Duration,
    /// Host path prefixes that `hostPath` volumes may use (comma-separated absolute paths). Empty, the
    /// default, allows any path, as the kubelet does (admission is then the only guard).
    #[arg(long, value_delimiter = ',')]
    pub allowed_host_paths: Vec<PathBuf>,
    /// Resource pressure thresholds (`SIGNAL<VALUE`, comma-separated; signals `memory.available`,
    /// `nodefs.available` (the root dir's filesystem) and `pid.available`; values as quantities or
    /// percentages). Crossing one sets the Node's MemoryPressure, DiskPressure or PIDPressure condition.
    #[arg(long, default_value = crate::node::pressure::DEFAULT_EVICTION_HARD)]
    pub eviction_hard: String,
    /// Instead of running: stop and remove every sandbox and container this node created, with their
    /// cgroups, volumes and logs, its cluster DNS redirect and its service proxy (nftables tables), then
    /// exit (the API is not touched). For taking a node apart.
    #[arg(long)]
    pub cleanup: bool,
    /// How often each pod worker re-reads the runtime when nothing else wakes it.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub pod_resync_seconds: Duration,
    /// Service proxy: `nftables` programs ClusterIPs and NodePorts into an nftables table of this node
    /// (left in place when the agent stops; `--cleanup` deletes it); `none` leaves Services to another
    /// proxy.
    #[arg(long, value_enum, default_value_t = ProxyMode::Nftables)]
    pub proxy_mode: ProxyMode,
    /// The cluster DNS address: the nameserver of `ClusterFirst` pods, redirected (UDP and TCP port
    /// 53) to this agent's DNS server by an nftables table of its own (the `kube-dns` Service's IP).
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: Ipv4Addr,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Where the agent's DNS server listens (UDP and TCP); pods reach it through `--cluster-dns`.
    #[arg(long, default_value = "0.0.0.0:10053")]
    pub dns_listen: String,
    /// Resolvers for names outside the cluster domain (comma-separated `IP` or `IP:PORT`). Default: the
    /// nameservers of `--resolv-conf` other than loopback ones.
    #[arg(long, value_delimiter = ',')]
    pub dns_upstream: Vec<String>,
    /// The host's resolver configuration: what `dnsPolicy: Default` pods get, the search domains
    /// `ClusterFirst` pods add, and the default upstreams.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

impl Config {
    /// Checks what clap cannot: the node name, the listen address and the runtime endpoint.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_dns_subdomain(&self.node_name) {
            return Err(ConfigError::NodeName(self.node_name.clone()));
        }
        self.listen_addr()?;
        if gantry_cri_proto::socket_path(&self.runtime_endpoint).is_err() {
            return Err(ConfigError::RuntimeEndpoint(self.runtime_endpoint.clone()));
        }
        if !self.root_dir.is_absolute() {
            return Err(ConfigError::RootDir(self.root_dir.clone()));
        }
        crate::node::pressure::Thresholds::parse(&self.eviction_hard).map_err(ConfigError::EvictionHard)?;
        crate::dns::names::ClusterDomain::new(&self.cluster_domain)?;
        self.dns_listen_addr()?;
        if let Some(looping) = self.dns_upstreams()?.into_iter().find(|a| a.ip() == IpAddr::V4(self.cluster_dns)) {
            return Err(ConfigError::DnsUpstreamLoop(looping));
        }
        for p in &self.allowed_host_paths {
            if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(ConfigError::AllowedHostPath(p.clone()));
            }
        }
        Ok(())
    }

    /// The parsed `--listen` address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| ConfigError::Listen(self.listen.clone()))
    }

    /// The parsed `--dns-listen` address.
    pub fn dns_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.dns_listen.parse().map_err(|_| ConfigError::DnsListen(self.dns_listen.clone()))
    }

    /// The parsed `--dns-upstream` list (port 53 where none is given); empty when not set.
    pub fn dns_upstreams(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.dns_upstream
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| ConfigError::DnsUpstream(s.clone()))
            })
            .collect()
    }

    /// The node's InternalIP: the listen host, or 127.0.0.1 when it listens on every address.
    pub fn node_ip(&self) -> IpAddr {
        match self.listen_addr() {
            Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
            _ => IpAddr::from([127, 0, 0, 1]),
        }
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let mut args = vec![
            "gantry-node-agent",
            "--kubeconfig",
            "/k.conf",
            "--node-name",
            "node-1",
            "--runtime-endpoint",
            "unix:///run/c.sock",
            "--root-dir",
            "/var/lib/gantry",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    }

    #[test]
    fn the_contract_flags_parse_and_validate() {
        let config = parse(&["--listen", "10.0.0.5:10250", "--pod-cidr", "10.88.0.0/16"]).expect("parse");
        config.validate().expect("valid");
        assert_eq!(config.node_ip(), IpAddr::from([10, 0, 0, 5]));
        assert_eq!(config.pod_cidr.as_deref(), Some("10.88.0.0/16"));
        assert_eq!(config.max_pods, 110);
        assert_eq!(config.lease_renew_seconds, Duration::from_secs(10));
        assert!(config.allowed_host_paths.is_empty());
        assert_eq!(config.proxy_mode, ProxyMode::Nftables);
        assert_eq!(parse(&["--proxy-mode", "none"]).expect("parse").proxy_mode, ProxyMode::None);
        assert!(parse(&["--proxy-mode", "iptables"]).is_err());
        assert_eq!(config.cluster_dns, Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(config.cluster_domain, "cluster.local");
        assert_eq!(config.dns_listen_addr().expect("dns listen"), "0.0.0.0:10053".parse().expect("addr"));
        assert!(config.dns_upstreams().expect("upstreams").is_empty());
        assert_eq!(config.resolv_conf, PathBuf::from("/etc/resolv.conf"));
        let config = parse(&["--allowed-host-paths", "/srv/data,/tmp"]).expect("parse");
        config.validate().expect("valid");
        assert_eq!(config.allowed_host_paths, [PathBuf::from("/srv/data"), PathBuf::from("/tmp")]);
        let config = parse(&["--dns-upstream", "192.0.2.53,127.0.0.1:5353", "--cluster-domain", "corp.internal"])
            .expect("parse");
        config.validate().expect("valid");
        let want: Vec<SocketAddr> =
            vec!["192.0.2.53:53".parse().expect("addr"), "127.0.0.1:5353".parse().expect("addr")];
        assert_eq!(config.dns_upstreams().expect("upstreams"), want);
    }

    #[test]
    fn an_unspecified_listen_host_reports_loopback() {
        let config = parse(&["--listen", "0.0.0.0:1"]).expect("parse");
        assert_eq!(config.node_ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_named() {
        type Edit = fn(&mut Config);
        let cases: &[(Edit, &str)] = &[
            (|c| c.listen = "localhost".into(), "--listen"),
            (|c| c.node_name = "Node_1".into(), "--node-name"),
            (|c| c.runtime_endpoint = "tcp://x:1".into(), "--runtime-endpoint"),
            (|c| c.root_dir = "relative".into(), "--root-dir"),
            (|c| c.allowed_host_paths = vec!["/srv/../etc".into()], "--allowed-host-paths"),
            (|c| c.eviction_hard = "memory.available<lots".into(), "--eviction-hard"),
            (|c| c.cluster_domain = "Cluster.Local".into(), "--cluster-domain"),
            (|c| c.dns_listen = ":53".into(), "--dns-listen"),
            (|c| c.dns_upstream = vec!["dns.example".into()], "--dns-upstream"),
            (|c| c.dns_upstream = vec!["10.96.0.10".into()], "--dns-upstream"),
        ];
        for (edit, flag) in cases {
            let mut config = parse(&[]).expect("parse");
            edit(&mut config);
            let err = config.validate().expect_err("invalid");
            assert!(err.to_string().contains(flag), "{err}");
        }
        assert!(parse(&["--lease-renew-seconds", "0"]).is_err());
        assert!(parse(&["--cluster-dns", "10.96.0"]).is_err());
    }
}
