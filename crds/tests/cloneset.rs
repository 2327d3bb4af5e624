//! CloneSet API: fixtures round-trip exactly, the generated CRD accepts them and refuses malformed
//! objects at the right field, and the CRD carries OpenKruise's names, columns and subresources.
#![allow(clippy::unwrap_used)]

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::cloneset as keys;
use kruise_crds::{CloneSet, CloneSetSpec, CloneSetUpdateStrategyType};
use kube::CustomResourceExt;
use serde_json::{Value, json};
use support::*;

fn crd() -> CustomResourceDefinition {
    CloneSet::crd()
}

fn user_example() -> Value {
    yaml_docs(&fixture("cloneset-user-example.yaml")).remove(0)
}

fn full() -> Value {
    yaml_docs(&fixture("cloneset-full.yaml")).remove(0)
}

#[test]
fn user_example_round_trips_and_reads_as_v1alpha1() {
    let doc = user_example();
    let cs: CloneSet = assert_round_trip(&doc);
    assert_eq!(cs.spec.replicas, Some(5));
    let us = cs.spec.update_strategy.as_ref().unwrap();
    assert_eq!(
        us.type_,
        Some(CloneSetUpdateStrategyType::InPlaceIfPossible)
    );
    assert_eq!(us.partition, Some(IntOrString::Int(2)));
    assert_eq!(us.max_unavailable, Some(IntOrString::String("20%".into())));
    assert_eq!(us.max_surge, Some(IntOrString::Int(1)));
    let containers = &cs.spec.template.spec.as_ref().unwrap().containers;
    assert_eq!(containers[0].image.as_deref(), Some("nginx:alpine"));
    assert_schema_accepts(&crd(), &doc);
}

#[test]
fn full_manifest_round_trips_with_every_field() {
    let doc = full();
    let cs: CloneSet = assert_round_trip(&doc);
    let spec = &cs.spec;
    let scale = spec.scale_strategy.as_ref().unwrap();
    assert_eq!(scale.disable_pvc_reuse, Some(true));
    assert_eq!(scale.pods_to_delete.as_ref().unwrap().len(), 2);
    let us = spec.update_strategy.as_ref().unwrap();
    assert_eq!(us.type_, Some(CloneSetUpdateStrategyType::InPlaceOnly));
    assert_eq!(us.partition, Some(IntOrString::String("30%".into())));
    assert_eq!(
        us.in_place_update_strategy
            .as_ref()
            .unwrap()
            .grace_period_seconds,
        Some(10)
    );
    assert_eq!(us.scatter_strategy.as_ref().unwrap()[0].value, "*");
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    assert_eq!(
        spec.volume_claim_templates.as_ref().unwrap()[0]
            .metadata
            .name
            .as_deref(),
        Some("data")
    );
    let lifecycle = spec.lifecycle.as_ref().unwrap();
    assert_eq!(
        lifecycle.pre_delete.as_ref().unwrap().mark_pod_not_ready,
        Some(true)
    );

    let status = cs.status.as_ref().unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (10, 9, 8)
    );
    assert_eq!(status.updated_available_replicas, Some(5));
    assert_eq!(status.collision_count, Some(1));
    let progressing = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == keys::CONDITION_PROGRESSING)
        .unwrap();
    assert_eq!(progressing.reason.as_deref(), Some(keys::REASON_UPDATED));
    assert_eq!(progressing.message.as_deref(), Some(keys::MESSAGE_UPDATED));
    assert!(progressing.last_update_time.is_some());

    // The v1alpha1 annotations and label the spec moves into fields in v1beta1 stay readable.
    let ann = cs.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[keys::IMAGE_PREDOWNLOAD_PARALLELISM], "5");
    assert_eq!(ann[keys::IMAGE_PREDOWNLOAD_TIMEOUT_SECONDS], "600");
    assert_eq!(ann[keys::IMAGE_PREDOWNLOAD_MIN_UPDATED_READY_PODS], "2");
    let labels = cs.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[keys::SCALING_EXCLUDE_PREPARING_DELETE_LABEL], "true");

    assert_schema_accepts(&crd(), &doc);
}

#[test]
fn documentation_examples_round_trip_and_are_accepted() {
    let docs = yaml_docs(&fixture("cloneset-docs-examples.yaml"));
    assert_eq!(docs.len(), 4);
    for doc in &docs {
        let _: CloneSet = assert_round_trip(doc);
        assert_schema_accepts(&crd(), doc);
    }
}

