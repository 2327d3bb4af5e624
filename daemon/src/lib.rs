//! kruise-daemon: the per-node agent that pulls images through the CRI for its NodeImage.
//! `cri` finds and talks to the runtime, `secrets` reads registry credentials, `puller` runs the
//! pulls, `metrics` counts them; this file wires the NodeImage watch, secret cache, status writes,
//! events, `/healthz` and `/metrics`.
#![forbid(unsafe_code)]

pub mod cri;
pub mod metrics;
pub mod puller;
pub mod secrets;

use anyhow::{Context, Result};
use axum::{Router, http::StatusCode, routing::get};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Secret};
use kruise_crds::keys::imagepull as keys;
use kruise_crds::{NodeImage, NodeImageSpec, ReferenceObject};
use kube::api::PostParams;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the daemon is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kubeconfig file, or `None` for in-cluster / `$KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
    /// The Node served.
    pub node_name: String,
    /// CRI endpoint; probed when `None`.
    pub runtime_endpoint: Option<String>,
    /// Health endpoint address.
    pub health_addr: SocketAddr,
    /// Pulls running at once on this node.
    pub max_workers: usize,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: Options) -> Result<()> {
    let cfg = match &opts.kubeconfig {
        Some(path) => {
            let kc =
                Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    let client = Client::try_from(cfg)?;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .get(&opts.node_name)
        .await
        .with_context(|| format!("node {} not found", opts.node_name))?;
    let endpoint = match opts.runtime_endpoint {
        Some(e) => e,
        None => cri::discover().context("no CRI socket found: pass --runtime-endpoint")?,
    };
    let mut runtime = cri::Runtime::connect(&endpoint).await?;
    let version = runtime.version().await?;
    tracing::info!(node = %opts.node_name, %endpoint, runtime = %version, "connected to the CRI runtime");

    let synced = Arc::new(AtomicBool::new(false));
    let metrics = metrics::Metrics::new();
    let health = {
        let synced = synced.clone();
        let metrics = metrics.clone();
        Router::new()
            .route(
                "/metrics",
                get(move || {
                    let body = metrics.encode();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        )
                    }
                }),
            )
            .route(
                "/healthz",
                get(move || {
                    let ok = synced.load(Ordering::Relaxed);
                    async move {
                        if ok {
                            (StatusCode::OK, "ok".to_string())
                        } else {
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "check nodeImageInformerSynced failed, err: not synced".to_string(),
                            )
                        }
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind(opts.health_addr)
        .await
        .with_context(|| format!("bind {}", opts.health_addr))?;

    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let puller = puller::Puller::new(
        runtime,
        puller::Options {
            max_workers: opts.max_workers,
            metrics,
            ..Default::default()
        },
        ev_tx,
    );
    let events = tokio::spawn(publish_events(
        client.clone(),
        opts.node_name.clone(),
        ev_rx,
    ));
    let node_loop = run_node(client, opts.node_name.clone(), puller, synced);
    let server = axum::serve(listener, health).with_graceful_shutdown(shutdown_signal());
    let res = tokio::select! {
        r = server => r.context("health server"),
        r = node_loop => r,
    };
    events.abort();
    res
}

/// The NodeImage of this node as an event target.
fn node_image_ref(node: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(kruise_crds::API_VERSION.to_string()),
        kind: Some("NodeImage".to_string()),
        name: Some(node.to_string()),
        ..Default::default()
    }
}

async fn publish_events(
    client: Client,
    node: String,
    mut rx: mpsc::UnboundedReceiver<puller::PullEvent>,
) {
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: keys::DAEMON_IMAGE_PULLER_COMPONENT.to_string(),
            instance: Some(node.clone()),
        },
    );
    while let Some(ev) = rx.recv().await {
        let e = KubeEvent {
            type_: if ev.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ev.reason.to_string(),
            note: Some(ev.note.clone()),
            action: "PullImage".to_string(),
            secondary: None,
        };
        let targets = std::iter::once(node_image_ref(&node)).chain(ev.owners.iter().cloned());
        for target in targets {
            if let Err(err) = recorder.publish(&e, &target).await {
                tracing::warn!(%err, reason = ev.reason, "publish event");
            }
        }
    }
}

/// Pull secrets read from the API, cached 5–10 minutes per reference (errors: skipped).
struct SecretCache {
    client: Client,
    cache: HashMap<(String, String), (Option<Secret>, Instant)>,
}

impl SecretCache {
    async fn get(&mut self, r: &ReferenceObject) -> Option<Secret> {
        let ns = r.namespace.clone().unwrap_or_default();
        let name = r.name.clone().unwrap_or_default();
        let key = (ns.clone(), name.clone());
        if let Some((s, until)) = self.cache.get(&key)
            && Instant::now() < *until
        {
            return s.clone();
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        match api.get_opt(&name).await {
            Ok(s) => {
                let ttl = Duration::from_secs(300 + fastrand::u64(0..300));
                self.cache.insert(key, (s.clone(), Instant::now() + ttl));
                s
            }
            Err(err) => {
                tracing::warn!(%err, namespace = %ns, %name, "get pull secret");
                None
            }
        }
    }

    async fn keyrings(&mut self, spec: &NodeImageSpec) -> BTreeMap<String, secrets::Keyring> {
        let mut out = BTreeMap::new();
        for (image, ispec) in spec.images.iter().flatten() {
            let Some(refs) = ispec.pull_secrets.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let mut list = Vec::new();
            for r in refs {
                if let Some(s) = self.get(r).await {
                    list.push(s);
                }
            }
            let (ring, errs) = secrets::Keyring::from_secrets(&list);
            for e in errs {
                tracing::warn!(error = %e, %image, "unusable pull secret");
            }
            out.insert(image.clone(), ring);
        }
        out
    }
}

/// Token bucket for status writes (0.5 per second, burst 5, as OpenKruise's daemon).
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    const RATE: f64 = 0.5;
    const BURST: f64 = 5.0;
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * Self::RATE).min(Self::BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Watches this node's NodeImage (field selector on the name), keeps the puller in step with its
/// spec, and writes the status when it changes (rate-limited, status subresource).
async fn run_node(
    client: Client,
    node: String,
    puller: puller::Puller,
    synced: Arc<AtomicBool>,
) -> Result<()> {
    let api: Api<NodeImage> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let mut stream = watcher(api.clone(), cfg).default_backoff().boxed();
    let mut secrets = SecretCache {
        client,
        cache: HashMap::new(),
    };
    let mut bucket = Bucket {
        tokens: Bucket::BURST,
        at: Instant::now(),
    };
    let mut latest: Option<NodeImage> = None;
    let mut next = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(watcher::Event::Apply(ni) | watcher::Event::InitApply(ni))) => {
                    // Deleting NodeImages are left alone; the pulls under way finish (OpenKruise too).
                    if ni.metadata.deletion_timestamp.is_none() {
                        latest = Some(ni);
                    }
                }
                Some(Ok(watcher::Event::Delete(_))) => latest = None,
                Some(Ok(watcher::Event::InitDone)) => synced.store(true, Ordering::Relaxed),
                Some(Ok(watcher::Event::Init)) => {}
                Some(Err(err)) => tracing::warn!(%err, "NodeImage watch"),
                None => anyhow::bail!("NodeImage watch ended"),
            },
            _ = puller.changed() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
        let Some(ni) = latest.as_ref() else {
            next = tokio::time::Instant::now() + Duration::from_secs(30);
            continue;
        };
        let rings = secrets.keyrings(&ni.spec).await;
        puller.sync(&ni.spec, ni.status.as_ref(), &|img| {
            rings.get(img).cloned().unwrap_or_default()
        });
        let status = puller::build_status(
            &ni.spec,
            &puller.statuses(),
            ni.status.as_ref(),
            ni.metadata.generation,
            jiff::Timestamp::now(),
        );
        let busy = status.succeeded.unwrap_or(0) + status.failed.unwrap_or(0) < status.desired;
        let wait = if busy {
            Duration::from_millis(3000 + fastrand::u64(0..2000))
        } else {
            Duration::from_secs(1200 + fastrand::u64(0..600))
        };
        next = tokio::time::Instant::now() + wait;
        if ni.status.as_ref() == Some(&status) {
            continue;
        }
        if !bucket.take() {
            next = next.min(tokio::time::Instant::now() + Duration::from_secs(3));
            continue;
        }
        let mut obj = ni.clone();
        obj.metadata.managed_fields = None;
        obj.status = Some(status);
        match api
            .replace_status(&node, &PostParams::default(), &obj)
            .await
        {
            Ok(written) => latest = Some(written),
            Err(err) => {
                // Usually a conflict: the watch brings the newer object and the next round retries.
                tracing::warn!(%err, "update NodeImage status");
                next = next.min(tokio::time::Instant::now() + Duration::from_secs(3));
            }
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
