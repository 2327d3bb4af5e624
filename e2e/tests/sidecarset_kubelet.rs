//! The SidecarSet controller on the real kubelet node: a cold sidecar's image change restarts only
//! that container (new imageID; app container, pod UID kept), and two hot upgrades of the
//! `hotupgrade-sample` sidecar under continuous HTTP traffic drop no request while the slots alternate.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kruise_crds::SidecarSet;
use kruise_e2e::{Env, env_or_skip, pod_on_node, spec_image, wait_for, wait_running, with_temp_ns};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WORKING: &str = "kruise.io/sidecarset-working-hotupgrade-container";

/// The env, the real node and the registry, or `None` (with a SKIP line) when the suite or the
/// kubelet tier is missing.
fn real_node(test: &str) -> Option<(Env, String, String)> {
    let env = env_or_skip(test)?;
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        eprintln!("SKIP {test}: the suite is not running (e2e/cluster suite up)");
        return None;
    }
    let node = env.get("E2E_REAL_NODE").unwrap_or_default().to_string();
    if env.tier() != "kubelet" || node.is_empty() {
        eprintln!("SKIP {test}: tier {} has no kubelet", env.tier());
        return None;
    }
    let registry = env.get("E2E_REGISTRY").ok()?.to_string();
    Some((env, node, registry))
}

fn sidecarset(name: &str, spec: serde_json::Value) -> Result<SidecarSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": name}, "spec": spec
    }))?)
}

/// Replaces the SidecarSet's containers with `containers` (a merge patch replaces the whole list).
async fn set_containers(client: &Client, name: &str, containers: serde_json::Value) -> Result<()> {
    let patch = json!({"spec": {"containers": containers}});
    Api::<SidecarSet>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context("patch SidecarSet")?;
    Ok(())
}

async fn delete_sidecarset(client: &Client, name: &str) {
    let _ = Api::<SidecarSet>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// A hostNetwork pod on the real node running `sleeper:v1` as `main`, labelled `key=value`.
fn app_pod(node: &str, registry: &str, key: &str, value: &str) -> Pod {
    let mut p = pod_on_node("app", node, &format!("{registry}/sleeper:v1"), true);
    p.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    p
}

fn status(p: &Pod, container: &str) -> Option<ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)
        .cloned()
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn running_ready(s: &ContainerStatus) -> bool {
    s.ready && s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn all_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(running_ready))
}

async fn wait_all_ready(pods: &Api<Pod>, name: &str) -> Result<Pod> {
    wait_running(pods, name, Duration::from_secs(120)).await?;
    wait_for("every container ready", Duration::from_secs(60), || async {
        let p = pods.get(name).await?;
        Ok(all_ready(&p).then_some(p))
    })
    .await
}

#[tokio::test]
async fn cold_sidecar_image_change_restarts_only_that_container() -> Result<()> {
    let test = "cold_sidecar_on_real_node";
    let Some((env, node, registry)) = real_node(test) else {
        return Ok(());
    };
    let client = env.client().await?;
    let name = format!("cold-kubelet-{}", std::process::id());
    let sidecar = |tag: &str| {
        json!([{"name": "cold-agent", "image": format!("{registry}/sleeper:{tag}"),
                "imagePullPolicy": "IfNotPresent"}])
    };
    let ss = sidecarset(
        &name,
        json!({
            "selector": {"matchLabels": {"e2e-cold-kubelet": name}},
            "containers": sidecar("v1"),
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1}
        }),
    )?;
    kruise_e2e::create_sidecarset_and_wait(&client, &ss, &name).await?;
    let res = with_temp_ns(&client, "ssc-real", |client, ns| {
        let (name, node, registry) = (name.clone(), node.clone(), registry.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            pods.create(
                &PostParams::default(),
                &app_pod(&node, &registry, "e2e-cold-kubelet", &name),
            )
            .await?;
            let before = wait_all_ready(&pods, "app").await?;
            let main0 = status(&before, "main").context("no status for main")?;
            let side0 = status(&before, "cold-agent").context("sidecar not injected")?;
            ensure!(!side0.image_id.is_empty(), "no imageID for the sidecar");

            set_containers(&client, &name, sidecar("v2")).await?;
            let want = format!("{registry}/sleeper:v2");
            let after = wait_for("the sidecar running v2", Duration::from_secs(90), || async {
                let p = pods.get("app").await?;
                let done = spec_image(&p, "cold-agent") == Some(want.as_str())
                    && status(&p, "cold-agent").is_some_and(|s| {
                        s.image_id != side0.image_id && !s.image_id.is_empty() && running_ready(&s)
                    });
                Ok(done.then_some(p))
            })
            .await?;
            let main1 = status(&after, "main").context("no status for main")?;
            let side1 = status(&after, "cold-agent").context("no status for the sidecar")?;
            eprintln!(
                "cold sidecar: imageID {} -> {} (restartCount {} -> {}); main {} restartCount {} -> {}",
                side0.image_id,
                side1.image_id,
                side0.restart_count,
                side1.restart_count,
                main1.container_id.as_deref().unwrap_or("?"),
                main0.restart_count,
                main1.restart_count
            );
            ensure!(
                before.metadata.uid == after.metadata.uid,
                "the pod was recreated"
            );
            ensure!(
                main0.container_id == main1.container_id,
                "the app container was replaced: {:?} -> {:?}",
                main0.container_id,
                main1.container_id
            );
            ensure!(
                main0.restart_count == main1.restart_count,
                "the app container restarted: {} -> {}",
                main0.restart_count,
                main1.restart_count
            );
            ensure!(
                side0.container_id != side1.container_id,
                "the sidecar container was not replaced"
            );
            Ok(())
        }
    })
    .await;
    delete_sidecarset(&client, &name).await;
    res
}

