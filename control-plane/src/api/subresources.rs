//! The `scale` subresource of deployments, replica sets and stateful sets (an `autoscaling/v1`
//! `Scale` view of `spec.replicas`), and the `binding` and `eviction` subresources of pods (and the
//! `bindings` collection), with upstream's messages and status codes.
//!
//! Owns the conversions and checks (pure: `scale_of`, `requested_replicas`, `with_replicas`,
//! `bind_pod`) and thin compare-and-swap handlers on `Handlers`. Deleting for an eviction goes
//! through `deletion`. Must not depend on hyper or TLS.

use serde_json::{json, Value};

use super::deletion::{delete_object, DeleteOptions};
use super::handlers::{decode_body, Handlers, JsonReply, ResourceRequest};
use super::objects;
use super::patch::{apply_patch, PatchError, PatchKind};
use super::resources::ResourceDef;
use super::selector::LabelSelector;
use super::status::{self, ApiError, Cause};
use super::storage::ListRead;

/// Why a subresource request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubresourceError {
    #[error("spec.replicas: Invalid value: {0}: must be greater than or equal to 0")]
    NegativeReplicas(i64),
    #[error("spec.replicas: Invalid value: {0}: must be an integer")]
    ReplicasNotInteger(String),
    #[error("spec.selector of {name} is not a valid label selector: {reason}")]
    BadSelector { name: String, reason: String },
    #[error("target.name: Required value")]
    MissingTarget,
    #[error("target.kind: Unsupported value: {0:?}: supported values: \"Node\", \"<empty>\"")]
    UnsupportedTargetKind(String),
    #[error("pod {pod} is already assigned to node {node:?}")]
    AlreadyAssigned { pod: String, node: String },
    #[error("pod {0} is being deleted, cannot be assigned to a host")]
    BeingDeleted(String),
    #[error("pod {0} has non-empty .spec.schedulingGates")]
    SchedulingGated(String),
}

impl SubresourceError {
    /// The API error for a request on object `name`.
    pub fn into_api_error(self, name: &str) -> ApiError {
        let message = self.to_string();
        let cause = |reason: &'static str| {
            let (field, detail) = message.split_once(": ").unwrap_or(("", &message));
            vec![Cause { reason, field: field.to_string(), message: detail.to_string() }]
        };
        match self {
            SubresourceError::NegativeReplicas(_) | SubresourceError::ReplicasNotInteger(_) => {
                ApiError::invalid("autoscaling", "Scale", name, cause("FieldValueInvalid"))
            }
            SubresourceError::BadSelector { .. } => ApiError::internal(message),
            SubresourceError::MissingTarget => ApiError::invalid("", "Binding", name, cause("FieldValueRequired")),
            SubresourceError::UnsupportedTargetKind(_) => {
                ApiError::invalid("", "Binding", name, cause("FieldValueNotSupported"))
            }
            SubresourceError::AlreadyAssigned { .. }
            | SubresourceError::BeingDeleted(_)
            | SubresourceError::SchedulingGated(_) => ApiError::conflict("", "pods/binding", name, &message),
        }
    }
}

/// Replicas of a workload whose `spec.replicas` is unset (upstream defaulting).
const DEFAULT_REPLICAS: i64 = 1;

/// The `autoscaling/v1` `Scale` of a deployment, replica set or stateful set.
pub fn scale_of(parent: &Value) -> Result<Value, SubresourceError> {
    let meta = |f: &str| parent["metadata"].get(f).cloned().unwrap_or(Value::Null);
    let name = objects::meta_str(parent, "name");
    let selector = match parent["spec"].get("selector") {
        None | Some(Value::Null) => String::new(),
        Some(s) => LabelSelector::from_json(s)
            .map_err(|e| SubresourceError::BadSelector { name: name.to_string(), reason: e.to_string() })?
            .to_string(),
    };
    let mut metadata = json!({ "name": name });
    for f in ["namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if !meta(f).is_null() {
            metadata[f] = meta(f);
        }
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": { "replicas": parent["spec"]["replicas"].as_i64().unwrap_or(DEFAULT_REPLICAS) },
        "status": { "replicas": parent["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector },
    }))
}

