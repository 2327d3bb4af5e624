//! Disruptive e2e tests: they freeze or kill kruise-manager, so `e2e/cluster test` runs them alone
//! after everything else (`--ignored --test-threads=1`).
//! - A hung or killed webhook refuses only pods some SidecarSet selects; every other pod is created
//!   at once (decision 1: the API server does not call us for them).
//! - `kill -9` of the manager in the middle of a CloneSet scale-up, then a restart: exactly
//!   `replicas` pods are ever created, never more.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{CloneSet, SidecarSet};
use kruise_e2e::{Env, PodUids, env_or_skip, pod_on_node, wait_for, with_temp_ns};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
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

fn suite(env: &Env, test: &str) -> bool {
    let ok = env.get("E2E_SUITE").map(|v| v == "1").unwrap_or(false);
    if !ok {
        eprintln!("SKIP {test}: the suite is not running");
    }
    ok
}

/// How the webhook becomes unavailable.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// SIGSTOP: connections are accepted and never answered (the API server's timeout runs out).
    Frozen,
    /// `kill -9`: nothing listens (connection refused at once).
    Killed,
}

/// Undoes an [`Outage`] when dropped, whatever the test did.
struct Restore(Outage, String);
impl Drop for Restore {
    fn drop(&mut self) {
        match self.0 {
            Outage::Frozen => {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &self.1])
                    .status();
            }
            Outage::Killed => {
                // `kill-manager` sends SIGKILL and returns; the process may take a moment to go
                for _ in 0..100 {
                    if std::fs::metadata(format!("/proc/{}", self.1)).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = cluster(&["suite", "start-manager"]);
            }
        }
    }
}

#[tokio::test]
#[ignore = "disruptive: freezes the manager; run alone by e2e/cluster test"]
async fn hung_webhook_blocks_only_pods_a_sidecarset_selects() -> Result<()> {
    webhook_outage_blocks_only_selected_pods(Outage::Frozen).await
}

#[tokio::test]
#[ignore = "disruptive: kills the manager; run alone by e2e/cluster test"]
async fn killed_webhook_blocks_only_pods_a_sidecarset_selects() -> Result<()> {
    webhook_outage_blocks_only_selected_pods(Outage::Killed).await
}

