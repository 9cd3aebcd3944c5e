//! The API server's Prometheus metrics, named and labelled like upstream's (`apiserver_`): requests
//! by verb, resource and code, their latency, open watches, and watch events sent. Also renders a
//! registry for `GET /metrics`.
//!
//! Owns the mapping from a routed request to upstream's labels (verb LIST/WATCH/DELETECOLLECTION/
//! APPLY, scope resource/namespace/cluster). Pure: must not depend on hyper, TLS or the store; the
//! server calls `labels`, `record` and `WatchGuard::event_sent`.

use std::time::{Duration, Instant};

use http::Method;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::query::Query;
use super::router::Route;

/// What can go wrong with the API's metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("creating api metric {name}: {source}")]
    Create { name: &'static str, source: prometheus::Error },
    #[error("registering api metric {name}: {source}")]
    Register { name: &'static str, source: prometheus::Error },
    #[error("registering store metrics: {0}")]
    Store(#[from] raft_store::metrics::MetricsError),
    #[error("rendering metrics in the text format: {0}")]
    Render(prometheus::Error),
}

/// Upstream's `apiserver_request_duration_seconds` buckets.
const REQUEST_DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

/// Upstream's `apiserver_watch_events_sizes` buckets: 1 KiB to 128 KiB.
const WATCH_EVENT_SIZE_BUCKETS: [f64; 8] = [1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0];

const REQUEST_LABELS: [&str; 7] = ["verb", "group", "version", "resource", "subresource", "scope", "component"];
const WATCH_EVENT_LABELS: [&str; 3] = ["group", "version", "resource"];
const WATCHER_LABELS: [&str; 3] = ["group", "version", "kind"];

/// What upstream labels a request with (its `RequestInfo`, cleaned for metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    /// The subresource of a resource request; the path of a well-known non-resource one.
    pub subresource: &'static str,
    pub scope: &'static str,
    pub component: &'static str,
    /// Only for `apiserver_registered_watchers`, which upstream labels by kind.
    pub kind: &'static str,
}

impl RequestLabels {
    fn values(&self) -> [&str; 7] {
        [self.verb, self.group, self.version, self.resource, self.subresource, self.scope, self.component]
    }

    /// A long-running request: recorded when it ends, and counted as open meanwhile.
    pub fn is_watch(&self) -> bool {
        self.verb == "WATCH"
    }
}

/// Upstream's verb for a request: LIST and WATCH for reads of collections, DELETECOLLECTION,
/// APPLY for server-side apply patches, "other" for methods the API does not know.
fn verb(method: &Method, collection: bool, watch: bool, content_type: Option<&str>) -> &'static str {
    match *method {
        Method::GET if collection && watch => "WATCH",
        Method::GET if collection => "LIST",
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH if content_type.is_some_and(|c| c.starts_with("application/apply-patch")) => "APPLY",
        Method::PATCH => "PATCH",
        Method::DELETE if collection => "DELETECOLLECTION",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The fixed label of a non-resource path (bounded, whatever paths clients invent).
fn non_resource_path(route: Option<&Route>) -> &'static str {
    match route {
        Some(Route::Version) => "/version",
        Some(Route::Health("healthz")) => "/healthz",
        Some(Route::Health("livez")) => "/livez",
        Some(Route::Health(_)) => "/readyz",
        Some(Route::Metrics) => "/metrics",
        Some(Route::OpenApiV3Index | Route::OpenApiV3GroupVersion { .. }) => "/openapi/v3",
        Some(Route::OpenApiV2) => "/openapi/v2",
        Some(Route::CoreGroup) => "/api",
        Some(Route::ResourceList { group, .. }) if group.is_empty() => "/api",
        Some(Route::Groups | Route::Group(_) | Route::ResourceList { .. }) => "/apis",
        Some(Route::Resource(_)) | None => "",
    }
}

/// The labels of a request, from its method, its route (`None` when no route matched), its raw query
/// string and its content type.
pub fn labels(
    method: &Method,
    route: Option<&Route>,
    query: Option<&str>,
    content_type: Option<&str>,
) -> RequestLabels {
    let Some(Route::Resource(target)) = route else {
        return RequestLabels {
            verb: verb(method, false, false, content_type),
            group: "",
            version: "",
            resource: "",
            subresource: non_resource_path(route),
            scope: "",
            component: "",
            kind: "",
        };
    };
    let def = target.def;
    let collection = target.name.is_none();
    // A malformed query fails the request later; for its labels it is simply not a watch.
    let watch =
        *method == Method::GET && collection && Query::parse(query).and_then(|q| q.bool("watch")).unwrap_or(false);
    let verb = verb(method, collection, watch, content_type);
    // As upstream's CleanScope: one object (or a create), a namespace, or the whole cluster.
    let scope = if !collection || verb == "POST" {
        "resource"
    } else if target.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    let subresource = target.subresource.as_deref().and_then(|s| def.subresource(s)).map(|s| s.name).unwrap_or("");
    RequestLabels {
        verb,
        group: def.group,
        version: def.version,
        resource: def.resource,
        subresource,
        scope,
        component: "apiserver",
        kind: def.kind,
    }
}

/// The API server's instruments, registered in one replica's registry. Cheap to clone.
#[derive(Clone)]
pub struct ApiMetrics {
    requests: IntCounterVec,
    durations: HistogramVec,
    longrunning: IntGaugeVec,
    watch_events: IntCounterVec,
    watch_event_sizes: HistogramVec,
    registered_watchers: IntGaugeVec,
}

impl ApiMetrics {
    /// Creates the `apiserver_*` instruments and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let create = |name: &'static str| move |source| MetricsError::Create { name, source };
        let mut request_labels = REQUEST_LABELS.to_vec();
        request_labels.push("code");
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "apiserver_request_total",
                    "Counter of apiserver requests broken out for each verb, group, version, resource, scope, \
                     component, and HTTP response code.",
                ),
                &request_labels,
            )
            .map_err(create("apiserver_request_total"))?,
            durations: HistogramVec::new(
                HistogramOpts::new(
                    "apiserver_request_duration_seconds",
                    "Response latency distribution in seconds for each verb, group, version, resource, \
                     subresource, scope and component.",
                )
                .buckets(REQUEST_DURATION_BUCKETS.to_vec()),
                &REQUEST_LABELS,
            )
            .map_err(create("apiserver_request_duration_seconds"))?,
            longrunning: IntGaugeVec::new(
                Opts::new(
                    "apiserver_longrunning_requests",
                    "Gauge of all active long-running apiserver requests broken out by verb, group, version, \
                     resource, scope and component.",
                ),
                &REQUEST_LABELS,
            )
            .map_err(create("apiserver_longrunning_requests"))?,
            watch_events: IntCounterVec::new(
                Opts::new("apiserver_watch_events_total", "Number of events sent in watch clients"),
                &WATCH_EVENT_LABELS,
            )
            .map_err(create("apiserver_watch_events_total"))?,
            watch_event_sizes: HistogramVec::new(
                HistogramOpts::new("apiserver_watch_events_sizes", "Watch event size distribution in bytes")
                    .buckets(WATCH_EVENT_SIZE_BUCKETS.to_vec()),
                &WATCH_EVENT_LABELS,
            )
            .map_err(create("apiserver_watch_events_sizes"))?,
            registered_watchers: IntGaugeVec::new(
                Opts::new(
                    "apiserver_registered_watchers",
                    "Number of currently registered watchers for a given resources",
                ),
                &WATCHER_LABELS,
            )
            .map_err(create("apiserver_registered_watchers"))?,
        };
        let collectors: [(&'static str, Box<dyn Collector>); 6] = [
            ("apiserver_request_total", Box::new(metrics.requests.clone())),
            ("apiserver_request_duration_seconds", Box::new(metrics.durations.clone())),
            ("apiserver_longrunning_requests", Box::new(metrics.longrunning.clone())),
            ("apiserver_watch_events_total", Box::new(metrics.watch_events.clone())),
            ("apiserver_watch_events_sizes", Box::new(metrics.watch_event_sizes.clone())),
            ("apiserver_registered_watchers", Box::new(metrics.registered_watchers.clone())),
        ];
        for (name, c) in collectors {
            registry.register(c).map_err(|source| MetricsError::Register { name, source })?;
        }
        Ok(metrics)
    }

    /// Records a finished request. For a watch that started (code 200) nothing is recorded yet: the
    /// returned guard counts it as open and records it when dropped, with the time it lasted.
    pub fn record(&self, labels: &RequestLabels, code: u16, started: Instant) -> Option<WatchGuard> {
        if labels.is_watch() && code == 200 {
            return Some(self.watch_started(labels, started));
        }
        self.finish(labels, code, started.elapsed());
        None
    }

    fn finish(&self, labels: &RequestLabels, code: u16, took: Duration) {
        let values = labels.values();
        let code = code.to_string();
        let mut with_code = values.to_vec();
        with_code.push(&code);
        self.requests.with_label_values(&with_code).inc();
        self.durations.with_label_values(&values).observe(took.as_secs_f64());
    }

    fn watch_started(&self, labels: &RequestLabels, started: Instant) -> WatchGuard {
        let open = self.longrunning.with_label_values(&labels.values());
        let registered = self.registered_watchers.with_label_values(&[labels.group, labels.version, labels.kind]);
        open.inc();
        registered.inc();
        let events = [labels.group, labels.version, labels.resource];
        WatchGuard {
            metrics: self.clone(),
            labels: labels.clone(),
            started,
            open,
            registered,
            events: self.watch_events.with_label_values(&events),
            event_sizes: self.watch_event_sizes.with_label_values(&events),
        }
    }
}

