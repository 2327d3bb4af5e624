//! ControllerRevision history of a SidecarSet (spec §4.6): the revision content, its name and labels,
//! whether the latest spec reuses, renumbers or creates a revision, and which old revisions to delete.
//! Pure; the reconcile shell performs the plan in the Kruise namespace.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kruise_crds::keys::CONTROLLER_REVISION_HASH_LABEL;
use kruise_crds::keys::sidecarset::{SIDECARSET_CUSTOM_VERSION_LABEL, SIDECARSET_NAME_LABEL};
use kruise_crds::sidecarset::SidecarSet;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Default `revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// The revision content: `{"spec":{"$patch":"replace", containers, imagePullSecrets, initContainers,
/// patchPodMetadata, volumes}}`, every key present (null when unset), keys in sorted order.
pub fn revision_data(ss: &SidecarSet) -> Value {
    let spec = serde_json::to_value(&ss.spec).unwrap_or(Value::Null);
    let get = |k: &str| spec.get(k).cloned().unwrap_or(Value::Null);
    let mut inner = Map::new();
    inner.insert("$patch".into(), Value::String("replace".into()));
    for k in [
        "containers",
        "imagePullSecrets",
        "initContainers",
        "patchPodMetadata",
        "volumes",
    ] {
        inner.insert(k.into(), get(k));
    }
    let mut outer = Map::new();
    outer.insert("spec".into(), Value::Object(inner));
    Value::Object(outer)
}

/// k8s `rand.SafeEncodeString`.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// k8s `history.HashControllerRevision`: FNV-32a of the raw data, then of the collision count in
/// decimal, safe-encoded.
pub fn hash_revision(data: &[u8], collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(data);
    if let Some(c) = collision_count {
        feed(c.to_string().as_bytes());
    }
    safe_encode(&h.to_string())
}

/// k8s `history.ControllerRevisionName`: `{prefix}-{hash}`, the prefix cut to 223 characters.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let prefix: String = prefix.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// A new revision of `ss` numbered `revision` in `namespace` (labels: the SidecarSet's, plus
/// `kruise.io/sidecarset-name`, the hash label and the custom version; annotations: all of the
/// SidecarSet's, including both hashes; owner: the SidecarSet).
pub fn new_revision(
    ss: &SidecarSet,
    namespace: &str,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let data = revision_data(ss);
    // A JSON value always serializes.
    let raw = serde_json::to_vec(&data).unwrap_or_default();
    let hash = hash_revision(&raw, collision_count);
    let name = ss.metadata.name.clone().unwrap_or_default();
    let mut labels = ss.metadata.labels.clone().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_owned(), hash.clone());
    labels.insert(SIDECARSET_NAME_LABEL.to_owned(), name.clone());
    let owner = ss.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "apps.kruise.io/v1alpha1".into(),
        kind: "SidecarSet".into(),
        name: name.clone(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&name, &hash)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: ss.metadata.annotations.clone(),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// Drops nulls, empty objects and empty arrays, so that the same content written by OpenKruise
/// (Go emits `"resources":{}`) and by kruise-rs compares equal.
fn prune(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k.clone(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => (!a.is_empty())
            .then(|| Value::Array(a.iter().map(|v| prune(v).unwrap_or(Value::Null)).collect())),
        other => Some(other.clone()),
    }
}

/// Whether two revisions hold the same content.
pub fn equal_data(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let get = |r: &ControllerRevision| r.data.as_ref().and_then(|d| prune(&d.0));
    get(a) == get(b)
}

/// What to do about the latest revision.
#[derive(Clone, Debug, PartialEq)]
pub enum RevisionAction {
    /// The newest revision already holds the spec.
    Reuse(String),
    /// An older revision holds the spec: renumber it as the newest (a rollback).
    Renumber {
        /// Its name.
        name: String,
        /// The new `.revision`.
        revision: i64,
    },
    /// Create this revision (on a name clash with other content: bump the collision count, retry).
    Create(Box<ControllerRevision>),
}

/// The latest-revision plan.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionPlan {
    /// Reuse, renumber or create.
    pub action: RevisionAction,
    /// Set the custom-version label to this value on the latest revision afterwards.
    pub custom_version: Option<String>,
}

/// The SidecarSet's custom version (v1alpha1: its `apps.kruise.io/sidecarset-custom-version` label).
pub fn custom_version(ss: &SidecarSet) -> Option<&str> {
    ss.metadata
        .labels
        .as_ref()?
        .get(SIDECARSET_CUSTOM_VERSION_LABEL)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Sorts revisions by `.revision`, then name.
pub fn sort_revisions(revs: &mut [ControllerRevision]) {
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// `registerLatestRevision`'s decision over this SidecarSet's `existing` revisions (any order).
pub fn plan_revision(
    ss: &SidecarSet,
    existing: &[ControllerRevision],
    namespace: &str,
) -> RevisionPlan {
    let mut revs = existing.to_vec();
    sort_revisions(&mut revs);
    let next = revs.last().map_or(1, |r| r.revision + 1);
    let collision = ss
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let candidate = new_revision(ss, namespace, next, Some(collision));
    let equal = revs.iter().rposition(|r| equal_data(r, &candidate));
    let action = match equal.map(|i| (i, &revs[i])) {
        Some((i, r)) if i + 1 == revs.len() => {
            RevisionAction::Reuse(r.metadata.name.clone().unwrap_or_default())
        }
        Some((_, r)) => RevisionAction::Renumber {
            name: r.metadata.name.clone().unwrap_or_default(),
            revision: next,
        },
        None => RevisionAction::Create(Box::new(candidate)),
    };
    let latest_label = match &action {
        RevisionAction::Reuse(n) | RevisionAction::Renumber { name: n, .. } => revs
            .iter()
            .find(|r| r.metadata.name.as_ref() == Some(n))
            .and_then(|r| r.metadata.labels.as_ref())
            .and_then(|l| l.get(SIDECARSET_CUSTOM_VERSION_LABEL))
            .cloned(),
        RevisionAction::Create(r) => r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SIDECARSET_CUSTOM_VERSION_LABEL))
            .cloned(),
    };
    let custom_version = custom_version(ss)
        .filter(|v| latest_label.as_deref() != Some(*v))
        .map(str::to_owned);
    RevisionPlan {
        action,
        custom_version,
    }
}

/// Revisions still in use: those recorded on pods, the pinned `revisionName`, and the newest revision
/// with the pinned `customVersion`.
pub fn active_revisions(
    ss: &SidecarSet,
    revisions: &[ControllerRevision],
    recorded_on_pods: impl IntoIterator<Item = String>,
) -> BTreeSet<String> {
    let mut active: BTreeSet<String> = recorded_on_pods
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(pin) = ss
        .spec
        .injection_strategy
        .as_ref()
        .and_then(|i| i.revision.as_ref())
    {
        if let Some(n) = &pin.revision_name {
            active.insert(n.clone());
        }
        if let Some(v) = &pin.custom_version {
            let newest = revisions
                .iter()
                .filter(|r| {
                    r.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SIDECARSET_CUSTOM_VERSION_LABEL))
                        == Some(v)
                })
                .max_by_key(|r| r.revision);
            if let Some(n) = newest.and_then(|r| r.metadata.name.clone()) {
                active.insert(n);
            }
        }
    }
    active
}

