//! The webhook configurations kruise-manager keeps in the cluster: which paths are called for which
//! kinds, with which `caBundle`, and — decision 1 of the spec — a pod webhook whose `matchConditions`
//! are the union of all SidecarSets' pod selectors, so the API server never calls us (and a manager
//! outage never blocks) for pods no SidecarSet can select.

use crate::sidecarset::routing::{self, PendingRoute};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kruise_crds::SidecarSet;

/// Name of the MutatingWebhookConfiguration kruise-rs owns.
pub const MUTATING_CONFIGURATION: &str = "kruise-rs-mutating-webhook-configuration";
/// Name of the ValidatingWebhookConfiguration kruise-rs owns.
pub const VALIDATING_CONFIGURATION: &str = "kruise-rs-validating-webhook-configuration";
/// Name of the pod webhook's match condition.
pub const POD_MATCH_CONDITION: &str = "kruise-rs-sidecarset-selectors";
/// Longest CEL expression we put in `matchConditions`; beyond it we call for every pod.
pub const MAX_EXPRESSION_LEN: usize = 32 * 1024;
/// Namespaces the pod webhook never sees, besides the suite's own.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// How the API server reaches the webhook.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// `https://host:port` (e.g. the e2e cluster's `https://127.0.0.1:9443`); the path is appended.
    Url(String),
    /// A Service in the cluster.
    Service {
        /// Service namespace.
        namespace: String,
        /// Service name.
        name: String,
        /// Service port.
        port: i32,
    },
}

/// Everything the configurations depend on besides the SidecarSets.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the webhook is.
    pub endpoint: Endpoint,
    /// PEM of the CA that signed the serving certificate.
    pub ca_bundle: String,
    /// `Fail` or `Ignore` for the pod webhook (the others always `Fail`).
    pub pod_failure_policy: String,
    /// The suite's own namespace (never injected).
    pub suite_namespace: String,
    /// More namespaces to exclude from injection.
    pub excluded_namespaces: Vec<String>,
    /// Feature gate `ResourcesDeletionProtection`: DELETEs of objects labelled
    /// `policy.kruise.io/delete-protection` are sent to the webhook.
    pub deletion_protection: bool,
}

/// The pod webhook's match condition for a set of SidecarSets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMatch {
    /// The CEL expression.
    pub expression: String,
    /// True when the union could not be expressed and every pod is sent to the webhook.
    pub fallback: Option<String>,
    /// The routing token the pod webhook's path ends in (a hash of the routes).
    pub token: String,
    /// Routes of admitted SidecarSets the caches do not show yet, kept in an annotation.
    pub pending: Vec<PendingRoute>,
}

pub(crate) fn cel_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

const HAS_LABELS: &str = "has(object.metadata.labels)";
const LABELS: &str = "object.metadata.labels";

fn requirement(r: &LabelSelectorRequirement) -> Result<String, String> {
    let k = cel_str(&r.key);
    let list = || {
        let vals: Vec<String> = r.values.iter().flatten().map(|v| cel_str(v)).collect();
        format!("[{}]", vals.join(", "))
    };
    Ok(match r.operator.as_str() {
        "In" => format!(
            "({HAS_LABELS} && {k} in {LABELS} && {LABELS}[{k}] in {})",
            list()
        ),
        "NotIn" => format!(
            "(!{HAS_LABELS} || !({k} in {LABELS}) || !({LABELS}[{k}] in {}))",
            list()
        ),
        "Exists" => format!("({HAS_LABELS} && {k} in {LABELS})"),
        "DoesNotExist" => format!("(!{HAS_LABELS} || !({k} in {LABELS}))"),
        other => return Err(format!("selector operator {other:?} cannot be expressed")),
    })
}

/// The CEL of one label selector; `None` for an empty selector, which selects no pod.
pub fn selector_cel(sel: &LabelSelector) -> Result<Option<String>, String> {
    let mut terms = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        let k = cel_str(k);
        terms.push(format!(
            "({HAS_LABELS} && {k} in {LABELS} && {LABELS}[{k}] == {})",
            cel_str(v)
        ));
    }
    for r in sel.match_expressions.iter().flatten() {
        terms.push(requirement(r)?);
    }
    Ok((!terms.is_empty()).then(|| terms.join(" && ")))
}

