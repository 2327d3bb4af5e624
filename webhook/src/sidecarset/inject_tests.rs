//! Table and scenario tests of pod injection (spec §2), built from JSON so each case reads like the
//! manifests users write.

use super::defaults::default_sidecarset;
use super::hash::{hash, hash_without_image};
use super::inject::{InjectError, InjectInput, InjectOutcome, inject};
use super::matching::Labels;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::keys::sidecarset::*;
use kruise_crds::sidecarset::SidecarSet;
use serde_json::{Value, json};

const NOW: &str = "2021-03-15T09:20:58Z";

fn pod(v: Value) -> Pod {
    let mut base = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "app:1"}]}
    });
    json_patch::merge(&mut base, &v);
    serde_json::from_value(base).unwrap()
}

/// A defaulted SidecarSet selecting `app=web` (merged with `v`).
fn ss(name: &str, v: Value) -> SidecarSet {
    let mut base = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "web"}}}
    });
    json_patch::merge(&mut base, &v);
    let mut s: SidecarSet = serde_json::from_value(base).unwrap();
    default_sidecarset(&mut s);
    s
}

fn sidecar(name: &str) -> Value {
    json!({"name": name, "image": format!("{name}:1")})
}

struct Run {
    sets: Vec<SidecarSet>,
    ns_labels: Labels,
    revisions: Vec<ControllerRevision>,
    roll: f64,
    sort: bool,
}

impl Run {
    fn new(sets: Vec<SidecarSet>) -> Self {
        Self {
            sets,
            ns_labels: Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), "team".to_owned())]),
            revisions: Vec::new(),
            roll: 0.5,
            sort: false,
        }
    }
    fn try_on(&self, p: &Pod) -> Result<InjectOutcome, InjectError> {
        inject(&InjectInput {
            pod: p,
            sidecar_sets: &self.sets,
            namespace_labels: &self.ns_labels,
            revisions: &self.revisions,
            now: NOW,
            partial_roll: self.roll,
            sort_containers_by_name: self.sort,
        })
    }
    fn on(&self, p: &Pod) -> InjectOutcome {
        let out = self.try_on(p).unwrap();
        // the patch turns the input into the output
        let mut doc = serde_json::to_value(p).unwrap();
        json_patch::patch(&mut doc, &out.patch).unwrap();
        assert_eq!(doc, serde_json::to_value(&out.pod).unwrap());
        out
    }
}

fn names(list: &[k8s_openapi::api::core::v1::Container]) -> Vec<&str> {
    list.iter().map(|c| c.name.as_str()).collect()
}

fn containers(p: &Pod) -> Vec<&str> {
    names(&p.spec.as_ref().unwrap().containers)
}

fn init_containers(p: &Pod) -> Vec<&str> {
    names(
        p.spec
            .as_ref()
            .unwrap()
            .init_containers
            .as_deref()
            .unwrap_or_default(),
    )
}

fn ann<'a>(p: &'a Pod, k: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(k))
        .map(String::as_str)
}

fn container<'a>(p: &'a Pod, name: &str) -> &'a k8s_openapi::api::core::v1::Container {
    let spec = p.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
}

fn env(p: &Pod, name: &str) -> Value {
    serde_json::to_value(&container(p, name).env).unwrap()
}

#[test]
fn unselected_pods_are_unchanged() {
    let s = ss("s1", json!({"spec": {"containers": [sidecar("envoy")]}}));
    let cases = [
        (
            "labels do not match",
            pod(json!({"metadata": {"labels": {"app": "db"}}})),
        ),
        (
            "pod succeeded",
            pod(json!({"status": {"phase": "Succeeded"}})),
        ),
        (
            "pod deleting",
            pod(json!({"metadata": {"deletionTimestamp": NOW}})),
        ),
    ];
    for (what, p) in cases {
        let out = Run::new(vec![s.clone()]).on(&p);
        assert!(out.patch.0.is_empty(), "{what}");
        assert!(out.injected.is_empty(), "{what}");
        assert_eq!(out.pod, p, "{what}");
    }
    // an empty selector matches nothing
    let mut empty = s.clone();
    empty.spec.selector = Some(Default::default());
    let p = pod(json!({}));
    assert!(Run::new(vec![empty]).on(&p).patch.0.is_empty());
    // no SidecarSets at all
    assert!(Run::new(vec![]).on(&p).patch.0.is_empty());
}

