//! In-place upgrade of one pod to its SidecarSet's current images (spec §4.5): only `image` ever
//! changes; the pod's hash annotation, the in-place update state and patchPodMetadata are refreshed;
//! the result is one JSON patch guarded by the pod's resourceVersion. Also the pod condition
//! `SidecarSetUpgradable`. Pure.

use super::{hotupgrade, pod};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::keys::sidecarset::{
    REASON_ALL_SIDECARSET_UPGRADABLE, REASON_UPDATE_IMMUTABLE_FIELD, SIDECARSET_HASH,
    SIDECARSET_HASH_WITHOUT_IMAGE, SIDECARSET_INJECTED_LIST, SIDECARSET_INPLACE_UPDATE_STATE,
    SIDECARSET_UPGRADABLE_CONDITION,
};
use kruise_crds::keys::{CONDITION_FALSE, CONDITION_TRUE};
use kruise_crds::sidecarset::{SidecarSet, SidecarSetUpgradeSpec};
use std::collections::BTreeMap;

/// Why a pod could not be upgraded.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// A patchPodMetadata `MergePatchJson` met an annotation that is not JSON.
    #[error("patch pod metadata annotation {key}: {reason}")]
    PatchPodMetadata {
        /// The annotation key.
        key: String,
        /// Why the merge failed.
        reason: String,
    },
    /// The pod or its new form does not serialize (never expected for typed pods).
    #[error("serialize pod: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// The upgraded pod and the containers whose image changed.
#[derive(Clone, Debug, PartialEq)]
pub struct UpgradeOutcome {
    /// The pod after the upgrade.
    pub pod: Pod,
    /// Containers whose image changed (a hot sidecar contributes its upgraded slot).
    pub changed: Vec<String>,
}

/// `updatePodSidecarAndHash` without the API call: set each sidecar's image (the target slot for a hot
/// sidecar), record the new hash, the pre-patch image IDs and patchPodMetadata.
pub fn upgrade_pod(
    ss: &SidecarSet,
    p: &Pod,
    now: Timestamp,
) -> Result<UpgradeOutcome, UpgradeError> {
    let mut out = p.clone();
    let mut ann = out.metadata.annotations.clone().unwrap_or_default();
    let mut changed = Vec::new();
    let ss_name = ss.metadata.name.clone().unwrap_or_default();
    let rv = ss.metadata.resource_version.clone().unwrap_or_default();
    for c in pod::sidecars(ss) {
        let want = c.container.image.clone().unwrap_or_default();
        let (target, compare_with, other) = if c.is_hot_upgrade() {
            let (t, o) = hotupgrade::find_container_to_hot_upgrade(ss, c, p);
            (t, o.clone(), Some(o))
        } else {
            (c.container.name.clone(), c.container.name.clone(), None)
        };
        if pod::container_image(p, &compare_with) == Some(want.as_str()) {
            continue;
        }
        let Some(container) = out
            .spec
            .as_mut()
            .and_then(|s| s.containers.iter_mut().find(|x| x.name == target))
        else {
            continue;
        };
        container.image = Some(want);
        if let Some(other) = other {
            hotupgrade::upgrade_annotations(&mut ann, &c.container.name, &target, &other, &rv);
        }
        changed.push(target);
    }

    // The hash annotation entry of this SidecarSet, even when no container changed. A legacy
    // `{ss: hash}` annotation is converted first, as OpenKruise does: every entry gets `now` and this
    // SidecarSet's name, and the without-image annotation is converted the same way (and only then).
    let legacy = |raw: &str| {
        serde_json::from_str::<BTreeMap<String, String>>(raw)
            .ok()
            .map(|m| {
                m.into_iter()
                    .map(|(k, hash)| {
                        let spec = SidecarSetUpgradeSpec {
                            update_timestamp: Some(Time(now)),
                            hash,
                            sidecar_set_name: ss_name.clone(),
                            ..Default::default()
                        };
                        (k, spec)
                    })
                    .collect::<BTreeMap<_, _>>()
            })
    };
    let raw_hash = pod::annotation(p, SIDECARSET_HASH);
    let mut hashes = match raw_hash
        .map(serde_json::from_str::<BTreeMap<String, SidecarSetUpgradeSpec>>)
    {
        None => BTreeMap::new(),
        Some(Ok(m)) => m,
        Some(Err(_)) => {
            if let Some(wo) = pod::annotation(p, SIDECARSET_HASH_WITHOUT_IMAGE).and_then(legacy) {
                ann.insert(
                    SIDECARSET_HASH_WITHOUT_IMAGE.to_owned(),
                    serde_json::to_string(&wo).map_err(UpgradeError::Serialize)?,
                );
            }
            raw_hash.and_then(legacy).unwrap_or_default()
        }
    };
    hashes.insert(
        ss_name.clone(),
        SidecarSetUpgradeSpec {
            update_timestamp: Some(Time(now)),
            hash: pod::sidecarset_hash(ss),
            sidecar_set_name: ss_name.clone(),
            sidecar_list: sidecar_list(ss),
            controller_revision: ss
                .status
                .as_ref()
                .and_then(|s| s.latest_revision.clone())
                .unwrap_or_default(),
        },
    );
    ann.insert(
        SIDECARSET_HASH.to_owned(),
        serde_json::to_string(&hashes).map_err(UpgradeError::Serialize)?,
    );
    let state =
        pod::record_inplace_update_state(p, &ss_name, &pod::sidecarset_hash(ss), &changed, now);
    ann.insert(SIDECARSET_INPLACE_UPDATE_STATE.to_owned(), state);
    ann.entry(SIDECARSET_INJECTED_LIST.to_owned())
        .or_insert_with(|| ss_name.clone());
    if let Some(patches) = ss.spec.patch_pod_metadata.as_deref() {
        kruise_webhook::sidecarset::patch_pod_metadata(&mut ann, patches)
            .map_err(|(key, reason)| UpgradeError::PatchPodMetadata { key, reason })?;
    }
    out.metadata.annotations = Some(ann);
    Ok(UpgradeOutcome { pod: out, changed })
}

