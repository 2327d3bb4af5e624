//! Image pre-download before in-place updates (spec §12): when a CloneSet moves to a new revision
//! that it will update in place over several batches, one ImagePullJob per changed container image
//! warms the nodes of the pods still on old revisions. Pure planner; `reconcile` applies the plan.

use super::diff::scaled_value;
use super::revision::{controller_ref, revision_hash};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::{self, cloneset as ck};
use kruise_crds::{
    CloneSet, CloneSetSpec, CompletionPolicy, CompletionPolicyType, ImagePullJob,
    ImagePullJobPodSelector, ImagePullJobSpec, ImagePullJobTemplate, PullPolicy, SandboxConfig,
};
use std::collections::BTreeMap;

/// A CloneSet with at most this many replicas never pre-downloads (OpenKruise's threshold).
pub const MIN_REPLICAS_TO_PREDOWNLOAD: i32 = 3;
/// Per-pull timeout of the jobs when the CloneSet does not set one (OpenKruise's code default).
pub const DEFAULT_PULL_TIMEOUT_SECONDS: i32 = 300;
/// Retries of a failed pull in the jobs.
pub const PULL_BACKOFF_LIMIT: i32 = 1;
/// Seconds a finished job stays before the ImagePullJob controller deletes it.
pub const JOB_TTL_SECONDS_AFTER_FINISHED: i32 = 600;
/// Event reason after a job was created.
pub const EVENT_CREATED_JOB: &str = "CreatedImagePullJob";
/// Event reason when a job could not be created (a Normal event, as in OpenKruise).
pub const EVENT_FAILED_CREATE_JOB: &str = "FailedCreateImagePullJob";

/// What the pre-download step wants done in this reconcile.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Nothing: revisions converged with no job left, or this revision was already handled.
    Idle,
    /// `image-predownload-min-updated-ready-pods` is not reached yet.
    Wait {
        /// Updated ready pods now.
        ready: i32,
        /// Updated ready pods wanted.
        want: i32,
    },
    /// Label the update revision `image-predownload-ignored` (why: for the log).
    Ignore {
        /// The update revision's name.
        revision: String,
        /// Why pre-download does not apply.
        why: &'static str,
    },
    /// Create these jobs (those already present in the cache are left out), then label the update
    /// revision `pre-predownload-created`.
    Create {
        /// The update revision's name.
        revision: String,
        /// Jobs to create.
        jobs: Vec<ImagePullJob>,
    },
    /// The revisions converged: delete the CloneSet's jobs.
    Delete {
        /// Names of the ImagePullJobs controller-owned by the CloneSet.
        jobs: Vec<String>,
    },
}

/// What the planner looks at.
pub struct Observed<'a> {
    /// The CloneSet.
    pub cs: &'a CloneSet,
    /// Name of the current revision.
    pub current: &'a str,
    /// The update revision object (its labels record whether it was handled).
    pub update: &'a ControllerRevision,
    /// Pod templates by revision name (the update revision maps to the live template).
    pub templates: &'a BTreeMap<String, PodTemplateSpec>,
    /// Names of the ImagePullJobs in the namespace controller-owned by the CloneSet.
    pub owned_jobs: &'a [String],
}

fn has_label(rev: &ControllerRevision, key: &str) -> bool {
    rev.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(key))
}

fn annotation<'a>(cs: &'a CloneSet, key: &str) -> Option<&'a str> {
    cs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// `intstr.Parse`: an integer when the text is one, else a string (maybe a percentage).
fn parse_int_or_string(s: &str) -> IntOrString {
    match s.parse::<i32>() {
        Ok(i) => IntOrString::Int(i),
        Err(_) => IntOrString::String(s.to_string()),
    }
}

