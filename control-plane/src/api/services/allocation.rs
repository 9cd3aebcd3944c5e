//! What a Service write does to the cluster IPs and node ports it holds: values the user asked for
//! are checked against the ranges, missing ones are picked (upstream's `initClusterIPs`,
//! `initNodePorts`, `updateNodePorts`), and the difference between what the old and the new object
//! hold says which values to reserve and which to release. The caller (`reservations`) turns the
//! plan into one store transaction, which is where "taken" is decided.
//!
//! Pure (randomness comes in through [`Pick`]); must not depend on the store or the HTTP layer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::fields::{
    allocates_node_ports, cluster_ips, cluster_ips_shown, health_check_port, held_cluster_ip, needs_cluster_ip,
    needs_health_check_port, needs_node_ports, node_port, ports, primary_cluster_ip, spec, takes_cluster_ip, NONE,
};
use super::ranges::{choose_index, static_band, ServiceRanges};
use crate::api::status::{ApiError, Cause};

/// The two pools values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pool {
    ClusterIp,
    NodePort,
}

impl Pool {
    /// Upstream's noun in "failed to allocate a ...".
    fn noun(self) -> &'static str {
        match self {
            Pool::ClusterIp => "serviceIP",
            Pool::NodePort => "nodePort",
        }
    }

    /// Label value for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Pool::ClusterIp => "clusterip",
            Pool::NodePort => "nodeport",
        }
    }
}

/// One value a Service can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    ClusterIp(Ipv4Addr),
    NodePort(u16),
}

impl Resource {
    pub fn pool(self) -> Pool {
        match self {
            Resource::ClusterIp(_) => Pool::ClusterIp,
            Resource::NodePort(_) => Pool::NodePort,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::ClusterIp(ip) => write!(f, "cluster IP {ip}"),
            Resource::NodePort(p) => write!(f, "node port {p}"),
        }
    }
}

/// Everything a stored Service holds: its cluster IP (when it needs one), its ports' node ports
/// (NodePort and LoadBalancer), its health check node port (LoadBalancer with the Local policy).
pub fn held(svc: &Value) -> BTreeSet<Resource> {
    let mut out = BTreeSet::new();
    if let Some(ip) = held_cluster_ip(svc) {
        out.insert(Resource::ClusterIp(ip));
    }
    if needs_node_ports(svc) {
        out.extend(ports(svc).iter().filter_map(node_port).map(Resource::NodePort));
    }
    if needs_health_check_port(svc) {
        out.extend(health_check_port(svc).map(Resource::NodePort));
    }
    out
}

/// The field a value the user asked for sits in, for the 422 when it cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSite {
    pub field: String,
    /// The value as upstream renders it in the message.
    pub shown: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The user asked for this value: if it is taken, the write fails with a 422.
    Requested(RequestSite),
    /// Picked by the allocator: if it is taken, another is picked and the write retried.
    Picked,
}

/// A value the write must reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub resource: Resource,
    pub origin: Origin,
}

/// What a write does to reservations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePlan {
    /// Values the new object holds and the old one did not.
    pub reserve: Vec<Claim>,
    /// Values the old object held and the new one does not.
    pub release: Vec<Resource>,
}

impl WritePlan {
    pub fn is_empty(&self) -> bool {
        self.reserve.is_empty() && self.release.is_empty()
    }
}

/// Why a write cannot get its values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("invalid service: {}", .0.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<Cause>),
    #[error("failed to allocate a {}: range is full", .0.noun())]
    Full(Pool),
}

impl AllocError {
    /// The API error for Service `name`: 422 with field causes, or upstream's 500 for a full range.
    pub fn into_api_error(self, name: &str) -> ApiError {
        match self {
            AllocError::Invalid(causes) => ApiError::invalid("", "Service", name, causes),
            AllocError::Full(_) => ApiError::internal(format!("Internal error occurred: {self}")),
        }
    }
}

fn invalid(site: &RequestSite, detail: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: site.field.clone(),
        message: format!("Invalid value: {}: {detail}", site.shown),
    }
}

/// The 422 cause for a requested value someone else holds (upstream's wording).
pub fn taken_cause(claim: &Claim) -> Option<Cause> {
    let Origin::Requested(site) = &claim.origin else { return None };
    let detail = match claim.resource {
        Resource::ClusterIp(ip) => format!("failed to allocate IP {ip}: provided IP is already allocated"),
        Resource::NodePort(_) => "provided port is already allocated".to_string(),
    };
    Some(invalid(site, detail))
}

