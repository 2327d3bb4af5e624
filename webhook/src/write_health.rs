//! Whether the configuration loop can write the webhook configurations. When it cannot (RBAC
//! refused, the API server erring), new SidecarSets stop being routed to the pod webhook; after
//! [`GRACE`] of failures the replica says so on `/readyz`, in metrics and in one Warning event.
//! Pure state: the loop in [`crate::runtime`] feeds it results and applies what it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// What metrics see of the configuration writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteEvent {
    /// One write failed (not a conflict).
    Failed,
    /// Whether the writes are now reported failing (after [`GRACE`]) or recovered.
    Failing(bool),
}

/// Receives [`WriteEvent`]s; metrics plug in here.
pub type WriteObserver = Arc<dyn Fn(WriteEvent) + Send + Sync>;

/// A write error as a sentence fragment: each context, then the API server's message with its
/// code (never the Debug form of kube's Status).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for c in e.chain() {
        if let Some(k) = c.downcast_ref::<kube::Error>() {
            parts.push(crate::server::kube_error_text(k));
            break;
        }
        parts.push(c.to_string());
    }
    parts.join(": ")
}

/// How long writes may fail before the replica reports it.
pub const GRACE: Duration = Duration::from_secs(30);

/// What the loop does after one write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Count one failed write (conflicts are not failures).
    pub count_failure: bool,
    /// The failing period just started being reported: publish this Warning once and make
    /// `/readyz` fail with it.
    pub started_failing: Option<String>,
    /// Still failing and reported: the refreshed `/readyz` sentence (how long, last error).
    pub still_failing: Option<String>,
    /// A reported failing period just ended.
    pub recovered: bool,
}

/// The failing period, if any.
#[derive(Clone, Debug, Default)]
pub struct WriteHealth {
    since: Option<Instant>,
    reported: bool,
}

/// The sentence `/readyz` and the event give.
pub fn sentence(failing_for: Duration, error: &str) -> String {
    format!(
        "kruise-manager has failed to write the webhook configurations \
         (MutatingWebhookConfiguration {}) for {} s: {error}. Until it can, new SidecarSets are not \
         routed to the pod webhook; check that the manager's ServiceAccount may patch \
         mutatingwebhookconfigurations and validatingwebhookconfigurations, and the API server.",
        crate::configuration::MUTATING_CONFIGURATION,
        failing_for.as_secs()
    )
}

impl WriteHealth {
    /// A write succeeded.
    pub fn succeeded(&mut self) -> Report {
        let recovered = self.reported;
        *self = Self::default();
        Report {
            recovered,
            ..Report::default()
        }
    }

    /// A write was refused with a conflict: another writer was first; it says nothing about
    /// whether this replica can write.
    pub fn conflicted(&mut self) -> Report {
        Report::default()
    }

    /// A write failed at `now` with `error` (already a sentence fragment).
    pub fn failed(&mut self, now: Instant, error: &str) -> Report {
        let since = *self.since.get_or_insert(now);
        let failing_for = now.saturating_duration_since(since);
        let mut report = Report {
            count_failure: true,
            ..Report::default()
        };
        if failing_for > GRACE {
            let why = sentence(failing_for, error);
            if self.reported {
                report.still_failing = Some(why);
            } else {
                self.reported = true;
                report.started_failing = Some(why);
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_once_after_the_grace_and_cleared_by_a_success() {
        let t0 = Instant::now();
        let mut h = WriteHealth::default();
        let r = h.failed(t0, "forbidden");
        assert!(r.count_failure && r.started_failing.is_none());
        let r = h.failed(t0 + Duration::from_secs(29), "forbidden");
        assert!(r.count_failure && r.started_failing.is_none() && r.still_failing.is_none());
        let r = h.failed(
            t0 + Duration::from_secs(31),
            "patch refused (HTTP 403 Forbidden)",
        );
        assert_eq!(
            r.started_failing.as_deref(),
            Some(
                "kruise-manager has failed to write the webhook configurations \
                 (MutatingWebhookConfiguration kruise-rs-mutating-webhook-configuration) for 31 s: \
                 patch refused (HTTP 403 Forbidden). Until it can, new SidecarSets are not routed \
                 to the pod webhook; check that the manager's ServiceAccount may patch \
                 mutatingwebhookconfigurations and validatingwebhookconfigurations, and the API server."
            )
        );
        // the event once per failing period; readiness keeps the latest sentence
        let r = h.failed(t0 + Duration::from_secs(40), "timeout");
        assert!(r.count_failure && r.started_failing.is_none());
        assert!(r.still_failing.unwrap().contains("for 40 s: timeout"));
        assert_eq!(
            h.succeeded(),
            Report {
                recovered: true,
                ..Report::default()
            }
        );
        // a new period starts from scratch
        let t1 = t0 + Duration::from_secs(100);
        assert!(h.failed(t1, "x").started_failing.is_none());
        assert!(
            h.failed(t1 + Duration::from_secs(31), "x")
                .started_failing
                .is_some()
        );
    }

    #[test]
    fn error_text_names_the_write_and_the_api_message_without_debug_output() {
        use anyhow::Context as _;
        let status = kube::core::Status::failure(
            "mutatingwebhookconfigurations.admissionregistration.k8s.io \"x\" is forbidden",
            "Forbidden",
        )
        .with_code(403);
        let e = Err::<(), _>(kube::Error::Api(Box::new(status)))
            .context("apply the MutatingWebhookConfiguration")
            .unwrap_err();
        assert_eq!(
            error_text(&e),
            "apply the MutatingWebhookConfiguration: mutatingwebhookconfigurations.admissionregistration.k8s.io \"x\" is forbidden (HTTP 403 Forbidden)"
        );
    }

    #[test]
    fn conflicts_neither_count_nor_start_nor_end_a_failing_period() {
        let t0 = Instant::now();
        let mut h = WriteHealth::default();
        assert_eq!(h.conflicted(), Report::default());
        h.failed(t0, "x");
        assert_eq!(h.conflicted(), Report::default());
        // the period started at the first failure still runs
        assert!(
            h.failed(t0 + Duration::from_secs(31), "x")
                .started_failing
                .is_some()
        );
        // a success that ends no reported period reports nothing
        let mut quiet = WriteHealth::default();
        quiet.failed(t0, "x");
        assert_eq!(quiet.succeeded(), Report::default());
    }
}