/// Updated ready pods the CloneSet asks for before pre-downloading (annotation, int or percent of
/// replicas rounded up; unreadable counts as 0).
pub fn min_updated_ready(cs: &CloneSet) -> i32 {
    let replicas = cs.spec.replicas.unwrap_or(CloneSetSpec::DEFAULT_REPLICAS);
    annotation(cs, ck::IMAGE_PREDOWNLOAD_MIN_UPDATED_READY_PODS)
        .and_then(|s| scaled_value(&parse_int_or_string(s.trim()), replicas, true).ok())
        .unwrap_or(0)
}

/// Containers of `new` whose image differs from the same-named container of `old`, or that `old`
/// lacks: `(container, image)` in template order.
pub fn changed_images(old: &PodTemplateSpec, new: &PodTemplateSpec) -> Vec<(String, String)> {
    let old_images: BTreeMap<&str, Option<&str>> = old
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| (c.name.as_str(), c.image.as_deref()))
        .collect();
    new.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| {
            let image = c.image.clone()?;
            match old_images.get(c.name.as_str()) {
                Some(Some(o)) if *o == image => None,
                _ => Some((c.name.clone(), image)),
            }
        })
        .collect()
}

/// Why the CloneSet does not pre-download for this update at all, if so.
fn skip_reason(o: &Observed<'_>) -> Option<&'static str> {
    let cs = o.cs;
    let us = cs.spec.update_strategy.clone().unwrap_or_default();
    if !us.type_.unwrap_or_default().is_in_place() {
        return Some("the update type is not in-place");
    }
    let replicas = cs.spec.replicas.unwrap_or(CloneSetSpec::DEFAULT_REPLICAS);
    if replicas <= MIN_REPLICAS_TO_PREDOWNLOAD {
        return Some("replicas are too few");
    }
    let partition = us
        .partition
        .as_ref()
        .and_then(|p| scaled_value(p, replicas, true).ok())
        .unwrap_or(0);
    let default_mu = IntOrString::String(CloneSetSpec::DEFAULT_MAX_UNAVAILABLE.to_string());
    let max_unavailable = scaled_value(
        us.max_unavailable.as_ref().unwrap_or(&default_mu),
        replicas,
        false,
    )
    .unwrap_or(0);
    if partition == 0 && max_unavailable >= replicas {
        return Some("all pods update in one batch");
    }
    let update_name = o.update.metadata.name.as_deref().unwrap_or_default();
    let in_place = match (o.templates.get(o.current), o.templates.get(update_name)) {
        (Some(old), Some(new)) => {
            super::inplace::calculate_spec(old, new, update_name, 0).is_some()
        }
        _ => false,
    };
    if !in_place {
        return Some("the change cannot be applied in place");
    }
    None
}

/// The ImagePullJob that warms `image` (of `container`) for the update revision.
pub fn job_for(
    cs: &CloneSet,
    update: &ControllerRevision,
    container: &str,
    image: &str,
) -> ImagePullJob {
    let template = &cs.spec.template;
    let update_name = update.metadata.name.clone().unwrap_or_default();
    let hash = revision_hash(update);
    // Jobs carry the template labels so that, like every object the CloneSet owns, they match its
    // selector; the revision's short hash tells the jobs of different revisions apart.
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(ck::REVISION_SHORT_HASH_LABEL.to_string(), hash.clone());
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .filter(|a| !a.is_empty());
    // The nodes of pods not yet on the update revision (full name or short hash).
    let mut selector = cs.spec.selector.clone();
    selector
        .match_expressions
        .get_or_insert_default()
        .push(LabelSelectorRequirement {
            key: keys::CONTROLLER_REVISION_HASH_LABEL.to_string(),
            operator: "NotIn".to_string(),
            values: Some(vec![update_name.clone(), hash]),
        });
    let timeout = annotation(cs, ck::IMAGE_PREDOWNLOAD_TIMEOUT_SECONDS)
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(DEFAULT_PULL_TIMEOUT_SECONDS);
    let parallelism = annotation(cs, ck::IMAGE_PREDOWNLOAD_PARALLELISM)
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(kruise_crds::IMAGE_PULL_DEFAULT_PARALLELISM);
    let pull_secrets: Vec<String> = template
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    ImagePullJob {
        metadata: ObjectMeta {
            name: Some(format!("{update_name}-{container}")),
            namespace: cs.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_ref(cs)]),
            ..Default::default()
        },
        spec: ImagePullJobSpec {
            image: image.to_string(),
            template: ImagePullJobTemplate {
                pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
                pod_selector: Some(ImagePullJobPodSelector {
                    match_labels: selector.match_labels,
                    match_expressions: selector.match_expressions,
                }),
                parallelism: Some(IntOrString::Int(parallelism)),
                pull_policy: Some(PullPolicy {
                    timeout_seconds: Some(timeout),
                    backoff_limit: Some(PULL_BACKOFF_LIMIT),
                }),
                completion_policy: CompletionPolicy {
                    type_: Some(CompletionPolicyType::Always),
                    ttl_seconds_after_finished: Some(JOB_TTL_SECONDS_AFTER_FINISHED),
                    ..Default::default()
                },
                sandbox_config: Some(SandboxConfig {
                    labels: Some(labels),
                    annotations,
                }),
                ..Default::default()
            },
        },
        status: None,
    }
}

