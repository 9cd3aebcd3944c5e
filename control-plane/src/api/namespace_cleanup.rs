//! Empties namespaces that are being deleted, as upstream's namespace controller does: once a
//! namespace has a `deletionTimestamp` (phase `Terminating`), every namespaced object in it is
//! deleted with default options (so unbound pods go at once and bound pods gracefully, waiting for
//! their node agent), the namespace's status conditions say what remains, and when nothing is left
//! the `kubernetes` finalizer is removed from `spec.finalizers` and the namespace object deleted.
//!
//! Owns the decisions (content totals, status conditions, finalizer removal, retry delays: pure)
//! and the background task, which works only on the replica whose store leads Raft (every write is a
//! compare-and-swap, so a stale leader doing the same work is harmless). It reacts to watch events
//! of namespaces and pods and resyncs periodically as a safety net. Must not depend on hyper, TLS or
//! the request handlers; deleting goes through `deletion`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use raft_store::mvcc::model::EventKind;
use raft_store::watch::watcher::{WatchBatch, Watcher};
use raft_store::StoreError;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::deletion::{delete_object, finalizers, replace_or_finalize, DeleteOptions};
use super::objects;
use super::resources::{self, ResourceDef, RESOURCES};
use super::status::ApiError;
use super::storage::{ListRead, ObjectStore};

/// The finalizer this task owns in a namespace's `spec.finalizers`.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";
/// Full pass over all namespaces, in case an event was missed.
const RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How often a replica checks whether it has become the leader.
const LEADER_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Retry after a failed pass.
const ERROR_RETRY: Duration = Duration::from_secs(2);
/// Bounds of the retry while content remains (pod deletions also wake the task at once).
const MIN_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(10);
const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// The condition types upstream maintains on a terminating namespace, in its order.
const CONDITION_TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

/// Why the cleanup task could not make progress on a namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CleanupError {
    #[error("namespace {namespace}: {source}")]
    Store { namespace: String, source: ApiError },
    #[error("the resource table has no {0}")]
    MissingResource(&'static str),
}

/// What one pass over a namespace's content found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentTotals {
    /// Objects the pass found (whether it removed them or not).
    pub found: usize,
    /// Objects still present afterwards, by `resource.group` as upstream names them (`pods.`).
    pub remaining: BTreeMap<String, usize>,
    /// Remaining objects by finalizer.
    pub finalizers: BTreeMap<String, usize>,
    /// Errors listing or deleting content.
    pub failures: Vec<String>,
    /// Latest deletion deadline of a remaining object in its grace period.
    pub latest_deadline: Option<DateTime<Utc>>,
}

