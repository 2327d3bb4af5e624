//! SidecarSet validation (the `vsidecarset` webhook, spec §3): metadata, canary, spec, the UPDATE
//! checks against the old object and the conflicts with other SidecarSets. Runs on a defaulted
//! object. Besides OpenKruise's rules it refuses what OpenKruise lets through (decision 2): empty
//! `hotUpgradeEmptyImage`, hot sidecar names whose `-1`/`-2` slots are invalid, percentages over 100%.

use super::inject::{canary_base, find_revision};
use super::matching::{effective_namespace_selector, selector_is_empty, selectors_overlap};
use super::resources::{MAX_EXPRESSION_LEN, ResourcesError, check_expression};
use crate::field::FieldError;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Container, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::sidecarset::{SIDECARSET_BASE, hot_upgrade_container_names};
use kruise_crds::sidecarset::{
    SidecarContainer, SidecarSet, SidecarSetPatchPolicyType, SidecarSetUpdateStrategy,
    SidecarSetUpdateStrategyType,
};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;

const NAME_MSG: &str = "sidecarset name must consist of alphanumeric characters or '-'";
const NAME_FMT: &str = r"^[a-zA-Z0-9\-]+$";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn re(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}
static NAME_RE: LazyLock<Option<Regex>> = LazyLock::new(|| re(NAME_FMT));
static DNS1123_LABEL_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(&format!("^{DNS1123_LABEL_FMT}$")));
static DNS1123_SUBDOMAIN_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(&format!(r"^{DNS1123_LABEL_FMT}(\.{DNS1123_LABEL_FMT})*$")));
static QUALIFIED_NAME_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(&format!("^{QUALIFIED_NAME_FMT}$")));
static LABEL_VALUE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(&format!("^({QUALIFIED_NAME_FMT})?$")));
static PERCENT_RE: LazyLock<Option<Regex>> = LazyLock::new(|| re("^[0-9]+%$"));

fn matches(r: &LazyLock<Option<Regex>>, s: &str) -> bool {
    r.as_ref().is_some_and(|r| r.is_match(s))
}

/// Validates a (defaulted) SidecarSet on CREATE (`old == None`) or UPDATE. `others` are the other
/// SidecarSets of the cluster (the object itself may be among them; it is skipped by name) and
/// `revisions` the ControllerRevisions of the Kruise namespace (for `injectionStrategy.revision`).
pub fn validate_sidecarset(
    new: &SidecarSet,
    old: Option<&SidecarSet>,
    others: &[SidecarSet],
    revisions: &[ControllerRevision],
) -> Vec<FieldError> {
    let mut errs = validate_metadata(new);
    errs.extend(validate_canary(new, old, others));
    errs.extend(validate_spec(new, revisions));
    if let Some(old) = old {
        errs.extend(validate_update(new, old));
    }
    if errs.is_empty() {
        errs.extend(validate_conflicts(new, others));
    }
    errs
}

fn validate_metadata(ss: &SidecarSet) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = ss.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() && ss.metadata.generate_name.is_none() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !name.is_empty() {
        if !matches(&NAME_RE, name) {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                format!(
                    "{NAME_MSG} (e.g. 'example-com', regex used for validation is '{NAME_FMT}')"
                ),
            ));
        }
        if name.len() > 63 {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 63 characters",
            ));
        }
    }
    if ss
        .metadata
        .namespace
        .as_deref()
        .is_some_and(|n| !n.is_empty())
    {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    for (k, _) in ss.metadata.annotations.iter().flatten() {
        for msg in qualified_name_errors(&k.to_lowercase()) {
            errs.push(FieldError::invalid("metadata.annotations", k, msg));
        }
    }
    errs
}

