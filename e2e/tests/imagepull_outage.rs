//! Disruptive image warm-up test: the containerd of one CRI node (never the kubelet's) is killed
//! while kruise-daemon's pull of `big:v1` is in flight and started again; the pull is retried and
//! the job ends Succeeded. Run alone by `e2e/cluster test` (`--ignored --test-threads=1`).
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{ImageSpec, ListImagesRequest, RemoveImageRequest};
use kruise_crds::ImagePullJob;
use kruise_e2e::{Env, env_or_skip, wait_for, with_temp_ns};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use std::time::Duration;
use tonic::transport::Channel;

async fn cri(endpoint: &str) -> Result<ImageServiceClient<Channel>> {
    let channel = kruise_e2e::cri_channel(endpoint).await?;
    Ok(ImageServiceClient::new(channel))
}

async fn cri_has(endpoint: &str, image: &str) -> Result<bool> {
    let imgs = cri(endpoint)
        .await?
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner()
        .images;
    Ok(imgs.iter().any(|i| i.repo_tags.iter().any(|t| t == image)))
}

/// A value from the daemon's `/metrics` on `addr`.
fn daemon_metric(addr: &str, name: &str) -> Result<f64> {
    let out = std::process::Command::new("curl")
        .args(["-fs", &format!("http://{addr}/metrics")])
        .output()?;
    ensure!(
        out.status.success(),
        "daemon /metrics on {addr} unreachable"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
        .with_context(|| format!("{name} missing from {addr}/metrics"))
}

fn signal(sig: &str, pid: u32) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

/// The containerd of CRI node `i`: its PID file and the command line it was started with.
struct Containerd {
    pid_file: String,
    log: String,
    pid: u32,
    argv: Vec<String>,
}

impl Containerd {
    fn find(env: &Env, i: usize) -> Result<Containerd> {
        let dir = env.get("E2E_DIR")?;
        let pid_file = format!("{dir}/pids/containerd-{i}.pid");
        let pid: u32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
        let argv = std::fs::read(format!("/proc/{pid}/cmdline"))?
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect::<Vec<_>>();
        ensure!(
            argv.first().is_some_and(|a| a.ends_with("containerd")),
            "PID {pid} is not containerd: {argv:?}"
        );
        Ok(Containerd {
            pid_file,
            log: format!("{dir}/logs/containerd-{i}.log"),
            pid,
            argv,
        })
    }

    /// Starts it again as `e2e/cluster` does (own session, log appended) and records the new PID.
    /// Every inherited descriptor above stderr is closed first: this test runs under `flock`, and a
    /// containerd holding the lock's descriptor would keep the lock for its whole life.
    fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(CLOSE_FDS_AND_EXEC)
            .arg("bash")
            .args(&self.argv)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        // bash execs setsid, which execs in place (no fork) when it is not a process-group
        // leader, as here: the child's PID is containerd's
        self.pid = child.id();
        std::fs::write(&self.pid_file, format!("{}\n", self.pid))?;
        Ok(())
    }
}

/// `bash -c` script: close every descriptor above 2, then `exec setsid "$@"`.
const CLOSE_FDS_AND_EXEC: &str = r#"for f in /proc/$$/fd/*; do n=${f##*/}; if ((n > 2)); then eval "exec $n>&-" 2>/dev/null; fi; done; exec setsid "$@""#;

/// If the test fails half-way, containerd must not stay frozen or dead.
struct Heal<'a>(&'a mut Containerd, bool);
impl Drop for Heal<'_> {
    fn drop(&mut self) {
        signal("-CONT", self.0.pid);
        if !self.1 && std::fs::metadata(format!("/proc/{}", self.0.pid)).is_err() {
            let _ = self.0.restart();
        }
    }
}

#[tokio::test]
#[ignore = "disruptive: kills and restarts a CRI node's containerd; run alone by e2e/cluster test"]
async fn containerd_restarted_mid_pull_is_retried_and_succeeds() -> Result<()> {
    let Some(env) = env_or_skip("containerd_restarted_mid_pull") else {
        return Ok(());
    };
    let nodes = env.list("E2E_CRI_NODES");
    let endpoints = env.cri_endpoints();
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) || endpoints.len() < 2 {
        eprintln!("SKIP containerd_restarted_mid_pull: needs the suite and two CRI nodes");
        return Ok(());
    }
    // CRI node 1: never the kubelet's node (index 0)
    let (node, endpoint) = (nodes[1].clone(), endpoints[1].clone());
    let metrics_addr = "127.0.0.1:10222";
    let client = env.client().await?;
    let image = format!("{}/big:v1", env.get("E2E_REGISTRY")?);
    cri(&endpoint)
        .await?
        .remove_image(RemoveImageRequest {
            image: Some(ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
        })
        .await?;
    ensure!(
        !cri_has(&endpoint, &image).await?,
        "{image} still on {node}"
    );
    let failed_before = daemon_metric(
        metrics_addr,
        "kruise_daemon_image_pull_attempts_failed_total",
    )?;

    let mut ctrd = Containerd::find(&env, 1)?;
    let mut heal = Heal(&mut ctrd, false);
    // freeze containerd so the daemon's PullImage is surely in flight when containerd dies
    signal("-STOP", heal.0.pid);
    let res = with_temp_ns(&client, "pullrestart", |client, ns| {
        let (image, endpoint, heal) = (image.clone(), endpoint.clone(), &mut heal);
        async move {
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let job: ImagePullJob = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                "metadata": {"name": "restart"},
                "spec": {"image": image, "selector": {"names": [node]}, "imagePullPolicy": "Always",
                         "pullPolicy": {"backoffLimit": 6, "timeoutSeconds": 60},
                         "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}}
            }))?;
            jobs.create(&PostParams::default(), &job).await?;
            wait_for(
                "the daemon to start pulling",
                Duration::from_secs(60),
                || async {
                    let busy =
                        daemon_metric(metrics_addr, "kruise_daemon_image_pull_workers_busy")?;
                    Ok((busy >= 1.0).then_some(()))
                },
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            signal("-KILL", heal.0.pid);
            wait_for(
                "the old containerd to exit",
                Duration::from_secs(10),
                || async {
                    Ok(std::fs::metadata(format!("/proc/{}", heal.0.pid))
                        .is_err()
                        .then_some(()))
                },
            )
            .await?;
            heal.0.restart()?;
            heal.1 = true;
            wait_for(
                "containerd to serve again",
                Duration::from_secs(30),
                || async { Ok(cri_has(&endpoint, "-").await.is_ok().then_some(())) },
            )
            .await?;
            let done = wait_for("the job to finish", Duration::from_secs(180), || async {
                let j = jobs.get("restart").await?;
                Ok(j.status.filter(|s| s.completion_time.is_some()))
            })
            .await?;
            ensure!(
                done.desired == 1 && done.succeeded == Some(1),
                "after the restart: {done:?}"
            );
            ensure!(
                cri_has(&endpoint, &image).await?,
                "{image} not on the restarted containerd"
            );
            let failed_after = daemon_metric(
                metrics_addr,
                "kruise_daemon_image_pull_attempts_failed_total",
            )?;
            ensure!(
                failed_after > failed_before,
                "no failed attempt was counted: the pull was not interrupted"
            );
            Ok(())
        }
    })
    .await;
    drop(heal);
    res
}

