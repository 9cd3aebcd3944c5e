//! A StatefulSet pod's stable identity: its name `<set>-<ordinal>`, the labels naming it and its index,
//! its DNS hostname/subdomain, and the PersistentVolumeClaims `<claim>-<set>-<ordinal>` its volumes use.
//!
//! Pure: must not depend on the API client.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::history::REVISION_HASH_LABEL;
use crate::pods::{controller_ref, pod_from_template};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The ordinal of `pod_name` if it is a pod of the set `set_name` (`<set>-<digits>`), upstream `getOrdinal`.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let digits = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.metadata.name.as_deref().unwrap_or_default())
}

/// `<claim template>-<set>-<ordinal>`.
pub fn claim_name(template_name: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{template_name}-{}", pod_name(set, ordinal))
}

fn retention(set: &StatefulSet) -> (bool, bool) {
    let policy = set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
    (delete(policy.and_then(|p| p.when_deleted.as_ref())), delete(policy.and_then(|p| p.when_scaled.as_ref())))
}

/// `persistentVolumeClaimRetentionPolicy.whenScaled: Delete`: claims of ordinals scaled away go too.
pub fn deletes_claims_on_scale_down(set: &StatefulSet) -> bool {
    retention(set).1
}

/// The claims pod `ordinal` uses, as created: the templates named per ordinal, labelled with the set's
/// selector labels, owned by the set when `whenDeleted: Delete` (so they go with it).
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let spec = set.spec.as_ref();
    let selector_labels = spec.and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    let owner = retention(set).0.then(|| OwnerReference {
        api_version: StatefulSet::api_version(&()).into_owned(),
        kind: StatefulSet::kind(&()).into_owned(),
        name: set.metadata.name.clone().unwrap_or_default(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    });
    spec.and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|mut claim| {
            let template_name = claim.metadata.name.clone().unwrap_or_default();
            claim.metadata.name = Some(claim_name(&template_name, set, ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let labels = claim.metadata.labels.get_or_insert_with(Default::default);
            labels.extend(selector_labels.clone());
            claim.metadata.owner_references = owner.clone().map(|o| vec![o]);
            claim.metadata.resource_version = None;
            claim.metadata.uid = None;
            claim.status = None;
            claim
        })
        .collect()
}

/// Pod `ordinal` of `set` from `template` (the template of `revision`): named, labelled, with hostname and
/// subdomain (`serviceName`), and each claim template's volume pointing at the ordinal's claim.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut pod = pod_from_template(template, &namespace, "", controller_ref(set));
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    if let Some(service) = set.spec.as_ref().and_then(|s| s.service_name.clone()).filter(|s| !s.is_empty()) {
        spec.subdomain = Some(service);
    }
    let templates = set.spec.as_ref().and_then(|s| s.volume_claim_templates.clone()).unwrap_or_default();
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for t in templates {
        let volume_name = t.metadata.name.clone().unwrap_or_default();
        let volume = Volume {
            name: volume_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&volume_name, set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        };
        match volumes.iter_mut().find(|v| v.name == volume_name) {
            Some(v) => *v = volume,
            None => volumes.push(volume),
        }
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    pod
}
