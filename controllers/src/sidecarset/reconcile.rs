//! The SidecarSet reconcile loop (spec §4.1–§4.2): watches SidecarSets (spec changes only) and pods
//! (cached without managedFields, mapped to SidecarSets through their injected list), then per
//! SidecarSet: register the latest ControllerRevision, write status (server-side apply), reset hot
//! slots whose new container is ready, and upgrade the pods the strategy picks, one patch per pod.

use super::{Error, Result, hotupgrade, kube_err, pod, revision, status, strategy, upgrade};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kruise_crds::keys::sidecarset::{
    CONTROLLER_NAME, EVENT_NOT_UPGRADABLE_PODS, EVENT_RESET_CONTAINER_FAILED,
    EVENT_RESET_CONTAINER_SUCCEED, SIDECARSET_CUSTOM_VERSION_LABEL, SIDECARSET_NAME_LABEL,
};
use kruise_crds::sidecarset::{SidecarSet, SidecarSetStatus};
use kruise_webhook::sidecarset::matching::Labels;
use kruise_webhook::sidecarset::pod_selector_matches;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "kruise-rs";
/// Event reason on a SidecarSet: a round upgraded the sidecars of some pods in place (one event per
/// round, not per pod: an event per pod would double the API writes of an upgrade).
pub const EVENT_SIDECAR_UPGRADED: &str = "SuccessfulUpgradeSidecar";
/// Event reason on a pod: upgrading its sidecars failed.
pub const EVENT_SIDECAR_UPGRADE_FAILED: &str = "FailedUpgradeSidecar";
/// Event reason on a SidecarSet: a new ControllerRevision was recorded.
pub const EVENT_REVISION_CREATED: &str = "SuccessfulCreateRevision";

/// Requeue while pods are being upgraded (container restarts do not always change the pod quickly).
const IN_FLIGHT_REQUEUE: Duration = Duration::from_secs(5);
/// Requeue while our own pod writes are not in the cache yet.
const EXPECTATION_REQUEUE: Duration = Duration::from_secs(1);
/// Pods upgraded at once within a round (each is one pod patch plus, when it changes, one condition
/// patch).
const UPGRADE_CONCURRENCY: usize = 16;
/// Periodic resync when nothing is in flight.
const RESYNC: Duration = Duration::from_secs(300);
/// Longest one reconcile may take before it is abandoned and retried.
const RECONCILE_DEADLINE: Duration = Duration::from_secs(60);
/// Longest a reconcile waits for a cache's first list.
const CACHE_WAIT: Duration = Duration::from_secs(2);
/// Requeue delay while a cache has not finished its first list.
const CACHE_NOT_READY_REQUEUE: Duration = Duration::from_secs(2);
/// How long to wait for the cache to show a pod write before giving up on it.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the reconciles.
pub struct Context {
    client: Client,
    /// Namespace of the ControllerRevisions (the Kruise namespace).
    namespace: String,
    pods: Store<Pod>,
    /// This controller's ControllerRevisions (label `kruise.io/sidecarset-name`) in `namespace`.
    revisions: Store<ControllerRevision>,
    /// Namespace metadata, for SidecarSets with a namespaceSelector (listed on demand when unset).
    namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    recorder: Recorder,
    /// Pod writes not yet seen in the cache: `ns/name` → (resourceVersion written, when).
    expectations: Mutex<HashMap<String, (String, Instant)>>,
    /// Where reconciles are counted (`/metrics`), when anywhere.
    metrics: Option<crate::metrics::Metrics>,
}

impl Context {
    /// A context over the pod and revision caches.
    pub fn new(
        client: Client,
        namespace: String,
        pods: Store<Pod>,
        revisions: Store<ControllerRevision>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            namespace,
            pods,
            revisions,
            namespaces: None,
            expectations: Mutex::new(HashMap::new()),
            metrics: None,
        }
    }

    /// Counts reconciles in `metrics`.
    pub fn with_metrics(mut self, metrics: Option<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reads namespace labels from this cache instead of listing namespaces.
    pub fn with_namespaces(mut self, namespaces: Store<PartialObjectMeta<Namespace>>) -> Self {
        self.namespaces = Some(namespaces);
        self
    }

    fn expect(&self, key: String, rv: Option<String>) {
        if let (Some(rv), Ok(mut e)) = (rv, self.expectations.lock()) {
            e.insert(key, (rv, Instant::now()));
        }
    }

    /// The cached revisions of SidecarSet `ss_name`.
    fn cached_revisions(&self, ss_name: &str) -> Vec<ControllerRevision> {
        self.revisions
            .state()
            .iter()
            .filter(|r| {
                r.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SIDECARSET_NAME_LABEL))
                    .is_some_and(|n| n == ss_name)
            })
            .map(|r| (**r).clone())
            .collect()
    }

    /// Whether some of our writes to the pods `keys` are not in the cache yet (expired expectations
    /// of any pod are dropped).
    fn pending<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> bool {
        let Ok(mut e) = self.expectations.lock() else {
            return false;
        };
        e.retain(|key, (rv, at)| {
            if at.elapsed() > EXPECTATION_TIMEOUT {
                return false;
            }
            let (ns, name) = key.split_once('/').unwrap_or(("", key));
            let seen = self
                .pods
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|p| p.metadata.resource_version.clone());
            !seen.is_some_and(|s| rv_reached(&s, rv))
        });
        keys.into_iter().any(|k| e.contains_key(k))
    }

    async fn publish(&self, reference: &k8s_openapi::api::core::v1::ObjectReference, ev: Event) {
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            warn!(reason = %ev.reason, error = %e, "publishing event failed");
        }
    }
}

