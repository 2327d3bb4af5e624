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
}