#[test]
fn container_order_and_annotations() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [
            sidecar("before"),
            {"name": "after", "image": "after:1", "podInjectPolicy": "AfterAppContainer"},
        ]}}),
    );
    let out = Run::new(vec![s.clone()]).on(&pod(json!({})));
    assert_eq!(out.injected, vec!["s1"]);
    assert_eq!(containers(&out.pod), vec!["before", "main", "after"]);
    assert_eq!(
        ann(&out.pod, SIDECARSET_HASH).unwrap(),
        format!(
            r#"{{"s1":{{"updateTimestamp":"{NOW}","hash":"{}","sidecarSetName":"s1","sidecarList":["after","before"]}}}}"#,
            hash(&s)
        )
    );
    assert_eq!(
        ann(&out.pod, SIDECARSET_HASH_WITHOUT_IMAGE).unwrap(),
        format!(
            r#"{{"s1":{{"updateTimestamp":"{NOW}","hash":"{}","sidecarSetName":"s1","sidecarList":["after","before"]}}}}"#,
            hash_without_image(&s)
        )
    );
    assert_eq!(ann(&out.pod, SIDECARSET_INJECTED_LIST), Some("s1"));
    assert_eq!(ann(&out.pod, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER), None);
    // IS_INJECTED on sidecars only
    assert_eq!(
        env(&out.pod, "before"),
        json!([{"name": "IS_INJECTED", "value": "true"}])
    );
    assert_eq!(env(&out.pod, "main"), Value::Null);
    // the injected container carries the defaults of the SidecarSet webhook
    assert_eq!(
        container(&out.pod, "before").image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
}

#[test]
fn controller_revision_recorded_and_list_merged() {
    let mut s = ss("s2", json!({"spec": {"containers": [sidecar("envoy")]}}));
    s.status = Some(kruise_crds::sidecarset::SidecarSetStatus {
        latest_revision: Some("s2-abc".into()),
        ..Default::default()
    });
    let p = pod(json!({"metadata": {"annotations": {
        SIDECARSET_INJECTED_LIST: "s0",
        SIDECARSET_HASH: r#"{"s0":"legacyhash"}"#,
    }}}));
    let out = Run::new(vec![s.clone()]).on(&p);
    assert_eq!(ann(&out.pod, SIDECARSET_INJECTED_LIST), Some("s0,s2"));
    assert_eq!(
        ann(&out.pod, SIDECARSET_HASH).unwrap(),
        format!(
            r#"{{"s0":{{"updateTimestamp":null,"hash":"legacyhash","sidecarSetName":"s0","sidecarList":[]}},"s2":{{"updateTimestamp":"{NOW}","hash":"{}","sidecarSetName":"s2","sidecarList":["envoy"],"controllerRevision":"s2-abc"}}}}"#,
            hash(&s)
        )
    );
    let bad = pod(json!({"metadata": {"annotations": {SIDECARSET_HASH: "[1]"}}}));
    assert!(matches!(
        Run::new(vec![s]).try_on(&bad),
        Err(InjectError::HashAnnotation { .. })
    ));
}