/// Sorted logical sidecar names recorded in the hash annotation: native init sidecars and containers.
pub fn sidecar_list(ss: &SidecarSet) -> Vec<String> {
    let mut names: Vec<String> = ss
        .spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.is_native_sidecar())
        .chain(pod::sidecars(ss))
        .map(|c| c.container.name.clone())
        .collect();
    names.sort();
    names
}

/// A JSON patch from `old` to `new`, refused by the API server if the pod changed meanwhile (its
/// first operation tests `metadata.resourceVersion`).
pub fn pod_patch(old: &Pod, new: &Pod) -> Result<json_patch::Patch, UpgradeError> {
    let a = serde_json::to_value(old).map_err(UpgradeError::Serialize)?;
    let b = serde_json::to_value(new).map_err(UpgradeError::Serialize)?;
    let mut ops = json_patch::diff(&a, &b).0;
    if let Some(rv) = &old.metadata.resource_version {
        let test = json_patch::PatchOperation::Test(json_patch::TestOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["metadata", "resourceVersion"]),
            value: serde_json::Value::String(rv.clone()),
        });
        ops.insert(0, test);
    }
    Ok(json_patch::Patch(ops))
}

/// [`upgrade_pod`] as the one patch to send (with the changed containers, for the event).
pub fn upgrade_pod_patch(
    ss: &SidecarSet,
    p: &Pod,
    now: Timestamp,
) -> Result<(json_patch::Patch, Vec<String>), UpgradeError> {
    let out = upgrade_pod(ss, p, now)?;
    Ok((pod_patch(p, &out.pod)?, out.changed))
}

