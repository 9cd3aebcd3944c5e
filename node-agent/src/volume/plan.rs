//! What each of a pod's volumes should be on this node, as a pure function of the pod, the objects it
//! references (as last seen), the downward values and the node's host-path policy: an empty
//! directory (on disk or tmpfs), a host path, or a set of files (ConfigMap, Secret, downward API and
//! projected volumes). Writing them is [`super::manager`]'s job.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIVolumeFile, KeyToPath, Pod, SecretProjection, Volume, VolumeProjection,
};

use crate::objects::{ObjectKind, ObjectsView};
use crate::pod::env::{field_value, object_data, resource_value, Downward};
use crate::pod::resources::parse_quantity;
use crate::pod::spec::SpecError;

/// Mode of projected files when neither the item nor the volume sets one (upstream 0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// Why a volume cannot be set up (shown on the pod's containers as
/// `MountVolume.SetUp failed for volume "<name>" : <reason>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : volume type {kind} is not supported by gantry-node-agent"
    )]
    Unsupported { volume: String, kind: String },
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : hostPath {path} is not allowed on this node \
         (allowed: {allowed})"
    )]
    HostPathNotAllowed { volume: String, path: String, allowed: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : {reason}")]
    Invalid { volume: String, reason: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    Object { volume: String, source: SpecError },
    #[error("MountVolume.SetUp failed for volume {volume:?} : {context}: {reason}")]
    Io { volume: String, context: String, reason: String },
}

/// Which host paths pods may mount: none listed means any (the kubelet's default; admission decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPathPolicy {
    pub allowed_prefixes: Vec<PathBuf>,
}

impl HostPathPolicy {
    /// Whether `path` (absolute, without `..`) lies under an allowed prefix.
    pub fn allows(&self, path: &Path) -> bool {
        self.allowed_prefixes.is_empty() || self.allowed_prefixes.iter().any(|p| path.starts_with(p))
    }
}

/// What `hostPath.type` requires of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// No check (`""`).
    Any,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

/// One file of a file-set volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What one volume should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A directory private to the pod; `memory` puts it on tmpfs (bounded by `size_limit` bytes).
    EmptyDir {
        memory: bool,
        size_limit: Option<u64>,
    },
    HostPath {
        path: PathBuf,
        kind: HostPathType,
    },
    /// Files by relative path, written atomically; `memory` keeps them off disk (secrets).
    Files {
        files: BTreeMap<String, FileContent>,
        memory: bool,
    },
}

/// One of the pod's volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    /// The kubelet's plugin directory name (`kubernetes.io~empty-dir`).
    pub plugin: &'static str,
    pub source: VolumeSource,
}

impl VolumePlan {
    /// Whether containers must see it read-only whatever the mount says (API data volumes).
    pub fn read_only(&self) -> bool {
        matches!(self.source, VolumeSource::Files { .. })
    }
}

/// Plans every volume of `pod`; the first volume that cannot be set up is the error.
pub fn plan_volumes(
    pod: &Pod,
    objects: &ObjectsView,
    downward: &Downward,
    policy: &HostPathPolicy,
) -> Result<Vec<VolumePlan>, VolumeError> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    volumes.iter().map(|v| plan_volume(pod, v, objects, downward, policy)).collect()
}

fn plan_volume(
    pod: &Pod,
    v: &Volume,
    objects: &ObjectsView,
    downward: &Downward,
    policy: &HostPathPolicy,
) -> Result<VolumePlan, VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = v.name.clone();
    let invalid = |reason: String| VolumeError::Invalid { volume: name.clone(), reason };
    let object_err = |source| VolumeError::Object { volume: name.clone(), source };
    let plan = |plugin, source| Ok(VolumePlan { name: name.clone(), plugin, source });
    if let Some(e) = &v.empty_dir {
        let memory = e.medium.as_deref() == Some("Memory");
        let size_limit = match &e.size_limit {
            Some(q) => Some(
                parse_quantity(&q.0)
                    .filter(|s| *s >= 0.0)
                    .ok_or_else(|| invalid(format!("invalid sizeLimit {:?}", q.0)))? as u64,
            ),
            None => None,
        };
        return plan("kubernetes.io~empty-dir", VolumeSource::EmptyDir { memory, size_limit });
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(invalid(format!("hostPath {:?} must be an absolute path without '..'", h.path)));
        }
        if !policy.allows(&path) {
            let allowed = policy.allowed_prefixes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
            return Err(VolumeError::HostPathNotAllowed {
                volume: name,
                path: h.path.clone(),
                allowed: allowed.join(", "),
            });
        }
        let kind = match h.type_.as_deref().unwrap_or("") {
            "" => HostPathType::Any,
            "DirectoryOrCreate" => HostPathType::DirectoryOrCreate,
            "Directory" => HostPathType::Directory,
            "FileOrCreate" => HostPathType::FileOrCreate,
            "File" => HostPathType::File,
            "Socket" => HostPathType::Socket,
            "CharDevice" => HostPathType::CharDevice,
            "BlockDevice" => HostPathType::BlockDevice,
            other => return Err(invalid(format!("unknown hostPath type {other:?}"))),
        };
        return plan("kubernetes.io~host-path", VolumeSource::HostPath { path, kind });
    }
    if let Some(c) = &v.config_map {
        let mut files = BTreeMap::new();
        let mode = mode_or_default(c.default_mode);
        let optional = c.optional.unwrap_or(false);
        if let Some(data) =
            object_data(objects, ObjectKind::ConfigMap, namespace, &c.name, optional).map_err(object_err)?
        {
            project(&mut files, &data.data, c.items.as_deref(), mode, ObjectKind::ConfigMap, optional)
                .map_err(invalid)?;
        }
        return plan("kubernetes.io~configmap", VolumeSource::Files { files, memory: false });
    }
    if let Some(s) = &v.secret {
        let secret_name = s.secret_name.clone().unwrap_or_default();
        let mut files = BTreeMap::new();
        let mode = mode_or_default(s.default_mode);
        let optional = s.optional.unwrap_or(false);
        if let Some(data) =
            object_data(objects, ObjectKind::Secret, namespace, &secret_name, optional).map_err(object_err)?
        {
            project(&mut files, &data.data, s.items.as_deref(), mode, ObjectKind::Secret, optional).map_err(invalid)?;
        }
        return plan("kubernetes.io~secret", VolumeSource::Files { files, memory: true });
    }
    if let Some(d) = &v.downward_api {
        let mut files = BTreeMap::new();
        let mode = mode_or_default(d.default_mode);
        for item in d.items.iter().flatten() {
            downward_file(pod, &mut files, item, mode, downward).map_err(invalid)?;
        }
        return plan("kubernetes.io~downward-api", VolumeSource::Files { files, memory: false });
    }
    if let Some(p) = &v.projected {
        let mut files = BTreeMap::new();
        let mode = mode_or_default(p.default_mode);
        let mut memory = false;
        for source in p.sources.iter().flatten() {
            memory |= source.secret.is_some();
            projected_source(pod, &mut files, source, mode, objects, downward, namespace, &name)?;
        }
        return plan("kubernetes.io~projected", VolumeSource::Files { files, memory });
    }
    Err(VolumeError::Unsupported { volume: name, kind: volume_kind(v) })
}

