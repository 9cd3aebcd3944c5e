//! Turns a request path into what it addresses (like upstream's RequestInfo): a well-known endpoint,
//! a discovery document, or a resource collection / object / subresource.
//!
//! Pure; must not depend on the HTTP server or the store.

use super::resources::{self, ResourceDef};

/// The target of a resource request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTarget {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their `/...` sub-checks).
    Health(&'static str),
    Metrics,
    OpenApiV3Index,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`: the group-version.
    OpenApiV3GroupVersion {
        group: String,
        version: String,
    },
    OpenApiV2,
    /// `/api`
    CoreGroup,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    Resource(ResourceTarget),
}

/// Why a path addresses nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the server could not find the requested resource")]
    NotFound,
}

/// Resolves `path` (without query string).
pub fn route(path: &str) -> Result<Route, RouteError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz", ..] => Ok(Route::Health("healthz")),
        ["livez", ..] => Ok(Route::Health("livez")),
        ["readyz", ..] => Ok(Route::Health("readyz")),
        ["metrics"] => Ok(Route::Metrics),
        ["openapi", "v3"] => Ok(Route::OpenApiV3Index),
        ["openapi", "v3", "api", version] => {
            Ok(Route::OpenApiV3GroupVersion { group: String::new(), version: version.to_string() })
        }
        ["openapi", "v3", "apis", group, version] => {
            Ok(Route::OpenApiV3GroupVersion { group: group.to_string(), version: version.to_string() })
        }
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        ["api"] => Ok(Route::CoreGroup),
        ["apis"] => Ok(Route::Groups),
        ["apis", group] => Ok(Route::Group(group.to_string())),
        ["api", version] => Ok(Route::ResourceList { group: String::new(), version: version.to_string() }),
        ["apis", group, version] => Ok(Route::ResourceList { group: group.to_string(), version: version.to_string() }),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Err(RouteError::NotFound),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Route, RouteError> {
    let find = |resource: &str| resources::find(group, version, resource).ok_or(RouteError::NotFound);
    let target = |def: &'static ResourceDef, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        if ns.is_some() && !def.namespaced {
            return Err(RouteError::NotFound);
        }
        if let Some(s) = sub {
            def.subresource(s).ok_or(RouteError::NotFound)?;
        }
        Ok(Route::Resource(ResourceTarget {
            def,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        }))
    };
    match rest {
        // The namespace object itself and its subresources.
        ["namespaces", ns] if group.is_empty() => target(find("namespaces")?, None, Some(ns), None),
        ["namespaces", ns, "status"] if group.is_empty() => target(find("namespaces")?, None, Some(ns), Some("status")),
        ["namespaces", ns, resource] => target(find(resource)?, Some(ns), None, None),
        ["namespaces", ns, resource, name] => target(find(resource)?, Some(ns), Some(name), None),
        ["namespaces", ns, resource, name, sub] => target(find(resource)?, Some(ns), Some(name), Some(sub)),
        [resource] => target(find(resource)?, None, None, None),
        [resource, name] => target(find(resource)?, None, Some(name), None),
        [resource, name, sub] => target(find(resource)?, None, Some(name), Some(sub)),
        _ => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> ResourceTarget {
        match route(path) {
            Ok(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let t = target("/api/v1/namespaces/default/pods");
        assert_eq!((t.def.resource, t.namespace.as_deref(), t.name.as_deref()), ("pods", Some("default"), None));
        let t = target("/api/v1/namespaces/default/pods/web/status");
        assert_eq!((t.name.as_deref(), t.subresource.as_deref()), (Some("web"), Some("status")));
        let t = target("/api/v1/pods");
        assert_eq!((t.def.resource, t.namespace), ("pods", None));
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!((t.def.resource, t.name.as_deref()), ("namespaces", Some("kube-system")));
        let t = target("/apis/apps/v1/namespaces/ns/deployments/web/scale");
        assert_eq!((t.def.kind, t.subresource.as_deref()), ("Deployment", Some("scale")));
        let t = target("/api/v1/nodes/n1");
        assert_eq!((t.def.kind, t.name.as_deref()), ("Node", Some("n1")));
    }

    #[test]
    fn well_known_and_unknown_paths() {
        assert_eq!(route("/version"), Ok(Route::Version));
        assert_eq!(route("/readyz/ping"), Ok(Route::Health("readyz")));
        assert_eq!(route("/apis"), Ok(Route::Groups));
        assert_eq!(route("/apis/apps/v1"), Ok(Route::ResourceList { group: "apps".into(), version: "v1".into() }));
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Ok(Route::OpenApiV3GroupVersion { group: "apps".into(), version: "v1".into() })
        );
        assert_eq!(route("/api/v1/namespaces/default/widgets"), Err(RouteError::NotFound));
        assert_eq!(route("/api/v1/namespaces/default/nodes/n1"), Err(RouteError::NotFound), "nodes are cluster-scoped");
        assert_eq!(route("/api/v1/namespaces/default/pods/web/nope"), Err(RouteError::NotFound));
        assert_eq!(route("/apis/apps/v2/deployments"), Err(RouteError::NotFound));
    }
}
