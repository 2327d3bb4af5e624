//! Wiring of kruise-manager: client, CRD check, health endpoints, shutdown on SIGTERM/SIGINT.
//! No controller runs yet.

use anyhow::{Context, Result};
use axum::{Router, routing::get};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Builds a client from `kubeconfig`, or from the environment when `None`.
pub async fn client(kubeconfig: Option<PathBuf>) -> Result<Client> {
    let cfg = match kubeconfig {
        Some(path) => {
            let kc =
                Kubeconfig::read_from(&path).with_context(|| format!("read {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(cfg)?)
}

/// Runs the manager until SIGTERM or SIGINT.
pub async fn run(kubeconfig: Option<PathBuf>, health_addr: SocketAddr) -> Result<()> {
    let client = client(kubeconfig).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let mut missing = Vec::new();
    for crd in kruise_crds::crdgen::all() {
        let name = crd.metadata.name.unwrap_or_default();
        if crds.get_opt(&name).await?.is_none() {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        tracing::info!("all kruise-rs CRDs are served; no controller is implemented yet");
    } else {
        tracing::warn!(
            ?missing,
            "kruise-rs CRDs missing: apply crds/manifests/ with --server-side"
        );
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(health_addr)
        .await
        .with_context(|| format!("bind {health_addr}"))?;
    tracing::info!(%health_addr, "serving health endpoints");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
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
