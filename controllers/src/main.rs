//! `kruise-manager`: the controllers and the admission webhook of kruise-rs.
#![forbid(unsafe_code)]

use clap::Parser;
use kruise_controllers::manager::{Args, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // One TLS crypto provider for the whole process (kube's client and the webhook server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    run(args).await
}
