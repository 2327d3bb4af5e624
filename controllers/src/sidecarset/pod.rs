//! What the SidecarSet controller reads off a pod: which SidecarSets it carries, whether its sidecars
//! run what their spec says (OpenKruise's `IsPodStateConsistent` and `IsPodReady`), and the JSON of the
//! pod annotations it owns. Read-only helpers; nothing here changes a pod.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::keys::sidecarset::{
    SIDECARSET_HASH, SIDECARSET_HASH_WITHOUT_IMAGE, SIDECARSET_INJECTED_LIST,
    SIDECARSET_INPLACE_UPDATE_STATE, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
    hot_upgrade_container_names,
};
use kruise_crds::sidecarset::{
    SidecarContainer, SidecarSet, SidecarSetUpgradeSpec, parse_sidecarset_hash_annotation,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A pod annotation.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The pod's name ("" if unset).
pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The pod's phase ("" if unset).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// `kubecontroller.IsPodActive`: not Succeeded/Failed and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// The pod condition `Ready` is `True`.
pub fn has_ready_condition(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Running, Ready and not being deleted (`IsRunningAndReady` plus the deletion check).
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && has_ready_condition(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's container statuses.
pub fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
}

/// The status of container `name`.
pub fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    container_statuses(pod).iter().find(|s| s.name == name)
}

/// The spec image of container `name` (regular containers only).
pub fn container_image<'a>(pod: &'a Pod, name: &str) -> Option<&'a str> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.image.as_deref())
}

/// Whether the pod has a regular container `name`.
pub fn has_container(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == name))
}

/// The SidecarSets named in `kruise.io/sidecarset-injected-list`.
pub fn injected_list(pod: &Pod) -> Vec<&str> {
    annotation(pod, SIDECARSET_INJECTED_LIST)
        .map(|v| v.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// The hot-upgrade working map `{"envoy":"envoy-1"}` (unparsable counts as empty).
pub fn working_containers(pod: &Pod) -> BTreeMap<String, String> {
    kruise_webhook::sidecarset::hotupgrade::parse_working_containers(annotation(
        pod,
        SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
    ))
}

/// The SidecarSet's own hash annotation (written by its mutating webhook); falls back to computing
/// it when absent.
pub fn sidecarset_hash(ss: &SidecarSet) -> String {
    ss.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIDECARSET_HASH))
        .filter(|h| !h.is_empty())
        .cloned()
        .unwrap_or_else(|| kruise_webhook::sidecarset::hash(ss))
}

/// The SidecarSet's without-image hash annotation; computed when absent.
pub fn sidecarset_hash_without_image(ss: &SidecarSet) -> String {
    ss.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIDECARSET_HASH_WITHOUT_IMAGE))
        .filter(|h| !h.is_empty())
        .cloned()
        .unwrap_or_else(|| kruise_webhook::sidecarset::hash_without_image(ss))
}

/// The parsed hash annotation `key` of the pod (empty when absent or unparsable).
pub fn pod_hash_map(pod: &Pod, key: &str) -> BTreeMap<String, SidecarSetUpgradeSpec> {
    annotation(pod, key)
        .and_then(|v| parse_sidecarset_hash_annotation(v).ok())
        .unwrap_or_default()
}

/// The hash this pod records for SidecarSet `ss_name` ("" if none).
pub fn pod_hash(pod: &Pod, key: &str, ss_name: &str) -> String {
    pod_hash_map(pod, key)
        .remove(ss_name)
        .map(|s| s.hash)
        .unwrap_or_default()
}

/// The pod runs this SidecarSet's current sidecars (its recorded hash is the current one).
pub fn is_updated(ss: &SidecarSet, pod: &Pod) -> bool {
    let name = ss.metadata.name.as_deref().unwrap_or_default();
    pod_hash(pod, SIDECARSET_HASH, name) == sidecarset_hash(ss)
}

/// The pod's without-image hash matches: only image changes are pending, so it can be upgraded in place.
pub fn is_upgradable(ss: &SidecarSet, pod: &Pod) -> bool {
    let name = ss.metadata.name.as_deref().unwrap_or_default();
    pod_hash(pod, SIDECARSET_HASH_WITHOUT_IMAGE, name) == sidecarset_hash_without_image(ss)
}

