//! Discovery documents: `/version`, legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and
//! aggregated (`APIGroupDiscoveryList`, v2 and v2beta1) discovery, and the minimal OpenAPI v3 documents
//! that let `kubectl apply` delegate validation to the server.
//!
//! Pure: built from the resource table; must not depend on the HTTP server or the store.

use serde_json::{json, Value};

use super::resources::{self, ResourceDef};

/// The Kubernetes release whose API this server matches (k8s-openapi feature `v1_33`).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";
pub const KUBE_GIT_VERSION: &str = "v1.33.0-gantry";

pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which discovery form an `Accept` header asks for (the first acceptable one wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryForm {
    AggregatedV2,
    AggregatedV2Beta1,
    Legacy,
}

impl DiscoveryForm {
    pub fn from_accept(accept: &str) -> Self {
        for part in accept.split(',') {
            let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
            if p.contains("as=APIGroupDiscoveryList") && p.contains("g=apidiscovery.k8s.io") {
                if p.contains("v=v2beta1") {
                    return DiscoveryForm::AggregatedV2Beta1;
                }
                if p.contains("v=v2") {
                    return DiscoveryForm::AggregatedV2;
                }
            } else if p.starts_with("application/json") || p.starts_with("*/*") {
                return DiscoveryForm::Legacy;
            }
        }
        DiscoveryForm::Legacy
    }

    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryForm::AggregatedV2 => AGGREGATED_V2,
            DiscoveryForm::AggregatedV2Beta1 => AGGREGATED_V2BETA1,
            DiscoveryForm::Legacy => "application/json",
        }
    }
}

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": KUBE_GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a (gantry is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// `/api` in the legacy form.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_entry(group: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{group}/v1"), "version": "v1" });
    json!({ "name": group, "versions": [gv.clone()], "preferredVersion": gv })
}

/// `/apis` in the legacy form.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": resources::groups().into_iter().map(group_entry).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`, or `None` for an unknown group.
pub fn group(name: &str) -> Option<Value> {
    if !resources::groups().contains(&name) {
        return None;
    }
    let mut g = group_entry(name);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>` (`APIResourceList`), or `None` when nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = resources::in_group_version(group, version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for d in &defs {
        let mut r = json!({
            "name": d.resource,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": verbs(d),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        out.push(r);
        for s in d.subresources {
            let mut sr = json!({
                "name": format!("{}/{}", d.resource, s.name),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != d.group || s.version != d.version {
                sr["group"] = json!(s.group);
                sr["version"] = json!(s.version);
            }
            out.push(sr);
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out }))
}

fn verbs(d: &ResourceDef) -> Vec<&'static str> {
    if d.resource == "bindings" {
        vec!["create"]
    } else {
        d.verbs().to_vec()
    }
}

fn aggregated_resource(d: &ResourceDef) -> Value {
    let mut r = json!({
        "resource": d.resource,
        "responseKind": { "group": d.group, "version": d.version, "kind": d.kind },
        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": d.singular,
        "verbs": verbs(d),
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    if !d.subresources.is_empty() {
        r["subresources"] = d
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": { "group": s.group, "version": s.version, "kind": s.kind },
                    "verbs": s.verbs,
                })
            })
            .collect();
    }
    r
}

/// `/api` (core) or `/apis` (every other group) in the aggregated form.
pub fn aggregated(core: bool, form: DiscoveryForm) -> Value {
    let api_version = match form {
        DiscoveryForm::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
        _ => "apidiscovery.k8s.io/v2",
    };
    let groups: Vec<&str> = if core { vec![""] } else { resources::groups() };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let resources: Vec<Value> = resources::in_group_version(g, "v1").map(aggregated_resource).collect();
            json!({
                "metadata": { "name": g, "creationTimestamp": null },
                "versions": [{ "version": "v1", "resources": resources, "freshness": "Current" }],
            })
        })
        .collect();
    json!({ "kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items })
}

/// Stable short hash of a document, for OpenAPI `serverRelativeURL`s.
fn doc_hash(group: &str, version: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{group}/{version}/{KUBE_GIT_VERSION}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group-version's document lives.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({ "serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", doc_hash("", "v1")) }),
    );
    for g in resources::groups() {
        paths.insert(
            format!("apis/{g}/v1"),
            json!({ "serverRelativeURL": format!("/openapi/v3/apis/{g}/v1?hash={}", doc_hash(g, "v1")) }),
        );
    }
    json!({ "paths": paths })
}

/// A minimal OpenAPI v3 document for one group-version: every kind's create and patch operations,
/// declaring the `fieldValidation` parameter, so kubectl leaves validation to the server.
pub fn openapi_group_version(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = resources::in_group_version(group, version).collect();
    if defs.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let mut paths = serde_json::Map::new();
    let param = json!([
        { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
        { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
        { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
    ]);
    for d in defs.iter().filter(|d| d.resource != "bindings") {
        let gvk = json!({ "group": d.group, "version": d.version, "kind": d.kind });
        let base = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", d.resource)
        } else {
            format!("{prefix}/{}", d.resource)
        };
        let op = |action: &str, verb: &str| {
            json!({
                "operationId": format!("{verb}{}", d.kind),
                "parameters": param,
                "responses": { "200": { "description": "OK" } },
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        paths.insert(base.clone(), json!({ "post": op("post", "create") }));
        paths.insert(format!("{base}/{{name}}"), json!({ "put": op("put", "replace"), "patch": op("patch", "patch") }));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBE_GIT_VERSION },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_form() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(DiscoveryForm::from_accept(kubectl), DiscoveryForm::AggregatedV2);
        let old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(DiscoveryForm::from_accept(old), DiscoveryForm::AggregatedV2Beta1);
        assert_eq!(DiscoveryForm::from_accept("application/json, */*"), DiscoveryForm::Legacy);
        assert_eq!(DiscoveryForm::from_accept(""), DiscoveryForm::Legacy);
    }

    #[test]
    fn legacy_core_list_has_kinds_scope_and_eviction() {
        let list = resource_list("", "v1").expect("core");
        let res = list["resources"].as_array().expect("array");
        let pods = res.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pods["kind"], "Pod");
        assert_eq!(pods["namespaced"], true);
        let eviction = res.iter().find(|r| r["name"] == "pods/eviction").expect("eviction");
        assert_eq!((eviction["group"].as_str(), eviction["version"].as_str()), (Some("policy"), Some("v1")));
        assert!(resource_list("apps", "v2").is_none());
    }

    #[test]
    fn aggregated_entries_carry_response_kind_and_scope() {
        let doc = aggregated(false, DiscoveryForm::AggregatedV2);
        let apps =
            doc["items"].as_array().expect("items").iter().find(|g| g["metadata"]["name"] == "apps").expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "deployments")
            .expect("deployments");
        assert_eq!(deploy["responseKind"]["kind"], "Deployment");
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(deploy["shortNames"][0], "deploy");
    }

    #[test]
    fn openapi_documents_declare_field_validation() {
        let index = openapi_index();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().expect("url");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = openapi_group_version("apps", "v1").expect("doc");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
    }
}
