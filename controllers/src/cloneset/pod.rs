//! Building what a CloneSet creates (spec §6.4–§6.5): instance ids, pods from a revision's template
//! (name `{cs}-{id}`, revision and instance-id labels, lifecycle `PreparingNormal`, the
//! `InPlaceUpdateReady` readiness gate, PVC volumes) and the per-instance PVCs. Pure but for the id dice.

use super::lifecycle;
use super::revision::{controller_ref, revision_labels};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodReadinessGate,
    PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kruise_crds::CloneSet;
use kruise_crds::keys::{self, cloneset as ck};
use std::collections::BTreeSet;

/// One pod to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPod {
    /// Full revision name the pod is built from.
    pub revision: String,
    /// Its instance id (pod name `{cs}-{id}`).
    pub instance_id: String,
}

/// A random instance id over the safe alphabet.
pub fn random_id(rng: &mut fastrand::Rng) -> String {
    let alphabet = ck::INSTANCE_ID_ALPHABET.as_bytes();
    (0..ck::INSTANCE_ID_LEN)
        .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
        .collect()
}

/// `n` instance ids: first the reusable ones (free PVC ids, sorted), then fresh random ids that
/// collide with nothing in `taken`.
pub fn instance_ids(
    n: usize,
    taken: &BTreeSet<String>,
    reusable: &BTreeSet<String>,
    rng: &mut fastrand::Rng,
) -> Vec<String> {
    let mut out: Vec<String> = reusable.iter().take(n).cloned().collect();
    let mut used: BTreeSet<String> = taken.iter().chain(out.iter()).cloned().collect();
    while out.len() < n {
        let id = random_id(rng);
        if used.insert(id.clone()) {
            out.push(id);
        }
    }
    out.sort();
    out
}

/// PVC name `{vct}-{cs}-{id}`.
pub fn pvc_name(vct: &str, cs: &str, id: &str) -> String {
    format!("{vct}-{cs}-{id}")
}