/// The pod condition `SidecarSetUpgradable` after SidecarSet `ss_name` says whether it can upgrade
/// the pod: its message is the JSON map `{ss: bool}` across SidecarSets; `True` with reason
/// `AllSidecarsetUpgradable` if every entry is true, else `False`/`UpdateImmutableField`. `None` when
/// nothing changes (the patch is skipped).
pub fn upgradable_condition(
    p: &Pod,
    ss_name: &str,
    upgradable: bool,
    now: Timestamp,
) -> Option<PodCondition> {
    let old = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == SIDECARSET_UPGRADABLE_CONDITION)
        });
    let mut map: BTreeMap<String, bool> = old
        .and_then(|c| c.message.as_deref())
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    map.insert(ss_name.to_owned(), upgradable);
    let all = map.values().all(|v| *v);
    let (status, reason) = if all {
        (CONDITION_TRUE, REASON_ALL_SIDECARSET_UPGRADABLE)
    } else {
        (CONDITION_FALSE, REASON_UPDATE_IMMUTABLE_FIELD)
    };
    // A map of bools always serializes.
    let message = serde_json::to_string(&map).unwrap_or_default();
    if let Some(o) = old
        && o.status == status
        && o.reason.as_deref() == Some(reason)
        && o.message.as_deref() == Some(message.as_str())
    {
        return None;
    }
    let changed_status = old.is_none_or(|o| o.status != status);
    Some(PodCondition {
        type_: SIDECARSET_UPGRADABLE_CONDITION.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: if changed_status {
            Some(Time(now))
        } else {
            old.and_then(|o| o.last_transition_time.clone())
        },
        last_probe_time: None,
        observed_generation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::pod::testutil::*;
    use super::*;
    use kruise_crds::sidecarset::{SidecarSetPatchPodMetadata, SidecarSetPatchPolicyType};

    #[test]
    fn cold_upgrade_changes_only_the_image() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.status = Some(kruise_crds::sidecarset::SidecarSetStatus {
            latest_revision: Some("test-sidecarset-abc".into()),
            ..Default::default()
        });
        let p = mk_pod("p").build();
        let out = upgrade_pod(&ss, &p, ts(1_615_800_058)).unwrap();
        assert_eq!(out.changed, vec!["test-sidecar"]);
        assert_eq!(
            pod::container_image(&out.pod, "test-sidecar"),
            Some("test-image:v2")
        );
        assert_eq!(
            pod::container_image(&out.pod, "nginx"),
            Some("nginx:1.15.1")
        );
        assert_eq!(
            pod::annotation(&out.pod, SIDECARSET_HASH),
            Some(
                r#"{"test-sidecarset":{"updateTimestamp":"2021-03-15T09:20:58Z","hash":"bbb","sidecarSetName":"test-sidecarset","sidecarList":["test-sidecar"],"controllerRevision":"test-sidecarset-abc"}}"#
            )
        );
        // Without-image annotation untouched (not legacy).
        assert_eq!(
            pod::annotation(&out.pod, SIDECARSET_HASH_WITHOUT_IMAGE),
            pod::annotation(&p, SIDECARSET_HASH_WITHOUT_IMAGE)
        );
        assert_eq!(
            pod::annotation(&out.pod, SIDECARSET_INPLACE_UPDATE_STATE),
            Some(
                r#"{"test-sidecarset":{"revision":"bbb","updateTimestamp":"2021-03-15T09:20:58Z","lastContainerStatuses":{"test-sidecar":{"imageID":"docker-pullable://test-image@sha256:v1"}}}}"#
            )
        );
        // The upgraded pod is updated but in flight until kubelet restarts the container.
        assert!(pod::is_updated(&ss, &out.pod));
        assert!(!pod::is_state_consistent(&ss, &out.pod, None));
    }

    #[test]
    fn same_image_still_refreshes_hash() {
        let ss = mk_ss("bbb", "without-aaa", "test-image:v1");
        let out = upgrade_pod(&ss, &mk_pod("p").build(), ts(0)).unwrap();
        assert!(out.changed.is_empty());
        assert!(pod::is_updated(&ss, &out.pod));
        assert!(pod::annotation(&out.pod, SIDECARSET_INPLACE_UPDATE_STATE).is_some());
    }

    #[test]
    fn legacy_annotations_are_converted() {
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let p = mk_pod("p")
            .annotation(SIDECARSET_HASH, r#"{"other":"x","test-sidecarset":"aaa"}"#)
            .annotation(
                SIDECARSET_HASH_WITHOUT_IMAGE,
                r#"{"test-sidecarset":"without-aaa"}"#,
            )
            .build();
        let out = upgrade_pod(&ss, &p, ts(0)).unwrap();
        assert_eq!(
            pod::annotation(&out.pod, SIDECARSET_HASH),
            Some(
                r#"{"other":{"updateTimestamp":"1970-01-01T00:00:00Z","hash":"x","sidecarSetName":"test-sidecarset","sidecarList":[]},"test-sidecarset":{"updateTimestamp":"1970-01-01T00:00:00Z","hash":"bbb","sidecarSetName":"test-sidecarset","sidecarList":["test-sidecar"]}}"#
            )
        );
        assert_eq!(
            pod::annotation(&out.pod, SIDECARSET_HASH_WITHOUT_IMAGE),
            Some(
                r#"{"test-sidecarset":{"updateTimestamp":"1970-01-01T00:00:00Z","hash":"without-aaa","sidecarSetName":"test-sidecarset","sidecarList":[]}}"#
            )
        );
        // A current-format hash annotation leaves a legacy without-image annotation alone.
        let p = mk_pod("p")
            .annotation(
                SIDECARSET_HASH_WITHOUT_IMAGE,
                r#"{"test-sidecarset":"without-aaa"}"#,
            )
            .build();
        let out = upgrade_pod(&ss, &p, ts(0)).unwrap();
        assert_eq!(
            pod::annotation(&out.pod, SIDECARSET_HASH_WITHOUT_IMAGE),
            Some(r#"{"test-sidecarset":"without-aaa"}"#)
        );
    }

    #[test]
    fn patch_pod_metadata_retain_does_not_overwrite() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.spec.patch_pod_metadata = Some(vec![
            SidecarSetPatchPodMetadata {
                annotations: Some(BTreeMap::from([("keep".into(), "new".into())])),
                patch_policy: Some(SidecarSetPatchPolicyType::Retain),
            },
            SidecarSetPatchPodMetadata {
                annotations: Some(BTreeMap::from([("over".into(), "new".into())])),
                patch_policy: Some(SidecarSetPatchPolicyType::Overwrite),
            },
        ]);
        let p = mk_pod("p")
            .annotation("keep", "old")
            .annotation("over", "old")
            .build();
        let out = upgrade_pod(&ss, &p, ts(0)).unwrap().pod;
        assert_eq!(pod::annotation(&out, "keep"), Some("old"));
        assert_eq!(pod::annotation(&out, "over"), Some("new"));
    }

    #[test]
    fn patch_is_guarded_and_minimal() {
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let (patch, changed) = upgrade_pod_patch(&ss, &mk_pod("p").build(), ts(0)).unwrap();
        assert_eq!(changed, vec!["test-sidecar"]);
        let v = serde_json::to_value(&patch).unwrap();
        let ops = v.as_array().unwrap();
        assert_eq!(ops[0]["op"], "test");
        assert_eq!(ops[0]["path"], "/metadata/resourceVersion");
        assert_eq!(ops[0]["value"], "7");
        let paths: Vec<&str> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert!(paths.contains(&"/spec/containers/1/image"));
        assert!(
            paths
                .iter()
                .all(|p| p.starts_with("/metadata") || *p == "/spec/containers/1/image")
        );
        // Applying the patch gives the upgraded pod.
        let mut doc = serde_json::to_value(mk_pod("p").build()).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        let applied: Pod = serde_json::from_value(doc).unwrap();
        assert_eq!(
            pod::container_image(&applied, "test-sidecar"),
            Some("test-image:v2")
        );
    }

    #[test]
    fn upgradable_condition_message() {
        let p = mk_pod("p").build();
        // Upgradable and no condition yet: written, as OpenKruise does after an upgrade.
        let c0 = upgradable_condition(&p, "a", true, ts(0)).unwrap();
        assert_eq!(c0.message.as_deref(), Some(r#"{"a":true}"#));
        assert_eq!(c0.status, "True");
        let c = upgradable_condition(&p, "a", false, ts(1)).unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("UpdateImmutableField"));
        assert_eq!(c.message.as_deref(), Some(r#"{"a":false}"#));
        let mut p2 = p.clone();
        p2.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(c.clone());
        assert_eq!(upgradable_condition(&p2, "a", false, ts(2)), None);
        let c2 = upgradable_condition(&p2, "b", true, ts(3)).unwrap();
        assert_eq!(c2.message.as_deref(), Some(r#"{"a":false,"b":true}"#));
        assert_eq!(c2.last_transition_time, Some(Time(ts(1))));
        let c3 = upgradable_condition(&p2, "a", true, ts(4)).unwrap();
        assert_eq!(
            (c3.status.as_str(), c3.reason.as_deref()),
            ("True", Some("AllSidecarsetUpgradable"))
        );
    }
}
