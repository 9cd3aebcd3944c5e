//! What happens to a Service before it is validated, as upstream's service strategy and REST storage
//! do it: `clusterIP` and `clusterIPs` kept in sync (`NormalizeClusterIPs`), allocated values a client
//! left out of an update carried over (`patchAllocatedValues`, so `kubectl replace` with a manifest
//! without `clusterIP` keeps it), and fields the new type does not use dropped when the client did not
//! touch them (`dropTypeDependentFields`), so a type change releases what it no longer needs.
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::fields::{
    cluster_ips, health_check_port, needs_health_check_port, needs_node_ports, node_port, ports, service_type, spec,
    takes_cluster_ip, TYPE_LOAD_BALANCER,
};

fn spec_mut(svc: &mut Value) -> Option<&mut Map<String, Value>> {
    svc.get_mut("spec").and_then(Value::as_object_mut)
}

fn string_field<'a>(svc: &'a Value, name: &str) -> &'a str {
    spec(svc).get(name).and_then(Value::as_str).unwrap_or("")
}

fn owned_ips(svc: &Value) -> Vec<String> {
    cluster_ips(svc).into_iter().map(str::to_string).collect()
}

fn set_or_remove(spec: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            spec.insert(name.to_string(), v);
        }
        None => {
            spec.remove(name);
        }
    }
}

/// Before validating a new Service: `clusterIPs` from `clusterIP` and the reverse, so either may be
/// given.
pub fn prepare_create(svc: &mut Value) {
    let ip = string_field(svc, "clusterIP").to_string();
    let ips = owned_ips(svc);
    let Some(spec) = spec_mut(svc) else { return };
    if !ip.is_empty() && ips.is_empty() {
        spec.insert("clusterIPs".into(), json!([ip]));
    } else if ip.is_empty() && !ips.is_empty() {
        spec.insert("clusterIP".into(), json!(ips[0]));
    }
}

/// Before validating a changed Service (see the module docs).
pub fn prepare_update(old: &Value, new: &mut Value) {
    patch_allocated_values(old, new);
    normalize_cluster_ips(old, new);
    drop_type_dependent_fields(old, new);
}

fn node_ports_of(svc: &Value) -> BTreeSet<u16> {
    ports(svc).iter().filter_map(node_port).collect()
}

