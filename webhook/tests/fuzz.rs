//! Property tests ("fuzzing" in CI-sized runs): arbitrary bytes as AdmissionReviews and arbitrary
//! pods and SidecarSets through injection and validation never panic, and every injection patch
//! turns the input pod into the output pod. `PROPTEST_CASES=1000000` runs the long version.
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kruise_webhook::sidecarset::{InjectInput, inject, validate_sidecarset};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// JSON values biased towards the shapes pods and SidecarSets have.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9./:%@=-]{0,12}".prop_map(Value::String),
        Just(json!("HotUpgrade")),
        Just(json!("Always")),
        Just(json!("BeforeAppContainer")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("image".to_string()),
                    Just("containers".to_string()),
                    Just("env".to_string()),
                    Just("volumeMounts".to_string()),
                    Just("labels".to_string()),
                    Just("annotations".to_string()),
                    Just("restartPolicy".to_string()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn sidecar_container() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,6}",
        prop::option::of("[a-z./:]{0,10}"),
        prop::option::of(prop_oneof![Just("HotUpgrade"), Just("ColdUpgrade")]),
        prop::option::of(prop_oneof![
            Just("BeforeAppContainer"),
            Just("AfterAppContainer")
        ]),
        prop::option::of(prop_oneof![Just("enabled"), Just("disabled")]),
        prop::collection::vec(("[a-z]{1,4}", "[a-z/]{1,6}"), 0..3),
    )
        .prop_map(|(name, image, up, policy, share, mounts)| {
            let mut c = json!({"name": name});
            if let Some(i) = image {
                c["image"] = json!(i);
            }
            if let Some(u) = up {
                c["upgradeStrategy"] =
                    json!({"upgradeType": u, "hotUpgradeEmptyImage": "empty:v1"});
            }
            if let Some(p) = policy {
                c["podInjectPolicy"] = json!(p);
            }
            if let Some(s) = share {
                c["shareVolumePolicy"] = json!({"type": s});
            }
            c["volumeMounts"] = mounts
                .into_iter()
                .map(|(n, p)| json!({"name": n, "mountPath": p}))
                .collect();
            c
        })
}

fn sidecarset() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,6}",
        prop::collection::btree_map("[a-c]", "[x-z]", 0..3),
        prop::collection::vec(sidecar_container(), 0..3),
        prop::collection::vec(sidecar_container(), 0..2),
        prop::collection::vec("[a-z]{1,4}", 0..3),
    )
        .prop_map(|(name, sel, containers, inits, vols)| {
            json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
                "metadata": {"name": name, "annotations": {"kruise.io/sidecarset-hash": "abc"}},
                "spec": {
                    "selector": {"matchLabels": sel},
                    "containers": containers,
                    "initContainers": inits,
                    "volumes": vols.into_iter().map(|v| json!({"name": v, "emptyDir": {}})).collect::<Vec<_>>(),
                }
            })
        })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map("[a-c]", "[x-z]", 0..3),
        prop::collection::btree_map("[a-z./-]{1,30}", "[ -~]{0,20}", 0..3),
        prop::collection::vec(sidecar_container(), 1..3),
    )
        .prop_map(|(labels, annotations, containers)| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "namespace": "ns", "labels": labels, "annotations": annotations},
                   "spec": {"containers": containers}})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_decode_into_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<kube::core::admission::AdmissionReview<kube::core::DynamicObject>>(&bytes);
    }

    #[test]
    fn arbitrary_json_objects_never_panic_the_decoders(v in json_value()) {
        let _ = serde_json::from_value::<Pod>(v.clone());
        let _ = serde_json::from_value::<SidecarSet>(v.clone());
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": v});
        let _ = serde_json::from_value::<kube::core::admission::AdmissionReview<kube::core::DynamicObject>>(review);
    }

    #[test]
    fn injection_and_validation_never_panic(p in pod(), sets in prop::collection::vec(sidecarset(), 0..4)) {
        let Ok(pod) = serde_json::from_value::<Pod>(p) else { return Ok(()) };
        let sets: Vec<SidecarSet> = sets.into_iter().filter_map(|s| serde_json::from_value(s).ok()).collect();
        let labels = Default::default();
        let input = InjectInput {
            pod: &pod,
            sidecar_sets: &sets,
            namespace_labels: &labels,
            revisions: &[],
            now: "2026-11-22T12:00:00Z",
            partial_roll: 0.5,
            sort_containers_by_name: false,
        };
        if let Ok(out) = inject(&input) {
            // the patch must turn the input into the output
            let mut doc = serde_json::to_value(&pod).unwrap();
            json_patch::patch(&mut doc, &out.patch).unwrap();
            prop_assert_eq!(doc, serde_json::to_value(&out.pod).unwrap());
        }
        for (i, ss) in sets.iter().enumerate() {
            let others: Vec<SidecarSet> = sets.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s.clone()).collect();
            let _ = validate_sidecarset(ss, None, &others, &[]);
        }
    }
}

/// Strings from the expression language's alphabet, with runs of one character (deep nesting, long
/// numbers) as likely as mixtures.
fn expression() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just("max(".to_string()),
        Just("min(".to_string()),
        Just("cpu".to_string()),
        Just("memory".to_string()),
        Just(",".to_string()),
        Just("-".to_string()),
        Just("+".to_string()),
        Just("*".to_string()),
        Just("/".to_string()),
        Just("%".to_string()),
        "[0-9]{1,8}(\\.[0-9]{1,4})?(m|Ki|Mi|Gi|k|M|G|e3|E)?".prop_map(|s| s),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop_oneof![
        prop::collection::vec(atom.clone(), 0..64).prop_map(|v| v.concat()),
        (atom, 1usize..5000).prop_map(|(a, n)| a.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The resourcesPolicy expression language and quantity parser (user input evaluated by the
    /// validating webhook, the pod webhook and the controllers): never a panic or a stack
    /// overflow, whatever the nesting or length.
    #[test]
    fn expressions_and_quantities_never_panic(e in expression(), v in any::<i128>()) {
        use kruise_crds::quantity::Quantity;
        use kruise_webhook::sidecarset::resources::{check_expression, evaluate, parse_quantity};
        let _ = check_expression(&e);
        let _ = evaluate(&e, "cpu", Quantity::from_nanos(v));
        let _ = evaluate(&e, "memory", Quantity::from_nanos(v.saturating_abs()));
        let _ = parse_quantity(&e);
        let _ = Quantity::parse(&e);
    }

    /// Exact quantities: the decimal text of any value parses back to that value.
    #[test]
    fn quantity_text_round_trips(n in -(10i128.pow(36) - 1)..10i128.pow(36)) {
        use kruise_crds::quantity::Quantity;
        let q = Quantity::from_nanos(n);
        prop_assert_eq!(Quantity::parse(&q.to_string()), Ok(q));
    }

    /// The pod webhook's routing: request paths and the pending-routes annotation are read from
    /// what the API server sends and what any writer stored.
    #[test]
    fn routing_tokens_and_pending_routes_never_panic(path in ".{0,64}", annotation in ".{0,256}", v in json_value()) {
        use kruise_webhook::sidecarset::routing::{parse_pending, token_of_path};
        if let Some(t) = token_of_path("/mutate-pod", &path) {
            prop_assert_eq!(t.len(), 16);
        }
        let _ = parse_pending(Some(&annotation));
        let _ = parse_pending(Some(&v.to_string()));
    }
}
