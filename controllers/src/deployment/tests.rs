use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet,
    ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::annotations::{rs_revision, DESIRED_REPLICAS, MAX_REPLICAS, REVISION, REVISION_HISTORY};
use super::claim::claim;
use super::hash::{equal_ignore_hash, safe_encode, template_hash, POD_TEMPLATE_HASH};
use super::plan::{plan, DeploymentPlan};
use super::sets::spec_replicas;
use super::status::{self, condition, AVAILABLE, PROGRESSING};
use super::strategy::fenceposts;

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: labels(&[("app", "web")]), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn int(n: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(n))
}

fn deployment(replicas: i32, image: &str, surge: Option<IntOrString>, unavailable: Option<IntOrString>) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: labels(&[("app", "web")]), ..Default::default() },
            template: template(image),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment { max_surge: surge, max_unavailable: unavailable }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

fn recreate(mut d: Deployment) -> Deployment {
    if let Some(s) = d.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    }
    d
}

/// A small cluster: the Deployment's ReplicaSets and a fake ReplicaSet controller whose pods become
/// available one step after they are asked for.
struct Sim {
    d: Deployment,
    sets: Vec<ReplicaSet>,
    clock: Timestamp,
    created: i64,
}

impl Sim {
    fn new(d: Deployment) -> Self {
        Self { d, sets: Vec::new(), clock: Timestamp::now(), created: 0 }
    }

    fn plan(&self) -> DeploymentPlan {
        plan(&self.d, &self.sets, &[], self.clock)
    }

    /// Applies a plan as the API would, then lets the ReplicaSet controller catch up by one step.
    fn apply(&mut self, p: &DeploymentPlan) {
        if let Some(rs) = &p.create {
            let mut rs = rs.clone();
            self.created += 1;
            rs.metadata.uid = Some(format!("rs-uid-{}", self.created));
            rs.metadata.creation_timestamp = Some(Time(self.clock + SignedDuration::from_secs(self.created)));
            self.sets.push(rs);
        }
        for u in &p.updates {
            let rs = self.sets.iter_mut().find(|r| r.metadata.name.as_deref() == Some(&u.name)).expect("updated rs");
            rs.spec.as_mut().expect("spec").replicas = Some(u.replicas);
            rs.metadata.annotations = Some(u.annotations.clone());
        }
        self.sets.retain(|r| !p.delete.iter().any(|(n, _)| r.metadata.name.as_ref() == Some(n)));
        if let Some(rev) = &p.revision {
            self.d.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(REVISION.into(), rev.clone());
        }
        if let Some(s) = &p.status {
            self.d.status = Some(s.clone());
        }
    }

    /// The ReplicaSet controller: pods asked for become available only on the next step (old pods
    /// disappear at once).
    fn settle(&mut self) {
        for rs in &mut self.sets {
            let want = spec_replicas(rs);
            let st = rs.status.get_or_insert_with(ReplicaSetStatus::default);
            let avail = st.available_replicas.unwrap_or(0).min(want);
            let now_avail = if st.replicas >= want { want } else { avail };
            st.replicas = want;
            st.available_replicas = Some(now_avail);
            st.ready_replicas = Some(now_avail);
        }
    }

    fn by_image(&self, image: &str) -> Option<&ReplicaSet> {
        self.sets.iter().find(|rs| {
            let t = rs.spec.as_ref().and_then(|s| s.template.as_ref());
            t.and_then(|t| t.spec.as_ref()).is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
        })
    }

    /// Plans and applies until nothing changes; checks the rollout bounds after every step.
    fn converge(&mut self, max_total: i32, min_available: i32) -> usize {
        for step in 0..100 {
            let p = self.plan();
            let idle = p.is_empty();
            self.apply(&p);
            let total: i32 = self.sets.iter().map(spec_replicas).sum();
            let available: i32 = self.sets.iter().map(super::sets::available).sum();
            assert!(total <= max_total, "step {step}: {total} replicas asked for, at most {max_total} allowed");
            assert!(
                available >= min_available,
                "step {step}: {available} available, at least {min_available} required"
            );
            self.settle();
            if idle {
                return step;
            }
        }
        panic!("no convergence: {:#?}", self.sets);
    }
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let pct = |s: &str| Some(IntOrString::String(s.into()));
    type Case = (i32, Option<IntOrString>, Option<IntOrString>, (i32, i32));
    let cases: &[Case] = &[
        (10, pct("25%"), pct("25%"), (3, 2)),
        (4, pct("25%"), pct("25%"), (1, 1)),
        (1, pct("25%"), pct("25%"), (1, 0)),
        (3, int(0), int(0), (0, 1)),
        (3, int(2), pct("50%"), (2, 1)),
        (5, pct("0%"), pct("0%"), (0, 1)),
    ];
    for (replicas, surge, unavailable, want) in cases {
        let d = deployment(*replicas, "a", surge.clone(), unavailable.clone());
        assert_eq!(fenceposts(&d, *replicas), *want, "replicas {replicas} surge {surge:?} unavailable {unavailable:?}");
    }
}

