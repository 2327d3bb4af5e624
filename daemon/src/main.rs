//! `kruise-daemon`: per-node image puller. Today it only finds and probes the node's CRI runtime,
//! checks that its Node exists, and answers `/healthz`; pulling arrives with the image warm-up issue.
#![forbid(unsafe_code)]

use clap::Parser;

/// kruise-daemon: pulls the images a node's NodeImage asks for through the CRI.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Kubeconfig to use; in-cluster config or $KUBECONFIG when absent.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Name of the Node this daemon serves.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// CRI endpoint (`unix:///path`); probed in the usual places when absent.
    #[arg(long)]
    runtime_endpoint: Option<String>,
    /// Address of the health endpoint (`/healthz`).
    #[arg(long, default_value = "127.0.0.1:10221")]
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
    kruise_daemon::run(kruise_daemon::Options {
        kubeconfig: args.kubeconfig,
        node_name: args.node_name,
        runtime_endpoint: args.runtime_endpoint,
        health_addr: args.health_addr,
    })
    .await
}
