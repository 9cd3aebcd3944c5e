//! Server-side apply of one configuration by one field manager: merge into the live object, prune what
//! the manager stopped applying, detect conflicts with other managers, and record the new ownership
//! in `metadata.managedFields`.
//!
//! Owns the apply algorithm. Pure: no I/O. Must not depend on the HTTP layer or the store; the PATCH
//! handler reads the live object, calls [`apply`], then defaults, validates and persists the result.

use serde_json::Value;

use super::error::{ApplyError, FieldConflict};
use super::field_set::render_path;
use super::manager_name::check_patch_options;
use super::managers::{ManagedFields, ManagerEntry, OPERATION_APPLY, OPERATION_UPDATE};
use super::merge::{merge, prune};
use super::schema::FieldType;
use super::scope::Scope;
use super::walk::{compare, field_set_of, Strictness};

/// The manager that owns the fields of an object written before any ownership was recorded, once
/// somebody applies to it.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Applies `applied` (a partial object with apiVersion, kind and metadata.name) as `manager` to
/// `live` (`None` when the object does not exist yet) and returns the object to store, with its
/// `metadata.managedFields` updated. `schema_ctx` is the (API group, kind) of the resource. `now` is
/// the RFC 3339 time recorded on the applier's entry.
///
/// Fails with [`ApplyError::Conflict`] when the configuration changes fields other managers own,
/// unless `force` moves their ownership to `manager`.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
    schema_ctx: (&str, &str),
) -> Result<Value, ApplyError> {
    apply_in_scope(Scope::Main, live, applied, manager, force, now, schema_ctx)
}

/// [`apply`] through an endpoint: [`Scope::Status`] for `PATCH .../status`, where the applier owns
/// only `status` and nothing else of the object changes.
pub fn apply_in_scope(
    scope: Scope,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
    (group, kind): (&str, &str),
) -> Result<Value, ApplyError> {
    check_patch_options(true, Some(manager), Some(force))?;
    let api_version = check_config(applied, kind)?;
    let root = FieldType::root(group, kind);
    let config_fields = field_set_of(applied, root, Strictness::Strict)?;

    let mut managers = live.map(ManagedFields::decode_or_empty).unwrap_or_default();
    if let Some(live) = live.filter(|_| managers.entries.is_empty()) {
        adopt_unowned_fields(&mut managers, live, root, scope, &api_version, now);
    }

    let applier = ManagerEntry {
        manager: manager.to_owned(),
        operation: OPERATION_APPLY.to_owned(),
        api_version,
        time: Some(now.to_owned()),
        subresource: scope.subresource(),
        fields: scope.tracked(&config_fields),
    };
    let previous = managers.find(&applier).cloned();
    managers.set(applier.clone());

    let mut object = merge(live, applied, root);
    if let Some(previous) = previous.as_ref().filter(|p| !p.fields.is_empty()) {
        // The configuration's own fields are kept even where they are never owned (metadata.name).
        let keep = managers.all_fields().union(&config_fields);
        prune(&mut object, &previous.fields, &keep, root);
    }
    if scope == Scope::Status {
        object = with_status_only(live, object);
    }

    let empty = Value::Object(serde_json::Map::new());
    let changes = compare(live.unwrap_or(&empty), &object, root).filtered(|set| scope.tracked(set));
    let changed = changes.changed();
    let mut conflicts = Vec::new();
    for other in managers.entries.iter().filter(|e| !e.same_identity(&applier)) {
        for path in other.fields.intersection(&changed).paths() {
            conflicts.push(FieldConflict {
                manager: other.manager.clone(),
                operation: other.operation.clone(),
                api_version: other.api_version.clone(),
                subresource: other.subresource.clone(),
                path: render_path(&path),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        // Stable order: by owner, then by field in upstream iteration order.
        conflicts.sort_by_key(|c| (c.manager.clone(), c.operation.clone(), c.api_version.clone()));
        return Err(ApplyError::Conflict(conflicts));
    }
    for other in managers.entries.iter_mut().filter(|e| !e.same_identity(&applier)) {
        other.fields = other.fields.difference(&changed).difference(&changes.removed);
    }
    let unchanged = live.is_some_and(|live| *live == object);
    if let Some(previous) = previous.filter(|p| unchanged && p.fields == applier.fields) {
        let mut kept_time = applier.clone();
        kept_time.time = previous.time;
        managers.set(kept_time);
    }
    managers.drop_empty();
    managers.cap_updates();
    managers.write_into(&mut object);
    Ok(object)
}

/// Checks the shape of an apply configuration and returns its apiVersion.
fn check_config(applied: &Value, kind: &str) -> Result<String, ApplyError> {
    let Value::Object(fields) = applied else {
        return Err(ApplyError::InvalidConfig(format!("expected an object, got {applied}")));
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let api_version = text("apiVersion").ok_or_else(|| ApplyError::InvalidConfig("apiVersion must be set".into()))?;
    let applied_kind = text("kind").ok_or_else(|| ApplyError::InvalidConfig("kind must be set".into()))?;
    if applied_kind != kind {
        return Err(ApplyError::InvalidConfig(format!(
            "kind {applied_kind:?} does not match the resource kind {kind:?}"
        )));
    }
    match applied.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(api_version.to_owned()),
        Some(_) => Err(ApplyError::ManagedFieldsInConfig),
    }
}

/// An object without recorded ownership is first attributed to `before-first-apply`, as upstream does,
/// so that applying over fields written before tracking conflicts instead of silently taking them.
fn adopt_unowned_fields(
    managers: &mut ManagedFields,
    live: &Value,
    root: FieldType,
    scope: Scope,
    api_version: &str,
    now: &str,
) {
    let Ok(fields) = field_set_of(live, root, Strictness::Lenient) else { return };
    let fields = scope.tracked(&fields);
    if fields.is_empty() {
        return;
    }
    managers.set(ManagerEntry {
        manager: BEFORE_FIRST_APPLY.to_owned(),
        operation: OPERATION_UPDATE.to_owned(),
        api_version: api_version.to_owned(),
        time: Some(now.to_owned()),
        subresource: scope.subresource(),
        fields,
    });
}

/// The live object with only its `status` taken from `object`: a status write changes nothing else.
fn with_status_only(live: Option<&Value>, object: Value) -> Value {
    let Some(live) = live else { return object };
    let mut out = live.clone();
    if let Some(fields) = out.as_object_mut() {
        match object.get("status") {
            Some(status) => fields.insert("status".to_owned(), status.clone()),
            None => fields.remove("status"),
        };
    }
    out
}
