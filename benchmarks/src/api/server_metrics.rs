//! Counters from the API servers' `/metrics` (Prometheus text): requests by verb and resource
//! (`apiserver_request_total`) and the controllers' reconcile passes (`gantry_controller_*`, which
//! only the replica running the controllers increments). Every server is scraped and the values are
//! summed, so a snapshot covers the whole cluster; the difference of two snapshots is what happened
//! in between. The parser is pure; [`scrape`] is the thin I/O around it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;

use super::client::{ClientError, Connector};

/// A series: its family name and the labels kept for it, in order.
pub type SeriesKey = (String, Vec<(String, String)>);

/// Which families are kept, and by which labels they are summed (other labels are dropped).
const KEPT: [(&str, &[&str]); 5] = [
    ("apiserver_request_total", &["verb", "resource", "subresource"]),
    ("apiserver_request_duration_seconds_sum", &["verb", "resource", "subresource"]),
    ("apiserver_request_duration_seconds_count", &["verb", "resource", "subresource"]),
    ("gantry_controller_reconcile_total", &["controller", "result"]),
    ("gantry_controller_reconcile_duration_seconds_sum", &["controller"]),
];

/// Summed counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub values: BTreeMap<SeriesKey, f64>,
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(body) = after.strip_prefix('"') else { break };
        // Values are quoted; `\"` and `\\` escapes are kept as written (none of the kept labels has them).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        out.push((name, body[..end].to_string()));
        rest = &body[end + 1..];
    }
    out
}

impl MetricsSnapshot {
    /// Adds the kept series of one server's exposition `text`.
    pub fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some((s, v)) => (s.trim(), v.trim()),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            let Some((_, keep)) = KEPT.iter().find(|(n, _)| *n == name) else { continue };
            let kept: Vec<(String, String)> = keep
                .iter()
                .map(|k| {
                    let v = labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
                    (k.to_string(), v)
                })
                .collect();
            *self.values.entry((name.to_string(), kept)).or_insert(0.0) += value;
        }
    }

    /// What grew from `before` to `self` (series that did not change are left out).
    pub fn since(&self, before: &MetricsSnapshot) -> MetricsSnapshot {
        let values = self
            .values
            .iter()
            .filter_map(|(k, v)| {
                let delta = v - before.values.get(k).copied().unwrap_or(0.0);
                (delta != 0.0).then(|| (k.clone(), delta))
            })
            .collect();
        MetricsSnapshot { values }
    }

    /// The mean of histogram `name` (`<name>_sum / <name>_count`) per key of [`Self::family`].
    pub fn means(&self, name: &str) -> BTreeMap<String, f64> {
        let counts = self.family(&format!("{name}_count"));
        self.family(&format!("{name}_sum"))
            .into_iter()
            .filter_map(|(k, sum)| counts.get(&k).filter(|c| **c > 0.0).map(|c| (k, sum / c)))
            .collect()
    }

    /// The values of family `name`, keyed by their kept label values joined with `/` (empty ones
    /// left out).
    pub fn family(&self, name: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((n, labels), v) in &self.values {
            if n == name {
                let key: Vec<&str> = labels.iter().map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()).collect();
                *out.entry(key.join("/")).or_insert(0.0) += v;
            }
        }
        out
    }
}

/// Scrapes `/metrics` of every server of `connector` and sums them.
pub async fn scrape(connector: &Arc<Connector>) -> Result<MetricsSnapshot, ClientError> {
    let mut snapshot = MetricsSnapshot::default();
    for server in 0..connector.servers().len() {
        let body = connector.connection(server).send(Method::GET, "/metrics", Bytes::new()).await?;
        snapshot.add_text(&String::from_utf8_lossy(&body));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICA_1: &str = r#"# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="409",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 7
gantry_controller_reconcile_total{controller="replicaset",result="success"} 4
gantry_controller_reconcile_duration_seconds_sum{controller="replicaset"} 0.5
gantry_controller_reconcile_duration_seconds_count{controller="replicaset"} 4
"#;

    #[test]
    fn kept_series_are_summed_over_dropped_labels_and_servers() {
        let mut s = MetricsSnapshot::default();
        s.add_text(REPLICA_1);
        s.add_text(r#"apiserver_request_total{code="201",group="",resource="pods",subresource="",verb="POST"} 5"#);
        let requests = s.family("apiserver_request_total");
        assert_eq!(requests.get("POST/pods"), Some(&17.0));
        assert_eq!(requests.get("PATCH/pods/status"), Some(&7.0));
        assert_eq!(s.family("gantry_controller_reconcile_total").get("replicaset/success"), Some(&4.0));
        assert_eq!(s.family("gantry_controller_reconcile_duration_seconds_sum").get("replicaset"), Some(&0.5));
        assert!(s.family("gantry_controller_reconcile_duration_seconds_count").is_empty());
    }

    #[test]
    fn differences_keep_only_what_changed() {
        let mut before = MetricsSnapshot::default();
        before.add_text(REPLICA_1);
        let mut after = before.clone();
        after.add_text(r#"gantry_controller_reconcile_total{controller="replicaset",result="success"} 3"#);
        after.add_text(r#"gantry_controller_reconcile_total{controller="deployment",result="error"} 1"#);
        let delta = after.since(&before);
        let reconciles = delta.family("gantry_controller_reconcile_total");
        assert_eq!(
            reconciles.into_iter().collect::<Vec<_>>(),
            [("deployment/error".to_string(), 1.0), ("replicaset/success".to_string(), 3.0)]
        );
        assert!(delta.family("apiserver_request_total").is_empty());
    }

    #[test]
    fn histogram_means_divide_sums_by_counts() {
        let mut s = MetricsSnapshot::default();
        s.add_text(
            r#"apiserver_request_duration_seconds_sum{resource="pods",subresource="status",verb="PATCH"} 3
apiserver_request_duration_seconds_count{resource="pods",subresource="status",verb="PATCH"} 100
apiserver_request_duration_seconds_sum{resource="pods",subresource="",verb="POST"} 1
apiserver_request_duration_seconds_count{resource="pods",subresource="",verb="POST"} 0
"#,
        );
        let means = s.means("apiserver_request_duration_seconds");
        assert_eq!(means.into_iter().collect::<Vec<_>>(), [("PATCH/pods/status".to_string(), 0.03)]);
    }

    #[test]
    fn label_values_may_contain_commas_and_escaped_quotes() {
        let labels = parse_labels(r#"a="x,y",b="say \"hi\"",c="""#);
        assert_eq!(labels, [("a".into(), "x,y".into()), ("b".into(), r#"say \"hi\""#.into()), ("c".into(), "".into())]);
    }
}