#[test]
fn template_hash_is_stable_ignores_its_own_label_and_changes_with_collisions() {
    let a = template("nginx:1");
    let h = template_hash(&a, None);
    assert_eq!(h, template_hash(&a.clone(), None));
    assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
    let mut labelled = a.clone();
    labelled.metadata.as_mut().and_then(|m| m.labels.as_mut()).map(|l| l.insert(POD_TEMPLATE_HASH.into(), h.clone()));
    assert_eq!(template_hash(&labelled, None), h);
    assert!(equal_ignore_hash(&a, &labelled));
    assert_ne!(template_hash(&template("nginx:2"), None), h);
    assert_ne!(template_hash(&a, Some(1)), h);
    let mut empty_maps = a.clone();
    if let Some(m) = empty_maps.metadata.as_mut() {
        m.annotations = Some(BTreeMap::new());
    }
    assert!(equal_ignore_hash(&a, &empty_maps), "absent and empty maps are equal");
    assert!(!equal_ignore_hash(&a, &template("nginx:2")));
    assert_eq!(safe_encode("0123"), "4567");
}

#[test]
fn a_new_deployment_gets_one_hashed_replicaset_at_full_size() {
    let sim = Sim::new(deployment(3, "nginx:1", int(1), int(0)));
    let p = sim.plan();
    let rs = p.create.as_ref().expect("a new replica set");
    let hash = template_hash(&sim.d.spec.as_ref().expect("spec").template, None);
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    assert_eq!(spec_replicas(rs), 3);
    let spec = rs.spec.as_ref().expect("spec");
    assert_eq!(spec.selector.match_labels.as_ref().and_then(|l| l.get(POD_TEMPLATE_HASH)), Some(&hash));
    let t = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.as_ref());
    assert_eq!(t.and_then(|l| l.get(POD_TEMPLATE_HASH)), Some(&hash));
    let a = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!((a[REVISION].as_str(), a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()), ("1", "3", "4"));
    assert_eq!(rs.metadata.owner_references.as_ref().map(|o| o[0].uid.as_str()), Some("d-uid"));
    assert_eq!(p.revision.as_deref(), Some("1"));
    let s = p.status.as_ref().expect("status");
    assert_eq!(condition(s, PROGRESSING).and_then(|c| c.reason.as_deref()), Some("NewReplicaSetCreated"));
}

#[test]
fn rolling_updates_stay_within_surge_and_unavailability_and_complete() {
    // (replicas, maxSurge, maxUnavailable, resolved surge, resolved unavailable)
    let pct = |s: &str| Some(IntOrString::String(s.into()));
    let cases = [
        (3, int(1), int(0), 1, 0),
        (3, int(0), int(1), 0, 1),
        (10, pct("25%"), pct("25%"), 3, 2),
        (5, int(2), int(2), 2, 2),
        (4, int(0), int(0), 0, 1),
    ];
    for (replicas, surge, unavailable, s, u) in cases {
        let mut sim = Sim::new(deployment(replicas, "nginx:1", surge.clone(), unavailable.clone()));
        sim.converge(replicas + s, 0);
        assert_eq!(sim.d.status.as_ref().and_then(|s| s.available_replicas), Some(replicas));
        sim.d.spec.as_mut().expect("spec").template = template("nginx:2");
        sim.d.metadata.generation = Some(2);
        sim.converge(replicas + s, replicas - u);
        let new = sim.by_image("nginx:2").expect("new rs");
        assert_eq!(spec_replicas(new), replicas, "case {replicas} {surge:?} {unavailable:?}");
        assert_eq!(spec_replicas(sim.by_image("nginx:1").expect("old rs kept as history")), 0);
        assert_eq!(rs_revision(new), 2);
        let st = sim.d.status.clone().expect("status");
        assert!(status::complete(&sim.d, &st), "{st:?}");
        assert_eq!(condition(&st, PROGRESSING).and_then(|c| c.reason.as_deref()), Some("NewReplicaSetAvailable"));
        assert_eq!(condition(&st, AVAILABLE).map(|c| c.status.as_str()), Some("True"));
        assert_eq!(st.observed_generation, Some(2));
    }
}