fn validate_canary(
    new: &SidecarSet,
    old: Option<&SidecarSet>,
    others: &[SidecarSet],
) -> Vec<FieldError> {
    let Some(base) = canary_base(new) else {
        return Vec::new();
    };
    let path = format!("metadata.annotations[{SIDECARSET_BASE}]");
    let name = new.metadata.name.as_deref().unwrap_or_default();
    if base == name {
        return vec![FieldError::invalid(
            path,
            base,
            "base sidecarSet cannot be itself",
        )];
    }
    let mut errs = Vec::new();
    if let Some(old) = old {
        let old_base = old
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIDECARSET_BASE))
            .map(String::as_str);
        if old_base != Some(base) {
            errs.push(FieldError::invalid(
                path.clone(),
                base,
                format!("annotations[{SIDECARSET_BASE}] is immutable"),
            ));
        }
    }
    match others
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(base))
    {
        None => errs.push(FieldError::invalid(
            path,
            base,
            format!(
                "fetch base sidecarSet[{base}] failed: sidecarsets.apps.kruise.io \"{base}\" not found"
            ),
        )),
        Some(b) if canary_base(b).is_some() => errs.push(FieldError::invalid(
            path,
            base,
            "base sidecarSet cannot be canary",
        )),
        Some(_) => {}
    }
    let strategy_type = new.spec.update_strategy.as_ref().and_then(|s| s.type_);
    if strategy_type != Some(SidecarSetUpdateStrategyType::NotUpdate) {
        errs.push(FieldError::invalid(
            "spec.updateStrategy.type",
            "RollingUpdate",
            "RollingUpdate is not supported for canary sidecarSet",
        ));
    }
    errs
}

fn validate_spec(ss: &SidecarSet, revisions: &[ControllerRevision]) -> Vec<FieldError> {
    let spec = &ss.spec;
    let mut errs = Vec::new();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_ != Some(SidecarSetUpdateStrategyType::NotUpdate);
    if rolling {
        for c in spec.init_containers.iter().flatten() {
            if c.is_native_sidecar() {
                errs.push(FieldError::required(
                    "spec.updateStrategy",
                    "The initContainer in-place upgrade is not currently supported.",
                ));
            }
        }
    }
    match &spec.selector {
        None => errs.push(FieldError::required(
            "spec.selector",
            "no selector defined for SidecarSet",
        )),
        Some(sel) => errs.extend(validate_selector(sel, "spec.selector")),
    }
    if let Some(sel) = &spec.namespace_selector {
        errs.extend(validate_selector(sel, "spec.namespaceSelector"));
    }
    if let Some(ns) = spec.namespace.as_deref().filter(|n| !n.is_empty())
        && (!matches(&DNS1123_LABEL_RE, ns) || ns.len() > 63)
    {
        errs.push(FieldError::invalid(
            "spec.namespace",
            ns,
            format!("{DNS1123_LABEL_MSG} (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL_FMT}')"),
        ));
    }
    errs.extend(validate_injection_strategy(ss, revisions));
    errs.extend(validate_update_strategy(&strategy));
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let containers = spec.containers.as_deref().unwrap_or_default();
    if inits.is_empty() && containers.is_empty() {
        errs.push(FieldError::required(
            "spec",
            "no initContainer or container defined for SidecarSet",
        ));
    } else {
        errs.extend(validate_containers(
            inits,
            containers,
            spec.volumes.as_deref().unwrap_or_default(),
        ));
    }
    errs.extend(validate_patch_pod_metadata(ss));
    errs
}

