//! The proxy's Prometheus metrics (`gantry_node_agent_proxy_*`), registered in the agent's registry
//! so its server exports them beside the kubelet ones. Recorded by the sync loop only.

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntGauge, Registry};

use super::model::RuleSet;
use crate::metrics::MetricsError;

/// Every metric of the proxy.
#[derive(Clone)]
pub struct ProxyMetrics {
    sync_duration: HistogramVec,
    sync_errors: IntCounter,
    service_ports: IntGauge,
    endpoints: IntGauge,
    rules: IntGauge,
    elements: IntGauge,
    last_sync: Gauge,
}

impl ProxyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let sync_duration = HistogramVec::new(
            HistogramOpts::new(
                "gantry_node_agent_proxy_sync_duration_seconds",
                "Seconds to render the service proxy's rules from the service catalog and apply them, by kind \
                 (full: the whole table; partial: what changed).",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
            &["sync"],
        )?;
        let sync_errors = IntCounter::new(
            "gantry_node_agent_proxy_sync_errors_total",
            "Service proxy syncs that failed (nft missing or refusing the transaction).",
        )?;
        let service_ports = IntGauge::new(
            "gantry_node_agent_proxy_service_ports_programmed",
            "Service ports with a ClusterIP or NodePort entry in the rules last applied.",
        )?;
        let endpoints = IntGauge::new(
            "gantry_node_agent_proxy_endpoints_programmed",
            "Endpoints traffic is spread over in the rules last applied, summed over service ports.",
        )?;
        let rules = IntGauge::new(
            "gantry_node_agent_proxy_rules_programmed",
            "nftables rules in the proxy's table last applied.",
        )?;
        let elements = IntGauge::new(
            "gantry_node_agent_proxy_map_elements_programmed",
            "Elements of the proxy's nftables maps and sets last applied (affinity sets not counted).",
        )?;
        let last_sync = Gauge::new(
            "gantry_node_agent_proxy_last_sync_timestamp_seconds",
            "Unix time of the last successful service proxy sync.",
        )?;
        registry.register(Box::new(sync_duration.clone()))?;
        registry.register(Box::new(sync_errors.clone()))?;
        registry.register(Box::new(service_ports.clone()))?;
        registry.register(Box::new(endpoints.clone()))?;
        registry.register(Box::new(rules.clone()))?;
        registry.register(Box::new(elements.clone()))?;
        registry.register(Box::new(last_sync.clone()))?;
        Ok(Self { sync_duration, sync_errors, service_ports, endpoints, rules, elements, last_sync })
    }

    /// A sync of `kind` (`full` or `partial`) applied `rules` in `seconds`.
    pub fn synced(&self, kind: &str, seconds: f64, rules: &RuleSet) {
        self.sync_duration.with_label_values(&[kind]).observe(seconds);
        self.service_ports.set(gauge(rules.counts.service_ports));
        self.endpoints.set(gauge(rules.counts.endpoints));
        self.rules.set(gauge(rules.rule_count()));
        self.elements.set(gauge(rules.element_count()));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }

    pub fn sync_failed(&self) {
        self.sync_errors.inc();
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::{Chain, RuleSet};

    #[test]
    fn syncs_and_failures_show_in_the_registry() {
        let registry = Registry::new();
        let m = ProxyMetrics::register(&registry).expect("register");
        let mut rs = RuleSet::new("t");
        rs.chains.insert("c".into(), Chain::regular(vec!["accept".into(); 3]));
        rs.counts.service_ports = 2;
        rs.counts.endpoints = 5;
        m.synced("full", 0.25, &rs);
        m.sync_failed();
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("encode");
        for needle in [
            "gantry_node_agent_proxy_sync_duration_seconds_count{sync=\"full\"} 1",
            "gantry_node_agent_proxy_sync_errors_total 1",
            "gantry_node_agent_proxy_service_ports_programmed 2",
            "gantry_node_agent_proxy_endpoints_programmed 5",
            "gantry_node_agent_proxy_rules_programmed 3",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        assert!(ProxyMetrics::register(&registry).is_err(), "registered once");
    }
}
