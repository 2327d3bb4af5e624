//! SidecarSet: manifests round-trip exactly through the Rust types, the generated CRD schema accepts
//! them and refuses malformed ones at the right field, the CRD-level facts match OpenKruise's, and
//! the well-known keys and pod annotation values are spelled as OpenKruise spells them.
#![allow(clippy::unwrap_used)]

mod support;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::sidecarset as keys;
use kruise_crds::sidecarset::*;
use kube::CustomResourceExt;
use serde_json::{Value, json};
use support::*;

fn one_doc(name: &str) -> Value {
    let docs = yaml_docs(&fixture(name));
    assert_eq!(docs.len(), 1, "{name} should hold one document");
    docs.into_iter().next().unwrap()
}

fn hotupgrade() -> Value {
    one_doc("sidecarset-hotupgrade.yaml")
}

fn full() -> Value {
    one_doc("sidecarset-full.yaml")
}

/// A copy of `doc` with `key` removed from the object at JSON pointer `parent`.
fn without(doc: &Value, parent: &str, key: &str) -> Value {
    let mut d = doc.clone();
    let obj = d
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap();
    assert!(obj.remove(key).is_some(), "no {key} under {parent}");
    d
}

/// A copy of `doc` with `key: value` set in the object at JSON pointer `parent`.
fn set(doc: &Value, parent: &str, key: &str, value: Value) -> Value {
    let mut d = doc.clone();
    let obj = d
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap();
    obj.insert(key.to_string(), value);
    d
}

// ----- (1) the user example -----

#[test]
fn user_hotupgrade_example_round_trips() {
    let ss: SidecarSet = assert_round_trip(&hotupgrade());
    assert_eq!(ss.metadata.name.as_deref(), Some("hotupgrade-sidecarset"));
    let sel = ss.spec.selector.as_ref().unwrap();
    assert_eq!(sel.match_labels.as_ref().unwrap()["app"], "hotupgrade");
    let c = &ss.spec.containers.as_ref().unwrap()[0];
    assert_eq!(c.container.name, "sidecar");
    assert_eq!(
        c.container.image.as_deref(),
        Some("openkruise/hotupgrade-sample:sidecarv1")
    );
    assert_eq!(c.container.image_pull_policy.as_deref(), Some("Always"));
    let post_start = c
        .container
        .lifecycle
        .as_ref()
        .unwrap()
        .post_start
        .as_ref()
        .unwrap();
    assert_eq!(
        post_start
            .exec
            .as_ref()
            .unwrap()
            .command
            .as_deref()
            .unwrap(),
        ["/bin/sh", "/migrate.sh"]
    );
    assert!(c.is_hot_upgrade());
    let up = c.upgrade_strategy.as_ref().unwrap();
    assert_eq!(
        up.upgrade_type,
        Some(SidecarContainerUpgradeType::HotUpgrade)
    );
    assert_eq!(
        up.hot_upgrade_empty_image.as_deref(),
        Some("openkruise/hotupgrade-sample:empty")
    );
    assert_eq!(c.pod_inject_policy, None);
    assert!(ss.status.is_none());
}

#[test]
fn user_hotupgrade_example_is_accepted_by_the_schema() {
    assert_schema_accepts(&SidecarSet::crd(), &hotupgrade());
}

// ----- (2) a manifest with every optional field -----

