//! A pod's resolver configuration (the CRI `DnsConfig` its resolv.conf is written from), by
//! `dnsPolicy` as the kubelet builds it (pure):
//! - `ClusterFirst` (the default): cluster DNS as nameserver, search `<ns>.svc.<domain> svc.<domain>
//!   <domain>` plus the host's search domains, `options ndots:5`; on a hostNetwork pod it means `Default`;
//! - `ClusterFirstWithHostNet`: the same, for hostNetwork pods too;
//! - `Default`: the host's resolver configuration;
//! - `None`: nothing but `spec.dnsConfig`.
//!
//! `spec.dnsConfig` is merged into every policy: nameservers and searches appended without duplicates,
//! options overriding by name. Then the resolver's limits: at most 3 nameservers and 32 search
//! domains of 2048 characters in all.

use std::net::Ipv4Addr;

use gantry_cri_proto::runtime::DnsConfig;
use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

use super::spec::SpecError;
use crate::dns::ResolvConf;

/// Most nameservers a resolver uses (glibc's MAXNS).
pub const MAX_NAMESERVERS: usize = 3;
/// Most search domains the kubelet passes on.
pub const MAX_SEARCHES: usize = 32;
/// Longest search line (in characters, spaces included) the kubelet passes on.
pub const MAX_SEARCH_CHARS: usize = 2048;
/// The option `ClusterFirst` pods get.
pub const CLUSTER_OPTIONS: &[&str] = &["ndots:5"];

/// What the node knows about DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDnsSettings {
    pub cluster_dns: Ipv4Addr,
    /// `cluster.local`.
    pub cluster_domain: String,
    /// The host's resolver configuration (`--resolv-conf`).
    pub host: ResolvConf,
}

/// The pod's `DnsConfig`.
pub fn pod_dns_config(pod: &Pod, settings: &PodDnsSettings) -> Result<DnsConfig, SpecError> {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let cluster = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        "Default" | "None" => false,
        other => return Err(SpecError::DnsPolicy(other.to_string())),
    };
    let host = &settings.host;
    let mut config = if policy == "None" {
        DnsConfig::default()
    } else if cluster {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = &settings.cluster_domain;
        let mut searches = vec![format!("{namespace}.svc.{domain}"), format!("svc.{domain}"), domain.clone()];
        searches.extend(host.searches.iter().cloned());
        DnsConfig {
            servers: vec![settings.cluster_dns.to_string()],
            searches,
            options: CLUSTER_OPTIONS.iter().map(|o| o.to_string()).collect(),
        }
    } else {
        DnsConfig {
            servers: host.nameservers.iter().map(ToString::to_string).collect(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        }
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        merge(&mut config, extra);
    }
    config.servers = dedup(config.servers);
    config.searches = dedup(config.searches);
    config.servers.truncate(MAX_NAMESERVERS);
    config.searches = fit_searches(config.searches);
    Ok(config)
}

/// Appends the pod's nameservers and searches; its options replace same-named ones.
fn merge(config: &mut DnsConfig, extra: &PodDNSConfig) {
    config.servers.extend(extra.nameservers.iter().flatten().cloned());
    config.searches.extend(extra.searches.iter().flatten().cloned());
    for o in extra.options.iter().flatten() {
        let Some(name) = o.name.as_deref().filter(|n| !n.is_empty()) else { continue };
        let text = o.value.as_ref().map_or_else(|| name.to_string(), |v| format!("{name}:{v}"));
        let same = |existing: &String| existing.split(':').next() == Some(name);
        match config.options.iter_mut().find(|e| same(e)) {
            Some(existing) => *existing = text,
            None => config.options.push(text),
        }
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The first search domains that fit the count and length limits.
fn fit_searches(searches: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = 0;
    for s in searches.into_iter().take(MAX_SEARCHES) {
        let added = s.len() + usize::from(!out.is_empty());
        if chars + added > MAX_SEARCH_CHARS {
            break;
        }
        chars += added;
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PodDnsSettings {
        PodDnsSettings {
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            host: ResolvConf::parse("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = serde_json::json!([{"name": "c", "image": "i"}]);
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}))
            .expect("pod")
    }

    fn config(spec: serde_json::Value) -> (Vec<String>, Vec<String>, Vec<String>) {
        let c = pod_dns_config(&pod(spec), &settings()).expect("config");
        (c.servers, c.searches, c.options)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_policy_gets_the_kubelets_resolver_configuration() {
        let cluster = (
            strings(&["10.96.0.10"]),
            strings(&["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"]),
            strings(&["ndots:5"]),
        );
        let host = (strings(&["192.0.2.53"]), strings(&["corp.example"]), strings(&["edns0"]));
        let cases: Vec<(serde_json::Value, _)> = vec![
            (serde_json::json!({}), cluster.clone()),
            (serde_json::json!({"dnsPolicy": "ClusterFirst"}), cluster.clone()),
            (serde_json::json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}), host.clone()),
            (serde_json::json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}), cluster.clone()),
            (serde_json::json!({"dnsPolicy": "ClusterFirstWithHostNet"}), cluster.clone()),
            (serde_json::json!({"dnsPolicy": "Default"}), host.clone()),
            (
                serde_json::json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["x.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}),
                (strings(&["1.1.1.1"]), strings(&["x.example"]), strings(&["ndots:2", "rotate"])),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(config(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn dns_config_is_merged_into_the_policy() {
        let (servers, searches, options) = config(serde_json::json!({"dnsConfig": {
            "nameservers": ["10.96.0.10", "192.0.2.1"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": ""}]
        }}));
        assert_eq!(servers, ["10.96.0.10", "192.0.2.1"], "duplicates dropped");
        assert_eq!(
            searches,
            ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "extra.example"]
        );
        assert_eq!(options, ["ndots:2", "edns0"], "ndots overridden by name");
    }

    #[test]
    fn resolver_limits_are_applied() {
        let searches_of = |len: usize| -> Vec<String> {
            let c = config(serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"],
                "searches": (0..40).map(|i| format!("{i:02}{}", "x".repeat(len - 2))).collect::<Vec<_>>()
            }}));
            assert_eq!(c.0, ["1.1.1.1", "1.1.1.2", "1.1.1.3"]);
            c.1
        };
        // 32 domains of 63 characters take 2047: the count is the limit.
        assert_eq!(searches_of(63).len(), MAX_SEARCHES);
        // Domains of 70 characters: 28 fit in 2048 (28 * 70 + 27 spaces = 1987; a 29th would be 2058).
        let long = searches_of(70);
        assert_eq!(long.len(), 28);
        assert_eq!(long[0], format!("00{}", "x".repeat(68)));
    }

    #[test]
    fn an_unknown_policy_is_an_error() {
        let err = pod_dns_config(&pod(serde_json::json!({"dnsPolicy": "Google"})), &settings()).expect_err("bad");
        assert!(err.to_string().contains("Google"), "{err}");
    }
}
