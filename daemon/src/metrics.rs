//! The daemon's Prometheus metrics, served on `/metrics` next to `/healthz`: image pulls started,
//! succeeded and failed, failed attempts, how long each pull took (all attempts), and how many
//! workers are pulling.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The puller's metrics (cheap to clone; clones share the counters).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    started: Counter,
    succeeded: Counter,
    failed: Counter,
    attempts_failed: Counter,
    duration: Histogram,
    busy: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("started", &self.started.get())
            .field("succeeded", &self.succeeded.get())
            .field("failed", &self.failed.get())
            .field("attempts_failed", &self.attempts_failed.get())
            .field("busy", &self.busy.get())
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one busy worker until dropped (also when the worker is aborted).
#[derive(Debug)]
pub struct Busy(Gauge);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let (started, succeeded, failed) =
            (Counter::default(), Counter::default(), Counter::default());
        let attempts_failed = Counter::default();
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 15));
        let busy = Gauge::default();
        registry.register(
            "kruise_daemon_image_pulls_started",
            "Image pulls started (one per tag and version, retries included in the same pull)",
            started.clone(),
        );
        registry.register(
            "kruise_daemon_image_pulls_succeeded",
            "Image pulls that ended Succeeded",
            succeeded.clone(),
        );
        registry.register(
            "kruise_daemon_image_pulls_failed",
            "Image pulls that ended Failed after their retries",
            failed.clone(),
        );
        registry.register(
            "kruise_daemon_image_pull_attempts_failed",
            "Single CRI pull attempts that failed (each is retried until backoffLimit)",
            attempts_failed.clone(),
        );
        registry.register(
            "kruise_daemon_image_pull_duration_seconds",
            "Time from a pull's start to its end, all attempts and backoff included",
            duration.clone(),
        );
        registry.register(
            "kruise_daemon_image_pull_workers_busy",
            "Workers holding a pull slot right now",
            busy.clone(),
        );
        Self {
            registry: Arc::new(registry),
            started,
            succeeded,
            failed,
            attempts_failed,
            duration,
            busy,
        }
    }

    /// A pull starts: counts it and one busy worker until the returned guard is dropped.
    pub fn pull_started(&self) -> Busy {
        self.started.inc();
        self.busy.inc();
        Busy(self.busy.clone())
    }

    /// One attempt of a pull failed.
    pub fn attempt_failed(&self) {
        self.attempts_failed.inc();
    }

    /// A pull ended after `seconds`.
    pub fn pull_finished(&self, succeeded: bool, seconds: f64) {
        if succeeded {
            self.succeeded.inc();
        } else {
            self.failed.inc();
        }
        self.duration.observe(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    #[test]
    fn counts_pulls_durations_and_busy_workers() {
        let m = Metrics::new();
        let a = m.pull_started();
        let b = m.pull_started();
        let text = m.encode();
        assert_eq!(
            value(&text, "kruise_daemon_image_pulls_started_total"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "kruise_daemon_image_pull_workers_busy"),
            Some(2.0)
        );
        m.pull_finished(true, 0.2);
        drop(a);
        m.attempt_failed();
        m.pull_finished(false, 3.0);
        drop(b);
        let text = m.encode();
        assert_eq!(
            value(&text, "kruise_daemon_image_pulls_succeeded_total"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "kruise_daemon_image_pulls_failed_total"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "kruise_daemon_image_pull_workers_busy"),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "kruise_daemon_image_pull_duration_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "kruise_daemon_image_pull_duration_seconds_sum"),
            Some(3.2)
        );
        assert!(
            text.contains("# TYPE kruise_daemon_image_pull_duration_seconds histogram"),
            "{text}"
        );
    }
}
