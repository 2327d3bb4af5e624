//! The SidecarSet controller on kwok pods: status counters, in-place sidecar upgrade (pod names and
//! UIDs kept, only the sidecar image changes), and the hot-upgrade slot switch.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kruise_e2e::{env_or_skip, pod_on_node, spec_image, status_image, wait_for, with_temp_ns};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

async fn setup(client: &Client, name: &str, spec: serde_json::Value) -> Result<()> {
    let ss: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name}, "spec": spec
    }))?;
    // the pod webhook must cover the new selector before pods are created
    kruise_e2e::create_sidecarset_and_wait(client, &ss, name).await
}

async fn make_pods(
    pods: &Api<Pod>,
    node: &str,
    label: &str,
    value: &str,
    n: usize,
) -> Result<BTreeMap<String, String>> {
    let mut uids = BTreeMap::new();
    for i in 0..n {
        let mut p = pod_on_node(&format!("app-{i}"), node, "example.test/app:v1", false);
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(label.into(), value.into());
        let created = pods.create(&PostParams::default(), &p).await?;
        uids.insert(
            created.metadata.name.clone().unwrap(),
            created.metadata.uid.clone().unwrap(),
        );
    }
    Ok(uids)
}

#[tokio::test]
async fn sidecar_image_is_upgraded_in_place_and_status_counts() -> Result<()> {
    let Some(env) = env_or_skip("sidecar_upgrade_in_place") else {
        return Ok(());
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        eprintln!("SKIP sidecar_upgrade_in_place: the suite is not running");
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let name = format!("upgrade-{}", std::process::id());
    setup(
        &client,
        &name,
        json!({
            "selector": {"matchLabels": {"e2e-upgrade": name}},
            "containers": [{"name": "agent-up", "image": "example.test/agent:v1"}],
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 2}
        }),
    )
    .await?;
    let res = with_temp_ns(&client, "ssupgrade", |client, ns| {
        let (name, node) = (name.clone(), node.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let uids = make_pods(&pods, &node, "e2e-upgrade", &name, 3).await?;
            let sss: Api<SidecarSet> = Api::all(client.clone());
            wait_for("status: 3 matched, updated and ready", Duration::from_secs(120), || async {
                let s = sss.get(&name).await?.status.unwrap_or_default();
                Ok((s.matched_pods == 3 && s.updated_pods == 3 && s.ready_pods == 3).then_some(()))
            })
            .await
            .map_err(|e| {
                let pods = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("\"$E2E_KUBECTL\" get sidecarset {name} -o yaml; \"$E2E_KUBECTL\" -n {ns} get pods -o wide"))
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                e.context(pods)
            })?;
            let patch = json!({"spec": {"containers": [{"name": "agent-up", "image": "example.test/agent:v2"}]}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            wait_for("every pod's sidecar on v2 and ready", Duration::from_secs(90), || async {
                let list = pods.list(&ListParams::default()).await?;
                let all = list.items.iter().all(|p| {
                    spec_image(p, "agent-up") == Some("example.test/agent:v2")
                        && p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| {
                            cs.iter().any(|c| c.name == "agent-up" && c.image == "example.test/agent:v2" && c.ready)
                        })
                });
                Ok((all && list.items.len() == 3).then_some(()))
            })
            .await?;
            for p in pods.list(&ListParams::default()).await?.items {
                let n = p.metadata.name.clone().unwrap();
                ensure!(uids.get(&n) == p.metadata.uid.as_ref(), "pod {n} was recreated");
                ensure!(spec_image(&p, "main") == Some("example.test/app:v1"), "app container changed");
                let hash: serde_json::Value = serde_json::from_str(
                    p.metadata.annotations.as_ref().and_then(|a| a.get("kruise.io/sidecarset-hash")).context("no hash")?,
                )?;
                let ss = sss.get(&name).await?;
                let want = ss.metadata.annotations.as_ref().and_then(|a| a.get("kruise.io/sidecarset-hash")).cloned();
                ensure!(hash[&name]["hash"].as_str() == want.as_deref(), "pod {n} hash {hash} != SidecarSet's {want:?}");
            }
            wait_for("status: 3 updated and ready", Duration::from_secs(60), || async {
                let s = sss.get(&name).await?.status.unwrap_or_default();
                Ok((s.updated_pods == 3 && s.updated_ready_pods == Some(3)).then_some(()))
            })
            .await?;
            Ok(())
        }
    })
    .await;
    let _ = Api::<SidecarSet>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
    res
}

