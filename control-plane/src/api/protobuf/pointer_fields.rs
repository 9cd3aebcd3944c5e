//! Which scalar fields are Go pointers (`*int32`, `*bool`, `*string`, ...) in the Kubernetes API types.
//!
//! The Go protobuf marshaller writes every non-pointer scalar, even when it is zero, but writes a pointer only
//! when it is set. The JSON form omits unset values (`omitempty`), so the decoder drops zero scalars, except for
//! the pointer fields listed here, where an explicit zero is meaningful (`replicas: 0`, `gracePeriodSeconds: 0`,
//! `suspend: false`). Hand-maintained from the upstream Go types; must not depend on the wire reader.

/// (message, JSON field) pairs, sorted, for binary search.
const POINTER_SCALARS: &[(&str, &str)] = &[
    ("api.apps.v1.DaemonSetSpec", "revisionHistoryLimit"),
    ("api.apps.v1.DaemonSetStatus", "collisionCount"),
    ("api.apps.v1.DeploymentSpec", "progressDeadlineSeconds"),
    ("api.apps.v1.DeploymentSpec", "replicas"),
    ("api.apps.v1.DeploymentSpec", "revisionHistoryLimit"),
    ("api.apps.v1.DeploymentStatus", "collisionCount"),
    ("api.apps.v1.DeploymentStatus", "terminatingReplicas"),
    ("api.apps.v1.ReplicaSetSpec", "replicas"),
    ("api.apps.v1.ReplicaSetStatus", "terminatingReplicas"),
    ("api.apps.v1.RollingUpdateStatefulSetStrategy", "partition"),
    ("api.apps.v1.StatefulSetSpec", "replicas"),
    ("api.apps.v1.StatefulSetSpec", "revisionHistoryLimit"),
    ("api.apps.v1.StatefulSetStatus", "collisionCount"),
    ("api.authentication.v1.TokenRequestSpec", "expirationSeconds"),
    ("api.autoscaling.v1.HorizontalPodAutoscalerSpec", "minReplicas"),
    ("api.autoscaling.v1.HorizontalPodAutoscalerSpec", "targetCPUUtilizationPercentage"),
    ("api.autoscaling.v1.HorizontalPodAutoscalerStatus", "currentCPUUtilizationPercentage"),
    ("api.autoscaling.v1.HorizontalPodAutoscalerStatus", "observedGeneration"),
    ("api.batch.v1.CronJobSpec", "failedJobsHistoryLimit"),
    ("api.batch.v1.CronJobSpec", "startingDeadlineSeconds"),
    ("api.batch.v1.CronJobSpec", "successfulJobsHistoryLimit"),
    ("api.batch.v1.CronJobSpec", "suspend"),
    ("api.batch.v1.CronJobSpec", "timeZone"),
    ("api.batch.v1.JobSpec", "activeDeadlineSeconds"),
    ("api.batch.v1.JobSpec", "backoffLimit"),
    ("api.batch.v1.JobSpec", "backoffLimitPerIndex"),
    ("api.batch.v1.JobSpec", "completionMode"),
    ("api.batch.v1.JobSpec", "completions"),
    ("api.batch.v1.JobSpec", "managedBy"),
    ("api.batch.v1.JobSpec", "manualSelector"),
    ("api.batch.v1.JobSpec", "maxFailedIndexes"),
    ("api.batch.v1.JobSpec", "parallelism"),
    ("api.batch.v1.JobSpec", "podReplacementPolicy"),
    ("api.batch.v1.JobSpec", "suspend"),
    ("api.batch.v1.JobSpec", "ttlSecondsAfterFinished"),
    ("api.batch.v1.JobStatus", "failedIndexes"),
    ("api.batch.v1.JobStatus", "ready"),
    ("api.batch.v1.JobStatus", "terminating"),
    ("api.batch.v1.PodFailurePolicyOnExitCodesRequirement", "containerName"),
    ("api.coordination.v1.LeaseSpec", "holderIdentity"),
    ("api.coordination.v1.LeaseSpec", "leaseDurationSeconds"),
    ("api.coordination.v1.LeaseSpec", "leaseTransitions"),
    ("api.coordination.v1.LeaseSpec", "preferredHolder"),
    ("api.coordination.v1.LeaseSpec", "strategy"),
    ("api.core.v1.CSIVolumeSource", "fsType"),
    ("api.core.v1.CSIVolumeSource", "readOnly"),
    ("api.core.v1.ConfigMap", "immutable"),
    ("api.core.v1.ConfigMapEnvSource", "optional"),
    ("api.core.v1.ConfigMapKeySelector", "optional"),
    ("api.core.v1.ConfigMapProjection", "optional"),
    ("api.core.v1.ConfigMapVolumeSource", "defaultMode"),
    ("api.core.v1.ConfigMapVolumeSource", "optional"),
    ("api.core.v1.Container", "restartPolicy"),
    ("api.core.v1.ContainerStatus", "started"),
    ("api.core.v1.DownwardAPIVolumeFile", "mode"),
    ("api.core.v1.DownwardAPIVolumeSource", "defaultMode"),
    ("api.core.v1.EndpointPort", "appProtocol"),
    ("api.core.v1.GrpcAction", "service"),
    ("api.core.v1.HostPathVolumeSource", "type"),
    ("api.core.v1.KeyToPath", "mode"),
    ("api.core.v1.PersistentVolumeClaimSpec", "storageClassName"),
    ("api.core.v1.PersistentVolumeClaimSpec", "volumeAttributesClassName"),
    ("api.core.v1.PersistentVolumeClaimSpec", "volumeMode"),
    ("api.core.v1.PersistentVolumeSpec", "volumeAttributesClassName"),
    ("api.core.v1.PersistentVolumeSpec", "volumeMode"),
    ("api.core.v1.PodResourceClaim", "resourceClaimName"),
    ("api.core.v1.PodResourceClaim", "resourceClaimTemplateName"),
    ("api.core.v1.PodSecurityContext", "fsGroup"),
    ("api.core.v1.PodSecurityContext", "fsGroupChangePolicy"),
    ("api.core.v1.PodSecurityContext", "runAsGroup"),
    ("api.core.v1.PodSecurityContext", "runAsNonRoot"),
    ("api.core.v1.PodSecurityContext", "runAsUser"),
    ("api.core.v1.PodSecurityContext", "seLinuxChangePolicy"),
    ("api.core.v1.PodSecurityContext", "supplementalGroupsPolicy"),
    ("api.core.v1.PodSpec", "activeDeadlineSeconds"),
    ("api.core.v1.PodSpec", "automountServiceAccountToken"),
    ("api.core.v1.PodSpec", "enableServiceLinks"),
    ("api.core.v1.PodSpec", "hostUsers"),
    ("api.core.v1.PodSpec", "hostnameOverride"),
    ("api.core.v1.PodSpec", "preemptionPolicy"),
    ("api.core.v1.PodSpec", "priority"),
    ("api.core.v1.PodSpec", "runtimeClassName"),
    ("api.core.v1.PodSpec", "setHostnameAsFQDN"),
    ("api.core.v1.PodSpec", "shareProcessNamespace"),
    ("api.core.v1.PodSpec", "terminationGracePeriodSeconds"),
    ("api.core.v1.Probe", "terminationGracePeriodSeconds"),
    ("api.core.v1.ProjectedVolumeSource", "defaultMode"),
    ("api.core.v1.ReplicationControllerSpec", "replicas"),
    ("api.core.v1.Secret", "immutable"),
    ("api.core.v1.SecretEnvSource", "optional"),
    ("api.core.v1.SecretKeySelector", "optional"),
    ("api.core.v1.SecretProjection", "optional"),
    ("api.core.v1.SecretVolumeSource", "defaultMode"),
    ("api.core.v1.SecretVolumeSource", "optional"),
    ("api.core.v1.SecurityContext", "allowPrivilegeEscalation"),
    ("api.core.v1.SecurityContext", "privileged"),
    ("api.core.v1.SecurityContext", "procMount"),
    ("api.core.v1.SecurityContext", "readOnlyRootFilesystem"),
    ("api.core.v1.SecurityContext", "runAsGroup"),
    ("api.core.v1.SecurityContext", "runAsNonRoot"),
    ("api.core.v1.SecurityContext", "runAsUser"),
    ("api.core.v1.ServiceAccount", "automountServiceAccountToken"),
    ("api.core.v1.ServiceAccountTokenProjection", "expirationSeconds"),
    ("api.core.v1.ServicePort", "appProtocol"),
    ("api.core.v1.ServiceSpec", "allocateLoadBalancerNodePorts"),
    ("api.core.v1.ServiceSpec", "internalTrafficPolicy"),
    ("api.core.v1.ServiceSpec", "ipFamilyPolicy"),
    ("api.core.v1.ServiceSpec", "loadBalancerClass"),
    ("api.core.v1.ServiceSpec", "trafficDistribution"),
    ("api.core.v1.Toleration", "tolerationSeconds"),
    ("api.core.v1.TopologySpreadConstraint", "minDomains"),
    ("api.core.v1.TopologySpreadConstraint", "nodeAffinityPolicy"),
    ("api.core.v1.TopologySpreadConstraint", "nodeTaintsPolicy"),
    ("api.core.v1.VolumeMount", "mountPropagation"),
    ("api.core.v1.VolumeMount", "recursiveReadOnly"),
    ("api.core.v1.WindowsSecurityContextOptions", "gmsaCredentialSpec"),
    ("api.core.v1.WindowsSecurityContextOptions", "gmsaCredentialSpecName"),
    ("api.core.v1.WindowsSecurityContextOptions", "hostProcess"),
    ("api.core.v1.WindowsSecurityContextOptions", "runAsUserName"),
    ("api.discovery.v1.Endpoint", "hostname"),
    ("api.discovery.v1.Endpoint", "nodeName"),
    ("api.discovery.v1.Endpoint", "zone"),
    ("api.discovery.v1.EndpointConditions", "ready"),
    ("api.discovery.v1.EndpointConditions", "serving"),
    ("api.discovery.v1.EndpointConditions", "terminating"),
    ("api.discovery.v1.EndpointPort", "appProtocol"),
    ("api.discovery.v1.EndpointPort", "name"),
    ("api.discovery.v1.EndpointPort", "port"),
    ("api.discovery.v1.EndpointPort", "protocol"),
    ("api.policy.v1.PodDisruptionBudgetSpec", "unhealthyPodEvictionPolicy"),
    ("apimachinery.pkg.apis.meta.v1.DeleteOptions", "gracePeriodSeconds"),
    ("apimachinery.pkg.apis.meta.v1.DeleteOptions", "ignoreStoreReadErrorWithClusterBreakingPotential"),
    ("apimachinery.pkg.apis.meta.v1.DeleteOptions", "orphanDependents"),
    ("apimachinery.pkg.apis.meta.v1.DeleteOptions", "propagationPolicy"),
    ("apimachinery.pkg.apis.meta.v1.ListMeta", "remainingItemCount"),
    ("apimachinery.pkg.apis.meta.v1.ObjectMeta", "deletionGracePeriodSeconds"),
    ("apimachinery.pkg.apis.meta.v1.OwnerReference", "blockOwnerDeletion"),
    ("apimachinery.pkg.apis.meta.v1.OwnerReference", "controller"),
    ("apimachinery.pkg.apis.meta.v1.Preconditions", "resourceVersion"),
    ("apimachinery.pkg.apis.meta.v1.Preconditions", "uid"),
];

/// Whether `field` of `message` is a Go pointer, so that an explicit zero value must be kept.
pub fn is_pointer_scalar(message: &str, field: &str) -> bool {
    POINTER_SCALARS.binary_search(&(message, field)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::schema_model::message_named;
    use super::*;

    #[test]
    fn list_is_sorted_and_names_real_fields() {
        assert!(POINTER_SCALARS.windows(2).all(|w| w[0] < w[1]), "POINTER_SCALARS must be sorted and unique");
        for (message, field) in POINTER_SCALARS {
            let schema = message_named(message).unwrap_or_else(|| panic!("no message {message}"));
            assert!(schema.fields.iter().any(|f| f.json == *field), "{message} has no field {field}");
        }
    }

    #[test]
    fn answers_lookups() {
        assert!(is_pointer_scalar("api.apps.v1.DeploymentSpec", "replicas"));
        assert!(!is_pointer_scalar("api.apps.v1.DeploymentSpec", "minReadySeconds"));
    }
}
