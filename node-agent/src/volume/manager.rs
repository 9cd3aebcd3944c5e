//! Carries out volume plans for one pod under `<root>/pods/<uid>/volumes/<plugin>/<name>` (the
//! kubelet's layout): empty directories (tmpfs when memory-backed), checked host paths, and file sets
//! written atomically (on tmpfs for secrets) and rewritten when their source changes. Tears it all
//! down (unmount, then remove) when the pod goes.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::atomic_writer::write_atomically;
use super::host::{ensure_host_path, mount_tmpfs, unmount_under};
use super::mounts::HostVolume;
use super::plan::{FileContent, VolumeError, VolumePlan, VolumeSource};

/// `<root>/pods/<uid>`: the pod's own directory (volumes and other per-pod state).
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// The volumes of one pod, and what was last written to each file volume.
pub struct PodVolumes {
    base: PathBuf,
    written: HashMap<String, u64>,
}

impl PodVolumes {
    pub fn new(root: &Path, uid: &str) -> Self {
        Self { base: pod_dir(root, uid).join("volumes"), written: HashMap::new() }
    }

    /// Makes every planned volume exist as planned; returns where each one is on the host.
    pub fn setup(&mut self, plans: &[VolumePlan]) -> Result<BTreeMap<String, HostVolume>, VolumeError> {
        let mut out = BTreeMap::new();
        for plan in plans {
            let path = self.setup_one(plan)?;
            out.insert(plan.name.clone(), HostVolume { path, read_only: plan.read_only() });
        }
        Ok(out)
    }

    fn setup_one(&mut self, plan: &VolumePlan) -> Result<PathBuf, VolumeError> {
        let dir = self.base.join(plan.plugin).join(&plan.name);
        let io = |context: &str| {
            let context = format!("{context} {}", dir.display());
            move |e: std::io::Error| VolumeError::Io { volume: plan.name.clone(), context, reason: e.to_string() }
        };
        match &plan.source {
            VolumeSource::EmptyDir { memory, size_limit } => {
                std::fs::create_dir_all(&dir).map_err(io("creating"))?;
                if *memory {
                    mount_tmpfs(&dir, *size_limit).map_err(io("mounting tmpfs on"))?;
                }
                // World-writable like upstream, so containers running as any user can use it.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io("chmod"))?;
                Ok(dir)
            }
            VolumeSource::HostPath { path, kind } => {
                ensure_host_path(path, *kind)
                    .map_err(|reason| VolumeError::Invalid { volume: plan.name.clone(), reason })?;
                Ok(path.clone())
            }
            VolumeSource::Files { files, memory } => {
                if *memory {
                    mount_tmpfs(&dir, None).map_err(io("mounting tmpfs on"))?;
                }
                let digest = digest(files);
                if self.written.get(&plan.name) != Some(&digest) {
                    if write_atomically(&dir, files).map_err(io("writing files into"))? {
                        info!(volume = %plan.name, files = files.len(), "volume contents written");
                    }
                    self.written.insert(plan.name.clone(), digest);
                }
                Ok(dir)
            }
        }
    }
}

fn digest(files: &BTreeMap<String, FileContent>) -> u64 {
    let mut h = DefaultHasher::new();
    for (path, f) in files {
        path.hash(&mut h);
        f.data.hash(&mut h);
        f.mode.hash(&mut h);
    }
    h.finish()
}

/// Unmounts everything under the pod's directory and removes it. Idempotent.
pub fn teardown_pod_dir(root: &Path, uid: &str) {
    let dir = pod_dir(root, uid);
    if !dir.exists() {
        return;
    }
    for (mount, e) in unmount_under(&dir) {
        warn!(pod_uid = uid, mount = %mount.display(), error = %e, "unmounting a pod volume");
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        warn!(pod_uid = uid, dir = %dir.display(), error = %e, "removing the pod directory");
    }
}

/// Uids of the per-pod directories under `<root>/pods` (log directories, `<ns>_<name>_<uid>`, excluded).
pub fn pod_dir_uids(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("pods")) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains('_'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::plan::HostPathType;

    fn files(content: &str) -> VolumeSource {
        VolumeSource::Files {
            files: BTreeMap::from([("k".to_string(), FileContent { data: content.as_bytes().to_vec(), mode: 0o644 })]),
            memory: false,
        }
    }

    #[test]
    fn volumes_are_created_updated_and_torn_down() {
        let root = tempfile::tempdir().expect("tempdir");
        let host = root.path().join("host/data");
        let mut volumes = PodVolumes::new(root.path(), "u1");
        let mut plans = vec![
            VolumePlan {
                name: "scratch".into(),
                plugin: "kubernetes.io~empty-dir",
                source: VolumeSource::EmptyDir { memory: false, size_limit: None },
            },
            VolumePlan { name: "cfg".into(), plugin: "kubernetes.io~configmap", source: files("v1") },
            VolumePlan {
                name: "h".into(),
                plugin: "kubernetes.io~host-path",
                source: VolumeSource::HostPath { path: host.clone(), kind: HostPathType::DirectoryOrCreate },
            },
        ];
        let out = volumes.setup(&plans).expect("setup");
        let scratch = &out["scratch"];
        assert_eq!(scratch.path, root.path().join("pods/u1/volumes/kubernetes.io~empty-dir/scratch"));
        assert!(scratch.path.is_dir() && !scratch.read_only);
        assert!(out["cfg"].read_only);
        assert_eq!(std::fs::read_to_string(out["cfg"].path.join("k")).expect("k"), "v1");
        assert_eq!(out["h"].path, host);
        assert!(host.is_dir());

        plans[1].source = files("v2");
        let out = volumes.setup(&plans).expect("update");
        assert_eq!(std::fs::read_to_string(out["cfg"].path.join("k")).expect("k"), "v2");

        assert_eq!(pod_dir_uids(root.path()), ["u1"]);
        teardown_pod_dir(root.path(), "u1");
        assert!(!root.path().join("pods/u1").exists());
        assert!(host.is_dir(), "host paths are never removed");
    }
}
