//! Prometheus metrics under controller-runtime's names, so dashboards built for OpenKruise (and any
//! controller-runtime manager) work unchanged: reconcile totals, errors, durations and busy workers
//! per controller, and webhook request counts and latency per path.
//!
//! controller-runtime's `workqueue_depth` is not exported: kube-runtime's `Controller` keeps its
//! queue private, and a gauge that is never set (as it was) or set to something else would mislead
//! the dashboards that read it. `controller_runtime_active_workers` (reconciles running now) is.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerResult {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookCode {
    webhook: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PanicLabel {
    component: String,
    kind: String,
}

/// The manager's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconcile_total: Family<ControllerResult, Counter>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    reconcile_time: Family<ControllerLabel, Histogram>,
    webhook_requests: Family<WebhookCode, Counter>,
    webhook_latency: Family<WebhookLabel, Histogram>,
    active_workers: Family<ControllerLabel, Gauge>,
    panics: Family<PanicLabel, Counter>,
    configuration_write_failures: Counter,
    configuration_write_failing: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ControllerResult, Counter>::default();
        let reconcile_errors = Family::<ControllerLabel, Counter>::default();
        let reconcile_time = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let webhook_requests = Family::<WebhookCode, Counter>::default();
        let webhook_latency = Family::<WebhookLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let active_workers = Family::<ControllerLabel, Gauge>::default();
        let panics = Family::<PanicLabel, Counter>::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_webhook_requests",
            "Total number of admission requests by HTTP status code",
            webhook_requests.clone(),
        );
        registry.register(
            "controller_runtime_webhook_latency_seconds",
            "Histogram of the latency of processing admission requests",
            webhook_latency.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            active_workers.clone(),
        );
        registry.register(
            "kruise_rs_panics",
            "Panics caught while handling one object (component webhook or controller, by kind); \
             each is a kruise-rs bug, logged at ERROR",
            panics.clone(),
        );
        let configuration_write_failures = Counter::default();
        let configuration_write_failing = Gauge::default();
        registry.register(
            "kruise_rs_webhook_configuration_write_failures",
            "Failed writes of the webhook configurations by this replica (conflicts with another \
             writer are not failures)",
            configuration_write_failures.clone(),
        );
        registry.register(
            "kruise_rs_webhook_configuration_write_failing",
            "1 while this replica has failed to write the webhook configurations for more than 30 s \
             (new SidecarSets are not routed to the pod webhook; /readyz says why), else 0",
            configuration_write_failing.clone(),
        );
        Self {
            registry: Arc::new(registry),
            configuration_write_failures,
            configuration_write_failing,
            reconcile_total,
            reconcile_errors,
            reconcile_time,
            webhook_requests,
            webhook_latency,
            active_workers,
            panics,
        }
    }

    /// Counts one panic caught in `component` (`webhook` or `controller`) while handling a `kind`.
    pub fn panicked(&self, component: &str, kind: &str) {
        self.panics
            .get_or_create(&PanicLabel {
                component: component.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// Records what the webhook's configuration loop reports about its writes.
    pub fn configuration_write(&self, ev: kruise_webhook::write_health::WriteEvent) {
        use kruise_webhook::write_health::WriteEvent;
        match ev {
            WriteEvent::Failed => {
                self.configuration_write_failures.inc();
            }
            WriteEvent::Failing(on) => {
                self.configuration_write_failing.set(i64::from(on));
            }
        }
    }

    /// Records one reconcile of `controller`: `result` is `success`, `error` or `requeue`.
    pub fn reconciled(&self, controller: &str, result: &str, seconds: f64) {
        self.reconcile_total
            .get_or_create(&ControllerResult {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        if result == "error" {
            self.reconcile_errors
                .get_or_create(&ControllerLabel {
                    controller: controller.into(),
                })
                .inc();
        }
        self.reconcile_time
            .get_or_create(&ControllerLabel {
                controller: controller.into(),
            })
            .observe(seconds);
    }

    /// Records one admission request on `path`.
    pub fn admitted(&self, path: &str, allowed: bool, seconds: f64) {
        // controller-runtime counts by HTTP code; a denial is still a 200 answer
        let _ = allowed;
        self.webhook_requests
            .get_or_create(&WebhookCode {
                webhook: path.into(),
                code: "200".into(),
            })
            .inc();
        self.webhook_latency
            .get_or_create(&WebhookLabel {
                webhook: path.into(),
            })
            .observe(seconds);
    }

    /// Counts one running reconcile of `controller` until the returned guard is dropped (also when
    /// the reconcile is cancelled or panics).
    pub fn worker_started(&self, controller: &str) -> ActiveWorker {
        let gauge = self
            .active_workers
            .get_or_create(&ControllerLabel {
                controller: controller.into(),
            })
            .clone();
        gauge.inc();
        ActiveWorker(gauge)
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

/// One running reconcile, counted in `controller_runtime_active_workers` while it lives.
pub struct ActiveWorker(Gauge);

impl Drop for ActiveWorker {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_controller_runtime_names() {
        let m = Metrics::new();
        m.reconciled("cloneset", "success", 0.01);
        m.reconciled("cloneset", "error", 0.02);
        m.admitted("/mutate-pod", true, 0.0003);
        let _busy = m.worker_started("cloneset");
        m.panicked("webhook", "Pod");
        let text = m.encode();
        for needle in [
            "controller_runtime_reconcile_total{controller=\"cloneset\",result=\"success\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"cloneset\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"cloneset\"} 2",
            "controller_runtime_webhook_requests_total{webhook=\"/mutate-pod\",code=\"200\"} 1",
            "controller_runtime_webhook_latency_seconds_count{webhook=\"/mutate-pod\"} 1",
            "controller_runtime_active_workers{controller=\"cloneset\"} 1",
            "kruise_rs_panics_total{component=\"webhook\",kind=\"Pod\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn configuration_write_failures_are_counted_and_the_failing_gauge_follows() {
        use kruise_webhook::write_health::WriteEvent;
        let m = Metrics::new();
        assert!(
            m.encode()
                .contains("kruise_rs_webhook_configuration_write_failing 0"),
            "{}",
            m.encode()
        );
        m.configuration_write(WriteEvent::Failed);
        m.configuration_write(WriteEvent::Failed);
        m.configuration_write(WriteEvent::Failing(true));
        let text = m.encode();
        assert!(
            text.contains("kruise_rs_webhook_configuration_write_failures_total 2"),
            "{text}"
        );
        assert!(
            text.contains("kruise_rs_webhook_configuration_write_failing 1"),
            "{text}"
        );
        m.configuration_write(WriteEvent::Failing(false));
        assert!(
            m.encode()
                .contains("kruise_rs_webhook_configuration_write_failing 0")
        );
    }
}