#[test]
fn explicitly_empty_lists_and_every_strategy_type_round_trip() {
    let base = user_example();
    let mut empty = base.clone();
    empty["spec"]["updateStrategy"]["scatterStrategy"] = json!([]);
    empty["spec"]["scaleStrategy"] = json!({ "podsToDelete": [] });
    empty["spec"]["volumeClaimTemplates"] = json!([]);
    let _: CloneSet = assert_round_trip(&empty);
    assert_schema_accepts(&crd(), &empty);

    for t in ["ReCreate", "InPlaceIfPossible", "InPlaceOnly", "OnDelete"] {
        let doc = with(&base, "/spec/updateStrategy/type", json!(t));
        let cs: CloneSet = assert_round_trip(&doc);
        assert_eq!(cs.spec.update_strategy.unwrap().type_.unwrap().as_str(), t);
        assert_schema_accepts(&crd(), &doc);
    }
}

#[test]
fn unknown_strategy_type_does_not_deserialize() {
    let doc = with(
        &user_example(),
        "/spec/updateStrategy/type",
        json!("RollingUpdate"),
    );
    assert!(serde_json::from_value::<CloneSet>(doc).is_err());
}

#[test]
fn minimal_object_serializes_without_empty_fields() {
    let cs = CloneSet::new("m", CloneSetSpec::default());
    let v = serde_json::to_value(&cs).unwrap();
    let spec = v["spec"].as_object().unwrap();
    let mut keys: Vec<_> = spec.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["selector", "template"]);
    assert!(v.get("status").is_none());
}

#[test]
fn schema_refuses_malformed_objects_at_the_field() {
    let base = full();
    let cases: &[(&str, Value)] = &[
        ("/spec/replicas", json!("five")),
        ("/spec/replicas", json!(-1)),
        ("/spec/minReadySeconds", json!("15")),
        ("/spec/revisionHistoryLimit", json!(true)),
        ("/spec/progressDeadlineSeconds", json!(-5)),
        ("/spec/template", json!("nginx")),
        (
            "/spec/volumeClaimTemplates",
            json!({ "metadata": { "name": "data" } }),
        ),
        ("/spec/selector/matchLabels/app", json!(5)),
        ("/spec/selector/matchExpressions", json!("tier in (a)")),
        ("/spec/scaleStrategy/podsToDelete", json!("web-x7k2p")),
        ("/spec/scaleStrategy/disablePVCReuse", json!("true")),
        ("/spec/scaleStrategy/maxUnavailable", json!("2")),
        ("/spec/updateStrategy/type", json!("RollingUpdate")),
        ("/spec/updateStrategy/type", json!("Recreate")),
        ("/spec/updateStrategy/type", json!("")),
        ("/spec/updateStrategy/partition", json!(-1)),
        ("/spec/updateStrategy/partition", json!("-10%")),
        ("/spec/updateStrategy/partition", json!("30")),
        ("/spec/updateStrategy/maxUnavailable", json!("20")),
        ("/spec/updateStrategy/maxUnavailable", json!("abc%")),
        ("/spec/updateStrategy/maxUnavailable", json!("20.5%")),
        ("/spec/updateStrategy/maxSurge", json!("1.5%")),
        ("/spec/updateStrategy/maxSurge", json!("% 10")),
        ("/spec/updateStrategy/paused", json!("yes")),
        (
            "/spec/updateStrategy/priorityStrategy/weightPriority/0/weight",
            json!("high"),
        ),
        (
            "/spec/updateStrategy/priorityStrategy/orderPriority",
            json!({ "orderedKey": "batch" }),
        ),
        ("/spec/updateStrategy/scatterStrategy/0/value", json!(1)),
        (
            "/spec/updateStrategy/inPlaceUpdateStrategy/gracePeriodSeconds",
            json!("10s"),
        ),
        ("/spec/lifecycle/preDelete/markPodNotReady", json!("yes")),
        ("/spec/lifecycle/inPlaceUpdate/labelsHandler", json!(["a"])),
        ("/spec/lifecycle/preNormal/finalizersHandler/0", json!(7)),
        ("/status/replicas", json!("10")),
        ("/status/updatedAvailableReplicas", json!(1.5)),
        ("/status/labelSelector", json!({ "app": "web" })),
        ("/status/collisionCount", json!("1")),
        ("/status/conditions/0/status", json!(true)),
    ];
    for (path, value) in cases {
        let doc = with(&base, path, value.clone());
        assert_schema_refuses(&crd(), &doc, path);
    }
}

