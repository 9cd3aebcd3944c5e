//! Which EndpointSlices of a Service to create, update and delete, from the Service, the pods of its
//! namespace, node zones and the slices the controller already manages (upstream `reconciler.go`).
//!
//! Churn is kept low as upstream does: endpoints stay in the slice that holds them (updated in place
//! when their conditions change), new endpoints fill slices that are being written anyway before
//! slices that are not, new slices are created only when no slice of the same port set has room, and
//! a slice is deleted only when it ends up empty. A Service without pods keeps one empty placeholder.
//!
//! Pure: must not depend on the API client.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::endpoints::service_pods::{
    find_port, is_headless, pod_ipv4, publishes_not_ready, selector, selects_pod, should_be_in_endpoints,
};
use crate::endpoints::LABEL_HEADLESS;
use crate::pods::{controller_ref, is_ready};

/// Most endpoints in one slice (upstream `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// `managed-by` value of the slices this controller owns.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const ADDRESS_TYPE: &str = "IPv4";
/// Node label giving an endpoint's zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

#[derive(Debug, Default)]
pub struct SlicePlan {
    /// New slices (named by the API from `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices to replace (their metadata carries the resourceVersion read).
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl SlicePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Ports compared by content (an unnamed port may come back named `""` or without a name).
type PortsKey = Vec<(String, i32, String, Option<String>)>;
/// An endpoint's identity: address and pod uid.
type EndpointKey = (String, String);

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let uid = ep.target_ref.as_ref().and_then(|r| r.uid.clone()).unwrap_or_default();
    (ep.addresses.first().cloned().unwrap_or_default(), uid)
}

fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    let mut out: Vec<EndpointPort> = ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            find_port(pod, sp).map(|port| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
    out
}

