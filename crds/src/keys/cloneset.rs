//! Well-known keys of CloneSet: labels and annotations on CloneSets, pods, PVCs and
//! ControllerRevisions, condition types, reasons and messages, lifecycle states and event reasons,
//! spelled exactly as OpenKruise spells them. Cross-kind keys (in-place update state, lifecycle
//! label, specified-delete, `controller-revision-hash`) live in [`crate::keys`].

// ----- labels and annotations on the CloneSet itself -----

/// CloneSet label: `"true"` makes the scale math leave out pods in `PreparingDelete` (v1alpha1 form
/// of v1beta1's `scaleStrategy.excludePreparingDelete`).
pub const SCALING_EXCLUDE_PREPARING_DELETE_LABEL: &str =
    "apps.kruise.io/cloneset-scaling-exclude-preparing-delete";
/// CloneSet annotation: how many nodes pull a new image at once during pre-download (int or numeric string).
pub const IMAGE_PREDOWNLOAD_PARALLELISM: &str = "apps.kruise.io/image-predownload-parallelism";
/// CloneSet annotation: timeout in seconds of each pre-download image pull.
pub const IMAGE_PREDOWNLOAD_TIMEOUT_SECONDS: &str =
    "apps.kruise.io/image-predownload-timeout-seconds";
/// CloneSet annotation: pre-download starts only once this many updated pods are ready.
pub const IMAGE_PREDOWNLOAD_MIN_UPDATED_READY_PODS: &str =
    "apps.kruise.io/image-predownload-min-updated-ready-pods";

// ----- labels and annotations on pods and PVCs -----

/// Pod and PVC label: the 5-character instance id shared by a pod and its PVCs (pod name `{cs}-{id}`).
pub const INSTANCE_ID_LABEL: &str = "apps.kruise.io/cloneset-instance-id";
/// Pod label with the short revision hash (always the `{hash}` part only).
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Pod annotation (int32): pods with a lower cost are deleted first on scale-in.
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Pod annotation written by kruise-daemon with the containers' runtime hashes (JSON).
pub const RUNTIME_CONTAINERS_META: &str = "apps.kruise.io/runtime-containers-meta";
/// Legacy pod annotation key of the in-place update state: read, and removed on write.
pub const LEGACY_INPLACE_UPDATE_STATE: &str = "inplace-update-state";
/// Legacy pod annotation key of the in-place update grace state: read, and removed on write.
pub const LEGACY_INPLACE_UPDATE_GRACE: &str = "inplace-update-grace";

// ----- ControllerRevision labels and annotations -----

/// ControllerRevision label with the short revision hash (upstream history library).
pub const REVISION_SHORT_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// ControllerRevision annotation: FNV-32 hash of the volume claim templates, or empty.
pub const VOLUME_CLAIM_TEMPLATE_HASH_ANNOTATION: &str =
    "kruise.io/cloneset-volumeclaimtemplate-hash";
/// ControllerRevision label `"true"`: the ImagePullJobs of this revision were created.
pub const IMAGE_PREDOWNLOAD_CREATED_LABEL: &str = "apps.kruise.io/pre-predownload-created";
/// ControllerRevision label `"true"`: image pre-download was skipped for this revision.
pub const IMAGE_PREDOWNLOAD_IGNORED_LABEL: &str = "apps.kruise.io/image-predownload-ignored";

// ----- pod readiness gates, conditions and env -----

/// Readiness gate / pod condition type that lifecycle hooks with `markPodNotReady` drive.
pub const KRUISE_POD_READY: &str = "KruisePodReady";
/// `userAgent` of the lifecycle entries in the `KruisePodReady` condition message.
pub const KRUISE_POD_READY_LIFECYCLE_USER_AGENT: &str = "Lifecycle";
/// `key` of the `KruisePodReady` entry held while a pod waits in its preDelete hook.
pub const KRUISE_POD_READY_PRE_DELETE_KEY: &str = "preDeleteHook";
/// `key` of the `KruisePodReady` entry held while a pod waits in its inPlaceUpdate hook.
pub const KRUISE_POD_READY_PRE_UPDATE_KEY: &str = "preUpdateHook";
/// Reason of the `InPlaceUpdateReady=False` condition set when an in-place update starts.
pub const START_IN_PLACE_UPDATE_REASON: &str = "StartInPlaceUpdate";
/// Reason of `Ready=False` while a readiness gate (such as `InPlaceUpdateReady`) is not met.
pub const READINESS_GATES_NOT_READY_REASON: &str = "ReadinessGatesNotReady";
/// Container env injected by the pod webhook whose key `p_{N}` gives the container launch priority.
pub const CONTAINER_BARRIER_ENV: &str = "KRUISE_CONTAINER_BARRIER";

// ----- instance ids -----

