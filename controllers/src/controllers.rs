//! Starts every controller of kruise-manager behind a Lease (decision 9: one replica reconciles, every
//! replica serves the webhook). Each kind's module owns its controller; this list is the only place
//! that knows them all.

use crate::manager::Args;
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use std::future::Future;
use tokio::task::JoinSet;

/// Name of the Lease the controllers run behind.
pub const LEASE_NAME: &str = "kruise-rs-manager";
/// Lease duration: a dead leader is replaced within about this long.
pub const LEASE_SECONDS: u64 = 12;

/// A controller: given a client, metrics and a stop signal, runs until stopped.
pub type Starter = Box<
    dyn FnOnce(Client, Metrics, BoxFuture<'static, ()>) -> BoxFuture<'static, Result<()>> + Send,
>;

/// The controllers kruise-manager runs, by name.
pub fn all(args: &Args) -> Result<Vec<(&'static str, Starter)>> {
    let namespace = args.namespace.clone();
    let gates = crate::cloneset::Gates::default().with_feature_gates(&args.feature_gates)?;
    Ok(vec![
        (
            "cloneset",
            Box::new(move |c, m, s| Box::pin(crate::cloneset::run_with(c, m, gates, s))),
        ),
        (
            "sidecarset",
            Box::new(move |c, m, s| {
                Box::pin(crate::sidecarset::run_with(c, namespace, Some(m), s))
            }),
        ),
        (
            "imagepull",
            Box::new(|c, m, s| {
                Box::pin(async move {
                    let settings =
                        crate::imagepull::Settings::new(crate::imagepull::daemon_namespace())
                            .with_metrics(m);
                    // the image warm-up controllers run until the process ends
                    tokio::select! {
                        r = crate::imagepull::run_with(c, settings) => r,
                        _ = s => Ok(()),
                    }
                })
            }),
        ),
    ])
}

/// Spawns the leader-elected controllers into `tasks`. The task ends with an error when leadership
/// is lost (the process then exits and restarts as a follower, like controller-runtime does).
pub fn spawn_all<S, F>(
    tasks: &mut JoinSet<Result<()>>,
    client: Client,
    args: &Args,
    metrics: &Metrics,
    stopped: &S,
) where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let starters = match all(args) {
        Ok(s) => s,
        Err(e) => {
            tasks.spawn(async move { Err(e) });
            return;
        }
    };
    if starters.is_empty() {
        return;
    }
    let namespace = args.namespace.clone();
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "kruise-manager".into()),
            std::process::id()
        )
    });
    let metrics = metrics.clone();
    let stop_outer = stopped();
    let stops: Vec<F> = starters.iter().map(|_| stopped()).collect();
    tasks.spawn(async move {
        let lease = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(&namespace)
            .with_parameters(
                LeaseParams::new(identity.clone(), LEASE_SECONDS, 2)
                    .with_field_manager(kruise_crds::FIELD_MANAGER),
            )
            .build()
            .await
            .context("lease")?;
        let (mut leader, _lease_task) = lease.watch().await;
        tokio::pin!(stop_outer);
        tracing::info!(%identity, lease = LEASE_NAME, "waiting for leadership");
        loop {
            if *leader.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = &mut stop_outer => return Ok(()),
                changed = leader.changed() => changed.context("lease watch ended")?,
            }
        }
        tracing::info!(%identity, "leading: starting controllers");
        let mut controllers = JoinSet::new();
        for ((name, start), stop) in starters.into_iter().zip(stops) {
            let fut = start(client.clone(), metrics.clone(), Box::pin(stop));
            controllers
                .spawn(async move { fut.await.with_context(|| format!("{name} controller")) });
        }
        loop {
            tokio::select! {
                _ = &mut stop_outer => {
                    while controllers.join_next().await.is_some() {}
                    return Ok(());
                }
                changed = leader.changed() => {
                    changed.context("lease watch ended")?;
                    if !*leader.borrow() {
                        anyhow::bail!("lost the {LEASE_NAME} lease");
                    }
                }
                Some(done) = controllers.join_next() => {
                    done.context("controller panicked")??;
                    anyhow::bail!("a controller stopped unexpectedly");
                }
            }
        }
    });
}
