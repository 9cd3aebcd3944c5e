//! DELETE semantics, as upstream's generic registry and pod strategy define them: `DeleteOptions`
//! (JSON body or query parameters), preconditions, graceful deletion of pods bound to a node,
//! finalizers (including the garbage collector's `orphan` and `foregroundDeletion`), namespaces
//! entering `Terminating`, and removing an object once an update drops its last finalizer.
//!
//! Owns the decisions (`DeleteOptions::parse`, `plan_delete`, `should_delete_during_update`, all pure)
//! and a thin compare-and-swap driver over `ObjectStore`. Must not depend on hyper, TLS or the
//! namespace cleanup task (which calls into this module, not the other way round).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::handlers::{decode_body, Handlers, JsonReply, ResourceRequest};
use super::objects;
use super::query::{parse_bool, Query};
use super::resources::ResourceDef;
use super::status::{ApiError, Cause};
use super::storage::ObjectStore;

/// Finalizer the garbage collector handles for `propagationPolicy=Orphan`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Finalizer the garbage collector handles for `propagationPolicy=Foreground`.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
/// Grace period of a pod whose spec does not say (upstream's defaulting of
/// `terminationGracePeriodSeconds`).
pub const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

/// Why a delete request is refused before or while deciding what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeletionError {
    #[error("invalid DeleteOptions: {0}")]
    BadOptions(String),
    #[error("unsupported dryRun value {0:?}: only All is allowed")]
    UnsupportedDryRun(String),
    #[error("propagationPolicy: Unsupported value: {0:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"")]
    UnsupportedPropagation(String),
    #[error("propagationPolicy: Invalid value: {0:?}: orphanDependents and deletionPropagation cannot be both set")]
    OrphanAndPropagation(String),
    #[error("Precondition failed: UID in precondition: {expected}, UID in object meta: {actual}")]
    UidPrecondition { expected: String, actual: String },
    #[error(
        "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {actual}"
    )]
    ResourceVersionPrecondition { expected: String, actual: String },
}

impl DeletionError {
    /// The API error for a delete of `name` of `def`.
    pub fn into_api_error(self, def: &ResourceDef, name: &str) -> ApiError {
        let message = self.to_string();
        match self {
            DeletionError::BadOptions(_) | DeletionError::UnsupportedDryRun(_) => ApiError::bad_request(message),
            DeletionError::UnsupportedPropagation(_) | DeletionError::OrphanAndPropagation(_) => {
                let (field, detail) = message.split_once(": ").unwrap_or(("propagationPolicy", &message));
                let reason = if matches!(self, DeletionError::UnsupportedPropagation(_)) {
                    "FieldValueNotSupported"
                } else {
                    "FieldValueInvalid"
                };
                ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    vec![Cause { reason, field: field.to_string(), message: detail.to_string() }],
                )
            }
            DeletionError::UidPrecondition { .. } | DeletionError::ResourceVersionPrecondition { .. } => {
                ApiError::conflict(def.group, def.resource, name, &message)
            }
        }
    }
}

/// How dependents of a deleted object are handled by the garbage collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl std::str::FromStr for Propagation {
    type Err = DeletionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(DeletionError::UnsupportedPropagation(other.to_string())),
        }
    }
}

/// `meta.k8s.io/v1` `DeleteOptions`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Seconds before the object is removed; negative values count as 1, as upstream.
    pub grace_period_seconds: Option<i64>,
    pub propagation: Option<Propagation>,
    /// The deprecated form of `propagation` (true: Orphan).
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

fn bad(what: &str, v: &Value) -> DeletionError {
    DeletionError::BadOptions(format!("{what} must be {}, got {v}", expected_type(what)))
}

fn expected_type(what: &str) -> &'static str {
    match what {
        "gracePeriodSeconds" => "an integer",
        "orphanDependents" => "a boolean",
        "dryRun" => "a list of strings",
        "preconditions" => "an object",
        _ => "a string",
    }
}

/// A field of the body, `None` when absent or null.
fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