#[test]
fn existing_container_is_replaced_in_place() {
    let s = ss("s1", json!({"spec": {"containers": [sidecar("envoy")]}}));
    let p = pod(json!({"spec": {"containers": [
        {"name": "main", "image": "app:1"},
        {"name": "envoy", "image": "old:0"},
        {"name": "last", "image": "x:1"},
    ]}}));
    let out = Run::new(vec![s]).on(&p);
    assert_eq!(containers(&out.pod), vec!["main", "envoy", "last"]);
    assert_eq!(
        container(&out.pod, "envoy").image.as_deref(),
        Some("envoy:1")
    );
}

#[test]
fn init_containers_sorted_and_native_sidecars_listed() {
    let s = ss(
        "s1",
        json!({"spec": {
            "initContainers": [
                {"name": "zinit", "image": "z:1"},
                {"name": "native", "image": "n:1", "restartPolicy": "Always"},
                {"name": "first", "image": "f:1", "podInjectPolicy": "BeforeAppContainer"},
            ],
            "containers": [sidecar("envoy")],
        }}),
    );
    let p = pod(json!({"spec": {"initContainers": [{"name": "app-init", "image": "i:1"}]}}));
    let out = Run::new(vec![s.clone()]).on(&p);
    assert_eq!(
        init_containers(&out.pod),
        vec!["first", "app-init", "native", "zinit"]
    );
    assert!(
        ann(&out.pod, SIDECARSET_HASH)
            .unwrap()
            .contains(r#""sidecarList":["envoy","native"]"#)
    );
    assert_eq!(
        env(&out.pod, "zinit"),
        json!([{"name": "IS_INJECTED", "value": "true"}])
    );
}

#[test]
fn volumes_pod_wins_and_only_mounted_are_injected() {
    let s = ss(
        "s1",
        json!({"spec": {
            "containers": [{"name": "envoy", "image": "e:1", "volumeMounts": [
                {"name": "certs", "mountPath": "/certs"},
                {"name": "shared", "mountPath": "/shared"},
            ]}],
            "volumes": [
                {"name": "certs", "secret": {"secretName": "c"}},
                {"name": "shared", "emptyDir": {}},
                {"name": "unused", "emptyDir": {}},
            ],
        }}),
    );
    let p = pod(json!({"spec": {"volumes": [{"name": "shared", "hostPath": {"path": "/x"}}]}}));
    let out = Run::new(vec![s]).on(&p);
    let vols = serde_json::to_value(&out.pod.spec.as_ref().unwrap().volumes).unwrap();
    assert_eq!(
        vols,
        json!([
            {"name": "shared", "hostPath": {"path": "/x"}},
            {"name": "certs", "secret": {"secretName": "c", "defaultMode": 420}},
        ])
    );
}

#[test]
fn share_volume_policy_and_subpath_envs() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [{
            "name": "log", "image": "l:1",
            "shareVolumePolicy": {"type": "enabled"},
            "volumeMounts": [{"name": "own", "mountPath": "/data"}],
        }]}}),
    );
    let p = pod(json!({"spec": {"containers": [
        {"name": "main", "image": "app:1",
         "env": [{"name": "POD", "value": "x"}, {"name": "OTHER", "value": "y"}],
         "volumeMounts": [
            {"name": "logs", "mountPath": "/var/log", "subPathExpr": "$(POD)"},
            {"name": "clash", "mountPath": "/data"},
         ]},
        {"name": "old-sidecar", "image": "o:1",
         "env": [{"name": "IS_INJECTED", "value": "true"}],
         "volumeMounts": [{"name": "skip", "mountPath": "/skip"}]},
    ]}}));
    let out = Run::new(vec![s]).on(&p);
    let log = container(&out.pod, "log");
    let mounts: Vec<&str> = log
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, vec!["/data", "/var/log"]);
    assert_eq!(
        env(&out.pod, "log"),
        json!([{"name": "IS_INJECTED", "value": "true"}, {"name": "POD", "value": "x"}])
    );
    // disabled: nothing shared
    let s = ss(
        "s1",
        json!({"spec": {"containers": [{"name": "log", "image": "l:1"}]}}),
    );
    let out = Run::new(vec![s]).on(&p);
    assert!(container(&out.pod, "log").volume_mounts.is_none());
}

