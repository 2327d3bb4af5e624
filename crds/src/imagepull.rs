//! ImagePullJob, ImageListPullJob and NodeImage (`apps.kruise.io/v1alpha1`, spec `imagepull.md` §1).
//!
//! An ImagePullJob asks for one image on a set of nodes; an ImageListPullJob fans out into one
//! ImagePullJob per image. The ImagePullJob controller writes the wanted `(image, tag)` into the
//! cluster-scoped NodeImage of each node (name = node name), and kruise-daemon on that node pulls it
//! through CRI and reports back in the NodeImage status.
//!
//! Wire shape: OpenKruise's v1alpha1, plus the standard `conditions`/`observedGeneration` on every
//! status (decision 4) and two v1beta1 fields kept so they survive a v1alpha1 write: NodeImage
//! `pullSecrets[].mode` and `status.waiting`.

use crate::common::Condition;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The CRDs of this module: ImagePullJob, ImageListPullJob and NodeImage. Use these rather than
/// `Kind::crd()`: they also carry the typed int-or-string `anyOf` of `parallelism`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        ImagePullJob::crd(),
        ImageListPullJob::crd(),
        NodeImage::crd(),
    ]
    .into_iter()
    .map(with_typed_int_or_string)
    .collect()
}

/// kube's schema rewriter strips the `type` of `anyOf` branches, which leaves an int-or-string field
/// with a vacuous `anyOf: [{}, {}]`. Put back the one `anyOf` shape the API server accepts for
/// `x-kubernetes-int-or-string` (`[{type: integer}, {type: string}]`, as OpenKruise's CRDs have it).
fn with_typed_int_or_string(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            type_int_or_string(schema);
        }
    }
    crd
}

fn type_int_or_string(schema: &mut JSONSchemaProps) {
    if schema.x_kubernetes_int_or_string == Some(true) {
        let typed = |t: &str| JSONSchemaProps {
            type_: Some(t.to_owned()),
            ..Default::default()
        };
        schema.any_of = Some(vec![typed("integer"), typed("string")]);
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        type_int_or_string(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(child)) => type_int_or_string(child),
        Some(JSONSchemaPropsOrArray::Schemas(children)) => {
            children.iter_mut().for_each(type_int_or_string)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(child)) = &mut schema.additional_properties {
        type_int_or_string(child);
    }
}

/// Per-attempt CRI pull timeout when `pullPolicy.timeoutSeconds` is unset.
pub const IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS: i32 = 600;
/// Retries after the first attempt when `pullPolicy.backoffLimit` is unset.
pub const IMAGE_PULL_DEFAULT_BACKOFF_LIMIT: i32 = 3;
/// Nodes with an unfinished pull per job when `parallelism` is unset.
pub const IMAGE_PULL_DEFAULT_PARALLELISM: i32 = 1;
/// Most images one ImageListPullJob may list.
pub const IMAGE_LIST_PULL_JOB_MAX_IMAGES: usize = 255;
/// Most images one NodeImage may hold.
pub const NODE_IMAGE_MAX_IMAGES: usize = 256;

/// Schema of `parallelism`: a non-negative integer, or a string holding one (no percentages). The
/// limits sit beside the `anyOf`, not inside it, because the API server only accepts the bare
/// `[{type: integer}, {type: string}]` there; `minimum` only applies to integers, `pattern` to strings.
pub fn int_or_count(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "minimum": 0,
        "pattern": "^[0-9]+$"
    })
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Whether kruise-daemon pulls an image that is already on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPolicy {
    /// Always pull, even when the image is present.
    Always,
    /// Pull only when the node does not have the image (the webhook default for ImagePullJob).
    IfNotPresent,
}

/// When a job counts as finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CompletionPolicyType {
    /// The job finishes once every matched node succeeded or failed (or the deadline passed).
    #[default]
    Always,
    /// The job never finishes: new matching nodes are served and pulls repeat about daily.
    Never,
}

/// Completion policy of a job (shared with BroadcastJob in OpenKruise).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletionPolicy {
    /// `Always` (default) or `Never`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<CompletionPolicyType>,
    /// Seconds from `status.startTime` after which the job is failed (Always only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after `status.completionTime` at which the job is deleted (Always only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

impl CompletionPolicy {
    /// The policy type, `Always` when unset (what the webhook would default it to).
    pub fn effective_type(&self) -> CompletionPolicyType {
        self.type_.unwrap_or_default()
    }
}

/// Per-pull parameters of a job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullPolicy {
    /// Timeout of one CRI pull attempt in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i32>,
    /// Retries after the first failed attempt (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
}

