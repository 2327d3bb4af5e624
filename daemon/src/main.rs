//! `kruise-daemon`: per-node image puller. Finds and probes the node's CRI runtime, watches its own
//! NodeImage, pulls what it asks for and reports back; answers `/healthz`.
#![forbid(unsafe_code)]

use clap::Parser;

/// kruise-daemon: pulls the images a node's NodeImage asks for through the CRI.
#[derive(Parser, Debug)]
#[command(name = "kruise-daemon", version = env!("KRUISE_RS_VERSION"), about)]
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
    /// Most image pulls running at once on this node.
    #[arg(long, default_value_t = 2)]
    max_workers_for_pull_image: usize,
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
        max_workers: args.max_workers_for_pull_image,
    })
    .await
}