/// [`pod_match_with`] without pending routes (the tests' shorthand).
#[cfg(test)]
pub fn pod_match(sidecarsets: &[SidecarSet]) -> PodMatch {
    pod_match_with(sidecarsets, &[], 0)
}

/// The union of the pod selectors of the SidecarSets that inject (paused ones do not; a SidecarSet
/// with the v1alpha1 `namespace` field only matches pods of that namespace), plus the unexpired
/// pending routes of admitted SidecarSets the caches may not show yet (see [`crate::sidecarset::routing`]), with the routing token of the
/// whole. The probe of the SidecarSet admission is always routed.
pub fn pod_match_with(sidecarsets: &[SidecarSet], pending: &[PendingRoute], now: i64) -> PodMatch {
    let routes = match routing::routes(sidecarsets, pending, now) {
        Ok(r) => r,
        Err(why) => {
            return PodMatch {
                expression: "true".into(),
                token: routing::token(&[("!".to_string(), Some(why.clone()))].into()),
                fallback: Some(why),
                pending: routing::prune_pending(pending, sidecarsets, None, now),
            };
        }
    };
    let token = routing::token(&routes);
    let pending = routing::prune_pending(pending, sidecarsets, None, now);
    let mut parts: Vec<String> = routes.into_iter().filter_map(|(_, cel)| cel).collect();
    parts.sort();
    parts.dedup();
    let n = parts.len();
    let mut expression = std::iter::once(routing::PROBE_CLAUSE.to_string())
        .chain(parts)
        .collect::<Vec<_>>()
        .join(" || ");
    let mut fallback = None;
    if expression.len() > MAX_EXPRESSION_LEN {
        fallback = Some(format!(
            "the union of {n} SidecarSet selectors is {} characters of CEL (limit {MAX_EXPRESSION_LEN})",
            expression.len()
        ));
        expression = "true".into();
    }
    PodMatch {
        expression,
        fallback,
        token,
        pending,
    }
}

fn client_config(opts: &Options, path: &str) -> WebhookClientConfig {
    let ca_bundle = Some(ByteString(opts.ca_bundle.clone().into_bytes()));
    match &opts.endpoint {
        Endpoint::Url(base) => WebhookClientConfig {
            url: Some(format!("{}{path}", base.trim_end_matches('/'))),
            ca_bundle,
            service: None,
        },
        Endpoint::Service {
            namespace,
            name,
            port,
        } => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(path.to_string()),
                port: Some(*port),
            }),
            ca_bundle,
            url: None,
        },
    }
}

/// The path a webhook is called on, without the pod webhook's routing token.
pub fn path_of(cc: &WebhookClientConfig) -> Option<String> {
    let path = if let Some(s) = &cc.service {
        s.path.clone()?
    } else {
        let url = cc.url.as_deref()?;
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        rest[rest.find('/')?..].to_string()
    };
    let pod = kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH;
    Some(match routing::token_of_path(pod, &path) {
        Some(_) => pod.to_string(),
        None => path,
    })
}

fn rule(
    group: &str,
    version: &str,
    resource: &str,
    ops: &[&str],
    scope: &str,
) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![group.to_string()]),
        api_versions: Some(vec![version.to_string()]),
        resources: Some(vec![resource.to_string()]),
        operations: Some(ops.iter().map(|s| s.to_string()).collect()),
        scope: Some(scope.to_string()),
    }
}

/// The apps.kruise.io kinds with webhooks: (singular, plural, scope).
pub const KINDS: [(&str, &str, &str); 5] = [
    ("sidecarset", "sidecarsets", "Cluster"),
    ("cloneset", "clonesets", "Namespaced"),
    ("imagepulljob", "imagepulljobs", "Namespaced"),
    ("imagelistpulljob", "imagelistpulljobs", "Namespaced"),
    ("nodeimage", "nodeimages", "Cluster"),
];

/// Mutating path of a kind, as OpenKruise names it.
pub fn mutate_path(singular: &str) -> String {
    format!("/mutate-apps-kruise-io-v1alpha1-{singular}")
}

