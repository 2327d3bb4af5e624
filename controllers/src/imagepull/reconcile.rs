//! The thin, async side of image warm-up: kube-runtime controllers for Node (NodeImage creation),
//! NodeImage (GC, timeouts, deletion), ImagePullJob and ImageListPullJob. Each reconcile observes
//! the caches, calls a pure planner of this module's siblings, and turns the plan into API calls.

use super::imagelistpulljob as list_plan;
use super::imagepulljob::{self as job_plan, FinishedAction};
use super::nodeimage::{self as ni_plan, Lifecycle, Lookup};
use super::secrets as secret_plan;
use super::selection::{NodeSelection, node_image_concerns, select_node_images};
use super::{Error, Result, kube_err};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node, ObjectReference, Pod, Secret};
use kruise_crds::keys::CONTROLLER_REVISION_HASH_LABEL;
use kruise_crds::keys::imagepull as keys;
use kruise_crds::{
    FIELD_MANAGER, ImageListPullJob, ImagePullJob, NodeImage, NodeImageSpec, ReferenceObject,
};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Event reason on an ImagePullJob when it wrote its image into NodeImages.
pub const REASON_SYNCED_NODE_IMAGES: &str = "SyncedNodeImages";
/// Event reason on an ImagePullJob when it completed.
pub const REASON_JOB_COMPLETED: &str = "JobCompleted";
/// Event reason on an ImagePullJob/ImageListPullJob deleted after `ttlSecondsAfterFinished`.
pub const REASON_TTL_DELETED: &str = "TTLExpired";
/// Event reason on a Node when its NodeImage was created.
pub const REASON_NODE_IMAGE_CREATED: &str = "NodeImageCreated";
/// Event reason on a NodeImage whose tags were removed (owner gone or TTL).
pub const REASON_TAGS_REMOVED: &str = "TagsRemoved";

/// Settings of the image warm-up controllers.
#[derive(Clone)]
pub struct Settings {
    /// Namespace synced pull secrets live in (`kruise-daemon-config` unless overridden).
    pub daemon_namespace: String,
    /// `--default-ttlseconds-for-always-nodeimage`.
    pub default_ttl_for_always: i32,
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// Where reconciles are counted (`controller_runtime_reconcile_*`), if anywhere.
    pub metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("daemon_namespace", &self.daemon_namespace)
            .field("default_ttl_for_always", &self.default_ttl_for_always)
            .field("concurrency", &self.concurrency)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Settings {
    /// Defaults with the given secrets namespace.
    pub fn new(daemon_namespace: String) -> Self {
        Settings {
            daemon_namespace,
            default_ttl_for_always: job_plan::DEFAULT_TTL_FOR_ALWAYS_NODE_IMAGE,
            concurrency: 3,
            metrics: None,
        }
    }

    /// The same settings, counting reconciles in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

#[derive(Clone)]
struct Ctx {
    client: Client,
    settings: Settings,
    node_images: Store<NodeImage>,
    nodes: Store<Node>,
    jobs: Store<ImagePullJob>,
    recorder: Recorder,
    shared: Arc<Shared>,
}

/// State the reconciles of one manager share.
#[derive(Default)]
struct Shared {
    /// One lock per NodeImage name: job reconciles that write the same NodeImage take turns
    /// instead of failing each other's writes with 409 Conflict.
    node_image_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last status written for each job, by UID (see [`job_plan::write_is_repeat`]).
    written: std::sync::Mutex<HashMap<String, job_plan::WrittenStatus>>,
}

impl Shared {
    fn node_image_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .node_image_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if locks.len() > 4096 {
            // forget the locks nobody holds or waits for
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(name.to_string()).or_default().clone()
    }

    fn last_written(&self, uid: &str) -> Option<job_plan::WrittenStatus> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uid)
            .cloned()
    }

    fn set_written(&self, uid: &str, w: Option<job_plan::WrittenStatus>) {
        let mut m = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match w {
            Some(w) => m.insert(uid.to_string(), w),
            None => m.remove(uid),
        };
    }
}

impl Ctx {
    fn observe(&self, controller: &str, ok: bool, start: std::time::Instant) {
        if let Some(m) = &self.settings.metrics {
            let result = if ok { "success" } else { "error" };
            m.reconciled(controller, result, start.elapsed().as_secs_f64());
        }
    }

    async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.event_ref(&obj.object_ref(&()), warning, reason, note)
            .await;
    }

    async fn event_ref(&self, target: &ObjectReference, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&ev, target).await {
            tracing::warn!(%err, reason, "publish event");
        }
    }
}

fn jitter(d: Duration) -> Duration {
    d + Duration::from_millis(fastrand::u64(0..2000))
}

fn error_policy<K>(_: Arc<K>, err: &Error, _: Arc<Ctx>) -> Action {
    if let Error::Panicked(p) = err {
        // logged by the guard, once per object
        return Action::requeue(p.retry_after);
    }
    tracing::warn!(error = %err, "image warm-up reconcile failed");
    Action::requeue(jitter(Duration::from_secs(5)))
}

/// `reconcile` behind the panic guard: a panic fails that one object (requeued with backoff).
fn guarded<K, R, Fut>(
    controller: &'static str,
    kind: &'static str,
    reconcile: R,
) -> impl FnMut(Arc<K>, Arc<Ctx>) -> futures::future::BoxFuture<'static, Result<Action>>
where
    K: Resource + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<Ctx>) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<Action>> + Send + 'static,
{
    move |obj, ctx| {
        Box::pin(async move {
            let object = crate::guard::object_key(obj.as_ref());
            let metrics = ctx.settings.metrics.clone();
            let fut = reconcile(obj, ctx);
            crate::guard::reconcile(metrics.as_ref(), controller, kind, &object, fut).await
        })
    }
}

