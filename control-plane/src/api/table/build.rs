//! Assembles a `meta.k8s.io/v1` `Table` from a list of objects: picks the resource's printer (or the
//! generic NAME/AGE one), renders the rows and attaches each object as `includeObject` asks.
//!
//! Pure; depends only on the sibling printers. Must not depend on the HTTP server or the store.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::columns::{Column, Printer, Row, AGE, NAME};
use super::format::age;
use super::{apps, batch, core_v1, platform, pod, rbac, volume};

/// Why a table request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// An `includeObject` value other than `None`, `Metadata` or `Object`.
    #[error("includeObject: Invalid value: {0:?}: must be 'Metadata', 'Object', 'None', or empty")]
    IncludeObject(String),
}

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl FromStr for IncludeObject {
    type Err = TableError;

    /// Parses the query parameter; the empty string means the default, `Metadata`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(TableError::IncludeObject(other.to_owned())),
        }
    }
}

const GENERIC_COLUMNS: &[Column] = &[NAME, AGE];

fn generic_row(object: &Value, now: DateTime<Utc>) -> Row {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Row::from(vec![json!(name), json!(age(object, now))])
}

/// The printer for a resource: the upstream one where there is one, NAME and AGE otherwise.
fn printer(group: &str, resource: &str) -> Printer {
    let found = match group {
        "" => pod::printer(resource).or_else(|| core_v1::printer(resource)).or_else(|| volume::printer(resource)),
        "apps" => apps::printer(resource),
        "batch" => batch::printer(resource),
        "rbac.authorization.k8s.io" => rbac::printer(resource),
        _ => platform::printer(group, resource),
    };
    found.unwrap_or(Printer { columns: GENERIC_COLUMNS, row: generic_row })
}

/// The `columnDefinitions` of a resource's table.
pub fn column_definitions(group: &str, resource: &str) -> Value {
    Value::Array(printer(group, resource).columns.iter().map(|c| c.to_json()).collect())
}

/// The `Table` for `objects` of a resource, as the API server answers `Accept: application/json;as=Table;
/// g=meta.k8s.io;v=v1`. Cells hold every column (wide ones too); `now` is the reference for ages.
pub fn table_for(
    group: &str,
    resource: &str,
    objects: &[Value],
    include: IncludeObject,
    list_resource_version: &str,
    continue_token: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let printer = printer(group, resource);
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let Row { cells, conditions } = (printer.row)(object, now);
            let mut row = Map::new();
            row.insert("cells".to_owned(), Value::Array(cells));
            if !conditions.is_empty() {
                row.insert("conditions".to_owned(), Value::Array(conditions));
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
                    row.insert(
                        "object".to_owned(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".to_owned(), object.clone());
                }
            }
            Value::Object(row)
        })
        .collect();

    let mut metadata = Map::new();
    if !list_resource_version.is_empty() {
        metadata.insert("resourceVersion".to_owned(), json!(list_resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".to_owned(), json!(token));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(group, resource),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn configmap() -> Value {
        json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "settings", "namespace": "default", "resourceVersion": "7",
                "creationTimestamp": "2024-05-01T11:58:00Z"},
            "data": {"a": "1"},
        })
    }

    #[test]
    fn include_object_variants() {
        let objects = [configmap()];
        let metadata = table_for("", "configmaps", &objects, IncludeObject::Metadata, "42", Some("tok"), now());
        assert_eq!(metadata["kind"], "Table");
        assert_eq!(metadata["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(metadata["metadata"], json!({"resourceVersion": "42", "continue": "tok"}));
        assert_eq!(metadata["rows"][0]["cells"], json!(["settings", 1, "2m"]));
        assert_eq!(
            metadata["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": objects[0]["metadata"]})
        );

        let whole = table_for("", "configmaps", &objects, IncludeObject::Object, "42", None, now());
        assert_eq!(whole["rows"][0]["object"], objects[0]);
        assert_eq!(whole["metadata"], json!({"resourceVersion": "42"}));

        let bare = table_for("", "configmaps", &objects, IncludeObject::None, "", Some(""), now());
        assert!(bare["rows"][0].get("object").is_none());
        assert_eq!(bare["metadata"], json!({}));
        assert_eq!(bare["rows"][0], json!({"cells": ["settings", 1, "2m"]}));
    }

    #[test]
    fn include_object_parses_the_query_value() {
        assert_eq!("".parse::<IncludeObject>(), Ok(IncludeObject::Metadata));
        assert_eq!("Metadata".parse::<IncludeObject>(), Ok(IncludeObject::Metadata));
        assert_eq!("None".parse::<IncludeObject>(), Ok(IncludeObject::None));
        assert_eq!("Object".parse::<IncludeObject>(), Ok(IncludeObject::Object));
        let err = "object".parse::<IncludeObject>().expect_err("case matters");
        assert_eq!(
            err.to_string(),
            "includeObject: Invalid value: \"object\": must be 'Metadata', 'Object', 'None', or empty"
        );
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }

    #[test]
    fn column_definitions_carry_upstream_fields() {
        let columns = column_definitions("", "pods");
        let names: Vec<&str> = columns.as_array().expect("list").iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(columns[0]["format"], "name");
        assert_eq!(columns[0]["type"], "string");
        assert_eq!(columns[0]["priority"], 0);
        assert_eq!(columns[5]["priority"], 1);
        assert_eq!(columns[5]["format"], "");
        assert!(columns[1]["description"].as_str().is_some_and(|d| !d.is_empty()));
    }

    #[test]
    fn unknown_resources_fall_back_to_name_and_age() {
        let widget = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-04-29T12:00:00Z"}, "spec": {}});
        for (group, resource) in [("example.com", "widgets"), ("", "limitranges"), ("apps", "controllerrevisions")] {
            let table =
                table_for(group, resource, std::slice::from_ref(&widget), IncludeObject::None, "1", None, now());
            let names: Vec<&str> = table["columnDefinitions"]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            assert_eq!(names, ["Name", "Age"], "{group}/{resource}");
            assert_eq!(table["rows"][0]["cells"], json!(["w1", "2d"]), "{group}/{resource}");
        }
        let empty = table_for("example.com", "widgets", &[], IncludeObject::Metadata, "5", None, now());
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn every_printer_fills_every_column() {
        let resources = [
            ("", "pods"),
            ("", "nodes"),
            ("", "namespaces"),
            ("", "services"),
            ("", "endpoints"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "events"),
            ("", "serviceaccounts"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("coordination.k8s.io", "leases"),
            ("discovery.k8s.io", "endpointslices"),
            ("policy", "poddisruptionbudgets"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ];
        for (group, resource) in resources {
            let printer = printer(group, resource);
            assert!(printer.columns.len() > 2 || group == "rbac.authorization.k8s.io", "{group}/{resource}");
            let table = table_for(group, resource, &[json!({}), configmap()], IncludeObject::None, "", None, now());
            for row in table["rows"].as_array().expect("rows") {
                assert_eq!(row["cells"].as_array().map(Vec::len), Some(printer.columns.len()), "{group}/{resource}");
            }
            let names = printer.columns.iter().filter(|c| c.format == "name").count();
            assert_eq!(names, 1, "{group}/{resource}: one name column");
        }
    }

    #[test]
    fn pod_rows_carry_conditions() {
        let pod = json!({"metadata": {"name": "done"}, "status": {"phase": "Succeeded"}});
        let table = table_for("", "pods", &[pod], IncludeObject::None, "", None, now());
        assert_eq!(table["rows"][0]["conditions"][0]["type"], "Completed");
    }
}