#[test]
fn transfer_env() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [{
            "name": "envoy", "image": "e:1",
            "env": [{"name": "OD_NAME", "value": "sidecar_name"}],
            "transferEnv": [
                {"sourceContainerName": "main", "envNames": ["ZED", "OD_NAME", "MISSING"], "envName": "ALPHA"},
                {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['source']"}}, "envName": "FROM_LABEL"},
            ],
        }]}}),
    );
    let p = pod(json!({
        "metadata": {"labels": {"app": "web", "source": "other"}},
        "spec": {"containers": [
            {"name": "main", "image": "app:1", "env": [
                {"name": "ZED", "value": "z"}, {"name": "ALPHA", "value": "a"},
                {"name": "OD_NAME", "value": "app_name"}]},
            {"name": "other", "image": "o:1", "env": [{"name": "FROM_LABEL", "value": "l"}]},
        ]}
    }));
    let out = Run::new(vec![s]).on(&p);
    assert_eq!(
        env(&out.pod, "envoy"),
        json!([
            {"name": "OD_NAME", "value": "sidecar_name"},
            {"name": "IS_INJECTED", "value": "true"},
            {"name": "ALPHA", "value": "a"},
            {"name": "ZED", "value": "z"},
            {"name": "FROM_LABEL", "value": "l"},
        ])
    );
}

#[test]
fn image_pull_secrets_deduplicated() {
    let a = ss(
        "a",
        json!({"spec": {"containers": [sidecar("x")], "imagePullSecrets": [{"name": "reg"}, {"name": "sa"}]}}),
    );
    let b = ss(
        "b",
        json!({"spec": {"containers": [sidecar("y")], "imagePullSecrets": [{"name": "sa"}, {"name": "sb"}]}}),
    );
    let p = pod(json!({"spec": {"imagePullSecrets": [{"name": "reg"}]}}));
    let out = Run::new(vec![a, b]).on(&p);
    assert_eq!(
        serde_json::to_value(&out.pod.spec.as_ref().unwrap().image_pull_secrets).unwrap(),
        json!([{"name": "reg"}, {"name": "sa"}, {"name": "sb"}])
    );
    assert_eq!(containers(&out.pod), vec!["x", "y", "main"]);
    assert_eq!(ann(&out.pod, SIDECARSET_INJECTED_LIST), Some("a,b"));
    assert_eq!(out.injected, vec!["a", "b"]);
}

#[test]
fn sort_by_name_feature_gate() {
    let a = ss("a", json!({"spec": {"containers": [sidecar("zz")]}}));
    let b = ss("b", json!({"spec": {"containers": [sidecar("aa")]}}));
    let mut run = Run::new(vec![a, b]);
    assert_eq!(
        containers(&run.on(&pod(json!({}))).pod),
        vec!["zz", "aa", "main"]
    );
    run.sort = true;
    assert_eq!(
        containers(&run.on(&pod(json!({}))).pod),
        vec!["aa", "zz", "main"]
    );
}

