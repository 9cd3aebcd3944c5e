//! ControllerRevisions shared by the DaemonSet and StatefulSet controllers (upstream
//! `pkg/controller/history`): revision data (a strategic-merge patch replacing `spec.template`), hashes and
//! names, and which revision a workload is at (reuse, renumber or create) and which old ones to prune.
//!
//! `revision` is pure (must not depend on the API client); `store` is the thin I/O that carries its plans out.

pub mod revision;
pub mod store;

#[cfg(test)]
mod tests;

pub use revision::{
    data_hash, fnv32a, history_to_prune, next_revision, owned_revisions, plan_revision, revision_name,
    revision_template, safe_encode, template_hash, template_patch, RevisionPlan, REVISION_HASH_LABEL,
};