/// Validating path of a kind, as OpenKruise names it.
pub fn validate_path(singular: &str) -> String {
    format!("/validate-apps-kruise-io-v1alpha1-{singular}")
}

/// The MutatingWebhookConfiguration: the pod webhook plus defaulting of every kind.
pub fn mutating(opts: &Options, pod_match: &PodMatch) -> MutatingWebhookConfiguration {
    let mut excluded: Vec<String> = SYSTEM_NAMESPACES.iter().map(|s| s.to_string()).collect();
    excluded.push(opts.suite_namespace.clone());
    excluded.extend(opts.excluded_namespaces.iter().cloned());
    excluded.sort();
    excluded.dedup();
    let mut hooks = vec![MutatingWebhook {
        name: kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_NAME.to_string(),
        client_config: client_config(
            opts,
            &format!(
                "{}/{}",
                kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH,
                pod_match.token
            ),
        ),
        rules: Some(vec![rule("", "v1", "pods", &["CREATE"], "Namespaced")]),
        admission_review_versions: vec!["v1".into()],
        side_effects: "None".into(),
        failure_policy: Some(opts.pod_failure_policy.clone()),
        timeout_seconds: Some(10),
        reinvocation_policy: Some("Never".into()),
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: kruise_crds::keys::sidecarset::NAMESPACE_NAME_LABEL.to_string(),
                operator: "NotIn".into(),
                values: Some(excluded),
            }]),
            match_labels: None,
        }),
        match_conditions: Some(vec![MatchCondition {
            name: POD_MATCH_CONDITION.into(),
            expression: pod_match.expression.clone(),
        }]),
        ..Default::default()
    }];
    for (singular, plural, scope) in KINDS {
        hooks.push(MutatingWebhook {
            name: format!("m{singular}.kb.io"),
            client_config: client_config(opts, &mutate_path(singular)),
            rules: Some(vec![rule(
                "apps.kruise.io",
                "v1alpha1",
                plural,
                &["CREATE", "UPDATE"],
                scope,
            )]),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            ..Default::default()
        });
    }
    let mut cfg = MutatingWebhookConfiguration {
        webhooks: Some(hooks),
        ..Default::default()
    };
    cfg.metadata.name = Some(MUTATING_CONFIGURATION.into());
    cfg.metadata.annotations = Some(
        [(
            routing::PENDING_ROUTES_ANNOTATION.to_string(),
            serde_json::to_string(&pod_match.pending).unwrap_or_else(|_| "[]".into()),
        )]
        .into(),
    );
    cfg.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "kruise-rs".to_string(),
        )]
        .into(),
    );
    cfg
}

/// The DELETE webhooks of deletion protection (`openkruise/kruise:pkg/webhook/*/validating/webhooks.go`):
/// `failurePolicy: Fail` as in OpenKruise, but an `objectSelector` sends only objects labelled
/// `Always` or `Cascading` (the only values that protect), so deleting any other object never
/// waits on — or is blocked by — the webhook.
fn deletion_protection_hooks(opts: &Options) -> impl Iterator<Item = ValidatingWebhook> + '_ {
    use kruise_crds::keys::{
        DELETE_PROTECTION_ALWAYS, DELETE_PROTECTION_CASCADING, DELETE_PROTECTION_LABEL,
    };
    crate::deletionprotection::PROTECTED
        .iter()
        .map(move |p| ValidatingWebhook {
            name: p.webhook.to_string(),
            client_config: client_config(opts, p.path),
            rules: Some(vec![rule(
                p.group,
                p.version,
                p.resource,
                &["DELETE"],
                p.scope,
            )]),
            object_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: DELETE_PROTECTION_LABEL.to_string(),
                    operator: "In".into(),
                    values: Some(vec![
                        DELETE_PROTECTION_ALWAYS.to_string(),
                        DELETE_PROTECTION_CASCADING.to_string(),
                    ]),
                }]),
                match_labels: None,
            }),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            ..Default::default()
        })
}

