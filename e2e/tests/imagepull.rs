//! Image warm-up on real containerd nodes: ImagePullJob → NodeImage → kruise-daemon → CRI PullImage,
//! checked through the API (job and NodeImage status) and through each node's own CRI ListImages.
//! Needs the `cri` tier or above and the suite.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_cri::v1::ListImagesRequest;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{self, Timestamp};
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
    let channel = kruise_e2e::cri_channel(endpoint).await?;
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

/// A plain Node (no kubelet, no daemon, tainted against pods) labelled `label=value`, Ready since
/// an hour ago so the NodeImage controller creates its NodeImage without the usual creation delay.
fn plain_node(name: &str, label: &str, value: &str) -> k8s_openapi::api::core::v1::Node {
    let ready_since = jiff_like_hour_ago();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {label: value, "kubernetes.io/hostname": name}},
        // no other test's pods may land here
        "spec": {"taints": [{"key": "kruise-rs.e2e/no-pods", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "E2E",
                                   "lastHeartbeatTime": ready_since,
                                   "lastTransitionTime": ready_since}]}
    }))
    .unwrap()
}

/// RFC 3339 time one hour ago, whole seconds (the API server's format).
fn jiff_like_hour_ago() -> String {
    let t = Timestamp::now() - jiff::SignedDuration::from_secs(3600);
    Timestamp::from_second(t.as_second()).unwrap().to_string()
}

/// Creates the Node and sets its status (the create call may drop it), returning once its
/// NodeImage exists.
async fn create_plain_node(
    client: &kube::Client,
    node: &k8s_openapi::api::core::v1::Node,
) -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let nodes: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap();
    nodes.create(&PostParams::default(), node).await?;
    let status = json!({"status": node.status});
    nodes
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let nis: Api<NodeImage> = Api::all(client.clone());
    wait_for(
        &format!("NodeImage {name}"),
        Duration::from_secs(60),
        || async { Ok(nis.get_opt(&name).await?.map(|_| ())) },
    )
    .await
}

async fn delete_node(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Node;
    let _ = Api::<Node>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// Whether the NodeImage `node` has `repo` with `tag` in its spec.
async fn node_image_wants(
    client: &kube::Client,
    node: &str,
    repo: &str,
    tag: &str,
) -> Result<bool> {
    let ni = Api::<NodeImage>::all(client.clone()).get_opt(node).await?;
    let spec = ni.map(|n| serde_json::to_value(n.spec)).transpose()?;
    Ok(spec.is_some_and(|s| {
        s["images"][repo]["tags"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["tag"] == tag))
    }))
}

#[tokio::test]
async fn node_added_after_start_joins_a_never_job() -> Result<()> {
    let Some(env) = env_or_skip("node_added_after_start_joins_a_never_job") else {
        return Ok(());
    };
    if !ready(&env, "node_added_after_start_joins_a_never_job") {
        return Ok(());
    }
    let client = env.client().await?;
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let pid = std::process::id();
    let label = format!("kruise-rs.e2e/join-{pid}");
    let (first, second) = (format!("e2e-join-{pid}-a"), format!("e2e-join-{pid}-b"));
    let res = async {
        create_plain_node(&client, &plain_node(&first, &label, "true")).await?;
        with_temp_ns(&client, "pulljoin", |client, ns| {
            let (label, first, second) = (label.clone(), first.clone(), second.clone());
            async move {
                let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
                let repo = format!("{registry}/sleeper");
                let spec = json!({"image": format!("{repo}:v1"), "parallelism": 10,
                                  "selector": {"matchLabels": {&label: "true"}},
                                  "completionPolicy": {"type": "Never"}});
                jobs.create(&PostParams::default(), &job("never", spec))
                    .await?;
                let desired = |n: i32| {
                    let jobs = jobs.clone();
                    async move {
                        let j = jobs.get("never").await?;
                        Ok(j.status.filter(|s| s.desired == n).map(|_| ()))
                    }
                };
                wait_for("desired 1", Duration::from_secs(60), || desired(1)).await?;
                ensure!(
                    node_image_wants(&client, &first, &repo, "v1").await?,
                    "{first} lacks the tag"
                );
                create_plain_node(&client, &plain_node(&second, &label, "true")).await?;
                wait_for(
                    "desired 2 after the node joined",
                    Duration::from_secs(60),
                    || desired(2),
                )
                .await?;
                wait_for(
                    "the new node's NodeImage to want the image",
                    Duration::from_secs(60),
                    || async {
                        Ok(node_image_wants(&client, &second, &repo, "v1")
                            .await?
                            .then_some(()))
                    },
                )
                .await?;
                let st = jobs.get("never").await?.status.unwrap();
                ensure!(
                    st.completion_time.is_none(),
                    "a Never job completed: {st:?}"
                );
                Ok(())
            }
        })
        .await
    }
    .await;
    delete_node(&client, &first).await;
    delete_node(&client, &second).await;
    res
}