/// The pre-download step of one reconcile (only called when the feature gate is on).
pub fn plan(o: &Observed<'_>) -> Plan {
    let update_name = o.update.metadata.name.as_deref().unwrap_or_default();
    if o.current == update_name {
        if o.owned_jobs.is_empty() {
            return Plan::Idle;
        }
        return Plan::Delete {
            jobs: o.owned_jobs.to_vec(),
        };
    }
    let want = min_updated_ready(o.cs);
    let status = o.cs.status.clone().unwrap_or_default();
    // Updated pods of an older update revision do not count for a revision that just appeared.
    let ready = if status.update_revision.as_deref() == Some(update_name) {
        status.updated_ready_replicas
    } else {
        0
    };
    if want > ready {
        return Plan::Wait { ready, want };
    }
    if has_label(o.update, ck::IMAGE_PREDOWNLOAD_CREATED_LABEL)
        || has_label(o.update, ck::IMAGE_PREDOWNLOAD_IGNORED_LABEL)
    {
        return Plan::Idle;
    }
    if let Some(why) = skip_reason(o) {
        return Plan::Ignore {
            revision: update_name.to_string(),
            why,
        };
    }
    let (Some(old), Some(new)) = (o.templates.get(o.current), o.templates.get(update_name)) else {
        return Plan::Idle;
    };
    let jobs = changed_images(old, new)
        .into_iter()
        .map(|(container, image)| job_for(o.cs, o.update, &container, &image))
        .filter(|j| {
            j.metadata
                .name
                .as_ref()
                .is_none_or(|n| !o.owned_jobs.contains(n))
        })
        .collect();
    Plan::Create {
        revision: update_name.to_string(),
        jobs,
    }
}

/// Merge patch that labels a ControllerRevision `key: "true"`.
pub fn revision_label_patch(key: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"labels": {key: "true"}}})
}