/// `truncateHistory`: names of revisions to delete, oldest first, never the newest nor an active
/// one, until at most `max(1, revisionHistoryLimit)` remain (fewer deletions if that is impossible).
pub fn revisions_to_delete(
    ss: &SidecarSet,
    revisions: &[ControllerRevision],
    active: &BTreeSet<String>,
) -> Vec<String> {
    let limit = ss
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .max(1);
    let limit = usize::try_from(limit).unwrap_or(1);
    let mut revs = revisions.to_vec();
    sort_revisions(&mut revs);
    let Some(excess) = revs.len().checked_sub(limit).filter(|n| *n > 0) else {
        return Vec::new();
    };
    revs.pop(); // the newest is never deleted
    revs.iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| !active.contains(n))
        .take(excess)
        .collect()
}

/// Names of revisions recorded in the pods' hash annotations for SidecarSet `ss_name`.
pub fn recorded_revisions<'a>(
    ss_name: &'a str,
    pods: impl IntoIterator<Item = &'a k8s_openapi::api::core::v1::Pod> + 'a,
) -> impl Iterator<Item = String> + 'a {
    pods.into_iter().filter_map(move |p| {
        super::pod::pod_hash_map(p, kruise_crds::keys::sidecarset::SIDECARSET_HASH)
            .remove(ss_name)
            .map(|s| s.controller_revision)
    })
}

