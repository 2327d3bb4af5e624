//! Disruptive e2e tests: they freeze or kill kruise-manager, so `e2e/cluster test` runs them alone
//! after everything else (`--ignored --test-threads=1`).
//! - A hung webhook refuses only pods some SidecarSet selects; every other pod is created at once
//!   (decision 1: the API server does not call us for them).
//! - `kill -9` of the manager in the middle of a CloneSet scale-up, then a restart: exactly
//!   `replicas` pods are ever created, never more.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{CloneSet, SidecarSet};
use kruise_e2e::{Env, env_or_skip, pod_on_node, wait_for, with_temp_ns};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cluster(args: &[&str]) -> Result<()> {
    let st = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster"))
        .args(args)
        .status()?;
    ensure!(st.success(), "e2e/cluster {args:?} failed");
    Ok(())
}

fn manager_pid(env: &Env) -> Result<String> {
    Ok(
        std::fs::read_to_string(format!("{}/pids/manager.pid", env.get("E2E_DIR")?))?
            .trim()
            .to_string(),
    )
}

/// Resumes a SIGSTOPped manager when dropped, whatever the test did.
struct Resume(String);
impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

fn suite(env: &Env, test: &str) -> bool {
    let ok = env.get("E2E_SUITE").map(|v| v == "1").unwrap_or(false);
    if !ok {
        eprintln!("SKIP {test}: the suite is not running");
    }
    ok
}

#[tokio::test]
#[ignore = "disruptive: freezes the manager; run alone by e2e/cluster test"]
async fn hung_webhook_blocks_only_pods_a_sidecarset_selects() -> Result<()> {
    let Some(env) = env_or_skip("hung_webhook") else {
        return Ok(());
    };
    if !suite(&env, "hung_webhook") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let name = format!("outage-{}", std::process::id());
    let ss: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"e2e-outage": name}},
                 "containers": [{"name": "outage-agent", "image": "example.test/agent:v1"}]}
    }))?;
    let sss: Api<SidecarSet> = Api::all(client.clone());
    kruise_e2e::create_sidecarset_and_wait(&client, &ss, &name).await?;
    let res = with_temp_ns(&client, "outage", |client, ns| {
        let (name, node, env) = (name.clone(), node.clone(), env.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client, &ns);
            let pid = manager_pid(&env)?;
            ensure!(
                std::process::Command::new("kill")
                    .args(["-STOP", &pid])
                    .status()?
                    .success()
            );
            let _resume = Resume(pid);
            let t0 = Instant::now();
            pods.create(
                &PostParams::default(),
                &pod_on_node("free", &node, "example.test/app:v1", false),
            )
            .await
            .context("a pod no SidecarSet selects was blocked by the hung webhook")?;
            let free_secs = t0.elapsed().as_secs_f64();
            ensure!(
                free_secs < 3.0,
                "an unselected pod took {free_secs:.1}s to create with the webhook hung"
            );
            let mut selected = pod_on_node("selected", &node, "example.test/app:v1", false);
            selected
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("e2e-outage".into(), name.clone());
            let err = pods
                .create(&PostParams::default(), &selected)
                .await
                .expect_err(
                    "a selected pod was created without its sidecar while the webhook was hung",
                );
            ensure!(
                err.to_string().contains("mpod.kb.io"),
                "refusal does not say which webhook failed: {err}"
            );
            eprintln!("unselected pod created in {free_secs:.3}s; selected pod refused: {err}");
            Ok(())
        }
    })
    .await;
    let _ = sss.delete(&name, &DeleteParams::default()).await;
    res
}

#[tokio::test]
#[ignore = "disruptive: kills the manager; run alone by e2e/cluster test"]
async fn manager_killed_mid_scale_up_never_creates_extra_pods() -> Result<()> {
    let Some(env) = env_or_skip("manager_killed_mid_scale_up") else {
        return Ok(());
    };
    if !suite(&env, "manager_killed_mid_scale_up") {
        return Ok(());
    }
    let client: Client = env.client().await?;
    with_temp_ns(&client, "killscale", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        // every pod UID ever created in the namespace
        let seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
        let seen_w = seen.clone();
        let watch = tokio::spawn(
            watcher(pods.clone(), watcher::Config::default()).applied_objects().for_each(move |p| {
                if let Ok(p) = p {
                    seen_w.lock().unwrap().insert(p.metadata.uid.unwrap_or_default());
                }
                futures::future::ready(())
            }),
        );
        let replicas = 150;
        let cs: CloneSet = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "killed"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "killed"}},
                     "template": {"metadata": {"labels": {"app": "killed"}},
                                  "spec": {"nodeSelector": {"type": "kwok"},
                                           "containers": [{"name": "main", "image": "example.test/app:v1"}]}}}
        }))?;
        Api::<CloneSet>::namespaced(client.clone(), &ns).create(&PostParams::default(), &cs).await?;
        wait_for("the scale-up to be under way", Duration::from_secs(60), || async {
            let n = pods.list(&ListParams::default()).await?.items.len();
            Ok((n >= 10).then_some(()))
        })
        .await?;
        cluster(&["suite", "kill-manager"])?;
        let at_kill = pods.list(&ListParams::default()).await?.items.len();
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster(&["suite", "start-manager"])?;
        wait_for("all replicas Running", Duration::from_secs(180), || async {
            let list = pods.list(&ListParams::default()).await?.items;
            let running = list
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            Ok((running == replicas).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(3)).await; // anything extra would show up now
        let live = pods.list(&ListParams::default()).await?.items.len();
        let ever = seen.lock().unwrap().len();
        watch.abort();
        eprintln!("killed at {at_kill} pods; {live} live, {ever} ever created, {replicas} wanted");
        ensure!(at_kill < replicas, "the manager was killed after the scale-up had finished ({at_kill} pods)");
        ensure!(live == replicas, "{live} pods live, {replicas} wanted");
        ensure!(ever == replicas, "{ever} pods were ever created for {replicas} replicas");
        Ok(())
    })
    .await
}

