//! Well-known keys of ImagePullJob, ImageListPullJob, NodeImage and the image puller in kruise-daemon:
//! finalizers, labels and annotations on jobs, secrets and workloads, env names, condition types, event
//! reasons and the fixed status messages users see. Spelled exactly as OpenKruise spells them, except
//! the condition types and their reasons, which OpenKruise does not have (decision 4 of the spec).

// ---------------------------------------------------------------------------------------------
// Finalizers and labels on the kinds themselves

/// Finalizer the ImagePullJob controller puts on every job so that synced pull secrets are released
/// before the job goes away (shared with other OpenKruise kinds).
pub const PROTECTION_FINALIZER: &str = "apps.kruise.io/deletion-protection";

/// NodeImage label (any value): the NodeImage has no Node behind it and must not be deleted (tests).
pub const FAKE_NODE_IMAGE_LABEL: &str = "apps.kruise.io/fake-nodeimage";

/// Node label key that, with value [`VIRTUAL_KUBELET_LABEL_VALUE`], marks nodes that get no NodeImage.
pub const VIRTUAL_KUBELET_LABEL: &str = "type";
/// Value of [`VIRTUAL_KUBELET_LABEL`] on virtual-kubelet nodes.
pub const VIRTUAL_KUBELET_LABEL_VALUE: &str = "virtual-kubelet";

/// Kind written in the `ownerReferences` of a NodeImage tag for the ImagePullJobs wanting it.
pub const IMAGE_PULL_JOB_KIND: &str = "ImagePullJob";
/// Kind of the owner of the ImagePullJobs an ImageListPullJob creates.
pub const IMAGE_LIST_PULL_JOB_KIND: &str = "ImageListPullJob";

// ---------------------------------------------------------------------------------------------
// Pull secrets synced into the daemon's namespace (spec §2.8)

/// Namespace the manager copies job pull secrets into, so kruise-daemon can read them.
pub const DAEMON_CONFIG_NAMESPACE: &str = "kruise-daemon-config";
/// Env var that overrides [`DAEMON_CONFIG_NAMESPACE`].
pub const DAEMON_CONFIG_NAMESPACE_ENV: &str = "KRUISE_DAEMON_CONFIG_NS";

/// Annotation on a synced secret: `<namespace>/<name>` of the secret it was copied from.
pub const SECRET_SOURCE_KEY_ANNOTATION: &str = "imagepulljobs.kruise.io/source-key";
/// Annotation on a synced secret: sorted, comma-joined `<namespace>/<name>` of the jobs using it.
pub const SECRET_REFERENCES_ANNOTATION: &str = "imagepulljobs.kruise.io/references";
/// Annotation on a synced secret: its mode ([`PULL_SECRET_MODE_BATCH`] for copies shared by jobs).
pub const SECRET_MODE_ANNOTATION: &str = "imagepulljobs.kruise.io/mode";
/// Deprecated label on synced secrets made by old OpenKruise versions: uid of the source secret.
pub const SECRET_SOURCE_UID_LABEL: &str = "imagepulljobs.kruise.io/source-uid";
/// Mode of a shared synced secret, in its mode annotation and in NodeImage `pullSecrets[].mode`.
pub const PULL_SECRET_MODE_BATCH: &str = "batch";

// ---------------------------------------------------------------------------------------------
// Workload image pre-download (spec §2.11)

/// Workload annotation: parallelism of the pre-download ImagePullJobs (default 1).
pub const IMAGE_PREDOWNLOAD_PARALLELISM: &str = "apps.kruise.io/image-predownload-parallelism";
/// Workload annotation: `pullPolicy.timeoutSeconds` of the pre-download ImagePullJobs (default 300).
pub const IMAGE_PREDOWNLOAD_TIMEOUT_SECONDS: &str =
    "apps.kruise.io/image-predownload-timeout-seconds";
/// Workload annotation: updated ready pods needed before images are pre-downloaded.
pub const IMAGE_PREDOWNLOAD_MIN_UPDATED_READY_PODS: &str =
    "apps.kruise.io/image-predownload-min-updated-ready-pods";
/// ControllerRevision label: the images of this revision have been pre-downloaded.
pub const IMAGE_PREDOWNLOAD_CREATED: &str = "apps.kruise.io/pre-predownload-created";
/// ControllerRevision label: pre-download was skipped for this revision.
pub const IMAGE_PREDOWNLOAD_IGNORED: &str = "apps.kruise.io/image-predownload-ignored";

// ---------------------------------------------------------------------------------------------
// kruise-daemon and CRI

