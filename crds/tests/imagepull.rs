//! ImagePullJob, ImageListPullJob and NodeImage: round trips of user and OpenKruise-style manifests,
//! what the generated CRD schemas accept and refuse, and the CRD-level facts (scope, names, columns).
#![allow(clippy::unwrap_used)]

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::imagepull::*;
use serde_json::{Value, json};
use support::*;

fn crd_of(kind: &str) -> CustomResourceDefinition {
    kruise_crds::imagepull::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn docs(name: &str) -> Vec<Value> {
    let docs = yaml_docs(&fixture(name));
    assert!(!docs.is_empty(), "{name} has no documents");
    docs
}

// ---------------------------------------------------------------------------------------------
// (1) user examples

#[test]
fn user_examples_round_trip_and_are_accepted() {
    let crd = crd_of("ImagePullJob");
    let docs = docs("imagepulljob-user-examples.yaml");
    assert_eq!(docs.len(), 2);
    for doc in &docs {
        assert_round_trip::<ImagePullJob>(doc);
        assert_schema_accepts(&crd, doc);
    }

    let test_job: ImagePullJob = serde_json::from_value(docs[0].clone()).unwrap();
    assert_eq!(test_job.spec.image, "nginx:latest");
    let t = &test_job.spec.template;
    assert_eq!(t.parallelism, Some(IntOrString::Int(10)));
    let pull = t.pull_policy.as_ref().unwrap();
    assert_eq!(
        (pull.backoff_limit, pull.timeout_seconds),
        (Some(3), Some(300))
    );
    assert_eq!(
        t.completion_policy.type_,
        Some(CompletionPolicyType::Always)
    );
    assert_eq!(t.completion_policy.active_deadline_seconds, Some(1200));
    assert_eq!(t.completion_policy.ttl_seconds_after_finished, Some(300));
    assert!(
        t.selector.is_none() && t.pod_selector.is_none(),
        "no selector means every node"
    );

    let warmup: ImagePullJob = serde_json::from_value(docs[1].clone()).unwrap();
    assert_eq!(warmup.spec.image, "busybox:1.36");
    assert_eq!(
        warmup.spec.template.completion_policy.type_,
        Some(CompletionPolicyType::Never)
    );
    assert_eq!(warmup.spec.template.parallelism, None);
    assert_eq!(warmup.spec.template.image_pull_policy, None);
    assert!(warmup.status.is_none());
}

// ---------------------------------------------------------------------------------------------
// (2) + (3) full manifests

#[test]
fn imagepulljob_full_round_trips_and_is_accepted() {
    let crd = crd_of("ImagePullJob");
    let docs = docs("imagepulljob-full.yaml");
    assert_eq!(docs.len(), 3);
    let jobs: Vec<ImagePullJob> = docs
        .iter()
        .map(|d| {
            assert_schema_accepts(&crd, d);
            assert_round_trip::<ImagePullJob>(d)
        })
        .collect();

    // Typed values land where the controllers will look for them.
    let full = &jobs[0];
    let t = &full.spec.template;
    assert_eq!(
        t.pull_secrets.as_deref(),
        Some(&["regcred".to_owned(), "mirror-cred".to_owned()][..])
    );
    let sel = t.selector.as_ref().unwrap();
    assert_eq!(sel.names, None);
    let ls = sel.label_selector();
    assert_eq!(ls.match_expressions.as_ref().unwrap().len(), 2);
    assert_eq!(
        ls.match_labels.as_ref().unwrap()["node-role.kubernetes.io/worker"],
        ""
    );
    assert_eq!(t.image_pull_policy, Some(ImagePullPolicy::Always));
    assert_eq!(
        t.sandbox_config.as_ref().unwrap().labels.as_ref().unwrap()["app"],
        "web"
    );
    let st = full.status.as_ref().unwrap();
    assert_eq!(
        (st.desired, st.active, st.succeeded, st.failed),
        (4, Some(0), Some(3), Some(1))
    );
    assert_eq!(st.failed_nodes.as_deref(), Some(&["node-c".to_owned()][..]));
    assert_eq!(st.conditions.as_ref().unwrap()[0].type_, "Complete");
    assert_eq!(st.observed_generation, Some(2));

    // Digest-pinned image (decision 3) and a pod selector.
    let pinned = &jobs[1];
    assert!(pinned.spec.image.contains("@sha256:"));
    assert_eq!(
        pinned.spec.template.parallelism,
        Some(IntOrString::String("2".into()))
    );
    let pod_sel = pinned
        .spec
        .template
        .pod_selector
        .as_ref()
        .unwrap()
        .label_selector();
    assert_eq!(pod_sel.match_labels.unwrap()["app"], "web");
    assert_eq!(pinned.status.as_ref().unwrap().completion_time, None);

    // `names: []` (names mode with no node) is not the same as no selector, and survives.
    let paused = &jobs[2];
    assert_eq!(
        paused.spec.template.selector.as_ref().unwrap().names,
        Some(vec![])
    );
    assert_eq!(paused.spec.template.parallelism, Some(IntOrString::Int(0)));
    assert_eq!(
        paused.spec.template.completion_policy,
        CompletionPolicy::default()
    );
    let effective = |j: &ImagePullJob| j.spec.template.completion_policy.effective_type();
    assert_eq!(effective(paused), CompletionPolicyType::Always);
    assert_eq!(effective(&jobs[1]), CompletionPolicyType::Never);
}

#[test]
fn imagelistpulljob_full_round_trips_and_is_accepted() {
    let crd = crd_of("ImageListPullJob");
    let docs = docs("imagelistpulljob-full.yaml");
    assert_eq!(docs.len(), 2);
    let jobs: Vec<ImageListPullJob> = docs
        .iter()
        .map(|d| {
            assert_schema_accepts(&crd, d);
            assert_round_trip::<ImageListPullJob>(d)
        })
        .collect();
    let full = &jobs[0];
    assert_eq!(full.spec.images.len(), 3);
    assert_eq!(
        full.spec
            .template
            .selector
            .as_ref()
            .unwrap()
            .names
            .as_deref(),
        Some(&["node-a".to_owned(), "node-b".to_owned()][..])
    );
    let st = full.status.as_ref().unwrap();
    assert_eq!(
        (st.desired, st.completed, st.succeeded),
        (3, Some(3), Some(2))
    );
    let failed = &st.failed_image_statuses.as_ref().unwrap()[0];
    assert_eq!(failed.image_pull_job.as_deref(), Some("warm-stack-x7k2p"));
    assert_eq!(failed.name.as_deref(), Some("busybox:1.36"));

    // The template an ImageListPullJob carries is exactly what its child ImagePullJobs get.
    let child = ImagePullJobSpec {
        image: full.spec.images[0].clone(),
        template: full.spec.template.clone(),
    };
    let child_json = serde_json::to_value(&child).unwrap();
    let mut expected = docs[0]["spec"].clone();
    expected.as_object_mut().unwrap().remove("images");
    expected["image"] = json!("nginx:1.27");
    assert_eq!(child_json, expected);
}

#[test]
fn nodeimage_full_round_trips_and_is_accepted() {
    let crd = crd_of("NodeImage");
    let docs = docs("nodeimage-full.yaml");
    assert_eq!(docs.len(), 2);
    let nis: Vec<NodeImage> = docs
        .iter()
        .map(|d| {
            assert_schema_accepts(&crd, d);
            assert_round_trip::<NodeImage>(d)
        })
        .collect();

    let ni = &nis[0];
    let images = ni.spec.images.as_ref().unwrap();
    let nginx = &images["nginx"];
    let secrets = nginx.pull_secrets.as_ref().unwrap();
    assert_eq!(
        secrets[0].mode.as_deref(),
        Some(kruise_crds::keys::imagepull::PULL_SECRET_MODE_BATCH)
    );
    assert_eq!(secrets[1].mode, None, "legacy refs carry no mode");
    let tag = &nginx.tags[0];
    assert_eq!(tag.tag, "1.27");
    assert_eq!(tag.version, Some(3));
    assert_eq!(
        tag.pull_policy.as_ref().unwrap().ttl_seconds_after_finished,
        Some(1234)
    );
    assert_eq!(
        tag.owner_references.as_ref().unwrap()[0].kind.as_deref(),
        Some("ImagePullJob")
    );
    assert_eq!(
        nginx.tags[1].version,
        Some(0),
        "version 0 is kept, not dropped"
    );
    assert!(
        images["registry.example.com/team/app"].tags[0]
            .tag
            .starts_with("sha256:")
    );

    let st = ni.status.as_ref().unwrap();
    assert_eq!((st.desired, st.waiting), (3, Some(1)));
    let s = &st.image_statuses.as_ref().unwrap()["nginx"].tags[0];
    assert_eq!(s.phase, ImagePullPhase::Succeeded);
    assert!(s.image_id.as_deref().unwrap().starts_with("nginx@sha256:"));
    assert_eq!(
        st.first_sync_status.as_ref().unwrap().status,
        Some(SyncStatusPhase::Succeeded)
    );

    // `imageID` keeps OpenKruise's spelling on the wire.
    let back = serde_json::to_value(ni).unwrap();
    assert!(
        back.pointer("/status/imageStatuses/nginx/tags/0/imageID")
            .is_some()
    );

    // A fresh NodeImage has an empty spec that stays `{}`.
    assert_eq!(nis[1].spec, NodeImageSpec::default());
    assert_eq!(serde_json::to_value(&nis[1]).unwrap()["spec"], json!({}));
}

#[test]
fn unknown_enum_values_do_not_deserialize() {
    let doc = docs("imagepulljob-user-examples.yaml").remove(0);
    for (path, bad) in [
        ("/spec/completionPolicy/type", json!("Sometimes")),
        ("/spec/parallelism", json!(true)),
    ] {
        let bad_doc = with(&doc, path, bad);
        assert!(
            serde_json::from_value::<ImagePullJob>(bad_doc).is_err(),
            "{path} accepted"
        );
    }
    let mut ipp = doc.clone();
    ipp["spec"]["imagePullPolicy"] = json!("Never");
    assert!(serde_json::from_value::<ImagePullJob>(ipp).is_err());

    let ni = docs("nodeimage-full.yaml").remove(0);
    let bad = with(
        &ni,
        "/status/imageStatuses/nginx/tags/0/phase",
        json!("Done"),
    );
    assert!(serde_json::from_value::<NodeImage>(bad).is_err());
}

// ---------------------------------------------------------------------------------------------
// (4) refusals, table-driven: (JSON pointer to replace, bad value, pointer the error must name)

fn refuse_table(crd: &CustomResourceDefinition, base: &Value, table: &[(&str, Value, &str)]) {
    assert_schema_accepts(crd, base);
    for (path, bad, at) in table {
        let doc = with(base, path, bad.clone());
        assert_schema_refuses(crd, &doc, at);
    }
}

#[test]
fn imagepulljob_schema_refuses_malformed() {
    let crd = crd_of("ImagePullJob");
    let base = docs("imagepulljob-full.yaml").remove(0);
    let table = [
        ("/spec/image", json!(5), "/spec/image"),
        ("/spec/image", json!(""), "/spec/image"),
        ("/spec/parallelism", json!("50%"), "/spec/parallelism"),
        ("/spec/parallelism", json!("two"), "/spec/parallelism"),
        ("/spec/parallelism", json!(-1), "/spec/parallelism"),
        ("/spec/parallelism", json!(1.5), "/spec/parallelism"),
        ("/spec/parallelism", json!(true), "/spec/parallelism"),
        (
            "/spec/completionPolicy/type",
            json!("Sometimes"),
            "/spec/completionPolicy/type",
        ),
        (
            "/spec/completionPolicy/type",
            json!("always"),
            "/spec/completionPolicy/type",
        ),
        (
            "/spec/completionPolicy/activeDeadlineSeconds",
            json!(0),
            "/spec/completionPolicy/activeDeadlineSeconds",
        ),
        (
            "/spec/completionPolicy/activeDeadlineSeconds",
            json!("1h"),
            "/spec/completionPolicy/activeDeadlineSeconds",
        ),
        (
            "/spec/completionPolicy/ttlSecondsAfterFinished",
            json!(-5),
            "/spec/completionPolicy/ttlSecondsAfterFinished",
        ),
        (
            "/spec/completionPolicy",
            json!("Always"),
            "/spec/completionPolicy",
        ),
        (
            "/spec/imagePullPolicy",
            json!("Never"),
            "/spec/imagePullPolicy",
        ),
        (
            "/spec/pullPolicy/timeoutSeconds",
            json!("300"),
            "/spec/pullPolicy/timeoutSeconds",
        ),
        (
            "/spec/pullPolicy/timeoutSeconds",
            json!(0),
            "/spec/pullPolicy/timeoutSeconds",
        ),
        (
            "/spec/pullPolicy/backoffLimit",
            json!(-1),
            "/spec/pullPolicy/backoffLimit",
        ),
        ("/spec/pullSecrets", json!("regcred"), "/spec/pullSecrets"),
        ("/spec/pullSecrets/0", json!(1), "/spec/pullSecrets/0"),
        (
            "/spec/selector/matchLabels",
            json!(["a"]),
            "/spec/selector/matchLabels",
        ),
        (
            "/spec/selector/matchExpressions/0/key",
            json!(7),
            "/spec/selector/matchExpressions/0/key",
        ),
        (
            "/spec/sandboxConfig/labels/app",
            json!(1),
            "/spec/sandboxConfig/labels/app",
        ),
        ("/status/desired", json!("4"), "/status/desired"),
        (
            "/status/failedNodes",
            json!("node-c"),
            "/status/failedNodes",
        ),
        ("/status/startTime", json!("yesterday"), "/status/startTime"),
        (
            "/status/observedGeneration",
            json!("2"),
            "/status/observedGeneration",
        ),
        (
            "/status/conditions/0/status",
            json!(true),
            "/status/conditions/0/status",
        ),
    ];
    refuse_table(&crd, &base, &table);

    // Required fields.
    let mut no_image = base.clone();
    no_image["spec"].as_object_mut().unwrap().remove("image");
    assert_schema_refuses(&crd, &no_image, "/spec");
    let mut no_policy = base.clone();
    no_policy["spec"]
        .as_object_mut()
        .unwrap()
        .remove("completionPolicy");
    assert_schema_refuses(&crd, &no_policy, "/spec");
    let mut no_desired = base.clone();
    no_desired["status"]
        .as_object_mut()
        .unwrap()
        .remove("desired");
    assert_schema_refuses(&crd, &no_desired, "/status");

    // Strings of digits are a count, like OpenKruise's webhook allows; digests are plain images.
    assert_schema_accepts(&crd, &with(&base, "/spec/parallelism", json!("12")));
    let digest = "repo.example.com/a/b@sha256:4f6c7a9e0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80912";
    assert_schema_accepts(&crd, &with(&base, "/spec/image", json!(digest)));
}

#[test]
fn imagelistpulljob_schema_refuses_malformed() {
    let crd = crd_of("ImageListPullJob");
    let base = docs("imagelistpulljob-full.yaml").remove(0);
    let too_many: Vec<String> = (0..=IMAGE_LIST_PULL_JOB_MAX_IMAGES)
        .map(|i| format!("img{i}:1"))
        .collect();
    let table = [
        ("/spec/images", json!([]), "/spec/images"),
        ("/spec/images", json!("nginx"), "/spec/images"),
        ("/spec/images", json!(too_many), "/spec/images"),
        ("/spec/images/0", json!(1), "/spec/images/0"),
        (
            "/spec/completionPolicy/type",
            json!("OnFailure"),
            "/spec/completionPolicy/type",
        ),
        ("/spec/parallelism", json!("10%"), "/spec/parallelism"),
        (
            "/spec/selector/names",
            json!("node-a"),
            "/spec/selector/names",
        ),
        (
            "/spec/imagePullPolicy",
            json!("Sometimes"),
            "/spec/imagePullPolicy",
        ),
        ("/status/completed", json!("3"), "/status/completed"),
        (
            "/status/failedImageStatuses/0/name",
            json!(1),
            "/status/failedImageStatuses/0/name",
        ),
    ];
    refuse_table(&crd, &base, &table);

    let max: Vec<String> = (0..IMAGE_LIST_PULL_JOB_MAX_IMAGES)
        .map(|i| format!("img{i}:1"))
        .collect();
    assert_schema_accepts(&crd, &with(&base, "/spec/images", json!(max)));
    let mut no_images = base.clone();
    no_images["spec"].as_object_mut().unwrap().remove("images");
    assert_schema_refuses(&crd, &no_images, "/spec");
}

#[test]
fn nodeimage_schema_refuses_malformed() {
    let crd = crd_of("NodeImage");
    let base = docs("nodeimage-full.yaml").remove(0);
    let too_many: serde_json::Map<String, Value> = (0..=NODE_IMAGE_MAX_IMAGES)
        .map(|i| (format!("img{i}"), json!({"tags": []})))
        .collect();
    let tag = "/spec/images/nginx/tags/0";
    let status_tag = "/status/imageStatuses/nginx/tags/0";
    let table = [
        ("/spec/images", json!(too_many), "/spec/images".to_owned()),
        (
            "/spec/images/nginx/tags",
            json!({"tag": "x"}),
            "/spec/images/nginx/tags".to_owned(),
        ),
        (
            "/spec/images/nginx/pullSecrets/0/name",
            json!(1),
            "/spec/images/nginx/pullSecrets/0/name".to_owned(),
        ),
        (&format!("{tag}/tag"), json!(""), format!("{tag}/tag")),
        (
            &format!("{tag}/version"),
            json!(-1),
            format!("{tag}/version"),
        ),
        (
            &format!("{tag}/imagePullPolicy"),
            json!("Never"),
            format!("{tag}/imagePullPolicy"),
        ),
        (
            &format!("{tag}/createdAt"),
            json!(12),
            format!("{tag}/createdAt"),
        ),
        (
            &format!("{tag}/pullPolicy/timeoutSeconds"),
            json!(0),
            format!("{tag}/pullPolicy/timeoutSeconds"),
        ),
        (
            &format!("{tag}/pullPolicy/ttlSecondsAfterFinished"),
            json!(-1),
            format!("{tag}/pullPolicy/ttlSecondsAfterFinished"),
        ),
        (
            &format!("{tag}/ownerReferences/0/uid"),
            json!(5),
            format!("{tag}/ownerReferences/0/uid"),
        ),
        (
            &format!("{status_tag}/phase"),
            json!("Done"),
            format!("{status_tag}/phase"),
        ),
        (
            &format!("{status_tag}/progress"),
            json!(101),
            format!("{status_tag}/progress"),
        ),
        (
            &format!("{status_tag}/progress"),
            json!(-1),
            format!("{status_tag}/progress"),
        ),
        (
            "/status/firstSyncStatus/status",
            json!("Unknown"),
            "/status/firstSyncStatus/status".to_owned(),
        ),
        ("/status/waiting", json!("1"), "/status/waiting".to_owned()),
    ];
    assert_schema_accepts(&crd, &base);
    for (path, bad, at) in &table {
        assert_schema_refuses(&crd, &with(&base, path, bad.clone()), at);
    }

    let max: serde_json::Map<String, Value> = (0..NODE_IMAGE_MAX_IMAGES)
        .map(|i| (format!("img{i}"), json!({"tags": []})))
        .collect();
    assert_schema_accepts(&crd, &with(&base, "/spec/images", json!(max)));
    let mut no_tags = base.clone();
    no_tags["spec"]["images"]["nginx"]
        .as_object_mut()
        .unwrap()
        .remove("tags");
    assert_schema_refuses(&crd, &no_tags, "/spec/images/nginx");
    let mut no_tag = base.clone();
    no_tag["spec"]["images"]["nginx"]["tags"][0]
        .as_object_mut()
        .unwrap()
        .remove("tag");
    assert_schema_refuses(&crd, &no_tag, tag);
    let mut no_phase = base.clone();
    no_phase["status"]["imageStatuses"]["nginx"]["tags"][0]
        .as_object_mut()
        .unwrap()
        .remove("phase");
    assert_schema_refuses(&crd, &no_phase, status_tag);
}

// ---------------------------------------------------------------------------------------------
// (5) CRD-level facts

struct Facts {
    kind: &'static str,
    plural: &'static str,
    scope: &'static str,
    columns: &'static [(&'static str, &'static str, &'static str)],
}