/// Requests seen by the traffic client: totals and per response body, in order of first sight.
#[derive(Debug, Default)]
struct Counts {
    ok: u64,
    failed: u64,
    versions: Vec<(String, u64)>,
    errors: Vec<String>,
}

impl Counts {
    fn record(&mut self, res: Result<String, String>) {
        match res {
            Ok(body) => {
                self.ok += 1;
                match self.versions.iter_mut().find(|(v, _)| *v == body) {
                    Some((_, n)) => *n += 1,
                    None => self.versions.push((body, 1)),
                }
            }
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < 5 {
                    self.errors.push(e);
                }
            }
        }
    }

    fn seen(&self, body: &str) -> bool {
        self.versions.iter().any(|(v, _)| v == body)
    }
}

/// One `GET /` to `addr`; the response body (`version N`) or why it failed.
fn get(addr: SocketAddr) -> Result<String, String> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"GET / HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut s = String::new();
    c.read_to_string(&mut s).map_err(|e| format!("read: {e}"))?;
    if !s.starts_with("HTTP/1.1 200") {
        return Err(format!("bad response {s:?}"));
    }
    s.split("\r\n\r\n")
        .nth(1)
        .map(|b| b.trim().to_string())
        .filter(|b| b.starts_with("version "))
        .ok_or_else(|| format!("no body in {s:?}"))
}

/// A free 127.0.0.1 port derived from the pid (the sidecar listens there on the host network).
fn pick_port() -> Result<u16> {
    let start = 20000 + (std::process::id() % 20000) as u16;
    (0..200u16)
        .map(|i| start.wrapping_add(i * 7))
        .find(|p| *p > 1024 && TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .context("no free port")
}

/// Whether `registry` (`127.0.0.1:PORT`, plain HTTP) has `repo:tag`.
fn registry_has(registry: &str, repo: &str, tag: &str) -> bool {
    let ask = || -> std::io::Result<String> {
        let mut c = TcpStream::connect(registry)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            c,
            "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {registry}\r\n\
             Accept: application/vnd.oci.image.manifest.v1+json\r\n\
             Accept: application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n"
        )?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    };
    ask().is_ok_and(|s| s.starts_with("HTTP/1.1 200"))
}

fn version_of(body: &str) -> u64 {
    body.trim_start_matches("version ").parse().unwrap_or(0)
}