/// Length of a generated instance id.
pub const INSTANCE_ID_LEN: usize = 5;
/// Alphabet of generated instance ids and revision hashes (Kubernetes' `SafeEncodeString`).
pub const INSTANCE_ID_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

// ----- lifecycle states (values of `lifecycle.apps.kruise.io/state`) -----

/// Lifecycle state of a pod just created, before it becomes `Normal`.
pub const LIFECYCLE_PREPARING_NORMAL: &str = "PreparingNormal";
/// Lifecycle state of a running, available-eligible pod.
pub const LIFECYCLE_NORMAL: &str = "Normal";
/// Lifecycle state of a pod waiting in its inPlaceUpdate hook before an in-place update.
pub const LIFECYCLE_PREPARING_UPDATE: &str = "PreparingUpdate";
/// Lifecycle state of a pod being updated in place.
pub const LIFECYCLE_UPDATING: &str = "Updating";
/// Lifecycle state of a pod updated in place, waiting for its inPlaceUpdate hook to come back.
pub const LIFECYCLE_UPDATED: &str = "Updated";
/// Lifecycle state of a pod waiting in its preDelete hook before deletion.
pub const LIFECYCLE_PREPARING_DELETE: &str = "PreparingDelete";

// ----- CloneSet conditions -----

/// Condition type set `True` with the error when creating or deleting pods/PVCs failed.
pub const CONDITION_FAILED_SCALE: &str = "FailedScale";
/// Condition type set `True` with the error when updating pods failed.
pub const CONDITION_FAILED_UPDATE: &str = "FailedUpdate";
/// Condition type tracking rollout progress (only when `progressDeadlineSeconds` is set).
pub const CONDITION_PROGRESSING: &str = "Progressing";

/// Progressing reason (status `True`): every pod updated and available.
pub const REASON_AVAILABLE: &str = "CloneSetAvailable";
/// Message of [`REASON_AVAILABLE`].
pub const MESSAGE_AVAILABLE: &str = "CloneSet is available";
/// Progressing reason (status `True`): the update is paused.
pub const REASON_PAUSED: &str = "CloneSetPaused";
/// Message of [`REASON_PAUSED`].
pub const MESSAGE_PAUSED: &str = "CloneSet is paused";
/// Progressing reason (status `True`): the pods above the partition are updated and available.
pub const REASON_PARTITION_AVAILABLE: &str = "ProgressPartitionAvailable";
/// Message of [`REASON_PARTITION_AVAILABLE`].
pub const MESSAGE_PARTITION_AVAILABLE: &str = "CloneSet has been paused due to partition ready";
/// Progressing reason (status `True`): the rollout is under way.
pub const REASON_UPDATED: &str = "CloneSetUpdated";
/// Message of [`REASON_UPDATED`].
pub const MESSAGE_UPDATED: &str = "CloneSet is progressing";
/// Progressing reason (status `False`): the rollout took longer than `progressDeadlineSeconds`.
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Message of [`REASON_PROGRESS_DEADLINE_EXCEEDED`] for the given update revision name.
pub fn progress_deadline_exceeded_message(update_revision: &str) -> String {
    format!("CloneSet revision {update_revision} has timed out progressing")
}

// ----- event reasons -----

/// Event reason: a pod was created.
pub const EVENT_SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
/// Event reason: creating a pod or PVC failed.
pub const EVENT_FAILED_CREATE: &str = "FailedCreate";
/// Event reason: a pod was deleted.
pub const EVENT_SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
/// Event reason: deleting a pod failed.
pub const EVENT_FAILED_DELETE: &str = "FailedDelete";
/// Warning event reason: `scaleStrategy.maxUnavailable` held back pod creations.
pub const EVENT_SCALE_UP_LIMITED: &str = "ScaleUpLimited";
/// Event reason: a pod was updated in place.
pub const EVENT_SUCCESSFUL_UPDATE_POD_IN_PLACE: &str = "SuccessfulUpdatePodInPlace";
/// Event reason: an in-place pod update failed.
pub const EVENT_FAILED_UPDATE_POD_IN_PLACE: &str = "FailedUpdatePodInPlace";
/// Event reason: a pod was marked for recreation by an update.
pub const EVENT_SUCCESSFUL_UPDATE_POD_RECREATE: &str = "SuccessfulUpdatePodReCreate";
/// Event reason: marking a pod for recreation failed.
pub const EVENT_FAILED_UPDATE_POD_RECREATE: &str = "FailedUpdatePodReCreate";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_message_names_the_revision() {
        assert_eq!(
            progress_deadline_exceeded_message("demo-7f9c8d5b6d"),
            "CloneSet revision demo-7f9c8d5b6d has timed out progressing"
        );
    }

    #[test]
    fn instance_id_alphabet_has_27_distinct_chars() {
        let mut chars: Vec<char> = INSTANCE_ID_ALPHABET.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        assert_eq!(chars.len(), 27);
    }
}
