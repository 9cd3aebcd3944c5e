//! From the agent's flags to a running cluster DNS: the server on `--dns-listen`, forwarding to
//! `--dns-upstream` (or the host's non-loopback nameservers; behind systemd-resolved's stub, the
//! resolvers it uses), and the redirect of `--cluster-dns` to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::names::ClusterDomain;
use super::redirect::{self, Ipv4Net, RedirectError, RedirectRules};
use super::resolv_conf::ResolvConf;
use super::server::{DnsServer, DnsServerError, DnsSockets};
use super::upstream::Upstreams;
use crate::config::{Config, ConfigError};
use crate::metrics::AgentMetrics;
use crate::services::ServiceCatalog;

/// Where systemd-resolved lists the resolvers behind its loopback stub (127.0.0.53).
pub const SYSTEMD_RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// Deadline of one forwarded request at one upstream. Resolvers in pods give up after 5 s (glibc and
/// musl defaults), so a dead first upstream still leaves time for the second.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Why cluster DNS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    #[error(transparent)]
    Server(#[from] DnsServerError),
}

/// Cluster DNS as configured.
#[derive(Debug, Clone)]
pub struct DnsSetup {
    pub domain: ClusterDomain,
    pub listen: SocketAddr,
    pub upstreams: Upstreams,
    /// The redirect's port is the listen port (the bound one when `listen` has port 0).
    pub redirect: RedirectRules,
}

impl DnsSetup {
    pub fn from_config(config: &Config, host: &ResolvConf) -> Result<Self, DnsSetupError> {
        let domain = ClusterDomain::new(&config.cluster_domain).map_err(ConfigError::from)?;
        let listen = config.dns_listen_addr()?;
        let mut upstreams = config.dns_upstreams()?;
        if upstreams.is_empty() {
            upstreams = host.default_upstreams(config.cluster_dns);
        }
        if upstreams.is_empty() {
            // A host behind systemd-resolved names only its stub; the real resolvers are listed here.
            let resolved = ResolvConf::read(std::path::Path::new(SYSTEMD_RESOLVED_UPSTREAMS)).unwrap_or_default();
            upstreams = resolved.default_upstreams(config.cluster_dns);
        }
        let pod_network = config.pod_cidr.as_deref().and_then(|cidr| {
            let net = Ipv4Net::parse(cidr);
            if net.is_none() {
                warn!(%cidr, "--pod-cidr is not an IPv4 network; the DNS redirect applies to all sources");
            }
            net
        });
        let redirect = RedirectRules {
            table: redirect::table_name(&config.node_name)?,
            cluster_dns: config.cluster_dns,
            port: listen.port(),
            pod_network,
        };
        Ok(Self { domain, listen, upstreams: Upstreams::new(upstreams, UPSTREAM_TIMEOUT), redirect })
    }

    /// Binds the server's sockets, then starts serving and keeping the redirect in place until
    /// `shutdown`. A taken port is an error here, before anything else starts.
    pub async fn start(
        mut self,
        catalog: watch::Receiver<Option<Arc<ServiceCatalog>>>,
        metrics: Arc<AgentMetrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, DnsSetupError> {
        let sockets = DnsSockets::bind(self.listen).await?;
        if let Some(bound) = sockets.local_addr() {
            self.redirect.port = bound.port();
            self.listen = bound;
        }
        if self.upstreams.addrs().is_empty() {
            warn!("cluster DNS has no upstream resolvers (--dns-upstream, or non-loopback nameservers in --resolv-conf): names outside the cluster domain get SERVFAIL");
        }
        info!(
            listen = %self.listen, domain = %self.domain.as_str(), upstreams = ?self.upstreams.addrs(),
            cluster_dns = %self.redirect.cluster_dns, "cluster DNS serving"
        );
        let serial = u32::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1),
        )
        .unwrap_or(1);
        let server = Arc::new(DnsServer { domain: self.domain, serial, upstreams: self.upstreams, catalog, metrics });
        tokio::spawn(redirect::maintain(self.redirect, shutdown.clone()));
        Ok(tokio::spawn(server.run(sockets, shutdown)))
    }
}
