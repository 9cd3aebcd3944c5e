// Table rows are tuples; slices of one cloned reference read better than `from_ref` here.
#![allow(clippy::type_complexity, clippy::cloned_ref_to_slice_refs)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::plan::{plan, SlicePlan, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MAX_ENDPOINTS_PER_SLICE};
use crate::endpoints::fixtures::{arcs, pod, service, terminating};

fn zone(node: &str) -> Option<String> {
    (node == "node-1").then(|| "zone-a".to_string())
}

fn svc() -> Service {
    service(&[("http", 80, IntOrString::Int(8080))])
}

fn run(svc: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>]) -> SlicePlan {
    plan(svc, pods, &zone, existing)
}

fn many(n: usize) -> Vec<Arc<Pod>> {
    arcs(
        (0..n).map(|i| pod(&format!("p{i}"), "web", &format!("10.0.{}.{}", i / 250, i % 250 + 1), true, &[])).collect(),
    )
}

/// What the API would store for a created slice.
fn stored(mut s: EndpointSlice, name: &str) -> Arc<EndpointSlice> {
    s.metadata =
        ObjectMeta { name: Some(name.into()), generate_name: None, resource_version: Some("1".into()), ..s.metadata };
    Arc::new(s)
}

fn ips(s: &EndpointSlice) -> Vec<&str> {
    s.endpoints.iter().map(|e| e.addresses[0].as_str()).collect()
}

#[test]
fn new_service_gets_one_labelled_owned_slice_with_conditions_and_zone() {
    let pods = arcs(vec![
        pod("a", "web", "10.0.0.1", true, &[]),
        pod("b", "web", "10.0.0.2", false, &[]),
        terminating(pod("c", "web", "10.0.0.3", true, &[])),
        pod("other", "db", "10.0.0.9", true, &[]),
    ]);
    let p = run(&svc(), &pods, &[]);
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(p.create.len(), 1);
    let s = &p.create[0];
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(s.address_type, "IPv4");
    let labels = s.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get(LABEL_SERVICE_NAME).map(String::as_str), Some("web"));
    assert_eq!(labels.get(LABEL_MANAGED_BY).map(String::as_str), Some(CONTROLLER_NAME));
    let owner = &s.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Service", "svc-uid", Some(true)));
    let port = &s.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), Some(8080), Some("TCP")));
    let conds: Vec<(&str, Option<bool>, Option<bool>, Option<bool>)> = s
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.as_ref().expect("conditions");
            (e.addresses[0].as_str(), c.ready, c.serving, c.terminating)
        })
        .collect();
    assert_eq!(
        conds,
        [
            ("10.0.0.1", Some(true), Some(true), Some(false)),
            ("10.0.0.2", Some(false), Some(false), Some(false)),
            ("10.0.0.3", Some(false), Some(true), Some(true)),
        ]
    );
    assert_eq!(s.endpoints[0].zone.as_deref(), Some("zone-a"));
    assert_eq!(s.endpoints[0].node_name.as_deref(), Some("node-1"));
    assert_eq!(s.endpoints[0].target_ref.as_ref().and_then(|r| r.name.as_deref()), Some("a"));
}

#[test]
fn slices_hold_at_most_the_maximum_and_a_synced_state_writes_nothing() {
    let pods = many(MAX_ENDPOINTS_PER_SLICE * 2 + 5);
    let p = run(&svc(), &pods, &[]);
    let sizes: Vec<usize> = p.create.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, [MAX_ENDPOINTS_PER_SLICE, MAX_ENDPOINTS_PER_SLICE, 5]);
    let existing: Vec<_> = p.create.into_iter().enumerate().map(|(i, s)| stored(s, &format!("web-{i}"))).collect();
    assert!(run(&svc(), &pods, &existing).is_empty(), "nothing changed, nothing written");
}

#[test]
fn changes_update_slices_in_place_and_new_endpoints_fill_slices_with_room() {
    let pods = many(MAX_ENDPOINTS_PER_SLICE + 10);
    let existing: Vec<_> =
        run(&svc(), &pods, &[]).create.into_iter().enumerate().map(|(i, s)| stored(s, &format!("web-{i}"))).collect();
    // p0 (in the full slice) goes away and two pods arrive: one takes p0's place, the other goes to
    // the slice with room; nothing is created or deleted.
    let mut next: Vec<Arc<Pod>> = pods[1..].to_vec();
    next.extend(arcs(vec![pod("new1", "web", "10.1.0.1", true, &[]), pod("new2", "web", "10.1.0.2", true, &[])]));
    let p = run(&svc(), &next, &existing);
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 2);
    let total: usize = p.update.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(total, MAX_ENDPOINTS_PER_SLICE + 11);
    assert!(p.update.iter().all(|s| s.endpoints.len() <= MAX_ENDPOINTS_PER_SLICE));
    assert!(p.update.iter().all(|s| s.metadata.resource_version.as_deref() == Some("1")), "updates carry the rv read");
    // A pod turning unready rewrites only its slice.
    let mut unready = pods.clone();
    unready[0] = Arc::new(pod("p0", "web", "10.0.0.1", false, &[]));
    let p = run(&svc(), &unready, &existing);
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name.as_deref(), Some("web-0"));
    assert!(p.create.is_empty() && p.delete.is_empty());
}

