//! CloneSet end to end through the real API server, webhook and kruise-manager: scaling (with the
//! number of pods watched the whole time), `podsToDelete`, in-place and recreate updates, partition,
//! maxSurge, the preDelete lifecycle hook (and its markPodNotReady), the webhook refusals that need
//! the API server (dry-run of the template, podsToDelete ownership), `kubectl scale` through the
//! scale subresource, and an in-place image update of a real container on the kubelet node. Needs
//! `e2e/cluster suite up`.
//!
//! Pod counts "at any time" come from a watch on the CloneSet's pods: every event the API server
//! sends is applied to a local copy and the peaks are recorded, so a transient excess is seen even
//! when it lasts a few milliseconds.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{CloneSet, CloneSetStatus};
use kruise_e2e::{Env, env_or_skip, image_id, wait_for, with_temp_ns};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const IMAGE_V1: &str = "example.test/app:v1";
const IMAGE_V2: &str = "example.test/app:v2";
const HASH_LABEL: &str = "controller-revision-hash";
const INSTANCE_LABEL: &str = "apps.kruise.io/cloneset-instance-id";
const STATE_LABEL: &str = "lifecycle.apps.kruise.io/state";
const INPLACE_STATE: &str = "apps.kruise.io/inplace-update-state";
const HOLD: &str = "example.test/hold";

// ----- setup -----------------------------------------------------------------------------------

fn suite_running(env: &Env, test: &str) -> bool {
    let up = env.get("E2E_SUITE").map(|v| v == "1").unwrap_or(false);
    if !up {
        eprintln!("SKIP {test}: the suite is not running (e2e/cluster suite up)");
    }
    up
}

/// The env for a test on kwok nodes, or `None` (skip reason printed).
fn kwok_env(test: &str) -> Option<Env> {
    let env = env_or_skip(test)?;
    if !suite_running(&env, test) {
        return None;
    }
    if env.list("E2E_KWOK_NODES").is_empty() {
        eprintln!("SKIP {test}: the cluster has no kwok nodes");
        return None;
    }
    Some(env)
}

/// A pod template for kwok nodes, labelled `app: <name>`.
fn kwok_template(name: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": name}},
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}]
        }
    })
}

/// A v1alpha1 CloneSet selecting `app: <name>`; `extra` is merged into the spec.
fn cloneset(name: &str, replicas: i32, template: Value, extra: Value) -> CloneSet {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn status(cs: &CloneSet) -> CloneSetStatus {
    cs.status.clone().unwrap_or_default()
}

/// The controller has seen the current spec.
fn observed(cs: &CloneSet) -> bool {
    status(cs).observed_generation >= cs.metadata.generation && cs.metadata.generation.is_some()
}

/// Observed, and `n` pods, all ready and all at the update revision.
fn settled(cs: &CloneSet, n: i32) -> bool {
    let s = status(cs);
    observed(cs)
        && s.replicas == n
        && s.ready_replicas == n
        && s.updated_replicas == n
        && s.update_revision.is_some()
}

fn status_line(cs: &CloneSet) -> String {
    let s = status(cs);
    format!(
        "generation {:?} observed {:?}, replicas {} ready {} available {} updated {} updatedReady {} \
         expectedUpdated {:?}, updateRevision {:?} currentRevision {:?}",
        cs.metadata.generation,
        s.observed_generation,
        s.replicas,
        s.ready_replicas,
        s.available_replicas,
        s.updated_replicas,
        s.updated_ready_replicas,
        s.expected_updated_replicas,
        s.update_revision,
        s.current_revision
    )
}

/// Waits until `pred` holds for the CloneSet; on timeout the error carries its last status.
async fn wait_cs(
    api: &Api<CloneSet>,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&CloneSet) -> bool,
) -> Result<CloneSet> {
    let pred = &pred;
    match wait_for(what, timeout, || async move {
        let cs = api.get(name).await?;
        Ok(pred(&cs).then_some(cs))
    })
    .await
    {
        Ok(cs) => Ok(cs),
        Err(e) => {
            let last = match api.get(name).await {
                Ok(cs) => status_line(&cs),
                Err(err) => format!("GET failed: {err}"),
            };
            Err(e.context(format!("CloneSet {name}: {last}")))
        }
    }
}

async fn patch_spec(api: &Api<CloneSet>, name: &str, spec: Value) -> Result<CloneSet> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .with_context(|| format!("patch CloneSet {name} spec"))
}

/// Sets the image of the template's first container (GET, change, PUT; retried on conflict), so
/// nothing else in the template changes.
async fn set_image(api: &Api<CloneSet>, name: &str, image: &str) -> Result<()> {
    for _ in 0..10 {
        let mut cs = api.get(name).await?;
        cs.spec
            .template
            .spec
            .as_mut()
            .context("template has no spec")?
            .containers[0]
            .image = Some(image.to_string());
        match api.replace(name, &PostParams::default(), &cs).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() => continue,
            Err(e) => return Err(e).context("update CloneSet template image"),
        }
    }
    bail!("could not update the template image of {name}: conflicts")
}

// ----- pods ------------------------------------------------------------------------------------