/// With the manager frozen or killed (failurePolicy `Fail`, the default): a pod no SidecarSet
/// selects is created at once; a selected pod is refused with an error naming our webhook; once
/// the manager is back, the selected pod is created with its sidecar.
async fn webhook_outage_blocks_only_selected_pods(outage: Outage) -> Result<()> {
    let test = format!("{outage:?}_webhook");
    let Some(env) = env_or_skip(&test) else {
        return Ok(());
    };
    if !suite(&env, &test) {
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
            let restore = Restore(outage, pid.clone());
            match outage {
                Outage::Frozen => ensure!(
                    std::process::Command::new("kill")
                        .args(["-STOP", &pid])
                        .status()?
                        .success()
                ),
                Outage::Killed => cluster(&["suite", "kill-manager"])?,
            }
            let t0 = Instant::now();
            pods.create(
                &PostParams::default(),
                &pod_on_node("free", &node, "example.test/app:v1", false),
            )
            .await
            .context("a pod no SidecarSet selects was blocked by the webhook outage")?;
            let free_secs = t0.elapsed().as_secs_f64();
            ensure!(
                free_secs < 3.0,
                "an unselected pod took {free_secs:.1}s to create with the webhook {outage:?}"
            );
            let mut selected = pod_on_node("selected", &node, "example.test/app:v1", false);
            selected
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("e2e-outage".into(), name.clone());
            let t1 = Instant::now();
            let err = pods
                .create(&PostParams::default(), &selected)
                .await
                .expect_err("a selected pod was created without its sidecar during the outage");
            let refused_secs = t1.elapsed().as_secs_f64();
            ensure!(
                err.to_string().contains("mpod.kb.io"),
                "refusal does not say which webhook failed: {err}"
            );
            eprintln!(
                "{outage:?}: unselected pod created in {free_secs:.3}s; selected pod refused after {refused_secs:.2}s: {err}"
            );
            drop(restore);
            if let Outage::Killed = outage {
                ensure!(
                    manager_pid(&env).is_ok_and(|p| p != pid),
                    "the manager was not started again"
                );
            }
            // back: the same pod is now created, with its sidecar
            let created = wait_for("the selected pod to be created", Duration::from_secs(60), || async {
                match pods.create(&PostParams::default(), &selected).await {
                    Ok(p) => Ok(Some(p)),
                    Err(kube::Error::Api(e)) if e.message.contains("mpod.kb.io") => Ok(None),
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
            let names: Vec<_> = created
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            ensure!(
                names.contains(&"outage-agent".to_string()),
                "after the outage the selected pod has containers {names:?}, no sidecar"
            );
            let free = pods.get("free").await?;
            ensure!(
                free.spec.as_ref().is_some_and(|s| s.containers.len() == 1),
                "the unselected pod was changed"
            );
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
        let seen = PodUids::record(&pods);
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
        let ever = seen.count();
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

/// A standby kruise-manager (a second replica: controllers behind the same Lease, no webhook).
/// Killed when dropped.
struct Standby(std::process::Child);
impl Drop for Standby {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lease_holder(env: &Env) -> Result<String> {
    let out = std::process::Command::new(env.get("E2E_KUBECTL")?)
        .env("KUBECONFIG", env.get("KUBECONFIG")?)
        .args([
            "-n",
            "kruise-system",
            "get",
            "lease",
            "kruise-rs-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Two replicas: `kill -9` of the leader in the middle of a CloneSet rollout → the standby takes the
/// Lease and finishes the rollout; every pod is replaced exactly once (none duplicated, none lost).
/// The takeover time is printed (the target is 15 s); the test asserts behaviour only.
#[tokio::test]
#[ignore = "disruptive: kills the manager; run alone by e2e/cluster test"]
async fn leader_killed_mid_rollout_standby_takes_over_and_finishes() -> Result<()> {
    let Some(env) = env_or_skip("leader_failover") else {
        return Ok(());
    };
    if !suite(&env, "leader_failover") {
        return Ok(());
    }
    let client: Client = env.client().await?;
    let leader_pid = manager_pid(&env)?;
    wait_for(
        "the suite's manager to hold the Lease",
        Duration::from_secs(60),
        || async {
            Ok(lease_holder(&env)?
                .ends_with(&format!("-{leader_pid}"))
                .then_some(()))
        },
    )
    .await?;
    let log = std::fs::File::create(format!("{}/logs/manager-standby.log", env.get("E2E_DIR")?))?;
    let standby = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/kruise-manager"
    ))
    .args([
        "--kubeconfig",
        env.get("KUBECONFIG")?,
        "--namespace",
        "kruise-system",
        "--health-addr",
        "127.0.0.1:8001",
        "--disable-webhook",
    ])
    .stdout(log.try_clone()?)
    .stderr(log)
    .spawn()
    .context("start the standby manager")?;
    let standby_pid = standby.id();
    let standby = Standby(standby);
    let res = with_temp_ns(&client, "failover", |client, ns| {
        let env = env.clone();
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let seen = PodUids::record(&pods);
            let replicas = 40;
            let image = |tag: &str| format!("example.test/app:{tag}");
            let cs: CloneSet = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "failover"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "failover"}},
                         "updateStrategy": {"type": "ReCreate", "maxUnavailable": 2},
                         "template": {"metadata": {"labels": {"app": "failover"}},
                                      "spec": {"nodeSelector": {"type": "kwok"},
                                               "containers": [{"name": "main", "image": image("v1")}]}}}
            }))?;
            let sets: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
            sets.create(&PostParams::default(), &cs).await?;
            let running = |list: &[Pod], img: &str| {
                list.iter()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            && p.spec.as_ref().is_some_and(|s| s.containers[0].image.as_deref() == Some(img))
                    })
                    .count()
            };
            wait_for("40 pods Running on v1", Duration::from_secs(180), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                Ok((running(&list, &image("v1")) == replicas).then_some(()))
            })
            .await?;
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image("v2")}]}}}});
            sets.patch("failover", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
                .await?;
            wait_for("the rollout under way", Duration::from_secs(60), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                Ok((running(&list, &image("v2")) >= 4).then_some(()))
            })
            .await?;
            cluster(&["suite", "kill-manager"])?;
            let killed = Instant::now();
            let at_kill = running(&pods.list(&ListParams::default()).await?.items, &image("v2"));
            wait_for("the standby to take the Lease", Duration::from_secs(60), || async {
                Ok(lease_holder(&env)?.ends_with(&format!("-{standby_pid}")).then_some(()))
            })
            .await?;
            let takeover = killed.elapsed().as_secs_f64();
            wait_for("all 40 pods Running on v2", Duration::from_secs(240), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                let live = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
                Ok((running(&list, &image("v2")) == replicas && live == replicas).then_some(()))
            })
            .await?;
            let finished = killed.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_secs(3)).await; // anything extra would show up now
            let live = pods.list(&ListParams::default()).await?.items.len();
            let ever = seen.count();
            println!(
                "leader killed with {at_kill}/{replicas} pods on v2; standby leads after {takeover:.1} s; \
                 rollout finished {finished:.1} s after the kill; {live} live, {ever} ever created (want {})",
                2 * replicas
            );
            ensure!(at_kill < replicas, "the leader was killed after the rollout had finished");
            ensure!(live == replicas, "{live} pods live, {replicas} wanted");
            ensure!(ever == 2 * replicas, "{ever} pods ever created; each of {replicas} replaced once = {}", 2 * replicas);
            Ok(())
        }
    })
    .await;
    // the suite's manager comes back as the follower; stopping the standby hands it the Lease
    let restart = cluster(&["suite", "start-manager"]);
    drop(standby);
    let new_pid = manager_pid(&env)?;
    wait_for(
        "the suite's manager to lead again",
        Duration::from_secs(60),
        || async {
            Ok(lease_holder(&env)?
                .ends_with(&format!("-{new_pid}"))
                .then_some(()))
        },
    )
    .await?;
    restart?;
    res
}
