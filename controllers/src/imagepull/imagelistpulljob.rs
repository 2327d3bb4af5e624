//! ImageListPullJob planning (spec `imagepull.md` §1.3, §2.10): the template hash, the status over
//! the child ImagePullJobs, and which children to create or delete. Pure; applied in `mod.rs`.

use super::set_condition;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kruise_crds::keys::imagepull as keys;
use kruise_crds::keys::{CONDITION_FALSE, CONDITION_TRUE, CONTROLLER_REVISION_HASH_LABEL};
use kruise_crds::{
    CompletionPolicyType, FailedImageStatus, ImageListPullJob, ImageListPullJobStatus,
    ImagePullJob, ImagePullJobSpec, ImagePullJobTemplate,
};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// Message of every `failedImageStatuses` entry (OpenKruise's wording).
pub const FAILED_IMAGE_MESSAGE: &str =
    "Please check for details which nodes failed by 'kubectl get ImagePullJob <name>'.";

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a (32 bit) of the template's JSON, rendered like Kubernetes' `rand.SafeEncodeString` of the
/// decimal hash. (OpenKruise hashes Go's printed form, so the value differs from theirs: after a
/// switch every child is re-created once.)
pub fn template_hash(t: &ImagePullJobTemplate) -> String {
    let bytes = serde_json::to_vec(t).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The children of a list job: ImagePullJobs it controls (by uid) that are not being deleted.
pub fn children_of<'a>(
    list: &ImageListPullJob,
    jobs: impl IntoIterator<Item = &'a ImagePullJob>,
) -> Vec<&'a ImagePullJob> {
    let uid = list.metadata.uid.as_deref();
    jobs.into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
        })
        .collect()
}

/// Status of a list job from its children (only children that started count).
pub fn calculate_status(
    list: &ImageListPullJob,
    children: &[&ImagePullJob],
    now: Timestamp,
) -> ImageListPullJobStatus {
    let old = list.status.clone().unwrap_or_default();
    let desired = list.spec.images.len() as i32;
    let (mut active, mut completed, mut succeeded) = (0, 0, 0);
    let mut failed = Vec::new();
    for c in children {
        let Some(s) = c.status.as_ref().filter(|s| s.start_time.is_some()) else {
            continue;
        };
        let (succ, fail) = (s.succeeded.unwrap_or(0), s.failed.unwrap_or(0));
        if s.active.unwrap_or(0) > 0 {
            active += 1;
        }
        if s.desired == succ + fail {
            completed += 1;
        }
        if s.desired == succ {
            succeeded += 1;
        }
        if fail > 0 {
            failed.push(FailedImageStatus {
                image_pull_job: c.metadata.name.clone(),
                name: Some(c.spec.image.clone()),
                message: Some(FAILED_IMAGE_MESSAGE.to_string()),
            });
        }
    }
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    let never =
        list.spec.template.completion_policy.effective_type() == CompletionPolicyType::Never;
    let completion_time = old
        .completion_time
        .clone()
        .or_else(|| (!never && desired == completed).then_some(Time(now)));
    let mut status = ImageListPullJobStatus {
        start_time: Some(old.start_time.clone().unwrap_or(Time(now))),
        completion_time,
        desired,
        active: Some(active),
        completed: Some(completed),
        succeeded: Some(succeeded),
        failed_image_statuses: (!failed.is_empty()).then_some(failed),
        conditions: old.conditions.clone(),
        observed_generation: list.metadata.generation,
    };
    let generation = list.metadata.generation;
    let n_failed = status.failed_image_statuses.as_ref().map_or(0, Vec::len);
    let done = status.completion_time.is_some();
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let msg = format!("{completed}/{desired} image pull jobs completed");
    let (st, reason) = match (done, n_failed > 0) {
        (true, true) => (CONDITION_TRUE, keys::CONDITION_REASON_NODES_FAILED),
        (true, false) => (CONDITION_TRUE, keys::CONDITION_REASON_ALL_SUCCEEDED),
        (false, _) => (CONDITION_FALSE, keys::CONDITION_REASON_PULLING),
    };
    set_condition(
        conds,
        keys::CONDITION_COMPLETE,
        st,
        reason,
        &msg,
        generation,
        now,
    );
    let (st, reason, fmsg) = if n_failed > 0 {
        (
            CONDITION_TRUE,
            keys::CONDITION_REASON_NODES_FAILED,
            format!("{n_failed} image(s) failed on some nodes"),
        )
    } else {
        (
            CONDITION_FALSE,
            keys::CONDITION_REASON_PULLING,
            String::new(),
        )
    };
    set_condition(
        conds,
        keys::CONDITION_FAILED,
        st,
        reason,
        &fmsg,
        generation,
        now,
    );
    let st = if done {
        CONDITION_FALSE
    } else {
        CONDITION_TRUE
    };
    let reason = if done {
        reason
    } else {
        keys::CONDITION_REASON_PULLING
    };
    let pmsg = format!("{active} image pull jobs active");
    set_condition(
        conds,
        keys::CONDITION_PROGRESSING,
        st,
        reason,
        &pmsg,
        generation,
        now,
    );
    status
}

