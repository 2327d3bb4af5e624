//! Pieces shared by several kinds: the standard condition (decision 4 of the spec) and schema helpers
//! used through `#[schemars(schema_with = ...)]`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A standard Kubernetes condition (`metav1.Condition` shape). Every field but `type` and `status` is
/// optional so that conditions written by OpenKruise (which omits `observedGeneration`, and sometimes
/// `reason`/`message`) still deserialize.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Complete`, `FailedScale`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The `.metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Last time the condition changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Last time the condition was probed (OpenKruise's workload conditions carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Schema for an embedded object whose full schema would make the CRD too big (pod templates,
/// container lists): an object the API server keeps as sent. The types still check it on read.
pub fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Same as [`preserve_unknown_object`] for a list of such objects.
pub fn preserve_unknown_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// Pattern a string `IntOrString` must match where OpenKruise takes "an int or a percentage"
/// (OpenKruise's own check is `^[0-9]+%$`, and its scaling parses the digits with `Atoi`).
pub const PERCENT_PATTERN: &str = "^[0-9]+%$";

/// Schema of an `IntOrString` that must be an integer or a percentage like `20%`. (kube's structural
/// rewrite strips `type` out of `anyOf` branches, so the percentage is checked with a bare `pattern`,
/// which the API server applies to strings only.)
pub fn int_or_percent(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "pattern": PERCENT_PATTERN
    })
}

/// [`int_or_percent`] whose integer form must not be negative.
pub fn non_negative_int_or_percent(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "minimum": 0,
        "pattern": PERCENT_PATTERN
    })
}

/// Order in which pods are updated (shared by CloneSet and SidecarSet; OpenKruise's
/// `pub.UpdatePriorityStrategy`). Only one of the two lists may be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityStrategy {
    /// Pods are ordered by the integer value of these label keys, first key first, bigger first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_priority: Option<Vec<UpdatePriorityOrderTerm>>,
    /// Pods matching a term's selector get its weight; heavier pods are updated first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_priority: Option<Vec<UpdatePriorityWeightTerm>>,
}

/// One label key whose integer value orders pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityOrderTerm {
    /// Label key holding an integer.
    pub ordered_key: String,
}

/// A weight given to the pods a selector matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityWeightTerm {
    /// Weight in 0..=100.
    pub weight: i32,
    /// The pods that get this weight.
    pub match_selector: LabelSelector,
}

/// One `key=value` pair whose pods are spread across update batches (`value: "*"` means every value
/// seen on the pods).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateScatterTerm {
    /// Label key.
    pub key: String,
    /// Label value, or `*`.
    pub value: String,
}

/// Lifecycle hooks of a workload's pods (OpenKruise's `pub.Lifecycle`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Hook held before a pod is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<LifecycleHook>,
    /// Hook held before a pod is updated in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update: Option<LifecycleHook>,
    /// Hook held before a new pod becomes `Normal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_normal: Option<LifecycleHook>,
}

/// A lifecycle hook: the pod waits in the hook's state while any of these labels or finalizers is on
/// it (for `preNormal`, until all are on it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// Labels that hold the hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_handler: Option<std::collections::BTreeMap<String, String>>,
    /// Finalizers that hold the hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers_handler: Option<Vec<String>>,
    /// Mark the pod not ready (through the `KruisePodReady` readiness gate) while in the hook
    /// (honoured for `preDelete` and `inPlaceUpdate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_pod_not_ready: Option<bool>,
}

/// In-place update knobs (v1alpha1 shape: the image pre-download knobs are CloneSet annotations).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateStrategy {
    /// Seconds between marking a pod not ready and updating its spec in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i32>,
}
