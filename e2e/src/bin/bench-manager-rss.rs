//! Benchmark `manager-rss` (shared/spec benchmarks.md): kruise-manager's resident memory (VmRSS,
//! sampled every second, and the kernel's VmHWM) after settling with N pods across CloneSets on kwok
//! nodes, plus SidecarSets injecting into them and ImagePullJobs over the nodes. Extra kwok-managed
//! Node objects are created for the run and everything is deleted afterwards. Prints one JSON object;
//! nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kruise_crds::{CloneSet, ImagePullJob, NodeImage, SidecarSet};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// manager-rss.
#[derive(Parser, Debug)]
struct Args {
    /// Pods in all, spread evenly over the CloneSets.
    #[arg(long, default_value_t = 5000)]
    pods: usize,
    /// CloneSets.
    #[arg(long, default_value_t = 50)]
    clonesets: usize,
    /// SidecarSets (each injects into the pods of one CloneSet).
    #[arg(long, default_value_t = 10)]
    sidecarsets: usize,
    /// ImagePullJobs (over the benchmark's nodes; no daemon serves them, so they stay active).
    #[arg(long, default_value_t = 20)]
    jobs: usize,
    /// Kwok nodes to add for the run (the cluster's own `type=kwok` nodes are used too).
    #[arg(long, default_value_t = 497)]
    extra_nodes: usize,
    /// Seconds to wait once every pod is ready, sampling RSS, before reading the settled value.
    #[arg(long, default_value_t = 60)]
    settle: u64,
    /// Most seconds for every pod to become ready.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/manager-rss.json")]
    out: String,
}

const BENCH_LABEL: &str = "kruise-rs.e2e/bench";
const BENCH_VALUE: &str = "manager-rss";

/// `VmRSS` and `VmHWM` of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

fn node(name: &str) -> Result<Node> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok", BENCH_LABEL: BENCH_VALUE}
        },
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"}}
    }))?)
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Sum of mutating requests the API server has served.
async fn api_writes(client: &Client) -> Result<f64> {
    Ok(kruise_e2e::writes_total(
        &kruise_e2e::api_writes(client).await?,
    ))
}

/// Runs `n` futures made by `f` with at most `c` at a time; fails on the first error.
async fn bounded<F, Fut>(n: usize, c: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(0..n)
        .map(f)
        .buffer_unordered(c)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .map(|_| ())
}

async fn poll<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

struct Run {
    client: Client,
    ns: String,
    prefix: String,
    node_names: Vec<String>,
}