/// What to change in a list job's children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildrenPlan {
    /// Images to create a child for, in list order.
    pub create: Vec<String>,
    /// Names of children to delete (outdated template, image no longer listed, duplicates).
    pub delete: Vec<String>,
}

fn child_is_current(child: &ImagePullJob, list: &ImageListPullJob, hash: &str) -> bool {
    match child.labels().get(CONTROLLER_REVISION_HASH_LABEL) {
        Some(h) => h == hash,
        None => child.spec.template == list.spec.template,
    }
}

/// Plans the children: one current child per listed image.
pub fn plan_children(
    list: &ImageListPullJob,
    children: &[&ImagePullJob],
    hash: &str,
) -> ChildrenPlan {
    let mut by_image: BTreeMap<&str, Vec<&ImagePullJob>> = BTreeMap::new();
    for c in children {
        by_image.entry(c.spec.image.as_str()).or_default().push(c);
    }
    let wanted: BTreeSet<&str> = list.spec.images.iter().map(String::as_str).collect();
    let mut plan = ChildrenPlan::default();
    for image in &list.spec.images {
        let mut keep = false;
        for c in by_image.get(image.as_str()).into_iter().flatten() {
            if !keep && child_is_current(c, list, hash) {
                keep = true;
            } else {
                plan.delete.push(c.name_any());
            }
        }
        if !keep && !plan.create.contains(image) {
            plan.create.push(image.clone());
        }
    }
    for (image, cs) in &by_image {
        if !wanted.contains(image) {
            plan.delete.extend(cs.iter().map(|c| c.name_any()));
        }
    }
    plan.delete.sort();
    plan.delete.dedup();
    plan
}

