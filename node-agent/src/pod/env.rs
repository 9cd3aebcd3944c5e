//! A container's environment as the kubelet builds it, from the pod, the ConfigMaps and Secrets it
//! references (as last seen) and the downward values (pod and node facts). Pure.
//!
//! Order and precedence follow upstream: `envFrom` sources in order (later ones override earlier),
//! then `env` entries in order (overriding `envFrom`); `$(VAR)` in `value`, `command` and `args` expands
//! to variables defined earlier, `$$(VAR)` is an escaped literal and unknown references stay as they are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, ObjectFieldSelector, Pod, ResourceFieldSelector};

use super::resources::parse_quantity;
use super::spec::SpecError;
use crate::objects::{ObjectKind, ObjectRef, ObjectState, ObjectsView};

/// Pod and node facts that `fieldRef` and `resourceFieldRef` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Downward {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// What a container without a cpu limit may use (the node's allocatable), in millicores.
    pub allocatable_cpu_millis: i64,
    /// The same for memory, in bytes.
    pub allocatable_memory_bytes: i64,
}

/// Everything env resolution reads besides the pod and container.
#[derive(Debug, Clone, Copy)]
pub struct EnvInputs<'a> {
    pub objects: &'a ObjectsView,
    pub downward: &'a Downward,
}

/// The resolved environment of `c`, in definition order (a redefined name keeps its first place).
pub fn container_env(pod: &Pod, c: &Container, inputs: EnvInputs<'_>) -> Result<Vec<(String, String)>, SpecError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set =
        |env: &mut Vec<(String, String)>, name: String, value: String| match env.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => env.push((name, value)),
        };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let source = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => Some((ObjectKind::ConfigMap, r.name.as_str(), r.optional.unwrap_or(false))),
            (None, Some(r)) => Some((ObjectKind::Secret, r.name.as_str(), r.optional.unwrap_or(false))),
            (None, None) => None,
        };
        let Some((kind, name, optional)) = source else { continue };
        let Some(data) = object_data(inputs.objects, kind, namespace, name, optional)? else { continue };
        for (key, value) in &data.data {
            let var = format!("{prefix}{key}");
            // Upstream skips keys that are not valid variable names (and records an event).
            if is_env_var_name(&var) {
                set(&mut env, var, String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), &env)),
            Some(_) => value_from(pod, c, e, namespace, inputs)?,
        };
        if let Some(value) = value {
            set(&mut env, e.name.clone(), value);
        }
    }
    Ok(env)
}

/// `command` and `args` with `$(VAR)` expanded against the container's environment.
pub fn expand_all(list: Option<&Vec<String>>, env: &[(String, String)]) -> Vec<String> {
    list.into_iter().flatten().map(|s| expand(s, env)).collect()
}

