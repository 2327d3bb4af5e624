//! The image puller (spec `imagepull.md` §4.3–§4.6, §5): turns this node's NodeImage spec into CRI
//! `PullImage` calls run by a bounded worker pool, with per-tag retries, timeouts and deadline, and
//! rebuilds the NodeImage status from what the workers report. Planning (`plan_sync`,
//! `build_status`, `image_present`) is pure; [`Puller`] runs workers; `run` in `lib.rs` wires the
//! watch, secrets and status writes.

use crate::cri;
use crate::secrets::Keyring;
use jiff::Timestamp;
use k8s_cri::v1::{
    AuthConfig, Image, ImageSpec as CriImageSpec, PodSandboxConfig, PullImageRequest,
};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::keys::imagepull as keys;
use kruise_crds::keys::{CONDITION_FALSE, CONDITION_TRUE};
use kruise_crds::{
    Condition, IMAGE_PULL_DEFAULT_BACKOFF_LIMIT, IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS,
    ImagePullPhase, ImagePullPolicy, ImageStatus, ImageTagPullPolicy, ImageTagStatus,
    NodeImageSpec, NodeImageStatus, ReferenceObject, SandboxConfig,
};
use kruise_webhook::imagepull::reference::{self, is_digest, join_name_tag};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::AbortHandle;

/// `(image name, tag or digest)`: one pull.
pub type TagKey = (String, String);

/// Tuning of the puller.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pulls running at once on this node (`--max-workers-for-pull-image`).
    pub max_workers: usize,
    /// First wait between attempts (doubles up to `max_backoff`).
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Where pulls are counted.
    pub metrics: crate::metrics::Metrics,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_workers: 2,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            metrics: crate::metrics::Metrics::default(),
        }
    }
}

/// Everything a worker needs to pull one tag.
#[derive(Clone, Debug, PartialEq)]
pub struct PullTask {
    /// Image name (NodeImage key).
    pub image: String,
    /// Tag or digest.
    pub tag: String,
    /// Spec version this pull answers.
    pub version: i64,
    /// Timeout, retries and deadline.
    pub pull_policy: ImageTagPullPolicy,
    /// `IfNotPresent` skips the pull when the image is there.
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Secrets to read credentials from.
    pub secrets: Vec<ReferenceObject>,
    /// CRI sandbox metadata.
    pub sandbox: Option<SandboxConfig>,
    /// Jobs wanting the tag (they get failure events).
    pub owners: Vec<ObjectReference>,
}

impl PullTask {
    /// The reference pulled: `name:tag` or `name@digest`.
    pub fn reference(&self) -> String {
        join_name_tag(&self.image, &self.tag)
    }
}

/// What one sync changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// Start a worker (replacing any running one for the key).
    pub start: Vec<PullTask>,
    /// Take over a finished status written by someone else (the NodeImage controller's timeout
    /// failures, or our own status from before a restart), stopping any worker.
    pub adopt: Vec<(TagKey, ImageTagStatus)>,
    /// Forget the tag (stop its worker): no longer in the spec.
    pub forget: Vec<TagKey>,
}

/// What the puller knows about one tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    /// Version of the status / worker.
    pub version: i64,
    /// Whether the status is final.
    pub finished: bool,
    /// Whether a worker runs for it.
    pub running: bool,
}

