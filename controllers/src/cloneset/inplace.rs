//! The in-place update engine (spec §9.6–§9.8): whether a revision change can be applied in place
//! (images and labels/annotations only), the pod changes that apply it, the
//! `apps.kruise.io/inplace-update-state` and `-grace` annotations (JSON byte-compatible with
//! OpenKruise), the `InPlaceUpdateReady` condition, and completion detection. Pure.

use super::lifecycle::rfc3339;
use super::podutil;
use super::revision::template_json;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::keys::{self, cloneset as ck};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Image of one container before the update (`InPlaceUpdateContainerStatus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastContainerStatus {
    /// `status.containerStatuses[].imageID` before the update.
    #[serde(default, rename = "imageID", skip_serializing_if = "String::is_empty")]
    pub image_id: String,
}

/// Containers a later batch waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreCheckBeforeNext {
    /// Containers that must be ready before the next batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers_required_ready: Vec<String>,
}

/// One batch of containers updated together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerBatch {
    /// When the batch was patched.
    pub timestamp: String,
    /// Sorted container names.
    pub containers: Vec<String>,
}

/// `apps.kruise.io/inplace-update-state`. Field order and omissions follow OpenKruise's Go struct.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateState {
    /// Full revision name the pod is updated to.
    #[serde(default)]
    pub revision: String,
    /// When the update started (RFC 3339).
    #[serde(default)]
    pub update_timestamp: String,
    /// Image ids before the update, per container.
    #[serde(default)]
    pub last_container_statuses: BTreeMap<String, LastContainerStatus>,
    /// Env from metadata changed (needs kruise-daemon).
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_env_from_metadata: bool,
    /// Resources changed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_resources: bool,
    /// Images changed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_images: bool,
    /// Images of later batches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_container_images: BTreeMap<String, String>,
    /// Metadata of later batches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_container_ref_metadata: BTreeMap<String, Value>,
    /// Resources of later batches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_container_resources: BTreeMap<String, Value>,
    /// What the next batch waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_check_before_next: Option<PreCheckBeforeNext>,
    /// Batches applied so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_batches_record: Vec<ContainerBatch>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What an in-place update changes (`UpdateSpec`; also the JSON of the grace annotation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSpec {
    /// Target revision name.
    pub revision: String,
    /// New image per container name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_images: BTreeMap<String, String>,
    /// Strategic-merge patch of the pod metadata (base64 of the JSON, as Go's `[]byte`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64_opt")]
    pub meta_data_patch: Option<Vec<u8>>,
    /// Seconds between marking not ready and patching the spec.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grace_seconds: i32,
}

fn is_zero(i: &i32) -> bool {
    *i == 0
}

/// Base64 (standard alphabet, padded) for `[]byte` fields, as Go's encoding/json writes them.
mod b64_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = u32::try_from(A.iter().position(|a| *a == c)?).ok()?;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            }
        }
        Some(out)
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| decode(&s).ok_or_else(|| D::Error::custom("invalid base64")))
            .transpose()
    }
}

/// `metadata.labels['k']` / `metadata.annotations['k']` keys some container env refers to.
fn env_ref_keys(t: &PodTemplateSpec) -> Vec<String> {
    let mut out = Vec::new();
    for c in t.spec.iter().flat_map(|s| s.containers.iter()) {
        for e in c.env.iter().flatten() {
            if let Some(fr) = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
                let p = fr.field_path.as_str();
                for prefix in ["metadata.labels['", "metadata.annotations['"] {
                    if let Some(k) = p.strip_prefix(prefix).and_then(|r| r.strip_suffix("']")) {
                        out.push(k.to_string());
                    }
                }
            }
        }
    }
    out
}

/// `CalculateSpec`: the in-place change from `old` to `new`, or None when the change needs a new pod
/// (anything but container images and template labels/annotations). A changed label or annotation
/// that a container's env reads through the downward API also needs a new pod: kruise-rs does not
/// restart containers through the node daemon.
pub fn calculate_spec(
    old: &PodTemplateSpec,
    new: &PodTemplateSpec,
    revision: &str,
    grace_seconds: i32,
) -> Option<UpdateSpec> {
    let (ov, nv) = (template_json(old), template_json(new));
    let patch = serde_json::to_value(json_patch::diff(&ov, &nv)).ok()?;
    let old_containers = &old.spec.as_ref()?.containers;
    let mut spec = UpdateSpec {
        revision: revision.to_string(),
        grace_seconds,
        ..Default::default()
    };
    let mut meta_changed = false;
    for op in patch.as_array()? {
        let (kind, path) = (op["op"].as_str()?, op["path"].as_str()?);
        if path.starts_with("/metadata/") {
            meta_changed = true;
            continue;
        }
        let rest = path.strip_prefix("/spec/containers/")?;
        let (idx, field) = rest.split_once('/')?;
        if kind != "replace" || field != "image" {
            return None;
        }
        let idx: usize = idx.parse().ok()?;
        let name = old_containers.get(idx)?.name.clone();
        spec.container_images
            .insert(name, op["value"].as_str()?.to_string());
    }
    if meta_changed {
        let om = old.metadata.clone().unwrap_or_default();
        let nm = new.metadata.clone().unwrap_or_default();
        let refs = env_ref_keys(new);
        let mut patch = json!({});
        for (field, o, n) in [
            (
                "labels",
                om.labels.unwrap_or_default(),
                nm.labels.unwrap_or_default(),
            ),
            (
                "annotations",
                om.annotations.unwrap_or_default(),
                nm.annotations.unwrap_or_default(),
            ),
        ] {
            let mut m = serde_json::Map::new();
            for (k, v) in &n {
                if o.get(k) != Some(v) {
                    m.insert(k.clone(), json!(v));
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                m.insert(k.clone(), Value::Null);
            }
            if m.keys().any(|k| refs.contains(k)) {
                return None;
            }
            if !m.is_empty() {
                patch[field] = Value::Object(m);
            }
        }
        // Finalizers merge as a set, in the strategic-merge-patch spelling OpenKruise writes.
        let (of, nf) = (
            om.finalizers.unwrap_or_default(),
            nm.finalizers.unwrap_or_default(),
        );
        if of != nf {
            let removed: Vec<&String> = of.iter().filter(|f| !nf.contains(f)).collect();
            let added: Vec<&String> = nf.iter().filter(|f| !of.contains(f)).collect();
            if !removed.is_empty() {
                patch["$deleteFromPrimitiveList/finalizers"] = json!(removed);
            }
            patch["$setElementOrder/finalizers"] = json!(nf);
            if !added.is_empty() {
                patch["finalizers"] = json!(added);
            }
        }
        if patch.as_object().is_some_and(|o| !o.is_empty()) {
            spec.meta_data_patch = Some(json!({ "metadata": patch }).to_string().into_bytes());
        }
    }
    Some(spec)
}

/// `repo` → `docker.io/library/repo:latest`, so names the runtime reports compare with the spec.
pub fn normalize_image(image: &str) -> String {
    let (name, suffix) = match image.find('@') {
        Some(i) => (&image[..i], image[i..].to_string()),
        None => {
            let last = image.rsplit('/').next().unwrap_or(image);
            match last.rfind(':') {
                Some(j) => {
                    let cut = image.len() - last.len() + j;
                    (&image[..cut], image[cut..].to_string())
                }
                None => (image, ":latest".to_string()),
            }
        }
    };
    let full = match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _))
            if !first.contains('.') && !first.contains(':') && first != "localhost" =>
        {
            format!("docker.io/{name}")
        }
        Some(_) => name.to_string(),
    };
    format!("{full}{suffix}")
}

/// Reads the pod's state annotation (legacy key as fallback).
pub fn state_of(pod: &Pod) -> Option<InPlaceUpdateState> {
    let raw = podutil::annotation(pod, keys::INPLACE_UPDATE_STATE)
        .or_else(|| podutil::annotation(pod, ck::LEGACY_INPLACE_UPDATE_STATE))?;
    serde_json::from_str(raw).ok()
}

/// Reads the pod's grace annotation (legacy key as fallback).
pub fn grace_of(pod: &Pod) -> Option<UpdateSpec> {
    let raw = podutil::annotation(pod, keys::INPLACE_UPDATE_GRACE)
        .or_else(|| podutil::annotation(pod, ck::LEGACY_INPLACE_UPDATE_GRACE))?;
    serde_json::from_str(raw).ok()
}

/// Sets the images and metadata patch of `spec` on the pod, recording them in `state`.
fn patch_spec_to_pod(
    pod: &mut Pod,
    spec: &UpdateSpec,
    state: &mut InPlaceUpdateState,
    now: Timestamp,
) {
    if let Some(bytes) = &spec.meta_data_patch
        && let Ok(p) = serde_json::from_slice::<Value>(bytes)
    {
        let meta = &mut pod.metadata;
        for (field, target) in [
            ("labels", &mut meta.labels),
            ("annotations", &mut meta.annotations),
        ] {
            if let Some(m) = p["metadata"][field].as_object() {
                let t = target.get_or_insert_default();
                for (k, v) in m {
                    match v.as_str() {
                        Some(s) => {
                            t.insert(k.clone(), s.to_string());
                        }
                        None => {
                            t.remove(k);
                        }
                    }
                }
            }
        }
        let fins = meta.finalizers.get_or_insert_default();
        for f in p["metadata"]["$deleteFromPrimitiveList/finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            fins.retain(|x| x != f);
        }
        for f in p["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fins.iter().any(|x| x == f) {
                fins.push(f.to_string());
            }
        }
        if fins.is_empty() {
            meta.finalizers = None;
        }
    }
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let mut names = Vec::new();
    if let Some(ps) = pod.spec.as_mut() {
        for c in &mut ps.containers {
            if let Some(img) = spec.container_images.get(&c.name) {
                c.image = Some(img.clone());
                let image_id = statuses
                    .iter()
                    .find(|s| s.name == c.name)
                    .map(|s| s.image_id.clone())
                    .unwrap_or_default();
                state
                    .last_container_statuses
                    .insert(c.name.clone(), LastContainerStatus { image_id });
                names.push(c.name.clone());
            }
        }
    }
    names.sort();
    if !names.is_empty() {
        state.container_batches_record.push(ContainerBatch {
            timestamp: rfc3339(now),
            containers: names,
        });
    }
}

fn set_annotation(pod: &mut Pod, key: &str, value: Option<String>) {
    let a = pod.metadata.annotations.get_or_insert_default();
    match value {
        Some(v) => {
            a.insert(key.to_string(), v);
        }
        None => {
            a.remove(key);
        }
    }
}

/// `updatePodInPlace`: the pod as it must be written (full UPDATE, resourceVersion kept).
pub fn apply_update(pod: &Pod, spec: &UpdateSpec, set_updating: bool, now: Timestamp) -> Pod {
    let mut pod = pod.clone();
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.extend(super::revision::revision_labels(&spec.revision));
    if set_updating {
        labels.insert(
            keys::LIFECYCLE_STATE_LABEL.into(),
            ck::LIFECYCLE_UPDATING.into(),
        );
        set_annotation(&mut pod, keys::LIFECYCLE_TIMESTAMP, Some(rfc3339(now)));
    }
    let mut state = InPlaceUpdateState {
        revision: spec.revision.clone(),
        update_timestamp: rfc3339(now),
        update_images: !spec.container_images.is_empty(),
        ..Default::default()
    };
    if spec.grace_seconds <= 0 {
        patch_spec_to_pod(&mut pod, spec, &mut state, now);
        set_annotation(&mut pod, keys::INPLACE_UPDATE_GRACE, None);
    } else {
        set_annotation(
            &mut pod,
            keys::INPLACE_UPDATE_GRACE,
            serde_json::to_string(spec).ok(),
        );
    }
    set_annotation(
        &mut pod,
        keys::INPLACE_UPDATE_STATE,
        serde_json::to_string(&state).ok(),
    );
    set_annotation(&mut pod, ck::LEGACY_INPLACE_UPDATE_STATE, None);
    set_annotation(&mut pod, ck::LEGACY_INPLACE_UPDATE_GRACE, None);
    pod
}

/// What to do about a pod's pending grace period.
#[derive(Clone, Debug, PartialEq)]
pub enum GraceStep {
    /// The pod moved to another revision: drop the grace annotation.
    Drop,
    /// Still waiting this many seconds.
    Wait(i64),
    /// Time is up: write this pod (spec patched, grace annotation dropped).
    Finish(Box<Pod>),
}

/// §9.7 for a pod carrying the grace annotation.
pub fn grace_step(pod: &Pod, now: Timestamp) -> Option<GraceStep> {
    let spec = grace_of(pod)?;
    if podutil::label(pod, keys::CONTROLLER_REVISION_HASH_LABEL) != Some(spec.revision.as_str()) {
        return Some(GraceStep::Drop);
    }
    let mut state = state_of(pod).unwrap_or_default();
    let started = state
        .update_timestamp
        .parse::<Timestamp>()
        .map_or(0, |t| t.as_second());
    let left = started + i64::from(spec.grace_seconds) - now.as_second();
    if left > 0 {
        return Some(GraceStep::Wait(left));
    }
    let mut out = pod.clone();
    patch_spec_to_pod(&mut out, &spec, &mut state, now);
    set_annotation(&mut out, keys::INPLACE_UPDATE_GRACE, None);
    set_annotation(&mut out, ck::LEGACY_INPLACE_UPDATE_GRACE, None);
    set_annotation(
        &mut out,
        keys::INPLACE_UPDATE_STATE,
        serde_json::to_string(&state).ok(),
    );
    Some(GraceStep::Finish(Box::new(out)))
}

/// §9.8: whether the containers of an in-place update run the new images.
pub fn is_update_completed(pod: &Pod) -> bool {
    if grace_of(pod).is_some() {
        return false;
    }
    let Some(state) = state_of(pod) else {
        return true;
    };
    if !state.next_container_images.is_empty()
        || !state.next_container_ref_metadata.is_empty()
        || !state.next_container_resources.is_empty()
    {
        return false;
    }
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let spec_images: BTreeMap<&str, &str> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap_or_default()))
        .collect();
    state.last_container_statuses.iter().all(|(name, last)| {
        let Some(st) = statuses.iter().find(|s| &s.name == name) else {
            return false;
        };
        let want = spec_images.get(name.as_str()).copied().unwrap_or_default();
        !(st.image_id == last.image_id && normalize_image(&st.image) != normalize_image(want))
    })
}

/// Whether the pod has the `InPlaceUpdateReady` readiness gate.
pub fn has_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| {
            g.iter()
                .any(|g| g.condition_type == keys::INPLACE_UPDATE_READY)
        })
}

fn upsert_condition(pod: &mut Pod, c: PodCondition) {
    let conds = pod
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default();
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => *x = c,
        None => conds.push(c),
    }
}

/// The pod with `InPlaceUpdateReady=True` (None if it already is, or has no such gate).
pub fn with_ready_condition(pod: &Pod, now: Timestamp) -> Option<Pod> {
    if !has_gate(pod) {
        return None;
    }
    if podutil::condition(pod, keys::INPLACE_UPDATE_READY).is_some_and(|c| {
        c.status == keys::CONDITION_TRUE && c.reason.is_none() && c.message.is_none()
    }) {
        return None;
    }
    let mut out = pod.clone();
    upsert_condition(
        &mut out,
        PodCondition {
            type_: keys::INPLACE_UPDATE_READY.into(),
            status: keys::CONDITION_TRUE.into(),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        },
    );
    Some(out)
}

/// The pod with `InPlaceUpdateReady=False/StartInPlaceUpdate` and `Ready` recomputed.
pub fn with_not_ready_condition(pod: &Pod, now: Timestamp) -> Pod {
    let mut out = pod.clone();
    upsert_condition(
        &mut out,
        PodCondition {
            type_: keys::INPLACE_UPDATE_READY.into(),
            status: keys::CONDITION_FALSE.into(),
            reason: Some(ck::START_IN_PLACE_UPDATE_REASON.into()),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        },
    );
    let containers_ready = podutil::condition(pod, "ContainersReady")
        .is_some_and(|c| c.status == keys::CONDITION_TRUE);
    if containers_ready {
        upsert_condition(
            &mut out,
            PodCondition {
                type_: "Ready".into(),
                status: keys::CONDITION_FALSE.into(),
                reason: Some(ck::READINESS_GATES_NOT_READY_REASON.into()),
                message: Some(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but False",
                    keys::INPLACE_UPDATE_READY
                )),
                last_transition_time: Some(Time(now)),
                ..Default::default()
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::podutil::test_pods::*;
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerStatus, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn tpl(image: &str, labels: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "main".into(),
                        image: Some(image.into()),
                        ..Default::default()
                    },
                    Container {
                        name: "side".into(),
                        image: Some("busybox".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn in_place_possible_for_images_and_metadata_only() {
        let old = tpl("nginx:1", &[("app", "a")]);
        let s = calculate_spec(&old, &tpl("nginx:2", &[("app", "a")]), "cs-2", 0).unwrap();
        assert_eq!(
            s.container_images,
            [("main".to_string(), "nginx:2".to_string())].into()
        );
        assert_eq!(s.meta_data_patch, None);
        let s = calculate_spec(
            &old,
            &tpl("nginx:1", &[("app", "a"), ("x", "1")]),
            "cs-2",
            0,
        )
        .unwrap();
        assert!(s.container_images.is_empty());
        assert_eq!(
            serde_json::from_slice::<Value>(s.meta_data_patch.as_ref().unwrap()).unwrap(),
            json!({"metadata":{"labels":{"x":"1"}}})
        );
        // Env change: recreate.
        let mut env = tpl("nginx:1", &[("app", "a")]);
        env.spec.as_mut().unwrap().containers[0].env = Some(vec![EnvVar {
            name: "A".into(),
            value: Some("1".into()),
            value_from: None,
        }]);
        assert!(calculate_spec(&old, &env, "r", 0).is_none());
        // A new container: recreate.
        let mut more = tpl("nginx:1", &[("app", "a")]);
        more.spec.as_mut().unwrap().containers.push(Container {
            name: "x".into(),
            ..Default::default()
        });
        assert!(calculate_spec(&old, &more, "r", 0).is_none());
        // A label read by env through the downward API: recreate.
        let mut reader = tpl("nginx:1", &[("app", "a"), ("x", "2")]);
        reader.spec.as_mut().unwrap().containers[0].env = Some(vec![EnvVar {
            name: "X".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels['x']".into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
        }]);
        let mut reader_old = reader.clone();
        reader_old
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("x".into(), "1".into());
        assert!(calculate_spec(&reader_old, &reader, "r", 0).is_none());
    }

    fn running_pod() -> Pod {
        let mut p = mk_pod("cs-abcde")
            .rev("cs-1")
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .build();
        p.spec = Some(tpl("nginx:1", &[]).spec.unwrap());
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "main".into(),
            image: "docker.io/library/nginx:1".into(),
            image_id: "docker.io/library/nginx@sha256:aaa".into(),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn update_writes_state_annotation_byte_exact() {
        let now = Timestamp::from_second(1_735_689_600).unwrap();
        let spec = UpdateSpec {
            revision: "cs-2".into(),
            container_images: [("main".to_string(), "nginx:2".to_string())].into(),
            ..Default::default()
        };
        let pod = apply_update(&running_pod(), &spec, true, now);
        let a = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            a[keys::INPLACE_UPDATE_STATE],
            r#"{"revision":"cs-2","updateTimestamp":"2025-01-01T00:00:00Z","lastContainerStatuses":{"main":{"imageID":"docker.io/library/nginx@sha256:aaa"}},"updateImages":true,"containerBatchesRecord":[{"timestamp":"2025-01-01T00:00:00Z","containers":["main"]}]}"#
        );
        let l = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(l[keys::CONTROLLER_REVISION_HASH_LABEL], "cs-2");
        assert_eq!(l[ck::POD_TEMPLATE_HASH_LABEL], "2");
        assert_eq!(l[keys::LIFECYCLE_STATE_LABEL], "Updating");
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx:2")
        );
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[1].image.as_deref(),
            Some("busybox")
        );
        // Not complete until the runtime reports a new image id or the new image name.
        assert!(!is_update_completed(&pod));
        let mut done = pod.clone();
        done.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .image_id = "docker.io/library/nginx@sha256:bbb".into();
        assert!(is_update_completed(&done));
        let mut same_digest = pod.clone();
        same_digest
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .image = "docker.io/library/nginx:2".into();
        assert!(is_update_completed(&same_digest));
    }

    #[test]
    fn grace_period() {
        let now = Timestamp::from_second(1_735_689_600).unwrap();
        let spec = UpdateSpec {
            revision: "cs-2".into(),
            container_images: [("main".to_string(), "nginx:2".to_string())].into(),
            meta_data_patch: Some(br#"{"metadata":{"labels":{"x":"1"}}}"#.to_vec()),
            grace_seconds: 30,
        };
        let pod = apply_update(&running_pod(), &spec, true, now);
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("nginx:1")
        );
        let grace = &pod.metadata.annotations.as_ref().unwrap()[keys::INPLACE_UPDATE_GRACE];
        assert_eq!(
            grace,
            r#"{"revision":"cs-2","containerImages":{"main":"nginx:2"},"metaDataPatch":"eyJtZXRhZGF0YSI6eyJsYWJlbHMiOnsieCI6IjEifX19","graceSeconds":30}"#
        );
        assert!(!is_update_completed(&pod));
        let later = |s: i64| Timestamp::from_second(1_735_689_600 + s).unwrap();
        assert_eq!(grace_step(&pod, later(10)), Some(GraceStep::Wait(20)));
        match grace_step(&pod, later(30)) {
            Some(GraceStep::Finish(p)) => {
                assert_eq!(
                    p.spec.as_ref().unwrap().containers[0].image.as_deref(),
                    Some("nginx:2")
                );
                assert_eq!(p.metadata.labels.as_ref().unwrap()["x"], "1");
                assert!(
                    !p.metadata
                        .annotations
                        .as_ref()
                        .unwrap()
                        .contains_key(keys::INPLACE_UPDATE_GRACE)
                );
            }
            other => panic!("{other:?}"),
        }
        let mut moved = pod.clone();
        moved
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(keys::CONTROLLER_REVISION_HASH_LABEL.into(), "cs-3".into());
        assert_eq!(grace_step(&moved, later(1)), Some(GraceStep::Drop));
    }

    /// OpenKruise's TestCalculateInPlaceUpdateSpec vectors (templates taken from the revision data).
    #[test]
    fn calculate_spec_vectors() {
        let t = |raw: &str| -> PodTemplateSpec {
            let v: Value = serde_json::from_str(raw).unwrap();
            let mut t = v["spec"]["template"].clone();
            t.as_object_mut().unwrap().remove("$patch");
            serde_json::from_value(t).unwrap()
        };
        /// (old revision data, new revision data, expected (image of c1, metadata patch)).
        type Case<'a> = (&'a str, &'a str, Option<(&'a str, Option<&'a str>)>);
        let cases: &[Case] = &[
            (
                r#"{"spec":{"template":{"$patch":"replace","spec":{"containers":[{"name":"c1","image":"foo1"}]}}}}"#,
                r#"{"spec":{"template":{"$patch":"replace","spec":{"containers":[{"name":"c1","image":"foo2"}]}}}}"#,
                Some(("foo2", None)),
            ),
            (
                r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"k":"v"}},"spec":{"containers":[{"name":"c1","image":"foo1"}]}}}}"#,
                r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"k":"v","k1":"v1"}},"spec":{"containers":[{"name":"c1","image":"foo2"}]}}}}"#,
                Some(("foo2", Some(r#"{"metadata":{"labels":{"k1":"v1"}}}"#))),
            ),
            (
                r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"k":"v","k2":"v2"},"finalizers":["fz1","fz2"]},"spec":{"containers":[{"name":"c1","image":"foo1"}]}}}}"#,
                r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"k":"v","k1":"v1"},"finalizers":["fz2"]},"spec":{"containers":[{"name":"c1","image":"foo2"}]}}}}"#,
                Some((
                    "foo2",
                    Some(
                        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["fz1"],"$setElementOrder/finalizers":["fz2"],"labels":{"k1":"v1","k2":null}}}"#,
                    ),
                )),
            ),
            (
                r#"{"spec":{"template":{"$patch":"replace","spec":{"containers":[{"name":"c1","image":"foo1"}]}}}}"#,
                r#"{"spec":{"template":{"$patch":"replace","spec":{"containers":[{"name":"c1","image":"foo2","env":[{"name":"k","value":"v"}]}]}}}}"#,
                None,
            ),
        ];
        for (old, new, want) in cases {
            let got = calculate_spec(&t(old), &t(new), "new-revision", 0);
            match (got, want) {
                (None, None) => {}
                (Some(g), Some((img, patch))) => {
                    assert_eq!(g.revision, "new-revision");
                    assert_eq!(
                        g.container_images,
                        [("c1".to_string(), img.to_string())].into()
                    );
                    assert_eq!(
                        g.meta_data_patch
                            .as_deref()
                            .map(|b| std::str::from_utf8(b).unwrap()),
                        *patch
                    );
                }
                (g, w) => panic!("{old} → {new}: got {g:?}, want {w:?}"),
            }
        }
        // The finalizer patch applies as a set change on the pod.
        let spec = calculate_spec(&t(cases[2].0), &t(cases[2].1), "r", 0).unwrap();
        let mut pod = mk_pod("p").build();
        pod.metadata.finalizers = Some(vec!["fz1".into(), "fz2".into(), "other".into()]);
        pod.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("k2".into(), "v2".into());
        let out = apply_update(&pod, &spec, false, now());
        assert_eq!(
            out.metadata.finalizers,
            Some(vec!["fz2".to_string(), "other".to_string()])
        );
        let l = out.metadata.labels.unwrap();
        assert_eq!(
            (l.get("k1").map(String::as_str), l.contains_key("k2")),
            (Some("v1"), false)
        );
    }

    /// OpenKruise's TestCheckInPlaceUpdateCompleted pods.
    #[test]
    fn completion_vectors() {
        let with_state = |id: &str, image: &str, statuses: bool| {
            let mut p = mk_pod("p")
                .annotation(keys::INPLACE_UPDATE_STATE, r#"{"revision":"new-revision","lastContainerStatuses":{"c1":{"imageID":"img01"}}}"#)
                .build();
            if statuses {
                p.status = Some(Default::default());
                p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
                    name: "c1".into(),
                    image_id: id.into(),
                    image: image.into(),
                    ..Default::default()
                }]);
            }
            p
        };
        assert!(is_update_completed(&mk_pod("s1").build()));
        assert!(is_update_completed(&with_state("img02", "", true)));
        assert!(!is_update_completed(&with_state("img01", "image01", true)));
        assert!(!is_update_completed(&with_state("img01", "", false)));
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = b64_opt::encode(s.as_bytes());
            assert_eq!(b64_opt::decode(&e).unwrap(), s.as_bytes());
        }
        assert_eq!(b64_opt::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_opt::encode(b"fo"), "Zm8=");
    }

    #[test]
    fn image_normalization() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("nginx:1.25"),
            "docker.io/library/nginx:1.25"
        );
        assert_eq!(normalize_image("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_image("reg.io/a/b@sha256:abc"),
            "reg.io/a/b@sha256:abc"
        );
    }

    #[test]
    fn readiness_conditions() {
        let now = now();
        let mut p = running_pod();
        assert!(
            with_ready_condition(&p, now).is_none(),
            "no gate, nothing to do"
        );
        p.spec.as_mut().unwrap().readiness_gates =
            Some(vec![k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: keys::INPLACE_UPDATE_READY.into(),
            }]);
        let ready = with_ready_condition(&p, now).unwrap();
        assert!(podutil::in_place_update_ready(&ready));
        assert!(with_ready_condition(&ready, now).is_none());
        let mut cr = ready.clone();
        upsert_condition(
            &mut cr,
            PodCondition {
                type_: "ContainersReady".into(),
                status: "True".into(),
                ..Default::default()
            },
        );
        let nr = with_not_ready_condition(&cr, now);
        assert!(!podutil::in_place_update_ready(&nr));
        assert!(!podutil::is_ready(&nr, now));
        assert_eq!(
            podutil::condition(&nr, "Ready").unwrap().reason.as_deref(),
            Some("ReadinessGatesNotReady")
        );
        assert_eq!(
            podutil::condition(&nr, keys::INPLACE_UPDATE_READY)
                .unwrap()
                .reason
                .as_deref(),
            Some("StartInPlaceUpdate")
        );
    }
}
