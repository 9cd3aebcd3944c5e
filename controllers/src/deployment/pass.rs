//! One simulated sync of a Deployment: working copies of its ReplicaSets that the rollout steps scale,
//! annotate, create and delete as upstream's `DeploymentController` would, so `plan` can read the
//! writes off the difference. The steps shared by every strategy live here (finding and creating the
//! new ReplicaSet, proportional scaling, history cleanup); `rolling.rs` adds the rolling update.
//! Pure: must not depend on the API client.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::annotations::{self, max_replicas, rs_revision, set_new_rs_annotations, set_replicas_annotations};
use super::hash::{template_hash, POD_TEMPLATE_HASH};
use super::sets::{
    available, by_creation, by_revision, by_size_newer, by_size_older, find_new, is_active, set_spec_replicas,
    spec_replicas, status_replicas, total_spec,
};
use super::status::{self, new_condition, set_condition, FOUND_NEW_RS, NEW_RS_CREATED, PROGRESSING};
use super::strategy::{desired, is_rolling, max_surge, progress_deadline};
use crate::pods::controller_ref;

pub(super) struct Pass {
    /// The Deployment as this pass has updated it (status conditions, revision annotation).
    pub d: Deployment,
    /// Working copies: `sets[i]` started as `original[i]`; a created new ReplicaSet is appended last.
    pub sets: Vec<ReplicaSet>,
    pub original: Vec<ReplicaSet>,
    pub new: Option<usize>,
    /// Whether `sets[new]` does not exist yet.
    pub create: bool,
    /// Indices of ReplicaSets to delete.
    pub delete: Vec<usize>,
    pub now: Timestamp,
}

impl Pass {
    pub fn new(d: &Deployment, owned: &[ReplicaSet], now: Timestamp) -> Self {
        let mut sets = owned.to_vec();
        sets.sort_by(by_creation);
        Self { d: d.clone(), original: sets.clone(), sets, new: None, create: false, delete: Vec::new(), now }
    }

    pub fn desired(&self) -> i32 {
        desired(&self.d)
    }

    /// Indices of every ReplicaSet but the new one, oldest first.
    pub fn old(&self) -> Vec<usize> {
        (0..self.sets.len()).filter(|&i| Some(i) != self.new).collect()
    }

    pub fn active_old(&self) -> Vec<usize> {
        self.old().into_iter().filter(|&i| is_active(&self.sets[i])).collect()
    }

    /// Every ReplicaSet, the new one included.
    pub fn all(&self) -> Vec<usize> {
        (0..self.sets.len()).collect()
    }

    pub fn spec_sum(&self, idx: &[usize]) -> i32 {
        total_spec(idx.iter().map(|&i| &self.sets[i]))
    }

    fn status_mut(&mut self) -> &mut k8s_openapi::api::apps::v1::DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    fn set_deployment_revision(&mut self, revision: String) {
        self.d.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(annotations::REVISION.into(), revision);
    }