/// Plans a sync of the spec against what the puller knows and the stored status (§4.4).
pub fn plan_sync(
    spec: &NodeImageSpec,
    stored: Option<&NodeImageStatus>,
    known: &BTreeMap<TagKey, Known>,
) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut wanted = BTreeSet::new();
    for (image, ispec) in spec.images.iter().flatten() {
        for t in &ispec.tags {
            let key = (image.clone(), t.tag.clone());
            let version = t.version.unwrap_or(0);
            wanted.insert(key.clone());
            let k = known.get(&key).filter(|k| k.version == version);
            if k.is_some_and(|k| k.finished) {
                continue;
            }
            let stored_done = stored
                .and_then(|s| s.image_statuses.as_ref())
                .and_then(|m| m.get(image))
                .and_then(|s| s.tags.iter().find(|s| s.tag == t.tag))
                .filter(|s| s.version.unwrap_or(0) == version && s.completion_time.is_some());
            if let Some(s) = stored_done {
                plan.adopt.push((key, s.clone()));
                continue;
            }
            if k.is_some_and(|k| k.running) {
                continue;
            }
            plan.start.push(PullTask {
                image: image.clone(),
                tag: t.tag.clone(),
                version,
                pull_policy: t.pull_policy.clone().unwrap_or_default(),
                image_pull_policy: t.image_pull_policy,
                secrets: ispec.pull_secrets.clone().unwrap_or_default(),
                sandbox: ispec.sandbox_config.clone(),
                owners: t.owner_references.clone().unwrap_or_default(),
            });
        }
    }
    plan.forget = known
        .keys()
        .filter(|k| !wanted.contains(*k))
        .cloned()
        .collect();
    plan
}

/// The NodeImage status from the puller's statuses (§4.6): desired = spec tags, per image the
/// statuses of spec tags sorted by tag, counts per phase, and the `Synced` condition.
pub fn build_status(
    spec: &NodeImageSpec,
    statuses: &BTreeMap<TagKey, ImageTagStatus>,
    old: Option<&NodeImageStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> NodeImageStatus {
    let mut images: BTreeMap<String, ImageStatus> = BTreeMap::new();
    let mut desired = 0;
    let mut all_done = true;
    for (image, ispec) in spec.images.iter().flatten() {
        for t in &ispec.tags {
            desired += 1;
            let st = statuses.get(&(image.clone(), t.tag.clone()));
            let done = st.is_some_and(|s| {
                s.completion_time.is_some() && s.version.unwrap_or(0) == t.version.unwrap_or(0)
            });
            all_done &= done;
            if let Some(s) = st {
                images
                    .entry(image.clone())
                    .or_insert_with(|| ImageStatus { tags: vec![] })
                    .tags
                    .push(s.clone());
            }
        }
    }
    for st in images.values_mut() {
        st.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
    let count = |p: ImagePullPhase| {
        images
            .values()
            .flat_map(|s| &s.tags)
            .filter(|t| t.phase == p)
            .count() as i32
    };
    let mut conditions: Vec<Condition> = old.and_then(|o| o.conditions.clone()).unwrap_or_default();
    let (status, reason) = if all_done {
        (CONDITION_TRUE, "AllFinished")
    } else {
        (CONDITION_FALSE, "Pulling")
    };
    match conditions
        .iter_mut()
        .find(|c| c.type_ == keys::CONDITION_NODE_IMAGE_SYNCED)
    {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = Some(Time(now));
            }
            c.reason = Some(reason.to_string());
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: keys::CONDITION_NODE_IMAGE_SYNCED.to_string(),
            status: status.to_string(),
            observed_generation: generation,
            last_transition_time: Some(Time(now)),
            last_update_time: None,
            reason: Some(reason.to_string()),
            message: None,
        }),
    }
    NodeImageStatus {
        desired,
        succeeded: Some(count(ImagePullPhase::Succeeded)),
        failed: Some(count(ImagePullPhase::Failed)),
        pulling: Some(count(ImagePullPhase::Pulling)),
        waiting: Some(count(ImagePullPhase::Waiting)),
        image_statuses: (!images.is_empty()).then_some(images),
        first_sync_status: None,
        conditions: Some(conditions),
        observed_generation: generation,
    }
}