#[test]
fn unhealthy_old_replicas_are_scaled_down_first() {
    let mut sim = Sim::new(deployment(4, "nginx:1", int(0), int(2)));
    sim.converge(4, 0);
    // Two of the old pods are unavailable: only 2 are, the minimum.
    sim.sets[0].status.as_mut().expect("status").available_replicas = Some(2);
    sim.d.spec.as_mut().expect("spec").template = template("nginx:2");
    let p = sim.plan();
    assert_eq!(p.create.as_ref().map(spec_replicas), Some(0), "no surge: the new replica set starts empty");
    let down: Vec<(i32, i32)> = p.updates.iter().map(|u| (u.from, u.replicas)).collect();
    // Removing the two unavailable replicas costs no availability; no available one may go.
    assert_eq!(down, [(4, 2)]);
}

#[test]
fn a_stale_old_status_does_not_count_pods_already_scaled_away() {
    // 1,000 replicas, 25%/25%: at least 750 must stay available.
    let pct = |s: &str| Some(IntOrString::String(s.into()));
    let mut sim = Sim::new(deployment(1000, "nginx:1", pct("25%"), pct("25%")));
    sim.converge(1250, 0);
    sim.d.spec.as_mut().expect("spec").template = template("nginx:2");
    sim.d.metadata.generation = Some(2);
    let p = sim.plan();
    sim.apply(&p);
    // Late in the rollout: the old ReplicaSet was just scaled down to 159, but its controller has not
    // written its status since, which still reports 236 available; the new one has 720 of 1,000.
    let set = |sim: &mut Sim, image: &str, spec: i32, replicas: i32, avail: i32| {
        let i = sim.sets.iter().position(|rs| sim_image(rs) == image).expect("replica set");
        let rs = &mut sim.sets[i];
        rs.spec.as_mut().expect("spec").replicas = Some(spec);
        rs.status = Some(ReplicaSetStatus {
            replicas,
            available_replicas: Some(avail),
            ready_replicas: Some(avail),
            ..Default::default()
        });
    };
    set(&mut sim, "nginx:1", 159, 236, 236);
    set(&mut sim, "nginx:2", 1000, 1000, 720);
    let p = sim.plan();
    let down: Vec<(i32, i32)> = p.updates.iter().map(|u| (u.from, u.replicas)).collect();
    // 159 old + 720 new will be available: 129 may go, leaving 30 + 720 = 750. Counting the 236 the
    // stale status reports would have scaled the old ReplicaSet to 0, leaving 720.
    assert_eq!(down, [(159, 30)]);
}

fn sim_image(rs: &ReplicaSet) -> &str {
    let spec = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.spec.as_ref());
    spec.and_then(|s| s.containers[0].image.as_deref()).unwrap_or_default()
}

