//! Benchmark `daemon-rss` (shared/spec benchmarks.md): the resident memory of every kruise-daemon of
//! the suite (PIDs from `$E2E_DIR/pids/daemon-*.pid`), read from `/proc/PID/status` (VmRSS and VmHWM):
//! idle, and while an ImagePullJob pulls `big:v1` (~50 MB, removed from every containerd first) on
//! every CRI node. Prints one JSON object; nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, ensure};
use clap::Parser;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
    kruise_e2e::remove_image_everywhere(&endpoints, &image).await?;
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
    let (pull_max, took) = sample_max(
        &pids,
        kruise_e2e::pull_job_on_cri_nodes(&client, "bench-daemon-rss", &image, nodes.len(), 0),
    )
    .await?;
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