/// `metav1 ValidateLabelSelector` plus OpenKruise's "empty selector" rule.
fn validate_selector(sel: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        for msg in qualified_name_errors(k) {
            errs.push(FieldError::invalid(format!("{path}.matchLabels"), k, msg));
        }
        if let Some(msg) = label_value_error(v) {
            errs.push(FieldError::invalid(format!("{path}.matchLabels"), v, msg));
        }
    }
    for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let has_values = r.values.as_ref().is_some_and(|v| !v.is_empty());
        match r.operator.as_str() {
            "In" | "NotIn" if !has_values => errs.push(FieldError::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => errs.push(FieldError::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{p}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for msg in qualified_name_errors(&r.key) {
            errs.push(FieldError::invalid(format!("{p}.key"), &r.key, msg));
        }
        for (j, v) in r.values.iter().flatten().enumerate() {
            if let Some(msg) = label_value_error(v) {
                errs.push(FieldError::invalid(format!("{p}.values[{j}]"), v, msg));
            }
        }
    }
    if selector_is_empty(sel) {
        errs.push(FieldError::invalid(
            path,
            "{}",
            "empty selector is not valid for sidecarset.",
        ));
    }
    errs
}

fn validate_injection_strategy(
    ss: &SidecarSet,
    revisions: &[ControllerRevision],
) -> Vec<FieldError> {
    let Some(rev) = ss
        .spec
        .injection_strategy
        .as_ref()
        .and_then(|s| s.revision.as_ref())
    else {
        return Vec::new();
    };
    let path = "spec.injectionStrategy.revision";
    if rev.revision_name.is_none() && rev.custom_version.is_none() {
        return vec![FieldError::invalid(
            path,
            "",
            "revisionName and customVersion cannot be empty simultaneously",
        )];
    }
    match find_revision(ss, rev, revisions) {
        Ok(_) => Vec::new(),
        Err(detail) => {
            let value = rev
                .revision_name
                .clone()
                .or_else(|| rev.custom_version.clone())
                .unwrap_or_default();
            vec![FieldError::invalid(
                path,
                value,
                format!("Cannot find specific ControllerRevision, err: {detail}"),
            )]
        }
    }
}

/// OpenKruise's `ValidatePositiveIntOrPercent`, plus a 100% ceiling (decision 2).
fn validate_int_or_percent(v: &IntOrString, path: &str) -> Vec<FieldError> {
    match v {
        IntOrString::Int(n) if *n < 0 => vec![FieldError::invalid(
            path,
            n,
            "must be greater than or equal to 0",
        )],
        IntOrString::Int(_) => Vec::new(),
        IntOrString::String(s) if !matches(&PERCENT_RE, s) => {
            vec![FieldError::invalid(path, s, PERCENT_MSG)]
        }
        IntOrString::String(s) => {
            let pct: u64 = s.trim_end_matches('%').parse().unwrap_or(u64::MAX);
            if pct > 100 {
                vec![FieldError::invalid(
                    path,
                    s,
                    "must not be greater than 100%",
                )]
            } else {
                Vec::new()
            }
        }
    }
}

fn validate_update_strategy(s: &SidecarSetUpdateStrategy) -> Vec<FieldError> {
    let base = "spec.updateStrategy";
    let mut errs = Vec::new();
    if let Some(sel) = &s.selector {
        errs.extend(validate_selector(sel, &format!("{base}.selector")));
        let partition_set = match &s.partition {
            None | Some(IntOrString::Int(0)) => false,
            Some(_) => true,
        };
        if partition_set {
            let value = match &s.partition {
                Some(IntOrString::Int(n)) => n.to_string(),
                Some(IntOrString::String(p)) => p.clone(),
                None => String::new(),
            };
            errs.push(FieldError::invalid(
                base,
                value,
                "Partition and Selector cannot be used together",
            ));
        }
    }
    if let Some(p) = &s.partition {
        errs.extend(validate_int_or_percent(p, &format!("{base}.partition")));
    }
    if let Some(m) = &s.max_unavailable {
        errs.extend(validate_int_or_percent(
            m,
            &format!("{base}.maxUnavailable"),
        ));
    }
    if let Some(p) = &s.priority_strategy {
        let pp = format!("{base}.priorityStrategy");
        let weights = p.weight_priority.as_deref().unwrap_or_default();
        let orders = p.order_priority.as_deref().unwrap_or_default();
        if !weights.is_empty() && !orders.is_empty() {
            errs.push(FieldError::invalid(
                pp.clone(),
                "",
                "only one of weightPriority and orderPriority can be used",
            ));
        }
        for (i, w) in weights.iter().enumerate() {
            let wp = format!("{pp}.weightPriority[{i}]");
            if !(0..=100).contains(&w.weight) {
                errs.push(FieldError::invalid(
                    format!("{wp}.weight"),
                    w.weight,
                    "weight must be valid number in the range 1-100",
                ));
            }
            if selector_is_empty(&w.match_selector) {
                errs.push(FieldError::invalid(
                    format!("{wp}.matchSelector"),
                    "{}",
                    "selector can not be empty",
                ));
            } else {
                errs.extend(validate_selector(
                    &w.match_selector,
                    &format!("{wp}.matchSelector"),
                ));
            }
        }
        for (i, o) in orders.iter().enumerate() {
            if o.ordered_key.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{pp}.orderPriority[{i}].orderedKey"),
                    "",
                    "order key can not be empty",
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, t) in s.scatter_strategy.iter().flatten().enumerate() {
        let p = format!("{base}.scatterStrategy[{i}]");
        if t.key.is_empty() {
            errs.push(FieldError::required(
                format!("{p}.key"),
                "key should not be empty",
            ));
        }
        if !seen.insert((t.key.clone(), t.value.clone())) {
            errs.push(FieldError::invalid(
                p,
                format!("{}={}", t.key, t.value),
                format!("duplicated key={} value={}", t.key, t.value),
            ));
        }
    }
    errs
}

fn validate_containers(
    inits: &[SidecarContainer],
    containers: &[SidecarContainer],
    volumes: &[Volume],
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let p = format!("spec.containers[{i}]");
        if c.pod_inject_policy.is_none() {
            errs.push(FieldError::invalid(
                format!("{p}.podInjectPolicy"),
                "",
                "unsupported pod inject policy",
            ));
        }
        if c.share_volume_policy
            .as_ref()
            .and_then(|s| s.type_)
            .is_none()
        {
            errs.push(FieldError::invalid(
                format!("{p}.shareVolumePolicy"),
                "",
                "unsupported share volume policy",
            ));
        }
        errs.extend(validate_sidecar_extras(c, &p, false));
    }
    for (i, c) in inits.iter().enumerate() {
        errs.extend(validate_sidecar_extras(
            c,
            &format!("spec.initContainers[{i}]"),
            true,
        ));
    }
    // what k8s pod validation checks on OpenKruise's fake pod
    let vol_names = validate_volumes(volumes, &mut errs);
    let mut names = HashSet::new();
    let all = inits
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.initContainers[{i}]"), c, true))
        .chain(
            containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.containers[{i}]"), c, false)),
        );
    for (p, c, init) in all {
        let name = &c.container.name;
        if !names.insert(name.clone()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        }
        errs.extend(validate_container(&c.container, &p, init, &vol_names));
    }
    errs
}

/// Volume names (DNS labels, unique) and exactly one source per volume.
fn validate_volumes(volumes: &[Volume], errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else if let Some(msg) = dns_label_error(&v.name) {
            errs.push(FieldError::invalid(format!("{p}.name"), &v.name, msg));
        }
        if !names.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(format!("{p}.name"), &v.name));
        }
        let sources = serde_json::to_value(v)
            .ok()
            .and_then(|j| {
                j.as_object()
                    .map(|o| o.keys().filter(|k| *k != "name").count())
            })
            .unwrap_or(0);
        if sources == 0 {
            errs.push(FieldError::required(p, "must specify a volume type"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                p,
                "may not specify more than 1 volume type",
            ));
        }
    }
    names
}

