//! Benchmark `imagepull-fanout` (shared/spec benchmarks.md): J ImagePullJobs (`completionPolicy:
//! Never`, one image each) × N nodes. The nodes are plain Node objects (no kubelet); a fixture in
//! this process acts as their daemons: it watches their NodeImages and writes every wanted tag
//! `Succeeded`, as kruise-daemon would. Measured until steady (every job reports N succeeded) and
//! then at steady state: manager reconciles/s (its `/metrics`), API writes per (job, node) (the API
//! server's `apiserver_request_total`, the fixture's own status writes counted apart), and manager
//! CPU (`/proc/PID/stat` utime+stime). Everything it creates is deleted. Prints one JSON object.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, ensure};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kruise_crds::{
    ImagePullJob, ImagePullPhase, ImageStatus, ImageTagStatus, NodeImage, NodeImageStatus,
};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// imagepull-fanout.
#[derive(Parser, Debug)]
struct Args {
    /// Nodes (Node objects created for the run).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// ImagePullJobs.
    #[arg(long, default_value_t = 100)]
    jobs: usize,
    /// Seconds measured at steady state.
    #[arg(long, default_value_t = 60)]
    steady_seconds: u64,
    /// Give up waiting for steady state after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Concurrent creations / fixture writers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/imagepull-fanout.json")]
    out: String,
}

const LABEL: &str = "kruise-rs.e2e/fanout";

/// Writes by resource (`nodeimages`, `nodeimages/status`, `imagepulljobs`, …) the API server served.
async fn api_writes(client: &Client) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (k, v) in kruise_e2e::api_writes(client).await? {
        let res = k.split_once(' ').map_or(k.as_str(), |(_, r)| r).to_string();
        *out.entry(res).or_insert(0.0) += v;
    }
    Ok(out)
}

