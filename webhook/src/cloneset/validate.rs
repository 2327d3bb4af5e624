//! Validation of CloneSets (spec §4.2): everything OpenKruise's v1alpha1 webhook checks that needs no
//! API call, plus decision 2 (bad percentages, negative counts). Each error names its field path.

use crate::field::FieldError;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::{
    CloneSet, CloneSetSpec, CloneSetUpdateStrategyType, UpdatePriorityStrategy, UpdateScatterTerm,
};
use std::collections::{BTreeMap, BTreeSet};

/// Validates a CloneSet on create (`old` None) or update.
pub fn validate_cloneset(new: &CloneSet, old: Option<&CloneSet>) -> Vec<FieldError> {
    let mut errs = validate_metadata(new);
    errs.extend(validate_spec(&new.spec));
    if let Some(old) = old {
        errs.extend(validate_update(new, old));
    }
    errs
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_dns_label(s: &str) -> bool {
    !s.contains('.') && s.len() <= 63 && is_dns_subdomain(s)
}

fn validate_metadata(cs: &CloneSet) -> Vec<FieldError> {
    match cs.metadata.name.as_deref() {
        Some(n) if !is_dns_subdomain(n) => vec![FieldError::invalid(
            "metadata.name",
            n,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        )],
        _ => Vec::new(),
    }
}

/// Renders an int-or-string the way Go's `IntOrString.String()` does, for error values.
fn ios(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `GetScaledValueFromIntOrPercent` with decision 2: percentages must be `N%` with N in 0..=100
/// (unless `allow_over_100`), integers not negative.
fn scaled(
    v: &IntOrString,
    total: i32,
    round_up: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<i32> {
    match v {
        IntOrString::Int(i) if *i < 0 => {
            errs.push(FieldError::invalid(
                path,
                *i,
                "must be greater than or equal to 0",
            ));
            None
        }
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let Some(pct) = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<i64>().ok())
            else {
                errs.push(FieldError::invalid(
                    path,
                    ios(v),
                    "invalid value for IntOrString: invalid type: string is not a percentage",
                ));
                return None;
            };
            if pct > 100 {
                errs.push(FieldError::invalid(
                    path,
                    ios(v),
                    "must not be greater than 100%",
                ));
                return None;
            }
            let raw = pct as f64 * f64::from(total) / 100.0;
            Some(if round_up { raw.ceil() } else { raw.floor() } as i32)
        }
    }
}

fn validate_selector(sel: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    if empty {
        errs.push(FieldError::invalid(
            path,
            "",
            "empty selector is invalid for cloneset",
        ));
        return errs;
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let has_values = e.values.as_ref().is_some_and(|v| !v.is_empty());
        match e.operator.as_str() {
            "In" | "NotIn" if !has_values => errs.push(FieldError::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => errs.push(FieldError::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        if e.key.is_empty() {
            errs.push(FieldError::invalid(
                format!("{p}.key"),
                "",
                "name part must be non-empty",
            ));
        }
    }
    errs
}

fn validate_template(t: &PodTemplateSpec, vct_names: &BTreeSet<String>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = t.spec.as_ref() else {
        errs.push(FieldError::required("spec.template.spec", ""));
        return errs;
    };
    if let Some(rp) = spec.restart_policy.as_deref()
        && rp != "Always"
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in CloneSet is not Supported",
        ));
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required("spec.template.spec.containers", ""));
    }
    let mut volumes: BTreeSet<String> = vct_names.clone();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if !is_dns_label(&v.name) {
            errs.push(FieldError::invalid(
                format!("spec.template.spec.volumes[{i}].name"),
                v.name.as_str(),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            ));
        }
        volumes.insert(v.name.clone());
    }
    let mut names = BTreeSet::new();
    let lists = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_slice()),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let p = format!("spec.template.spec.{list}[{i}]");
            if c.name.is_empty() {
                errs.push(FieldError::required(format!("{p}.name"), ""));
            } else if !is_dns_label(&c.name) {
                errs.push(FieldError::invalid(
                    format!("{p}.name"),
                    c.name.as_str(),
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                ));
            } else if !names.insert(c.name.clone()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), c.name.as_str()));
            }
            if c.image.as_deref().is_none_or(|s| s.trim().is_empty()) {
                errs.push(FieldError::required(format!("{p}.image"), ""));
            }
            if let Some(r) = c.resources.as_ref() {
                for (list, q) in [("limits", &r.limits), ("requests", &r.requests)] {
                    errs.extend(check_quantities(
                        &format!("{p}.resources.{list}"),
                        q.as_ref(),
                    ));
                }
            }
            for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
                if !volumes.contains(&m.name) {
                    errs.push(FieldError::invalid(
                        format!("{p}.volumeMounts[{j}].name"),
                        m.name.as_str(),
                        "not found: no volume or volumeClaimTemplate of this name",
                    ));
                }
            }
        }
    }
    errs.extend(check_quantities(
        "spec.template.spec.overhead",
        spec.overhead.as_ref(),
    ));
    errs
}

