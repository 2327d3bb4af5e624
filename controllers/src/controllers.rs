//! Starts every controller of kruise-manager. Each kind's module owns its controller; this list is
//! the only place that knows them all.

use crate::manager::Args;
use kube::Client;
use std::future::Future;
use tokio::task::JoinSet;

/// Spawns each controller into `tasks`; each stops when `stopped()` resolves.
pub fn spawn_all<S, F>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    client: Client,
    args: &Args,
    metrics: &crate::metrics::Metrics,
    stopped: &S,
) where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let _ = (tasks, client, args, metrics, stopped);
}
