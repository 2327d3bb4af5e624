//! Read your own writes for pod injection (spec decision 1): which pods the API server sends to the
//! pod webhook, and how a SidecarSet's admission makes sure, before it answers, that every pod the
//! SidecarSet selects is sent to the webhook and injected from then on.
//!
//! The pod webhook's `matchConditions` are the union of the SidecarSets' selectors, so a new or
//! widened selector must reach the API server's copy of the configuration before the SidecarSet's
//! create or update returns. Two facts make that hold by construction:
//! - **The routing token.** The pod webhook's path ends in a token: a hash of every
//!   (SidecarSet name, selector CEL) pair the `matchConditions` were built from. A request therefore
//!   says which routing the API server used. A replica whose cached SidecarSets hash to another
//!   token may have missed a SidecarSet that routed the pod (its watch lags the API), so it reads
//!   the SidecarSets from the API server (a quorum list) before it injects.
//! - **The fence.** The SidecarSet validating webhook adds the new selector as a *pending route*
//!   (kept until every cache has the SidecarSet, or for [`PENDING_TTL_SECONDS`]), writes the
//!   configuration, and server-side dry-run creates a probe pod until the pod webhook answers it
//!   with the new token: from then on the API server routes with the new configuration. Only then
//!   does the SidecarSet's admission answer (and the SidecarSet get stored).
//!
//! Everything here is pure; the kube calls live in `runtime.rs` and the handlers.

use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Annotation that makes the API server send a pod to the pod webhook whatever its labels: the
/// SidecarSet admission's dry-run probe carries it.
pub const ROUTING_PROBE_ANNOTATION: &str = "kruise-rs.io/routing-probe";
/// Annotation the pod webhook adds to a dry-run probe: the routing token of the path it was called on.
pub const ROUTING_TOKEN_ANNOTATION: &str = "kruise-rs.io/routing-token";
/// Annotation on the MutatingWebhookConfiguration: the routes of admitted SidecarSets that the
/// caches may not have yet (JSON list of [`PendingRoute`]).
pub const PENDING_ROUTES_ANNOTATION: &str = "kruise-rs.io/pending-sidecarset-routes";
/// How long a pending route is kept when its SidecarSet never shows up (its create was refused by
/// a later admission step, or it was deleted at once).
pub const PENDING_TTL_SECONDS: i64 = 120;
/// The CEL clause that routes the probe.
pub const PROBE_CLAUSE: &str = "(has(object.metadata.annotations) && 'kruise-rs.io/routing-probe' in object.metadata.annotations)";
/// Longest a routing token may be in a request path (16 hex characters are written).
const TOKEN_LEN: usize = 16;

/// A route the SidecarSet admission added before its SidecarSet is in every cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingRoute {
    /// The SidecarSet's name.
    pub name: String,
    /// The CEL of the pods it selects; `None` when it selects none (paused, empty selector).
    pub cel: Option<String>,
    /// Unix seconds after which it is dropped.
    pub expires: i64,
}

/// One SidecarSet's share of the routing: `Ok(Some(cel))` for the pods it may select, `Ok(None)`
/// when it selects none (paused injection, no or empty selector), `Err` when the selector cannot
/// be written in CEL.
pub fn route_of(ss: &SidecarSet) -> Result<Option<String>, String> {
    let paused = ss
        .spec
        .injection_strategy
        .as_ref()
        .and_then(|i| i.paused)
        .unwrap_or(false);
    if paused {
        return Ok(None);
    }
    let Some(sel) = ss.spec.selector.as_ref() else {
        return Ok(None);
    };
    let Some(mut cel) = crate::configuration::selector_cel(sel)? else {
        return Ok(None);
    };
    if let Some(ns) = ss.spec.namespace.as_deref().filter(|n| !n.is_empty()) {
        cel = format!(
            "request.namespace == {} && {cel}",
            crate::configuration::cel_str(ns)
        );
    }
    Ok(Some(format!("({cel})")))
}

