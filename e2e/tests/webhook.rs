//! The admission webhook through the real API server: SidecarSet injection at pod creation
//! (including hot upgrade), pods no SidecarSet selects left alone, and validation refusals that name
//! the field. Needs `e2e/cluster suite up` (the test command runs it).
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kruise_e2e::{Env, env_or_skip, pod_on_node, wait_running, with_temp_ns};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::Duration;

fn suite_running(env: &Env, test: &str) -> bool {
    let up = env.get("E2E_SUITE").map(|v| v == "1").unwrap_or(false);
    if !up {
        eprintln!("SKIP {test}: the suite is not running (e2e/cluster suite up)");
    }
    up
}

fn sidecarset(name: &str, spec: serde_json::Value) -> SidecarSet {
    serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// Creates the SidecarSet and waits until the pod webhook's match condition covers `label_value`.
async fn create_sidecarset(client: &Client, ss: &SidecarSet, label_value: &str) -> Result<()> {
    kruise_e2e::create_sidecarset_and_wait(client, ss, label_value).await
}

async fn delete_sidecarset(client: &Client, name: &str) {
    let _ = Api::<SidecarSet>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

fn labelled(mut pod: Pod, key: &str, value: &str) -> Pod {
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    pod
}

fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a String> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key))
}

#[tokio::test]
async fn sidecar_is_injected_into_selected_pods_only() -> Result<()> {
    let Some(env) = env_or_skip("sidecar_is_injected") else {
        return Ok(());
    };
    if !suite_running(&env, "sidecar_is_injected") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let tag = format!("inject-{}", std::process::id());
    let ss = sidecarset(
        &tag,
        json!({
            "selector": {"matchLabels": {"e2e-inject": tag}},
            "containers": [{"name": "log-agent", "image": "example.test/agent:v1", "podInjectPolicy": "AfterAppContainer",
                            "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]}],
            "volumes": [{"name": "logs", "emptyDir": {}}]
        }),
    );
    create_sidecarset(&client, &ss, &tag).await?;
    let res = with_temp_ns(&client, "inject", |client, ns| {
        let (tag, node) = (tag.clone(), node.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client, &ns);
            let selected = labelled(
                pod_on_node("selected", &node, "example.test/app:v1", false),
                "e2e-inject",
                &tag,
            );
            let created = pods.create(&PostParams::default(), &selected).await?;
            ensure!(
                container_names(&created) == ["main", "log-agent"],
                "containers {:?}",
                container_names(&created)
            );
            let sidecar = &created.spec.as_ref().unwrap().containers[1];
            ensure!(
                sidecar
                    .env
                    .iter()
                    .flatten()
                    .any(|e| e.name == "IS_INJECTED" && e.value.as_deref() == Some("true"))
            );
            ensure!(
                created
                    .spec
                    .as_ref()
                    .unwrap()
                    .volumes
                    .iter()
                    .flatten()
                    .any(|v| v.name == "logs")
            );
            let list = annotation(&created, "kruise.io/sidecarset-injected-list")
                .context("no injected-list")?;
            ensure!(list == &tag, "injected list {list}");
            let hash: serde_json::Value = serde_json::from_str(
                annotation(&created, "kruise.io/sidecarset-hash").context("no hash annotation")?,
            )?;
            ensure!(
                hash[&tag]["sidecarList"] == json!(["log-agent"]),
                "hash annotation {hash}"
            );
            ensure!(hash[&tag]["hash"].as_str().is_some_and(|h| h.len() == 64));

            let other = labelled(
                pod_on_node("other", &node, "example.test/app:v1", false),
                "e2e-inject",
                "someone-else",
            );
            let created = pods.create(&PostParams::default(), &other).await?;
            ensure!(
                container_names(&created) == ["main"],
                "an unselected pod was changed"
            );
            ensure!(annotation(&created, "kruise.io/sidecarset-hash").is_none());
            wait_running(&pods, "selected", Duration::from_secs(60)).await?;
            Ok(())
        }
    })
    .await;
    delete_sidecarset(&client, &tag).await;
    res
}

#[tokio::test]
async fn hot_upgrade_sidecar_is_injected_as_a_pair() -> Result<()> {
    let Some(env) = env_or_skip("hot_upgrade_pair") else {
        return Ok(());
    };
    if !suite_running(&env, "hot_upgrade_pair") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let tag = format!("hot-{}", std::process::id());
    let ss = sidecarset(
        &tag,
        json!({
            "selector": {"matchLabels": {"e2e-hot": tag}},
            "containers": [{"name": "proxy", "image": "example.test/proxy:v1",
                            "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "example.test/empty:v1"}}]
        }),
    );
    create_sidecarset(&client, &ss, &tag).await?;
    let res = with_temp_ns(&client, "hot", |client, ns| {
        let (tag, node) = (tag.clone(), node.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client, &ns);
            let pod = labelled(
                pod_on_node("app", &node, "example.test/app:v1", false),
                "e2e-hot",
                &tag,
            );
            let created = pods.create(&PostParams::default(), &pod).await?;
            let spec = created.spec.as_ref().unwrap();
            let names = container_names(&created);
            ensure!(
                names == ["proxy-1", "proxy-2", "main"],
                "containers {names:?}"
            );
            ensure!(spec.containers[0].image.as_deref() == Some("example.test/proxy:v1"));
            ensure!(spec.containers[1].image.as_deref() == Some("example.test/empty:v1"));
            let env_of = |i: usize, name: &str| {
                spec.containers[i]
                    .env
                    .iter()
                    .flatten()
                    .find(|e| e.name == name)
                    .cloned()
            };
            for i in 0..2 {
                ensure!(
                    env_of(i, "SIDECARSET_VERSION").is_some(),
                    "container {i} lacks SIDECARSET_VERSION"
                );
                ensure!(
                    env_of(i, "SIDECARSET_VERSION_ALT").is_some(),
                    "container {i} lacks SIDECARSET_VERSION_ALT"
                );
            }
            ensure!(
                annotation(&created, "version.sidecarset.kruise.io/proxy-1").map(String::as_str)
                    == Some("1")
            );
            ensure!(
                annotation(&created, "version.sidecarset.kruise.io/proxy-2").map(String::as_str)
                    == Some("0")
            );
            Ok(())
        }
    })
    .await;
    delete_sidecarset(&client, &tag).await;
    res
}

#[tokio::test]
async fn invalid_sidecarset_is_refused_naming_the_field() -> Result<()> {
    let Some(env) = env_or_skip("invalid_sidecarset_refused") else {
        return Ok(());
    };
    if !suite_running(&env, "invalid_sidecarset_refused") {
        return Ok(());
    }
    let client = env.client().await?;
    let name = format!("bad-hot-{}", std::process::id());
    let bad = sidecarset(
        &name,
        json!({
            "selector": {"matchLabels": {"a": "b"}},
            "containers": [{"name": "proxy", "image": "example.test/proxy:v1",
                            "upgradeStrategy": {"upgradeType": "HotUpgrade"}}]
        }),
    );
    let err = Api::<SidecarSet>::all(client.clone())
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("a HotUpgrade sidecar without hotUpgradeEmptyImage was accepted");
    let msg = err.to_string();
    ensure!(
        msg.contains("hotUpgradeEmptyImage"),
        "refusal does not name the field: {msg}"
    );
    let no_selector = sidecarset(
        &name,
        json!({"containers": [{"name": "bad-c", "image": "i"}]}),
    );
    let created = Api::<SidecarSet>::all(client.clone())
        .create(&PostParams::default(), &no_selector)
        .await;
    if created.is_ok() {
        delete_sidecarset(&client, &name).await;
    }
    let err = created.expect_err("a SidecarSet without selector was accepted");
    ensure!(
        err.to_string().contains("spec.selector"),
        "refusal does not name the field: {err}"
    );
    Ok(())
}

#[tokio::test]
async fn injected_sidecar_runs_on_the_real_node() -> Result<()> {
    let Some(env) = env_or_skip("injected_sidecar_runs") else {
        return Ok(());
    };
    if !suite_running(&env, "injected_sidecar_runs") || env.tier() != "kubelet" {
        eprintln!("SKIP injected_sidecar_runs: needs the suite and the kubelet tier");
        return Ok(());
    }
    let client = env.client().await?;
    let node = env.get("E2E_REAL_NODE")?.to_string();
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let tag = format!("real-{}", std::process::id());
    let ss = sidecarset(
        &tag,
        json!({
            "selector": {"matchLabels": {"e2e-real": tag}},
            "containers": [{"name": "sidecar", "image": format!("{registry}/sleeper:v1"), "imagePullPolicy": "IfNotPresent"}]
        }),
    );
    create_sidecarset(&client, &ss, &tag).await?;
    let res = with_temp_ns(&client, "realinject", |client, ns| {
        let (tag, node, registry) = (tag.clone(), node.clone(), registry.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client, &ns);
            let pod = labelled(
                pod_on_node("app", &node, &format!("{registry}/sleeper:v1"), true),
                "e2e-real",
                &tag,
            );
            pods.create(&PostParams::default(), &pod).await?;
            let running = wait_running(&pods, "app", Duration::from_secs(120)).await?;
            let statuses = running.status.unwrap().container_statuses.unwrap();
            ensure!(
                statuses.len() == 2 && statuses.iter().all(|s| s.ready),
                "containers not all ready: {statuses:?}"
            );
            Ok(())
        }
    })
    .await;
    delete_sidecarset(&client, &tag).await;
    res
}

#[tokio::test]
async fn kubectl_shows_a_readable_refusal() -> Result<()> {
    let Some(env) = env_or_skip("kubectl_refusal") else {
        return Ok(());
    };
    if !suite_running(&env, "kubectl_refusal") {
        return Ok(());
    }
    let manifest = r#"
apiVersion: apps.kruise.io/v1alpha1
kind: SidecarSet
metadata:
  name: kubectl-refused
spec:
  selector:
    matchLabels:
      app: kubectl-refused
  containers:
  - name: refused-proxy
    image: example.test/proxy:v1
    upgradeStrategy:
      upgradeType: HotUpgrade
"#;
    use std::io::Write;
    let mut child = std::process::Command::new(env.get("E2E_KUBECTL")?)
        .args(["--kubeconfig", env.get("KUBECONFIG")?, "apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(manifest.as_bytes())?;
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let client = env.client().await?;
        delete_sidecarset(&client, "kubectl-refused").await;
    }
    ensure!(
        !out.status.success(),
        "kubectl accepted an invalid SidecarSet"
    );
    ensure!(
        stderr.contains("spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage"),
        "kubectl's message does not name the field: {stderr}"
    );
    eprintln!("kubectl said: {stderr}");
    Ok(())
}

/// The sum of the samples of `metric` whose labels contain `label` on the manager's `/metrics`.
fn manager_metric(metric: &str, label: &str) -> Result<f64> {
    let out = std::process::Command::new("curl")
        .args(["-fs", "http://127.0.0.1:8000/metrics"])
        .output()?;
    ensure!(
        out.status.success(),
        "the manager's /metrics did not answer"
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// The README's promise: the manager serves Prometheus metrics with controller-runtime's names on
/// its health port, counting admission requests and reconciles.
#[tokio::test]
async fn manager_metrics_count_admissions_and_reconciles() -> Result<()> {
    let Some(env) = env_or_skip("manager_metrics") else {
        return Ok(());
    };
    if !suite_running(&env, "manager_metrics") {
        return Ok(());
    }
    let client = env.client().await?;
    let path = r#"webhook="/validate-apps-kruise-io-v1alpha1-sidecarset""#;
    let before = manager_metric("controller_runtime_webhook_latency_seconds_count", path)?;
    let name = format!("metrics-{}", std::process::id());
    let ss = sidecarset(
        &name,
        json!({"selector": {"matchLabels": {"e2e-metrics": name}},
               "containers": [{"name": "metrics-agent", "image": "example.test/agent:v1"}]}),
    );
    let res = async {
        create_sidecarset(&client, &ss, &name).await?;
        kruise_e2e::wait_for(
            "the admission and a SidecarSet reconcile in /metrics",
            Duration::from_secs(30),
            || async {
                let admitted =
                    manager_metric("controller_runtime_webhook_latency_seconds_count", path)?;
                let reconciled =
                    manager_metric("controller_runtime_reconcile_total", r#"result="success""#)?;
                let sidecarset =
                    manager_metric("controller_runtime_reconcile_total", "sidecarset")?;
                Ok((admitted > before && reconciled > 0.0 && sidecarset > 0.0).then_some(()))
            },
        )
        .await
    }
    .await;
    delete_sidecarset(&client, &name).await;
    res
}
