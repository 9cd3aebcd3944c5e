//! What a queried name refers to (pure): a name in the cluster domain (a Service, one of its endpoints,
//! a named port, a pod address), a reverse (`in-addr.arpa`) name, or anything else, which goes to the
//! upstream resolvers. Knows no records and no Services.

use std::net::Ipv4Addr;

use hickory_proto::rr::Name;

/// Why a cluster domain is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster domain {0:?} is not a DNS name of lowercase labels (letters, digits, '-')")]
pub struct DomainError(pub String);

/// The cluster's DNS domain (`cluster.local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDomain {
    /// Lowercase labels, left to right.
    labels: Vec<String>,
    /// The domain as an absolute name.
    name: Name,
}

impl ClusterDomain {
    pub fn new(domain: &str) -> Result<Self, DomainError> {
        let err = || DomainError(domain.to_string());
        let trimmed = domain.trim_end_matches('.');
        let labels: Vec<String> = trimmed.split('.').map(str::to_string).collect();
        let label_ok = |l: &String| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if trimmed.is_empty() || !labels.iter().all(label_ok) {
            return Err(err());
        }
        let name = Name::from_ascii(format!("{trimmed}.")).map_err(|_| err())?;
        Ok(Self { labels, name })
    }

    /// The domain as an absolute name (`cluster.local.`).
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// `cluster.local`, without the trailing dot.
    pub fn as_str(&self) -> String {
        self.labels.join(".")
    }

    /// The absolute name `<prefix>.<domain>.`; `None` if it is not a valid name (a label too long).
    pub fn child(&self, prefix: &str) -> Option<Name> {
        Name::from_ascii(format!("{prefix}.{}.", self.as_str())).ok()
    }

    /// `<svc>.<ns>.svc.<domain>.`
    pub fn service_name(&self, namespace: &str, service: &str) -> Option<Name> {
        self.child(&format!("{service}.{namespace}.svc"))
    }
}

/// What a name in the cluster domain refers to. Labels are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName {
    /// The domain itself, `svc.<domain>`, `pod.<domain>` or `<ns>.pod.<domain>`: names that exist but
    /// hold no records of their own.
    Structural,
    /// `<ns>.svc.<domain>`: exists when the namespace has Services.
    Namespace { namespace: String },
    /// `<svc>.<ns>.svc.<domain>`.
    Service { namespace: String, service: String },
    /// `<endpoint>.<svc>.<ns>.svc.<domain>`: an endpoint by hostname or dashed address.
    Endpoint { namespace: String, service: String, endpoint: String },
    /// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: a named port (SRV).
    Port { namespace: String, service: String, port: String, protocol: String },
    /// `<a-b-c-d>.<ns>.pod.<domain>`: a pod address (`None` when the label is not an address).
    Pod { address: Option<Ipv4Addr> },
    /// Anything else under the domain: it does not exist.
    Unknown,
}

/// Where a query goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A name in the cluster domain: answered from the Services.
    Cluster(ClusterName),
    /// `d.c.b.a.in-addr.arpa`: answered when the address is a Service's or an endpoint's, else forwarded.
    Reverse(Ipv4Addr),
    /// Everything else: forwarded to the upstream resolvers.
    Upstream,
}

/// Classifies `name` against `domain`.
pub fn route(name: &Name, domain: &ClusterDomain) -> Route {
    let labels: Vec<String> = name.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
    if let Some(ip) = reverse_address(&labels) {
        return Route::Reverse(ip);
    }
    let n = domain.labels.len();
    if labels.len() < n || labels[labels.len() - n..] != domain.labels[..] {
        return Route::Upstream;
    }
    Route::Cluster(cluster_name(&labels[..labels.len() - n]))
}

fn cluster_name(rest: &[String]) -> ClusterName {
    let owned = |s: &String| s.clone();
    match rest {
        [] => ClusterName::Structural,
        [kind] if kind == "svc" || kind == "pod" => ClusterName::Structural,
        [ns, kind] if kind == "svc" => ClusterName::Namespace { namespace: owned(ns) },
        [_, kind] if kind == "pod" => ClusterName::Structural,
        [svc, ns, kind] if kind == "svc" => ClusterName::Service { namespace: owned(ns), service: owned(svc) },
        [address, _, kind] if kind == "pod" => ClusterName::Pod { address: address.replace('-', ".").parse().ok() },
        [port, proto, svc, ns, kind] if kind == "svc" && port.starts_with('_') && proto.starts_with('_') => {
            ClusterName::Port {
                namespace: owned(ns),
                service: owned(svc),
                port: port[1..].to_string(),
                protocol: proto[1..].to_string(),
            }
        }
        [endpoint, svc, ns, kind] if kind == "svc" => {
            ClusterName::Endpoint { namespace: owned(ns), service: owned(svc), endpoint: owned(endpoint) }
        }
        _ => ClusterName::Unknown,
    }
}

