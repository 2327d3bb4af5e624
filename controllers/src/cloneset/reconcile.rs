//! The CloneSet controller's thin shell: watches CloneSets and (through label-filtered, stripped
//! caches) their pods, PVCs and ControllerRevisions; each reconcile observes the caches, asks the
//! pure planners what to do, and turns the plans into API calls, events and one status apply.

use super::expectations::{Expectations, Kind, Op, Seen};
use super::pod::{self, NewPod};
use super::revision::{self, UpdateRevisionAction};
use super::scale::{ScalePlan, plan_scale};
use super::status::{StatusInput, compute_status, needs_write};
use super::update::{self, PodWrite, UpdateAction, UpdatePlan, plan_refresh, plan_update};
use super::{Error, Gates, Result, inplace, lifecycle, podutil, predownload};
use crate::metrics::Metrics;
use futures::{StreamExt, future::join_all};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kruise_crds::keys::cloneset as ck;
use kruise_crds::{
    API_VERSION, CloneSet, CloneSetSpec, CloneSetStatus, FIELD_MANAGER, GROUP, ImagePullJob,
};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Controller name in metrics and events.
pub const CONTROLLER_NAME: &str = "cloneset-controller";

/// Shared state of the reconciles.
pub struct Context {
    client: Client,
    pods: Store<Pod>,
    pvcs: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    /// ImagePullJobs created for workloads (label `controller.kubernetes.io/hash`); only watched
    /// when image pre-download is on.
    jobs: Option<Store<ImagePullJob>>,
    expectations: Expectations,
    recorder: Recorder,
    metrics: Metrics,
    gates: Gates,
}

/// The CloneSets an object's owner references point at (any served version of the kind, so pods
/// created by OpenKruise under `apps.kruise.io/v1beta1` are recognised too).
fn owners(meta: &ObjectMeta) -> Vec<ObjectRef<CloneSet>> {
    meta.owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == "CloneSet" && o.api_version.split('/').next() == Some(GROUP))
        .map(|o| {
            let r = ObjectRef::<CloneSet>::new(&o.name);
            match meta.namespace.as_deref() {
                Some(ns) => r.within(ns),
                None => r,
            }
        })
        .collect()
}

fn owned_by(meta: &ObjectMeta, ns: &str, uid: &str) -> bool {
    meta.namespace.as_deref() == Some(ns)
        && meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// Runs the CloneSet controller until `shutdown` resolves, with the feature gates named in
/// [`super::FEATURE_GATES_ENV`] (all off when unset); kruise-manager passes its `--feature-gates`
/// to [`run_with`].
pub async fn run(
    client: Client,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gates = Gates::default()
        .with_feature_gates(&std::env::var(super::FEATURE_GATES_ENV).unwrap_or_default())?;
    run_with(client, metrics, gates, shutdown).await
}

/// [`run`] with explicit feature switches.
pub async fn run_with(
    client: Client,
    metrics: Metrics,
    gates: Gates,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The controller wants a `Sync` shutdown future; a boxed one is not, so relay it.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(());
    });
    // Only CloneSet pods/PVCs carry the instance-id label: the caches hold nothing else
    // (decision 6), and managedFields are dropped before they are stored. (Dropped as `None`, not
    // `[]`: a pod written back from the cache must omit the field, since an empty list would wipe
    // the server's managedFields.)
    let by_id = || watcher::Config::default().labels(ck::INSTANCE_ID_LABEL);
    let (pods, pod_w) = reflector::store::<Pod>();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), by_id())
        .default_backoff()
        .modify(|p: &mut Pod| p.metadata.managed_fields = None)
        .reflect(pod_w)
        .touched_objects();
    let (pvcs, pvc_w) = reflector::store::<PersistentVolumeClaim>();
    let pvc_stream = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), by_id())
        .default_backoff()
        .modify(|p: &mut PersistentVolumeClaim| p.metadata.managed_fields = None)
        .reflect(pvc_w)
        .touched_objects();
    let (revisions, rev_w) = reflector::store::<ControllerRevision>();
    let rev_stream = watcher(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(ck::REVISION_SHORT_HASH_LABEL),
    )
    .default_backoff()
    .modify(|r: &mut ControllerRevision| r.metadata.managed_fields = None)
    .reflect(rev_w)
    .touched_objects();
    // Jobs only feed the cache: their changes need no reconcile of the owner.
    let jobs = if gates.predownload_image {
        let (store, w) = reflector::store::<ImagePullJob>();
        let stream = watcher(
            Api::<ImagePullJob>::all(client.clone()),
            watcher::Config::default().labels(ck::REVISION_SHORT_HASH_LABEL),
        )
        .default_backoff()
        .modify(|j: &mut ImagePullJob| j.metadata.managed_fields = None)
        .reflect(w)
        .applied_objects();
        tokio::spawn(stream.for_each(|_| async {}));
        tracing::info!("image pre-download for in-place updates is on");
        Some(store)
    } else {
        None
    };

    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        pvcs,
        revisions,
        jobs,
        expectations: Expectations::default(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER_NAME.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        metrics,
        gates,
    });
    let css: Api<CloneSet> = Api::all(client);
    Controller::new(css, watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(3))
        .watches_stream(pod_stream, |p: Pod| owners(&p.metadata))
        .watches_stream(pvc_stream, |p: PersistentVolumeClaim| owners(&p.metadata))
        .watches_stream(rev_stream, |r: ControllerRevision| owners(&r.metadata))
        .graceful_shutdown_on(async move {
            let _ = stop_rx.await;
        })
        .run(guarded_reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(err) = res {
                tracing::debug!(%err, "cloneset reconcile");
            }
        })
        .await;
    Ok(())
}

fn error_policy(cs: Arc<CloneSet>, err: &Error, _: Arc<Context>) -> Action {
    if let Error::Panicked(p) = err {
        // logged by the guard, once per CloneSet
        return Action::requeue(p.retry_after);
    }
    tracing::warn!(cloneset = %cs.name_any(), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(5) + Duration::from_millis(fastrand::u64(0..2000)))
}

/// [`reconcile`] behind the panic guard: a panic fails this CloneSet only.
async fn guarded_reconcile(cs: Arc<CloneSet>, ctx: Arc<Context>) -> Result<Action> {
    let object = crate::guard::object_key(cs.as_ref());
    let fut = reconcile(cs, ctx.clone());
    crate::guard::reconcile(
        Some(&ctx.metrics),
        CONTROLLER_NAME,
        "CloneSet",
        &object,
        fut,
    )
    .await
}

