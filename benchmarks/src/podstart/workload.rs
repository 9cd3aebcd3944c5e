//! The pod every phase starts, in its two forms (pure): a Pod object for the API and the sandbox and
//! container configs for raw CRI calls. Both run the same busybox container; the raw configs follow
//! what the node agent sends (`node-agent/src/pod/spec.rs`) for such a pod, with the rules of
//! RUNTIME-NOTES: a log directory with a relative log path, an absolute cgroupfs parent, the pod's
//! namespace options repeated in the container, and (in `raw`) the sandbox config on CreateContainer.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use gantry_cri_proto::runtime::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata,
};
use serde_json::json;

/// The container image (built and imported by `gantry_local_runtime::images::import_test_images`).
pub const IMAGE: &str = gantry_local_runtime::BUSYBOX_IMAGE;
/// The container's name.
pub const CONTAINER: &str = "app";
/// `sleep 3600` under a shell that exits on SIGTERM: PID 1 of a container ignores SIGTERM without a
/// handler, so a plain `sleep` would hold every stop for the whole grace period and the deletion
/// figures would measure that timeout instead of the orchestration.
pub const COMMAND: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
/// Grace period of the API pods (they exit at once on SIGTERM, so it is never waited out).
pub const GRACE_SECONDS: u32 = 5;
/// Label on every raw sandbox and container, valued with the run id (how cleanup finds them).
pub const RUN_LABEL: &str = "gantry.dev/podstart-bench";
/// Namespace in the raw sandboxes' metadata.
pub const RAW_NAMESPACE: &str = "podstart-bench-raw";
/// cgroupfs directory (in every hierarchy) holding the raw pods' cgroups.
pub const RAW_CGROUP_DIR: &str = "gantry-podstart-bench";
/// Label on the API pods.
pub const APP_LABEL: &str = "podstart-bench";
/// kubelet's cpu shares for a container without requests.
const MIN_CPU_SHARES: i64 = 2;

/// One raw pod: its name and uid, unique per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPod {
    pub name: String,
    pub uid: String,
}

impl RawPod {
    /// Pod `index` of a series (`seq`, `par`, `warm`) of run `run_id`.
    pub fn new(run_id: &str, series: &str, index: usize) -> Self {
        Self { name: format!("raw-{series}-{index}"), uid: format!("{run_id}-{series}-{index}") }
    }

    /// `/<RAW_CGROUP_DIR>/pod<uid>`.
    pub fn cgroup_parent(&self) -> String {
        format!("/{RAW_CGROUP_DIR}/pod{}", self.uid)
    }

    fn labels(&self, run_id: &str) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_string(), run_id.to_string()),
            ("io.kubernetes.pod.uid".to_string(), self.uid.clone()),
            ("io.kubernetes.pod.name".to_string(), self.name.clone()),
            ("io.kubernetes.pod.namespace".to_string(), RAW_NAMESPACE.to_string()),
        ])
    }

    /// The sandbox config; logs go to `<log_root>/<ns>_<name>_<uid>`.
    pub fn sandbox_config(&self, run_id: &str, log_root: &Path) -> PodSandboxConfig {
        let log_directory = log_root.join(format!("{RAW_NAMESPACE}_{}_{}", self.name, self.uid));
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: RAW_NAMESPACE.to_string(),
                attempt: 0,
            }),
            hostname: self.name.clone(),
            log_directory: log_directory.display().to_string(),
            labels: self.labels(run_id),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespace_options()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The container config (what the agent sends for the API pod's container, env aside).
    pub fn container_config(&self, run_id: &str) -> ContainerConfig {
        let mut labels = self.labels(run_id);
        labels.insert("io.kubernetes.container.name".to_string(), CONTAINER.to_string());
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: CONTAINER.to_string(), attempt: 0 }),
            image: Some(ImageSpec { image: IMAGE.to_string(), ..Default::default() }),
            command: COMMAND.iter().map(|s| s.to_string()).collect(),
            labels,
            annotations: HashMap::from([("io.kubernetes.container.restartCount".to_string(), "0".to_string())]),
            log_path: format!("{CONTAINER}/0.log"),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources { cpu_shares: MIN_CPU_SHARES, ..Default::default() }),
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespace_options()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }
}

/// The agent's defaults for a pod without host namespaces: pod network and IPC, a PID namespace per
/// container.
fn namespace_options() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The API pod `name` in `namespace`, bound to `node` when given (else left to the scheduler).
pub fn api_pod(namespace: &str, name: &str, node: Option<&str>) -> Bytes {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "labels": { "app": APP_LABEL } },
        "spec": {
            "terminationGracePeriodSeconds": GRACE_SECONDS,
            "containers": [{
                "name": CONTAINER,
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": COMMAND,
            }]
        }
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = node.into();
    }
    Bytes::from(pod.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_configs_follow_the_runtime_rules() {
        let pod = RawPod::new("r1", "seq", 3);
        assert_eq!((pod.name.as_str(), pod.uid.as_str()), ("raw-seq-3", "r1-seq-3"));
        let sandbox = pod.sandbox_config("r1", Path::new("/w/logs"));
        assert_eq!(sandbox.log_directory, "/w/logs/podstart-bench-raw_raw-seq-3_r1-seq-3");
        assert_eq!(sandbox.labels[RUN_LABEL], "r1");
        let linux = sandbox.linux.as_ref().expect("linux");
        assert_eq!(linux.cgroup_parent, "/gantry-podstart-bench/podr1-seq-3");
        assert!(!linux.cgroup_parent.ends_with(".slice"));
        let sandbox_ns = linux.security_context.as_ref().and_then(|s| s.namespace_options.clone());
        let container = pod.container_config("r1");
        assert_eq!(container.log_path, "app/0.log", "relative to the sandbox's log directory");
        assert_eq!(container.image.as_ref().map(|i| i.image.as_str()), Some("localhost/busybox:1"));
        let container_ns =
            container.linux.as_ref().and_then(|l| l.security_context.as_ref()?.namespace_options.clone());
        assert_eq!(sandbox_ns, container_ns, "namespace options are not inherited from the sandbox");
        assert_eq!(container_ns.map(|n| n.pid), Some(NamespaceMode::Container as i32));
        assert_eq!(container.labels[RUN_LABEL], "r1");
    }

    #[test]
    fn api_pods_run_the_same_container() -> Result<(), serde_json::Error> {
        let pod: serde_json::Value = serde_json::from_slice(&api_pod("ns", "p-1", None))?;
        assert_eq!(pod["metadata"]["name"], "p-1");
        assert!(pod["spec"].get("nodeName").is_none(), "left to the scheduler");
        let c = &pod["spec"]["containers"][0];
        assert_eq!((c["name"].as_str(), c["image"].as_str()), (Some(CONTAINER), Some(IMAGE)));
        assert_eq!(c["command"], json!(COMMAND));
        let bound: serde_json::Value = serde_json::from_slice(&api_pod("ns", "p-1", Some("n1")))?;
        assert_eq!(bound["spec"]["nodeName"], "n1");
        Ok(())
    }
}