/// A watch of `api` that fills a cache of its own before it passes each event on: a controller
/// woken by these events finds them in the returned store.
fn cached_events<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (reader, events)
}

/// Runs the four controllers until they all stop.
pub async fn run_controllers(client: Client, settings: Settings) -> anyhow::Result<()> {
    let ni_api: Api<NodeImage> = Api::all(client.clone());
    let node_api: Api<Node> = Api::all(client.clone());
    let job_api: Api<ImagePullJob> = Api::all(client.clone());
    let list_api: Api<ImageListPullJob> = Api::all(client.clone());
    let secret_api: Api<Secret> = Api::all(client.clone());
    let cfg = watcher::Config::default;

    let ni_ctrl = Controller::new(ni_api.clone(), cfg());
    let node_ctrl = Controller::new(node_api.clone(), cfg());
    let job_ctrl = Controller::new(job_api.clone(), cfg());
    let list_ctrl = Controller::new(list_api, cfg());
    // Every controller here reads the caches of the watches that wake it. NodeImage events wake
    // jobs; the woken reconcile must see the event in the cache it reads.
    // The NodeImage controller's own cache is fed by another watch, which can lag this one: a
    // job woken by a NodeImage's "Succeeded" then read the older "Pulling" from it, wrote nothing,
    // and was not woken again until its 300 s requeue (the helm e2e test's intermittent timeout).
    let (ni_nodes_reader, ni_node_events) = cached_events(node_api.clone());
    let (ni_jobs_reader, ni_job_events) = cached_events(job_api.clone());
    let (list_jobs_reader, list_job_events) = cached_events(job_api.clone());
    let (job_ni_reader, job_ni_events) = cached_events(ni_api.clone());
    // The closures below borrow the controllers; keep them out of the awaited future (not Send).
    let (ni_ctx, node_ctx, job_ctx, list_ctx) = {
        let recorder = |name: &str| {
            Recorder::new(
                client.clone(),
                Reporter {
                    controller: name.to_string(),
                    instance: None,
                },
            )
        };
        let shared = Arc::new(Shared::default());
        let ctx = |name: &str| {
            Arc::new(Ctx {
                client: client.clone(),
                settings: settings.clone(),
                node_images: ni_ctrl.store(),
                nodes: node_ctrl.store(),
                jobs: job_ctrl.store(),
                recorder: recorder(name),
                shared: shared.clone(),
            })
        };
        let node_ctx = ctx(keys::NODE_IMAGE_CONTROLLER);
        // the NodeImage controller reads Nodes and jobs from the watches that wake it
        let ni_ctx = Arc::new(Ctx {
            nodes: ni_nodes_reader.clone(),
            jobs: ni_jobs_reader.clone(),
            ..(*node_ctx).clone()
        });
        // likewise the list controller reads its jobs from the watch that wakes it
        let list_ctx = Arc::new(Ctx {
            jobs: list_jobs_reader.clone(),
            ..(*ctx(keys::IMAGE_LIST_PULL_JOB_CONTROLLER)).clone()
        });
        // the job controller reads NodeImages from the cache of the watch that wakes it (below)
        let job_ctx = Arc::new(Ctx {
            client: client.clone(),
            settings: settings.clone(),
            node_images: job_ni_reader.clone(),
            nodes: node_ctrl.store(),
            jobs: job_ctrl.store(),
            recorder: recorder(keys::IMAGE_PULL_JOB_CONTROLLER),
            shared: shared.clone(),
        });
        (ni_ctx, node_ctx, job_ctx, list_ctx)
    };
    let conc = kube::runtime::controller::Config::default().concurrency(settings.concurrency);

    // NodeImage: wake on its Node and on jobs going away.
    let ni_store = ni_ctrl.store();
    let ni_fut = ni_ctrl
        .with_config(conc.clone())
        .watches_stream(ni_node_events, |node: Node| {
            Some(ObjectRef::<NodeImage>::new(&node.name_any()))
        })
        .watches_stream(ni_job_events, move |job: ImagePullJob| {
            node_images_of_job(&ni_store, &job)
        })
        .run(
            guarded(
                keys::NODE_IMAGE_CONTROLLER,
                "NodeImage",
                reconcile_node_image,
            ),
            error_policy,
            ni_ctx,
        )
        .for_each(log_result);
    let node_fut = node_ctrl
        .with_config(conc.clone())
        .run(
            guarded(keys::NODE_IMAGE_CONTROLLER, "Node", reconcile_node),
            error_policy,
            node_ctx,
        )
        .for_each(log_result);

    let jobs_for_ni = job_ctrl.store();
    let jobs_for_secret = job_ctrl.store();
    let daemon_ns = settings.daemon_namespace.clone();
    let job_fut = job_ctrl
        .with_config(conc.clone())
        .watches_stream(job_ni_events, move |ni: NodeImage| {
            jobs_for_node_image(&jobs_for_ni, &ni)
        })
        .watches(secret_api, cfg(), move |s: Secret| {
            jobs_for_secret_change(&jobs_for_secret, &s, &daemon_ns)
        })
        .run(
            guarded(
                keys::IMAGE_PULL_JOB_CONTROLLER,
                "ImagePullJob",
                reconcile_job,
            ),
            error_policy,
            job_ctx,
        )
        .for_each(log_result);
    let list_fut = list_ctrl
        .with_config(conc)
        .owns_stream(list_job_events)
        .run(
            guarded(
                keys::IMAGE_LIST_PULL_JOB_CONTROLLER,
                "ImageListPullJob",
                reconcile_list,
            ),
            error_policy,
            list_ctx,
        )
        .for_each(log_result);
    futures::join!(ni_fut, node_fut, job_fut, list_fut);
    Ok(())
}