#[test]
fn full_manifest_round_trips() {
    let ss: SidecarSet = assert_round_trip(&full());
    let spec = &ss.spec;
    assert_eq!(spec.namespace.as_deref(), Some("prod"));
    assert!(spec.namespace_selector.is_some());
    assert_eq!(spec.revision_history_limit, Some(5));
    assert_eq!(spec.volumes.as_ref().unwrap().len(), 3);
    assert_eq!(
        spec.image_pull_secrets.as_ref().unwrap()[0].name,
        "registry-creds"
    );

    let inits = spec.init_containers.as_ref().unwrap();
    assert!(!inits[0].is_native_sidecar());
    assert!(inits[1].is_native_sidecar());
    assert_eq!(
        inits[0].pod_inject_policy,
        Some(PodInjectPolicy::AfterAppContainer)
    );
    let rp = inits[1].resources_policy.as_ref().unwrap();
    assert_eq!(rp.target_containers_mode, TargetContainersMode::Max);
    assert_eq!(rp.target_containers_name_regex.as_deref(), Some("^app.*$"));
    let limits = rp.resources_expr.limits.as_ref().unwrap();
    assert_eq!(limits.cpu.as_deref(), Some("max(cpu*30%, 50m)"));

    let cs = spec.containers.as_ref().unwrap();
    let envoy = &cs[0];
    assert!(envoy.is_hot_upgrade());
    assert_eq!(
        envoy.share_volume_policy.as_ref().unwrap().type_,
        Some(ShareVolumePolicyType::Enabled)
    );
    assert_eq!(
        envoy.share_volume_device_policy.as_ref().unwrap().type_,
        Some(ShareVolumePolicyType::Enabled)
    );
    let te = envoy.transfer_env.as_ref().unwrap();
    assert_eq!(te[0].source_container_name.as_deref(), Some("app"));
    assert_eq!(te[0].env_name.as_deref(), Some("APP_ENV"));
    let fr = te[1]
        .source_container_name_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(fr.field_path, "metadata.labels['main-container']");
    assert_eq!(te[1].env_names.as_deref().unwrap(), ["TZ", "LANG"]);
    let metrics = &cs[1];
    assert!(!metrics.is_hot_upgrade());
    assert_eq!(
        metrics.upgrade_strategy,
        Some(SidecarContainerUpgradeStrategy::default())
    );
    let rp = metrics.resources_policy.as_ref().unwrap();
    assert_eq!(rp.target_containers_mode, TargetContainersMode::Sum);
    assert_eq!(rp.target_containers_name_regex, None);

    let us = spec.update_strategy.as_ref().unwrap();
    assert_eq!(us.type_, Some(SidecarSetUpdateStrategyType::NotUpdate));
    assert_eq!(us.paused, Some(false));
    assert_eq!(us.partition, Some(IntOrString::String("10%".into())));
    assert_eq!(us.max_unavailable, Some(IntOrString::Int(2)));
    assert_eq!(us.scatter_strategy.as_ref().unwrap()[0].value, "*");
    let wp = us
        .priority_strategy
        .as_ref()
        .unwrap()
        .weight_priority
        .as_ref()
        .unwrap();
    assert_eq!(wp[0].weight, 50);

    let rev = spec
        .injection_strategy
        .as_ref()
        .unwrap()
        .revision
        .as_ref()
        .unwrap();
    assert_eq!(rev.policy, Some(SidecarSetInjectRevisionPolicy::Partial));
    assert_eq!(rev.custom_version.as_deref(), Some("v1"));
    assert_eq!(rev.revision_name.as_deref(), Some("mesh-7d9f8c6b5"));

    let ppm = spec.patch_pod_metadata.as_ref().unwrap();
    assert_eq!(
        ppm[0].patch_policy,
        Some(SidecarSetPatchPolicyType::MergePatchJson)
    );
    assert_eq!(ppm[1].patch_policy, Some(SidecarSetPatchPolicyType::Retain));

    let st = ss.status.as_ref().unwrap();
    assert_eq!(
        (st.matched_pods, st.updated_pods, st.ready_pods),
        (10, 8, 9)
    );
    assert_eq!(st.updated_ready_pods, Some(7));
    assert_eq!(st.collision_count, Some(1));
    assert_eq!(st.observed_generation, Some(7));
    assert_eq!(st.conditions.as_ref().unwrap()[0].type_, "Ready");
}

#[test]
fn full_manifest_is_accepted_by_the_schema() {
    assert_schema_accepts(&SidecarSet::crd(), &full());
}