/// The CRI image id of `(name, tag)` if the runtime has it (§5.5): tags are matched by their
/// normalized `(familiar name, tag)`, digests against `repo_digests` (decision 3).
pub fn image_present(images: &[Image], name: &str, tag: &str) -> Option<String> {
    let want = (name.to_string(), tag.to_string());
    images
        .iter()
        .find(|img| {
            let refs = if is_digest(tag) {
                &img.repo_digests
            } else {
                &img.repo_tags
            };
            refs.iter()
                .filter_map(|r| reference::name_tag(r).ok())
                .any(|nt| nt == want)
        })
        .map(|img| img.id.clone())
}

/// The CRI request for a pull (§5.3): familiar reference, optional credentials, and a sandbox
/// config always present with the daemon's annotation.
pub fn pull_request(
    task: &PullTask,
    auth: Option<&crate::secrets::Credential>,
) -> PullImageRequest {
    let sandbox = task.sandbox.clone().unwrap_or_default();
    let mut annotations: std::collections::HashMap<String, String> = sandbox
        .annotations
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(
        keys::PULLING_IMAGE_BY_ANNOTATION.to_string(),
        keys::PULLING_IMAGE_BY_DAEMON.to_string(),
    );
    PullImageRequest {
        image: Some(CriImageSpec {
            image: task.reference(),
            ..Default::default()
        }),
        auth: auth.map(|c| AuthConfig {
            username: c.username.clone(),
            password: c.password.clone(),
            ..Default::default()
        }),
        sandbox_config: Some(PodSandboxConfig {
            labels: sandbox.labels.unwrap_or_default().into_iter().collect(),
            annotations,
            ..Default::default()
        }),
    }
}

/// An event the puller wants published.
#[derive(Clone, Debug, PartialEq)]
pub struct PullEvent {
    /// Warning or Normal.
    pub warning: bool,
    /// `PullImageSucceed` / `PullImageFailed`.
    pub reason: &'static str,
    /// Text.
    pub note: String,
    /// Owners of the tag (failure events go to them too, besides the NodeImage).
    pub owners: Vec<ObjectReference>,
}

struct Entry {
    version: i64,
    status: Option<ImageTagStatus>,
    worker: Option<AbortHandle>,
}

struct Shared {
    runtime: cri::Runtime,
    opts: Options,
    entries: Mutex<BTreeMap<TagKey, Entry>>,
    changed: Notify,
    permits: Semaphore,
    events: mpsc::UnboundedSender<PullEvent>,
}

/// Runs one worker per active tag, at most `max_workers` pulling at once.
#[derive(Clone)]
pub struct Puller {
    shared: Arc<Shared>,
}