async fn log_result<K: std::fmt::Debug, E: std::fmt::Display>(res: Result<K, E>) {
    match res {
        Ok(obj) => tracing::debug!(?obj, "reconciled"),
        Err(err) => tracing::debug!(%err, "reconcile error"),
    }
}

fn is_active(job: &ImagePullJob) -> bool {
    job.metadata.deletion_timestamp.is_none()
        && job
            .status
            .as_ref()
            .is_none_or(|s| s.completion_time.is_none())
}

/// Active jobs a NodeImage event concerns (§2.9), plus every job holding a tag in it.
fn jobs_for_node_image(jobs: &Store<ImagePullJob>, ni: &NodeImage) -> Vec<ObjectRef<ImagePullJob>> {
    let owners: std::collections::BTreeSet<&str> = ni
        .spec
        .images
        .iter()
        .flatten()
        .flat_map(|(_, i)| &i.tags)
        .flat_map(|t| t.owner_references.iter().flatten())
        .filter_map(|o| o.uid.as_deref())
        .collect();
    jobs.state()
        .iter()
        .filter(|j| is_active(j))
        .filter(|j| {
            j.metadata
                .uid
                .as_deref()
                .is_some_and(|u| owners.contains(u))
                || NodeSelection::of(&j.spec.template).is_ok_and(|s| node_image_concerns(&s, ni))
        })
        .map(|j| ObjectRef::from_obj(j.as_ref()))
        .collect()
}

/// Jobs listing a changed source secret (copies in the daemon namespace are ours: ignored).
fn jobs_for_secret_change(
    jobs: &Store<ImagePullJob>,
    s: &Secret,
    daemon_ns: &str,
) -> Vec<ObjectRef<ImagePullJob>> {
    let ns = s.namespace().unwrap_or_default();
    if ns == daemon_ns {
        return Vec::new();
    }
    let name = s.name_any();
    jobs.state()
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| {
            j.spec
                .template
                .pull_secrets
                .iter()
                .flatten()
                .any(|p| *p == name)
        })
        .map(|j| ObjectRef::from_obj(j.as_ref()))
        .collect()
}

