//! Wiring of kruise-manager: flags, client, the admission webhook, the controllers, health
//! endpoints, and shutdown on SIGTERM/SIGINT. Controllers and webhook live in their own modules and
//! crates; this module only starts them.

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::{Router, routing::get};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kruise_webhook::configuration::Endpoint;
use kruise_webhook::runtime::ConfigurationMode;
use kruise_webhook::server::Readiness;
use kube::{Api, Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::watch;

/// kruise-manager: serves the apps.kruise.io API (SidecarSet, ImagePullJob, ImageListPullJob,
/// NodeImage, CloneSet).
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "kruise-manager", version = env!("KRUISE_RS_VERSION"), about)]
pub struct Args {
    /// Kubeconfig to use; in-cluster config or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The suite's namespace (webhook certificate Secret, SidecarSet revisions).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kruise-system")]
    pub namespace: String,
    /// Address of `/healthz` and `/readyz`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub health_addr: SocketAddr,
    /// Do not run the admission webhook.
    #[arg(long)]
    pub disable_webhook: bool,
    /// Do not run the controllers (a webhook-only replica: no Lease, no controller caches).
    #[arg(long, conflicts_with = "disable_webhook")]
    pub disable_controllers: bool,
    /// Address the webhook's HTTPS server binds.
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub webhook_bind: SocketAddr,
    /// Base URL the API server calls (`https://127.0.0.1:9443`); when absent, the Service below.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Name of the webhook Service.
    #[arg(long, default_value = "kruise-webhook-service")]
    pub webhook_service_name: String,
    /// Port of the webhook Service.
    #[arg(long, default_value_t = 443)]
    pub webhook_service_port: i32,
    /// Externally provided CA (PEM); with --webhook-cert and --webhook-key nothing is generated.
    #[arg(long, requires_all = ["webhook_cert", "webhook_key"])]
    pub webhook_ca: Option<String>,
    /// Externally provided serving certificate (PEM).
    #[arg(long, requires = "webhook_ca")]
    pub webhook_cert: Option<String>,
    /// Externally provided serving key (PEM).
    #[arg(long, requires = "webhook_ca")]
    pub webhook_key: Option<String>,
    /// Name of the Secret holding generated webhook certificates.
    #[arg(long, default_value = "kruise-webhook-certs")]
    pub webhook_secret_name: String,
    /// `Fail` (default) or `Ignore`: what the API server does with a matching pod when the webhook
    /// cannot be reached.
    #[arg(long, default_value = "Fail", value_parser = ["Fail", "Ignore"])]
    pub pod_failure_policy: String,
    /// `own`: create and keep the webhook configurations; `existing`: only fill in the ones the Helm
    /// chart created (so `helm uninstall` removes them for good); `off`: leave them alone.
    #[arg(long, default_value = "own", value_parser = ["own", "existing", "off"])]
    pub webhook_configurations: String,
    /// Namespaces never injected (besides kube-system, kube-public, kube-node-lease and our own).
    #[arg(long = "exclude-namespace")]
    pub exclude_namespaces: Vec<String>,
    /// OpenKruise's feature gates, `Name=true,Other=false` (e.g.
    /// `PreDownloadImageForInPlaceUpdate=true`); a gate kruise-rs would not honour is refused at
    /// start (the table of every gate: `controllers/src/features.rs`).
    #[arg(long, env = "KRUISE_FEATURE_GATES", default_value = "")]
    pub feature_gates: String,
}