async fn list_pods(pods: &Api<Pod>, app: &str) -> Result<Vec<Pod>> {
    let mut items = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items;
    items.sort_by_key(|p| p.name_any());
    Ok(items)
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Not being deleted and not terminal: what the controller counts as one of its pods.
fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn running_ready(p: &Pod) -> bool {
    is_active(p) && phase(p) == "Running" && is_ready(p)
}

fn label<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Revision names are `{cs}-{hash}`; a pod label may carry either form.
fn same_revision(a: &str, b: &str) -> bool {
    a.rsplit('-').next() == b.rsplit('-').next()
}

fn on_revision(p: &Pod, revision: &str) -> bool {
    label(p, HASH_LABEL).is_some_and(|h| same_revision(h, revision))
}

fn describe(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            format!(
                "{}[{} {} ready={} hash={} state={}{}]",
                p.name_any(),
                &uid(p).get(..8).unwrap_or(""),
                phase(p),
                is_ready(p),
                label(p, HASH_LABEL).unwrap_or("-"),
                label(p, STATE_LABEL).unwrap_or("-"),
                if p.metadata.deletion_timestamp.is_some() {
                    " deleting"
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until `check` accepts the CloneSet and its pods (all of them, terminating ones included);
/// on timeout the error carries the last status and pod list.
async fn wait_state<T>(
    api: &Api<CloneSet>,
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&CloneSet, &[Pod]) -> Option<T>,
) -> Result<T> {
    let check = &check;
    match wait_for(what, timeout, || async move {
        let cs = api.get(name).await?;
        let ps = list_pods(pods, name).await?;
        Ok(check(&cs, &ps))
    })
    .await
    {
        Ok(v) => Ok(v),
        Err(e) => {
            let cs = api
                .get(name)
                .await
                .map(|cs| status_line(&cs))
                .unwrap_or_default();
            let ps = list_pods(pods, name)
                .await
                .map(|ps| describe(&ps))
                .unwrap_or_default();
            Err(e.context(format!("CloneSet {name}: {cs}; pods: {ps}")))
        }
    }
}

// ----- pod watch -------------------------------------------------------------------------------

/// What a watch on a CloneSet's pods has seen.
#[derive(Default)]
struct Seen {
    synced: bool,
    /// Current pods by UID.
    pods: BTreeMap<String, Pod>,
    /// Every UID ever seen.
    uids: BTreeSet<String>,
    /// UIDs seen terminating or deleted.
    deleted: BTreeSet<String>,
    max_active: usize,
    min_active: usize,
    min_ready: usize,
}

impl Seen {
    fn active(&self) -> usize {
        self.pods.values().filter(|p| is_active(p)).count()
    }

    fn ready(&self) -> usize {
        self.pods.values().filter(|p| running_ready(p)).count()
    }

    fn observe(&mut self) {
        let (active, ready) = (self.active(), self.ready());
        self.max_active = self.max_active.max(active);
        self.min_active = self.min_active.min(active);
        self.min_ready = self.min_ready.min(ready);
    }

    fn apply(&mut self, p: Pod) {
        let id = uid(&p);
        if p.metadata.deletion_timestamp.is_some() {
            self.deleted.insert(id.clone());
        }
        self.uids.insert(id.clone());
        self.pods.insert(id, p);
        self.observe();
    }

    fn delete(&mut self, p: Pod) {
        let id = uid(&p);
        self.pods.remove(&id);
        self.uids.insert(id.clone());
        self.deleted.insert(id);
        self.observe();
    }

    /// A (re)list: pods that vanished meanwhile count as deleted.
    fn relist(&mut self, pods: BTreeMap<String, Pod>) {
        for id in self.pods.keys() {
            if !pods.contains_key(id) {
                self.deleted.insert(id.clone());
            }
        }
        self.pods = BTreeMap::new();
        for p in pods.into_values() {
            self.apply(p);
        }
        self.synced = true;
    }
}

/// A background watch on the pods labelled `app: <app>`, recording peaks. Stops when dropped.
struct PodWatch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    async fn start(pods: Api<Pod>, app: &str) -> Result<PodWatch> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let cfg = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(pods, cfg).default_backoff().boxed();
            let mut init: Option<BTreeMap<String, Pod>> = None;
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                let mut s = shared.lock().unwrap();
                match ev {
                    Event::Init => init = Some(BTreeMap::new()),
                    Event::InitApply(p) => {
                        init.get_or_insert_with(BTreeMap::new).insert(uid(&p), p);
                    }
                    Event::InitDone => s.relist(init.take().unwrap_or_default()),
                    Event::Apply(p) => s.apply(p),
                    Event::Delete(p) => s.delete(p),
                }
            }
        });
        let w = PodWatch { seen, task };
        wait_for("the pod watch to sync", Duration::from_secs(30), || async {
            Ok(w.seen.lock().unwrap().synced.then_some(()))
        })
        .await?;
        Ok(w)
    }

    /// Restarts the peak counters from the current state.
    fn reset_peaks(&self) {
        let mut s = self.seen.lock().unwrap();
        s.max_active = s.active();
        s.min_active = s.active();
        s.min_ready = s.ready();
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- tests -----------------------------------------------------------------------------------

/// 0 → 50 → 10 on kwok nodes: 50 Running and ready, never more than 50 pods, then exactly 10 left
/// (never fewer while scaling in), all of them original pods.
#[tokio::test]
async fn scale_up_to_50_and_down_to_10() -> Result<()> {
    let Some(env) = kwok_env("scale_up_to_50_and_down_to_10") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-scale", |client, ns| async move {
        let name = "scale";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let watch = PodWatch::start(pods.clone(), name).await?;
        api.create(
            &PostParams::default(),
            &cloneset(name, 0, kwok_template(name, IMAGE_V1), json!({})),
        )
        .await
        .context("create CloneSet")?;
        wait_cs(
            &api,
            name,
            "0 replicas observed",
            Duration::from_secs(30),
            |cs| observed(cs) && status(cs).replicas == 0,
        )
        .await?;

        patch_spec(&api, name, json!({"replicas": 50})).await?;
        let ps = wait_state(
            &api,
            &pods,
            name,
            "50 pods Running and ready, readyReplicas 50",
            Duration::from_secs(240),
            |cs, ps| {
                (observed(cs)
                    && status(cs).ready_replicas == 50
                    && status(cs).replicas == 50
                    && ps.len() == 50
                    && ps.iter().all(running_ready))
                .then(|| ps.to_vec())
            },
        )
        .await?;
        let ids: BTreeSet<&str> = ps.iter().filter_map(|p| label(p, INSTANCE_LABEL)).collect();
        ensure!(
            ids.len() == 50,
            "50 pods but {} distinct instance ids",
            ids.len()
        );
        for p in &ps {
            let id = label(p, INSTANCE_LABEL).unwrap_or_default();
            ensure!(
                p.name_any() == format!("{name}-{id}"),
                "pod {} is not named {name}-<instance id {id}>",
                p.name_any()
            );
        }
        let (max, created) = watch.with(|s| (s.max_active, s.uids.len()));
        ensure!(max <= 50, "saw {max} active pods while scaling up to 50");
        ensure!(
            created == 50,
            "{created} pods were created while scaling 0 → 50"
        );

        watch.reset_peaks();
        patch_spec(&api, name, json!({"replicas": 10})).await?;
        wait_state(
            &api,
            &pods,
            name,
            "exactly 10 pods left, readyReplicas 10",
            Duration::from_secs(120),
            |cs, ps| {
                (observed(cs)
                    && status(cs).replicas == 10
                    && status(cs).ready_replicas == 10
                    && ps.len() == 10
                    && ps.iter().all(running_ready))
                .then_some(())
            },
        )
        .await?;
        let (min, created) = watch.with(|s| (s.min_active, s.uids.len()));
        ensure!(
            min >= 10,
            "active pods fell to {min} while scaling in to 10"
        );
        ensure!(
            created == 50,
            "pods were created while scaling in: {created} seen in all"
        );
        Ok(())
    })
    .await
}