#[allow(clippy::too_many_arguments)]
fn projected_source(
    pod: &Pod,
    files: &mut BTreeMap<String, FileContent>,
    source: &VolumeProjection,
    mode: u32,
    objects: &ObjectsView,
    downward: &Downward,
    namespace: &str,
    volume: &str,
) -> Result<(), VolumeError> {
    let invalid = |reason: String| VolumeError::Invalid { volume: volume.to_string(), reason };
    let object_err = |source| VolumeError::Object { volume: volume.to_string(), source };
    if let Some(ConfigMapProjection { name, items, optional }) = &source.config_map {
        let optional = optional.unwrap_or(false);
        if let Some(data) =
            object_data(objects, ObjectKind::ConfigMap, namespace, name, optional).map_err(object_err)?
        {
            project(files, &data.data, items.as_deref(), mode, ObjectKind::ConfigMap, optional).map_err(invalid)?;
        }
    } else if let Some(SecretProjection { name, items, optional }) = &source.secret {
        let optional = optional.unwrap_or(false);
        if let Some(data) = object_data(objects, ObjectKind::Secret, namespace, name, optional).map_err(object_err)? {
            project(files, &data.data, items.as_deref(), mode, ObjectKind::Secret, optional).map_err(invalid)?;
        }
    } else if let Some(d) = &source.downward_api {
        for item in d.items.iter().flatten() {
            downward_file(pod, files, item, mode, downward).map_err(invalid)?;
        }
    } else {
        let kind = serde_json::to_value(source)
            .ok()
            .and_then(|v| v.as_object().and_then(|m| m.keys().next().cloned()))
            .unwrap_or_else(|| "(empty projection)".into());
        return Err(VolumeError::Unsupported { volume: volume.to_string(), kind: format!("projected {kind}") });
    }
    Ok(())
}

/// The volume source field that is set (`nfs`, `persistentVolumeClaim`...), for messages.
fn volume_kind(v: &Volume) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_object().and_then(|m| m.keys().find(|k| *k != "name").cloned()))
        .unwrap_or_else(|| "(none)".into())
}

fn mode_or_default(mode: Option<i32>) -> u32 {
    mode.map_or(DEFAULT_MODE, |m| (m as u32) & 0o777)
}

/// Adds the files of a ConfigMap or Secret: every key, or only `items` at their paths.
fn project(
    files: &mut BTreeMap<String, FileContent>,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    kind: ObjectKind,
    optional: bool,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, value) in data {
                files.insert(key.clone(), FileContent { data: value.clone(), mode });
            }
        }
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{} references non-existent config key: {}", kind.noun(), item.key));
                };
                let path = checked_path(&item.path)?;
                let mode = item.mode.map_or(mode, |m| (m as u32) & 0o777);
                files.insert(path, FileContent { data: value.clone(), mode });
            }
        }
    }
    Ok(())
}

fn downward_file(
    pod: &Pod,
    files: &mut BTreeMap<String, FileContent>,
    item: &DownwardAPIVolumeFile,
    mode: u32,
    downward: &Downward,
) -> Result<(), String> {
    let path = checked_path(&item.path)?;
    let value = if let Some(field) = &item.field_ref {
        field_value(pod, field, downward).ok_or_else(|| format!("unsupported fieldRef {}", field.field_path))?
    } else if let Some(resource) = &item.resource_field_ref {
        let container = resource.container_name.as_deref().unwrap_or_default();
        let c = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .find(|c| c.name == container)
            .ok_or_else(|| format!("resourceFieldRef of {path} names unknown container {container:?}"))?;
        resource_value(pod, c, resource, downward)?
    } else {
        return Err(format!("downward API item {path} has neither fieldRef nor resourceFieldRef"));
    };
    let mode = item.mode.map_or(mode, |m| (m as u32) & 0o777);
    files.insert(path, FileContent { data: value.into_bytes(), mode });
    Ok(())
}

/// A relative file path inside a volume: no absolute paths, no `..`, no empty components, and not
/// starting with `..` (reserved for the atomic writer's own entries).
pub fn checked_path(path: &str) -> Result<String, String> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.ends_with('/');
    if ok {
        Ok(path.to_string())
    } else {
        Err(format!("invalid path {path:?} in volume (must be relative, without '..')"))
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
