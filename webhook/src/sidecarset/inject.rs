//! Pod injection (OpenKruise's pod webhook `sidecarsetMutatingPod`, CREATE): which SidecarSets and
//! which of their revisions apply to a new pod, the containers, volumes, secrets and annotations they
//! add, and the JSON patch for the admission response. Pure: the caller supplies every object read.

use super::hash::{spec_hash, spec_hash_without_image};
use super::hotupgrade::{
    hot_upgrade_pair, injection_version_annotations, parse_working_containers,
};
use super::matching::{Labels, pod_selector_matches, selector_matches};
use super::resources::{ResourcesError, apply_resources_policy};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, LocalObjectReference, Pod, Volume, VolumeDevice, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::sidecarset::{
    SIDECAR_ENV_KEY, SIDECARSET_BASE, SIDECARSET_CANARY, SIDECARSET_CUSTOM_VERSION_LABEL,
    SIDECARSET_HASH, SIDECARSET_HASH_WITHOUT_IMAGE, SIDECARSET_INJECTED_LIST,
    SIDECARSET_NAME_LABEL, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
};
use kruise_crds::sidecarset::{
    PodInjectPolicy, ShareVolumePolicyType, SidecarContainer, SidecarSet,
    SidecarSetInjectRevisionPolicy, SidecarSetPatchPodMetadata, SidecarSetPatchPolicyType,
    SidecarSetSpec, SidecarSetUpgradeSpec, parse_sidecarset_hash_annotation,
};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;

/// Everything [`inject`] reads.
#[derive(Clone, Copy, Debug)]
pub struct InjectInput<'a> {
    /// The pod being created, with `metadata.namespace` already filled from the request.
    pub pod: &'a Pod,
    /// Candidate SidecarSets, in the order their containers should be collected.
    pub sidecar_sets: &'a [SidecarSet],
    /// Labels of the pod's Namespace (for `namespaceSelector`).
    pub namespace_labels: &'a Labels,
    /// The ControllerRevisions of the Kruise namespace (for `injectionStrategy.revision`).
    pub revisions: &'a [ControllerRevision],
    /// `updateTimestamp` written into the hash annotations (RFC 3339, e.g. `2021-03-15T09:20:58Z`).
    pub now: &'a str,
    /// A uniform random number in `[0, 1)`: the `Partial` revision policy with a percentage
    /// partition injects the pinned revision when `roll <= partition%`.
    pub partial_roll: f64,
    /// Feature gate `EnableSortSidecarContainerByName`: stable-sort the injected containers by name.
    pub sort_containers_by_name: bool,
}

/// What [`inject`] decided.
#[derive(Clone, Debug)]
pub struct InjectOutcome {
    /// The mutated pod (equal to the input when nothing applies).
    pub pod: Pod,
    /// RFC 6902 patch from the input pod to [`InjectOutcome::pod`] (empty when nothing applies).
    pub patch: json_patch::Patch,
    /// Names of the SidecarSets injected, in the order they were applied.
    pub injected: Vec<String>,
}