#[test]
fn explicitly_empty_lists_and_objects_round_trip() {
    let doc = json!({
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "SidecarSet",
        "metadata": {"name": "empty"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "containers": [{"name": "c", "image": "i", "transferEnv": [], "upgradeStrategy": {}}],
            "initContainers": [],
            "volumes": [],
            "imagePullSecrets": [],
            "patchPodMetadata": [],
            "updateStrategy": {"scatterStrategy": []},
            "injectionStrategy": {}
        },
        "status": {"matchedPods": 0, "updatedPods": 0, "readyPods": 0, "conditions": []}
    });
    assert_round_trip::<SidecarSet>(&doc);
    assert_schema_accepts(&SidecarSet::crd(), &doc);
}

#[test]
fn status_counters_are_always_written() {
    // OpenKruise's matchedPods/updatedPods/readyPods have no omitempty.
    let st = SidecarSetStatus::default();
    assert_eq!(
        serde_json::to_value(&st).unwrap(),
        json!({"matchedPods": 0, "updatedPods": 0, "readyPods": 0})
    );
}

#[test]
fn enum_values_serialize_with_openkruise_spelling() {
    let c = SidecarContainer {
        container: k8s_openapi::api::core::v1::Container {
            name: "s".into(),
            ..Default::default()
        },
        pod_inject_policy: Some(PodInjectPolicy::BeforeAppContainer),
        upgrade_strategy: Some(SidecarContainerUpgradeStrategy {
            upgrade_type: Some(SidecarContainerUpgradeType::ColdUpgrade),
            hot_upgrade_empty_image: None,
        }),
        share_volume_policy: Some(ShareVolumePolicy {
            type_: Some(ShareVolumePolicyType::Disabled),
        }),
        share_volume_device_policy: None,
        transfer_env: None,
        resources_policy: Some(ResourcesPolicy {
            target_containers_mode: TargetContainersMode::Max,
            target_containers_name_regex: None,
            resources_expr: ResourcesExpr::default(),
        }),
    };
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "name": "s",
            "podInjectPolicy": "BeforeAppContainer",
            "upgradeStrategy": {"upgradeType": "ColdUpgrade"},
            "shareVolumePolicy": {"type": "disabled"},
            "resourcesPolicy": {"targetContainersMode": "max", "resourcesExpr": {}}
        })
    );
    let us = SidecarSetUpdateStrategy {
        type_: Some(SidecarSetUpdateStrategyType::RollingUpdate),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&us).unwrap(),
        json!({"type": "RollingUpdate"})
    );
    let p = SidecarSetPatchPodMetadata {
        annotations: None,
        patch_policy: Some(SidecarSetPatchPolicyType::Overwrite),
    };
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({"patchPolicy": "Overwrite"})
    );
    let r = SidecarSetInjectRevision {
        policy: Some(SidecarSetInjectRevisionPolicy::Always),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"policy": "Always"})
    );
}

#[test]
fn unknown_enum_values_do_not_deserialize() {
    let bad = with(
        &hotupgrade(),
        "/spec/containers/0/upgradeStrategy/upgradeType",
        json!("Warm"),
    );
    assert!(serde_json::from_value::<SidecarSet>(bad).is_err());
    let bad = set(
        &hotupgrade(),
        "/spec/containers/0",
        "podInjectPolicy",
        json!("Middle"),
    );
    assert!(serde_json::from_value::<SidecarSet>(bad).is_err());
}

// ----- (3)/(4) schema: what it accepts and what it refuses -----