/// Each quantity of a resource list must parse as Kubernetes parses it; the API server would
/// refuse the pods later, when the CloneSet creates them.
fn check_quantities(
    path: &str,
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Vec<FieldError> {
    list.into_iter()
        .flatten()
        .filter(|(_, q)| !is_quantity(&q.0))
        .map(|(name, q)| {
            FieldError::invalid(
                format!("{path}[{name}]"),
                q.0.as_str(),
                "must be a quantity such as 500m, 2, 128Mi or 1G (quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$')",
            )
        })
        .collect()
}

/// Whether `s` is a quantity, by the steps of apimachinery's `ParseQuantity`
/// (`parseQuantityString`, then the suffix lookup; JSON decoding trims spaces first), so that
/// nothing it accepts is refused here.
pub(crate) fn is_quantity(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() {
        return false;
    }
    let b = s.as_bytes();
    let mut pos = usize::from(matches!(b[0], b'+' | b'-'));
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    pos = digits(pos);
    if pos < b.len() && b[pos] == b'.' {
        pos = digits(pos + 1);
    }
    let suffix_start = pos;
    pos += b[pos..]
        .iter()
        .take_while(|c| b"eEinumkKMGTP".contains(c))
        .count();
    if pos < b.len() && matches!(b[pos], b'+' | b'-') {
        pos += 1;
    }
    if digits(pos) != b.len() {
        return false;
    }
    let suffix = &s[suffix_start..];
    matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || (suffix.len() > 1 && suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i64>().is_ok())
}

fn validate_priority(p: &UpdatePriorityStrategy, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let weights = p.weight_priority.as_deref().unwrap_or_default();
    let orders = p.order_priority.as_deref().unwrap_or_default();
    if !weights.is_empty() && !orders.is_empty() {
        errs.push(FieldError::invalid(
            path,
            "",
            "only one of weightPriority and orderPriority can be used",
        ));
    }
    for (i, w) in weights.iter().enumerate() {
        let p = format!("{path}.weightPriority[{i}]");
        if !(0..=100).contains(&w.weight) {
            errs.push(FieldError::invalid(
                format!("{p}.weight"),
                w.weight,
                "weight must be in range [0, 100]",
            ));
        }
        let sel_empty = w
            .match_selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
            && w.match_selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty);
        if sel_empty {
            errs.push(FieldError::invalid(
                format!("{p}.matchSelector"),
                "",
                "selector can not be empty",
            ));
        } else {
            errs.extend(validate_selector(
                &w.match_selector,
                &format!("{p}.matchSelector"),
            ));
        }
    }
    for (i, o) in orders.iter().enumerate() {
        if o.ordered_key.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.orderPriority[{i}].orderedKey"),
                "",
                "order key can not be empty",
            ));
        }
    }
    errs
}

