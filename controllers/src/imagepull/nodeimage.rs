//! NodeImage planning (spec `imagepull.md` §3): one NodeImage per ready Node (created after a
//! delay, deleted with the Node), Node labels copied, tags garbage-collected (owner gone, TTL,
//! vanished secrets), and tags failed when the daemon does not answer. Pure; applied in `mod.rs`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::keys::imagepull as keys;
use kruise_crds::keys::{CONDITION_FALSE, CONDITION_TRUE};
use kruise_crds::{
    ImagePullPhase, ImageStatus, ImageTagStatus, NodeImage, NodeImageSpec, NodeImageStatus,
};
use kruise_webhook::imagepull::reference::join_name_tag;
use std::collections::BTreeMap;
use std::time::Duration;

/// Wait after a Node turns Ready before its NodeImage is created (`--nodeimage-creation-delay`).
pub const CREATION_DELAY: Duration = Duration::from_secs(30);
/// How long the daemon may stay silent about a tag before the controller fails it.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);

/// What to do about a Node's NodeImage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Nothing.
    Nothing,
    /// Create the NodeImage now.
    Create,
    /// The Node is Ready but too recently: look again then.
    CreateAfter(Duration),
    /// The Node is gone: delete the NodeImage.
    Delete,
}

/// Whether a Node is a virtual-kubelet node (no NodeImage for those).
pub fn is_virtual(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::VIRTUAL_KUBELET_LABEL))
        .is_some_and(|v| v == keys::VIRTUAL_KUBELET_LABEL_VALUE)
}

/// Whether a NodeImage is a fake one (kept without a Node).
pub fn is_fake(ni: &NodeImage) -> bool {
    ni.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(keys::FAKE_NODE_IMAGE_LABEL))
}

/// Lifecycle of the NodeImage of one Node (§3.1).
pub fn plan_lifecycle(
    node: Option<&Node>,
    node_image: Option<&NodeImage>,
    now: Timestamp,
) -> Lifecycle {
    let node = node.filter(|n| n.metadata.deletion_timestamp.is_none());
    match (node, node_image) {
        (None, Some(ni)) if !is_fake(ni) && ni.metadata.deletion_timestamp.is_none() => {
            Lifecycle::Delete
        }
        (None, _) | (Some(_), Some(_)) => Lifecycle::Nothing,
        (Some(n), None) => {
            if is_virtual(n) {
                return Lifecycle::Nothing;
            }
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .filter(|c| c.status == CONDITION_TRUE);
            let Some(ready) = ready else {
                return Lifecycle::Nothing;
            };
            let since = ready
                .last_transition_time
                .as_ref()
                .map_or(Duration::MAX, |t| since(t, now));
            if since >= CREATION_DELAY {
                Lifecycle::Create
            } else {
                Lifecycle::CreateAfter(CREATION_DELAY - since)
            }
        }
    }
}

fn since(t: &Time, now: Timestamp) -> Duration {
    let ms = now.duration_since(t.0).as_millis();
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Whether an owner ImagePullJob still exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Exists, with this uid (secrets: uid unused).
    Found(String),
    /// Definitely gone.
    NotFound,
    /// Could not tell (API error): keep the reference.
    Unknown,
}

/// Result of [`maintain_spec`].
#[derive(Clone, Debug, PartialEq)]
pub struct SpecPlan {
    /// The spec to write.
    pub spec: NodeImageSpec,
    /// The labels to write (the Node's).
    pub labels: BTreeMap<String, String>,
    /// Whether spec or labels changed (then write and stop this round).
    pub changed: bool,
    /// Earliest TTL expiry still to come.
    pub requeue: Option<Duration>,
    /// `(image, tag)` removed, for events.
    pub removed: Vec<(String, String)>,
}

fn is_job_ref(o: &ObjectReference) -> bool {
    o.kind.as_deref() == Some(keys::IMAGE_PULL_JOB_KIND)
        && o.api_version
            .as_deref()
            .is_some_and(|v| v.split('/').next() == Some(kruise_crds::GROUP))
}

