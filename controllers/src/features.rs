//! OpenKruise's `--feature-gates` (`openkruise/kruise:pkg/features/kruise_features.go`): every gate
//! OpenKruise defines, with what kruise-rs does about it, and the parse that refuses any setting
//! kruise-rs would otherwise ignore (spec decision 11). It only reads the flag; the controllers and
//! the webhook get the resolved switches.

use std::collections::BTreeMap;

/// What kruise-rs does with one gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Both values are honoured; the text says what turning it on does here.
    Implemented(&'static str),
    /// kruise-rs always behaves as if the gate had this value (the text says how). Setting that
    /// value is a no-op and accepted; the other value is refused.
    Fixed(bool, &'static str),
    /// The gate is about kinds kruise-rs does not serve (named by the text). Setting OpenKruise's
    /// default, a no-op there too, is accepted; the other value is refused.
    OtherKinds(&'static str),
}

/// One of OpenKruise's feature gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Its name.
    pub name: &'static str,
    /// OpenKruise's default.
    pub default: bool,
    /// Alpha (else Beta): which of `AllAlpha` / `AllBeta` sets it.
    pub alpha: bool,
    /// What kruise-rs does with it.
    pub support: Support,
}

const fn gate(name: &'static str, default: bool, alpha: bool, support: Support) -> Gate {
    Gate {
        name,
        default,
        alpha,
        support,
    }
}

use Support::{Fixed, Implemented, OtherKinds};

const ALPHA: bool = true;
const BETA: bool = false;
const NO_IN_PLACE_RESIZE: &str = "does not resize CloneSet pods' cpu and memory in place";
const ADVANCED_STATEFULSET: &str = "Advanced StatefulSet";

/// Every gate of OpenKruise (v1.8), in its order.
pub const GATES: &[Gate] = &[
    gate(
        "KruiseDaemon",
        true,
        BETA,
        Fixed(
            true,
            "runs the NodeImage, ImagePullJob and ImageListPullJob controllers for kruise-daemon",
        ),
    ),
    gate(
        "PodWebhook",
        true,
        BETA,
        Fixed(true, "serves the pod webhook (SidecarSet injection)"),
    ),
    gate(
        "CloneSetShortHash",
        false,
        ALPHA,
        Fixed(false, "labels CloneSet pods with the full revision name"),
    ),
    gate(
        "KruisePodReadinessGate",
        false,
        ALPHA,
        Fixed(
            false,
            "adds the KruisePodReady readiness gate to CloneSet pods only",
        ),
    ),
    gate(
        "PreDownloadImageForInPlaceUpdate",
        false,
        ALPHA,
        Implemented(
            "pre-pulls a CloneSet's new images (through ImagePullJobs) onto the nodes of its pods still to be updated in place",
        ),
    ),
    gate(
        "CloneSetPartitionRollback",
        false,
        ALPHA,
        Implemented("raising a CloneSet's partition rolls updated pods back"),
    ),
    gate(
        "ResourcesDeletionProtection",
        false,
        BETA,
        Implemented(
            "deleting a Namespace, CustomResourceDefinition, Deployment, ReplicaSet, StatefulSet, CloneSet, Service or Ingress labelled policy.kruise.io/delete-protection (Always, or Cascading while it still owns pods, replicas or resources) is refused",
        ),
    ),
    gate(
        "PodUnavailableBudgetDeleteGate",
        true,
        BETA,
        OtherKinds("PodUnavailableBudget"),
    ),
    gate(
        "PodUnavailableBudgetUpdateGate",
        false,
        ALPHA,
        OtherKinds("PodUnavailableBudget"),
    ),
    gate("WorkloadSpread", true, BETA, OtherKinds("WorkloadSpread")),
    gate(
        "DaemonWatchingPod",
        true,
        BETA,
        OtherKinds("ContainerRecreateRequest and PodProbeMarker (kruise-daemon's pod watch)"),
    ),
    gate(
        "TemplateNoDefaults",
        false,
        ALPHA,
        Fixed(false, "defaults CloneSet pod templates in its webhook"),
    ),
    gate(
        "InPlaceUpdateEnvFromMetadata",
        true,
        BETA,
        // OpenKruise's default is true; kruise-rs behaves as false (the difference is in the
        // README): it has no container restart through kruise-daemon yet
        Fixed(
            false,
            "recreates a CloneSet pod when a label or annotation its env reads through the downward API changes (OpenKruise restarts that container in place through kruise-daemon)",
        ),
    ),
    gate(
        "StatefulSetAutoDeletePVC",
        true,
        BETA,
        OtherKinds(ADVANCED_STATEFULSET),
    ),
    gate(
        "SidecarSetPatchPodMetadataDefaultsAllowed",
        false,
        ALPHA,
        Implemented(
            "a SidecarSet's patchPodMetadata is allowed when the kruise-configuration ConfigMap has no whitelist, or no whitelist rule selects the SidecarSet (instead of refused)",
        ),
    ),
    gate(
        "SidecarTerminator",
        false,
        ALPHA,
        Fixed(
            false,
            "has no sidecar terminator (stopping the sidecars of completed Job pods)",
        ),
    ),
    gate(
        "PodProbeMarkerGate",
        true,
        BETA,
        OtherKinds("PodProbeMarker"),
    ),
    gate(
        "PreDownloadImageForDaemonSetUpdate",
        false,
        ALPHA,
        OtherKinds("Advanced DaemonSet"),
    ),
    gate(
        "CloneSetEventHandlerOptimization",
        false,
        ALPHA,
        Fixed(false, "reconciles a CloneSet on every change of its pods"),
    ),
    gate(
        "PreparingUpdateAsUpdate",
        false,
        ALPHA,
        Implemented("CloneSet scaling counts PreparingUpdate pods as updated"),
    ),
    gate(
        "ImagePullJobGate",
        false,
        ALPHA,
        Fixed(true, "serves ImagePullJob and ImageListPullJob"),
    ),
    gate(
        "ResourceDistributionGate",
        false,
        BETA,
        OtherKinds("ResourceDistribution"),
    ),
    gate(
        "DeletionProtectionForCRDCascadingGate",
        false,
        ALPHA,
        Implemented(
            "a CustomResourceDefinition labelled policy.kruise.io/delete-protection=Cascading can be deleted once none of its custom resources is left (without it, never); needs ResourcesDeletionProtection=true",
        ),
    ),
    gate(
        "EnhancedLivenessProbe",
        false,
        ALPHA,
        OtherKinds("NodePodProbe (enhanced liveness probes)"),
    ),
    gate(
        "RecreatePodWhenChangeVCTInCloneSetGate",
        false,
        ALPHA,
        Fixed(
            false,
            "keeps CloneSet pods when only volumeClaimTemplates change",
        ),
    ),
    gate(
        "StatefulSetStartOrdinal",
        false,
        ALPHA,
        OtherKinds(ADVANCED_STATEFULSET),
    ),
    gate(
        "PodIndexLabel",
        true,
        BETA,
        OtherKinds(ADVANCED_STATEFULSET),
    ),
    gate(
        "EnableExternalCerts",
        false,
        ALPHA,
        Fixed(
            false,
            "takes external webhook certificates from --webhook-ca, --webhook-cert and --webhook-key",
        ),
    ),
    gate(
        "StatefulSetAutoResizePVCGate",
        false,
        ALPHA,
        OtherKinds(ADVANCED_STATEFULSET),
    ),
    gate(
        "ForceDeleteTimeoutExpectationGate",
        false,
        ALPHA,
        Fixed(
            false,
            "keeps CloneSet scale expectations until they are observed",
        ),
    ),
    gate(
        "InPlaceWorkloadVerticalScaling",
        false,
        ALPHA,
        Fixed(false, NO_IN_PLACE_RESIZE),
    ),
    gate(
        "EnablePodProbeMarkerOnServerless",
        false,
        ALPHA,
        OtherKinds("PodProbeMarker"),
    ),
    gate(
        "EnableSortSidecarContainerByName",
        false,
        ALPHA,
        Implemented("SidecarSet containers injected into a pod are sorted by name"),
    ),
    gate(
        "InPlacePodVerticalScaling",
        false,
        ALPHA,
        Fixed(false, NO_IN_PLACE_RESIZE),
    ),
    gate(
        "DefaultHostNetworkHostPortsInPodTemplates",
        false,
        ALPHA,
        Fixed(
            false,
            "does not default hostPorts in CloneSet templates with hostNetwork",
        ),
    ),
    gate(
        "DaemonSetPruneIneligibleNodes",
        false,
        ALPHA,
        OtherKinds("Advanced DaemonSet"),
    ),
];

/// The switches of the gates kruise-rs implements, resolved from `--feature-gates`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureGates {
    /// `PreDownloadImageForInPlaceUpdate`.
    pub predownload_image_for_in_place_update: bool,
    /// `CloneSetPartitionRollback`.
    pub cloneset_partition_rollback: bool,
    /// `PreparingUpdateAsUpdate`.
    pub preparing_update_as_update: bool,
    /// `SidecarSetPatchPodMetadataDefaultsAllowed`.
    pub sidecarset_patch_pod_metadata_defaults_allowed: bool,
    /// `EnableSortSidecarContainerByName`.
    pub sort_sidecar_containers_by_name: bool,
    /// `ResourcesDeletionProtection`.
    pub resources_deletion_protection: bool,
    /// `DeletionProtectionForCRDCascadingGate`.
    pub deletion_protection_for_crd_cascading: bool,
}

