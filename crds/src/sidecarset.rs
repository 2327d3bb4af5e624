//! SidecarSet (`apps.kruise.io/v1alpha1`, cluster-scoped): sidecar containers injected into the pods
//! a selector picks, and upgraded in place (cold) or through two alternating slots (hot).
//!
//! The embedded `corev1.Container` of each sidecar is kept by the API server as sent (its full schema
//! would make the CRD too large); the kruise-specific container fields keep a typed schema so that
//! wrong enum values are refused at admission. Besides the CRD types this module holds the JSON value
//! of the pod hash annotations (`kruise.io/sidecarset-hash`), which pods carry byte for byte.

use crate::common::{Condition, UpdatePriorityStrategy, UpdateScatterTerm};
use k8s_openapi::api::core::v1::{Container, LocalObjectReference, ObjectFieldSelector, Volume};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The CRDs of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![SidecarSet::crd()]
}

/// Desired state of a SidecarSet.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "SidecarSet",
    plural = "sidecarsets",
    singular = "sidecarset",
    status = "SidecarSetStatus",
    doc = "SidecarSet injects sidecar containers into the pods a selector picks and upgrades them.",
    printcolumn = r#"{"name":"MATCHED","type":"integer","jsonPath":".status.matchedPods","description":"Pods matched."}"#,
    printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedPods","description":"Matched pods running the latest sidecars."}"#,
    printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyPods","description":"Matched pods that are ready."}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since creation."}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetSpec {
    /// Pods to inject into and upgrade; must be set and non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Legacy: only match pods in this namespace (wins over `namespaceSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only match pods in namespaces whose labels this selects; unset means all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Init containers injected into new pods (only at pod creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<SidecarContainer>>,
    /// Sidecar containers injected into pods and upgraded in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<SidecarContainer>>,
    /// Volumes the sidecars may mount; only those actually mounted are injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_list")]
    pub volumes: Option<Vec<Volume>>,
    /// How already-injected pods are upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<SidecarSetUpdateStrategy>,
    /// How the SidecarSet is injected into new pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection_strategy: Option<SidecarSetInjectionStrategy>,
    /// Secrets to pull the sidecar images, appended to the pod's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// How many ControllerRevisions to keep (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Annotations written onto pods at injection and at in-place upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_pod_metadata: Option<Vec<SidecarSetPatchPodMetadata>>,
}

/// A sidecar: a full `corev1.Container` (its fields inline) plus how to inject and upgrade it.
///
/// The CRD schema of this type keeps unknown fields (the container body is checked by the webhook)
/// but types `name`, `image` and every kruise field; see [`SidecarContainer::json_schema`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarContainer {
    /// The container copied into the pod.
    #[serde(flatten)]
    pub container: Container,
    /// Where the container goes relative to the pod's own containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_inject_policy: Option<PodInjectPolicy>,
    /// Cold (in-place image swap) or hot (two alternating slots) upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<SidecarContainerUpgradeStrategy>,
    /// Whether the sidecar also gets the volume mounts of the pod's app containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_volume_policy: Option<ShareVolumePolicy>,
    /// Whether the sidecar also gets the volume devices of the pod's app containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_volume_device_policy: Option<ShareVolumePolicy>,
    /// Env vars copied from the pod's app containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_env: Option<Vec<TransferEnvVar>>,
    /// Resources computed from the pod's app containers at pod creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_policy: Option<ResourcesPolicy>,
}

impl SidecarContainer {
    /// True when the sidecar is upgraded through two alternating slots (`{name}-1`/`{name}-2`).
    pub fn is_hot_upgrade(&self) -> bool {
        self.upgrade_strategy
            .as_ref()
            .and_then(|s| s.upgrade_type.as_ref())
            .is_some_and(|t| *t == SidecarContainerUpgradeType::HotUpgrade)
    }

    /// True for a native sidecar (an init container with `restartPolicy: Always`).
    pub fn is_native_sidecar(&self) -> bool {
        self.container.restart_policy.as_deref() == Some("Always")
    }
}