/// Spec maintenance (§3.2): labels, tags without `createdAt`, owner GC, TTL, vanished non-batch
/// secrets, empty images. `job(ns, name)` and `secret(ns, name)` look objects up.
pub fn maintain_spec(
    ni: &NodeImage,
    node_labels: &BTreeMap<String, String>,
    job: impl Fn(&str, &str) -> Lookup,
    secret: impl Fn(&str, &str) -> Lookup,
    now: Timestamp,
) -> SpecPlan {
    let mut spec = ni.spec.clone();
    let mut requeue: Option<Duration> = None;
    let mut removed = Vec::new();
    let statuses = ni.status.as_ref().and_then(|s| s.image_statuses.as_ref());
    if let Some(images) = spec.images.as_mut() {
        for (name, image) in images.iter_mut() {
            image.tags.retain_mut(|tag| {
                if tag.created_at.is_none() {
                    removed.push((name.clone(), tag.tag.clone()));
                    return false;
                }
                if let Some(refs) = tag.owner_references.as_mut()
                    && !refs.is_empty()
                {
                    refs.retain(|o| {
                        if !is_job_ref(o) {
                            return true;
                        }
                        let ns = o.namespace.as_deref().unwrap_or_default();
                        let n = o.name.as_deref().unwrap_or_default();
                        match job(ns, n) {
                            Lookup::NotFound => false,
                            Lookup::Found(uid) => o.uid.as_deref().is_none_or(|u| u == uid),
                            Lookup::Unknown => true,
                        }
                    });
                    if refs.is_empty() {
                        removed.push((name.clone(), tag.tag.clone()));
                        return false;
                    }
                }
                let ttl = tag
                    .pull_policy
                    .as_ref()
                    .and_then(|p| p.ttl_seconds_after_finished);
                let done = statuses
                    .and_then(|m| m.get(name))
                    .and_then(|s| {
                        s.tags.iter().find(|s| {
                            s.tag == tag.tag && s.version.unwrap_or(0) == tag.version.unwrap_or(0)
                        })
                    })
                    .and_then(|s| s.completion_time.as_ref());
                if let (Some(ttl), Some(done)) = (ttl, done) {
                    let ttl = Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
                    let age = since(done, now);
                    if age >= ttl {
                        removed.push((name.clone(), tag.tag.clone()));
                        return false;
                    }
                    let left = ttl - age;
                    requeue = Some(requeue.map_or(left, |r| r.min(left)));
                }
                true
            });
            if let Some(secrets) = image.pull_secrets.as_mut() {
                secrets.retain(|s| {
                    s.mode.as_deref() == Some(keys::PULL_SECRET_MODE_BATCH)
                        || secret(
                            s.namespace.as_deref().unwrap_or_default(),
                            s.name.as_deref().unwrap_or_default(),
                        ) != Lookup::NotFound
                });
                if secrets.is_empty() {
                    image.pull_secrets = None;
                }
            }
        }
        images.retain(|_, i| !i.tags.is_empty());
    }
    let labels = node_labels.clone();
    let changed = spec != ni.spec || ni.metadata.labels.clone().unwrap_or_default() != labels;
    SpecPlan {
        spec,
        labels,
        changed,
        requeue,
        removed,
    }
}

/// A tag the controller failed because the daemon did not finish it in time.
#[derive(Clone, Debug, PartialEq)]
pub struct TagFailure {
    /// Image name (NodeImage key).
    pub image: String,
    /// Tag or digest.
    pub tag: String,
    /// Why.
    pub message: String,
    /// The tag's owners (they get a Warning event too).
    pub owners: Vec<ObjectReference>,
}

impl TagFailure {
    /// Event note, OpenKruise's wording: `Failed to pull image <ref> on node <n> for <msg>`.
    pub fn note(&self, node: &str) -> String {
        format!(
            "Failed to pull image {} on node {node} for {}",
            join_name_tag(&self.image, &self.tag),
            self.message
        )
    }
}