#[test]
fn schema_accepts_valid_variants() {
    let crd = SidecarSet::crd();
    let base = full();
    let cases: Vec<(&str, Value)> = vec![
        ("/spec/updateStrategy/partition", json!(0)),
        ("/spec/updateStrategy/partition", json!("0%")),
        ("/spec/updateStrategy/partition", json!("100%")),
        ("/spec/updateStrategy/maxUnavailable", json!("25%")),
        ("/spec/updateStrategy/maxUnavailable", json!(0)),
        ("/spec/updateStrategy/type", json!("RollingUpdate")),
        ("/spec/injectionStrategy/revision/policy", json!("Always")),
        ("/spec/patchPodMetadata/0/patchPolicy", json!("Overwrite")),
        (
            "/spec/containers/0/podInjectPolicy",
            json!("AfterAppContainer"),
        ),
        (
            "/spec/containers/0/upgradeStrategy/upgradeType",
            json!("ColdUpgrade"),
        ),
        (
            "/spec/containers/0/shareVolumePolicy/type",
            json!("disabled"),
        ),
        (
            "/spec/containers/1/resourcesPolicy/targetContainersMode",
            json!("max"),
        ),
    ];
    for (path, value) in cases {
        let doc = with(&base, path, value.clone());
        let errs = schema_errors(&crd, &doc);
        assert!(errs.is_empty(), "{path} = {value} refused: {errs:#?}");
    }
    // The container body is kept as sent: fields the CRD does not type are not refused.
    let doc = set(
        &base,
        "/spec/containers/0",
        "someFutureField",
        json!({"x": 1}),
    );
    assert_schema_accepts(&crd, &doc);
    let doc = set(&base, "/spec/volumes/0", "futureSource", json!({"y": true}));
    assert_schema_accepts(&crd, &doc);
}

#[test]
fn schema_refuses_malformed_objects_at_the_right_field() {
    let crd = SidecarSet::crd();
    let base = full();
    let cases: Vec<(&str, Value)> = vec![
        // unknown enum values
        (
            "/spec/containers/0/upgradeStrategy/upgradeType",
            json!("WarmUpgrade"),
        ),
        ("/spec/containers/0/podInjectPolicy", json!("Foo")),
        (
            "/spec/containers/0/shareVolumePolicy/type",
            json!("Enabled"),
        ),
        (
            "/spec/containers/0/shareVolumeDevicePolicy/type",
            json!("on"),
        ),
        (
            "/spec/containers/1/resourcesPolicy/targetContainersMode",
            json!("avg"),
        ),
        (
            "/spec/initContainers/0/upgradeStrategy/upgradeType",
            json!("hot"),
        ),
        ("/spec/initContainers/0/podInjectPolicy", json!("Before")),
        ("/spec/updateStrategy/type", json!("OnDelete")),
        (
            "/spec/injectionStrategy/revision/policy",
            json!("Sometimes"),
        ),
        ("/spec/patchPodMetadata/0/patchPolicy", json!("Merge")),
        // bad percentages and negative numbers
        ("/spec/updateStrategy/partition", json!("10")),
        ("/spec/updateStrategy/partition", json!("abc%")),
        ("/spec/updateStrategy/partition", json!("-5%")),
        ("/spec/updateStrategy/partition", json!(-1)),
        ("/spec/updateStrategy/maxUnavailable", json!("5 %")),
        ("/spec/updateStrategy/maxUnavailable", json!(-2)),
        // wrong types
        ("/spec/containers/0/name", json!(42)),
        ("/spec/containers/0/image", json!(["envoy"])),
        (
            "/spec/containers/0/upgradeStrategy/hotUpgradeEmptyImage",
            json!(1),
        ),
        ("/spec/containers/0/transferEnv/1/envNames", json!("TZ")),
        ("/spec/containers/0/transferEnv", json!({"a": 1})),
        (
            "/spec/containers/1/resourcesPolicy/resourcesExpr/requests/cpu",
            json!(0.5),
        ),
        ("/spec/containers", json!({"name": "envoy"})),
        // resources expressions longer than the webhook's parser accepts (1,024 bytes)
        (
            "/spec/containers/1/resourcesPolicy/resourcesExpr/requests/cpu",
            json!("(".repeat(1025)),
        ),
        (
            "/spec/initContainers/1/resourcesPolicy/resourcesExpr/requests/cpu",
            json!(format!("cpu{}", "+1".repeat(600))),
        ),
        (
            "/spec/initContainers/1/resourcesPolicy/targetContainersNameRegex",
            json!(7),
        ),
        ("/spec/volumes", json!("shared")),
        ("/spec/selector/matchLabels", json!("app=web")),
        ("/spec/selector/matchLabels/app", json!(1)),
        (
            "/spec/namespaceSelector/matchExpressions",
            json!({"key": "a"}),
        ),
        ("/spec/namespace", json!(5)),
        ("/spec/revisionHistoryLimit", json!("10")),
        ("/spec/updateStrategy/paused", json!("yes")),
        ("/spec/updateStrategy/scatterStrategy", json!({"zone": "*"})),
        (
            "/spec/updateStrategy/priorityStrategy/weightPriority/0/weight",
            json!("50"),
        ),
        ("/spec/injectionStrategy/paused", json!(1)),
        ("/spec/injectionStrategy/revision/revisionName", json!(true)),
        ("/spec/imagePullSecrets/0/name", json!(3)),
        ("/spec/patchPodMetadata/0/annotations/oom-score", json!(2)),
        ("/status/matchedPods", json!("3")),
        ("/status/latestRevision", json!(12)),
        ("/status/conditions/0/status", json!(true)),
    ];
    for (path, value) in cases {
        let doc = with(&base, path, value);
        assert_schema_refuses(&crd, &doc, path);
    }
}

