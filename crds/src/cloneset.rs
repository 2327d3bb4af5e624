//! CloneSet (`apps.kruise.io/v1alpha1`): a set of interchangeable pods (and per-pod PVCs) with
//! partitioned, in-place-capable rolling updates. The v1alpha1 shape is served and stored: the pod
//! update policy is `updateStrategy.type`, the rolling-update knobs sit directly under
//! `updateStrategy`, PVC reuse is `scaleStrategy.disablePVCReuse`, and the image pre-download knobs
//! are annotations (see [`crate::keys::cloneset`]).

use crate::common::{
    Condition, InPlaceUpdateStrategy, Lifecycle, UpdatePriorityStrategy, UpdateScatterTerm,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a CloneSet.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "CloneSet",
    plural = "clonesets",
    singular = "cloneset",
    shortname = "clone",
    namespaced,
    status = "CloneSetStatus",
    derive = "PartialEq",
    doc = "A set of interchangeable pods with partitioned, in-place-capable rolling updates.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.labelSelector"
    ),
    printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".spec.replicas","description":"Desired number of pods."}"#,
    printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedReplicas","description":"Pods at the update revision."}"#,
    printcolumn = r#"{"name":"UPDATED_READY","type":"integer","jsonPath":".status.updatedReadyReplicas","description":"Pods at the update revision and ready."}"#,
    printcolumn = r#"{"name":"UPDATED_AVAILABLE","type":"integer","jsonPath":".status.updatedAvailableReplicas","description":"Pods at the update revision and available."}"#,
    printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyReplicas","description":"Ready pods."}"#,
    printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.replicas","description":"All active pods."}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since creation."}"#,
    printcolumn = r#"{"name":"CONTAINERS","type":"string","priority":1,"jsonPath":".spec.template.spec.containers[*].name","description":"Container names of the pod template."}"#,
    printcolumn = r#"{"name":"IMAGES","type":"string","priority":1,"jsonPath":".spec.template.spec.containers[*].image","description":"Container images of the pod template."}"#,
    printcolumn = r#"{"name":"SELECTOR","type":"string","priority":1,"jsonPath":".status.labelSelector","description":"Pod label selector."}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetSpec {
    /// Desired number of pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Pods this CloneSet owns; must match the template labels. Immutable.
    pub selector: LabelSelector,
    /// Pod template the pods are created from.
    #[schemars(schema_with = "crate::common::preserve_unknown_object")]
    pub template: PodTemplateSpec,
    /// PVC templates: each pod gets one PVC per template, sharing the pod's instance id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "claim_templates::serialize"
    )]
    #[schemars(schema_with = "crate::common::preserve_unknown_list")]
    pub volume_claim_templates: Option<Vec<PersistentVolumeClaim>>,
    /// How pods are created and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_strategy: Option<CloneSetScaleStrategy>,
    /// How pods are moved to a new revision of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<CloneSetUpdateStrategy>,
    /// Number of unused ControllerRevisions kept (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Seconds a ready pod must stay ready before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Hooks that hold pods before they become normal, are updated in place, or are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Seconds a rollout may take before the Progressing condition turns False (unset: not tracked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub progress_deadline_seconds: Option<i32>,
}

/// How pods are created and deleted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetScaleStrategy {
    /// Names of pods to delete (replaced unless replicas drops too); unknown names are pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_to_delete: Option<Vec<String>>,
    /// Most pods that may be unavailable while scaling up (int or percentage; unset: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::int_or_percent")]
    pub max_unavailable: Option<IntOrString>,
    /// Do not reuse the PVCs left by deleted pods for new pods (default false: reuse).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "disablePVCReuse"
    )]
    pub disable_pvc_reuse: Option<bool>,
}