/// The SidecarSet's sidecar containers (`spec.containers`).
pub fn sidecars(ss: &SidecarSet) -> &[SidecarContainer] {
    ss.spec.containers.as_deref().unwrap_or_default()
}

/// The hot sidecar's empty image ("" if unset).
pub fn empty_image(c: &SidecarContainer) -> &str {
    c.upgrade_strategy
        .as_ref()
        .and_then(|s| s.hot_upgrade_empty_image.as_deref())
        .unwrap_or_default()
}

/// Names of the pod containers the SidecarSet owns: each cold sidecar's name, both slots of a hot one.
pub fn sidecar_container_names(ss: &SidecarSet) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in sidecars(ss) {
        if c.is_hot_upgrade() {
            let (a, b) = hot_upgrade_container_names(&c.container.name);
            out.insert(a);
            out.insert(b);
        } else {
            out.insert(c.container.name.clone());
        }
    }
    out
}

/// `IsPodConsistentWithSidecarSet`: every sidecar of the SidecarSet is in the pod (both slots and a
/// working-map entry for a hot sidecar).
pub fn is_consistent_with_sidecarset(pod: &Pod, ss: &SidecarSet) -> bool {
    let working = working_containers(pod);
    sidecars(ss).iter().all(|c| {
        let n = &c.container.name;
        if c.is_hot_upgrade() {
            let (a, b) = hot_upgrade_container_names(n);
            has_container(pod, &a) && has_container(pod, &b) && working.contains_key(n)
        } else {
            has_container(pod, n)
        }
    })
}

/// A matched pod: active, carrying `ss` in its injected list, and holding all of its sidecars.
/// (The selector match is the caller's; the list decides membership, as in OpenKruise.)
pub fn is_matched(pod: &Pod, ss: &SidecarSet) -> bool {
    let name = ss.metadata.name.as_deref().unwrap_or_default();
    is_active(pod) && injected_list(pod).contains(&name) && is_consistent_with_sidecarset(pod, ss)
}

/// `GetPodHotUpgradeContainers`: `(working, other)` slots of hot sidecar `name`. The working slot is
/// `{name}-1` only when the working map says so; otherwise (even with no entry) it is `{name}-2`.
pub fn hot_containers(p: &Pod, name: &str) -> (String, String) {
    let (a, b) = hot_upgrade_container_names(name);
    if working_containers(p).get(name) == Some(&a) {
        (a, b)
    } else {
        (b, a)
    }
}

/// The idle ("other") slot of each hot sidecar of `ss` in the pod.
pub fn idle_slots(ss: &SidecarSet, pod: &Pod) -> BTreeMap<String, String> {
    sidecars(ss)
        .iter()
        .filter(|c| c.is_hot_upgrade())
        .map(|c| {
            let n = &c.container.name;
            (n.clone(), hot_containers(pod, n).1)
        })
        .collect()
}

/// One entry of `kruise.io/sidecarset-inplace-update-state` (OpenKruise's `InPlaceUpdateState`, the
/// three fields SidecarSet writes, in Go's order).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateState {
    /// The SidecarSet hash at the first in-place upgrade.
    #[serde(default)]
    pub revision: String,
    /// When the first in-place upgrade happened (Go writes `null` for an unset time).
    #[serde(default)]
    pub update_timestamp: Option<Time>,
    /// Container statuses before the patch (`null` when none, as Go writes a nil map).
    #[serde(default)]
    pub last_container_statuses: Option<BTreeMap<String, InPlaceUpdateContainerStatus>>,
}

/// The recorded status of one container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateContainerStatus {
    /// `status.imageID` before the patch.
    #[serde(default, skip_serializing_if = "String::is_empty", rename = "imageID")]
    pub image_id: String,
}

/// Parses the pod's in-place update state: `None` when absent, `Err` when unparsable.
pub fn inplace_update_state(
    pod: &Pod,
) -> Option<Result<BTreeMap<String, InPlaceUpdateState>, serde_json::Error>> {
    annotation(pod, SIDECARSET_INPLACE_UPDATE_STATE).map(serde_json::from_str)
}

