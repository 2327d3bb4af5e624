//! Helpers for the e2e tests: the cluster's facts from `e2e/cluster env`, a client, temporary
//! namespaces, waiting on conditions with a deadline, and pods placed on the real or a kwok node.
//! Tests live in `e2e/tests/`. Outside `e2e/cluster test` (or with no cluster up) a test prints why
//! it is skipped; with `E2E_REQUIRED=1` a missing cluster is a failure instead.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// What `e2e/cluster env` says about the running cluster.
#[derive(Clone, Debug)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads `$E2E_DIR/env` (default `/tmp/kruise-rs-e2e/env`). `Ok(None)` when no cluster is up and
    /// `E2E_REQUIRED` is not set.
    pub fn load() -> Result<Option<Env>> {
        let dir = std::env::var("E2E_DIR").unwrap_or_else(|_| "/tmp/kruise-rs-e2e".into());
        let path = PathBuf::from(dir).join("env");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if std::env::var_os("E2E_REQUIRED").is_some() => {
                bail!(
                    "E2E_REQUIRED is set but {} cannot be read: {e}",
                    path.display()
                )
            }
            Err(_) => return Ok(None),
        };
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), unquote(v)))
            .collect();
        Ok(Some(Env { vars }))
    }

    /// A variable, or an error naming it.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{key} missing from e2e/cluster env"))
    }

    /// A comma-separated variable as a list (empty when unset or empty).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.vars
            .get(key)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The tier the cluster runs: `kwok`, `cri` or `kubelet`.
    pub fn tier(&self) -> &str {
        self.vars
            .get("E2E_TIER")
            .map(String::as_str)
            .unwrap_or("kwok")
    }

    /// The CRI endpoints (`unix://…`), one per CRI node, in `E2E_CRI_NODES` order.
    pub fn cri_endpoints(&self) -> Vec<String> {
        (0..)
            .map_while(|i| self.vars.get(&format!("E2E_CRI_ENDPOINT_{i}")).cloned())
            .collect()
    }

    /// A client for the cluster's admin kubeconfig.
    pub async fn client(&self) -> Result<Client> {
        let kc = Kubeconfig::read_from(self.get("KUBECONFIG")?)?;
        let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(cfg)?)
    }
}

/// `e2e/cluster env` prints values through bash's `printf %q`; undo the simple cases it produces.
fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return inner.to_string();
    }
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Loads the env or prints why the calling test is skipped; `None` means "return now".
pub fn env_or_skip(test: &str) -> Option<Env> {
    match Env::load() {
        Ok(Some(env)) => Some(env),
        Ok(None) => {
            eprintln!("SKIP {test}: no e2e cluster is up (run it through `e2e/cluster test`)");
            None
        }
        Err(e) => panic!("{test}: {e:#}"),
    }
}

/// Runs `f` in a fresh namespace `e2e-<prefix>-<random>` that is deleted afterwards, even if `f`
/// fails.
pub async fn with_temp_ns<F, Fut, T>(client: &Client, prefix: &str, f: F) -> Result<T>
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let name = format!("e2e-{prefix}-{:08x}", rand_u32());
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    ns.metadata.labels = Some([("kruise-rs.e2e/temp".to_string(), "true".to_string())].into());
    nss.create(&PostParams::default(), &ns)
        .await
        .context("create namespace")?;
    let res = f(client.clone(), name.clone()).await;
    let _ = nss.delete(&name, &DeleteParams::background()).await;
    res
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}{}",
                last_err
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A pod running `image` pinned to `node` (kwok pods tolerate kwok's taints; none are set here).
pub fn pod_on_node(name: &str, node: &str, image: &str, host_network: bool) -> Pod {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "main", "image": image, "imagePullPolicy": "IfNotPresent" }]
        }
    });
    // The literal above is a valid Pod.
    #[allow(clippy::unwrap_used)]
    serde_json::from_value(pod).unwrap()
}

/// Waits until the pod is Running with every container started, and returns it.
pub async fn wait_running(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<Pod> {
    wait_for(&format!("pod {name} Running"), timeout, || async {
        let p = pods.get(name).await?;
        let st = p.status.clone().unwrap_or_default();
        let started = st.container_statuses.as_ref().is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        });
        Ok((st.phase.as_deref() == Some("Running") && started).then_some(p))
    })
    .await
}

/// The image the spec of `pod` gives container `container`.
pub fn spec_image<'a>(pod: &'a Pod, container: &str) -> Option<&'a str> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .image
        .as_deref()
}

