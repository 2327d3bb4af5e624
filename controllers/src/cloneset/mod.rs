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

impl Gates {
    /// Takes the CloneSet gates of a `--feature-gates` list in OpenKruise's syntax
    /// ([`crate::features::FeatureGates::parse`], which refuses gates kruise-rs would ignore).
    pub fn with_feature_gates(self, list: &str) -> Result<Self, crate::features::FeatureGateError> {
        Ok(self.with_features(&crate::features::FeatureGates::parse(list)?))
    }

    /// Takes the CloneSet gates of resolved feature gates.
    pub fn with_features(mut self, f: &crate::features::FeatureGates) -> Self {
        self.partition_rollback = f.cloneset_partition_rollback;
        self.preparing_update_as_update = f.preparing_update_as_update;
        self.predownload_image = f.predownload_image_for_in_place_update;
        self
    }
}
