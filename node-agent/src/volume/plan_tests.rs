//! Tests of [`super`]: each volume type's plan, modes and items, and the errors users see.

use std::sync::Arc;

use super::*;
use crate::objects::{ObjectData, ObjectRef, ObjectState};

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"memory": "64Mi"}}}], "volumes": volumes},
    }))
    .expect("pod")
}

fn view() -> ObjectsView {
    let data = |pairs: &[(&str, &str)]| {
        ObjectState::Present(Arc::new(ObjectData {
            data: pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
        }))
    };
    ObjectsView::from([
        (ObjectRef::new(ObjectKind::ConfigMap, "ns1", "cfg"), data(&[("a.conf", "A"), ("b.conf", "B")])),
        (ObjectRef::new(ObjectKind::Secret, "ns1", "creds"), data(&[("password", "hunter2")])),
        (ObjectRef::new(ObjectKind::ConfigMap, "ns1", "gone"), ObjectState::Missing),
    ])
}

fn plan(volumes: serde_json::Value, policy: &HostPathPolicy) -> Result<Vec<VolumePlan>, VolumeError> {
    plan_volumes(&pod(volumes), &view(), &Downward::default(), policy)
}

fn files(plan: &VolumePlan) -> Vec<(String, String, u32)> {
    let VolumeSource::Files { files, .. } = &plan.source else { panic!("not a file volume: {plan:?}") };
    files.iter().map(|(p, f)| (p.clone(), String::from_utf8_lossy(&f.data).into_owned(), f.mode)).collect()
}

#[test]
fn empty_dirs_on_disk_and_in_memory() {
    let plans = plan(
        serde_json::json!([{"name": "scratch", "emptyDir": {}}, {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]),
        &HostPathPolicy::default(),
    )
    .expect("plan");
    assert_eq!(plans[0].source, VolumeSource::EmptyDir { memory: false, size_limit: None });
    assert_eq!(plans[0].plugin, "kubernetes.io~empty-dir");
    assert_eq!(plans[1].source, VolumeSource::EmptyDir { memory: true, size_limit: Some(16 << 20) });
    assert!(!plans[0].read_only());
}

#[test]
fn config_maps_and_secrets_project_all_keys_or_items_with_modes() {
    let plans = plan(
        serde_json::json!([
            {"name": "all", "configMap": {"name": "cfg"}},
            {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o600, "items": [
                {"key": "b.conf", "path": "conf/b"}, {"key": "a.conf", "path": "a", "mode": 0o400}]}},
            {"name": "sec", "secret": {"secretName": "creds"}},
            {"name": "opt", "configMap": {"name": "gone", "optional": true}}
        ]),
        &HostPathPolicy::default(),
    )
    .expect("plan");
    assert_eq!(files(&plans[0]), [("a.conf".into(), "A".into(), 0o644), ("b.conf".into(), "B".into(), 0o644)]);
    assert_eq!(files(&plans[1]), [("a".into(), "A".into(), 0o400), ("conf/b".into(), "B".into(), 0o600)]);
    assert_eq!(files(&plans[2]), [("password".into(), "hunter2".into(), 0o644)]);
    assert!(matches!(plans[2].source, VolumeSource::Files { memory: true, .. }), "secrets stay off disk");
    assert!(files(&plans[3]).is_empty(), "an optional missing configmap is an empty volume");
    assert!(plans.iter().all(VolumePlan::read_only));
}

#[test]
fn downward_and_projected_volumes() {
    let plans = plan(
        serde_json::json!([
            {"name": "info", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
            ]}},
            {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "a"}]}},
                {"secret": {"name": "creds"}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}}
        ]),
        &HostPathPolicy::default(),
    )
    .expect("plan");
    assert_eq!(
        files(&plans[0]),
        [
            ("labels".into(), "app=\"web\"".into(), 0o644),
            ("mem".into(), "64".into(), 0o644),
            ("name".into(), "web".into(), 0o644)
        ]
    );
    assert_eq!(
        files(&plans[1]),
        [
            ("a".into(), "A".into(), 0o440),
            ("ns".into(), "ns1".into(), 0o440),
            ("password".into(), "hunter2".into(), 0o440)
        ]
    );
    assert!(matches!(plans[1].source, VolumeSource::Files { memory: true, .. }));
}

#[test]
fn host_paths_follow_the_policy_and_type() {
    let policy = HostPathPolicy { allowed_prefixes: vec![PathBuf::from("/srv/data"), PathBuf::from("/tmp")] };
    let plans = plan(
        serde_json::json!([{"name": "h", "hostPath": {"path": "/srv/data/x", "type": "DirectoryOrCreate"}}]),
        &policy,
    )
    .expect("allowed");
    assert_eq!(
        plans[0].source,
        VolumeSource::HostPath { path: PathBuf::from("/srv/data/x"), kind: HostPathType::DirectoryOrCreate }
    );
    let err = plan(serde_json::json!([{"name": "h", "hostPath": {"path": "/etc"}}]), &policy).expect_err("denied");
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"h\" : hostPath /etc is not allowed on this node (allowed: /srv/data, /tmp)"
    );
    // A prefix matches whole components only.
    assert!(plan(serde_json::json!([{"name": "h", "hostPath": {"path": "/srv/database"}}]), &policy).is_err());
    assert!(plan(serde_json::json!([{"name": "h", "hostPath": {"path": "/tmp/../etc"}}]), &HostPathPolicy::default())
        .is_err());
    assert!(plan(
        serde_json::json!([{"name": "h", "hostPath": {"path": "/x", "type": "Weird"}}]),
        &HostPathPolicy::default()
    )
    .is_err());
}

#[test]
fn problems_name_the_volume_and_the_cause() {
    let cases = [
        (serde_json::json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}]), "volume type nfs is not supported"),
        (serde_json::json!([{"name": "c", "configMap": {"name": "gone"}}]), "configmap \"gone\" not found"),
        (
            serde_json::json!([{"name": "c", "configMap": {"name": "cfg", "items": [{"key": "zzz", "path": "z"}]}}]),
            "configmap references non-existent config key: zzz",
        ),
        (
            serde_json::json!([{"name": "c", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "../x"}]}}]),
            "invalid path",
        ),
        (
            serde_json::json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]),
            "volume type projected serviceAccountToken is not supported",
        ),
    ];
    for (volumes, want) in cases {
        let err = plan(volumes.clone(), &HostPathPolicy::default()).expect_err("error");
        assert!(err.to_string().starts_with("MountVolume.SetUp failed for volume"), "{err}");
        assert!(err.to_string().contains(want), "{volumes}: {err}");
    }
}

#[test]
fn file_paths_stay_inside_the_volume() {
    for ok in ["a", "a/b", "a..b"] {
        assert!(checked_path(ok).is_ok(), "{ok}");
    }
    for bad in ["", "/abs", "../x", "a/../../x", "..data", "a/", "./a"] {
        assert!(checked_path(bad).is_err(), "{bad}");
    }
}