/// Reconciles of the image warm-up controllers from the manager's `/metrics` (None if not exposed).
fn reconciles() -> Option<f64> {
    let out = std::process::Command::new("curl")
        .args(["-fs", "http://127.0.0.1:8000/metrics"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
        .filter(|l| l.contains("imagepulljob-controller") || l.contains("nodeimage-controller"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.iter().sum())
}

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(") ").context("stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

#[derive(Clone, Debug)]
struct Snap {
    at: Instant,
    cpu: f64,
    writes: BTreeMap<String, f64>,
    reconciles: Option<f64>,
    fixture: u64,
}

async fn snap(client: &Client, pid: u32, fixture: &AtomicU64) -> Result<Snap> {
    Ok(Snap {
        at: Instant::now(),
        cpu: cpu_seconds(pid)?,
        writes: api_writes(client).await?,
        reconciles: reconciles(),
        fixture: fixture.load(Ordering::Relaxed),
    })
}

fn delta(a: &Snap, b: &Snap, jobs_nodes: f64) -> Value {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    let d =
        |k: &str| b.writes.get(k).copied().unwrap_or(0.0) - a.writes.get(k).copied().unwrap_or(0.0);
    let fixture = (b.fixture - a.fixture) as f64;
    // NodeImage status writes not made by the fixture are the manager's (tag timeouts)
    let manager_writes = d("nodeimages")
        + (d("nodeimages/status") - fixture).max(0.0)
        + d("imagepulljobs")
        + d("imagepulljobs/status");
    let rec = a.reconciles.zip(b.reconciles).map(|(x, y)| y - x);
    json!({
        "seconds": secs,
        "manager_cpu_percent_of_a_core": (b.cpu - a.cpu) / secs * 100.0,
        "reconciles": rec,
        "reconciles_per_s": rec.map(|r| r / secs),
        "api_writes": {
            "nodeimages": d("nodeimages"),
            "nodeimages_status": d("nodeimages/status"),
            "imagepulljobs": d("imagepulljobs"),
            "imagepulljobs_status": d("imagepulljobs/status"),
            "events": d("events"),
            "fixture_status_writes": fixture,
        },
        "manager_writes": manager_writes,
        "manager_writes_per_job_node": manager_writes / jobs_nodes,
        "manager_writes_per_s": manager_writes / secs,
    })
}

/// The status a daemon would write once every wanted tag is pulled.
fn succeeded_status(ni: &NodeImage, now: &Time) -> NodeImageStatus {
    let mut images = BTreeMap::new();
    let mut n = 0;
    for (name, spec) in ni.spec.images.iter().flatten() {
        let tags: Vec<ImageTagStatus> = spec
            .tags
            .iter()
            .map(|t| ImageTagStatus {
                tag: t.tag.clone(),
                phase: ImagePullPhase::Succeeded,
                progress: Some(100),
                start_time: Some(now.clone()),
                completion_time: Some(now.clone()),
                version: t.version,
                image_id: Some(format!("{name}@sha256:{:064x}", 0)),
                message: None,
            })
            .collect();
        n += tags.len() as i32;
        images.insert(name.clone(), ImageStatus { tags });
    }
    NodeImageStatus {
        desired: n,
        succeeded: Some(n),
        failed: Some(0),
        pulling: Some(0),
        waiting: Some(0),
        image_statuses: (!images.is_empty()).then_some(images),
        first_sync_status: None,
        conditions: ni.status.as_ref().and_then(|s| s.conditions.clone()),
        observed_generation: ni.metadata.generation,
    }
}

/// Whether the stored status already reports every wanted tag Succeeded at its version.
fn up_to_date(ni: &NodeImage) -> bool {
    let st = ni.status.as_ref().and_then(|s| s.image_statuses.as_ref());
    ni.spec.images.iter().flatten().all(|(name, spec)| {
        spec.tags.iter().all(|t| {
            st.and_then(|m| m.get(name)).is_some_and(|s| {
                s.tags.iter().any(|x| {
                    x.tag == t.tag && x.version == t.version && x.phase == ImagePullPhase::Succeeded
                })
            })
        })
    })
}

/// The fixture: every NodeImage of the run's nodes gets its wanted tags written Succeeded.
async fn fixture(client: Client, run: String, writes: Arc<AtomicU64>, concurrency: usize) {
    let api: Api<NodeImage> = Api::all(client);
    let latest: Arc<Mutex<HashMap<String, NodeImage>>> = Default::default();
    let queued: Arc<Mutex<HashSet<String>>> = Default::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..concurrency {
        let (api, latest, queued, rx, tx, writes) = (
            api.clone(),
            latest.clone(),
            queued.clone(),
            rx.clone(),
            tx.clone(),
            writes.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Some(name) = rx.lock().await.recv().await else {
                    return;
                };
                queued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
                let Some(ni) = latest
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&name)
                    .cloned()
                else {
                    continue;
                };
                if up_to_date(&ni) {
                    continue;
                }
                let now = Time(Timestamp::now());
                let mut obj = ni.clone();
                obj.metadata.managed_fields = None;
                obj.status = Some(succeeded_status(&ni, &now));
                match api
                    .replace_status(&name, &PostParams::default(), &obj)
                    .await
                {
                    Ok(_) => {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        // a newer object is on its way through the watch, which queues it again
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("fixture: status of {name}: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if queued
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.clone())
                        {
                            let _ = tx.send(name);
                        }
                    }
                }
            }
        });
    }
    let cfg = watcher::Config::default().labels(&format!("{LABEL}={run}"));
    let mut stream = watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(ev) = stream.next().await {
        let Ok(ni) = ev else { continue };
        let name = ni.name_any();
        latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), ni);
        if queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone())
        {
            let _ = tx.send(name);
        }
    }
}

fn node(name: &str, run: &str) -> Result<Node> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {LABEL: run, "kubernetes.io/hostname": name}},
        // no pod may land here
        "spec": {"taints": [{"key": "kruise-rs.e2e/no-pods", "effect": "NoSchedule"}]},
    }))?)
}

fn ready_status() -> Value {
    let t = Timestamp::now() - SignedDuration::from_secs(3600);
    let t = Timestamp::from_second(t.as_second())
        .map(|t| t.to_string())
        .unwrap_or_default();
    json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Bench",
                                      "lastHeartbeatTime": t, "lastTransitionTime": t}]}})
}

async fn count_node_images(api: &Api<NodeImage>, run: &str) -> Result<usize> {
    Ok(api
        .list_metadata(&ListParams::default().labels(&format!("{LABEL}={run}")))
        .await?
        .items
        .len())
}