/// The (name, route) pairs of `sidecarsets` plus the unexpired `pending` routes the SidecarSets do
/// not show yet, sorted. Errors name the SidecarSet whose selector cannot be written in CEL.
pub fn routes(
    sidecarsets: &[SidecarSet],
    pending: &[PendingRoute],
    now: i64,
) -> Result<BTreeSet<(String, Option<String>)>, String> {
    let mut out = BTreeSet::new();
    for ss in sidecarsets {
        let name = ss.metadata.name.clone().unwrap_or_default();
        let route = route_of(ss).map_err(|why| format!("SidecarSet {name}: {why}"))?;
        out.insert((name, route));
    }
    for p in pending.iter().filter(|p| p.expires > now) {
        out.insert((p.name.clone(), p.cel.clone()));
    }
    Ok(out)
}

/// The routing token of a set of routes: 16 hex characters of their SHA-256.
pub fn token(routes: &BTreeSet<(String, Option<String>)>) -> String {
    let mut h = Sha256::new();
    for (name, cel) in routes {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(cel.as_deref().unwrap_or("-").as_bytes());
        h.update([b'\n']);
    }
    let digest = h.finalize();
    digest
        .iter()
        .take(TOKEN_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The routing token of the SidecarSets alone (what a replica's cache says).
pub fn cache_token(sidecarsets: &[SidecarSet]) -> String {
    match routes(sidecarsets, &[], 0) {
        Ok(r) => token(&r),
        // a selector CEL cannot express routes every pod: any token differs, so a replica reads
        // the SidecarSets from the API server, which is right when in doubt
        Err(_) => "inexpressible".into(),
    }
}

/// The token at the end of a pod webhook path (`/mutate-pod/<token>`), if it is one.
pub fn token_of_path<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    let t = path.strip_prefix(base)?.strip_prefix('/')?;
    (t.len() == TOKEN_LEN && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}

/// The pending routes to keep: unexpired ones whose SidecarSet the caches do not show with that
/// route yet, plus `added` (replacing an older entry of the same name).
pub fn prune_pending(
    pending: &[PendingRoute],
    sidecarsets: &[SidecarSet],
    added: Option<PendingRoute>,
    now: i64,
) -> Vec<PendingRoute> {
    let cached: BTreeSet<(String, Option<String>)> = sidecarsets
        .iter()
        .filter_map(|s| Some((s.metadata.name.clone()?, route_of(s).ok()?)))
        .collect();
    let mut out: Vec<PendingRoute> = pending
        .iter()
        .filter(|p| p.expires > now)
        .filter(|p| !cached.contains(&(p.name.clone(), p.cel.clone())))
        .filter(|p| added.as_ref().is_none_or(|a| a.name != p.name))
        .cloned()
        .collect();
    out.extend(added);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Parses the pending routes annotation; anything unreadable counts as none (the next write
/// replaces it).
pub fn parse_pending(annotation: Option<&str>) -> Vec<PendingRoute> {
    annotation
        .filter(|s| s.len() <= 256 * 1024)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Whether admitting `new` (over `old`, on update) can make the API server send pods to the webhook
/// that it did not send before: a new SidecarSet, or a changed selector, namespace or pause.
pub fn needs_fence(new: &SidecarSet, old: Option<&SidecarSet>) -> bool {
    let Ok(Some(route)) = route_of(new) else {
        return false; // selects no pod (or cannot be routed at all: validation refuses it)
    };
    match old {
        None => true,
        Some(old) => route_of(old).ok().flatten().as_deref() != Some(route.as_str()),
    }
}

/// A server-side dry-run probe pod in `namespace`: routed to the pod webhook by
/// [`PROBE_CLAUSE`], and valid under the `restricted` Pod Security level.
pub fn probe_pod(namespace: &str, sidecarset: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "kruise-rs-routing-probe-",
            "namespace": namespace,
            "annotations": {ROUTING_PROBE_ANNOTATION: sidecarset},
        },
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe",
                "image": "kruise-rs.invalid/routing-probe:never-pulled",
                "resources": {"requests": {"cpu": "1m", "memory": "1Mi"},
                              "limits": {"cpu": "1m", "memory": "1Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))
    .expect("a constant pod")
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
    fn token_changes_with_any_route_and_not_with_order() {
        let a = ss("a", json!({"selector": {"matchLabels": {"app": "a"}}}));
        let b = ss("b", json!({"selector": {"matchLabels": {"app": "b"}}}));
        let ab = cache_token(&[a.clone(), b.clone()]);
        assert_eq!(ab.len(), 16);
        assert_eq!(ab, cache_token(&[b.clone(), a.clone()]));
        assert_ne!(ab, cache_token(std::slice::from_ref(&a)));
        let wider = ss("b", json!({"selector": {"matchLabels": {"tier": "b"}}}));
        assert_ne!(ab, cache_token(&[a.clone(), wider]));
        // the same selector under another name is another routing (another SidecarSet injects)
        let renamed = ss("c", json!({"selector": {"matchLabels": {"app": "b"}}}));
        assert_ne!(ab, cache_token(&[a, renamed]));
    }

    #[test]
    fn pending_route_counts_until_the_cache_shows_it() {
        let a = ss("a", json!({"selector": {"matchLabels": {"app": "a"}}}));
        let new = ss("n", json!({"selector": {"matchLabels": {"app": "n"}}}));
        let p = PendingRoute {
            name: "n".into(),
            cel: route_of(&new).unwrap(),
            expires: 100,
        };
        let with_pending =
            token(&routes(std::slice::from_ref(&a), std::slice::from_ref(&p), 50).unwrap());
        // a replica that has not cached n disagrees with the routing the fence wrote...
        assert_ne!(with_pending, cache_token(std::slice::from_ref(&a)));
        // ...one that has agrees, and the pending route is dropped once the cache shows it
        assert_eq!(with_pending, cache_token(&[a.clone(), new.clone()]));
        assert!(prune_pending(std::slice::from_ref(&p), &[a.clone(), new], None, 50).is_empty());
        assert_eq!(
            prune_pending(std::slice::from_ref(&p), std::slice::from_ref(&a), None, 50),
            vec![p.clone()]
        );
        // expired: gone from routes and from the annotation
        assert_eq!(
            token(&routes(std::slice::from_ref(&a), std::slice::from_ref(&p), 100).unwrap()),
            cache_token(std::slice::from_ref(&a))
        );
        assert!(prune_pending(std::slice::from_ref(&p), &[a], None, 100).is_empty());
    }

    #[test]
    fn fence_only_when_more_pods_may_be_routed() {
        let a = ss("a", json!({"selector": {"matchLabels": {"app": "a"}}}));
        assert!(needs_fence(&a, None));
        assert!(!needs_fence(&a, Some(&a)));
        let mut image_changed = a.clone();
        image_changed.spec.namespace = None;
        assert!(!needs_fence(&image_changed, Some(&a)));
        let widened = ss(
            "a",
            json!({"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}),
        );
        assert!(needs_fence(&widened, Some(&a)));
        let paused = ss(
            "a",
            json!({"selector": {"matchLabels": {"app": "a"}}, "injectionStrategy": {"paused": true}}),
        );
        assert!(!needs_fence(&paused, None));
        assert!(needs_fence(&a, Some(&paused)));
    }

    #[test]
    fn path_tokens_are_16_hex_characters() {
        assert_eq!(
            token_of_path("/mutate-pod", "/mutate-pod/0123456789abcdef"),
            Some("0123456789abcdef")
        );
        assert_eq!(token_of_path("/mutate-pod", "/mutate-pod"), None);
        assert_eq!(token_of_path("/mutate-pod", "/mutate-pod/../x"), None);
        assert_eq!(
            token_of_path("/mutate-pod", "/mutate-pod/0123456789abcdeg"),
            None
        );
        assert_eq!(
            token_of_path("/mutate-pod", "/mutate-podx/0123456789abcdef"),
            None
        );
    }

    #[test]
    fn pending_annotation_round_trips_and_garbage_is_none() {
        let p = vec![PendingRoute {
            name: "n".into(),
            cel: Some("(x)".into()),
            expires: 7,
        }];
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(parse_pending(Some(&s)), p);
        assert!(parse_pending(Some("{not json")).is_empty());
        assert!(parse_pending(None).is_empty());
    }

    #[test]
    fn probe_pod_is_routed_by_the_probe_clause() {
        let p = probe_pod("team", "a");
        assert_eq!(p.metadata.namespace.as_deref(), Some("team"));
        assert!(
            p.metadata
                .annotations
                .unwrap()
                .contains_key(ROUTING_PROBE_ANNOTATION)
        );
        assert!(PROBE_CLAUSE.contains(ROUTING_PROBE_ANNOTATION));
    }
}
