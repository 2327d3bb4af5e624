//! `kruise-daemon`: per-node image puller. Arrives with the image warm-up issue; until then this
//! binary says so and exits non-zero rather than pretending to work.
#![forbid(unsafe_code)]

use clap::Parser;

/// kruise-daemon: pulls the images a node's NodeImage asks for through the CRI.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("kruise-daemon: the image puller is not implemented yet")
}
