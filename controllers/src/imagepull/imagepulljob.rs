//! ImagePullJob planning (spec `imagepull.md` §2.1–§2.7): the job's status from the NodeImages it
//! selects, which nodes to write next (parallelism), what goes into each NodeImage tag, the tag pull
//! policy, and the deadline / TTL timers. Pure; the reconcile in `mod.rs` applies the results.

use super::{Error, Result, set_condition};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::imagepull as keys;
use kruise_crds::keys::{CONDITION_FALSE, CONDITION_TRUE};
use kruise_crds::{
    CompletionPolicyType, IMAGE_PULL_DEFAULT_BACKOFF_LIMIT, IMAGE_PULL_DEFAULT_PARALLELISM,
    IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS, ImagePullJob, ImagePullJobStatus, ImagePullPhase,
    ImageSpec, ImageTagPullPolicy, ImageTagSpec, NodeImage, NodeImageSpec, NodeImageStatus,
    ReferenceObject,
};
use kruise_webhook::imagepull::{parse_count, reference};
use kube::ResourceExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Default of `--default-ttlseconds-for-always-nodeimage`: extra TTL of tags written by Always jobs.
pub const DEFAULT_TTL_FOR_ALWAYS_NODE_IMAGE: i32 = 300;
/// Upper bound (exclusive) of the random extra TTL of Always tags.
pub const ALWAYS_TTL_JITTER: i32 = 300;
/// TTL of tags written by Never jobs: they are re-pulled about daily.
pub const NEVER_TTL_SECONDS: i32 = 86_400;
/// Half-width of the random spread around [`NEVER_TTL_SECONDS`].
pub const NEVER_TTL_JITTER: i32 = 600;
/// Floor of the per-tag `activeDeadlineSeconds` of Never jobs.
pub const NEVER_MIN_ACTIVE_DEADLINE: i64 = 1800;

/// `(familiar name, tag or digest)` of the job's image.
pub fn image_name_tag(job: &ImagePullJob) -> Result<(String, String)> {
    reference::name_tag(&job.spec.image).map_err(|source| Error::Image {
        image: job.spec.image.clone(),
        source,
    })
}