impl DeleteOptions {
    /// Options from a decoded JSON body (`DeleteOptions`, with or without `kind`) and the query string.
    /// A field set in the body wins over the same query parameter.
    pub fn parse(query: &Query, body: Option<&Value>) -> Result<Self, DeletionError> {
        let empty = json!({});
        let body = body.unwrap_or(&empty);
        if !body.is_object() {
            return Err(DeletionError::BadOptions(format!("the body must be a JSON object, got {body}")));
        }
        match body.get("kind").and_then(Value::as_str) {
            None | Some("") | Some("DeleteOptions") => {}
            Some(other) => {
                return Err(DeletionError::BadOptions(format!(
                    "the body has kind {other:?}; a DELETE body must be a DeleteOptions"
                )))
            }
        }
        let grace_period_seconds =
            match field(body, "gracePeriodSeconds") {
                Some(v) => Some(v.as_i64().ok_or_else(|| bad("gracePeriodSeconds", v))?),
                None => match query.get("gracePeriodSeconds").filter(|s| !s.is_empty()) {
                    Some(s) => Some(s.parse::<i64>().map_err(|_| {
                        DeletionError::BadOptions(format!("gracePeriodSeconds={s:?} is not an integer"))
                    })?),
                    None => None,
                },
            };
        let policy = match field(body, "propagationPolicy") {
            Some(v) => Some(v.as_str().ok_or_else(|| bad("propagationPolicy", v))?.to_string()),
            None => query.get("propagationPolicy").filter(|s| !s.is_empty()).map(str::to_string),
        };
        let orphan_dependents = match field(body, "orphanDependents") {
            Some(v) => Some(v.as_bool().ok_or_else(|| bad("orphanDependents", v))?),
            None => match query.get("orphanDependents").filter(|s| !s.is_empty()) {
                Some(s) => Some(
                    parse_bool(s)
                        .ok_or_else(|| DeletionError::BadOptions(format!("orphanDependents={s:?} is not a boolean")))?,
                ),
                None => None,
            },
        };
        let propagation = match &policy {
            Some(p) if orphan_dependents.is_some() => return Err(DeletionError::OrphanAndPropagation(p.clone())),
            Some(p) => Some(p.parse()?),
            None => None,
        };
        let preconditions = field(body, "preconditions").unwrap_or(&empty);
        if !preconditions.is_object() {
            return Err(bad("preconditions", preconditions));
        }
        let precondition = |name: &str| {
            field(preconditions, name).map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(name, v))).transpose()
        };
        let dry_run: Vec<String> = match field(body, "dryRun") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad("dryRun", v)))
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(bad("dryRun", v)),
            None => query.all("dryRun").into_iter().filter(|s| !s.is_empty()).map(str::to_string).collect(),
        };
        for d in &dry_run {
            if d != "All" {
                return Err(DeletionError::UnsupportedDryRun(d.clone()));
            }
        }
        Ok(DeleteOptions {
            grace_period_seconds,
            propagation,
            orphan_dependents,
            precondition_uid: precondition("uid")?,
            precondition_resource_version: precondition("resourceVersion")?,
            dry_run: !dry_run.is_empty(),
        })
    }

    /// The requested grace period with upstream's clamping of negative values to 1.
    fn grace(&self) -> Option<i64> {
        self.grace_period_seconds.map(|g| if g < 0 { 1 } else { g })
    }

    fn check_preconditions(&self, current: &Value) -> Result<(), DeletionError> {
        if let Some(uid) = &self.precondition_uid {
            let actual = objects::meta_str(current, "uid");
            if uid != actual {
                return Err(DeletionError::UidPrecondition { expected: uid.clone(), actual: actual.to_string() });
            }
        }
        if let Some(rv) = &self.precondition_resource_version {
            let actual = objects::meta_str(current, "resourceVersion");
            if rv != actual {
                return Err(DeletionError::ResourceVersionPrecondition {
                    expected: rv.clone(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// What a DELETE does to the stored object.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletePlan {
    /// Nothing to write: a deletion is already pending and this request cannot speed it up.
    Pending,
    /// Store this version (deletion timestamp, grace period, finalizers) and keep the object.
    Keep(Value),
    /// Remove the object from the store now.
    Remove,
}

fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn is_pod(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.kind == "Pod"
}

fn is_namespace(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.kind == "Namespace"
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn set_finalizers(obj: &mut Value, list: Vec<String>) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(list));
        }
    }
}

/// The grace period a first DELETE of a pod gets (upstream `podStrategy.CheckGracefulDelete`): the
/// requested one, else the pod's `terminationGracePeriodSeconds`; 0 for pods not bound to a node or
/// already terminal, since no node agent has anything to stop.
pub fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let mut period = requested
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(DEFAULT_POD_GRACE_SECONDS);
    if pod["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
        period = 0;
    }
    if matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
        period = 0;
    }
    if period < 0 {
        1
    } else {
        period
    }
}