/// Whether `job` is controller-owned by the CloneSet with `uid`.
pub fn owned_by(job: &ImagePullJob, uid: &str) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloneset::revision::new_revision;
    use k8s_openapi::api::core::v1::{Container, LocalObjectReference, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use kruise_crds::{CloneSetStatus, CloneSetUpdateStrategy, CloneSetUpdateStrategyType};

    fn template(images: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some([("note".to_string(), "x".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: images
                    .iter()
                    .map(|(n, i)| Container {
                        name: (*n).into(),
                        image: Some((*i).into()),
                        ..Default::default()
                    })
                    .collect(),
                image_pull_secrets: Some(vec![LocalObjectReference {
                    name: "regcred".into(),
                }]),
                ..Default::default()
            }),
        }
    }

    fn cloneset(replicas: i32, policy: CloneSetUpdateStrategyType) -> CloneSet {
        let mut cs = CloneSet::new(
            "web",
            CloneSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: template(&[("main", "reg/app:v2"), ("side", "reg/side:v1")]),
                update_strategy: Some(CloneSetUpdateStrategy {
                    type_: Some(policy),
                    partition: Some(IntOrString::Int(replicas / 2)),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        cs.metadata.namespace = Some("ns".into());
        cs.metadata.uid = Some("uid-1".into());
        cs
    }

    struct Fixture {
        cs: CloneSet,
        update: ControllerRevision,
        templates: BTreeMap<String, PodTemplateSpec>,
    }

    fn fixture(cs: CloneSet) -> Fixture {
        let update = new_revision(&cs, 2, 0);
        let mut templates = BTreeMap::new();
        templates.insert(
            "web-old".to_string(),
            template(&[("main", "reg/app:v1"), ("side", "reg/side:v1")]),
        );
        templates.insert(
            update.metadata.name.clone().unwrap_or_default(),
            cs.spec.template.clone(),
        );
        Fixture {
            cs,
            update,
            templates,
        }
    }

    /// A comparable one-line summary of a plan.
    fn sum(p: &Plan) -> String {
        match p {
            Plan::Idle => "idle".into(),
            Plan::Wait { ready, want } => format!("wait {ready}/{want}"),
            Plan::Ignore { revision, why } => format!("ignore {revision}: {why}"),
            Plan::Create { revision, jobs } => {
                let names: Vec<_> = jobs
                    .iter()
                    .filter_map(|j| j.metadata.name.clone())
                    .collect();
                format!("create {revision} {names:?}")
            }
            Plan::Delete { jobs } => format!("delete {jobs:?}"),
        }
    }

    fn run(f: &Fixture, current: &str, owned: &[String]) -> Plan {
        plan(&Observed {
            cs: &f.cs,
            current,
            update: &f.update,
            templates: &f.templates,
            owned_jobs: owned,
        })
    }

    #[test]
    fn creates_one_job_per_changed_image() {
        let f = fixture(cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible));
        let rev = f.update.metadata.name.clone().unwrap_or_default();
        let hash = revision_hash(&f.update);
        let Plan::Create { revision, jobs } = run(&f, "web-old", &[]) else {
            panic!("want Create, got {:?}", run(&f, "web-old", &[]));
        };
        assert_eq!(revision, rev);
        assert_eq!(jobs.len(), 1, "only the main container's image changed");
        let job = &jobs[0];
        assert_eq!(
            job.metadata.name.as_deref(),
            Some(format!("{rev}-main").as_str())
        );
        assert_eq!(job.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(job.spec.image, "reg/app:v2");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("CloneSet", "uid-1", Some(true))
        );
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[ck::REVISION_SHORT_HASH_LABEL], hash);
        let t = &job.spec.template;
        let ps = t.pod_selector.as_ref().unwrap();
        assert_eq!(ps.match_labels.as_ref().unwrap()["app"], "web");
        let expr = &ps.match_expressions.as_ref().unwrap()[0];
        assert_eq!(expr.key, "controller-revision-hash");
        assert_eq!(expr.operator, "NotIn");
        assert_eq!(expr.values, Some(vec![rev.clone(), hash]));
        assert_eq!(t.parallelism, Some(IntOrString::Int(1)));
        let pp = t.pull_policy.as_ref().unwrap();
        assert_eq!((pp.timeout_seconds, pp.backoff_limit), (Some(300), Some(1)));
        assert_eq!(
            t.completion_policy.type_,
            Some(CompletionPolicyType::Always)
        );
        assert_eq!(t.completion_policy.ttl_seconds_after_finished, Some(600));
        assert_eq!(t.pull_secrets, Some(vec!["regcred".to_string()]));
        let sb = t.sandbox_config.as_ref().unwrap();
        assert_eq!(sb.labels.as_ref(), Some(labels));
        assert_eq!(sb.annotations.as_ref().unwrap()["note"], "x");
        // Wire shape: v1alpha1 ImagePullJob with a podSelector and no node selector.
        let v = serde_json::to_value(job).unwrap();
        assert_eq!(v["apiVersion"], "apps.kruise.io/v1alpha1");
        assert_eq!(v["spec"]["podSelector"]["matchLabels"]["app"], "web");
        assert!(v["spec"].get("selector").is_none());
    }

    #[test]
    fn annotations_set_parallelism_and_timeout() {
        let mut cs = cloneset(10, CloneSetUpdateStrategyType::InPlaceOnly);
        cs.metadata.annotations = Some(
            [
                (
                    ck::IMAGE_PREDOWNLOAD_PARALLELISM.to_string(),
                    "5".to_string(),
                ),
                (
                    ck::IMAGE_PREDOWNLOAD_TIMEOUT_SECONDS.to_string(),
                    "42".to_string(),
                ),
            ]
            .into(),
        );
        let f = fixture(cs);
        let Plan::Create { jobs, .. } = run(&f, "web-old", &[]) else {
            panic!("want Create");
        };
        let t = &jobs[0].spec.template;
        assert_eq!(t.parallelism, Some(IntOrString::Int(5)));
        assert_eq!(t.pull_policy.as_ref().unwrap().timeout_seconds, Some(42));
    }

    #[test]
    fn new_containers_count_as_changed() {
        let old = template(&[("main", "a:1")]);
        let new = template(&[("main", "a:1"), ("extra", "b:1"), ("other", "a:2")]);
        assert_eq!(
            changed_images(&old, &new),
            vec![
                ("extra".to_string(), "b:1".to_string()),
                ("other".to_string(), "a:2".to_string())
            ]
        );
        assert!(changed_images(&new, &new).is_empty());
    }

    #[test]
    fn skip_rules_label_the_revision_ignored() {
        let ignored = |cs: CloneSet| {
            let f = fixture(cs);
            match run(&f, "web-old", &[]) {
                Plan::Ignore { revision, why } => {
                    assert_eq!(Some(revision.as_str()), f.update.metadata.name.as_deref());
                    why
                }
                other => panic!("want Ignore, got {other:?}"),
            }
        };
        assert_eq!(
            ignored(cloneset(10, CloneSetUpdateStrategyType::ReCreate)),
            "the update type is not in-place"
        );
        assert_eq!(
            ignored(cloneset(3, CloneSetUpdateStrategyType::InPlaceIfPossible)),
            "replicas are too few"
        );
        // No partition and maxUnavailable covering every pod: one batch, nothing to warm for.
        let mut cs = cloneset(4, CloneSetUpdateStrategyType::InPlaceIfPossible);
        let us = cs.spec.update_strategy.as_mut().unwrap();
        us.partition = None;
        us.max_unavailable = Some(IntOrString::String("100%".into()));
        assert_eq!(ignored(cs), "all pods update in one batch");
        // A change that needs new pods (a new env var) is not in-place-able.
        let mut cs = cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible);
        cs.spec.template.spec.as_mut().unwrap().containers[0].env =
            Some(vec![k8s_openapi::api::core::v1::EnvVar {
                name: "A".into(),
                value: Some("1".into()),
                ..Default::default()
            }]);
        assert_eq!(ignored(cs), "the change cannot be applied in place");
    }

    #[test]
    fn four_replicas_with_default_max_unavailable_still_pre_download() {
        let mut cs = cloneset(4, CloneSetUpdateStrategyType::InPlaceIfPossible);
        cs.spec.update_strategy.as_mut().unwrap().partition = None;
        assert!(matches!(
            run(&fixture(cs), "web-old", &[]),
            Plan::Create { .. }
        ));
    }

    #[test]
    fn a_handled_revision_gets_no_second_job() {
        for key in [
            ck::IMAGE_PREDOWNLOAD_CREATED_LABEL,
            ck::IMAGE_PREDOWNLOAD_IGNORED_LABEL,
        ] {
            let mut f = fixture(cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible));
            f.update
                .metadata
                .labels
                .get_or_insert_default()
                .insert(key.into(), "true".into());
            assert_eq!(sum(&run(&f, "web-old", &[])), "idle", "{key}");
        }
        // Jobs already in the cache are not created again (the label may lag behind them).
        let f = fixture(cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible));
        let name = format!("{}-main", f.update.metadata.name.as_deref().unwrap());
        let rev = f.update.metadata.name.clone().unwrap();
        assert_eq!(
            sum(&run(&f, "web-old", &[name])),
            format!("create {rev} []")
        );
    }

    #[test]
    fn converged_revisions_delete_the_jobs() {
        let f = fixture(cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible));
        let rev = f.update.metadata.name.clone().unwrap();
        assert_eq!(sum(&run(&f, &rev, &[])), "idle");
        let jobs = vec!["web-x-main".to_string()];
        assert_eq!(sum(&run(&f, &rev, &jobs)), r#"delete ["web-x-main"]"#);
    }

    #[test]
    fn min_updated_ready_pods_waits() {
        let mut cs = cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible);
        cs.metadata.annotations = Some(
            [(
                ck::IMAGE_PREDOWNLOAD_MIN_UPDATED_READY_PODS.to_string(),
                "20%".to_string(),
            )]
            .into(),
        );
        let mut f = fixture(cs);
        let rev = f.update.metadata.name.clone().unwrap();
        assert_eq!(sum(&run(&f, "web-old", &[])), "wait 0/2");
        // Ready updated pods of an older update revision do not count.
        f.cs.status = Some(CloneSetStatus {
            update_revision: Some("web-older".into()),
            updated_ready_replicas: 5,
            ..Default::default()
        });
        assert_eq!(sum(&run(&f, "web-old", &[])), "wait 0/2");
        f.cs.status = Some(CloneSetStatus {
            update_revision: Some(rev),
            updated_ready_replicas: 2,
            ..Default::default()
        });
        assert!(matches!(run(&f, "web-old", &[]), Plan::Create { .. }));
        assert_eq!(min_updated_ready(&f.cs), 2);
    }

    #[test]
    fn owner_check_wants_the_controller_reference() {
        let f = fixture(cloneset(10, CloneSetUpdateStrategyType::InPlaceIfPossible));
        let mut job = job_for(&f.cs, &f.update, "main", "a:1");
        assert!(owned_by(&job, "uid-1"));
        assert!(!owned_by(&job, "uid-2"));
        job.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert!(!owned_by(&job, "uid-1"));
    }

    #[test]
    fn feature_gates_parse() {
        use crate::cloneset::Gates;
        let g = Gates::default();
        assert!(!g.predownload_image, "off by default, as in OpenKruise");
        let on = g
            .with_feature_gates("PreDownloadImageForInPlaceUpdate=true")
            .unwrap();
        assert!(on.predownload_image && !on.partition_rollback);
        // AllAlpha would turn on alpha gates kruise-rs does not implement, KruiseDaemon=false
        // would stop controllers kruise-rs always runs: both are refused (crate::features)
        assert!(g.with_feature_gates("AllAlpha=true,AllBeta=true").is_err());
        assert!(
            g.with_feature_gates("PreDownloadImageForInPlaceUpdate=true,KruiseDaemon=false")
                .is_err()
        );
        assert!(g.with_feature_gates("Other=true").is_err());
        let some = g
            .with_feature_gates("CloneSetPartitionRollback=true, PreparingUpdateAsUpdate=true")
            .unwrap();
        assert!(some.partition_rollback && some.preparing_update_as_update);
        assert!(!some.predownload_image);
        assert!(
            g.with_feature_gates("PreDownloadImageForInPlaceUpdate")
                .is_err()
        );
        assert!(g.with_feature_gates("A=yes").is_err());
        assert_eq!(g.with_feature_gates("").unwrap(), g);
    }
}
