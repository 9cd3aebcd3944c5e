//! The endpoints of the `kubernetes` Service: every replica's API address, kept current the way
//! upstream's lease endpoint reconciler does it. Each replica renews a Lease `kube-apiserver-<id>` in
//! `kube-system` (label `apiserver.kubernetes.io/identity: kube-apiserver`, its API address in the
//! annotation `gantry.dev/api-address`) every few seconds; the leader lists the Leases that have not
//! expired and writes Endpoints `default/kubernetes` and its EndpointSlices from them, so a replica
//! that stops renewing drops out once its Lease expires.
//!
//! EndpointSlice and Endpoints ports apply to every address they list, so replicas listening on
//! different ports (as local clusters on one host do) are grouped by port: one Endpoints subset and
//! one EndpointSlice per port, the slice with the lowest port named `kubernetes` and the others
//! `kubernetes-<port>`. With one port for all replicas (the usual case) that is one subset and the
//! single slice `kubernetes`.
//!
//! Owns the decisions (pure: the Lease, liveness, the desired objects) and a thin driver over a
//! `kube::Client`; must not depend on the store.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::system_services::{KUBERNETES_SERVICE, PORT_NAME};

pub const LEASE_NAMESPACE: &str = "kube-system";
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
pub const IDENTITY_VALUE: &str = "kube-apiserver";
pub const ADDRESS_ANNOTATION: &str = "gantry.dev/api-address";
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// `managed-by` of the `kubernetes` Service's slices (the EndpointSlice controller leaves them alone).
pub const MANAGED_BY: &str = "gantry-control-plane";
/// Keeps upstream's EndpointSlice mirroring away from the Endpoints (as upstream's reconciler does).
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// How long a replica counts as live after its last renewal (upstream's master lease TTL).
pub const LEASE_DURATION_SECONDS: i32 = 15;
/// How often each replica renews its Lease.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_NAMESPACE: &str = "default";