/// NodeImages holding tags of a job that is going away or done (owner GC, §3.1).
fn node_images_of_job(nis: &Store<NodeImage>, job: &ImagePullJob) -> Vec<ObjectRef<NodeImage>> {
    if is_active(job) {
        return Vec::new();
    }
    let Some(uid) = job.metadata.uid.as_deref() else {
        return Vec::new();
    };
    nis.state()
        .iter()
        .filter(|ni| {
            ni.spec
                .images
                .iter()
                .flatten()
                .flat_map(|(_, i)| &i.tags)
                .flat_map(|t| t.owner_references.iter().flatten())
                .any(|o| o.uid.as_deref() == Some(uid))
        })
        .map(|ni| ObjectRef::from_obj(ni.as_ref()))
        .collect()
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

// ---------------------------------------------------------------------------------------------
// Node → NodeImage creation

async fn reconcile_node(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    let start = std::time::Instant::now();
    let res = reconcile_node_inner(node, ctx.clone()).await;
    ctx.observe(keys::NODE_IMAGE_CONTROLLER, res.is_ok(), start);
    res
}

async fn reconcile_node_inner(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    // Bounded: on a manager's first start in a fresh cluster this wait was seen never to end.
    let _ = tokio::time::timeout(Duration::from_secs(5), ctx.node_images.wait_until_ready()).await;
    let name = node.name_any();
    let existing = ctx.node_images.get(&ObjectRef::new(&name));
    match ni_plan::plan_lifecycle(Some(&node), existing.as_deref(), Timestamp::now()) {
        Lifecycle::Create => {
            // the cache may lag (or not have listed yet): ask before creating
            let live = Api::<NodeImage>::all(ctx.client.clone())
                .get_metadata_opt(&name)
                .await
                .map_err(kube_err(format!("get NodeImage {name}")))?;
            if live.is_some() {
                return Ok(Action::await_change());
            }
            let mut ni = NodeImage::new(&name, NodeImageSpec::default());
            ni.metadata.labels = node.metadata.labels.clone();
            let api: Api<NodeImage> = Api::all(ctx.client.clone());
            match api.create(&PostParams::default(), &ni).await {
                Ok(_) => {
                    ctx.event(
                        node.as_ref(),
                        false,
                        REASON_NODE_IMAGE_CREATED,
                        format!("Created NodeImage {name}"),
                    )
                    .await
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(kube_err(format!("create NodeImage {name}"))(e)),
            }
            Ok(Action::await_change())
        }
        Lifecycle::CreateAfter(d) => Ok(Action::requeue(d)),
        Lifecycle::Delete | Lifecycle::Nothing => Ok(Action::await_change()),
    }
}

// ---------------------------------------------------------------------------------------------
// NodeImage maintenance

/// Whether a cache may be read: its first list is done, or (when the readiness signal is late,
/// which was seen never to arrive on some first starts) it already holds a complete list (the
/// reflector swaps in whole lists). `false`: requeue rather than act on an empty cache.
async fn cache_usable<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(
        tokio::time::timeout(Duration::from_secs(5), store.wait_until_ready()).await,
        Ok(Ok(()))
    ) || !store.state().is_empty()
}

/// Requeue delay while a cache is not usable yet.
const CACHE_NOT_READY_REQUEUE: Duration = Duration::from_secs(2);

async fn reconcile_node_image(ni: Arc<NodeImage>, ctx: Arc<Ctx>) -> Result<Action> {
    let start = std::time::Instant::now();
    let res = reconcile_node_image_inner(ni, ctx.clone()).await;
    ctx.observe(keys::NODE_IMAGE_CONTROLLER, res.is_ok(), start);
    res
}

async fn reconcile_node_image_inner(ni: Arc<NodeImage>, ctx: Arc<Ctx>) -> Result<Action> {
    if !cache_usable(&ctx.nodes).await || !cache_usable(&ctx.jobs).await {
        return Ok(Action::requeue(CACHE_NOT_READY_REQUEUE));
    }
    let name = ni.name_any();
    let api: Api<NodeImage> = Api::all(ctx.client.clone());
    let now = Timestamp::now();
    let node = ctx.nodes.get(&ObjectRef::new(&name));
    if ni_plan::plan_lifecycle(node.as_deref(), Some(&ni), now) == Lifecycle::Delete {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(kube_err(format!("delete NodeImage {name}"))(e)),
        }
        return Ok(Action::await_change());
    }
    let Some(node) = node else {
        // A fake NodeImage (no Node): nothing to copy, no GC.
        return Ok(Action::await_change());
    };
    // Legacy (non-batch) secret references are dropped once their secret is gone.
    let mut secrets_found: BTreeMap<(String, String), Lookup> = BTreeMap::new();
    for r in ni
        .spec
        .images
        .iter()
        .flatten()
        .flat_map(|(_, i)| i.pull_secrets.iter().flatten())
        .filter(|r| r.mode.as_deref() != Some(keys::PULL_SECRET_MODE_BATCH))
    {
        let ns = r.namespace.clone().unwrap_or_default();
        let n = r.name.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let found = match api.get_metadata_opt(&n).await {
            Ok(Some(_)) => Lookup::Found(String::new()),
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::Unknown,
        };
        secrets_found.insert((ns, n), found);
    }
    // Completed jobs that the cache still holds may have just been deleted (each controller has its
    // own watch, so this one can hear of the deletion first): confirm those with the API server.
    let mut jobs_gone: BTreeSet<(String, String)> = BTreeSet::new();
    let owners: BTreeSet<(String, String)> = ni
        .spec
        .images
        .iter()
        .flatten()
        .flat_map(|(_, i)| &i.tags)
        .flat_map(|t| t.owner_references.iter().flatten())
        .filter(|r| r.kind.as_deref() == Some("ImagePullJob"))
        .map(|r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    for (ns, n) in owners {
        let cached = ctx.jobs.get(&ObjectRef::new(&n).within(&ns));
        let completed = cached.as_ref().is_some_and(|j| {
            j.status
                .as_ref()
                .is_some_and(|s| s.completion_time.is_some())
        });
        if completed {
            let api: Api<ImagePullJob> = Api::namespaced(ctx.client.clone(), &ns);
            let uid = cached.and_then(|j| j.metadata.uid.clone());
            match api.get_metadata_opt(&n).await {
                Ok(None) => {
                    jobs_gone.insert((ns, n));
                }
                Ok(Some(live)) if live.metadata.uid != uid => {
                    jobs_gone.insert((ns, n));
                }
                _ => {}
            }
        }
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let spec = ni_plan::maintain_spec(
        &ni,
        &labels,
        |ns, n| match ctx.jobs.get(&ObjectRef::new(n).within(ns)) {
            // a job being deleted no longer owns tags: its final delete event may reach this
            // controller before the shared job cache drops it
            Some(j) if j.metadata.deletion_timestamp.is_some() => Lookup::NotFound,
            Some(_) if jobs_gone.contains(&(ns.to_string(), n.to_string())) => Lookup::NotFound,
            Some(j) => Lookup::Found(j.metadata.uid.clone().unwrap_or_default()),
            None => Lookup::NotFound,
        },
        |ns, n| {
            secrets_found
                .get(&(ns.to_string(), n.to_string()))
                .cloned()
                .unwrap_or(Lookup::Unknown)
        },
        now,
    );
    if spec.changed {
        let mut obj = (*ni).clone();
        obj.metadata.managed_fields = None;
        obj.metadata.labels = Some(spec.labels.clone());
        obj.spec = spec.spec.clone();
        match api.replace(&name, &PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_secs(1))),
            Err(e) => return Err(kube_err(format!("update NodeImage {name}"))(e)),
        }
        if !spec.removed.is_empty() {
            let list: Vec<String> = spec
                .removed
                .iter()
                .map(|(i, t)| kruise_webhook::imagepull::reference::join_name_tag(i, t))
                .collect();
            ctx.event(
                ni.as_ref(),
                false,
                REASON_TAGS_REMOVED,
                format!("Removed {}", job_plan::name_list(&list)),
            )
            .await;
        }
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let status = ni_plan::maintain_status(&ni, now);
    if let Some(new) = &status.status {
        let mut obj = (*ni).clone();
        obj.metadata.managed_fields = None;
        obj.status = Some(new.clone());
        match api
            .replace_status(&name, &PostParams::default(), &obj)
            .await
        {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_secs(1))),
            Err(e) => return Err(kube_err(format!("update NodeImage {name} status"))(e)),
        }
        for f in &status.failures {
            let note = f.note(&name);
            for owner in &f.owners {
                ctx.event_ref(owner, true, keys::REASON_PULL_IMAGE_FAILED, note.clone())
                    .await;
            }
            ctx.event(ni.as_ref(), true, keys::REASON_PULL_IMAGE_FAILED, note)
                .await;
        }
    }
    let wait = [spec.requeue, status.requeue]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(1800));
    let wait = if wait < Duration::from_secs(3) {
        jitter(Duration::from_secs(3))
    } else {
        wait
    };
    Ok(Action::requeue(wait))
}