const FACTS: [Facts; 3] = [
    Facts {
        kind: "ImagePullJob",
        plural: "imagepulljobs",
        scope: "Namespaced",
        columns: &[
            ("TOTAL", ".status.desired", "integer"),
            ("ACTIVE", ".status.active", "integer"),
            ("SUCCEED", ".status.succeeded", "integer"),
            ("FAILED", ".status.failed", "integer"),
            ("AGE", ".metadata.creationTimestamp", "date"),
            ("MESSAGE", ".status.message", "string"),
        ],
    },
    Facts {
        kind: "ImageListPullJob",
        plural: "imagelistpulljobs",
        scope: "Namespaced",
        columns: &[
            ("TOTAL", ".status.desired", "integer"),
            ("SUCCEEDED", ".status.succeeded", "integer"),
            ("COMPLETED", ".status.completed", "integer"),
            ("AGE", ".metadata.creationTimestamp", "date"),
        ],
    },
    Facts {
        kind: "NodeImage",
        plural: "nodeimages",
        scope: "Cluster",
        columns: &[
            ("DESIRED", ".status.desired", "integer"),
            ("PULLING", ".status.pulling", "integer"),
            ("SUCCEED", ".status.succeeded", "integer"),
            ("FAILED", ".status.failed", "integer"),
            ("AGE", ".metadata.creationTimestamp", "date"),
        ],
    },
];