/// `scaleStrategy.podsToDelete` with two names: exactly those two are deleted and replaced.
#[tokio::test]
async fn pods_to_delete_replaces_exactly_the_named_pods() -> Result<()> {
    let Some(env) = kwok_env("pods_to_delete_replaces_exactly_the_named_pods") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-podsdel", |client, ns| async move {
        let name = "podsdel";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let watch = PodWatch::start(pods.clone(), name).await?;
        api.create(
            &PostParams::default(),
            &cloneset(name, 4, kwok_template(name, IMAGE_V1), json!({})),
        )
        .await
        .context("create CloneSet")?;
        wait_cs(&api, name, "4 ready pods", Duration::from_secs(90), |cs| {
            settled(cs, 4)
        })
        .await?;
        let before: Vec<(String, String)> = list_pods(&pods, name)
            .await?
            .iter()
            .filter(|p| is_active(p))
            .map(|p| (p.name_any(), uid(p)))
            .collect();
        ensure!(before.len() == 4, "pods before: {before:?}");
        let victims: Vec<String> = before[..2].iter().map(|(n, _)| n.clone()).collect();
        let victim_uids: BTreeSet<String> = before[..2].iter().map(|(_, u)| u.clone()).collect();
        let kept: BTreeMap<String, String> = before[2..].iter().cloned().collect();

        watch.reset_peaks();
        patch_spec(
            &api,
            name,
            json!({"scaleStrategy": {"podsToDelete": victims}}),
        )
        .await?;
        wait_state(
            &api,
            &pods,
            name,
            "the two named pods replaced",
            Duration::from_secs(90),
            |cs, ps| {
                (observed(cs)
                    && status(cs).replicas == 4
                    && status(cs).ready_replicas == 4
                    && ps.len() == 4
                    && ps.iter().all(running_ready)
                    && ps.iter().all(|p| !victims.contains(&p.name_any())))
                .then_some(())
            },
        )
        .await?;
        let after = list_pods(&pods, name).await?;
        for (n, u) in &kept {
            let p = after
                .iter()
                .find(|p| &p.name_any() == n)
                .with_context(|| format!("pod {n}, not named for deletion, is gone"))?;
            ensure!(&uid(p) == u, "pod {n} was recreated (UID {u} → {})", uid(p));
        }
        let new = after
            .iter()
            .filter(|p| !kept.contains_key(&p.name_any()))
            .count();
        ensure!(new == 2, "{new} new pods, expected 2: {}", describe(&after));
        let deleted = watch.with(|s| s.deleted.clone());
        ensure!(
            deleted == victim_uids,
            "deleted pod UIDs {deleted:?}, expected exactly the named pods' {victim_uids:?}"
        );
        Ok(())
    })
    .await
}