/// Labels and annotations passed to the CRI as the pull's `PodSandboxConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Sandbox labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Sandbox annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Which nodes a job pulls on: explicit names, or a label selector over NodeImage labels (copied
/// from the Node's labels). Unset selects every node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobNodeSelector {
    /// Node names; when present (even empty) the label selector is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Labels the node must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Label requirements the node must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

impl ImagePullJobNodeSelector {
    /// The label-selector part, as a standard `LabelSelector`.
    pub fn label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: self.match_expressions.clone(),
        }
    }
}

/// Pull on the nodes that run pods (in the job's namespace) matching this selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobPodSelector {
    /// Labels the pod must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Label requirements the pod must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

impl ImagePullJobPodSelector {
    /// The selector as a standard `LabelSelector`.
    pub fn label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: self.match_expressions.clone(),
        }
    }
}

/// Everything of a job but the image(s): shared by ImagePullJob and ImageListPullJob, and copied
/// verbatim into the ImagePullJobs an ImageListPullJob creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobTemplate {
    /// Names of pull secrets in the job's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<Vec<String>>,
    /// Nodes to pull on; unset means all nodes. Excludes `podSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ImagePullJobNodeSelector>,
    /// Pull on the nodes of the matching pods. Excludes `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<ImagePullJobPodSelector>,
    /// Most nodes with an unfinished pull at a time (default 1; 0 pauses the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_count")]
    pub parallelism: Option<IntOrString>,
    /// Per-pull timeout and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// When the job finishes and when it is deleted.
    pub completion_policy: CompletionPolicy,
    /// CRI sandbox metadata for the pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_config: Option<SandboxConfig>,
    /// `Always` or `IfNotPresent` (the ImagePullJob webhook defaults it to `IfNotPresent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
}

// ---------------------------------------------------------------------------------------------
// ImagePullJob

/// Pull one image on a set of nodes.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "ImagePullJob",
    plural = "imagepulljobs",
    doc = "ImagePullJob pulls one image on a set of nodes through kruise-daemon.",
    namespaced,
    status = "ImagePullJobStatus",
    printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.desired","description":"Number of all nodes matched by this job"}"#,
    printcolumn = r#"{"name":"ACTIVE","type":"integer","jsonPath":".status.active","description":"Number of image pull task active"}"#,
    printcolumn = r#"{"name":"SUCCEED","type":"integer","jsonPath":".status.succeeded","description":"Number of image pull task succeeded"}"#,
    printcolumn = r#"{"name":"FAILED","type":"integer","jsonPath":".status.failed","description":"Number of image pull tasks failed"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since the job was created"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","jsonPath":".status.message","description":"Summary of status when job is failed"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobSpec {
    /// The image to pull: `name[:tag]` or `name@sha256:<digest>`.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Nodes, parallelism, policies and secrets.
    #[serde(flatten)]
    pub template: ImagePullJobTemplate,
}

/// Observed state of an ImagePullJob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobStatus {
    /// When the controller first handled the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished (never set for `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Number of existing NodeImages the job selects.
    pub desired: i32,
    /// Nodes where the job's pull is written and not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Nodes where the pull succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Nodes where the pull failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Human-readable progress summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Sorted names of the nodes where the pull failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_nodes: Option<Vec<String>>,
    /// Standard conditions (`Complete`, `Failed`, `Progressing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// ImageListPullJob

/// Pull a list of images on a set of nodes, through one ImagePullJob per image.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "ImageListPullJob",
    plural = "imagelistpulljobs",
    doc = "ImageListPullJob pulls a list of images on a set of nodes, one ImagePullJob per image.",
    namespaced,
    status = "ImageListPullJobStatus",
    printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.desired","description":"Number of image pull job"}"#,
    printcolumn = r#"{"name":"SUCCEEDED","type":"integer","jsonPath":".status.succeeded","description":"Number of image pull job succeeded"}"#,
    printcolumn = r#"{"name":"COMPLETED","type":"integer","jsonPath":".status.completed","description":"Number of ImagePullJobs which are finished"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since the job was created"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImageListPullJobSpec {
    /// The images to pull (1 to 255, no duplicates).
    #[schemars(length(min = 1, max = 255), extend("x-kubernetes-list-type" = "set"))]
    pub images: Vec<String>,
    /// Nodes, parallelism, policies and secrets, shared by every child ImagePullJob.
    #[serde(flatten)]
    pub template: ImagePullJobTemplate,
}