/// Annotation added to the CRI `PodSandboxConfig` of every pull the daemon makes.
pub const PULLING_IMAGE_BY_ANNOTATION: &str = "apps.kruise.io/pulling-image-by";
/// Value of [`PULLING_IMAGE_BY_ANNOTATION`].
pub const PULLING_IMAGE_BY_DAEMON: &str = "kruise-daemon";
/// Env var with the name of the node kruise-daemon runs on (its NodeImage has the same name).
pub const NODE_NAME_ENV: &str = "NODE_NAME";
/// Event source component of the daemon's image puller.
pub const DAEMON_IMAGE_PULLER_COMPONENT: &str = "kruise-daemon-imagepuller";

// ---------------------------------------------------------------------------------------------
// Controller names

/// Name of the ImagePullJob controller (logs, metrics, event source).
pub const IMAGE_PULL_JOB_CONTROLLER: &str = "imagepulljob-controller";
/// Name of the ImageListPullJob controller.
pub const IMAGE_LIST_PULL_JOB_CONTROLLER: &str = "imagelistpulljob-controller";
/// Name of the NodeImage controller.
pub const NODE_IMAGE_CONTROLLER: &str = "nodeimage-controller";

// ---------------------------------------------------------------------------------------------
// Event reasons (OpenKruise's)

/// Normal event on a NodeImage when a tag was pulled.
pub const REASON_PULL_IMAGE_SUCCEED: &str = "PullImageSucceed";
/// Warning event on a NodeImage and on the owning jobs when a tag failed (or timed out).
pub const REASON_PULL_IMAGE_FAILED: &str = "PullImageFailed";
/// Normal event on an ImageListPullJob after it created child ImagePullJobs (OpenKruise's spelling).
pub const REASON_CREATE_IMAGE_PULL_JOB: &str = "Successful create ImagePullJob";
/// Normal event on an ImageListPullJob after it deleted child ImagePullJobs (OpenKruise's spelling).
pub const REASON_DELETE_IMAGE_PULL_JOB: &str = "Successful delete ImagePullJob";

// ---------------------------------------------------------------------------------------------
// Condition types and reasons (kruise-rs's own, decision 4)

/// Job condition: the job finished (every matched node Succeeded or Failed, or the deadline passed).
/// Never set for `completionPolicy.type: Never`.
pub const CONDITION_COMPLETE: &str = "Complete";
/// Job condition: at least one node failed to pull (the list names them in `status.failedNodes`).
pub const CONDITION_FAILED: &str = "Failed";
/// Job condition: pulls are written to nodes and not finished yet.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// NodeImage condition: every tag in the spec has a finished status at its current version.
pub const CONDITION_NODE_IMAGE_SYNCED: &str = "Synced";

/// Condition reason: every matched node pulled the image.
pub const CONDITION_REASON_ALL_SUCCEEDED: &str = "AllSucceeded";
/// Condition reason: some matched nodes failed.
pub const CONDITION_REASON_NODES_FAILED: &str = "NodesFailed";
/// Condition reason: `completionPolicy.activeDeadlineSeconds` passed before the job finished.
pub const CONDITION_REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// Condition reason: pulls are running on some nodes.
pub const CONDITION_REASON_PULLING: &str = "Pulling";
/// Condition reason: `parallelism` is 0, so nothing new is started.
pub const CONDITION_REASON_PAUSED: &str = "Paused";

// ---------------------------------------------------------------------------------------------
// Status messages users see (OpenKruise's wording)

/// ImagePullJob `status.message` once the job completed.
pub const MESSAGE_JOB_COMPLETED: &str = "job has completed";
/// ImagePullJob `status.message` while running with no matched node (`desired == 0`). While running
/// with nodes the message is `job is running, progress {:.1}%` over `(succeeded+failed)/desired`.
pub const MESSAGE_JOB_NO_PROGRESS: &str = "job is running, no progress";
/// ImagePullJob `status.message` when `activeDeadlineSeconds` passed.
pub const MESSAGE_JOB_DEADLINE_EXCEEDED: &str = "job exceeds activeDeadlineSeconds";
/// NodeImage tag status message when the daemon never answered within the response timeout.
pub const MESSAGE_NODE_NOT_RESPONDING: &str = "node has not responded for a long time";
/// NodeImage tag status message (and daemon error) when the tag's `activeDeadlineSeconds` passed.
pub const MESSAGE_PULL_DEADLINE_EXCEEDED: &str = "pulling exceeds the activeDeadlineSeconds";
