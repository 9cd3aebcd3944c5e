// Table rows are tuples; slices of one cloned reference read better than `from_ref` here.
#![allow(clippy::type_complexity, clippy::cloned_ref_to_slice_refs)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::plan::{
    owner_state, plan_deleting_owner, plan_dependent, without_finalizer, without_owners, DeletingPlan, DependentAction,
    OwnerState, Propagation, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
};

fn reference(uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: format!("rs-{uid}"),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(block),
    }
}

fn meta(uid: &str, owners: &[OwnerReference], deleting: bool, finalizers: &[&str]) -> ObjectMeta {
    ObjectMeta {
        name: Some(format!("obj-{uid}")),
        namespace: Some("ns".into()),
        uid: Some(uid.into()),
        owner_references: (!owners.is_empty()).then(|| owners.to_vec()),
        deletion_timestamp: deleting.then(|| Time(Timestamp::now())),
        finalizers: (!finalizers.is_empty()).then(|| finalizers.iter().map(|f| f.to_string()).collect()),
        ..Default::default()
    }
}

#[test]
fn owner_state_checks_uid_and_foreground_deletion() {
    let r = reference("o1", true);
    let cases = [
        ("absent", None, OwnerState::Dangling),
        ("same name, other uid", Some(meta("o2", &[], false, &[])), OwnerState::Dangling),
        ("present", Some(meta("o1", &[], false, &[])), OwnerState::Solid),
        ("deleting in background", Some(meta("o1", &[], true, &[])), OwnerState::Solid),
        ("orphaning", Some(meta("o1", &[], true, &[FINALIZER_ORPHAN])), OwnerState::Solid),
        ("foreground", Some(meta("o1", &[], true, &[FINALIZER_FOREGROUND])), OwnerState::WaitingForDependents),
    ];
    for (name, found, want) in cases {
        assert_eq!(owner_state(&r, found.as_ref()), want, "{name}");
    }
}

#[test]
fn dependents_are_deleted_only_when_no_owner_is_left() {
    use DependentAction::*;
    use OwnerState::*;
    let (a, b) = (reference("a", true), reference("b", false));
    let cases: Vec<(&str, ObjectMeta, Vec<(OwnerReference, OwnerState)>, bool, DependentAction)> = vec![
        ("owner alive", meta("d", &[a.clone()], false, &[]), vec![(a.clone(), Solid)], false, Nothing),
        (
            "owner gone",
            meta("d", &[a.clone()], false, &[]),
            vec![(a.clone(), Dangling)],
            false,
            Delete(Propagation::Background),
        ),
        (
            "one of two owners gone",
            meta("d", &[a.clone(), b.clone()], false, &[]),
            vec![(a.clone(), Dangling), (b.clone(), Solid)],
            false,
            RemoveOwners(vec!["a".into()]),
        ),
        (
            "foreground owner and a living owner",
            meta("d", &[a.clone(), b.clone()], false, &[]),
            vec![(a.clone(), WaitingForDependents), (b.clone(), Solid)],
            false,
            RemoveOwners(vec!["a".into()]),
        ),
        (
            "foreground owner, leaf dependent",
            meta("d", &[a.clone()], false, &[]),
            vec![(a.clone(), WaitingForDependents)],
            false,
            Delete(Propagation::Background),
        ),
        (
            "foreground owner, dependent with dependents cascades",
            meta("d", &[a.clone()], false, &[]),
            vec![(a.clone(), WaitingForDependents)],
            true,
            Delete(Propagation::Foreground),
        ),
        (
            "own orphan finalizer is honoured",
            meta("d", &[a.clone()], false, &[FINALIZER_ORPHAN]),
            vec![(a.clone(), Dangling)],
            true,
            Delete(Propagation::Orphan),
        ),
        ("already being deleted", meta("d", &[a.clone()], true, &[]), vec![(a.clone(), Dangling)], false, Nothing),
        ("no owners", meta("d", &[], false, &[]), vec![], false, Nothing),
    ];
    for (name, m, owners, has_deps, want) in cases {
        assert_eq!(plan_dependent(&m, &owners, has_deps), want, "{name}");
    }
}

#[test]
fn deleting_owners_orphan_or_wait_for_blocking_dependents() {
    let blocking = meta("d1", &[reference("o", true)], false, &[]);
    let non_blocking = meta("d2", &[reference("o", false)], false, &[]);
    let terminating = meta("d3", &[reference("o", true)], true, &[]);
    let unrelated = meta("d4", &[reference("x", true)], false, &[]);
    let deps = [blocking, non_blocking, terminating, unrelated];
    let cases = [
        ("not deleting", meta("o", &[], false, &[FINALIZER_FOREGROUND]), &deps[..], None),
        ("background (no finalizer)", meta("o", &[], true, &[]), &deps[..], None),
        (
            "orphan",
            meta("o", &[], true, &[FINALIZER_ORPHAN]),
            &deps[..],
            Some(DeletingPlan { orphan: vec![0, 1, 2], delete: vec![], remove_finalizer: Some(FINALIZER_ORPHAN) }),
        ),
        (
            "foreground with blocking dependents",
            meta("o", &[], true, &[FINALIZER_FOREGROUND]),
            &deps[..],
            Some(DeletingPlan { orphan: vec![], delete: vec![0, 1], remove_finalizer: None }),
        ),
        (
            "foreground with only non-blocking dependents",
            meta("o", &[], true, &[FINALIZER_FOREGROUND]),
            &deps[1..2],
            Some(DeletingPlan { orphan: vec![], delete: vec![0], remove_finalizer: Some(FINALIZER_FOREGROUND) }),
        ),
        (
            "foreground, dependents gone",
            meta("o", &[], true, &[FINALIZER_FOREGROUND, "other"]),
            &deps[3..],
            Some(DeletingPlan { orphan: vec![], delete: vec![], remove_finalizer: Some(FINALIZER_FOREGROUND) }),
        ),
    ];
    for (name, owner, dependents, want) in cases {
        assert_eq!(plan_deleting_owner(&owner, dependents), want, "{name}");
    }
}

#[test]
fn finalizer_and_reference_removal_keep_the_rest() {
    let m = meta("d", &[reference("a", true), reference("b", true)], true, &[FINALIZER_FOREGROUND, "keep"]);
    assert_eq!(without_finalizer(&m, FINALIZER_FOREGROUND), ["keep"]);
    let left: Vec<String> = without_owners(&m, &["a".into()]).into_iter().map(|r| r.uid).collect();
    assert_eq!(left, ["b"]);
}
