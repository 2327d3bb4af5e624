//! Benchmark `imagepull-real` (shared/spec benchmarks.md): one ImagePullJob for `big:v1` (~50 MB) on
//! every real containerd node until Succeeded, against the floor measured in the same run: the same
//! image pulled with `ctr images pull` on every containerd in parallel. The image is removed from
//! every containerd (CRI RemoveImage, content garbage-collected) before each run. Prints one JSON
//! object; nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, ensure};
use clap::Parser;
use serde_json::json;
use std::time::Instant;

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
        kruise_e2e::remove_image_everywhere(&endpoints, &image).await?;
        floors.push(floor(&endpoints, &image)?);
        kruise_e2e::remove_image_everywhere(&endpoints, &image).await?;
        ourss.push(
            kruise_e2e::pull_job_on_cri_nodes(
                &client,
                "bench-imagepull-real",
                &image,
                nodes.len(),
                run,
            )
            .await?,
        );
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
