//! Validation tables: each rule of spec §3/§5 (and decision 2) → the field path and reason.

use super::defaults::default_sidecarset;
use super::validate::{validate_patch_metadata_whitelist, validate_sidecarset};
use crate::field::{ErrorKind, FieldError};
use k8s_openapi::api::apps::v1::ControllerRevision;
use kruise_crds::keys::sidecarset::*;
use kruise_crds::sidecarset::SidecarSet;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": "s1"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "envoy", "image": "envoy:1",
                            "volumeMounts": [{"name": "certs", "mountPath": "/certs"}]}],
            "volumes": [{"name": "certs", "secret": {"secretName": "c"}}],
        }
    })
}

/// `base()` merged with `patch` (RFC 7386), then defaulted like the mutating webhook does.
fn ss(patch: Value) -> SidecarSet {
    let mut v = base();
    json_patch::merge(&mut v, &patch);
    let mut s: SidecarSet = serde_json::from_value(v).unwrap();
    default_sidecarset(&mut s);
    s
}

fn check(errs: &[FieldError], path: &str, detail: &str, case: &str) {
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.to_string().contains(detail)),
        "{case}: want {path}: …{detail}…, got {:#?}",
        errs.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

#[test]
fn a_valid_sidecarset_passes() {
    assert_eq!(validate_sidecarset(&ss(json!({})), None, &[], &[]), vec![]);
    let full = ss(json!({"spec": {
        "initContainers": [{"name": "init", "image": "busybox:1"}],
        "updateStrategy": {"partition": "10%", "maxUnavailable": "50%",
            "scatterStrategy": [{"key": "zone", "value": "a"}]},
        "patchPodMetadata": [{"annotations": {"example.com/x": "1"}, "patchPolicy": "Overwrite"}],
        "containers": [{"name": "envoy", "image": "envoy:1",
            "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"},
            "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['src']"}}, "envName": "A"}],
            "resourcesPolicy": {"targetContainersMode": "sum",
                "resourcesExpr": {"requests": {"cpu": "max(cpu*50%, 50m)"}}}}],
        "volumes": null,
    }}));
    let errs = validate_sidecarset(&full, None, &[], &[]);
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn spec_rules() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "no selector",
            json!({"spec": {"selector": null}}),
            "spec.selector",
            "Required value: no selector defined for SidecarSet",
        ),
        (
            "empty selector",
            json!({"spec": {"selector": {"matchLabels": null}}}),
            "spec.selector",
            "empty selector is not valid for sidecarset.",
        ),
        (
            "empty namespaceSelector",
            json!({"spec": {"namespaceSelector": {}}}),
            "spec.namespaceSelector",
            "empty selector is not valid for sidecarset.",
        ),
        (
            "bad label value",
            json!({"spec": {"selector": {"matchLabels": {"app": "app-risk-"}}}}),
            "spec.selector.matchLabels",
            "a valid label must be",
        ),
        (
            "bad operator",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Foo"}]}}}),
            "spec.selector.matchExpressions[0].operator",
            "not a valid selector operator",
        ),
        (
            "In without values",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
            "spec.selector.matchExpressions[0].values",
            "must be specified",
        ),
        (
            "no containers",
            json!({"spec": {"containers": null, "volumes": null}}),
            "spec",
            "no initContainer or container defined for SidecarSet",
        ),
        (
            "no image",
            json!({"spec": {"containers": [{"name": "envoy"}], "volumes": null}}),
            "spec.containers[0].image",
            "Required value",
        ),
        (
            "bad container name",
            json!({"spec": {"containers": [{"name": "Envoy_1", "image": "e:1"}], "volumes": null}}),
            "spec.containers[0].name",
            "RFC 1123 label",
        ),
        (
            "duplicate name",
            json!({"spec": {"initContainers": [{"name": "envoy", "image": "e:1"}]}}),
            "spec.containers[0].name",
            "Duplicate value: \"envoy\"",
        ),
        (
            "undeclared volume",
            json!({"spec": {"volumes": null}}),
            "spec.containers[0].volumeMounts[0].name",
            "must match the name of a volume",
        ),
        (
            "volume with two sources",
            json!({"spec": {"volumes": [{"name": "certs", "secret": {"secretName": "c"}, "emptyDir": {}}]}}),
            "spec.volumes[0]",
            "may not specify more than 1 volume type",
        ),
        (
            "mountPath = devicePath",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "volumeMounts": [{"name": "certs", "mountPath": "/dev/x"}],
            "volumeDevices": [{"name": "certs", "devicePath": "/dev/x"}]}]}}),
            "spec.containers[0].volumeMounts[0].mountPath",
            "must not already exist as a path in volumeDevices",
        ),
        (
            "restartPolicy on a container",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1", "restartPolicy": "Always"}], "volumes": null}}),
            "spec.containers[0].restartPolicy",
            "may not be set for non-init containers",
        ),
        (
            "native sidecar + RollingUpdate",
            json!({"spec": {"initContainers": [{"name": "n", "image": "n:1", "restartPolicy": "Always"}]}}),
            "spec.updateStrategy",
            "Required value: The initContainer in-place upgrade is not currently supported.",
        ),
        (
            "partition with selector",
            json!({"spec": {"updateStrategy": {"partition": 1, "selector": {"matchLabels": {"a": "b"}}}}}),
            "spec.updateStrategy",
            "Partition and Selector cannot be used together",
        ),
        (
            "percent partition with selector",
            json!({"spec": {"updateStrategy": {"partition": "0%", "selector": {"matchLabels": {"a": "b"}}}}}),
            "spec.updateStrategy",
            "Partition and Selector cannot be used together",
        ),
        (
            "negative maxUnavailable",
            json!({"spec": {"updateStrategy": {"maxUnavailable": -1}}}),
            "spec.updateStrategy.maxUnavailable",
            "must be greater than or equal to 0",
        ),
        (
            "bad percent",
            json!({"spec": {"updateStrategy": {"partition": "ten%"}}}),
            "spec.updateStrategy.partition",
            "a valid percent string",
        ),
        (
            "percent over 100",
            json!({"spec": {"updateStrategy": {"maxUnavailable": "150%"}}}),
            "spec.updateStrategy.maxUnavailable",
            "must not be greater than 100%",
        ),
        (
            "empty scatter key",
            json!({"spec": {"updateStrategy": {"scatterStrategy": [{"key": "", "value": "a"}]}}}),
            "spec.updateStrategy.scatterStrategy[0].key",
            "key should not be empty",
        ),
        (
            "duplicate scatter term",
            json!({"spec": {"updateStrategy": {"scatterStrategy": [{"key": "k", "value": "a"}, {"key": "k", "value": "a"}]}}}),
            "spec.updateStrategy.scatterStrategy[1]",
            "duplicated key=k value=a",
        ),
        (
            "weight and order",
            json!({"spec": {"updateStrategy": {"priorityStrategy": {
            "weightPriority": [{"weight": 50, "matchSelector": {"matchLabels": {"a": "b"}}}],
            "orderPriority": [{"orderedKey": "k"}]}}}}),
            "spec.updateStrategy.priorityStrategy",
            "only one of weightPriority and orderPriority can be used",
        ),
        (
            "weight too big",
            json!({"spec": {"updateStrategy": {"priorityStrategy": {
            "weightPriority": [{"weight": 101, "matchSelector": {"matchLabels": {"a": "b"}}}]}}}}),
            "spec.updateStrategy.priorityStrategy.weightPriority[0].weight",
            "weight must be valid number in the range 1-100",
        ),
        (
            "empty weight selector",
            json!({"spec": {"updateStrategy": {"priorityStrategy": {
            "weightPriority": [{"weight": 1, "matchSelector": {}}]}}}}),
            "spec.updateStrategy.priorityStrategy.weightPriority[0].matchSelector",
            "selector can not be empty",
        ),
        (
            "empty order key",
            json!({"spec": {"updateStrategy": {"priorityStrategy": {"orderPriority": [{"orderedKey": ""}]}}}}),
            "spec.updateStrategy.priorityStrategy.orderPriority[0].orderedKey",
            "order key can not be empty",
        ),
        (
            "revision without names",
            json!({"spec": {"injectionStrategy": {"revision": {"policy": "Always"}}}}),
            "spec.injectionStrategy.revision",
            "revisionName and customVersion cannot be empty simultaneously",
        ),
        (
            "revision not found",
            json!({"spec": {"injectionStrategy": {"revision": {"revisionName": "s1-x"}}}}),
            "spec.injectionStrategy.revision",
            "Cannot find specific ControllerRevision, err: controllerrevisions.apps \"s1-x\" not found",
        ),
        (
            "hot upgrade without empty image",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1", "upgradeStrategy": {"upgradeType": "HotUpgrade"}}], "volumes": null}}),
            "spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage",
            "Required value",
        ),
        (
            "hot upgrade name too long",
            json!({"spec": {"containers": [{"name": "a".repeat(62), "image": "e:1",
            "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "x:1"}}], "volumes": null}}),
            "spec.containers[0].name",
            "hot upgrade container names",
        ),
        (
            "transferEnv other fieldPath",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}], "volumes": null}}),
            "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath",
            "error converting fieldPath",
        ),
        (
            "transferEnv bad apiVersion",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.labels['a']"}}}]}], "volumes": null}}),
            "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.apiVersion",
            "Unsupported value: \"v2\"",
        ),
        (
            "resourcesPolicy with resources",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1", "resources": {"limits": {"cpu": "1"}},
            "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {"limits": {"cpu": "cpu"}}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy",
            "resourcesPolicy and resources cannot be configured together",
        ),
        (
            "resourcesPolicy empty regex",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "targetContainersNameRegex": "", "resourcesExpr": {"limits": {"cpu": "cpu"}}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy.targetContainersNameRegex",
            "invalid empty regex",
        ),
        (
            "resourcesPolicy bad regex",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "targetContainersNameRegex": "(", "resourcesExpr": {"limits": {"cpu": "cpu"}}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy.targetContainersNameRegex",
            "invalid regex pattern",
        ),
        (
            "resourcesPolicy no exprs",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy.resourcesExpr",
            "at least one of limits or requests must be configured",
        ),
        (
            "resourcesPolicy bad expr",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {"limits": {"cpu": "cpu *"}}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy.resourcesExpr.limits.cpu",
            "invalid expression",
        ),
        (
            "resourcesPolicy expression of 14 KB of '(' (overflowed the stack)",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {"requests": {"memory": "(".repeat(14 * 1024)}}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy.resourcesExpr.requests.memory",
            "Too long: may not be more than 1024 bytes",
        ),
        (
            "resourcesPolicy expression nested 100 deep",
            json!({"spec": {"containers": [{"name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {"limits": {"cpu": format!("{}cpu{}", "(".repeat(100), ")".repeat(100))}}}}], "volumes": null}}),
            "spec.containers[0].resourcesPolicy.resourcesExpr.limits.cpu",
            "more than 64 deep",
        ),
        (
            "resourcesPolicy on plain init",
            json!({"spec": {"initContainers": [{"name": "i", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {"limits": {"cpu": "cpu"}}}}]}}),
            "spec.initContainers[0].resourcesPolicy",
            "only supported for containers with RestartPolicy Always",
        ),
        (
            "empty patch annotations",
            json!({"spec": {"patchPodMetadata": [{"annotations": {}}]}}),
            "spec.patchPodMetadata[0].annotations",
            "no annotations defined for SidecarSet",
        ),
        (
            "bad patch key",
            json!({"spec": {"patchPodMetadata": [{"annotations": {"a b": "x"}}]}}),
            "spec.patchPodMetadata[0].annotations",
            "name part must consist",
        ),
        (
            "duplicate patch key",
            json!({"spec": {"patchPodMetadata": [{"annotations": {"k": "1"}}, {"annotations": {"k": "2"}, "patchPolicy": "Overwrite"}]}}),
            "spec.patchPodMetadata[1].annotations",
            "patch annotation[k] already exist",
        ),
        (
            "name with a dot",
            json!({"metadata": {"name": "a.b"}}),
            "metadata.name",
            "sidecarset name must consist of alphanumeric characters or '-'",
        ),
        (
            "name too long",
            json!({"metadata": {"name": "a".repeat(64)}}),
            "metadata.name",
            "must be no more than 63 characters",
        ),
        (
            "namespaced",
            json!({"metadata": {"namespace": "x"}}),
            "metadata.namespace",
            "Forbidden",
        ),
    ];
    for (case, patch, path, detail) in cases {
        let errs = validate_sidecarset(&ss(patch), None, &[], &[]);
        check(&errs, path, detail, case);
    }
}

#[test]
fn unset_policies_are_refused_before_defaulting() {
    // the validating webhook sees defaulted objects; an undefaulted one is refused with a path
    let mut raw: SidecarSet = serde_json::from_value(base()).unwrap();
    raw.spec.patch_pod_metadata = Some(vec![
        serde_json::from_value(json!({"annotations": {"k": "v"}})).unwrap(),
    ]);
    let errs = validate_sidecarset(&raw, None, &[], &[]);
    check(
        &errs,
        "spec.containers[0].podInjectPolicy",
        "unsupported pod inject policy",
        "inject policy",
    );
    check(
        &errs,
        "spec.containers[0].shareVolumePolicy",
        "unsupported share volume policy",
        "share policy",
    );
    check(
        &errs,
        "spec.patchPodMetadata[0].patchPolicy",
        "no patchPolicy defined for patchPodMetadata",
        "patch policy",
    );
}

#[test]
fn revisions_that_exist_pass() {
    let rev: ControllerRevision = serde_json::from_value(json!({
        "metadata": {"name": "s1-abc", "labels": {SIDECARSET_NAME_LABEL: "s1", SIDECARSET_CUSTOM_VERSION_LABEL: "v1"}},
        "revision": 1,
    }))
    .unwrap();
    for strategy in [
        json!({"revisionName": "s1-abc"}),
        json!({"customVersion": "v1"}),
    ] {
        let s = ss(json!({"spec": {"injectionStrategy": {"revision": strategy}}}));
        assert!(validate_sidecarset(&s, None, &[], std::slice::from_ref(&rev)).is_empty());
    }
    let s = ss(json!({"spec": {"injectionStrategy": {"revision": {"customVersion": "v2"}}}}));
    let errs = validate_sidecarset(&s, None, &[], &[rev]);
    check(
        &errs,
        "spec.injectionStrategy.revision",
        "Cannot find specific ControllerRevision",
        "custom version v2",
    );
}

#[test]
fn update_rules() {
    let old = ss(json!({}));
    let hot = ss(
        json!({"spec": {"containers": [{"name": "envoy", "image": "e:2",
        "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
        "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "x:1"}}]}}),
    );
    let errs = validate_sidecarset(&hot, Some(&old), &[], &[]);
    check(
        &errs,
        "spec.containers[0].upgradeStrategy.upgradeType",
        "container envoy upgradeType is immutable",
        "immutable",
    );
    let added = ss(json!({"spec": {"containers": [
        {"name": "envoy", "image": "e:2", "volumeMounts": [{"name": "certs", "mountPath": "/certs"}]},
        {"name": "new", "image": "n:1"}]}}));
    let errs = validate_sidecarset(&added, Some(&old), &[], &[]);
    check(
        &errs,
        "spec.containers[1].name",
        "container new is not found",
        "added",
    );
    // an image change is fine
    let image = ss(
        json!({"spec": {"containers": [{"name": "envoy", "image": "e:2",
        "volumeMounts": [{"name": "certs", "mountPath": "/certs"}]}]}}),
    );
    assert!(validate_sidecarset(&image, Some(&old), &[], &[]).is_empty());
}

#[test]
fn canary_rules() {
    let canary = |base: &str, strategy: &str| {
        ss(json!({
            "metadata": {"name": "canary", "annotations": {SIDECARSET_CANARY: "true", SIDECARSET_BASE: base}},
            "spec": {"updateStrategy": {"type": strategy}},
        }))
    };
    let base = ss(json!({"metadata": {"name": "base"}}));
    let path = format!("metadata.annotations[{SIDECARSET_BASE}]");
    // a valid canary, sharing container names with its base
    assert!(
        validate_sidecarset(
            &canary("base", "NotUpdate"),
            None,
            std::slice::from_ref(&base),
            &[]
        )
        .is_empty()
    );
    // the base can still be updated although its canary shares its names
    assert!(
        validate_sidecarset(&base, Some(&base), &[canary("base", "NotUpdate")], &[]).is_empty()
    );
    let stranger = ss(json!({"metadata": {"name": "stranger"}}));
    check(
        &validate_sidecarset(&base, Some(&base), &[stranger], &[]),
        "spec.containers[0].name",
        "container envoy already exist in stranger",
        "not a canary",
    );
    check(
        &validate_sidecarset(&canary("canary", "NotUpdate"), None, &[], &[]),
        &path,
        "base sidecarSet cannot be itself",
        "itself",
    );
    check(
        &validate_sidecarset(&canary("nope", "NotUpdate"), None, &[], &[]),
        &path,
        "fetch base sidecarSet[nope] failed",
        "missing base",
    );
    let mut canary_base = canary("base", "NotUpdate");
    canary_base.metadata.name = Some("base".into());
    canary_base
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(SIDECARSET_BASE.into(), "other".into());
    check(
        &validate_sidecarset(&canary("base", "NotUpdate"), None, &[canary_base], &[]),
        &path,
        "base sidecarSet cannot be canary",
        "canary base",
    );
    check(
        &validate_sidecarset(
            &canary("base", "RollingUpdate"),
            None,
            std::slice::from_ref(&base),
            &[],
        ),
        "spec.updateStrategy.type",
        "RollingUpdate is not supported for canary sidecarSet",
        "rolling",
    );
    let other_base = ss(
        json!({"metadata": {"name": "base2"}, "spec": {"containers": [{"name": "x", "image": "x:1"}], "volumes": null}}),
    );
    let errs = validate_sidecarset(
        &canary("base2", "NotUpdate"),
        Some(&canary("base", "NotUpdate")),
        &[base, other_base],
        &[],
    );
    check(&errs, &path, "is immutable", "base immutable");
}

#[test]
fn conflicts_with_overlapping_sidecarsets() {
    let other = ss(json!({
        "metadata": {"name": "other"},
        "spec": {
            "initContainers": [{"name": "init", "image": "i:1"}],
            "volumes": [{"name": "certs", "secret": {"secretName": "other"}}],
            "patchPodMetadata": [{"annotations": {"over": "1"}, "patchPolicy": "Overwrite"},
                                 {"annotations": {"merge": "{}"}, "patchPolicy": "MergePatchJson"}],
        }
    }));
    let mine = ss(json!({"spec": {
        "initContainers": [{"name": "init", "image": "i:1"}],
        "patchPodMetadata": [{"annotations": {"over": "2"}, "patchPolicy": "MergePatchJson"},
                             {"annotations": {"merge": "{}", "retain": "x"}, "patchPolicy": "MergePatchJson"}],
    }}));
    let errs = validate_sidecarset(&mine, None, std::slice::from_ref(&other), &[]);
    check(
        &errs,
        "spec.containers[0].name",
        "container envoy already exist in other",
        "container",
    );
    check(
        &errs,
        "spec.initContainers[0].name",
        "container init already exist in other",
        "init container",
    );
    check(
        &errs,
        "spec.volumes[0].name",
        "volume certs is in conflict with sidecarset other",
        "volume",
    );
    check(
        &errs,
        "spec.patchPodMetadata",
        "annotation over is in conflict with sidecarset other",
        "overwrite",
    );
    assert!(
        !errs
            .iter()
            .any(|e| e.to_string().contains("annotation merge")),
        "MergePatchJson twice is fine"
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    // the object itself is skipped
    assert!(validate_sidecarset(&mine, None, std::slice::from_ref(&mine), &[]).is_empty());

    // no overlap: disjoint selectors, or disjoint namespaces
    let disjoint = [
        json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}}),
        json!({"spec": {"namespaceSelector": {"matchLabels": {"env": "dev"}}}}),
        json!({"spec": {"namespace": "ns-b"}}),
    ];
    for (i, patch) in disjoint.into_iter().enumerate() {
        let mut theirs = ss(patch);
        theirs.metadata.name = Some("other".into());
        let mut me = ss(json!({"spec": {"namespaceSelector": {"matchLabels": {"env": "prod"}}}}));
        if i == 2 {
            me = ss(json!({"spec": {"namespace": "ns-a"}}));
        }
        let errs = validate_sidecarset(&me, None, &[theirs], &[]);
        assert!(errs.is_empty(), "case {i}: {errs:#?}");
    }
    // errors elsewhere stop before the conflict check
    let mut broken = mine.clone();
    broken.spec.selector = None;
    let errs = validate_sidecarset(&broken, None, &[other], &[]);
    assert!(errs.iter().all(|e| !e.detail.contains("already exist")));
    assert!(errs.iter().any(|e| e.kind == ErrorKind::Required));
}

#[test]
fn patch_metadata_whitelist() {
    let s = ss(json!({
        "metadata": {"labels": {"team": "mesh"}},
        "spec": {"patchPodMetadata": [{"annotations": {"mesh.io/inject": "1", "other": "2"}}]},
    }));
    let list = r#"{"rules":[{"selector":{"matchLabels":{"team":"mesh"}},"allowedAnnotationKeyExprs":["^mesh\\.io/.*$"]}]}"#;
    let errs = validate_patch_metadata_whitelist(&s, Some(list), false);
    assert_eq!(errs.len(), 1);
    check(
        &errs,
        "spec.patchPodMetadata[0].annotations",
        "sidecarSet patch metadata annotation(other) is not allowed",
        "not matched",
    );
    check(
        &validate_patch_metadata_whitelist(&s, None, false),
        "spec.patchPodMetadata",
        "SidecarSet patch metadata whitelist not found",
        "missing",
    );
    assert!(validate_patch_metadata_whitelist(&s, None, true).is_empty());
    let other_team = r#"{"rules":[{"selector":{"matchLabels":{"team":"x"}},"allowedAnnotationKeyExprs":[".*"]}]}"#;
    check(
        &validate_patch_metadata_whitelist(&s, Some(other_team), false),
        "spec.patchPodMetadata",
        "sidecarSet patch metadata annotation is not allowed",
        "no rule",
    );
    assert!(validate_patch_metadata_whitelist(&s, Some(other_team), true).is_empty());
    assert!(validate_patch_metadata_whitelist(&ss(json!({})), None, false).is_empty());
}
