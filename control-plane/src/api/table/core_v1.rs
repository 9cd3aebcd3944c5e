//! Tables for the core group's cluster and configuration objects: nodes, namespaces, services,
//! endpoints, configmaps, secrets, serviceaccounts and events (pods and volumes have their own files).
//!
//! Pure; depends only on the sibling column and format helpers.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::columns::{col, wide, Column, Printer, Row, AGE, NAME};
use super::format::{
    age, at, condition, first_few, flag, int, join_host_port, label_set, list, name, or_none, since, strings, text,
    time, NONE, UNKNOWN,
};

/// The printer for a core-group resource other than pods and volumes.
pub(super) fn printer(resource: &str) -> Option<Printer> {
    let printer = match resource {
        "nodes" => Printer { columns: NODE, row: node },
        "namespaces" => Printer { columns: NAMESPACE, row: namespace },
        "services" => Printer { columns: SERVICE, row: service },
        "endpoints" => Printer { columns: ENDPOINTS, row: endpoints },
        "configmaps" => Printer { columns: CONFIGMAP, row: configmap },
        "secrets" => Printer { columns: SECRET, row: secret },
        "serviceaccounts" => Printer { columns: SERVICEACCOUNT, row: serviceaccount },
        "events" => Printer { columns: EVENT, row: event },
        _ => return None,
    };
    Some(printer)
}

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "The node's first InternalIP address."),
    wide("External-IP", "string", "The node's first ExternalIP address."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r'."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API."),
];

const ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const ROLE_LABEL: &str = "kubernetes.io/role";

fn node(node: &Value, now: DateTime<Utc>) -> Row {
    let mut status = vec![match condition(node, "Ready") {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if flag(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            match key.strip_prefix(ROLE_LABEL_PREFIX) {
                Some(role) if !role.is_empty() => {
                    roles.insert(role);
                }
                _ if key == ROLE_LABEL => {
                    if let Some(role) = value.as_str().filter(|r| !r.is_empty()) {
                        roles.insert(role);
                    }
                }
                _ => {}
            }
        }
    }
    let address = |kind: &str| {
        list(node, &["status", "addresses"])
            .iter()
            .find(|a| text(a, &["type"]) == kind)
            .map_or_else(|| NONE.to_owned(), |a| text(a, &["address"]).to_owned())
    };
    let info = |field: &str| match text(node, &["status", "nodeInfo", field]) {
        "" => UNKNOWN.to_owned(),
        value => value.to_owned(),
    };
    Row::from(vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(or_none(&roles.into_iter().collect::<Vec<_>>().join(","))),
        json!(age(node, now)),
        json!(text(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ])
}

const NAMESPACE: &[Column] = &[NAME, col("Status", "string", "The status of the namespace"), AGE];

fn namespace(ns: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![json!(name(ns)), json!(text(ns, &["status", "phase"])), json!(age(ns, now))])
}

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    col("Cluster-IP", "string", "The IP address of the service, usually assigned randomly."),
    col("External-IP", "string", "The external addresses of the service, or its external name."),
    col("Port(s)", "string", "The ports exposed by the service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

fn service(svc: &Value, now: DateTime<Utc>) -> Row {
    // Defaulting gives every stored service a type; an undefaulted one is a ClusterIP service.
    let kind = match text(svc, &["spec", "type"]) {
        "" => "ClusterIP",
        kind => kind,
    };
    // Upstream reads spec.clusterIPs; the v1 → internal conversion fills it from spec.clusterIP.
    let cluster_ip =
        strings(svc, &["spec", "clusterIPs"]).first().copied().unwrap_or_else(|| text(svc, &["spec", "clusterIP"]));
    let external_ips = strings(svc, &["spec", "externalIPs"]);
    let external = match kind {
        "ClusterIP" | "NodePort" => or_none(&external_ips.join(",")),
        "LoadBalancer" => {
            // Sorted and deduplicated, as upstream's sets.String; never clipped, as tables are wide.
            let ingress: BTreeSet<&str> = list(svc, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| match text(i, &["ip"]) {
                    "" => text(i, &["hostname"]),
                    ip => ip,
                })
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external_ips).collect();
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_owned(),
        _ => UNKNOWN.to_owned(),
    };
    Row::from(vec![
        json!(name(svc)),
        json!(kind),
        json!(or_none(cluster_ip)),
        json!(external),
        json!(or_none(&port_string(list(svc, &["spec", "ports"])))),
        json!(age(svc, now)),
        json!(label_set(at(svc, &["spec", "selector"]))),
    ])
}

/// Upstream `makePortString`: `port/PROTO` or `port:nodePort/PROTO`, comma separated.
fn port_string(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            // Defaulting gives every stored port a protocol.
            let protocol = match text(p, &["protocol"]) {
                "" => "TCP",
                protocol => protocol,
            };
            match int(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{}:{node_port}/{protocol}", int(p, &["port"])),
                _ => format!("{}/{protocol}", int(p, &["port"])),
            }
        })
        .collect();
    pieces.join(",")
}