/// Sets the state annotation value after an upgrade changed `changed`: the entry of `ss_name` is
/// created once (revision = `hash`, timestamp = `now`); only the changed containers' pre-patch image
/// IDs are overwritten. Written even when nothing changed, as OpenKruise does.
pub fn record_inplace_update_state(
    pod: &Pod,
    ss_name: &str,
    hash: &str,
    changed: &[String],
    now: Timestamp,
) -> String {
    let mut states = inplace_update_state(pod)
        .and_then(Result::ok)
        .unwrap_or_default();
    let entry = states
        .entry(ss_name.to_owned())
        .or_insert_with(|| InPlaceUpdateState {
            revision: hash.to_owned(),
            update_timestamp: Some(Time(now)),
            last_container_statuses: None,
        });
    for c in changed {
        let image_id = container_status(pod, c)
            .map(|s| s.image_id.clone())
            .unwrap_or_default();
        entry
            .last_container_statuses
            .get_or_insert_with(BTreeMap::new)
            .insert(c.clone(), InPlaceUpdateContainerStatus { image_id });
    }
    // A map of plain structs always serializes.
    serde_json::to_string(&states).unwrap_or_default()
}

/// `IsSidecarContainerUpdateCompleted`: no container in `names` still runs the image ID recorded
/// before its patch while its spec image differs from the running one.
pub fn is_sidecar_update_completed(
    pod: &Pod,
    sidecar_sets: &BTreeSet<String>,
    names: &BTreeSet<String>,
) -> bool {
    let states = match inplace_update_state(pod) {
        None => return true,
        Some(Err(_)) => return false,
        Some(Ok(s)) => s,
    };
    let mut recorded: BTreeMap<&str, &str> = BTreeMap::new();
    for (ss, st) in &states {
        if !sidecar_sets.contains(ss) {
            continue;
        }
        for (c, s) in st.last_container_statuses.iter().flatten() {
            recorded.insert(c.as_str(), s.image_id.as_str());
        }
    }
    for cs in container_statuses(pod) {
        if !names.contains(&cs.name) {
            continue;
        }
        let Some(old) = recorded.get(cs.name.as_str()) else {
            continue;
        };
        let spec_image = container_image(pod, &cs.name).unwrap_or_default();
        if cs.image_id == *old && spec_image != cs.image {
            return false;
        }
    }
    true
}

/// `repo@sha256:…` → `Some("repo@sha256:…")` with any tag dropped from the repo; `None` for tags.
fn digest_reference(image: &str) -> Option<String> {
    let (repo, digest) = image.split_once('@')?;
    let slash = repo.rfind('/').map_or(0, |i| i + 1);
    let repo = match repo[slash..].find(':') {
        Some(i) => &repo[..slash + i],
        None => repo,
    };
    Some(format!("{repo}@{digest}"))
}

/// `IsPodStateConsistent(pod, names)` for SidecarSet `ss` (names default to all its containers).
pub fn is_state_consistent(ss: &SidecarSet, pod: &Pod, names: Option<&BTreeSet<String>>) -> bool {
    let all;
    let names = match names {
        Some(n) => n,
        None => {
            all = sidecar_container_names(ss);
            &all
        }
    };
    let spec_count = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    if spec_count != container_statuses(pod).len() {
        return false;
    }
    let mut all_digests = true;
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if !names.contains(&c.name) {
            continue;
        }
        let Some(want) = c.image.as_deref().and_then(digest_reference) else {
            all_digests = false;
            break;
        };
        let Some(st) = container_status(pod, &c.name) else {
            return false;
        };
        let id = st.image_id.as_str();
        let id = id.split_once("://").map_or(id, |(_, rest)| rest);
        if id != want {
            return false;
        }
    }
    if all_digests {
        return true;
    }
    let ss_names = BTreeSet::from([ss.metadata.name.clone().unwrap_or_default()]);
    is_sidecar_update_completed(pod, &ss_names, names)
}