/// The reference written into a NodeImage tag's `ownerReferences`.
pub fn owner_ref(job: &ImagePullJob) -> ObjectReference {
    ObjectReference {
        api_version: Some(kruise_crds::API_VERSION.to_string()),
        kind: Some(keys::IMAGE_PULL_JOB_KIND.to_string()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..Default::default()
    }
}

fn completion_type(job: &ImagePullJob) -> CompletionPolicyType {
    job.spec.template.completion_policy.effective_type()
}

/// Result of [`calculate_status`].
#[derive(Clone, Debug, PartialEq)]
pub struct StatusCalc {
    /// The new status (conditions and observedGeneration included).
    pub status: ImagePullJobStatus,
    /// NodeImages still to be written for this job, in name order.
    pub not_synced: Vec<String>,
}

fn secret_key(r: &ReferenceObject) -> (Option<&str>, Option<&str>) {
    (r.namespace.as_deref(), r.name.as_deref())
}

/// The job's status over the NodeImages it selects (§2.3), and the nodes not written yet.
pub fn calculate_status(
    job: &ImagePullJob,
    node_images: &[Arc<NodeImage>],
    secrets: &[ReferenceObject],
    now: Timestamp,
) -> Result<StatusCalc> {
    let (image, tag) = image_name_tag(job)?;
    let old = job.status.clone().unwrap_or_default();
    let uid = job.metadata.uid.as_deref();
    let start = old.start_time.clone().unwrap_or(Time(now));
    let desired = node_images.len() as i32;
    let mut not_synced = BTreeSet::new();
    let (mut pulling, mut succeeded, mut failed) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for ni in node_images {
        let name = ni.name_any();
        let spec = ni.spec.images.as_ref().and_then(|m| m.get(&image));
        let have: BTreeSet<_> = spec
            .and_then(|s| s.pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(secret_key)
            .collect();
        if secrets.iter().any(|s| !have.contains(&secret_key(s))) {
            not_synced.insert(name.clone());
        }
        let version = spec
            .and_then(|s| s.tags.iter().find(|t| t.tag == tag))
            .filter(|t| {
                t.owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid.is_some() && o.uid.as_deref() == uid)
            })
            .map(|t| t.version.unwrap_or(0));
        let Some(version) = version else {
            not_synced.insert(name);
            continue;
        };
        let st = ni
            .status
            .as_ref()
            .and_then(|s| s.image_statuses.as_ref())
            .and_then(|m| m.get(&image))
            .and_then(|s| s.tags.iter().find(|t| t.tag == tag))
            .filter(|s| s.version.unwrap_or(0) == version);
        match st.map(|s| s.phase) {
            Some(ImagePullPhase::Succeeded) => succeeded.insert(name),
            Some(ImagePullPhase::Failed) => failed.insert(name),
            _ => pulling.insert(name),
        };
    }
    let typ = completion_type(job);
    let deadline = job.spec.template.completion_policy.active_deadline_seconds;
    let finished = (succeeded.len() + failed.len()) as i32;
    let mut status = ImagePullJobStatus {
        start_time: Some(start.clone()),
        desired,
        observed_generation: job.metadata.generation,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    if typ != CompletionPolicyType::Never
        && let Some(d) = deadline
        && desired != finished
        && now.duration_since(start.0).as_secs() >= d
    {
        let all_failed: BTreeSet<String> = failed
            .into_iter()
            .chain(pulling)
            .chain(not_synced)
            .collect();
        status.completion_time = Some(Time(now));
        status.active = Some(0);
        status.succeeded = Some(succeeded.len() as i32);
        status.failed = Some(all_failed.len() as i32);
        status.failed_nodes = Some(all_failed.into_iter().collect());
        status.message = Some(keys::MESSAGE_JOB_DEADLINE_EXCEEDED.to_string());
        set_job_conditions(&mut status, job, true, now);
        return Ok(StatusCalc {
            status,
            not_synced: Vec::new(),
        });
    }
    status.active = Some(pulling.len() as i32);
    status.succeeded = Some(succeeded.len() as i32);
    status.failed = Some(failed.len() as i32);
    status.failed_nodes = Some(failed.into_iter().collect());
    if typ != CompletionPolicyType::Never && desired - finished == 0 {
        status.completion_time = Some(Time(now));
    }
    status.message = Some(status_message(&status));
    set_job_conditions(&mut status, job, false, now);
    Ok(StatusCalc {
        status,
        not_synced: not_synced.into_iter().collect(),
    })
}

/// `status.message` in OpenKruise's words.
pub fn status_message(s: &ImagePullJobStatus) -> String {
    if s.completion_time.is_some() {
        return keys::MESSAGE_JOB_COMPLETED.to_string();
    }
    if s.desired == 0 {
        return keys::MESSAGE_JOB_NO_PROGRESS.to_string();
    }
    let done = s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0);
    let pct = f64::from(done) / f64::from(s.desired) * 100.0;
    format!("job is running, progress {pct:.1}%")
}

fn set_job_conditions(
    s: &mut ImagePullJobStatus,
    job: &ImagePullJob,
    deadline: bool,
    now: Timestamp,
) {
    let generation = job.metadata.generation;
    let failed = s.failed.unwrap_or(0);
    let active = s.active.unwrap_or(0);
    let done = s.completion_time.is_some();
    let paused = parallelism(job) == 0;
    let message = s.message.clone().unwrap_or_default();
    let done_reason = if deadline {
        keys::CONDITION_REASON_DEADLINE_EXCEEDED
    } else if failed > 0 {
        keys::CONDITION_REASON_NODES_FAILED
    } else {
        keys::CONDITION_REASON_ALL_SUCCEEDED
    };
    let running_reason = if paused {
        keys::CONDITION_REASON_PAUSED
    } else {
        keys::CONDITION_REASON_PULLING
    };
    let conds = s.conditions.get_or_insert_with(Vec::new);
    let (st, reason) = if done {
        (CONDITION_TRUE, done_reason)
    } else {
        (CONDITION_FALSE, running_reason)
    };
    set_condition(
        conds,
        keys::CONDITION_COMPLETE,
        st,
        reason,
        &message,
        generation,
        now,
    );
    let (st, reason, msg) = if failed > 0 {
        let reason = if deadline {
            keys::CONDITION_REASON_DEADLINE_EXCEEDED
        } else {
            keys::CONDITION_REASON_NODES_FAILED
        };
        (
            CONDITION_TRUE,
            reason,
            format!("failed on {failed} node(s)"),
        )
    } else if done {
        (
            CONDITION_FALSE,
            keys::CONDITION_REASON_ALL_SUCCEEDED,
            String::new(),
        )
    } else {
        (CONDITION_FALSE, running_reason, String::new())
    };
    set_condition(
        conds,
        keys::CONDITION_FAILED,
        st,
        reason,
        &msg,
        generation,
        now,
    );
    let (st, reason) = match (done, paused) {
        (true, _) => (CONDITION_FALSE, done_reason),
        (false, true) => (CONDITION_FALSE, keys::CONDITION_REASON_PAUSED),
        (false, false) => (CONDITION_TRUE, keys::CONDITION_REASON_PULLING),
    };
    let msg = format!("{active} node(s) pulling");
    set_condition(
        conds,
        keys::CONDITION_PROGRESSING,
        st,
        reason,
        &msg,
        generation,
        now,
    );
}

/// Effective `parallelism` (default 1; a string is read as a base-10 count, anything else as 0).
pub fn parallelism(job: &ImagePullJob) -> i32 {
    match &job.spec.template.parallelism {
        None => IMAGE_PULL_DEFAULT_PARALLELISM,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => parse_count(s).unwrap_or(0),
    }
}

/// The NodeImages to write this round (§2.4/§2.5): the first `parallelism - active` of
/// `not_synced`.
pub fn nodes_to_sync(job: &ImagePullJob, calc: &StatusCalc) -> Vec<String> {
    let active = calc.status.active.unwrap_or(0);
    let n = (parallelism(job) - active).max(0) as usize;
    calc.not_synced.iter().take(n).cloned().collect()
}

/// The per-tag pull policy the job writes (§2.6). `always_jitter` is a random value in
/// `[0, ALWAYS_TTL_JITTER)`, `never_jitter` one in `[-NEVER_TTL_JITTER, NEVER_TTL_JITTER)`.
pub fn tag_pull_policy(
    job: &ImagePullJob,
    default_ttl_for_always: i32,
    always_jitter: i32,
    never_jitter: i32,
) -> ImageTagPullPolicy {
    let t = &job.spec.template;
    let timeout = t.pull_policy.as_ref().and_then(|p| p.timeout_seconds);
    let backoff = t.pull_policy.as_ref().and_then(|p| p.backoff_limit);
    let cp = &t.completion_policy;
    let (ttl, deadline) = match cp.effective_type() {
        CompletionPolicyType::Always => {
            let base = cp
                .ttl_seconds_after_finished
                .map(i64::from)
                .or(cp.active_deadline_seconds)
                .unwrap_or_else(|| {
                    i64::from(timeout.unwrap_or(IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS))
                        * i64::from(backoff.unwrap_or(IMAGE_PULL_DEFAULT_BACKOFF_LIMIT))
                });
            let ttl = base + i64::from(default_ttl_for_always) + i64::from(always_jitter);
            (
                i32::try_from(ttl).unwrap_or(i32::MAX),
                cp.active_deadline_seconds,
            )
        }
        CompletionPolicyType::Never => (
            NEVER_TTL_SECONDS + never_jitter,
            Some(NEVER_MIN_ACTIVE_DEADLINE.max(i64::from(
                timeout.unwrap_or(IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS),
            ))),
        ),
    };
    ImageTagPullPolicy {
        timeout_seconds: timeout,
        backoff_limit: backoff,
        ttl_seconds_after_finished: Some(ttl),
        active_deadline_seconds: deadline,
    }
}

fn has_secret(list: &[ReferenceObject], s: &ReferenceObject) -> bool {
    list.iter().any(|x| secret_key(x) == secret_key(s))
}

/// Writes the job's wish into one NodeImage spec (§2.4). Returns whether anything changed (no
/// write is needed otherwise). `status` is the NodeImage's status, read for the next version.
pub fn write_into_node_image(
    spec: &mut NodeImageSpec,
    status: Option<&NodeImageStatus>,
    job: &ImagePullJob,
    secrets: &[ReferenceObject],
    pull_policy: &ImageTagPullPolicy,
    now: Timestamp,
) -> Result<bool> {
    let (image, tag) = image_name_tag(job)?;
    let owner = owner_ref(job);
    let images = spec.images.get_or_insert_with(Default::default);
    let entry: &mut ImageSpec = images.entry(image.clone()).or_default();
    let have = entry.pull_secrets.clone().unwrap_or_default();
    let missing: Vec<ReferenceObject> = secrets
        .iter()
        .filter(|s| !has_secret(&have, s))
        .cloned()
        .collect();
    let mut found = false;
    if let Some(t) = entry.tags.iter_mut().find(|t| t.tag == tag) {
        found = true;
        let owned = t
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid.is_some() && o.uid == owner.uid);
        if owned {
            if missing.is_empty() {
                return Ok(false);
            }
        } else {
            // Joining a tag other jobs own: a fresh pull round the new job can trust (§2.4).
            t.version = Some(t.version.unwrap_or(0) + 1);
            t.owner_references
                .get_or_insert_with(Vec::new)
                .push(owner.clone());
            t.created_at = Some(Time(now));
            t.image_pull_policy = job.spec.template.image_pull_policy;
        }
    }
    entry.sandbox_config = job.spec.template.sandbox_config.clone();
    if !missing.is_empty() {
        entry
            .pull_secrets
            .get_or_insert_with(Vec::new)
            .extend(missing);
    }
    if !found {
        let last = status
            .and_then(|s| s.image_statuses.as_ref())
            .and_then(|m| m.get(&image))
            .and_then(|s| s.tags.iter().find(|t| t.tag == tag))
            .map(|s| s.version.unwrap_or(0))
            .unwrap_or(-1);
        entry.tags.push(ImageTagSpec {
            tag: tag.clone(),
            created_at: Some(Time(now)),
            pull_policy: Some(pull_policy.clone()),
            owner_references: Some(vec![owner]),
            version: Some(last + 1),
            image_pull_policy: job.spec.template.image_pull_policy,
        });
    }
    entry.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    Ok(true)
}