#[test]
fn rollback_reuses_the_old_replicaset_and_bumps_its_revision() {
    let mut sim = Sim::new(deployment(2, "nginx:1", int(1), int(0)));
    sim.converge(3, 0);
    sim.d.spec.as_mut().expect("spec").template = template("nginx:2");
    sim.converge(3, 2);
    assert_eq!(sim.d.metadata.annotations.as_ref().map(|a| a[REVISION].as_str()), Some("2"));
    // kubectl rollout undo copies revision 1's template back.
    sim.d.spec.as_mut().expect("spec").template = template("nginx:1");
    sim.converge(3, 2);
    assert_eq!(sim.sets.len(), 2, "no third replica set");
    let old = sim.by_image("nginx:1").expect("first rs");
    assert_eq!(spec_replicas(old), 2);
    assert_eq!(rs_revision(old), 3);
    assert_eq!(old.metadata.annotations.as_ref().map(|a| a[REVISION_HISTORY].as_str()), Some("1"));
    assert_eq!(sim.d.metadata.annotations.as_ref().map(|a| a[REVISION].as_str()), Some("3"));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // Upstream's documented example: 10 replicas, maxSurge 3, maxUnavailable 2, scaled to 15 while
    // the old ReplicaSet has 8 and the new one 5.
    let mut sim = Sim::new(deployment(10, "nginx:1", int(3), int(2)));
    sim.converge(13, 0);
    sim.d.spec.as_mut().expect("spec").template = template("nginx:2");
    sim.d.metadata.generation = Some(2);
    let p = sim.plan();
    sim.apply(&p);
    // Make the state exactly old 8 / new 5 with nothing new available.
    let first = sim.sets_first_created();
    for rs in &mut sim.sets {
        let n = if rs.metadata.creation_timestamp == first { 8 } else { 5 };
        rs.spec.as_mut().expect("spec").replicas = Some(n);
    }
    sim.d.spec.as_mut().expect("spec").replicas = Some(15);
    let p = sim.plan();
    let mut sizes: Vec<(i32, i32)> = p.updates.iter().map(|u| (u.from, u.replicas)).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [(5, 7), (8, 11)]);
    for u in &p.updates {
        assert_eq!((u.annotations[DESIRED_REPLICAS].as_str(), u.annotations[MAX_REPLICAS].as_str()), ("15", "18"));
    }
    assert!(p.create.is_none());
}

impl Sim {
    fn sets_first_created(&self) -> Option<Time> {
        self.sets.iter().filter_map(|r| r.metadata.creation_timestamp.clone()).min_by_key(|t| t.0)
    }
}

#[test]
fn scaling_a_settled_deployment_resizes_its_only_replicaset() {
    let mut sim = Sim::new(deployment(3, "nginx:1", int(1), int(0)));
    sim.converge(4, 0);
    sim.d.spec.as_mut().expect("spec").replicas = Some(1);
    let p = sim.plan();
    assert_eq!(p.updates.len(), 1);
    assert_eq!(
        p.updates[0].scaling_message().as_deref(),
        Some(format!("Scaled down replica set {} from 3 to 1", p.updates[0].name).as_str())
    );
}

#[test]
fn paused_deployments_scale_but_do_not_roll_out() {
    let mut sim = Sim::new(deployment(3, "nginx:1", int(1), int(0)));
    sim.converge(4, 0);
    let spec = sim.d.spec.as_mut().expect("spec");
    spec.paused = Some(true);
    spec.template = template("nginx:2");
    spec.replicas = Some(5);
    let p = sim.plan();
    assert!(p.create.is_none(), "no new replica set while paused");
    assert_eq!(p.updates.iter().map(|u| u.replicas).collect::<Vec<_>>(), [5]);
    let s = p.status.as_ref().expect("status");
    let c = condition(s, PROGRESSING).expect("progressing");
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("Unknown", Some("DeploymentPaused")));
    sim.apply(&p);
    sim.settle();
    sim.d.spec.as_mut().expect("spec").paused = Some(false);
    let p = sim.plan();
    assert!(p.create.is_some(), "resuming starts the rollout");
}

#[test]
fn recreate_waits_for_old_pods_before_creating_the_new_replicaset() {
    let mut sim = Sim::new(recreate(deployment(2, "nginx:1", None, None)));
    sim.converge(2, 0);
    sim.d.spec.as_mut().expect("spec").template = template("nginx:2");
    let p = sim.plan();
    assert!(p.create.is_none());
    assert_eq!(p.updates.iter().map(|u| (u.from, u.replicas)).collect::<Vec<_>>(), [(2, 0)]);
    sim.apply(&p);
    // The ReplicaSet reports no replicas, but one of its pods is still terminating.
    sim.sets[0].status.as_mut().expect("status").replicas = 0;
    let pod = Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some("old".into()),
            namespace: Some("ns".into()),
            deletion_timestamp: Some(Time(sim.clock)),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: sim.sets[0].metadata.name.clone().unwrap_or_default(),
                uid: sim.sets[0].metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus { phase: Some("Running".into()), ..Default::default() }),
    });
    let p = plan(&sim.d, &sim.sets, &[pod], sim.clock);
    assert!(p.create.is_none(), "old pods still run");
    let p = plan(&sim.d, &sim.sets, &[], sim.clock);
    let rs = p.create.as_ref().expect("new rs once old pods are gone");
    assert_eq!(spec_replicas(rs), 2);
    assert_eq!(
        p.create.as_ref().and_then(|r| r.metadata.annotations.as_ref()).map(|a| a[MAX_REPLICAS].as_str()),
        Some("2")
    );
}

