//! Well-known keys of SidecarSet: annotations and labels on SidecarSets, pods and
//! ControllerRevisions, the env vars put into injected containers, the hot-upgrade naming, the pod
//! condition, its reasons, event reasons and webhook names, spelled exactly as OpenKruise spells them.
//! The in-place update state and other cross-kind keys live in [`crate::keys`].

// ----- on the SidecarSet (and copied onto its ControllerRevisions) -----

/// SidecarSet and pod annotation: hash of the sidecar containers (on the SidecarSet a 64-char string,
/// on a pod a JSON map `{ss: SidecarSetUpgradeSpec}`).
pub const SIDECARSET_HASH: &str = "kruise.io/sidecarset-hash";
/// SidecarSet and pod annotation: the same hash computed with every container image blanked.
pub const SIDECARSET_HASH_WITHOUT_IMAGE: &str = "kruise.io/sidecarset-hash-without-image";
/// SidecarSet annotation: `"true"` marks a canary SidecarSet (with [`SIDECARSET_BASE`]).
pub const SIDECARSET_CANARY: &str = "apps.kruise.io/sidecarset-canary";
/// SidecarSet annotation on a canary: name of the base SidecarSet it stands in for.
pub const SIDECARSET_BASE: &str = "apps.kruise.io/sidecarset-base";
/// Label on a v1alpha1 SidecarSet and on its latest ControllerRevision: a user-chosen version name
/// that `injectionStrategy.revision.customVersion` can pin.
pub const SIDECARSET_CUSTOM_VERSION_LABEL: &str = "apps.kruise.io/sidecarset-custom-version";

// ----- on ControllerRevisions -----

/// ControllerRevision label: name of the SidecarSet the revision belongs to.
pub const SIDECARSET_NAME_LABEL: &str = "kruise.io/sidecarset-name";

// ----- on pods -----

/// Pod annotation: comma-separated, sorted names of the SidecarSets injected into the pod.
pub const SIDECARSET_INJECTED_LIST: &str = "kruise.io/sidecarset-injected-list";
/// Pod annotation: JSON map `{ss: InPlaceUpdateState}` recording container image IDs before an
/// in-place sidecar upgrade.
pub const SIDECARSET_INPLACE_UPDATE_STATE: &str = "kruise.io/sidecarset-inplace-update-state";
/// Pod annotation: JSON map from a hot-upgrade sidecar's name to its working container
/// (`{"envoy":"envoy-1"}`).
pub const SIDECARSET_WORKING_HOTUPGRADE_CONTAINER: &str =
    "kruise.io/sidecarset-working-hotupgrade-container";
/// Prefix of the pod annotation holding a hot-upgrade container's version (`…/{container}`).
pub const SIDECARSET_VERSION_ANNOTATION_PREFIX: &str = "version.sidecarset.kruise.io/";
/// Prefix of the pod annotation holding the version of the other slot (`…/{container}`).
pub const SIDECARSET_VERSION_ALT_ANNOTATION_PREFIX: &str = "versionalt.sidecarset.kruise.io/";
/// Pod condition type telling whether each SidecarSet can upgrade the pod in place.
pub const SIDECARSET_UPGRADABLE_CONDITION: &str = "SidecarSetUpgradable";
/// Reason of [`SIDECARSET_UPGRADABLE_CONDITION`] when every SidecarSet can upgrade the pod.
pub const REASON_ALL_SIDECARSET_UPGRADABLE: &str = "AllSidecarsetUpgradable";
/// Reason of [`SIDECARSET_UPGRADABLE_CONDITION`] when a non-image field changed.
pub const REASON_UPDATE_IMMUTABLE_FIELD: &str = "UpdateImmutableField";

// ----- env vars on injected containers -----

/// Env var (value `"true"`) on every injected container: marks it as a sidecar.
pub const SIDECAR_ENV_KEY: &str = "IS_INJECTED";
/// Env var of a hot-upgrade container: its own version, from the version annotation.
pub const SIDECARSET_VERSION_ENV: &str = "SIDECARSET_VERSION";
/// Env var of a hot-upgrade container: the other slot's version, from the versionalt annotation.
pub const SIDECARSET_VERSION_ALT_ENV: &str = "SIDECARSET_VERSION_ALT";

// ----- hot upgrade naming -----