#[test]
fn schema_refuses_missing_required_fields() {
    let base = full();
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for (parent, field) in [
        ("/spec", "selector"),
        ("/spec", "template"),
        ("/status", "replicas"),
        ("/status", "readyReplicas"),
        ("/status", "availableReplicas"),
        ("/status", "updatedReplicas"),
        ("/status", "updatedReadyReplicas"),
        ("/status/conditions/0", "type"),
        ("/spec/updateStrategy/scatterStrategy/0", "key"),
        (
            "/spec/updateStrategy/priorityStrategy/weightPriority/0",
            "matchSelector",
        ),
        (
            "/spec/updateStrategy/priorityStrategy/orderPriority/0",
            "orderedKey",
        ),
        ("/spec/selector/matchExpressions/0", "operator"),
    ] {
        let mut doc = base.clone();
        doc.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(field)
            .unwrap();
        cases.push((doc, parent));
    }
    for (doc, parent) in &cases {
        let errs = schema_errors(&crd(), doc);
        assert!(
            errs.iter()
                .any(|e| e.ends_with(&format!(" at {parent}")) && e.contains("required")),
            "expected a missing-field error at {parent}, got {errs:#?}"
        );
    }
    let no_spec = {
        let mut d = base.clone();
        d.as_object_mut().unwrap().remove("spec");
        d
    };
    assert!(!schema_errors(&crd(), &no_spec).is_empty());
}

#[test]
fn schema_accepts_valid_int_or_percent_forms() {
    let base = user_example();
    for (path, value) in [
        ("/spec/updateStrategy/partition", json!(0)),
        ("/spec/updateStrategy/partition", json!("0%")),
        ("/spec/updateStrategy/partition", json!("100%")),
        ("/spec/updateStrategy/maxUnavailable", json!(0)),
        ("/spec/updateStrategy/maxUnavailable", json!("5%")),
        ("/spec/updateStrategy/maxSurge", json!("25%")),
    ] {
        assert_schema_accepts(&crd(), &with(&base, path, value));
    }
    let mut doc = base;
    doc["spec"]["scaleStrategy"] = json!({ "maxUnavailable": "50%" });
    assert_schema_accepts(&crd(), &doc);
}

#[test]
fn template_and_claim_templates_are_kept_as_sent() {
    let s = schema_of(&crd());
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(
        spec["template"]["x-kubernetes-preserve-unknown-fields"],
        json!(true)
    );
    assert_eq!(spec["template"]["type"], json!("object"));
    assert_eq!(spec["volumeClaimTemplates"]["type"], json!("array"));
    assert_eq!(
        spec["volumeClaimTemplates"]["items"]["x-kubernetes-preserve-unknown-fields"],
        json!(true)
    );
    // Kruise-specific parts keep a full schema.
    assert!(spec["updateStrategy"]["properties"]["priorityStrategy"]["properties"].is_object());
    assert!(spec["selector"]["properties"]["matchExpressions"].is_object());
    let mut required: Vec<_> = s["properties"]["spec"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    required.sort();
    assert_eq!(required, ["selector", "template"]);
    assert_eq!(
        spec["updateStrategy"]["properties"]["type"]["enum"],
        json!(["ReCreate", "InPlaceIfPossible", "InPlaceOnly", "OnDelete"])
    );
}

#[test]
fn crd_names_scope_and_versions() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("clonesets.apps.kruise.io")
    );
    assert_eq!(crd.spec.group, "apps.kruise.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "CloneSet");
    assert_eq!(crd.spec.names.plural, "clonesets");
    assert_eq!(crd.spec.names.singular.as_deref(), Some("cloneset"));
    assert_eq!(crd.spec.names.short_names, Some(vec!["clone".to_string()]));
    assert_eq!(crd.spec.versions.len(), 1);
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    assert_eq!(kruise_crds::cloneset::crds(), vec![crd.clone()]);
}

