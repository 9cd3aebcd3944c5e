//! Validation of Services: type, ports, node ports, cluster IPs, traffic policies, and what an
//! update may change.
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::fields::{
    array_of, child, dns1123_label_errors, dns1123_subdomain_errors, index, port_name_errors, quote, str_of,
    valid_port, Causes, PORT_RANGE_MSG,
};

const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

fn primary_cluster_ip(spec: &Value) -> &str {
    match str_of(spec, "clusterIP") {
        "" => array_of(spec, "clusterIPs").first().and_then(Value::as_str).unwrap_or(""),
        ip => ip,
    }
}

pub(super) fn validate_service(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let svc_type = str_of(spec, "type");
    c.one_of("spec.type", svc_type, &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]);
    c.optional_one_of(spec, "sessionAffinity", "spec.sessionAffinity", &["ClientIP", "None"]);
    c.optional_one_of(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy", &["Cluster", "Local"]);
    c.optional_one_of(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy", &["Cluster", "Local"]);
    c.optional_one_of(
        spec,
        "ipFamilyPolicy",
        "spec.ipFamilyPolicy",
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
    );
    let cluster_ip = primary_cluster_ip(spec);
    let headless = cluster_ip == "None";
    match cluster_ip.parse::<IpAddr>() {
        Err(_) if !cluster_ip.is_empty() && !headless => c.invalid("spec.clusterIPs[0]", &quote(cluster_ip), IP_MSG),
        Ok(IpAddr::V6(_)) if array_of(spec, "ipFamilies").first().and_then(Value::as_str) == Some("IPv4") => c.invalid(
            "spec.clusterIPs[0]",
            &quote(cluster_ip),
            "expected an IPv4 value as indicated by `ipFamilies[0]`",
        ),
        _ => {}
    }
    let single = str_of(spec, "clusterIP");
    let plural: Vec<&str> = array_of(spec, "clusterIPs").iter().filter_map(Value::as_str).collect();
    if !single.is_empty() && plural.first().is_some_and(|first| *first != single) {
        let shown: Vec<String> = plural.iter().map(|ip| quote(ip)).collect();
        c.invalid(
            "spec.clusterIPs",
            &format!("[]string{{{}}}", shown.join(", ")),
            "first value must match `clusterIP`",
        );
    }
    if svc_type == "ExternalName" {
        // The strategy drops these on a change to ExternalName when the client left them as they were.
        if !cluster_ip.is_empty() {
            c.forbidden("spec.clusterIPs", "may not be set for ExternalName services");
        }
        if !array_of(spec, "ipFamilies").is_empty() {
            c.forbidden("spec.ipFamilies", "may not be set for ExternalName services");
        }
        if spec.get("ipFamilyPolicy").is_some_and(|p| !p.is_null()) {
            c.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services");
        }
    }
    if svc_type == "ExternalName" {
        let external = str_of(spec, "externalName");
        if external.is_empty() {
            c.required("spec.externalName", "");
        } else {
            for msg in dns1123_subdomain_errors(external.trim_end_matches('.')) {
                c.invalid("spec.externalName", &quote(external), &msg);
            }
        }
    }
    let ports = array_of(spec, "ports");
    if ports.is_empty() && !headless && svc_type != "ExternalName" {
        c.required("spec.ports", "");
    }
    let node_ports_allowed = svc_type == "NodePort" || svc_type == "LoadBalancer";
    let mut names = BTreeSet::new();
    let mut port_protocols = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = str_of(port, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                c.required(&child(&p, "name"), "");
            }
        } else {
            for msg in dns1123_label_errors(name) {
                c.invalid(&child(&p, "name"), &quote(name), &msg);
            }
            if !names.insert(name.to_string()) {
                c.duplicate(&child(&p, "name"), &quote(name));
            }
        }
        let protocol = str_of(port, "protocol");
        c.one_of(&child(&p, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !valid_port(number) {
            c.invalid(&child(&p, "port"), &number.to_string(), PORT_RANGE_MSG);
        } else if !port_protocols.insert((number, protocol.to_string())) {
            c.duplicate(
                &p,
                &format!("core.ServicePort{{Name:{}, Protocol:{}, Port:{number}}}", quote(name), quote(protocol)),
            );
        }
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !valid_port(n) {
                    c.invalid(&child(&p, "targetPort"), &n.to_string(), PORT_RANGE_MSG);
                }
            }
            Some(Value::String(s)) => {
                for msg in port_name_errors(s) {
                    c.invalid(&child(&p, "targetPort"), &quote(s), msg);
                }
            }
            _ => {}
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 {
            let np = child(&p, "nodePort");
            if !node_ports_allowed {
                c.forbidden(&np, &format!("may not be used when `type` is '{svc_type}'"));
            } else if !valid_port(node_port) {
                // Whether it is in the node port range is the allocator's to say (the range is a flag).
                c.invalid(&np, &node_port.to_string(), PORT_RANGE_MSG);
            } else if !node_ports.insert((node_port, protocol.to_string())) {
                c.duplicate(&np, &node_port.to_string());
            }
        }
    }
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&Value::Null);
        let old_ip = primary_cluster_ip(old_spec);
        let involves_external_name = svc_type == "ExternalName" || str_of(old_spec, "type") == "ExternalName";
        if !involves_external_name && !old_ip.is_empty() && !cluster_ip.is_empty() && old_ip != cluster_ip {
            c.invalid("spec.clusterIPs[0]", &quote(cluster_ip), "may not change once set");
        }
    }
}