/// Runs alone because the example's SidecarSet (container `sidecar`, selector `app: hotupgrade`)
/// would conflict with copies of it that other tests create.
#[tokio::test]
#[ignore = "serial: uses the OpenKruise example SidecarSet as is; run alone by e2e/cluster test"]
async fn openkruise_hotupgrade_example_injects_the_pair() -> Result<()> {
    let Some(env) = env_or_skip("openkruise_hotupgrade_example") else {
        return Ok(());
    };
    if !suite(&env, "openkruise_hotupgrade_example") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/openkruise-examples.yaml"
    ))?;
    let doc = serde_saphyr::from_multiple::<serde_json::Value>(&text)?
        .into_iter()
        .find(|d| d["kind"] == "SidecarSet")
        .context("no SidecarSet in the examples")?;
    let ss: SidecarSet = serde_json::from_value(doc)?;
    let sss: Api<SidecarSet> = Api::all(client.clone());
    let _ = sss
        .delete("hotupgrade-sidecarset", &DeleteParams::default())
        .await;
    kruise_e2e::create_sidecarset_and_wait(&client, &ss, "hotupgrade").await?;
    let res = with_temp_ns(&client, "example", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let mut p = pod_on_node("app", &node, "example.test/app:v1", false);
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("app".into(), "hotupgrade".into());
        let created = pods.create(&PostParams::default(), &p).await?;
        let spec = created.spec.clone().unwrap();
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        ensure!(
            names == ["sidecar-1", "sidecar-2", "main"],
            "containers {names:?}"
        );
        ensure!(
            spec.containers[0].image.as_deref() == Some("openkruise/hotupgrade-sample:sidecarv1")
        );
        ensure!(spec.containers[1].image.as_deref() == Some("openkruise/hotupgrade-sample:empty"));
        for c in &spec.containers[..2] {
            let env: Vec<(String, String)> = c
                .env
                .iter()
                .flatten()
                .filter_map(|e| {
                    let path = e
                        .value_from
                        .as_ref()?
                        .field_ref
                        .as_ref()?
                        .field_path
                        .clone();
                    Some((e.name.clone(), path))
                })
                .collect();
            ensure!(
                env.contains(&(
                    "SIDECARSET_VERSION".into(),
                    format!(
                        "metadata.annotations['version.sidecarset.kruise.io/{}']",
                        c.name
                    )
                )) && env.contains(&(
                    "SIDECARSET_VERSION_ALT".into(),
                    format!(
                        "metadata.annotations['versionalt.sidecarset.kruise.io/{}']",
                        c.name
                    )
                )),
                "{} env {env:?}",
                c.name
            );
        }
        let a = created.metadata.annotations.clone().unwrap_or_default();
        for (k, v) in [
            ("version.sidecarset.kruise.io/sidecar-1", "1"),
            ("versionalt.sidecarset.kruise.io/sidecar-1", "0"),
            ("version.sidecarset.kruise.io/sidecar-2", "0"),
            ("versionalt.sidecarset.kruise.io/sidecar-2", "1"),
            (
                "kruise.io/sidecarset-working-hotupgrade-container",
                "{\"sidecar\":\"sidecar-1\"}",
            ),
            (
                "kruise.io/sidecarset-injected-list",
                "hotupgrade-sidecarset",
            ),
        ] {
            ensure!(
                a.get(k).map(String::as_str) == Some(v),
                "annotation {k} = {:?}, want {v}",
                a.get(k)
            );
        }
        Ok(())
    })
    .await;
    let _ = sss
        .delete("hotupgrade-sidecarset", &DeleteParams::default())
        .await;
    res
}