/// What to do with a finished job (§2.1 step 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishedAction {
    /// Not finished: reconcile normally.
    NotFinished,
    /// Finished, no TTL: keep it.
    Keep,
    /// TTL not reached: look again then.
    RequeueAfter(Duration),
    /// TTL reached: delete the job.
    Delete,
}

/// The TTL decision for a job.
pub fn finished_action(job: &ImagePullJob, now: Timestamp) -> FinishedAction {
    let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.as_ref()) else {
        return FinishedAction::NotFinished;
    };
    ttl_action(
        job.spec
            .template
            .completion_policy
            .ttl_seconds_after_finished,
        done,
        now,
    )
}

/// Shared by both job kinds: delete `ttl` seconds after `done`.
pub fn ttl_action(ttl: Option<i32>, done: &Time, now: Timestamp) -> FinishedAction {
    let Some(ttl) = ttl else {
        return FinishedAction::Keep;
    };
    let left = i64::from(ttl) * 1000 - now.duration_since(done.0).as_millis() as i64;
    if left <= 0 {
        FinishedAction::Delete
    } else {
        FinishedAction::RequeueAfter(Duration::from_millis(left as u64))
    }
}

/// When to look again for the job deadline (§2.1 step 11): `deadline - since(startTime)`, at least
/// 1 s; `None` for Never jobs, jobs without deadline and finished jobs.
pub fn deadline_requeue(
    job: &ImagePullJob,
    status: &ImagePullJobStatus,
    now: Timestamp,
) -> Option<Duration> {
    if completion_type(job) == CompletionPolicyType::Never || status.completion_time.is_some() {
        return None;
    }
    let d = job
        .spec
        .template
        .completion_policy
        .active_deadline_seconds?;
    let start = status.start_time.as_ref()?;
    let left = d * 1000 - now.duration_since(start.0).as_millis() as i64;
    Some(Duration::from_millis(left.max(1000) as u64))
}