impl ContentTotals {
    /// Counts an object the pass could not remove.
    pub fn record_remaining(&mut self, def: &ResourceDef, obj: &Value) {
        *self.remaining.entry(format!("{}.{}", def.resource, def.group)).or_default() += 1;
        for f in finalizers(obj) {
            *self.finalizers.entry(f).or_default() += 1;
        }
        let deadline = obj["metadata"]["deletionTimestamp"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        if deadline > self.latest_deadline {
            self.latest_deadline = deadline;
        }
    }

    /// Nothing was found and nothing failed: the namespace is empty.
    pub fn is_empty_namespace(&self) -> bool {
        self.found == 0 && self.failures.is_empty()
    }

    /// Everything found was removed: another pass should confirm the namespace is empty.
    fn all_removed(&self) -> bool {
        self.remaining.is_empty() && self.failures.is_empty()
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: String, now: &str) -> Value {
    json!({ "type": kind, "status": status, "lastTransitionTime": now, "reason": reason, "message": message })
}

/// The conditions a pass reports (upstream `namespaceConditionUpdater`): a `True` condition for each
/// problem, the `False` ("ok") variant otherwise.
fn wanted_conditions(totals: &ContentTotals, now: &str) -> Vec<Value> {
    let join_counts = |m: &BTreeMap<String, usize>, fmt: &dyn Fn(&str, usize) -> String| {
        m.iter().filter(|(_, n)| **n > 0).map(|(k, n)| fmt(k, *n)).collect::<Vec<_>>().join(", ")
    };
    CONDITION_TYPES
        .iter()
        .map(|kind| match *kind {
            "NamespaceDeletionDiscoveryFailure" => {
                condition(kind, "False", "ResourcesDiscovered", "All resources successfully discovered".into(), now)
            }
            "NamespaceDeletionGroupVersionParsingFailure" => {
                condition(kind, "False", "ParsedGroupVersions", "All legacy kube types successfully parsed".into(), now)
            }
            "NamespaceDeletionContentFailure" if !totals.failures.is_empty() => condition(
                kind,
                "True",
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    totals.failures.len(),
                    totals.failures.join(", ")
                ),
                now,
            ),
            "NamespaceDeletionContentFailure" => condition(
                kind,
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
                now,
            ),
            "NamespaceContentRemaining" if !totals.remaining.is_empty() => condition(
                kind,
                "True",
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    join_counts(&totals.remaining, &|k, n| format!("{k} has {n} resource instances"))
                ),
                now,
            ),
            "NamespaceContentRemaining" => {
                condition(kind, "False", "ContentRemoved", "All content successfully removed".into(), now)
            }
            "NamespaceFinalizersRemaining" if !totals.finalizers.is_empty() => condition(
                kind,
                "True",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    join_counts(&totals.finalizers, &|k, n| format!("{k} in {n} resource instances"))
                ),
                now,
            ),
            _ => condition(
                kind,
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
                now,
            ),
        })
        .collect()
}

/// `ns` with its status conditions brought up to date with `totals`, or `None` when they already
/// say the same. `lastTransitionTime` moves only when a condition's status changes, as upstream.
pub fn with_conditions(ns: &Value, totals: &ContentTotals, now: &str) -> Option<Value> {
    let existing: Vec<Value> = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let mut conditions = existing.clone();
    for wanted in wanted_conditions(totals, now) {
        match conditions.iter_mut().find(|c| c["type"] == wanted["type"]) {
            None => conditions.push(wanted),
            Some(old) => {
                if old["status"] != wanted["status"] {
                    *old = wanted;
                } else {
                    old["reason"] = wanted["reason"].clone();
                    old["message"] = wanted["message"].clone();
                }
            }
        }
    }
    if conditions == existing {
        return None;
    }
    let mut next = ns.clone();
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    next["status"]["conditions"] = json!(conditions);
    Some(next)
}

/// `ns` without the `kubernetes` entry of `spec.finalizers`.
pub fn without_kubernetes_finalizer(ns: &Value) -> Value {
    let mut next = ns.clone();
    if let Some(list) = next.get_mut("spec").and_then(|s| s.get_mut("finalizers")).and_then(Value::as_array_mut) {
        list.retain(|f| f != KUBERNETES_FINALIZER);
    }
    next
}

fn has_kubernetes_finalizer(ns: &Value) -> bool {
    ns["spec"]["finalizers"].as_array().is_some_and(|l| l.iter().any(|f| f == KUBERNETES_FINALIZER))
}

fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].as_str().is_some_and(|s| !s.is_empty())
}

/// How long to wait before looking at a namespace whose content is not gone yet.
pub fn retry_delay(totals: &ContentTotals, now: DateTime<Utc>) -> Duration {
    if !totals.failures.is_empty() {
        return ERROR_RETRY;
    }
    match totals.latest_deadline {
        Some(deadline) if deadline > now => {
            (deadline - now).to_std().map(|d| d + MIN_WAIT).unwrap_or(DEFAULT_WAIT).clamp(MIN_WAIT, MAX_WAIT)
        }
        _ => DEFAULT_WAIT,
    }
}

