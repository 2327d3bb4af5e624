//! Smoke tests of the e2e cluster itself (e2e/cluster): nodes, a real pod on the kubelet node, a
//! simulated in-place image change on a kwok node, our CRDs through the real API server, and a CRI
//! call on every containerd.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kruise_e2e::{env_or_skip, image_id, pod_on_node, wait_for, wait_running, with_temp_ns};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn every_node_is_ready() -> Result<()> {
    let Some(env) = env_or_skip("every_node_is_ready") else {
        return Ok(());
    };
    let client = env.client().await?;
    let nodes: Api<Node> = Api::all(client);
    let mut expected: Vec<String> = env.list("E2E_KWOK_NODES");
    expected.extend(env.list("E2E_CRI_NODES"));
    ensure!(!expected.is_empty(), "the cluster has no nodes in its env");
    for name in expected {
        let node = nodes
            .get(&name)
            .await
            .with_context(|| format!("node {name}"))?;
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ensure!(ready, "node {name} is not Ready");
    }
    for name in env.list("E2E_KWOK_NODES") {
        let node = nodes.get(&name).await?;
        ensure!(
            node.metadata
                .labels
                .unwrap_or_default()
                .get("type")
                .map(String::as_str)
                == Some("kwok")
        );
    }
    Ok(())
}

#[tokio::test]
async fn real_pod_runs_from_local_registry_with_real_digest() -> Result<()> {
    let Some(env) = env_or_skip("real_pod_runs_from_local_registry") else {
        return Ok(());
    };
    if env.tier() != "kubelet" {
        eprintln!(
            "SKIP real_pod_runs_from_local_registry: tier {} has no kubelet",
            env.tier()
        );
        return Ok(());
    }
    let node = env.get("E2E_REAL_NODE")?.to_string();
    let image = format!("{}/sleeper:v1", env.get("E2E_REGISTRY")?);
    let client = env.client().await?;
    with_temp_ns(&client, "realpod", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        pods.create(
            &PostParams::default(),
            &pod_on_node("sleeper", &node, &image, true),
        )
        .await?;
        let pod = wait_running(&pods, "sleeper", Duration::from_secs(120)).await?;
        let id = image_id(&pod, "main").context("no imageID")?;
        // containerd reports the repo digest it pulled: <registry>/sleeper@sha256:<64 hex>
        let digest = id
            .rsplit_once("@sha256:")
            .map(|(_, d)| d)
            .unwrap_or_default();
        ensure!(
            id.contains("/sleeper@sha256:")
                && digest.len() == 64
                && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "imageID {id:?} is not a real repo digest"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn kwok_pod_runs_and_in_place_image_change_changes_image_id() -> Result<()> {
    let Some(env) = env_or_skip("kwok_pod_in_place_image_change") else {
        return Ok(());
    };
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let client = env.client().await?;
    with_temp_ns(&client, "kwokpod", |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        pods.create(
            &PostParams::default(),
            &pod_on_node("fake", &node, "example.test/app:v1", false),
        )
        .await?;
        let pod = wait_running(&pods, "fake", Duration::from_secs(60)).await?;
        let before = image_id(&pod, "main").context("no imageID")?;
        let patch =
            json!({"spec": {"containers": [{"name": "main", "image": "example.test/app:v2"}]}});
        pods.patch("fake", &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
        let after = wait_for("imageID to change", Duration::from_secs(60), || async {
            let p = pods.get("fake").await?;
            Ok(image_id(&p, "main")
                .filter(|id| *id != before)
                .map(|id| (id, p)))
        })
        .await?;
        let status = after.1.status.unwrap().container_statuses.unwrap();
        ensure!(
            status[0].image == "example.test/app:v2",
            "status image not updated: {}",
            status[0].image
        );
        ensure!(
            status[0].restart_count == 1,
            "restartCount {} after an in-place change",
            status[0].restart_count
        );
        Ok(())
    })
    .await
}

async fn apply_crds(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kruise_crds::crdgen::all() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("kruise-rs-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        wait_for(
            &format!("CRD {name} Established"),
            Duration::from_secs(60),
            || async {
                let c = crds.get(&name).await?;
                let ok = c
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(ok.then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

fn api_for(
    client: Client,
    ns: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apps.kruise.io", "v1alpha1", kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    if namespaced {
        Api::namespaced_with(client, ns, &ar)
    } else {
        Api::all_with(client, &ar)
    }
}

#[tokio::test]
async fn crds_apply_and_examples_create_and_malformed_is_refused() -> Result<()> {
    let Some(env) = env_or_skip("crds_apply_and_examples_create") else {
        return Ok(());
    };
    let client = env.client().await?;
    apply_crds(&client).await?;
    with_temp_ns(&client, "crds", |client, ns| async move {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/openkruise-examples.yaml"))?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)?;
        let suffix = ns.rsplit('-').next().unwrap_or("x").to_string();
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let (plural, namespaced) = match kind.as_str() {
                "SidecarSet" => ("sidecarsets", false),
                "ImagePullJob" => ("imagepulljobs", true),
                "CloneSet" => ("clonesets", true),
                other => anyhow::bail!("unexpected kind {other}"),
            };
            if !namespaced {
                // cluster-scoped: keep names unique per run
                let n = format!("{}-{suffix}", doc["metadata"]["name"].as_str().unwrap());
                doc["metadata"]["name"] = json!(n);
            }
            let obj: DynamicObject = serde_json::from_value(doc)?;
            let api = api_for(client.clone(), &ns, &kind, plural, namespaced);
            let created = api.create(&PostParams::default(), &obj).await.with_context(|| format!("create {kind}"))?;
            if !namespaced {
                api.delete(&created.metadata.name.clone().unwrap(), &Default::default()).await?;
            }
        }
        // A malformed CloneSet: replicas is a string. The API server must refuse it and name the field.
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "bad"},
            "spec": {"replicas": "five", "selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))?;
        let err = api_for(client.clone(), &ns, "CloneSet", "clonesets", true)
            .create(&PostParams::default(), &bad)
            .await
            .expect_err("a CloneSet with replicas: \"five\" was accepted");
        let msg = err.to_string();
        ensure!(msg.contains("spec.replicas"), "refusal does not name the field: {msg}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cri_image_service_answers_on_every_containerd() -> Result<()> {
    let Some(env) = env_or_skip("cri_image_service_answers") else {
        return Ok(());
    };
    let endpoints = env.cri_endpoints();
    if endpoints.is_empty() {
        eprintln!(
            "SKIP cri_image_service_answers: tier {} has no CRI node",
            env.tier()
        );
        return Ok(());
    }
    use k8s_cri::v1::image_service_client::ImageServiceClient;
    use k8s_cri::v1::{ImageFsInfoRequest, ListImagesRequest};
    for ep in endpoints {
        let channel = kruise_e2e::cri_channel(&ep)
            .await
            .with_context(|| format!("connect {ep}"))?;
        let mut images = ImageServiceClient::new(channel);
        images
            .list_images(ListImagesRequest { filter: None })
            .await
            .with_context(|| format!("ListImages on {ep}"))?;
        let fs = images
            .image_fs_info(ImageFsInfoRequest {})
            .await
            .with_context(|| format!("ImageFsInfo on {ep}"))?;
        ensure!(
            !fs.into_inner().image_filesystems.is_empty(),
            "{ep}: no image filesystem"
        );
    }
    Ok(())
}