/// Result of [`maintain_status`].
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPlan {
    /// The new status when it changed.
    pub status: Option<NodeImageStatus>,
    /// Tags failed this round (for events).
    pub failures: Vec<TagFailure>,
    /// Earliest timer still pending.
    pub requeue: Option<Duration>,
}

/// Status maintenance (§3.3): fail tags the daemon ignored for [`RESPONSE_TIMEOUT`], or whose
/// `activeDeadlineSeconds` (+ the response timeout) passed.
pub fn maintain_status(ni: &NodeImage, now: Timestamp) -> StatusPlan {
    let old = ni.status.clone().unwrap_or_default();
    let mut statuses = old.image_statuses.clone().unwrap_or_default();
    let mut failures = Vec::new();
    let mut requeue: Option<Duration> = None;
    let mut wait = |d: Duration| requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
    let empty = BTreeMap::new();
    let spec_images = ni.spec.images.as_ref().unwrap_or(&empty);
    for (name, image) in spec_images {
        for tag in &image.tags {
            let Some(created) = tag.created_at.as_ref() else {
                continue;
            };
            let version = tag.version.unwrap_or(0);
            let age = since(created, now);
            let entry = statuses
                .entry(name.clone())
                .or_insert_with(|| ImageStatus { tags: vec![] });
            let current = entry.tags.iter().position(|s| s.tag == tag.tag);
            let fail_with = match current.map(|i| &entry.tags[i]) {
                Some(s) if s.version.unwrap_or(0) == version => {
                    if s.completion_time.is_some() {
                        None
                    } else if let Some(d) = tag
                        .pull_policy
                        .as_ref()
                        .and_then(|p| p.active_deadline_seconds)
                    {
                        let limit =
                            Duration::from_secs(u64::try_from(d).unwrap_or(0)) + RESPONSE_TIMEOUT;
                        if age < limit {
                            wait(limit - age);
                            None
                        } else {
                            Some(keys::MESSAGE_PULL_DEADLINE_EXCEEDED)
                        }
                    } else {
                        None
                    }
                }
                _ => {
                    if age < RESPONSE_TIMEOUT {
                        wait(RESPONSE_TIMEOUT - age);
                        None
                    } else {
                        Some(keys::MESSAGE_NODE_NOT_RESPONDING)
                    }
                }
            };
            let Some(msg) = fail_with else { continue };
            let failed = ImageTagStatus {
                tag: tag.tag.clone(),
                phase: ImagePullPhase::Failed,
                progress: None,
                start_time: current.and_then(|i| entry.tags[i].start_time.clone()),
                completion_time: Some(Time(now)),
                version: Some(version),
                image_id: None,
                message: Some(msg.to_string()),
            };
            match current {
                Some(i) => entry.tags[i] = failed,
                None => entry.tags.push(failed),
            }
            failures.push(TagFailure {
                image: name.clone(),
                tag: tag.tag.clone(),
                message: msg.to_string(),
                owners: tag.owner_references.clone().unwrap_or_default(),
            });
        }
    }
    if failures.is_empty() {
        return StatusPlan {
            status: None,
            failures,
            requeue,
        };
    }
    // Keep only statuses of tags still in the spec, sorted, and recount.
    statuses.retain(|name, st| {
        let Some(spec) = spec_images.get(name) else {
            return false;
        };
        st.tags.retain(|s| spec.tags.iter().any(|t| t.tag == s.tag));
        st.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
        !st.tags.is_empty()
    });
    let count = |p: ImagePullPhase| {
        statuses
            .values()
            .flat_map(|s| &s.tags)
            .filter(|t| t.phase == p)
            .count() as i32
    };
    let mut status = NodeImageStatus {
        desired: spec_images.values().map(|i| i.tags.len() as i32).sum(),
        succeeded: Some(count(ImagePullPhase::Succeeded)),
        failed: Some(count(ImagePullPhase::Failed)),
        pulling: Some(count(ImagePullPhase::Pulling)),
        ..old
    };
    status.image_statuses = (!statuses.is_empty()).then_some(statuses);
    status.observed_generation = ni.metadata.generation;
    let synced = synced(&ni.spec, &status);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    super::set_condition(
        conds,
        keys::CONDITION_NODE_IMAGE_SYNCED,
        if synced {
            CONDITION_TRUE
        } else {
            CONDITION_FALSE
        },
        if synced { "AllFinished" } else { "Pulling" },
        "",
        ni.metadata.generation,
        now,
    );
    StatusPlan {
        status: Some(status),
        failures,
        requeue,
    }
}

