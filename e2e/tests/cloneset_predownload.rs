//! CloneSet image pre-download: an in-place image update held back by a partition makes
//! kruise-manager create an ImagePullJob owned by the CloneSet that pulls the new image onto the
//! nodes of the old pods (checked through the CRI of that node), and delete it once every pod is
//! updated. Needs the suite with gate `PreDownloadImageForInPlaceUpdate` on, and a CRI node that
//! kwok simulates (`cri-node-1`): its pods are simulated, its image pulls are real.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail, ensure};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{ImageSpec, ListImagesRequest, RemoveImageRequest};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{CloneSet, ImagePullJob};
use kruise_e2e::{Env, env_or_skip, wait_for, with_temp_ns};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use std::time::Duration;

const CREATED_LABEL: &str = "apps.kruise.io/pre-predownload-created";
const IGNORED_LABEL: &str = "apps.kruise.io/image-predownload-ignored";
const HASH_LABEL: &str = "controller-revision-hash";
const SHORT_HASH_LABEL: &str = "controller.kubernetes.io/hash";
const GATE_HINT: &str = "is kruise-manager running with feature gate \
    PreDownloadImageForInPlaceUpdate=true (env KRUISE_FEATURE_GATES or --feature-gates)?";

/// The env, the kwok-simulated CRI node and its CRI endpoint; `None` (reason printed) to skip.
fn cri_kwok_env(test: &str) -> Option<(Env, String, String)> {
    let env = env_or_skip(test)?;
    if !env.get("E2E_SUITE").is_ok_and(|v| v == "1") {
        eprintln!("SKIP {test}: the suite is not running (e2e/cluster suite up)");
        return None;
    }
    // CRI nodes other than the real kubelet node are kwok-simulated (pods fake, pulls real).
    let real = env.get("E2E_REAL_NODE").unwrap_or_default().to_string();
    let found = env
        .list("E2E_CRI_NODES")
        .into_iter()
        .zip(env.cri_endpoints())
        .find(|(node, _)| *node != real);
    match found {
        Some((node, endpoint)) => Some((env, node, endpoint)),
        None => {
            eprintln!(
                "SKIP {test}: no kwok-simulated CRI node (needs --cri-nodes 2 on tier kubelet)"
            );
            None
        }
    }
}

/// A v1alpha1 CloneSet of `replicas` pods pinned to `node`, updated in place behind a partition.
fn cloneset(name: &str, replicas: i32, node: &str, image: &str, strategy: Value) -> CloneSet {
    serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"},
                        {"name": "side", "image": image, "imagePullPolicy": "IfNotPresent"}
                    ]
                }
            },
            "updateStrategy": strategy
        }
    }))
    .unwrap()
}

async fn wait_settled(api: &Api<CloneSet>, name: &str, n: i32) -> Result<CloneSet> {
    wait_for(
        &format!("CloneSet {name} with {n} ready pods"),
        Duration::from_secs(90),
        || async {
            let cs = api.get(name).await?;
            let s = cs.status.clone().unwrap_or_default();
            let done = s.observed_generation >= cs.metadata.generation
                && s.ready_replicas == n
                && s.updated_replicas == n;
            Ok(done.then_some(cs))
        },
    )
    .await
}

/// The CloneSet's update revision once the controller observed the current generation.
async fn update_revision(api: &Api<CloneSet>, name: &str) -> Result<String> {
    wait_for(
        &format!("CloneSet {name} to observe its spec"),
        Duration::from_secs(60),
        || async {
            let cs = api.get(name).await?;
            let s = cs.status.clone().unwrap_or_default();
            Ok((s.observed_generation >= cs.metadata.generation)
                .then_some(s.update_revision)
                .flatten())
        },
    )
    .await
}

async fn set_image(api: &Api<CloneSet>, name: &str, image: &str) -> Result<()> {
    // A JSON merge patch replaces the whole list: give every container back in full.
    let cs = api.get(name).await?;
    let mut containers = cs.spec.template.spec.clone().unwrap().containers;
    for c in &mut containers {
        c.image = Some(image.to_string());
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": containers}}}})),
    )
    .await?;
    Ok(())
}

// ----- registry and CRI ------------------------------------------------------------------------

