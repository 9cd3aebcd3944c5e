//! The host's resolver configuration (`/etc/resolv.conf`, or `--resolv-conf`), parsed as the kubelet
//! parses it: what pods with `dnsPolicy: Default` get, the search domains `ClusterFirst` pods inherit,
//! and the default upstreams of cluster DNS. Pure apart from [`ResolvConf::read`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The parts of a resolv.conf that pods and forwarding use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    /// Search domains without trailing dots (the last `search` line wins, as in the resolver).
    pub searches: Vec<String>,
    /// Options as written (`ndots:2`, `edns0`), from every `options` line.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text; unknown keywords and unparsable nameservers are skipped.
    pub fn parse(text: &str) -> Self {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    if let Some(ip) = fields.next().and_then(|f| f.parse().ok()) {
                        out.nameservers.push(ip);
                    }
                }
                Some("search") => {
                    out.searches = fields.filter(|d| *d != ".").map(|d| d.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => out.options.extend(fields.map(str::to_string)),
                _ => {}
            }
        }
        out
    }

    /// Reads and parses `path`; a missing file is an empty configuration.
    pub fn read(path: &Path) -> Result<Self, std::io::Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Where cluster DNS forwards other names by default: the host's nameservers on port 53, except
    /// loopback ones (a local stub such as systemd-resolved's 127.0.0.53 may itself forward to cluster
    /// DNS, or is the agent's own redirect target: either would loop) and the cluster DNS address.
    pub fn default_upstreams(&self, cluster_dns: Ipv4Addr) -> Vec<SocketAddr> {
        self.nameservers
            .iter()
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && **ip != IpAddr::V4(cluster_dns))
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_searches_and_options_are_read_as_the_kubelet_reads_them() {
        let conf = ResolvConf::parse(
            "# generated\n; also a comment\nnameserver 10.0.0.2\nnameserver bogus\nnameserver fd00::53\n\
             search old.example\nsearch corp.example. lab.example .\ndomain ignored.example\n\
             options ndots:2\noptions edns0 timeout:1\n",
        );
        assert_eq!(conf.nameservers, ["10.0.0.2".parse::<IpAddr>().expect("ip"), "fd00::53".parse().expect("ip")]);
        assert_eq!(conf.searches, ["corp.example", "lab.example"], "last search line, dots trimmed");
        assert_eq!(conf.options, ["ndots:2", "edns0", "timeout:1"]);
    }

    #[test]
    fn default_upstreams_skip_loopback_stubs_and_cluster_dns() {
        let conf = ResolvConf::parse(
            "nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.96.0.10\nnameserver 192.0.2.53\nnameserver 0.0.0.0\n",
        );
        let cluster = Ipv4Addr::new(10, 96, 0, 10);
        assert_eq!(conf.default_upstreams(cluster), ["192.0.2.53:53".parse::<SocketAddr>().expect("addr")]);
        assert!(ResolvConf::parse("nameserver 127.0.0.1\n").default_upstreams(cluster).is_empty());
    }

    #[test]
    fn a_missing_file_is_empty() {
        let conf = ResolvConf::read(Path::new("/nonexistent/resolv.conf")).expect("read");
        assert_eq!(conf, ResolvConf::default());
    }
}