/// What a replica could not do with the API.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("{what}: {source}")]
    Api { what: String, source: kube::Error },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> EndpointsError {
    let what = what.into();
    move |source| EndpointsError::Api { what, source }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

pub fn lease_name(node_id: u64) -> String {
    format!("kube-apiserver-{node_id}")
}

/// This replica's Lease renewed at `now` (`existing`: the stored one, whose metadata it keeps).
pub fn identity_lease(node_id: u64, address: SocketAddr, now: Timestamp, existing: Option<&Lease>) -> Lease {
    let name = lease_name(node_id);
    let mut metadata = existing.map(|l| l.metadata.clone()).unwrap_or_else(|| ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(LEASE_NAMESPACE.into()),
        ..Default::default()
    });
    metadata.labels.get_or_insert_with(BTreeMap::new).insert(IDENTITY_LABEL.into(), IDENTITY_VALUE.into());
    metadata.annotations.get_or_insert_with(BTreeMap::new).insert(ADDRESS_ANNOTATION.into(), address.to_string());
    let acquired = existing.and_then(|l| l.spec.as_ref()).and_then(|s| s.acquire_time.clone());
    Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(name),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// API addresses of the replicas whose Lease has not expired at `now`, sorted.
pub fn live_addresses(leases: &[Lease], now: Timestamp) -> Vec<SocketAddrV4> {
    let mut out = BTreeSet::new();
    for lease in leases {
        let labels = lease.metadata.labels.as_ref();
        if labels.and_then(|l| l.get(IDENTITY_LABEL)).map(String::as_str) != Some(IDENTITY_VALUE) {
            continue;
        }
        let Some(spec) = &lease.spec else { continue };
        let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else { continue };
        if renewed.0 + SignedDuration::from_secs(i64::from(seconds)) < now {
            continue;
        }
        let address = lease.metadata.annotations.as_ref().and_then(|a| a.get(ADDRESS_ANNOTATION));
        if let Some(SocketAddr::V4(a)) = address.and_then(|a| a.parse::<SocketAddr>().ok()) {
            out.insert(a);
        }
    }
    out.into_iter().collect()
}

/// Addresses grouped by port, lowest port first.
fn by_port(addresses: &[SocketAddrV4]) -> BTreeMap<u16, Vec<Ipv4Addr>> {
    let mut groups: BTreeMap<u16, Vec<Ipv4Addr>> = BTreeMap::new();
    for a in addresses {
        groups.entry(a.port()).or_default().push(*a.ip());
    }
    groups
}

/// Endpoints `default/kubernetes`: one subset per port.
pub fn desired_endpoints(addresses: &[SocketAddrV4]) -> Endpoints {
    let subsets: Vec<EndpointSubset> = by_port(addresses)
        .into_iter()
        .map(|(port, ips)| EndpointSubset {
            addresses: Some(
                ips.iter().map(|ip| EndpointAddress { ip: ip.to_string(), ..Default::default() }).collect(),
            ),
            ports: Some(vec![EndpointPort {
                name: Some(PORT_NAME.into()),
                port: i32::from(port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .collect();
    Endpoints {
        metadata: ObjectMeta {
            name: Some(KUBERNETES_SERVICE.into()),
            namespace: Some(DEFAULT_NAMESPACE.into()),
            labels: Some(BTreeMap::from([(LABEL_SKIP_MIRROR.to_string(), "true".to_string())])),
            ..Default::default()
        },
        subsets: Some(subsets),
    }
}

fn slice_name(index: usize, port: u16) -> String {
    if index == 0 {
        KUBERNETES_SERVICE.to_string()
    } else {
        format!("{KUBERNETES_SERVICE}-{port}")
    }
}

/// The EndpointSlices of `kubernetes`: one per port (see the module docs). With no live replica at
/// all, the single slice `kubernetes` without endpoints.
pub fn desired_slices(addresses: &[SocketAddrV4]) -> Vec<EndpointSlice> {
    let groups = by_port(addresses);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(DEFAULT_NAMESPACE.into()),
        labels: Some(BTreeMap::from([
            (LABEL_SERVICE_NAME.to_string(), KUBERNETES_SERVICE.to_string()),
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ])),
        ..Default::default()
    };
    if groups.is_empty() {
        return vec![EndpointSlice {
            metadata: meta(KUBERNETES_SERVICE.into()),
            address_type: "IPv4".into(),
            endpoints: vec![],
            ports: None,
        }];
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (port, ips))| EndpointSlice {
            metadata: meta(slice_name(i, port)),
            address_type: "IPv4".into(),
            endpoints: ips
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions { ready: Some(true), ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![SlicePort {
                name: Some(PORT_NAME.into()),
                port: Some(i32::from(port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        })
        .collect()
}

/// One Endpoints subset as far as the comparison of stored and desired ones goes.
#[derive(Debug, PartialEq, Eq)]
struct SubsetContent {
    ports: Vec<(Option<String>, i32)>,
    ips: Vec<String>,
}

/// A slice as far as the comparison of stored and desired ones goes.
#[derive(Debug, PartialEq, Eq)]
struct SliceContent {
    address_type: String,
    ports: Vec<(Option<String>, Option<i32>)>,
    endpoints: Vec<Vec<String>>,
    managed_by: Option<String>,
}

fn endpoints_content(e: &Endpoints) -> Vec<SubsetContent> {
    e.subsets
        .iter()
        .flatten()
        .map(|s| {
            let ports = s.ports.iter().flatten().map(|p| (p.name.clone(), p.port)).collect();
            let mut ips: Vec<String> = s.addresses.iter().flatten().map(|a| a.ip.clone()).collect();
            ips.sort();
            SubsetContent { ports, ips }
        })
        .collect()
}

fn slice_content(s: &EndpointSlice) -> SliceContent {
    let mut endpoints: Vec<Vec<String>> = s.endpoints.iter().map(|e| e.addresses.clone()).collect();
    endpoints.sort();
    SliceContent {
        address_type: s.address_type.clone(),
        ports: s.ports.iter().flatten().map(|p| (p.name.clone(), p.port)).collect(),
        endpoints,
        managed_by: s.metadata.labels.as_ref().and_then(|l| l.get(LABEL_MANAGED_BY)).cloned(),
    }
}

/// Writes Endpoints and EndpointSlices for the replicas that are live now.
pub async fn reconcile_endpoints(client: &kube::Client) -> Result<Vec<SocketAddrV4>, EndpointsError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let listed = leases
        .list(&ListParams::default().labels(&format!("{IDENTITY_LABEL}={IDENTITY_VALUE}")))
        .await
        .map_err(api_err("listing the replicas' leases"))?;
    let live = live_addresses(&listed.items, Timestamp::now());

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), DEFAULT_NAMESPACE);
    let mut desired = desired_endpoints(&live);
    match endpoints.get_opt(KUBERNETES_SERVICE).await.map_err(api_err("reading endpoints default/kubernetes"))? {
        None => match endpoints.create(&PostParams::default(), &desired).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(api_err("creating endpoints default/kubernetes")(e)),
        },
        Some(existing) => {
            let skip = existing.metadata.labels.as_ref().and_then(|l| l.get(LABEL_SKIP_MIRROR)).is_some();
            if endpoints_content(&existing) != endpoints_content(&desired) || !skip {
                desired.metadata.resource_version = existing.metadata.resource_version.clone();
                let mut labels = existing.metadata.labels.clone().unwrap_or_default();
                labels.insert(LABEL_SKIP_MIRROR.into(), "true".into());
                desired.metadata.labels = Some(labels);
                endpoints
                    .replace(KUBERNETES_SERVICE, &PostParams::default(), &desired)
                    .await
                    .map_err(api_err("updating endpoints default/kubernetes"))?;
            }
        }
    }

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), DEFAULT_NAMESPACE);
    let ours = slices
        .list(
            &ListParams::default()
                .labels(&format!("{LABEL_SERVICE_NAME}={KUBERNETES_SERVICE},{LABEL_MANAGED_BY}={MANAGED_BY}")),
        )
        .await
        .map_err(api_err("listing the kubernetes service's endpointslices"))?;
    let wanted = desired_slices(&live);
    let wanted_names: BTreeSet<String> = wanted.iter().filter_map(|s| s.metadata.name.clone()).collect();
    for mut slice in wanted {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match slices.get_opt(&name).await.map_err(api_err(format!("reading endpointslice default/{name}")))? {
            None => match slices.create(&PostParams::default(), &slice).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 409) => {}
                Err(e) => return Err(api_err(format!("creating endpointslice default/{name}"))(e)),
            },
            Some(existing) if slice_content(&existing) != slice_content(&slice) => {
                slice.metadata.resource_version = existing.metadata.resource_version.clone();
                slices
                    .replace(&name, &PostParams::default(), &slice)
                    .await
                    .map_err(api_err(format!("updating endpointslice default/{name}")))?;
            }
            Some(_) => {}
        }
    }
    for stale in ours.items.iter().filter_map(|s| s.metadata.name.as_ref()).filter(|n| !wanted_names.contains(*n)) {
        match slices.delete(stale, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(api_err(format!("deleting endpointslice default/{stale}"))(e)),
        }
    }
    Ok(live)
}

/// Renews this replica's Lease every [`RENEW_INTERVAL`] until `shutdown` resolves (every replica
/// runs this, leader or not).
pub async fn run_identity_lease(
    client: kube::Client,
    node_id: u64,
    address: SocketAddr,
    shutdown: impl Future<Output = ()>,
) {
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let name = lease_name(node_id);
    tokio::pin!(shutdown);
    loop {
        let renewed = async {
            match leases.get_opt(&name).await? {
                None => {
                    leases
                        .create(&PostParams::default(), &identity_lease(node_id, address, Timestamp::now(), None))
                        .await
                }
                Some(existing) => {
                    let lease = identity_lease(node_id, address, Timestamp::now(), Some(&existing));
                    leases.replace(&name, &PostParams::default(), &lease).await
                }
            }
        };
        if let Err(e) = renewed.await {
            tracing::debug!(lease = %name, error = %e, "renewing this replica's api lease failed; retrying");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(RENEW_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn leases_name_and_announce_the_replica() {
        let lease = identity_lease(2, addr("10.0.0.2:6443"), at(0), None);
        assert_eq!(lease.metadata.name.as_deref(), Some("kube-apiserver-2"));
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(lease.metadata.labels.as_ref().expect("labels")[IDENTITY_LABEL], "kube-apiserver");
        assert_eq!(lease.metadata.annotations.as_ref().expect("annotations")[ADDRESS_ANNOTATION], "10.0.0.2:6443");
        let spec = lease.spec.as_ref().expect("spec");
        assert_eq!(spec.lease_duration_seconds, Some(15));
        let renewed = identity_lease(2, addr("10.0.0.2:6443"), at(30), Some(&lease));
        let renewed_spec = renewed.spec.as_ref().expect("spec");
        assert_eq!(renewed_spec.acquire_time, spec.acquire_time, "acquired once");
        assert_eq!(renewed_spec.renew_time, Some(MicroTime(at(30))));
    }

    #[test]
    fn expired_and_foreign_leases_are_not_live() {
        let mut foreign = identity_lease(9, addr("10.0.0.9:6443"), at(100), None);
        foreign.metadata.labels = None;
        let leases = vec![
            identity_lease(1, addr("10.0.0.1:6443"), at(100), None),
            identity_lease(2, addr("10.0.0.2:6443"), at(80), None),
            identity_lease(3, addr("10.0.0.3:6443"), at(86), None),
            foreign,
        ];
        let live = live_addresses(&leases, at(100));
        assert_eq!(live, vec!["10.0.0.1:6443".parse().expect("a"), "10.0.0.3:6443".parse().expect("a")]);
        assert!(live_addresses(&leases, at(200)).is_empty());
    }

    #[test]
    fn one_port_gives_one_subset_and_the_slice_kubernetes() {
        let live: Vec<SocketAddrV4> = vec!["10.0.0.1:6443".parse().expect("a"), "10.0.0.2:6443".parse().expect("a")];
        let ep = desired_endpoints(&live);
        let subsets = ep.subsets.as_ref().expect("subsets");
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().expect("addresses").len(), 2);
        assert_eq!(subsets[0].ports.as_ref().expect("ports")[0].port, 6443);
        let slices = desired_slices(&live);
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0].metadata.name.as_deref(), Some("kubernetes"));
        assert_eq!(slices[0].endpoints.len(), 2);
        let labels = slices[0].metadata.labels.as_ref().expect("labels");
        assert_eq!(
            (labels[LABEL_SERVICE_NAME].as_str(), labels[LABEL_MANAGED_BY].as_str()),
            ("kubernetes", MANAGED_BY)
        );
    }

    #[test]
    fn different_ports_give_one_subset_and_slice_per_port() {
        let live: Vec<SocketAddrV4> = vec![
            "127.0.0.1:40003".parse().expect("a"),
            "127.0.0.1:40001".parse().expect("a"),
            "127.0.0.1:40002".parse().expect("a"),
        ];
        let ep = desired_endpoints(&live);
        let ports: Vec<i32> = ep.subsets.iter().flatten().map(|s| s.ports.as_ref().expect("ports")[0].port).collect();
        assert_eq!(ports, vec![40001, 40002, 40003]);
        let names: Vec<String> = desired_slices(&live).iter().filter_map(|s| s.metadata.name.clone()).collect();
        assert_eq!(names, vec!["kubernetes", "kubernetes-40002", "kubernetes-40003"]);
        assert_eq!(desired_slices(&[]).len(), 1, "an empty slice kubernetes when nothing is live");
        assert_eq!(endpoints_content(&desired_endpoints(&[])), vec![]);
    }
}