/// Resource versions are opaque, but the API server's are integers in practice: a cached version at
/// or past the one we wrote means the write was observed.
fn rv_reached(seen: &str, written: &str) -> bool {
    match (seen.parse::<u64>(), written.parse::<u64>()) {
        (Ok(s), Ok(w)) => s >= w,
        _ => seen == written,
    }
}

/// Drops what the controller never reads from cached pods (decision 6): managedFields, the
/// last-applied annotation, volumes and the bulky container fields. Safe for the upgrade patches:
/// they are diffs between two forms of the cached pod, so stripped fields never appear in them, and
/// the container lists keep their order and length (patch paths are index-based).
fn strip_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if let Some(spec) = p.spec.as_mut() {
        spec.volumes = None;
        let init = spec.init_containers.iter_mut().flatten();
        for c in spec.containers.iter_mut().chain(init) {
            c.env = None;
            c.env_from = None;
            c.volume_mounts = None;
            c.command = None;
            c.args = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
            c.lifecycle = None;
        }
    }
}

/// SidecarSets to reconcile when `p` changes: those in its injected list.
fn pod_to_sidecarsets(p: &Pod) -> Vec<ObjectRef<SidecarSet>> {
    pod::injected_list(p)
        .into_iter()
        .map(ObjectRef::new)
        .collect()
}

/// The SidecarSet a revision belongs to (its `kruise.io/sidecarset-name` label).
fn revision_to_sidecarset(r: &ControllerRevision) -> Option<ObjectRef<SidecarSet>> {
    r.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SIDECARSET_NAME_LABEL))
        .map(|n| ObjectRef::new(n))
}

/// Runs the SidecarSet controller until `shutdown` resolves. ControllerRevisions live in `namespace`.
pub async fn run(
    client: Client,
    namespace: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(client, namespace, None, shutdown).await
}

/// [`run`], counting reconciles in `metrics`.
pub async fn run_with(
    client: Client,
    namespace: String,
    metrics: Option<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let pods = watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(strip_pod)
    .reflect(pod_writer)
    .touched_objects()
    .predicate_filter(predicates::resource_version, Default::default());
    let (ss_reader, ss_writer) = reflector::store::<SidecarSet>();
    let sidecarsets = watcher(
        Api::<SidecarSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|ss: &mut SidecarSet| ss.metadata.managed_fields = None)
    .reflect(ss_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let (rev_reader, rev_writer) = reflector::store::<ControllerRevision>();
    let revisions = watcher(
        Api::<ControllerRevision>::namespaced(client.clone(), &namespace),
        watcher::Config::default().labels(SIDECARSET_NAME_LABEL),
    )
    .default_backoff()
    .modify(|r: &mut ControllerRevision| r.metadata.managed_fields = None)
    .reflect(rev_writer)
    .touched_objects();

    let (ns_reader, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|n: &mut PartialObjectMeta<Namespace>| n.metadata.managed_fields = None)
    .reflect(ns_writer)
    .applied_objects()
    .predicate_filter(predicates::labels, Default::default());
    // A namespace's labels changed: SidecarSets that select namespaces by label may match more or
    // fewer pods.
    let ss_for_ns = ss_reader.clone();
    let ns_mapper = move |_: PartialObjectMeta<Namespace>| {
        ss_for_ns
            .state()
            .iter()
            .filter(|ss| ss.spec.namespace_selector.is_some())
            .map(|ss| ObjectRef::from_obj(ss.as_ref()))
            .collect::<Vec<_>>()
    };

    let ctx = Arc::new(
        Context::new(client, namespace, pod_reader, rev_reader)
            .with_namespaces(ns_reader)
            .with_metrics(metrics),
    );
    Controller::for_stream(sidecarsets, ss_reader)
        .with_config(controller::Config::default().concurrency(3))
        // Every SidecarSet the pod names, even one not in the store yet: filtering on the store
        // dropped the first pod events of a just-created SidecarSet (its status then waited for the
        // periodic resync).
        .watches_stream(pods, |p: Pod| pod_to_sidecarsets(&p))
        .watches_stream(revisions, |r: ControllerRevision| {
            revision_to_sidecarset(&r)
        })
        .watches_stream(namespaces, ns_mapper)
        .graceful_shutdown_on(async move {
            let _ = rx.await;
        })
        .run(guarded_reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok(_) => {}
                // deleted before its turn came, or failed and already logged by error_policy
                Err(
                    e @ (controller::Error::ObjectNotFound(_)
                    | controller::Error::ReconcilerFailed(..)),
                ) => {
                    tracing::debug!(error = %e, "sidecarset reconcile skipped or failed");
                }
                Err(e) => warn!(error = %e, "sidecarset controller error"),
            }
        })
        .await;
    Ok(())
}

