//! The per-kind dispatch of [`validate_object`].
//!
//! Pure; must not depend on the store or the HTTP layer.

use serde_json::Value;

use super::super::status::Cause;
use super::config::{validate_config_map, validate_secret};
use super::defaults::default_object;
use super::fields::Causes;
use super::misc::{
    validate_endpoints, validate_event, validate_lease, validate_pdb, validate_pvc, validate_role,
    validate_role_binding,
};
use super::pod::{validate_pod_spec, validate_pod_update};
use super::service::validate_service;
use super::workloads::{
    validate_cron_job, validate_daemon_set, validate_deployment, validate_job, validate_replica_set,
    validate_stateful_set,
};

/// Field causes (upstream reasons, paths and messages) of a defaulted object of `group`/`kind`;
/// `old` is the stored object on updates. Metadata names and labels are checked by
/// `objects::prepare_create`, not here. Empty when valid or when the kind has no rules.
pub fn validate_object(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    // Objects stored before defaulting existed (or written by a path that skipped it) are compared
    // as if defaulted, so an update is not refused for defaults the new body merely gained.
    let old_defaulted = old.map(|o| {
        let mut o = o.clone();
        default_object(group, kind, &mut o);
        o
    });
    let old = old_defaulted.as_ref();
    let mut c = Causes::default();
    match (group, kind) {
        ("", "Pod") => {
            validate_pod_spec(obj.get("spec"), "spec", &mut c);
            if let Some(old) = old {
                validate_pod_update(obj, old, &mut c);
            }
        }
        ("apps", "Deployment") => validate_deployment(obj, old, &mut c),
        ("apps", "ReplicaSet") => validate_replica_set(obj, old, &mut c),
        ("apps", "StatefulSet") => validate_stateful_set(obj, old, &mut c),
        ("apps", "DaemonSet") => validate_daemon_set(obj, old, &mut c),
        ("batch", "Job") => validate_job(obj, old, &mut c),
        ("batch", "CronJob") => validate_cron_job(obj, &mut c),
        ("", "Service") => validate_service(obj, old, &mut c),
        ("", "ConfigMap") => validate_config_map(obj, old, &mut c),
        ("", "Secret") => validate_secret(obj, old, &mut c),
        ("", "PersistentVolumeClaim") => validate_pvc(obj, old, &mut c),
        ("", "Endpoints") => validate_endpoints(obj, &mut c),
        ("", "Event") => validate_event(obj, &mut c),
        ("coordination.k8s.io", "Lease") => validate_lease(obj, &mut c),
        ("policy", "PodDisruptionBudget") => validate_pdb(obj, &mut c),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => validate_role(obj, &mut c),
        ("rbac.authorization.k8s.io", "RoleBinding") => validate_role_binding(obj, old, true, &mut c),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => validate_role_binding(obj, old, false, &mut c),
        _ => {}
    }
    c.0
}