impl JsonSchema for SidecarContainer {
    fn schema_name() -> Cow<'static, str> {
        "SidecarContainer".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let described = |mut s: Schema, d: &str| {
            s.insert("description".into(), d.into());
            s
        };
        let inject = described(
            generator.subschema_for::<PodInjectPolicy>(),
            "Where the container goes relative to the pod's own containers.",
        );
        let upgrade = described(
            generator.subschema_for::<SidecarContainerUpgradeStrategy>(),
            "Cold (in-place image swap) or hot (two alternating slots) upgrade.",
        );
        let share = described(
            generator.subschema_for::<ShareVolumePolicy>(),
            "Whether the sidecar also gets the volume mounts of the pod's app containers.",
        );
        let share_devices = described(
            generator.subschema_for::<ShareVolumePolicy>(),
            "Whether the sidecar also gets the volume devices of the pod's app containers.",
        );
        let transfer = described(
            generator.subschema_for::<Vec<TransferEnvVar>>(),
            "Env vars copied from the pod's app containers.",
        );
        let resources = described(
            generator.subschema_for::<ResourcesPolicy>(),
            "Resources computed from the pod's app containers at pod creation.",
        );
        schemars::json_schema!({
            "description": "A corev1.Container (kept as sent, checked by the webhook) plus the kruise sidecar fields.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "required": ["name"],
            "properties": {
                "name": { "description": "Container name (a DNS label).", "type": "string" },
                "image": { "description": "Container image.", "type": "string" },
                "podInjectPolicy": inject,
                "upgradeStrategy": upgrade,
                "shareVolumePolicy": share,
                "shareVolumeDevicePolicy": share_devices,
                "transferEnv": transfer,
                "resourcesPolicy": resources
            }
        })
    }
}

/// Where an injected container goes relative to the pod's own containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = drop_description)]
pub enum PodInjectPolicy {
    /// In front of the pod's containers (default for containers).
    BeforeAppContainer,
    /// Behind the pod's containers (default for init containers).
    AfterAppContainer,
}

/// How a sidecar container is upgraded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarContainerUpgradeStrategy {
    /// `ColdUpgrade` (default) or `HotUpgrade`; immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_type: Option<SidecarContainerUpgradeType>,
    /// Image of the idle hot-upgrade slot; required with `HotUpgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_upgrade_empty_image: Option<String>,
}

/// Upgrade type of a sidecar container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = drop_description)]
pub enum SidecarContainerUpgradeType {
    /// Replace the image in place; the container restarts.
    ColdUpgrade,
    /// Start the new image in the idle slot, then empty the old slot.
    HotUpgrade,
}

/// Whether a sidecar shares the pod's app container volumes (or devices).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareVolumePolicy {
    /// `enabled` or `disabled` (default).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ShareVolumePolicyType>,
}

/// Share-volume switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = drop_description)]
pub enum ShareVolumePolicyType {
    /// Share.
    Enabled,
    /// Do not share.
    Disabled,
}

/// Env vars copied from one of the pod's app containers into the sidecar.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferEnvVar {
    /// Name of the source container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container_name: Option<String>,
    /// Take the source container name from a pod label or annotation instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container_name_from: Option<SourceContainerNameSource>,
    /// One env var name to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_name: Option<String>,
    /// More env var names to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_names: Option<Vec<String>>,
}

/// Where the source container name of a [`TransferEnvVar`] comes from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceContainerNameSource {
    /// `metadata.labels['k']` or `metadata.annotations['k']` of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
}

/// Sidecar resources computed from the pod's app containers when the pod is created.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesPolicy {
    /// How the target containers' resources are aggregated: `sum` or `max`.
    pub target_containers_mode: TargetContainersMode,
    /// Regex over container names selecting the targets (default `.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ".*"))]
    pub target_containers_name_regex: Option<String>,
    /// Expressions giving the sidecar's limits and requests.
    pub resources_expr: ResourcesExpr,
}

/// Aggregation of the target containers' resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = drop_description)]
pub enum TargetContainersMode {
    /// Sum over the targets.
    #[default]
    Sum,
    /// Maximum over the targets.
    Max,
}

/// Limits and requests expressions of a [`ResourcesPolicy`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesExpr {
    /// Limits expressions; the variable is the aggregated limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceExprs>,
    /// Requests expressions; the variable is the aggregated request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceExprs>,
}

/// One expression per resource, e.g. `max(cpu*50%, 50m)`. At most 1,024 bytes each (OpenKruise sets
/// no limit; the webhook's parser is bounded at the same length, `MAX_EXPRESSION_LEN`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceExprs {
    /// Expression in the variable `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub cpu: Option<String>,
    /// Expression in the variable `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub memory: Option<String>,
}