/// The status the runtime (kubelet or kwok) reports for container `container` of `pod`.
pub fn container_status<'a>(
    pod: &'a Pod,
    container: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)
}

/// The image the runtime reports for container `container` of `pod`.
pub fn status_image<'a>(pod: &'a Pod, container: &str) -> Option<&'a str> {
    container_status(pod, container).map(|c| c.image.as_str())
}

/// The `imageID` of container `container` of `pod`, if reported.
pub fn image_id(pod: &Pod, container: &str) -> Option<String> {
    container_status(pod, container)
        .map(|c| c.image_id.clone())
        .filter(|s| !s.is_empty())
}

/// Name of the object, for messages.
pub fn name_of<K: ResourceExt>(o: &K) -> String {
    o.name_any()
}

/// Name of the MutatingWebhookConfiguration kruise-manager keeps.
pub const MUTATING_CONFIGURATION: &str = "kruise-rs-mutating-webhook-configuration";

/// Waits until the pod webhook's configuration mentions `needle` (a SidecarSet's selector value):
/// pods created before that are not sent to the webhook.
pub async fn wait_pod_webhook_covers(client: &Client, needle: &str) -> Result<()> {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let cfgs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    wait_for(
        &format!("the pod webhook to cover {needle}"),
        Duration::from_secs(30),
        || async {
            let c = cfgs.get_opt(MUTATING_CONFIGURATION).await?;
            let covered = c
                .map(|c| serde_json::to_string(&c.webhooks))
                .transpose()?
                .is_some_and(|s| s.contains(needle));
            Ok(covered.then_some(()))
        },
    )
    .await
}

/// Creates `ss` and waits until the pod webhook covers `needle`.
pub async fn create_sidecarset_and_wait(
    client: &Client,
    ss: &kruise_crds::SidecarSet,
    needle: &str,
) -> Result<()> {
    Api::<kruise_crds::SidecarSet>::all(client.clone())
        .create(&PostParams::default(), ss)
        .await
        .context("create SidecarSet")?;
    wait_pod_webhook_covers(client, needle).await?;
    wait_api_server_injects(client, ss).await
}

/// The API server applies a changed webhook configuration a moment after it is stored: until then a
/// new pod is not sent to the webhook. Probes with server-side dry-run pod creations (admission runs,
/// nothing is stored) until one gets `ss`'s first sidecar. SidecarSets limited to namespaces get a
/// fixed pause instead (the probe's namespace might not be selected).
pub async fn wait_api_server_injects(client: &Client, ss: &kruise_crds::SidecarSet) -> Result<()> {
    let labels = ss
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .filter(|l| !l.is_empty());
    let sidecar = ss
        .spec
        .containers
        .iter()
        .flatten()
        .chain(ss.spec.init_containers.iter().flatten())
        .map(|c| c.container.name.clone())
        .next();
    let (Some(labels), Some(sidecar)) = (labels, sidecar) else {
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(());
    };
    if ss.spec.namespace.is_some() || ss.spec.namespace_selector.is_some() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut probe = pod_on_node(
        "injection-probe",
        "no-such-node",
        "example.test/probe:v1",
        false,
    );
    probe
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .extend(labels);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_for(
        &format!("the API server to send pods to the webhook for sidecar {sidecar}"),
        Duration::from_secs(30),
        || async {
            let created = pods.create(&dry_run, &probe).await?;
            let spec = created.spec.unwrap_or_default();
            let injected = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .any(|c| c.name.starts_with(&sidecar));
            Ok(injected.then_some(()))
        },
    )
    .await
}

/// A gRPC channel to the CRI socket `endpoint` (`unix:///path/containerd.sock`).
pub async fn cri_channel(endpoint: &str) -> Result<tonic::transport::Channel> {
    let path = endpoint.trim_start_matches("unix://").to_string();
    // the URI is required by tonic but unused: the connector dials the socket
    tonic::transport::Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .with_context(|| format!("connect to the CRI at {endpoint}"))
}

/// A process `e2e/cluster` started and recorded in `$E2E_DIR/pids/NAME.pid` (kube-apiserver,
/// containerd-N, registry, daemon-N, …), with the command line and environment it runs with, so a
/// fault test can kill it and start it again exactly as it was.
#[derive(Clone, Debug)]
pub struct Recorded {
    pid_file: String,
    log: String,
    /// Its PID (the new one after [`Recorded::restart`]).
    pub pid: u32,
    argv: Vec<String>,
    envs: Vec<(String, String)>,
}