/// Finalizers after applying the options' propagation (upstream
/// `deletionFinalizersForGarbageCollection`); `None` when they do not change.
fn gc_finalizers(current: &[String], options: &DeleteOptions) -> Option<Vec<String>> {
    let has = |f: &str| current.iter().any(|c| c == f);
    let from_finalizers = || {
        current.iter().find_map(|f| match f.as_str() {
            FINALIZER_ORPHAN => Some(Propagation::Orphan),
            FINALIZER_FOREGROUND => Some(Propagation::Foreground),
            _ => None,
        })
    };
    let effective = match (options.orphan_dependents, options.propagation) {
        (Some(true), _) => Some(Propagation::Orphan),
        (Some(false), _) => Some(Propagation::Background),
        (None, Some(p)) => Some(p),
        (None, None) => from_finalizers(),
    };
    let mut next: Vec<String> =
        current.iter().filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND).cloned().collect();
    match effective {
        Some(Propagation::Orphan) => next.push(FINALIZER_ORPHAN.to_string()),
        Some(Propagation::Foreground) => next.push(FINALIZER_FOREGROUND.to_string()),
        Some(Propagation::Background) | None => {}
    }
    let same = next.len() == current.len() && next.iter().all(|f| has(f));
    if same {
        None
    } else {
        Some(next)
    }
}

/// Marks an object whose deletion waits only on finalizers (upstream `markAsDeleting`).
fn mark_as_deleting(obj: &mut Value, now: DateTime<Utc>) {
    let existing = obj["metadata"]["deletionTimestamp"].as_str().and_then(parse_time);
    if existing.is_none() {
        bump_generation(obj);
    }
    if existing.is_none_or(|t| t > now) {
        obj["metadata"]["deletionTimestamp"] = json!(format_time(now));
    }
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
}

fn bump_generation(obj: &mut Value) {
    if let Some(g) = obj["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
        obj["metadata"]["generation"] = json!(g + 1);
    }
}

/// Decides what a DELETE with `options` does to `current` at time `now` (upstream `BeforeDelete`,
/// `Store.Delete` and the namespace registry's `Delete`).
pub fn plan_delete(
    def: &ResourceDef,
    current: &Value,
    options: &DeleteOptions,
    now: DateTime<Utc>,
) -> Result<DeletePlan, DeletionError> {
    options.check_preconditions(current)?;
    let deleting_since = current["metadata"]["deletionTimestamp"].as_str().filter(|s| !s.is_empty());
    if is_namespace(def) {
        if deleting_since.is_none() {
            // First DELETE: the namespace turns Terminating and the cleanup task empties it.
            let mut next = current.clone();
            next["metadata"]["deletionTimestamp"] = json!(format_time(now));
            next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            next["status"]["phase"] = json!("Terminating");
            if let Some(f) = gc_finalizers(&finalizers(current), options) {
                set_finalizers(&mut next, f);
            }
            return Ok(DeletePlan::Keep(next));
        }
        let spec_finalizers = current["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if spec_finalizers {
            return Ok(DeletePlan::Pending);
        }
    }
    let mut next = current.clone();
    // Some(p) when this delete is graceful (p seconds); a graceful delete with p = 0 removes at once.
    let mut graceful: Option<i64> = None;
    match deleting_since {
        Some(since) => {
            let grace = current["metadata"]["deletionGracePeriodSeconds"].as_i64().map(|g| if g < 0 { 1 } else { g });
            if let Some(grace) = grace.filter(|g| *g > 0) {
                // Graceful deletion is pending: a request may only shorten it.
                match options.grace() {
                    Some(p) if p < grace => {
                        let since = parse_time(since).unwrap_or(now);
                        let deadline = since - Duration::seconds(grace) + Duration::seconds(p);
                        next["metadata"]["deletionTimestamp"] = json!(format_time(deadline));
                        next["metadata"]["deletionGracePeriodSeconds"] = json!(p);
                        graceful = Some(p);
                    }
                    _ => return Ok(DeletePlan::Pending),
                }
            }
        }
        None if is_pod(def) => {
            let p = pod_grace_period(current, options.grace());
            next["metadata"]["deletionTimestamp"] = json!(format_time(now + Duration::seconds(p)));
            next["metadata"]["deletionGracePeriodSeconds"] = json!(p);
            bump_generation(&mut next);
            graceful = Some(p);
        }
        None => {}
    }
    if let Some(f) = gc_finalizers(&finalizers(&next), options) {
        set_finalizers(&mut next, f);
    }
    let pending_finalizers = !finalizers(&next).is_empty();
    if graceful.is_none() && pending_finalizers {
        mark_as_deleting(&mut next, now);
    }
    if pending_finalizers || graceful.is_some_and(|p| p > 0) {
        if &next == current {
            return Ok(DeletePlan::Pending);
        }
        return Ok(DeletePlan::Keep(next));
    }
    Ok(DeletePlan::Remove)
}