fn error_policy(ss: Arc<SidecarSet>, err: &Error, _ctx: Arc<Context>) -> Action {
    if let Error::Panicked(p) = err {
        // logged by the guard, once per SidecarSet
        return Action::requeue(p.retry_after);
    }
    let gone = matches!(err, Error::Kube { source: kube::Error::Api(ae), .. } if ae.code == 404);
    if gone {
        // the SidecarSet (or the object being written) was deleted meanwhile: nothing for a person
        tracing::debug!(sidecarset = %ss.name_any(), error = %err, "reconcile hit a deleted object, requeueing");
    } else {
        warn!(sidecarset = %ss.name_any(), error = %err, "reconcile error, requeueing");
    }
    Action::requeue(Duration::from_secs(5))
}

/// Labels of every namespace, only when the SidecarSet selects namespaces by label: from the cache,
/// or listed when there is none.
async fn namespace_labels(
    ctx: &Context,
    ss: &SidecarSet,
) -> Result<Option<BTreeMap<String, Labels>>> {
    let by_name = ss.spec.namespace.as_deref().is_some_and(|n| !n.is_empty());
    if by_name || ss.spec.namespace_selector.is_none() {
        return Ok(None);
    }
    let entries: Vec<PartialObjectMeta<Namespace>> = match &ctx.namespaces {
        Some(store) => {
            store
                .wait_until_ready()
                .await
                .map_err(|_| Error::CacheGone)?;
            store.state().iter().map(|n| (**n).clone()).collect()
        }
        None => {
            Api::<Namespace>::all(ctx.client.clone())
                .list_metadata(&ListParams::default())
                .await
                .map_err(kube_err("list namespaces"))?
                .items
        }
    };
    Ok(Some(
        entries
            .into_iter()
            .map(|n| {
                (
                    n.metadata.name.unwrap_or_default(),
                    n.metadata.labels.unwrap_or_default(),
                )
            })
            .collect(),
    ))
}

/// [`reconcile`] behind the panic guard: a panic fails this SidecarSet only.
async fn guarded_reconcile(ss: Arc<SidecarSet>, ctx: Arc<Context>) -> Result<Action> {
    let object = crate::guard::object_key(ss.as_ref());
    let fut = reconcile(ss, ctx.clone());
    crate::guard::reconcile(
        ctx.metrics.as_ref(),
        CONTROLLER_NAME,
        "SidecarSet",
        &object,
        fut,
    )
    .await
}

async fn reconcile(ss: Arc<SidecarSet>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    // a wait that never ends (a cache whose first list never completes, a request on a connection
    // that died silently) becomes a retry instead of a SidecarSet that never moves again: seen
    // after 100 forced disconnects, when one SidecarSet was never reconciled for 5 minutes
    let res = match tokio::time::timeout(RECONCILE_DEADLINE, reconcile_inner(ss, ctx.clone())).await
    {
        Ok(res) => res,
        Err(_) => Err(Error::TimedOut(RECONCILE_DEADLINE.as_secs())),
    };
    if let Some(m) = &ctx.metrics {
        let result = if res.is_ok() { "success" } else { "error" };
        m.reconciled(CONTROLLER_NAME, result, start.elapsed().as_secs_f64());
    }
    res
}