/// A `--feature-gates` value kruise-rs refuses; the message names every problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FeatureGateError(pub String);

fn implemented_names() -> String {
    GATES
        .iter()
        .filter(|g| matches!(g.support, Implemented(_)))
        .map(|g| g.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_bool(item: &str, value: &str) -> Result<bool, FeatureGateError> {
    match value.trim() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        _ => Err(FeatureGateError(format!(
            "invalid feature gate {item:?}: want Name=true or Name=false"
        ))),
    }
}

/// Why `gate=on` cannot be honoured, or `None` when it can.
fn refusal(gate: &Gate, on: bool) -> Option<String> {
    match gate.support {
        Implemented(_) => None,
        Fixed(v, _) if on == v => None,
        OtherKinds(_) if on == gate.default => None,
        Fixed(_, how) => Some(format!("{}={on}: kruise-rs always {how}", gate.name)),
        OtherKinds(kinds) => Some(format!(
            "{}={on}: it concerns {kinds}, which kruise-rs does not serve",
            gate.name
        )),
    }
}

impl FeatureGates {
    /// Parses OpenKruise's syntax (`Name=true,Other=false`; `AllAlpha`/`AllBeta` set every alpha or
    /// beta gate not named explicitly). Refuses malformed items, names OpenKruise does not define,
    /// and any value kruise-rs would not honour — also when it comes from `AllAlpha`/`AllBeta` —
    /// listing the gates it implements.
    pub fn parse(list: &str) -> Result<Self, FeatureGateError> {
        let mut named: BTreeMap<String, bool> = BTreeMap::new();
        let (mut all_alpha, mut all_beta) = (None, None);
        let mut unknown = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| {
                FeatureGateError(format!(
                    "invalid feature gate {item:?}: want Name=true or Name=false"
                ))
            })?;
            let (name, on) = (name.trim(), parse_bool(item, value)?);
            match name {
                "AllAlpha" => all_alpha = Some(on),
                "AllBeta" => all_beta = Some(on),
                _ if GATES.iter().any(|g| g.name == name) => {
                    named.insert(name.to_string(), on);
                }
                _ => unknown.push(format!("{name:?}")),
            }
        }
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            problems.push(format!(
                "unknown feature gate(s) {} (not defined by OpenKruise)",
                unknown.join(", ")
            ));
        }
        let mut out = FeatureGates::default();
        for g in GATES {
            let (on, source) = match named.get(g.name) {
                Some(on) => (*on, None),
                None => match if g.alpha { all_alpha } else { all_beta } {
                    Some(on) => (on, Some(if g.alpha { "AllAlpha" } else { "AllBeta" })),
                    None => (g.default, None),
                },
            };
            let explicit = named.contains_key(g.name) || source.is_some();
            if explicit && let Some(why) = refusal(g, on) {
                problems.push(match source {
                    Some(all) => format!("{all}={on} sets {why}"),
                    None => why,
                });
            }
            match g.name {
                "PreDownloadImageForInPlaceUpdate" => {
                    out.predownload_image_for_in_place_update = on
                }
                "CloneSetPartitionRollback" => out.cloneset_partition_rollback = on,
                "PreparingUpdateAsUpdate" => out.preparing_update_as_update = on,
                "SidecarSetPatchPodMetadataDefaultsAllowed" => {
                    out.sidecarset_patch_pod_metadata_defaults_allowed = on;
                }
                "EnableSortSidecarContainerByName" => out.sort_sidecar_containers_by_name = on,
                "ResourcesDeletionProtection" => out.resources_deletion_protection = on,
                "DeletionProtectionForCRDCascadingGate" => {
                    out.deletion_protection_for_crd_cascading = on
                }
                _ => {}
            }
        }
        // OpenKruise quietly turns the CRD gate off without the other; refuse instead
        if out.deletion_protection_for_crd_cascading && !out.resources_deletion_protection {
            problems.push(
                "DeletionProtectionForCRDCascadingGate=true needs ResourcesDeletionProtection=true \
                 (without it there is no deletion protection at all, and OpenKruise turns the gate off)"
                    .to_string(),
            );
        }
        if problems.is_empty() {
            return Ok(out);
        }
        Err(FeatureGateError(format!(
            "--feature-gates refused: {}. Remove these settings; the gates kruise-rs implements are \
             {} (every OpenKruise gate and what kruise-rs does about it: controllers/src/features.rs)",
            problems.join("; "),
            implemented_names()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_gates_parse_and_default_off() {
        assert_eq!(FeatureGates::parse("").unwrap(), FeatureGates::default());
        let g = FeatureGates::parse(
            "PreDownloadImageForInPlaceUpdate=true, CloneSetPartitionRollback=True,\
             PreparingUpdateAsUpdate=true,SidecarSetPatchPodMetadataDefaultsAllowed=true,\
             EnableSortSidecarContainerByName=true",
        )
        .unwrap();
        assert!(g.predownload_image_for_in_place_update);
        assert!(g.cloneset_partition_rollback && g.preparing_update_as_update);
        assert!(g.sidecarset_patch_pod_metadata_defaults_allowed);
        assert!(g.sort_sidecar_containers_by_name);
        let off = FeatureGates::parse("EnableSortSidecarContainerByName=false").unwrap();
        assert!(!off.sort_sidecar_containers_by_name);
    }

    #[test]
    fn deletion_protection_gates_are_implemented_and_the_crd_one_needs_the_other() {
        let off = FeatureGates::parse("").unwrap();
        assert!(!off.resources_deletion_protection && !off.deletion_protection_for_crd_cascading);
        let g = FeatureGates::parse("ResourcesDeletionProtection=true").unwrap();
        assert!(g.resources_deletion_protection && !g.deletion_protection_for_crd_cascading);
        let g = FeatureGates::parse(
            "ResourcesDeletionProtection=true,DeletionProtectionForCRDCascadingGate=true",
        )
        .unwrap();
        assert!(g.resources_deletion_protection && g.deletion_protection_for_crd_cascading);
        assert!(FeatureGates::parse("ResourcesDeletionProtection=false").is_ok());
        let err = FeatureGates::parse("DeletionProtectionForCRDCascadingGate=true")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "DeletionProtectionForCRDCascadingGate=true needs ResourcesDeletionProtection=true"
            ),
            "{err}"
        );
    }

    #[test]
    fn no_ops_are_accepted() {
        // what kruise-rs always does, and OpenKruise's default for kinds it does not serve
        for ok in [
            "PodWebhook=true",
            "KruiseDaemon=true",
            "ImagePullJobGate=true",
            "InPlaceUpdateEnvFromMetadata=false",
            "CloneSetShortHash=false",
            "WorkloadSpread=true",
            "PodProbeMarkerGate=true",
            "StatefulSetAutoResizePVCGate=false",
        ] {
            assert!(FeatureGates::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn env_from_metadata_in_place_is_refused_until_it_is_served() {
        let err = FeatureGates::parse("InPlaceUpdateEnvFromMetadata=true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("InPlaceUpdateEnvFromMetadata=true"), "{err}");
        assert!(err.contains("recreates a CloneSet pod"), "{err}");
    }

    #[test]
    fn unknown_and_unsupported_gates_are_refused_naming_them() {
        let err = FeatureGates::parse("Foo=true,CloneSetShortHash=true,WorkloadSpread=false")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown feature gate(s) \"Foo\""), "{err}");
        assert!(
            err.contains("CloneSetShortHash=true: kruise-rs always labels CloneSet pods with the full revision name"),
            "{err}"
        );
        assert!(
            err.contains(
                "WorkloadSpread=false: it concerns WorkloadSpread, which kruise-rs does not serve"
            ),
            "{err}"
        );
        assert!(
            err.contains("the gates kruise-rs implements are PreDownloadImageForInPlaceUpdate, CloneSetPartitionRollback, ResourcesDeletionProtection, SidecarSetPatchPodMetadataDefaultsAllowed, PreparingUpdateAsUpdate, DeletionProtectionForCRDCascadingGate, EnableSortSidecarContainerByName"),
            "{err}"
        );
        // kruise-rs cannot turn these off
        for bad in [
            "PodWebhook=false",
            "KruiseDaemon=false",
            "ImagePullJobGate=false",
        ] {
            let err = FeatureGates::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad}: kruise-rs always")), "{err}");
        }
        for bad in ["PreDownloadImageForInPlaceUpdate", "A=yes"] {
            let err = FeatureGates::parse(bad).unwrap_err().to_string();
            assert!(err.contains("want Name=true or Name=false"), "{err}");
        }
    }

    #[test]
    fn all_alpha_and_all_beta_are_checked_gate_by_gate() {
        let err = FeatureGates::parse("AllAlpha=true")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AllAlpha=true sets CloneSetShortHash=true"),
            "{err}"
        );
        assert!(
            !err.contains("PreDownloadImageForInPlaceUpdate=true:"),
            "{err}"
        );
        let err = FeatureGates::parse("AllBeta=false")
            .unwrap_err()
            .to_string();
        assert!(err.contains("AllBeta=false sets PodWebhook=false"), "{err}");
        // explicit settings win over AllAlpha, whatever their order
        let err = FeatureGates::parse("CloneSetShortHash=false,AllAlpha=true")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("CloneSetShortHash"), "{err}");
    }

    #[test]
    fn the_table_is_complete_and_unique() {
        let mut names: Vec<&str> = GATES.iter().map(|g| g.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a gate is listed twice");
        assert_eq!(n, 36, "OpenKruise v1.8 defines 36 gates");
    }
}