#[tokio::test]
async fn hot_upgrade_twice_under_traffic_drops_no_request() -> Result<()> {
    let test = "hot_upgrade_on_real_node";
    let Some((env, node, registry)) = real_node(test) else {
        return Ok(());
    };
    let client = env.client().await?;
    let name = format!("hot-kubelet-{}", std::process::id());
    let port = pick_port()?;
    let repo = format!("{registry}/kruise-rs/hotupgrade-sample");
    let empty = format!("{repo}:empty");
    for tag in ["v1", "v2", "v3", "empty"] {
        ensure!(
            registry_has(&registry, "kruise-rs/hotupgrade-sample", tag),
            "{repo}:{tag} is not in the registry: run `e2e/cluster images` (e2e/cluster test does)"
        );
    }
    let sidecar = |tag: &str| {
        json!([{
            "name": "hs", "image": format!("{repo}:{tag}"), "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "LISTEN", "value": format!("127.0.0.1:{port}")},
                    {"name": "SHARED_DIR", "value": "/shared"}],
            "volumeMounts": [{"name": "hs-shared", "mountPath": "/shared"}],
            "lifecycle": {"postStart": {"exec": {"command": ["/usr/local/bin/hotupgrade-sample", "migrate"]}}},
            "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": empty}
        }])
    };
    let ss = sidecarset(
        &name,
        json!({
            "selector": {"matchLabels": {"e2e-hot-kubelet": name}},
            "containers": sidecar("v1"),
            "volumes": [{"name": "hs-shared", "emptyDir": {}}],
            "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1}
        }),
    )?;
    kruise_e2e::create_sidecarset_and_wait(&client, &ss, &name).await?;
    let res = with_temp_ns(&client, "ssh-real", |client, ns| {
        let (name, node, registry, repo, empty) = (
            name.clone(),
            node.clone(),
            registry.clone(),
            repo.clone(),
            empty.clone(),
        );
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            pods.create(
                &PostParams::default(),
                &app_pod(&node, &registry, "e2e-hot-kubelet", &name),
            )
            .await?;
            let p0 = wait_all_ready(&pods, "app").await?;
            ensure!(
                annotation(&p0, WORKING).is_some_and(|w| w.contains("\"hs-1\"")),
                "working slot is not hs-1: {:?}",
                annotation(&p0, WORKING)
            );
            ensure!(
                spec_image(&p0, "hs-2") == Some(empty.as_str()),
                "hs-2 does not hold the empty image"
            );
            let main0 = status(&p0, "main").context("no status for main")?;
            let empty_id = status(&p0, "hs-2").context("no status for hs-2")?.image_id;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let first = tokio::task::spawn_blocking(move || get(addr)).await?;
            ensure!(
                first.as_deref() == Ok("version 1"),
                "the sidecar does not serve version 1 on {addr}: {first:?}"
            );

            // the client: one request every 5 ms until told to stop
            let counts = Arc::new(Mutex::new(Counts::default()));
            let stop = Arc::new(AtomicBool::new(false));
            let traffic = {
                let (counts, stop) = (counts.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let r = get(addr);
                        counts.lock().unwrap().record(r);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            };
            let upgrades = async {
                let mut prev_id = status(&p0, "hs-1").context("no status for hs-1")?.image_id;
                for (tag, working, idle) in [("v2", "hs-2", "hs-1"), ("v3", "hs-1", "hs-2")] {
                    set_containers(&client, &name, sidecar(tag)).await?;
                    let image = format!("{repo}:{tag}");
                    let p = wait_for(
                        &format!("{tag} working in {working}, {idle} back on the empty image"),
                        Duration::from_secs(90),
                        || async {
                            let p = pods.get("app").await?;
                            let w = status(&p, working);
                            let i = status(&p, idle);
                            let done = annotation(&p, WORKING)
                                .is_some_and(|a| a.contains(&format!("\"{working}\"")))
                                && spec_image(&p, working) == Some(image.as_str())
                                && spec_image(&p, idle) == Some(empty.as_str())
                                && w.is_some_and(|s| {
                                    running_ready(&s)
                                        && s.image_id != prev_id
                                        && s.image_id != empty_id
                                })
                                && i.is_some_and(|s| running_ready(&s) && s.image_id == empty_id);
                            Ok(done.then_some(p))
                        },
                    )
                    .await?;
                    prev_id = status(&p, working).map(|s| s.image_id).unwrap_or_default();
                    let version =
                        annotation(&p, &format!("version.sidecarset.kruise.io/{working}"))
                            .context("no version annotation")?
                            .to_string();
                    let body = format!("version {version}");
                    wait_for(
                        &format!("a response from {body}"),
                        Duration::from_secs(30),
                        || async { Ok(counts.lock().unwrap().seen(&body).then_some(())) },
                    )
                    .await?;
                    eprintln!(
                        "hot upgrade to {tag}: {working} serves {body}, {idle} is empty again"
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                anyhow::Ok(())
            }
            .await;
            stop.store(true, Ordering::SeqCst);
            let _ = traffic.join();
            let c = std::mem::take(&mut *counts.lock().unwrap());
            let per_version: Vec<String> = c
                .versions
                .iter()
                .map(|(v, n)| format!("{v}: {n}"))
                .collect();
            eprintln!(
                "hot upgrade traffic on 127.0.0.1:{port}: {} ok, {} failed; {}; first errors: {:?}",
                c.ok,
                c.failed,
                per_version.join(", "),
                c.errors
            );
            upgrades?;
            ensure!(
                c.failed == 0,
                "{} requests failed: {:?}",
                c.failed,
                c.errors
            );
            let seen: Vec<u64> = c.versions.iter().map(|(v, _)| version_of(v)).collect();
            ensure!(
                seen.len() == 3 && seen[0] == 1 && seen[0] < seen[1] && seen[1] < seen[2],
                "versions seen, in order: {:?}",
                c.versions
            );
            let p = pods.get("app").await?;
            let main1 = status(&p, "main").context("no status for main")?;
            ensure!(p0.metadata.uid == p.metadata.uid, "the pod was recreated");
            ensure!(
                main0.container_id == main1.container_id
                    && main0.restart_count == main1.restart_count,
                "the app container restarted: {:?}/{} -> {:?}/{}",
                main0.container_id,
                main0.restart_count,
                main1.container_id,
                main1.restart_count
            );
            Ok(())
        }
    })
    .await;
    delete_sidecarset(&client, &name).await;
    res
}
