//! Services and pods for the Endpoints and EndpointSlice controllers' unit tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

pub fn app(name: &str) -> BTreeMap<String, String> {
    [("app".to_string(), name.to_string())].into()
}

/// Service `web` in `ns` selecting `app=web`, with `ports` as (name, port, targetPort).
pub fn service(ports: &[(&str, i32, IntOrString)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("svc-uid".into()),
            labels: Some([("tier".to_string(), "front".to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(app("web")),
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port, target)| ServicePort {
                        name: (!name.is_empty()).then(|| name.to_string()),
                        port: *port,
                        target_port: Some(target.clone()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// A running pod labelled `app=<app>` on `node-1` at `ip`, ready or not, with named container ports.
pub fn pod(name: &str, app_label: &str, ip: &str, ready: bool, named_ports: &[(&str, i32)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("{name}-uid")),
            labels: Some(app(app_label)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "c".into(),
                ports: Some(
                    named_ports
                        .iter()
                        .map(|(n, p)| ContainerPort {
                            name: Some(n.to_string()),
                            container_port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    p
}

pub fn arcs(pods: Vec<Pod>) -> Vec<Arc<Pod>> {
    pods.into_iter().map(Arc::new).collect()
}