/// Whether every spec tag has a finished status at its current version (the `Synced` condition).
pub fn synced(spec: &NodeImageSpec, status: &NodeImageStatus) -> bool {
    spec.images.iter().flatten().all(|(name, image)| {
        image.tags.iter().all(|t| {
            status
                .image_statuses
                .as_ref()
                .and_then(|m| m.get(name))
                .and_then(|s| s.tags.iter().find(|s| s.tag == t.tag))
                .is_some_and(|s| {
                    s.version.unwrap_or(0) == t.version.unwrap_or(0) && s.completion_time.is_some()
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use kruise_crds::{ImageSpec, ImageTagPullPolicy, ImageTagSpec, ReferenceObject};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn node(ready: Option<(&str, i64)>, labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n.status = Some(NodeStatus {
            conditions: ready.map(|(st, at)| {
                vec![NodeCondition {
                    type_: "Ready".into(),
                    status: st.into(),
                    last_transition_time: Some(Time(t(at))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        n
    }

    #[test]
    fn lifecycle_table() {
        let ni = NodeImage::new("n1", NodeImageSpec::default());
        let mut fake = ni.clone();
        fake.metadata.labels = Some(BTreeMap::from([(
            keys::FAKE_NODE_IMAGE_LABEL.to_string(),
            "true".to_string(),
        )]));
        let mut deleting = node(Some(("True", 0)), &[]);
        deleting.metadata.deletion_timestamp = Some(Time(t(0)));
        let cases: Vec<(&str, Option<Node>, Option<&NodeImage>, Lifecycle)> = vec![
            ("node gone", None, Some(&ni), Lifecycle::Delete),
            (
                "node deleting",
                Some(deleting),
                Some(&ni),
                Lifecycle::Delete,
            ),
            ("fake kept", None, Some(&fake), Lifecycle::Nothing),
            ("both gone", None, None, Lifecycle::Nothing),
            (
                "ready long ago",
                Some(node(Some(("True", -100)), &[])),
                None,
                Lifecycle::Create,
            ),
            (
                "ready 10 s ago",
                Some(node(Some(("True", -10)), &[])),
                None,
                Lifecycle::CreateAfter(Duration::from_secs(20)),
            ),
            (
                "not ready",
                Some(node(Some(("False", -100)), &[])),
                None,
                Lifecycle::Nothing,
            ),
            (
                "no conditions",
                Some(node(None, &[])),
                None,
                Lifecycle::Nothing,
            ),
            (
                "virtual kubelet",
                Some(node(Some(("True", -100)), &[("type", "virtual-kubelet")])),
                None,
                Lifecycle::Nothing,
            ),
            (
                "exists",
                Some(node(Some(("True", -100)), &[])),
                Some(&ni),
                Lifecycle::Nothing,
            ),
        ];
        for (name, n, ni, want) in cases {
            assert_eq!(plan_lifecycle(n.as_ref(), ni, t(0)), want, "{name}");
        }
    }

    fn job_ref(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("apps.kruise.io/v1beta1".into()),
            kind: Some("ImagePullJob".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn tag(
        tag: &str,
        version: i64,
        owners: Vec<ObjectReference>,
        created: Option<i64>,
        ttl: Option<i32>,
        deadline: Option<i64>,
    ) -> ImageTagSpec {
        ImageTagSpec {
            tag: tag.into(),
            version: Some(version),
            owner_references: Some(owners),
            created_at: created.map(|c| Time(t(c))),
            pull_policy: Some(ImageTagPullPolicy {
                ttl_seconds_after_finished: ttl,
                active_deadline_seconds: deadline,
                ..Default::default()
            }),
            image_pull_policy: None,
        }
    }

    fn st(tag: &str, version: i64, phase: ImagePullPhase, done: Option<i64>) -> ImageTagStatus {
        ImageTagStatus {
            tag: tag.into(),
            phase,
            progress: None,
            start_time: None,
            completion_time: done.map(|d| Time(t(d))),
            version: Some(version),
            image_id: None,
            message: None,
        }
    }

    fn node_image(
        images: Vec<(&str, Vec<ImageTagSpec>, Vec<ReferenceObject>)>,
        statuses: Vec<(&str, Vec<ImageTagStatus>)>,
    ) -> NodeImage {
        let mut ni = NodeImage::new(
            "n1",
            NodeImageSpec {
                images: Some(
                    images
                        .into_iter()
                        .map(|(n, tags, secrets)| {
                            (
                                n.to_string(),
                                ImageSpec {
                                    tags,
                                    pull_secrets: (!secrets.is_empty()).then_some(secrets),
                                    sandbox_config: None,
                                },
                            )
                        })
                        .collect(),
                ),
            },
        );
        ni.status = Some(NodeImageStatus {
            image_statuses: Some(
                statuses
                    .into_iter()
                    .map(|(n, tags)| (n.to_string(), ImageStatus { tags }))
                    .collect(),
            ),
            ..Default::default()
        });
        ni
    }

    #[test]
    fn spec_gc_table() {
        use ImagePullPhase::*;
        let secret = |name: &str, mode: Option<&str>| ReferenceObject {
            namespace: Some("kruise-daemon-config".into()),
            name: Some(name.into()),
            mode: mode.map(String::from),
        };
        let ni = node_image(
            vec![
                (
                    "nginx",
                    vec![
                        tag(
                            "a",
                            1,
                            vec![job_ref("live", "u1")],
                            Some(0),
                            Some(100),
                            None,
                        ), // kept, TTL pending
                        tag("b", 1, vec![job_ref("gone", "u2")], Some(0), None, None), // owner gone
                        tag(
                            "c",
                            1,
                            vec![job_ref("live", "old-uid")],
                            Some(0),
                            None,
                            None,
                        ), // uid mismatch
                        tag("d", 1, vec![job_ref("live", "u1")], None, None, None), // no createdAt
                        tag("e", 2, vec![job_ref("live", "u1")], Some(0), Some(10), None), // TTL passed
                        tag("f", 0, vec![], Some(0), None, None), // no owners: kept
                        tag("g", 1, vec![job_ref("err", "u3")], Some(0), None, None), // lookup error: kept
                    ],
                    vec![
                        secret("s-batch", Some("batch")),
                        secret("s-legacy-gone", None),
                        secret("s-legacy", None),
                    ],
                ),
                (
                    "busybox",
                    vec![tag(
                        "x",
                        0,
                        vec![job_ref("gone", "u2")],
                        Some(0),
                        None,
                        None,
                    )],
                    vec![],
                ),
            ],
            vec![(
                "nginx",
                vec![
                    st("a", 1, Succeeded, Some(50)),
                    st("e", 2, Succeeded, Some(0)),
                    st("e", 1, Succeeded, Some(-1)),
                ],
            )],
        );
        let node_labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let plan = maintain_spec(
            &ni,
            &node_labels,
            |_, n| match n {
                "live" => Lookup::Found("u1".into()),
                "err" => Lookup::Unknown,
                _ => Lookup::NotFound,
            },
            |_, n| {
                if n == "s-legacy-gone" {
                    Lookup::NotFound
                } else {
                    Lookup::Found(String::new())
                }
            },
            t(60),
        );
        assert!(plan.changed);
        assert_eq!(plan.labels, node_labels);
        let images = plan.spec.images.as_ref().unwrap();
        assert!(!images.contains_key("busybox"));
        let tags: Vec<&str> = images["nginx"]
            .tags
            .iter()
            .map(|t| t.tag.as_str())
            .collect();
        assert_eq!(tags, vec!["a", "f", "g"]);
        let secrets: Vec<_> = images["nginx"]
            .pull_secrets
            .iter()
            .flatten()
            .map(|s| s.name.clone().unwrap())
            .collect();
        assert_eq!(secrets, vec!["s-batch", "s-legacy"]);
        assert_eq!(plan.requeue, Some(Duration::from_secs(90)));
        assert_eq!(plan.removed.len(), 5);
        // nothing to do: unchanged
        let mut clean = ni.clone();
        clean.spec = plan.spec.clone();
        clean.metadata.labels = Some(node_labels.clone());
        let again = maintain_spec(
            &clean,
            &node_labels,
            |_, n| match n {
                "err" => Lookup::Unknown,
                _ => Lookup::Found("u1".into()),
            },
            |_, _| Lookup::Found(String::new()),
            t(60),
        );
        assert!(!again.changed);
    }

    #[test]
    fn status_timeouts() {
        use ImagePullPhase::*;
        let owner = job_ref("live", "u1");
        let ni = node_image(
            vec![(
                "nginx",
                vec![
                    tag("silent", 1, vec![owner.clone()], Some(0), Some(1), None), // no status, 10 min passed
                    tag("stale", 2, vec![owner.clone()], Some(500), Some(1), None), // status of v1 only, 100 s left
                    tag("slow", 1, vec![owner.clone()], Some(0), Some(1), Some(60)), // pulling past deadline + 10 min
                    tag("ok", 1, vec![owner.clone()], Some(0), Some(1), Some(60)),   // finished
                ],
                vec![],
            )],
            vec![(
                "nginx",
                vec![
                    st("stale", 1, Succeeded, Some(1)),
                    st("slow", 1, Pulling, None),
                    st("ok", 1, Succeeded, Some(5)),
                    st("removed", 1, Succeeded, Some(5)),
                ],
            )],
        );
        let plan = maintain_status(&ni, t(700));
        let msgs: Vec<(&str, &str)> = plan
            .failures
            .iter()
            .map(|f| (f.tag.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(
            msgs,
            vec![
                ("silent", keys::MESSAGE_NODE_NOT_RESPONDING),
                ("slow", keys::MESSAGE_PULL_DEADLINE_EXCEEDED),
            ]
        );
        assert_eq!(plan.failures[0].owners, vec![owner]);
        assert_eq!(
            plan.failures[0].note("n1"),
            "Failed to pull image nginx:silent on node n1 for node has not responded for a long time"
        );
        assert_eq!(plan.requeue, Some(Duration::from_secs(400)));
        let s = plan.status.unwrap();
        assert_eq!(s.desired, 4);
        assert_eq!(
            (s.succeeded, s.failed, s.pulling),
            (Some(2), Some(2), Some(0))
        );
        let tags: Vec<(&str, ImagePullPhase, Option<i64>)> =
            s.image_statuses.as_ref().unwrap()["nginx"]
                .tags
                .iter()
                .map(|t| (t.tag.as_str(), t.phase, t.version))
                .collect();
        assert_eq!(
            tags,
            vec![
                ("ok", Succeeded, Some(1)),
                ("silent", Failed, Some(1)),
                ("slow", Failed, Some(1)),
                ("stale", Succeeded, Some(1))
            ]
        );
        // not synced: "stale" answers version 1 but the spec asks for 2
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str()),
            (keys::CONDITION_NODE_IMAGE_SYNCED, CONDITION_FALSE)
        );
        // before any timer fires nothing is written
        let early = maintain_status(&ni, t(30));
        assert_eq!(early.status, None);
        assert_eq!(early.requeue, Some(Duration::from_secs(570)));
    }
}