fn out_of_range_cause(ranges: &ServiceRanges, resource: Resource, site: &RequestSite) -> Cause {
    let detail = match resource {
        Resource::ClusterIp(ip) => format!(
            "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
            ranges.cluster_ip
        ),
        Resource::NodePort(_) => {
            format!("provided port is not in the valid range. The range of valid ports is {}", ranges.node_port)
        }
    };
    invalid(site, detail)
}

/// Where the value the user asked for sits in `svc`.
fn request_site(svc: &Value, resource: Resource) -> RequestSite {
    match resource {
        Resource::ClusterIp(_) => RequestSite { field: "spec.clusterIPs".into(), shown: cluster_ips_shown(svc) },
        Resource::NodePort(p) => match ports(svc).iter().position(|port| node_port(port) == Some(p)) {
            Some(i) => RequestSite { field: format!("spec.ports[{i}].nodePort"), shown: p.to_string() },
            None => RequestSite { field: "spec.healthCheckNodePort".into(), shown: p.to_string() },
        },
    }
}

/// A source of picked values.
pub trait Pick {
    /// A value from `pool` that is neither known to be taken nor already picked or avoided.
    fn pick(&mut self, pool: Pool) -> Option<Resource>;
    /// Never pick `resource` (the write asks for it explicitly, or it is being released).
    fn avoid(&mut self, resource: Resource);
}

/// Random picks over the ranges (see [`choose_index`]), skipping values known to be taken, the
/// well-known addresses, and values already picked or avoided.
pub struct Chooser<'a, R> {
    ranges: &'a ServiceRanges,
    taken: &'a BTreeSet<Resource>,
    picked: BTreeSet<Resource>,
    rng: R,
}

impl<'a, R: rand::Rng> Chooser<'a, R> {
    pub fn new(ranges: &'a ServiceRanges, taken: &'a BTreeSet<Resource>, rng: R) -> Self {
        Self { ranges, taken, picked: BTreeSet::new(), rng }
    }
}

impl<R: rand::Rng> Pick for Chooser<'_, R> {
    fn pick(&mut self, pool: Pool) -> Option<Resource> {
        let Self { ranges, taken, picked, rng } = self;
        let unavailable = |r: Resource| taken.contains(&r) || picked.contains(&r);
        let chosen = match pool {
            Pool::ClusterIp => {
                let r = ranges.cluster_ip;
                choose_index(r.assignable_count(), static_band(r.size()), rng, |i| {
                    let ip = r.assignable_at(i);
                    r.is_well_known(ip) || unavailable(Resource::ClusterIp(ip))
                })
                .map(|i| Resource::ClusterIp(r.assignable_at(i)))
            }
            Pool::NodePort => {
                let r = ranges.node_port;
                choose_index(r.size(), static_band(r.size()), rng, |i| unavailable(Resource::NodePort(r.at(i))))
                    .map(|i| Resource::NodePort(r.at(i)))
            }
        }?;
        picked.insert(chosen);
        Some(chosen)
    }

    fn avoid(&mut self, resource: Resource) {
        self.picked.insert(resource);
    }
}

/// Single-stack IPv4 rules for the IP family fields (upstream `initIPFamilyFields` on a cluster with
/// one IPv4 range).
fn family_causes(svc: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !takes_cluster_ip(svc) {
        return causes;
    }
    let spec = spec(svc);
    if let Some(families) = spec.get("ipFamilies").and_then(Value::as_array) {
        for (i, family) in families.iter().enumerate() {
            let family = family.as_str().unwrap_or("");
            if family != "IPv4" {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: format!("spec.ipFamilies[{i}]"),
                    message: format!("Invalid value: {family:?}: not configured on this cluster"),
                });
            }
        }
    }
    let headless = primary_cluster_ip(svc) == NONE;
    if spec.get("ipFamilyPolicy").and_then(Value::as_str) == Some("RequireDualStack") && !headless {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.ipFamilyPolicy".into(),
            message: "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
                .into(),
        });
    }
    let ips = cluster_ips(svc);
    if ips.len() > 1 && !headless {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs".into(),
            message: format!(
                "Invalid value: {}: this cluster is single-stack IPv4: at most one cluster IP can be given",
                cluster_ips_shown(svc)
            ),
        });
    }
    causes
}

fn set_cluster_ip(svc: &mut Value, ip: Ipv4Addr) {
    svc["spec"]["clusterIP"] = json!(ip.to_string());
    svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
}