#[test]
fn crd_subresources_status_and_scale() {
    let crd = crd();
    let sub = crd.spec.versions[0].subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.labelSelector")
    );
}

#[test]
fn crd_printer_columns_match_openkruise() {
    let crd = crd();
    let cols = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap();
    let got: Vec<(&str, &str, &str, i32)> = cols
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.type_.as_str(),
                c.json_path.as_str(),
                c.priority.unwrap_or(0),
            )
        })
        .collect();
    let want = vec![
        ("DESIRED", "integer", ".spec.replicas", 0),
        ("UPDATED", "integer", ".status.updatedReplicas", 0),
        (
            "UPDATED_READY",
            "integer",
            ".status.updatedReadyReplicas",
            0,
        ),
        (
            "UPDATED_AVAILABLE",
            "integer",
            ".status.updatedAvailableReplicas",
            0,
        ),
        ("READY", "integer", ".status.readyReplicas", 0),
        ("TOTAL", "integer", ".status.replicas", 0),
        ("AGE", "date", ".metadata.creationTimestamp", 0),
        (
            "CONTAINERS",
            "string",
            ".spec.template.spec.containers[*].name",
            1,
        ),
        (
            "IMAGES",
            "string",
            ".spec.template.spec.containers[*].image",
            1,
        ),
        ("SELECTOR", "string", ".status.labelSelector", 1),
    ];
    assert_eq!(got, want);
}

#[test]
fn crd_yaml_stays_small() {
    let text = kruise_crds::crdgen::render(&crd()).unwrap();
    assert!(text.len() < 100_000, "CloneSet CRD is {} bytes", text.len());
}

#[test]
fn well_known_keys_are_spelled_as_openkruise() {
    assert_eq!(
        keys::INSTANCE_ID_LABEL,
        "apps.kruise.io/cloneset-instance-id"
    );
    assert_eq!(
        keys::SCALING_EXCLUDE_PREPARING_DELETE_LABEL,
        "apps.kruise.io/cloneset-scaling-exclude-preparing-delete"
    );
    assert_eq!(
        keys::IMAGE_PREDOWNLOAD_PARALLELISM,
        "apps.kruise.io/image-predownload-parallelism"
    );
    assert_eq!(
        keys::IMAGE_PREDOWNLOAD_TIMEOUT_SECONDS,
        "apps.kruise.io/image-predownload-timeout-seconds"
    );
    assert_eq!(
        keys::IMAGE_PREDOWNLOAD_MIN_UPDATED_READY_PODS,
        "apps.kruise.io/image-predownload-min-updated-ready-pods"
    );
    assert_eq!(
        keys::POD_DELETION_COST_ANNOTATION,
        "controller.kubernetes.io/pod-deletion-cost"
    );
    assert_eq!(keys::KRUISE_POD_READY, "KruisePodReady");
    assert_eq!(
        (
            keys::CONDITION_FAILED_SCALE,
            keys::CONDITION_FAILED_UPDATE,
            keys::CONDITION_PROGRESSING
        ),
        ("FailedScale", "FailedUpdate", "Progressing")
    );
    assert_eq!(
        keys::progress_deadline_exceeded_message("web-5d8f9c7b6c"),
        "CloneSet revision web-5d8f9c7b6c has timed out progressing"
    );
    assert_eq!(CloneSetSpec::DEFAULT_MAX_UNAVAILABLE, "20%");
    assert_eq!(CloneSetSpec::DEFAULT_REPLICAS, 1);
    assert_eq!(CloneSetSpec::DEFAULT_REVISION_HISTORY_LIMIT, 10);
}

#[test]
fn claim_templates_are_written_without_type_meta() {
    let mut doc = user_example();
    doc["spec"]["volumeClaimTemplates"] = json!([{
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
    }]);
    assert_schema_accepts(&crd(), &doc);
    let cs: CloneSet = serde_json::from_value(doc.clone()).unwrap();
    let back = serde_json::to_value(&cs).unwrap();
    let vct = &back["spec"]["volumeClaimTemplates"][0];
    assert!(
        vct.get("apiVersion").is_none() && vct.get("kind").is_none(),
        "{vct}"
    );
    assert_eq!(vct["metadata"]["name"], "data");
    assert_eq!(vct["spec"]["resources"]["requests"]["storage"], "1Gi");
}