#[test]
fn old_replicasets_beyond_the_history_limit_are_deleted_oldest_revision_first() {
    let mut sim = Sim::new(deployment(1, "v1", int(1), int(0)));
    sim.d.spec.as_mut().expect("spec").revision_history_limit = Some(1);
    for image in ["v1", "v2", "v3", "v4"] {
        sim.d.spec.as_mut().expect("spec").template = template(image);
        sim.converge(2, 0);
    }
    let mut left: Vec<i64> = sim.sets.iter().map(rs_revision).collect();
    left.sort_unstable();
    assert_eq!(left, [3, 4], "one old replica set kept besides the current one");
}

#[test]
fn progress_deadline_times_out_and_asks_for_a_recheck() {
    let mut sim = Sim::new(deployment(2, "nginx:1", int(1), int(0)));
    let p = sim.plan();
    sim.apply(&p);
    // Pods never become available.
    let p = sim.plan();
    assert!(p.requeue_after.is_some_and(|d| d.as_secs() > 590 && d.as_secs() <= 600), "{:?}", p.requeue_after);
    sim.clock += SignedDuration::from_secs(601);
    let p = sim.plan();
    let s = p.status.as_ref().expect("status");
    let c = condition(s, PROGRESSING).expect("progressing");
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some("ProgressDeadlineExceeded")));
    assert_eq!(condition(s, AVAILABLE).map(|c| c.reason.as_deref()), Some(Some("MinimumReplicasUnavailable")));
    sim.apply(&p);
    assert_eq!(sim.plan().requeue_after, None, "a timed-out rollout needs no recheck");
}

#[test]
fn progress_refreshes_the_update_time_but_not_the_transition_time() {
    let d = deployment(3, "nginx:1", int(1), int(0));
    let then = Timestamp::now() - SignedDuration::from_secs(100);
    let mut d = d;
    d.status = Some(DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(1),
        conditions: Some(vec![DeploymentCondition {
            type_: PROGRESSING.into(),
            status: "True".into(),
            reason: Some("ReplicaSetUpdated".into()),
            last_update_time: Some(Time(then)),
            last_transition_time: Some(Time(then)),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let rs = ReplicaSet {
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec { replicas: Some(3), ..Default::default() }),
        status: Some(ReplicaSetStatus { replicas: 3, available_replicas: Some(2), ..Default::default() }),
        ..Default::default()
    };
    let now = Timestamp::now();
    let s = status::rollout(&d, &[&rs], Some(&rs), now);
    let c = condition(&s, PROGRESSING).expect("progressing");
    assert_eq!(c.last_transition_time, Some(Time(then)));
    assert_eq!(c.last_update_time, Some(Time(now)));
}

#[test]
fn claims_adopt_orphans_and_release_mismatches() {
    let d = deployment(1, "a", int(1), int(0));
    let rs = |name: &str, app: &str, owner: Option<&str>| {
        Arc::new(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: labels(&[("app", app)]),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        uid: uid.into(),
                        controller: Some(true),
                        kind: "Deployment".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        })
    };
    let sets = [
        rs("mine", "web", Some("d-uid")),
        rs("orphan", "web", None),
        rs("moved", "db", Some("d-uid")),
        rs("theirs", "web", Some("x")),
    ];
    let c = claim(&d, &sets);
    let names = |v: Vec<Option<String>>| v.into_iter().flatten().collect::<Vec<_>>();
    assert_eq!(names(c.owned.iter().map(|r| r.metadata.name.clone()).collect()), ["mine", "orphan"]);
    assert_eq!(names(c.adopt.iter().map(|r| r.metadata.name.clone()).collect()), ["orphan"]);
    assert_eq!(names(c.release.iter().map(|r| r.metadata.name.clone()).collect()), ["moved"]);
}

#[test]
fn an_empty_selector_is_refused_with_a_warning() {
    let mut d = deployment(1, "a", int(1), int(0));
    d.spec.as_mut().expect("spec").selector = LabelSelector::default();
    let p = plan(&d, &[], &[], Timestamp::now());
    assert!(p.create.is_none());
    assert_eq!(p.warning.map(|w| w.0), Some("SelectingAll"));
    assert_eq!(p.status.and_then(|s| s.observed_generation), Some(1));
}