#[test]
fn schema_refuses_missing_required_fields() {
    let crd = SidecarSet::crd();
    let base = full();
    let cases = [
        ("/spec/containers/0", "name"),
        ("/spec/initContainers/1", "name"),
        ("/spec/containers/1/resourcesPolicy", "targetContainersMode"),
        ("/spec/containers/1/resourcesPolicy", "resourcesExpr"),
        (
            "/spec/containers/0/transferEnv/1/sourceContainerNameFrom/fieldRef",
            "fieldPath",
        ),
        ("/spec/updateStrategy/scatterStrategy/0", "key"),
        ("/spec/selector/matchExpressions/0", "operator"),
        ("/status/conditions/0", "type"),
    ];
    for (parent, key) in cases {
        let doc = without(&base, parent, key);
        assert_schema_refuses(&crd, &doc, parent);
    }
    assert_schema_refuses(&crd, &without(&base, "", "spec"), "");
}

#[test]
fn container_schema_types_kruise_fields_and_keeps_the_rest() {
    let schema = schema_of(&SidecarSet::crd());
    for list in ["containers", "initContainers"] {
        let items = &schema["properties"]["spec"]["properties"][list]["items"];
        assert_eq!(items["type"], "object", "{list}");
        assert_eq!(
            items["x-kubernetes-preserve-unknown-fields"], true,
            "{list}"
        );
        assert_eq!(items["required"], json!(["name"]), "{list}");
        let p = &items["properties"];
        assert_eq!(p["name"]["type"], "string");
        assert_eq!(p["image"]["type"], "string");
        assert_eq!(
            p["podInjectPolicy"]["enum"],
            json!(["BeforeAppContainer", "AfterAppContainer"])
        );
        assert_eq!(
            p["upgradeStrategy"]["properties"]["upgradeType"]["enum"],
            json!(["ColdUpgrade", "HotUpgrade"])
        );
        assert_eq!(
            p["shareVolumePolicy"]["properties"]["type"]["enum"],
            json!(["enabled", "disabled"])
        );
        assert_eq!(
            p["shareVolumeDevicePolicy"]["properties"]["type"]["enum"],
            json!(["enabled", "disabled"])
        );
        let rp = &p["resourcesPolicy"]["properties"];
        assert_eq!(rp["targetContainersMode"]["enum"], json!(["sum", "max"]));
        assert_eq!(rp["targetContainersNameRegex"]["default"], ".*");
        assert_eq!(p["transferEnv"]["type"], "array");
        // Only name/image are typed among the corev1.Container fields.
        assert!(p.get("lifecycle").is_none() && p.get("env").is_none());
    }
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(
        spec["volumes"]["items"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(
        spec["injectionStrategy"]["properties"]["revision"]["properties"]["policy"]["default"],
        "Always"
    );
    assert!(spec["selector"]["properties"]["matchExpressions"].is_object());
    assert!(spec["namespaceSelector"]["properties"]["matchLabels"].is_object());
}

/// Every schema node the API server sees must be structural: a `type`, or one of the two extensions
/// that stand in for it, and no `anyOf`/`oneOf`/`allOf` left over from the Rust types.
fn assert_structural(node: &Value, at: &str) {
    let obj = node.as_object().unwrap();
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    assert!(
        obj.contains_key("type") || int_or_string || preserve,
        "no type at {at}"
    );
    for k in ["anyOf", "oneOf", "allOf", "$ref"] {
        assert!(!obj.contains_key(k), "{k} at {at}");
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            assert_structural(child, &format!("{at}/{name}"));
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(items, &format!("{at}/items"));
    }
    if let Some(Value::Object(ap)) = obj.get("additionalProperties") {
        assert_structural(&Value::Object(ap.clone()), &format!("{at}/*"));
    }
}

#[test]
fn schema_is_structural() {
    assert_structural(&schema_of(&SidecarSet::crd()), "");
}

// ----- (5) CRD-level facts -----

#[test]
fn crd_facts_match_openkruise() {
    let crd = SidecarSet::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("sidecarsets.apps.kruise.io")
    );
    assert_eq!(crd.spec.group, "apps.kruise.io");
    assert_eq!(crd.spec.scope, "Cluster");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "SidecarSet");
    assert_eq!(names.plural, "sidecarsets");
    assert_eq!(names.singular.as_deref(), Some("sidecarset"));
    // OpenKruise declares no short name for SidecarSet.
    assert!(names.short_names.as_ref().is_none_or(Vec::is_empty));

    assert_eq!(crd.spec.versions.len(), 1);
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    let sub = v.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    assert!(sub.scale.is_none());
    let cols: Vec<(&str, &str, &str)> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("MATCHED", "integer", ".status.matchedPods"),
            ("UPDATED", "integer", ".status.updatedPods"),
            ("READY", "integer", ".status.readyPods"),
            ("AGE", "date", ".metadata.creationTimestamp"),
        ]
    );
    assert_eq!(
        SidecarSet::api_resource().api_version,
        "apps.kruise.io/v1alpha1"
    );
}