/// Status equality for "did anything change" (conditions' timestamps included: they only move when
/// a condition's status does).
pub fn status_changed(old: Option<&ImagePullJobStatus>, new: &ImagePullJobStatus) -> bool {
    old != Some(new)
}

/// The status this process last wrote for a job and the status it replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenStatus {
    /// What the job showed before the write.
    pub replaced: Option<ImagePullJobStatus>,
    /// What was written.
    pub written: ImagePullJobStatus,
}

/// Whether writing `new` would only repeat the last write: the cache still shows the status that
/// write replaced (its watch event has not arrived yet) and `new` is what was written, timestamps
/// aside (a status computed from the stale cache gets fresh transition and completion times).
/// Many jobs reconciled at once on the same NodeImages would otherwise write each status twice.
pub fn write_is_repeat(
    cached: Option<&ImagePullJobStatus>,
    new: &ImagePullJobStatus,
    last: Option<&WrittenStatus>,
) -> bool {
    let Some(last) = last else {
        return false;
    };
    if cached != last.replaced.as_ref() {
        return false;
    }
    let untimed = |s: &ImagePullJobStatus| {
        let mut s = s.clone();
        s.start_time = None;
        s.completion_time = s
            .completion_time
            .as_ref()
            .map(|_| Time(Timestamp::UNIX_EPOCH));
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_update_time = None;
        }
        s
    };
    untimed(new) == untimed(&last.written)
}

/// At most this many names go into one event note (the API server refuses notes over 1024
/// characters; a job on hundreds of nodes would otherwise lose its event).
pub const EVENT_NAMES_MAX: usize = 10;