/// Suffix of the first hot-upgrade container (`{name}-1`, the initial working slot).
pub const HOT_UPGRADE_SUFFIX_1: &str = "-1";
/// Suffix of the second hot-upgrade container (`{name}-2`, the initial idle slot).
pub const HOT_UPGRADE_SUFFIX_2: &str = "-2";

// ----- events -----

/// Event reason on a SidecarSet: some pods were skipped because a non-image field changed.
pub const EVENT_NOT_UPGRADABLE_PODS: &str = "NotUpgradablePods";
/// Event reason on a pod: the old hot-upgrade slot was reset to the empty image.
pub const EVENT_RESET_CONTAINER_SUCCEED: &str = "ResetContainerSucceed";
/// Event reason on a pod: resetting the old hot-upgrade slot failed.
pub const EVENT_RESET_CONTAINER_FAILED: &str = "ResetContainerFailed";

// ----- configuration, webhooks, controller -----

/// ConfigMap (in the Kruise namespace) holding the patchPodMetadata whitelist.
pub const KRUISE_CONFIGURATION_CONFIGMAP: &str = "kruise-configuration";
/// Key of the patchPodMetadata whitelist in [`KRUISE_CONFIGURATION_CONFIGMAP`].
pub const PATCH_POD_METADATA_WHITELIST_KEY: &str = "SidecarSet_PatchPodMetadata_WhiteList";
/// Namespace label the API server sets to the namespace's name (v1alpha1 `spec.namespace` maps to it).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Name of the SidecarSet mutating webhook.
pub const MUTATING_WEBHOOK_NAME: &str = "msidecarset.kb.io";
/// Path of the SidecarSet mutating webhook.
pub const MUTATING_WEBHOOK_PATH: &str = "/mutate-apps-kruise-io-sidecarset";
/// Name of the SidecarSet validating webhook.
pub const VALIDATING_WEBHOOK_NAME: &str = "vsidecarset.kb.io";
/// Path of the SidecarSet validating webhook.
pub const VALIDATING_WEBHOOK_PATH: &str = "/validate-apps-kruise-io-sidecarset";
/// Name of the pod mutating webhook that injects sidecars.
pub const POD_MUTATING_WEBHOOK_NAME: &str = "mpod.kb.io";
/// Path of the pod mutating webhook.
pub const POD_MUTATING_WEBHOOK_PATH: &str = "/mutate-pod";
/// Name of the SidecarSet controller.
pub const CONTROLLER_NAME: &str = "sidecarset-controller";
/// Feature gate: sort injected sidecar containers by name.
pub const FEATURE_ENABLE_SORT_SIDECAR_CONTAINER_BY_NAME: &str = "EnableSortSidecarContainerByName";
/// Feature gate: a missing patchPodMetadata whitelist allows every annotation.
pub const FEATURE_PATCH_POD_METADATA_DEFAULTS_ALLOWED: &str =
    "SidecarSetPatchPodMetadataDefaultsAllowed";

/// The two container names of hot-upgrade sidecar `name`: (`{name}-1`, `{name}-2`).
pub fn hot_upgrade_container_names(name: &str) -> (String, String) {
    (
        format!("{name}{HOT_UPGRADE_SUFFIX_1}"),
        format!("{name}{HOT_UPGRADE_SUFFIX_2}"),
    )
}

/// Pod annotation key holding the version of hot-upgrade container `container` (e.g. `envoy-1`).
pub fn version_annotation(container: &str) -> String {
    format!("{SIDECARSET_VERSION_ANNOTATION_PREFIX}{container}")
}

/// Pod annotation key holding the other slot's version, as seen by container `container`.
pub fn version_alt_annotation(container: &str) -> String {
    format!("{SIDECARSET_VERSION_ALT_ANNOTATION_PREFIX}{container}")
}

/// `fieldPath` of the [`SIDECARSET_VERSION_ENV`] downward-API env of container `container`.
pub fn version_env_field_path(container: &str) -> String {
    format!("metadata.annotations['{}']", version_annotation(container))
}

/// `fieldPath` of the [`SIDECARSET_VERSION_ALT_ENV`] downward-API env of container `container`.
pub fn version_alt_env_field_path(container: &str) -> String {
    format!(
        "metadata.annotations['{}']",
        version_alt_annotation(container)
    )
}
