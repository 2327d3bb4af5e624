//! 100 forced disconnects of kruise-manager's connections to kube-apiserver (its watches, its Lease
//! renewals, its writes) while a CloneSet rolls out in place, a SidecarSet upgrades its pods and
//! ImagePullJobs run: the manager is restarted with a kubeconfig that points at a TCP proxy in this
//! test, and the proxy cuts every open connection 100 times, about once a second, while the test
//! keeps changing the workloads. At the end every workload has reached its last spec, no pod was
//! created or deleted that should not have been, and every job Succeeded. Disruptive (restarts the
//! manager twice): `e2e/faults` runs it alone.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{CloneSet, ImagePullJob, SidecarSet};
use kruise_e2e::{
    PodUids, Recorded, env_or_skip, pod_on_node, spec_image, status_image, wait_for, with_temp_ns,
};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// A loopback TCP proxy to `upstream` that can cut every connection it carries at once.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, rx) = tokio::sync::watch::channel(0u64);
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (o, a) = (open.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                // an accept error (a connection reset while queued, a descriptor limit) must not end
                // the proxy: the manager could never reconnect, and the test would blame it
                let mut down = match listener.accept().await {
                    Ok((down, _)) => down,
                    Err(e) => {
                        eprintln!("proxy: accept failed ({e}); going on");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let (mut rx, open, upstream) = (rx.clone(), o.clone(), upstream.clone());
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut up = match TcpStream::connect(&upstream).await {
                        Ok(up) => up,
                        Err(e) => {
                            eprintln!("proxy: connect to the API server failed ({e})");
                            return;
                        }
                    };
                    rx.borrow_and_update();
                    open.fetch_add(1, Ordering::SeqCst);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = rx.changed() => {}
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Proxy {
            addr,
            cut,
            open,
            accepted,
            task,
        })
    }

    /// Closes every connection open now; returns how many there were.
    fn cut_all(&self) -> usize {
        let n = self.open.load(Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.send_modify(|g| *g += 1);
    }
}

/// Puts the suite's own manager back (same command line) when dropped, whatever the test did.
struct Restore {
    original: Recorded,
    current: Recorded,
}
impl Drop for Restore {
    fn drop(&mut self) {
        self.current.signal("-KILL");
        for _ in 0..100 {
            if !self.current.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.original.restart();
        let _ = std::process::Command::new("bash")
            .args(["-c", "for _ in $(seq 600); do curl -fs http://127.0.0.1:8000/readyz >/dev/null && exit 0; sleep 0.1; done; exit 1"])
            .status();
    }
}

async fn manager_ready() -> Result<()> {
    wait_for("kruise-manager ready", Duration::from_secs(60), || async {
        let ok = std::process::Command::new("curl")
            .args(["-fs", "http://127.0.0.1:8000/readyz"])
            .output()?
            .status
            .success();
        Ok(ok.then_some(()))
    })
    .await
}

/// The UIDs of the pods there now.
async fn uids(pods: &Api<Pod>) -> Result<BTreeSet<String>> {
    Ok(pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect())
}

const CUTS: usize = 100;
const STEPS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "disruptive: restarts the manager behind a proxy; run alone by e2e/faults"]
async fn hundred_forced_watch_disconnects_lose_nothing() -> Result<()> {
    let Some(env) = env_or_skip("watch_disconnects") else {
        return Ok(());
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) || env.tier() == "kwok" {
        eprintln!("SKIP watch_disconnects: needs the suite and CRI nodes");
        return Ok(());
    }
    let client = env.client().await?;
    let kwok_node = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    let cri_nodes = env.list("E2E_CRI_NODES");
    let registry = env.get("E2E_REGISTRY")?.to_string();

    // the manager's kubeconfig, pointed at the proxy
    let kubeconfig = env.get("KUBECONFIG")?;
    let text = std::fs::read_to_string(kubeconfig)?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .context("no server in the kubeconfig")?
        .trim()
        .to_string();
    let upstream = server.trim_start_matches("https://").to_string();
    let proxy = Proxy::start(upstream).await?;
    let proxied_kubeconfig = format!("{}/manager-proxied.kubeconfig", env.get("E2E_DIR")?);
    std::fs::write(
        &proxied_kubeconfig,
        text.replace(&server, &format!("https://{}", proxy.addr)),
    )?;
    let original = Recorded::find(&env, "manager", "kruise-manager")?;
    let mut proxied = original.with_arg("--kubeconfig", &proxied_kubeconfig)?;
    original.kill().await?;
    proxied.restart()?;
    let restore = Restore {
        original: original.clone(),
        current: proxied.clone(),
    };
    manager_ready().await?;
    ensure!(
        proxy.accepted.load(Ordering::SeqCst) > 0,
        "the manager does not talk through the proxy"
    );

    let name = format!("wd-{}", std::process::id());
    let sidecar = |v: usize| format!("example.test/wd-agent:v{v}");
    let app = |v: usize| format!("example.test/wd-app:v{v}");
    let ss: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"e2e-wd": name}},
                 "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": "50%"},
                 "containers": [{"name": "wd-agent", "image": sidecar(1)}]}
    }))?;
    let sss: Api<SidecarSet> = Api::all(client.clone());
    kruise_e2e::create_sidecarset_and_wait(&client, &ss, &name).await?;
    let res = with_temp_ns(&client, "watchcut", |client, ns| {
        let (name, proxy, proxied, sss) = (name.clone(), &proxy, &proxied, sss.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let seen = PodUids::record(&pods);
            // 10 pods the SidecarSet selects
            let mut injected = BTreeSet::new();
            for i in 0..10 {
                let mut p = pod_on_node(&format!("sel-{i}"), &kwok_node, &app(1), false);
                p.metadata.labels.get_or_insert_with(Default::default).insert("e2e-wd".into(), name.clone());
                let p = pods.create(&PostParams::default(), &p).await?;
                ensure!(spec_image(&p, "wd-agent") == Some(sidecar(1).as_str()), "sel-{i} not injected");
                injected.insert(p.metadata.uid.unwrap_or_default());
            }
            // a CloneSet of 20 that updates in place
            let replicas = 20;
            let cs: CloneSet = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "wd"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "wd"}},
                         "updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": 3},
                         "template": {"metadata": {"labels": {"app": "wd"}},
                                      "spec": {"nodeSelector": {"type": "kwok"},
                                               "containers": [{"name": "main", "image": app(1)}]}}}
            }))?;
            let sets: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
            sets.create(&PostParams::default(), &cs).await?;
            let clone_pods = ListParams::default().labels("app=wd");
            wait_for("20 CloneSet pods Running", Duration::from_secs(120), || async {
                let list = pods.list(&clone_pods).await?.items;
                let running = list.iter().filter(|p| status_image(p, "main") == Some(app(1).as_str())).count();
                Ok((running == replicas && list.len() == replicas).then_some(()))
            })
            .await?;
            let before = uids(&pods).await?;

            // the cuts, with a new spec for every workload every CUTS/STEPS cuts
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let (mut cuts, mut severed, mut empty) = (0usize, 0usize, 0usize);
            let t0 = Instant::now();
            let mut step = 1;
            while cuts < CUTS {
                if cuts % (CUTS / STEPS) == 0 && step <= STEPS {
                    step += 1;
                    let v = step;
                    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": app(v)}]}}}});
                    sets.patch("wd", &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    let patch = json!({"spec": {"containers": [{"name": "wd-agent", "image": sidecar(v)}]}});
                    sss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    let job: ImagePullJob = serde_json::from_value(json!({
                        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                        "metadata": {"name": format!("wd-{v}")},
                        "spec": {"image": format!("{registry}/big:v1"), "selector": {"names": cri_nodes},
                                 "imagePullPolicy": "Always", "completionPolicy": {"type": "Always"}}
                    }))?;
                    jobs.create(&PostParams::default(), &job).await?;
                }
                // about once a second, jittered so the cuts fall at every point of the reconnects
                let ms = 600 + (t0.elapsed().subsec_nanos() % 800) as u64;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                match proxy.cut_all() {
                    0 => empty += 1,
                    n => {
                        cuts += 1;
                        severed += n;
                    }
                }
            }
            let cut_secs = t0.elapsed().as_secs_f64();
            let last = step;
            let t1 = Instant::now();
            // what is not there yet, for the failure message: which workload stalled
            let progress = std::sync::Mutex::new(String::from("nothing checked yet"));
            let settled = wait_for("every workload at its last spec", Duration::from_secs(300), || async {
                let list = pods.list(&ListParams::default()).await?.items;
                let cs_done = list
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| status_image(p, "main") == Some(app(last).as_str()))
                    .count();
                let ss_done = list
                    .iter()
                    .filter(|p| status_image(p, "wd-agent") == Some(sidecar(last).as_str()))
                    .count();
                let mut jobs_done = 0;
                for j in jobs.list(&ListParams::default()).await?.items {
                    if j.status.is_some_and(|s| s.completion_time.is_some()) {
                        jobs_done += 1;
                    }
                }
                *progress.lock().unwrap() = format!(
                    "CloneSet pods at step {last}: {cs_done} of {replicas}; SidecarSet pods at step {last}: {ss_done} of 10; \
                     ImagePullJobs completed: {jobs_done} of {STEPS}"
                );
                Ok((cs_done == replicas && ss_done == 10 && jobs_done == STEPS).then_some(()))
            })
            .await;
            if let Err(e) = settled {
                let state = progress.lock().unwrap().clone();
                // what the stalled workloads look like, for whoever reads the failure
                for p in pods.list(&ListParams::default()).await?.items {
                    let ann = p.metadata.annotations.clone().unwrap_or_default();
                    eprintln!(
                        "pod {}: wd-agent spec {:?} status {:?}; main spec {:?} status {:?}; sidecarset-hash {:?}; inplace-state {:?}",
                        kruise_e2e::name_of(&p),
                        spec_image(&p, "wd-agent"),
                        status_image(&p, "wd-agent"),
                        spec_image(&p, "main"),
                        status_image(&p, "main"),
                        ann.get("kruise.io/sidecarset-hash"),
                        ann.get("apps.kruise.io/inplace-update-state"),
                    );
                }
                if let Ok(ss) = sss.get(&name).await {
                    eprintln!("SidecarSet {name}: generation {:?}, status {:?}", ss.metadata.generation, ss.status);
                }
                anyhow::bail!("{e:#}; {state}");
            }
            let settle_secs = t1.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_secs(3)).await; // anything extra would show up now
            let after = uids(&pods).await?;
            let ever = seen.snapshot();
            let mut failed_jobs = vec![];
            for j in jobs.list(&ListParams::default()).await?.items {
                let st = j.status.clone().unwrap_or_default();
                if st.succeeded != Some(i32::try_from(cri_nodes.len())?) || st.failed.unwrap_or(0) != 0 {
                    failed_jobs.push(format!("{}: {st:?}", kruise_e2e::name_of(&j)));
                }
            }
            println!(
                "{cuts} cuts in {cut_secs:.0} s severed {severed} connections ({} accepted by the proxy; \
                 {empty} moments with none open); every workload at step {last} {settle_secs:.1} s after the last cut; \
                 pods: {} before, {} after, {} ever; jobs not Succeeded on every node: {failed_jobs:?}",
                proxy.accepted.load(Ordering::SeqCst),
                before.len(),
                after.len(),
                ever.len()
            );
            ensure!(proxied.alive(), "the manager exited during the disconnects");
            ensure!(after == before, "pods changed: {} before, {} after (created or deleted)", before.len(), after.len());
            ensure!(ever == before, "{} pods ever existed for {} wanted", ever.len(), before.len());
            ensure!(injected.is_subset(&after), "a SidecarSet pod was recreated");
            ensure!(failed_jobs.is_empty(), "jobs: {failed_jobs:?}");
            Ok(())
        }
    })
    .await;
    let _ = sss.delete(&name, &DeleteParams::default()).await;
    drop(restore);
    manager_ready().await?;
    res
}