/// One open watch. Counts the events sent; when dropped (the stream ended or the client left), the
/// watch is no longer open and is recorded as a request with code 200.
pub struct WatchGuard {
    metrics: ApiMetrics,
    labels: RequestLabels,
    started: Instant,
    open: IntGauge,
    registered: IntGauge,
    events: IntCounter,
    event_sizes: Histogram,
}

impl WatchGuard {
    /// One event (one JSON line) of `bytes` bytes went to the client.
    pub fn event_sent(&self, bytes: usize) {
        self.events.inc();
        self.event_sizes.observe(bytes as f64);
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.open.dec();
        self.registered.dec();
        self.metrics.finish(&self.labels, 200, self.started.elapsed());
    }
}

/// `registry` in Prometheus' text format (`prometheus::TEXT_FORMAT`).
pub fn render(registry: &Registry) -> Result<String, MetricsError> {
    TextEncoder::new().encode_to_string(&registry.gather()).map_err(MetricsError::Render)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::router::route;

    fn labels_of(method: Method, path_and_query: &str, content_type: Option<&str>) -> RequestLabels {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        labels(&method, route(path).ok().as_ref(), query, content_type)
    }

    /// A series `name{a="x",b="y"}` as its name and sorted labels: the encoder orders labels its own
    /// way. (No label value in these tests holds a comma.)
    fn series_key(series: &str) -> (&str, Vec<&str>) {
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let mut labels: Vec<&str> =
            labels.strip_suffix('}').unwrap_or(labels).split(',').filter(|l| !l.is_empty()).collect();
        labels.sort_unstable();
        (name, labels)
    }

    /// The value of the sample of `series` (labels in any order), if rendered.
    fn sample(text: &str, series: &str) -> Option<f64> {
        let want = series_key(series);
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (s, value) = l.rsplit_once(' ')?;
            (series_key(s) == want).then(|| value.parse().ok()).flatten()
        })
    }

    #[test]
    fn verbs_follow_upstream() {
        let verb = |m: Method, p: &str| labels_of(m, p, None).verb;
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/default/pods"), "LIST");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/default/pods?watch=true"), "WATCH");
        assert_eq!(verb(Method::GET, "/api/v1/pods?labelSelector=a&watch=1"), "WATCH");
        assert_eq!(verb(Method::GET, "/api/v1/pods?watch=false"), "LIST");
        assert_eq!(verb(Method::GET, "/api/v1/pods?watch=%zz"), "LIST", "a malformed query is no watch");
        assert_eq!(verb(Method::GET, "/api/v1/namespaces/default/pods/web"), "GET");
        assert_eq!(verb(Method::POST, "/api/v1/namespaces/default/pods"), "POST");
        assert_eq!(verb(Method::PUT, "/api/v1/namespaces/default/pods/web/status"), "PUT");
        assert_eq!(verb(Method::PATCH, "/api/v1/namespaces/default/pods/web"), "PATCH");
        assert_eq!(
            labels_of(Method::PATCH, "/api/v1/namespaces/default/pods/web", Some("application/apply-patch+yaml")).verb,
            "APPLY"
        );
        assert_eq!(verb(Method::DELETE, "/api/v1/namespaces/default/pods/web"), "DELETE");
        assert_eq!(verb(Method::DELETE, "/api/v1/namespaces/default/pods"), "DELETECOLLECTION");
        assert_eq!(verb(Method::OPTIONS, "/api/v1/pods"), "other");
        assert_eq!(verb(Method::GET, "/metrics"), "GET");
    }

    #[test]
    fn scopes_resources_and_non_resource_paths() {
        let l = labels_of(Method::GET, "/apis/apps/v1/namespaces/ns/deployments/web/scale", None);
        assert_eq!(
            (l.group, l.version, l.resource, l.subresource, l.scope, l.component, l.kind),
            ("apps", "v1", "deployments", "scale", "resource", "apiserver", "Deployment")
        );
        assert_eq!(labels_of(Method::POST, "/api/v1/namespaces/ns/configmaps", None).scope, "resource");
        assert_eq!(labels_of(Method::GET, "/api/v1/namespaces/ns/configmaps", None).scope, "namespace");
        assert_eq!(labels_of(Method::GET, "/api/v1/configmaps", None).scope, "cluster");
        assert_eq!(labels_of(Method::GET, "/api/v1/nodes", None).scope, "cluster");
        assert_eq!(labels_of(Method::GET, "/api/v1/namespaces/kube-system", None).scope, "resource");
        let health = labels_of(Method::GET, "/readyz/etcd", None);
        assert_eq!((health.subresource, health.resource, health.scope, health.component), ("/readyz", "", "", ""));
        assert_eq!(labels_of(Method::GET, "/apis/apps/v1", None).subresource, "/apis");
        assert_eq!(labels_of(Method::GET, "/api/v1", None).subresource, "/api");
        assert_eq!(labels_of(Method::GET, "/metrics", None).subresource, "/metrics");
        assert_eq!(labels_of(Method::GET, "/no/such/thing", None).subresource, "", "unknown paths add no series");
    }

    #[test]
    fn requests_are_counted_by_code_and_timed() {
        let registry = Registry::new();
        let m = ApiMetrics::register(&registry).expect("register");
        let create = labels_of(Method::POST, "/api/v1/namespaces/default/configmaps", None);
        let started = Instant::now();
        for _ in 0..3 {
            assert!(m.record(&create, 201, started).is_none());
        }
        assert!(m.record(&create, 409, started).is_none());
        let text = render(&registry).expect("render");
        let series = "{verb=\"POST\",group=\"\",version=\"v1\",resource=\"configmaps\",subresource=\"\",\
                      scope=\"resource\",component=\"apiserver\"";
        let total = |code: &str| sample(&text, &format!("apiserver_request_total{series},code=\"{code}\"}}"));
        assert_eq!(total("201"), Some(3.0), "{text}");
        assert_eq!(total("409"), Some(1.0), "{text}");
        let count = format!("apiserver_request_duration_seconds_count{series}}}");
        assert_eq!(sample(&text, &count), Some(4.0), "{text}");
        let top = format!("apiserver_request_duration_seconds_bucket{series},le=\"60\"}}");
        assert_eq!(sample(&text, &top), Some(4.0), "upstream buckets end at 60 s: {text}");
    }

    #[test]
    fn a_watch_is_open_until_its_guard_drops_then_recorded() {
        let registry = Registry::new();
        let m = ApiMetrics::register(&registry).expect("register");
        let watch = labels_of(Method::GET, "/api/v1/namespaces/default/configmaps?watch=true", None);
        let open = "apiserver_longrunning_requests{verb=\"WATCH\",group=\"\",version=\"v1\",resource=\"configmaps\",\
                    subresource=\"\",scope=\"namespace\",component=\"apiserver\"}";
        let registered = "apiserver_registered_watchers{group=\"\",version=\"v1\",kind=\"ConfigMap\"}";
        let events = "apiserver_watch_events_total{group=\"\",version=\"v1\",resource=\"configmaps\"}";
        let total = "apiserver_request_total{verb=\"WATCH\",group=\"\",version=\"v1\",resource=\"configmaps\",\
                     subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"200\"}";

        let first = m.record(&watch, 200, Instant::now()).expect("a started watch is open");
        let second = m.record(&watch, 200, Instant::now()).expect("a started watch is open");
        first.event_sent(100);
        first.event_sent(5000);
        second.event_sent(10);
        let text = render(&registry).expect("render");
        assert_eq!(sample(&text, open), Some(2.0), "{text}");
        assert_eq!(sample(&text, registered), Some(2.0), "{text}");
        assert_eq!(sample(&text, events), Some(3.0), "{text}");
        let small =
            "apiserver_watch_events_sizes_bucket{group=\"\",version=\"v1\",resource=\"configmaps\",le=\"1024\"}";
        assert_eq!(sample(&text, small), Some(2.0), "{text}");
        assert_eq!(sample(&text, total), None, "an open watch is not recorded yet: {text}");

        drop(first);
        let text = render(&registry).expect("render");
        assert_eq!(sample(&text, open), Some(1.0), "{text}");
        assert_eq!(sample(&text, total), Some(1.0), "{text}");
        drop(second);
        let text = render(&registry).expect("render");
        assert_eq!(sample(&text, open), Some(0.0), "{text}");
        assert_eq!(sample(&text, registered), Some(0.0), "{text}");
        assert_eq!(sample(&text, total), Some(2.0), "{text}");

        assert!(m.record(&watch, 410, Instant::now()).is_none(), "a watch that never started is recorded at once");
        let text = render(&registry).expect("render");
        assert_eq!(sample(&text, &total.replace("\"200\"", "\"410\"")), Some(1.0), "{text}");
    }

    #[test]
    fn registering_twice_in_one_registry_fails_with_the_metric_name() {
        let registry = Registry::new();
        ApiMetrics::register(&registry).expect("first");
        let e = ApiMetrics::register(&registry).err().expect("duplicate registration fails");
        assert!(e.to_string().contains("apiserver_request_total"), "{e}");
        ApiMetrics::register(&Registry::new()).expect("another replica's registry is independent");
    }
}