/// One HTTP/1.1 request to the plain-HTTP registry at `addr`; returns status, headers and body.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, http::HeaderMap, Vec<u8>)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, headers, body))
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes `sleeper:<tag>`: the `sleeper:v2` manifest with an annotation naming the tag, so its digest
/// (and so the image containerd records) is new, while every blob is already in the registry.
/// Returns the manifest digest.
async fn push_unique_image(registry: &str, tag: &str) -> Result<String> {
    let (status, _, body) = http(
        registry,
        "GET",
        "/v2/sleeper/manifests/v2",
        &[("accept", OCI_MANIFEST)],
        vec![],
    )
    .await?;
    ensure!(status == 200, "GET sleeper:v2 manifest: HTTP {status}");
    let mut manifest: Value = serde_json::from_slice(&body)?;
    manifest["annotations"] = json!({"kruise-rs.e2e/test": tag});
    let bytes = serde_json::to_vec(&manifest)?;
    let (status, headers, body) = http(
        registry,
        "PUT",
        &format!("/v2/sleeper/manifests/{tag}"),
        &[("content-type", OCI_MANIFEST)],
        bytes,
    )
    .await?;
    ensure!(
        status == 201,
        "PUT sleeper:{tag}: HTTP {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

async fn cri_client(endpoint: &str) -> Result<ImageServiceClient<tonic::transport::Channel>> {
    let channel = kruise_e2e::cri_channel(endpoint).await?;
    Ok(ImageServiceClient::new(channel))
}

/// Image references (tags and digests) present in the containerd at `endpoint`.
async fn cri_images(endpoint: &str) -> Result<Vec<String>> {
    let images = cri_client(endpoint)
        .await?
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner()
        .images;
    Ok(images
        .into_iter()
        .flat_map(|i| i.repo_tags.into_iter().chain(i.repo_digests))
        .collect())
}

async fn cri_remove(endpoint: &str, image: &str) -> Result<()> {
    cri_client(endpoint)
        .await?
        .remove_image(RemoveImageRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
        })
        .await?;
    Ok(())
}

/// Removes the test image from the node's containerd and from the registry (by its own digest:
/// no other tag shares it).
async fn remove_unique_image(registry: &str, endpoint: &str, image: &str, digest: &str) {
    if let Err(e) = cri_remove(endpoint, image).await {
        eprintln!("cleanup: CRI RemoveImage {image}: {e:#}");
    }
    if !digest.is_empty() {
        let path = format!("/v2/sleeper/manifests/{digest}");
        if let Err(e) = http(registry, "DELETE", &path, &[], vec![]).await {
            eprintln!("cleanup: DELETE {path}: {e:#}");
        }
    }
}

fn has_label(r: &ControllerRevision, key: &str) -> bool {
    r.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(key).map(String::as_str) == Some("true"))
}

// ----- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn partitioned_in_place_update_pre_downloads_new_image_on_old_pods_nodes() -> Result<()> {
    const TEST: &str = "partitioned_in_place_update_pre_downloads";
    let Some((env, node, endpoint)) = cri_kwok_env(TEST) else {
        return Ok(());
    };
    let client = env.client().await?;
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let old_image = format!("{registry}/sleeper:v1");
    let tag = format!("pd-{}-{}", std::process::id(), rand_suffix());
    let new_image = format!("{registry}/sleeper:{tag}");
    let digest = push_unique_image(&registry, &tag).await?;
    ensure!(
        !cri_images(&endpoint).await?.contains(&new_image),
        "{node} already has {new_image} before the update"
    );
    let res = with_temp_ns(&client, "cspredl", |client, ns| {
        let (node, endpoint, old_image, new_image) = (
            node.clone(),
            endpoint.clone(),
            old_image.clone(),
            new_image.clone(),
        );
        async move {
            let css: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let name = "web";
            let strategy =
                json!({"type": "InPlaceIfPossible", "partition": 4, "maxUnavailable": 1});
            let cs = css
                .create(
                    &PostParams::default(),
                    &cloneset(name, 4, &node, &old_image, strategy),
                )
                .await?;
            let cs_uid = cs.uid().unwrap();
            let first = wait_settled(&css, name, 4).await?;
            let old_rev = first.status.unwrap().update_revision.unwrap();

            set_image(&css, name, &new_image).await?;
            let new_rev = update_revision(&css, name).await?;
            ensure!(new_rev != old_rev, "the image change made no new revision");

            // The job for each changed container, owned by the CloneSet, on the old pods' nodes.
            let job_names = [format!("{new_rev}-main"), format!("{new_rev}-side")];
            for job_name in &job_names {
                let job = wait_for(
                    &format!("ImagePullJob {job_name} ({GATE_HINT})"),
                    Duration::from_secs(60),
                    || async { Ok(jobs.get_opt(job_name).await?) },
                )
                .await?;
                ensure!(job.spec.image == new_image, "job image {}", job.spec.image);
                let owner = job
                    .metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .find(|o| o.controller == Some(true))
                    .context("job has no controller reference")?;
                ensure!(
                    owner.kind == "CloneSet" && owner.name == name && owner.uid == cs_uid,
                    "job controller {owner:?}"
                );
                let t = &job.spec.template;
                ensure!(
                    t.selector.is_none(),
                    "pre-download jobs select pods, not nodes"
                );
                let ps = t.pod_selector.clone().context("job has no podSelector")?;
                ensure!(
                    ps.match_labels
                        .as_ref()
                        .and_then(|l| l.get("app"))
                        .map(String::as_str)
                        == Some(name),
                    "podSelector labels {:?}",
                    ps.match_labels
                );
                let not_in = ps
                    .match_expressions
                    .unwrap_or_default()
                    .into_iter()
                    .find(|e| e.key == HASH_LABEL && e.operator == "NotIn")
                    .context("podSelector lacks controller-revision-hash NotIn")?;
                ensure!(
                    not_in.values.unwrap_or_default().contains(&new_rev),
                    "NotIn leaves out the update revision"
                );
                ensure!(
                    job.labels().get(SHORT_HASH_LABEL).is_some(),
                    "job lacks {SHORT_HASH_LABEL}"
                );
            }
            wait_for(
                &format!("revision {new_rev} labelled {CREATED_LABEL}"),
                Duration::from_secs(30),
                || async { Ok(has_label(&revs.get(&new_rev).await?, CREATED_LABEL).then_some(())) },
            )
            .await?;

            // The partition holds every pod: all are old, all on `node`, so the job wants exactly
            // that node and pulls there for real.
            let done = wait_for(
                &format!("ImagePullJob {} to finish", job_names[0]),
                Duration::from_secs(120),
                || async {
                    let j = jobs.get(&job_names[0]).await?;
                    Ok(j.status
                        .clone()
                        .filter(|s| s.completion_time.is_some())
                        .map(|s| (j, s)))
                },
            )
            .await?;
            let st = done.1;
            ensure!(
                st.desired == 1,
                "job desired {} nodes, want 1 ({node})",
                st.desired
            );
            ensure!(
                st.succeeded == Some(1),
                "job succeeded {:?}: {:?} failed on {:?}",
                st.succeeded,
                st.message,
                st.failed_nodes
            );
            let imgs = cri_images(&endpoint).await?;
            ensure!(
                imgs.contains(&new_image),
                "{node}'s CRI does not list {new_image} after the job: {imgs:?}"
            );
            // Pre-download changed no pod: all four are still on the old revision.
            let old = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await?
                .items
                .into_iter()
                .filter(|p| p.labels().get(HASH_LABEL) == Some(&old_rev))
                .count();
            ensure!(
                old == 4,
                "{old} of 4 pods on the old revision behind partition 4"
            );

            // Releasing the partition updates every pod; converged revisions delete the jobs.
            css.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"updateStrategy": {"partition": 0}}})),
            )
            .await?;
            wait_settled(&css, name, 4).await?;
            wait_for(
                "the CloneSet's ImagePullJobs to be deleted after the update",
                Duration::from_secs(60),
                || async {
                    let left = jobs.list(&ListParams::default()).await?.items;
                    Ok(left.is_empty().then_some(()))
                },
            )
            .await?;
            Ok(())
        }
    })
    .await;
    remove_unique_image(&registry, &endpoint, &new_image, &digest).await;
    res
}

