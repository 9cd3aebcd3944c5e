//! The agent's Prometheus metrics, in one registry that the agent's server serves on `/metrics`.
//! Upstream kubelet names are used where they exist (dashboards expect them); the rest are
//! `gantry_node_agent_*`. Owns the metric definitions and the pure "has this pod started" test; the
//! runtime client, the pod workers and the server only record into it.

use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::jiff::Timestamp;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Why the metrics could not be registered.
#[derive(Debug, thiserror::Error)]
#[error("registering agent metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric the agent exports.
pub struct AgentMetrics {
    registry: Registry,
    runtime_duration: HistogramVec,
    runtime_errors: IntCounterVec,
    pod_syncs: IntCounterVec,
    pod_start: Histogram,
    running_pods: IntGauge,
    running_containers: IntGaugeVec,
    dns_requests: IntCounterVec,
    dns_duration: HistogramVec,
}

impl AgentMetrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let runtime_duration = HistogramVec::new(
            HistogramOpts::new(
                "kubelet_runtime_operations_duration_seconds",
                "Duration in seconds of CRI calls, by CRI method.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 16)?),
            &["operation_type"],
        )?;
        let runtime_errors = IntCounterVec::new(
            Opts::new("kubelet_runtime_operations_errors_total", "CRI calls that failed or timed out, by CRI method."),
            &["operation_type"],
        )?;
        let pod_syncs = IntCounterVec::new(
            Opts::new("gantry_node_agent_pod_syncs_total", "Pod worker passes, by result (success or error)."),
            &["result"],
        )?;
        let pod_start = Histogram::with_opts(
            HistogramOpts::new(
                "kubelet_pod_start_duration_seconds",
                "Seconds from a pod's creationTimestamp to the first status in which the agent reports all its \
                 containers running.",
            )
            .buckets(vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0]),
        )?;
        let running_pods =
            IntGauge::new("kubelet_running_pods", "Pods with a ready sandbox on this node (read at scrape time).")?;
        let running_containers = IntGaugeVec::new(
            Opts::new("kubelet_running_containers", "Containers on this node by state (read at scrape time)."),
            &["container_state"],
        )?;
        let dns_requests = IntCounterVec::new(
            Opts::new(
                "gantry_node_agent_dns_requests_total",
                "Requests answered by the agent's cluster DNS server, by rcode (NOERROR, NXDOMAIN, SERVFAIL, ...) \
                 and source (cluster: answered from Services; upstream: forwarded).",
            ),
            &["rcode", "source"],
        )?;
        let dns_duration = HistogramVec::new(
            HistogramOpts::new(
                "gantry_node_agent_dns_request_duration_seconds",
                "Seconds from a DNS request's arrival to its reply, by source (cluster or upstream).",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
            &["source"],
        )?;
        registry.register(Box::new(runtime_duration.clone()))?;
        registry.register(Box::new(runtime_errors.clone()))?;
        registry.register(Box::new(pod_syncs.clone()))?;
        registry.register(Box::new(pod_start.clone()))?;
        registry.register(Box::new(running_pods.clone()))?;
        registry.register(Box::new(running_containers.clone()))?;
        registry.register(Box::new(dns_requests.clone()))?;
        registry.register(Box::new(dns_duration.clone()))?;
        Ok(Self {
            registry,
            runtime_duration,
            runtime_errors,
            pod_syncs,
            pod_start,
            running_pods,
            running_containers,
            dns_requests,
            dns_duration,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// One CRI call of `method` that took `seconds`.
    pub fn runtime_call(&self, method: &str, seconds: f64, ok: bool) {
        self.runtime_duration.with_label_values(&[method]).observe(seconds);
        if !ok {
            self.runtime_errors.with_label_values(&[method]).inc();
        }
    }

    /// One pass of a pod worker.
    pub fn pod_synced(&self, ok: bool) {
        self.pod_syncs.with_label_values(&[if ok { "success" } else { "error" }]).inc();
    }

    /// A pod reached "all containers running" for the first time, `seconds` after its creation.
    pub fn pod_started(&self, seconds: f64) {
        self.pod_start.observe(seconds.max(0.0));
    }

    /// One DNS request answered with `rcode` from `source` (`cluster` or `upstream`) after `seconds`.
    pub fn dns_request(&self, rcode: &str, source: &str, seconds: f64) {
        self.dns_requests.with_label_values(&[rcode, source]).inc();
        self.dns_duration.with_label_values(&[source]).observe(seconds);
    }

    /// Sets the running gauges (the server calls this before rendering).
    pub fn set_running(&self, pods: i64, containers_by_state: &[(&str, i64)]) {
        self.running_pods.set(pods);
        for (state, n) in containers_by_state {
            self.running_containers.with_label_values(&[state]).set(*n);
        }
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> Result<String, MetricsError> {
        Ok(prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())?)
    }
}

/// Seconds from `created` to `now` if `status` newly shows every container running while the status the
/// API holds (`before`) did not: a pod started by this agent, not one adopted after a restart.
pub fn start_latency(
    created: Option<Timestamp>,
    before: Option<&PodStatus>,
    status: &PodStatus,
    now: Timestamp,
) -> Option<f64> {
    if !all_running(status) || before.is_some_and(all_running) {
        return None;
    }
    let created = created?;
    Some(now.duration_since(created).as_secs_f64())
}

/// Whether the status shows at least one container and every container running.
pub fn all_running(status: &PodStatus) -> bool {
    status
        .container_statuses
        .as_deref()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus};
    use k8s_openapi::jiff::SignedDuration;

    use super::*;

    fn status(running: &[bool]) -> PodStatus {
        let statuses = running
            .iter()
            .map(|r| ContainerStatus {
                state: Some(if *r {
                    ContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() }
                } else {
                    ContainerState { waiting: Some(ContainerStateWaiting::default()), ..Default::default() }
                }),
                ..Default::default()
            })
            .collect();
        PodStatus { container_statuses: Some(statuses), ..Default::default() }
    }

    #[test]
    fn start_latency_is_recorded_once_for_pods_this_agent_starts() {
        let created = Timestamp::UNIX_EPOCH;
        let now = created + SignedDuration::from_millis(2500);
        assert_eq!(start_latency(Some(created), None, &status(&[true, true]), now), Some(2.5));
        assert_eq!(start_latency(Some(created), Some(&status(&[true, false])), &status(&[true, true]), now), Some(2.5));
        assert_eq!(start_latency(Some(created), None, &status(&[true, false]), now), None, "not all running");
        assert_eq!(start_latency(Some(created), Some(&status(&[true])), &status(&[true]), now), None, "adopted");
        assert_eq!(start_latency(Some(created), None, &status(&[]), now), None, "no containers");
        assert_eq!(start_latency(None, None, &status(&[true]), now), None);
    }

    #[test]
    fn recorded_values_show_in_the_text_format() {
        let m = AgentMetrics::new().expect("metrics");
        m.runtime_call("ListContainers", 0.01, true);
        m.runtime_call("StartContainer", 0.02, false);
        m.pod_synced(true);
        m.pod_started(1.5);
        m.set_running(2, &[("running", 3)]);
        m.dns_request("NXDOMAIN", "cluster", 0.001);
        let text = m.render().expect("render");
        for needle in [
            "kubelet_runtime_operations_duration_seconds_count{operation_type=\"ListContainers\"} 1",
            "kubelet_runtime_operations_errors_total{operation_type=\"StartContainer\"} 1",
            "gantry_node_agent_pod_syncs_total{result=\"success\"} 1",
            "kubelet_pod_start_duration_seconds_count 1",
            "kubelet_running_pods 2",
            "kubelet_running_containers{container_state=\"running\"} 3",
            "gantry_node_agent_dns_requests_total{rcode=\"NXDOMAIN\",source=\"cluster\"} 1",
            "gantry_node_agent_dns_request_duration_seconds_count{source=\"cluster\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
