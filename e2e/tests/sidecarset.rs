//! The SidecarSet controller on kwok pods: status counters, in-place sidecar upgrade (pod names and
//! UIDs kept, only the sidecar image changes), and the hot-upgrade slot switch.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kruise_e2e::{env_or_skip, pod_on_node, wait_for, with_temp_ns};
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

fn sidecar_image(p: &Pod, name: &str) -> Option<String> {
    p.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == name)?
        .image
        .clone()
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
            wait_for("status: 3 matched, updated and ready", Duration::from_secs(60), || async {
                let s = sss.get(&name).await?.status.unwrap_or_default();
                Ok((s.matched_pods == 3 && s.updated_pods == 3 && s.ready_pods == 3).then_some(()))
            })
            .await?;
            let patch = json!({"spec": {"containers": [{"name": "agent-up", "image": "example.test/agent:v2"}]}});
            sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            wait_for("every pod's sidecar on v2 and ready", Duration::from_secs(90), || async {
                let list = pods.list(&ListParams::default()).await?;
                let all = list.items.iter().all(|p| {
                    sidecar_image(p, "agent-up").as_deref() == Some("example.test/agent:v2")
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
                ensure!(sidecar_image(&p, "main").as_deref() == Some("example.test/app:v1"), "app container changed");
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
                let done = sidecar_image(&p, "mesh-2").as_deref() == Some("example.test/mesh:v2")
                    && sidecar_image(&p, "mesh-1").as_deref() == Some("example.test/empty:v1")
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
