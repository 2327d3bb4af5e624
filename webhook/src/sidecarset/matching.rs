//! Which pods a SidecarSet selects (pod selector, namespaceSelector, the v1alpha1 `namespace`
//! field) and whether two SidecarSets' selectors can overlap (OpenKruise's `IsSelectorOverlapping`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kruise_crds::keys::sidecarset::NAMESPACE_NAME_LABEL;
use kruise_crds::sidecarset::SidecarSet;
use std::collections::{BTreeMap, BTreeSet};

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// True when `sel` has neither matchLabels nor matchExpressions.
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// `metav1.LabelSelectorAsSelector(sel).Matches(labels)`: an empty selector matches everything; an
/// invalid one (unknown operator, values where none are allowed) matches nothing.
pub fn selector_matches(sel: &LabelSelector, labels: &Labels) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && sel
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_matches(r, labels))
}

fn requirement_matches(r: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let got = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => !values.is_empty() && got.is_some_and(|v| values.contains(v)),
        "NotIn" => !values.is_empty() && got.is_none_or(|v| !values.contains(v)),
        "Exists" => values.is_empty() && got.is_some(),
        "DoesNotExist" => values.is_empty() && got.is_none(),
        _ => false,
    }
}

/// The namespace selector in effect: the v1alpha1 `namespace` field wins over `namespaceSelector`
/// (it converts to `matchLabels{kubernetes.io/metadata.name: ns}`).
pub fn effective_namespace_selector(ss: &SidecarSet) -> Option<LabelSelector> {
    match ss.spec.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_owned(),
                ns.to_owned(),
            )])),
            match_expressions: None,
        }),
        _ => ss.spec.namespace_selector.clone(),
    }
}

/// OpenKruise's `PodMatchedSidecarSet`: the namespace (by its labels, or by name for the v1alpha1
/// `namespace` field) must be selected, and the pod selector must be set, non-empty and match.
pub fn pod_selector_matches(
    ss: &SidecarSet,
    pod_namespace: &str,
    pod_labels: &Labels,
    ns_labels: &Labels,
) -> bool {
    if let Some(ns) = ss.spec.namespace.as_deref().filter(|n| !n.is_empty()) {
        if ns != pod_namespace {
            return false;
        }
    } else if let Some(ns_sel) = &ss.spec.namespace_selector
        && !selector_matches(ns_sel, ns_labels)
    {
        return false;
    }
    match &ss.spec.selector {
        Some(sel) if !selector_is_empty(sel) => selector_matches(sel, pod_labels),
        _ => false,
    }
}

/// The values a selector allows per key: `None` stands for "any value" (`Exists`).
fn allowed_values(sel: &LabelSelector) -> BTreeMap<&str, Option<BTreeSet<&str>>> {
    let mut m: BTreeMap<&str, Option<BTreeSet<&str>>> = BTreeMap::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        let e = m.entry(k.as_str()).or_insert_with(|| Some(BTreeSet::new()));
        if let Some(set) = e {
            set.insert(v.as_str());
        }
    }
    for r in sel.match_expressions.iter().flatten() {
        match r.operator.as_str() {
            "In" => {
                let e = m
                    .entry(r.key.as_str())
                    .or_insert_with(|| Some(BTreeSet::new()));
                if let Some(set) = e {
                    set.extend(r.values.iter().flatten().map(String::as_str));
                }
            }
            "Exists" => {
                m.insert(r.key.as_str(), None);
            }
            _ => {}
        }
    }
    m
}

/// OpenKruise's `isDisjoint(s1, s2)`: some requirement of `s2` cannot hold on any object `s1` selects.
fn disjoint(s1: &LabelSelector, s2: &LabelSelector) -> bool {
    let m = allowed_values(s1);
    // `Some(set)`: s1 restricts the key to these values; `None` below means s1 lacks the key.
    let restricted = |k: &str| m.get(k).and_then(Option::as_ref);
    let label_conflict = s2
        .match_labels
        .iter()
        .flatten()
        .any(|(k, v)| restricted(k).is_some_and(|set| !set.contains(v.as_str())));
    label_conflict
        || s2.match_expressions.iter().flatten().any(|r| {
            let values: BTreeSet<&str> = r.values.iter().flatten().map(String::as_str).collect();
            let key = r.key.as_str();
            match r.operator.as_str() {
                "In" => restricted(key).is_some_and(|set| set.is_disjoint(&values)),
                "NotIn" => restricted(key).is_some_and(|set| set.is_subset(&values)),
                "Exists" => !m.contains_key(key),
                "DoesNotExist" => m.contains_key(key),
                _ => false,
            }
        })
}

