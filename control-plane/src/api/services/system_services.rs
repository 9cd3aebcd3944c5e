//! The Services every cluster has: `kubernetes` in `default` (the first address of the range, port 443
//! named `https` to the API port) and `kube-dns` in `kube-system` (the tenth address, 53/UDP `dns`,
//! 53/TCP `dns-tcp`, 9153/TCP `metrics`; the node agents answer for it), neither with a selector.
//! The replica that leads Raft creates whichever is missing (a Service that exists is left as it is,
//! so successive leaders never fight over it) and keeps the `kubernetes` endpoints current (see
//! `api_endpoints`).
//!
//! Owns the objects (pure) and the leader loop; writes go through the API (a `kube::Client` on this
//! replica's in-process service), so they are admitted, validated and allocated like any client's.
//! Must not depend on the store beyond the leadership gate.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use raft_store::Store;

use super::api_endpoints::reconcile_endpoints;
use super::ranges::ServiceRanges;

pub const KUBERNETES_SERVICE: &str = "kubernetes";
pub const DNS_SERVICE: &str = "kube-dns";
/// Name of the `kubernetes` Service's port (and of its endpoints' port).
pub const PORT_NAME: &str = "https";
/// How often the leader checks the Services and rewrites the endpoints if needed.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

fn service_port(name: &str, port: i32, protocol: &str, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(target)),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// `default/kubernetes`, with upstream's labels.
pub fn kubernetes_service(ranges: &ServiceRanges, api_port: u16) -> Service {
    let ip = ranges.cluster_ip.kubernetes_ip().to_string();
    Service {
        metadata: ObjectMeta {
            name: Some(KUBERNETES_SERVICE.into()),
            namespace: Some("default".into()),
            labels: labels(&[("component", "apiserver"), ("provider", "kubernetes")]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(ip.clone()),
            cluster_ips: Some(vec![ip]),
            ports: Some(vec![service_port(PORT_NAME, 443, "TCP", i32::from(api_port))]),
            session_affinity: Some("None".into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// `kube-system/kube-dns`, labelled as upstream's DNS add-on.
pub fn dns_service(ranges: &ServiceRanges) -> Service {
    let ip = ranges.cluster_ip.dns_ip().to_string();
    Service {
        metadata: ObjectMeta {
            name: Some(DNS_SERVICE.into()),
            namespace: Some("kube-system".into()),
            labels: labels(&[
                ("k8s-app", "kube-dns"),
                ("kubernetes.io/cluster-service", "true"),
                ("kubernetes.io/name", "CoreDNS"),
            ]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(ip.clone()),
            cluster_ips: Some(vec![ip]),
            ports: Some(vec![
                service_port("dns", 53, "UDP", 53),
                service_port("dns-tcp", 53, "TCP", 53),
                service_port("metrics", 9153, "TCP", 9153),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates `svc` unless a Service of that name exists. Errors are the caller's to log.
async fn ensure_service(client: &kube::Client, svc: &Service) -> Result<bool, kube::Error> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    if api.get_opt(name).await?.is_some() {
        return Ok(false);
    }
    match api.create(&PostParams::default(), svc).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// One leader pass: the two Services, then the `kubernetes` endpoints.
pub async fn reconcile_once(client: &kube::Client, ranges: &ServiceRanges, api_port: u16) {
    for svc in [kubernetes_service(ranges, api_port), dns_service(ranges)] {
        let name = svc.metadata.name.clone().unwrap_or_default();
        match ensure_service(client, &svc).await {
            Ok(true) => tracing::info!(service = %name, "created bootstrap service"),
            Ok(false) => {}
            Err(kube::Error::Api(s)) if s.code == 422 => {
                tracing::warn!(service = %name, error = %s.message, "cannot create bootstrap service")
            }
            Err(e) => tracing::debug!(service = %name, error = %e, "bootstrap service not created yet"),
        }
    }
    if let Err(e) = reconcile_endpoints(client).await {
        tracing::debug!(error = %e, "kubernetes service endpoints not reconciled yet");
    }
}

/// Runs [`reconcile_once`] every few seconds whenever `store` leads, until `shutdown` resolves.
pub async fn run_while_leader(
    store: Store,
    client: kube::Client,
    ranges: ServiceRanges,
    api_port: u16,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = store.wait_leadership(true) => {}
        }
        let passes = async {
            loop {
                reconcile_once(&client, &ranges, api_port).await;
                tokio::time::sleep(RECONCILE_INTERVAL).await;
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = store.wait_leadership(false) => {}
            _ = passes => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_services_take_the_well_known_addresses() {
        let ranges = ServiceRanges::default();
        let k = kubernetes_service(&ranges, 6443);
        let spec = k.spec.as_ref().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        let port = &spec.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.port, &port.target_port),
            (Some("https"), 443, &Some(IntOrString::Int(6443)))
        );
        assert!(spec.selector.is_none(), "no selector: the endpoints are the control plane's");
        let dns = dns_service(&ranges);
        let spec = dns.spec.as_ref().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        let ports: Vec<(String, i32, String)> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.port, p.protocol.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("dns".into(), 53, "UDP".into()),
                ("dns-tcp".into(), 53, "TCP".into()),
                ("metrics".into(), 9153, "TCP".into())
            ]
        );
        let small = ServiceRanges {
            cluster_ip: super::super::ranges::ClusterIpRange::parse("172.20.0.0/24").expect("range"),
            ..ranges
        };
        assert_eq!(dns_service(&small).spec.expect("spec").cluster_ip.as_deref(), Some("172.20.0.10"));
    }
}