/// The namespace of a namespaced object's store key under `def`.
fn namespace_of_key<'k>(def: &ResourceDef, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(def.key_prefix().as_str())?.split_once('/').map(|(ns, _)| ns)
}

/// Where a namespace's deletion stands after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Nothing more for this task to do.
    Done,
    /// Content remains; look again after this long (or on a pod event).
    Wait(Duration),
}

/// Which watch a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Namespaces,
    Pods,
}

struct NamespaceCleanup {
    objects: ObjectStore,
    namespaces: &'static ResourceDef,
    pods: &'static ResourceDef,
}

/// Runs the namespace cleanup task until `shutdown` resolves. Start it on every replica next to the
/// API server; only the Raft leader's instance does any work.
pub async fn run_namespace_cleanup(objects: ObjectStore, shutdown: impl Future<Output = ()>) {
    let task = match NamespaceCleanup::new(objects) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "namespace cleanup cannot start");
            return;
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = task.run() => {}
    }
}

/// Forwards a watcher's batches into `tx` from its own task, so that the select loop never cancels a
/// watcher in the middle of reading history.
fn forward(mut watcher: Watcher, source: Source, tx: mpsc::Sender<(Source, Result<WatchBatch, StoreError>)>) {
    tokio::spawn(async move {
        loop {
            let batch = tokio::select! {
                _ = tx.closed() => return,
                b = watcher.next() => b,
            };
            let failed = batch.is_err();
            if tx.send((source, batch)).await.is_err() || failed {
                return;
            }
        }
    });
}

impl NamespaceCleanup {
    fn new(objects: ObjectStore) -> Result<Self, CleanupError> {
        let namespaces = resources::find("", "v1", "namespaces").ok_or(CleanupError::MissingResource("namespaces"))?;
        let pods = resources::find("", "v1", "pods").ok_or(CleanupError::MissingResource("pods"))?;
        Ok(Self { objects, namespaces, pods })
    }

