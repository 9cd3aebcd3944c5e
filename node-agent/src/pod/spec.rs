//! CRI configurations of a pod's sandbox and containers, built from the Pod (pure). Encodes the
//! runtime rules measured in RUNTIME-NOTES: validated metadata, a log directory with relative log
//! paths, an absolute cgroupfs parent, the same namespace options on sandbox and containers, an empty
//! hostname for host-network pods, and the agent's labels for adoption after a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use gantry_cri_proto::runtime::{
    Capability, ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::dns_config::{pod_dns_config, PodDnsSettings};
use super::env::{container_env, expand_all, EnvInputs};
use super::resources::linux_resources;
use crate::runtime::{CONTAINER_NAME_LABEL, NODE_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL};
use crate::volume::{container_mounts, HostVolume, MountError};

/// Why a pod or container cannot be turned into a runtime config (shown in the pod's status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("pod {0:?} has no name, namespace or uid")]
    Metadata(String),
    #[error("pod uid {0:?} is not usable in paths (expected letters, digits and '-')")]
    Uid(String),
    #[error("container {container}: env {var}: {what}")]
    EnvSource { container: String, var: String, what: String },
    #[error("container {container}: env {var}: unsupported fieldRef {path}")]
    FieldPath { container: String, var: String, path: String },
    #[error("container {0} has no image")]
    NoImage(String),
    /// The kubelet's wording, so `kubectl describe` reads the same as upstream.
    #[error("{kind} {name:?} not found")]
    MissingObject { kind: &'static str, name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey { key: String, kind: &'static str, namespace: String, name: String },
    #[error("{0} has not been read from the API yet")]
    ObjectNotSynced(String),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("unsupported dnsPolicy {0:?} (expected ClusterFirst, ClusterFirstWithHostNet, Default or None)")]
    DnsPolicy(String),
}

/// Who the pod is, validated once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl PodIdentity {
    pub fn of(pod: &Pod) -> Result<Self, SpecError> {
        let m = &pod.metadata;
        let (Some(name), Some(namespace), Some(uid)) = (&m.name, &m.namespace, &m.uid) else {
            return Err(SpecError::Metadata(m.name.clone().unwrap_or_default()));
        };
        if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(SpecError::Uid(uid.clone()));
        }
        Ok(Self { name: name.clone(), namespace: namespace.clone(), uid: uid.clone() })
    }

    /// `ns/name`, for logs.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `<root>/pods/<ns>_<name>_<uid>`: the pod's log directory.
pub fn log_dir(root: &Path, id: &PodIdentity) -> PathBuf {
    root.join("pods").join(format!("{}_{}_{}", id.namespace, id.name, id.uid))
}

/// The pod's cgroupfs parent, relative to each controller's hierarchy root.
pub fn cgroup_parent(uid: &str) -> String {
    format!("/gantry/pod{uid}")
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn namespace_options(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.as_ref();
    let node_or = |flag: Option<bool>, otherwise: NamespaceMode| {
        (if flag.unwrap_or(false) { NamespaceMode::Node } else { otherwise }) as i32
    };
    let shared_pid = spec.and_then(|s| s.share_process_namespace).unwrap_or(false);
    NamespaceOption {
        network: node_or(spec.and_then(|s| s.host_network), NamespaceMode::Pod),
        pid: node_or(
            spec.and_then(|s| s.host_pid),
            if shared_pid { NamespaceMode::Pod } else { NamespaceMode::Container },
        ),
        ipc: node_or(spec.and_then(|s| s.host_ipc), NamespaceMode::Pod),
        ..Default::default()
    }
}

fn labels(id: &PodIdentity, node: &str) -> HashMap<String, String> {
    HashMap::from([
        (POD_UID_LABEL.to_string(), id.uid.clone()),
        (POD_NAME_LABEL.to_string(), id.name.clone()),
        (POD_NAMESPACE_LABEL.to_string(), id.namespace.clone()),
        (NODE_LABEL.to_string(), node.to_string()),
    ])
}

/// The sandbox config of attempt `attempt`; its resolver configuration follows the pod's `dnsPolicy`.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    root: &Path,
    node: &str,
    dns: &PodDnsSettings,
) -> Result<PodSandboxConfig, SpecError> {
    let id = PodIdentity::of(pod)?;
    let spec = pod.spec.as_ref();
    let hostname = if host_network(pod) {
        String::new()
    } else {
        spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| id.name.clone())
    };
    let port_mappings = spec
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let dns_config = Some(pod_dns_config(pod, dns)?);
    let mut all_labels: HashMap<String, String> = pod.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    all_labels.extend(labels(&id, node));
    Ok(PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: id.name.clone(),
            uid: id.uid.clone(),
            namespace: id.namespace.clone(),
            attempt,
        }),
        hostname,
        log_directory: log_dir(root, &id).display().to_string(),
        dns_config,
        port_mappings,
        labels: all_labels,
        annotations: pod.metadata.annotations.clone().unwrap_or_default().into_iter().collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(&id.uid),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        windows: None,
    })
}

/// The container config of `c`, attempt `attempt`.
/// Its env is resolved from `inputs` and its mounts from the pod's `volumes` (where each is on the host).
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    node: &str,
    inputs: EnvInputs<'_>,
    volumes: &BTreeMap<String, HostVolume>,
) -> Result<ContainerConfig, SpecError> {
    let id = PodIdentity::of(pod)?;
    let image = c.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| SpecError::NoImage(c.name.clone()))?;
    let env = container_env(pod, c, inputs)?;
    let mounts = container_mounts(c, volumes, &env)?;
    let command = expand_all(c.command.as_ref(), &env);
    let args = expand_all(c.args.as_ref(), &env);
    let envs = env.into_iter().map(|(key, value)| KeyValue { key, value }).collect();
    let mut all_labels = labels(&id, node);
    all_labels.insert(CONTAINER_NAME_LABEL.to_string(), c.name.clone());
    let sc = c.security_context.as_ref();
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = sc.and_then(|s| s.run_as_user).or_else(|| pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or_else(|| pod_sc.and_then(|s| s.run_as_group));
    let capabilities = sc.and_then(|s| s.capabilities.as_ref()).map(|caps| Capability {
        add_capabilities: caps.add.clone().unwrap_or_default(),
        drop_capabilities: caps.drop.clone().unwrap_or_default(),
        add_ambient_capabilities: Vec::new(),
    });
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata { name: c.name.clone(), attempt }),
        image: Some(ImageSpec { image, ..Default::default() }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        labels: all_labels,
        annotations: HashMap::from([("io.kubernetes.container.restartCount".to_string(), attempt.to_string())]),
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(linux_resources(c)),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
                run_as_user: run_as_user.map(|value| Int64Value { value }),
                run_as_group: run_as_group.map(|value| Int64Value { value }),
                readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
                capabilities,
                ..Default::default()
            }),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