#[test]
fn crd_facts_match_openkruise() {
    let crds = kruise_crds::imagepull::crds();
    assert_eq!(crds.len(), 3);
    for f in &FACTS {
        let crd = crd_of(f.kind);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{}.apps.kruise.io", f.plural).as_str())
        );
        assert_eq!(crd.spec.group, "apps.kruise.io");
        assert_eq!(crd.spec.names.plural, f.plural);
        assert_eq!(
            crd.spec.names.singular.as_deref(),
            Some(f.kind.to_lowercase().as_str())
        );
        assert_eq!(crd.spec.scope, f.scope, "{}", f.kind);
        // OpenKruise declares no short names for these kinds; inventing some could clash with
        // other CRDs in the cluster.
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_none_or(|s| s.is_empty()),
            "{}",
            f.kind
        );

        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!(
            (v.name.as_str(), v.served, v.storage),
            ("v1alpha1", true, true)
        );
        let sub = v.subresources.as_ref().unwrap();
        assert!(sub.status.is_some(), "{} has no status subresource", f.kind);
        assert!(
            sub.scale.is_none(),
            "{} must not have a scale subresource",
            f.kind
        );

        let cols: Vec<(&str, &str, &str)> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.json_path.as_str(), c.type_.as_str()))
            .collect();
        assert_eq!(cols, f.columns, "{} printer columns", f.kind);
    }
}