#[test]
fn patch_pod_metadata_policies() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [sidecar("x")], "patchPodMetadata": [
            {"annotations": {"retain": "new", "retain-absent": "new"}},
            {"annotations": {"over": "new"}, "patchPolicy": "Overwrite"},
            {"annotations": {"merge": r#"{"b":2}"#, "merge-absent": r#"{"c":3}"#}, "patchPolicy": "MergePatchJson"},
        ]}}),
    );
    let p = pod(json!({"metadata": {"annotations": {
        "retain": "old", "over": "old", "merge": r#"{"a":1,"b":1}"#,
    }}}));
    let out = Run::new(vec![s.clone()]).on(&p);
    assert_eq!(ann(&out.pod, "retain"), Some("old"));
    assert_eq!(ann(&out.pod, "retain-absent"), Some("new"));
    assert_eq!(ann(&out.pod, "over"), Some("new"));
    assert_eq!(ann(&out.pod, "merge"), Some(r#"{"a":1,"b":2}"#));
    assert_eq!(ann(&out.pod, "merge-absent"), Some(r#"{"c":3}"#));
    let bad = pod(json!({"metadata": {"annotations": {"merge": "not json"}}}));
    assert!(matches!(
        Run::new(vec![s]).try_on(&bad),
        Err(InjectError::PatchMetadata { .. })
    ));
}

#[test]
fn injection_paused_and_namespace_selection() {
    let p = pod(json!({}));
    let paused = ss(
        "s1",
        json!({"spec": {"containers": [sidecar("x")], "injectionStrategy": {"paused": true}}}),
    );
    assert!(Run::new(vec![paused]).on(&p).patch.0.is_empty());

    let cases = [
        (
            json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
            true,
        ),
        (
            json!({"namespaceSelector": {"matchLabels": {"env": "dev"}}}),
            false,
        ),
        (json!({"namespace": "team"}), true),
        (json!({"namespace": "other"}), false),
        // the v1alpha1 field wins over namespaceSelector
        (
            json!({"namespace": "team", "namespaceSelector": {"matchLabels": {"env": "dev"}}}),
            true,
        ),
    ];
    for (i, (spec, want)) in cases.into_iter().enumerate() {
        let mut spec = spec;
        json_patch::merge(&mut spec, &json!({"containers": [sidecar("x")]}));
        let s = ss("s1", json!({ "spec": spec }));
        let mut run = Run::new(vec![s]);
        run.ns_labels.insert("env".into(), "prod".into());
        assert_eq!(!run.on(&p).patch.0.is_empty(), want, "case {i}");
    }
}

#[test]
fn canary_replaces_its_base() {
    let base = ss("base", json!({"spec": {"containers": [sidecar("envoy")]}}));
    let canary = ss(
        "canary",
        json!({
            "metadata": {"annotations": {SIDECARSET_CANARY: "true", SIDECARSET_BASE: "base"}},
            "spec": {"containers": [{"name": "envoy", "image": "envoy:2"}],
                     "updateStrategy": {"type": "NotUpdate"}},
        }),
    );
    let out = Run::new(vec![base.clone(), canary.clone()]).on(&pod(json!({})));
    assert_eq!(out.injected, vec!["canary"]);
    assert_eq!(ann(&out.pod, SIDECARSET_INJECTED_LIST), Some("canary"));
    assert_eq!(
        container(&out.pod, "envoy").image.as_deref(),
        Some("envoy:2")
    );
    // a canary that does not select the pod leaves the base in place
    let mut narrow = canary;
    narrow.spec.selector =
        Some(serde_json::from_value(json!({"matchLabels": {"canary": "yes"}})).unwrap());
    let out = Run::new(vec![base, narrow]).on(&pod(json!({})));
    assert_eq!(out.injected, vec!["base"]);
}

#[test]
fn hot_upgrade_injection() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [{
            "name": "envoy", "image": "envoy:1",
            "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"},
        }]}}),
    );
    let p = pod(json!({"metadata": {"annotations": {
        SIDECARSET_WORKING_HOTUPGRADE_CONTAINER: r#"{"other":"other-2"}"#,
    }}}));
    let out = Run::new(vec![s]).on(&p);
    assert_eq!(containers(&out.pod), vec!["envoy-1", "envoy-2", "main"]);
    assert_eq!(
        container(&out.pod, "envoy-1").image.as_deref(),
        Some("envoy:1")
    );
    assert_eq!(
        container(&out.pod, "envoy-2").image.as_deref(),
        Some("empty:1")
    );
    assert_eq!(
        env(&out.pod, "envoy-2"),
        json!([
            {"name": "IS_INJECTED", "value": "true"},
            {"name": "SIDECARSET_VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['version.sidecarset.kruise.io/envoy-2']"}}},
            {"name": "SIDECARSET_VERSION_ALT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['versionalt.sidecarset.kruise.io/envoy-2']"}}},
        ])
    );
    for (k, v) in [
        ("version.sidecarset.kruise.io/envoy-1", "1"),
        ("versionalt.sidecarset.kruise.io/envoy-1", "0"),
        ("version.sidecarset.kruise.io/envoy-2", "0"),
        ("versionalt.sidecarset.kruise.io/envoy-2", "1"),
        (
            SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
            r#"{"envoy":"envoy-1","other":"other-2"}"#,
        ),
    ] {
        assert_eq!(ann(&out.pod, k), Some(v), "{k}");
    }
    // the logical name is listed, not the slots
    assert!(
        ann(&out.pod, SIDECARSET_HASH)
            .unwrap()
            .contains(r#""sidecarList":["envoy"]"#)
    );
}

