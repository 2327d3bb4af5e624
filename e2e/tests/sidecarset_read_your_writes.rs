//! Read your own writes (spec decision 1): once the create or update of a SidecarSet has returned,
//! every pod created after it that the SidecarSet selects is injected — with no wait in between.
//! The common case: a SidecarSet and the workload it selects in one `kubectl apply -f`.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kruise_e2e::{Env, env_or_skip, wait_for, with_temp_ns};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::{Duration, Instant};

fn suite(env: &Env, test: &str) -> bool {
    let up = env.get("E2E_SUITE").is_ok_and(|v| v == "1");
    if !up {
        eprintln!("SKIP {test}: the suite is not running");
    }
    up
}

fn kwok_node(env: &Env) -> Result<String> {
    env.list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")
}

/// `kubectl apply -f FILE` of `docs` (JSON objects, one YAML stream), once.
fn kubectl_apply(env: &Env, docs: &[serde_json::Value]) -> Result<()> {
    // one file per apply: the tests of this file run in parallel in one process, and a shared
    // path let one test apply the other's objects
    let dir = std::env::temp_dir().join(format!("kruise-rs-ryw-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let first = docs
        .first()
        .and_then(|d| d["metadata"]["name"].as_str())
        .context("the first object has no name")?;
    let file = dir.join(format!("{first}.yaml"));
    let body: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    std::fs::write(&file, body.join("\n---\n"))?;
    let out = std::process::Command::new(env.get("E2E_KUBECTL")?)
        .args(["--kubeconfig", env.get("KUBECONFIG")?, "apply", "-f"])
        .arg(&file)
        .output()
        .context("run kubectl apply")?;
    ensure!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn sidecarset(name: &str, app: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut container = json!({"name": format!("{name}-sc"), "image": "example.test/sidecar:v1"});
    if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": app}}, "containers": [container]}
    })
}

fn pod_template(app: &str, node: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "example.test/app:v1",
                            "resources": {"limits": {"cpu": "200m", "memory": "200Mi"},
                                          "requests": {"cpu": "100m", "memory": "100Mi"}}}]
        }
    })
}

/// Waits for `n` pods labelled app=`app` and returns them.
async fn pods_of(pods: &Api<Pod>, app: &str, n: usize) -> Result<Vec<Pod>> {
    wait_for(
        &format!("{n} pods app={app}"),
        Duration::from_secs(60),
        || async {
            let l = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await?;
            Ok((l.items.len() >= n).then_some(l.items))
        },
    )
    .await
}

fn has_sidecar(p: &Pod, sidecar: &str) -> bool {
    p.spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().any(|c| c.name == sidecar))
}