fn endpoint(svc: &Service, pod: &Pod, ip: String, zone_of: &dyn Fn(&str) -> Option<String>) -> Endpoint {
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // As upstream: never ready while terminating, unless unready pods are published anyway.
    let ready = publishes_not_ready(svc) || (serving && !terminating);
    let spec = pod.spec.as_ref();
    let node_name = spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
    let subdomain_matches =
        spec.and_then(|s| s.subdomain.as_deref()).is_some_and(|d| Some(d) == svc.metadata.name.as_deref());
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: spec.and_then(|s| s.hostname.clone()).filter(|h| subdomain_matches && !h.is_empty()),
        zone: node_name.as_deref().and_then(zone_of),
        node_name,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The labels every slice of `svc` carries: the Service's own, plus the service name and manager.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(LABEL_SERVICE_NAME.into(), svc.metadata.name.clone().unwrap_or_default());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    if is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

/// A slice under construction: an existing one (`base`) or a new one.
struct Working {
    base: Option<Arc<EndpointSlice>>,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
    changed: bool,
}

/// Plans the slices of `svc` given the pods of its namespace, `zone_of(node)` and `existing`, the
/// slices this controller manages for `svc` (terminating ones are ignored).
pub fn plan(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
    existing: &[Arc<EndpointSlice>],
) -> SlicePlan {
    let mut out = SlicePlan::default();
    let mut existing: Vec<Arc<EndpointSlice>> =
        existing.iter().filter(|s| s.metadata.deletion_timestamp.is_none()).cloned().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if selector(svc).is_none() {
        out.delete = existing;
        return out;
    }
    // Desired endpoints grouped by port set, in pod order.
    let mut desired: BTreeMap<PortsKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> = BTreeMap::new();
    let mut order: Vec<(PortsKey, EndpointKey)> = Vec::new();
    for pod in pods {
        if !selects_pod(svc, pod) || !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let ports = endpoint_ports(svc, pod);
        let ep = endpoint(svc, pod, ip, zone_of);
        let (pk, ek) = (ports_key(&ports), endpoint_key(&ep));
        let group = desired.entry(pk.clone()).or_insert_with(|| (ports, BTreeMap::new()));
        if group.1.insert(ek.clone(), ep).is_none() {
            order.push((pk, ek));
        }
    }
    let labels = desired_labels(svc);
    let owner = controller_ref(svc);
    let metadata_current = |s: &EndpointSlice| {
        s.metadata.labels.as_ref() == Some(&labels)
            && s.metadata.owner_references.iter().flatten().any(|o| o.uid == owner.uid && o.controller == Some(true))
    };

    if desired.is_empty() {
        // Keep (or create) one empty placeholder, delete the rest.
        let placeholder = existing.iter().position(|s| s.endpoints.is_empty() && s.address_type == ADDRESS_TYPE);
        match placeholder {
            Some(i) => {
                let kept = existing.remove(i);
                if !metadata_current(&kept) {
                    out.update.push(finish(svc, &labels, &owner, Some(&kept), Vec::new(), Vec::new()));
                }
            }
            None => out.create.push(finish(svc, &labels, &owner, None, Vec::new(), Vec::new())),
        }
        out.delete = existing;
        reuse_deleted(&mut out, svc, &labels, &owner);
        return out;
    }

    // Existing slices keep the desired endpoints they already hold; the rest of theirs go.
    let mut working: BTreeMap<PortsKey, Vec<Working>> = BTreeMap::new();
    for slice in existing {
        let ports = slice.ports.clone().unwrap_or_default();
        let pk = ports_key(&ports);
        let group = match desired.get_mut(&pk) {
            Some(g) if slice.address_type == ADDRESS_TYPE => g,
            _ => {
                out.delete.push(slice);
                continue;
            }
        };
        let mut kept = Vec::new();
        let mut changed = !metadata_current(&slice);
        for ep in &slice.endpoints {
            match group.1.remove(&endpoint_key(ep)) {
                Some(want) => {
                    changed |= &want != ep;
                    kept.push(want);
                }
                None => changed = true,
            }
        }
        working.entry(pk).or_default().push(Working { base: Some(slice), ports, endpoints: kept, changed });
    }

    // Endpoints not held anywhere go to slices being written anyway, then to unchanged slices with
    // room, then to new slices.
    for (pk, ek) in order {
        let Some(group) = desired.get_mut(&pk) else { continue };
        let Some(ep) = group.1.remove(&ek) else { continue };
        let slices = working.entry(pk).or_default();
        let room = |w: &Working| w.endpoints.len() < MAX_ENDPOINTS_PER_SLICE;
        let target = slices.iter().position(|w| w.changed && room(w)).or_else(|| slices.iter().position(&room));
        match target {
            Some(i) => {
                slices[i].endpoints.push(ep);
                slices[i].changed = true;
            }
            None => slices.push(Working { base: None, ports: group.0.clone(), endpoints: vec![ep], changed: true }),
        }
    }

    for w in working.into_values().flatten() {
        match (w.base, w.endpoints.is_empty()) {
            (Some(base), true) => out.delete.push(base),
            (None, true) => {}
            (Some(base), false) if w.changed => {
                out.update.push(finish(svc, &labels, &owner, Some(&base), w.ports, w.endpoints))
            }
            (Some(_), false) => {}
            (None, false) => out.create.push(finish(svc, &labels, &owner, None, w.ports, w.endpoints)),
        }
    }
    reuse_deleted(&mut out, svc, &labels, &owner);
    out
}

/// Turns a create and a delete into one update of the slice that would be deleted (as upstream):
/// one write instead of two, and the slice count never dips.
fn reuse_deleted(out: &mut SlicePlan, svc: &Service, labels: &BTreeMap<String, String>, owner: &OwnerReference) {
    while !out.create.is_empty() {
        let Some(i) = out.delete.iter().position(|s| s.address_type == ADDRESS_TYPE) else { break };
        let base = out.delete.remove(i);
        let Some(new) = out.create.pop() else { break };
        out.update.push(finish(svc, labels, owner, Some(&base), new.ports.unwrap_or_default(), new.endpoints));
    }
}

fn finish(
    svc: &Service,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    base: Option<&EndpointSlice>,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let metadata = match base {
        Some(b) => {
            let mut refs: Vec<_> =
                b.metadata.owner_references.iter().flatten().filter(|o| o.uid != owner.uid).cloned().collect();
            refs.push(owner.clone());
            ObjectMeta { labels: Some(labels.clone()), owner_references: Some(refs), ..b.metadata.clone() }
        }
        None => ObjectMeta {
            generate_name: Some(format!("{}-", svc.metadata.name.as_deref().unwrap_or_default())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
    };
    EndpointSlice {
        metadata,
        address_type: ADDRESS_TYPE.into(),
        endpoints,
        ports: (!ports.is_empty()).then_some(ports),
    }
}