/// One reconcile of one CloneSet.
pub async fn reconcile(cs: Arc<CloneSet>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    // Acting before the pod/PVC/revision caches have listed once would see "no pods" and create
    // a full set of duplicates.
    let ready = async {
        ctx.pods.wait_until_ready().await.is_ok()
            && ctx.pvcs.wait_until_ready().await.is_ok()
            && ctx.revisions.wait_until_ready().await.is_ok()
            && match &ctx.jobs {
                Some(j) => j.wait_until_ready().await.is_ok(),
                None => true,
            }
    };
    if !tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap_or(false)
    {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let res = Reconciler::new(&cs, &ctx)?.run().await;
    let result = if res.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciled(CONTROLLER_NAME, result, start.elapsed().as_secs_f64());
    res
}

struct Reconciler<'a> {
    cs: &'a CloneSet,
    ctx: &'a Context,
    ns: String,
    key: String,
    uid: String,
    pods_api: Api<Pod>,
    pvcs_api: Api<PersistentVolumeClaim>,
    now: Timestamp,
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

fn is_conflict_or_exists(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl<'a> Reconciler<'a> {
    fn new(cs: &'a CloneSet, ctx: &'a Context) -> Result<Self> {
        let ns = cs
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let uid = cs.uid().ok_or(Error::MissingField("metadata.uid"))?;
        Ok(Self {
            key: format!("{ns}/{}", cs.name_any()),
            pods_api: Api::namespaced(ctx.client.clone(), &ns),
            pvcs_api: Api::namespaced(ctx.client.clone(), &ns),
            cs,
            ctx,
            ns,
            uid,
            now: Timestamp::now(),
        })
    }

    async fn event(&self, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(err) = self
            .ctx
            .recorder
            .publish(&ev, &self.cs.object_ref(&()))
            .await
        {
            tracing::debug!(%err, reason, "publish event");
        }
    }

    fn cached_pods(&self) -> Vec<Arc<Pod>> {
        self.ctx
            .pods
            .state()
            .into_iter()
            .filter(|p| owned_by(&p.metadata, &self.ns, &self.uid))
            .collect()
    }

    fn cached_pvcs(&self) -> Vec<Arc<PersistentVolumeClaim>> {
        self.ctx
            .pvcs
            .state()
            .into_iter()
            .filter(|p| {
                owned_by(&p.metadata, &self.ns, &self.uid)
                    && p.metadata.deletion_timestamp.is_none()
            })
            .collect()
    }

    fn seen(&self, kind: Kind, name: &str) -> Seen {
        let meta = match kind {
            Kind::Pod => self
                .ctx
                .pods
                .get(&ObjectRef::new(name).within(&self.ns))
                .map(|p| p.metadata.deletion_timestamp.is_some()),
            Kind::Pvc => self
                .ctx
                .pvcs
                .get(&ObjectRef::new(name).within(&self.ns))
                .map(|p| p.metadata.deletion_timestamp.is_some()),
        };
        match meta {
            None => Seen::Absent,
            Some(true) => Seen::Deleting,
            Some(false) => Seen::Present,
        }
    }

    async fn run(&self) -> Result<Action> {
        let cs = self.cs;
        if cs.metadata.deletion_timestamp.is_some() {
            self.ctx.expectations.clear(&self.key);
            return Ok(Action::await_change());
        }
        // 1. Never act on a cache that has not seen our own writes yet.
        let wait = self.ctx.expectations.pending(
            &self.key,
            Instant::now(),
            |k, n| self.seen(k, n),
            |n| {
                self.ctx
                    .pods
                    .get(&ObjectRef::new(n).within(&self.ns))
                    .and_then(|p| p.metadata.resource_version.clone())
            },
        );
        if let Some(wait) = wait {
            return Ok(Action::requeue(wait));
        }

        // 2. Observe.
        let all = self.cached_pods();
        let (mut active, inactive): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) =
            all.iter().cloned().partition(|p| podutil::is_active(p));
        let pvcs = self.cached_pvcs();
        let mut released = Vec::new();
        active.retain(|p| {
            let keep = podutil::selector_matches(&cs.spec.selector, &podutil::labels(p));
            if !keep {
                released.push(podutil::name(p).to_string());
            }
            keep
        });
        for name in &released {
            self.release(name).await?;
        }
        let reuse = cs
            .spec
            .scale_strategy
            .as_ref()
            .and_then(|s| s.disable_pvc_reuse)
            != Some(true);
        let active_refs: Vec<&Pod> = active.iter().map(AsRef::as_ref).collect();
        let pvc_refs: Vec<&PersistentVolumeClaim> = pvcs.iter().map(AsRef::as_ref).collect();
        if !reuse {
            let inactive_refs: Vec<&Pod> = inactive.iter().map(AsRef::as_ref).collect();
            self.cleanup_pvcs(pod::plan_pvc_cleanup(
                &active_refs,
                &inactive_refs,
                &pvc_refs,
            ))
            .await?;
        }

        // 3. Revisions.
        let mut revs: Vec<ControllerRevision> = self
            .ctx
            .revisions
            .state()
            .iter()
            .filter(|r| {
                r.metadata.namespace.as_deref() == Some(self.ns.as_str())
                    && (owned_by(&r.metadata, &self.ns, &self.uid)
                        || (r
                            .metadata
                            .owner_references
                            .as_ref()
                            .is_none_or(Vec::is_empty)
                            && podutil::selector_matches(
                                &cs.spec.selector,
                                &r.metadata.labels.clone().unwrap_or_default(),
                            )))
            })
            .map(|r| r.as_ref().clone())
            .collect();
        let Some(update_rev) = self.ensure_update_revision(&mut revs).await? else {
            return Ok(Action::requeue(Duration::from_secs(1)));
        };
        let current_rev = revision::choose_current_revision(cs, &revs, &update_rev);
        let mut templates: BTreeMap<String, PodTemplateSpec> = revs
            .iter()
            .filter_map(|r| Some((r.metadata.name.clone()?, revision::template_of(r)?)))
            .collect();
        // The live template is the update revision's, whatever the stored copy decodes to.
        templates.insert(update_rev.clone(), cs.spec.template.clone());

        // 3b. Warm the new images on the nodes of old pods (when enabled).
        if let Some(rev) = revs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(update_rev.as_str()))
        {
            self.predownload(&current_rev, rev, &templates).await;
        }

        // 4. Sync: scale, or (when scale had nothing to do) refresh and update.
        let gates = self.ctx.gates;
        let mut input = StatusInput {
            current_revision: current_rev.clone(),
            update_revision: update_rev.clone(),
            collision_count: cs
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
            ..Default::default()
        };
        let mut requeue: Option<i64> = None;
        let scale = plan_scale(
            cs,
            &active_refs,
            &current_rev,
            &update_rev,
            &gates,
            self.now,
        );
        if let Some((want, allowed)) = scale.scale_up_limited {
            self.event(
                true,
                ck::EVENT_SCALE_UP_LIMITED,
                format!("scaleStrategy.maxUnavailable allows creating {allowed} of {want} pods"),
            )
            .await;
        }
        if scale.is_modifying() {
            let res = self
                .apply_scale(&scale, &all, &pvc_refs, &templates, reuse)
                .await;
            input.scale_result = Some(res.err().map(|e| e.to_string()).unwrap_or_default());
        } else {
            input.scale_result = Some(String::new());
            let refresh = plan_refresh(cs, &active_refs, &update_rev, self.now);
            requeue = refresh.requeue_after;
            if refresh.writes.is_empty() {
                let plan = plan_update(
                    cs,
                    &active_refs,
                    &current_rev,
                    &update_rev,
                    &templates,
                    &gates,
                    self.now,
                );
                requeue = min_opt(requeue, plan.requeue_after);
                input.update_result = Some(self.apply_update(&plan).await);
            } else {
                let mut writes = refresh.writes;
                update::order_writes(&mut writes);
                if let Err(e) = self.apply_writes(writes).await {
                    input.update_result = Some(e.to_string());
                }
            }
        }

        // 5. Status, podsToDelete, history.
        let (status, progress) = compute_status(cs, &active_refs, &input, self.now);
        requeue = min_opt(requeue, progress);
        if status.available_replicas != status.ready_replicas
            && let Some(mr) = cs.spec.min_ready_seconds.filter(|m| *m > 0)
        {
            requeue = min_opt(requeue, Some(i64::from(mr)));
        }
        self.write_status(&status).await?;
        self.truncate_pods_to_delete(&active_refs).await?;
        let limit = cs
            .spec
            .revision_history_limit
            .unwrap_or(CloneSetSpec::DEFAULT_REVISION_HISTORY_LIMIT);
        let revs_api: Api<ControllerRevision> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        for name in
            revision::history_to_delete(&revs, &active_refs, &current_rev, &update_rev, limit)
        {
            match revs_api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_conflict_or_exists(&e, 404) => {}
                Err(e) => return Err(kube_err(format!("delete revision {name}"))(e)),
            }
        }
        Ok(match requeue {
            Some(s) => Action::requeue(Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1))),
            None => Action::requeue(Duration::from_secs(300)),
        })
    }

    /// Applies the pre-download plan. Failures are logged and evented, never fail the reconcile
    /// (pre-download only speeds the update up); a revision is labelled `pre-predownload-created`
    /// only once all of its jobs exist, so a failed creation is retried.
    async fn predownload(
        &self,
        current: &str,
        update: &ControllerRevision,
        templates: &BTreeMap<String, PodTemplateSpec>,
    ) {
        let Some(store) = &self.ctx.jobs else { return };
        let owned: Vec<String> = store
            .state()
            .iter()
            .filter(|j| {
                j.metadata.namespace.as_deref() == Some(self.ns.as_str())
                    && predownload::owned_by(j, &self.uid)
            })
            .filter_map(|j| j.metadata.name.clone())
            .collect();
        let plan = predownload::plan(&predownload::Observed {
            cs: self.cs,
            current,
            update,
            templates,
            owned_jobs: &owned,
        });
        let jobs_api: Api<ImagePullJob> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let revs_api: Api<ControllerRevision> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let label = |revision: String, key: &'static str| {
            let revs_api = revs_api.clone();
            async move {
                let patch = predownload::revision_label_patch(key);
                if let Err(err) = revs_api
                    .patch(&revision, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::warn!(cloneset = %self.key, %revision, %err, "label revision for pre-download");
                }
            }
        };
        match plan {
            predownload::Plan::Idle => {}
            predownload::Plan::Wait { ready, want } => {
                tracing::debug!(cloneset = %self.key, ready, want, "pre-download waits for updated ready pods");
            }
            predownload::Plan::Ignore { revision, why } => {
                tracing::debug!(cloneset = %self.key, %revision, why, "no image pre-download");
                label(revision, ck::IMAGE_PREDOWNLOAD_IGNORED_LABEL).await;
            }
            predownload::Plan::Create { revision, jobs } => {
                let mut all_ok = true;
                for job in jobs {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    match jobs_api.create(&PostParams::default(), &job).await {
                        Ok(_) => {
                            self.event(
                                false,
                                predownload::EVENT_CREATED_JOB,
                                format!(
                                    "created ImagePullJob {name} for image: {}",
                                    job.spec.image
                                ),
                            )
                            .await;
                        }
                        Err(e) if is_conflict_or_exists(&e, 409) => {}
                        Err(e) => {
                            all_ok = false;
                            self.event(
                                false,
                                predownload::EVENT_FAILED_CREATE_JOB,
                                format!("failed to create ImagePullJob {name}: {e}"),
                            )
                            .await;
                        }
                    }
                }
                if all_ok {
                    label(revision, ck::IMAGE_PREDOWNLOAD_CREATED_LABEL).await;
                }
            }
            predownload::Plan::Delete { jobs } => {
                for name in jobs {
                    match jobs_api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(e) if is_conflict_or_exists(&e, 404) => {}
                        Err(err) => {
                            tracing::warn!(cloneset = %self.key, job = %name, %err, "delete ImagePullJob");
                        }
                    }
                }
            }
        }
    }

    async fn release(&self, name: &str) -> Result<()> {
        let patch =
            json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": self.uid}]}});
        match self
            .pods_api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict_or_exists(&e, 404) => Ok(()),
            Err(e) => Err(kube_err(format!("release pod {name}"))(e)),
        }
    }

    async fn cleanup_pvcs(&self, plan: pod::PvcCleanup) -> Result<()> {
        for (name, owner) in plan.reown {
            let patch = json!({"metadata": {"ownerReferences": [owner]}});
            self.pvcs_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(kube_err(format!("hand PVC {name} to its pod")))?;
        }
        for name in plan.delete {
            self.delete_pvc(&name).await?;
        }
        Ok(())
    }

    async fn delete_pvc(&self, name: &str) -> Result<()> {
        let exp = &self.ctx.expectations;
        exp.expect(&self.key, Kind::Pvc, Op::Delete, name, Instant::now());
        match self.pvcs_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                exp.forget(&self.key, Kind::Pvc, Op::Delete, name);
                if is_conflict_or_exists(&e, 404) {
                    Ok(())
                } else {
                    Err(kube_err(format!("delete PVC {name}"))(e))
                }
            }
        }
    }

    /// Makes sure the update revision exists; None when a hash collision was recorded (requeue).
    async fn ensure_update_revision(
        &self,
        revs: &mut Vec<ControllerRevision>,
    ) -> Result<Option<String>> {
        let api: Api<ControllerRevision> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        match revision::choose_update_revision(self.cs, revs) {
            UpdateRevisionAction::Reuse(name) => Ok(Some(name)),
            UpdateRevisionAction::Bump {
                name,
                revision: number,
                vct_hash,
            } => {
                let patch = json!({
                    "metadata": {"annotations": {ck::VOLUME_CLAIM_TEMPLATE_HASH_ANNOTATION: vct_hash}},
                    "revision": number,
                });
                let updated = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map_err(kube_err(format!("bump revision {name}")))?;
                if let Some(r) = revs
                    .iter_mut()
                    .find(|r| r.metadata.name.as_deref() == Some(&name))
                {
                    *r = updated;
                }
                Ok(Some(name))
            }
            UpdateRevisionAction::Create(candidate) => {
                let name = candidate.metadata.name.clone().unwrap_or_default();
                match api.create(&PostParams::default(), &candidate).await {
                    Ok(created) => {
                        revs.push(created);
                        Ok(Some(name))
                    }
                    Err(e) if is_conflict_or_exists(&e, 409) => {
                        let existing = api
                            .get(&name)
                            .await
                            .map_err(kube_err(format!("get revision {name}")))?;
                        if revision::equal_data(&existing, &candidate) {
                            revs.push(existing);
                            return Ok(Some(name));
                        }
                        // A different template hashed to this name: count the collision.
                        let mut st = self.cs.status.clone().unwrap_or_default();
                        st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                        self.write_status(&st).await?;
                        Ok(None)
                    }
                    Err(e) => Err(kube_err(format!("create revision {name}"))(e)),
                }
            }
        }
    }

    async fn write_status(&self, status: &CloneSetStatus) -> Result<()> {
        if !needs_write(self.cs.status.as_ref(), status) {
            return Ok(());
        }
        let api: Api<CloneSet> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let body = json!({"apiVersion": API_VERSION, "kind": "CloneSet", "status": status});
        match api
            .patch_status(
                &self.cs.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
        {
            // deleted meanwhile: nothing left to report on
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            r => r.map(|_| ()).map_err(kube_err("apply CloneSet status")),
        }
    }

    async fn truncate_pods_to_delete(&self, active: &[&Pod]) -> Result<()> {
        let Some(list) = self
            .cs
            .spec
            .scale_strategy
            .as_ref()
            .and_then(|s| s.pods_to_delete.as_ref())
        else {
            return Ok(());
        };
        let names: BTreeSet<&str> = active.iter().map(|p| podutil::name(p)).collect();
        let kept: Vec<&String> = list.iter().filter(|n| names.contains(n.as_str())).collect();
        if kept.len() == list.len() {
            return Ok(());
        }
        let api: Api<CloneSet> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        // resourceVersion guards against overwriting a list the user just changed.
        let patch = json!({
            "metadata": {"resourceVersion": self.cs.resource_version()},
            "spec": {"scaleStrategy": {"podsToDelete": kept}},
        });
        match api
            .patch(
                &self.cs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict_or_exists(&e, 409) => Ok(()),
            Err(e) => Err(kube_err("truncate podsToDelete")(e)),
        }
    }

    async fn patch_pod(&self, name: &str, patch: serde_json::Value) -> Result<()> {
        let p = self
            .pods_api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(kube_err(format!("patch pod {name}")))?;
        self.expect_version(&p);
        Ok(())
    }

    /// Adds a lifecycle key to the pod's `KruisePodReady` condition (best effort: a failure only
    /// delays the not-ready signal, the state change goes ahead).
    async fn mark_not_ready(&self, name: &str, key: &str) {
        let res = async {
            let pod = self.pods_api.get(name).await?;
            if let Some(p) = lifecycle::with_not_ready_key(&pod, key, true, self.now) {
                let written = self
                    .pods_api
                    .replace_status(name, &PostParams::default(), &p)
                    .await?;
                self.expect_version(&written);
            }
            Ok::<(), kube::Error>(())
        }
        .await;
        if let Err(err) = res {
            tracing::warn!(pod = name, %err, "mark pod not ready");
        }
    }

    fn expect_version(&self, pod: &Pod) {
        if let Some(rv) = pod.metadata.resource_version.as_deref() {
            self.ctx
                .expectations
                .expect_version(&self.key, podutil::name(pod), rv, Instant::now());
        }
    }

    async fn apply_scale(
        &self,
        plan: &ScalePlan,
        all: &[Arc<Pod>],
        pvcs: &[&PersistentVolumeClaim],
        templates: &BTreeMap<String, PodTemplateSpec>,
        reuse: bool,
    ) -> Result<()> {
        for name in &plan.cancel_delete {
            self.patch_pod(
                name,
                lifecycle::state_patch(ck::LIFECYCLE_PREPARING_NORMAL, self.now),
            )
            .await?;
        }
        if !plan.create.is_empty() {
            let taken: BTreeSet<String> = all
                .iter()
                .filter_map(|p| podutil::instance_id(p).map(String::from))
                .chain(
                    pvcs.iter()
                        .filter_map(|c| pod::pvc_instance_id(c).map(String::from)),
                )
                .collect();
            let reusable = if reuse {
                {
                    // Ids of any existing pod (even terminating or failed) are not reused: the new
                    // pod would take its name and fail with AlreadyExists (OpenKruise #1099, #2473).
                    let every: Vec<&Pod> = all.iter().map(AsRef::as_ref).collect();
                    pod::reusable_ids(&every, pvcs)
                }
            } else {
                BTreeSet::new()
            };
            let mut rng = fastrand::Rng::new();
            let ids = pod::instance_ids(plan.create.len(), &taken, &reusable, &mut rng);
            let pvc_names: BTreeSet<String> = pvcs
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            let new: Vec<NewPod> = plan
                .create
                .iter()
                .zip(ids)
                .map(|(n, id)| NewPod {
                    revision: n.revision.clone(),
                    instance_id: id,
                })
                .collect();
            self.create_slowly(&new, templates, &pvc_names).await?;
        }
        let marks = lifecycle::hook_marks_not_ready(
            self.cs
                .spec
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_delete.as_ref()),
        );
        for name in &plan.prepare_delete {
            // Not ready first, then the state (OpenKruise's order): traffic stops before the
            // user's preDelete hook sees the pod.
            if marks {
                self.mark_not_ready(name, ck::KRUISE_POD_READY_PRE_DELETE_KEY)
                    .await;
            }
            self.patch_pod(
                name,
                lifecycle::state_patch(ck::LIFECYCLE_PREPARING_DELETE, self.now),
            )
            .await?;
        }
        for name in &plan.delete {
            self.delete_pod(name, pvcs).await?;
        }
        Ok(())
    }

    /// §6.7: batches of 1, 2, 4, … created concurrently; the first failure stops the rest.
    async fn create_slowly(
        &self,
        new: &[NewPod],
        templates: &BTreeMap<String, PodTemplateSpec>,
        pvc_names: &BTreeSet<String>,
    ) -> Result<()> {
        let mut batch = 1;
        let mut rest = new;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let results =
                join_all(now.iter().map(|n| self.create_one(n, templates, pvc_names))).await;
            if let Some(err) = results.into_iter().find_map(Result::err) {
                return Err(err);
            }
            rest = later;
            batch *= 2;
        }
        Ok(())
    }

    async fn create_one(
        &self,
        n: &NewPod,
        templates: &BTreeMap<String, PodTemplateSpec>,
        pvc_names: &BTreeSet<String>,
    ) -> Result<()> {
        let cs = self.cs;
        let exp = &self.ctx.expectations;
        for pvc in pod::build_pvcs(cs, &n.instance_id) {
            let name = pvc.metadata.name.clone().unwrap_or_default();
            if pvc_names.contains(&name) {
                continue;
            }
            exp.expect(&self.key, Kind::Pvc, Op::Create, &name, Instant::now());
            if let Err(e) = self.pvcs_api.create(&PostParams::default(), &pvc).await {
                exp.forget(&self.key, Kind::Pvc, Op::Create, &name);
                self.event(
                    true,
                    ck::EVENT_FAILED_CREATE,
                    format!("failed to create pvc {name}: {e}"),
                )
                .await;
                return Err(kube_err(format!("create PVC {name}"))(e));
            }
        }
        let template = templates.get(&n.revision).unwrap_or(&cs.spec.template);
        let pod = pod::build_pod(cs, template, &n.revision, &n.instance_id, self.now);
        let name = podutil::name(&pod).to_string();
        exp.expect(&self.key, Kind::Pod, Op::Create, &name, Instant::now());
        match self.pods_api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.event(
                    false,
                    ck::EVENT_SUCCESSFUL_CREATE,
                    format!("succeed to create pod {name}"),
                )
                .await;
                Ok(())
            }
            Err(e) => {
                exp.forget(&self.key, Kind::Pod, Op::Create, &name);
                self.event(
                    true,
                    ck::EVENT_FAILED_CREATE,
                    format!("failed to create pod {name}: {e}"),
                )
                .await;
                Err(kube_err(format!("create pod {name}"))(e))
            }
        }
    }

    async fn delete_pod(&self, name: &str, pvcs: &[&PersistentVolumeClaim]) -> Result<()> {
        let exp = &self.ctx.expectations;
        exp.expect(&self.key, Kind::Pod, Op::Delete, name, Instant::now());
        match self.pods_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.event(
                    false,
                    ck::EVENT_SUCCESSFUL_DELETE,
                    format!("succeed to delete pod {name}"),
                )
                .await;
            }
            Err(e) if is_conflict_or_exists(&e, 404) => {
                exp.forget(&self.key, Kind::Pod, Op::Delete, name);
            }
            Err(e) => {
                exp.forget(&self.key, Kind::Pod, Op::Delete, name);
                self.event(
                    true,
                    ck::EVENT_FAILED_DELETE,
                    format!("failed to delete pod {name}: {e}"),
                )
                .await;
                return Err(kube_err(format!("delete pod {name}"))(e));
            }
        }
        // The controller deletes a pod's PVCs with it (§6.4).
        let id = self
            .ctx
            .pods
            .get(&ObjectRef::new(name).within(&self.ns))
            .and_then(|p| podutil::instance_id(&p).map(String::from));
        if let Some(id) = id {
            for pvc in pvcs
                .iter()
                .filter(|c| pod::pvc_instance_id(c) == Some(id.as_str()))
            {
                if let Some(pvc_name) = pvc.metadata.name.as_deref() {
                    self.delete_pvc(pvc_name).await?;
                }
            }
        }
        Ok(())
    }

    async fn apply_writes(&self, writes: Vec<PodWrite>) -> Result<()> {
        for w in writes {
            let name = w.name().to_string();
            let written = match w {
                PodWrite::Replace(p) => {
                    self.pods_api
                        .replace(&name, &PostParams::default(), &p)
                        .await
                }
                PodWrite::ReplaceStatus(p) => {
                    self.pods_api
                        .replace_status(&name, &PostParams::default(), &p)
                        .await
                }
                PodWrite::Patch { patch, .. } => {
                    self.pods_api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                }
            };
            match written {
                Ok(p) => self.expect_version(&p),
                // Someone else changed the pod: the next reconcile sees the new version.
                Err(e) if is_conflict_or_exists(&e, 409) || is_conflict_or_exists(&e, 404) => {}
                Err(e) => return Err(kube_err(format!("write pod {name}"))(e)),
            }
        }
        Ok(())
    }

    /// Applies an update plan; returns "" on success or the errors for `FailedUpdate`.
    async fn apply_update(&self, plan: &UpdatePlan) -> String {
        let mut errors = plan.errors.clone();
        for action in &plan.actions {
            let res = match action {
                UpdateAction::InPlace { pod, spec } => self.update_in_place(pod, spec).await,
                UpdateAction::Lifecycle {
                    pod,
                    patch,
                    not_ready_key,
                } => {
                    if let Some(key) = not_ready_key {
                        self.mark_not_ready(pod, key).await;
                    }
                    self.patch_pod(pod, patch.clone()).await
                }
                UpdateAction::Recreate { pod } => {
                    let r = self.patch_pod(pod, update::recreate_patch()).await;
                    let (warn, reason) = match &r {
                        Ok(()) => (false, ck::EVENT_SUCCESSFUL_UPDATE_POD_RECREATE),
                        Err(_) => (true, ck::EVENT_FAILED_UPDATE_POD_RECREATE),
                    };
                    self.event(warn, reason, format!("recreate pod {pod} for update"))
                        .await;
                    r
                }
            };
            if let Err(e) = res {
                errors.push(e.to_string());
            }
        }
        errors.join("; ")
    }

    async fn update_in_place(&self, name: &str, spec: &inplace::UpdateSpec) -> Result<()> {
        let res = async {
            let mut pod = self
                .pods_api
                .get(name)
                .await
                .map_err(kube_err(format!("get pod {name}")))?;
            if inplace::has_gate(&pod) {
                let not_ready = inplace::with_not_ready_condition(&pod, self.now);
                pod = self
                    .pods_api
                    .replace_status(name, &PostParams::default(), &not_ready)
                    .await
                    .map_err(kube_err(format!("mark pod {name} not ready")))?;
            }
            let updated = inplace::apply_update(&pod, spec, true, self.now);
            let written = self
                .pods_api
                .replace(name, &PostParams::default(), &updated)
                .await
                .map_err(kube_err(format!("update pod {name} in place")))?;
            self.expect_version(&written);
            Ok(())
        }
        .await;
        let (warn, reason, note) = match &res {
            Ok(()) => (
                false,
                ck::EVENT_SUCCESSFUL_UPDATE_POD_IN_PLACE,
                format!(
                    "successfully update pod {name} in-place(revision {})",
                    spec.revision
                ),
            ),
            Err(e) => (
                true,
                ck::EVENT_FAILED_UPDATE_POD_IN_PLACE,
                format!("failed to update pod {name} in-place: {e}"),
            ),
        };
        self.event(warn, reason, note).await;
        res
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn owner_mapping_accepts_both_versions() {
        let or = |v: &str, kind: &str| OwnerReference {
            api_version: v.into(),
            kind: kind.into(),
            name: "demo".into(),
            uid: "u".into(),
            ..Default::default()
        };
        let meta = ObjectMeta {
            namespace: Some("ns".into()),
            owner_references: Some(vec![
                or("apps.kruise.io/v1alpha1", "CloneSet"),
                or("apps.kruise.io/v1beta1", "CloneSet"),
                or("apps/v1", "ReplicaSet"),
                or("other.io/v1", "CloneSet"),
            ]),
            ..Default::default()
        };
        let refs = owners(&meta);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0], ObjectRef::<CloneSet>::new("demo").within("ns"));
        assert!(owned_by(&meta, "ns", "u"));
        assert!(!owned_by(&meta, "other", "u"));
    }

    /// Compile-time check: the controller future can be boxed as a `Send` starter.
    #[allow(dead_code)]
    fn run_is_send(client: Client, metrics: Metrics) {
        fn send<T: Send>(_: &T) {}
        let shutdown: futures::future::BoxFuture<'static, ()> = Box::pin(std::future::pending());
        send(&run(client, metrics, shutdown));
    }

    mod api {
        //! API shell: the exact calls of a scale-up reconcile, via a tower-test mock.
        use super::super::*;
        use http::{Request, Response};
        use k8s_openapi::api::core::v1::{Container, PodSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
        use kube::client::Body;
        use serde_json::Value;

        fn cloneset() -> CloneSet {
            let labels: BTreeMap<String, String> = [("app".to_string(), "demo".to_string())].into();
            let mut cs = CloneSet::new(
                "demo",
                CloneSetSpec {
                    replicas: Some(2),
                    selector: LabelSelector {
                        match_labels: Some(labels.clone()),
                        ..Default::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![Container {
                                name: "main".into(),
                                image: Some("nginx:1.25".into()),
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
            cs.metadata.generation = Some(1);
            cs.metadata.resource_version = Some("10".into());
            cs
        }

        #[tokio::test]
        async fn in_place_update_marks_not_ready_then_rewrites_the_pod() {
            use k8s_openapi::api::core::v1::{
                ContainerStatus, PodCondition, PodReadinessGate, PodStatus,
            };
            use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
            let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(svc, "default");
            let old_cs = cloneset();
            let mut cs = cloneset();
            cs.spec.replicas = Some(1);
            cs.spec.update_strategy = Some(kruise_crds::CloneSetUpdateStrategy {
                type_: Some(kruise_crds::CloneSetUpdateStrategyType::InPlaceIfPossible),
                max_unavailable: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1),
                ),
                ..Default::default()
            });
            cs.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.26".into());
            let old_rev = revision::new_revision(&old_cs, 1, 0);
            let new_rev = revision::new_revision(&cs, 2, 0);
            let (old_name, new_name) = (
                old_rev.metadata.name.clone().unwrap(),
                new_rev.metadata.name.clone().unwrap(),
            );
            cs.status = Some(CloneSetStatus {
                current_revision: Some(old_name.clone()),
                ..Default::default()
            });
            let mut pod = pod::build_pod(
                &old_cs,
                &old_cs.spec.template,
                &old_name,
                "abcde",
                Timestamp::UNIX_EPOCH,
            );
            pod.metadata.resource_version = Some("5".into());
            pod.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("lifecycle.apps.kruise.io/state".into(), "Normal".into());
            pod.spec.as_mut().unwrap().node_name = Some("n1".into());
            pod.spec.as_mut().unwrap().readiness_gates = Some(vec![PodReadinessGate {
                condition_type: "InPlaceUpdateReady".into(),
            }]);
            let cond = |t: &str| PodCondition {
                type_: t.into(),
                status: "True".into(),
                last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                ..Default::default()
            };
            pod.status = Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![
                    cond("Ready"),
                    cond("ContainersReady"),
                    cond("InPlaceUpdateReady"),
                ]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    image: "docker.io/library/nginx:1.25".into(),
                    image_id: "sha256:old".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            let (revisions, mut rw) = reflector::store::<ControllerRevision>();
            rw.apply_watcher_event(&watcher::Event::Init);
            rw.apply_watcher_event(&watcher::Event::InitApply(old_rev));
            rw.apply_watcher_event(&watcher::Event::InitApply(new_rev));
            rw.apply_watcher_event(&watcher::Event::InitDone);
            let (pods, mut pw) = reflector::store::<Pod>();
            pw.apply_watcher_event(&watcher::Event::Init);
            pw.apply_watcher_event(&watcher::Event::InitApply(pod.clone()));
            pw.apply_watcher_event(&watcher::Event::InitDone);
            let (pvcs, mut cw) = reflector::store::<PersistentVolumeClaim>();
            cw.apply_watcher_event(&watcher::Event::InitDone);
            let ctx = Arc::new(Context {
                client: client.clone(),
                pods,
                pvcs,
                revisions,
                jobs: None,
                expectations: Expectations::default(),
                recorder: Recorder::new(
                    client,
                    Reporter {
                        controller: CONTROLLER_NAME.into(),
                        instance: None,
                    },
                ),
                metrics: Metrics::new(),
                gates: Gates::default(),
            });
            let live = pod.clone();
            let responder = tokio::spawn(async move {
                let mut seen: Vec<(String, String, Value)> = Vec::new();
                while let Some((req, send)) = handle.next_request().await {
                    let method = req.method().to_string();
                    let uri = req.uri().to_string();
                    let bytes = req.into_body().collect_bytes().await.unwrap();
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let mut reply = if method == "GET" {
                        serde_json::to_value(&live).unwrap()
                    } else {
                        body.clone()
                    };
                    if uri.contains("/clonesets/") {
                        reply = serde_json::to_value(cloneset()).unwrap();
                    } else {
                        reply["metadata"]["resourceVersion"] = serde_json::json!("6");
                    }
                    send.send_response(
                        Response::builder()
                            .status(200)
                            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                            .unwrap(),
                    );
                    seen.push((method, uri, body));
                }
                seen
            });
            reconcile(Arc::new(cs), ctx.clone()).await.unwrap();
            drop(ctx);
            let seen = tokio::time::timeout(Duration::from_secs(5), responder)
                .await
                .unwrap()
                .unwrap();
            let pod_calls: Vec<(&str, &str)> = seen
                .iter()
                .filter(|(_, u, _)| u.starts_with("/api/v1/namespaces/ns/pods"))
                .map(|(m, u, _)| (m.as_str(), u.split('?').next().unwrap()))
                .collect();
            let pod_path = "/api/v1/namespaces/ns/pods/demo-abcde";
            let status_path = "/api/v1/namespaces/ns/pods/demo-abcde/status";
            assert_eq!(
                pod_calls,
                vec![("GET", pod_path), ("PUT", status_path), ("PUT", pod_path)],
                "{seen:#?}"
            );
            let status_body = &seen
                .iter()
                .find(|(m, u, _)| m == "PUT" && u.starts_with(status_path))
                .unwrap()
                .2;
            let conds = status_body["status"]["conditions"].as_array().unwrap();
            let ipu = conds
                .iter()
                .find(|c| c["type"] == "InPlaceUpdateReady")
                .unwrap();
            assert_eq!(
                (ipu["status"].as_str(), ipu["reason"].as_str()),
                (Some("False"), Some("StartInPlaceUpdate"))
            );
            let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
            assert_eq!(ready["reason"], "ReadinessGatesNotReady");
            let put = &seen
                .iter()
                .find(|(m, u, _)| m == "PUT" && u.split('?').next() == Some(pod_path))
                .unwrap()
                .2;
            assert_eq!(
                put["metadata"]["resourceVersion"], "6",
                "the update is guarded by the status write's version"
            );
            assert_eq!(
                put["metadata"]["labels"]["controller-revision-hash"],
                new_name.as_str()
            );
            assert_eq!(
                put["metadata"]["labels"]["lifecycle.apps.kruise.io/state"],
                "Updating"
            );
            assert_eq!(put["spec"]["containers"][0]["image"], "nginx:1.26");
            let state: Value = serde_json::from_str(
                put["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(state["revision"], new_name.as_str());
            assert_eq!(
                state["lastContainerStatuses"]["main"]["imageID"],
                "sha256:old"
            );
            assert!(
                seen.iter().any(|(m, u, b)| m == "POST"
                    && u.contains("/events")
                    && b["reason"] == "SuccessfulUpdatePodInPlace"),
                "{seen:#?}"
            );
        }

        #[tokio::test]
        async fn scale_in_with_mark_pod_not_ready_marks_the_pod_before_preparing_delete() {
            use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
            use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
            const HOLD: &str = "example.test/hold";
            let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(svc, "default");
            let mut cs = cloneset();
            cs.spec.replicas = Some(1);
            cs.spec.lifecycle = Some(kruise_crds::Lifecycle {
                pre_delete: Some(kruise_crds::LifecycleHook {
                    finalizers_handler: Some(vec![HOLD.into()]),
                    mark_pod_not_ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            });
            let rev = revision::new_revision(&cs, 1, 0);
            let rev_name = rev.metadata.name.clone().unwrap();
            cs.status = Some(CloneSetStatus {
                current_revision: Some(rev_name.clone()),
                ..Default::default()
            });
            let cond = |t: &str| PodCondition {
                type_: t.into(),
                status: "True".into(),
                last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                ..Default::default()
            };
            let mk = |id: &str, created: i64| {
                let mut p =
                    pod::build_pod(&cs, &cs.spec.template, &rev_name, id, Timestamp::UNIX_EPOCH);
                p.metadata.resource_version = Some("5".into());
                p.metadata.creation_timestamp =
                    Some(Time(Timestamp::from_second(created).unwrap()));
                p.metadata.finalizers = Some(vec![HOLD.into()]);
                p.metadata
                    .labels
                    .as_mut()
                    .unwrap()
                    .insert("lifecycle.apps.kruise.io/state".into(), "Normal".into());
                p.spec.as_mut().unwrap().node_name = Some("n1".into());
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![
                        cond("Ready"),
                        cond("ContainersReady"),
                        cond("InPlaceUpdateReady"),
                        cond("KruisePodReady"),
                    ]),
                    ..Default::default()
                });
                p
            };
            // the newer pod goes first
            let (keep, victim) = (mk("aaaaa", 1_000), mk("bbbbb", 2_000));
            let (revisions, mut rw) = reflector::store::<ControllerRevision>();
            rw.apply_watcher_event(&watcher::Event::Init);
            rw.apply_watcher_event(&watcher::Event::InitApply(rev));
            rw.apply_watcher_event(&watcher::Event::InitDone);
            let (pods, mut pw) = reflector::store::<Pod>();
            pw.apply_watcher_event(&watcher::Event::Init);
            pw.apply_watcher_event(&watcher::Event::InitApply(keep));
            pw.apply_watcher_event(&watcher::Event::InitApply(victim.clone()));
            pw.apply_watcher_event(&watcher::Event::InitDone);
            let (pvcs, mut cw) = reflector::store::<PersistentVolumeClaim>();
            cw.apply_watcher_event(&watcher::Event::InitDone);
            let ctx = Arc::new(Context {
                client: client.clone(),
                pods,
                pvcs,
                revisions,
                jobs: None,
                expectations: Expectations::default(),
                recorder: Recorder::new(
                    client,
                    Reporter {
                        controller: CONTROLLER_NAME.into(),
                        instance: None,
                    },
                ),
                metrics: Metrics::new(),
                gates: Gates::default(),
            });
            let live = victim;
            let responder = tokio::spawn(async move {
                let mut seen: Vec<(String, String, Value)> = Vec::new();
                while let Some((req, send)) = handle.next_request().await {
                    let method = req.method().to_string();
                    let uri = req.uri().to_string();
                    let bytes = req.into_body().collect_bytes().await.unwrap();
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let mut reply = if method == "GET" {
                        serde_json::to_value(&live).unwrap()
                    } else {
                        body.clone()
                    };
                    if uri.contains("/clonesets/") {
                        reply = serde_json::to_value(cloneset()).unwrap();
                    } else {
                        reply["metadata"]["resourceVersion"] = serde_json::json!("6");
                    }
                    send.send_response(
                        Response::builder()
                            .status(200)
                            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                            .unwrap(),
                    );
                    seen.push((method, uri, body));
                }
                seen
            });
            reconcile(Arc::new(cs), ctx.clone()).await.unwrap();
            drop(ctx);
            let seen = tokio::time::timeout(Duration::from_secs(5), responder)
                .await
                .unwrap()
                .unwrap();
            let pod_calls: Vec<(&str, &str)> = seen
                .iter()
                .filter(|(_, u, _)| u.starts_with("/api/v1/namespaces/ns/pods"))
                .map(|(m, u, _)| (m.as_str(), u.split('?').next().unwrap()))
                .collect();
            let pod_path = "/api/v1/namespaces/ns/pods/demo-bbbbb";
            let status_path = "/api/v1/namespaces/ns/pods/demo-bbbbb/status";
            // not ready first, then the state; nothing deleted (the hook holds the pod)
            assert_eq!(
                pod_calls,
                vec![("GET", pod_path), ("PUT", status_path), ("PATCH", pod_path)],
                "{seen:#?}"
            );
            let status_body = &seen
                .iter()
                .find(|(m, u, _)| m == "PUT" && u.starts_with(status_path))
                .unwrap()
                .2;
            let conds = status_body["status"]["conditions"].as_array().unwrap();
            let kpr = conds
                .iter()
                .find(|c| c["type"] == "KruisePodReady")
                .unwrap();
            assert_eq!(kpr["status"], "False");
            assert_eq!(
                kpr["message"],
                r#"[{"userAgent":"Lifecycle","key":"preDeleteHook"}]"#
            );
            let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
            assert_eq!(
                (ready["status"].as_str(), ready["reason"].as_str()),
                (Some("False"), Some("ReadinessGatesNotReady"))
            );
            let patch = &seen
                .iter()
                .find(|(m, u, _)| m == "PATCH" && u.starts_with(pod_path))
                .unwrap()
                .2;
            assert_eq!(
                patch["metadata"]["labels"]["lifecycle.apps.kruise.io/state"],
                "PreparingDelete"
            );
        }

        #[tokio::test]
        async fn waits_for_caches_before_acting() {
            let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(svc, "default");
            let (pods, _pw) = reflector::store::<Pod>();
            let (pvcs, _cw) = reflector::store::<PersistentVolumeClaim>();
            let (revisions, _rw) = reflector::store::<ControllerRevision>();
            let ctx = Arc::new(Context {
                client: client.clone(),
                pods,
                pvcs,
                revisions,
                jobs: None,
                expectations: Expectations::default(),
                recorder: Recorder::new(
                    client,
                    Reporter {
                        controller: CONTROLLER_NAME.into(),
                        instance: None,
                    },
                ),
                metrics: Metrics::new(),
                gates: Gates::default(),
            });
            tokio::time::pause();
            let action = reconcile(Arc::new(cloneset()), ctx.clone()).await.unwrap();
            assert_eq!(action, Action::requeue(Duration::from_secs(2)));
            drop(ctx);
            assert!(
                handle.next_request().await.is_none(),
                "no API call before the caches are ready"
            );
        }

        #[tokio::test]
        async fn scale_up_creates_pods_then_applies_status() {
            let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(svc, "default");
            let cs = cloneset();
            let rev = revision::new_revision(&cs, 1, 0);
            let rev_name = rev.metadata.name.clone().unwrap();
            let (revisions, mut rw) = reflector::store::<ControllerRevision>();
            rw.apply_watcher_event(&watcher::Event::Init);
            rw.apply_watcher_event(&watcher::Event::InitApply(rev));
            rw.apply_watcher_event(&watcher::Event::InitDone);
            let (pods, mut pw) = reflector::store::<Pod>();
            pw.apply_watcher_event(&watcher::Event::InitDone);
            let (pvcs, mut cw) = reflector::store::<PersistentVolumeClaim>();
            cw.apply_watcher_event(&watcher::Event::InitDone);
            let ctx = Arc::new(Context {
                client: client.clone(),
                pods,
                pvcs,
                revisions,
                jobs: None,
                expectations: Expectations::default(),
                recorder: Recorder::new(
                    client,
                    Reporter {
                        controller: CONTROLLER_NAME.into(),
                        instance: None,
                    },
                ),
                metrics: Metrics::new(),
                gates: Gates::default(),
            });
            let responder = tokio::spawn(async move {
                let mut seen: Vec<(String, String, Value)> = Vec::new();
                while let Some((req, send)) = handle.next_request().await {
                    let method = req.method().to_string();
                    let uri = req.uri().to_string();
                    let bytes = req.into_body().collect_bytes().await.unwrap();
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let mut reply = body.clone();
                    reply["metadata"]["resourceVersion"] = serde_json::json!("11");
                    if uri.contains("/status") {
                        reply = serde_json::to_value(cloneset()).unwrap();
                    }
                    send.send_response(
                        Response::builder()
                            .status(201)
                            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                            .unwrap(),
                    );
                    seen.push((method, uri, body));
                }
                seen
            });
            reconcile(Arc::new(cs.clone()), ctx.clone()).await.unwrap();
            // Both creations are remembered until the cache shows them.
            let pending =
                ctx.expectations
                    .pending("ns/demo", Instant::now(), |_, _| Seen::Absent, |_| None);
            assert!(pending.is_some());
            drop(ctx);
            let seen = tokio::time::timeout(Duration::from_secs(5), responder)
                .await
                .unwrap()
                .unwrap();
            let pod_posts: Vec<&(String, String, Value)> = seen
                .iter()
                .filter(|(m, u, _)| m == "POST" && u.starts_with("/api/v1/namespaces/ns/pods"))
                .collect();
            assert_eq!(pod_posts.len(), 2, "{seen:#?}");
            for (_, _, body) in &pod_posts {
                let name = body["metadata"]["name"].as_str().unwrap();
                let id = body["metadata"]["labels"][ck::INSTANCE_ID_LABEL]
                    .as_str()
                    .unwrap();
                assert_eq!(name, format!("demo-{id}"));
                assert_eq!(
                    body["metadata"]["labels"]["controller-revision-hash"],
                    rev_name.as_str()
                );
                assert_eq!(
                    body["metadata"]["labels"]["lifecycle.apps.kruise.io/state"],
                    "PreparingNormal"
                );
                assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
                assert_eq!(
                    body["spec"]["readinessGates"][0]["conditionType"],
                    "InPlaceUpdateReady"
                );
            }
            let status: Vec<&(String, String, Value)> = seen
                .iter()
                .filter(|(_, u, _)| u.contains("/status"))
                .collect();
            assert_eq!(status.len(), 1, "{seen:#?}");
            let (method, uri, body) = status[0];
            assert_eq!(method, "PATCH");
            assert!(
                uri.starts_with(
                    "/apis/apps.kruise.io/v1alpha1/namespaces/ns/clonesets/demo/status?"
                ),
                "{uri}"
            );
            assert!(
                uri.contains("fieldManager=kruise-rs") && uri.contains("force=true"),
                "{uri}"
            );
            assert_eq!(
                body,
                &serde_json::json!({
                    "apiVersion": "apps.kruise.io/v1alpha1",
                    "kind": "CloneSet",
                    "status": {
                        "observedGeneration": 1,
                        "replicas": 0,
                        "readyReplicas": 0,
                        "availableReplicas": 0,
                        "updatedReplicas": 0,
                        "updatedReadyReplicas": 0,
                        "updatedAvailableReplicas": 0,
                        "expectedUpdatedReplicas": 2,
                        "updateRevision": rev_name,
                        "currentRevision": rev_name,
                        "collisionCount": 0,
                        "labelSelector": "app=demo"
                    }
                })
            );
            // No revision was created (the stored one matches), nothing was deleted.
            assert!(
                !seen
                    .iter()
                    .any(|(m, u, _)| m == "DELETE" || u.contains("controllerrevisions")),
                "{seen:#?}"
            );
        }
    }

    #[test]
    fn min_opt_works() {
        assert_eq!(min_opt(None, None), None);
        assert_eq!(min_opt(Some(3), None), Some(3));
        assert_eq!(min_opt(Some(3), Some(2)), Some(2));
    }
}
