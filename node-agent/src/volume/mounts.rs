//! A container's CRI mounts from its `volumeMounts` and where each pod volume lives on the host. Pure.
//! API data volumes (ConfigMap, Secret, downward API, projected) are always read-only, as upstream.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use gantry_cri_proto::runtime::{Mount, MountPropagation};
use k8s_openapi::api::core::v1::Container;

use crate::pod::env::expand;

/// Where a volume is on the host, and whether containers must see it read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    pub path: PathBuf,
    pub read_only: bool,
}

/// Why a container's mounts cannot be built (shown as `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("container {container}: volumeMount {volume:?} names no volume of the pod")]
    UnknownVolume { container: String, volume: String },
    #[error("container {container}: subPath {sub_path:?} of volume {volume:?} must be relative, without '..'")]
    SubPath { container: String, volume: String, sub_path: String },
    #[error("container {container}: mountPropagation {value:?} is not supported")]
    Propagation { container: String, value: String },
}

/// The CRI mounts of `c`. `env` expands `subPathExpr`.
pub fn container_mounts(
    c: &Container,
    volumes: &BTreeMap<String, HostVolume>,
    env: &[(String, String)],
) -> Result<Vec<Mount>, MountError> {
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let volume = volumes
            .get(&m.name)
            .ok_or_else(|| MountError::UnknownVolume { container: c.name.clone(), volume: m.name.clone() })?;
        let sub_path = match (&m.sub_path, &m.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(expr)) if !expr.is_empty() => Some(expand(expr, env)),
            _ => None,
        };
        let host_path = match &sub_path {
            None => volume.path.clone(),
            Some(p) => {
                let relative = Path::new(p);
                let safe = relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
                if !safe {
                    return Err(MountError::SubPath {
                        container: c.name.clone(),
                        volume: m.name.clone(),
                        sub_path: p.clone(),
                    });
                }
                volume.path.join(relative)
            }
        };
        let propagation = match m.mount_propagation.as_deref() {
            None | Some("None") => MountPropagation::PropagationPrivate,
            Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => MountPropagation::PropagationBidirectional,
            Some(other) => return Err(MountError::Propagation { container: c.name.clone(), value: other.to_string() }),
        };
        mounts.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: host_path.display().to_string(),
            readonly: volume.read_only || m.read_only.unwrap_or(false),
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(mounts: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "c", "image": "i", "volumeMounts": mounts}))
            .expect("container")
    }

    fn volumes() -> BTreeMap<String, HostVolume> {
        BTreeMap::from([
            (
                "data".to_string(),
                HostVolume { path: PathBuf::from("/r/pods/u/volumes/kubernetes.io~empty-dir/data"), read_only: false },
            ),
            (
                "cfg".to_string(),
                HostVolume { path: PathBuf::from("/r/pods/u/volumes/kubernetes.io~configmap/cfg"), read_only: true },
            ),
        ])
    }

    #[test]
    fn mounts_carry_paths_read_only_flags_sub_paths_and_propagation() {
        let c = container(serde_json::json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/logs", "subPathExpr": "logs/$(POD)", "readOnly": true},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "a.conf"},
            {"name": "data", "mountPath": "/shared", "mountPropagation": "HostToContainer"}
        ]));
        let env = vec![("POD".to_string(), "web-1".to_string())];
        let m = container_mounts(&c, &volumes(), &env).expect("mounts");
        let got: Vec<(&str, &str, bool, i32)> =
            m.iter().map(|m| (m.container_path.as_str(), m.host_path.as_str(), m.readonly, m.propagation)).collect();
        assert_eq!(
            got,
            [
                ("/data", "/r/pods/u/volumes/kubernetes.io~empty-dir/data", false, 0),
                ("/logs", "/r/pods/u/volumes/kubernetes.io~empty-dir/data/logs/web-1", true, 0),
                ("/etc/app.conf", "/r/pods/u/volumes/kubernetes.io~configmap/cfg/a.conf", true, 0),
                ("/shared", "/r/pods/u/volumes/kubernetes.io~empty-dir/data", false, 1),
            ]
        );
    }

    #[test]
    fn escaping_sub_paths_and_unknown_volumes_are_errors() {
        let bad = container(serde_json::json!([{"name": "data", "mountPath": "/x", "subPath": "../../etc"}]));
        assert!(matches!(container_mounts(&bad, &volumes(), &[]), Err(MountError::SubPath { .. })));
        let abs = container(serde_json::json!([{"name": "data", "mountPath": "/x", "subPath": "/etc"}]));
        assert!(matches!(container_mounts(&abs, &volumes(), &[]), Err(MountError::SubPath { .. })));
        let unknown = container(serde_json::json!([{"name": "nope", "mountPath": "/x"}]));
        assert!(matches!(container_mounts(&unknown, &volumes(), &[]), Err(MountError::UnknownVolume { .. })));
    }
}