/// InPlaceIfPossible image change: same pod names and UIDs, new imageID, status and the
/// in-place-update-state annotation updated.
#[tokio::test]
async fn in_place_image_update_keeps_pods() -> Result<()> {
    let Some(env) = kwok_env("in_place_image_update_keeps_pods") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-inplace", |client, ns| async move {
        let name = "inplace";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let watch = PodWatch::start(pods.clone(), name).await?;
        api.create(
            &PostParams::default(),
            &cloneset(
                name,
                3,
                kwok_template(name, IMAGE_V1),
                json!({"updateStrategy": {"type": "InPlaceIfPossible"}}),
            ),
        )
        .await
        .context("create CloneSet")?;
        let cs = wait_cs(&api, name, "3 ready pods", Duration::from_secs(90), |cs| {
            settled(cs, 3)
        })
        .await?;
        let rev1 = status(&cs).update_revision.unwrap();
        let before: BTreeMap<String, (String, String)> = list_pods(&pods, name)
            .await?
            .iter()
            .map(|p| {
                let id = image_id(p, "main").unwrap_or_default();
                (p.name_any(), (uid(p), id))
            })
            .collect();
        ensure!(before.len() == 3, "pods before: {before:?}");
        ensure!(
            before.values().all(|(_, id)| !id.is_empty()),
            "a pod reports no imageID: {before:?}"
        );

        watch.reset_peaks();
        set_image(&api, name, IMAGE_V2).await?;
        let (cs, after) = wait_state(
            &api,
            &pods,
            name,
            "3 pods updated in place and ready",
            Duration::from_secs(90),
            |cs, ps| {
                let s = status(cs);
                let rev = s.update_revision.clone()?;
                let done = observed(cs)
                    && rev != rev1
                    && s.replicas == 3
                    && s.updated_replicas == 3
                    && s.updated_ready_replicas == 3
                    && s.ready_replicas == 3
                    && ps.len() == 3
                    && ps.iter().all(|p| {
                        running_ready(p)
                            && on_revision(p, &rev)
                            && image_id(p, "main").is_some_and(|id| {
                                before.get(&p.name_any()).is_some_and(|(_, old)| *old != id)
                            })
                    });
                done.then(|| (cs.clone(), ps.to_vec()))
            },
        )
        .await?;
        let rev2 = status(&cs).update_revision.unwrap();
        for p in &after {
            let n = p.name_any();
            let (old_uid, old_image_id) = before
                .get(&n)
                .with_context(|| format!("pod {n} is new: {}", describe(&after)))?;
            ensure!(&uid(p) == old_uid, "pod {n} was recreated");
            let spec_image = p.spec.as_ref().unwrap().containers[0].image.clone();
            ensure!(
                spec_image.as_deref() == Some(IMAGE_V2),
                "pod {n} spec image {spec_image:?}"
            );
            let st = &p.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
            ensure!(st.image == IMAGE_V2, "pod {n} status image {}", st.image);
            let raw = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(INPLACE_STATE))
                .with_context(|| format!("pod {n} has no {INPLACE_STATE} annotation"))?;
            let state: Value = serde_json::from_str(raw)
                .with_context(|| format!("pod {n}: {INPLACE_STATE} is not JSON: {raw}"))?;
            let revision = state["revision"].as_str().unwrap_or_default();
            ensure!(
                same_revision(revision, &rev2),
                "pod {n}: in-place state revision {revision:?}, updateRevision {rev2}"
            );
            let last = state["lastContainerStatuses"]["main"]["imageID"]
                .as_str()
                .unwrap_or_default();
            ensure!(
                last == old_image_id,
                "pod {n}: lastContainerStatuses.main.imageID {last:?}, the old imageID was {old_image_id:?}"
            );
        }
        let (deleted, created) = watch.with(|s| (s.deleted.len(), s.uids.len()));
        ensure!(
            deleted == 0 && created == 3,
            "in-place update deleted {deleted} pods; {created} pods seen in all"
        );
        Ok(())
    })
    .await
}

/// Partition 3 of 5: after the update settles exactly 3 pods stay on the old revision, 2 updated.
#[tokio::test]
async fn partition_keeps_three_of_five_on_old_revision() -> Result<()> {
    let Some(env) = kwok_env("partition_keeps_three_of_five_on_old_revision") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-partition", |client, ns| async move {
        let name = "partition";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        api.create(
            &PostParams::default(),
            &cloneset(
                name,
                5,
                kwok_template(name, IMAGE_V1),
                json!({"updateStrategy": {"type": "ReCreate", "partition": 3}}),
            ),
        )
        .await
        .context("create CloneSet")?;
        let cs = wait_cs(&api, name, "5 ready pods", Duration::from_secs(90), |cs| {
            settled(cs, 5)
        })
        .await?;
        let rev1 = status(&cs).update_revision.unwrap();

        set_image(&api, name, IMAGE_V2).await?;
        let count = |ps: &[Pod], rev2: &str| {
            let old = ps.iter().filter(|p| on_revision(p, &rev1)).count();
            let new = ps.iter().filter(|p| on_revision(p, rev2)).count();
            (old, new)
        };
        let rev2 = wait_state(
            &api,
            &pods,
            name,
            "2 pods updated, 3 on the old revision, all ready",
            Duration::from_secs(90),
            |cs, ps| {
                let s = status(cs);
                let rev2 = s.update_revision.clone()?;
                let done = observed(cs)
                    && rev2 != rev1
                    && s.replicas == 5
                    && s.ready_replicas == 5
                    && s.updated_replicas == 2
                    && s.updated_ready_replicas == 2
                    && ps.len() == 5
                    && ps.iter().all(running_ready)
                    && count(ps, &rev2) == (3, 2);
                done.then_some(rev2)
            },
        )
        .await?;
        // Settled: it must stay 3 old + 2 new (no further pod is updated).
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < until {
            let ps = list_pods(&pods, name).await?;
            let cs = api.get(name).await?;
            ensure!(
                ps.len() == 5 && count(&ps, &rev2) == (3, 2) && status(&cs).updated_replicas == 2,
                "partition 3 not held: {}; pods: {}",
                status_line(&cs),
                describe(&ps)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let cs = api.get(name).await?;
        let s = status(&cs);
        ensure!(
            s.expected_updated_replicas == Some(2),
            "expectedUpdatedReplicas {:?}, expected 2",
            s.expected_updated_replicas
        );
        ensure!(
            s.current_revision
                .as_deref()
                .is_some_and(|c| same_revision(c, &rev1)),
            "currentRevision {:?} moved off the old revision {rev1} with 3 pods still on it",
            s.current_revision
        );
        Ok(())
    })
    .await
}

