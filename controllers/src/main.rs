//! `kruise-manager`: controllers + admission webhook. The controllers and the webhook arrive with their
//! issues; until then this binary says so and exits non-zero rather than pretending to work.
#![forbid(unsafe_code)]

use clap::Parser;

/// kruise-manager: serves the apps.kruise.io API (SidecarSet, ImagePullJob, ImageListPullJob,
/// NodeImage, CloneSet).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("kruise-manager: no controller is implemented yet")
}
