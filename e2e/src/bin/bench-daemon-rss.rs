//! Benchmark `daemon-rss` (shared/spec benchmarks.md): the resident memory of every kruise-daemon of
//! the suite (PIDs from `$E2E_DIR/pids/daemon-*.pid`), read from `/proc/PID/status` (VmRSS and VmHWM):
//! idle, and while an ImagePullJob pulls `big:v1` (~50 MB, removed from every containerd first) on
//! every CRI node. Prints one JSON object; nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, ensure};
use clap::Parser;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{ImageSpec, ListImagesRequest, RemoveImageRequest};
use k8s_openapi::api::core::v1::Namespace;
use kruise_crds::ImagePullJob;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// daemon-rss.
#[derive(Parser, Debug)]
struct Args {
    /// Seconds of idle sampling.
    #[arg(long, default_value_t = 5)]
    idle_seconds: u64,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/daemon-rss.json")]
    out: String,
}

async fn cri(endpoint: &str) -> Result<ImageServiceClient<Channel>> {
    let channel = kruise_e2e::cri_channel(endpoint).await?;
    Ok(ImageServiceClient::new(channel))
}

/// Removes every image record carrying `image` from the containerd at `endpoint` (by image id, so
/// the digest and id references go too and the content is collected).
async fn remove_everywhere(endpoints: &[String], image: &str) -> Result<()> {
    for ep in endpoints {
        let mut c = cri(ep).await?;
        let imgs = c
            .list_images(ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images;
        for img in imgs
            .iter()
            .filter(|i| i.repo_tags.iter().any(|t| t == image))
        {
            c.remove_image(RemoveImageRequest {
                image: Some(ImageSpec {
                    image: img.id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        }
        let left = c
            .list_images(ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images;
        ensure!(
            !left.iter().any(|i| i.repo_tags.iter().any(|t| t == image)),
            "{image} still on {ep}"
        );
    }
    Ok(())
}

/// One ImagePullJob on every CRI node; seconds from create until the job reports completion.
async fn ours(client: &kube::Client, image: &str, nodes: usize, run: usize) -> Result<f64> {
    let ns_name = format!("bench-daemon-rss-{}-{run}", std::process::id());
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns_name}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns_name);
    let job: ImagePullJob = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
        "metadata": {"name": "big"},
        "spec": {"image": image, "parallelism": nodes,
                 "selector": {"matchLabels": {"kruise-rs.e2e/cri": "true"}},
                 "pullPolicy": {"backoffLimit": 3, "timeoutSeconds": 300},
                 "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}}
    }))?;
    let start = Instant::now();
    jobs.create(&PostParams::default(), &job).await?;
    let res = loop {
        let j = jobs.get("big").await?;
        if let Some(st) = j.status.filter(|s| s.completion_time.is_some()) {
            break if st.succeeded == Some(nodes as i32) {
                Ok(start.elapsed().as_secs_f64())
            } else {
                Err(anyhow::anyhow!("job ended without every node: {st:?}"))
            };
        }
        if start.elapsed() > Duration::from_secs(600) {
            break Err(anyhow::anyhow!("job did not finish in 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = jobs.delete("big", &DeleteParams::default()).await;
    let _ = nss.delete(&ns_name, &DeleteParams::background()).await;
    res
}

/// `(VmRSS, VmHWM)` of `pid` in KiB.
fn mem(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Ok((
        field("VmRSS:").context("VmRSS")?,
        field("VmHWM:").context("VmHWM")?,
    ))
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 100.0).round() / 100.0
}

/// The highest VmRSS of each daemon while `until` is not done, sampling every 50 ms.
async fn sample_max<F: std::future::Future>(
    pids: &[(String, u32)],
    until: F,
) -> Result<(Vec<u64>, F::Output)> {
    let mut max = vec![0u64; pids.len()];
    tokio::pin!(until);
    loop {
        for (i, (_, pid)) in pids.iter().enumerate() {
            max[i] = max[i].max(mem(*pid)?.0);
        }
        tokio::select! {
            out = &mut until => return Ok((max, out)),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
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
    let endpoints = env.cri_endpoints();
    let nodes = env.list("E2E_CRI_NODES");
    let dir = env.get("E2E_DIR")?;
    let mut pids = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let f = format!("{dir}/pids/daemon-{i}.pid");
        let pid: u32 = std::fs::read_to_string(&f)
            .with_context(|| f.clone())?
            .trim()
            .parse()?;
        pids.push((node.clone(), pid));
    }
    ensure!(!pids.is_empty(), "no daemons");
    let image = format!("{}/big:v1", env.get("E2E_REGISTRY")?);
    remove_everywhere(&endpoints, &image).await?;
    // idle: no pull under way
    let (idle_max, _) = sample_max(
        &pids,
        tokio::time::sleep(Duration::from_secs(args.idle_seconds)),
    )
    .await?;
    let idle_hwm: Vec<u64> = pids
        .iter()
        .map(|(_, p)| mem(*p).map(|m| m.1))
        .collect::<Result<_>>()?;
    let start = Instant::now();
    let (pull_max, took) = sample_max(&pids, ours(&client, &image, nodes.len(), 0)).await?;
    took?;
    let pull_s = start.elapsed().as_secs_f64();
    let after: Vec<(u64, u64)> = pids.iter().map(|(_, p)| mem(*p)).collect::<Result<_>>()?;
    let per: Vec<Value> = pids
        .iter()
        .enumerate()
        .map(|(i, (node, pid))| {
            json!({"node": node, "pid": pid,
                   "idle_rss_mib": mib(idle_max[i]), "idle_hwm_mib": mib(idle_hwm[i]),
                   "pulling_rss_max_mib": mib(pull_max[i]), "hwm_after_pull_mib": mib(after[i].1),
                   "rss_after_pull_mib": mib(after[i].0)})
        })
        .collect();
    let worst = |f: &dyn Fn(usize) -> u64| mib((0..pids.len()).map(f).max().unwrap_or(0));
    let out = json!({
        "name": "daemon-rss",
        "params": {"image": image, "image_mb": 50, "daemons": pids.len(), "idle_seconds": args.idle_seconds},
        "idle_rss_mib": worst(&|i| idle_max[i]),
        "pulling_rss_mib": worst(&|i| pull_max[i]),
        "hwm_mib": worst(&|i| after[i].1),
        "target_idle_mib": 16,
        "pull_s": pull_s,
        "daemons": per,
        "note": "max over the daemons of VmRSS sampled every 50 ms; idle = no pull under way (the image was just removed); pulling = while one ImagePullJob pulls big:v1 on every CRI node; hwm = VmHWM (lifetime peak) after the pull",
    });
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}