/// Node ports for ports without one (upstream `initNodePorts`): ports sharing a service port number
/// (e.g. 53/UDP and 53/TCP) share a node port, taken from one of them when the user gave it.
fn fill_node_ports(svc: &mut Value, picker: &mut impl Pick, picked: &mut BTreeSet<Resource>) -> Result<(), AllocError> {
    if !allocates_node_ports(svc) {
        return Ok(());
    }
    let count = ports(svc).len();
    let mut by_port_number: BTreeMap<i64, u16> = BTreeMap::new();
    for i in 0..count {
        let list = ports(svc);
        let number = list[i].get("port").and_then(Value::as_i64).unwrap_or(0);
        if let Some(np) = node_port(&list[i]) {
            by_port_number.entry(number).or_insert(np);
            continue;
        }
        let shared = by_port_number.get(&number).copied().or_else(|| {
            list[i + 1..].iter().filter(|p| p.get("port").and_then(Value::as_i64) == Some(number)).find_map(node_port)
        });
        let chosen = match shared {
            Some(np) => np,
            None => match picker.pick(Pool::NodePort) {
                Some(r @ Resource::NodePort(np)) => {
                    picked.insert(r);
                    np
                }
                _ => return Err(AllocError::Full(Pool::NodePort)),
            },
        };
        by_port_number.insert(number, chosen);
        svc["spec"]["ports"][i]["nodePort"] = json!(chosen);
    }
    Ok(())
}