/// The replicas a `Scale` asks for (absent: 0, as the Go type's zero value).
pub fn requested_replicas(scale: &Value) -> Result<i64, SubresourceError> {
    match scale["spec"].get("replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => Err(SubresourceError::NegativeReplicas(n)),
            Some(n) if n > i64::from(i32::MAX) => Err(SubresourceError::ReplicasNotInteger(v.to_string())),
            Some(n) => Ok(n),
            None => Err(SubresourceError::ReplicasNotInteger(v.to_string())),
        },
    }
}

/// `parent` with `spec.replicas` set.
pub fn with_replicas(parent: &Value, replicas: i64) -> Value {
    let mut next = parent.clone();
    if !next["spec"].is_object() {
        next["spec"] = json!({});
    }
    next["spec"]["replicas"] = json!(replicas);
    next
}

/// `pod` bound to the node a `Binding` names, with the binding's annotations and the
/// `PodScheduled=True` condition (upstream `setPodHostAndAnnotations`). A pod is bound only once.
pub fn bind_pod(pod: &Value, binding: &Value, now: &str) -> Result<Value, SubresourceError> {
    let name = objects::meta_str(pod, "name").to_string();
    let target = &binding["target"];
    let node = target["name"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(SubresourceError::MissingTarget);
    }
    match target["kind"].as_str().unwrap_or("") {
        "" | "Node" => {}
        other => return Err(SubresourceError::UnsupportedTargetKind(other.to_string())),
    }
    if pod["metadata"]["deletionTimestamp"].as_str().is_some_and(|s| !s.is_empty()) {
        return Err(SubresourceError::BeingDeleted(name));
    }
    let assigned = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if !assigned.is_empty() {
        return Err(SubresourceError::AlreadyAssigned { pod: name, node: assigned.to_string() });
    }
    if pod["spec"]["schedulingGates"].as_array().is_some_and(|g| !g.is_empty()) {
        return Err(SubresourceError::SchedulingGated(name));
    }
    let mut next = pod.clone();
    if !next["spec"].is_object() {
        next["spec"] = json!({});
    }
    next["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = binding["metadata"]["annotations"].as_object().filter(|a| !a.is_empty()) {
        if !next["metadata"]["annotations"].is_object() {
            next["metadata"]["annotations"] = json!({});
        }
        for (k, v) in annotations {
            next["metadata"]["annotations"][k] = v.clone();
        }
    }
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    if !next["status"]["conditions"].is_array() {
        next["status"]["conditions"] = json!([]);
    }
    let conditions = next["status"]["conditions"].as_array_mut().expect("conditions was just made an array");
    match conditions.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(c) => {
            if c["status"] != "True" {
                c["status"] = json!("True");
                c["lastTransitionTime"] = json!(now);
            }
            if let Some(o) = c.as_object_mut() {
                o.remove("reason");
                o.remove("message");
            }
        }
        None => conditions.push(json!({
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": now,
        })),
    }
    Ok(next)
}

/// Upstream's answer to an eviction that would violate a PodDisruptionBudget.
pub const EVICTION_BLOCKED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Admitted evictions a budget may hold before the disruption controller confirms them (upstream
/// `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// What an eviction must do about disruption budgets before deleting its pod.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetDecision {
    /// No budget is spent: delete the pod.
    Free,
    /// Spend one disruption: store `budget` (with one disruption less and the pod in
    /// `disruptedPods`) if the budget is still at `revision`, then delete the pod.
    Spend { name: String, revision: i64, budget: Value },
}

fn too_many_requests(cause: String) -> ApiError {
    let mut e = ApiError::with_code(429, "TooManyRequests", EVICTION_BLOCKED);
    e.details = Some(status::Details {
        causes: vec![Cause { reason: "DisruptionBudget", field: String::new(), message: cause }],
        ..Default::default()
    });
    e
}

