//! Benchmark `webhook-apiserver` (shared/spec benchmarks.md): pod creates through the API server,
//! at concurrency 1 and 16, for pods the pod webhook injects (a SidecarSet selects them, so the API
//! server calls kruise-rs) against a floor measured in the same run: the same creates of pods no
//! SidecarSet selects, which `matchConditions` keeps away from the webhook (the webhook is not
//! called, as if it were not registered). A third class of pods goes to a trivial webhook of the
//! benchmark's own (answers "allowed", no patch), registered the same way: what a webhook call costs
//! the API server apart from our handler and the injected sidecar. Prints one JSON object; nothing
//! fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use base64::Engine;
use clap::Parser;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kruise_crds::SidecarSet;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TRIVIAL: &str = "kruise-rs-bench-trivial-webhook";

/// webhook-apiserver benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// Pods per run.
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// Concurrencies to measure.
    #[arg(long, default_value = "1,16")]
    concurrency: String,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/webhook-apiserver.json")]
    out: String,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(
    pods: Api<Pod>,
    node: &str,
    label: &str,
    n: usize,
    conc: usize,
    prefix: &str,
) -> Result<Value> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conc {
        let (pods, next, node, label, prefix) = (
            pods.clone(),
            next.clone(),
            node.to_string(),
            label.to_string(),
            prefix.to_string(),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{prefix}-{i}"), "labels": {"bench-apiserver": label}},
                    "spec": {"nodeName": node, "containers": [{"name": "main", "image": "example.test/app:v1"}]}
                }))?;
                let t0 = Instant::now();
                pods.create(&PostParams::default(), &pod).await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(
        json!({"pods": n, "concurrency": conc, "seconds": secs, "creates_per_s": n as f64 / secs,
              "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99)}),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let env = kruise_e2e::Env::load()?.context("no e2e cluster is up")?;
    let client = env.client().await?;
    let node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;

    let ssapi: Api<SidecarSet> = Api::all(client.clone());
    let ss: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "bench-apiserver"},
        "spec": {"selector": {"matchLabels": {"bench-apiserver": "injected"}},
                 "containers": [{"name": "bench-agent", "image": "example.test/agent:v1"}]}
    }))?;
    let _ = ssapi
        .delete("bench-apiserver", &DeleteParams::default())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ssapi.create(&PostParams::default(), &ss).await?;
    // the trivial webhook, for pods labelled `bench-apiserver: trivial`
    let trivial =
        kruise_e2e::allow_all_webhook(env.get("E2E_WEBHOOK_CERT")?, env.get("E2E_WEBHOOK_KEY")?)
            .await?;
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = mwcs.delete(TRIVIAL, &DeleteParams::default()).await;
    let ca = std::fs::read(env.get("E2E_CA")?)?;
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": TRIVIAL},
        "webhooks": [{
            "name": "trivial.bench.kruise-rs.e2e",
            "clientConfig": {"url": format!("https://{trivial}/mutate-pod"),
                             "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca)},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
            "objectSelector": {"matchLabels": {"bench-apiserver": "trivial"}},
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10
        }]
    }))?;
    mwcs.create(&PostParams::default(), &mwc).await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // matchConditions follow within ~0.5 s

    let mut results = serde_json::Map::new();
    for conc in args
        .concurrency
        .split(',')
        .filter_map(|c| c.trim().parse::<usize>().ok())
    {
        let ns_name = format!("bench-apiserver-{conc}-{}", std::process::id());
        let nss: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(ns_name.clone());
        nss.create(&PostParams::default(), &ns).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
        // interleave floor and ours in halves to spread machine noise over both
        let half = args.pods / 2;
        let w0 = kruise_e2e::api_writes(&client).await?;
        let f1 = run(pods.clone(), &node, "plain", half, conc, "floor-a").await?;
        let t1 = run(pods.clone(), &node, "trivial", half, conc, "trivial-a").await?;
        let o1 = run(pods.clone(), &node, "injected", half, conc, "ours-a").await?;
        let f2 = run(
            pods.clone(),
            &node,
            "plain",
            args.pods - half,
            conc,
            "floor-b",
        )
        .await?;
        let o2 = run(
            pods.clone(),
            &node,
            "injected",
            args.pods - half,
            conc,
            "ours-b",
        )
        .await?;
        let t2 = run(
            pods.clone(),
            &node,
            "trivial",
            args.pods - half,
            conc,
            "trivial-b",
        )
        .await?;
        let writes = kruise_e2e::writes_between(&w0, &kruise_e2e::api_writes(&client).await?);
        let injected = pods.get("ours-a-0").await?;
        let names: Vec<String> = injected
            .spec
            .context("pod without spec")?
            .containers
            .into_iter()
            .map(|c| c.name)
            .collect();
        anyhow::ensure!(
            names.contains(&"bench-agent".to_string()),
            "the benchmark pods were not injected: {names:?}"
        );
        let avg = |a: &Value, b: &Value, k: &str| {
            (a[k].as_f64().unwrap_or(f64::NAN) + b[k].as_f64().unwrap_or(f64::NAN)) / 2.0
        };
        let floor = json!({"p50_ms": avg(&f1, &f2, "p50_ms"), "p99_ms": avg(&f1, &f2, "p99_ms"), "creates_per_s": avg(&f1, &f2, "creates_per_s")});
        let ours = json!({"p50_ms": avg(&o1, &o2, "p50_ms"), "p99_ms": avg(&o1, &o2, "p99_ms"), "creates_per_s": avg(&o1, &o2, "creates_per_s")});
        let trivial = json!({"p50_ms": avg(&t1, &t2, "p50_ms"), "p99_ms": avg(&t1, &t2, "p99_ms"), "creates_per_s": avg(&t1, &t2, "creates_per_s")});
        let over = |a: &Value, b: &Value, k: &str| {
            a[k].as_f64().unwrap_or(f64::NAN) / b[k].as_f64().unwrap_or(f64::NAN)
        };
        let ratio =
            json!({"p50": over(&ours, &floor, "p50_ms"), "p99": over(&ours, &floor, "p99_ms")});
        let trivial_ratio = json!({"p50": over(&trivial, &floor, "p50_ms"), "p99": over(&trivial, &floor, "p99_ms")});
        let pods_created = 3 * args.pods;
        results.insert(
            format!("concurrency_{conc}"),
            json!({"floor": floor, "ours": ours, "ratio": ratio,
                   "trivial_webhook": trivial, "trivial_ratio": trivial_ratio,
                   "api_writes_per_pod": kruise_e2e::writes_total(&writes) / pods_created as f64,
                   "api_writes": writes,
                   "runs": [f1, t1, o1, f2, t2, o2]}),
        );
        let _ = nss.delete(&ns_name, &DeleteParams::background()).await;
    }
    let _ = ssapi
        .delete("bench-apiserver", &DeleteParams::default())
        .await;
    let _ = mwcs.delete(TRIVIAL, &DeleteParams::default()).await;
    let out = json!({"name": "webhook-apiserver", "params": {"pods": args.pods, "concurrency": args.concurrency},
                     "results": results});
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}