    /// Finds the ReplicaSet running the current template and brings its revision and annotations up to
    /// date, or, with `create`, plans it (upstream `getAllReplicaSetsAndSyncRevision`).
    pub fn sync_revision(&mut self, create: bool) {
        if self.new.is_none() {
            self.new = find_new(&self.d, &self.sets);
        }
        let max_old = self.old().iter().map(|&i| rs_revision(&self.sets[i])).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let has_deadline = progress_deadline(&self.d).is_some();
        let max = self.desired() + max_surge(&self.d);
        if let Some(i) = self.new {
            let d = self.d.clone();
            set_new_rs_annotations(&d, &mut self.sets[i], new_revision, true, max);
            let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if let Some(spec) = self.sets[i].spec.as_mut() {
                if spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
                    spec.min_ready_seconds = min_ready;
                }
            }
            let revision = self.sets[i].metadata.annotations.as_ref().and_then(|a| a.get(annotations::REVISION));
            let revision = revision.cloned().unwrap_or_default();
            self.set_deployment_revision(revision);
            let name = self.sets[i].metadata.name.clone().unwrap_or_default();
            if has_deadline && status::condition(self.status_mut(), PROGRESSING).is_none() {
                let c = new_condition(
                    PROGRESSING,
                    "True",
                    FOUND_NEW_RS,
                    format!("Found new replica set {name:?}"),
                    self.now,
                );
                set_condition(self.status_mut(), c);
            }
            return;
        }
        if !create {
            return;
        }
        let Some(rs) = self.new_replica_set(new_revision, max) else { return };
        let name = rs.metadata.name.clone().unwrap_or_default();
        self.sets.push(rs);
        let i = self.sets.len() - 1;
        self.new = Some(i);
        self.create = true;
        let replicas = self.new_rs_replicas(i);
        set_spec_replicas(&mut self.sets[i], replicas);
        self.set_deployment_revision(new_revision.to_string());
        if has_deadline {
            let c = new_condition(
                PROGRESSING,
                "True",
                NEW_RS_CREATED,
                format!("Created new replica set {name:?}"),
                self.now,
            );
            set_condition(self.status_mut(), c);
        }
    }

    /// The new ReplicaSet for the current template, with no replicas yet.
    fn new_replica_set(&self, revision: i64, max: i32) -> Option<ReplicaSet> {
        let spec = self.d.spec.as_ref()?;
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", self.d.metadata.name.as_deref().unwrap_or_default())),
                namespace: self.d.metadata.namespace.clone(),
                labels,
                owner_references: Some(vec![controller_ref(&self.d)]),
                // Orders the planned ReplicaSet as the newest; not sent on create.
                creation_timestamp: Some(Time(self.now)),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        set_new_rs_annotations(&self.d, &mut rs, revision, false, max);
        Some(rs)
    }

    /// The size the new ReplicaSet may have now (upstream `NewRSNewReplicas`): all of `spec.replicas`
    /// for `Recreate`; for a rolling update as many as fit under `replicas + maxSurge`.
    pub fn new_rs_replicas(&self, new: usize) -> i32 {
        let want = self.desired();
        let current = spec_replicas(&self.sets[new]);
        if !is_rolling(&self.d) {
            return want;
        }
        let max_total = want + max_surge(&self.d);
        let total = self.spec_sum(&self.all());
        if total >= max_total {
            return current;
        }
        current + (max_total - total).min(want - current).max(0)
    }

    /// Sets `sets[i]` to `n` replicas and records the Deployment size it is scaled for; whether the
    /// size changed (upstream `scaleReplicaSet`).
    pub fn scale(&mut self, i: usize, n: i32) -> bool {
        let want = self.desired();
        let max = want + max_surge(&self.d);
        let rs = &mut self.sets[i];
        let changed = spec_replicas(rs) != n;
        set_spec_replicas(rs, n);
        set_replicas_annotations(rs, want, max);
        changed
    }

    /// `scale`, unless `sets[i]` already has `n` (upstream `scaleReplicaSetAndRecordEvent`).
    pub fn scale_to(&mut self, i: usize, n: i32) -> bool {
        if spec_replicas(&self.sets[i]) == n {
            return false;
        }
        self.scale(i, n)
    }

    /// Whether some active ReplicaSet was last scaled for another Deployment size.
    pub fn is_scaling_event(&self) -> bool {
        let want = self.desired();
        self.all()
            .into_iter()
            .filter(|&i| is_active(&self.sets[i]))
            .any(|i| annotations::desired_replicas(&self.sets[i]).is_some_and(|d| d != want))
    }

    /// Resizes the ReplicaSets to a new `spec.replicas` (upstream `scale`): a lone active (or the
    /// newest) ReplicaSet takes all of it; a saturated new one retires the old; otherwise a rolling
    /// update spreads the difference in proportion to each ReplicaSet's share.
    pub fn scale_replicas(&mut self) {
        let want = self.desired();
        if let Some(i) = self.active_or_latest() {
            self.scale_to(i, want);
            return;
        }
        if self.new.is_some_and(|i| self.saturated(i)) {
            for i in self.active_old() {
                self.scale_to(i, 0);
            }
            return;
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut active: Vec<usize> = self.all().into_iter().filter(|&i| is_active(&self.sets[i])).collect();
        let allowed = if want > 0 { want + max_surge(&self.d) } else { 0 };
        let to_add = allowed - self.spec_sum(&active);
        if to_add > 0 {
            active.sort_by(|&a, &b| by_size_newer(&self.sets[a], &self.sets[b]));
        } else if to_add < 0 {
            active.sort_by(|&a, &b| by_size_older(&self.sets[a], &self.sets[b]));
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
        for &i in &active {
            let proportion = self.proportion(i, to_add, added);
            sizes.push(spec_replicas(&self.sets[i]) + proportion);
            added += proportion;
        }
        if let Some(first) = sizes.first_mut() {
            if to_add != 0 {
                *first = (*first + to_add - added).max(0);
            }
        }
        for (&i, &n) in active.iter().zip(&sizes) {
            self.scale(i, n);
        }
    }

    fn active_or_latest(&self) -> Option<usize> {
        if self.sets.is_empty() {
            return None;
        }
        let active: Vec<usize> = self.all().into_iter().filter(|&i| is_active(&self.sets[i])).collect();
        match active.as_slice() {
            [] => self.new.or_else(|| self.old().last().copied()),
            [one] => Some(*one),
            _ => None,
        }
    }

    fn saturated(&self, i: usize) -> bool {
        let rs = &self.sets[i];
        let want = self.desired();
        annotations::desired_replicas(rs) == Some(want) && spec_replicas(rs) == want && available(rs) == want
    }

    /// `sets[i]`'s share of `to_add` more replicas, of which `added` are handed out (upstream
    /// `GetProportion`).
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.sets[i];
        let current = spec_replicas(rs);
        if current == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    fn fraction(&self, rs: &ReplicaSet) -> i32 {
        let want = self.desired();
        let current = spec_replicas(rs);
        if want == 0 {
            return -current;
        }
        let max_now = want + max_surge(&self.d);
        let before = match max_replicas(rs) {
            Some(m) if m != 0 => m,
            _ => self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        };
        if before == 0 {
            return 0;
        }
        let size = f64::from(current) * f64::from(max_now) / f64::from(before);
        // Go's math.Round: half away from zero.
        #[allow(clippy::cast_possible_truncation)]
        let rounded = size.round() as i32;
        rounded - current
    }

    /// Deletes the oldest fully scaled-down old ReplicaSets beyond `revisionHistoryLimit` (upstream
    /// `cleanupDeployment`).
    pub fn cleanup(&mut self) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit).filter(|l| *l != i32::MAX) else {
            return;
        };
        let mut alive: Vec<usize> =
            self.old().into_iter().filter(|&i| self.sets[i].metadata.deletion_timestamp.is_none()).collect();
        let excess = i32::try_from(alive.len()).unwrap_or(i32::MAX) - limit;
        if excess <= 0 {
            return;
        }
        alive.sort_by(|&a, &b| by_revision(&self.sets[a], &self.sets[b]));
        for &i in alive.iter().take(usize::try_from(excess).unwrap_or(0)) {
            let rs = &self.sets[i];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if status_replicas(rs) != 0 || spec_replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
                continue;
            }
            self.delete.push(i);
        }
    }

    /// The ReplicaSets as status calculation sees them: every one, the new one included.
    pub fn refs(&self) -> (Vec<&ReplicaSet>, Option<&ReplicaSet>) {
        (self.sets.iter().collect(), self.new.map(|i| &self.sets[i]))
    }
}