/// A child ImagePullJob with failed nodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedImageStatus {
    /// Name of the child ImagePullJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_job: Option<String>,
    /// The image of that job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where to look for the failed nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Observed state of an ImageListPullJob (counts over child jobs that have started).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageListPullJobStatus {
    /// When the controller first handled the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When every child job completed (never set for `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Number of images, i.e. of child ImagePullJobs wanted.
    pub desired: i32,
    /// Child jobs with an active pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Child jobs where every node succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<i32>,
    /// Child jobs where every node succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Child jobs with failed nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_image_statuses: Option<Vec<FailedImageStatus>>,
    /// Standard conditions (`Complete`, `Failed`, `Progressing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// NodeImage

/// The images wanted on one node (cluster-scoped; name = node name). Written by the job
/// controllers, pulled and reported by kruise-daemon.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "NodeImage",
    plural = "nodeimages",
    doc = "NodeImage lists the images wanted on one node and how their pulls went.",
    status = "NodeImageStatus",
    printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".status.desired","description":"Number of all images on this node"}"#,
    printcolumn = r#"{"name":"PULLING","type":"integer","jsonPath":".status.pulling","description":"Number of image pull task active"}"#,
    printcolumn = r#"{"name":"SUCCEED","type":"integer","jsonPath":".status.succeeded","description":"Number of image pull task succeeded"}"#,
    printcolumn = r#"{"name":"FAILED","type":"integer","jsonPath":".status.failed","description":"Number of image pull tasks failed"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"Time since the NodeImage was created"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeImageSpec {
    /// Wanted images keyed by familiar name without tag (`nginx`, `foo/bar`, `myreg:5000/a/b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 256))]
    pub images: Option<BTreeMap<String, ImageSpec>>,
}

/// What is wanted of one image on the node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Secrets the daemon may use for this image (union over the jobs wanting it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<Vec<ReferenceObject>>,
    /// The wanted tags (or `sha256:` digests), sorted by tag.
    pub tags: Vec<ImageTagSpec>,
    /// CRI sandbox metadata for pulls of this image (last writer wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_config: Option<SandboxConfig>,
}

/// A reference to a secret: `<namespace>/<name>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceObject {
    /// Namespace of the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `batch` for shared synced copies, removed only with the image entry (v1beta1 field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// One wanted tag of an image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagSpec {
    /// The tag, or the digest (`sha256:<hex>`) of a digest-pinned image.
    #[schemars(length(min = 1))]
    pub tag: String,
    /// When this request (or its last re-request) was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Timeout, retries, TTL and deadline of the pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<ImageTagPullPolicy>,
    /// The ImagePullJobs wanting this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Vec<ObjectReference>>,
    /// Request generation; bumping it asks for a fresh pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub version: Option<i64>,
    /// `Always` or `IfNotPresent`, copied from the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
}

/// Pull parameters of one tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagPullPolicy {
    /// Timeout of one CRI pull attempt in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i32>,
    /// Retries after the first failed attempt (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Seconds after the pull finished at which the tag is removed from the NodeImage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Seconds the pull may take in total before it is failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
}

/// Observed state of a NodeImage, written by kruise-daemon (and by the NodeImage controller when
/// the daemon does not answer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeImageStatus {
    /// Number of (image, tag) pairs in the spec.
    pub desired: i32,
    /// Tags in phase `Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Tags in phase `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Tags in phase `Pulling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulling: Option<i32>,
    /// Tags in phase `Waiting` (v1beta1 field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<i32>,
    /// Per-image tag statuses, keyed like `spec.images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_statuses: Option<BTreeMap<String, ImageStatus>>,
    /// Declared by OpenKruise but never set; kept for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sync_status: Option<SyncStatus>,
    /// Standard conditions (`Synced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Pull statuses of one image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    /// One entry per tag, sorted by tag.
    pub tags: Vec<ImageTagStatus>,
}

/// Phase of one pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPhase {
    /// Queued on the node, not started.
    Waiting,
    /// Started, not finished.
    Pulling,
    /// Finished with the image on the node.
    Succeeded,
    /// Finished without the image.
    Failed,
}

/// Pull status of one tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagStatus {
    /// The tag (or digest) this status is for.
    pub tag: String,
    /// Phase of the pull.
    pub phase: ImagePullPhase,
    /// Progress in percent (0 until done, then 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress: Option<i32>,
    /// When the daemon started the pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the pull finished; set means finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The spec `version` this status answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `<name>@<CRI image id>` of the pulled image.
    #[serde(default, rename = "imageID", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Error text when the pull failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Outcome of the first full sync of a node (never set by OpenKruise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SyncStatusPhase {
    /// Every pull succeeded.
    Succeeded,
    /// Some pull failed.
    Failed,
}

/// Summary of the first sync of a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// When the sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_at: Option<Time>,
    /// `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SyncStatusPhase>,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