    fn store_error(namespace: &str) -> impl Fn(ApiError) -> CleanupError + '_ {
        move |source| CleanupError::Store { namespace: namespace.to_string(), source }
    }

    async fn run(&self) {
        loop {
            // Watch from the current revision; the full pass below reads at a later one, so nothing
            // between the two is missed (a duplicate wake-up is harmless).
            let start = self.objects.revision() + 1;
            let (tx, mut rx) = mpsc::channel(64);
            forward(self.objects.watch(self.namespaces, None, start), Source::Namespaces, tx.clone());
            forward(self.objects.watch(self.pods, None, start), Source::Pods, tx);
            let mut due: BTreeMap<String, Instant> = BTreeMap::new();
            let mut was_leader = false;
            let mut next_resync = Instant::now();
            loop {
                let now = Instant::now();
                let leader = self.objects.store().is_leader();
                if leader && (!was_leader || now >= next_resync) {
                    match self.terminating_namespaces().await {
                        Ok(names) => {
                            for n in names {
                                due.entry(n).or_insert(now);
                            }
                            next_resync = now + RESYNC_INTERVAL;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "listing namespaces for cleanup failed");
                            next_resync = now + ERROR_RETRY;
                        }
                    }
                }
                was_leader = leader;
                if leader {
                    self.work_due(&mut due).await;
                }
                let now = Instant::now();
                // Followers only wake to check whether they have become the leader.
                let mut wake = now + LEADER_CHECK_INTERVAL;
                if leader {
                    wake = wake.min(next_resync);
                    if let Some(first) = due.values().min() {
                        wake = wake.min(*first);
                    }
                }
                let batch = tokio::select! {
                    _ = tokio::time::sleep_until(wake) => continue,
                    b = rx.recv() => b,
                };
                match batch {
                    Some((source, Ok(batch))) => self.note_events(source, &batch, &mut due),
                    Some((_, Err(e))) => {
                        tracing::debug!(error = %e, "namespace cleanup watch ended; resubscribing");
                        break;
                    }
                    None => break,
                }
            }
            // A compacted or closed watch: start over with a full pass after a short pause.
            tokio::time::sleep(ERROR_RETRY).await;
        }
    }

    /// Marks namespaces that a watch event concerns as due now.
    fn note_events(&self, source: Source, batch: &WatchBatch, due: &mut BTreeMap<String, Instant>) {
        let now = Instant::now();
        for ev in &batch.events {
            match source {
                Source::Namespaces => {
                    if ev.kind != EventKind::Put {
                        continue;
                    }
                    let Ok(ns) = self.objects.decode(self.namespaces, &ev.kv) else { continue };
                    if is_deleting(&ns) {
                        due.insert(objects::meta_str(&ns, "name").to_string(), now);
                    }
                }
                Source::Pods => {
                    let key = String::from_utf8_lossy(&ev.kv.key);
                    if let Some(entry) = namespace_of_key(self.pods, &key).and_then(|ns| due.get_mut(ns)) {
                        *entry = now;
                    }
                }
            }
        }
    }

    async fn terminating_namespaces(&self) -> Result<Vec<String>, ApiError> {
        let page = self.objects.list(self.namespaces, None, &ListRead::default(), is_deleting).await?;
        Ok(page.items.iter().map(|ns| objects::meta_str(ns, "name").to_string()).collect())
    }

    /// Works on every namespace whose time has come, rescheduling those still waiting.
    async fn work_due(&self, due: &mut BTreeMap<String, Instant>) {
        let now = Instant::now();
        let ready: Vec<String> = due.iter().filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
        for name in ready {
            due.remove(&name);
            match self.finalize(&name).await {
                Ok(Progress::Done) => tracing::debug!(namespace = %name, "namespace cleanup finished"),
                Ok(Progress::Wait(after)) => {
                    due.insert(name, Instant::now() + after);
                }
                Err(e) => {
                    tracing::warn!(namespace = %name, error = %e, "namespace cleanup failed; retrying");
                    due.insert(name, Instant::now() + ERROR_RETRY);
                }
            }
        }
    }

    /// One step of a namespace's deletion: empty it, then release the `kubernetes` finalizer.
    async fn finalize(&self, name: &str) -> Result<Progress, CleanupError> {
        let err = Self::store_error(name);
        let Some(ns) = self.objects.get(self.namespaces, None, name, false).await.map_err(&err)? else {
            return Ok(Progress::Done);
        };
        if !is_deleting(&ns) {
            return Ok(Progress::Done);
        }
        if !has_kubernetes_finalizer(&ns) {
            if ns["spec"]["finalizers"].as_array().is_none_or(|f| f.is_empty()) {
                // Our part was done before (perhaps by a previous leader): make sure it is gone.
                match delete_object(&self.objects, self.namespaces, None, name, &DeleteOptions::default()).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(err(e)),
                }
            }
            return Ok(Progress::Done);
        }
        // Passes until one finds nothing, so content created while the namespace turned
        // Terminating is caught too.
        let mut totals = ContentTotals::default();
        for _ in 0..3 {
            totals = self.delete_content(name).await;
            if !totals.all_removed() || totals.is_empty_namespace() {
                break;
            }
        }
        if !totals.is_empty_namespace() {
            tracing::debug!(namespace = %name, remaining = ?totals.remaining, failures = ?totals.failures, "namespace content remains");
            self.record_conditions(name, &totals).await?;
            return Ok(Progress::Wait(retry_delay(&totals, Utc::now())));
        }
        self.release(name).await?;
        Ok(Progress::Done)
    }

    /// Deletes every namespaced object in `ns` with default options.
    async fn delete_content(&self, ns: &str) -> ContentTotals {
        let mut totals = ContentTotals::default();
        let options = DeleteOptions::default();
        // `bindings` is a write-only view of pods; nothing is stored under it.
        for def in RESOURCES.iter().filter(|d| d.namespaced && !(d.group.is_empty() && d.resource == "bindings")) {
            let page = match self.objects.list(def, Some(ns), &ListRead::default(), |_| true).await {
                Ok(p) => p,
                Err(e) => {
                    totals.failures.push(format!("listing {}: {}", def.qualified(), e.message));
                    continue;
                }
            };
            for obj in page.items {
                totals.found += 1;
                let name = objects::meta_str(&obj, "name");
                match delete_object(&self.objects, def, Some(ns), name, &options).await {
                    Ok(outcome) if outcome.removed => {}
                    Ok(outcome) => totals.record_remaining(def, &outcome.object),
                    Err(e) if e.code == 404 => {}
                    Err(e) => {
                        totals.failures.push(format!("deleting {} {name}: {}", def.qualified(), e.message));
                        totals.record_remaining(def, &obj);
                    }
                }
            }
        }
        totals
    }

    /// Writes the namespace's status conditions if they changed.
    async fn record_conditions(&self, name: &str, totals: &ContentTotals) -> Result<(), CleanupError> {
        let err = Self::store_error(name);
        for _ in 0..16 {
            let Some(ns) = self.objects.get(self.namespaces, None, name, false).await.map_err(&err)? else {
                return Ok(());
            };
            let Some(next) = with_conditions(&ns, totals, &objects::now_rfc3339()) else { return Ok(()) };
            let rv = objects::resource_version(&ns).map_err(&err)?.unwrap_or(0);
            if self.objects.replace_if(self.namespaces, None, name, rv, next).await.map_err(&err)?.is_some() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Removes the `kubernetes` finalizer; the namespace goes with it unless other finalizers remain.
    async fn release(&self, name: &str) -> Result<(), CleanupError> {
        let err = Self::store_error(name);
        for _ in 0..16 {
            let Some(ns) = self.objects.get(self.namespaces, None, name, false).await.map_err(&err)? else {
                return Ok(());
            };
            if !has_kubernetes_finalizer(&ns) {
                return Ok(());
            }
            let rv = objects::resource_version(&ns).map_err(&err)?.unwrap_or(0);
            let released = without_kubernetes_finalizer(&ns);
            let next =
                with_conditions(&released, &ContentTotals::default(), &objects::now_rfc3339()).unwrap_or(released);
            let written =
                replace_or_finalize(&self.objects, self.namespaces, None, name, &ns, rv, next).await.map_err(&err)?;
            if written.is_some() {
                tracing::info!(namespace = %name, "namespace emptied and released");
                return Ok(());
            }
        }
        Err(err(ApiError::conflict("", "namespaces", name, "too many concurrent updates, try again")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals_with_pods() -> ContentTotals {
        let pods = resources::find("", "v1", "pods").expect("pods");
        let cms = resources::find("", "v1", "configmaps").expect("configmaps");
        let mut t = ContentTotals { found: 3, ..Default::default() };
        t.record_remaining(pods, &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:30Z"}}));
        t.record_remaining(pods, &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:10Z"}}));
        t.record_remaining(cms, &json!({"metadata": {"finalizers": ["example.com/x"]}}));
        t
    }

    fn condition_of<'a>(ns: &'a Value, kind: &str) -> &'a Value {
        ns["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == kind)).expect(kind)
    }

    #[test]
    fn totals_count_remaining_content_like_upstream() {
        let t = totals_with_pods();
        assert_eq!(t.remaining.get("pods."), Some(&2));
        assert_eq!(t.remaining.get("configmaps."), Some(&1));
        assert_eq!(t.finalizers.get("example.com/x"), Some(&1));
        assert_eq!(t.latest_deadline.map(|d| d.to_rfc3339()), Some("2026-01-01T00:00:30+00:00".to_string()));
        assert!(!t.is_empty_namespace());
        assert!(ContentTotals::default().is_empty_namespace());
    }

    #[test]
    fn conditions_report_what_remains_and_change_only_when_needed() {
        let ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        let t = totals_with_pods();
        let with = with_conditions(&ns, &t, "2026-01-01T00:00:00Z").expect("changed");
        let remaining = condition_of(&with, "NamespaceContentRemaining");
        assert_eq!(remaining["status"], "True");
        assert_eq!(remaining["reason"], "SomeResourcesRemain");
        assert_eq!(
            remaining["message"],
            "Some resources are remaining: configmaps. has 1 resource instances, pods. has 2 resource instances"
        );
        let fin = condition_of(&with, "NamespaceFinalizersRemaining");
        assert_eq!(
            fin["message"],
            "Some content in the namespace has finalizers remaining: example.com/x in 1 resource instances"
        );
        assert_eq!(condition_of(&with, "NamespaceDeletionContentFailure")["status"], "False");
        assert_eq!(with["status"]["phase"], "Terminating");
        assert_eq!(with["status"]["conditions"].as_array().map(Vec::len), Some(CONDITION_TYPES.len()));
        // The same totals later: nothing to write.
        assert_eq!(with_conditions(&with, &t, "2026-01-01T00:01:00Z"), None);
        // Content gone: the condition flips and its transition time moves; others keep theirs.
        let clean = with_conditions(&with, &ContentTotals::default(), "2026-01-01T00:02:00Z").expect("changed");
        let remaining = condition_of(&clean, "NamespaceContentRemaining");
        assert_eq!(
            (remaining["status"].as_str(), remaining["reason"].as_str()),
            (Some("False"), Some("ContentRemoved"))
        );
        assert_eq!(remaining["lastTransitionTime"], "2026-01-01T00:02:00Z");
        assert_eq!(
            condition_of(&clean, "NamespaceDeletionDiscoveryFailure")["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        let failed = ContentTotals { found: 1, failures: vec!["deleting pods p: boom".into()], ..Default::default() };
        let f = with_conditions(&ns, &failed, "t").expect("changed");
        assert_eq!(condition_of(&f, "NamespaceDeletionContentFailure")["reason"], "ContentDeletionFailed");
    }

    #[test]
    fn finalizer_removal_keeps_other_finalizers() {
        let ns = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes", "example.com/y"]}});
        assert!(has_kubernetes_finalizer(&ns));
        let released = without_kubernetes_finalizer(&ns);
        assert_eq!(released["spec"]["finalizers"], json!(["example.com/y"]));
        assert!(!has_kubernetes_finalizer(&released));
        let bare = json!({"metadata": {"name": "x"}});
        assert_eq!(without_kubernetes_finalizer(&bare), bare);
    }

    #[test]
    fn retry_delay_follows_grace_periods() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("time").with_timezone(&Utc);
        let t = totals_with_pods();
        assert_eq!(retry_delay(&t, now), MAX_WAIT, "30 s of grace left is capped");
        let soon = now + chrono::Duration::seconds(2);
        let short = ContentTotals { latest_deadline: Some(soon), ..t.clone() };
        assert_eq!(retry_delay(&short, now), Duration::from_secs(3));
        let past = ContentTotals { latest_deadline: Some(now - chrono::Duration::seconds(5)), ..t.clone() };
        assert_eq!(retry_delay(&past, now), DEFAULT_WAIT);
        let failed = ContentTotals { failures: vec!["x".into()], ..t };
        assert_eq!(retry_delay(&failed, now), ERROR_RETRY);
    }

    #[test]
    fn pod_keys_name_their_namespace() {
        let pods = resources::find("", "v1", "pods").expect("pods");
        assert_eq!(namespace_of_key(pods, "/registry/core/pods/team-a/web-1"), Some("team-a"));
        assert_eq!(namespace_of_key(pods, "/registry/core/configmaps/team-a/c"), None);
        assert_eq!(namespace_of_key(pods, "/registry/core/pods/"), None);
    }
}