#[test]
fn emptied_slices_are_deleted_and_a_podless_service_keeps_a_placeholder() {
    let pods = many(MAX_ENDPOINTS_PER_SLICE + 1);
    let existing: Vec<_> =
        run(&svc(), &pods, &[]).create.into_iter().enumerate().map(|(i, s)| stored(s, &format!("web-{i}"))).collect();
    let p = run(&svc(), &pods[..MAX_ENDPOINTS_PER_SLICE], &existing);
    assert_eq!(p.delete.iter().map(|s| s.metadata.name.as_deref()).collect::<Vec<_>>(), [Some("web-1")]);
    assert!(p.create.is_empty() && p.update.is_empty());

    let p = run(&svc(), &[], &existing);
    assert!(p.create.is_empty(), "a slice that would be deleted becomes the placeholder");
    assert_eq!(p.update.len(), 1);
    assert!(p.update[0].endpoints.is_empty() && p.update[0].ports.is_none());
    assert_eq!(p.delete.len(), 1);
    let p = run(&svc(), &[], &[]);
    assert_eq!(p.create.len(), 1, "placeholder");
    let placeholder = stored(p.create.into_iter().next().expect("placeholder"), "web-p");
    assert!(run(&svc(), &[], &[placeholder.clone()]).is_empty());
    // The placeholder is reused for the first pod.
    let p = run(&svc(), &pods[..1], &[placeholder]);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(ips(&p.update[0]), ["10.0.0.1"]);
    assert_eq!(p.update[0].metadata.name.as_deref(), Some("web-p"));
    assert!(p.update[0].ports.is_some());
}

#[test]
fn pods_with_different_ports_get_different_slices() {
    let svc = service(&[("http", 80, IntOrString::String("web".into()))]);
    let pods = arcs(vec![
        pod("a", "web", "10.0.0.1", true, &[("web", 8080)]),
        pod("b", "web", "10.0.0.2", true, &[("web", 9090)]),
        pod("c", "web", "10.0.0.3", true, &[("web", 8080)]),
    ]);
    let p = run(&svc, &pods, &[]);
    let mut got: Vec<(Option<i32>, Vec<&str>)> =
        p.create.iter().map(|s| (s.ports.as_ref().and_then(|p| p[0].port), ips(s))).collect();
    got.sort();
    assert_eq!(got, [(Some(8080), vec!["10.0.0.1", "10.0.0.3"]), (Some(9090), vec!["10.0.0.2"])]);
    // A slice whose port set no longer exists is deleted.
    let existing: Vec<_> = p.create.into_iter().enumerate().map(|(i, s)| stored(s, &format!("web-{i}"))).collect();
    let p = run(&svc, &[pods[0].clone(), pods[2].clone()], &existing);
    assert_eq!(p.delete.len(), 1);
    assert!(p.create.is_empty() && p.update.is_empty());
}

#[test]
fn a_service_without_selector_loses_its_managed_slices() {
    let pods = many(1);
    let existing: Vec<_> = run(&svc(), &pods, &[]).create.into_iter().map(|s| stored(s, "web-0")).collect();
    let mut plain = svc();
    plain.spec.as_mut().expect("spec").selector = None;
    let p = run(&plain, &pods, &existing);
    assert_eq!(p.delete.len(), 1);
    assert!(p.create.is_empty());
}

#[test]
fn endpoints_carry_the_hostname_of_pods_whose_subdomain_is_the_service() {
    let with = |name: &str, ip: &str, hostname: Option<&str>, subdomain: Option<&str>| {
        let mut p = pod(name, "web", ip, true, &[]);
        let spec = p.spec.as_mut().expect("spec");
        spec.hostname = hostname.map(str::to_string);
        spec.subdomain = subdomain.map(str::to_string);
        p
    };
    let pods = arcs(vec![
        with("web-0", "10.0.0.1", Some("web-0"), Some("web")),
        with("other", "10.0.0.2", Some("other"), Some("elsewhere")),
        with("nohost", "10.0.0.3", None, Some("web")),
        with("plain", "10.0.0.4", Some("plain"), None),
    ]);
    let p = run(&svc(), &pods, &[]);
    let hostnames: Vec<(&str, Option<&str>)> =
        p.create[0].endpoints.iter().map(|e| (e.addresses[0].as_str(), e.hostname.as_deref())).collect();
    assert_eq!(hostnames, [("10.0.0.1", Some("web-0")), ("10.0.0.2", None), ("10.0.0.3", None), ("10.0.0.4", None)]);
}
