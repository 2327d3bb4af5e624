//! The reconcile boundary of every controller: a panic while reconciling one object becomes that
//! object's error (requeued with a backoff that doubles per consecutive panic, up to 5 minutes),
//! is counted in `kruise_rs_panics_total{component="controller"}` and logged at ERROR once per
//! object — the controller's other objects, and the process, carry on.

use crate::metrics::Metrics;
use kruise_webhook::panics::CatchPanic;
use kube::runtime::controller::Action;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// First requeue delay after a panic; doubled per consecutive panic of the same object.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Longest requeue delay after panics.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Objects whose panics are remembered (for the backoff and the once-per-object log line).
const MAX_REMEMBERED: usize = 4096;

/// A reconcile that panicked, as an error of its controller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the reconcile panicked: {message} (retried in {} s)", retry_after.as_secs())]
pub struct Panicked {
    /// The panic message and location.
    pub message: String,
    /// When to try this object again.
    pub retry_after: Duration,
}

/// Consecutive panics per `controller/object`.
static STREAKS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

fn streaks() -> std::sync::MutexGuard<'static, HashMap<String, u32>> {
    STREAKS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn backoff(streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(10);
    (FIRST_RETRY * 2u32.pow(doublings)).min(MAX_RETRY)
}

/// Runs one reconcile of `object` (`namespace/name`, or `name` for cluster-scoped kinds) of `kind`
/// in `controller`, catching its panics.
pub async fn reconcile<E, F>(
    metrics: Option<&Metrics>,
    controller: &str,
    kind: &str,
    object: &str,
    fut: F,
) -> Result<Action, E>
where
    E: From<Panicked>,
    F: Future<Output = Result<Action, E>>,
{
    let start = Instant::now();
    let _busy = metrics.map(|m| m.worker_started(controller));
    let key = format!("{controller}/{object}");
    let panic = match CatchPanic::new(fut).await {
        Ok(res) => {
            if res.is_ok() {
                let mut s = streaks();
                if !s.is_empty() {
                    s.remove(&key);
                }
            }
            return res;
        }
        Err(panic) => panic,
    };
    let streak = {
        let mut s = streaks();
        if s.len() >= MAX_REMEMBERED && !s.contains_key(&key) {
            s.clear();
        }
        let n = s.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    let retry_after = backoff(streak);
    if let Some(m) = metrics {
        m.panicked("controller", kind);
        m.reconciled(controller, "error", start.elapsed().as_secs_f64());
    }
    let secs = retry_after.as_secs();
    if streak == 1 {
        tracing::error!(
            controller,
            kind,
            object,
            panic = %panic,
            "the {controller} panicked while reconciling {kind} {object}: {panic}. It is retried \
             in {secs} s, then with a doubling backoff while it keeps failing; other objects are \
             unaffected. This is a kruise-rs bug: please report it with this line"
        );
    } else {
        tracing::debug!(controller, kind, object, streak, panic = %panic, "reconcile panicked again");
    }
    Err(Panicked {
        message: panic.message,
        retry_after,
    }
    .into())
}

/// `namespace/name`, or `name` for a cluster-scoped object.
pub fn object_key<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, thiserror::Error)]
    enum TestError {
        #[error(transparent)]
        Panicked(#[from] Panicked),
    }

    async fn run(metrics: &Metrics, object: &str, panics: bool) -> Result<Action, TestError> {
        reconcile(
            Some(metrics),
            "test-controller",
            "CloneSet",
            object,
            async move {
                if panics {
                    panic!("bug while reconciling {object}");
                }
                Ok(Action::await_change())
            },
        )
        .await
    }

    #[tokio::test]
    async fn a_panicking_reconcile_is_an_error_requeued_with_backoff() {
        kruise_webhook::panics::install_hook();
        let m = Metrics::new();
        let retry = |r: Result<Action, TestError>| match r {
            Err(TestError::Panicked(p)) => {
                assert!(p.message.contains("bug while reconciling ns/a"), "{p}");
                p.retry_after
            }
            Ok(_) => panic!("expected a panic error"),
        };
        assert_eq!(retry(run(&m, "ns/a", true).await), Duration::from_secs(5));
        assert_eq!(retry(run(&m, "ns/a", true).await), Duration::from_secs(10));
        assert_eq!(retry(run(&m, "ns/a", true).await), Duration::from_secs(20));
        // another object of the same controller is unaffected
        assert_eq!(run(&m, "ns/b", false).await, Ok(Action::await_change()));
        // a success resets the backoff
        assert_eq!(run(&m, "ns/a", false).await, Ok(Action::await_change()));
        assert_eq!(retry(run(&m, "ns/a", true).await), Duration::from_secs(5));
        let text = m.encode();
        assert!(
            text.contains("kruise_rs_panics_total{component=\"controller\",kind=\"CloneSet\"} 4"),
            "{text}"
        );
        assert_eq!(backoff(30), MAX_RETRY);
    }

    /// `controller_runtime_active_workers` counts the reconciles running, also through a panic.
    #[tokio::test]
    async fn active_workers_count_running_reconciles() {
        let m = Metrics::new();
        let busy = |n: u32| {
            format!("controller_runtime_active_workers{{controller=\"busy-controller\"}} {n}")
        };
        // the reconcile sees itself counted (it panics to say so), and is uncounted after the panic
        let r = reconcile(Some(&m), "busy-controller", "CloneSet", "ns/b", async {
            if m.encode().contains(&busy(1)) {
                panic!("running and counted");
            }
            Ok::<_, TestError>(Action::await_change())
        })
        .await;
        assert!(
            matches!(&r, Err(TestError::Panicked(p)) if p.message.contains("running and counted")),
            "{r:?}"
        );
        assert!(m.encode().contains(&busy(0)), "{}", m.encode());
    }
}
