//! Removing everything a pod left on the machine: its containers (stopped with the grace period:
//! SIGTERM, then SIGKILL), its sandboxes, its cgroup directories (containerd never removes pod-level
//! ones), its log directory and its own directory with the volumes (unmounted first). Used by pod workers and by the start-up sweep of unknown pods.

use std::path::Path;
use std::time::Duration;

use gantry_cri_proto::runtime::ContainerState;
use tracing::{debug, warn};

use super::spec::cgroup_parent;
use crate::runtime::{pod_selector, Runtime, RuntimeError};

/// Where cgroupfs hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Stops and removes every container and sandbox this agent created for pod `uid`, then its cgroups,
/// log directory and volumes. Idempotent.
pub async fn teardown(
    runtime: &Runtime,
    node: &str,
    root: &Path,
    uid: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let containers = runtime.containers(pod_selector(node, uid)).await?;
    let running = containers.iter().filter(|c| c.state == ContainerState::ContainerRunning as i32);
    let stops = running.map(|c| runtime.stop_container(&c.id, grace));
    for result in futures::future::join_all(stops).await {
        // A container that cannot be stopped is force-removed with its sandbox below.
        if let Err(e) = result {
            warn!(pod_uid = uid, error = %e, "stopping container");
        }
    }
    for sandbox in runtime.sandboxes(pod_selector(node, uid)).await? {
        runtime.stop_sandbox(&sandbox.id).await?;
        runtime.remove_sandbox(&sandbox.id).await?;
    }
    for c in &containers {
        runtime.remove_container(&c.id).await?;
    }
    remove_cgroups(Path::new(CGROUP_ROOT), &cgroup_parent(uid));
    remove_log_dirs(root, uid);
    crate::volume::teardown_pod_dir(root, uid);
    debug!(pod_uid = uid, "pod torn down");
    Ok(())
}

/// Removes `<hierarchy>/<parent>` in every cgroup hierarchy under `cgroup_root` (v1 controllers or
/// the v2 root), children first. Missing directories are fine; busy ones are logged.
pub fn remove_cgroups(cgroup_root: &Path, parent: &str) {
    let relative = parent.trim_start_matches('/');
    let mut hierarchies = vec![cgroup_root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(cgroup_root) {
        hierarchies.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for h in hierarchies {
        let dir = h.join(relative);
        if dir.is_dir() {
            if let Err(e) = remove_tree(&dir) {
                warn!(cgroup = %dir.display(), error = %e, "removing pod cgroup");
            }
        }
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Removes `<root>/pods/*_<uid>` (the pod's log directory, whatever name it had).
pub fn remove_log_dirs(root: &Path, uid: &str) {
    let suffix = format!("_{uid}");
    let Ok(entries) = std::fs::read_dir(root.join("pods")) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(&suffix) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                warn!(dir = %entry.path().display(), error = %e, "removing pod log directory");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_dirs_of_the_pod_are_removed_and_others_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let pods = root.path().join("pods");
        for d in ["ns_a_u1/c", "ns_b_u2/c"] {
            std::fs::create_dir_all(pods.join(d)).expect("mkdir");
        }
        remove_log_dirs(root.path(), "u1");
        assert!(!pods.join("ns_a_u1").exists());
        assert!(pods.join("ns_b_u2").exists());
    }

    #[test]
    fn cgroup_trees_are_removed_in_every_hierarchy() {
        let root = tempfile::tempdir().expect("tempdir");
        for h in ["cpu", "memory"] {
            std::fs::create_dir_all(root.path().join(h).join("gantry/podu1/ctr")).expect("mkdir");
        }
        std::fs::create_dir_all(root.path().join("cpu/gantry/podu2")).expect("mkdir");
        remove_cgroups(root.path(), "/gantry/podu1");
        assert!(!root.path().join("cpu/gantry/podu1").exists());
        assert!(!root.path().join("memory/gantry/podu1").exists());
        assert!(root.path().join("cpu/gantry/podu2").exists());
    }
}
