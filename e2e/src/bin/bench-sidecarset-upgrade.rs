//! Benchmark `sidecarset-upgrade` (shared/spec benchmarks.md) on kwok nodes: a SidecarSet's sidecar
//! image changes across N injected pods until status.updatedPods == N and every pod's container status
//! shows the new image, against a floor measured in the same run: a bare client patching the same
//! sidecar image on N pods at the same concurrency until kwok reports it. API writes are counted from
//! the API server's `apiserver_request_total`, in total and by verb/resource. Prints one JSON object;
//! nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kruise_crds::SidecarSet;
use kruise_e2e::api_writes;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// sidecarset-upgrade.
#[derive(Parser, Debug)]
struct Args {
    /// Pods.
    #[arg(long, default_value_t = 500)]
    pods: usize,
    /// Concurrency of the bare-client floor (and of pod creation).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The SidecarSet's updateStrategy.maxUnavailable.
    #[arg(long, default_value = "100%")]
    max_unavailable: String,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/sidecarset-upgrade.json")]
    out: String,
}

const SIDECAR: &str = "bench-sidecar";
const V1: &str = "example.test/bench-sidecar:v1";
const V2: &str = "example.test/bench-sidecar:v2";

/// Writes between two snapshots per pod: the total and the non-zero entries by verb/resource.
fn writes_per_pod(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, n: usize) -> Value {
    let mut by = serde_json::Map::new();
    let mut total = 0.0;
    for (k, v) in b {
        let d = v - a.get(k).copied().unwrap_or_default();
        if d > 0.0 {
            total += d;
            by.insert(k.clone(), json!(d));
        }
    }
    json!({"per_pod": total / n as f64, "total": total, "by_verb_resource": by})
}

fn sidecar_running(p: &Pod, image: &str) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.container_statuses.as_ref().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.name == SIDECAR && c.ready && c.image == image)
                })
        })
}

/// Polls until the `n` pods of `lp` report `image` for the sidecar (and, with `ss`, the SidecarSet
/// counts them all updated).
async fn wait_all(
    pods: &Api<Pod>,
    lp: &ListParams,
    n: usize,
    image: &str,
    ss: Option<(&Api<SidecarSet>, &str)>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = pods.list(lp).await?.items;
        let ok = list.iter().filter(|p| sidecar_running(p, image)).count();
        let updated = match ss {
            Some((api, name)) => api
                .get(name)
                .await?
                .status
                .map_or(0, |s| usize::try_from(s.updated_pods).unwrap_or(0)),
            None => n,
        };
        if ok == n && list.len() == n && updated == n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out: {ok}/{n} pods run {image}, {updated} updated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod(name: &str, app: &str, with_sidecar: bool) -> Result<Pod> {
    let mut containers = vec![json!({"name": "main", "image": "example.test/app:v1"})];
    if with_sidecar {
        containers.push(json!({"name": SIDECAR, "image": V1}));
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeSelector": {"type": "kwok"}, "containers": containers}
    }))?)
}

async fn create_pods(
    pods: &Api<Pod>,
    prefix: &str,
    app: &str,
    with_sidecar: bool,
    n: usize,
    c: usize,
) -> Result<()> {
    futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p = pod(&format!("{prefix}-{i}"), app, with_sidecar)?;
                pods.create(&PostParams::default(), &p)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(c)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let env = kruise_e2e::Env::load()?.context("no e2e cluster is up")?;
    let client = env.client().await?;
    let n = args.pods;
    let pid = std::process::id();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns_name = format!("bench-sidecarset-{pid}");
    let mut ns = Namespace::default();
    ns.metadata.name = Some(ns_name.clone());
    nss.create(&PostParams::default(), &ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
    let sss: Api<SidecarSet> = Api::all(client.clone());
    let ss_name = format!("bench-sidecarset-{pid}");
    let res = run(&args, &client, &pods, &sss, &ss_name, n).await;
    let _ = sss.delete(&ss_name, &DeleteParams::default()).await;
    let _ = nss.delete(&ns_name, &DeleteParams::background()).await;
    let out = res?;
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)? + "\n")?;
    Ok(())
}

async fn run(
    args: &Args,
    client: &Client,
    pods: &Api<Pod>,
    sss: &Api<SidecarSet>,
    ss_name: &str,
    n: usize,
) -> Result<Value> {
    // floor: a bare client patches the sidecar image of n pods and waits until kwok reports it
    let floor_sel = ListParams::default().labels("app=floor");
    create_pods(pods, "floor", "floor", true, n, args.concurrency).await?;
    wait_all(pods, &floor_sel, n, V1, None).await?;
    let w0 = api_writes(client).await?;
    let t0 = Instant::now();
    let patch = json!({"spec": {"containers": [{"name": SIDECAR, "image": V2}]}});
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
    wait_all(pods, &floor_sel, n, V2, None).await?;
    let floor_s = t0.elapsed().as_secs_f64();
    let w1 = api_writes(client).await?;
    // writes that trail the finish (kwok's events, other clients of the shared cluster)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let w1_after = api_writes(client).await?;
    pods.delete_collection(&DeleteParams::default().grace_period(0), &floor_sel)
        .await?;
    wait_for_gone(pods, &floor_sel).await?;

    // ours: n pods injected by the SidecarSet, then its sidecar image changes
    let ss: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": ss_name},
        "spec": {"selector": {"matchLabels": {"bench-sidecarset": ss_name}},
                 "containers": [{"name": SIDECAR, "image": V1}],
                 "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": args.max_unavailable}}
    }))?;
    kruise_e2e::create_sidecarset_and_wait(client, &ss, ss_name).await?;
    let sel = ListParams::default().labels("app=bench");
    futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let mut p = pod(&format!("bench-{i}"), "bench", false)?;
                p.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert("bench-sidecarset".into(), ss_name.into());
                pods.create(&PostParams::default(), &p)
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
    wait_all(pods, &sel, n, V1, Some((sss, ss_name))).await?;
    // let the controller settle (status written, no reconcile in flight) before counting
    tokio::time::sleep(Duration::from_secs(3)).await;
    let w2 = api_writes(client).await?;
    let t2 = Instant::now();
    let img = json!({"spec": {"containers": [{"name": SIDECAR, "image": V2}]}});
    sss.patch(ss_name, &PatchParams::default(), &Patch::Merge(img))
        .await?;
    wait_all(pods, &sel, n, V2, Some((sss, ss_name))).await?;
    let ours_s = t2.elapsed().as_secs_f64();
    let w3 = api_writes(client).await?;
    // writes that trail the finish (last status write, kwok's events, other clients)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let w4 = api_writes(client).await?;

    Ok(json!({
        "name": "sidecarset-upgrade",
        "params": {"pods": n, "floor_concurrency": args.concurrency, "nodes": "kwok",
                   "max_unavailable": args.max_unavailable},
        "floor_s": floor_s,
        "ours_s": ours_s,
        "ratio": ours_s / floor_s,
        "api_writes": {
            "floor": writes_per_pod(&w0, &w1, n),
            "floor_incl_5s_after": writes_per_pod(&w0, &w1_after, n),
            "ours": writes_per_pod(&w2, &w3, n),
            "ours_incl_5s_after": writes_per_pod(&w2, &w4, n),
        },
        "note": "api writes include every writer (kwok status updates, events, the SidecarSet patch itself); \
                 ours ends when status.updatedPods == pods and every pod's sidecar status shows the new image"
    }))
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