/// How pods are updated to a new revision (v1alpha1: the rolling-update knobs sit here directly).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetUpdateStrategy {
    /// Pod update policy (default `ReCreate`).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<CloneSetUpdateStrategyType>,
    /// Pods kept at old revisions (int or percentage of replicas, rounded up; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::non_negative_int_or_percent")]
    pub partition: Option<IntOrString>,
    /// Most pods unavailable during update or scale-in (int or percentage; default 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::int_or_percent")]
    pub max_unavailable: Option<IntOrString>,
    /// Extra pods above replicas during update or specified delete (int or percentage; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::int_or_percent")]
    pub max_surge: Option<IntOrString>,
    /// Stop updating pods (scaling goes on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Order in which pods are updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,
    /// Label pairs whose pods are spread across update batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scatter_strategy: Option<Vec<UpdateScatterTerm>>,
    /// In-place update knobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,
}

/// Pod update policy of a CloneSet (v1alpha1 `updateStrategy.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CloneSetUpdateStrategyType {
    /// Delete each old pod and create a new one.
    #[default]
    ReCreate,
    /// Update in place when only images or metadata changed, else recreate.
    InPlaceIfPossible,
    /// Always update in place; changes that cannot be applied in place fail.
    InPlaceOnly,
    /// Never update existing pods; only pods created later get the new revision.
    OnDelete,
}

impl CloneSetUpdateStrategyType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReCreate => "ReCreate",
            Self::InPlaceIfPossible => "InPlaceIfPossible",
            Self::InPlaceOnly => "InPlaceOnly",
            Self::OnDelete => "OnDelete",
        }
    }

    /// Whether pods may be updated in place.
    pub fn is_in_place(self) -> bool {
        matches!(self, Self::InPlaceIfPossible | Self::InPlaceOnly)
    }
}

impl std::fmt::Display for CloneSetUpdateStrategyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a CloneSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetStatus {
    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Active pods (not terminal, not being deleted), including those in PreparingDelete.
    pub replicas: i32,
    /// Active pods that are ready.
    pub ready_replicas: i32,
    /// Ready pods that stayed ready for minReadySeconds and are in lifecycle state Normal.
    pub available_replicas: i32,
    /// Pods at the update revision.
    pub updated_replicas: i32,
    /// Pods at the update revision that are ready.
    pub updated_ready_replicas: i32,
    /// Pods at the update revision that are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_available_replicas: Option<i32>,
    /// Pods expected at the update revision: replicas minus partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_updated_replicas: Option<i32>,
    /// Name of the ControllerRevision of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// Name of the ControllerRevision all pods were at before the update began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Hash collisions met when naming ControllerRevisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Conditions: FailedScale, FailedUpdate, Progressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The selector as a string (`app=nginx`), for the scale subresource and HPA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

impl CloneSetSpec {
    /// `spec.replicas` when unset.
    pub const DEFAULT_REPLICAS: i32 = 1;
    /// `spec.revisionHistoryLimit` when unset.
    pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
    /// `spec.updateStrategy.maxUnavailable` when unset.
    pub const DEFAULT_MAX_UNAVAILABLE: &'static str = "20%";
}

/// Serialization of `volumeClaimTemplates` without the `apiVersion`/`kind` that k8s-openapi always
/// writes for a `PersistentVolumeClaim`: templates are not objects of their own, users and OpenKruise
/// leave those out, and a controller writing the spec back must not add them.
mod claim_templates {
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::{Serialize, Serializer};

    /// One template as it appears on the wire.
    #[derive(Serialize)]
    struct Template<'a> {
        metadata: &'a ObjectMeta,
        #[serde(skip_serializing_if = "Option::is_none")]
        spec: Option<&'a PersistentVolumeClaimSpec>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a PersistentVolumeClaimStatus>,
    }

    pub fn serialize<S: Serializer>(
        claims: &Option<Vec<PersistentVolumeClaim>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        claims
            .as_ref()
            .map(|claims| {
                claims
                    .iter()
                    .map(|c| Template {
                        metadata: &c.metadata,
                        spec: c.spec.as_ref(),
                        status: c.status.as_ref(),
                    })
                    .collect::<Vec<_>>()
            })
            .serialize(serializer)
    }
}

/// The CRDs of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![CloneSet::crd()]
}