#[tokio::test]
async fn hot_upgrade_switches_slots_and_resets_the_old_one() -> Result<()> {
    let Some(env) = env_or_skip("hot_upgrade_switch") else {
        return Ok(());
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        eprintln!("SKIP hot_upgrade_switch: the suite is not running");
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let name = format!("hotswitch-{}", std::process::id());
    setup(&client, &name, json!({
        "selector": {"matchLabels": {"e2e-hotswitch": name}},
        "containers": [{"name": "mesh", "image": "example.test/mesh:v1",
                        "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "example.test/empty:v1"}}]
    }))
    .await?;
    let res = with_temp_ns(&client, "sshot", |client, ns| {
        let (name, node) = (name.clone(), node.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let uids = make_pods(&pods, &node, "e2e-hotswitch", &name, 1).await?;
            let sss: Api<SidecarSet> = Api::all(client.clone());
            wait_for("the hot pod ready", Duration::from_secs(60), || async {
                let s = sss.get(&name).await?.status.unwrap_or_default();
                Ok((s.matched_pods == 1 && s.ready_pods == 1).then_some(()))
            })
            .await?;
            let patch = json!({"spec": {"containers": [{"name": "mesh", "image": "example.test/mesh:v2",
                "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "example.test/empty:v1"}}]}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            // v2 runs in slot -2, the working slot switches to mesh-2, slot -1 goes back to the empty image
            let p = wait_for("slot switch", Duration::from_secs(90), || async {
                let p = pods.get("app-0").await?;
                let working = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kruise.io/sidecarset-working-hotupgrade-container"))
                    .cloned()
                    .unwrap_or_default();
                let done = spec_image(&p, "mesh-2") == Some("example.test/mesh:v2")
                    && spec_image(&p, "mesh-1") == Some("example.test/empty:v1")
                    && working.contains("mesh-2");
                Ok(done.then_some(p))
            })
            .await?;
            ensure!(uids.get("app-0") == p.metadata.uid.as_ref(), "the pod was recreated");
            Ok(())
        }
    })
    .await;
    let _ = Api::<SidecarSet>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
    res
}

/// The running suite and the kwok nodes, or `None` (the test is skipped) when either is missing.
async fn suite_or_skip(test: &str) -> Result<Option<(Client, Vec<String>)>> {
    let Some(env) = env_or_skip(test) else {
        return Ok(None);
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        eprintln!("SKIP {test}: the suite is not running");
        return Ok(None);
    }
    let nodes = env.list("E2E_KWOK_NODES");
    ensure!(!nodes.is_empty(), "no kwok node");
    Ok(Some((env.client().await?, nodes)))
}

/// `n` pods named `<prefix>-<i>` labelled `label=value`, spread over `nodes`, created 8 at a time.
async fn make_pods_on(
    pods: &Api<Pod>,
    nodes: &[String],
    prefix: &str,
    label: &str,
    value: &str,
    n: usize,
) -> Result<()> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| {
            let mut p = pod_on_node(
                &format!("{prefix}-{i}"),
                &nodes[i % nodes.len()],
                "example.test/app:v1",
                false,
            );
            p.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(label.into(), value.into());
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &p).await.map(|_| ()) }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod is unavailable while it is not Ready or its sidecar is being replaced (the spec names an
/// image the runtime does not report yet).
fn unavailable(p: &Pod, sidecar: &str) -> bool {
    !pod_ready(p) || spec_image(p, sidecar) != status_image(p, sidecar)
}

/// Pods (of `pods`) whose sidecar `sidecar` runs `image` according to both spec and status.
async fn count_running(pods: &Api<Pod>, sidecar: &str, image: &str) -> Result<usize> {
    Ok(pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|p| {
            spec_image(p, sidecar) == Some(image) && status_image(p, sidecar) == Some(image)
        })
        .count())
}

async fn wait_status(
    sss: &Api<SidecarSet>,
    name: &str,
    what: &str,
    f: impl Fn(&kruise_crds::sidecarset::SidecarSetStatus) -> bool,
) -> Result<()> {
    wait_for(what, Duration::from_secs(60), || async {
        let s = sss.get(name).await?.status.unwrap_or_default();
        Ok(f(&s).then_some(()))
    })
    .await
}

/// The largest number of pods seen unavailable at once, following every pod event of a namespace.
#[derive(Default)]
struct Unavailability {
    synced: bool,
    now: BTreeMap<String, bool>,
    max: usize,
}

/// Watches the pods of `pods` and records how many are unavailable at once (events of one
/// namespace arrive in resourceVersion order, so each step is a state the cluster was in).
fn watch_unavailability(
    pods: Api<Pod>,
    sidecar: &'static str,
) -> (
    std::sync::Arc<std::sync::Mutex<Unavailability>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let state = std::sync::Arc::new(std::sync::Mutex::new(Unavailability::default()));
    let st = state.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
        while let Some(ev) = stream.next().await {
            let Ok(ev) = ev else { continue };
            let mut s = st.lock().unwrap();
            match ev {
                watcher::Event::Init => s.now.clear(),
                watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                    let n = p.metadata.name.clone().unwrap_or_default();
                    s.now.insert(n, unavailable(&p, sidecar));
                }
                watcher::Event::Delete(p) => {
                    s.now.remove(&p.metadata.name.clone().unwrap_or_default());
                }
                watcher::Event::InitDone => s.synced = true,
            }
            let cur = s.now.values().filter(|u| **u).count();
            s.max = s.max.max(cur);
        }
    });
    (state, task)
}

#[tokio::test]
async fn partition_and_max_unavailable_hold_on_many_pods() -> Result<()> {
    let Some((client, nodes)) = suite_or_skip("sidecar_partition_max_unavailable").await? else {
        return Ok(());
    };
    let name = format!("partition-{}", std::process::id());
    let (total, partition, max_unavailable) = (30usize, 10usize, 3usize);
    setup(
        &client,
        &name,
        json!({
            "selector": {"matchLabels": {"e2e-partition": name}},
            "containers": [{"name": "agent-part", "image": "example.test/agent:v1"}],
            "updateStrategy": {"type": "RollingUpdate", "partition": partition, "maxUnavailable": max_unavailable}
        }),
    )
    .await?;
    let res = with_temp_ns(&client, "sspartition", |client, ns| {
        let (name, nodes) = (name.clone(), nodes.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            make_pods_on(&pods, &nodes, "app", "e2e-partition", &name, total).await?;
            let sss: Api<SidecarSet> = Api::all(client.clone());
            let t = total as i32;
            wait_status(&sss, &name, "status: all matched, updated and ready", |s| {
                s.matched_pods == t && s.updated_pods == t && s.ready_pods == t
            })
            .await?;
            let (seen, watch) = watch_unavailability(pods.clone(), "agent-part");
            wait_for("the pod watch to sync", Duration::from_secs(30), || async {
                Ok(seen.lock().unwrap().synced.then_some(()))
            })
            .await?;
            ensure!(seen.lock().unwrap().max == 0, "pods unavailable before the upgrade");

            let patch = json!({"spec": {"containers": [{"name": "agent-part", "image": "example.test/agent:v2"}]}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            let upgraded = total - partition;
            wait_for("the upgrade to stop at the partition", Duration::from_secs(90), || async {
                let s = sss.get(&name).await?.status.unwrap_or_default();
                let n = count_running(&pods, "agent-part", "example.test/agent:v2").await?;
                Ok((s.updated_pods == upgraded as i32 && n == upgraded).then_some(()))
            })
            .await?;
            // The partition holds: nothing more is upgraded a while later.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let s = sss.get(&name).await?.status.unwrap_or_default();
            ensure!(s.matched_pods == t, "matched {} != {t}", s.matched_pods);
            ensure!(s.updated_pods == upgraded as i32, "updated {} != {upgraded}", s.updated_pods);
            let list = pods.list(&ListParams::default()).await?.items;
            let v2 = list.iter().filter(|p| spec_image(p, "agent-part") == Some("example.test/agent:v2")).count();
            let v1 = list.iter().filter(|p| {
                spec_image(p, "agent-part") == Some("example.test/agent:v1")
                    && status_image(p, "agent-part") == Some("example.test/agent:v1")
            }).count();
            ensure!((v2, v1) == (upgraded, partition), "{v2} pods on v2 and {v1} on v1, want {upgraded} and {partition}");
            watch.abort();
            let max = seen.lock().unwrap().max;
            ensure!(max >= 1, "the watch never saw a pod being upgraded");
            ensure!(max <= max_unavailable, "{max} pods were unavailable at once (maxUnavailable {max_unavailable})");
            eprintln!("partition test: at most {max} pods unavailable at once");
            Ok(())
        }
    })
    .await;
    let _ = Api::<SidecarSet>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
    res
}

/// Sidecar image and recorded SidecarSet hash of every pod.
async fn pod_versions(
    pods: &Api<Pod>,
    sidecar: &str,
) -> Result<BTreeMap<String, (Option<String>, Option<String>)>> {
    Ok(pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|p| {
            let hash = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kruise.io/sidecarset-hash"))
                .cloned();
            (
                p.metadata.name.clone().unwrap_or_default(),
                (spec_image(p, sidecar).map(String::from), hash),
            )
        })
        .collect())
}

#[tokio::test]
async fn paused_stops_the_upgrade_and_unpausing_resumes_it() -> Result<()> {
    let Some((client, nodes)) = suite_or_skip("sidecar_paused").await? else {
        return Ok(());
    };
    let name = format!("paused-{}", std::process::id());
    let total = 6usize;
    setup(
        &client,
        &name,
        json!({
            "selector": {"matchLabels": {"e2e-paused": name}},
            "containers": [{"name": "agent-pause", "image": "example.test/agent:v1"}],
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 2}
        }),
    )
    .await?;
    let res = with_temp_ns(&client, "sspaused", |client, ns| {
        let (name, nodes) = (name.clone(), nodes.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            make_pods_on(&pods, &nodes, "app", "e2e-paused", &name, total).await?;
            let sss: Api<SidecarSet> = Api::all(client.clone());
            let t = total as i32;
            wait_status(&sss, &name, "status: all matched, updated and ready", |s| {
                s.matched_pods == t && s.updated_pods == t && s.ready_pods == t
            })
            .await?;
            let before = pod_versions(&pods, "agent-pause").await?;

            // New image and paused in one write: the controller must not touch any pod.
            let patch = json!({"spec": {
                "containers": [{"name": "agent-pause", "image": "example.test/agent:v2"}],
                "updateStrategy": {"paused": true}}});
            let ss = sss
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let generation = ss.metadata.generation;
            wait_status(
                &sss,
                &name,
                "the controller to observe the paused spec",
                |s| s.observed_generation == generation && s.updated_pods == 0,
            )
            .await?;
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = pod_versions(&pods, "agent-pause").await?;
                ensure!(
                    now == before,
                    "a pod changed while paused: {now:?} != {before:?}"
                );
                let s = sss.get(&name).await?.status.unwrap_or_default();
                ensure!(
                    s.updated_pods == 0,
                    "updatedPods {} while paused",
                    s.updated_pods
                );
            }

            let patch = json!({"spec": {"updateStrategy": {"paused": false}}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            wait_for(
                "every pod on v2 after unpausing",
                Duration::from_secs(90),
                || async {
                    let s = sss.get(&name).await?.status.unwrap_or_default();
                    let n = count_running(&pods, "agent-pause", "example.test/agent:v2").await?;
                    Ok(
                        (s.updated_pods == t && s.updated_ready_pods == Some(t) && n == total)
                            .then_some(()),
                    )
                },
            )
            .await?;
            Ok(())
        }
    })
    .await;
    let _ = Api::<SidecarSet>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
    res
}

/// The `kruise.io/sidecarset-hash` entry of SidecarSet `ss` on pod `p`.
fn hash_entry(p: &Pod, ss: &str) -> Result<serde_json::Value> {
    let raw = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kruise.io/sidecarset-hash"))
        .context("no kruise.io/sidecarset-hash annotation")?;
    let v: serde_json::Value = serde_json::from_str(raw)?;
    Ok(v[ss].clone())
}

#[tokio::test]
async fn pod_created_mid_upgrade_gets_the_revision_it_should() -> Result<()> {
    let Some((client, nodes)) = suite_or_skip("sidecar_injection_mid_upgrade").await? else {
        return Ok(());
    };
    let name = format!("midupgrade-{}", std::process::id());
    setup(
        &client,
        &name,
        json!({
            "selector": {"matchLabels": {"e2e-midupgrade": name}},
            "containers": [{"name": "agent-mid", "image": "example.test/agent:v1"}],
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1, "partition": 2}
        }),
    )
    .await?;
    let res = with_temp_ns(&client, "ssmid", |client, ns| {
        let (name, nodes) = (name.clone(), nodes.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            make_pods_on(&pods, &nodes, "app", "e2e-midupgrade", &name, 3).await?;
            let sss: Api<SidecarSet> = Api::all(client.clone());
            wait_status(&sss, &name, "status: 3 matched, updated and ready", |s| {
                s.matched_pods == 3 && s.updated_pods == 3 && s.ready_pods == 3
            })
            .await?;
            let ss = sss.get(&name).await?;
            let v1_revision = ss.status.as_ref().and_then(|s| s.latest_revision.clone()).context("no latestRevision")?;
            let v1_hash = ss.metadata.annotations.as_ref().and_then(|a| a.get("kruise.io/sidecarset-hash")).cloned().context("no hash")?;

            // Upgrade in progress: partition 2 keeps two of the three pods on v1.
            let patch = json!({"spec": {"containers": [{"name": "agent-mid", "image": "example.test/agent:v2"}]}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            wait_status(&sss, &name, "one pod upgraded", |s| s.updated_pods == 1 && s.matched_pods == 3).await?;
            let ss = sss.get(&name).await?;
            let v2_revision = ss.status.as_ref().and_then(|s| s.latest_revision.clone()).context("no latestRevision")?;
            let v2_hash = ss.metadata.annotations.as_ref().and_then(|a| a.get("kruise.io/sidecarset-hash")).cloned().context("no hash")?;
            ensure!(v1_revision != v2_revision && v1_hash != v2_hash, "the image change made no new revision");

            // No injection revision pinned: a new pod gets the latest spec, and counts as updated.
            let mut p = pod_on_node("late-latest", &nodes[0], "example.test/app:v1", false);
            p.metadata.labels.get_or_insert_with(Default::default).insert("e2e-midupgrade".into(), name.clone());
            let created = pods.create(&PostParams::default(), &p).await?;
            ensure!(spec_image(&created, "agent-mid") == Some("example.test/agent:v2"), "late-latest not injected with v2");
            let h = hash_entry(&created, &name)?;
            ensure!(h["hash"].as_str() == Some(v2_hash.as_str()), "late-latest hash {h}, want {v2_hash}");
            ensure!(h["controllerRevision"].as_str() == Some(v2_revision.as_str()), "late-latest revision {h}, want {v2_revision}");
            wait_status(&sss, &name, "4 matched, 2 updated", |s| s.matched_pods == 4 && s.updated_pods == 2).await?;

            // Injection pinned to the v1 revision (policy Always): a new pod gets v1 and v1's hash. The
            // partition grows with it so the controller leaves that pod on v1 for now.
            let patch = json!({"spec": {
                "injectionStrategy": {"revision": {"revisionName": v1_revision, "policy": "Always"}},
                "updateStrategy": {"partition": 3}}});
            let ss = sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            let generation = ss.metadata.generation;
            wait_status(&sss, &name, "the pinned spec observed", |s| s.observed_generation == generation).await?;
            let mut p = pod_on_node("late-pinned", &nodes[0], "example.test/app:v1", false);
            p.metadata.labels.get_or_insert_with(Default::default).insert("e2e-midupgrade".into(), name.clone());
            let created = pods.create(&PostParams::default(), &p).await?;
            ensure!(spec_image(&created, "agent-mid") == Some("example.test/agent:v1"), "late-pinned not injected with v1");
            let h = hash_entry(&created, &name)?;
            ensure!(h["hash"].as_str() == Some(v1_hash.as_str()), "late-pinned hash {h}, want {v1_hash}");
            ensure!(h["controllerRevision"].as_str() == Some(v1_revision.as_str()), "late-pinned revision {h}, want {v1_revision}");
            wait_status(&sss, &name, "5 matched, 2 updated", |s| s.matched_pods == 5 && s.updated_pods == 2).await?;

            // Dropping the partition upgrades every pod, the pinned one included, to the latest spec.
            let patch = json!({"spec": {"updateStrategy": {"partition": 0}}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            wait_for("all 5 pods on v2", Duration::from_secs(90), || async {
                let s = sss.get(&name).await?.status.unwrap_or_default();
                let n = count_running(&pods, "agent-mid", "example.test/agent:v2").await?;
                Ok((s.updated_pods == 5 && n == 5).then_some(()))
            })
            .await?;
            let h = hash_entry(&pods.get("late-pinned").await?, &name)?;
            ensure!(h["hash"].as_str() == Some(v2_hash.as_str()), "late-pinned hash after upgrade {h}, want {v2_hash}");
            Ok(())
        }
    })
    .await;
    let _ = Api::<SidecarSet>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
    res
}