#[cfg(test)]
mod tests {
    use super::super::pod::testutil::*;
    use super::*;
    use kruise_crds::sidecarset::{SidecarSetInjectRevision, SidecarSetInjectionStrategy};
    use std::collections::BTreeMap;

    fn ss_with_image(image: &str) -> SidecarSet {
        let mut ss = mk_ss("h", "w", image);
        ss.metadata.uid = Some("uid-1".into());
        ss.metadata.labels = Some(BTreeMap::from([("team".into(), "a".into())]));
        ss
    }

    #[test]
    fn safe_encode_and_fnv() {
        // FNV-32a of "" is the offset basis 2166136261; safe-encoded digit by digit.
        assert_eq!(hash_revision(b"", None), safe_encode("2166136261"));
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        // The collision count changes the hash.
        assert_ne!(hash_revision(b"x", Some(0)), hash_revision(b"x", Some(1)));
        assert_eq!(revision_name(&"a".repeat(300), "h").len(), 225);
    }

    #[test]
    fn data_shape_and_labels() {
        let ss = ss_with_image("img:1");
        let r = new_revision(&ss, "kruise-system", 1, Some(0));
        let d = &r.data.as_ref().unwrap().0;
        let spec = d["spec"].as_object().unwrap();
        let keys: Vec<&str> = spec.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "$patch",
                "containers",
                "imagePullSecrets",
                "initContainers",
                "patchPodMetadata",
                "volumes"
            ]
        );
        assert_eq!(spec["volumes"], Value::Null);
        assert_eq!(spec["containers"][0]["image"], "img:1");
        let l = r.metadata.labels.as_ref().unwrap();
        assert_eq!(l["kruise.io/sidecarset-name"], "test-sidecarset");
        assert_eq!(l["team"], "a");
        assert!(l.contains_key("controller-revision-hash"));
        assert_eq!(r.metadata.namespace.as_deref(), Some("kruise-system"));
        assert_eq!(
            r.metadata.annotations.as_ref().unwrap()["kruise.io/sidecarset-hash"],
            "h"
        );
        let name = r.metadata.name.clone().unwrap();
        assert!(name.starts_with("test-sidecarset-"));
        // Deterministic.
        assert_eq!(
            new_revision(&ss, "kruise-system", 1, Some(0)).metadata.name,
            Some(name)
        );
    }

    fn numbered(ss: &SidecarSet, n: i64) -> ControllerRevision {
        let mut r = new_revision(ss, "ns", n, Some(0));
        r.metadata.name = Some(format!("rev-{n}"));
        r
    }

    #[test]
    fn plan_reuse_renumber_create() {
        let v1 = ss_with_image("img:1");
        let v2 = ss_with_image("img:2");
        let revs = vec![numbered(&v1, 1), numbered(&v2, 2)];
        assert_eq!(
            plan_revision(&v2, &revs, "ns").action,
            RevisionAction::Reuse("rev-2".into())
        );
        assert_eq!(
            plan_revision(&v1, &revs, "ns").action,
            RevisionAction::Renumber {
                name: "rev-1".into(),
                revision: 3
            }
        );
        match plan_revision(&ss_with_image("img:3"), &revs, "ns").action {
            RevisionAction::Create(r) => assert_eq!(r.revision, 3),
            other => panic!("unexpected {other:?}"),
        }
        match plan_revision(&v1, &[], "ns").action {
            RevisionAction::Create(r) => assert_eq!(r.revision, 1),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn go_written_revision_with_empty_structs_is_equal() {
        let ss = ss_with_image("img:1");
        let mut go = numbered(&ss, 1);
        go.data = Some(RawExtension(
            serde_json::json!({"spec":{"$patch":"replace","containers":[{"name":"test-sidecar","image":"img:1","resources":{},"upgradeStrategy":{},"shareVolumePolicy":{}}],"imagePullSecrets":null,"initContainers":null,"patchPodMetadata":null,"volumes":null}}),
        ));
        assert_eq!(
            plan_revision(&ss, &[go], "ns").action,
            RevisionAction::Reuse("rev-1".into())
        );
    }

    #[test]
    fn custom_version_label_plan() {
        let mut ss = ss_with_image("img:1");
        ss.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SIDECARSET_CUSTOM_VERSION_LABEL.into(), "v1".into());
        let existing = numbered(&ss_with_image("img:1"), 1);
        let plan = plan_revision(&ss, &[existing], "ns");
        assert_eq!(plan.custom_version.as_deref(), Some("v1"));
        let labelled = numbered(&ss, 1);
        assert_eq!(plan_revision(&ss, &[labelled], "ns").custom_version, None);
    }

    #[test]
    fn truncation_keeps_newest_and_active() {
        let ss = ss_with_image("img:1");
        // 15 revisions, limit 10: delete 1..5.
        let revs: Vec<ControllerRevision> = (1..=15).map(|n| numbered(&ss, n)).collect();
        let del = revisions_to_delete(&ss, &revs, &BTreeSet::new());
        assert_eq!(del, vec!["rev-1", "rev-2", "rev-3", "rev-4", "rev-5"]);
        // rev-2 active: skip it, delete rev-6 instead.
        let active = BTreeSet::from(["rev-2".to_owned()]);
        let del = revisions_to_delete(&ss, &revs, &active);
        assert_eq!(del, vec!["rev-1", "rev-3", "rev-4", "rev-5", "rev-6"]);
        // Negative limit counts as 1; the newest stays.
        let mut ss1 = ss.clone();
        ss1.spec.revision_history_limit = Some(-3);
        let del = revisions_to_delete(&ss1, &revs[..3], &BTreeSet::new());
        assert_eq!(del, vec!["rev-1", "rev-2"]);
        // Renumbered rollback: rev-12 became 16 → kept, 6..11,13..16 remain.
        let mut revs16: Vec<ControllerRevision> = (1..=15).map(|n| numbered(&ss, n)).collect();
        revs16[11].revision = 16;
        let del = revisions_to_delete(&ss, &revs16, &BTreeSet::new());
        assert_eq!(del, vec!["rev-1", "rev-2", "rev-3", "rev-4", "rev-5"]);
    }

    #[test]
    fn active_set() {
        let mut ss = ss_with_image("img:1");
        let mut r3 = numbered(&ss, 3);
        r3.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SIDECARSET_CUSTOM_VERSION_LABEL.into(), "cv".into());
        let mut r2 = numbered(&ss, 2);
        r2.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SIDECARSET_CUSTOM_VERSION_LABEL.into(), "cv".into());
        ss.spec.injection_strategy = Some(SidecarSetInjectionStrategy {
            paused: None,
            revision: Some(SidecarSetInjectRevision {
                custom_version: Some("cv".into()),
                revision_name: Some("rev-1".into()),
                policy: None,
            }),
        });
        let a = active_revisions(&ss, &[r2, r3], ["rev-9".to_owned(), String::new()]);
        assert_eq!(
            a,
            BTreeSet::from(["rev-1".to_owned(), "rev-3".to_owned(), "rev-9".to_owned()])
        );
    }
}
