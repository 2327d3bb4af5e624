//! Hostile input never takes the manager down: a SidecarSet whose resourcesPolicy expression is
//! 14 KB of nested parentheses (it overflowed the webhook's stack and aborted the whole manager) is
//! refused by the CRD schema through the API server, and refused by the webhook itself when sent
//! to it directly; the manager then still answers and injects other pods.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kruise_e2e::{Env, env_or_skip, pod_on_node, with_temp_ns};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

fn hostile(name: &str, app: &str) -> serde_json::Value {
    let deep = format!("{}cpu{}", "(".repeat(14_000), ")".repeat(14_000));
    json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": app}},
                 "containers": [{"name": "hostile", "image": "example.test/sidecar:v1",
                                 "resourcesPolicy": {"targetContainersMode": "sum",
                                                     "resourcesExpr": {"limits": {"cpu": deep}}}}]}
    })
}

/// POSTs an AdmissionReview for `object` straight to the manager's validating webhook.
fn review_directly(env: &Env, object: &serde_json::Value) -> Result<serde_json::Value> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "hostile-1",
            "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "SidecarSet"},
            "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "sidecarsets"},
            "name": object["metadata"]["name"], "operation": "CREATE", "userInfo": {},
            "object": object, "dryRun": true
        }
    });
    let body = std::env::temp_dir().join(format!("kruise-rs-hostile-{}.json", std::process::id()));
    std::fs::write(&body, review.to_string())?;
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", env.get("E2E_CA")?])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg("https://127.0.0.1:9443/validate-apps-kruise-io-v1alpha1-sidecarset")
        .output()
        .context("run curl")?;
    let _ = std::fs::remove_file(&body);
    ensure!(
        out.status.success(),
        "the webhook did not answer the hostile review: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn manager_healthy() -> bool {
    std::process::Command::new("curl")
        .args(["-fs", "--max-time", "5", "http://127.0.0.1:8000/healthz"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn hostile_sidecarset_is_refused_and_the_manager_keeps_injecting() -> Result<()> {
    let Some(env) = env_or_skip("hostile_sidecarset") else {
        return Ok(());
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        eprintln!("SKIP hostile_sidecarset: the suite is not running");
        return Ok(());
    }
    let client = env.client().await?;
    let name = format!("hostile-{}", std::process::id());
    let app = format!("hostile-{}", std::process::id());
    let object = hostile(&name, &app);

    // through the API server: the schema refuses it, naming the field
    let ss: SidecarSet = serde_json::from_value(object.clone())?;
    let sets: Api<SidecarSet> = Api::all(client.clone());
    let err = sets
        .create(&PostParams::default(), &ss)
        .await
        .expect_err("the hostile SidecarSet was stored");
    let msg = err.to_string();
    ensure!(
        msg.contains("resourcesExpr.limits.cpu"),
        "the refusal does not name the field: {msg}"
    );

    // straight to the webhook, three times (as if the schema had let it through): refused with a
    // message, and the manager is still there each time
    for _ in 0..3 {
        let answer = review_directly(&env, &object)?;
        let response = &answer["response"];
        ensure!(
            response["allowed"] == json!(false),
            "the webhook admitted the hostile SidecarSet: {answer}"
        );
        let text = response["status"]["message"].as_str().unwrap_or_default();
        ensure!(
            text.contains("resourcesExpr.limits.cpu"),
            "the webhook's refusal does not name the field: {text}"
        );
        ensure!(
            manager_healthy(),
            "the manager stopped answering after the hostile review"
        );
    }

    // and it still injects: a SidecarSet and a pod it selects
    let good: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": format!("{name}-ok")},
        "spec": {"selector": {"matchLabels": {"app": app}},
                 "containers": [{"name": "still-here", "image": "example.test/sidecar:v1"}]}
    }))?;
    sets.create(&PostParams::default(), &good).await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let res = with_temp_ns(&client, "hostile", |client, ns| async move {
        let mut p = pod_on_node("after-hostile", &node, "example.test/app:v1", false);
        p.metadata.labels = Some([("app".to_string(), app.clone())].into());
        let created = Api::<Pod>::namespaced(client, &ns)
            .create(&PostParams::default(), &p)
            .await?;
        let names: Vec<String> = created
            .spec
            .unwrap_or_default()
            .containers
            .into_iter()
            .map(|c| c.name)
            .collect();
        ensure!(
            names.iter().any(|n| n == "still-here"),
            "the pod created after the hostile review was not injected: {names:?}"
        );
        Ok(())
    })
    .await;
    let _ = sets
        .delete(&format!("{name}-ok"), &DeleteParams::default())
        .await;
    res
}