fn uninjected(pods: &[Pod], sidecar: &str) -> Vec<String> {
    pods.iter()
        .filter(|p| !has_sidecar(p, sidecar))
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

async fn delete_sidecarset(client: &Client, name: &str) {
    let _ = Api::<SidecarSet>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn sidecarset_and_deployment_in_one_apply_inject_every_pod_20_times() -> Result<()> {
    let Some(env) = env_or_skip("ryw_deployment") else {
        return Ok(());
    };
    if !suite(&env, "ryw_deployment") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = kwok_node(&env)?;
    with_temp_ns(&client, "ryw-deploy", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut failures = Vec::new();
        for i in 0..20 {
            let name = format!("{ns}-d{i}");
            let app = format!("ryw-d{i}");
            let deploy = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": app, "namespace": ns},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": app}},
                         "template": pod_template(&app, &node)}
            });
            kubectl_apply(&env, &[sidecarset(&name, &app, json!({})), deploy])?;
            let got = pods_of(&pods, &app, 3).await?;
            let missing = uninjected(&got, &format!("{name}-sc"));
            if !missing.is_empty() {
                failures.push(format!("run {i}: {missing:?} without the sidecar"));
            }
            delete_sidecarset(&client, &name).await;
        }
        ensure!(failures.is_empty(), "pods not injected: {failures:?}");
        eprintln!("20 of 20 runs: every Deployment pod injected");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn sidecarset_with_resources_policy_and_cloneset_in_one_apply_inject_every_pod() -> Result<()>
{
    let Some(env) = env_or_skip("ryw_cloneset") else {
        return Ok(());
    };
    if !suite(&env, "ryw_cloneset") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = kwok_node(&env)?;
    with_temp_ns(&client, "ryw-cs", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut failures = Vec::new();
        for i in 0..20 {
            let name = format!("{ns}-c{i}");
            let app = format!("ryw-c{i}");
            let policy = json!({"resourcesPolicy": {
                "targetContainersMode": "sum",
                "resourcesExpr": {"limits": {"cpu": "max(cpu*50%, 50m)", "memory": "memory*25%"}}
            }});
            let cs = json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                "metadata": {"name": app, "namespace": ns},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": app}},
                         "template": pod_template(&app, &node)}
            });
            kubectl_apply(&env, &[sidecarset(&name, &app, policy), cs])?;
            let got = pods_of(&pods, &app, 3).await?;
            let sidecar = format!("{name}-sc");
            let missing = uninjected(&got, &sidecar);
            if !missing.is_empty() {
                failures.push(format!("run {i}: {missing:?} without the sidecar"));
            }
            for p in &got {
                let Some(c) = p.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == sidecar)) else {
                    continue;
                };
                let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
                let cpu = limits.get("cpu").map(|q| q.0.clone());
                let mem = limits.get("memory").map(|q| q.0.clone());
                // 50% of the app's 200m, 25% of its 200Mi
                if cpu.as_deref() != Some("100m") || mem.as_deref() != Some("50Mi") {
                    failures.push(format!(
                        "run {i}: pod {:?} sidecar limits cpu {cpu:?} memory {mem:?}, want 100m and 50Mi",
                        p.metadata.name
                    ));
                }
            }
            delete_sidecarset(&client, &name).await;
        }
        ensure!(failures.is_empty(), "{failures:?}");
        eprintln!("20 of 20 runs: every CloneSet pod injected with the computed limits");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pod_created_right_after_create_or_widening_update_is_injected() -> Result<()> {
    let Some(env) = env_or_skip("ryw_bare_pod") else {
        return Ok(());
    };
    if !suite(&env, "ryw_bare_pod") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = kwok_node(&env)?;
    let sets: Api<SidecarSet> = Api::all(client.clone());
    with_temp_ns(&client, "ryw-pod", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut create_ms = Vec::new();
        let mut update_ms = Vec::new();
        let mut failures = Vec::new();
        let pod = |name: &str, app: &str| -> Result<Pod> {
            let mut t = pod_template(app, &node);
            t["apiVersion"] = json!("v1");
            t["kind"] = json!("Pod");
            t["metadata"]["name"] = json!(name);
            Ok(serde_json::from_value(t)?)
        };
        for i in 0..20 {
            let name = format!("{ns}-p{i}");
            let app = format!("ryw-p{i}");
            let ss: SidecarSet = serde_json::from_value(sidecarset(&name, &app, json!({})))?;
            let t = Instant::now();
            sets.create(&PostParams::default(), &ss).await?;
            create_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            // no wait: the create has returned
            let p = pods.create(&PostParams::default(), &pod(&format!("a{i}"), &app)?).await?;
            if !has_sidecar(&p, &format!("{name}-sc")) {
                failures.push(format!("run {i}: pod a{i} created right after the SidecarSet was not injected"));
            }
            // widen: app in (ryw-pI, ryw-pI-wide)
            let wide = format!("{app}-wide");
            let patch = json!({"spec": {"selector": {"matchLabels": null, "matchExpressions": [
                {"key": "app", "operator": "In", "values": [app, wide]}]}}});
            let t = Instant::now();
            sets.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            update_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let p = pods.create(&PostParams::default(), &pod(&format!("b{i}"), &wide)?).await?;
            if !has_sidecar(&p, &format!("{name}-sc")) {
                failures.push(format!("run {i}: pod b{i} created right after the selector was widened was not injected"));
            }
            delete_sidecarset(&client, &name).await;
        }
        let pct = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() as f64 - 1.0) * q).round() as usize]
        };
        eprintln!(
            "{{\"sidecarset_create_ms\": {{\"p50\": {:.1}, \"max\": {:.1}}}, \"sidecarset_widening_update_ms\": {{\"p50\": {:.1}, \"max\": {:.1}}}, \"runs\": 20}}",
            pct(&mut create_ms, 0.5),
            pct(&mut create_ms, 1.0),
            pct(&mut update_ms, 0.5),
            pct(&mut update_ms, 1.0)
        );
        if !failures.is_empty() {
            bail!("{failures:?}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unchanged_selector_update_and_dry_run_do_not_wait() -> Result<()> {
    let Some(env) = env_or_skip("ryw_no_fence") else {
        return Ok(());
    };
    if !suite(&env, "ryw_no_fence") {
        return Ok(());
    }
    let client = env.client().await?;
    let sets: Api<SidecarSet> = Api::all(client.clone());
    let name = format!("ryw-nofence-{}", std::process::id());
    let ss: SidecarSet = serde_json::from_value(sidecarset(&name, "ryw-nofence", json!({})))?;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    sets.create(&dry, &ss).await?;
    ensure!(
        sets.get_opt(&name).await?.is_none(),
        "a dry-run create stored the SidecarSet"
    );
    sets.create(&PostParams::default(), &ss).await?;
    // an image change routes no new pod: no fence (it still returns, and the routing keeps the set)
    let patch = json!({"spec": {"containers": [{"name": format!("{name}-sc"), "image": "example.test/sidecar:v2"}]}});
    let res = sets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    delete_sidecarset(&client, &name).await;
    res?;
    Ok(())
}

/// Creates `ss` (retrying while no webhook answers: the manager is restarting), then at once a pod
/// it selects; returns whether the pod was injected.
async fn create_then_pod(
    client: &Client,
    ns: &str,
    node: &str,
    ss: &SidecarSet,
    app: &str,
) -> Result<bool> {
    let sets: Api<SidecarSet> = Api::all(client.clone());
    let name = ss.metadata.name.clone().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match sets.create(&PostParams::default(), ss).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("SidecarSet {name} not admitted yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut t = pod_template(app, node);
    t["apiVersion"] = json!("v1");
    t["kind"] = json!("Pod");
    t["metadata"]["name"] = json!(format!("pod-{name}"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p = pods
        .create(&PostParams::default(), &serde_json::from_value(t)?)
        .await?;
    Ok(has_sidecar(&p, &format!("{name}-sc")))
}

#[tokio::test]
#[ignore = "disruptive: runs a second manager replica and kills the leader; e2e/faults runs it alone"]
async fn two_replicas_and_a_killed_leader_keep_read_your_writes() -> Result<()> {
    let Some(env) = env_or_skip("ryw_two_replicas") else {
        return Ok(());
    };
    if !suite(&env, "ryw_two_replicas") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = kwok_node(&env)?;
    let original = kruise_e2e::Recorded::find(&env, "manager", "kruise-manager")?;
    // a second replica: controllers behind the Lease, webhook on another port, and the same
    // configuration writer (its loop races the first replica's fences)
    let mut second = original
        .with_arg("--health-addr", "127.0.0.1:8002")?
        .with_arg("--webhook-bind", "127.0.0.1:9444")?
        .as_named(&env, "manager-2")?;
    second.restart()?;
    let stop_second = scopeguard(second.clone());
    wait_for(
        "the second replica ready",
        Duration::from_secs(60),
        || async {
            let ok = std::process::Command::new("curl")
                .args(["-fs", "http://127.0.0.1:8002/readyz"])
                .output()
                .is_ok_and(|o| o.status.success());
            Ok(ok.then_some(()))
        },
    )
    .await?;
    let mut heal = kruise_e2e::Heal(original);
    let res = with_temp_ns(&client, "ryw-2r", |client, ns| {
        let heal = &mut heal;
        async move {
            let mut failures = Vec::new();
            for i in 0..10 {
                let name = format!("{ns}-r{i}");
                let app = format!("ryw-r{i}");
                let ss: SidecarSet = serde_json::from_value(sidecarset(&name, &app, json!({})))?;
                if !create_then_pod(&client, &ns, &node, &ss, &app).await? {
                    failures.push(format!("two replicas, run {i}: not injected"));
                }
                delete_sidecarset(&client, &name).await;
            }
            for i in 0..5 {
                // kill -9 the replica the API server calls, and start it again at once
                heal.0.kill().await?;
                heal.0.restart()?;
                let name = format!("{ns}-k{i}");
                let app = format!("ryw-k{i}");
                let ss: SidecarSet = serde_json::from_value(sidecarset(&name, &app, json!({})))?;
                if !create_then_pod(&client, &ns, &node, &ss, &app).await? {
                    failures.push(format!("after kill -9, run {i}: not injected"));
                }
                delete_sidecarset(&client, &name).await;
            }
            ensure!(failures.is_empty(), "{failures:?}");
            eprintln!(
                "two replicas: 10 of 10 injected; replica killed and restarted: 5 of 5 injected"
            );
            Ok(())
        }
    })
    .await;
    drop(stop_second);
    let ready = wait_for(
        "the manager ready again",
        Duration::from_secs(60),
        || async {
            let ok = std::process::Command::new("curl")
                .args(["-fs", "http://127.0.0.1:8000/readyz"])
                .output()
                .is_ok_and(|o| o.status.success());
            Ok(ok.then_some(()))
        },
    )
    .await;
    res?;
    ready
}

/// Kills the second replica and forgets its pid file when dropped.
struct StopSecond(kruise_e2e::Recorded);
impl Drop for StopSecond {
    fn drop(&mut self) {
        self.0.signal("-KILL");
        self.0.forget();
    }
}
fn scopeguard(r: kruise_e2e::Recorded) -> StopSecond {
    StopSecond(r)
}