/// The PVCs of one instance.
pub fn build_pvcs(cs: &CloneSet, id: &str) -> Vec<PersistentVolumeClaim> {
    let cs_name = cs.metadata.name.clone().unwrap_or_default();
    cs.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|vct| {
            let vct_name = vct.metadata.name.clone().unwrap_or_default();
            let mut labels = vct.metadata.labels.clone().unwrap_or_default();
            labels.extend(cs.spec.selector.match_labels.clone().unwrap_or_default());
            labels.insert(ck::INSTANCE_ID_LABEL.into(), id.into());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(pvc_name(&vct_name, &cs_name, id)),
                    namespace: cs.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: vct.metadata.annotations.clone(),
                    owner_references: Some(vec![controller_ref(cs)]),
                    ..Default::default()
                },
                spec: vct.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// A new pod of the CloneSet at `revision`, built from `template` (that revision's template).
pub fn build_pod(
    cs: &CloneSet,
    template: &PodTemplateSpec,
    revision: &str,
    id: &str,
    now: Timestamp,
) -> Pod {
    let cs_name = cs.metadata.name.clone().unwrap_or_default();
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.extend(revision_labels(revision));
    labels.insert(ck::INSTANCE_ID_LABEL.into(), id.into());
    labels.insert(
        keys::LIFECYCLE_STATE_LABEL.into(),
        ck::LIFECYCLE_PREPARING_NORMAL.into(),
    );
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(keys::LIFECYCLE_TIMESTAMP.into(), lifecycle::rfc3339(now));
    let mut spec = template.spec.clone().unwrap_or_default();
    // Every CloneSet pod carries both gates, as with OpenKruise (whose pod webhook adds
    // KruisePodReady to every pod a kruise workload owns): markPodNotReady works even when it is
    // turned on after the pods exist, since readiness gates cannot be added to a running pod. The
    // controller sets both conditions True in one status write (`update::plan_refresh`).
    let gates = spec.readiness_gates.get_or_insert_default();
    for gate in [keys::INPLACE_UPDATE_READY, ck::KRUISE_POD_READY] {
        if !gates.iter().any(|g| g.condition_type == gate) {
            gates.push(PodReadinessGate {
                condition_type: gate.into(),
            });
        }
    }
    if let Some(vcts) = cs
        .spec
        .volume_claim_templates
        .as_ref()
        .filter(|v| !v.is_empty())
    {
        let mut volumes: Vec<Volume> = vcts
            .iter()
            .map(|vct| {
                let vct_name = vct.metadata.name.clone().unwrap_or_default();
                Volume {
                    name: vct_name.clone(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: pvc_name(&vct_name, &cs_name, id),
                        read_only: None,
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let names: BTreeSet<String> = volumes.iter().map(|v| v.name.clone()).collect();
        volumes.extend(
            spec.volumes
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|v| !names.contains(&v.name)),
        );
        spec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{cs_name}-{id}")),
            namespace: cs.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(cs)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The instance id label of a PVC.
pub fn pvc_instance_id(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.metadata
        .labels
        .as_ref()?
        .get(ck::INSTANCE_ID_LABEL)
        .map(String::as_str)
}

/// Ids of owned PVCs none of `pods` uses: reused for new pods when PVC reuse is on.
pub fn reusable_ids(pods: &[&Pod], pvcs: &[&PersistentVolumeClaim]) -> BTreeSet<String> {
    let used: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| super::podutil::instance_id(p))
        .collect();
    pvcs.iter()
        .filter_map(|c| pvc_instance_id(c))
        .filter(|id| !used.contains(id))
        .map(String::from)
        .collect()
}

/// What `cleanupPVCs` does when PVC reuse is off (§6.4).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PvcCleanup {
    /// PVCs of no pod at all: delete.
    pub delete: Vec<String>,
    /// PVCs of an inactive pod: hand ownership to that pod (name, pod owner reference), so the
    /// garbage collector removes them with it.
    pub reown: Vec<(String, OwnerReference)>,
}

/// Plans `cleanupPVCs`.
pub fn plan_pvc_cleanup(
    active: &[&Pod],
    inactive: &[&Pod],
    pvcs: &[&PersistentVolumeClaim],
) -> PvcCleanup {
    let used: BTreeSet<&str> = active
        .iter()
        .filter_map(|p| super::podutil::instance_id(p))
        .collect();
    let mut out = PvcCleanup::default();
    for pvc in pvcs {
        let Some(id) = pvc_instance_id(pvc) else {
            continue;
        };
        if used.contains(id) {
            continue;
        }
        let name = pvc.metadata.name.clone().unwrap_or_default();
        match inactive
            .iter()
            .find(|p| super::podutil::instance_id(p) == Some(id))
        {
            Some(p) => out.reown.push((
                name,
                OwnerReference {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    name: super::podutil::name(p).to_string(),
                    uid: p.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
            )),
            None => out.delete.push(name),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaimSpec, PodSpec};
    use kruise_crds::CloneSetSpec;

    fn cs() -> CloneSet {
        let mut cs = CloneSet::new(
            "demo",
            CloneSetSpec {
                selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some([("app".to_string(), "demo".to_string())].into()),
                    ..Default::default()
                },
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("data".into()),
                        ..Default::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec::default()),
                    status: None,
                }]),
                ..Default::default()
            },
        );
        cs.metadata.namespace = Some("ns".into());
        cs.metadata.uid = Some("u1".into());
        cs
    }

    fn template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "demo".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("nginx".into()),
                    ..Default::default()
                }],
                volumes: Some(vec![
                    Volume {
                        name: "data".into(),
                        ..Default::default()
                    },
                    Volume {
                        name: "cfg".into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn ids_reuse_then_random() {
        let mut rng = fastrand::Rng::with_seed(7);
        let taken: BTreeSet<String> = ["aaaaa".to_string()].into();
        let reusable: BTreeSet<String> = ["zzzzz".to_string(), "bbbbb".to_string()].into();
        let ids = instance_ids(4, &taken, &reusable, &mut rng);
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&"bbbbb".to_string()) && ids.contains(&"zzzzz".to_string()));
        let uniq: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(uniq.len(), 4);
        for id in &ids {
            assert_eq!(id.len(), 5);
            assert!(id.chars().all(|c| ck::INSTANCE_ID_ALPHABET.contains(c)));
        }
        assert_eq!(
            instance_ids(1, &taken, &reusable, &mut rng),
            vec!["bbbbb".to_string()]
        );
    }

    #[test]
    fn pod_from_template() {
        let now = Timestamp::from_second(1_735_689_600).unwrap();
        let pod = build_pod(&cs(), &template(), "demo-abcde", "x2x4z", now);
        assert_eq!(pod.metadata.name.as_deref(), Some("demo-x2x4z"));
        let l = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(l[keys::CONTROLLER_REVISION_HASH_LABEL], "demo-abcde");
        assert_eq!(l[ck::POD_TEMPLATE_HASH_LABEL], "abcde");
        assert_eq!(l[ck::INSTANCE_ID_LABEL], "x2x4z");
        assert_eq!(l[keys::LIFECYCLE_STATE_LABEL], "PreparingNormal");
        assert_eq!(l["app"], "demo");
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()[keys::LIFECYCLE_TIMESTAMP],
            "2025-01-01T00:00:00Z"
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.readiness_gates.as_ref().unwrap()[0].condition_type,
            "InPlaceUpdateReady"
        );
        let vols = spec.volumes.as_ref().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0].name, "data");
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-demo-x2x4z"
        );
        assert_eq!(vols[1].name, "cfg");
        let or = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((or.uid.as_str(), or.controller), ("u1", Some(true)));
        // Both gates, as OpenKruise's pods carry them.
        let gates: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.condition_type)
            .collect();
        assert_eq!(gates, ["InPlaceUpdateReady", "KruisePodReady"]);
        // The gates are not added twice.
        let again = build_pod(
            &cs(),
            &PodTemplateSpec {
                spec: pod.spec.clone(),
                ..template()
            },
            "demo-abcde",
            "x",
            now,
        );
        assert_eq!(again.spec.unwrap().readiness_gates.unwrap().len(), 2);
    }

    #[test]
    fn pvc_cleanup_and_reuse() {
        use super::super::podutil::test_pods::mk_pod;
        let mk = |name: &str, id: &str| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(ck::INSTANCE_ID_LABEL.to_string(), id.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let (a, b, c) = (
            mk("data-cs-a", "a"),
            mk("data-cs-b", "b"),
            mk("data-cs-c", "c"),
        );
        let active = mk_pod("cs-a").label(ck::INSTANCE_ID_LABEL, "a").build();
        let mut dead = mk_pod("cs-b")
            .label(ck::INSTANCE_ID_LABEL, "b")
            .phase("Failed")
            .build();
        dead.metadata.uid = Some("pod-b".into());
        let plan = plan_pvc_cleanup(&[&active], &[&dead], &[&a, &b, &c]);
        assert_eq!(plan.delete, vec!["data-cs-c".to_string()]);
        assert_eq!(plan.reown.len(), 1);
        assert_eq!(
            (plan.reown[0].0.as_str(), plan.reown[0].1.uid.as_str()),
            ("data-cs-b", "pod-b")
        );
        let ids = reusable_ids(&[&active], &[&a, &b, &c]);
        assert_eq!(ids, ["b".to_string(), "c".to_string()].into());
    }

    #[test]
    fn pvcs_of_an_instance() {
        let pvcs = build_pvcs(&cs(), "x2x4z");
        assert_eq!(pvcs.len(), 1);
        assert_eq!(pvcs[0].metadata.name.as_deref(), Some("data-demo-x2x4z"));
        let l = pvcs[0].metadata.labels.as_ref().unwrap();
        assert_eq!(
            (l["app"].as_str(), l[ck::INSTANCE_ID_LABEL].as_str()),
            ("demo", "x2x4z")
        );
    }
}
