//! The garbage collector's decisions (upstream `attemptToDeleteItem`, `classifyReferences`,
//! `processDeletingDependentsItem` and `orphanDependents`), from object metadata only.
//!
//! - A dependent none of whose owners exist any more is deleted (Background, or as its own GC
//!   finalizers say); one with some owners left only loses the dangling references.
//! - A dependent whose owner waits for its dependents (foreground deletion) is deleted, in the
//!   foreground itself when it has dependents of its own, so the deletion cascades.
//! - An owner being deleted with the `orphan` finalizer releases its dependents, then loses the
//!   finalizer; one with `foregroundDeletion` loses it once no dependent blocks it any more.
//!
//! Whether an owner exists is decided by the caller (cache, then a live read); this module never
//! calls the API.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Finalizer of a deletion that orphans the dependents.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Finalizer of a deletion that waits for the dependents to be deleted first.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// How a delete the collector issues propagates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// What an owner reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists (same uid) and is not waiting for its dependents.
    Solid,
    /// The owner is gone (or replaced by another object of the same name).
    Dangling,
    /// The owner is being deleted in the foreground: its dependents must go first.
    WaitingForDependents,
}

/// The state of an owner given the object found under its name (cache or live read), if any.
pub fn owner_state(reference: &OwnerReference, found: Option<&ObjectMeta>) -> OwnerState {
    match found {
        Some(meta) if meta.uid.as_deref() == Some(reference.uid.as_str()) => {
            if meta.deletion_timestamp.is_some() && has_finalizer(meta, FINALIZER_FOREGROUND) {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Solid
            }
        }
        _ => OwnerState::Dangling,
    }
}

pub fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// What to do with an object that has owner references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependentAction {
    Nothing,
    /// Keep the object, dropping the references to these owner uids.
    RemoveOwners(Vec<String>),
    /// Delete the object (with a uid precondition).
    Delete(Propagation),
}

/// Decides for a dependent (not being deleted) given the state of each of its owner references and
/// whether it has dependents of its own.
pub fn plan_dependent(
    meta: &ObjectMeta,
    owners: &[(OwnerReference, OwnerState)],
    has_dependents: bool,
) -> DependentAction {
    if meta.deletion_timestamp.is_some() || owners.is_empty() {
        return DependentAction::Nothing;
    }
    let uids = |state: OwnerState| -> Vec<String> {
        owners.iter().filter(|(_, s)| *s == state).map(|(r, _)| r.uid.clone()).collect()
    };
    let solid = uids(OwnerState::Solid);
    let dangling = uids(OwnerState::Dangling);
    let waiting = uids(OwnerState::WaitingForDependents);
    if !solid.is_empty() {
        // A living owner keeps the object; it only sheds references to owners that are gone or
        // that wait for it (so they can finish).
        let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
        return if drop.is_empty() { DependentAction::Nothing } else { DependentAction::RemoveOwners(drop) };
    }
    if !waiting.is_empty() && has_dependents {
        return DependentAction::Delete(Propagation::Foreground);
    }
    let own = if has_finalizer(meta, FINALIZER_ORPHAN) {
        Propagation::Orphan
    } else if has_finalizer(meta, FINALIZER_FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    DependentAction::Delete(own)
}

/// What to do about an owner that is being deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletingPlan {
    /// Dependents (indexes into the slice given) to strip of the reference to the owner.
    pub orphan: Vec<usize>,
    /// Dependents (indexes) that must be looked at for deletion (foreground).
    pub delete: Vec<usize>,
    /// The finalizer to remove once the rest is done.
    pub remove_finalizer: Option<&'static str>,
}

/// Plans for `owner` (being deleted) given the cached metadata of the objects that reference it.
/// `None` when the collector has nothing to do (no deletion, or no GC finalizer).
pub fn plan_deleting_owner(owner: &ObjectMeta, dependents: &[ObjectMeta]) -> Option<DeletingPlan> {
    owner.deletion_timestamp.as_ref()?;
    let uid = owner.uid.as_deref().unwrap_or_default();
    let reference = |d: &ObjectMeta| d.owner_references.iter().flatten().find(|r| r.uid == uid).cloned();
    let referencing: Vec<(usize, OwnerReference)> =
        dependents.iter().enumerate().filter_map(|(i, d)| reference(d).map(|r| (i, r))).collect();
    if has_finalizer(owner, FINALIZER_ORPHAN) {
        return Some(DeletingPlan {
            orphan: referencing.iter().map(|(i, _)| *i).collect(),
            delete: Vec::new(),
            remove_finalizer: Some(FINALIZER_ORPHAN),
        });
    }
    if has_finalizer(owner, FINALIZER_FOREGROUND) {
        let blocking = referencing.iter().any(|(_, r)| r.block_owner_deletion == Some(true));
        return Some(DeletingPlan {
            orphan: Vec::new(),
            delete: referencing
                .iter()
                .filter(|(i, _)| dependents[*i].deletion_timestamp.is_none())
                .map(|(i, _)| *i)
                .collect(),
            remove_finalizer: (!blocking).then_some(FINALIZER_FOREGROUND),
        });
    }
    None
}

/// `finalizers` without `finalizer`.
pub fn without_finalizer(meta: &ObjectMeta, finalizer: &str) -> Vec<String> {
    meta.finalizers.iter().flatten().filter(|f| *f != finalizer).cloned().collect()
}

/// The owner references of `meta` without those to `uids`.
pub fn without_owners(meta: &ObjectMeta, uids: &[String]) -> Vec<OwnerReference> {
    meta.owner_references.iter().flatten().filter(|r| !uids.contains(&r.uid)).cloned().collect()
}
