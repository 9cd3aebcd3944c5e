//! Thin CRI client: each method is one runtime call with a deadline and an error naming the object.
//! Owns the labels the agent puts on what it creates (how a restarted agent finds its sandboxes and
//! containers again). Holds no decisions: callers decide what to call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gantry_cri_proto::runtime::{
    ContainerConfig, ContainerFilter, ContainerStatus, CreateContainerRequest, ExecRequest, ImageSpec,
    ImageStatusRequest, ListContainersRequest, ListPodSandboxRequest, PodSandbox, PodSandboxConfig, PodSandboxFilter,
    PodSandboxStatus, PodSandboxStatusRequest, PullImageRequest, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StatusRequest, StopContainerRequest, StopPodSandboxRequest,
    VersionRequest, VersionResponse,
};
use gantry_cri_proto::{connect, CriClients};

use crate::metrics::AgentMetrics;

/// Label with the pod uid on sandboxes and containers (the upstream kubelet's name).
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Which agent created the object: agents sharing a runtime never touch each other's pods.
pub const NODE_LABEL: &str = "gantry.dev/node-name";

/// A failed runtime call.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("connecting to the runtime: {0}")]
    Connect(#[from] gantry_cri_proto::CriError),
    #[error("{call} for {object}: {status}")]
    Call { call: &'static str, object: String, status: tonic::Status },
    #[error("{call} for {object}: timed out after {after:?}")]
    Timeout { call: &'static str, object: String, after: Duration },
}

impl RuntimeError {
    /// The runtime's own message (what pod statuses show), without the call context.
    pub fn runtime_message(&self) -> String {
        match self {
            RuntimeError::Call { status, .. } => status.message().to_string(),
            other => other.to_string(),
        }
    }
}

/// The live state of one runtime condition set (`Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeHealth {
    /// `None` when ready; otherwise why not (`RuntimeReady`/`NetworkReady` reason and message).
    pub not_ready: Option<String>,
}

/// A CRI connection with per-call deadlines.
#[derive(Clone)]
pub struct Runtime {
    clients: CriClients,
    timeout: Duration,
    /// Where call latencies are recorded, by CRI method.
    metrics: Option<Arc<AgentMetrics>>,
}

macro_rules! call {
    ($self:ident, $svc:ident . $method:ident ( $req:expr ), $name:literal, $object:expr) => {{
        let mut client = $self.clients.$svc.clone();
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout($self.timeout, client.$method($req)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(RuntimeError::Call { call: $name, object: $object, status }),
            Err(_) => Err(RuntimeError::Timeout { call: $name, object: $object, after: $self.timeout }),
        };
        if let Some(metrics) = &$self.metrics {
            metrics.runtime_call($name, started.elapsed().as_secs_f64(), result.is_ok());
        }
        result
    }};
}

impl Runtime {
    /// Connects to `endpoint` (a unix socket).
    pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Self, RuntimeError> {
        Ok(Self { clients: connect(endpoint, timeout).await?, timeout, metrics: None })
    }

    /// Same connection, with a longer deadline (image pulls and graceful stops take a while).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self { clients: self.clients.clone(), timeout, metrics: self.metrics.clone() }
    }

    /// Same connection, recording every call's latency in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<AgentMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn version(&self) -> Result<VersionResponse, RuntimeError> {
        call!(self, runtime.version(VersionRequest { version: "v1".into() }), "Version", "runtime".into())
    }

    /// `Status`: ready only when both `RuntimeReady` and `NetworkReady` are true.
    pub async fn health(&self) -> Result<RuntimeHealth, RuntimeError> {
        let resp = call!(self, runtime.status(StatusRequest { verbose: false }), "Status", "runtime".into())?;
        let conditions = resp.status.map(|s| s.conditions).unwrap_or_default();
        let mut problems = Vec::new();
        for wanted in ["RuntimeReady", "NetworkReady"] {
            match conditions.iter().find(|c| c.r#type == wanted) {
                Some(c) if c.status => {}
                Some(c) => problems.push(format!("{wanted}=false reason:{} message:{}", c.reason, c.message)),
                None => problems.push(format!("{wanted} missing")),
            }
        }
        Ok(RuntimeHealth { not_ready: (!problems.is_empty()).then(|| problems.join("; ")) })
    }

    /// Sandboxes carrying all of `labels`.
    pub async fn sandboxes(&self, labels: HashMap<String, String>) -> Result<Vec<PodSandbox>, RuntimeError> {
        let filter = PodSandboxFilter { label_selector: labels, ..Default::default() };
        let req = ListPodSandboxRequest { filter: Some(filter) };
        Ok(call!(self, runtime.list_pod_sandbox(req), "ListPodSandbox", "sandboxes".into())?.items)
    }

    /// Containers carrying all of `labels`.
    pub async fn containers(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<gantry_cri_proto::runtime::Container>, RuntimeError> {
        let filter = ContainerFilter { label_selector: labels, ..Default::default() };
        let req = ListContainersRequest { filter: Some(filter) };
        Ok(call!(self, runtime.list_containers(req), "ListContainers", "containers".into())?.containers)
    }

    pub async fn sandbox_status(&self, id: &str) -> Result<Option<PodSandboxStatus>, RuntimeError> {
        let req = PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false };
        Ok(call!(self, runtime.pod_sandbox_status(req), "PodSandboxStatus", format!("sandbox {id}"))?.status)
    }

    pub async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        let req = gantry_cri_proto::runtime::ContainerStatusRequest { container_id: id.into(), verbose: false };
        Ok(call!(self, runtime.container_status(req), "ContainerStatus", format!("container {id}"))?.status)
    }

    pub async fn run_sandbox(&self, config: PodSandboxConfig, object: &str) -> Result<String, RuntimeError> {
        let req = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        Ok(call!(self, runtime.run_pod_sandbox(req), "RunPodSandbox", object.into())?.pod_sandbox_id)
    }

    pub async fn stop_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let req = StopPodSandboxRequest { pod_sandbox_id: id.into() };
        call!(self, runtime.stop_pod_sandbox(req), "StopPodSandbox", format!("sandbox {id}")).map(|_| ())
    }

    pub async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let req = RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        call!(self, runtime.remove_pod_sandbox(req), "RemovePodSandbox", format!("sandbox {id}")).map(|_| ())
    }

    /// Whether the image is present (a missing image is `Ok(None)`, not an error).
    pub async fn image_ref(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        let req = ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        Ok(call!(self, image.image_status(req), "ImageStatus", format!("image {image}"))?.image.map(|i| i.id))
    }

    pub async fn pull_image(&self, image: &str, sandbox: &PodSandboxConfig) -> Result<String, RuntimeError> {
        let req =
            PullImageRequest { image: Some(image_spec(image)), auth: None, sandbox_config: Some(sandbox.clone()) };
        Ok(call!(self, image.pull_image(req), "PullImage", format!("image {image}"))?.image_ref)
    }

    /// `CreateContainer`, always with the sandbox config (omitting it crashes containerd 1.6).
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox: &PodSandboxConfig,
        object: &str,
    ) -> Result<String, RuntimeError> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        };
        Ok(call!(self, runtime.create_container(req), "CreateContainer", object.into())?.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let req = StartContainerRequest { container_id: id.into() };
        call!(self, runtime.start_container(req), "StartContainer", format!("container {id}")).map(|_| ())
    }

    /// `StopContainer`: SIGTERM, then SIGKILL after `grace` (the call's deadline covers the grace period).
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let req = StopContainerRequest { container_id: id.into(), timeout: grace.as_secs() as i64 };
        let slow = self.with_timeout(grace + self.timeout);
        call!(slow, runtime.stop_container(req), "StopContainer", format!("container {id}")).map(|_| ())
    }

    /// `Exec`: the URL on the runtime's streaming server where the command runs once connected.
    pub async fn exec(&self, req: ExecRequest) -> Result<String, RuntimeError> {
        let object = format!("container {}", req.container_id);
        Ok(call!(self, runtime.exec(req), "Exec", object)?.url)
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let req = RemoveContainerRequest { container_id: id.into() };
        call!(self, runtime.remove_container(req), "RemoveContainer", format!("container {id}")).map(|_| ())
    }

    /// `ExecSync`: runs `cmd` in container `id`. The runtime kills it after `timeout` (whole seconds;
    /// zero means no limit) and then answers `DeadlineExceeded`; a non-zero exit is a normal answer.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<gantry_cri_proto::runtime::ExecSyncResponse, RuntimeError> {
        let req = gantry_cri_proto::runtime::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        let slow = self.with_timeout(timeout + self.timeout);
        call!(slow, runtime.exec_sync(req), "ExecSync", format!("container {id}"))
    }
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec { image: image.into(), ..Default::default() }
}

/// The label selector of everything this agent created for one pod.
pub fn pod_selector(node: &str, uid: &str) -> HashMap<String, String> {
    HashMap::from([(NODE_LABEL.to_string(), node.to_string()), (POD_UID_LABEL.to_string(), uid.to_string())])
}

/// The label selector of everything this agent created.
pub fn node_selector(node: &str) -> HashMap<String, String> {
    HashMap::from([(NODE_LABEL.to_string(), node.to_string())])
}
