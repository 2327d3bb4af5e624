//! CloneSet controller: keeps a set of interchangeable pods (and their PVCs) at `replicas`, and rolls
//! them to new template revisions by recreation or in place, honouring partition, maxSurge,
//! maxUnavailable and lifecycle hooks. Pure planners live in the submodules; `reconcile` applies them.
//! It owns CloneSet pods, PVCs and ControllerRevisions only, never other workloads' objects.

pub mod diff;
pub mod expectations;
pub mod inplace;
pub mod lifecycle;
pub mod pod;
pub mod podutil;
pub mod predownload;
pub mod reconcile;
pub mod revision;
pub mod scale;
pub mod status;
pub mod update;

pub use reconcile::{reconcile, run, run_with};

/// Errors of the CloneSet controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The CloneSet lacks a field the API server always sets.
    #[error("CloneSet has no {0}")]
    MissingField(&'static str),
    /// The reconcile panicked (a bug); the CloneSet is retried with backoff.
    #[error(transparent)]
    Panicked(#[from] crate::guard::Panicked),
}

/// Result with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Feature switches that OpenKruise guards with feature gates or flags (all off by default, as there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    /// `CloneSetPartitionRollback`: raising the partition rolls updated pods back.
    pub partition_rollback: bool,
    /// `PreparingUpdateAsUpdate`: scale math counts PreparingUpdate pods as updated.
    pub preparing_update_as_update: bool,
    /// `--cloneset-scaling-exclude-preparing-delete`.
    pub exclude_preparing_delete: bool,
    /// `PreDownloadImageForInPlaceUpdate` (and `KruiseDaemon`, on by default): pull a new revision's
    /// changed images onto the nodes of old pods through ImagePullJobs before updating in place.
    pub predownload_image: bool,
}

/// Environment variable read by [`run`] with OpenKruise's `--feature-gates` syntax
/// (`PreDownloadImageForInPlaceUpdate=true,CloneSetPartitionRollback=true`).
pub const FEATURE_GATES_ENV: &str = "KRUISE_FEATURE_GATES";

/// A `--feature-gates` value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid feature gate {0:?}: want Name=true|false")]
pub struct BadFeatureGate(pub String);

impl Gates {
    /// Applies a feature-gate list in OpenKruise's syntax (`Name=bool,...`). `AllAlpha` turns every
    /// alpha gate of the CloneSet controller on before the named ones apply; `KruiseDaemon=false`
    /// turns image pre-download off. Gates of other controllers are accepted and ignored.
    pub fn with_feature_gates(mut self, list: &str) -> Result<Self, BadFeatureGate> {
        let mut named = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| BadFeatureGate(item.to_string()))?;
            let on = match value.trim() {
                "true" | "True" | "TRUE" => true,
                "false" | "False" | "FALSE" => false,
                _ => return Err(BadFeatureGate(item.to_string())),
            };
            named.push((name.trim().to_string(), on));
        }
        let mut daemon = true;
        if let Some((_, on)) = named.iter().rev().find(|(n, _)| n == "AllAlpha") {
            self.partition_rollback = *on;
            self.preparing_update_as_update = *on;
            self.predownload_image = *on;
        }
        for (name, on) in named {
            match name.as_str() {
                "CloneSetPartitionRollback" => self.partition_rollback = on,
                "PreparingUpdateAsUpdate" => self.preparing_update_as_update = on,
                "PreDownloadImageForInPlaceUpdate" => self.predownload_image = on,
                "KruiseDaemon" => daemon = on,
                _ => {}
            }
        }
        self.predownload_image &= daemon;
        Ok(self)
    }
}
