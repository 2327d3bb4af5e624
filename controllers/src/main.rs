//! `kruise-manager`: controllers + admission webhook. Today it only connects to the cluster, checks
//! that the kruise-rs CRDs are served, and answers `/healthz` and `/readyz`; the controllers and the
//! webhook arrive with their issues.
#![forbid(unsafe_code)]

use clap::Parser;

/// kruise-manager: serves the apps.kruise.io API (SidecarSet, ImagePullJob, ImageListPullJob,
/// NodeImage, CloneSet).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Kubeconfig to use; in-cluster config or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Address of the health endpoints (`/healthz`, `/readyz`).
    #[arg(long, default_value = "127.0.0.1:8000")]
    health_addr: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    kruise_controllers::manager::run(args.kubeconfig, args.health_addr).await
}