#[test]
fn crd_yaml_stays_small() {
    let crds = crds();
    assert_eq!(crds.len(), 1);
    let text = kruise_crds::crdgen::render(&crds[0]).unwrap();
    assert!(
        text.len() < 100_000,
        "SidecarSet CRD is {} bytes",
        text.len()
    );
}

// ----- keys and pod annotation values -----

#[test]
fn keys_are_spelled_as_openkruise_spells_them() {
    let expected = [
        (keys::SIDECARSET_HASH, "kruise.io/sidecarset-hash"),
        (
            keys::SIDECARSET_HASH_WITHOUT_IMAGE,
            "kruise.io/sidecarset-hash-without-image",
        ),
        (
            keys::SIDECARSET_INJECTED_LIST,
            "kruise.io/sidecarset-injected-list",
        ),
        (
            keys::SIDECARSET_INPLACE_UPDATE_STATE,
            "kruise.io/sidecarset-inplace-update-state",
        ),
        (
            keys::SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
            "kruise.io/sidecarset-working-hotupgrade-container",
        ),
        (keys::SIDECARSET_NAME_LABEL, "kruise.io/sidecarset-name"),
        (
            keys::SIDECARSET_CUSTOM_VERSION_LABEL,
            "apps.kruise.io/sidecarset-custom-version",
        ),
        (keys::SIDECARSET_CANARY, "apps.kruise.io/sidecarset-canary"),
        (keys::SIDECARSET_BASE, "apps.kruise.io/sidecarset-base"),
        (keys::SIDECAR_ENV_KEY, "IS_INJECTED"),
        (keys::SIDECARSET_VERSION_ENV, "SIDECARSET_VERSION"),
        (keys::SIDECARSET_VERSION_ALT_ENV, "SIDECARSET_VERSION_ALT"),
        (
            keys::SIDECARSET_UPGRADABLE_CONDITION,
            "SidecarSetUpgradable",
        ),
        (
            keys::REASON_ALL_SIDECARSET_UPGRADABLE,
            "AllSidecarsetUpgradable",
        ),
        (keys::REASON_UPDATE_IMMUTABLE_FIELD, "UpdateImmutableField"),
        (keys::EVENT_NOT_UPGRADABLE_PODS, "NotUpgradablePods"),
        (keys::EVENT_RESET_CONTAINER_SUCCEED, "ResetContainerSucceed"),
        (keys::EVENT_RESET_CONTAINER_FAILED, "ResetContainerFailed"),
        (
            keys::PATCH_POD_METADATA_WHITELIST_KEY,
            "SidecarSet_PatchPodMetadata_WhiteList",
        ),
        (keys::KRUISE_CONFIGURATION_CONFIGMAP, "kruise-configuration"),
        (
            keys::MUTATING_WEBHOOK_PATH,
            "/mutate-apps-kruise-io-sidecarset",
        ),
        (
            keys::VALIDATING_WEBHOOK_PATH,
            "/validate-apps-kruise-io-sidecarset",
        ),
        (keys::POD_MUTATING_WEBHOOK_PATH, "/mutate-pod"),
    ];
    for (got, want) in expected {
        assert_eq!(got, want);
    }
    assert_eq!(
        keys::hot_upgrade_container_names("envoy"),
        ("envoy-1".to_string(), "envoy-2".to_string())
    );
    assert_eq!(
        keys::version_annotation("envoy-1"),
        "version.sidecarset.kruise.io/envoy-1"
    );
    assert_eq!(
        keys::version_alt_annotation("envoy-2"),
        "versionalt.sidecarset.kruise.io/envoy-2"
    );
    assert_eq!(
        keys::version_env_field_path("envoy-2"),
        "metadata.annotations['version.sidecarset.kruise.io/envoy-2']"
    );
    assert_eq!(
        keys::version_alt_env_field_path("envoy-1"),
        "metadata.annotations['versionalt.sidecarset.kruise.io/envoy-1']"
    );
}