const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "string", "The addresses and ports of the endpoints."), AGE];

fn endpoints(ep: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![json!(name(ep)), json!(format_endpoints(ep)), json!(age(ep, now))])
}

/// Upstream `formatEndpoints`: `ip:port` for the first three, then how many more.
fn format_endpoints(ep: &Value) -> String {
    let subsets = list(ep, &["subsets"]);
    if subsets.is_empty() {
        return NONE.to_owned();
    }
    let mut all = Vec::new();
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            all.extend(addresses.iter().map(|a| text(a, &["ip"]).to_owned()));
        }
        for port in ports {
            all.extend(addresses.iter().map(|a| join_host_port(text(a, &["ip"]), int(port, &["port"]))));
        }
    }
    first_few(&all, 3, "")
}

const CONFIGMAP: &[Column] = &[NAME, col("Data", "string", "The number of data and binaryData keys."), AGE];

fn configmap(cm: &Value, now: DateTime<Utc>) -> Row {
    let count = |field: &str| at(cm, &[field]).and_then(Value::as_object).map_or(0, |m| m.len());
    Row::from(vec![json!(name(cm)), json!(count("data") + count("binaryData")), json!(age(cm, now))])
}

const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", "Used to facilitate programmatic handling of secret data."),
    col("Data", "string", "The number of data keys."),
    AGE,
];

fn secret(secret: &Value, now: DateTime<Utc>) -> Row {
    let data = at(secret, &["data"]).and_then(Value::as_object).map_or(0, |m| m.len());
    Row::from(vec![json!(name(secret)), json!(text(secret, &["type"])), json!(data), json!(age(secret, now))])
}

const SERVICEACCOUNT: &[Column] = &[NAME, col("Secrets", "string", "The number of secrets listed."), AGE];

fn serviceaccount(sa: &Value, now: DateTime<Utc>) -> Row {
    Row::from(vec![json!(name(sa)), json!(list(sa, &["secrets"]).len()), json!(age(sa, now))])
}

const EVENT: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning)."),
    col("Reason", "string", "A short, machine understandable string for why the object is in this state."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "The part of the object that triggered the event."),
    wide("Source", "string", "The component reporting this event."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded."),
    wide("Count", "string", "The number of times this event has occurred."),
    Column { priority: 1, ..NAME },
];