/// Why a pod is refused (the webhook answers 500, which denies the pod, as OpenKruise does).
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// `InjectInput::now` is not an RFC 3339 timestamp.
    #[error("invalid timestamp {now:?}: {source}")]
    Timestamp {
        /// The value given.
        now: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// An existing hash annotation on the pod is neither the map nor the legacy format.
    #[error("pod({pod}) invalid annotations[{key}] value {value}, unmarshal failed: {source}")]
    HashAnnotation {
        /// `namespace/name` of the pod.
        pod: String,
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `injectionStrategy.revision` names a ControllerRevision that does not exist.
    #[error("sidecarSet({sidecar_set}) Cannot find specific ControllerRevision, err: {detail}")]
    RevisionNotFound {
        /// The SidecarSet.
        sidecar_set: String,
        /// What was looked for.
        detail: String,
    },
    /// The pinned ControllerRevision's data does not hold a SidecarSet spec.
    #[error("sidecarSet({sidecar_set}) revision {revision} has invalid data: {source}")]
    RevisionData {
        /// The SidecarSet.
        sidecar_set: String,
        /// The ControllerRevision.
        revision: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// A `MergePatchJson` annotation could not be merged.
    #[error("sidecarSet({sidecar_set}) patch annotation[{key}] failed: {detail}")]
    PatchMetadata {
        /// The SidecarSet.
        sidecar_set: String,
        /// The annotation key.
        key: String,
        /// Why.
        detail: String,
    },
    /// `resourcesPolicy` could not be applied.
    #[error("sidecarSet({sidecar_set}) container {container}: {source}")]
    Resources {
        /// The SidecarSet.
        sidecar_set: String,
        /// The sidecar container.
        container: String,
        /// Why.
        #[source]
        source: ResourcesError,
    },
    /// The pod could not be rendered as JSON for the patch.
    #[error("encode pod: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Injects every applicable SidecarSet into a new pod (spec §2.1). A pod that no SidecarSet selects
/// comes back unchanged with an empty patch.
pub fn inject(input: &InjectInput<'_>) -> Result<InjectOutcome, InjectError> {
    let original = input.pod;
    let mut pod = original.clone();
    let unchanged = |pod: Pod| InjectOutcome {
        pod,
        patch: json_patch::Patch(Vec::new()),
        injected: Vec::new(),
    };
    if !is_active(&pod) {
        return Ok(unchanged(pod));
    }
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let pod_labels = pod.metadata.labels.clone().unwrap_or_default();

    let mut matched = Vec::new();
    let mut bases = HashSet::new();
    for ss in input.sidecar_sets {
        let paused = ss
            .spec
            .injection_strategy
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false);
        if paused || !pod_selector_matches(ss, &namespace, &pod_labels, input.namespace_labels) {
            continue;
        }
        if let Some(base) = canary_base(ss) {
            bases.insert(base.to_owned());
        }
        matched.push(suitable_revision(ss, &pod_labels, input)?);
    }
    matched.retain(|s| !bases.contains(&s.ss.metadata.name.clone().unwrap_or_default()));
    if matched.is_empty() {
        return Ok(unchanged(pod));
    }

    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for m in &matched {
        patch_pod_metadata(
            annotations,
            m.ss.spec.patch_pod_metadata.as_deref().unwrap_or_default(),
        )
        .map_err(|(key, detail)| InjectError::PatchMetadata {
            sidecar_set: m.name(),
            key,
            detail,
        })?;
    }
    if annotations.is_empty() && original.metadata.annotations.is_none() {
        pod.metadata.annotations = None;
    }

    let now: Time = serde_json::from_value(serde_json::Value::String(input.now.to_owned()))
        .map_err(|source| InjectError::Timestamp {
            now: input.now.to_owned(),
            source,
        })?;
    let built = build_sidecars(&pod, &matched, &namespace, now)?;
    let injected = matched.iter().map(Revisioned::name).collect();
    if built.containers.is_empty() && built.init_containers.is_empty() {
        // only the metadata patch applies
        return finish(original, pod, Vec::new());
    }
    apply(&mut pod, built, input.sort_containers_by_name);
    finish(original, pod, injected)
}

fn finish(original: &Pod, pod: Pod, injected: Vec<String>) -> Result<InjectOutcome, InjectError> {
    let before = serde_json::to_value(original).map_err(InjectError::Encode)?;
    let after = serde_json::to_value(&pod).map_err(InjectError::Encode)?;
    let patch = json_patch::diff(&before, &after);
    Ok(InjectOutcome {
        pod,
        patch,
        injected,
    })
}

fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The base a canary SidecarSet stands in for (`apps.kruise.io/sidecarset-canary: "true"` and a
/// non-empty `apps.kruise.io/sidecarset-base`).
pub fn canary_base(ss: &SidecarSet) -> Option<&str> {
    let ann = ss.metadata.annotations.as_ref()?;
    if ann.get(SIDECARSET_CANARY).map(String::as_str) != Some("true") {
        return None;
    }
    ann.get(SIDECARSET_BASE)
        .map(String::as_str)
        .filter(|b| !b.is_empty())
}

/// A matched SidecarSet with the revision to inject: its spec, hashes and ControllerRevision name.
#[derive(Clone, Debug)]
struct Revisioned {
    ss: SidecarSet,
    hash: String,
    hash_without_image: String,
    controller_revision: String,
}

impl Revisioned {
    fn name(&self) -> String {
        self.ss.metadata.name.clone().unwrap_or_default()
    }

    fn latest(ss: &SidecarSet) -> Self {
        let ann = ss.metadata.annotations.as_ref();
        let get = |k: &str| {
            ann.and_then(|a| a.get(k))
                .filter(|h| !h.is_empty())
                .cloned()
        };
        Self {
            hash: get(SIDECARSET_HASH).unwrap_or_else(|| spec_hash(&ss.spec)),
            hash_without_image: get(SIDECARSET_HASH_WITHOUT_IMAGE)
                .unwrap_or_else(|| spec_hash_without_image(&ss.spec)),
            controller_revision: ss
                .status
                .as_ref()
                .and_then(|s| s.latest_revision.clone())
                .unwrap_or_default(),
            ss: ss.clone(),
        }
    }
}

/// Spec §2.2 (CREATE): the latest spec, or the revision pinned by `injectionStrategy.revision`.
fn suitable_revision(
    ss: &SidecarSet,
    pod_labels: &Labels,
    input: &InjectInput<'_>,
) -> Result<Revisioned, InjectError> {
    let Some(rev) = ss
        .spec
        .injection_strategy
        .as_ref()
        .and_then(|s| s.revision.as_ref())
        .filter(|r| r.revision_name.is_some() || r.custom_version.is_some())
    else {
        return Ok(Revisioned::latest(ss));
    };
    let specific = restore_revision(ss, rev, input.revisions)?;
    let strategy = ss.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.paused).unwrap_or(false) {
        return Ok(specific);
    }
    if rev.policy == Some(SidecarSetInjectRevisionPolicy::Partial) {
        if let Some(sel) = strategy.and_then(|s| s.selector.as_ref())
            && !selector_matches(sel, pod_labels)
        {
            return Ok(specific);
        }
        return Ok(match strategy.and_then(|s| s.partition.as_ref()) {
            Some(IntOrString::String(p)) => {
                let pct = p
                    .strip_suffix('%')
                    .and_then(|n| n.parse::<f64>().ok())
                    .unwrap_or(0.0);
                if input.partial_roll <= pct / 100.0 {
                    specific
                } else {
                    Revisioned::latest(ss)
                }
            }
            _ => Revisioned::latest(ss),
        });
    }
    Ok(specific)
}

/// Finds the pinned ControllerRevision and restores the SidecarSet from it. The revision data is
/// `{"spec":{"$patch":"replace",…}}`, so the restored spec holds only volumes, containers,
/// initContainers, imagePullSecrets and patchPodMetadata.
pub fn find_revision<'r>(
    ss: &SidecarSet,
    rev: &kruise_crds::sidecarset::SidecarSetInjectRevision,
    revisions: &'r [ControllerRevision],
) -> Result<&'r ControllerRevision, String> {
    let ss_name = ss.metadata.name.as_deref().unwrap_or_default();
    if let Some(name) = rev.revision_name.as_deref() {
        return revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| format!("controllerrevisions.apps \"{name}\" not found"));
    }
    let version = rev.custom_version.as_deref().unwrap_or_default();
    revisions
        .iter()
        .filter(|r| {
            let labels = r.metadata.labels.as_ref();
            let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
            label(SIDECARSET_NAME_LABEL) == Some(ss_name)
                && label(SIDECARSET_CUSTOM_VERSION_LABEL) == Some(version)
        })
        .max_by_key(|r| r.revision)
        .ok_or_else(|| {
            format!("no ControllerRevision of sidecarSet {ss_name} with custom version {version}")
        })
}

