use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

use super::*;

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "x".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn revision(name: &str, owner: &str, number: i64, image: &str) -> Arc<ControllerRevision> {
    Arc::new(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(vec![OwnerReference {
                uid: owner.into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        data: Some(RawExtension(template_patch(&template(image)))),
        revision: number,
    })
}

fn new_revision(number: i64) -> ControllerRevision {
    ControllerRevision { revision: number, ..Default::default() }
}

#[test]
fn fnv_and_safe_encoding_match_the_reference_values() {
    // Reference values of FNV-1a 32 (the Go hash/fnv New32a).
    assert_eq!(fnv32a(b""), 0x811c_9dc5);
    assert_eq!(fnv32a(b"a"), 0xe40c_292c);
    assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
    assert!(safe_encode("4128839283").chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
}

#[test]
fn hashes_change_with_the_template_and_the_collision_count() {
    let a = template_hash(&template("nginx:1"), None);
    assert_eq!(a, template_hash(&template("nginx:1"), None));
    assert_ne!(a, template_hash(&template("nginx:2"), None));
    assert_ne!(a, template_hash(&template("nginx:1"), Some(1)));
    let d = template_patch(&template("nginx:1"));
    assert_ne!(data_hash(&d, None), data_hash(&d, Some(1)));
    assert_eq!(revision_name("web", "abc"), "web-abc");
    assert_eq!(revision_name(&"x".repeat(300), "abc").len(), 227);
}

#[test]
fn the_patch_replaces_the_template_and_reads_back() {
    let patch = template_patch(&template("nginx:1"));
    assert_eq!(patch["spec"]["template"]["$patch"], "replace");
    let rev = revision("r", "u", 1, "nginx:1");
    assert_eq!(revision_template(&rev), Some(template("nginx:1")));
}

#[test]
fn revision_plans_reuse_renumber_or_create() {
    let owned = owned_revisions(
        &[
            revision("b", "u", 2, "nginx:2"),
            revision("a", "u", 1, "nginx:1"),
            revision("other", "someone-else", 7, "nginx:3"),
        ],
        "u",
    );
    assert_eq!(owned.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(next_revision(&owned), 3);
    let cases = [("nginx:2", "current 2"), ("nginx:1", "renumber 1 to 3"), ("nginx:3", "create 3")];
    for (image, want) in cases {
        let got = match plan_revision(&owned, &template_patch(&template(image)), new_revision) {
            RevisionPlan::Current(r) => format!("current {}", r.revision),
            RevisionPlan::Renumber { revision, to } => format!("renumber {} to {to}", revision.revision),
            RevisionPlan::Create(r) => format!("create {}", r.revision),
        };
        assert_eq!(got, want, "{image}");
    }
    assert!(
        matches!(plan_revision(&[], &template_patch(&template("x")), new_revision), RevisionPlan::Create(r) if r.revision == 1)
    );
}

#[test]
fn only_unused_revisions_beyond_the_limit_are_pruned_oldest_first() {
    let owned: Vec<_> = (1..=5).map(|n| revision(&format!("r{n}"), "u", n, &format!("img:{n}"))).collect();
    let name = |r: &ControllerRevision| r.metadata.name.clone().unwrap_or_default();
    let pruned = history_to_prune(&owned, 2, |r| r.revision == 5 || r.revision == 1);
    assert_eq!(pruned.iter().map(|r| name(r.as_ref())).collect::<Vec<_>>(), ["r2"]);
    assert!(history_to_prune(&owned, 10, |_| false).is_empty());
    assert_eq!(history_to_prune(&owned, 0, |_| false).len(), 5);
}