#[tokio::test]
async fn image_list_pull_job_creates_one_job_per_image_and_aggregates() -> Result<()> {
    use kruise_crds::ImageListPullJob;
    let Some(env) = env_or_skip("image_list_pull_job") else {
        return Ok(());
    };
    if !ready(&env, "image_list_pull_job") {
        return Ok(());
    }
    let client = env.client().await?;
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let nodes = env.list("E2E_CRI_NODES");
    with_temp_ns(&client, "pulllist", |client, ns| async move {
        let images = [
            format!("{registry}/sleeper:v1"),
            format!("{registry}/sleeper:v2"),
        ];
        let list: ImageListPullJob = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImageListPullJob",
            "metadata": {"name": "list"},
            "spec": {"images": images, "selector": cri_selector(), "parallelism": 4,
                     "pullPolicy": {"backoffLimit": 2, "timeoutSeconds": 120},
                     "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}}
        }))?;
        let lists: Api<ImageListPullJob> = Api::namespaced(client.clone(), &ns);
        lists.create(&PostParams::default(), &list).await?;
        let done = wait_for(
            "the ImageListPullJob to complete",
            Duration::from_secs(180),
            || async {
                let l = lists.get("list").await?;
                Ok(l.status
                    .clone()
                    .filter(|s| s.completion_time.is_some())
                    .map(|_| l))
            },
        )
        .await?;
        let uid = done.metadata.uid.clone().unwrap();
        let st = done.status.unwrap();
        ensure!(
            st.desired == 2 && st.completed == Some(2) && st.succeeded == Some(2),
            "list status: {st:?}"
        );
        ensure!(
            st.failed_image_statuses
                .as_ref()
                .is_none_or(|f| f.is_empty()),
            "failures: {st:?}"
        );
        let children: Vec<ImagePullJob> = Api::<ImagePullJob>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|j| {
                j.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid)
            })
            .collect();
        let mut got: Vec<String> = children.iter().map(|c| c.spec.image.clone()).collect();
        got.sort();
        ensure!(
            got == images,
            "one child ImagePullJob per image expected, got {got:?}"
        );
        for c in &children {
            let cs = c.status.clone().unwrap_or_default();
            ensure!(
                cs.desired == nodes.len() as i32 && cs.succeeded == Some(cs.desired),
                "child {} status {cs:?}",
                c.spec.image
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn registry_down_fails_after_backoff_limit_with_the_reason() -> Result<()> {
    let Some(env) = env_or_skip("registry_down_fails") else {
        return Ok(());
    };
    if !ready(&env, "registry_down_fails") {
        return Ok(());
    }
    let client = env.client().await?;
    let node = env
        .list("E2E_CRI_NODES")
        .into_iter()
        .last()
        .context("no CRI node")?;
    // a loopback port nothing listens on: bind, note the port, close
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let image = format!("127.0.0.1:{port}/gone/app:v{}", std::process::id());
    with_temp_ns(&client, "pulldown", |client, ns| async move {
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
        let spec = json!({"image": image, "selector": {"names": [node]}, "imagePullPolicy": "Always",
                          "pullPolicy": {"backoffLimit": 2, "timeoutSeconds": 30},
                          "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 300}});
        jobs.create(&PostParams::default(), &job("down", spec)).await?;
        let st = wait_finished(&jobs, "down", Duration::from_secs(120)).await?.status.unwrap();
        ensure!(
            st.desired == 1 && st.failed == Some(1) && st.succeeded.unwrap_or(0) == 0,
            "registry down: {st:?}"
        );
        ensure!(st.failed_nodes.as_deref() == Some(std::slice::from_ref(&node)), "failedNodes {st:?}");
        let ni = Api::<NodeImage>::all(client.clone()).get(&node).await?;
        let status = serde_json::to_value(ni.status.unwrap_or_default())?;
        let repo = image.rsplit_once(':').unwrap().0;
        let tag = status["imageStatuses"][repo]["tags"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| image.ends_with(t["tag"].as_str().unwrap_or("-"))))
            .cloned()
            .unwrap_or_default();
        ensure!(tag["phase"] == "Failed", "tag status {tag}");
        let msg = tag["message"].as_str().unwrap_or_default().to_lowercase();
        ensure!(
            msg.contains("connection refused") || msg.contains("connect"),
            "the registry's reason is not in the tag status: {tag}"
        );
        // backoffLimit 2 ⇒ three attempts, at least 1 s + 2 s of backoff between them
        let secs = |t: &serde_json::Value| t.as_str().and_then(|s| s.parse::<Timestamp>().ok());
        let (start, end) = (secs(&tag["startTime"]), secs(&tag["completionTime"]));
        let took = end.zip(start).map(|(e, s)| e.duration_since(s).as_secs_f64());
        ensure!(took.is_some_and(|t| t >= 2.5), "failed after {took:?} s: the retries did not happen");
        Ok(())
    })
    .await
}

/// `kubectl get imagepulljobs -o wide` rows as `[TOTAL, ACTIVE, SUCCEED, FAILED, MESSAGE…]`.
fn kubectl_rows(env: &Env, ns: &str) -> Result<(String, Vec<Vec<String>>)> {
    let out = std::process::Command::new(env.get("E2E_KUBECTL")?)
        .args([
            "--kubeconfig",
            env.get("KUBECONFIG")?,
            "-n",
            ns,
            "get",
            "imagepulljobs",
            "-o",
            "wide",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    Ok((header, rows))
}

#[tokio::test]
async fn kubectl_get_imagepulljobs_shows_the_counts_as_the_job_progresses() -> Result<()> {
    let Some(env) = env_or_skip("kubectl_get_imagepulljobs") else {
        return Ok(());
    };
    if !ready(&env, "kubectl_get_imagepulljobs") {
        return Ok(());
    }
    let client = env.client().await?;
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let cri = env
        .list("E2E_CRI_NODES")
        .into_iter()
        .last()
        .context("no CRI node")?;
    // a node without a daemon keeps one pull active until it goes away
    let idle = format!("e2e-columns-{}", std::process::id());
    let res = async {
        create_plain_node(&client, &plain_node(&idle, "kruise-rs.e2e/columns", "true")).await?;
        with_temp_ns(&client, "pullcols", |client, ns| {
            let (env, idle) = (env.clone(), idle.clone());
            async move {
                let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
                let spec = json!({"image": format!("{registry}/sleeper:v1"), "parallelism": 2,
                                  "selector": {"names": [cri, idle]},
                                  "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}});
                jobs.create(&PostParams::default(), &job("cols", spec)).await?;
                let (header, _) = kubectl_rows(&env, &ns)?;
                let cols: Vec<&str> = header.split_whitespace().collect();
                ensure!(
                    cols == ["NAME", "TOTAL", "ACTIVE", "SUCCEED", "FAILED", "AGE", "MESSAGE"],
                    "printer columns: {header}"
                );
                // one node done, one still active
                let mid = wait_for("kubectl to show 2 total, 1 active, 1 succeeded", Duration::from_secs(120), || async {
                    let (_, rows) = kubectl_rows(&env, &ns)?;
                    Ok(rows.into_iter().find(|r| r.len() >= 5 && r[1..5] == ["2", "1", "1", "0"]))
                })
                .await?;
                ensure!(mid[0] == "cols" && mid[6..].join(" ").contains("progress 50.0%"), "row {mid:?}");
                delete_node(&client, &idle).await;
                let end = wait_for("kubectl to show the job completed", Duration::from_secs(120), || async {
                    let (_, rows) = kubectl_rows(&env, &ns)?;
                    Ok(rows.into_iter().find(|r| r.len() >= 7 && r[6..].join(" ") == "job has completed"))
                })
                .await?;
                ensure!(end[1..5] == ["1", "0", "1", "0"], "final row {end:?}");
                Ok(())
            }
        })
        .await
    }
    .await;
    delete_node(&client, &idle).await;
    res
}

/// Deleting Nodes deletes their NodeImages, promptly, for every one of them. (The NodeImage
/// controller used to read Nodes from another controller's cache than the one of the watch that
/// woke it: a NodeImage woken by its Node's deletion could still see the Node there and stay, and
/// after the 1,000-node benchmark many stayed.)
#[tokio::test]
async fn deleted_nodes_lose_their_node_images() -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let Some(env) = env_or_skip("deleted_nodes_lose_their_node_images") else {
        return Ok(());
    };
    if !ready(&env, "deleted_nodes_lose_their_node_images") {
        return Ok(());
    }
    let client = env.client().await?;
    let pid = std::process::id();
    let label = format!("kruise-rs.e2e/gone-{pid}");
    let names: Vec<String> = (0..20).map(|i| format!("e2e-gone-{pid}-{i}")).collect();
    let res = async {
        let (client, label) = (&client, &label);
        futures::future::try_join_all(names.iter().map(|n| async move {
            create_plain_node(client, &plain_node(n, label, "true")).await
        }))
        .await?;
        let nodes: Api<Node> = Api::all(client.clone());
        let t0 = std::time::Instant::now();
        nodes
            .delete_collection(
                &DeleteParams::default(),
                &kube::api::ListParams::default().labels(&format!("{label}=true")),
            )
            .await?;
        let nis: Api<NodeImage> = Api::all(client.clone());
        let left = wait_for(
            "every NodeImage of the 20 deleted Nodes to be gone",
            Duration::from_secs(60),
            || async {
                let mut left = 0;
                for n in &names {
                    if nis.get_opt(n).await?.is_some() {
                        left += 1;
                    }
                }
                Ok((left == 0).then_some(left))
            },
        )
        .await;
        println!(
            "20 Nodes deleted: their NodeImages gone after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        left.map(|_| ())
    }
    .await;
    for n in &names {
        delete_node(&client, n).await;
    }
    res
}