/// Whether an update that turns `existing` into `updated` must delete the object instead of storing
/// it: a deletion was requested, no grace period is running, and the update removed the last
/// finalizer (for namespaces, `spec.finalizers` must be empty as well). Upstream
/// `ShouldDeleteDuringUpdate` and `ShouldDeleteNamespaceDuringUpdate`.
pub fn should_delete_during_update(def: &ResourceDef, existing: &Value, updated: &Value) -> bool {
    if !finalizers(updated).is_empty() {
        return false;
    }
    if is_namespace(def) && updated["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
        return false;
    }
    if existing["metadata"]["deletionTimestamp"].as_str().is_none_or(str::is_empty) {
        return false;
    }
    existing["metadata"]["deletionGracePeriodSeconds"].as_i64().is_none_or(|g| g == 0)
}

/// The result of a DELETE.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteOutcome {
    /// The object as removed, or as it is now stored (with its deletion timestamp).
    pub object: Value,
    /// Whether the object is gone from the store.
    pub removed: bool,
}

fn too_many_retries(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::conflict(def.group, def.resource, name, "too many concurrent updates, try again")
}

/// Deletes (or starts deleting) one object with compare-and-swap writes, re-deciding after every
/// concurrent change. With `options.dry_run` nothing is written.
pub async fn delete_object(
    objects: &ObjectStore,
    def: &'static ResourceDef,
    namespace: Option<&str>,
    name: &str,
    options: &DeleteOptions,
) -> Result<DeleteOutcome, ApiError> {
    for _ in 0..16 {
        let (current, rv) = objects.get_existing(def, namespace, name).await?;
        let plan = plan_delete(def, &current, options, Utc::now()).map_err(|e| e.into_api_error(def, name))?;
        match plan {
            DeletePlan::Pending => return Ok(DeleteOutcome { object: current, removed: false }),
            DeletePlan::Keep(next) if options.dry_run => return Ok(DeleteOutcome { object: next, removed: false }),
            DeletePlan::Keep(next) => {
                if let Some(stored) = objects.replace_if(def, namespace, name, rv, next).await? {
                    return Ok(DeleteOutcome { object: stored, removed: false });
                }
            }
            DeletePlan::Remove if options.dry_run => return Ok(DeleteOutcome { object: current, removed: true }),
            DeletePlan::Remove => {
                if objects.delete_if(def, namespace, name, rv).await?.is_some() {
                    return Ok(DeleteOutcome { object: current, removed: true });
                }
            }
        }
    }
    Err(too_many_retries(def, name))
}

/// Stores `next` over `existing` (read at `existing_rv`), or removes the object when the update
/// drops its last finalizer while a deletion is pending (see [`should_delete_during_update`]).
/// `Ok(None)` means the object moved on and the caller should re-read and retry.
pub async fn replace_or_finalize(
    objects: &ObjectStore,
    def: &'static ResourceDef,
    namespace: Option<&str>,
    name: &str,
    existing: &Value,
    existing_rv: i64,
    next: Value,
) -> Result<Option<Value>, ApiError> {
    if !should_delete_during_update(def, existing, &next) {
        return objects.replace_if(def, namespace, name, existing_rv, next).await;
    }
    Ok(objects.delete_if(def, namespace, name, existing_rv).await?.map(|revision| {
        let mut gone = next;
        super::storage::set_resource_version(&mut gone, revision);
        gone
    }))
}

