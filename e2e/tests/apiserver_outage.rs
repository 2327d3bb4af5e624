//! etcd compacted to its latest revision, then kube-apiserver `kill -9`ed and restarted (same command
//! line and environment) in the middle of a CloneSet rollout and of an ImagePullJob, so every watch
//! must re-list: the controllers and the daemon reconnect, the rollout
//! ends with exactly `replicas` pods, each replaced once, and the job ends Succeeded. Disruptive:
//! `e2e/faults` runs it alone.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{CloneSet, ImagePullJob};
use kruise_e2e::{Heal, PodUids, Recorded, env_or_skip, wait_for, with_temp_ns};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::{Duration, Instant};

/// Compacts etcd (its JSON gateway on 127.0.0.1:2379) up to its current revision; returns it.
fn compact_etcd() -> Result<i64> {
    let post = |path: &str, body: &str| -> Result<serde_json::Value> {
        let out = std::process::Command::new("curl")
            .args([
                "-fsS",
                "-X",
                "POST",
                &format!("http://127.0.0.1:2379{path}"),
                "-d",
                body,
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "etcd {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let range = post("/v3/kv/range", r#"{"key":"AA=="}"#)?;
    let rev: i64 = range["header"]["revision"]
        .as_str()
        .context("no revision in etcd's answer")?
        .parse()?;
    post(
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{rev}","physical":true}}"#),
    )?;
    Ok(rev)
}

/// Kills kube-apiserver, keeps it down for `down`, starts it again and waits until it answers
/// `/readyz`; returns how long it was unavailable.
async fn bounce(api: &mut Recorded, client: &Client, down: Duration) -> Result<f64> {
    let t0 = Instant::now();
    api.kill().await?;
    tokio::time::sleep(down).await;
    api.restart()?;
    wait_for(
        "kube-apiserver ready again",
        Duration::from_secs(60),
        || async {
            let req = http::Request::get("/readyz").body(Vec::new())?;
            Ok(client
                .request_text(req)
                .await
                .ok()
                .filter(|t| t == "ok")
                .map(|_| ()))
        },
    )
    .await?;
    Ok(t0.elapsed().as_secs_f64())
}

#[tokio::test]
#[ignore = "disruptive: kills kube-apiserver; run alone by e2e/faults"]
async fn apiserver_restarted_mid_rollout_and_mid_pull_loses_nothing() -> Result<()> {
    let Some(env) = env_or_skip("apiserver_restarted") else {
        return Ok(());
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) || env.tier() == "kwok" {
        eprintln!("SKIP apiserver_restarted: needs the suite and CRI nodes");
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_CRI_NODES")
        .into_iter()
        .last()
        .context("no CRI node")?;
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let mut heal = Heal(Recorded::find(&env, "apiserver", "kube-apiserver")?);
    with_temp_ns(&client, "apirestart", |client, ns| {
        let heal = &mut heal;
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let seen = PodUids::record(&pods);
            let replicas = 30;
            let image = |tag: &str| format!("example.test/app:{tag}");
            let cs: CloneSet = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "bounce"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bounce"}},
                         "updateStrategy": {"type": "ReCreate", "maxUnavailable": 2},
                         "template": {"metadata": {"labels": {"app": "bounce"}},
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
            wait_for("30 pods Running on v1", Duration::from_secs(180), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                Ok((running(&list, &image("v1")) == replicas).then_some(()))
            })
            .await?;
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image("v2")}]}}}});
            sets.patch("bounce", &PatchParams::default(), &Patch::Merge(&patch)).await?;
            wait_for("the rollout under way", Duration::from_secs(60), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                Ok((running(&list, &image("v2")) >= 2).then_some(()))
            })
            .await?;
            // an image pull in flight too: the daemon's status writes hit the outage
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let job: ImagePullJob = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob", "metadata": {"name": "bounce"},
                "spec": {"image": format!("{registry}/big:v1"), "selector": {"names": [node]},
                         "imagePullPolicy": "Always", "completionPolicy": {"type": "Always"}}
            }))?;
            jobs.create(&PostParams::default(), &job).await?;
            let at_kill = running(&pods.list(&ListParams::default()).await?.items, &image("v2"));
            // every watch resumes from a compacted revision: the clients must re-list (410 Gone)
            let compacted = compact_etcd()?;
            let outage = bounce(&mut heal.0, &client, Duration::from_secs(3)).await?;
            wait_for("all 30 pods Running on v2", Duration::from_secs(240), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                let live = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
                Ok((running(&list, &image("v2")) == replicas && live == replicas).then_some(()))
            })
            .await?;
            let st = wait_for("the ImagePullJob to finish", Duration::from_secs(180), || async {
                let s = jobs.get("bounce").await?.status.unwrap_or_default();
                Ok(s.completion_time.is_some().then_some(s))
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(3)).await; // anything extra would show up now
            let live = pods.list(&ListParams::default()).await?.items.len();
            let ever = seen.count();
            println!(
                "etcd compacted at revision {compacted}; kube-apiserver down and back in {outage:.1} s with {at_kill}/{replicas} pods on v2: \
                 {live} live, {ever} ever created (want {}); ImagePullJob succeeded {:?}, failed {:?}",
                2 * replicas,
                st.succeeded,
                st.failed
            );
            ensure!(at_kill < replicas, "the API server was killed after the rollout had finished");
            ensure!(live == replicas, "{live} pods live, {replicas} wanted");
            ensure!(ever == 2 * replicas, "{ever} pods ever created; each of {replicas} replaced once = {}", 2 * replicas);
            ensure!(st.succeeded == Some(1) && st.failed.unwrap_or(0) == 0, "ImagePullJob: {st:?}");
            Ok(())
        }
    })
    .await
}
