//! Revisions of a CloneSet's pod template (spec §7): the ControllerRevision content and its hash
//! (byte-compatible with OpenKruise/Kubernetes: FNV-32 over the JSON, `SafeEncodeString`), choosing the
//! update and current revisions, and which old revisions history truncation deletes. Pure.

use super::podutil;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kruise_crds::CloneSet;
use kruise_crds::keys::cloneset as ck;
use kube::Resource;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// FNV-1 (not 1a) 32-bit hash, as Go's `hash/fnv.New32`.
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Kubernetes' `rand.SafeEncodeString`: every byte mapped onto a vowel-free alphabet.
pub fn safe_encode(s: &str) -> String {
    let alphabet = ck::INSTANCE_ID_ALPHABET.as_bytes();
    s.bytes()
        .map(|b| char::from(alphabet[usize::from(b) % alphabet.len()]))
        .collect()
}

/// `HashControllerRevision(raw, &collisionCount)`.
pub fn hash_revision(raw: &[u8], collision_count: i32) -> String {
    let mut bytes = raw.to_vec();
    bytes.extend_from_slice(collision_count.to_string().as_bytes());
    safe_encode(&fnv32(&bytes).to_string())
}

/// `{prefix[:223]}-{hash}`.
pub fn revision_name(cs_name: &str, hash: &str) -> String {
    let prefix: String = cs_name.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// JSON the way Go's `json.Marshal` of a `map[string]interface{}` writes it: sorted keys, compact,
/// and `<`, `>`, `&`, U+2028, U+2029 escaped.
pub fn go_json(v: &Value) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// The template as Go encodes a `PodTemplateSpec`: struct fields that `omitempty` cannot drop
/// (`metadata.creationTimestamp`, each container's `resources`) are written even when empty.
pub fn template_json(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if !v.is_object() {
        v = json!({});
    }
    if let Some(obj) = v.as_object_mut() {
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.entry("creationTimestamp").or_insert(Value::Null);
        }
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            for list in ["containers", "initContainers", "ephemeralContainers"] {
                if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.entry("resources").or_insert_with(|| json!({}));
                    }
                }
            }
        }
    }
    v
}

/// `Data.Raw` of a revision: `{"spec":{"template":{"$patch":"replace", ...}}}`.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = template_json(template);
    if let Some(obj) = t.as_object_mut() {
        obj.insert("$patch".into(), json!("replace"));
    }
    json!({ "spec": { "template": t } })
}

/// The pod template stored in a revision (None if the data is not a CloneSet template patch).
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(obj) = t.as_object_mut() {
        obj.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The volume-claim-template hash annotation value: FNV-32 over the templates' specs sorted by
/// name, or "" without templates.
pub fn vct_hash(vcts: Option<&[PersistentVolumeClaim]>) -> String {
    let Some(vcts) = vcts.filter(|v| !v.is_empty()) else {
        return String::new();
    };
    let mut sorted: Vec<&PersistentVolumeClaim> = vcts.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let specs: Vec<Value> = sorted
        .iter()
        .map(|c| serde_json::to_value(&c.spec).unwrap_or(Value::Null))
        .collect();
    fnv32(Value::Array(specs).to_string().as_bytes()).to_string()
}

/// Controller owner reference to the CloneSet.
pub fn controller_ref(cs: &CloneSet) -> OwnerReference {
    OwnerReference {
        api_version: CloneSet::api_version(&()).into_owned(),
        kind: CloneSet::kind(&()).into_owned(),
        name: cs.metadata.name.clone().unwrap_or_default(),
        uid: cs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A new ControllerRevision for the CloneSet's live template.
pub fn new_revision(cs: &CloneSet, revision: i64, collision_count: i32) -> ControllerRevision {
    let data = revision_data(&cs.spec.template);
    let hash = hash_revision(go_json(&data).as_bytes(), collision_count);
    let cs_name = cs.metadata.name.clone().unwrap_or_default();
    let mut labels = cs
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(ck::REVISION_SHORT_HASH_LABEL.into(), hash.clone());
    let mut annotations = cs.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        ck::VOLUME_CLAIM_TEMPLATE_HASH_ANNOTATION.into(),
        vct_hash(cs.spec.volume_claim_templates.as_deref()),
    );
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&cs_name, &hash)),
            namespace: cs.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cs)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// The short hash of a revision (label, else the name suffix).
pub fn revision_hash(rev: &ControllerRevision) -> String {
    rev.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ck::REVISION_SHORT_HASH_LABEL))
        .cloned()
        .unwrap_or_else(|| {
            podutil::short_hash(rev.metadata.name.as_deref().unwrap_or_default()).to_string()
        })
}