/// Fills in what `new` needs and does not say (cluster IP, node ports, health check port), checks
/// the values it asks for against the ranges, and says what to reserve and release relative to
/// `old` (`None` for a create). A value both objects hold is kept as it is.
pub fn plan_write(
    ranges: &ServiceRanges,
    old: Option<&Value>,
    new: &mut Value,
    picker: &mut impl Pick,
) -> Result<WritePlan, AllocError> {
    let causes = family_causes(new);
    if !causes.is_empty() {
        return Err(AllocError::Invalid(causes));
    }
    let held_old = old.map(held).unwrap_or_default();
    for r in held_old.iter().copied().chain(held(new)) {
        picker.avoid(r);
    }
    let mut picked = BTreeSet::new();
    if needs_cluster_ip(new) {
        let primary = primary_cluster_ip(new).to_string();
        if primary.is_empty() {
            match picker.pick(Pool::ClusterIp) {
                Some(r @ Resource::ClusterIp(ip)) => {
                    set_cluster_ip(new, ip);
                    picked.insert(r);
                }
                _ => return Err(AllocError::Full(Pool::ClusterIp)),
            }
        } else {
            match primary.parse::<Ipv4Addr>() {
                Ok(ip) => set_cluster_ip(new, ip),
                Err(_) => {
                    // Validation accepted it as an IP, so it is IPv6: not in this IPv4 range.
                    let site = RequestSite { field: "spec.clusterIPs".into(), shown: cluster_ips_shown(new) };
                    let detail = format!(
                        "failed to allocate IP {primary}: the provided IP ({primary}) is not in the valid range. \
                         The range of valid IPs is {}",
                        ranges.cluster_ip
                    );
                    return Err(AllocError::Invalid(vec![invalid(&site, detail)]));
                }
            }
        }
    }
    if needs_node_ports(new) {
        fill_node_ports(new, picker, &mut picked)?;
    }
    if needs_health_check_port(new) && health_check_port(new).is_none() {
        match picker.pick(Pool::NodePort) {
            Some(r @ Resource::NodePort(p)) => {
                new["spec"]["healthCheckNodePort"] = json!(p);
                picked.insert(r);
            }
            _ => return Err(AllocError::Full(Pool::NodePort)),
        }
    }
    let held_new = held(new);
    let mut plan = WritePlan::default();
    let mut causes = Vec::new();
    for r in held_new.difference(&held_old).copied() {
        if picked.contains(&r) {
            plan.reserve.push(Claim { resource: r, origin: Origin::Picked });
            continue;
        }
        let site = request_site(new, r);
        let in_range = match r {
            Resource::ClusterIp(ip) => ranges.cluster_ip.is_assignable(ip),
            Resource::NodePort(p) => ranges.node_port.contains(p),
        };
        if !in_range {
            causes.push(out_of_range_cause(ranges, r, &site));
        }
        plan.reserve.push(Claim { resource: r, origin: Origin::Requested(site) });
    }
    if !causes.is_empty() {
        return Err(AllocError::Invalid(causes));
    }
    plan.release = held_old.difference(&held_new).copied().collect();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Picks the lowest free values, so expectations are exact.
    #[derive(Default)]
    struct Lowest {
        used: BTreeSet<Resource>,
        full: bool,
    }

    impl Pick for Lowest {
        fn pick(&mut self, pool: Pool) -> Option<Resource> {
            if self.full {
                return None;
            }
            let r = match pool {
                Pool::ClusterIp => (2u8..=254)
                    .map(|d| Resource::ClusterIp(Ipv4Addr::new(10, 96, 1, d)))
                    .find(|r| !self.used.contains(r))?,
                Pool::NodePort => (30500u16..).map(Resource::NodePort).find(|r| !self.used.contains(r))?,
            };
            self.used.insert(r);
            Some(r)
        }

        fn avoid(&mut self, r: Resource) {
            self.used.insert(r);
        }
    }

    fn ranges() -> ServiceRanges {
        ServiceRanges::default()
    }

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": spec})
    }

    fn ip(s: &str) -> Resource {
        Resource::ClusterIp(s.parse().expect("ip"))
    }

    fn picked(resources: &[Resource]) -> Vec<Claim> {
        resources.iter().map(|r| Claim { resource: *r, origin: Origin::Picked }).collect()
    }

    fn messages(e: AllocError) -> Vec<String> {
        match e {
            AllocError::Invalid(causes) => causes.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect(),
            other => vec![other.to_string()],
        }
    }

    #[test]
    fn a_cluster_ip_service_gets_one_ip_and_no_ports() {
        let mut s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let plan = plan_write(&ranges(), None, &mut s, &mut Lowest::default()).expect("plan");
        assert_eq!(plan.reserve, picked(&[ip("10.96.1.2")]));
        assert!(plan.release.is_empty());
        assert_eq!(s["spec"]["clusterIP"], "10.96.1.2");
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.1.2"]));
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn a_node_port_service_gets_a_port_per_port_shared_by_port_number() {
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30501}]}));
        let plan = plan_write(&ranges(), None, &mut s, &mut Lowest::default()).expect("plan");
        let ports: Vec<i64> =
            s["spec"]["ports"].as_array().expect("ports").iter().map(|p| p["nodePort"].as_i64().expect("np")).collect();
        assert_eq!(
            ports,
            vec![30500, 30502, 30502, 30501],
            "the requested 30501 is never picked; 53/UDP and 53/TCP share"
        );
        let mut want = picked(&[ip("10.96.1.2"), Resource::NodePort(30500), Resource::NodePort(30502)]);
        want.push(Claim {
            resource: Resource::NodePort(30501),
            origin: Origin::Requested(RequestSite { field: "spec.ports[3].nodePort".into(), shown: "30501".into() }),
        });
        let mut got = plan.reserve.clone();
        got.sort_by_key(|c| c.resource);
        want.sort_by_key(|c| c.resource);
        assert_eq!(got, want);
    }

    #[test]
    fn a_requested_node_port_on_a_later_port_with_the_same_number_is_shared() {
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 31053}]}));
        plan_write(&ranges(), None, &mut s, &mut Lowest::default()).expect("plan");
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 31053);
    }

    #[test]
    fn headless_and_external_name_services_get_nothing() {
        for spec in [
            json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}),
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ] {
            let mut s = svc(spec.clone());
            let plan = plan_write(&ranges(), None, &mut s, &mut Lowest::default()).expect("plan");
            assert!(plan.is_empty(), "{spec}: {plan:?}");
            assert_eq!(s["spec"], spec, "nothing filled in");
        }
    }

    #[test]
    fn requested_values_are_checked_against_the_ranges() {
        let mut s = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}));
        let plan = plan_write(&ranges(), None, &mut s, &mut Lowest::default()).expect("in range");
        assert_eq!(
            plan.reserve,
            vec![Claim {
                resource: ip("10.96.0.10"),
                origin: Origin::Requested(RequestSite {
                    field: "spec.clusterIPs".into(),
                    shown: "[]string{\"10.96.0.10\"}".into()
                })
            }]
        );
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.10"]), "clusterIPs follows clusterIP");
        let mut outside = svc(json!({"clusterIP": "1.1.1.1", "ports": [{"port": 53}]}));
        assert_eq!(
            messages(plan_write(&ranges(), None, &mut outside, &mut Lowest::default()).expect_err("outside")),
            vec!["spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
        );
        for edge in ["10.96.0.0", "10.111.255.255"] {
            let mut s = svc(json!({"clusterIP": edge, "ports": [{"port": 53}]}));
            assert!(plan_write(&ranges(), None, &mut s, &mut Lowest::default()).is_err(), "{edge} is not assignable");
        }
        let mut v6 = svc(json!({"clusterIP": "fd00::1", "ports": [{"port": 53}]}));
        assert!(messages(plan_write(&ranges(), None, &mut v6, &mut Lowest::default()).expect_err("v6"))[0]
            .contains("is not in the valid range"));
        let mut port = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}));
        assert_eq!(
            messages(plan_write(&ranges(), None, &mut port, &mut Lowest::default()).expect_err("port")),
            vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]
        );
    }

    #[test]
    fn taken_requested_values_are_worded_like_upstream() {
        let ip_claim = Claim {
            resource: ip("10.96.0.10"),
            origin: Origin::Requested(RequestSite {
                field: "spec.clusterIPs".into(),
                shown: "[]string{\"10.96.0.10\"}".into(),
            }),
        };
        let cause = taken_cause(&ip_claim).expect("cause");
        assert_eq!(
            format!("{}: {}", cause.field, cause.message),
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
        let port_claim = Claim {
            resource: Resource::NodePort(30080),
            origin: Origin::Requested(RequestSite { field: "spec.ports[0].nodePort".into(), shown: "30080".into() }),
        };
        let cause = taken_cause(&port_claim).expect("cause");
        assert_eq!(
            format!("{}: {}", cause.field, cause.message),
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        assert!(taken_cause(&Claim { resource: Resource::NodePort(1), origin: Origin::Picked }).is_none());
        let api = AllocError::Invalid(vec![cause]).into_api_error("web");
        assert_eq!(api.code, 422);
        assert_eq!(api.message, "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
        let full = AllocError::Full(Pool::ClusterIp).into_api_error("web");
        assert_eq!(
            (full.code, full.message.as_str()),
            (500, "Internal error occurred: failed to allocate a serviceIP: range is full")
        );
    }

    #[test]
    fn full_pools_are_reported() {
        let mut s = svc(json!({"ports": [{"port": 80}]}));
        let mut full = Lowest { full: true, ..Default::default() };
        assert_eq!(plan_write(&ranges(), None, &mut s, &mut full), Err(AllocError::Full(Pool::ClusterIp)));
        let mut s = svc(json!({"clusterIP": "10.96.0.20", "type": "NodePort", "ports": [{"port": 80}]}));
        assert_eq!(plan_write(&ranges(), None, &mut s, &mut full), Err(AllocError::Full(Pool::NodePort)));
    }

    #[test]
    fn single_stack_family_rules() {
        let mut dual = svc(json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}));
        assert_eq!(
            messages(plan_write(&ranges(), None, &mut dual, &mut Lowest::default()).expect_err("dual")),
            vec!["spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"]
        );
        let mut headless =
            svc(json!({"clusterIP": "None", "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4"]}));
        plan_write(&ranges(), None, &mut headless, &mut Lowest::default()).expect("headless may require dual stack");
        let mut v6 = svc(json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}));
        assert_eq!(
            messages(plan_write(&ranges(), None, &mut v6, &mut Lowest::default()).expect_err("v6")),
            vec!["spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"]
        );
        let mut two = svc(json!({"clusterIPs": ["10.96.0.20", "fd00::20"], "ports": [{"port": 80}]}));
        assert!(plan_write(&ranges(), None, &mut two, &mut Lowest::default()).is_err());
    }

    #[test]
    fn type_changes_reserve_and_release_the_difference() {
        let ranges = ranges();
        let cluster_ip = svc(json!({"type": "ClusterIP", "clusterIP": "10.96.1.2", "clusterIPs": ["10.96.1.2"],
            "ports": [{"name": "http", "port": 80}]}));
        // ClusterIP -> NodePort: the IP is kept, a node port is picked.
        let mut node_port = cluster_ip.clone();
        node_port["spec"]["type"] = json!("NodePort");
        let plan = plan_write(&ranges, Some(&cluster_ip), &mut node_port, &mut Lowest::default()).expect("plan");
        assert_eq!(plan, WritePlan { reserve: picked(&[Resource::NodePort(30500)]), release: vec![] });
        // NodePort -> ClusterIP (node ports already dropped by the strategy): the port is released.
        let mut back = cluster_ip.clone();
        let plan = plan_write(&ranges, Some(&node_port), &mut back, &mut Lowest::default()).expect("plan");
        assert_eq!(plan, WritePlan { reserve: vec![], release: vec![Resource::NodePort(30500)] });
        // -> ExternalName: everything is released.
        let mut external = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        let plan = plan_write(&ranges, Some(&node_port), &mut external, &mut Lowest::default()).expect("plan");
        assert_eq!(plan.release, vec![ip("10.96.1.2"), Resource::NodePort(30500)]);
        assert!(plan.reserve.is_empty());
        // ExternalName -> ClusterIP: a new IP.
        let mut again = svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
        let plan = plan_write(&ranges, Some(&external), &mut again, &mut Lowest::default()).expect("plan");
        assert_eq!(plan.reserve.len(), 1);
        assert!(plan.release.is_empty());
        // Changing a node port reserves the new one and releases the old one.
        let mut moved = node_port.clone();
        moved["spec"]["ports"][0]["nodePort"] = json!(31000);
        let plan = plan_write(&ranges, Some(&node_port), &mut moved, &mut Lowest::default()).expect("plan");
        assert_eq!(plan.release, vec![Resource::NodePort(30500)]);
        assert_eq!(plan.reserve.len(), 1);
        assert!(matches!(plan.reserve[0].origin, Origin::Requested(_)));
        // An unchanged Service reserves and releases nothing, even if the range moved meanwhile.
        let narrow = ServiceRanges {
            node_port: super::super::ranges::NodePortRange::parse("31000-31100").expect("r"),
            ..ranges
        };
        let mut same = node_port.clone();
        assert!(plan_write(&narrow, Some(&node_port), &mut same, &mut Lowest::default()).expect("plan").is_empty());
    }

    #[test]
    fn a_load_balancer_with_local_policy_gets_a_health_check_port() {
        let mut lb = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}));
        let plan = plan_write(&ranges(), None, &mut lb, &mut Lowest::default()).expect("plan");
        assert_eq!(plan.reserve.len(), 3, "ip, node port, health check port: {plan:?}");
        assert_eq!(lb["spec"]["healthCheckNodePort"], 30501);
        let mut no_ports =
            svc(json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}));
        let plan = plan_write(&ranges(), None, &mut no_ports, &mut Lowest::default()).expect("plan");
        assert_eq!(plan.reserve.len(), 1, "only the IP: {plan:?}");
    }

    #[test]
    fn random_choices_avoid_taken_well_known_and_requested_values() {
        let small = ServiceRanges {
            cluster_ip: super::super::ranges::ClusterIpRange::parse("10.0.0.0/28").expect("range"),
            node_port: super::super::ranges::NodePortRange::parse("30000-30003").expect("ports"),
        };
        let taken: BTreeSet<Resource> =
            (2u8..=9).chain(11..=13).map(|d| Resource::ClusterIp(Ipv4Addr::new(10, 0, 0, d))).collect();
        for seed in 0..20 {
            let mut chooser = Chooser::new(&small, &taken, rand::rngs::StdRng::seed_from_u64(seed));
            let mut s = svc(
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30001}, {"name": "c", "port": 82}]}),
            );
            plan_write(&small, None, &mut s, &mut chooser).expect("plan");
            assert_eq!(s["spec"]["clusterIP"], "10.0.0.14", "the only free address that is not well known");
            let a = s["spec"]["ports"][0]["nodePort"].as_u64().expect("a");
            let c = s["spec"]["ports"][2]["nodePort"].as_u64().expect("c");
            assert!(a != 30001 && c != 30001 && a != c && (30000..=30003).contains(&a) && (30000..=30003).contains(&c));
            let mut none_left = svc(json!({"ports": [{"port": 80}]}));
            assert_eq!(plan_write(&small, None, &mut none_left, &mut chooser), Err(AllocError::Full(Pool::ClusterIp)));
        }
    }

    #[test]
    fn held_values_follow_the_type() {
        let s = svc(json!({"type": "ClusterIP", "clusterIP": "10.96.0.7", "ports": [{"port": 80, "nodePort": 30001}]}));
        assert_eq!(held(&s), BTreeSet::from([ip("10.96.0.7")]), "node ports of a ClusterIP service are not held");
        let s = svc(json!({"type": "ExternalName", "clusterIP": "10.96.0.7"}));
        assert!(held(&s).is_empty());
        let s = svc(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80, "nodePort": 30001}]}));
        assert_eq!(held(&s), BTreeSet::from([Resource::NodePort(30001)]));
    }
}