/// `names` joined with ", " for an event note: the first [`EVENT_NAMES_MAX`], then "and N more".
pub fn name_list(names: &[String]) -> String {
    let shown = names
        .iter()
        .take(EVENT_NAMES_MAX)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(EVENT_NAMES_MAX) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruise_crds::{
        CompletionPolicy, ImagePullJobSpec, ImagePullJobTemplate, ImagePullPolicy, ImageStatus,
        ImageTagStatus, PullPolicy, SandboxConfig,
    };
    use std::collections::BTreeMap;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn job(image: &str) -> ImagePullJob {
        let mut j = ImagePullJob::new(
            "job",
            ImagePullJobSpec {
                image: image.into(),
                template: ImagePullJobTemplate {
                    completion_policy: CompletionPolicy {
                        type_: Some(CompletionPolicyType::Always),
                        ..Default::default()
                    },
                    image_pull_policy: Some(ImagePullPolicy::IfNotPresent),
                    ..Default::default()
                },
            },
        );
        j.metadata.namespace = Some("ns".into());
        j.metadata.uid = Some("uid-1".into());
        j.metadata.generation = Some(2);
        j
    }

    /// A NodeImage whose `nginx` entry has `tags` (tag, version, owner uid) and `statuses`
    /// (tag, version, phase).
    fn ni(
        name: &str,
        tags: &[(&str, i64, &str)],
        statuses: &[(&str, i64, ImagePullPhase)],
    ) -> Arc<NodeImage> {
        let mut n = NodeImage::new(name, NodeImageSpec::default());
        if !tags.is_empty() {
            n.spec.images = Some(BTreeMap::from([(
                "nginx".to_string(),
                ImageSpec {
                    tags: tags
                        .iter()
                        .map(|(tag, v, uid)| ImageTagSpec {
                            tag: (*tag).into(),
                            version: Some(*v),
                            owner_references: Some(vec![ObjectReference {
                                uid: Some((*uid).into()),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            )]));
        }
        if !statuses.is_empty() {
            n.status = Some(NodeImageStatus {
                image_statuses: Some(BTreeMap::from([(
                    "nginx".to_string(),
                    ImageStatus {
                        tags: statuses
                            .iter()
                            .map(|(tag, v, phase)| ImageTagStatus {
                                tag: (*tag).into(),
                                phase: *phase,
                                version: Some(*v),
                                progress: None,
                                start_time: None,
                                completion_time: None,
                                image_id: None,
                                message: None,
                            })
                            .collect(),
                    },
                )])),
                ..Default::default()
            });
        }
        Arc::new(n)
    }

    use ImagePullPhase::*;

    fn nodes() -> Vec<Arc<NodeImage>> {
        vec![
            ni("n1", &[("latest", 1, "uid-1")], &[("latest", 1, Succeeded)]),
            ni("n2", &[("latest", 2, "uid-1")], &[("latest", 2, Failed)]),
            ni("n3", &[("latest", 3, "uid-1")], &[("latest", 2, Succeeded)]), // stale status
            ni("n4", &[("latest", 0, "other")], &[]),                         // not ours
            ni("n5", &[], &[]),
            ni("n0", &[("latest", 0, "uid-1")], &[("latest", 0, Pulling)]),
        ]
    }

    #[test]
    fn status_counts_by_version_and_owner() {
        let j = job("nginx");
        let c = calculate_status(&j, &nodes(), &[], t(0)).unwrap();
        let s = &c.status;
        assert_eq!(s.desired, 6);
        assert_eq!(s.active, Some(2)); // n0 pulling, n3 stale
        assert_eq!(s.succeeded, Some(1));
        assert_eq!(s.failed, Some(1));
        assert_eq!(s.failed_nodes, Some(vec!["n2".to_string()]));
        assert_eq!(c.not_synced, vec!["n4", "n5"]);
        assert_eq!(s.start_time, Some(Time(t(0))));
        assert_eq!(s.completion_time, None);
        assert_eq!(s.message.as_deref(), Some("job is running, progress 33.3%"));
        assert_eq!(s.observed_generation, Some(2));
        let conds = s.conditions.as_ref().unwrap();
        let get = |ty: &str| conds.iter().find(|c| c.type_ == ty).unwrap().status.clone();
        assert_eq!(get(keys::CONDITION_COMPLETE), CONDITION_FALSE);
        assert_eq!(get(keys::CONDITION_FAILED), CONDITION_TRUE);
        assert_eq!(get(keys::CONDITION_PROGRESSING), CONDITION_TRUE);
    }

    #[test]
    fn missing_secret_makes_node_not_synced_but_still_counted() {
        let j = job("nginx");
        let sec = ReferenceObject {
            namespace: Some("kruise-daemon-config".into()),
            name: Some("s-abc".into()),
            mode: Some("batch".into()),
        };
        let c = calculate_status(&j, &nodes()[..1], &[sec], t(0)).unwrap();
        assert_eq!(c.not_synced, vec!["n1"]);
        assert_eq!(c.status.succeeded, Some(1));
    }

    #[test]
    fn completion_always_vs_never_and_zero_nodes() {
        let mut j = job("nginx");
        let done = vec![ni(
            "n1",
            &[("latest", 1, "uid-1")],
            &[("latest", 1, Succeeded)],
        )];
        let c = calculate_status(&j, &done, &[], t(5)).unwrap();
        assert_eq!(c.status.completion_time, Some(Time(t(5))));
        assert_eq!(
            c.status.message.as_deref(),
            Some(keys::MESSAGE_JOB_COMPLETED)
        );
        // desired 0 completes at once (OpenKruise behaviour)
        let c = calculate_status(&j, &[], &[], t(5)).unwrap();
        assert_eq!(c.status.completion_time, Some(Time(t(5))));
        j.spec.template.completion_policy.type_ = Some(CompletionPolicyType::Never);
        let c = calculate_status(&j, &done, &[], t(5)).unwrap();
        assert_eq!(c.status.completion_time, None);
        assert_eq!(
            c.status.message.as_deref(),
            Some("job is running, progress 100.0%")
        );
        let c = calculate_status(&j, &[], &[], t(5)).unwrap();
        assert_eq!(
            c.status.message.as_deref(),
            Some(keys::MESSAGE_JOB_NO_PROGRESS)
        );
    }

    #[test]
    fn deadline_fails_everything_unfinished() {
        let mut j = job("nginx");
        j.spec.template.completion_policy.active_deadline_seconds = Some(100);
        j.status = Some(ImagePullJobStatus {
            start_time: Some(Time(t(0))),
            ..Default::default()
        });
        let c = calculate_status(&j, &nodes(), &[], t(99)).unwrap();
        assert_eq!(c.status.completion_time, None);
        assert_eq!(
            deadline_requeue(&j, &c.status, t(99)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            deadline_requeue(&j, &c.status, t(10)),
            Some(Duration::from_secs(90))
        );
        let c = calculate_status(&j, &nodes(), &[], t(100)).unwrap();
        assert_eq!(c.status.completion_time, Some(Time(t(100))));
        assert_eq!(c.status.active, Some(0));
        assert_eq!(c.status.succeeded, Some(1));
        assert_eq!(
            c.status.failed_nodes,
            Some(["n0", "n2", "n3", "n4", "n5"].map(String::from).to_vec())
        );
        assert_eq!(c.status.failed, Some(5));
        assert_eq!(
            c.status.message.as_deref(),
            Some(keys::MESSAGE_JOB_DEADLINE_EXCEEDED)
        );
        assert!(c.not_synced.is_empty());
        let complete = c
            .status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == keys::CONDITION_COMPLETE)
            .unwrap()
            .clone();
        assert_eq!(
            complete.reason.as_deref(),
            Some(keys::CONDITION_REASON_DEADLINE_EXCEEDED)
        );
        assert_eq!(deadline_requeue(&j, &c.status, t(100)), None);
    }

    #[test]
    fn parallelism_limits_new_nodes() {
        let mut j = job("nginx");
        let c = calculate_status(&j, &nodes(), &[], t(0)).unwrap();
        // active 2 >= default parallelism 1
        assert!(nodes_to_sync(&j, &c).is_empty());
        j.spec.template.parallelism = Some(IntOrString::Int(3));
        assert_eq!(nodes_to_sync(&j, &c), vec!["n4"]);
        j.spec.template.parallelism = Some(IntOrString::String("10".into()));
        assert_eq!(nodes_to_sync(&j, &c), vec!["n4", "n5"]);
        j.spec.template.parallelism = Some(IntOrString::Int(0));
        assert!(nodes_to_sync(&j, &c).is_empty());
        let c = calculate_status(&j, &nodes(), &[], t(0)).unwrap();
        let p = c
            .status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == keys::CONDITION_PROGRESSING)
            .unwrap();
        assert_eq!(p.reason.as_deref(), Some(keys::CONDITION_REASON_PAUSED));
    }

    #[test]
    fn tag_pull_policy_table() {
        let mut j = job("nginx");
        // Always, nothing set: timeout(600) * backoff(3) + 300 + jitter
        let p = tag_pull_policy(&j, 300, 7, 0);
        assert_eq!(p.ttl_seconds_after_finished, Some(1800 + 300 + 7));
        assert_eq!(p.active_deadline_seconds, None);
        assert_eq!(p.timeout_seconds, None);
        j.spec.template.pull_policy = Some(PullPolicy {
            timeout_seconds: Some(100),
            backoff_limit: Some(2),
        });
        assert_eq!(
            tag_pull_policy(&j, 300, 0, 0).ttl_seconds_after_finished,
            Some(500)
        );
        j.spec.template.completion_policy.active_deadline_seconds = Some(1000);
        let p = tag_pull_policy(&j, 300, 0, 0);
        assert_eq!(p.ttl_seconds_after_finished, Some(1300));
        assert_eq!(p.active_deadline_seconds, Some(1000));
        assert_eq!(p.timeout_seconds, Some(100));
        assert_eq!(p.backoff_limit, Some(2));
        j.spec.template.completion_policy.ttl_seconds_after_finished = Some(50);
        assert_eq!(
            tag_pull_policy(&j, 0, 1, 0).ttl_seconds_after_finished,
            Some(51)
        );
        // Never: about a day, deadline max(1800, timeout)
        j.spec.template.completion_policy = CompletionPolicy {
            type_: Some(CompletionPolicyType::Never),
            ..Default::default()
        };
        let p = tag_pull_policy(&j, 300, 0, -600);
        assert_eq!(p.ttl_seconds_after_finished, Some(86_400 - 600));
        assert_eq!(p.active_deadline_seconds, Some(1800));
        j.spec.template.pull_policy = Some(PullPolicy {
            timeout_seconds: Some(3600),
            backoff_limit: None,
        });
        assert_eq!(
            tag_pull_policy(&j, 300, 0, 0).active_deadline_seconds,
            Some(3600)
        );
    }

    #[test]
    fn writes_new_tag_join_and_skip() {
        let j = job("nginx:1.25");
        let pol = tag_pull_policy(&j, 300, 0, 0);
        let mut spec = NodeImageSpec::default();
        // status already has version 4 for this tag (a previous round): next is 5
        let status = ni("n", &[], &[("1.25", 4, Succeeded)]).status.clone();
        assert!(write_into_node_image(&mut spec, status.as_ref(), &j, &[], &pol, t(0)).unwrap());
        let tag = &spec.images.as_ref().unwrap()["nginx"].tags[0];
        assert_eq!(tag.tag, "1.25");
        assert_eq!(tag.version, Some(5));
        assert_eq!(tag.created_at, Some(Time(t(0))));
        assert_eq!(tag.pull_policy.as_ref(), Some(&pol));
        assert_eq!(tag.image_pull_policy, Some(ImagePullPolicy::IfNotPresent));
        let o = &tag.owner_references.as_ref().unwrap()[0];
        assert_eq!(o.kind.as_deref(), Some("ImagePullJob"));
        assert_eq!(o.api_version.as_deref(), Some("apps.kruise.io/v1alpha1"));
        assert_eq!(
            (o.namespace.as_deref(), o.name.as_deref(), o.uid.as_deref()),
            (Some("ns"), Some("job"), Some("uid-1"))
        );
        // same job again: nothing to write
        let before = spec.clone();
        assert!(!write_into_node_image(&mut spec, None, &j, &[], &pol, t(1)).unwrap());
        assert_eq!(spec, before);
        // ... unless a secret is missing
        let sec = ReferenceObject {
            namespace: Some("kruise-daemon-config".into()),
            name: Some("s".into()),
            mode: Some("batch".into()),
        };
        assert!(
            write_into_node_image(&mut spec, None, &j, std::slice::from_ref(&sec), &pol, t(1))
                .unwrap()
        );
        assert_eq!(
            spec.images.as_ref().unwrap()["nginx"].pull_secrets,
            Some(vec![sec.clone()])
        );
        // another job joins: version bump, second owner, createdAt reset, first pullPolicy kept
        let mut j2 = job("docker.io/library/nginx:1.25");
        j2.metadata.uid = Some("uid-2".into());
        j2.metadata.name = Some("job2".into());
        j2.spec.template.image_pull_policy = Some(ImagePullPolicy::Always);
        j2.spec.template.sandbox_config = Some(SandboxConfig {
            labels: Some(BTreeMap::from([("a".into(), "b".into())])),
            annotations: None,
        });
        let pol2 = tag_pull_policy(&j2, 0, 0, 0);
        assert!(
            write_into_node_image(
                &mut spec,
                None,
                &j2,
                std::slice::from_ref(&sec),
                &pol2,
                t(9)
            )
            .unwrap()
        );
        let entry = &spec.images.as_ref().unwrap()["nginx"];
        let tag = &entry.tags[0];
        assert_eq!(entry.tags.len(), 1);
        assert_eq!(tag.version, Some(6));
        assert_eq!(tag.owner_references.as_ref().unwrap().len(), 2);
        assert_eq!(tag.created_at, Some(Time(t(9))));
        assert_eq!(tag.pull_policy.as_ref(), Some(&pol));
        assert_eq!(tag.image_pull_policy, Some(ImagePullPolicy::Always));
        assert_eq!(entry.sandbox_config, j2.spec.template.sandbox_config);
        assert_eq!(entry.pull_secrets.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn digest_images_write_the_digest_and_tags_stay_sorted() {
        let j = job(&format!("nginx@{D}"));
        let pol = tag_pull_policy(&j, 300, 0, 0);
        let mut spec = NodeImageSpec::default();
        write_into_node_image(&mut spec, None, &j, &[], &pol, t(0)).unwrap();
        let mut j2 = job("nginx:alpine");
        j2.metadata.uid = Some("u2".into());
        write_into_node_image(&mut spec, None, &j2, &[], &pol, t(0)).unwrap();
        let tags: Vec<_> = spec.images.as_ref().unwrap()["nginx"]
            .tags
            .iter()
            .map(|t| (t.tag.clone(), t.version))
            .collect();
        assert_eq!(
            tags,
            vec![("alpine".into(), Some(0)), (D.to_string(), Some(0))]
        );
        // and the job sees its digest tag as its own
        let mut n = NodeImage::new("n", spec);
        n.status = None;
        let c = calculate_status(&j, &[Arc::new(n)], &[], t(1)).unwrap();
        assert_eq!(c.status.active, Some(1));
        assert!(c.not_synced.is_empty());
    }

    #[test]
    fn event_name_lists_are_bounded() {
        let names = |n: usize| (0..n).map(|i| format!("node-{i}")).collect::<Vec<_>>();
        assert_eq!(name_list(&names(2)), "node-0, node-1");
        assert_eq!(name_list(&names(EVENT_NAMES_MAX)).matches(", ").count(), 9);
        let long = name_list(&names(1000));
        assert!(long.ends_with("node-9 and 990 more"), "{long}");
        assert!(long.len() < 200);
    }

    #[test]
    fn a_status_recomputed_from_a_stale_cache_is_not_written_again() {
        let before = ImagePullJobStatus {
            desired: 2,
            active: Some(0),
            ..Default::default()
        };
        let written = ImagePullJobStatus {
            desired: 2,
            active: Some(2),
            start_time: Some(Time(t(10))),
            ..Default::default()
        };
        let last = WrittenStatus {
            replaced: Some(before.clone()),
            written: written.clone(),
        };
        let mut again = written.clone();
        again.start_time = Some(Time(t(11))); // recomputed a second later
        // the cache has not seen the write yet: the same status again is a repeat
        assert!(write_is_repeat(Some(&before), &again, Some(&last)));
        // the cache moved on (our write arrived, or someone else wrote): compare as usual
        assert!(!write_is_repeat(Some(&written), &again, Some(&last)));
        // a different status is never a repeat
        let progressed = ImagePullJobStatus {
            succeeded: Some(1),
            ..written.clone()
        };
        assert!(!write_is_repeat(Some(&before), &progressed, Some(&last)));
        // nothing written yet by this process
        assert!(!write_is_repeat(Some(&before), &again, None));
    }

    #[test]
    fn ttl_after_finished() {
        let mut j = job("nginx");
        assert_eq!(finished_action(&j, t(0)), FinishedAction::NotFinished);
        j.status = Some(ImagePullJobStatus {
            completion_time: Some(Time(t(0))),
            ..Default::default()
        });
        assert_eq!(finished_action(&j, t(0)), FinishedAction::Keep);
        j.spec.template.completion_policy.ttl_seconds_after_finished = Some(60);
        assert_eq!(
            finished_action(&j, t(20)),
            FinishedAction::RequeueAfter(Duration::from_secs(40))
        );
        assert_eq!(finished_action(&j, t(60)), FinishedAction::Delete);
        j.spec.template.completion_policy.ttl_seconds_after_finished = Some(0);
        assert_eq!(finished_action(&j, t(0)), FinishedAction::Delete);
    }
}