fn revision(
    name: &str,
    ss_name: &str,
    rev: i64,
    custom: Option<&str>,
    image: &str,
) -> ControllerRevision {
    let mut labels = json!({SIDECARSET_NAME_LABEL: ss_name});
    if let Some(c) = custom {
        labels[SIDECARSET_CUSTOM_VERSION_LABEL] = json!(c);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kruise-system", "labels": labels,
                     "annotations": {SIDECARSET_HASH: format!("hash-{name}"), SIDECARSET_HASH_WITHOUT_IMAGE: "wi"}},
        "revision": rev,
        "data": {"spec": {"$patch": "replace", "volumes": null, "containers": [
            {"name": "envoy", "image": image, "podInjectPolicy": "BeforeAppContainer"}
        ], "initContainers": null, "imagePullSecrets": null, "patchPodMetadata": null}},
    }))
    .unwrap()
}

#[test]
fn pinned_revisions() {
    let pinned = |strategy: Value| {
        ss(
            "s1",
            json!({"spec": {"containers": [{"name": "envoy", "image": "envoy:latest"}], "injectionStrategy": strategy}}),
        )
    };
    let revisions = vec![
        revision("s1-old", "s1", 1, Some("v1"), "envoy:1"),
        revision("s1-older", "s1", 0, Some("v1"), "envoy:0"),
        revision("x-1", "x", 5, Some("v1"), "x:1"),
    ];
    let image_for = |s: SidecarSet, roll: f64| -> Result<(String, String), InjectError> {
        let mut run = Run::new(vec![s]);
        run.revisions = revisions.clone();
        run.roll = roll;
        let out = run.try_on(&pod(json!({})))?;
        Ok((
            container(&out.pod, "envoy").image.clone().unwrap(),
            ann(&out.pod, SIDECARSET_HASH).unwrap().to_owned(),
        ))
    };
    let (img, h) = image_for(pinned(json!({"revision": {"revisionName": "s1-old"}})), 0.5).unwrap();
    assert_eq!(img, "envoy:1");
    assert!(
        h.contains(r#""hash":"hash-s1-old""#) && h.contains(r#""controllerRevision":"s1-old""#)
    );
    let (img, _) = image_for(pinned(json!({"revision": {"customVersion": "v1"}})), 0.5).unwrap();
    assert_eq!(img, "envoy:1", "newest revision with the custom version");
    assert!(matches!(
        image_for(pinned(json!({"revision": {"revisionName": "gone"}})), 0.5),
        Err(InjectError::RevisionNotFound { .. })
    ));
    // Partial: integer partition injects latest, a percentage rolls the dice
    let partial = |partition: Value| {
        let mut s = pinned(json!({"revision": {"revisionName": "s1-old", "policy": "Partial"}}));
        s.spec.update_strategy.as_mut().unwrap().partition =
            Some(serde_json::from_value(partition).unwrap());
        s
    };
    assert_eq!(image_for(partial(json!(3)), 0.0).unwrap().0, "envoy:latest");
    assert_eq!(image_for(partial(json!("30%")), 0.2).unwrap().0, "envoy:1");
    assert_eq!(
        image_for(partial(json!("30%")), 0.4).unwrap().0,
        "envoy:latest"
    );
    // updateStrategy.paused always injects the pinned revision
    let mut paused = partial(json!(3));
    paused.spec.update_strategy.as_mut().unwrap().paused = Some(true);
    assert_eq!(image_for(paused, 0.9).unwrap().0, "envoy:1");
}

#[test]
fn resources_policy_at_injection() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [{
            "name": "envoy", "image": "e:1",
            "resourcesPolicy": {"targetContainersMode": "sum", "targetContainersNameRegex": ".*",
                "resourcesExpr": {"limits": {"cpu": "max(cpu*50%, 50m)"}, "requests": {"cpu": "max(cpu*50%, 50m)"}}},
        }]}}),
    );
    let p = pod(
        json!({"spec": {"containers": [{"name": "main", "image": "app:1",
        "resources": {"limits": {"cpu": "200m"}, "requests": {"cpu": "50m"}}}]}}),
    );
    let out = Run::new(vec![s.clone()]).on(&p);
    assert_eq!(
        serde_json::to_value(&container(&out.pod, "envoy").resources).unwrap(),
        json!({"limits": {"cpu": "100m"}, "requests": {"cpu": "50m"}})
    );
    let mut narrow = s;
    narrow.spec.containers.as_mut().unwrap()[0]
        .resources_policy
        .as_mut()
        .unwrap()
        .target_containers_name_regex = Some("^nope$".into());
    assert!(matches!(
        Run::new(vec![narrow]).try_on(&p),
        Err(InjectError::Resources { .. })
    ));
}