/// The container rules of k8s pod validation that sidecars commonly trip on.
fn validate_container(
    c: &Container,
    p: &str,
    init: bool,
    volumes: &HashSet<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{p}.name"), ""));
    } else if let Some(msg) = dns_label_error(&c.name) {
        errs.push(FieldError::invalid(format!("{p}.name"), &c.name, msg));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(format!("{p}.image"), ""));
    }
    if let Some(pol) = c.image_pull_policy.as_deref()
        && !["Always", "IfNotPresent", "Never"].contains(&pol)
    {
        errs.push(FieldError::not_supported(
            format!("{p}.imagePullPolicy"),
            pol,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    if let Some(pol) = c.termination_message_policy.as_deref()
        && !["File", "FallbackToLogsOnError"].contains(&pol)
    {
        errs.push(FieldError::not_supported(
            format!("{p}.terminationMessagePolicy"),
            pol,
            &["File", "FallbackToLogsOnError"],
        ));
    }
    if let Some(rp) = c.restart_policy.as_deref() {
        if !init {
            errs.push(FieldError::forbidden(
                format!("{p}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        } else if rp != "Always" {
            errs.push(FieldError::not_supported(
                format!("{p}.restartPolicy"),
                rp,
                &["Always"],
            ));
        }
    }
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        if !(1..=65535).contains(&port.container_port) {
            errs.push(FieldError::invalid(
                format!("{pp}.containerPort"),
                port.container_port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(proto) = port.protocol.as_deref()
            && !["TCP", "UDP", "SCTP"].contains(&proto)
        {
            errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        if e.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.env[{i}].name"), ""));
        }
    }
    let device_paths: HashSet<&str> = c
        .volume_devices
        .iter()
        .flatten()
        .map(|d| d.device_path.as_str())
        .collect();
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{p}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::invalid(
                format!("{mp}.name"),
                &m.name,
                "not found: must match the name of a volume in spec.volumes",
            ));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if device_paths.contains(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must not already exist as a path in volumeDevices",
            ));
        }
    }
    for (i, d) in c.volume_devices.iter().flatten().enumerate() {
        let dp = format!("{p}.volumeDevices[{i}]");
        if !volumes.contains(&d.name) {
            errs.push(FieldError::invalid(
                format!("{dp}.name"),
                &d.name,
                "not found: must match the name of a volume in spec.volumes",
            ));
        }
        if d.device_path.is_empty() {
            errs.push(FieldError::required(format!("{dp}.devicePath"), ""));
        }
    }
    errs
}

/// The kruise fields of a sidecar: transferEnv, resourcesPolicy and the hot-upgrade settings.
fn validate_sidecar_extras(c: &SidecarContainer, p: &str, init: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in c.transfer_env.iter().flatten().enumerate() {
        let Some(fr) = t
            .source_container_name_from
            .as_ref()
            .and_then(|s| s.field_ref.as_ref())
        else {
            continue;
        };
        let fp = format!("{p}.transferEnv[{i}].sourceContainerNameFrom.fieldRef");
        match fr.api_version.as_deref() {
            None | Some("") => errs.push(FieldError::required(format!("{fp}.apiVersion"), "")),
            Some("v1") => {}
            Some(other) => errs.push(FieldError::not_supported(
                format!("{fp}.apiVersion"),
                other,
                &["v1"],
            )),
        }
        if fr.field_path.is_empty() {
            errs.push(FieldError::required(format!("{fp}.fieldPath"), ""));
        } else if let Some(msg) = transfer_field_path_error(&fr.field_path) {
            errs.push(FieldError::invalid(
                format!("{fp}.fieldPath"),
                &fr.field_path,
                format!("error converting fieldPath: {msg}"),
            ));
        }
    }
    if let Some(rp) = &c.resources_policy {
        let rpp = format!("{p}.resourcesPolicy");
        let res = c.container.resources.as_ref();
        let has_resources = res.is_some_and(|r| {
            r.limits.as_ref().is_some_and(|l| !l.is_empty())
                || r.requests.as_ref().is_some_and(|l| !l.is_empty())
        });
        if has_resources {
            errs.push(FieldError::invalid(
                rpp.clone(),
                "",
                "resourcesPolicy and resources cannot be configured together",
            ));
        }
        if init && !c.is_native_sidecar() {
            errs.push(FieldError::invalid(
                rpp.clone(),
                "",
                "resourcesPolicy is only supported for containers with RestartPolicy Always",
            ));
        }
        match rp.target_containers_name_regex.as_deref() {
            Some("") => errs.push(FieldError::invalid(
                format!("{rpp}.targetContainersNameRegex"),
                "",
                "invalid empty regex",
            )),
            Some(r) => {
                if let Err(e) = Regex::new(r) {
                    errs.push(FieldError::invalid(
                        format!("{rpp}.targetContainersNameRegex"),
                        r,
                        format!("invalid regex pattern: {e}"),
                    ));
                }
            }
            None => {}
        }
        let exprs = &rp.resources_expr;
        if exprs.limits.is_none() && exprs.requests.is_none() {
            errs.push(FieldError::invalid(
                format!("{rpp}.resourcesExpr"),
                "",
                "at least one of limits or requests must be configured",
            ));
        }
        for (kind, e) in [("limits", &exprs.limits), ("requests", &exprs.requests)] {
            let Some(e) = e else { continue };
            for (res, expr) in [("cpu", &e.cpu), ("memory", &e.memory)] {
                let Some(expr) = expr.as_deref() else {
                    continue;
                };
                let path = format!("{rpp}.resourcesExpr.{kind}.{res}");
                match check_expression(expr) {
                    Ok(()) => {}
                    Err(ResourcesError::TooLong { .. }) => {
                        errs.push(FieldError::too_long(path, MAX_EXPRESSION_LEN));
                    }
                    Err(err) => errs.push(FieldError::invalid(path, expr, err.to_string())),
                }
            }
        }
    }
    if c.is_hot_upgrade() {
        let empty = c
            .upgrade_strategy
            .as_ref()
            .and_then(|s| s.hot_upgrade_empty_image.as_deref())
            .unwrap_or_default();
        if empty.trim().is_empty() {
            errs.push(FieldError::required(
                format!("{p}.upgradeStrategy.hotUpgradeEmptyImage"),
                "hotUpgradeEmptyImage is required when upgradeType is HotUpgrade",
            ));
        }
        let (_, n2) = hot_upgrade_container_names(&c.container.name);
        if !c.container.name.is_empty() && dns_label_error(&n2).is_some() {
            errs.push(FieldError::invalid(
                format!("{p}.name"),
                &c.container.name,
                "hot upgrade container names {name}-1 and {name}-2 must be valid container names (at most 61 characters)",
            ));
        }
    }
    errs
}

/// Only `metadata.labels['k']` and `metadata.annotations['k']` with a qualified-name key.
fn transfer_field_path_error(path: &str) -> Option<String> {
    let key = path
        .strip_prefix("metadata.labels")
        .or_else(|| path.strip_prefix("metadata.annotations"))
        .and_then(|r| r.strip_prefix("['"))
        .and_then(|r| r.strip_suffix("']"));
    match key {
        None => Some(format!("field label not supported: {path}")),
        Some(k) => {
            let errs = qualified_name_errors(k);
            (!errs.is_empty()).then(|| format!("invalid key {k:?}: {}", errs.join(", ")))
        }
    }
}

fn validate_patch_pod_metadata(ss: &SidecarSet) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut keys = HashSet::new();
    for (i, p) in ss.spec.patch_pod_metadata.iter().flatten().enumerate() {
        let pp = format!("spec.patchPodMetadata[{i}]");
        let annotations = p.annotations.clone().unwrap_or_default();
        if annotations.is_empty() {
            errs.push(FieldError::required(
                format!("{pp}.annotations"),
                "no annotations defined for SidecarSet",
            ));
        }
        if p.patch_policy.is_none() {
            errs.push(FieldError::required(
                format!("{pp}.patchPolicy"),
                "no patchPolicy defined for patchPodMetadata",
            ));
        }
        for k in annotations.keys() {
            for msg in qualified_name_errors(&k.to_lowercase()) {
                errs.push(FieldError::invalid(format!("{pp}.annotations"), k, msg));
            }
            if !keys.insert(k.clone()) {
                errs.push(FieldError::invalid(
                    format!("{pp}.annotations"),
                    k,
                    format!("patch annotation[{k}] already exist"),
                ));
            }
        }
    }
    errs
}

/// UPDATE: an existing container keeps its upgradeType, and no container may be added or renamed.
fn validate_update(new: &SidecarSet, old: &SidecarSet) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let old_types: BTreeMap<&str, _> = old
        .spec
        .containers
        .iter()
        .flatten()
        .map(|c| {
            (
                c.container.name.as_str(),
                c.upgrade_strategy.as_ref().and_then(|s| s.upgrade_type),
            )
        })
        .collect();
    for (i, c) in new.spec.containers.iter().flatten().enumerate() {
        let name = c.container.name.as_str();
        let new_type = c.upgrade_strategy.as_ref().and_then(|s| s.upgrade_type);
        match old_types.get(name) {
            None => errs.push(FieldError::invalid(
                format!("spec.containers[{i}].name"),
                name,
                format!("container {name} is not found"),
            )),
            Some(Some(t)) if new_type != Some(*t) => errs.push(FieldError::invalid(
                format!("spec.containers[{i}].upgradeStrategy.upgradeType"),
                name,
                format!("container {name} upgradeType is immutable"),
            )),
            Some(_) => {}
        }
    }
    errs
}

/// Spec §3.4: names and volumes shared with SidecarSets that may select the same pods. Unlike
/// OpenKruise, a base is not checked against its own canaries.
fn validate_conflicts(new: &SidecarSet, others: &[SidecarSet]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = new.metadata.name.as_deref().unwrap_or_default();
    let base = canary_base(new);
    for other in others {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        // a canary and its base share names by design, in both directions (OpenKruise only skips
        // the base when validating the canary, so a base with a canary could not be updated)
        let pair = Some(other_name) == base || canary_base(other) == Some(name);
        if other_name == name || pair || !overlapping(new, other) {
            continue;
        }
        let names = |l: &Option<Vec<SidecarContainer>>| -> BTreeSet<String> {
            l.iter()
                .flatten()
                .map(|c| c.container.name.clone())
                .collect()
        };
        let other_inits = names(&other.spec.init_containers);
        let other_containers = names(&other.spec.containers);
        for (field, list, theirs) in [
            ("initContainers", &new.spec.init_containers, &other_inits),
            ("containers", &new.spec.containers, &other_containers),
        ] {
            for (i, c) in list.iter().flatten().enumerate() {
                if theirs.contains(&c.container.name) {
                    errs.push(FieldError::invalid(
                        format!("spec.{field}[{i}].name"),
                        &c.container.name,
                        format!(
                            "container {} already exist in {other_name}",
                            c.container.name
                        ),
                    ));
                }
            }
        }
        for (i, v) in new.spec.volumes.iter().flatten().enumerate() {
            let theirs = other
                .spec
                .volumes
                .iter()
                .flatten()
                .find(|o| o.name == v.name);
            if theirs.is_some_and(|o| o != v) {
                errs.push(FieldError::invalid(
                    format!("spec.volumes[{i}].name"),
                    &v.name,
                    format!(
                        "volume {} is in conflict with sidecarset {other_name}",
                        v.name
                    ),
                ));
            }
        }
        let policies = |ss: &SidecarSet| -> BTreeMap<String, SidecarSetPatchPolicyType> {
            let mut m = BTreeMap::new();
            for p in ss.spec.patch_pod_metadata.iter().flatten() {
                let policy = p.patch_policy.unwrap_or(SidecarSetPatchPolicyType::Retain);
                for k in p.annotations.iter().flatten().map(|(k, _)| k) {
                    m.insert(k.clone(), policy);
                }
            }
            m
        };
        let theirs = policies(other);
        for (k, mine) in policies(new) {
            let Some(t) = theirs.get(&k) else { continue };
            use SidecarSetPatchPolicyType::{Overwrite, Retain};
            let conflict = mine != Retain && *t != Retain && (mine == Overwrite || *t == Overwrite);
            if conflict {
                errs.push(FieldError::invalid(
                    "spec.patchPodMetadata",
                    &k,
                    format!("annotation {k} is in conflict with sidecarset {other_name}"),
                ));
            }
        }
    }
    errs
}

/// Two SidecarSets may select the same pod: their namespaces overlap (either side unrestricted, or
/// the namespace selectors overlap) and their pod selectors overlap.
fn overlapping(a: &SidecarSet, b: &SidecarSet) -> bool {
    let ns = match (
        effective_namespace_selector(a),
        effective_namespace_selector(b),
    ) {
        (Some(x), Some(y)) => selectors_overlap(&x, &y),
        _ => true,
    };
    let empty = LabelSelector::default();
    ns && selectors_overlap(
        a.spec.selector.as_ref().unwrap_or(&empty),
        b.spec.selector.as_ref().unwrap_or(&empty),
    )
}

/// The patchPodMetadata whitelist (ConfigMap `kruise-configuration`, key
/// `SidecarSet_PatchPodMetadata_WhiteList`): `whitelist` is that value (`None` when the ConfigMap or
/// key is missing); `defaults_allowed` is the gate `SidecarSetPatchPodMetadataDefaultsAllowed`.
pub fn validate_patch_metadata_whitelist(
    ss: &SidecarSet,
    whitelist: Option<&str>,
    defaults_allowed: bool,
) -> Vec<FieldError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Rule {
        #[serde(default)]
        selector: Option<LabelSelector>,
        #[serde(default)]
        allowed_annotation_key_exprs: Vec<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct WhiteList {
        #[serde(default)]
        rules: Vec<Rule>,
    }
    let patches = ss.spec.patch_pod_metadata.as_deref().unwrap_or_default();
    if patches.is_empty() {
        return Vec::new();
    }
    let path = "spec.patchPodMetadata";
    let Some(raw) = whitelist else {
        return if defaults_allowed {
            Vec::new()
        } else {
            vec![FieldError::invalid(
                path,
                "",
                "SidecarSet patch metadata whitelist not found",
            )]
        };
    };
    let list: WhiteList = match serde_json::from_str(raw) {
        Ok(l) => l,
        Err(e) => {
            return vec![FieldError::invalid(
                path,
                "",
                format!("invalid SidecarSet patch metadata whitelist: {e}"),
            )];
        }
    };
    let labels = ss.metadata.labels.clone().unwrap_or_default();
    let applicable: Vec<&Rule> = list
        .rules
        .iter()
        .filter(|r| {
            r.selector
                .as_ref()
                .is_none_or(|s| super::matching::selector_matches(s, &labels))
        })
        .collect();
    if applicable.is_empty() {
        return if defaults_allowed {
            Vec::new()
        } else {
            vec![FieldError::invalid(
                path,
                "",
                "sidecarSet patch metadata annotation is not allowed",
            )]
        };
    }
    let exprs: Vec<Regex> = applicable
        .iter()
        .flat_map(|r| r.allowed_annotation_key_exprs.iter())
        .filter_map(|e| Regex::new(e).ok())
        .collect();
    let mut errs = Vec::new();
    for (i, p) in patches.iter().enumerate() {
        for k in p.annotations.iter().flatten().map(|(k, _)| k) {
            if !exprs.iter().any(|r| r.is_match(k)) {
                errs.push(FieldError::invalid(
                    format!("{path}[{i}].annotations"),
                    k,
                    format!("sidecarSet patch metadata annotation({k}) is not allowed"),
                ));
            }
        }
    }
    errs
}

fn dns_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    (!matches(&DNS1123_LABEL_RE, s)).then(|| {
        format!("{DNS1123_LABEL_MSG} (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL_FMT}')")
    })
}

fn label_value_error(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    (!matches(&LABEL_VALUE_RE, v)).then(|| {
        format!("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '({QUALIFIED_NAME_FMT})?')")
    })
}

/// True when `s` passes k8s `IsQualifiedName`.
pub(crate) fn is_qualified_name(s: &str) -> bool {
    qualified_name_errors(s).is_empty()
}

/// k8s `IsQualifiedName`: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63 characters.
fn qualified_name_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if s.matches('/').count() > 1 {
        errs.push(format!("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
        return errs;
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_owned());
        } else if p.len() > 253 || !matches(&DNS1123_SUBDOMAIN_RE, p) {
            errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_owned());
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_owned());
    } else if !matches(&QUALIFIED_NAME_RE, name) {
        errs.push(format!("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}')"));
    }
    errs
}
