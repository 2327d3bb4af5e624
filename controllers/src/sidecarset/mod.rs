//! SidecarSet controller: keeps each SidecarSet's status, ControllerRevision history and matched
//! pods' sidecars current, upgrading images in place (cold) or through two alternating slots (hot).
//! Pure planners live in the submodules; `reconcile` applies them. It only ever changes a pod's
//! sidecar images and the annotations/condition SidecarSet owns; it never deletes or restarts pods.

pub mod hotupgrade;
pub mod pod;
pub mod reconcile;
pub mod revision;
pub mod status;
pub mod strategy;
pub mod upgrade;

pub use reconcile::{run, run_with};

/// Errors of the SidecarSet controller.
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
    /// Building a pod upgrade failed.
    #[error("upgrade pod {pod}: {source}")]
    Upgrade {
        /// `namespace/name` of the pod.
        pod: String,
        /// Why.
        #[source]
        source: upgrade::UpgradeError,
    },
    /// Serializing an object failed.
    #[error("serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The pod cache was dropped (the controller is shutting down).
    #[error("pod cache is gone")]
    CacheGone,
    /// A reconcile took longer than its deadline (a cache that did not fill, a request that did
    /// not answer); it is retried.
    #[error("reconcile did not finish within {0} s; retrying")]
    TimedOut(u64),
    /// A ControllerRevision name kept colliding with revisions of other content.
    #[error("too many ControllerRevision name collisions for sidecarset {0}")]
    Collisions(String),
    /// The reconcile panicked (a bug); the SidecarSet is retried with backoff.
    #[error(transparent)]
    Panicked(#[from] crate::guard::Panicked),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what was being done to a kube error.
pub(crate) fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}