fn validate_scatter(terms: &[UpdateScatterTerm], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in terms.iter().enumerate() {
        if t.key.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}[{i}].key"),
                "",
                "key can not be empty",
            ));
        }
        if t.value.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}[{i}].value"),
                "",
                "value can not be empty",
            ));
        }
        if !seen.insert((t.key.clone(), t.value.clone())) {
            errs.push(FieldError::duplicate(
                path.to_string(),
                format!("{}:{}", t.key, t.value),
            ));
        }
    }
    errs
}

fn validate_spec(spec: &CloneSetSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let replicas = spec.replicas.unwrap_or(CloneSetSpec::DEFAULT_REPLICAS);
    if replicas < 0 {
        errs.push(FieldError::invalid(
            "spec.replicas",
            replicas,
            "must be greater than or equal to 0",
        ));
    }
    for (path, v) in [
        ("spec.revisionHistoryLimit", spec.revision_history_limit),
        ("spec.minReadySeconds", spec.min_ready_seconds),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            errs.push(FieldError::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(pds) = spec.progress_deadline_seconds {
        if pds < 0 {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                pds,
                "must be greater than or equal to 0",
            ));
        } else if pds != i32::MAX && pds <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }

    let sel_errs = validate_selector(&spec.selector, "spec.selector");
    let sel_ok = sel_errs.is_empty();
    errs.extend(sel_errs);
    let tlabels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if sel_ok && !crate::sidecarset::matching::selector_matches(&spec.selector, &tlabels) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            format!("{tlabels:?}"),
            "`selector` does not match template `labels`",
        ));
    }
    let vct_names: BTreeSet<String> = spec
        .volume_claim_templates
        .iter()
        .flatten()
        .filter_map(|v| v.metadata.name.clone())
        .collect();
    errs.extend(validate_template(&spec.template, &vct_names));

    if let Some(ss) = spec.scale_strategy.as_ref() {
        let mut seen = BTreeSet::new();
        for (i, n) in ss.pods_to_delete.iter().flatten().enumerate() {
            if !seen.insert(n) {
                errs.push(FieldError::duplicate(
                    format!("spec.scaleStrategy.podsToDelete[{i}]"),
                    n.as_str(),
                ));
            }
        }
        if let Some(mu) = ss.max_unavailable.as_ref() {
            scaled(
                mu,
                replicas,
                true,
                "spec.scaleStrategy.maxUnavailable",
                &mut errs,
            );
        }
    }

    let us = spec.update_strategy.clone().unwrap_or_default();
    let p = "spec.updateStrategy";
    if let Some(part) = us.partition.as_ref() {
        scaled(part, replicas, true, &format!("{p}.partition"), &mut errs);
    }
    let surge = us
        .max_surge
        .as_ref()
        .map(|v| scaled(v, replicas, true, &format!("{p}.maxSurge"), &mut errs));
    let max_surge = surge.flatten().unwrap_or(0);
    let unavailable = us.max_unavailable.as_ref().map(|v| {
        scaled(
            v,
            replicas,
            max_surge == 0,
            &format!("{p}.maxUnavailable"),
            &mut errs,
        )
    });
    if us.type_ == Some(CloneSetUpdateStrategyType::InPlaceOnly) && max_surge > 0 {
        errs.push(FieldError::invalid(
            format!("{p}.maxSurge"),
            us.max_surge.as_ref().map(ios).unwrap_or_default(),
            "can not use maxSurge with strategy type InPlaceOnly",
        ));
    }
    // The "both below 1" check uses the real maxSurge (OpenKruise's v1beta1 shadowing bug, quirk 12,
    // is not copied).
    if let (Some(Some(mu)), true) = (unavailable, replicas > 0)
        && mu < 1
        && max_surge < 1
    {
        errs.push(FieldError::invalid(
            format!("{p}.maxUnavailable"),
            us.max_unavailable.as_ref().map(ios).unwrap_or_default(),
            "maxUnavailable and maxSurge should not both be less than 1",
        ));
    }
    if let Some(prio) = us.priority_strategy.as_ref() {
        errs.extend(validate_priority(prio, &format!("{p}.priorityStrategy")));
    }
    if let Some(sc) = us.scatter_strategy.as_ref() {
        errs.extend(validate_scatter(sc, &format!("{p}.scatterStrategy")));
    }
    if let Some(g) = us
        .in_place_update_strategy
        .as_ref()
        .and_then(|s| s.grace_period_seconds)
        .filter(|g| *g < 0)
    {
        errs.push(FieldError::invalid(
            format!("{p}.inPlaceUpdateStrategy.gracePeriodSeconds"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    errs
}

/// Only image replacements under `/containers/N/image` between two template specs.
fn only_image_changes(old: &PodTemplateSpec, new: &PodTemplateSpec) -> bool {
    let o = serde_json::to_value(&old.spec).unwrap_or_default();
    let n = serde_json::to_value(&new.spec).unwrap_or_default();
    let patch = serde_json::to_value(json_patch::diff(&o, &n)).unwrap_or_default();
    patch.as_array().is_none_or(|ops| {
        ops.iter().all(|op| {
            op["op"] == "replace"
                && op["path"].as_str().is_some_and(|p| {
                    p.strip_prefix("/containers/")
                        .and_then(|r| r.strip_suffix("/image"))
                        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                })
        })
    })
}

fn validate_update(new: &CloneSet, old: &CloneSet) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.spec.selector != old.spec.selector {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to cloneset spec for fields other than 'replicas', 'template', 'lifecycle', 'scaleStrategy', 'updateStrategy', 'minReadySeconds', 'progressDeadlineSeconds', 'revisionHistoryLimit' and 'volumeClaimTemplates' are forbidden",
        ));
    }
    let in_place_only = new.spec.update_strategy.as_ref().and_then(|u| u.type_)
        == Some(CloneSetUpdateStrategyType::InPlaceOnly);
    if in_place_only && !only_image_changes(&old.spec.template, &new.spec.template) {
        errs.push(FieldError::forbidden(
            "spec.template",
            "only allowed to update images in spec for InPlaceOnly",
        ));
    }
    errs
}