/// ReCreate with maxSurge 1 / maxUnavailable 0: every pod replaced, never more than replicas + 1
/// pods, never fewer than replicas ready.
#[tokio::test]
async fn recreate_with_surge_replaces_all_pods() -> Result<()> {
    let Some(env) = kwok_env("recreate_with_surge_replaces_all_pods") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-surge", |client, ns| async move {
        let name = "surge";
        let replicas = 4;
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let watch = PodWatch::start(pods.clone(), name).await?;
        api.create(
            &PostParams::default(),
            &cloneset(
                name,
                replicas,
                kwok_template(name, IMAGE_V1),
                json!({"updateStrategy": {"type": "ReCreate", "maxSurge": 1, "maxUnavailable": 0}}),
            ),
        )
        .await
        .context("create CloneSet")?;
        let cs = wait_cs(&api, name, "4 ready pods", Duration::from_secs(90), |cs| {
            settled(cs, replicas)
        })
        .await?;
        let rev1 = status(&cs).update_revision.unwrap();
        let old_uids: BTreeSet<String> = list_pods(&pods, name).await?.iter().map(uid).collect();
        ensure!(
            old_uids.len() == 4,
            "{} pods before the update",
            old_uids.len()
        );
        // The watch may not have seen the last pod turn ready yet.
        wait_for(
            "the watch to see 4 ready pods",
            Duration::from_secs(10),
            || async { Ok((watch.with(Seen::ready) == 4).then_some(())) },
        )
        .await?;

        watch.reset_peaks();
        set_image(&api, name, IMAGE_V2).await?;
        wait_state(
            &api,
            &pods,
            name,
            "4 new pods at the update revision, ready, old ones gone",
            Duration::from_secs(120),
            |cs, ps| {
                let s = status(cs);
                let rev = s.update_revision.clone()?;
                let done = observed(cs)
                    && rev != rev1
                    && s.replicas == replicas
                    && s.ready_replicas == replicas
                    && s.updated_replicas == replicas
                    && s.updated_ready_replicas == replicas
                    && ps.len() == 4
                    && ps.iter().all(|p| {
                        running_ready(p) && on_revision(p, &rev) && !old_uids.contains(&uid(p))
                    });
                done.then_some(())
            },
        )
        .await?;
        let (max, min_ready) = watch.with(|s| (s.max_active, s.min_ready));
        ensure!(
            max <= 5,
            "saw {max} active pods with replicas 4 and maxSurge 1"
        );
        ensure!(
            min_ready >= 4,
            "ready pods fell to {min_ready} with maxUnavailable 0"
        );
        Ok(())
    })
    .await
}

/// Removes `HOLD` from every pod of the namespace until none is left (after deleting the CloneSet),
/// so the namespace can go.
async fn release_all(api: &Api<CloneSet>, pods: &Api<Pod>, name: &str) -> Result<()> {
    let _ = api.delete(name, &DeleteParams::background()).await;
    wait_for(
        "pods holding example.test/hold to go",
        Duration::from_secs(60),
        || async {
            let all = pods.list(&ListParams::default()).await?.items;
            for p in &all {
                remove_hold(pods, &p.name_any()).await?;
            }
            Ok(all.is_empty().then_some(()))
        },
    )
    .await
}

/// Removes `HOLD` from pod `name` (fresh GET, patch guarded by resourceVersion, retried on
/// conflict); a pod that is gone is fine.
async fn remove_hold(pods: &Api<Pod>, name: &str) -> Result<()> {
    for _ in 0..10 {
        let Some(p) = pods.get_opt(name).await? else {
            return Ok(());
        };
        let fins = p.finalizers();
        if !fins.iter().any(|f| f == HOLD) {
            return Ok(());
        }
        let keep: Vec<&String> = fins.iter().filter(|f| *f != HOLD).collect();
        let patch =
            json!({"metadata": {"finalizers": keep, "resourceVersion": p.resource_version()}});
        match pods
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() => continue,
            Err(e) => return Err(e).context("remove the hold finalizer"),
        }
    }
    bail!("could not remove {HOLD} from pod {name}: conflicts")
}