// ---------------------------------------------------------------------------------------------
// ImagePullJob

fn job_key(job: &ImagePullJob) -> String {
    secret_plan::key(&job.namespace().unwrap_or_default(), &job.name_any())
}

/// Syncs the job's pull secrets into the daemon namespace (§2.8); returns the references to write
/// into NodeImages. `running == false` releases everything the job holds.
async fn sync_job_secrets(
    job: &ImagePullJob,
    ctx: &Ctx,
    running: bool,
) -> Result<Vec<ReferenceObject>> {
    let names = job.spec.template.pull_secrets.clone().unwrap_or_default();
    // `pullSecrets` is immutable, so a job without any never held a synced copy.
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let job_ns = job
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let daemon_ns = ctx.settings.daemon_namespace.as_str();
    if job_ns == daemon_ns {
        return Ok(secret_plan::direct_references(daemon_ns, &names));
    }
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = ns_api
        .get_opt(daemon_ns)
        .await
        .map_err(kube_err(format!("get namespace {daemon_ns}")))?;
    if ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()) {
        return Err(Error::DaemonNamespace(daemon_ns.to_string()));
    }
    let copies_api: Api<Secret> = Api::namespaced(ctx.client.clone(), daemon_ns);
    let copies = copies_api
        .list(&ListParams::default())
        .await
        .map_err(kube_err(format!("list secrets in {daemon_ns}")))?
        .items;
    let plan = secret_plan::plan(&job_ns, &job.name_any(), &names, running, &copies);
    for r in &plan.release {
        let res = if r.remaining.is_empty() {
            copies_api
                .delete(&r.name, &DeleteParams::default())
                .await
                .map(|_| ())
        } else {
            let copy = copies.iter().find(|c| c.name_any() == r.name);
            match copy {
                Some(c) => copies_api
                    .replace(
                        &r.name,
                        &PostParams::default(),
                        &secret_plan::with_references(c, &r.remaining),
                    )
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        match res {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(kube_err(format!("release secret {}", r.name))(e)),
        }
    }
    let me = job_key(job);
    let sources: Api<Secret> = Api::namespaced(ctx.client.clone(), &job_ns);
    let mut refs = Vec::new();
    for c in &plan.claim {
        let Some(src) = sources
            .get_opt(&c.source)
            .await
            .map_err(kube_err(format!("get secret {job_ns}/{}", c.source)))?
        else {
            ctx.event(
                job,
                true,
                "SecretNotFound",
                format!("pull secret {job_ns}/{} not found", c.source),
            )
            .await;
            continue;
        };
        let existing = c
            .existing
            .as_ref()
            .and_then(|n| copies.iter().find(|s| &s.name_any() == n));
        match existing {
            Some(copy) => {
                if let Some(updated) = secret_plan::refresh_copy(copy, &src, &me) {
                    copies_api
                        .replace(&copy.name_any(), &PostParams::default(), &updated)
                        .await
                        .map_err(kube_err(format!("update secret {}", copy.name_any())))?;
                }
                refs.push(secret_plan::reference(copy));
            }
            None => {
                let name = format!("{}-{}", c.source, secret_plan::random_suffix());
                let copy = secret_plan::new_copy(&src, daemon_ns, &name, &me);
                let created = copies_api
                    .create(&PostParams::default(), &copy)
                    .await
                    .map_err(kube_err(format!("create secret {daemon_ns}/{name}")))?;
                refs.push(secret_plan::reference(&created));
            }
        }
    }
    Ok(refs)
}

/// Releases secrets and removes the protection finalizer.
async fn finalize_job(job: &ImagePullJob, ctx: &Ctx, api: &Api<ImagePullJob>) -> Result<()> {
    ctx.shared
        .set_written(job.metadata.uid.as_deref().unwrap_or_default(), None);
    match sync_job_secrets(job, ctx, false).await {
        Ok(_) | Err(Error::DaemonNamespace(_)) => {}
        Err(e) => return Err(e),
    }
    let fins = job.finalizers();
    if fins.iter().any(|f| f == keys::PROTECTION_FINALIZER) {
        let rest: Vec<&String> = fins
            .iter()
            .filter(|f| *f != keys::PROTECTION_FINALIZER)
            .collect();
        let patch =
            json!({"metadata": {"finalizers": rest, "resourceVersion": job.resource_version()}});
        match api
            .patch(
                &job.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(kube_err("remove finalizer")(e)),
        }
    }
    Ok(())
}

/// How many NodeImages one job reconcile writes at once.
const NODE_IMAGE_WRITES_IN_FLIGHT: usize = 16;

/// A NodeImage as [`write_node_image`] left it, and whether it wrote it.
type Written = (NodeImage, bool);

/// Writes the job into one NodeImage (read fresh, retried on conflicts, one writer per NodeImage
/// in this process at a time); returns the NodeImage as read or written and whether it was
/// written, `None` when it is gone.
async fn write_node_image(
    ctx: &Ctx,
    name: &str,
    job: &ImagePullJob,
    secrets: &[ReferenceObject],
    policy: &kruise_crds::ImageTagPullPolicy,
) -> Result<Option<Written>> {
    let api: Api<NodeImage> = Api::all(ctx.client.clone());
    let lock = ctx.shared.node_image_lock(name);
    let _turn = lock.lock().await;
    for _ in 0..5 {
        let Some(mut ni) = api
            .get_opt(name)
            .await
            .map_err(kube_err(format!("get NodeImage {name}")))?
        else {
            return Ok(None);
        };
        let status = ni.status.clone();
        let before = ni.clone();
        if !job_plan::write_into_node_image(
            &mut ni.spec,
            status.as_ref(),
            job,
            secrets,
            policy,
            Timestamp::now(),
        )? {
            return Ok(Some((before, false)));
        }
        ni.metadata.managed_fields = None;
        match api.replace(name, &PostParams::default(), &ni).await {
            Ok(written) => return Ok(Some((written, true))),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(kube_err(format!("update NodeImage {name}"))(e)),
        }
    }
    Ok(None)
}

async fn reconcile_job(job: Arc<ImagePullJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let start = std::time::Instant::now();
    let res = reconcile_job_inner(job, ctx.clone()).await;
    ctx.observe(keys::IMAGE_PULL_JOB_CONTROLLER, res.is_ok(), start);
    res
}

async fn reconcile_job_inner(job: Arc<ImagePullJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = job
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = job.name_any();
    let api: Api<ImagePullJob> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    if job.metadata.deletion_timestamp.is_some() {
        finalize_job(&job, &ctx, &api).await?;
        return Ok(Action::await_change());
    }
    match job_plan::finished_action(&job, now) {
        FinishedAction::NotFinished => {}
        done => {
            finalize_job(&job, &ctx, &api).await?;
            return match done {
                FinishedAction::Delete => {
                    match api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => {
                            ctx.event(
                                job.as_ref(),
                                false,
                                REASON_TTL_DELETED,
                                "deleted after ttlSecondsAfterFinished".into(),
                            )
                            .await
                        }
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(kube_err(format!("delete job {ns}/{name}"))(e)),
                    }
                    Ok(Action::await_change())
                }
                FinishedAction::RequeueAfter(d) => Ok(Action::requeue(d)),
                _ => Ok(Action::await_change()),
            };
        }
    }
    if !job
        .finalizers()
        .iter()
        .any(|f| f == keys::PROTECTION_FINALIZER)
    {
        let mut fins = job.finalizers().to_vec();
        fins.push(keys::PROTECTION_FINALIZER.to_string());
        let patch =
            json!({"metadata": {"finalizers": fins, "resourceVersion": job.resource_version()}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("add finalizer"))?;
    }
    if !cache_usable(&ctx.node_images).await {
        return Ok(Action::requeue(CACHE_NOT_READY_REQUEUE));
    }
    let sel = NodeSelection::of(&job.spec.template)?;
    let pods = match &sel {
        NodeSelection::Pods(s) => {
            let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            pod_api
                .list(&ListParams::default().labels_from(s))
                .await
                .map_err(kube_err("list pods"))?
                .items
        }
        _ => Vec::new(),
    };
    let selected = select_node_images(&sel, &ctx.node_images.state(), &pods);
    let secrets = sync_job_secrets(&job, &ctx, true).await?;
    let calc = job_plan::calculate_status(&job, &selected, &secrets, now)?;
    let targets = job_plan::nodes_to_sync(&job, &calc);
    let mut write_error = None;
    // whether the NodeImage cache is behind what this reconcile wrote or read: the status is then
    // left to the reconcile the NodeImage events bring, which sees them all. Writing it now would
    // count those nodes as not synced and take one more write per node as each event arrives.
    let mut cache_behind = false;
    if !targets.is_empty() {
        let policy = job_plan::tag_pull_policy(
            &job,
            ctx.settings.default_ttl_for_always,
            fastrand::i32(0..job_plan::ALWAYS_TTL_JITTER),
            fastrand::i32(-job_plan::NEVER_TTL_JITTER..job_plan::NEVER_TTL_JITTER),
        );
        // different NodeImages never conflict: write a bounded number at once
        let (c, j, sec, pol) = (&ctx, &job, &secrets, &policy);
        let results: Vec<(String, Result<Option<Written>>)> =
            futures::stream::iter(targets.iter().cloned())
                .map(move |n: String| async move {
                    let r = write_node_image(c, &n, j, sec, pol).await;
                    (n, r)
                })
                .buffer_unordered(NODE_IMAGE_WRITES_IN_FLIGHT)
                .collect()
                .await;
        let mut written = Vec::new();
        let cached_versions: HashMap<String, Option<String>> = selected
            .iter()
            .map(|c| (c.name_any(), c.resource_version()))
            .collect();
        for (n, r) in results {
            match r {
                Ok(Some((ni, wrote))) => {
                    if wrote || cached_versions.get(&n) != Some(&ni.resource_version()) {
                        // a NodeImage event is on its way and will wake this job again
                        cache_behind = true;
                    }
                    if wrote {
                        written.push(n);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    write_error.get_or_insert(e);
                }
            }
        }
        written.sort();
        if !written.is_empty() {
            ctx.event(
                job.as_ref(),
                false,
                REASON_SYNCED_NODE_IMAGES,
                format!(
                    "Pulling image {} on node(s) {}",
                    job.spec.image,
                    job_plan::name_list(&written)
                ),
            )
            .await;
        }
    }
    // the event above names what was written; the status waits for a reconcile without errors
    if let Some(e) = write_error {
        return Err(e);
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let last = ctx.shared.last_written(&uid);
    if !cache_behind
        && job_plan::status_changed(job.status.as_ref(), &calc.status)
        && !job_plan::write_is_repeat(job.status.as_ref(), &calc.status, last.as_ref())
    {
        let patch = json!({
            "apiVersion": kruise_crds::API_VERSION,
            "kind": "ImagePullJob",
            "status": calc.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err(format!("patch status of {ns}/{name}")))?;
        ctx.shared.set_written(
            &uid,
            Some(job_plan::WrittenStatus {
                replaced: job.status.clone(),
                written: calc.status.clone(),
            }),
        );
        let was_done = job
            .status
            .as_ref()
            .is_some_and(|s| s.completion_time.is_some());
        if calc.status.completion_time.is_some() && !was_done {
            let failed = calc.status.failed.unwrap_or(0);
            ctx.event(
                job.as_ref(),
                failed > 0,
                REASON_JOB_COMPLETED,
                calc.status.message.clone().unwrap_or_default(),
            )
            .await;
        }
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    let poll = match sel {
        // Pods are not watched: look again for pods landing on new nodes.
        NodeSelection::Pods(_) => Duration::from_secs(30),
        _ => Duration::from_secs(300),
    };
    let wait = job_plan::deadline_requeue(&job, &calc.status, now).map_or(poll, |d| d.min(poll));
    Ok(Action::requeue(wait))
}

// ---------------------------------------------------------------------------------------------
// ImageListPullJob

async fn reconcile_list(list: Arc<ImageListPullJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let start = std::time::Instant::now();
    let res = reconcile_list_inner(list, ctx.clone()).await;
    ctx.observe(keys::IMAGE_LIST_PULL_JOB_CONTROLLER, res.is_ok(), start);
    res
}

async fn reconcile_list_inner(list: Arc<ImageListPullJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = list
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = list.name_any();
    let api: Api<ImageListPullJob> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<ImagePullJob> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    if list.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if let Some(done) = list
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
    {
        let ttl = list
            .spec
            .template
            .completion_policy
            .ttl_seconds_after_finished;
        return match job_plan::ttl_action(ttl, done, now) {
            FinishedAction::Delete => {
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {
                        ctx.event(
                            list.as_ref(),
                            false,
                            REASON_TTL_DELETED,
                            "deleted after ttlSecondsAfterFinished".into(),
                        )
                        .await
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(kube_err(format!("delete {ns}/{name}"))(e)),
                }
                Ok(Action::await_change())
            }
            FinishedAction::RequeueAfter(d) => Ok(Action::requeue(d)),
            _ => Ok(Action::await_change()),
        };
    }
    let hash = list_plan::template_hash(&list.spec.template);
    if list.labels().get(CONTROLLER_REVISION_HASH_LABEL) != Some(&hash) {
        let patch = json!({"metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: hash}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("label revision hash"))?;
    }
    if !cache_usable(&ctx.jobs).await {
        return Ok(Action::requeue(CACHE_NOT_READY_REQUEUE));
    }
    let all = ctx.jobs.state();
    let children = list_plan::children_of(&list, all.iter().map(|a| a.as_ref()));
    let plan = list_plan::plan_children(&list, &children, &hash);
    let mut deleted = Vec::new();
    for n in &plan.delete {
        match jobs.delete(n, &DeleteParams::background()).await {
            Ok(_) => deleted.push(n.clone()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(kube_err(format!("delete ImagePullJob {ns}/{n}"))(e)),
        }
    }
    if !deleted.is_empty() {
        ctx.event(
            list.as_ref(),
            false,
            keys::REASON_DELETE_IMAGE_PULL_JOB,
            format!("Deleted ImagePullJob(s) {}", deleted.join(", ")),
        )
        .await;
    }
    // Slow start: 1, 2, 4, … creates per batch, stopping at the first failing batch.
    let mut created = Vec::new();
    let mut batch = 1;
    let mut rest = plan.create.as_slice();
    let mut failure = None;
    while !rest.is_empty() && failure.is_none() {
        let (now_batch, later) = rest.split_at(batch.min(rest.len()));
        let results = futures::future::join_all(now_batch.iter().map(|image| {
            let child = list_plan::new_child(&list, image, &hash);
            let jobs = jobs.clone();
            async move {
                (
                    image.clone(),
                    jobs.create(&PostParams::default(), &child).await,
                )
            }
        }))
        .await;
        for (image, r) in results {
            match r {
                Ok(j) => created.push(format!("{} ({image})", j.name_any())),
                Err(e) => failure = Some(kube_err(format!("create ImagePullJob for {image}"))(e)),
            }
        }
        rest = later;
        batch *= 2;
    }
    if !created.is_empty() {
        ctx.event(
            list.as_ref(),
            false,
            keys::REASON_CREATE_IMAGE_PULL_JOB,
            format!("Created ImagePullJob(s) {}", created.join(", ")),
        )
        .await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let status = list_plan::calculate_status(&list, &children, now);
    if list.status.as_ref() != Some(&status) {
        let patch = json!({
            "apiVersion": kruise_crds::API_VERSION,
            "kind": "ImageListPullJob",
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err(format!("patch status of {ns}/{name}")))?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kruise_crds::{CompletionPolicy, ImagePullJobSpec, ImagePullJobTemplate};
    use kube::client::Body;
    use kube::runtime::reflector;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn ctx(client: Client) -> (Arc<Ctx>, reflector::store::Writer<NodeImage>) {
        let (nis, mut ni_w) = reflector::store();
        let (nodes, mut node_w) = reflector::store();
        let (jobs, mut job_w) = reflector::store();
        ni_w.apply_watcher_event(&watcher::Event::InitDone);
        node_w.apply_watcher_event(&watcher::Event::InitDone);
        job_w.apply_watcher_event(&watcher::Event::InitDone);
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            settings: Settings::new("kruise-daemon-config".into()),
            node_images: nis,
            nodes,
            jobs,
            shared: Arc::default(),
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "test".into(),
                    instance: None,
                },
            ),
        });
        (ctx, ni_w)
    }

    fn mock() -> (Client, Handle) {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(svc, "default"), handle)
    }

    async fn expect(
        handle: &mut Handle,
        method: &str,
        path: &str,
        status: u16,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let (req, send) = handle.next_request().await.expect("request");
        assert_eq!(req.method().as_str(), method);
        assert_eq!(req.uri().path(), path);
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let sent = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
        sent
    }

    fn job() -> ImagePullJob {
        let mut j = ImagePullJob::new(
            "job",
            ImagePullJobSpec {
                image: "nginx:1.25".into(),
                template: ImagePullJobTemplate {
                    completion_policy: CompletionPolicy::default(),
                    ..Default::default()
                },
            },
        );
        j.metadata.namespace = Some("ns".into());
        j.metadata.uid = Some("u1".into());
        j
    }

    fn ni_json(rv: &str) -> serde_json::Value {
        json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "NodeImage",
            "metadata": {"name": "n1", "resourceVersion": rv},
            "spec": {}
        })
    }

    #[tokio::test]
    async fn write_node_image_retries_on_conflict() {
        let (client, mut handle) = mock();
        let (ctx, _w) = ctx(client);
        let j = job();
        let policy = job_plan::tag_pull_policy(&j, 300, 0, 0);
        let server = tokio::spawn(async move {
            let path = "/apis/apps.kruise.io/v1alpha1/nodeimages/n1";
            expect(&mut handle, "GET", path, 200, ni_json("1")).await;
            let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "conflict"});
            let first = expect(&mut handle, "PUT", path, 409, conflict).await;
            assert_eq!(first["metadata"]["resourceVersion"], "1");
            expect(&mut handle, "GET", path, 200, ni_json("2")).await;
            let second = expect(&mut handle, "PUT", path, 200, ni_json("3")).await;
            assert_eq!(second["metadata"]["resourceVersion"], "2");
            let tag = &second["spec"]["images"]["nginx"]["tags"][0];
            assert_eq!(tag["tag"], "1.25");
            assert_eq!(tag["version"], 0);
            assert_eq!(tag["ownerReferences"][0]["uid"], "u1");
            assert_eq!(tag["pullPolicy"]["ttlSecondsAfterFinished"], 2100);
        });
        let wrote = write_node_image(&ctx, "n1", &j, &[], &policy)
            .await
            .unwrap();
        assert!(wrote.is_some_and(|(_, wrote)| wrote));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn ready_node_gets_a_node_image_with_its_labels() {
        let (client, mut handle) = mock();
        let (ctx, _w) = ctx(client);
        let mut node = Node::default();
        node.metadata.name = Some("n1".into());
        node.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "a".to_string())]));
        node.status = Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(
                    Timestamp::now() - jiff::SignedDuration::from_secs(60),
                )),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let server = tokio::spawn(async move {
            expect(
                &mut handle,
                "GET",
                "/apis/apps.kruise.io/v1alpha1/nodeimages/n1",
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            )
            .await;
            let sent = expect(
                &mut handle,
                "POST",
                "/apis/apps.kruise.io/v1alpha1/nodeimages",
                201,
                ni_json("1"),
            )
            .await;
            assert_eq!(sent["metadata"]["name"], "n1");
            assert_eq!(sent["metadata"]["labels"]["zone"], "a");
            let ev = expect(
                &mut handle,
                "POST",
                "/apis/events.k8s.io/v1/namespaces/default/events",
                201,
                json!({}),
            )
            .await;
            assert_eq!(ev["reason"], REASON_NODE_IMAGE_CREATED);
        });
        let action = reconcile_node(Arc::new(node.clone()), ctx.clone())
            .await
            .unwrap();
        assert_eq!(action, Action::await_change());
        server.await.unwrap();
        // too recently ready: wait for the rest of the delay, no API call
        node.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(Time(Timestamp::now()));
        let action = reconcile_node(Arc::new(node), ctx).await.unwrap();
        assert_ne!(action, Action::await_change());
    }

    #[tokio::test]
    async fn node_image_without_node_is_deleted_unless_fake() {
        let (client, mut handle) = mock();
        let (ctx, _w) = ctx(client);
        let ni = NodeImage::new("gone", NodeImageSpec::default());
        let server = tokio::spawn(async move {
            expect(
                &mut handle,
                "DELETE",
                "/apis/apps.kruise.io/v1alpha1/nodeimages/gone",
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            )
            .await;
            handle
        });
        let action = reconcile_node_image(Arc::new(ni.clone()), ctx.clone())
            .await
            .unwrap();
        assert_eq!(action, Action::await_change());
        let mut handle = server.await.unwrap();
        // a fake NodeImage stays, and nothing is called
        let mut fake = ni;
        fake.metadata.labels = Some(BTreeMap::from([(
            keys::FAKE_NODE_IMAGE_LABEL.to_string(),
            "true".to_string(),
        )]));
        let action = reconcile_node_image(Arc::new(fake), ctx.clone())
            .await
            .unwrap();
        assert_eq!(action, Action::await_change());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), handle.next_request())
                .await
                .is_err(),
            "no API call for a fake NodeImage"
        );
    }
}