fn restore_revision(
    ss: &SidecarSet,
    rev: &kruise_crds::sidecarset::SidecarSetInjectRevision,
    revisions: &[ControllerRevision],
) -> Result<Revisioned, InjectError> {
    let name = ss.metadata.name.clone().unwrap_or_default();
    let found =
        find_revision(ss, rev, revisions).map_err(|detail| InjectError::RevisionNotFound {
            sidecar_set: name.clone(),
            detail,
        })?;
    let rev_name = found.metadata.name.clone().unwrap_or_default();
    let mut spec_json = found
        .data
        .as_ref()
        .and_then(|d| d.0.get("spec"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = spec_json.as_object_mut() {
        o.remove("$patch");
    }
    let restored: SidecarSetSpec = serde_json::from_value(spec_json)
        .map(|s: SidecarSetSpec| SidecarSetSpec {
            volumes: s.volumes,
            containers: s.containers,
            init_containers: s.init_containers,
            image_pull_secrets: s.image_pull_secrets,
            patch_pod_metadata: s.patch_pod_metadata,
            ..Default::default()
        })
        .map_err(|source| InjectError::RevisionData {
            sidecar_set: name,
            revision: rev_name.clone(),
            source,
        })?;
    let ann = found.metadata.annotations.as_ref();
    let get = |k: &str| {
        ann.and_then(|a| a.get(k))
            .filter(|h| !h.is_empty())
            .cloned()
    };
    let mut restored_ss = ss.clone();
    restored_ss.spec = restored;
    Ok(Revisioned {
        hash: get(SIDECARSET_HASH).unwrap_or_else(|| spec_hash(&restored_ss.spec)),
        hash_without_image: get(SIDECARSET_HASH_WITHOUT_IMAGE)
            .unwrap_or_else(|| spec_hash_without_image(&restored_ss.spec)),
        controller_revision: rev_name,
        ss: restored_ss,
    })
}

/// OpenKruise's `PatchPodMetadata` on a pod's annotations: `Retain` adds absent keys, `Overwrite`
/// sets them, `MergePatchJson` merge-patches (RFC 7386) the existing JSON value. On failure, returns
/// the key and the reason.
pub fn patch_pod_metadata(
    annotations: &mut BTreeMap<String, String>,
    patches: &[SidecarSetPatchPodMetadata],
) -> Result<(), (String, String)> {
    for p in patches {
        for (k, v) in p.annotations.iter().flatten() {
            match p.patch_policy {
                None | Some(SidecarSetPatchPolicyType::Retain) => {
                    annotations.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Some(SidecarSetPatchPolicyType::Overwrite) => {
                    annotations.insert(k.clone(), v.clone());
                }
                Some(SidecarSetPatchPolicyType::MergePatchJson) => {
                    let merged = match annotations.get(k).filter(|o| !o.is_empty()) {
                        None => v.clone(),
                        Some(old) => merge_json(old, v).map_err(|e| (k.clone(), e))?,
                    };
                    annotations.insert(k.clone(), merged);
                }
            }
        }
    }
    Ok(())
}

fn merge_json(old: &str, patch: &str) -> Result<String, String> {
    let mut doc: serde_json::Value = serde_json::from_str(old).map_err(|e| e.to_string())?;
    let patch: serde_json::Value = serde_json::from_str(patch).map_err(|e| e.to_string())?;
    json_patch::merge(&mut doc, &patch);
    serde_json::to_string(&doc).map_err(|e| e.to_string())
}

/// What the matched SidecarSets add to the pod.
#[derive(Default)]
struct Built {
    containers: Vec<SidecarContainer>,
    init_containers: Vec<SidecarContainer>,
    secrets: Vec<LocalObjectReference>,
    volumes: Vec<Volume>,
    annotations: BTreeMap<String, String>,
}

fn build_sidecars(
    pod: &Pod,
    matched: &[Revisioned],
    namespace: &str,
    now: Time,
) -> Result<Built, InjectError> {
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    let pod_id = format!(
        "{namespace}/{}",
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let parse =
        |key: &'static str| -> Result<BTreeMap<String, SidecarSetUpgradeSpec>, InjectError> {
            match ann.get(key).filter(|v| !v.is_empty()) {
                None => Ok(BTreeMap::new()),
                Some(v) => {
                    let mut m = parse_sidecarset_hash_annotation(v).map_err(|source| {
                        InjectError::HashAnnotation {
                            pod: pod_id.clone(),
                            key,
                            value: v.clone(),
                            source,
                        }
                    })?;
                    // the legacy form `{"<ss>":"<hash>"}` names each entry after its key, as Go does
                    if serde_json::from_str::<BTreeMap<String, String>>(v).is_ok() {
                        for (k, spec) in &mut m {
                            spec.sidecar_set_name.clone_from(k);
                        }
                    }
                    Ok(m)
                }
            }
        };
    let mut hash_map = parse(SIDECARSET_HASH)?;
    let mut without_image_map = parse(SIDECARSET_HASH_WITHOUT_IMAGE)?;
    let mut working = parse_working_containers(
        ann.get(SIDECARSET_WORKING_HOTUPGRADE_CONTAINER)
            .map(String::as_str),
    );
    let mut injected_list: BTreeSet<String> = ann
        .get(SIDECARSET_INJECTED_LIST)
        .map(|l| {
            l.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    let all_sidecar_names: HashSet<String> = matched
        .iter()
        .flat_map(|m| {
            let spec = &m.ss.spec;
            spec.containers
                .iter()
                .flatten()
                .chain(spec.init_containers.iter().flatten())
                .map(|c| c.container.name.clone())
        })
        .collect();

    let mut out = Built::default();
    let mut hot_injected = false;
    for m in matched {
        let name = m.name();
        injected_list.insert(name.clone());
        let spec = &m.ss.spec;
        let volumes_map: BTreeMap<&str, &Volume> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| (v.name.as_str(), v))
            .collect();
        let mut sidecar_list = BTreeSet::new();
        let mut injecting = false;

        let mut prepare = |c: &SidecarContainer| -> Result<SidecarContainer, InjectError> {
            let mut c = c.clone();
            if let Some(policy) = c.resources_policy.clone() {
                apply_resources_policy(&mut c.container, &policy, pod, &all_sidecar_names)
                    .map_err(|source| InjectError::Resources {
                        sidecar_set: name.clone(),
                        container: c.container.name.clone(),
                        source,
                    })?;
            }
            let shared = shared_mounts_and_envs(&c, pod);
            let transfer = merge_env(transfer_envs(&c, pod), shared.envs);
            let used = c
                .container
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.name.as_str())
                .chain(
                    c.container
                        .volume_devices
                        .iter()
                        .flatten()
                        .map(|d| d.name.as_str()),
                );
            for v in used {
                if let Some(vol) = volumes_map.get(v) {
                    out.volumes.push((*vol).clone());
                }
            }
            let devices = c.container.volume_devices.clone().unwrap_or_default();
            let mounts = merge_mounts(
                c.container.volume_mounts.take().unwrap_or_default(),
                shared.mounts,
                &devices,
            );
            c.container.volume_mounts = non_empty(mounts);
            let mut env = c.container.env.take().unwrap_or_default();
            env.push(EnvVar {
                name: SIDECAR_ENV_KEY.to_owned(),
                value: Some("true".to_owned()),
                value_from: None,
            });
            c.container.env = Some(merge_env(env, transfer));
            let mounts_now = c.container.volume_mounts.clone().unwrap_or_default();
            c.container.volume_devices =
                non_empty(merge_devices(devices, shared.devices, &mounts_now));
            Ok(c)
        };

        let mut emit = |c: SidecarContainer,
                        target: &mut Vec<SidecarContainer>,
                        annotations: &mut BTreeMap<String, String>| {
            if c.is_hot_upgrade() {
                let (c1, c2) = hot_upgrade_pair(&c);
                annotations.extend(injection_version_annotations(&c.container.name));
                working.insert(c.container.name.clone(), c1.container.name.clone());
                hot_injected = true;
                target.push(c1);
                target.push(c2);
            } else {
                target.push(c);
            }
        };

        for c in spec.init_containers.iter().flatten() {
            if c.is_native_sidecar() {
                sidecar_list.insert(c.container.name.clone());
            }
            let processed = prepare(c)?;
            if processed.is_native_sidecar() {
                emit(processed, &mut out.init_containers, &mut out.annotations);
            } else {
                out.init_containers.push(processed);
            }
            injecting = true;
        }
        out.secrets
            .extend(spec.image_pull_secrets.iter().flatten().cloned());
        for c in spec.containers.iter().flatten() {
            sidecar_list.insert(c.container.name.clone());
            let processed = prepare(c)?;
            emit(processed, &mut out.containers, &mut out.annotations);
            injecting = true;
        }

        if injecting {
            let list: Vec<String> = sidecar_list.into_iter().collect();
            hash_map.insert(
                name.clone(),
                SidecarSetUpgradeSpec {
                    update_timestamp: Some(now.clone()),
                    hash: m.hash.clone(),
                    sidecar_set_name: name.clone(),
                    sidecar_list: list.clone(),
                    controller_revision: m.controller_revision.clone(),
                },
            );
            without_image_map.insert(
                name.clone(),
                SidecarSetUpgradeSpec {
                    update_timestamp: Some(now.clone()),
                    hash: m.hash_without_image.clone(),
                    sidecar_set_name: name,
                    sidecar_list: list,
                    controller_revision: String::new(),
                },
            );
        }
    }

    out.annotations
        .insert(SIDECARSET_HASH.to_owned(), encode(&hash_map)?);
    out.annotations.insert(
        SIDECARSET_HASH_WITHOUT_IMAGE.to_owned(),
        encode(&without_image_map)?,
    );
    out.annotations.insert(
        SIDECARSET_INJECTED_LIST.to_owned(),
        injected_list.into_iter().collect::<Vec<_>>().join(","),
    );
    if hot_injected {
        out.annotations.insert(
            SIDECARSET_WORKING_HOTUPGRADE_CONTAINER.to_owned(),
            encode(&working)?,
        );
    }
    Ok(out)
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, InjectError> {
    serde_json::to_string(v).map_err(InjectError::Encode)
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

fn apply(pod: &mut Pod, built: Built, sort_by_name: bool) {
    let Built {
        mut containers,
        mut init_containers,
        secrets,
        volumes,
        annotations,
    } = built;
    let spec = pod.spec.get_or_insert_with(Default::default);
    init_containers.sort_by(|a, b| a.container.name.cmp(&b.container.name));
    if !init_containers.is_empty() {
        let origin = spec.init_containers.take().unwrap_or_default();
        spec.init_containers = Some(merge_containers(origin, init_containers));
    }
    if sort_by_name {
        containers.sort_by(|a, b| a.container.name.cmp(&b.container.name));
    }
    if !containers.is_empty() {
        let origin = std::mem::take(&mut spec.containers);
        spec.containers = merge_containers(origin, containers);
    }
    if !volumes.is_empty() {
        let mut all = spec.volumes.take().unwrap_or_default();
        let mut seen: HashSet<String> = all.iter().map(|v| v.name.clone()).collect();
        for v in volumes {
            if seen.insert(v.name.clone()) {
                all.push(v);
            }
        }
        spec.volumes = Some(all);
    }
    if !secrets.is_empty() {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for s in spec
            .image_pull_secrets
            .take()
            .into_iter()
            .flatten()
            .chain(secrets)
        {
            if seen.insert(s.name.clone()) {
                all.push(s);
            }
        }
        spec.image_pull_secrets = Some(all);
    }
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(annotations);
}

/// OpenKruise's `mergeSidecarContainers`: a pod container with a sidecar's name is replaced in
/// place; otherwise `BeforeAppContainer` sidecars go in front and the rest behind, in given order.
fn merge_containers(mut origin: Vec<Container>, injected: Vec<SidecarContainer>) -> Vec<Container> {
    let index: BTreeMap<String, usize> = origin
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    let mut before = Vec::new();
    let mut after = Vec::new();
    for s in injected {
        if let Some(&i) = index.get(&s.container.name) {
            origin[i] = s.container;
            continue;
        }
        match s.pod_inject_policy {
            Some(PodInjectPolicy::BeforeAppContainer) => before.push(s.container),
            _ => after.push(s.container),
        }
    }
    before.extend(origin);
    before.extend(after);
    before
}

struct Shared {
    mounts: Vec<VolumeMount>,
    envs: Vec<EnvVar>,
    devices: Vec<VolumeDevice>,
}

static SUBPATH_VAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)").ok());

fn is_injected(c: &Container) -> bool {
    c.env
        .iter()
        .flatten()
        .any(|e| e.name == SIDECAR_ENV_KEY && e.value.as_deref() == Some("true"))
}

/// OpenKruise's `GetInjectedVolumeMountsAndEnvs` (and the device variant): the mounts of the pod's
/// app containers (not the injected ones), and the env vars their `subPathExpr`s reference.
/// Only with `shareVolumePolicy.type: enabled` (resp. `shareVolumeDevicePolicy`).
fn shared_mounts_and_envs(c: &SidecarContainer, pod: &Pod) -> Shared {
    let mut shared = Shared {
        mounts: Vec::new(),
        envs: Vec::new(),
        devices: Vec::new(),
    };
    let app: Vec<&Container> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|a| !is_injected(a))
        .collect();
    let share_mounts = c.share_volume_policy.as_ref().and_then(|p| p.type_)
        == Some(ShareVolumePolicyType::Enabled);
    if share_mounts {
        for a in &app {
            for m in a.volume_mounts.iter().flatten() {
                shared.mounts.push(m.clone());
                let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) else {
                    continue;
                };
                let Some(re) = SUBPATH_VAR.as_ref() else {
                    continue;
                };
                for cap in re.captures_iter(expr) {
                    let var = &cap[1];
                    if let Some(e) = a.env.iter().flatten().find(|e| e.name == var) {
                        shared.envs.push(e.clone());
                    }
                }
            }
        }
    }
    let share_devices = c.share_volume_device_policy.as_ref().and_then(|p| p.type_)
        == Some(ShareVolumePolicyType::Enabled);
    if share_devices {
        for a in &app {
            shared
                .devices
                .extend(a.volume_devices.iter().flatten().cloned());
        }
    }
    shared
}

/// OpenKruise's `GetSidecarTransferEnvs`: for each entry, the named env vars (sorted) of the source
/// container (by name, or from a pod label/annotation); missing ones are skipped.
fn transfer_envs(c: &SidecarContainer, pod: &Pod) -> Vec<EnvVar> {
    let mut out = Vec::new();
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    let by_key: BTreeMap<(String, String), EnvVar> = containers
        .flat_map(|a| {
            a.env
                .iter()
                .flatten()
                .map(|e| ((a.name.clone(), e.name.clone()), e.clone()))
        })
        .collect();
    for t in c.transfer_env.iter().flatten() {
        let mut names = BTreeSet::new();
        if let Some(n) = t.env_name.as_deref().filter(|n| !n.is_empty()) {
            names.insert(n.to_owned());
        }
        names.extend(t.env_names.iter().flatten().cloned());
        let source = match t
            .source_container_name_from
            .as_ref()
            .and_then(|s| s.field_ref.as_ref())
        {
            Some(fr) => match container_name_from_field_path(&fr.field_path, pod) {
                Some(n) => n,
                None => continue,
            },
            None => t.source_container_name.clone().unwrap_or_default(),
        };
        for n in names {
            if let Some(e) = by_key.get(&(source.clone(), n)) {
                out.push(e.clone());
            }
        }
    }
    out
}

/// The value of `metadata.labels['k']` / `metadata.annotations['k']` on the pod (empty when the key
/// is absent); `None` for any other field path.
fn container_name_from_field_path(path: &str, pod: &Pod) -> Option<String> {
    let (map, key) = if let Some(rest) = path.strip_prefix("metadata.labels") {
        (pod.metadata.labels.as_ref(), rest)
    } else if let Some(rest) = path.strip_prefix("metadata.annotations") {
        (pod.metadata.annotations.as_ref(), rest)
    } else {
        return None;
    };
    let key = key.strip_prefix("['")?.strip_suffix("']")?;
    // OpenKruise refuses (and skips the entry for) a key that is not a qualified name
    if !super::validate::is_qualified_name(&key.to_lowercase()) {
        return None;
    }
    Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
}

/// OpenKruise's `MergeEnvVar`: appends the additional env vars whose names are not there yet.
fn merge_env(mut original: Vec<EnvVar>, additional: Vec<EnvVar>) -> Vec<EnvVar> {
    let mut names: HashSet<String> = original.iter().map(|e| e.name.clone()).collect();
    for e in additional {
        if names.insert(e.name.clone()) {
            original.push(e);
        }
    }
    original
}

/// `MergeVolumeMounts`: shared mounts whose path is not used by a mount or device are appended.
fn merge_mounts(
    mut original: Vec<VolumeMount>,
    additional: Vec<VolumeMount>,
    devices: &[VolumeDevice],
) -> Vec<VolumeMount> {
    let mut paths: HashSet<String> = original
        .iter()
        .map(|m| m.mount_path.clone())
        .chain(devices.iter().map(|d| d.device_path.clone()))
        .collect();
    for m in additional {
        if paths.insert(m.mount_path.clone()) {
            original.push(m);
        }
    }
    original
}

/// `MergeVolumeDevices`: shared devices whose path is not used by a mount or device are appended.
fn merge_devices(
    mut original: Vec<VolumeDevice>,
    additional: Vec<VolumeDevice>,
    mounts: &[VolumeMount],
) -> Vec<VolumeDevice> {
    let mut paths: HashSet<String> = original
        .iter()
        .map(|d| d.device_path.clone())
        .chain(mounts.iter().map(|m| m.mount_path.clone()))
        .collect();
    for d in additional {
        if paths.insert(d.device_path.clone()) {
            original.push(d);
        }
    }
    original
}