async fn reconcile_inner(ss: Arc<SidecarSet>, ctx: Arc<Context>) -> Result<Action> {
    // bounded: a cache not listed yet is a short requeue, not a wait with no end
    for ready in [
        tokio::time::timeout(CACHE_WAIT, ctx.pods.wait_until_ready()).await,
        tokio::time::timeout(CACHE_WAIT, ctx.revisions.wait_until_ready()).await,
    ] {
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::CacheGone),
            Err(_) => {
                tracing::debug!(sidecarset = %ss.name_any(), "caches not listed yet; requeueing");
                return Ok(Action::requeue(CACHE_NOT_READY_REQUEUE));
            }
        }
    }
    if ss.metadata.deletion_timestamp.is_some() {
        // No finalizer, no cleanup: injected sidecars stay in their pods.
        return Ok(Action::await_change());
    }
    let name = ss.name_any();
    let now = Timestamp::now();

    // Observe.
    let ns_labels = namespace_labels(&ctx, &ss).await?;
    let empty = Labels::new();
    let cached = ctx.pods.state();
    let matched: Vec<&Pod> = cached
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
            let nsl = ns_labels.as_ref().and_then(|m| m.get(ns)).unwrap_or(&empty);
            pod_selector_matches(&ss, ns, labels, nsl) && pod::is_matched(p, &ss)
        })
        .collect();

    // History.
    let (latest, collision) = register_latest_revision(&ctx, &ss).await?;

    // Status.
    let new_status = status::calculate_status(&ss, &matched, &latest, collision, now);
    if status::status_changed(ss.status.as_ref(), &new_status) {
        write_status(&ctx.client, &name, &new_status).await?;
    }
    let mut cur = (*ss).clone();
    cur.status = Some(new_status.clone());

    // As in OpenKruise, a failed truncation is logged, not fatal to the round.
    if let Err(e) = truncate_history(&ctx, &cur, &matched, &latest).await {
        warn!(sidecarset = %name, error = %e, "truncating revision history failed");
    }

    let keys: Vec<String> = matched.iter().map(|p| pod_key(p)).collect();
    if ctx.pending(keys.iter().map(String::as_str)) {
        return Ok(Action::requeue(EXPECTATION_REQUEUE));
    }
    let plan = match strategy::plan_round(&cur, &matched, &new_status) {
        strategy::Round::Idle { in_flight: true } => return Ok(Action::requeue(IN_FLIGHT_REQUEUE)),
        strategy::Round::Idle { in_flight: false } => return Ok(Action::requeue(RESYNC)),
        strategy::Round::ResetHotSlots(names) => {
            for p in names
                .iter()
                .filter_map(|n| matched.iter().find(|p| pod::name(p) == n))
            {
                reset_pod(&ctx, &cur, p, now).await;
            }
            return Ok(Action::requeue(IN_FLIGHT_REQUEUE));
        }
        strategy::Round::Upgrade(plan) => plan,
    };
    let by_name: HashMap<&str, &Pod> = matched.iter().map(|p| (pod::name(p), *p)).collect();
    if !plan.not_upgradable.is_empty() {
        for n in &plan.not_upgradable {
            if let Some(p) = by_name.get(n.as_str()) {
                patch_upgradable_condition(&ctx, p, &name, false, now).await;
            }
        }
        let note = format!(
            "SidecarSet in-place update detected {} not upgradable pod(s) in this round, will skip them.",
            plan.not_upgradable.len()
        );
        ctx.publish(
            &cur.object_ref(&()),
            Event {
                type_: EventType::Normal,
                reason: EVENT_NOT_UPGRADABLE_PODS.to_owned(),
                note: Some(note),
                action: "Upgrade".to_owned(),
                secondary: None,
            },
        )
        .await;
    }
    // All pod patches first, then the SidecarSetUpgradable conditions: the runtime starts on the new
    // images while the (informative) conditions are written. Futures are built up front (a closure
    // inside the stream trips the Send check of the reconciler).
    let upgrades: Vec<_> = plan
        .upgrade
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .map(|p| upgrade_one(&ctx, &cur, p, now))
        .collect();
    let results: Vec<Result<Option<Pod>>> = futures::stream::iter(upgrades)
        .buffer_unordered(UPGRADE_CONCURRENCY)
        .collect()
        .await;
    let marks: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(Option::as_ref))
        .map(|p| patch_upgradable_condition(&ctx, p, &name, true, now))
        .collect();
    futures::stream::iter(marks)
        .buffer_unordered(UPGRADE_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let upgraded = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    if upgraded > 0 {
        ctx.publish(
            &cur.object_ref(&()),
            Event {
                type_: EventType::Normal,
                reason: EVENT_SIDECAR_UPGRADED.to_owned(),
                note: Some(format!(
                    "SidecarSet upgraded the sidecars of {upgraded} pod(s) in place"
                )),
                action: "Upgrade".to_owned(),
                secondary: None,
            },
        )
        .await;
    }
    results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(Action::requeue(IN_FLIGHT_REQUEUE))
}

/// Writes the status through the status subresource with server-side apply.
async fn write_status(client: &Client, name: &str, st: &SidecarSetStatus) -> Result<()> {
    let body = json!({
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "SidecarSet",
        "status": st,
    });
    Api::<SidecarSet>::all(client.clone())
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(kube_err(format!("write status of sidecarset {name}")))?;
    Ok(())
}

/// Registers the latest revision (reuse, renumber or create with collision retries) and labels it
/// with the custom version. Returns its name and the collision count.
async fn register_latest_revision(ctx: &Context, ss: &SidecarSet) -> Result<(String, Option<i32>)> {
    let name = ss.name_any();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // From the cache: a revision written moments ago may be missing; creating it again meets it
    // by name (409) and reuses it.
    let revs = ctx.cached_revisions(&name);
    let plan = revision::plan_revision(ss, &revs, &ctx.namespace);
    let mut collision = ss.status.as_ref().and_then(|s| s.collision_count);
    let latest = match plan.action {
        revision::RevisionAction::Reuse(n) => n,
        revision::RevisionAction::Renumber { name: n, revision } => {
            api.patch(
                &n,
                &PatchParams::default(),
                &Patch::Merge(json!({ "revision": revision })),
            )
            .await
            .map_err(kube_err(format!("renumber revision {n}")))?;
            n
        }
        revision::RevisionAction::Create(cr) => {
            let mut count = collision.unwrap_or(0);
            let mut attempt = *cr;
            let mut created = None;
            for _ in 0..10 {
                match api.create(&PostParams::default(), &attempt).await {
                    Ok(r) => {
                        created = r.metadata.name;
                        break;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let n = attempt.metadata.name.clone().unwrap_or_default();
                        let existing = api
                            .get(&n)
                            .await
                            .map_err(kube_err(format!("get revision {n}")))?;
                        if revision::equal_data(&existing, &attempt) {
                            created = Some(n);
                            break;
                        }
                        count += 1;
                        attempt = revision::new_revision(
                            ss,
                            &ctx.namespace,
                            attempt.revision,
                            Some(count),
                        );
                    }
                    Err(e) => return Err(kube_err(format!("create revision of {name}"))(e)),
                }
            }
            let Some(n) = created else {
                return Err(Error::Collisions(name));
            };
            collision = Some(count);
            ctx.publish(
                &ss.object_ref(&()),
                Event {
                    type_: EventType::Normal,
                    reason: EVENT_REVISION_CREATED.to_owned(),
                    note: Some(format!("created ControllerRevision {n}")),
                    action: "RegisterRevision".to_owned(),
                    secondary: None,
                },
            )
            .await;
            n
        }
    };
    if let Some(v) = plan.custom_version {
        api.patch(
            &latest,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {SIDECARSET_CUSTOM_VERSION_LABEL: v}}})),
        )
        .await
        .map_err(kube_err(format!("label revision {latest}")))?;
    }
    // OpenKruise always records the count (0 when there never was a collision).
    Ok((latest, collision.or(Some(0))))
}