/// Values the old object was given that the new one leaves out, for types that keep them.
fn patch_allocated_values(old: &Value, new: &mut Value) {
    if takes_cluster_ip(old) && takes_cluster_ip(new) {
        let old_ip = string_field(old, "clusterIP").to_string();
        let old_ips = owned_ips(old);
        let new_ip_empty = string_field(new, "clusterIP").is_empty();
        let new_ips_empty = cluster_ips(new).is_empty();
        if let Some(spec) = spec_mut(new) {
            if new_ip_empty && !old_ip.is_empty() {
                spec.insert("clusterIP".into(), json!(old_ip));
            }
            if new_ips_empty && !old_ips.is_empty() {
                spec.insert("clusterIPs".into(), json!(old_ips));
            }
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        // Node ports both objects use cannot be patched onto another port.
        let used: BTreeSet<u16> = node_ports_of(old).intersection(&node_ports_of(new)).copied().collect();
        let by_name: BTreeMap<String, u16> = ports(old)
            .iter()
            .filter_map(|p| Some((p.get("name").and_then(Value::as_str).unwrap_or("").to_string(), node_port(p)?)))
            .collect();
        let count = ports(new).len();
        for i in 0..count {
            let port = &ports(new)[i];
            if node_port(port).is_some() {
                continue;
            }
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(np) = by_name.get(name).filter(|np| !used.contains(np)) {
                new["spec"]["ports"][i]["nodePort"] = json!(np);
            }
        }
    }
    if needs_health_check_port(old) && needs_health_check_port(new) && health_check_port(new).is_none() {
        if let Some(p) = health_check_port(old) {
            new["spec"]["healthCheckNodePort"] = json!(p);
        }
    }
}

/// Upstream `NormalizeClusterIPs` for updates: a client that changes or clears only `clusterIP` gets
/// `clusterIPs` changed with it.
fn normalize_cluster_ips(old: &Value, new: &mut Value) {
    let (old_ip, old_ips) = (string_field(old, "clusterIP").to_string(), owned_ips(old));
    let (new_ip, mut new_ips) = (string_field(new, "clusterIP").to_string(), owned_ips(new));
    if !old_ips.is_empty() && new_ips.is_empty() && old_ip == new_ip {
        new_ips = old_ips.clone();
    }
    if old_ip != new_ip {
        if !old_ip.is_empty() && new_ip.is_empty() {
            if old_ips == new_ips {
                new_ips.clear();
            }
        } else if old_ips == new_ips {
            new_ips = vec![new_ip];
        }
    }
    if let Some(spec) = spec_mut(new) {
        set_or_remove(spec, "clusterIPs", (!new_ips.is_empty()).then(|| json!(new_ips)));
    }
}

fn needs_external_traffic_policy(svc: &Value) -> bool {
    needs_node_ports(svc)
}

/// Upstream `dropTypeDependentFields`: fields the new type does not use, wiped when the client left
/// them as they were (a value it changed is left for validation to refuse).
fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let old_spec = spec(old).clone();
    let new_spec = spec(new).clone();
    let same = |name: &str| old_spec.get(name) == new_spec.get(name);
    let drop_ips = takes_cluster_ip(old) && !takes_cluster_ip(new);
    let drop_node_ports =
        needs_node_ports(old) && !needs_node_ports(new) && node_ports_of(new).is_subset(&node_ports_of(old));
    let drop_health_check =
        needs_health_check_port(old) && !needs_health_check_port(new) && same("healthCheckNodePort");
    let drop_traffic_policy =
        needs_external_traffic_policy(old) && !needs_external_traffic_policy(new) && same("externalTrafficPolicy");
    let drop_allocate_lb = service_type(old) == TYPE_LOAD_BALANCER
        && service_type(new) != TYPE_LOAD_BALANCER
        && same("allocateLoadBalancerNodePorts");
    let Some(spec) = spec_mut(new) else { return };
    if drop_ips {
        if same("clusterIP") && same("clusterIPs") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if same("ipFamilies") {
            spec.remove("ipFamilies");
        }
        if same("ipFamilyPolicy") {
            spec.remove("ipFamilyPolicy");
        }
    }
    if drop_node_ports {
        if let Some(list) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in list.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    if drop_health_check {
        spec.remove("healthCheckNodePort");
    }
    if drop_traffic_policy {
        spec.remove("externalTrafficPolicy");
    }
    if drop_allocate_lb {
        spec.remove("allocateLoadBalancerNodePorts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn node_port_svc() -> Value {
        svc(json!({"type": "NodePort", "clusterIP": "10.96.4.4", "clusterIPs": ["10.96.4.4"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}))
    }

    #[test]
    fn creates_sync_cluster_ip_and_cluster_ips() {
        let mut a = svc(json!({"clusterIP": "10.96.0.9"}));
        prepare_create(&mut a);
        assert_eq!(a["spec"]["clusterIPs"], json!(["10.96.0.9"]));
        let mut b = svc(json!({"clusterIPs": ["10.96.0.9"]}));
        prepare_create(&mut b);
        assert_eq!(b["spec"]["clusterIP"], "10.96.0.9");
        let mut headless = svc(json!({"clusterIP": "None"}));
        prepare_create(&mut headless);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        let mut neither = svc(json!({"ports": []}));
        prepare_create(&mut neither);
        assert_eq!(neither["spec"], json!({"ports": []}));
    }

    #[test]
    fn updates_keep_allocated_values_the_client_left_out() {
        let old = node_port_svc();
        let mut replaced = svc(json!({"type": "NodePort",
            "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 80}]}));
        prepare_update(&old, &mut replaced);
        assert_eq!(replaced["spec"]["clusterIP"], "10.96.4.4");
        assert_eq!(replaced["spec"]["clusterIPs"], json!(["10.96.4.4"]));
        assert_eq!(replaced["spec"]["ports"][0]["nodePort"], 30443, "matched by name");
        assert_eq!(replaced["spec"]["ports"][1]["nodePort"], 30080);
        // A node port the new object already uses elsewhere is not patched onto another port.
        let mut swapped = svc(json!({"type": "NodePort",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30080}]}));
        prepare_update(&old, &mut swapped);
        assert!(swapped["spec"]["ports"][0].get("nodePort").is_none(), "{swapped}");
    }

    #[test]
    fn changing_only_cluster_ip_changes_cluster_ips_with_it() {
        let old = node_port_svc();
        let mut changed = old.clone();
        changed["spec"]["clusterIP"] = json!("10.96.4.5");
        prepare_update(&old, &mut changed);
        assert_eq!(changed["spec"]["clusterIPs"], json!(["10.96.4.5"]), "validation then refuses the change");
    }

    #[test]
    fn leaving_node_port_drops_node_ports_and_the_traffic_policy() {
        let old = node_port_svc();
        let mut cluster_ip = old.clone();
        cluster_ip["spec"]["type"] = json!("ClusterIP");
        prepare_update(&old, &mut cluster_ip);
        assert!(cluster_ip["spec"]["ports"].as_array().expect("ports").iter().all(|p| p.get("nodePort").is_none()));
        assert!(cluster_ip["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(cluster_ip["spec"]["clusterIP"], "10.96.4.4", "the IP stays");
        // A new node port the client added is left for validation to refuse.
        let mut added = old.clone();
        added["spec"]["type"] = json!("ClusterIP");
        added["spec"]["ports"][0]["nodePort"] = json!(30999);
        prepare_update(&old, &mut added);
        assert_eq!(added["spec"]["ports"][0]["nodePort"], 30999);
    }

    #[test]
    fn becoming_external_name_drops_ip_fields_the_client_did_not_touch() {
        let old = node_port_svc();
        let mut external = old.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["externalName"] = json!("example.com");
        prepare_update(&old, &mut external);
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "externalTrafficPolicy"] {
            assert!(external["spec"].get(field).is_none(), "{field} kept: {external}");
        }
        assert!(external["spec"]["ports"].as_array().expect("ports").iter().all(|p| p.get("nodePort").is_none()));
        // The reverse does not invent anything: allocation fills in the IP later.
        let mut back = external.clone();
        back["spec"]["type"] = json!("ClusterIP");
        prepare_update(&external, &mut back);
        assert!(back["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn headless_services_stay_headless() {
        let old = svc(json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}));
        let mut replaced = svc(json!({"ports": [{"port": 81}]}));
        prepare_update(&old, &mut replaced);
        assert_eq!(replaced["spec"]["clusterIP"], "None");
        assert_eq!(replaced["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn load_balancers_keep_and_drop_their_health_check_port() {
        let old = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31999,
            "allocateLoadBalancerNodePorts": true, "ports": [{"name": "a", "port": 80, "nodePort": 30001}]}));
        let mut replaced = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "a", "port": 80}]}));
        prepare_update(&old, &mut replaced);
        assert_eq!(replaced["spec"]["healthCheckNodePort"], 31999);
        assert_eq!(replaced["spec"]["ports"][0]["nodePort"], 30001);
        let mut node_port = old.clone();
        node_port["spec"]["type"] = json!("NodePort");
        prepare_update(&old, &mut node_port);
        assert!(node_port["spec"].get("healthCheckNodePort").is_none());
        assert!(node_port["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert_eq!(node_port["spec"]["ports"][0]["nodePort"], 30001, "NodePort keeps node ports");
    }
}