fn nul_split(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).to_string())
        .collect()
}

impl Recorded {
    /// Reads `pids/NAME.pid` and `/proc/PID`; `program` must end the first word of its command line.
    pub fn find(env: &Env, name: &str, program: &str) -> Result<Recorded> {
        let dir = env.get("E2E_DIR")?;
        let pid_file = format!("{dir}/pids/{name}.pid");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("read {pid_file}"))?
            .trim()
            .parse()?;
        let argv = nul_split(&std::fs::read(format!("/proc/{pid}/cmdline"))?);
        if !argv.first().is_some_and(|a| a.ends_with(program)) {
            bail!("PID {pid} of {name} is not {program}: {argv:?}");
        }
        let envs = nul_split(&std::fs::read(format!("/proc/{pid}/environ"))?)
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Ok(Recorded {
            pid_file,
            log: format!("{dir}/logs/{name}.log"),
            pid,
            argv,
            envs,
        })
    }

    /// Whether the process is still there.
    pub fn alive(&self) -> bool {
        std::fs::metadata(format!("/proc/{}", self.pid)).is_ok()
    }

    /// Sends a signal (`-KILL`, `-STOP`, `-CONT`, …).
    pub fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status();
    }

    /// `kill -9`, then waits until it is gone.
    pub async fn kill(&self) -> Result<()> {
        self.signal("-KILL");
        wait_for("the process to exit", Duration::from_secs(10), || async {
            Ok((!self.alive()).then_some(()))
        })
        .await
    }

    /// The same process with the value after `flag` in its command line replaced (to
    /// [`restart`](Recorded::restart) it differently, e.g. with another `--kubeconfig`).
    pub fn with_arg(&self, flag: &str, value: &str) -> Result<Recorded> {
        let mut r = self.clone();
        let i = r
            .argv
            .iter()
            .position(|a| a == flag)
            .with_context(|| format!("{flag} not in {:?}", self.argv))?;
        let v = r
            .argv
            .get_mut(i + 1)
            .with_context(|| format!("no value after {flag}"))?;
        *v = value.to_string();
        Ok(r)
    }

    /// A copy recorded as `NAME` instead (its own pid file and log): [`restart`](Recorded::restart)
    /// then starts a second instance that `e2e/cluster down` stops with the rest.
    pub fn as_named(&self, env: &Env, name: &str) -> Result<Recorded> {
        let dir = env.get("E2E_DIR")?;
        let mut r = self.clone();
        r.pid_file = format!("{dir}/pids/{name}.pid");
        r.log = format!("{dir}/logs/{name}.log");
        Ok(r)
    }

    /// Removes its pid file (after it was stopped for good).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Starts it again as `e2e/cluster` does (own session, same environment, log appended) and
    /// records the new PID. Descriptors above stderr are closed first: a test may run under a
    /// lock's descriptor, which the process would otherwise hold for its whole life.
    pub fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(r#"for f in /proc/$$/fd/*; do n=${f##*/}; if ((n > 2)); then eval "exec $n>&-" 2>/dev/null; fi; done; exec setsid "$@""#)
            .arg("bash")
            .args(&self.argv)
            .env_clear()
            .envs(self.envs.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        // bash execs setsid, which execs in place (the child is not a group leader): same PID
        self.pid = child.id();
        // reap it when it exits: a killed child left a zombie would still look alive, and a second
        // kill of it would wait for an exit that never shows
        let mut child = child;
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        std::fs::write(&self.pid_file, format!("{}\n", self.pid))?;
        Ok(())
    }
}

/// Restarts a [`Recorded`] process that a failed test left stopped or dead.
pub struct Heal(pub Recorded);
impl Drop for Heal {
    fn drop(&mut self) {
        self.0.signal("-CONT");
        if !self.0.alive() {
            let _ = self.0.restart();
        }
    }
}

/// Mutating requests (POST, PUT, PATCH, APPLY, DELETE) the API server has served since it started,
/// from its `apiserver_request_total`, keyed `VERB resource[/subresource]`: take one before and one
/// after a run and compare them with [`writes_between`].
pub async fn api_writes(client: &Client) -> Result<BTreeMap<String, f64>> {
    write_counts(client, None).await
}

/// Like [`api_writes`], only the writes refused with 409 Conflict (stale resourceVersion).
pub async fn api_write_conflicts(client: &Client) -> Result<BTreeMap<String, f64>> {
    write_counts(client, Some("409")).await
}