fn value_from(
    pod: &Pod,
    c: &Container,
    e: &EnvVar,
    namespace: &str,
    inputs: EnvInputs<'_>,
) -> Result<Option<String>, SpecError> {
    let Some(from) = &e.value_from else { return Ok(None) };
    if let Some(field) = &from.field_ref {
        return field_value(pod, field, inputs.downward).map(Some).ok_or_else(|| SpecError::FieldPath {
            container: c.name.clone(),
            var: e.name.clone(),
            path: field.field_path.clone(),
        });
    }
    if let Some(resource) = &from.resource_field_ref {
        return resource_value(pod, c, resource, inputs.downward).map(Some).map_err(|what| SpecError::EnvSource {
            container: c.name.clone(),
            var: e.name.clone(),
            what,
        });
    }
    let key_ref = match (&from.config_map_key_ref, &from.secret_key_ref) {
        (Some(r), _) => Some((ObjectKind::ConfigMap, r.name.as_str(), r.key.as_str(), r.optional.unwrap_or(false))),
        (None, Some(r)) => Some((ObjectKind::Secret, r.name.as_str(), r.key.as_str(), r.optional.unwrap_or(false))),
        (None, None) => None,
    };
    let Some((kind, name, key, optional)) = key_ref else {
        return Err(SpecError::EnvSource {
            container: c.name.clone(),
            var: e.name.clone(),
            what: "an empty valueFrom".into(),
        });
    };
    let Some(data) = object_data(inputs.objects, kind, namespace, name, optional)? else { return Ok(None) };
    match data.data.get(key) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional => Ok(None),
        None => Err(SpecError::MissingKey {
            key: key.to_string(),
            kind: kind.kind(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}

/// The object's data; `None` when it is missing and optional.
pub fn object_data<'a>(
    objects: &'a ObjectsView,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<&'a crate::objects::ObjectData>, SpecError> {
    let r = ObjectRef::new(kind, namespace, name);
    match objects.get(&r) {
        Some(ObjectState::Present(data)) => Ok(Some(data)),
        Some(ObjectState::Missing) if optional => Ok(None),
        Some(ObjectState::Missing) => Err(SpecError::MissingObject { kind: kind.noun(), name: name.to_string() }),
        Some(ObjectState::Pending) | None => Err(SpecError::ObjectNotSynced(r.to_string())),
    }
}

/// The value a `fieldRef` selects; `None` for paths that are not supported.
pub fn field_value(pod: &Pod, field: &ObjectFieldSelector, downward: &Downward) -> Option<String> {
    let m = &pod.metadata;
    let path = field.field_path.as_str();
    if let Some(key) = subscript(path, "metadata.labels") {
        return Some(m.labels.as_ref().and_then(|l| l.get(key)).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Some(m.annotations.as_ref().and_then(|a| a.get(key)).cloned().unwrap_or_default());
    }
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => key_value_lines(m.labels.as_ref()),
        "metadata.annotations" => key_value_lines(m.annotations.as_ref()),
        "spec.nodeName" => downward.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => downward.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => downward.host_ip.clone(),
        _ => return None,
    })
}

/// `metadata.labels['key']` → `key`.
fn subscript<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(field)?.strip_prefix("['")?;
    rest.strip_suffix("']")
}

/// `k="v"` lines sorted by key, as the downward API writes labels and annotations.
fn key_value_lines(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n")
}

/// The value a `resourceFieldRef` selects: limits default to the node's allocatable, values are
/// divided by `divisor` (default 1) and rounded up, as upstream's `ExtractContainerResourceValue`.
pub fn resource_value(
    pod: &Pod,
    own: &Container,
    r: &ResourceFieldSelector,
    downward: &Downward,
) -> Result<String, String> {
    let c = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => own,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .find(|c| c.name == name)
            .ok_or_else(|| format!("resourceFieldRef names unknown container {name:?}"))?,
    };
    let (which, resource) =
        r.resource.split_once('.').ok_or_else(|| format!("unsupported resourceFieldRef {:?}", r.resource))?;
    let set = c.resources.as_ref().and_then(|res| match which {
        "limits" => res.limits.as_ref(),
        "requests" => res.requests.as_ref(),
        _ => None,
    });
    if !matches!(which, "limits" | "requests") || !matches!(resource, "cpu" | "memory" | "ephemeral-storage") {
        return Err(format!("unsupported resourceFieldRef {:?}", r.resource));
    }
    let explicit = set.and_then(|m| m.get(resource)).and_then(|q| parse_quantity(&q.0));
    let value = match (explicit, which, resource) {
        (Some(v), _, _) => v,
        (None, "limits", "cpu") => downward.allocatable_cpu_millis as f64 / 1000.0,
        (None, "limits", "memory") => downward.allocatable_memory_bytes as f64,
        (None, _, _) => 0.0,
    };
    let divisor = match r.divisor.as_ref() {
        Some(d) => parse_quantity(&d.0).filter(|d| *d > 0.0).ok_or_else(|| format!("invalid divisor {:?}", d.0))?,
        None => 1.0,
    };
    // Rounding guards against 0.1/0.001 landing a hair above an integer.
    let quotient = value / divisor;
    let rounded = if (quotient - quotient.round()).abs() < 1e-9 { quotient.round() } else { quotient.ceil() };
    Ok(format!("{}", rounded as i64))
}

/// Whether `name` is a valid environment variable name (C identifier characters plus `-` and `.`,
/// not starting with a digit), as the API validates `envFrom` keys.
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Expands `$(NAME)` to variables defined in `env`; `$$` is a literal `$`; unknown references stay.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    if !input.contains('$') {
        return input.to_string();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(reference) = after.strip_prefix('(').and_then(|r| r.find(')').map(|end| &r[..end])) {
            match env.iter().rev().find(|(n, _)| n == reference) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(reference);
                    out.push(')');
                }
            }
            rest = &after[reference.len() + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