/// `d.c.b.a.in-addr.arpa` → `a.b.c.d`.
fn reverse_address(labels: &[String]) -> Option<Ipv4Addr> {
    let [d, c, b, a, in_addr, arpa] = labels else { return None };
    if in_addr != "in-addr" || arpa != "arpa" {
        return None;
    }
    format!("{a}.{b}.{c}.{d}").parse().ok()
}

/// The name an endpoint has under its Service: its hostname, else its address with dashes.
pub fn endpoint_label(hostname: Option<&str>, ip: Ipv4Addr) -> String {
    match hostname {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => ip.to_string().replace('.', "-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> ClusterDomain {
        ClusterDomain::new("cluster.local").expect("domain")
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn svc(ns: &str, svc: &str) -> Route {
        Route::Cluster(ClusterName::Service { namespace: ns.into(), service: svc.into() })
    }

    #[test]
    fn names_are_routed_by_their_place_in_the_cluster_domain() {
        let cases: Vec<(&str, Route)> = vec![
            ("web.default.svc.cluster.local.", svc("default", "web")),
            ("Web.Default.SVC.Cluster.Local.", svc("default", "web")),
            ("web.default.svc.cluster.local", svc("default", "web")),
            (
                "web-0.nginx.default.svc.cluster.local.",
                Route::Cluster(ClusterName::Endpoint {
                    namespace: "default".into(),
                    service: "nginx".into(),
                    endpoint: "web-0".into(),
                }),
            ),
            (
                "_http._tcp.web.default.svc.cluster.local.",
                Route::Cluster(ClusterName::Port {
                    namespace: "default".into(),
                    service: "web".into(),
                    port: "http".into(),
                    protocol: "tcp".into(),
                }),
            ),
            ("default.svc.cluster.local.", Route::Cluster(ClusterName::Namespace { namespace: "default".into() })),
            ("svc.cluster.local.", Route::Cluster(ClusterName::Structural)),
            ("cluster.local.", Route::Cluster(ClusterName::Structural)),
            ("default.pod.cluster.local.", Route::Cluster(ClusterName::Structural)),
            (
                "10-1-0-2.default.pod.cluster.local.",
                Route::Cluster(ClusterName::Pod { address: Some(Ipv4Addr::new(10, 1, 0, 2)) }),
            ),
            ("nope.default.pod.cluster.local.", Route::Cluster(ClusterName::Pod { address: None })),
            // Search-path expansions of names that are not cluster names.
            ("example.com.default.svc.cluster.local.", {
                Route::Cluster(ClusterName::Endpoint {
                    namespace: "default".into(),
                    service: "com".into(),
                    endpoint: "example".into(),
                })
            }),
            ("a.b.c.d.default.svc.cluster.local.", Route::Cluster(ClusterName::Unknown)),
            ("web.default.cluster.local.", Route::Cluster(ClusterName::Unknown)),
            ("2.0.1.10.in-addr.arpa.", Route::Reverse(Ipv4Addr::new(10, 1, 0, 2))),
            ("0.1.10.in-addr.arpa.", Route::Upstream),
            ("example.com.", Route::Upstream),
            ("local.", Route::Upstream),
            ("notcluster.local.", Route::Upstream),
            (".", Route::Upstream),
        ];
        for (query, want) in cases {
            assert_eq!(route(&name(query), &domain()), want, "{query}");
        }
    }

    #[test]
    fn cluster_domains_are_checked() {
        assert_eq!(ClusterDomain::new("cluster.local.").expect("domain"), domain());
        assert_eq!(domain().service_name("ns", "web"), Some(name("web.ns.svc.cluster.local.")));
        for bad in ["", ".", "Cluster.local", "a..b", "-a.b", "a_b.local"] {
            assert!(ClusterDomain::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_are_named_by_hostname_or_dashed_address() {
        let ip = Ipv4Addr::new(10, 1, 0, 2);
        assert_eq!(endpoint_label(Some("web-0"), ip), "web-0");
        assert_eq!(endpoint_label(None, ip), "10-1-0-2");
        assert_eq!(endpoint_label(Some(""), ip), "10-1-0-2");
    }
}