/// preDelete finalizersHandler: a scaled-in pod is held in PreparingDelete until the finalizer goes.
#[tokio::test]
async fn pre_delete_hook_holds_pod_until_finalizer_removed() -> Result<()> {
    let Some(env) = kwok_env("pre_delete_hook_holds_pod_until_finalizer_removed") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-predelete", |client, ns| async move {
        let name = "predelete";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let res = async {
            let mut template = kwok_template(name, IMAGE_V1);
            template["metadata"]["finalizers"] = json!([HOLD]);
            api.create(
                &PostParams::default(),
                &cloneset(
                    name,
                    3,
                    template,
                    json!({"lifecycle": {"preDelete": {"finalizersHandler": [HOLD]}}}),
                ),
            )
            .await
            .context("create CloneSet")?;
            wait_cs(&api, name, "3 ready pods", Duration::from_secs(90), |cs| {
                settled(cs, 3)
            })
            .await?;
            let before = list_pods(&pods, name).await?;
            ensure!(
                before
                    .iter()
                    .all(|p| p.finalizers().iter().any(|f| f == HOLD)),
                "pods lack the template finalizer: {:?}",
                before
                    .iter()
                    .map(|p| p.finalizers().to_vec())
                    .collect::<Vec<_>>()
            );

            patch_spec(&api, name, json!({"replicas": 2})).await?;
            let held = wait_state(
                &api,
                &pods,
                name,
                "one pod in PreparingDelete, still counted in status.replicas",
                Duration::from_secs(60),
                |cs, ps| {
                    let preparing: Vec<&Pod> = ps
                        .iter()
                        .filter(|p| label(p, STATE_LABEL) == Some("PreparingDelete"))
                        .collect();
                    (observed(cs) && status(cs).replicas == 3 && preparing.len() == 1)
                        .then(|| preparing[0].clone())
                },
            )
            .await?;
            let held_name = held.name_any();
            let held_uid = uid(&held);
            // While the hook holds it the controller must leave the pod alone.
            let until = tokio::time::Instant::now() + Duration::from_secs(3);
            while tokio::time::Instant::now() < until {
                let ps = list_pods(&pods, name).await?;
                let p = ps.iter().find(|p| uid(p) == held_uid);
                ensure!(
                    p.is_some_and(|p| p.metadata.deletion_timestamp.is_none()
                        && label(p, STATE_LABEL) == Some("PreparingDelete")),
                    "held pod {held_name} did not stay PreparingDelete: {}",
                    describe(&ps)
                );
                ensure!(
                    ps.len() == 3 && ps.iter().all(is_active),
                    "pods changed while the hook holds: {}",
                    describe(&ps)
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }

            remove_hold(&pods, &held_name).await?;
            ensure!(
                !pods
                    .get(&held_name)
                    .await?
                    .finalizers()
                    .iter()
                    .any(|f| f == HOLD),
                "the hold finalizer could not be removed from {held_name}"
            );
            let kept: BTreeSet<String> =
                before.iter().map(uid).filter(|u| *u != held_uid).collect();
            wait_state(
                &api,
                &pods,
                name,
                "the released pod gone and 2 Normal pods left",
                Duration::from_secs(60),
                |cs, ps| {
                    let uids: BTreeSet<String> = ps.iter().map(uid).collect();
                    (observed(cs)
                        && status(cs).replicas == 2
                        && status(cs).ready_replicas == 2
                        && uids == kept
                        && ps
                            .iter()
                            .all(|p| running_ready(p) && label(p, STATE_LABEL) == Some("Normal")))
                    .then_some(())
                },
            )
            .await
        }
        .await;
        let cleanup = release_all(&api, &pods, name).await;
        res.and(cleanup)
    })
    .await
}

fn condition<'a>(p: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
}

fn gates(p: &Pod) -> Vec<String> {
    p.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|g| g.iter().map(|g| g.condition_type.clone()).collect())
        .unwrap_or_default()
}

/// preDelete with markPodNotReady: every pod carries the KruisePodReady gate (True once created);
/// a scaled-in pod held in PreparingDelete is taken out of Ready (KruisePodReady False with the
/// preDeleteHook key) while the others stay Ready, until its hook is released and it goes.
#[tokio::test]
async fn pre_delete_mark_pod_not_ready_takes_the_held_pod_out_of_ready() -> Result<()> {
    let Some(env) = kwok_env("pre_delete_mark_pod_not_ready_takes_the_held_pod_out_of_ready")
    else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-notready", |client, ns| async move {
        let name = "notready";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let res = async {
            let mut template = kwok_template(name, IMAGE_V1);
            template["metadata"]["finalizers"] = json!([HOLD]);
            api.create(
                &PostParams::default(),
                &cloneset(
                    name,
                    3,
                    template,
                    json!({"lifecycle": {"preDelete": {"finalizersHandler": [HOLD],
                                                       "markPodNotReady": true}}}),
                ),
            )
            .await
            .context("create CloneSet")?;
            wait_cs(&api, name, "3 ready pods", Duration::from_secs(90), |cs| {
                settled(cs, 3)
            })
            .await?;
            for p in list_pods(&pods, name).await? {
                ensure!(
                    gates(&p) == ["InPlaceUpdateReady", "KruisePodReady"],
                    "pod {} has readiness gates {:?}",
                    p.name_any(),
                    gates(&p)
                );
                ensure!(
                    condition(&p, "KruisePodReady").is_some_and(|c| c.status == "True"),
                    "pod {} is Ready without KruisePodReady True: {:?}",
                    p.name_any(),
                    condition(&p, "KruisePodReady")
                );
            }

            patch_spec(&api, name, json!({"replicas": 2})).await?;
            let held = wait_state(
                &api,
                &pods,
                name,
                "one pod in PreparingDelete and not Ready, two Ready",
                Duration::from_secs(60),
                |_, ps| {
                    let (preparing, rest): (Vec<&Pod>, Vec<&Pod>) = ps
                        .iter()
                        .partition(|p| label(p, STATE_LABEL) == Some("PreparingDelete"));
                    let held = preparing.first()?;
                    let kpr = condition(held, "KruisePodReady")?;
                    (preparing.len() == 1
                        && kpr.status == "False"
                        && kpr.message.as_deref()
                            == Some(r#"[{"userAgent":"Lifecycle","key":"preDeleteHook"}]"#)
                        && !is_ready(held)
                        && rest.len() == 2
                        && rest.iter().all(|p| running_ready(p)))
                    .then(|| (*held).clone())
                },
            )
            .await?;
            remove_hold(&pods, &held.name_any()).await?;
            wait_state(
                &api,
                &pods,
                name,
                "the held pod gone and 2 Ready pods left",
                Duration::from_secs(60),
                |cs, ps| {
                    (observed(cs)
                        && status(cs).replicas == 2
                        && ps.len() == 2
                        && ps.iter().all(|p| uid(p) != uid(&held) && running_ready(p)))
                    .then_some(())
                },
            )
            .await
        }
        .await;
        let cleanup = release_all(&api, &pods, name).await;
        res.and(cleanup)
    })
    .await
}

