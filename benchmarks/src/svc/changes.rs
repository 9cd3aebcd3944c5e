//! EndpointSlice change → rule in the kernel: one Service's slice at a time gets one endpoint
//! replaced by a fresh address (a merge patch through the API), and the time from sending the patch
//! to `nft monitor` printing a rule or element with the new address is recorded. Each change waits
//! for its rule (or [`SvcArgs::change_timeout`](super::cli::SvcArgs)) and the next one starts no
//! sooner than `change_interval` after it, so changes never overlap.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_node_agent::proxy::Nft;
use serde::Serialize;

use super::monitor::{MonitorError, RuleMonitor};
use super::objects::{changed_endpoint, endpoints_patch, initial_endpoints, service_name, slices_path};
use crate::api::client::{ClientError, Connector};
use crate::latency::{LatencyError, LatencyRecorder, LatencySummary};

/// Failures of the change phase.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("patching EndpointSlice {name}")]
    Patch {
        name: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Histogram(#[from] LatencyError),
}

/// What the phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeFigures {
    pub changes: usize,
    /// Changes whose rule `nft monitor` did not show within the timeout, with whether the kernel's
    /// table held the new address afterwards (`nft monitor` can lose events when its socket overflows).
    pub missed: Vec<MissedChange>,
    /// The patch request until its response.
    pub api: LatencySummary,
    /// The patch request until the rule in the kernel.
    pub to_rule: LatencySummary,
    pub to_rule_p90_ms: f64,
}

/// A change whose rule was not seen in time.
#[derive(Debug, Clone, Serialize)]
pub struct MissedChange {
    pub change: usize,
    pub service: String,
    pub address: String,
    pub in_kernel_after_timeout: bool,
}

/// Settings of the phase.
#[derive(Debug, Clone, Copy)]
pub struct ChangePlan {
    pub services: usize,
    pub endpoints: usize,
    pub changes: usize,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Which Service change `n` touches: spread over all of them, none twice in a row.
pub fn service_of_change(n: usize, services: usize) -> usize {
    (n * 7919) % services.max(1)
}

pub async fn measure(
    connector: &Arc<Connector>,
    namespace: &str,
    table: &str,
    plan: ChangePlan,
) -> Result<ChangeFigures, ChangeError> {
    let mut monitor = RuleMonitor::start().await?;
    let mut current: Vec<Vec<Ipv4Addr>> = (0..plan.services).map(|i| initial_endpoints(i, plan.endpoints)).collect();
    let mut conn = connector.connection(0);
    let (mut api, mut to_rule) = (LatencyRecorder::new()?, LatencyRecorder::new()?);
    let mut missed = Vec::new();
    let changes = if plan.endpoints == 0 || plan.services == 0 { 0 } else { plan.changes };
    for n in 0..changes {
        let slot = Instant::now();
        let i = service_of_change(n, plan.services);
        let address = changed_endpoint(n);
        current[i][n % plan.endpoints] = address;
        let name = service_name(i);
        monitor.drain();
        let sent = Instant::now();
        conn.merge_patch(&format!("{}/{name}", slices_path(namespace)), endpoints_patch(&current[i]))
            .await
            .map_err(|source| ChangeError::Patch { name: name.clone(), source })?;
        api.record(sent.elapsed());
        // Rules and elements print addresses followed by a space (`10.220.0.5 . 8080`).
        match monitor.wait_for(&format!("{address} "), plan.timeout).await {
            Some(at) => to_rule.record(at.saturating_duration_since(sent)),
            None => {
                let chain = super::agent::service_chain(namespace, &name);
                let text = Nft::default().output(&["list", "chain", "ip", table, &chain]).await.unwrap_or_default();
                let in_kernel_after_timeout = text.contains(&format!("{address} "));
                eprintln!(
                    "  change {n} ({name}: {address}) not seen in time; in the kernel now: {in_kernel_after_timeout}"
                );
                missed.push(MissedChange {
                    change: n,
                    service: name,
                    address: address.to_string(),
                    in_kernel_after_timeout,
                });
            }
        }
        if (n + 1) % 50 == 0 {
            eprintln!("  {} changes, p50 {:.1} ms", n + 1, to_rule.summary().p50_ms);
        }
        tokio::time::sleep_until((slot + plan.interval).into()).await;
    }
    Ok(ChangeFigures {
        changes,
        missed,
        api: api.summary(),
        to_rule: to_rule.summary(),
        to_rule_p90_ms: to_rule.quantile(0.9).as_secs_f64() * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_spread_over_services_without_repeating_in_a_row() {
        let touched: std::collections::BTreeSet<usize> = (0..1000).map(|n| service_of_change(n, 1000)).collect();
        assert_eq!(touched.len(), 1000);
        assert!((1..200).all(|n| service_of_change(n, 1000) != service_of_change(n - 1, 1000)));
        assert_eq!(service_of_change(5, 0), 0);
    }
}