#[test]
fn share_volume_devices() {
    let s = ss(
        "s1",
        json!({"spec": {"containers": [{
            "name": "dev", "image": "d:1",
            "shareVolumeDevicePolicy": {"type": "enabled"},
            "volumeMounts": [{"name": "own", "mountPath": "/dev/taken"}],
        }], "volumes": [{"name": "own", "emptyDir": {}}]}}),
    );
    let p = pod(
        json!({"spec": {"containers": [{"name": "main", "image": "app:1",
        "volumeDevices": [{"name": "blk", "devicePath": "/dev/xvda"}, {"name": "blk2", "devicePath": "/dev/taken"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}),
    );
    let out = Run::new(vec![s]).on(&p);
    let dev = container(&out.pod, "dev");
    assert_eq!(
        serde_json::to_value(&dev.volume_devices).unwrap(),
        json!([{"name": "blk", "devicePath": "/dev/xvda"}])
    );
    // mounts are not shared without shareVolumePolicy
    assert_eq!(dev.volume_mounts.as_ref().unwrap().len(), 1);
}

#[test]
fn native_hot_upgrade_init_container() {
    let s = ss(
        "s1",
        json!({"spec": {
            "initContainers": [{"name": "proxy", "image": "p:1", "restartPolicy": "Always",
                "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}}],
            "updateStrategy": {"type": "NotUpdate"},
        }}),
    );
    let out = Run::new(vec![s]).on(&pod(json!({})));
    assert_eq!(init_containers(&out.pod), vec!["proxy-1", "proxy-2"]);
    assert_eq!(
        container(&out.pod, "proxy-2").image.as_deref(),
        Some("empty:1")
    );
    assert_eq!(
        ann(&out.pod, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER),
        Some(r#"{"proxy":"proxy-1"}"#)
    );
    assert!(
        ann(&out.pod, SIDECARSET_HASH)
            .unwrap()
            .contains(r#""sidecarList":["proxy"]"#)
    );
    assert_eq!(containers(&out.pod), vec!["main"]);
}