fn is_pod_ready(pod: &Value) -> bool {
    let conditions = pod["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether evicting `pod` is allowed by the PodDisruptionBudgets of its namespace (`budgets`) that
/// select it, as upstream's eviction REST: pods that are finished, pending or already being deleted
/// are always evictable; a pod selected by more than one budget is refused with 500; an unready pod
/// is evictable when its budget is already met (`IfHealthyBudget`, the default) or its policy is
/// `AlwaysAllow`; otherwise the budget must allow a disruption (else 429 with a `DisruptionBudget`
/// cause) and the decision carries the decremented budget, which the caller stores with
/// compare-and-swap so two concurrent evictions cannot both spend the last disruption.
pub fn check_disruption_budgets(pod: &Value, budgets: &[Value], now: &str) -> Result<BudgetDecision, ApiError> {
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if matches!(phase, "Succeeded" | "Failed" | "Pending") || deleting {
        return Ok(BudgetDecision::Free);
    }
    let labels = objects::labels(pod);
    let matching: Vec<&Value> = budgets
        .iter()
        .filter(|b| match b["spec"].get("selector") {
            None | Some(Value::Null) => false,
            // policy/v1: an empty selector selects every pod of the namespace.
            Some(s) => LabelSelector::from_json(s).is_ok_and(|sel| sel.matches(&labels)),
        })
        .collect();
    let budget = match matching.as_slice() {
        [] => return Ok(BudgetDecision::Free),
        [one] => *one,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ))
        }
    };
    let name = objects::meta_str(budget, "name").to_string();
    let st = &budget["status"];
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    if !is_pod_ready(pod) {
        if budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow" {
            return Ok(BudgetDecision::Free);
        }
        let desired = int(&st["desiredHealthy"]);
        if int(&st["currentHealthy"]) >= desired && desired > 0 {
            return Ok(BudgetDecision::Free);
        }
    }
    let generation = budget["metadata"]["generation"].as_i64().unwrap_or(0);
    if st["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(too_many_requests(format!("The disruption budget {name} is still being processed by the server.")));
    }
    let allowed = int(&st["disruptionsAllowed"]);
    if allowed < 0 {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: pdb disruptions allowed is negative"
        )));
    }
    let disrupted = st["disruptedPods"].as_object().map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )));
    }
    if allowed == 0 {
        return Err(too_many_requests(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            int(&st["desiredHealthy"]),
            int(&st["currentHealthy"])
        )));
    }
    let revision = objects::resource_version(budget)?.unwrap_or(0);
    let mut next = budget.clone();
    next["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed == 1 {
        let conditions = next["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "DisruptionAllowed").collect();
        conditions.push(json!({
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "InsufficientPods",
            "message": "",
            "observedGeneration": st["observedGeneration"],
            "lastTransitionTime": now,
        }));
        next["status"]["conditions"] = json!(conditions);
    }
    if !next["status"]["disruptedPods"].is_object() {
        next["status"]["disruptedPods"] = json!({});
    }
    next["status"]["disruptedPods"][objects::meta_str(pod, "name")] = json!(now);
    Ok(BudgetDecision::Spend { name, revision, budget: next })
}

fn dry_run(req: &ResourceRequest<'_>) -> Result<bool, ApiError> {
    match req.query.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("unsupported dryRun value {other:?}: only All is allowed"))),
    }
}

fn object_name<'r>(req: &'r ResourceRequest<'_>) -> Result<&'r str, ApiError> {
    req.target.name.as_deref().ok_or_else(|| ApiError::method_not_allowed("this subresource needs an object name"))
}

