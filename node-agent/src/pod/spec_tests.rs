//! Tests of [`super`]: the CRI configs carry what RUNTIME-NOTES says containerd needs.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::dns::ResolvConf;
use crate::objects::{ObjectKind, ObjectRef, ObjectState, ObjectsView};
use crate::pod::env::Downward;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "ns1", "uid": "1234-ab", "labels": {"app": "web"}},
        "spec": spec,
    }))
    .expect("pod")
}

fn dns() -> PodDnsSettings {
    PodDnsSettings {
        cluster_dns: std::net::Ipv4Addr::new(10, 96, 0, 10),
        cluster_domain: "cluster.local".into(),
        host: ResolvConf::default(),
    }
}

#[test]
fn sandbox_config_has_metadata_logs_cgroup_ports_and_labels() {
    let p = pod(serde_json::json!({"containers": [
        {"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}
    ]}));
    let s = sandbox_config(&p, 2, Path::new("/var/lib/g"), "node-1", &dns()).expect("config");
    let m = s.metadata.expect("metadata");
    assert_eq!((m.name.as_str(), m.namespace.as_str(), m.uid.as_str(), m.attempt), ("web", "ns1", "1234-ab", 2));
    assert_eq!(s.hostname, "web");
    assert_eq!(s.log_directory, "/var/lib/g/pods/ns1_web_1234-ab");
    assert_eq!(s.port_mappings.len(), 1);
    assert_eq!((s.port_mappings[0].container_port, s.port_mappings[0].host_port), (80, 8080));
    assert_eq!(s.labels["app"], "web");
    assert_eq!(s.labels[POD_UID_LABEL], "1234-ab");
    assert_eq!(s.labels[NODE_LABEL], "node-1");
    let linux = s.linux.expect("linux");
    assert_eq!(linux.cgroup_parent, "/gantry/pod1234-ab");
    let ns = linux.security_context.and_then(|c| c.namespace_options).expect("namespaces");
    assert_eq!(ns.network, NamespaceMode::Pod as i32);
    assert_eq!(ns.pid, NamespaceMode::Container as i32);
    let resolver = s.dns_config.expect("dns config");
    assert_eq!(resolver.servers, ["10.96.0.10"]);
    assert_eq!(resolver.searches, ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]);
}

#[test]
fn host_network_pods_send_an_empty_hostname_and_node_network() {
    let p = pod(serde_json::json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i"}]}));
    let s = sandbox_config(&p, 0, Path::new("/r"), "n", &dns()).expect("config");
    assert_eq!(s.hostname, "");
    let ns = s.linux.and_then(|l| l.security_context).and_then(|c| c.namespace_options).expect("ns");
    assert_eq!(ns.network, NamespaceMode::Node as i32);
}

#[test]
fn bad_uids_are_rejected() {
    let mut p = pod(serde_json::json!({"containers": []}));
    p.metadata.uid = Some("../etc".into());
    assert!(matches!(sandbox_config(&p, 0, Path::new("/r"), "n", &dns()), Err(SpecError::Uid(_))));
}

#[test]
fn container_config_resolves_env_and_carries_namespaces_and_log_path() {
    let p = pod(serde_json::json!({"containers": [{
        "name": "c", "image": "localhost/busybox:1", "command": ["sh"], "args": ["-c", "echo $(POD)"], "workingDir": "/w",
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "a=$(A)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ],
    }]}));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let downward = Downward {
        pod_ip: "10.1.0.9".into(),
        host_ip: "127.0.0.1".into(),
        node_name: "node-1".into(),
        ..Default::default()
    };
    let inputs = EnvInputs { objects: &ObjectsView::new(), downward: &downward };
    let volumes = BTreeMap::from([(
        "data".to_string(),
        HostVolume { path: "/r/pods/1234-ab/volumes/kubernetes.io~empty-dir/data".into(), read_only: false },
    )]);
    let cfg = container_config(&p, c, 3, "node-1", inputs, &volumes).expect("config");
    let env: HashMap<_, _> = cfg.envs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "a=1");
    assert_eq!(env["POD"], "web");
    assert_eq!(env["NODE"], "node-1");
    assert_eq!(env["IP"], "10.1.0.9");
    assert_eq!(env["UID"], "1234-ab");
    assert_eq!(cfg.log_path, "c/3.log");
    assert_eq!(cfg.command, vec!["sh"]);
    assert_eq!(cfg.args, vec!["-c", "echo web"], "$(VAR) in args expands");
    assert_eq!(cfg.mounts.len(), 1);
    assert_eq!(cfg.mounts[0].container_path, "/data");
    assert_eq!(cfg.mounts[0].host_path, "/r/pods/1234-ab/volumes/kubernetes.io~empty-dir/data");
    assert_eq!(cfg.working_dir, "/w");
    assert_eq!(cfg.labels[CONTAINER_NAME_LABEL], "c");
    assert_eq!(cfg.metadata.expect("metadata").attempt, 3);
    let sc = cfg.linux.and_then(|l| l.security_context).expect("security context");
    assert!(sc.namespace_options.is_some(), "namespaces are not inherited from the sandbox");
}

#[test]
fn missing_env_sources_and_mounts_are_config_errors() {
    let p = pod(serde_json::json!({"containers": [{
        "name": "c", "image": "i",
        "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    }]}));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let objects = ObjectsView::from([(ObjectRef::new(ObjectKind::Secret, "ns1", "s"), ObjectState::Missing)]);
    let inputs = EnvInputs { objects: &objects, downward: &Downward::default() };
    let err = container_config(&p, c, 0, "n", inputs, &BTreeMap::new()).expect_err("missing secret");
    assert_eq!(err.to_string(), "secret \"s\" not found");

    let p = pod(serde_json::json!({"containers": [{
        "name": "c", "image": "i", "volumeMounts": [{"name": "nope", "mountPath": "/x"}],
    }]}));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let inputs = EnvInputs { objects: &objects, downward: &Downward::default() };
    let err = container_config(&p, c, 0, "n", inputs, &BTreeMap::new()).expect_err("unknown volume");
    assert!(matches!(err, SpecError::Mount(_)), "{err}");
}
