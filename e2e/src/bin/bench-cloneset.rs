//! Benchmarks `cloneset-scale` and `cloneset-inplace` (shared/spec benchmarks.md) on kwok nodes, each
//! against a floor measured in the same run: a bare client creating (or image-patching) the same
//! number of pods at the same concurrency and waiting for the same outcome. API writes are counted
//! from the API server's `apiserver_request_total`. Prints one JSON object; nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kruise_crds::CloneSet;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// cloneset-scale and cloneset-inplace.
#[derive(Parser, Debug)]
struct Args {
    /// Pods.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Concurrency of the bare-client floor.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/cloneset.json")]
    out: String,
}

fn running_with(p: &Pod, image: &str) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.container_statuses
                .as_ref()
                .is_some_and(|cs| cs.iter().all(|c| c.ready && c.image == image))
            && s.conditions
                .as_ref()
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

/// Sum of mutating requests the API server has served.
async fn api_writes(client: &Client) -> Result<f64> {
    Ok(kruise_e2e::writes_total(
        &kruise_e2e::api_writes(client).await?,
    ))
}

async fn wait_all(
    pods: &Api<Pod>,
    lp: &ListParams,
    n: usize,
    image: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = pods.list(lp).await?.items;
        let ok = list
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && running_with(p, image))
            .count();
        if ok == n && list.len() == n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out: {ok}/{n} pods ready with {image}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod(name: &str, image: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "floor"}},
        "spec": {"nodeSelector": {"type": "kwok"}, "containers": [{"name": "main", "image": image}]}
    }))?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let env = kruise_e2e::Env::load()?.context("no e2e cluster is up")?;
    let client = env.client().await?;
    let n = args.replicas;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns_name = format!("bench-cloneset-{}", std::process::id());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(ns_name.clone());
    nss.create(&PostParams::default(), &ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
    let timeout = Duration::from_secs(600);

    // floor: bare client creates n pods, waits for all Ready, then patches their image
    let floor_sel = ListParams::default().labels("app=floor");
    let w0 = api_writes(&client).await?;
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.create(
                    &PostParams::default(),
                    &pod(&format!("floor-{i}"), "example.test/app:v1")?,
                )
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    wait_all(&pods, &floor_sel, n, "example.test/app:v1", timeout).await?;
    let floor_scale = t0.elapsed().as_secs_f64();
    let w1 = api_writes(&client).await?;
    let t1 = Instant::now();
    let patch = json!({"spec": {"containers": [{"name": "main", "image": "example.test/app:v2"}]}});
    futures::stream::iter(0..n)
        .map(|i| {
            let (pods, patch) = (pods.clone(), patch.clone());
            async move {
                pods.patch(
                    &format!("floor-{i}"),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    wait_all(&pods, &floor_sel, n, "example.test/app:v2", timeout).await?;
    let floor_inplace = t1.elapsed().as_secs_f64();
    let w2 = api_writes(&client).await?;
    pods.delete_collection(&DeleteParams::default().grace_period(0), &floor_sel)
        .await?;
    wait_for_gone(&pods, &floor_sel).await?;

    // ours: a CloneSet scaled 0 -> n, then an in-place image change with maxUnavailable 100%
    let css: Api<CloneSet> = Api::namespaced(client.clone(), &ns_name);
    let cs: CloneSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "bench"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "bench"}},
                 "template": {"metadata": {"labels": {"app": "bench"}},
                              "spec": {"nodeSelector": {"type": "kwok"}, "containers": [{"name": "main", "image": "example.test/app:v1"}]}},
                 "updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": "100%"}}
    }))?;
    css.create(&PostParams::default(), &cs).await?;
    let sel = ListParams::default().labels("app=bench");
    let w3 = api_writes(&client).await?;
    let t3 = Instant::now();
    css.patch(
        "bench",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": n}})),
    )
    .await?;
    wait_all(&pods, &sel, n, "example.test/app:v1", timeout).await?;
    let ours_scale = t3.elapsed().as_secs_f64();
    let w4 = api_writes(&client).await?;
    let t4 = Instant::now();
    let img = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "example.test/app:v2"}]}}}});
    css.patch("bench", &PatchParams::default(), &Patch::Merge(img))
        .await?;
    wait_all(&pods, &sel, n, "example.test/app:v2", timeout).await?;
    let ours_inplace = t4.elapsed().as_secs_f64();
    let w5 = api_writes(&client).await?;
    let _ = nss.delete(&ns_name, &DeleteParams::background()).await;

    let per_pod = |a: f64, b: f64| (b - a) / n as f64;
    let out: Value = json!({
        "name": "cloneset",
        "params": {"replicas": n, "floor_concurrency": args.concurrency, "nodes": "kwok"},
        "cloneset-scale": {"floor_s": floor_scale, "ours_s": ours_scale, "ratio": ours_scale / floor_scale,
                           "api_writes_per_pod": {"floor": per_pod(w0, w1), "ours": per_pod(w3, w4)}},
        "cloneset-inplace": {"floor_s": floor_inplace, "ours_s": ours_inplace, "ratio": ours_inplace / floor_inplace,
                             "api_writes_per_pod": {"floor": per_pod(w1, w2), "ours": per_pod(w4, w5)}},
        "note": "api writes include every writer (kwok status updates, scheduler bindings, events)"
    });
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

async fn wait_for_gone(pods: &Api<Pod>, lp: &ListParams) -> Result<()> {
    for _ in 0..600 {
        if pods.list(lp).await?.items.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("floor pods were not deleted")
}