#[tokio::test]
async fn small_or_recreate_cloneset_gets_no_pre_download_job() -> Result<()> {
    const TEST: &str = "small_or_recreate_cloneset_gets_no_pre_download_job";
    let Some((env, _node, _endpoint)) = cri_kwok_env(TEST) else {
        return Ok(());
    };
    let client = env.client().await?;
    with_temp_ns(&client, "cspredl-skip", |client, ns| async move {
        let css: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
        let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
        // Kwok nodes: no pull ever happens here, only the decision is checked.
        let cases = [
            (
                "three",
                3,
                json!({"type": "InPlaceIfPossible", "partition": 2}),
            ),
            ("recreate", 5, json!({"type": "ReCreate", "partition": 3})),
            (
                "onebatch",
                4,
                json!({"type": "InPlaceIfPossible", "maxUnavailable": "100%"}),
            ),
        ];
        for (name, replicas, strategy) in &cases {
            let mut cs = cloneset(
                name,
                *replicas,
                "kwok-node-0",
                "example.test/app:v1",
                strategy.clone(),
            );
            cs.spec.template.spec.as_mut().unwrap().node_selector =
                Some([("type".to_string(), "kwok".to_string())].into());
            css.create(&PostParams::default(), &cs).await?;
        }
        for (name, replicas, _) in &cases {
            wait_settled(&css, name, *replicas).await?;
            set_image(&css, name, "example.test/app:v2").await?;
        }
        for (name, _, _) in &cases {
            let rev = update_revision(&css, name).await?;
            wait_for(
                &format!("revision {rev} of {name} labelled {IGNORED_LABEL} ({GATE_HINT})"),
                Duration::from_secs(60),
                || async { Ok(has_label(&revs.get(&rev).await?, IGNORED_LABEL).then_some(())) },
            )
            .await?;
        }
        let left = jobs.list(&ListParams::default()).await?.items;
        if !left.is_empty() {
            bail!(
                "jobs created for skipped CloneSets: {:?}",
                left.iter().map(|j| j.name_any()).collect::<Vec<_>>()
            );
        }
        Ok(())
    })
    .await
}

fn rand_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    format!("{:06x}", h.finish() & 0xff_ffff)
}