/// One CRI node's pull of `big:v1` is frozen in flight (its containerd or the registry stopped),
/// then `victim` (a process `e2e/cluster` recorded) is `kill -9`ed and started again: the job must
/// still end Succeeded with the image on the node.
async fn killed_mid_pull(test: &str, victim: &str, program: &str) -> Result<()> {
    let Some(env) = env_or_skip(test) else {
        return Ok(());
    };
    let nodes = env.list("E2E_CRI_NODES");
    let endpoints = env.cri_endpoints();
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) || endpoints.len() < 2 {
        eprintln!("SKIP {test}: needs the suite and two CRI nodes");
        return Ok(());
    }
    let (node, endpoint) = (nodes[1].clone(), endpoints[1].clone());
    let metrics_addr = "127.0.0.1:10222";
    let client = env.client().await?;
    let image = format!("{}/big:v1", env.get("E2E_REGISTRY")?);
    cri(&endpoint)
        .await?
        .remove_image(RemoveImageRequest {
            image: Some(ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
        })
        .await?;
    ensure!(
        !cri_has(&endpoint, &image).await?,
        "{image} still on {node}"
    );
    // the pull hangs while the registry is stopped: that keeps it in flight until the kill
    let mut victim = kruise_e2e::Heal(kruise_e2e::Recorded::find(&env, victim, program)?);
    let thaw = if program == "docker-registry" {
        None // the victim itself
    } else {
        Some(kruise_e2e::Heal(kruise_e2e::Recorded::find(
            &env,
            "registry",
            "docker-registry",
        )?))
    };
    match &thaw {
        Some(t) => t.0.signal("-STOP"),
        None => victim.0.signal("-STOP"),
    }
    let res = with_temp_ns(&client, "pullkill", |client, ns| {
        let (image, endpoint, victim, thaw) = (image.clone(), endpoint.clone(), &mut victim, &thaw);
        async move {
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let job: ImagePullJob = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                "metadata": {"name": "killed"},
                "spec": {"image": image, "selector": {"names": [node]}, "imagePullPolicy": "Always",
                         "pullPolicy": {"backoffLimit": 6, "timeoutSeconds": 60},
                         "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 600}}
            }))?;
            jobs.create(&PostParams::default(), &job).await?;
            wait_for("the daemon to start pulling", Duration::from_secs(60), || async {
                let busy = daemon_metric(metrics_addr, "kruise_daemon_image_pull_workers_busy")?;
                Ok((busy >= 1.0).then_some(()))
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            victim.0.kill().await?;
            if let Some(t) = thaw {
                t.0.signal("-CONT");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            victim.0.restart()?;
            let t0 = std::time::Instant::now();
            let done = wait_for("the job to finish", Duration::from_secs(240), || async {
                let j = jobs.get("killed").await?;
                Ok(j.status.filter(|s| s.completion_time.is_some()))
            })
            .await?;
            println!(
                "{program} killed mid-pull and restarted: job finished {:.1} s later: desired {}, succeeded {:?}, failed {:?}",
                t0.elapsed().as_secs_f64(),
                done.desired,
                done.succeeded,
                done.failed
            );
            ensure!(done.desired == 1 && done.succeeded == Some(1), "after the restart: {done:?}");
            ensure!(cri_has(&endpoint, &image).await?, "{image} not on {node}");
            Ok(())
        }
    })
    .await;
    drop(thaw);
    drop(victim);
    res
}

#[tokio::test]
#[ignore = "disruptive: kills a kruise-daemon; run alone by e2e/faults"]
async fn daemon_killed_mid_pull_is_restarted_and_the_job_succeeds() -> Result<()> {
    killed_mid_pull("daemon_killed_mid_pull", "daemon-1", "kruise-daemon").await
}

#[tokio::test]
#[ignore = "disruptive: kills the image registry; run alone by e2e/faults"]
async fn registry_killed_mid_pull_is_restarted_and_the_job_succeeds() -> Result<()> {
    killed_mid_pull("registry_killed_mid_pull", "registry", "docker-registry").await
}
