//! Tables for persistent volumes and claims (core group), after upstream `printPersistentVolume` and
//! `printPersistentVolumeClaim`.
//!
//! Pure; depends only on the sibling column and format helpers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::columns::{col, wide, Column, Printer, Row, AGE, NAME};
use super::format::{age, at, deleting, name, strings, text, UNSET};

/// The printer for `persistentvolumes` and `persistentvolumeclaims`.
pub(super) fn printer(resource: &str) -> Option<Printer> {
    match resource {
        "persistentvolumes" => Some(Printer { columns: PV, row: pv }),
        "persistentvolumeclaims" => Some(Printer { columns: PVC, row: pvc }),
        _ => None,
    }
}

const ACCESS_MODES: Column = col("Access Modes", "string", "The ways the volume can be mounted.");
const VOLUME_ATTRIBUTES_CLASS: Column =
    col("VolumeAttributesClass", "string", "The VolumeAttributesClass the volume or claim uses.");
const VOLUME_MODE: Column =
    wide("VolumeMode", "string", "Whether the volume is a formatted filesystem or a raw block.");

const PV: &[Column] = &[
    NAME,
    col("Capacity", "string", "The storage capacity of the volume."),
    ACCESS_MODES,
    col("Reclaim Policy", "string", "What happens to the volume when it is released from its claim."),
    col("Status", "string", "The phase of the volume."),
    col("Claim", "string", "The claim bound to the volume."),
    col("StorageClass", "string", "StorageClass of the pv"),
    VOLUME_ATTRIBUTES_CLASS,
    col("Reason", "string", "A brief CamelCase string that describes any failure."),
    AGE,
    VOLUME_MODE,
];

const PVC: &[Column] = &[
    NAME,
    col("Status", "string", "The phase of the claim."),
    col("Volume", "string", "The volume bound to the claim."),
    col("Capacity", "string", "The actual resources of the underlying volume."),
    ACCESS_MODES,
    col("StorageClass", "string", "StorageClass of the pvc"),
    VOLUME_ATTRIBUTES_CLASS,
    AGE,
    VOLUME_MODE,
];

/// Upstream `GetAccessModesAsString`: short names in a fixed order, each once.
fn access_modes(modes: &[&str]) -> String {
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(long, _)| modes.contains(long))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// The storage class: the beta annotation wins over `spec.storageClassName`.
fn storage_class(object: &Value) -> &str {
    match at(object, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"]).and_then(Value::as_str) {
        Some(class) => class,
        None => text(object, &["spec", "storageClassName"]),
    }
}

fn or_unset(s: &str) -> &str {
    if s.is_empty() {
        UNSET
    } else {
        s
    }
}

fn phase(object: &Value) -> &str {
    if deleting(object) {
        "Terminating"
    } else {
        text(object, &["status", "phase"])
    }
}

/// A quantity as stored (a string such as `10Gi`, or a bare number).
fn quantity(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_owned(),
    }
}

fn pv(pv: &Value, now: DateTime<Utc>) -> Row {
    let claim = match at(pv, &["spec", "claimRef"]) {
        Some(claim) => format!("{}/{}", text(claim, &["namespace"]), text(claim, &["name"])),
        None => String::new(),
    };
    Row::from(vec![
        json!(name(pv)),
        json!(quantity(at(pv, &["spec", "capacity", "storage"]))),
        json!(access_modes(&strings(pv, &["spec", "accessModes"]))),
        json!(text(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        json!(phase(pv)),
        json!(claim),
        json!(storage_class(pv)),
        json!(or_unset(text(pv, &["spec", "volumeAttributesClassName"]))),
        json!(text(pv, &["status", "reason"])),
        json!(age(pv, now)),
        json!(or_unset(text(pv, &["spec", "volumeMode"]))),
    ])
}

fn pvc(pvc: &Value, now: DateTime<Utc>) -> Row {
    let volume = text(pvc, &["spec", "volumeName"]);
    // What the claim got is shown once it is bound to a volume.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(at(pvc, &["status", "capacity", "storage"])), access_modes(&strings(pvc, &["status", "accessModes"])))
    };
    Row::from(vec![
        json!(name(pvc)),
        json!(phase(pvc)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class(pvc)),
        json!(or_unset(text(pvc, &["spec", "volumeAttributesClassName"]))),
        json!(age(pvc, now)),
        json!(or_unset(text(pvc, &["spec", "volumeMode"]))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn persistent_volume_cells() {
        let v = json!({
            "metadata": {"name": "pv1", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                "claimRef": {"namespace": "db", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"},
        });
        let row = pv(&v, now());
        assert_eq!(
            row.cells,
            [
                json!("pv1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("db/data"),
                json!("fast"),
                json!("<unset>"),
                json!(""),
                json!("60m"),
                json!("Filesystem")
            ]
        );
        assert_eq!(row.cells.len(), PV.len());
    }

    #[test]
    fn persistent_volume_claim_cells() {
        let pending = json!({
            "metadata": {"name": "data", "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
            "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        });
        let row = pvc(&pending, now());
        assert_eq!(
            row.cells[1..7],
            [json!("Pending"), json!(""), json!(""), json!(""), json!("legacy"), json!("<unset>")]
        );
        let bound = json!({
            "metadata": {"name": "data", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"volumeName": "pv1", "storageClassName": "fast", "volumeMode": "Block"},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOncePod"]},
        });
        let row = pvc(&bound, now());
        assert_eq!(
            row.cells[1..],
            [
                json!("Terminating"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWOP"),
                json!("fast"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("Block")
            ]
        );
        assert_eq!(row.cells.len(), PVC.len());
    }
}