/// The CloneSet webhook refuses, naming the field: a cpu limit that is not a quantity (hand-written
/// rule), a template Kubernetes' pod validation refuses (dry-run pod create: containerPort 70000),
/// and a podsToDelete name of a pod the CloneSet does not own (GET of the named pod).
#[tokio::test]
async fn webhook_refuses_bad_templates_and_pods_it_does_not_own() -> Result<()> {
    let Some(env) = kwok_env("webhook_refuses_bad_templates_and_pods_it_does_not_own") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-refuse", |client, ns| async move {
        let name = "refuse";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let refused = |what: &str, res: kube::Result<CloneSet>, says: &[&str]| -> Result<()> {
            match res {
                Err(kube::Error::Api(s)) => {
                    ensure!(
                        s.code == 422 && says.iter().all(|w| s.message.contains(w)),
                        "{what}: refused with {} {:?}, not saying {says:?}",
                        s.code,
                        s.message
                    );
                    Ok(())
                }
                Err(e) => bail!("{what}: {e}"),
                Ok(_) => bail!("{what}: admitted"),
            }
        };

        let mut t = kwok_template(name, IMAGE_V1);
        t["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "lots"}});
        refused(
            "cpu: lots",
            api.create(&PostParams::default(), &cloneset(name, 1, t, json!({})))
                .await,
            &["spec.template.spec.containers[0].resources.limits[cpu]"],
        )?;

        let mut t = kwok_template(name, IMAGE_V1);
        t["spec"]["containers"][0]["ports"] = json!([{"containerPort": 70000}]);
        refused(
            "containerPort 70000",
            api.create(&PostParams::default(), &cloneset(name, 1, t, json!({})))
                .await,
            &["spec.template.spec.containers[0].ports[0].containerPort"],
        )?;
        // a dry run stores nothing
        ensure!(
            list_pods(&pods, name).await?.is_empty(),
            "the template checks created pods"
        );

        // a pod of the namespace that the CloneSet does not own (other labels, so that no
        // controller could adopt it meanwhile)
        let stray: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "stray", "labels": {"app": "stray"}},
            "spec": {"nodeSelector": {"type": "kwok"}, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE_V1}]}
        }))?;
        pods.create(&PostParams::default(), &stray)
            .await
            .context("create the stray pod")?;
        api.create(
            &PostParams::default(),
            &cloneset(name, 1, kwok_template(name, IMAGE_V1), json!({})),
        )
        .await
        .context("create a valid CloneSet")?;
        for (pod, why) in [
            ("stray", "the pod is not owned by this CloneSet"),
            ("nowhere", "there is no pod of this name"),
        ] {
            let res = api
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"scaleStrategy": {"podsToDelete": [pod]}}})),
                )
                .await;
            refused(
                &format!("podsToDelete [{pod}]"),
                res,
                &["spec.scaleStrategy.podsToDelete[0]", why],
            )?;
        }
        ensure!(
            pods.get_opt("stray")
                .await?
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
            "the stray pod was touched"
        );
        let _ = api.delete(name, &DeleteParams::background()).await;
        Ok(())
    })
    .await
}