impl Handlers {
    /// DELETE of one object: parses `DeleteOptions` from the body or the query and deletes. Answers
    /// 200 with the object, or 202 when it is kept and the client asked `orphanDependents=false`.
    pub async fn delete_resource(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.target.def;
        let name =
            req.target.name.as_deref().ok_or_else(|| ApiError::method_not_allowed("DELETE needs an object name"))?;
        let body = if req.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(decode_body(req.content_type, req.body, self.max_body_bytes)?)
        };
        let options = DeleteOptions::parse(req.query, body.as_ref()).map_err(|e| e.into_api_error(def, name))?;
        let outcome = delete_object(&self.objects, def, req.target.namespace.as_deref(), name, &options).await?;
        let code = if !outcome.removed && options.orphan_dependents == Some(false) { 202 } else { 200 };
        Ok(JsonReply { code, body: outcome.object, warnings: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    fn pods() -> &'static ResourceDef {
        find("", "v1", "pods").expect("pods")
    }

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-01T00:00:00Z").expect("time")
    }

    fn q(s: &str) -> Query {
        Query::parse(Some(s)).expect("query")
    }

    fn bound_pod() -> Value {
        json!({
            "metadata": { "name": "p", "uid": "u1", "resourceVersion": "7", "generation": 1 },
            "spec": { "nodeName": "n1", "terminationGracePeriodSeconds": 30 },
            "status": { "phase": "Running" }
        })
    }

    fn keep(plan: DeletePlan) -> Value {
        match plan {
            DeletePlan::Keep(v) => v,
            other => panic!("expected Keep, got {other:?}"),
        }
    }