async fn write_counts(client: &Client, code: Option<&str>) -> Result<BTreeMap<String, f64>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut out = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |k: &str| {
            l.split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        let verb = label("verb");
        if !["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&verb.as_str())
            || code.is_some_and(|c| label("code") != c)
        {
            continue;
        }
        let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let (res, sub) = (label("resource"), label("subresource"));
        let key = if sub.is_empty() {
            format!("{verb} {res}")
        } else {
            format!("{verb} {res}/{sub}")
        };
        *out.entry(key).or_default() += v;
    }
    Ok(out)
}

/// The writes between two [`api_writes`] snapshots, only the keys that grew.
pub fn writes_between(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or_default();
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The sum of a map of writes ([`api_writes`] or [`writes_between`]).
pub fn writes_total(writes: &BTreeMap<String, f64>) -> f64 {
    writes.values().sum()
}

/// A webhook on 127.0.0.1 (a free port) that answers every AdmissionReview "allowed", without a
/// patch and without reading anything: the floor the webhook benchmarks compare with. Serves
/// `cert`/`key` (PEM files); runs until the process ends.
pub async fn allow_all_webhook(cert: &str, key: &str) -> Result<std::net::SocketAddr> {
    use serde_json::{Value, json};
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let app = axum::Router::new().route(
        "/mutate-pod",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let uid = v["request"]["uid"].clone();
            axum::Json(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                              "response": {"uid": uid, "allowed": true}}),
            )
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    tokio::spawn(
        axum_server::from_tcp(listener)?
            .acceptor(acceptor)
            .serve(app.into_make_service()),
    );
    Ok(addr)
}

/// Removes every image record carrying `image` from the containerd at `endpoint` (by image id, so
/// the digest and id references go too and the content is collected).
pub async fn remove_image_everywhere(endpoints: &[String], image: &str) -> Result<()> {
    for ep in endpoints {
        let mut c =
            k8s_cri::v1::image_service_client::ImageServiceClient::new(cri_channel(ep).await?);
        let imgs = c
            .list_images(k8s_cri::v1::ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images;
        for img in imgs
            .iter()
            .filter(|i| i.repo_tags.iter().any(|t| t == image))
        {
            c.remove_image(k8s_cri::v1::RemoveImageRequest {
                image: Some(k8s_cri::v1::ImageSpec {
                    image: img.id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        }
        let left = c
            .list_images(k8s_cri::v1::ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images;
        anyhow::ensure!(
            !left.iter().any(|i| i.repo_tags.iter().any(|t| t == image)),
            "{image} still on {ep}"
        );
    }
    Ok(())
}

/// One ImagePullJob for `image` on every CRI node (label `kruise-rs.e2e/cri`), in a namespace
/// `PREFIX-PID-RUN` of its own; seconds from create until the job reports completion, an error
/// unless all `nodes` succeeded.
pub async fn pull_job_on_cri_nodes(
    client: &Client,
    prefix: &str,
    image: &str,
    nodes: usize,
    run: usize,
) -> Result<f64> {
    use std::time::Instant;
    let ns_name = format!("{prefix}-{}-{run}", std::process::id());
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns_name}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    let jobs: Api<kruise_crds::ImagePullJob> = Api::namespaced(client.clone(), &ns_name);
    let job: kruise_crds::ImagePullJob = serde_json::from_value(serde_json::json!({
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

/// Every pod UID ever seen in `pods`' scope, by a watch of the test's own (its own connection to
/// the API server, with kube's backoff across outages): "nothing created that should not have
/// been" is checked against it. The watch stops when this is dropped.
pub struct PodUids {
    seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodUids {
    /// Starts watching.
    pub fn record(pods: &Api<Pod>) -> PodUids {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let seen_w = seen.clone();
        let task = tokio::spawn(
            watcher(pods.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .for_each(move |p| {
                    if let Ok(p) = p {
                        seen_w
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(p.metadata.uid.unwrap_or_default());
                    }
                    futures::future::ready(())
                }),
        );
        PodUids { seen, task }
    }

    /// The UIDs seen so far.
    pub fn snapshot(&self) -> std::collections::BTreeSet<String> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many UIDs were seen so far.
    pub fn count(&self) -> usize {
        self.snapshot().len()
    }
}

impl Drop for PodUids {
    fn drop(&mut self) {
        self.task.abort();
    }
}
