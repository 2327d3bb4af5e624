//! Benchmark `imagepull-real` (shared/spec benchmarks.md): one ImagePullJob for `big:v1` (~50 MB) on
//! every real containerd node until Succeeded, against the floor measured in the same run: the same
//! image pulled with `ctr images pull` on every containerd in parallel. The image is removed from
//! every containerd (CRI RemoveImage, content garbage-collected) before each run. Prints one JSON
//! object; nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, ensure};
use clap::Parser;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{ImageSpec, ListImagesRequest, RemoveImageRequest};
use k8s_openapi::api::core::v1::Namespace;
use kruise_crds::ImagePullJob;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// imagepull-real.
#[derive(Parser, Debug)]
struct Args {
    /// Runs of each side (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/imagepull-real.json")]
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

/// `ctr images pull` on every containerd at once; seconds until the last one is done.
fn floor(endpoints: &[String], image: &str) -> Result<f64> {
    let start = Instant::now();
    let mut children = Vec::new();
    for ep in endpoints {
        let sock = ep.trim_start_matches("unix://");
        children.push(
            std::process::Command::new("ctr")
                .args([
                    "--address",
                    sock,
                    "-n",
                    "k8s.io",
                    "images",
                    "pull",
                    "--plain-http",
                    image,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("ctr")?,
        );
    }
    for c in children {
        let out = c.wait_with_output()?;
        ensure!(
            out.status.success(),
            "ctr pull: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed().as_secs_f64())
}

/// One ImagePullJob on every CRI node; seconds from create until the job reports completion.
async fn ours(client: &kube::Client, image: &str, nodes: usize, run: usize) -> Result<f64> {
    let ns_name = format!("bench-imagepull-real-{}-{run}", std::process::id());
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
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
    ensure!(!endpoints.is_empty(), "no CRI nodes");
    let image = format!("{}/big:v1", env.get("E2E_REGISTRY")?);
    let (mut floors, mut ourss) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        remove_everywhere(&endpoints, &image).await?;
        floors.push(floor(&endpoints, &image)?);
        remove_everywhere(&endpoints, &image).await?;
        ourss.push(ours(&client, &image, nodes.len(), run).await?);
    }
    let (f, o) = (median(&mut floors.clone()), median(&mut ourss.clone()));
    let out = json!({
        "name": "imagepull-real",
        "params": {"image": image, "image_mb": 50, "cri_nodes": nodes.len(), "runs": args.runs},
        "floor_s": f,
        "ours_s": o,
        "ratio": o / f,
        "target_ratio": 1.3,
        "floor_runs_s": floors,
        "ours_runs_s": ourss,
        "note": "floor: `ctr -n k8s.io images pull --plain-http` on every containerd in parallel; ours: ImagePullJob create → status.completionTime with succeeded == nodes (includes the daemon's status write and the controller's status update); image removed from every containerd before each run",
    });
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}