fn modified(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::conflict(
        def.group,
        def.resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

fn patch_error(e: PatchError, name: &str) -> ApiError {
    let message = e.to_string();
    match e.http_status() {
        415 => ApiError::unsupported_media_type(&message),
        422 => ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            vec![Cause { reason: "FieldValueInvalid", field: "patch".into(), message }],
        ),
        _ => ApiError::bad_request(message),
    }
}

/// Checks a body's `apiVersion`/`kind` (filling them in when absent) and that its name, if any,
/// is the one on the URL.
fn check_body(
    req: &ResourceRequest<'_>,
    body: &mut Value,
    group: &str,
    versions: &[&str],
    kind: &str,
    name: &str,
) -> Result<(), ApiError> {
    objects::check_type(req.target.def, group, versions[0], kind, body).or_else(|e| {
        // Older versions of the same kind are accepted (policy/v1beta1 Eviction).
        let av = body["apiVersion"].as_str().unwrap_or("");
        let ok = versions[1..].iter().any(|v| av == format!("{group}/{v}")) && body["kind"] == kind;
        if ok {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    let body_name = objects::meta_str(body, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!("name in URL does not match name in {kind} object")));
    }
    Ok(())
}

impl Handlers {
    /// GET `<workload>/<name>/scale`.
    pub async fn get_scale(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.target.def;
        let name = object_name(req)?;
        let (parent, _) = self.objects.get_existing(def, req.target.namespace.as_deref(), name).await?;
        let scale = scale_of(&parent).map_err(|e| e.into_api_error(name))?;
        Ok(JsonReply { code: 200, body: scale, warnings: Vec::new() })
    }

    /// PUT `<workload>/<name>/scale` with a full `Scale` (kubectl sends it without a Content-Type);
    /// its `resourceVersion`, when set, must be the workload's.
    pub async fn update_scale(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let name = object_name(req)?;
        let mut wanted = decode_body(req.content_type, req.body, self.max_body_bytes)?;
        check_body(req, &mut wanted, "autoscaling", &["v1"], "Scale", name)?;
        self.rescale(req, |_| Ok(wanted.clone())).await
    }

    /// PATCH `<workload>/<name>/scale`: the patch applies to the `Scale` (strategic merge is plain
    /// merge here, as a `Scale` has no lists).
    pub async fn patch_scale(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let name = object_name(req)?.to_string();
        if req.body.len() > self.max_body_bytes {
            return Err(ApiError::too_large(format!(
                "patch is {} bytes, limit {}",
                req.body.len(),
                self.max_body_bytes
            )));
        }
        let ct = req.content_type.unwrap_or("");
        let kind = match PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))? {
            PatchKind::StrategicMerge => PatchKind::Merge,
            k => k,
        };
        let body = req.body.clone();
        self.rescale(req, |scale| {
            apply_patch(kind, scale, &body, "autoscaling", "Scale").map_err(|e| patch_error(e, &name))
        })
        .await
    }

    /// Reads the workload, derives the wanted `Scale` from its current one, and stores the new
    /// `spec.replicas` with compare-and-swap; answers the resulting `Scale`.
    async fn rescale(
        &self,
        req: &ResourceRequest<'_>,
        wanted_scale: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<JsonReply, ApiError> {
        let def = req.target.def;
        let ns = req.target.namespace.as_deref();
        let name = object_name(req)?;
        let dry = dry_run(req)?;
        let reply = |parent: &Value| {
            scale_of(parent)
                .map(|body| JsonReply { code: 200, body, warnings: Vec::new() })
                .map_err(|e| e.into_api_error(name))
        };
        for _ in 0..16 {
            let (current, current_rv) = self.objects.get_existing(def, ns, name).await?;
            let scale = scale_of(&current).map_err(|e| e.into_api_error(name))?;
            let wanted = wanted_scale(&scale)?;
            if objects::resource_version(&wanted)?.is_some_and(|rv| rv != current_rv) {
                return Err(modified(def, name));
            }
            let replicas = requested_replicas(&wanted).map_err(|e| e.into_api_error(name))?;
            let mut next = with_replicas(&current, replicas);
            objects::prepare_update(def, &current, &mut next, None);
            if next == current {
                return reply(&current);
            }
            if dry {
                return reply(&next);
            }
            if let Some(stored) = self.objects.replace_if(def, ns, name, current_rv, next).await? {
                return reply(&stored);
            }
        }
        Err(ApiError::conflict(def.group, def.resource, name, "too many concurrent updates, try again"))
    }

    /// POST `pods/<name>/binding`, or a `Binding` to the `bindings` collection: assigns the pod to a
    /// node once. Answers 201 with a `Status` of success.
    pub async fn create_binding(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let pods = super::resources::find("", "v1", "pods").ok_or_else(|| ApiError::internal("no pods resource"))?;
        let ns = req.target.namespace.as_deref().ok_or_else(|| ApiError::bad_request("a binding needs a namespace"))?;
        let mut binding = decode_body(req.content_type, req.body, self.max_body_bytes)?;
        let name = match &req.target.name {
            Some(n) => n.clone(),
            None => objects::meta_str(&binding, "name").to_string(),
        };
        if name.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value".into(),
                }],
            ));
        }
        check_body(req, &mut binding, "", &["v1"], "Binding", &name)?;
        let dry = dry_run(req)?;
        let want_uid = objects::meta_str(&binding, "uid").to_string();
        let want_rv = objects::meta_str(&binding, "resourceVersion").to_string();
        for _ in 0..16 {
            let pod = self
                .objects
                .get(pods, Some(ns), &name, false)
                .await?
                .ok_or_else(|| ApiError::not_found("", "pods", &name))?;
            let rv = objects::meta_str(&pod, "resourceVersion").to_string();
            let uid = objects::meta_str(&pod, "uid");
            if !want_uid.is_empty() && want_uid != uid {
                let why = format!("Precondition failed: UID in precondition: {want_uid}, UID in object meta: {uid}");
                return Err(ApiError::conflict("", "pods", &name, &why));
            }
            if !want_rv.is_empty() && want_rv != rv {
                let why = format!(
                    "Precondition failed: ResourceVersion in precondition: {want_rv}, ResourceVersion in object meta: {rv}"
                );
                return Err(ApiError::conflict("", "pods", &name, &why));
            }
            let next = bind_pod(&pod, &binding, &objects::now_rfc3339()).map_err(|e| e.into_api_error(&name))?;
            let current_rv = objects::resource_version(&pod)?.unwrap_or(0);
            if dry || self.objects.replace_if(pods, Some(ns), &name, current_rv, next).await?.is_some() {
                return Ok(JsonReply { code: 201, body: status::success(201), warnings: Vec::new() });
            }
        }
        Err(ApiError::conflict("", "pods", &name, "too many concurrent updates, try again"))
    }

    /// POST `pods/<name>/eviction` with a `policy/v1` `Eviction`: deletes the pod with the eviction's
    /// `deleteOptions` (gracefully, as any delete) once disruption budgets allow it. Answers 201 with a
    /// `Status` of success, as upstream.
    pub async fn create_eviction(&self, req: &ResourceRequest<'_>) -> Result<JsonReply, ApiError> {
        let def = req.target.def;
        let name = object_name(req)?;
        let ns = req.target.namespace.as_deref();
        let mut eviction = decode_body(req.content_type, req.body, self.max_body_bytes)?;
        check_body(req, &mut eviction, "policy", &["v1", "v1beta1"], "Eviction", name)?;
        let options = DeleteOptions::parse(req.query, eviction.get("deleteOptions").filter(|v| !v.is_null()))
            .map_err(|e| e.into_api_error(def, name))?;
        self.spend_disruption_budget(def, ns, name, dry_run(req)?).await?;
        delete_object(&self.objects, def, ns, name, &options).await?;
        Ok(JsonReply { code: 201, body: status::success(201), warnings: Vec::new() })
    }

    /// Checks the budgets covering pod `name` and, when one is spent, stores its decrement with
    /// compare-and-swap (re-reading pod and budgets when another eviction got there first).
    async fn spend_disruption_budget(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        dry: bool,
    ) -> Result<(), ApiError> {
        let budgets_def = super::resources::find("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| ApiError::internal("no poddisruptionbudgets resource"))?;
        for _ in 0..16 {
            let (pod, _) = self.objects.get_existing(def, ns, name).await?;
            let budgets = self.objects.list(budgets_def, ns, &ListRead::default(), |_| true).await?.items;
            match check_disruption_budgets(&pod, &budgets, &objects::now_rfc3339())? {
                BudgetDecision::Free => return Ok(()),
                BudgetDecision::Spend { .. } if dry => return Ok(()),
                BudgetDecision::Spend { name: budget_name, revision, budget } => {
                    if self.objects.replace_if(budgets_def, ns, &budget_name, revision, budget).await?.is_some() {
                        return Ok(());
                    }
                }
            }
        }
        Err(ApiError::conflict("", "pods", name, "too many concurrent evictions, try again"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "12",
                          "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 2, "labels": { "x": "y" } },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" },
                      "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["b", "a"] }] } },
            "status": { "replicas": 1 }
        })
    }

    #[test]
    fn scale_reflects_the_workload() {
        let scale = scale_of(&deployment()).expect("scale");
        assert_eq!(
            scale,
            json!({
                "kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": { "name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "12",
                              "creationTimestamp": "2026-01-01T00:00:00Z" },
                "spec": { "replicas": 2 },
                "status": { "replicas": 1, "selector": "app=web,tier in (a,b)" }
            })
        );
        let bare = json!({ "metadata": { "name": "s" }, "spec": {} });
        let scale = scale_of(&bare).expect("scale");
        assert_eq!(scale["spec"]["replicas"], DEFAULT_REPLICAS);
        assert_eq!(scale["status"], json!({ "replicas": 0, "selector": "" }));
        let broken = json!({ "metadata": { "name": "s" }, "spec": { "selector": { "matchLabels": { "a": 1 } } } });
        assert_eq!(scale_of(&broken).expect_err("bad selector").into_api_error("s").code, 500);
    }

    #[test]
    fn replicas_are_validated() {
        assert_eq!(requested_replicas(&json!({ "spec": { "replicas": 3 } })), Ok(3));
        assert_eq!(requested_replicas(&json!({ "spec": {} })), Ok(0));
        let neg = requested_replicas(&json!({ "spec": { "replicas": -1 } })).expect_err("negative");
        assert_eq!(neg, SubresourceError::NegativeReplicas(-1));
        let api = neg.into_api_error("web");
        assert_eq!(api.code, 422);
        assert_eq!(
            api.message,
            "Scale \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(requested_replicas(&json!({ "spec": { "replicas": "3" } })).is_err());
        assert!(requested_replicas(&json!({ "spec": { "replicas": 1.5 } })).is_err());
        let scaled = with_replicas(&deployment(), 5);
        assert_eq!(scaled["spec"]["replicas"], 5);
        assert_eq!(scaled["spec"]["selector"], deployment()["spec"]["selector"]);
    }

    fn pending_pod() -> Value {
        json!({ "metadata": { "name": "p", "uid": "u" }, "spec": { "containers": [] },
                "status": { "phase": "Pending", "conditions": [
                    { "type": "PodScheduled", "status": "False", "reason": "Unschedulable" } ] } })
    }

    #[test]
    fn binding_assigns_a_node_once() {
        let binding = json!({ "metadata": { "name": "p", "annotations": { "a": "b" } },
                              "target": { "kind": "Node", "name": "n1" } });
        let bound = bind_pod(&pending_pod(), &binding, "2026-01-01T00:00:00Z").expect("bind");
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(bound["metadata"]["annotations"]["a"], "b");
        assert_eq!(
            bound["status"]["conditions"],
            json!([{ "type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" }])
        );
        let again = bind_pod(&bound, &binding, "2026-01-01T00:00:01Z").expect_err("bound twice");
        assert_eq!(again, SubresourceError::AlreadyAssigned { pod: "p".into(), node: "n1".into() });
        let api = again.into_api_error("p");
        assert_eq!(api.code, 409);
        assert_eq!(
            api.message,
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\""
        );
        let no_conditions = json!({ "metadata": { "name": "p" }, "spec": {} });
        let bound = bind_pod(&no_conditions, &binding, "t").expect("bind");
        assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
        assert_eq!(bound["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn binding_refusals() {
        let pod = pending_pod();
        let no_target = json!({ "metadata": { "name": "p" }, "target": {} });
        let e = bind_pod(&pod, &no_target, "t").expect_err("target");
        assert_eq!(e.into_api_error("p").code, 422);
        let wrong_kind = json!({ "target": { "kind": "Pod", "name": "n1" } });
        assert!(matches!(bind_pod(&pod, &wrong_kind, "t"), Err(SubresourceError::UnsupportedTargetKind(_))));
        let ok = json!({ "target": { "name": "n1" } });
        let mut deleting = pod.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(bind_pod(&deleting, &ok, "t"), Err(SubresourceError::BeingDeleted("p".into())));
        let mut gated = pod.clone();
        gated["spec"]["schedulingGates"] = json!([{ "name": "g" }]);
        assert_eq!(bind_pod(&gated, &ok, "t").expect_err("gated").into_api_error("p").code, 409);
    }

    fn running_pod(ready: bool) -> Value {
        json!({
            "metadata": { "name": "p", "namespace": "ns", "labels": { "app": "web" } },
            "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
        })
    }

    fn budget(name: &str, selector: Value, allowed: i64, current: i64, desired: i64) -> Value {
        json!({
            "metadata": { "name": name, "namespace": "ns", "generation": 1, "resourceVersion": "7" },
            "spec": { "selector": selector, "minAvailable": desired },
            "status": { "observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": current,
                        "desiredHealthy": desired, "expectedPods": current }
        })
    }

    fn web() -> Value {
        json!({ "matchLabels": { "app": "web" } })
    }

    #[test]
    fn eviction_budget_decisions() {
        struct Case {
            name: &'static str,
            pod: Value,
            budgets: Vec<Value>,
            /// `Ok(true)` spends a disruption, `Ok(false)` is free, `Err(code)` refuses.
            want: Result<bool, u16>,
        }
        let mut pending = running_pod(true);
        pending["status"]["phase"] = json!("Pending");
        let mut deleting = running_pod(true);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut stale = budget("b", web(), 1, 3, 2);
        stale["metadata"]["generation"] = json!(2);
        let mut always = budget("b", web(), 0, 1, 3);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        let cases = [
            Case { name: "no budget", pod: running_pod(true), budgets: vec![], want: Ok(false) },
            Case {
                name: "budget of other pods",
                pod: running_pod(true),
                budgets: vec![budget("b", json!({ "matchLabels": { "app": "db" } }), 0, 3, 3)],
                want: Ok(false),
            },
            Case {
                name: "nil selector selects nothing",
                pod: running_pod(true),
                budgets: vec![budget("b", Value::Null, 0, 3, 3)],
                want: Ok(false),
            },
            Case {
                name: "empty selector selects all",
                pod: running_pod(true),
                budgets: vec![budget("b", json!({}), 0, 3, 3)],
                want: Err(429),
            },
            Case {
                name: "allowed",
                pod: running_pod(true),
                budgets: vec![budget("b", web(), 1, 3, 2)],
                want: Ok(true),
            },
            Case {
                name: "exhausted",
                pod: running_pod(true),
                budgets: vec![budget("b", web(), 0, 3, 3)],
                want: Err(429),
            },
            Case {
                name: "two budgets",
                pod: running_pod(true),
                budgets: vec![budget("a", web(), 1, 3, 2), budget("b", json!({}), 1, 3, 2)],
                want: Err(500),
            },
            Case {
                name: "pending pods ignore budgets",
                pod: pending,
                budgets: vec![budget("b", web(), 0, 3, 3)],
                want: Ok(false),
            },
            Case {
                name: "terminating pods ignore budgets",
                pod: deleting,
                budgets: vec![budget("b", web(), 0, 3, 3)],
                want: Ok(false),
            },
            Case {
                name: "unready pod of a met budget is free",
                pod: running_pod(false),
                budgets: vec![budget("b", web(), 0, 2, 2)],
                want: Ok(false),
            },
            Case {
                name: "unready pod of an unmet budget needs a disruption",
                pod: running_pod(false),
                budgets: vec![budget("b", web(), 0, 1, 2)],
                want: Err(429),
            },
            Case {
                name: "AlwaysAllow frees unready pods",
                pod: running_pod(false),
                budgets: vec![always],
                want: Ok(false),
            },
            Case {
                name: "status not caught up with the spec",
                pod: running_pod(true),
                budgets: vec![stale],
                want: Err(429),
            },
            Case {
                name: "negative",
                pod: running_pod(true),
                budgets: vec![budget("b", web(), -1, 3, 2)],
                want: Err(403),
            },
        ];
        for case in cases {
            let got = check_disruption_budgets(&case.pod, &case.budgets, "2026-01-01T00:00:00Z");
            let got = match got {
                Ok(BudgetDecision::Free) => Ok(false),
                Ok(BudgetDecision::Spend { .. }) => Ok(true),
                Err(e) => Err(e.code),
            };
            assert_eq!(got, case.want, "{}", case.name);
        }
    }

    #[test]
    fn blocked_eviction_reads_like_upstream() {
        let e = check_disruption_budgets(&running_pod(true), &[budget("web-pdb", web(), 0, 3, 3)], "t")
            .expect_err("blocked");
        let status = e.to_status();
        assert_eq!(status["code"], 429);
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
        assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            status["details"]["causes"][0]["message"],
            "The disruption budget web-pdb needs 3 healthy pods and has 3 currently"
        );
    }

    #[test]
    fn spending_decrements_and_records_the_pod() {
        let decision =
            check_disruption_budgets(&running_pod(true), &[budget("b", web(), 1, 3, 2)], "2026-01-01T00:00:09Z")
                .expect("allowed");
        let BudgetDecision::Spend { name, revision, budget } = decision else { panic!("expected a spend") };
        assert_eq!((name.as_str(), revision), ("b", 7));
        assert_eq!(budget["status"]["disruptionsAllowed"], 0);
        assert_eq!(budget["status"]["disruptedPods"]["p"], "2026-01-01T00:00:09Z");
        let condition = &budget["status"]["conditions"][0];
        assert_eq!((&condition["status"], &condition["reason"]), (&json!("False"), &json!("InsufficientPods")));
    }
}
