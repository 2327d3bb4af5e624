//! Image warm-up on real containerd nodes: ImagePullJob → NodeImage → kruise-daemon → CRI PullImage,
//! checked through the API (job and NodeImage status) and through each node's own CRI ListImages.
//! Needs the `cri` tier or above and the suite.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_cri::v1::ListImagesRequest;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kruise_crds::{ImagePullJob, NodeImage};
use kruise_e2e::{Env, env_or_skip, wait_for, with_temp_ns};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use std::time::Duration;

fn ready(env: &Env, test: &str) -> bool {
    let suite = env.get("E2E_SUITE").map(|v| v == "1").unwrap_or(false);
    let cri = !env.cri_endpoints().is_empty();
    if !(suite && cri) {
        eprintln!(
            "SKIP {test}: needs the suite and CRI nodes (tier {})",
            env.tier()
        );
    }
    suite && cri
}

fn job(name: &str, spec: serde_json::Value) -> ImagePullJob {
    serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn cri_selector() -> serde_json::Value {
    json!({"matchLabels": {"kruise-rs.e2e/cri": "true"}})
}

/// Waits until the job has a completionTime and returns it.
async fn wait_finished(
    jobs: &Api<ImagePullJob>,
    name: &str,
    timeout: Duration,
) -> Result<ImagePullJob> {
    wait_for(
        &format!("ImagePullJob {name} to finish"),
        timeout,
        || async {
            let j = jobs.get(name).await?;
            Ok(j.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .is_some()
                .then_some(j))
        },
    )
    .await
}

/// Image references (tags and digests) present in the containerd at `endpoint`.
async fn cri_images(endpoint: &str) -> Result<Vec<String>> {
    let path = endpoint.trim_start_matches("unix://").to_string();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await?;
    let images = ImageServiceClient::new(channel)
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner()
        .images;
    Ok(images
        .into_iter()
        .flat_map(|i| i.repo_tags.into_iter().chain(i.repo_digests))
        .collect())
}

#[tokio::test]
async fn job_pulls_onto_every_cri_node_and_cri_shows_it() -> Result<()> {
    let Some(env) = env_or_skip("job_pulls_onto_every_cri_node") else {
        return Ok(());
    };
    if !ready(&env, "job_pulls_onto_every_cri_node") {
        return Ok(());
    }
    let client = env.client().await?;
    let image = format!("{}/big:v1", env.get("E2E_REGISTRY")?);
    let nodes = env.list("E2E_CRI_NODES");
    let endpoints = env.cri_endpoints();
    with_temp_ns(&client, "pullall", |client, ns| async move {
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
        let spec = json!({"image": image, "selector": cri_selector(), "parallelism": 4,
                          "pullPolicy": {"backoffLimit": 3, "timeoutSeconds": 300},
                          "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}});
        jobs.create(&PostParams::default(), &job("all", spec))
            .await?;
        let done = wait_finished(&jobs, "all", Duration::from_secs(240)).await?;
        let st = done.status.unwrap();
        ensure!(
            st.desired == nodes.len() as i32,
            "desired {} for {} CRI nodes",
            st.desired,
            nodes.len()
        );
        ensure!(
            st.succeeded == Some(st.desired),
            "succeeded {:?} of {}: {:?}",
            st.succeeded,
            st.desired,
            st.message
        );
        ensure!(
            st.failed.unwrap_or(0) == 0,
            "failed nodes {:?}",
            st.failed_nodes
        );
        for ep in &endpoints {
            let imgs = cri_images(ep).await?;
            ensure!(
                imgs.iter().any(|i| i == &image),
                "{ep} does not list {image}: {imgs:?}"
            );
        }
        // every CRI node's NodeImage reports the tag Succeeded with a digest image ID
        let nis: Api<NodeImage> = Api::all(client);
        for node in &nodes {
            let ni = nis.get(node).await?;
            let status = serde_json::to_value(ni.status.unwrap_or_default())?;
            let repo = image.rsplit_once(':').unwrap().0;
            let tag = &status["imageStatuses"][repo]["tags"][0];
            ensure!(tag["phase"] == "Succeeded", "NodeImage {node}: {tag}");
            ensure!(
                tag["imageID"]
                    .as_str()
                    .is_some_and(|s| s.contains("@sha256:")),
                "NodeImage {node}: {tag}"
            );
        }
        Ok(())
    })
    .await
}

fn docker_config_secret(name: &str, registry: &str, user: &str, password: &str) -> Secret {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let cfg = json!({"auths": {registry: {"username": user, "password": password, "auth": auth}}});
    let mut s = Secret {
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        ..Default::default()
    };
    s.metadata.name = Some(name.into());
    s.data = Some(
        [(
            ".dockerconfigjson".to_string(),
            ByteString(cfg.to_string().into_bytes()),
        )]
        .into(),
    );
    s
}

#[tokio::test]
async fn private_registry_needs_the_pull_secret() -> Result<()> {
    let Some(env) = env_or_skip("private_registry_needs_the_pull_secret") else {
        return Ok(());
    };
    if !ready(&env, "private_registry_needs_the_pull_secret") {
        return Ok(());
    }
    let client = env.client().await?;
    let registry = env.get("E2E_AUTH_REGISTRY")?.to_string();
    let (user, password) = (
        env.get("E2E_AUTH_REGISTRY_USER")?.to_string(),
        env.get("E2E_AUTH_REGISTRY_PASSWORD")?.to_string(),
    );
    let node = env
        .list("E2E_CRI_NODES")
        .into_iter()
        .last()
        .context("no CRI node")?;
    let image = format!("{registry}/private/sleeper:v1");
    with_temp_ns(&client, "pullauth", |client, ns| async move {
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
        // Always re-pull, so an image left by another test cannot make the secret-less job pass.
        let base = json!({"image": image, "selector": {"names": [node]}, "imagePullPolicy": "Always",
                          "pullPolicy": {"backoffLimit": 1, "timeoutSeconds": 60},
                          "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 300}});
        jobs.create(&PostParams::default(), &job("nosecret", base.clone())).await?;
        let failed = wait_finished(&jobs, "nosecret", Duration::from_secs(180)).await?.status.unwrap();
        ensure!(failed.failed == Some(1) && failed.succeeded.unwrap_or(0) == 0, "without secret: {failed:?}");
        let msg = failed.message.clone().unwrap_or_default().to_lowercase();
        let ni = serde_json::to_string(&Api::<NodeImage>::all(client.clone()).get(&node).await?.status)?.to_lowercase();
        ensure!(
            ["unauthorized", "authentication", "401", "denied"].iter().any(|w| msg.contains(w) || ni.contains(w)),
            "the registry's reason is not reported: job message {msg:?}, NodeImage status {ni}"
        );

        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secrets.create(&PostParams::default(), &docker_config_secret("regcred", &registry, &user, &password)).await?;
        let mut with = base;
        with["pullSecrets"] = json!(["regcred"]);
        jobs.create(&PostParams::default(), &job("withsecret", with)).await?;
        let ok = wait_finished(&jobs, "withsecret", Duration::from_secs(180)).await?.status.unwrap();
        ensure!(ok.succeeded == Some(1), "with secret: {ok:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn digest_pinned_image_on_one_selected_node_and_cleanup_on_delete() -> Result<()> {
    let Some(env) = env_or_skip("digest_pinned_image") else {
        return Ok(());
    };
    if !ready(&env, "digest_pinned_image") {
        return Ok(());
    }
    let client = env.client().await?;
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let nodes = env.list("E2E_CRI_NODES");
    let node = nodes.first().cloned().context("no CRI node")?;
    // resolve sleeper:v2's digest through the registry API
    let digest = std::process::Command::new("curl")
        .args([
            "-fsSI",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!("http://{registry}/v2/sleeper/manifests/v2"))
        .output()?;
    let headers = String::from_utf8_lossy(&digest.stdout).to_string();
    let digest = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("docker-content-digest:")
                .map(|d| d.trim().to_string())
        })
        .context("registry did not return a digest")?;
    let image = format!("{registry}/sleeper@{digest}");
    with_temp_ns(&client, "pulldigest", |client, ns| async move {
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
        let spec = json!({"image": image, "selector": {"names": [node]},
                          "pullPolicy": {"timeoutSeconds": 120},
                          "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 300}});
        jobs.create(&PostParams::default(), &job("digest", spec))
            .await?;
        let st = wait_finished(&jobs, "digest", Duration::from_secs(180))
            .await?
            .status
            .unwrap();
        ensure!(
            st.desired == 1 && st.succeeded == Some(1),
            "digest job: {st:?}"
        );
        let nis: Api<NodeImage> = Api::all(client.clone());
        let has_entry = |ni: &NodeImage| {
            serde_json::to_string(&ni.spec)
                .unwrap_or_default()
                .contains(digest.trim_start_matches("sha256:"))
        };
        ensure!(
            has_entry(&nis.get(&node).await?),
            "the NodeImage of {node} has no entry for {image}"
        );
        for other in nodes.iter().filter(|n| **n != node) {
            ensure!(
                !has_entry(&nis.get(other).await?),
                "{other} was not selected but got the image"
            );
        }
        jobs.delete("digest", &DeleteParams::default()).await?;
        wait_for(
            "the job's NodeImage entries to go",
            Duration::from_secs(60),
            || async { Ok((!has_entry(&nis.get(&node).await?)).then_some(())) },
        )
        .await?;
        Ok(())
    })
    .await
}
