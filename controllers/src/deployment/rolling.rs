//! The rolling update steps (upstream `rolloutRolling`): grow the new ReplicaSet within
//! `replicas + maxSurge`, shrink old ones while at least `replicas - maxUnavailable` stay available,
//! unhealthy old replicas first. Pure.

use super::pass::Pass;
use super::sets::{available, available_within_spec, by_creation, spec_replicas};
use super::strategy::max_unavailable;

impl Pass {
    /// Scales the new ReplicaSet towards `spec.replicas` as far as the surge allows (upstream
    /// `reconcileNewReplicaSet`); whether it scaled.
    pub fn reconcile_new(&mut self) -> bool {
        let Some(new) = self.new else { return false };
        let want = self.desired();
        let current = spec_replicas(&self.sets[new]);
        if current == want {
            return false;
        }
        if current > want {
            return self.scale_to(new, want);
        }
        let n = self.new_rs_replicas(new);
        self.scale_to(new, n)
    }

    /// Scales old ReplicaSets down as far as availability allows (upstream `reconcileOldReplicaSets`);
    /// whether any scaled.
    pub fn reconcile_old(&mut self) -> bool {
        let old = self.active_old();
        if self.spec_sum(&old) == 0 {
            return false;
        }
        let all_pods = self.spec_sum(&self.all());
        let min_available = self.desired() - max_unavailable(&self.d);
        let new_unavailable = self.new.map_or(0, |i| spec_replicas(&self.sets[i]) - available(&self.sets[i]));
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down);
        let scaled = self.scale_down_old(&old);
        cleaned + scaled > 0
    }

    /// Scales old ReplicaSets down by their unavailable replicas, oldest first, at most `max` in all:
    /// removing pods that serve nothing costs no availability (upstream `cleanupUnhealthyReplicas`).
    fn cleanup_unhealthy(&mut self, old: &[usize], max: i32) -> i32 {
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| by_creation(&self.sets[a], &self.sets[b]));
        let mut total = 0;
        for i in old {
            if total >= max {
                break;
            }
            let current = spec_replicas(&self.sets[i]);
            let healthy = available(&self.sets[i]);
            if current == 0 || current <= healthy {
                continue;
            }
            let down = (max - total).min(current - healthy);
            self.scale_to(i, current - down);
            total += down;
        }
        total
    }

    /// Scales old ReplicaSets down, oldest first, by as many replicas as are available beyond
    /// `replicas - maxUnavailable` (upstream `scaleDownOldReplicaSetsForRollingUpdate`). Unlike
    /// upstream, a ReplicaSet's availability counts only up to its `spec.replicas`: a status not yet
    /// updated after the previous scale-down still counts the pods being removed, and trusting it
    /// took availability below the minimum (seen with `rollout-bench` at 1,000 replicas).
    fn scale_down_old(&mut self, old: &[usize]) -> i32 {
        let min_available = self.desired() - max_unavailable(&self.d);
        // Old ReplicaSets already at zero do not count, whatever their (possibly stale) status says.
        let counted = old.iter().copied().chain(self.new);
        let available_now: i32 = counted.map(|i| available_within_spec(&self.sets[i])).sum();
        if available_now <= min_available {
            return 0;
        }
        let budget = available_now - min_available;
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| by_creation(&self.sets[a], &self.sets[b]));
        let mut total = 0;
        for i in old {
            if total >= budget {
                break;
            }
            let current = spec_replicas(&self.sets[i]);
            if current == 0 {
                continue;
            }
            let down = current.min(budget - total);
            self.scale_to(i, current - down);
            total += down;
        }
        total
    }
}