/// Deletes revisions beyond `revisionHistoryLimit` that no pod or pin still uses. `latest` (just
/// registered) is always kept: the cache may not show its new number yet.
async fn truncate_history(
    ctx: &Context,
    ss: &SidecarSet,
    matched: &[&Pod],
    latest: &str,
) -> Result<()> {
    let name = ss.name_any();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // From the cache: a revision written moments ago may be missing; creating it again meets it
    // by name (409) and reuses it.
    let revs = ctx.cached_revisions(&name);
    let mut active = revision::active_revisions(
        ss,
        &revs,
        revision::recorded_revisions(&name, matched.iter().copied()),
    );
    active.insert(latest.to_owned());
    let limit = ss
        .spec
        .revision_history_limit
        .unwrap_or(revision::DEFAULT_HISTORY_LIMIT)
        .max(1);
    let delete = revision::revisions_to_delete(ss, &revs, &active);
    if revs.len().saturating_sub(delete.len()) > usize::try_from(limit).unwrap_or(1) {
        warn!(sidecarset = %name, "cannot truncate revision history to {limit}: revisions in use");
    }
    for n in delete {
        match api.delete(&n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("delete revision {n}"))(e)),
        }
    }
    Ok(())
}

fn pod_key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        pod::name(p)
    )
}

/// Upgrades one pod with one guarded JSON patch and returns the pod as written. `Ok(None)`: the pod
/// changed or went away meanwhile (a later round retries it).
async fn upgrade_one(
    ctx: &Context,
    ss: &SidecarSet,
    p: &Pod,
    now: Timestamp,
) -> Result<Option<Pod>> {
    let key = pod_key(p);
    let (patch, changed) =
        upgrade::upgrade_pod_patch(ss, p, now).map_err(|source| Error::Upgrade {
            pod: key.clone(),
            source,
        })?;
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    let ss_name = ss.name_any();
    match api
        .patch(pod::name(p), &params, &Patch::Json::<()>(patch))
        .await
    {
        Ok(updated) => {
            ctx.expect(key.clone(), updated.metadata.resource_version.clone());
            info!(pod = %key, sidecarset = %ss_name, ?changed, "upgraded sidecars in place");
            Ok(Some(updated))
        }
        // The pod changed since the cache saw it (failed resourceVersion test) or is gone: retry later.
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409 | 422) => {
            info!(pod = %key, error = %e.message, "pod changed meanwhile; will retry");
            Ok(None)
        }
        Err(e) => {
            ctx.publish(
                &p.object_ref(&()),
                Event {
                    type_: EventType::Warning,
                    reason: EVENT_SIDECAR_UPGRADE_FAILED.to_owned(),
                    note: Some(format!(
                        "SidecarSet {ss_name} failed to upgrade sidecars: {e}"
                    )),
                    action: "Upgrade".to_owned(),
                    secondary: Some(ss.object_ref(&())),
                },
            )
            .await;
            Err(kube_err(format!("upgrade pod {key}"))(e))
        }
    }
}

/// Resets the old hot slots of one pod and records the outcome as an event on the pod.
async fn reset_pod(ctx: &Context, ss: &SidecarSet, p: &Pod, now: Timestamp) {
    let key = pod_key(p);
    let out = hotupgrade::reset_old_slots(ss, p, now);
    let result = match upgrade::pod_patch(p, &out.pod) {
        Ok(patch) => {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            };
            Api::<Pod>::namespaced(ctx.client.clone(), ns)
                .patch(pod::name(p), &params, &Patch::Json::<()>(patch))
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let (type_, reason, note) = match result {
        Ok(updated) => {
            ctx.expect(key.clone(), updated.metadata.resource_version.clone());
            (
                EventType::Normal,
                EVENT_RESET_CONTAINER_SUCCEED,
                "reset sidecar container image empty successfully".to_owned(),
            )
        }
        Err(e) => {
            warn!(pod = %key, error = %e, "reset of hot-upgrade slot failed");
            (
                EventType::Warning,
                EVENT_RESET_CONTAINER_FAILED,
                format!("reset sidecar container image empty failed: {e}"),
            )
        }
    };
    ctx.publish(
        &p.object_ref(&()),
        Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "ResetContainer".to_owned(),
            secondary: Some(ss.object_ref(&())),
        },
    )
    .await;
}