#[test]
fn pod_hash_annotation_is_byte_compatible() {
    // The §2.8 shape, as OpenKruise's encoding/json writes it (keys sorted, struct fields in order).
    let text = concat!(
        r#"{"ss-a":{"updateTimestamp":"2021-03-15T09:20:58Z","hash":"h1","sidecarSetName":"ss-a","#,
        r#""sidecarList":["envoy","log-agent"],"controllerRevision":"ss-a-5b9c6d"},"#,
        r#""ss-b":{"updateTimestamp":"2021-03-15T09:21:00Z","hash":"h2","sidecarSetName":"ss-b","#,
        r#""sidecarList":[]}}"#
    );
    let parsed = parse_sidecarset_hash_annotation(text).unwrap();
    assert_eq!(parsed["ss-a"].hash, "h1");
    assert_eq!(parsed["ss-a"].sidecar_list, ["envoy", "log-agent"]);
    assert_eq!(parsed["ss-a"].controller_revision, "ss-a-5b9c6d");
    assert_eq!(parsed["ss-b"].controller_revision, "");
    assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
}

#[test]
fn pod_hash_annotation_reads_the_legacy_form() {
    let parsed = parse_sidecarset_hash_annotation(r#"{"ss-a":"abc","ss-b":"def"}"#).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed["ss-a"].hash, "abc");
    assert_eq!(parsed["ss-b"].hash, "def");
    assert!(parsed["ss-a"].update_timestamp.is_none());
    assert!(parse_sidecarset_hash_annotation("not json").is_err());
    assert!(parse_sidecarset_hash_annotation(r#"{"ss-a":5}"#).is_err());
}

#[test]
fn pod_hash_annotation_tolerates_go_nulls() {
    // A zero metav1.Time and a nil slice are written as null by Go.
    let parsed = parse_sidecarset_hash_annotation(
        r#"{"x":{"updateTimestamp":null,"hash":"h","sidecarSetName":"x","sidecarList":null}}"#,
    )
    .unwrap();
    assert!(parsed["x"].update_timestamp.is_none());
    assert!(parsed["x"].sidecar_list.is_empty());
    assert_eq!(
        serde_json::to_string(&parsed).unwrap(),
        r#"{"x":{"updateTimestamp":null,"hash":"h","sidecarSetName":"x","sidecarList":[]}}"#
    );
}