/// How injected pods are upgraded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetUpdateStrategy {
    /// `RollingUpdate` (default) or `NotUpdate` (inject only).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<SidecarSetUpdateStrategyType>,
    /// Stop upgrading pods (injection goes on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Only upgrade the pods this selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Number or percentage of upgradable pods left on the old version (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::non_negative_int_or_percent")]
    pub partition: Option<IntOrString>,
    /// Most updated pods that may be unavailable at once, number or percentage (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::non_negative_int_or_percent")]
    pub max_unavailable: Option<IntOrString>,
    /// Order in which pods are upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,
    /// Spread pods with the same label key=value across batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scatter_strategy: Option<Vec<UpdateScatterTerm>>,
}

/// Update strategy type of a SidecarSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = drop_description)]
pub enum SidecarSetUpdateStrategyType {
    /// Upgrade injected pods in place.
    RollingUpdate,
    /// Never touch injected pods.
    NotUpdate,
}

/// How a SidecarSet is injected into new pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetInjectionStrategy {
    /// Stop injecting into new pods (upgrades go on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Inject a pinned revision instead of the latest spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<SidecarSetInjectRevision>,
}

/// A pinned revision to inject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetInjectRevision {
    /// Newest ControllerRevision with this `apps.kruise.io/sidecarset-custom-version` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_version: Option<String>,
    /// Name of a ControllerRevision of this SidecarSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// `Always` (default) or `Partial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Always"))]
    pub policy: Option<SidecarSetInjectRevisionPolicy>,
}

/// When the pinned revision is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = drop_description)]
pub enum SidecarSetInjectRevisionPolicy {
    /// Always inject the pinned revision.
    Always,
    /// Inject the pinned or the latest revision according to the update strategy.
    Partial,
}

/// Annotations patched onto pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetPatchPodMetadata {
    /// Annotations to write (must be non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `Retain` (default), `Overwrite` or `MergePatchJson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_policy: Option<SidecarSetPatchPolicyType>,
}

/// How a patched annotation meets an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = drop_description)]
pub enum SidecarSetPatchPolicyType {
    /// Only add absent keys.
    Retain,
    /// Replace the value.
    Overwrite,
    /// Merge-patch (RFC 7386) the JSON value.
    MergePatchJson,
}

/// Observed state of a SidecarSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetStatus {
    /// The generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods selected, injected with this SidecarSet and carrying all its containers.
    #[serde(default)]
    pub matched_pods: i32,
    /// Matched pods whose recorded hash is the current one.
    #[serde(default)]
    pub updated_pods: i32,
    /// Matched pods that are sidecar-consistent and ready.
    #[serde(default)]
    pub ready_pods: i32,
    /// Matched pods both updated and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ready_pods: Option<i32>,
    /// Name of the latest ControllerRevision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<String>,
    /// Counter of ControllerRevision name collisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Removes a type's own description from its schema, so that the description of the field using the
/// type shows in the CRD (kube's `Option<enum>` rewrite would otherwise replace it).
fn drop_description(schema: &mut Schema) {
    schema.remove("description");
}

/// One entry of the pod annotations `kruise.io/sidecarset-hash` and
/// `kruise.io/sidecarset-hash-without-image` (a JSON map from SidecarSet name to this). The field
/// order is OpenKruise's, so the JSON is the same byte for byte.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetUpgradeSpec {
    /// When the pod was injected or last upgraded (Go writes `null` for an unset time).
    #[serde(default)]
    pub update_timestamp: Option<Time>,
    /// The SidecarSet hash the pod was injected or upgraded with.
    #[serde(default)]
    pub hash: String,
    /// Name of the SidecarSet.
    #[serde(default)]
    pub sidecar_set_name: String,
    /// Sorted logical sidecar names (native init sidecars and containers).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub sidecar_list: Vec<String>,
    /// The ControllerRevision injected (only in the full-hash annotation).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub controller_revision: String,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Parses a pod's `kruise.io/sidecarset-hash` (or `-without-image`) annotation, accepting the legacy
/// form `{"<ss>":"<hash>"}` too (its entries carry only the hash).
pub fn parse_sidecarset_hash_annotation(
    value: &str,
) -> Result<BTreeMap<String, SidecarSetUpgradeSpec>, serde_json::Error> {
    match serde_json::from_str::<BTreeMap<String, SidecarSetUpgradeSpec>>(value) {
        Ok(m) => Ok(m),
        Err(e) => match serde_json::from_str::<BTreeMap<String, String>>(value) {
            Ok(legacy) => Ok(legacy
                .into_iter()
                .map(|(k, hash)| {
                    let spec = SidecarSetUpgradeSpec {
                        hash,
                        ..Default::default()
                    };
                    (k, spec)
                })
                .collect()),
            Err(_) => Err(e),
        },
    }
}