    #[test]
    fn options_come_from_body_or_query() {
        let o = DeleteOptions::parse(&q(""), Some(&json!({"propagationPolicy": "Background"}))).expect("parse");
        assert_eq!(o.propagation, Some(Propagation::Background));
        let o = DeleteOptions::parse(&q("gracePeriodSeconds=5&propagationPolicy=Foreground&dryRun=All"), None)
            .expect("parse");
        assert_eq!((o.grace_period_seconds, o.propagation, o.dry_run), (Some(5), Some(Propagation::Foreground), true));
        let body = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "gracePeriodSeconds": 0,
            "preconditions": {"uid": "u1", "resourceVersion": "7"}, "dryRun": ["All"]});
        let o = DeleteOptions::parse(&q("gracePeriodSeconds=9"), Some(&body)).expect("parse");
        assert_eq!(o.grace_period_seconds, Some(0), "the body wins over the query");
        assert_eq!(o.precondition_uid.as_deref(), Some("u1"));
        assert_eq!(o.precondition_resource_version.as_deref(), Some("7"));
        assert!(o.dry_run);
        let o = DeleteOptions::parse(&q("orphanDependents=true"), None).expect("parse");
        assert_eq!(o.orphan_dependents, Some(true));
    }

    #[test]
    fn bad_options_are_refused_with_upstream_codes() {
        let pods = pods();
        let e = DeleteOptions::parse(&q("propagationPolicy=Sideways"), None).expect_err("policy");
        assert_eq!(e, DeletionError::UnsupportedPropagation("Sideways".into()));
        let api = e.into_api_error(pods, "p");
        assert_eq!(api.code, 422);
        assert!(api.message.contains("propagationPolicy: Unsupported value: \"Sideways\""), "{}", api.message);
        let e = DeleteOptions::parse(&q("propagationPolicy=Orphan&orphanDependents=false"), None).expect_err("both");
        assert_eq!(e.into_api_error(pods, "p").code, 422);
        let e = DeleteOptions::parse(&q("dryRun=Some"), None).expect_err("dry run");
        assert_eq!(e.into_api_error(pods, "p").code, 400);
        let e = DeleteOptions::parse(&q("gracePeriodSeconds=soon"), None).expect_err("grace");
        assert_eq!(e.into_api_error(pods, "p").code, 400);
        let e = DeleteOptions::parse(&q(""), Some(&json!({"kind": "Pod"}))).expect_err("kind");
        assert_eq!(e.into_api_error(pods, "p").code, 400);
        let e = DeleteOptions::parse(&q(""), Some(&json!({"gracePeriodSeconds": "5"}))).expect_err("type");
        assert!(matches!(e, DeletionError::BadOptions(_)));
    }

    #[test]
    fn preconditions_conflict() {
        let opts = DeleteOptions { precondition_uid: Some("other".into()), ..Default::default() };
        let e = plan_delete(pods(), &bound_pod(), &opts, now()).expect_err("uid");
        let api = e.into_api_error(pods(), "p");
        assert_eq!(api.code, 409);
        assert!(api.message.contains("UID in precondition: other, UID in object meta: u1"), "{}", api.message);
        let opts = DeleteOptions { precondition_resource_version: Some("6".into()), ..Default::default() };
        assert!(matches!(
            plan_delete(pods(), &bound_pod(), &opts, now()),
            Err(DeletionError::ResourceVersionPrecondition { .. })
        ));
        let opts = DeleteOptions {
            precondition_uid: Some("u1".into()),
            precondition_resource_version: Some("7".into()),
            ..Default::default()
        };
        assert!(plan_delete(pods(), &bound_pod(), &opts, now()).is_ok());
    }

    #[test]
    fn grace_period_of_pods() {
        let pod = bound_pod();
        assert_eq!(pod_grace_period(&pod, None), 30);
        assert_eq!(pod_grace_period(&pod, Some(5)), 5);
        assert_eq!(pod_grace_period(&pod, Some(-3)), 1, "negative grace counts as 1");
        let mut no_spec_grace = pod.clone();
        no_spec_grace["spec"].as_object_mut().expect("spec").remove("terminationGracePeriodSeconds");
        assert_eq!(pod_grace_period(&no_spec_grace, None), DEFAULT_POD_GRACE_SECONDS);
        let mut unbound = pod.clone();
        unbound["spec"]["nodeName"] = json!("");
        assert_eq!(pod_grace_period(&unbound, Some(10)), 0);
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_grace_period(&done, None), 0);
    }

    #[test]
    fn bound_pods_are_deleted_gracefully_and_grace_only_shortens() {
        let pod = bound_pod();
        let first = keep(plan_delete(pods(), &pod, &DeleteOptions::default(), now()).expect("plan"));
        assert_eq!(first["metadata"]["deletionTimestamp"], "2026-01-01T00:00:30Z");
        assert_eq!(first["metadata"]["deletionGracePeriodSeconds"], 30);
        assert_eq!(first["metadata"]["generation"], 2);
        let later = now() + Duration::seconds(5);
        // Again without a grace period, or with a longer one: nothing changes.
        assert_eq!(plan_delete(pods(), &first, &DeleteOptions::default(), later), Ok(DeletePlan::Pending));
        let longer = DeleteOptions { grace_period_seconds: Some(60), ..Default::default() };
        assert_eq!(plan_delete(pods(), &first, &longer, later), Ok(DeletePlan::Pending));
        // A shorter grace period moves the deadline relative to when deletion started.
        let shorter = DeleteOptions { grace_period_seconds: Some(10), ..Default::default() };
        let second = keep(plan_delete(pods(), &first, &shorter, later).expect("plan"));
        assert_eq!(second["metadata"]["deletionTimestamp"], "2026-01-01T00:00:10Z");
        assert_eq!(second["metadata"]["deletionGracePeriodSeconds"], 10);
        // The node agent's final delete with grace 0 removes it.
        let zero = DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
        assert_eq!(plan_delete(pods(), &second, &zero, later), Ok(DeletePlan::Remove));
    }

    #[test]
    fn unbound_terminal_and_forced_pods_go_at_once() {
        let mut unbound = bound_pod();
        unbound["spec"].as_object_mut().expect("spec").remove("nodeName");
        assert_eq!(plan_delete(pods(), &unbound, &DeleteOptions::default(), now()), Ok(DeletePlan::Remove));
        let mut failed = bound_pod();
        failed["status"]["phase"] = json!("Failed");
        assert_eq!(plan_delete(pods(), &failed, &DeleteOptions::default(), now()), Ok(DeletePlan::Remove));
        let zero = DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
        assert_eq!(plan_delete(pods(), &bound_pod(), &zero, now()), Ok(DeletePlan::Remove));
    }

    #[test]
    fn finalizers_keep_objects_until_removed() {
        let cms = find("", "v1", "configmaps").expect("configmaps");
        let cm = json!({"metadata": {"name": "c", "resourceVersion": "3", "finalizers": ["example.com/x"]}});
        let kept = keep(plan_delete(cms, &cm, &DeleteOptions::default(), now()).expect("plan"));
        assert_eq!(kept["metadata"]["deletionTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(kept["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(
            plan_delete(cms, &kept, &DeleteOptions::default(), now() + Duration::seconds(1)),
            Ok(DeletePlan::Pending)
        );
        let mut finalized = kept.clone();
        finalized["metadata"]["finalizers"] = json!([]);
        assert!(should_delete_during_update(cms, &kept, &finalized));
        assert!(!should_delete_during_update(cms, &kept, &kept), "finalizers remain");
        assert!(!should_delete_during_update(cms, &cm, &json!({"metadata": {}})), "no deletion requested");
        let plain = json!({"metadata": {"name": "c"}});
        assert_eq!(plan_delete(cms, &plain, &DeleteOptions::default(), now()), Ok(DeletePlan::Remove));
        // A pod still in its grace period is not removed by an update, only by the final delete.
        let graceful = keep(plan_delete(pods(), &bound_pod(), &DeleteOptions::default(), now()).expect("plan"));
        assert!(!should_delete_during_update(pods(), &graceful, &graceful));
    }

    #[test]
    fn propagation_is_stored_as_finalizers() {
        let deploys = find("apps", "v1", "deployments").expect("deployments");
        let d = json!({"metadata": {"name": "d", "generation": 4}});
        let orphan = DeleteOptions { propagation: Some(Propagation::Orphan), ..Default::default() };
        let kept = keep(plan_delete(deploys, &d, &orphan, now()).expect("plan"));
        assert_eq!(finalizers(&kept), vec![FINALIZER_ORPHAN.to_string()]);
        assert_eq!(kept["metadata"]["generation"], 5);
        let fg = DeleteOptions { propagation: Some(Propagation::Foreground), ..Default::default() };
        let kept = keep(plan_delete(deploys, &d, &fg, now()).expect("plan"));
        assert_eq!(finalizers(&kept), vec![FINALIZER_FOREGROUND.to_string()]);
        let legacy = DeleteOptions { orphan_dependents: Some(true), ..Default::default() };
        assert_eq!(finalizers(&keep(plan_delete(deploys, &d, &legacy, now()).expect("plan"))), vec!["orphan"]);
        let bg = DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
        assert_eq!(plan_delete(deploys, &d, &bg, now()), Ok(DeletePlan::Remove));
        // Background on an object someone marked for orphaning drops that finalizer.
        let marked = json!({"metadata": {"name": "d", "finalizers": ["orphan", "x"]}});
        let kept = keep(plan_delete(deploys, &marked, &bg, now()).expect("plan"));
        assert_eq!(finalizers(&kept), vec!["x".to_string()]);
    }

    #[test]
    fn namespaces_terminate_then_go_once_spec_finalizers_are_empty() {
        let nss = find("", "v1", "namespaces").expect("namespaces");
        let ns =
            json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let terminating = keep(plan_delete(nss, &ns, &DeleteOptions::default(), now()).expect("plan"));
        assert_eq!(terminating["status"]["phase"], "Terminating");
        assert_eq!(terminating["metadata"]["deletionTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(plan_delete(nss, &terminating, &DeleteOptions::default(), now()), Ok(DeletePlan::Pending));
        let mut finalized = terminating.clone();
        finalized["spec"]["finalizers"] = json!([]);
        assert!(should_delete_during_update(nss, &terminating, &finalized));
        assert!(!should_delete_during_update(nss, &terminating, &terminating), "spec.finalizers remain");
        assert_eq!(plan_delete(nss, &finalized, &DeleteOptions::default(), now()), Ok(DeletePlan::Remove));
    }
}