/// OpenKruise's `IsPodReady` for SidecarSet: every hot sidecar's idle slot holds the empty image,
/// and the pod is running, ready and not being deleted.
pub fn is_ready(ss: &SidecarSet, pod: &Pod) -> bool {
    let idle = idle_slots(ss, pod);
    let idle_empty = sidecars(ss).iter().filter(|c| c.is_hot_upgrade()).all(|c| {
        idle.get(&c.container.name)
            .and_then(|slot| container_image(pod, slot))
            .is_some_and(|img| img == empty_image(c))
    });
    idle_empty && is_running_and_ready(pod)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for tests.
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerStatus, PodCondition, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use kruise_crds::sidecarset::{
        SidecarContainerUpgradeStrategy, SidecarContainerUpgradeType, SidecarSetSpec,
    };

    pub const V1_ID: &str = "docker-pullable://test-image@sha256:v1";
    pub const V2_ID: &str = "docker-pullable://test-image@sha256:v2";

    pub fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    /// SidecarSet `test-sidecarset` with one cold sidecar `test-sidecar` at `image`.
    pub fn mk_ss(hash: &str, hash_wo: &str, image: &str) -> SidecarSet {
        let mut ss = SidecarSet::new(
            "test-sidecarset",
            SidecarSetSpec {
                selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "sidecar".into())])),
                    ..Default::default()
                }),
                containers: Some(vec![SidecarContainer {
                    container: Container {
                        name: "test-sidecar".into(),
                        image: Some(image.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                ..Default::default()
            },
        );
        ss.metadata.annotations = Some(BTreeMap::from([
            (SIDECARSET_HASH.into(), hash.into()),
            (SIDECARSET_HASH_WITHOUT_IMAGE.into(), hash_wo.into()),
        ]));
        ss.metadata.resource_version = Some("100".into());
        ss.metadata.generation = Some(3);
        ss
    }

    /// Makes sidecar `test-sidecar` of `ss` a hot sidecar with empty image `empty`.
    pub fn make_hot(ss: &mut SidecarSet, empty: &str) {
        if let Some(cs) = ss.spec.containers.as_mut() {
            cs[0].upgrade_strategy = Some(SidecarContainerUpgradeStrategy {
                upgrade_type: Some(SidecarContainerUpgradeType::HotUpgrade),
                hot_upgrade_empty_image: Some(empty.into()),
            });
        }
    }

    pub struct PodBuilder(pub Pod);

    /// A running, ready pod `name` with app container `nginx` and sidecar `test-sidecar` (v1),
    /// injected by `test-sidecarset` with hash `aaa` / `without-aaa`.
    pub fn mk_pod(name: &str) -> PodBuilder {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                resource_version: Some("7".into()),
                labels: Some(BTreeMap::from([("app".into(), "sidecar".into())])),
                annotations: Some(BTreeMap::from([
                    (
                        SIDECARSET_HASH.into(),
                        r#"{"test-sidecarset":{"hash":"aaa","sidecarList":["test-sidecar"]}}"#
                            .into(),
                    ),
                    (
                        SIDECARSET_HASH_WITHOUT_IMAGE.into(),
                        r#"{"test-sidecarset":{"hash":"without-aaa","sidecarList":["test-sidecar"]}}"#
                            .into(),
                    ),
                    (SIDECARSET_INJECTED_LIST.into(), "test-sidecarset".into()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "nginx".into(),
                        image: Some("nginx:1.15.1".into()),
                        ..Default::default()
                    },
                    Container {
                        name: "test-sidecar".into(),
                        image: Some("test-image:v1".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                container_statuses: Some(vec![
                    cstatus("nginx", "nginx:1.15.1", "docker-pullable://nginx@sha256:a9"),
                    cstatus("test-sidecar", "test-image:v1", V1_ID),
                ]),
                ..Default::default()
            }),
        };
        PodBuilder(pod)
    }

    pub fn cstatus(name: &str, image: &str, id: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: image.into(),
            image_id: id.into(),
            ready: true,
            ..Default::default()
        }
    }

    impl PodBuilder {
        pub fn annotation(mut self, k: &str, v: &str) -> Self {
            self.0
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(k.into(), v.into());
            self
        }
        pub fn label(mut self, k: &str, v: &str) -> Self {
            self.0
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(k.into(), v.into());
            self
        }
        pub fn not_ready(mut self) -> Self {
            if let Some(cs) = self.0.status.as_mut().and_then(|s| s.conditions.as_mut()) {
                cs[0].status = "False".into();
            }
            self
        }
        /// Spec image of container `c`.
        pub fn spec_image(mut self, c: &str, image: &str) -> Self {
            for x in self.0.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
                if x.name == c {
                    x.image = Some(image.into());
                }
            }
            self
        }
        /// Status image and image ID of container `c`.
        pub fn status_image(mut self, c: &str, image: &str, id: &str) -> Self {
            for x in self
                .0
                .status
                .iter_mut()
                .flat_map(|s| s.container_statuses.iter_mut().flatten())
            {
                if x.name == c {
                    x.image = image.into();
                    x.image_id = id.into();
                }
            }
            self
        }
        pub fn container_ready(mut self, c: &str, ready: bool) -> Self {
            for x in self
                .0
                .status
                .iter_mut()
                .flat_map(|s| s.container_statuses.iter_mut().flatten())
            {
                if x.name == c {
                    x.ready = ready;
                }
            }
            self
        }
        /// Marks the pod upgraded by `ss` (hash `bbb`, spec image v2, state records the v1 image ID),
        /// with the container still running v1 (in flight).
        pub fn upgraded_in_flight(self) -> Self {
            let mut b = self.spec_image("test-sidecar", "test-image:v2").annotation(
                SIDECARSET_HASH,
                r#"{"test-sidecarset":{"hash":"bbb","sidecarList":["test-sidecar"]}}"#,
            );
            let state = record_inplace_update_state(
                &b.0,
                "test-sidecarset",
                "bbb",
                &["test-sidecar".into()],
                ts(0),
            );
            b = b.annotation(SIDECARSET_INPLACE_UPDATE_STATE, &state);
            b
        }
        /// Upgraded and the kubelet has restarted the sidecar on v2.
        pub fn upgraded_done(self) -> Self {
            self.upgraded_in_flight()
                .status_image("test-sidecar", "test-image:v2", V2_ID)
        }
        /// Replaces `test-sidecar` by hot slots `test-sidecar-1` (working, `img1`) and
        /// `test-sidecar-2` (`img2`), with the injection-time version annotations.
        pub fn hot(mut self, img1: &str, img2: &str) -> Self {
            if let Some(spec) = self.0.spec.as_mut() {
                spec.containers.retain(|c| c.name != "test-sidecar");
                for (n, i) in [("test-sidecar-1", img1), ("test-sidecar-2", img2)] {
                    spec.containers.push(Container {
                        name: n.into(),
                        image: Some(i.into()),
                        ..Default::default()
                    });
                }
            }
            if let Some(st) = self
                .0
                .status
                .as_mut()
                .and_then(|s| s.container_statuses.as_mut())
            {
                st.retain(|c| c.name != "test-sidecar");
                st.push(cstatus("test-sidecar-1", img1, &format!("{img1}-id")));
                st.push(cstatus("test-sidecar-2", img2, &format!("{img2}-id")));
            }
            let mut b = self.annotation(
                SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
                r#"{"test-sidecar":"test-sidecar-1"}"#,
            );
            for (k, v) in kruise_webhook::sidecarset::hotupgrade::injection_version_annotations(
                "test-sidecar",
            ) {
                b = b.annotation(&k, &v);
            }
            b
        }
        pub fn build(self) -> Pod {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn digest_reference_drops_tag() {
        assert_eq!(
            digest_reference("nginx:1.2@sha256:ab").as_deref(),
            Some("nginx@sha256:ab")
        );
        assert_eq!(
            digest_reference("reg:5000/nginx@sha256:ab").as_deref(),
            Some("reg:5000/nginx@sha256:ab")
        );
        assert_eq!(digest_reference("reg:5000/nginx:1"), None);
    }

    #[test]
    fn consistency_follows_recorded_image_id() {
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        assert!(is_state_consistent(&ss, &mk_pod("p").build(), None));
        assert!(!is_state_consistent(
            &ss,
            &mk_pod("p").upgraded_in_flight().build(),
            None
        ));
        assert!(is_state_consistent(
            &ss,
            &mk_pod("p").upgraded_done().build(),
            None
        ));
        // Image ID unchanged but the runtime reports the new image: completed.
        let p = mk_pod("p")
            .upgraded_in_flight()
            .status_image("test-sidecar", "test-image:v2", V1_ID)
            .build();
        assert!(is_state_consistent(&ss, &p, None));
        // Unparsable state annotation: not completed.
        let p = mk_pod("p")
            .annotation(SIDECARSET_INPLACE_UPDATE_STATE, "{")
            .build();
        assert!(!is_state_consistent(&ss, &p, None));
    }

    #[test]
    fn digest_images_compare_image_ids() {
        let ss = mk_ss("bbb", "without-aaa", "x");
        let p = mk_pod("p")
            .spec_image("test-sidecar", "test-image@sha256:v2")
            .spec_image("nginx", "nginx@sha256:a9")
            .build();
        assert!(!is_state_consistent(&ss, &p, None));
        let p = mk_pod("p")
            .spec_image("test-sidecar", "test-image@sha256:v2")
            .status_image("test-sidecar", "test-image", V2_ID)
            .build();
        assert!(is_state_consistent(&ss, &p, None));
    }

    #[test]
    fn container_count_mismatch_is_inconsistent() {
        let ss = mk_ss("bbb", "without-aaa", "x");
        let mut p = mk_pod("p").build();
        if let Some(s) = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            s.pop();
        }
        assert!(!is_state_consistent(&ss, &p, None));
    }

    #[test]
    fn state_annotation_is_byte_exact() {
        let p = mk_pod("p").build();
        let v = record_inplace_update_state(
            &p,
            "test-sidecarset",
            "bbb",
            &["test-sidecar".into()],
            ts(1_615_800_058),
        );
        assert_eq!(
            v,
            r#"{"test-sidecarset":{"revision":"bbb","updateTimestamp":"2021-03-15T09:20:58Z","lastContainerStatuses":{"test-sidecar":{"imageID":"docker-pullable://test-image@sha256:v1"}}}}"#
        );
        // Second write keeps revision and timestamp, overwrites only the changed container.
        let p = mk_pod("p")
            .annotation(SIDECARSET_INPLACE_UPDATE_STATE, &v)
            .status_image("test-sidecar", "test-image:v2", V2_ID)
            .build();
        let v2 = record_inplace_update_state(
            &p,
            "test-sidecarset",
            "ccc",
            &["test-sidecar".into()],
            ts(1_700_000_000),
        );
        assert_eq!(
            v2,
            r#"{"test-sidecarset":{"revision":"bbb","updateTimestamp":"2021-03-15T09:20:58Z","lastContainerStatuses":{"test-sidecar":{"imageID":"docker-pullable://test-image@sha256:v2"}}}}"#
        );
        // Nothing changed: the entry is still written, with a null map.
        let v3 = record_inplace_update_state(&mk_pod("p").build(), "s", "h", &[], ts(0));
        assert_eq!(
            v3,
            r#"{"s":{"revision":"h","updateTimestamp":"1970-01-01T00:00:00Z","lastContainerStatuses":null}}"#
        );
    }

    #[test]
    fn matched_needs_list_and_containers() {
        let ss = mk_ss("bbb", "without-aaa", "x");
        assert!(is_matched(&mk_pod("p").build(), &ss));
        let p = mk_pod("p")
            .annotation(SIDECARSET_INJECTED_LIST, "other")
            .build();
        assert!(!is_matched(&p, &ss));
        let mut hot = ss.clone();
        make_hot(&mut hot, "empty:1");
        assert!(!is_matched(&mk_pod("p").build(), &hot));
        assert!(is_matched(&mk_pod("p").hot("v1", "empty:1").build(), &hot));
    }

    #[test]
    fn hot_pod_ready_only_with_empty_idle_slot() {
        let mut ss = mk_ss("bbb", "without-aaa", "v2");
        make_hot(&mut ss, "empty:1");
        assert!(is_ready(&ss, &mk_pod("p").hot("v1", "empty:1").build()));
        assert!(!is_ready(&ss, &mk_pod("p").hot("v1", "v2").build()));
        assert!(!is_ready(
            &ss,
            &mk_pod("p").hot("v1", "empty:1").not_ready().build()
        ));
    }
}