/// Patches the pod condition `SidecarSetUpgradable` (status subresource, strategic merge) when it
/// changes. Failures are logged: the condition is informative.
async fn patch_upgradable_condition(
    ctx: &Context,
    p: &Pod,
    ss_name: &str,
    upgradable: bool,
    now: Timestamp,
) {
    let Some(cond) = upgrade::upgradable_condition(p, ss_name, upgradable, now) else {
        return;
    };
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let body = json!({"status": {"conditions": [cond]}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    if let Err(e) = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .patch_status(pod::name(p), &params, &Patch::Strategic(body))
        .await
    {
        warn!(pod = %pod_key(p), error = %e, "patching SidecarSetUpgradable condition failed");
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod::testutil::*;
    use super::*;

    use http::{Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock_ctx() -> (Context, Handle) {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        let (reader, _writer) = reflector::store::<Pod>();
        let (revs, _rw) = reflector::store::<ControllerRevision>();
        (
            Context::new(client, "kruise-system".into(), reader, revs),
            handle,
        )
    }

    async fn body_json(req: Request<Body>) -> serde_json::Value {
        let bytes = req.into_body().collect_bytes().await.unwrap();
        if bytes.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&bytes).unwrap()
    }

    fn respond(
        send: tower_test::mock::SendResponse<Response<Body>>,
        code: u16,
        v: serde_json::Value,
    ) {
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&v).unwrap()))
                .unwrap(),
        );
    }

    /// The next request: (method, path?query, content-type, body).
    async fn next(
        h: &mut Handle,
    ) -> (
        String,
        String,
        String,
        serde_json::Value,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        let (req, send) = h.next_request().await.expect("request");
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let ct = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (method, uri, ct, body_json(req).await, send)
    }

    fn event_ok() -> serde_json::Value {
        json!({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e","namespace":"default"},"eventTime":"2024-01-01T00:00:00.000000Z"})
    }

    #[tokio::test]
    async fn status_is_server_side_applied() {
        let (ctx, mut h) = mock_ctx();
        let st = SidecarSetStatus {
            observed_generation: Some(3),
            matched_pods: 2,
            updated_pods: 1,
            ready_pods: 2,
            updated_ready_pods: Some(1),
            latest_revision: Some("rev".into()),
            ..Default::default()
        };
        let server = tokio::spawn(async move {
            let (m, uri, ct, body, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            assert_eq!(
                uri,
                "/apis/apps.kruise.io/v1alpha1/sidecarsets/ss/status?&force=true&fieldManager=kruise-rs"
            );
            assert_eq!(ct, "application/apply-patch+yaml");
            assert_eq!(body["kind"], "SidecarSet");
            assert_eq!(body["status"]["matchedPods"], 2);
            assert_eq!(body["status"]["updatedReadyPods"], 1);
            assert_eq!(body["status"]["observedGeneration"], 3);
            let mut obj = mk_ss("h", "w", "i");
            obj.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
            respond(send, 200, serde_json::to_value(&obj).unwrap());
        });
        write_status(&ctx.client, "ss", &st).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn revision_created_after_a_name_collision() {
        let (ctx, mut h) = mock_ctx();
        let mut ss = mk_ss("h", "w", "img:1");
        ss.metadata.uid = Some("uid".into());
        let server = tokio::spawn(async move {
            let (m, uri, _, first, send) = next(&mut h).await;
            assert_eq!(m, "POST");
            assert_eq!(
                uri,
                "/apis/apps/v1/namespaces/kruise-system/controllerrevisions?"
            );
            assert_eq!(first["revision"], 1);
            assert_eq!(
                first["metadata"]["labels"]["kruise.io/sidecarset-name"],
                "test-sidecarset"
            );
            assert_eq!(
                first["metadata"]["ownerReferences"][0]["kind"],
                "SidecarSet"
            );
            let first_name = first["metadata"]["name"].as_str().unwrap().to_owned();
            respond(
                send,
                409,
                json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"AlreadyExists","code":409,"message":"exists"}),
            );

            // Someone else's content under that name.
            let (m, uri, _, _, send) = next(&mut h).await;
            assert_eq!(m, "GET");
            assert!(
                uri.ends_with(&format!("/controllerrevisions/{first_name}")),
                "{uri}"
            );
            let mut other = first.clone();
            other["data"] = json!({"spec":{"containers":[{"name":"x","image":"other"}]}});
            respond(send, 200, other);

            let (m, _, _, second, send) = next(&mut h).await;
            assert_eq!(m, "POST");
            let second_name = second["metadata"]["name"].as_str().unwrap().to_owned();
            assert_ne!(second_name, first_name);
            respond(send, 201, second);

            let (m, uri, _, ev, send) = next(&mut h).await;
            assert_eq!(m, "POST");
            assert!(
                uri.starts_with("/apis/events.k8s.io/v1/namespaces/default/events"),
                "{uri}"
            );
            assert_eq!(ev["reason"], EVENT_REVISION_CREATED);
            respond(send, 201, event_ok());
            second_name
        });
        let (latest, collision) = register_latest_revision(&ctx, &ss).await.unwrap();
        let second_name = server.await.unwrap();
        assert_eq!(latest, second_name);
        assert_eq!(collision, Some(1));
    }

    #[tokio::test]
    async fn upgrade_is_one_guarded_json_patch() {
        let (ctx, mut h) = mock_ctx();
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let p = mk_pod("p").build();
        let p2 = p.clone();
        let server = tokio::spawn(async move {
            let (m, uri, ct, body, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            assert_eq!(
                uri,
                "/api/v1/namespaces/default/pods/p?&fieldManager=kruise-rs"
            );
            assert_eq!(ct, "application/json-patch+json");
            let ops = body.as_array().unwrap();
            assert_eq!(
                ops[0],
                json!({"op":"test","path":"/metadata/resourceVersion","value":"7"})
            );
            assert!(
                ops.iter()
                    .any(|o| o["path"] == "/spec/containers/1/image"
                        && o["value"] == "test-image:v2")
            );
            let mut doc = serde_json::to_value(&p2).unwrap();
            let patch: json_patch::Patch = serde_json::from_value(body).unwrap();
            json_patch::patch(&mut doc, &patch).unwrap();
            doc["metadata"]["resourceVersion"] = json!("8");
            respond(send, 200, doc);

            let (m, uri, ct, body, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            assert_eq!(
                uri,
                "/api/v1/namespaces/default/pods/p/status?&fieldManager=kruise-rs"
            );
            assert_eq!(ct, "application/strategic-merge-patch+json");
            let cond = &body["status"]["conditions"][0];
            assert_eq!(cond["type"], "SidecarSetUpgradable");
            assert_eq!(cond["status"], "True");
            assert_eq!(cond["message"], r#"{"test-sidecarset":true}"#);
            respond(send, 200, serde_json::to_value(&p2).unwrap());
            // No event per pod: the round records one on the SidecarSet.
            let extra = tokio::time::timeout(Duration::from_millis(100), h.next_request()).await;
            assert!(!matches!(extra, Ok(Some(_))), "unexpected extra request");
        });
        let updated = upgrade_one(&ctx, &ss, &p, Timestamp::UNIX_EPOCH)
            .await
            .unwrap()
            .unwrap();
        patch_upgradable_condition(
            &ctx,
            &updated,
            "test-sidecarset",
            true,
            Timestamp::UNIX_EPOCH,
        )
        .await;
        server.await.unwrap();
        // The write is expected in the cache (which never shows it here).
        assert!(ctx.pending(["default/p"]));
        assert!(!ctx.pending(["default/other"]));
    }

    #[tokio::test]
    async fn stale_pod_conflict_is_not_an_error() {
        let (ctx, mut h) = mock_ctx();
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let p = mk_pod("p").build();
        let server = tokio::spawn(async move {
            let (m, _, _, _, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            respond(
                send,
                422,
                json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Invalid","code":422,"message":"the test operation failed"}),
            );
        });
        assert!(
            upgrade_one(&ctx, &ss, &p, Timestamp::UNIX_EPOCH)
                .await
                .unwrap()
                .is_none()
        );
        server.await.unwrap();
        assert!(!ctx.pending(["default/p"]));
    }

    /// A whole reconcile over a ready cache: revision created, status applied, one pod upgraded
    /// (maxUnavailable defaults to 1), nothing else.
    #[tokio::test]
    async fn reconcile_round_trip() {
        let (svc, mut h) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        let (pods, mut pod_writer) = reflector::store::<Pod>();
        pod_writer.apply_watcher_event(&watcher::Event::Init);
        for n in ["a", "b"] {
            pod_writer.apply_watcher_event(&watcher::Event::InitApply(mk_pod(n).build()));
        }
        // Not selected (label), and not injected: both ignored.
        pod_writer.apply_watcher_event(&watcher::Event::InitApply(
            mk_pod("c").label("app", "other").build(),
        ));
        pod_writer.apply_watcher_event(&watcher::Event::InitApply(
            mk_pod("d")
                .annotation(kruise_crds::keys::sidecarset::SIDECARSET_INJECTED_LIST, "x")
                .build(),
        ));
        pod_writer.apply_watcher_event(&watcher::Event::InitDone);
        let (revs, mut rev_writer) = reflector::store::<ControllerRevision>();
        rev_writer.apply_watcher_event(&watcher::Event::Init);
        rev_writer.apply_watcher_event(&watcher::Event::InitDone);
        let ctx = Arc::new(Context::new(client, "kruise-system".into(), pods, revs));
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.metadata.uid = Some("uid".into());

        let server = tokio::spawn(async move {
            let (m, uri, _, rev, send) = next(&mut h).await;
            assert_eq!(
                (m.as_str(), uri.as_str()),
                (
                    "POST",
                    "/apis/apps/v1/namespaces/kruise-system/controllerrevisions?"
                )
            );
            let rev_name = rev["metadata"]["name"].as_str().unwrap().to_owned();
            respond(send, 201, rev);
            let (m, _, _, ev, send) = next(&mut h).await;
            assert_eq!(
                (m.as_str(), ev["reason"].as_str()),
                ("POST", Some(EVENT_REVISION_CREATED))
            );
            respond(send, 201, event_ok());

            let (m, uri, _, body, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            assert!(
                uri.starts_with("/apis/apps.kruise.io/v1alpha1/sidecarsets/test-sidecarset/status")
            );
            let st = &body["status"];
            assert_eq!(
                (
                    st["matchedPods"].as_i64(),
                    st["updatedPods"].as_i64(),
                    st["readyPods"].as_i64()
                ),
                (Some(2), Some(0), Some(2))
            );
            assert_eq!(st["latestRevision"].as_str(), Some(rev_name.as_str()));
            respond(
                send,
                200,
                serde_json::to_value(mk_ss("bbb", "without-aaa", "x")).unwrap(),
            );

            let (m, uri, _, _, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            let upgraded = uri
                .trim_start_matches("/api/v1/namespaces/default/pods/")
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            assert!(upgraded == "a" || upgraded == "b", "{uri}");
            respond(
                send,
                200,
                serde_json::to_value(mk_pod(&upgraded).upgraded_in_flight().build()).unwrap(),
            );
            let (m, uri, _, _, send) = next(&mut h).await;
            assert_eq!(m, "PATCH");
            assert!(uri.contains(&format!("/pods/{upgraded}/status")), "{uri}");
            respond(
                send,
                200,
                serde_json::to_value(mk_pod(&upgraded).build()).unwrap(),
            );
            let (m, _, _, ev, send) = next(&mut h).await;
            assert_eq!(
                (m.as_str(), ev["reason"].as_str()),
                ("POST", Some(EVENT_SIDECAR_UPGRADED))
            );
            assert_eq!(ev["regarding"]["kind"], "SidecarSet");
            respond(send, 201, event_ok());
            // No further calls.
            let extra = tokio::time::timeout(Duration::from_millis(100), h.next_request()).await;
            assert!(!matches!(extra, Ok(Some(_))), "unexpected extra request");
        });
        let action = reconcile(Arc::new(ss), ctx).await.unwrap();
        server.await.unwrap();
        assert_eq!(action, Action::requeue(IN_FLIGHT_REQUEUE));
    }

    #[tokio::test]
    async fn namespace_labels_come_from_the_cache() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
        let (ctx, _h) = mock_ctx();
        let (ns_store, mut w) = reflector::store::<PartialObjectMeta<Namespace>>();
        w.apply_watcher_event(&watcher::Event::Init);
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some("default".into());
        ns.metadata.labels = Some(BTreeMap::from([("env".into(), "prod".into())]));
        w.apply_watcher_event(&watcher::Event::InitApply(ns));
        w.apply_watcher_event(&watcher::Event::InitDone);
        let ctx = ctx.with_namespaces(ns_store);
        let mut ss = mk_ss("h", "w", "i");
        assert_eq!(namespace_labels(&ctx, &ss).await.unwrap(), None);
        ss.spec.namespace_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("env".into(), "prod".into())])),
            ..Default::default()
        });
        let got = namespace_labels(&ctx, &ss).await.unwrap().unwrap();
        assert_eq!(got["default"]["env"], "prod");
        // The v1alpha1 `namespace` field matches by name: no labels needed.
        ss.spec.namespace = Some("default".into());
        assert_eq!(namespace_labels(&ctx, &ss).await.unwrap(), None);
    }

    #[test]
    fn rv_ordering() {
        assert!(rv_reached("10", "9"));
        assert!(rv_reached("10", "10"));
        assert!(!rv_reached("9", "10"));
        assert!(rv_reached("abc", "abc"));
        assert!(!rv_reached("abc", "abd"));
    }

    #[test]
    fn pods_map_to_their_injected_sidecarsets() {
        let p = mk_pod("p")
            .annotation(
                kruise_crds::keys::sidecarset::SIDECARSET_INJECTED_LIST,
                "a,b",
            )
            .build();
        let refs = pod_to_sidecarsets(&p);
        let names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert!(refs.iter().all(|r| r.namespace.is_none()));
    }

    #[test]
    fn patch_from_stripped_cache_applies_to_full_pod() {
        use k8s_openapi::api::core::v1::{EnvVar, Volume};
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let mut full = mk_pod("p").build();
        let spec = full.spec.as_mut().unwrap();
        spec.volumes = Some(vec![Volume {
            name: "v".into(),
            ..Default::default()
        }]);
        for c in &mut spec.containers {
            c.env = Some(vec![EnvVar {
                name: "E".into(),
                value: Some("1".into()),
                value_from: None,
            }]);
        }
        full.metadata.managed_fields = Some(vec![Default::default()]);
        let mut cached = full.clone();
        strip_pod(&mut cached);
        let (patch, _) = upgrade::upgrade_pod_patch(&ss, &cached, Timestamp::UNIX_EPOCH).unwrap();
        let mut doc = serde_json::to_value(&full).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        let after: Pod = serde_json::from_value(doc).unwrap();
        assert_eq!(
            pod::container_image(&after, "test-sidecar"),
            Some("test-image:v2")
        );
        // Untouched fields survive.
        assert_eq!(
            after.spec.as_ref().unwrap().volumes.as_ref().unwrap().len(),
            1
        );
        assert!(after.spec.as_ref().unwrap().containers[1].env.is_some());
        assert!(pod::is_updated(&ss, &after));
    }

    #[test]
    fn strip_removes_managed_fields() {
        let mut p = mk_pod("p")
            .annotation("kubectl.kubernetes.io/last-applied-configuration", "{}")
            .build();
        p.metadata.managed_fields = Some(vec![Default::default()]);
        strip_pod(&mut p);
        assert!(p.metadata.managed_fields.is_none());
        assert!(pod::annotation(&p, "kubectl.kubernetes.io/last-applied-configuration").is_none());
    }
}
