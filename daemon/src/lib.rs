//! kruise-daemon: the per-node agent that pulls images through the CRI for its NodeImage.
//! Today: CRI discovery and connection (`cri`), a Node check and the health endpoint. The puller
//! arrives with the image warm-up issue.
#![forbid(unsafe_code)]

pub mod cri;

use anyhow::{Context, Result};
use axum::{Router, routing::get};
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    let nodes: Api<Node> = Api::all(client);
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
    tracing::info!(node = %opts.node_name, %endpoint, runtime = %version, "connected to the CRI runtime; the image puller is not implemented yet");
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(opts.health_addr)
        .await
        .with_context(|| format!("bind {}", opts.health_addr))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