#[test]
fn every_status_has_conditions_and_observed_generation() {
    for f in &FACTS {
        let schema = schema_of(&crd_of(f.kind));
        let status = &schema["properties"]["status"]["properties"];
        assert_eq!(status["conditions"]["type"], "array", "{}", f.kind);
        assert_eq!(
            status["conditions"]["items"]["required"],
            json!(["status", "type"]),
            "{}",
            f.kind
        );
        assert_eq!(
            status["observedGeneration"]["type"], "integer",
            "{}",
            f.kind
        );
        assert_eq!(
            schema["properties"]["status"]["required"],
            json!(["desired"]),
            "{}",
            f.kind
        );
    }
}

/// Walks every sub-schema with its location.
fn walk<'a>(at: String, s: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    out.push((at.clone(), s));
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(format!("{at}.{k}"), v, out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = s.get(key).filter(|v| v.is_object()) {
            walk(format!("{at}.{key}"), v, out);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        for (i, v) in s
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            walk(format!("{at}.{key}[{i}]"), v, out);
        }
    }
}

#[test]
fn schemas_are_structural_and_small() {
    let int_or_string_any_of = json!([{"type": "integer"}, {"type": "string"}]);
    for crd in kruise_crds::imagepull::crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = schema_of(&crd);
        let mut nodes = Vec::new();
        walk(String::new(), &schema, &mut nodes);
        let mut int_or_string = 0;
        for (at, node) in nodes {
            let in_branch = at.ends_with(']');
            assert!(node.get("$ref").is_none(), "{kind}{at}: $ref");
            assert!(
                node.get("uniqueItems").is_none(),
                "{kind}{at}: uniqueItems is not allowed"
            );
            if node.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
                int_or_string += 1;
                // The only anyOf-with-types shape the API server accepts.
                assert_eq!(node["anyOf"], int_or_string_any_of, "{kind}{at}");
            } else if node.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
                && !in_branch
            {
                assert!(node.get("type").is_some(), "{kind}{at}: no type");
            }
            if in_branch {
                assert!(
                    node.get("description").is_none(),
                    "{kind}{at}: description in a branch"
                );
            }
        }
        let expected = if kind == "NodeImage" { 0 } else { 1 };
        assert_eq!(
            int_or_string, expected,
            "{kind}: parallelism is the only int-or-string"
        );

        let yaml = kruise_crds::crdgen::render(&crd).unwrap();
        assert!(yaml.len() < 100_000, "{kind} CRD is {} bytes", yaml.len());
    }
}

#[test]
fn descriptions_are_present_on_kruise_fields() {
    // Every kruise-specific property carries a description (it becomes `kubectl explain` text).
    for crd in kruise_crds::imagepull::crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = schema_of(&crd);
        let spec = &schema["properties"]["spec"];
        let status = &schema["properties"]["status"];
        for (part, s) in [("spec", spec), ("status", status)] {
            for (name, prop) in s["properties"].as_object().unwrap() {
                assert!(
                    prop.get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| !d.is_empty()),
                    "{kind}.{part}.{name} has no description"
                );
            }
        }
    }
}
