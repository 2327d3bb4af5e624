//! Security properties checked against the running suite:
//! - the webhook speaks TLS 1.2 and 1.3 and refuses TLS 1.1 (an alert from the server, not the client);
//! - no Secret value (registry password, its base64 forms) appears in any log of a run that pulled
//!   with a pull secret.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kruise_crds::ImagePullJob;
use kruise_e2e::{Env, env_or_skip, wait_for, with_temp_ns};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

fn suite(env: &Env, test: &str) -> bool {
    let ok = env.get("E2E_SUITE").map(|v| v == "1").unwrap_or(false);
    if !ok {
        eprintln!("SKIP {test}: the suite is not running");
    }
    ok
}

/// `openssl s_client` against the suite's webhook with one protocol version; returns its output.
fn handshake(version_flag: &str) -> Result<(bool, String)> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            "127.0.0.1:9443",
            "-servername",
            "127.0.0.1",
            version_flag,
            // let the client offer old protocols at all, so a refusal can only be the server's
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .context("run openssl s_client")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "New, TLSv1.3, Cipher is ..." on success; "New, (NONE), Cipher is (NONE)" when refused
    let negotiated = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    Ok((negotiated, text))
}

#[tokio::test]
async fn webhook_accepts_tls12_and_tls13_only() -> Result<()> {
    let Some(env) = env_or_skip("webhook_tls_versions") else {
        return Ok(());
    };
    if !suite(&env, "webhook_tls_versions") {
        return Ok(());
    }
    for flag in ["-tls1_2", "-tls1_3"] {
        let (ok, text) = handshake(flag)?;
        ensure!(ok, "{flag} was refused:\n{text}");
        println!("{flag}: negotiated");
    }
    let (ok, text) = handshake("-tls1_1")?;
    ensure!(!ok, "TLS 1.1 was negotiated:\n{text}");
    // an alert read from the peer (ssl3_read_bytes) is the server's refusal, not the client's
    let alert = text
        .lines()
        .find(|l| l.contains("ssl3_read_bytes") && l.contains("alert"))
        .with_context(|| format!("TLS 1.1 failed, but not by an alert from the server:\n{text}"))?;
    println!("-tls1_1: refused by the server: {alert}");
    Ok(())
}

#[tokio::test]
async fn no_secret_value_appears_in_any_log() -> Result<()> {
    let Some(env) = env_or_skip("no_secret_in_logs") else {
        return Ok(());
    };
    if !suite(&env, "no_secret_in_logs") || env.tier() == "kwok" {
        return Ok(());
    }
    let client = env.client().await?;
    let registry = env.get("E2E_AUTH_REGISTRY")?.to_string();
    let user = env.get("E2E_AUTH_REGISTRY_USER")?.to_string();
    let password = env.get("E2E_AUTH_REGISTRY_PASSWORD")?.to_string();
    let node = env
        .list("E2E_CRI_NODES")
        .into_iter()
        .last()
        .context("no CRI node")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let auth = b64.encode(format!("{user}:{password}"));
    let config =
        json!({"auths": {&registry: {"username": user, "password": password, "auth": auth}}});
    let config_b64 = b64.encode(config.to_string());
    // a pull that needs the secret, so the manager copies it and the daemon uses it
    with_temp_ns(&client, "nosecretlog", |client, ns| {
        let (registry, node, config) = (registry.clone(), node.clone(), config.clone());
        async move {
            let mut s = Secret {
                type_: Some("kubernetes.io/dockerconfigjson".into()),
                ..Default::default()
            };
            s.metadata.name = Some("regcred".into());
            s.data = Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(config.to_string().into_bytes()),
                )]
                .into(),
            );
            Api::<Secret>::namespaced(client.clone(), &ns)
                .create(&PostParams::default(), &s)
                .await?;
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let job: ImagePullJob = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                "metadata": {"name": "private"},
                "spec": {"image": format!("{registry}/private/sleeper:v1"), "imagePullPolicy": "Always",
                         "pullSecrets": ["regcred"], "selector": {"names": [node]},
                         "completionPolicy": {"type": "Always"}}
            }))?;
            jobs.create(&PostParams::default(), &job).await?;
            let st = wait_for("the private pull", Duration::from_secs(180), || async {
                let s = jobs.get("private").await?.status.unwrap_or_default();
                Ok(s.completion_time.is_some().then_some(s))
            })
            .await?;
            ensure!(st.succeeded == Some(1), "private pull: {st:?}");
            Ok(())
        }
    })
    .await?;
    let needles = [password.clone(), auth.clone(), config_b64.clone()];
    let dir = format!("{}/logs", env.get("E2E_DIR")?);
    let mut scanned = 0usize;
    let mut bytes = 0usize;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        // registries log their own htpasswd user, never a password; every other process must not either
        for n in &needles {
            ensure!(
                !text.contains(n.as_str()),
                "{} contains a Secret value",
                path.display()
            );
        }
        scanned += 1;
        bytes += text.len();
    }
    ensure!(scanned > 0, "no logs found in {dir}");
    println!(
        "scanned {scanned} logs ({} KiB) in {dir}: no password, auth or dockerconfigjson value",
        bytes / 1024
    );
    Ok(())
}
