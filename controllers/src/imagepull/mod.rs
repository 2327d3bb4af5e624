//! Image warm-up on the manager side (spec `imagepull.md` §2–§3): the ImagePullJob,
//! ImageListPullJob and NodeImage controllers, and the syncing of job pull secrets into the daemon's
//! namespace. Planning is pure (`selection`, `imagepulljob`, `imagelistpulljob`, `nodeimage`,
//! `secrets`); the reconcilers below only apply plans. The node side is the `kruise-daemon` crate.

pub mod imagelistpulljob;
pub mod imagepulljob;
pub mod nodeimage;
pub mod reconcile;
pub mod secrets;
pub mod selection;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::Condition;

pub use reconcile::Settings;

/// The namespace synced pull secrets go to: `$KRUISE_DAEMON_CONFIG_NS`, else `kruise-daemon-config`.
pub fn daemon_namespace() -> String {
    std::env::var(kruise_crds::keys::imagepull::DAEMON_CONFIG_NAMESPACE_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| kruise_crds::keys::imagepull::DAEMON_CONFIG_NAMESPACE.to_string())
}

/// Runs the NodeImage (and Node → NodeImage creation), ImagePullJob and ImageListPullJob
/// controllers until they stop. `namespace_for_secrets` is where job pull secrets are copied for
/// kruise-daemon (see [`daemon_namespace`]). Status writes use server-side apply as `kruise-rs`.
pub async fn run(client: kube::Client, namespace_for_secrets: String) -> anyhow::Result<()> {
    reconcile::run_controllers(client, Settings::new(namespace_for_secrets)).await
}

/// Same as [`run`] with explicit settings.
pub async fn run_with(client: kube::Client, settings: Settings) -> anyhow::Result<()> {
    reconcile::run_controllers(client, settings).await
}

/// Errors of the image warm-up controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A job's image does not parse (the webhook should have refused it).
    #[error("invalid image {image:?}: {source}")]
    Image {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: kruise_webhook::imagepull::reference::ReferenceError,
    },
    /// A label selector does not parse.
    #[error("invalid selector: {0}")]
    Selector(String),
    /// An object lacks a field the controller needs.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// The namespace the daemon reads secrets from is missing or terminating.
    #[error("namespace {0} for synced pull secrets is missing or terminating")]
    DaemonNamespace(String),
    /// An API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Serializing an object failed.
    #[error("serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The reconcile panicked (a bug); the object is retried with backoff.
    #[error(transparent)]
    Panicked(#[from] crate::guard::Panicked),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Helper to attach context to kube errors.
pub(crate) fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// Sets (or updates) a condition, moving `lastTransitionTime` only when the status changes.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = (!message.is_empty()).then(|| message.to_string());
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = Some(Time(now));
            }
            c.reason = Some(reason.to_string());
            c.message = message;
            c.observed_generation = generation;
        }
        None => conds.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            observed_generation: generation,
            last_transition_time: Some(Time(now)),
            last_update_time: None,
            reason: Some(reason.to_string()),
            message,
        }),
    }
}