impl Run {
    async fn setup(&self, args: &Args, samples: &Arc<Mutex<Vec<u64>>>) -> Result<Value> {
        let client = &self.client;
        let nodes: Api<Node> = Api::all(client.clone());
        let t0 = Instant::now();
        bounded(self.node_names.len(), 16, |i| {
            let (nodes, name) = (nodes.clone(), self.node_names[i].clone());
            async move {
                nodes.create(&PostParams::default(), &node(&name)?).await?;
                Ok(())
            }
        })
        .await?;
        let sel = ListParams::default().labels(&format!("{BENCH_LABEL}={BENCH_VALUE}"));
        let want = self.node_names.len();
        poll("bench nodes Ready", Duration::from_secs(300), || async {
            let l = nodes.list(&sel).await?.items;
            Ok(l.iter().filter(|n| node_ready(n)).count() == want)
        })
        .await?;
        let nodes_s = t0.elapsed().as_secs_f64();

        for k in 0..args.sidecarsets {
            let ss: SidecarSet = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
                "metadata": {"name": format!("{}-{k}", self.prefix)},
                "spec": {
                    "namespace": self.ns,
                    "selector": {"matchLabels": {"rss-sidecar": format!("{}-{k}", self.prefix)}},
                    "containers": [{"name": format!("agent-{k}"), "image": "example.test/agent:v1"}],
                    "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1}
                }
            }))?;
            kruise_e2e::create_sidecarset_and_wait(client, &ss, &format!("{}-{k}", self.prefix))
                .await?;
        }

        let css: Api<CloneSet> = Api::namespaced(client.clone(), &self.ns);
        let w0 = api_writes(client).await?;
        let t1 = Instant::now();
        let per = args.pods / args.clonesets.max(1);
        for k in 0..args.clonesets {
            let app = format!("rss-{k}");
            let mut labels = json!({"app": app});
            if k < args.sidecarsets {
                labels["rss-sidecar"] = json!(format!("{}-{k}", self.prefix));
            }
            let cs: CloneSet = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                "metadata": {"name": app},
                "spec": {
                    "replicas": per,
                    "selector": {"matchLabels": {"app": app}},
                    "template": {"metadata": {"labels": labels},
                                 "spec": {"nodeSelector": {"type": "kwok"},
                                          "terminationGracePeriodSeconds": 0,
                                          "containers": [{"name": "main", "image": "example.test/app:v1"}]}},
                    "updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": "20%"}
                }
            }))?;
            css.create(&PostParams::default(), &cs).await?;
        }
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &self.ns);
        for k in 0..args.jobs {
            let job: ImagePullJob = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                "metadata": {"name": format!("rss-job-{k}")},
                "spec": {"image": format!("example.test/warm-{k}:v1"),
                         "selector": {"matchLabels": {BENCH_LABEL: BENCH_VALUE}},
                         "parallelism": 10,
                         "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 3600}}
            }))?;
            jobs.create(&PostParams::default(), &job).await?;
        }
        let total = per * args.clonesets;
        let last_print = std::cell::Cell::new(Instant::now());
        poll(
            &format!("{total} CloneSet pods ready"),
            Duration::from_secs(args.timeout),
            || async {
                let list = css.list(&ListParams::default()).await?.items;
                let ready: i32 = list
                    .iter()
                    .map(|c| c.status.as_ref().map_or(0, |s| s.ready_replicas))
                    .sum();
                if last_print.get().elapsed() > Duration::from_secs(30) {
                    eprintln!(
                        "{:>5.0}s {ready}/{total} ready, manager RSS {} KiB",
                        t1.elapsed().as_secs_f64(),
                        samples
                            .lock()
                            .map(|s| s.last().copied().unwrap_or(0))
                            .unwrap_or(0)
                    );
                    last_print.set(Instant::now());
                }
                Ok(ready as usize == total)
            },
        )
        .await?;
        let ready_s = t1.elapsed().as_secs_f64();
        let w1 = api_writes(client).await?;
        Ok(
            json!({"nodes_ready_s": nodes_s, "pods_ready_s": ready_s, "pods": total,
                  "api_writes_to_ready": w1 - w0}),
        )
    }

    /// Deletes everything the run created and waits for the pods and nodes to be gone.
    async fn cleanup(&self, sidecarsets: usize) -> Result<f64> {
        let t = Instant::now();
        let client = &self.client;
        let css: Api<CloneSet> = Api::namespaced(client.clone(), &self.ns);
        let _ = css
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
        let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &self.ns);
        let _ = jobs
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
        let sss: Api<SidecarSet> = Api::all(client.clone());
        for k in 0..sidecarsets {
            let _ = sss
                .delete(&format!("{}-{k}", self.prefix), &DeleteParams::default())
                .await;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &self.ns);
        let _ = pods
            .delete_collection(
                &DeleteParams::background().grace_period(0),
                &ListParams::default(),
            )
            .await;
        let gone = poll("bench pods deleted", Duration::from_secs(900), || async {
            Ok(pods
                .list_metadata(&ListParams::default().limit(1))
                .await?
                .items
                .is_empty())
        })
        .await;
        let nss: Api<Namespace> = Api::all(client.clone());
        let _ = nss.delete(&self.ns, &DeleteParams::background()).await;
        let nodes: Api<Node> = Api::all(client.clone());
        let _ = nodes
            .delete_collection(
                &DeleteParams::background(),
                &ListParams::default().labels(&format!("{BENCH_LABEL}={BENCH_VALUE}")),
            )
            .await;
        // NodeImages of deleted nodes: the NodeImage controller removes them; make sure.
        let nis: Api<NodeImage> = Api::all(client.clone());
        poll("bench nodes deleted", Duration::from_secs(300), || async {
            Ok(nodes
                .list_metadata(
                    &ListParams::default().labels(&format!("{BENCH_LABEL}={BENCH_VALUE}")),
                )
                .await?
                .items
                .is_empty())
        })
        .await?;
        for name in &self.node_names {
            let _ = nis.delete(name, &DeleteParams::default()).await;
        }
        gone?;
        Ok(t.elapsed().as_secs_f64())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let env = kruise_e2e::Env::load()?.context("no e2e cluster is up")?;
    let client = env.client().await?;
    let pid_file = PathBuf::from(env.get("E2E_DIR")?).join("pids/manager.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("read {}", pid_file.display()))?
        .trim()
        .parse()?;
    let (rss0, hwm0) = rss_kib(pid)?;

    let samples = Arc::new(Mutex::new(Vec::<u64>::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((rss, _)) = rss_kib(pid)
                    && let Ok(mut s) = samples.lock()
                {
                    s.push(rss);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let me = std::process::id();
    let ns = format!("bench-rss-{me}");
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut nsobj = Namespace::default();
    nsobj.metadata.name = Some(ns.clone());
    nss.create(&PostParams::default(), &nsobj).await?;
    let run = Run {
        client: client.clone(),
        ns: ns.clone(),
        prefix: format!("bench-rss-{me}"),
        node_names: (0..args.extra_nodes)
            .map(|i| format!("bench-rss-{me}-{i}"))
            .collect(),
    };
    let setup = run.setup(&args, &samples).await;
    let mut settled = Vec::new();
    if setup.is_ok() {
        let start = samples.lock().map(|s| s.len()).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        settled = samples
            .lock()
            .map(|s| s[start.min(s.len())..].to_vec())
            .unwrap_or_default();
    }
    let (rss1, hwm1) = rss_kib(pid)?;
    let peak_sampled = samples
        .lock()
        .map(|s| s.iter().copied().max().unwrap_or(0))
        .unwrap_or(0);
    let cleanup = run.cleanup(args.sidecarsets).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss2, _) = rss_kib(pid)?;
    sampler.abort();
    let timings = setup?;
    let cleanup_s = cleanup?;

    // Settled: the last third of the settle window (the caches are full and the queues are idle).
    let tail = &settled[settled.len() * 2 / 3..];
    let settled_kib = if tail.is_empty() {
        rss1
    } else {
        tail.iter().sum::<u64>() / tail.len() as u64
    };
    let nodes_total = args.extra_nodes + env.list("E2E_KWOK_NODES").len();
    let out = json!({
        "name": "manager-rss",
        "params": {"pods": timings["pods"], "clonesets": args.clonesets,
                   "sidecarsets": args.sidecarsets, "imagepulljobs": args.jobs,
                   "kwok_nodes": nodes_total, "settle_s": args.settle},
        "rss_mib": {
            "before": mib(rss0),
            "settled": mib(settled_kib),
            "end_of_settle": mib(rss1),
            "peak_sampled": mib(peak_sampled),
            "after_cleanup": mib(rss2),
        },
        "vmhwm_mib": {"before": mib(hwm0), "after": mib(hwm1)},
        "target_settled_mib": 64,
        "timings_s": {"nodes_ready": timings["nodes_ready_s"], "pods_ready": timings["pods_ready_s"],
                      "cleanup": cleanup_s},
        "api_writes_to_ready": timings["api_writes_to_ready"],
        "note": "VmHWM is the manager process's lifetime peak (it includes whatever ran before); \
                 peak_sampled is the highest VmRSS sampled every second during this run"
    });
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)? + "\n")?;
    Ok(())
}