/// OpenKruise's `IsSelectorOverlapping`: neither selector rules the other out.
pub fn selectors_overlap(a: &LabelSelector, b: &LabelSelector) -> bool {
    !(disjoint(a, b) || disjoint(b, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruise_crds::sidecarset::SidecarSetSpec;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ml(kv: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(kv)),
            match_expressions: None,
        }
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: if values.is_empty() {
                    None
                } else {
                    Some(values.iter().map(|v| (*v).to_owned()).collect())
                },
            }]),
        }
    }

    /// OpenKruise `TestSelectorConflict` (spec §3.4).
    #[test]
    fn selector_overlap_table() {
        let cases = [
            (ml(&[("a", "h")]), ml(&[("a", "h")]), true),
            (ml(&[("a", "h")]), ml(&[("a", "i")]), false),
            (ml(&[("a", "h")]), ml(&[("b", "i")]), true),
            (
                ml(&[("a", "h"), ("b", "i"), ("c", "j")]),
                ml(&[("a", "h"), ("b", "x"), ("c", "j")]),
                false,
            ),
            (ml(&[("a", "h")]), expr("a", "In", &["h", "i", "j"]), true),
            (ml(&[("a", "h")]), expr("a", "In", &["i", "j"]), false),
            (expr("a", "NotIn", &["h", "i"]), ml(&[("a", "h")]), false),
            (ml(&[("a", "h")]), expr("a", "Exists", &[]), true),
            (expr("a", "DoesNotExist", &[]), ml(&[("a", "h")]), false),
        ];
        for (i, (a, b, want)) in cases.iter().enumerate() {
            assert_eq!(selectors_overlap(a, b), *want, "case {i}");
        }
    }

    #[test]
    fn selector_semantics() {
        let l = labels(&[("app", "web"), ("tier", "fe")]);
        assert!(selector_matches(&ml(&[("app", "web")]), &l));
        assert!(!selector_matches(&ml(&[("app", "db")]), &l));
        assert!(selector_matches(&expr("app", "In", &["web", "x"]), &l));
        assert!(!selector_matches(&expr("app", "NotIn", &["web"]), &l));
        assert!(selector_matches(&expr("zone", "NotIn", &["a"]), &l));
        assert!(selector_matches(&expr("tier", "Exists", &[]), &l));
        assert!(!selector_matches(&expr("tier", "DoesNotExist", &[]), &l));
        assert!(!selector_matches(&expr("tier", "Bogus", &[]), &l));
        assert!(selector_matches(&LabelSelector::default(), &l));
    }

    fn ss_with(
        sel: Option<LabelSelector>,
        ns: Option<&str>,
        ns_sel: Option<LabelSelector>,
    ) -> SidecarSet {
        SidecarSet::new(
            "s",
            SidecarSetSpec {
                selector: sel,
                namespace: ns.map(Into::into),
                namespace_selector: ns_sel,
                ..Default::default()
            },
        )
    }

    #[test]
    fn pod_matching() {
        let pod = labels(&[("app", "web")]);
        let ns = labels(&[("env", "prod"), (NAMESPACE_NAME_LABEL, "team")]);
        // empty or missing selector matches nothing
        assert!(!pod_selector_matches(
            &ss_with(None, None, None),
            "team",
            &pod,
            &ns
        ));
        assert!(!pod_selector_matches(
            &ss_with(Some(LabelSelector::default()), None, None),
            "team",
            &pod,
            &ns
        ));
        let sel = Some(ml(&[("app", "web")]));
        assert!(pod_selector_matches(
            &ss_with(sel.clone(), None, None),
            "team",
            &pod,
            &ns
        ));
        assert!(pod_selector_matches(
            &ss_with(sel.clone(), None, Some(ml(&[("env", "prod")]))),
            "team",
            &pod,
            &ns
        ));
        assert!(!pod_selector_matches(
            &ss_with(sel.clone(), None, Some(ml(&[("env", "dev")]))),
            "team",
            &pod,
            &ns
        ));
        // v1alpha1 `namespace` wins over namespaceSelector
        assert!(pod_selector_matches(
            &ss_with(sel.clone(), Some("team"), Some(ml(&[("env", "dev")]))),
            "team",
            &pod,
            &ns
        ));
        assert!(!pod_selector_matches(
            &ss_with(sel, Some("other"), None),
            "team",
            &pod,
            &ns
        ));
    }
}