/// What to do about the update revision.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRevisionAction {
    /// The newest stored revision already matches the template.
    Reuse(String),
    /// An older revision matches (rollback): give it `revision` (and this VCT-hash annotation).
    Bump {
        /// Its name.
        name: String,
        /// The new `.revision` number.
        revision: i64,
        /// The VCT hash annotation value to set.
        vct_hash: String,
    },
    /// Create this revision (on a name collision with different data, bump `collisionCount`).
    Create(Box<ControllerRevision>),
}

impl UpdateRevisionAction {
    /// Name of the update revision this action leads to.
    pub fn name(&self) -> String {
        match self {
            Self::Reuse(n) | Self::Bump { name: n, .. } => n.clone(),
            Self::Create(r) => r.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// Whether two revisions carry the same template (semantic JSON equality of their data).
pub fn equal_data(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    match (&a.data, &b.data) {
        (Some(x), Some(y)) => x.0 == y.0,
        _ => false,
    }
}

/// `getActiveRevisions` step 2: the update revision for the CloneSet given its stored revisions.
pub fn choose_update_revision(
    cs: &CloneSet,
    revisions: &[ControllerRevision],
) -> UpdateRevisionAction {
    let mut sorted: Vec<&ControllerRevision> = revisions.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let next = sorted.last().map_or(1, |r| r.revision + 1);
    let collision = cs
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let candidate = new_revision(cs, next, collision);
    let equal: Vec<&&ControllerRevision> = sorted
        .iter()
        .filter(|r| equal_data(r, &candidate))
        .collect();
    match equal.last() {
        Some(r)
            if Some(r.metadata.name.as_ref())
                == sorted.last().map(|l| l.metadata.name.as_ref()) =>
        {
            UpdateRevisionAction::Reuse(r.metadata.name.clone().unwrap_or_default())
        }
        Some(r) => UpdateRevisionAction::Bump {
            name: r.metadata.name.clone().unwrap_or_default(),
            revision: next,
            vct_hash: vct_hash(cs.spec.volume_claim_templates.as_deref()),
        },
        None => UpdateRevisionAction::Create(Box::new(candidate)),
    }
}

/// The current revision: the one named by `status.currentRevision` if stored, else the update one.
pub fn choose_current_revision(
    cs: &CloneSet,
    revisions: &[ControllerRevision],
    update: &str,
) -> String {
    cs.status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .filter(|c| {
            revisions
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(*c))
        })
        .unwrap_or(update)
        .to_string()
}

/// §7.4: names of non-live revisions to delete, oldest first, beyond `limit` kept.
pub fn history_to_delete(
    revisions: &[ControllerRevision],
    pods: &[&Pod],
    current: &str,
    update: &str,
    limit: i32,
) -> Vec<String> {
    let mut live: BTreeSet<&str> = [current, update].into();
    let pod_hashes: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| podutil::label(p, kruise_crds::keys::CONTROLLER_REVISION_HASH_LABEL))
        .collect();
    let mut non_live: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| {
            let name = r.metadata.name.as_deref().unwrap_or_default();
            let hash = revision_hash(r);
            !(live.contains(name)
                || pod_hashes.contains(name)
                || pod_hashes.contains(hash.as_str()))
        })
        .collect();
    live.clear();
    non_live.sort_by_key(|r| r.revision);
    let keep = usize::try_from(limit.max(0)).unwrap_or(0);
    let excess = non_live.len().saturating_sub(keep);
    non_live
        .iter()
        .take(excess)
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

/// Labels a pod built at `revision` carries for it.
pub fn revision_labels(revision_name: &str) -> BTreeMap<String, String> {
    [
        (
            kruise_crds::keys::CONTROLLER_REVISION_HASH_LABEL.to_string(),
            revision_name.to_string(),
        ),
        (
            ck::POD_TEMPLATE_HASH_LABEL.to_string(),
            podutil::short_hash(revision_name).to_string(),
        ),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kruise_crds::CloneSetSpec;

    pub(crate) fn cs_with_image(image: &str) -> CloneSet {
        let mut cs = CloneSet::new(
            "demo",
            CloneSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "demo".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
        );
        cs.metadata.namespace = Some("ns".into());
        cs.metadata.uid = Some("uid-1".into());
        cs
    }

    #[test]
    fn fnv32_vectors() {
        // Reference values of FNV-1 32 (not 1a).
        assert_eq!(fnv32(b""), 0x811c_9dc5);
        assert_eq!(fnv32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv32(b"foobar"), 0x31f0_b262);
    }

    #[test]
    fn safe_encoding_maps_digits() {
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        // hash is the safe encoding of the decimal FNV sum.
        let h = hash_revision(b"x", 0);
        let mut raw = b"x".to_vec();
        raw.push(b'0');
        assert_eq!(h, safe_encode(&fnv32(&raw).to_string()));
        assert_ne!(hash_revision(b"x", 0), hash_revision(b"x", 1));
    }

    #[test]
    fn revision_data_is_go_shaped() {
        let cs = cs_with_image("nginx:1.25");
        let data = revision_data(&cs.spec.template);
        assert_eq!(
            go_json(&data),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"demo"}},"spec":{"containers":[{"image":"nginx:1.25","name":"main","resources":{}}]}}}}"#
        );
        assert_eq!(
            go_json(&json!({"a": "<&>"})),
            r#"{"a":"\u003c\u0026\u003e"}"#
        );
    }

    #[test]
    fn new_revision_shape() {
        let cs = cs_with_image("nginx:1.25");
        let rev = new_revision(&cs, 3, 0);
        let hash = revision_hash(&rev);
        assert_eq!(
            rev.metadata.name.as_deref(),
            Some(format!("demo-{hash}").as_str())
        );
        assert_eq!(rev.revision, 3);
        let labels = rev.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "demo");
        assert_eq!(labels[ck::REVISION_SHORT_HASH_LABEL], hash);
        assert_eq!(
            rev.metadata.annotations.as_ref().unwrap()[ck::VOLUME_CLAIM_TEMPLATE_HASH_ANNOTATION],
            ""
        );
        let or = &rev.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (or.kind.as_str(), or.uid.as_str(), or.controller),
            ("CloneSet", "uid-1", Some(true))
        );
        assert_eq!(
            template_of(&rev),
            Some(cs.spec.template.clone()).map(|mut t| {
                // creationTimestamp null and resources {} read back as None / empty resources.
                t.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
                t
            })
        );
        // Changing the image changes the hash; same template gives the same hash.
        assert_ne!(
            revision_hash(&new_revision(&cs_with_image("nginx:1.26"), 3, 0)),
            hash
        );
        assert_eq!(revision_hash(&new_revision(&cs, 9, 0)), hash);
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn choosing_revisions() {
        let v1 = cs_with_image("nginx:1");
        let v2 = cs_with_image("nginx:2");
        let r1 = new_revision(&v1, 1, 0);
        let r2 = new_revision(&v2, 2, 0);
        let r1_name = r1.metadata.name.clone().unwrap();
        let r2_name = r2.metadata.name.clone().unwrap();
        // No revisions: create revision 1.
        match choose_update_revision(&v1, &[]) {
            UpdateRevisionAction::Create(r) => assert_eq!(
                (r.revision, r.metadata.name.clone()),
                (1, Some(r1_name.clone()))
            ),
            other => panic!("{other:?}"),
        }
        // Newest equal: reuse.
        let revs = [r1.clone(), r2.clone()];
        assert_eq!(
            choose_update_revision(&v2, &revs),
            UpdateRevisionAction::Reuse(r2_name.clone())
        );
        // Rollback to v1: bump r1 to revision 3.
        assert_eq!(
            choose_update_revision(&v1, &revs),
            UpdateRevisionAction::Bump {
                name: r1_name.clone(),
                revision: 3,
                vct_hash: String::new()
            }
        );
        // A new template: create revision 3.
        match choose_update_revision(&cs_with_image("nginx:3"), &revs) {
            UpdateRevisionAction::Create(r) => assert_eq!(r.revision, 3),
            other => panic!("{other:?}"),
        }
        // Current revision from status if stored.
        let mut cs = v2.clone();
        cs.status = Some(kruise_crds::CloneSetStatus {
            current_revision: Some(r1_name.clone()),
            ..Default::default()
        });
        assert_eq!(choose_current_revision(&cs, &revs, &r2_name), r1_name);
        cs.status.as_mut().unwrap().current_revision = Some("gone".into());
        assert_eq!(choose_current_revision(&cs, &revs, &r2_name), r2_name);
    }

    #[test]
    fn history_truncation() {
        let revs: Vec<ControllerRevision> = (1..=6)
            .map(|i| new_revision(&cs_with_image(&format!("nginx:{i}")), i, 0))
            .collect();
        let name = |i: usize| revs[i - 1].metadata.name.clone().unwrap();
        let pod = super::super::podutil::test_pods::mk_pod("p")
            .rev(&name(2))
            .build();
        // live: 6 (update), 5 (current), 2 (pod). Non-live: 1, 3, 4. Keep 1 ⇒ delete 1 and 3.
        let got = history_to_delete(&revs, &[&pod], &name(5), &name(6), 1);
        assert_eq!(got, vec![name(1), name(3)]);
        assert!(history_to_delete(&revs, &[&pod], &name(5), &name(6), 10).is_empty());
        assert_eq!(
            history_to_delete(&revs, &[], &name(6), &name(6), 0).len(),
            5
        );
    }
}
