// Table rows are tuples; slices of one cloned reference read better than `from_ref` here.
#![allow(clippy::type_complexity, clippy::cloned_ref_to_slice_refs)]

use k8s_openapi::api::core::v1::EndpointSubset;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::fixtures::{arcs, pod, service, terminating};
use super::plan::{desired_endpoints, desired_subsets, LABEL_SKIP_MIRROR};

fn ips(addrs: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<&str> {
    addrs.iter().flatten().map(|a| a.ip.as_str()).collect()
}

fn ports(s: &EndpointSubset) -> Vec<(Option<&str>, i32)> {
    s.ports.iter().flatten().map(|p| (p.name.as_deref(), p.port)).collect()
}

#[test]
fn ready_and_unready_pods_are_split_and_others_left_out() {
    let svc = service(&[("http", 80, IntOrString::Int(8080))]);
    let pods = arcs(vec![
        pod("b", "web", "10.0.0.2", true, &[]),
        pod("a", "web", "10.0.0.1", true, &[]),
        pod("unready", "web", "10.0.0.3", false, &[]),
        terminating(pod("leaving", "web", "10.0.0.4", true, &[])),
        pod("no-ip", "web", "", true, &[]),
        pod("other-app", "db", "10.0.0.5", true, &[]),
    ]);
    let subsets = desired_subsets(&svc, &pods);
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
    assert_eq!(ports(&subsets[0]), [(Some("http"), 8080)]);
    let a = &subsets[0].addresses.as_ref().expect("addresses")[0];
    assert_eq!(a.node_name.as_deref(), Some("node-1"));
    let target = a.target_ref.as_ref().expect("targetRef");
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
        (Some("Pod"), Some("a"), Some("a-uid"))
    );
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready() {
    let mut svc = service(&[("", 80, IntOrString::Int(80))]);
    svc.spec.as_mut().expect("spec").publish_not_ready_addresses = Some(true);
    let pods = arcs(vec![pod("a", "web", "10.0.0.1", true, &[]), pod("b", "web", "10.0.0.2", false, &[])]);
    let subsets = desired_subsets(&svc, &pods);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn named_target_ports_group_pods_by_the_ports_they_have() {
    let svc = service(&[("http", 80, IntOrString::String("web".into())), ("metrics", 9000, IntOrString::Int(9090))]);
    let pods = arcs(vec![
        pod("a", "web", "10.0.0.1", true, &[("web", 8080)]),
        pod("b", "web", "10.0.0.2", true, &[("web", 8080)]),
        pod("c", "web", "10.0.0.3", true, &[("web", 8081)]),
        pod("d", "web", "10.0.0.4", true, &[]),
    ]);
    let subsets = desired_subsets(&svc, &pods);
    let mut got: Vec<(Vec<(Option<&str>, i32)>, Vec<&str>)> =
        subsets.iter().map(|s| (ports(s), ips(&s.addresses))).collect();
    got.sort();
    assert_eq!(
        got,
        [
            (vec![(Some("http"), 8080), (Some("metrics"), 9090)], vec!["10.0.0.1", "10.0.0.2"]),
            (vec![(Some("http"), 8081), (Some("metrics"), 9090)], vec!["10.0.0.3"]),
            (vec![(Some("metrics"), 9090)], vec!["10.0.0.4"]),
        ]
    );
}

#[test]
fn headless_services_without_ports_list_addresses_and_others_list_nothing() {
    let mut svc = service(&[]);
    let pods = arcs(vec![pod("a", "web", "10.0.0.1", true, &[])]);
    assert!(desired_subsets(&svc, &pods).is_empty());
    svc.spec.as_mut().expect("spec").cluster_ip = Some("None".into());
    let subsets = desired_subsets(&svc, &pods);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    assert!(subsets[0].ports.is_none());
}

#[test]
fn writes_only_on_change_and_labels_skip_mirror() {
    let svc = service(&[("http", 80, IntOrString::Int(8080))]);
    let pods = arcs(vec![pod("a", "web", "10.0.0.1", true, &[])]);
    let created = desired_endpoints(&svc, &pods, None).expect("create");
    assert_eq!(created.metadata.name.as_deref(), Some("web"));
    let labels = created.metadata.labels.clone().expect("labels");
    assert_eq!(labels.get(LABEL_SKIP_MIRROR).map(String::as_str), Some("true"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"), "service labels are copied");
    assert!(desired_endpoints(&svc, &pods, Some(&created)).is_none(), "nothing changed");
    let fewer = arcs(vec![]);
    let updated = desired_endpoints(&svc, &fewer, Some(&created)).expect("update");
    assert!(updated.subsets.is_none());
}
