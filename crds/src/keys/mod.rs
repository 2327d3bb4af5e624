//! Well-known keys: annotation and label keys, env names, condition types and finalizers, spelled
//! exactly as OpenKruise spells them. Pods, users and dashboards see these strings, so they are API:
//! never write one as a literal elsewhere.

pub mod cloneset;
pub mod imagepull;
pub mod sidecarset;

/// Label on a Namespace, CustomResourceDefinition, workload (Deployment, ReplicaSet, StatefulSet,
/// CloneSet), Service or Ingress that guards its deletion (OpenKruise's
/// `policy.kruise.io/delete-protection`, feature gate `ResourcesDeletionProtection`).
pub const DELETE_PROTECTION_LABEL: &str = "policy.kruise.io/delete-protection";
/// Value of [`DELETE_PROTECTION_LABEL`]: the object cannot be deleted while it carries the label.
pub const DELETE_PROTECTION_ALWAYS: &str = "Always";
/// Value of [`DELETE_PROTECTION_LABEL`]: the object cannot be deleted while it still has what it
/// owns (a workload's replicas, a namespace's active pods and Bound claims, a CRD's resources).
pub const DELETE_PROTECTION_CASCADING: &str = "Cascading";

/// Label on every pod a workload controller creates: the name of the revision the pod was created
/// from (shared with Kubernetes' own StatefulSet/DaemonSet; OpenKruise uses it for CloneSet).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Pod annotation with the state of the last in-place update (JSON `InPlaceUpdateState`); written by
/// CloneSet and by SidecarSet's in-place upgrade.
pub const INPLACE_UPDATE_STATE: &str = "apps.kruise.io/inplace-update-state";
/// Pod annotation with the grace period state of a pending in-place update (JSON).
pub const INPLACE_UPDATE_GRACE: &str = "apps.kruise.io/inplace-update-grace";
/// Pod readiness gate / condition type that in-place updates flip to `False` while they run.
pub const INPLACE_UPDATE_READY: &str = "InPlaceUpdateReady";

/// Pod label with the lifecycle state (`Normal`, `PreparingUpdate`, `Updating`, `Updated`,
/// `PreparingDelete`, `PreparingNormal`).
pub const LIFECYCLE_STATE_LABEL: &str = "lifecycle.apps.kruise.io/state";
/// Pod annotation with the time of the last lifecycle state change.
pub const LIFECYCLE_TIMESTAMP: &str = "lifecycle.apps.kruise.io/timestamp";

/// Pod label a user sets to `true` to have its workload delete that pod (and scale back up).
pub const SPECIFIED_DELETE_LABEL: &str = "apps.kruise.io/specified-delete";

/// Standard condition status values.
pub const CONDITION_TRUE: &str = "True";
/// Standard condition status values.
pub const CONDITION_FALSE: &str = "False";
/// Standard condition status values.
pub const CONDITION_UNKNOWN: &str = "Unknown";