/// Builds a client from `kubeconfig`, or from the environment when `None`.
pub async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client> {
    let cfg = match kubeconfig {
        Some(path) => {
            let kc =
                Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(cfg)?)
}

fn webhook_config(
    args: &Args,
    features: &crate::features::FeatureGates,
) -> kruise_webhook::runtime::Config {
    let endpoint = match &args.webhook_url {
        Some(url) => Endpoint::Url(url.clone()),
        None => Endpoint::Service {
            namespace: args.namespace.clone(),
            name: args.webhook_service_name.clone(),
            port: args.webhook_service_port,
        },
    };
    let svc = format!("{}.{}.svc", args.webhook_service_name, args.namespace);
    let mut hosts = vec![svc.clone(), format!("{svc}.cluster.local")];
    if let Some(url) = &args.webhook_url {
        let host = url
            .split("://")
            .nth(1)
            .unwrap_or(url)
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        if !host.is_empty() {
            hosts.insert(0, host.to_string());
        }
    }
    let external_certs = match (&args.webhook_ca, &args.webhook_cert, &args.webhook_key) {
        (Some(ca), Some(c), Some(k)) => Some((ca.clone(), c.clone(), k.clone())),
        _ => None,
    };
    kruise_webhook::runtime::Config {
        bind: args.webhook_bind,
        endpoint,
        namespace: args.namespace.clone(),
        secret_name: args.webhook_secret_name.clone(),
        hosts,
        external_certs,
        pod_failure_policy: args.pod_failure_policy.clone(),
        excluded_namespaces: args.exclude_namespaces.clone(),
        configurations: match args.webhook_configurations.as_str() {
            "existing" => ConfigurationMode::PatchExisting,
            "off" => ConfigurationMode::Off,
            _ => ConfigurationMode::Own,
        },
        features: kruise_webhook::runtime::Features {
            sort_sidecar_containers_by_name: features.sort_sidecar_containers_by_name,
            patch_pod_metadata_defaults_allowed: features
                .sidecarset_patch_pod_metadata_defaults_allowed,
            deletion_protection: features.resources_deletion_protection,
            crd_cascading_deletion_protection: features.deletion_protection_for_crd_cascading,
        },
    }
}

/// A CRD that was just established may still answer 404 for a moment; a controller whose first
/// list fails that way would wait for its cache forever. List every kind until each answers.
async fn wait_until_served(client: &Client) -> Result<()> {
    use kube::api::ListParams;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let lp = ListParams::default().limit(1);
    loop {
        let checks = [
            Api::<kruise_crds::SidecarSet>::all(client.clone())
                .list_metadata(&lp)
                .await
                .err(),
            Api::<kruise_crds::CloneSet>::all(client.clone())
                .list_metadata(&lp)
                .await
                .err(),
            Api::<kruise_crds::ImagePullJob>::all(client.clone())
                .list_metadata(&lp)
                .await
                .err(),
            Api::<kruise_crds::ImageListPullJob>::all(client.clone())
                .list_metadata(&lp)
                .await
                .err(),
            Api::<kruise_crds::NodeImage>::all(client.clone())
                .list_metadata(&lp)
                .await
                .err(),
        ];
        match checks.into_iter().flatten().next() {
            None => return Ok(()),
            Some(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e).context("the kruise-rs kinds are not served");
            }
            Some(e) => {
                tracing::info!(error = %e, "waiting for the kruise-rs kinds to be served");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// Runs the manager until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<()> {
    // a panic while handling one object is caught and logged with that object (see `guard`)
    kruise_webhook::panics::install_hook();
    let client = client(args.kubeconfig.as_ref()).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for crd in kruise_crds::crdgen::all() {
        let name = crd.metadata.name.unwrap_or_default();
        if crds.get_opt(&name).await?.is_none() {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "kruise-rs CRDs missing: {missing:?}; apply crds/manifests/ with --server-side"
        );
    }
    wait_until_served(&client).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // a bad --feature-gates is refused at start, not when this replica first leads
    let features = crate::features::FeatureGates::parse(&args.feature_gates)?;
    let ready = Readiness::default();
    let metrics = crate::metrics::Metrics::new();
    let mut tasks = tokio::task::JoinSet::new();

    if args.disable_webhook {
        ready.set_ready();
    } else {
        let cfg = webhook_config(&args, &features);
        let (c, r, s) = (client.clone(), ready.clone(), stopped());
        let m = metrics.clone();
        let observe: kruise_webhook::server::Observer =
            std::sync::Arc::new(move |o: &kruise_webhook::server::Observation<'_>| {
                m.admitted(o.path, o.allowed, o.seconds);
                if o.panicked {
                    m.panicked("webhook", o.kind);
                }
            });
        let m = metrics.clone();
        let write_observe: kruise_webhook::write_health::WriteObserver =
            std::sync::Arc::new(move |ev| m.configuration_write(ev));
        tasks.spawn(async move {
            kruise_webhook::runtime::run(c, cfg, r, Some(observe), Some(write_observe), s)
                .await
                .context("webhook")
        });
    }
    if !args.disable_controllers {
        crate::controllers::spawn_all(&mut tasks, client.clone(), &args, &metrics, &stopped);
    }

    let health = {
        let ready = ready.clone();
        let metrics = metrics.clone();
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/metrics",
                get(move || {
                    let text = metrics.encode();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                    }
                }),
            )
            .route(
                "/readyz",
                get(move || {
                    let ready = ready.clone();
                    async move {
                        // the webhook's reason (certificates not in place, configurations
                        // failing to be written), as its own /readyz gives it
                        match ready.check() {
                            Ok(()) => (StatusCode::OK, "ok".to_string()),
                            Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                        }
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind(args.health_addr)
        .await
        .with_context(|| format!("bind {}", args.health_addr))?;
    let health_stop = stopped();
    tasks.spawn(async move {
        axum::serve(listener, health)
            .with_graceful_shutdown(health_stop)
            .await
            .context("health server")
    });
    tracing::info!(health_addr = %args.health_addr, "kruise-manager started");

    let result = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Some(done) = tasks.join_next() => match done {
            Ok(Ok(())) => Err(anyhow::anyhow!("a component stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("a component panicked: {e}")),
        },
    };
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(20), drain)
        .await
        .is_err()
    {
        tracing::warn!("components did not stop within 20 s");
    }
    tracing::info!("shut down");
    result
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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