/// A new child ImagePullJob for `image`: `generateName: <list>-`, the revision hash label, a
/// controller owner reference, and the template copied verbatim.
pub fn new_child(list: &ImageListPullJob, image: &str, hash: &str) -> ImagePullJob {
    let owner = OwnerReference {
        api_version: kruise_crds::API_VERSION.to_string(),
        kind: keys::IMAGE_LIST_PULL_JOB_KIND.to_string(),
        name: list.name_any(),
        uid: list.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    ImagePullJob {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", list.name_any())),
            namespace: list.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(
                CONTROLLER_REVISION_HASH_LABEL.to_string(),
                hash.to_string(),
            )])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: ImagePullJobSpec {
            image: image.to_string(),
            template: list.spec.template.clone(),
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruise_crds::{CompletionPolicy, ImageListPullJobSpec, ImagePullJobStatus};

    fn list(images: &[&str]) -> ImageListPullJob {
        let mut l = ImageListPullJob::new(
            "warm",
            ImageListPullJobSpec {
                images: images.iter().map(|s| s.to_string()).collect(),
                template: ImagePullJobTemplate {
                    completion_policy: CompletionPolicy {
                        type_: Some(CompletionPolicyType::Always),
                        ttl_seconds_after_finished: Some(60),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
        );
        l.metadata.namespace = Some("ns".into());
        l.metadata.uid = Some("list-uid".into());
        l
    }

    fn child(l: &ImageListPullJob, name: &str, image: &str, hash: Option<&str>) -> ImagePullJob {
        let mut c = new_child(l, image, hash.unwrap_or(""));
        c.metadata.name = Some(name.into());
        if hash.is_none() {
            c.metadata.labels = None;
        }
        c
    }

    fn st(desired: i32, active: i32, succ: i32, failed: i32) -> Option<ImagePullJobStatus> {
        Some(ImagePullJobStatus {
            start_time: Some(Time(Timestamp::UNIX_EPOCH)),
            desired,
            active: Some(active),
            succeeded: Some(succ),
            failed: Some(failed),
            ..Default::default()
        })
    }

    #[test]
    fn hash_is_stable_and_template_sensitive() {
        let l = list(&["a"]);
        let h = template_hash(&l.spec.template);
        assert_eq!(h, template_hash(&l.spec.template.clone()));
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        let mut t2 = l.spec.template.clone();
        t2.pull_secrets = Some(vec!["s".into()]);
        assert_ne!(h, template_hash(&t2));
    }

    #[test]
    fn new_child_shape() {
        let l = list(&["nginx"]);
        let c = new_child(&l, "nginx", "abc");
        assert_eq!(c.metadata.generate_name.as_deref(), Some("warm-"));
        assert_eq!(c.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(c.labels()[CONTROLLER_REVISION_HASH_LABEL], "abc");
        let o = &c.owner_references()[0];
        assert_eq!(
            (o.kind.as_str(), o.uid.as_str(), o.controller),
            ("ImageListPullJob", "list-uid", Some(true))
        );
        assert_eq!(c.spec.template, l.spec.template);
        assert_eq!(children_of(&l, std::slice::from_ref(&c)).len(), 1);
        let mut other = c.clone();
        other.metadata.owner_references.as_mut().unwrap()[0].uid = "x".into();
        assert!(children_of(&l, &[other]).is_empty());
    }

    #[test]
    fn plan_children_table() {
        let l = list(&["a", "b", "c", "d"]);
        let h = template_hash(&l.spec.template);
        let mut old_unlabelled = child(&l, "j-d", "d", None);
        old_unlabelled.spec.template.pull_secrets = Some(vec!["x".into()]);
        let kids = [
            child(&l, "j-a", "a", Some(&h)),
            child(&l, "j-b", "b", Some("old")),
            child(&l, "j-c", "c", None), // unlabelled but same template: kept
            old_unlabelled,
            child(&l, "j-e", "e", Some(&h)),
            child(&l, "j-a2", "a", Some(&h)),
        ];
        let refs: Vec<&ImagePullJob> = kids.iter().collect();
        let plan = plan_children(&l, &refs, &h);
        assert_eq!(plan.create, vec!["b", "d"]);
        assert_eq!(plan.delete, vec!["j-a2", "j-b", "j-d", "j-e"]);
    }

    #[test]
    fn status_from_children() {
        let l = list(&["a", "b", "c", "d"]);
        let mut kids = [
            child(&l, "j-a", "a", Some("h")),
            child(&l, "j-b", "b", Some("h")),
            child(&l, "j-c", "c", Some("h")),
            child(&l, "j-d", "d", Some("h")),
        ];
        kids[0].status = st(2, 0, 2, 0); // succeeded + completed
        kids[1].status = st(2, 0, 1, 1); // completed, failed
        kids[2].status = st(2, 1, 0, 0); // active
        kids[3].status = None; // not started: not counted
        let refs: Vec<&ImagePullJob> = kids.iter().collect();
        let now = Timestamp::from_second(100).unwrap();
        let s = calculate_status(&l, &refs, now);
        assert_eq!(s.desired, 4);
        assert_eq!(
            (s.active, s.completed, s.succeeded),
            (Some(1), Some(2), Some(1))
        );
        assert_eq!(s.completion_time, None);
        assert_eq!(
            s.failed_image_statuses,
            Some(vec![FailedImageStatus {
                image_pull_job: Some("j-b".into()),
                name: Some("b".into()),
                message: Some(FAILED_IMAGE_MESSAGE.into()),
            }])
        );
        kids[2].status = st(2, 0, 2, 0);
        kids[3].status = st(0, 0, 0, 0); // desired 0 counts as completed and succeeded
        let refs: Vec<&ImagePullJob> = kids.iter().collect();
        let s = calculate_status(&l, &refs, now);
        assert_eq!((s.completed, s.succeeded), (Some(4), Some(3)));
        assert_eq!(s.completion_time, Some(Time(now)));
        let mut never = l.clone();
        never.spec.template.completion_policy = CompletionPolicy {
            type_: Some(CompletionPolicyType::Never),
            ..Default::default()
        };
        assert_eq!(calculate_status(&never, &refs, now).completion_time, None);
    }
}