/// The ValidatingWebhookConfiguration: validation of every kind, and deletion protection when its
/// feature gate is on.
pub fn validating(opts: &Options) -> ValidatingWebhookConfiguration {
    let mut hooks = KINDS
        .iter()
        .map(|(singular, plural, scope)| ValidatingWebhook {
            name: format!("v{singular}.kb.io"),
            client_config: client_config(opts, &validate_path(singular)),
            rules: Some(vec![rule(
                "apps.kruise.io",
                "v1alpha1",
                plural,
                &["CREATE", "UPDATE"],
                scope,
            )]),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    if opts.deletion_protection {
        hooks.extend(deletion_protection_hooks(opts));
    }
    let mut cfg = ValidatingWebhookConfiguration {
        webhooks: Some(hooks),
        ..Default::default()
    };
    cfg.metadata.name = Some(VALIDATING_CONFIGURATION.into());
    cfg.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "kruise-rs".to_string(),
        )]
        .into(),
    );
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ss(name: &str, spec: serde_json::Value) -> SidecarSet {
        serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn no_sidecarset_means_no_pod_is_sent() {
        assert_eq!(pod_match(&[]).expression, routing::PROBE_CLAUSE);
        let empty = ss("e", json!({"selector": {}}));
        let paused = ss(
            "p",
            json!({"selector": {"matchLabels": {"a": "b"}}, "injectionStrategy": {"paused": true}}),
        );
        assert_eq!(
            pod_match(&[empty, paused]).expression,
            routing::PROBE_CLAUSE
        );
    }

    #[test]
    fn selectors_become_cel() {
        let a = ss("a", json!({"selector": {"matchLabels": {"app": "web"}}}));
        let b = ss(
            "b",
            json!({"namespace": "team", "selector": {"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["x", "y"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["z'1"]},
                {"key": "sidecar", "operator": "Exists"}
            ]}}),
        );
        let m = pod_match(&[a, b]);
        assert_eq!(m.fallback, None);
        assert_eq!(
            m.expression,
            "(has(object.metadata.annotations) && 'kruise-rs.io/routing-probe' in object.metadata.annotations) || \
             ((has(object.metadata.labels) && 'app' in object.metadata.labels && object.metadata.labels['app'] == 'web')) || \
             (request.namespace == 'team' && \
             (has(object.metadata.labels) && 'tier' in object.metadata.labels && object.metadata.labels['tier'] in ['x', 'y']) && \
             (!has(object.metadata.labels) || !('canary' in object.metadata.labels)) && \
             (!has(object.metadata.labels) || !('zone' in object.metadata.labels) || !(object.metadata.labels['zone'] in ['z\\'1'])) && \
             (has(object.metadata.labels) && 'sidecar' in object.metadata.labels))"
        );
    }

    #[test]
    fn inexpressible_union_falls_back_to_all_pods_and_says_why() {
        let bad = ss(
            "bad",
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}}),
        );
        let m = pod_match(&[bad]);
        assert_eq!(m.expression, "true");
        assert!(m.fallback.unwrap().contains("SidecarSet bad"));
        let many: Vec<SidecarSet> = (0..400)
            .map(|i| {
                ss(
                    &format!("s{i}"),
                    json!({"selector": {"matchLabels": {format!("key-{i}"): "value-long-enough"}}}),
                )
            })
            .collect();
        let m = pod_match(&many);
        assert_eq!(m.expression, "true");
        assert!(m.fallback.unwrap().contains("characters of CEL"));
    }

    #[test]
    fn pod_webhook_excludes_system_and_suite_namespaces() {
        let opts = Options {
            endpoint: Endpoint::Url("https://127.0.0.1:9443/".into()),
            ca_bundle: "PEM".into(),
            pod_failure_policy: "Fail".into(),
            suite_namespace: "kruise-system".into(),
            excluded_namespaces: vec!["extra".into()],
            deletion_protection: false,
        };
        let cfg = mutating(&opts, &pod_match(&[]));
        let hooks = cfg.webhooks.unwrap();
        let pod = &hooks[0];
        assert_eq!(pod.name, "mpod.kb.io");
        assert_eq!(
            pod.client_config.url.as_deref(),
            Some(format!("https://127.0.0.1:9443/mutate-pod/{}", pod_match(&[]).token).as_str())
        );
        let ns = &pod
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[0];
        assert_eq!(ns.operator, "NotIn");
        assert_eq!(
            ns.values.as_ref().unwrap(),
            &[
                "extra",
                "kruise-system",
                "kube-node-lease",
                "kube-public",
                "kube-system"
            ]
            .map(String::from)
        );
        assert_eq!(
            pod.match_conditions.as_ref().unwrap()[0].expression,
            routing::PROBE_CLAUSE
        );
        assert_eq!(hooks.len(), 1 + KINDS.len());
        assert!(hooks.iter().any(|h| h.client_config.url.as_deref()
            == Some("https://127.0.0.1:9443/mutate-apps-kruise-io-v1alpha1-cloneset")));
        assert_eq!(path_of(&pod.client_config).as_deref(), Some("/mutate-pod"));
        let v = validating(&opts).webhooks.unwrap();
        assert!(
            v.iter()
                .all(|h| h.name.starts_with('v') && !h.name.contains("builtin")),
            "no deletion protection without its gate"
        );
        assert!(v.iter().any(|h| h.name == "vsidecarset.kb.io"
            && h.client_config.url.as_deref()
                == Some("https://127.0.0.1:9443/validate-apps-kruise-io-v1alpha1-sidecarset")));
    }

    /// With `ResourcesDeletionProtection` on, DELETEs of the kinds OpenKruise protects are sent to
    /// OpenKruise's paths with `failurePolicy: Fail`, but only for objects labelled Always or
    /// Cascading; the CREATE/UPDATE webhooks are unchanged.
    #[test]
    fn deletion_protection_hooks_see_only_labelled_deletes() {
        let opts = Options {
            endpoint: Endpoint::Url("https://127.0.0.1:9443".into()),
            ca_bundle: "PEM".into(),
            pod_failure_policy: "Fail".into(),
            suite_namespace: "kruise-system".into(),
            excluded_namespaces: vec![],
            deletion_protection: true,
        };
        let hooks = validating(&opts).webhooks.unwrap();
        assert_eq!(hooks.len(), KINDS.len() + 8);
        let delete: Vec<_> = hooks
            .iter()
            .filter(|h| {
                h.rules
                    .iter()
                    .flatten()
                    .any(|r| r.operations.as_deref() == Some(&["DELETE".to_string()][..]))
            })
            .collect();
        let mut resources: Vec<String> = delete
            .iter()
            .flat_map(|h| h.rules.iter().flatten())
            .flat_map(|r| r.resources.iter().flatten().cloned())
            .collect();
        resources.sort();
        assert_eq!(
            resources,
            [
                "clonesets",
                "customresourcedefinitions",
                "deployments",
                "ingresses",
                "namespaces",
                "replicasets",
                "services",
                "statefulsets"
            ]
            .map(String::from)
        );
        for h in &delete {
            assert_eq!(h.failure_policy.as_deref(), Some("Fail"), "{}", h.name);
            let sel = h.object_selector.as_ref().expect("an objectSelector");
            let req = &sel.match_expressions.as_ref().unwrap()[0];
            assert_eq!(
                (req.key.as_str(), req.operator.as_str()),
                ("policy.kruise.io/delete-protection", "In")
            );
            assert_eq!(
                req.values.as_deref(),
                Some(&["Always".to_string(), "Cascading".to_string()][..])
            );
        }
        let ns = delete
            .iter()
            .find(|h| h.name == "vnamespace.kb.io")
            .unwrap();
        assert_eq!(
            ns.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/validate-namespace")
        );
        let cs = delete
            .iter()
            .find(|h| h.name == "vclonesetdeletion.kb.io")
            .unwrap();
        assert_eq!(
            path_of(&cs.client_config).as_deref(),
            Some("/validate-apps-kruise-io-v1alpha1-cloneset")
        );
        // the CloneSet's CREATE/UPDATE webhook still sees every CloneSet
        let v = hooks.iter().find(|h| h.name == "vcloneset.kb.io").unwrap();
        assert!(v.object_selector.is_none());
    }
}