fn kubectl(env: &Env, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(env.get("E2E_KUBECTL")?)
        .env("KUBECONFIG", env.get("KUBECONFIG")?)
        .args(args)
        .output()
        .context("run kubectl")?;
    ensure!(
        out.status.success(),
        "kubectl {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kubectl scale cloneset --replicas=4` goes through the scale subresource; the controller follows.
#[tokio::test]
async fn kubectl_scale_uses_scale_subresource() -> Result<()> {
    let Some(env) = kwok_env("kubectl_scale_uses_scale_subresource") else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cs-kubectl", |client, ns| {
        let env = env.clone();
        async move {
            let name = "kscale";
            let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
            let pods: Api<Pod> = Api::namespaced(client, &ns);
            api.create(
                &PostParams::default(),
                &cloneset(name, 1, kwok_template(name, IMAGE_V1), json!({})),
            )
            .await
            .context("create CloneSet")?;
            wait_cs(&api, name, "1 ready pod", Duration::from_secs(60), |cs| {
                settled(cs, 1)
            })
            .await?;

            let (env2, ns2) = (env.clone(), ns.clone());
            let out = tokio::task::spawn_blocking(move || {
                kubectl(
                    &env2,
                    &["-n", &ns2, "scale", "cloneset", name, "--replicas=4"],
                )
            })
            .await??;
            ensure!(out.contains("scaled"), "kubectl scale said: {out}");
            let cs = api.get(name).await?;
            ensure!(
                cs.spec.replicas == Some(4),
                "spec.replicas {:?} after kubectl scale",
                cs.spec.replicas
            );
            wait_state(
                &api,
                &pods,
                name,
                "4 ready pods after kubectl scale",
                Duration::from_secs(90),
                |cs, ps| {
                    (settled(cs, 4) && ps.len() == 4 && ps.iter().all(running_ready)).then_some(())
                },
            )
            .await?;

            let (env2, ns2) = (env.clone(), ns.clone());
            let out = tokio::task::spawn_blocking(move || {
                kubectl(
                    &env2,
                    &[
                        "-n",
                        &ns2,
                        "get",
                        "cloneset",
                        name,
                        "--subresource=scale",
                        "-o",
                        "json",
                    ],
                )
            })
            .await??;
            let scale: Value = serde_json::from_str(&out).context("scale subresource JSON")?;
            ensure!(
                scale["kind"] == "Scale"
                    && scale["spec"]["replicas"] == 4
                    && scale["status"]["replicas"] == 4
                    && scale["status"]["selector"] == format!("app={name}"),
                "scale subresource: {scale}"
            );
            Ok(())
        }
    })
    .await
}

fn restart_count(p: &Pod) -> Option<i32> {
    Some(
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find(|c| c.name == "main")?
            .restart_count,
    )
}

fn main_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == "main"))
        .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()) && c.ready)
}

fn digest(image_id: &str) -> Option<&str> {
    image_id
        .rsplit_once("@sha256:")
        .map(|(_, d)| d)
        .filter(|d| d.len() == 64)
}

/// A real container on the kubelet node updated in place: same pod, restarted container, new digest.
#[tokio::test]
async fn real_node_in_place_update_restarts_container() -> Result<()> {
    let test = "real_node_in_place_update_restarts_container";
    let Some(env) = env_or_skip(test) else {
        return Ok(());
    };
    if !suite_running(&env, test) {
        return Ok(());
    }
    let node = env.get("E2E_REAL_NODE").unwrap_or_default().to_string();
    if env.tier() != "kubelet" || node.is_empty() {
        eprintln!("SKIP {test}: tier {} has no kubelet", env.tier());
        return Ok(());
    }
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let client = env.client().await?;
    with_temp_ns(&client, "cs-real", |client, ns| async move {
        let name = "real";
        let api: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let template = json!({
            "metadata": {"labels": {"app": name}},
            "spec": {
                "nodeName": node,
                "hostNetwork": true,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": format!("{registry}/sleeper:v1"),
                                "imagePullPolicy": "IfNotPresent"}]
            }
        });
        api.create(
            &PostParams::default(),
            &cloneset(
                name,
                1,
                template,
                json!({"updateStrategy": {"type": "InPlaceIfPossible"}}),
            ),
        )
        .await
        .context("create CloneSet")?;
        let cs = wait_cs(
            &api,
            name,
            "1 ready real pod",
            Duration::from_secs(180),
            |cs| settled(cs, 1),
        )
        .await?;
        let rev1 = status(&cs).update_revision.unwrap();
        let ps = list_pods(&pods, name).await?;
        ensure!(ps.len() == 1, "pods: {}", describe(&ps));
        let pod = &ps[0];
        let (pod_name, pod_uid) = (pod.name_any(), uid(pod));
        let restarts = restart_count(pod).context("no container status")?;
        let id1 = image_id(pod, "main").context("no imageID")?;
        let d1 = digest(&id1)
            .with_context(|| format!("imageID {id1:?} is not a repo digest"))?
            .to_string();

        set_image(&api, name, &format!("{registry}/sleeper:v2")).await?;
        let (cs, pod) = wait_state(
            &api,
            &pods,
            name,
            "the real pod restarted in place on sleeper:v2 and Ready",
            Duration::from_secs(180),
            |cs, ps| {
                let s = status(cs);
                let rev = s.update_revision.clone()?;
                let p = ps.iter().find(|p| p.name_any() == pod_name)?;
                let done = observed(cs)
                    && rev != rev1
                    && s.updated_ready_replicas == 1
                    && s.ready_replicas == 1
                    && ps.len() == 1
                    && on_revision(p, &rev)
                    && restart_count(p).is_some_and(|r| r > restarts)
                    && image_id(p, "main").is_some_and(|id| id != id1)
                    && main_running(p)
                    && running_ready(p);
                done.then(|| (cs.clone(), p.clone()))
            },
        )
        .await?;
        ensure!(
            uid(&pod) == pod_uid,
            "the pod was recreated (UID {pod_uid} → {})",
            uid(&pod)
        );
        let id2 = image_id(&pod, "main").unwrap();
        let d2 = digest(&id2).with_context(|| format!("imageID {id2:?} is not a repo digest"))?;
        ensure!(
            id2.contains("/sleeper@sha256:") && d2 != d1,
            "imageID {id1} → {id2}: the digest did not change"
        );
        ensure!(status(&cs).updated_replicas == 1, "{}", status_line(&cs));
        Ok(())
    })
    .await
}