impl Puller {
    /// A puller over `runtime`; events go to `events`.
    pub fn new(
        runtime: cri::Runtime,
        opts: Options,
        events: mpsc::UnboundedSender<PullEvent>,
    ) -> Self {
        let permits = Semaphore::new(opts.max_workers.max(1));
        Puller {
            shared: Arc::new(Shared {
                runtime,
                opts,
                entries: Mutex::new(BTreeMap::new()),
                changed: Notify::new(),
                permits,
                events,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TagKey, Entry>> {
        // A poisoned lock only means a worker panicked mid-update; the map is still usable.
        self.shared
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves when a worker changed a status.
    pub async fn changed(&self) {
        self.shared.changed.notified().await
    }

    /// What the puller knows, for [`plan_sync`].
    pub fn known(&self) -> BTreeMap<TagKey, Known> {
        self.lock()
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    Known {
                        version: e.version,
                        finished: e
                            .status
                            .as_ref()
                            .is_some_and(|s| s.completion_time.is_some()),
                        running: e.worker.as_ref().is_some_and(|w| !w.is_finished()),
                    },
                )
            })
            .collect()
    }

    /// Current tag statuses.
    pub fn statuses(&self) -> BTreeMap<TagKey, ImageTagStatus> {
        self.lock()
            .iter()
            .filter_map(|(k, e)| e.status.clone().map(|s| (k.clone(), s)))
            .collect()
    }

    /// Applies the spec: plans against what is known and the stored status, then starts, stops
    /// and adopts. `keyring(image)` gives the credentials of an image's pull secrets.
    pub fn sync(
        &self,
        spec: &NodeImageSpec,
        stored: Option<&NodeImageStatus>,
        keyring: &dyn Fn(&str) -> Keyring,
    ) -> SyncPlan {
        let plan = plan_sync(spec, stored, &self.known());
        let mut entries = self.lock();
        for key in &plan.forget {
            if let Some(e) = entries.remove(key)
                && let Some(w) = e.worker
            {
                w.abort();
            }
        }
        for (key, st) in &plan.adopt {
            let e = entries.entry(key.clone()).or_insert(Entry {
                version: 0,
                status: None,
                worker: None,
            });
            if let Some(w) = e.worker.take() {
                w.abort();
            }
            e.version = st.version.unwrap_or(0);
            e.status = Some(st.clone());
        }
        for task in &plan.start {
            let key = (task.image.clone(), task.tag.clone());
            if let Some(old) = entries.get_mut(&key).and_then(|e| e.worker.take()) {
                old.abort();
            }
            let ring = keyring(&task.image);
            let handle = tokio::spawn(run_worker(self.clone(), task.clone(), ring));
            entries.insert(
                key,
                Entry {
                    version: task.version,
                    status: Some(ImageTagStatus {
                        tag: task.tag.clone(),
                        phase: ImagePullPhase::Waiting,
                        progress: None,
                        start_time: None,
                        completion_time: None,
                        version: Some(task.version),
                        image_id: None,
                        message: None,
                    }),
                    worker: Some(handle.abort_handle()),
                },
            );
        }
        drop(entries);
        if !plan.start.is_empty() || !plan.adopt.is_empty() || !plan.forget.is_empty() {
            self.shared.changed.notify_one();
        }
        plan
    }

    /// Records a worker's status if the worker is still the current one for the tag.
    fn report(&self, task: &PullTask, status: ImageTagStatus) -> bool {
        let mut entries = self.lock();
        let key = (task.image.clone(), task.tag.clone());
        match entries.get_mut(&key) {
            Some(e) if e.version == task.version => {
                e.status = Some(status);
                drop(entries);
                self.shared.changed.notify_one();
                true
            }
            _ => false,
        }
    }

    fn event(&self, ev: PullEvent) {
        // The receiver only goes away at shutdown; a lost event then is fine.
        let _ = self.shared.events.send(ev);
    }
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// A CRI call failed.
    #[error(transparent)]
    Cri(#[from] cri::Error),
    /// The attempt ran out of time.
    #[error("pulling image {0} is canceled: timeout after {1:?}")]
    Timeout(String, Duration),
    /// The job's deadline passed.
    #[error("{}", keys::MESSAGE_PULL_DEADLINE_EXCEEDED)]
    Deadline,
    /// Every matching credential was refused.
    #[error("{}", .0.join("; "))]
    AllCredentials(Vec<String>),
    /// The reference does not parse.
    #[error("invalid image reference {0:?}")]
    Reference(String),
}

async fn attempt(rt: &mut cri::Runtime, task: &PullTask, ring: &Keyring) -> Result<(), PullError> {
    if task.image_pull_policy == Some(ImagePullPolicy::IfNotPresent)
        && image_present(&rt.list_images().await?, &task.image, &task.tag).is_some()
    {
        return Ok(());
    }
    let full = task.reference();
    let repo = reference::parse(&full)
        .map_err(|_| PullError::Reference(full.clone()))?
        .repository();
    let creds = ring.lookup(&repo);
    if creds.is_empty() {
        rt.pull_image(pull_request(task, None)).await?;
        return Ok(());
    }
    let mut errs = Vec::new();
    for c in &creds {
        match rt.pull_image(pull_request(task, Some(c))).await {
            Ok(_) => return Ok(()),
            Err(e) => errs.push(e.to_string()),
        }
    }
    Err(PullError::AllCredentials(errs))
}

fn now_time() -> Time {
    Time(Timestamp::now())
}

/// One tag's pull (§4.5): waits for a permit, then up to `backoffLimit + 1` attempts of at most
/// `timeoutSeconds` each, within `activeDeadlineSeconds` from the start.
async fn run_worker(puller: Puller, task: PullTask, ring: Keyring) {
    let shared = puller.shared.clone();
    let Ok(_permit) = shared.permits.acquire().await else {
        return;
    };
    let _busy = shared.opts.metrics.pull_started();
    let started = std::time::Instant::now();
    let start_time = now_time();
    let base = ImageTagStatus {
        tag: task.tag.clone(),
        phase: ImagePullPhase::Pulling,
        progress: Some(0),
        start_time: Some(start_time.clone()),
        completion_time: None,
        version: Some(task.version),
        image_id: None,
        message: None,
    };
    if !puller.report(&task, base.clone()) {
        return;
    }
    let pp = &task.pull_policy;
    let timeout = Duration::from_secs(
        u64::try_from(
            pp.timeout_seconds
                .unwrap_or(IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS),
        )
        .unwrap_or(600),
    );
    let backoff = match pp.backoff_limit {
        Some(b) if b >= 0 => b,
        _ => IMAGE_PULL_DEFAULT_BACKOFF_LIMIT,
    };
    let deadline = pp
        .active_deadline_seconds
        .map(|d| started + Duration::from_secs(u64::try_from(d).unwrap_or(0)));
    let mut step = shared.opts.initial_backoff;
    let mut rt = shared.runtime.clone();
    let mut last_err = None;
    for i in 0..=backoff {
        let limit = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    last_err = Some(PullError::Deadline);
                    break;
                }
                timeout.min(left)
            }
            None => timeout,
        };
        let res = match tokio::time::timeout(limit, attempt(&mut rt, &task, &ring)).await {
            Ok(r) => r,
            Err(_) => Err(PullError::Timeout(task.reference(), limit)),
        };
        match res {
            Ok(()) => {
                shared
                    .opts
                    .metrics
                    .pull_finished(true, started.elapsed().as_secs_f64());
                let id = rt
                    .list_images()
                    .await
                    .ok()
                    .and_then(|imgs| image_present(&imgs, &task.image, &task.tag))
                    .map(|id| format!("{}@{id}", task.image));
                puller.report(
                    &task,
                    ImageTagStatus {
                        phase: ImagePullPhase::Succeeded,
                        progress: Some(100),
                        completion_time: Some(now_time()),
                        image_id: id,
                        ..base
                    },
                );
                puller.event(PullEvent {
                    warning: false,
                    reason: keys::REASON_PULL_IMAGE_SUCCEED,
                    note: format!(
                        "Image {}, ecalpsedTime {:?}",
                        task.reference(),
                        started.elapsed()
                    ),
                    owners: Vec::new(),
                });
                return;
            }
            Err(e) => {
                shared.opts.metrics.attempt_failed();
                tracing::warn!(image = %task.reference(), attempt = i + 1, error = %e, "pull failed");
                last_err = Some(e);
                if i < backoff {
                    tokio::time::sleep(step).await;
                    step = (step * 2).min(shared.opts.max_backoff);
                }
            }
        }
    }
    let msg = last_err.map(|e| e.to_string()).unwrap_or_default();
    shared
        .opts
        .metrics
        .pull_finished(false, started.elapsed().as_secs_f64());
    puller.report(
        &task,
        ImageTagStatus {
            phase: ImagePullPhase::Failed,
            completion_time: Some(now_time()),
            message: Some(msg.clone()),
            ..base
        },
    );
    puller.event(PullEvent {
        warning: true,
        reason: keys::REASON_PULL_IMAGE_FAILED,
        note: format!("Image {} {msg}", task.reference()),
        owners: task.owners.clone(),
    });
}

#[cfg(test)]
mod tests;
