//! How pods and the host reach cluster DNS: an nftables table of the agent's own, `ip
//! gantry-dns-<node>`, whose nat chains redirect `<cluster-dns>:53` (UDP and TCP) to the agent's DNS
//! port. `redirect` picks the address of the interface a packet came in on, so pods land on their
//! bridge's gateway address and the host on loopback, both of which a server on 0.0.0.0 receives.
//!
//! The chains run just before the `dstnat` priority, so a service proxy that DNATs the `kube-dns`
//! ClusterIP (to endpoints that do not exist, since the agent itself answers) never sees these
//! packets: the first nat chain that binds a connection wins. Two agents on one machine program
//! equivalent tables. The ruleset text is pure; [`apply`] and [`remove`] run `nft` through the
//! service proxy's runner ([`crate::proxy::Nft`]: time limit, errors with nft's message).

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::proxy::nft::{Netfilter, Nft, NftError};

/// Priority of the nat chains: before `dstnat` (-100), where a service proxy's DNAT runs.
pub const NAT_PRIORITY: i32 = -110;
/// How often the agent checks that its table is still there (another tool may flush the ruleset).
pub const RECHECK: Duration = Duration::from_secs(30);
/// Longest table name nftables accepts.
const MAX_TABLE_NAME: usize = 256;

/// Why the table could not be programmed or removed.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    #[error("nftables table name for node {0:?} is longer than {MAX_TABLE_NAME} bytes")]
    TableName(String),
    #[error("table {table}: {source}")]
    Nft { table: String, source: NftError },
}

/// An IPv4 network, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/n`; `None` for anything else (IPv6 CIDRs included).
    pub fn parse(s: &str) -> Option<Self> {
        let (address, prefix) = s.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Self { address: address.parse().ok()?, prefix })
    }
}

/// The redirect of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRules {
    pub table: String,
    pub cluster_dns: Ipv4Addr,
    pub port: u16,
    /// When known, only pods of this network are redirected on prerouting (other agents' pods on
    /// the same machine keep their own agent's rules).
    pub pod_network: Option<Ipv4Net>,
}

/// `gantry-dns-<node>`. Node names are DNS subdomains, which nft accepts as identifiers after a letter.
pub fn table_name(node: &str) -> Result<String, RedirectError> {
    let name = format!("gantry-dns-{node}");
    if name.len() > MAX_TABLE_NAME {
        return Err(RedirectError::TableName(node.to_string()));
    }
    Ok(name)
}

impl RedirectRules {
    /// An `nft -f` script that replaces the table in one transaction (create, delete, create: the
    /// first line makes the delete valid when the table does not exist yet).
    pub fn ruleset(&self) -> String {
        let Self { table, cluster_dns, port, .. } = self;
        let from_pods = self.pod_network.map(|n| format!("ip saddr {}/{} ", n.address, n.prefix)).unwrap_or_default();
        let mut s = format!("table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n");
        for (chain, hook, match_source) in [("prerouting", "prerouting", from_pods.as_str()), ("output", "output", "")]
        {
            s.push_str(&format!(
                "  chain {chain} {{\n    type nat hook {hook} priority {NAT_PRIORITY}; policy accept;\n"
            ));
            for proto in ["udp", "tcp"] {
                s.push_str(&format!("    {match_source}ip daddr {cluster_dns} {proto} dport 53 redirect to :{port}\n"));
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }
}

/// Programs the table (replacing any previous version).
pub async fn apply(rules: &RedirectRules) -> Result<(), RedirectError> {
    Nft::default()
        .apply(rules.ruleset())
        .await
        .map_err(|source| RedirectError::Nft { table: rules.table.clone(), source })
}

/// Deletes the table; `false` when there was none.
pub async fn remove(table: &str) -> Result<bool, RedirectError> {
    if !exists(table).await? {
        return Ok(false);
    }
    Nft::default()
        .delete_table(table)
        .await
        .map_err(|source| RedirectError::Nft { table: table.to_string(), source })?;
    Ok(true)
}

/// Whether the table exists.
async fn exists(table: &str) -> Result<bool, RedirectError> {
    match Nft::default().output(&["list", "table", "ip", table]).await {
        Ok(_) => Ok(true),
        Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(false),
        Err(source) => Err(RedirectError::Nft { table: table.to_string(), source }),
    }
}

/// Programs the table and keeps it there until shutdown: retried while `nft` fails, re-created when
/// it disappears. The table stays after shutdown: pods keep running while the agent restarts.
pub async fn maintain(rules: RedirectRules, mut shutdown: watch::Receiver<bool>) {
    let mut programmed = false;
    loop {
        let result = if programmed { exists(&rules.table).await } else { apply(&rules).await.map(|()| true) };
        match result {
            Ok(true) if !programmed => {
                info!(table = %rules.table, dns = %rules.cluster_dns, port = rules.port, "cluster DNS redirect programmed");
                programmed = true;
            }
            Ok(true) => {}
            Ok(false) => {
                warn!(table = %rules.table, "cluster DNS redirect table disappeared; programming it again");
                programmed = false;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cluster DNS redirect not programmed; pods cannot reach cluster DNS yet");
                programmed = false;
            }
        }
        let wait = if programmed { RECHECK } else { Duration::from_secs(5) };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_replaces_the_table_and_redirects_both_protocols_on_both_hooks() {
        let rules = RedirectRules {
            table: table_name("node-1").expect("name"),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            port: 10053,
            pod_network: Ipv4Net::parse("10.224.0.0/16"),
        };
        assert_eq!(
            rules.ruleset(),
            "table ip gantry-dns-node-1 {}\n\
             delete table ip gantry-dns-node-1\n\
             table ip gantry-dns-node-1 {\n  \
               chain prerouting {\n    \
                 type nat hook prerouting priority -110; policy accept;\n    \
                 ip saddr 10.224.0.0/16 ip daddr 10.96.0.10 udp dport 53 redirect to :10053\n    \
                 ip saddr 10.224.0.0/16 ip daddr 10.96.0.10 tcp dport 53 redirect to :10053\n  \
               }\n  \
               chain output {\n    \
                 type nat hook output priority -110; policy accept;\n    \
                 ip daddr 10.96.0.10 udp dport 53 redirect to :10053\n    \
                 ip daddr 10.96.0.10 tcp dport 53 redirect to :10053\n  \
               }\n\
             }\n"
        );
        let unscoped = RedirectRules { pod_network: None, ..rules };
        assert!(unscoped.ruleset().contains("    ip daddr 10.96.0.10 udp dport 53 redirect to :10053\n"));
        assert!(!unscoped.ruleset().contains("saddr"));
    }

    #[test]
    fn pod_networks_and_table_names_are_checked() {
        assert_eq!(Ipv4Net::parse("10.1.0.0/16"), Some(Ipv4Net { address: Ipv4Addr::new(10, 1, 0, 0), prefix: 16 }));
        for bad in ["10.1.0.0", "10.1.0.0/33", "fd00::/64", "x/8", "10.1.0.0/16; flush ruleset"] {
            assert_eq!(Ipv4Net::parse(bad), None, "{bad}");
        }
        assert!(table_name(&"a".repeat(250)).is_err());
    }
}
