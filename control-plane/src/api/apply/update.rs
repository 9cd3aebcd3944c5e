//! Ownership tracking of ordinary writes (create, update, non-apply patch): the fields a write
//! changes become owned by its manager with operation `Update` and leave every other manager.
//!
//! Owns the `Update` bookkeeping. Pure: no I/O. Must not depend on the HTTP layer or the store; the
//! handlers call [`track_update`] on the object they are about to persist.

use serde_json::Value;

use super::managers::{is_reset_request, ManagedFields, ManagerEntry};
use super::schema::FieldType;
use super::scope::Scope;
use super::walk::{compare, field_set_of, Comparison, Strictness};

/// Records in `new.metadata.managedFields` that `manager` wrote `new` over `old` (`None` on create)
/// with `operation` (`"Update"`) at `api_version` (the request's group/version) and time `now`.
///
/// The fields that differ between `old` and `new` (all fields of `new` on create) join the manager's
/// entry for that apiVersion and leave other managers' entries; fields removed by the write leave
/// every entry; entries left empty are dropped. A request whose body sets `managedFields` to `[]` or
/// `[{}]` clears the recorded ownership first; one that sets other entries replaces it; one without
/// them keeps `old`'s. The API group and kind are read from `new`'s apiVersion and kind.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    now: &str,
) {
    track_update_in_scope(Scope::Main, old, new, manager, operation, api_version, now);
}

/// [`track_update`] through an endpoint: with [`Scope::Status`] only `status` changes are owned,
/// the entry records `subresource: status`, and `managedFields` in the request body are ignored.
pub fn track_update_in_scope(
    scope: Scope,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    let root = root_type_of(new, old);
    let mut managers = starting_ownership(scope, old, new);
    let changes = match old {
        Some(old) => compare(old, new, root),
        None => {
            Comparison { added: field_set_of(new, root, Strictness::Lenient).unwrap_or_default(), ..Default::default() }
        }
    }
    .filtered(|set| scope.tracked(set));
    let taken = changes.changed();

    let writer = ManagerEntry {
        manager: manager.to_owned(),
        operation: operation.to_owned(),
        api_version: api_version.to_owned(),
        time: Some(now.to_owned()),
        subresource: scope.subresource(),
        fields: taken.clone(),
    };
    for other in managers.entries.iter_mut().filter(|e| !e.same_identity(&writer)) {
        other.fields = other.fields.difference(&taken).difference(&changes.removed);
    }
    let updated = match managers.find(&writer) {
        Some(previous) => ManagerEntry {
            fields: previous.fields.difference(&changes.removed).union(&taken),
            // An entry's time says when its manager last changed something.
            time: if taken.is_empty() { previous.time.clone() } else { writer.time.clone() },
            ..writer
        },
        None => writer,
    };
    managers.set(updated);
    managers.drop_empty();
    managers.cap_updates();
    managers.write_into(new);
}

/// The ownership a write starts from: cleared on request, the request's own entries when it sets
/// some (main resource only, as upstream), else the stored object's.
fn starting_ownership(scope: Scope, old: Option<&Value>, new: &Value) -> ManagedFields {
    let stored = || old.map(ManagedFields::decode_or_empty).unwrap_or_default();
    if scope == Scope::Status {
        return stored();
    }
    if is_reset_request(new) {
        return ManagedFields::default();
    }
    match ManagedFields::decode(new) {
        Ok(requested) if !requested.entries.is_empty() => requested,
        _ => stored(),
    }
}

/// The schema root of an object, from its apiVersion (`apps/v1` → group `apps`) and kind.
fn root_type_of(new: &Value, old: Option<&Value>) -> FieldType {
    let text = |name: &str| {
        new.get(name).and_then(Value::as_str).or_else(|| old.and_then(|o| o.get(name)).and_then(Value::as_str))
    };
    let group = text("apiVersion").and_then(|v| v.rsplit_once('/')).map_or("", |(group, _)| group);
    FieldType::root(group, text("kind").unwrap_or_default())
}
