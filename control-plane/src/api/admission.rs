//! What every write does to an object between decoding the request and storing it: the schema check
//! `fieldValidation` asks for (unknown fields refused, warned about or dropped), per-kind defaults,
//! system fields, the Service strategy (linked cluster IP fields, allocated values kept, fields of
//! another type dropped), and per-kind validation. Invalid objects are refused before anything is stored.
//!
//! Pure; must not depend on the store or HTTP.

use serde_json::Value;

use super::objects::{self, SystemFields};
use super::resources::ResourceDef;
use super::services;
use super::status::ApiError;
use super::validation::{self, ValidationError};

/// The options kind upstream names in `fieldValidation` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteVerb {
    Create,
    Update,
    Patch,
}

impl WriteVerb {
    fn options_kind(self) -> &'static str {
        match self {
            Self::Create => "CreateOptions",
            Self::Update => "UpdateOptions",
            Self::Patch => "PatchOptions",
        }
    }
}

/// Applies `fieldValidation` (`mode`, the query value) to a request's object: type errors and, under
/// Strict, unknown fields are a 400; under Warn they become warnings; unknown fields are dropped
/// before storing under every mode, as upstream does. Returns the warnings.
pub fn check_fields(
    def: &ResourceDef,
    verb: WriteVerb,
    mode: Option<&str>,
    obj: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let mode = validation::field_validation_mode(mode).map_err(|e| options_error(verb, e))?;
    let unknown = validation::check_schema(def.group, def.version, def.kind, obj).map_err(decode_error)?;
    let any_unknown = !unknown.is_empty();
    let warnings = validation::unknown_field_outcome(mode, def.kind, def.version, unknown).map_err(decode_error)?;
    if any_unknown {
        // Pruning is a second typed round-trip: only pay for it when there is something to drop.
        validation::prune_unknown_fields(def.group, def.version, def.kind, obj);
    }
    Ok(warnings)
}

fn options_error(verb: WriteVerb, e: ValidationError) -> ApiError {
    match e.cause() {
        Some(cause) => ApiError::invalid("meta.k8s.io", verb.options_kind(), "", vec![cause]),
        None => ApiError::bad_request(e.to_string()),
    }
}

fn decode_error(e: ValidationError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// Prepares a new object: defaults, name and system fields, then validation. Returns its name.
pub fn admit_new(def: &ResourceDef, obj: &mut Value, sys: &SystemFields) -> Result<String, ApiError> {
    validation::default_object(def.group, def.kind, obj);
    let name = objects::prepare_create(def, obj, sys)?;
    if def.group == "batch" && def.kind == "Job" {
        validation::generate_job_selector(obj);
    }
    if services::is_services(def) {
        services::strategy::prepare_create(obj);
    }
    refuse_invalid(def, &name, validation::validate_object(def.group, def.kind, obj, None))?;
    Ok(name)
}

/// Prepares a changed object: defaults, what the write may not change taken from `current`, then
/// validation against `current` (immutable fields).
pub fn admit_changed(
    def: &ResourceDef,
    name: &str,
    current: &Value,
    next: &mut Value,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    validation::default_object(def.group, def.kind, next);
    objects::prepare_update(def, current, next, subresource);
    if services::is_services(def) {
        services::strategy::prepare_update(current, next);
    }
    let mut causes = objects::validate_labels(next);
    causes.extend(validation::validate_object(def.group, def.kind, next, Some(current)));
    refuse_invalid(def, name, causes)
}

fn refuse_invalid(def: &ResourceDef, name: &str, causes: Vec<super::status::Cause>) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def.group, def.kind, name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> &'static ResourceDef {
        super::super::resources::find("apps", "v1", "deployments").expect("deployments")
    }

    fn deployment() -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
            "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
            "spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}})
    }

    #[test]
    fn field_validation_modes() {
        let mut d = deployment();
        d["spec"]["bogus"] = json!(1);
        let strict =
            check_fields(deployments(), WriteVerb::Create, Some("Strict"), &mut d.clone()).expect_err("strict");
        assert_eq!(strict.code, 400);
        assert!(strict.message.contains("unknown field \"spec.bogus\""), "{}", strict.message);
        let mut warned = d.clone();
        let warnings = check_fields(deployments(), WriteVerb::Create, None, &mut warned).expect("warn");
        assert_eq!(warnings, vec!["unknown field \"spec.bogus\"".to_string()]);
        assert!(warned["spec"].get("bogus").is_none(), "unknown fields are not stored");
        let mut ignored = d.clone();
        assert!(check_fields(deployments(), WriteVerb::Create, Some("Ignore"), &mut ignored)
            .expect("ignore")
            .is_empty());
        let bad_mode = check_fields(deployments(), WriteVerb::Patch, Some("Loud"), &mut d).expect_err("mode");
        assert_eq!(bad_mode.code, 422);
        let mut typed = deployment();
        typed["spec"]["replicas"] = json!("three");
        assert_eq!(check_fields(deployments(), WriteVerb::Update, None, &mut typed).expect_err("type").code, 400);
    }

    #[test]
    fn new_and_changed_objects_are_defaulted_and_validated() {
        let sys = SystemFields::generate();
        let mut d = deployment();
        assert_eq!(admit_new(deployments(), &mut d, &sys).expect("valid"), "web");
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        let mut wrong = deployment();
        wrong["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        assert_eq!(admit_new(deployments(), &mut wrong, &sys).expect_err("selector").code, 422);
        let mut moved = d.clone();
        moved["spec"]["selector"]["matchLabels"]["app"] = json!("x");
        moved["spec"]["template"]["metadata"]["labels"]["app"] = json!("x");
        let e = admit_changed(deployments(), "web", &d, &mut moved, None).expect_err("immutable selector");
        assert!(e.message.contains("field is immutable"), "{}", e.message);
        let mut scaled = d.clone();
        scaled["spec"]["replicas"] = json!(3);
        admit_changed(deployments(), "web", &d, &mut scaled, None).expect("scaling is fine");
        assert_eq!(scaled["metadata"]["generation"], 2);
    }
}