/// Names newly added to `spec.scaleStrategy.podsToDelete` (the ones the handler must look up).
pub fn added_pods_to_delete(new: &CloneSet, old: Option<&CloneSet>) -> Vec<String> {
    let list = |cs: &CloneSet| -> Vec<String> {
        cs.spec
            .scale_strategy
            .as_ref()
            .and_then(|s| s.pods_to_delete.clone())
            .unwrap_or_default()
    };
    let before: BTreeSet<String> = old.map(list).unwrap_or_default().into_iter().collect();
    list(new)
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect()
}

/// Checks the pods newly listed in `podsToDelete` (looked up by the handler; None = not found):
/// each must exist, not be terminating, and be controlled by this CloneSet (OpenKruise's v1alpha1
/// webhook; kruise-rs checks v1beta1 too, decision 2). The path carries the name's index.
pub fn validate_pods_to_delete(
    cs: &CloneSet,
    found: &[(String, Option<k8s_openapi::api::core::v1::Pod>)],
) -> Vec<FieldError> {
    let uid = cs.metadata.uid.as_deref().unwrap_or_default();
    let ns = cs.metadata.namespace.as_deref().unwrap_or("default");
    let listed: Vec<String> = cs
        .spec
        .scale_strategy
        .as_ref()
        .and_then(|s| s.pods_to_delete.clone())
        .unwrap_or_default();
    found
        .iter()
        .filter_map(|(name, pod)| {
            let why = match pod {
                None => format!(
                    "there is no pod of this name in namespace {ns:?}; list only pods of this CloneSet"
                ),
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    "the pod is already being deleted; remove it from the list".to_string()
                }
                Some(p)
                    if !p.metadata.owner_references.iter().flatten().any(|o| {
                        o.controller == Some(true) && !uid.is_empty() && o.uid == uid
                    }) =>
                {
                    "the pod is not owned by this CloneSet; list only pods of this CloneSet"
                        .to_string()
                }
                Some(_) => return None,
            };
            let path = match listed.iter().position(|n| n == name) {
                Some(i) => format!("spec.scaleStrategy.podsToDelete[{i}]"),
                None => "spec.scaleStrategy.podsToDelete".to_string(),
            };
            Some(FieldError::invalid(path, name.as_str(), why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kruise_crds::{CloneSetScaleStrategy, CloneSetUpdateStrategy, UpdatePriorityWeightTerm};

    fn valid() -> CloneSet {
        let labels: BTreeMap<String, String> = [("app".to_string(), "demo".to_string())].into();
        CloneSet::new(
            "demo",
            CloneSetSpec {
                replicas: Some(3),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some("nginx:1.25".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
        )
    }

    fn us(f: impl FnOnce(&mut CloneSetUpdateStrategy)) -> CloneSet {
        let mut cs = valid();
        let mut u = CloneSetUpdateStrategy::default();
        f(&mut u);
        cs.spec.update_strategy = Some(u);
        cs
    }

    fn msgs(cs: &CloneSet) -> Vec<String> {
        validate_cloneset(cs, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn s(v: &str) -> Option<IntOrString> {
        Some(IntOrString::String(v.into()))
    }
    fn i(v: i32) -> Option<IntOrString> {
        Some(IntOrString::Int(v))
    }

    #[test]
    fn valid_passes() {
        assert!(msgs(&valid()).is_empty(), "{:?}", msgs(&valid()));
        assert!(
            msgs(&us(|u| {
                u.type_ = Some(CloneSetUpdateStrategyType::InPlaceIfPossible);
                u.partition = s("50%");
                u.max_unavailable = s("20%");
                u.max_surge = i(1);
            }))
            .is_empty()
        );
    }

    #[test]
    fn quantities_parse_as_kubernetes_parses_them() {
        // accepted by apimachinery's ParseQuantity (including its odd corners: "+", ".", "-")
        for q in [
            "0", "1", "500m", "1.5", ".5", "5.", "128Mi", "1Gi", "2G", "1e3", "1E-3", "1e+3", "-1",
            "+2k", "100n", "3u", "1Ei", "1E", "+", ".", "-", "007", " 1 ", "Mi",
        ] {
            assert!(is_quantity(q), "{q} should be a quantity");
        }
        // refused by it
        for q in [
            "", " ", "lots", "1Gb", "1 Gi", "1.5.5", "1e", "1ki", "1MiB", "1e3.5", "--1", "1m3",
            "0x10",
        ] {
            assert!(!is_quantity(q), "{q} should not be a quantity");
        }
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, CloneSet, &str)> = vec![
            (
                "negative replicas",
                {
                    let mut c = valid();
                    c.spec.replicas = Some(-1);
                    c
                },
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "empty selector",
                {
                    let mut c = valid();
                    c.spec.selector = LabelSelector::default();
                    c
                },
                "spec.selector: Invalid value: \"\": empty selector is invalid for cloneset",
            ),
            (
                "selector mismatch",
                {
                    let mut c = valid();
                    c.spec.selector.match_labels =
                        Some([("app".to_string(), "x".to_string())].into());
                    c
                },
                "spec.template.metadata.labels: Invalid value:",
            ),
            (
                "restart policy",
                {
                    let mut c = valid();
                    c.spec.template.spec.as_mut().unwrap().restart_policy = Some("Never".into());
                    c
                },
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ),
            (
                "active deadline",
                {
                    let mut c = valid();
                    c.spec
                        .template
                        .spec
                        .as_mut()
                        .unwrap()
                        .active_deadline_seconds = Some(5);
                    c
                },
                "spec.template.spec.activeDeadlineSeconds: Forbidden",
            ),
            (
                "cpu limit that is not a quantity",
                {
                    let mut c = valid();
                    c.spec.template.spec.as_mut().unwrap().containers[0].resources =
                        Some(k8s_openapi::api::core::v1::ResourceRequirements {
                            limits: Some(
                                [(
                                    "cpu".to_string(),
                                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                        "lots".into(),
                                    ),
                                )]
                                .into(),
                            ),
                            ..Default::default()
                        });
                    c
                },
                "spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: \"lots\": must be a quantity such as 500m",
            ),
            (
                "no image",
                {
                    let mut c = valid();
                    c.spec.template.spec.as_mut().unwrap().containers[0].image = None;
                    c
                },
                "spec.template.spec.containers[0].image: Required value",
            ),
            (
                "partition not a percent",
                us(|u| u.partition = s("5")),
                "spec.updateStrategy.partition: Invalid value: \"5\": invalid value for IntOrString: invalid type: string is not a percentage",
            ),
            (
                "partition negative",
                us(|u| u.partition = i(-1)),
                "spec.updateStrategy.partition: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "percent over 100",
                us(|u| u.max_unavailable = s("120%")),
                "spec.updateStrategy.maxUnavailable: Invalid value: \"120%\": must not be greater than 100%",
            ),
            (
                "bad surge",
                us(|u| u.max_surge = s("x%")),
                "spec.updateStrategy.maxSurge: Invalid value: \"x%\"",
            ),
            (
                "surge with InPlaceOnly",
                us(|u| {
                    u.type_ = Some(CloneSetUpdateStrategyType::InPlaceOnly);
                    u.max_surge = i(1);
                }),
                "spec.updateStrategy.maxSurge: Invalid value: \"1\": can not use maxSurge with strategy type InPlaceOnly",
            ),
            (
                "both below one",
                us(|u| {
                    u.max_unavailable = i(0);
                    u.max_surge = i(0);
                }),
                "spec.updateStrategy.maxUnavailable: Invalid value: \"0\": maxUnavailable and maxSurge should not both be less than 1",
            ),
            (
                "weight out of range",
                us(|u| {
                    u.priority_strategy = Some(UpdatePriorityStrategy {
                        weight_priority: Some(vec![UpdatePriorityWeightTerm {
                            weight: 101,
                            match_selector: LabelSelector {
                                match_labels: Some([("a".to_string(), "b".to_string())].into()),
                                ..Default::default()
                            },
                        }]),
                        order_priority: None,
                    })
                }),
                "spec.updateStrategy.priorityStrategy.weightPriority[0].weight: Invalid value: 101",
            ),
            (
                "scatter dup",
                us(|u| {
                    u.scatter_strategy = Some(vec![
                        UpdateScatterTerm {
                            key: "k".into(),
                            value: "v".into(),
                        },
                        UpdateScatterTerm {
                            key: "k".into(),
                            value: "v".into(),
                        },
                    ])
                }),
                "spec.updateStrategy.scatterStrategy: Duplicate value: \"k:v\"",
            ),
            (
                "podsToDelete dup",
                {
                    let mut c = valid();
                    c.spec.scale_strategy = Some(CloneSetScaleStrategy {
                        pods_to_delete: Some(vec!["a".into(), "a".into()]),
                        ..Default::default()
                    });
                    c
                },
                "spec.scaleStrategy.podsToDelete[1]: Duplicate value: \"a\"",
            ),
            (
                "progress deadline",
                {
                    let mut c = valid();
                    c.spec.min_ready_seconds = Some(10);
                    c.spec.progress_deadline_seconds = Some(5);
                    c
                },
                "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
            ),
        ];
        for (name, cs, want) in cases {
            let got = msgs(&cs);
            assert!(got.iter().any(|m| m.starts_with(want)), "{name}: {got:?}");
        }
        // maxUnavailable 0 with maxSurge 1 is fine (quirk 12 fixed).
        assert!(
            msgs(&us(|u| {
                u.max_unavailable = i(0);
                u.max_surge = i(1);
            }))
            .is_empty()
        );
        // 0 replicas: both 0 allowed.
        let mut zero = us(|u| {
            u.max_unavailable = i(0);
            u.max_surge = i(0);
        });
        zero.spec.replicas = Some(0);
        assert!(msgs(&zero).is_empty());
    }

    #[test]
    fn updates() {
        let old = valid();
        let mut new = valid();
        new.spec.selector.match_expressions = Some(vec![]);
        new.spec
            .selector
            .match_labels
            .as_mut()
            .unwrap()
            .insert("x".into(), "y".into());
        new.spec
            .template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("x".into(), "y".into());
        let errs = validate_cloneset(&new, Some(&old));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0]
                .to_string()
                .starts_with("spec: Forbidden: updates to cloneset spec")
        );
        // InPlaceOnly: images may change, nothing else.
        let mut old = valid();
        old.spec.update_strategy = Some(CloneSetUpdateStrategy {
            type_: Some(CloneSetUpdateStrategyType::InPlaceOnly),
            ..Default::default()
        });
        let mut img = old.clone();
        img.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.26".into());
        assert!(validate_cloneset(&img, Some(&old)).is_empty());
        let mut env = img.clone();
        env.spec.template.spec.as_mut().unwrap().containers[0].command = Some(vec!["sh".into()]);
        let errs = validate_cloneset(&env, Some(&old));
        assert_eq!(
            errs[0].to_string(),
            "spec.template: Forbidden: only allowed to update images in spec for InPlaceOnly"
        );
    }

    #[test]
    fn pods_to_delete() {
        use k8s_openapi::api::core::v1::Pod;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
        let mut cs = valid();
        cs.metadata.uid = Some("u1".into());
        let mut old = cs.clone();
        old.spec.scale_strategy = Some(CloneSetScaleStrategy {
            pods_to_delete: Some(vec!["a".into()]),
            ..Default::default()
        });
        let mut new = cs.clone();
        new.spec.scale_strategy = Some(CloneSetScaleStrategy {
            pods_to_delete: Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
            ..Default::default()
        });
        assert_eq!(added_pods_to_delete(&new, Some(&old)), vec!["b", "c", "d"]);
        let owned = |uid: &str| Pod {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut dying = owned("u1");
        dying.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let errs = validate_pods_to_delete(
            &new,
            &[
                ("b".into(), Some(owned("u1"))),
                ("c".into(), Some(owned("other"))),
                ("d".into(), None),
                ("e".into(), Some(dying)),
            ],
        );
        let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                r#"spec.scaleStrategy.podsToDelete[2]: Invalid value: "c": the pod is not owned by this CloneSet; list only pods of this CloneSet"#,
                r#"spec.scaleStrategy.podsToDelete[3]: Invalid value: "d": there is no pod of this name in namespace "default"; list only pods of this CloneSet"#,
                r#"spec.scaleStrategy.podsToDelete: Invalid value: "e": the pod is already being deleted; remove it from the list"#,
            ]
        );
    }

    #[test]
    fn volume_claim_template_mounts_pass() {
        use k8s_openapi::api::core::v1::{PersistentVolumeClaim, VolumeMount};
        let mut cs = valid();
        cs.spec.template.spec.as_mut().unwrap().containers[0].volume_mounts =
            Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/d".into(),
                ..Default::default()
            }]);
        assert!(msgs(&cs)[0].starts_with("spec.template.spec.containers[0].volumeMounts[0].name: Invalid value: \"data\": not found"), "{:?}", msgs(&cs));
        cs.spec.volume_claim_templates = Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                ..Default::default()
            },
            ..Default::default()
        }]);
        assert!(msgs(&cs).is_empty());
    }
}