async fn steady(jobs: &Api<ImagePullJob>, n: usize, deadline: Instant) -> Result<()> {
    loop {
        let list = jobs.list(&ListParams::default()).await?.items;
        let done = list
            .iter()
            .filter(|j| {
                j.status
                    .as_ref()
                    .is_some_and(|s| s.desired == n as i32 && s.succeeded == Some(n as i32))
            })
            .count();
        if done == list.len() && !list.is_empty() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "not steady: {done}/{} jobs report {n} succeeded",
            list.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn cleanup(client: &Client, run: &str, ns: &str) -> Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let _ = nss.delete(ns, &DeleteParams::background()).await;
    let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), ns);
    for _ in 0..240 {
        if jobs
            .list_metadata(&ListParams::default())
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(true)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{LABEL}={run}"));
    nodes
        .delete_collection(&DeleteParams::default(), &lp)
        .await?;
    let nis: Api<NodeImage> = Api::all(client.clone());
    for _ in 0..240 {
        if count_node_images(&nis, run).await? == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("NodeImages of run {run} still there after the Nodes were deleted")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let env = kruise_e2e::Env::load()?.context("no e2e cluster is up")?;
    ensure!(
        env.get("E2E_SUITE").is_ok_and(|v| v == "1"),
        "the suite is not running"
    );
    let client = env.client().await?;
    let pid: u32 = std::fs::read_to_string(format!("{}/pids/manager.pid", env.get("E2E_DIR")?))?
        .trim()
        .parse()?;
    let run = format!("{}", std::process::id());
    let ns = format!("bench-fanout-{run}");
    let res = measure(&args, &client, pid, &run, &ns).await;
    let cleaned = cleanup(&client, &run, &ns).await;
    let out = res?;
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    cleaned
}

async fn measure(args: &Args, client: &Client, pid: u32, run: &str, ns: &str) -> Result<Value> {
    let (n, j) = (args.nodes, args.jobs);
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    let created: Vec<Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let name = format!("bench-fanout-{run}-{i}");
                nodes
                    .create(&PostParams::default(), &node(&name, run)?)
                    .await?;
                nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&ready_status()),
                    )
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    created.into_iter().collect::<Result<Vec<()>>>()?;
    let nodes_s = t.elapsed().as_secs_f64();
    let nis: Api<NodeImage> = Api::all(client.clone());
    while count_node_images(&nis, run).await? < n {
        ensure!(
            t.elapsed() < Duration::from_secs(args.timeout),
            "NodeImages not all created"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let node_images_s = t.elapsed().as_secs_f64();

    let writes = Arc::new(AtomicU64::new(0));
    let fx = tokio::spawn(fixture(
        client.clone(),
        run.to_string(),
        writes.clone(),
        args.concurrency,
    ));
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), ns);
    let s0 = snap(client, pid, &writes).await?;
    let created: Vec<Result<()>> = futures::stream::iter(0..j)
        .map(|i| {
            let jobs = jobs.clone();
            async move {
                let job: ImagePullJob = serde_json::from_value(json!({
                    "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                    "metadata": {"name": format!("fanout-{i}")},
                    "spec": {"image": format!("example.test/fanout-{i}:v1"), "parallelism": n,
                             "selector": {"matchLabels": {LABEL: run}},
                             "completionPolicy": {"type": "Never"}}
                }))?;
                jobs.create(&PostParams::default(), &job).await?;
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    created.into_iter().collect::<Result<Vec<()>>>()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let waited = steady(&jobs, n, deadline).await;
    let s1 = snap(client, pid, &writes).await?;
    let ramp = delta(&s0, &s1, (n * j) as f64);
    eprintln!("until steady: {ramp}");
    if let Err(e) = waited {
        eprintln!("not steady; until now: {ramp}");
        fx.abort();
        return Err(e.context(format!("until steady so far: {ramp}")));
    }
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let s2 = snap(client, pid, &writes).await?;
    fx.abort();
    let steady = delta(&s1, &s2, (n * j) as f64);
    Ok(json!({
        "name": "imagepull-fanout",
        "params": {"nodes": n, "jobs": j, "completion_policy": "Never", "steady_seconds": args.steady_seconds,
                   "node_kind": "plain Node objects (no kubelet), Ready; a fixture writes NodeImage status as the daemons would"},
        "setup": {"nodes_created_s": nodes_s, "node_images_ready_s": node_images_s},
        "until_steady": ramp,
        "steady": steady,
        "targets": {"manager_writes_per_job_node": "O(1)", "steady_manager_cpu_percent_of_a_core": 5},
        "note": "manager_writes = nodeimages spec writes + imagepulljobs (+status) + nodeimages/status writes beyond the fixture's; the fixture's own status writes (incl. conflicts) are listed apart; reconciles need the manager to expose the imagepull controllers' controller_runtime_reconcile_total (null otherwise)",
    }))
}