fn event(ev: &Value, now: DateTime<Utc>) -> Row {
    let first = match time(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time(ev, &["eventTime"]), now),
    };
    let mut last = match time(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(ev, &["count"]);
    if at(ev, &["series"]).is_some() {
        last = since(time(ev, &["series", "lastObservedTime"]), now);
        count = int(ev, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = text(ev, &["involvedObject", "kind"]).to_lowercase();
    let target = match text(ev, &["involvedObject", "name"]) {
        "" => kind,
        involved => format!("{kind}/{involved}"),
    };
    let first_set = |a: &str, b: &str| if a.is_empty() { b.to_owned() } else { a.to_owned() };
    let component = first_set(text(ev, &["source", "component"]), text(ev, &["reportingComponent"]));
    let instance = first_set(text(ev, &["source", "host"]), text(ev, &["reportingInstance"]));
    let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
    Row::from(vec![
        json!(last),
        json!(text(ev, &["type"])),
        json!(text(ev, &["reason"])),
        json!(target),
        json!(text(ev, &["involvedObject", "fieldPath"])),
        json!(source),
        json!(text(ev, &["message"]).trim()),
        json!(first),
        json!(count),
        json!(name(ev)),
    ])
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn ago(seconds: i64) -> String {
        (now() - Duration::seconds(seconds)).to_rfc3339()
    }

    fn cells(printer: fn(&Value, DateTime<Utc>) -> Row, object: &Value) -> Vec<Value> {
        printer(object, now()).cells
    }

    #[test]
    fn node_status_and_roles() {
        struct Case {
            what: &'static str,
            labels: Value,
            ready: Option<&'static str>,
            unschedulable: bool,
            status: &'static str,
            roles: &'static str,
        }
        let cases = [
            Case {
                what: "ready worker",
                labels: json!({"kubernetes.io/os": "linux"}),
                ready: Some("True"),
                unschedulable: false,
                status: "Ready",
                roles: "<none>",
            },
            Case {
                what: "cordoned control plane",
                labels: json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": ""}),
                ready: Some("True"),
                unschedulable: true,
                status: "Ready,SchedulingDisabled",
                roles: "control-plane,master",
            },
            Case {
                what: "not ready, legacy role label",
                labels: json!({"kubernetes.io/role": "worker", "node-role.kubernetes.io/": ""}),
                ready: Some("False"),
                unschedulable: false,
                status: "NotReady",
                roles: "worker",
            },
            Case {
                what: "unknown readiness is NotReady",
                labels: json!({"node-role.kubernetes.io/infra": "x", "kubernetes.io/role": "infra"}),
                ready: Some("Unknown"),
                unschedulable: false,
                status: "NotReady",
                roles: "infra",
            },
            Case {
                what: "no Ready condition at all",
                labels: json!({}),
                ready: None,
                unschedulable: true,
                status: "Unknown,SchedulingDisabled",
                roles: "<none>",
            },
        ];
        for case in cases {
            let mut conditions = vec![json!({"type": "MemoryPressure", "status": "False"})];
            if let Some(ready) = case.ready {
                conditions.push(json!({"type": "Ready", "status": ready}));
            }
            let n = json!({
                "metadata": {"name": "n1", "labels": case.labels, "creationTimestamp": ago(3 * 86_400)},
                "spec": {"unschedulable": case.unschedulable},
                "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.31.0"}},
            });
            let got = cells(node, &n);
            assert_eq!(got[1], case.status, "{}", case.what);
            assert_eq!(got[2], case.roles, "{}", case.what);
            assert_eq!(got[3], "3d", "{}", case.what);
            assert_eq!(got[4], "v1.31.0", "{}", case.what);
        }
    }

    #[test]
    fn node_wide_cells() {
        let n = json!({
            "metadata": {"name": "n1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                "nodeInfo": {"osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "gantry://0.1"},
            },
        });
        assert_eq!(
            cells(node, &n)[3..],
            [
                json!("<unknown>"),
                json!(""),
                json!("10.0.0.5"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("<unknown>"),
                json!("gantry://0.1")
            ]
        );
    }

    #[test]
    fn service_ports_and_addresses() {
        struct Case {
            spec: Value,
            status: Value,
            cluster_ip: &'static str,
            external: &'static str,
            ports: &'static str,
        }
        let cases = [
            Case {
                spec: json!({"type": "ClusterIP", "clusterIPs": ["10.96.0.10"], "ports": [
                    {"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}),
                status: json!({}),
                cluster_ip: "10.96.0.10",
                external: "<none>",
                ports: "53/UDP,53/TCP",
            },
            Case {
                spec: json!({"type": "NodePort", "clusterIP": "10.96.0.11", "externalIPs": ["1.2.3.4"], "ports": [
                    {"port": 80, "protocol": "TCP"}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}),
                status: json!({}),
                cluster_ip: "10.96.0.11",
                external: "1.2.3.4",
                ports: "80/TCP,443:30443/TCP",
            },
            Case {
                spec: json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [
                    {"port": 443, "nodePort": 31000}]}),
                status: json!({}),
                cluster_ip: "10.96.0.12",
                external: "<pending>",
                ports: "443:31000/TCP",
            },
            Case {
                spec: json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "externalIPs": ["9.9.9.9"]}),
                status: json!({"loadBalancer": {"ingress": [
                    {"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}, {"ip": "1.2.3.4"}, {"ip": "5.6.7.8"}]}}),
                cluster_ip: "10.96.0.13",
                external: "1.2.3.4,5.6.7.8,lb.example.com,9.9.9.9",
                ports: "<none>",
            },
            Case {
                spec: json!({"type": "ExternalName", "externalName": "db.example.com"}),
                status: json!({}),
                cluster_ip: "<none>",
                external: "db.example.com",
                ports: "<none>",
            },
            Case {
                spec: json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
                status: json!({}),
                cluster_ip: "None",
                external: "<none>",
                ports: "5432/TCP",
            },
        ];
        for case in cases {
            let svc = json!({"metadata": {"name": "s"}, "spec": case.spec, "status": case.status});
            let got = cells(service, &svc);
            assert_eq!(got[2], case.cluster_ip, "{svc}");
            assert_eq!(got[3], case.external, "{svc}");
            assert_eq!(got[4], case.ports, "{svc}");
        }
        let svc = json!({"metadata": {"name": "s"}, "spec": {"selector": {"tier": "web", "app": "shop"}}});
        let got = cells(service, &svc);
        assert_eq!(got[1], "ClusterIP");
        assert_eq!(got[6], "app=shop,tier=web");
    }

    #[test]
    fn endpoints_list_the_first_three() {
        let ep = json!({"metadata": {"name": "e"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}]},
        ]});
        assert_eq!(cells(endpoints, &ep)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...");
        let ep = json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells(endpoints, &ep)[1], "[fd00::1]:80");
        assert_eq!(cells(endpoints, &json!({"metadata": {"name": "e"}}))[1], "<none>");
    }

    #[test]
    fn config_and_secret_counts() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(cells(configmap, &cm)[1], 3);
        let s = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(cells(secret, &s)[1..3], [json!("kubernetes.io/tls"), json!(2)]);
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
        assert_eq!(cells(serviceaccount, &sa)[1], 1);
        assert_eq!(cells(namespace, &json!({"metadata": {"name": "n"}, "status": {"phase": "Active"}}))[1], "Active");
    }

    #[test]
    fn event_cells() {
        let ev = json!({
            "metadata": {"name": "web.17a"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "reason": "BackOff", "type": "Warning", "message": "  Back-off restarting failed container\n",
            "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7,
            "source": {"component": "kubelet", "host": "node-1"},
        });
        assert_eq!(
            cells(event, &ev),
            [
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{a}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container"),
                json!("10m"),
                json!(7),
                json!("web.17a")
            ]
        );
        let new_style = json!({
            "metadata": {"name": "n.1"}, "involvedObject": {"kind": "Node"},
            "eventTime": "2024-05-01T11:59:00.000000Z", "reportingComponent": "scheduler",
            "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:50.000000Z"},
        });
        let got = cells(event, &new_style);
        assert_eq!(got[0], "10s");
        assert_eq!(got[3], "node");
        assert_eq!(got[5], "scheduler");
        assert_eq!(got[7], "60s");
        assert_eq!(got[8], 4);
        let bare = cells(event, &json!({"metadata": {"name": "x"}}));
        assert_eq!(
            (bare[0].clone(), bare[7].clone(), bare[8].clone()),
            (json!("<unknown>"), json!("<unknown>"), json!(1))
        );
    }

    #[test]
    fn every_row_fills_every_column() {
        for resource in
            ["nodes", "namespaces", "services", "endpoints", "configmaps", "secrets", "serviceaccounts", "events"]
        {
            let p = printer(resource).expect("printer");
            assert_eq!((p.row)(&json!({}), now()).cells.len(), p.columns.len(), "{resource}");
        }
        assert!(printer("pods").is_none());
    }
}
