//! Lifecycle hooks (spec §10): whether a pod is held by a hook, the state-label patches, and the
//! transitions a reconcile makes on its own (PreparingNormal → Normal, Updating → Updated/Normal, …).
//! Pure; the states are the values of `lifecycle.apps.kruise.io/state`.

use super::podutil;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::keys::{self, cloneset as ck};
use kruise_crds::{Lifecycle, LifecycleHook};
use serde_json::{Value, json};

/// Any hook finalizer on the pod, or any hook label with the same value (`IsPodHooked`).
pub fn is_hooked(hook: Option<&LifecycleHook>, pod: &Pod) -> bool {
    let Some(hook) = hook else { return false };
    let fins = pod.metadata.finalizers.as_deref().unwrap_or_default();
    hook.finalizers_handler
        .iter()
        .flatten()
        .any(|f| fins.contains(f))
        || hook
            .labels_handler
            .iter()
            .flatten()
            .any(|(k, v)| podutil::label(pod, k) == Some(v.as_str()))
}

/// Every hook finalizer on the pod and every hook label equal (`IsPodAllHooked`).
pub fn is_all_hooked(hook: Option<&LifecycleHook>, pod: &Pod) -> bool {
    let Some(hook) = hook else { return false };
    let fins = pod.metadata.finalizers.as_deref().unwrap_or_default();
    hook.finalizers_handler
        .iter()
        .flatten()
        .all(|f| fins.contains(f))
        && hook
            .labels_handler
            .iter()
            .flatten()
            .all(|(k, v)| podutil::label(pod, k) == Some(v.as_str()))
}

/// RFC 3339 at whole seconds, as Go's `time.Now().Format(time.RFC3339)`.
pub fn rfc3339(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Strategic-merge patch setting the lifecycle state label and its timestamp annotation.
pub fn state_patch(state: &str, now: Timestamp) -> Value {
    json!({
        "metadata": {
            "labels": { keys::LIFECYCLE_STATE_LABEL: state },
            "annotations": { keys::LIFECYCLE_TIMESTAMP: rfc3339(now) }
        }
    })
}

/// The state patch that also re-adds the hook's labels and finalizers (`UpdatePodLifecycleWithHandler`).
pub fn state_patch_with_handler(
    state: &str,
    hook: Option<&LifecycleHook>,
    pod: &Pod,
    now: Timestamp,
) -> Value {
    let mut patch = state_patch(state, now);
    if let Some(hook) = hook {
        if let Some(labels) = patch["metadata"]["labels"].as_object_mut() {
            for (k, v) in hook.labels_handler.iter().flatten() {
                labels.insert(k.clone(), json!(v));
            }
        }
        let mut fins = pod.metadata.finalizers.clone().unwrap_or_default();
        for f in hook.finalizers_handler.iter().flatten() {
            if !fins.contains(f) {
                fins.push(f.clone());
            }
        }
        if !fins.is_empty() {
            patch["metadata"]["finalizers"] = json!(fins);
        }
    }
    patch
}

/// Whether any preDelete / inPlaceUpdate hook asks to mark pods not ready.
pub fn marks_not_ready(lc: Option<&Lifecycle>) -> bool {
    lc.is_some_and(|lc| {
        [&lc.pre_delete, &lc.in_place_update]
            .iter()
            .any(|h| h.as_ref().and_then(|h| h.mark_pod_not_ready) == Some(true))
    })
}

/// The state an in-place-updated pod moves to once done: `Updated` while the inPlaceUpdate hook is
/// not back on it, else `Normal`.
pub fn after_update_state(lc: Option<&Lifecycle>, pod: &Pod) -> &'static str {
    match lc.and_then(|l| l.in_place_update.as_ref()) {
        Some(h) if !is_all_hooked(Some(h), pod) => ck::LIFECYCLE_UPDATED,
        _ => ck::LIFECYCLE_NORMAL,
    }
}

/// §9.2 b: the state a pod moves to by itself this reconcile, if any. `update_completed` says
/// whether an in-place update of the pod has finished (§9.8).
pub fn refresh_transition(
    lc: Option<&Lifecycle>,
    pod: &Pod,
    update_revision: &str,
    update_completed: bool,
) -> Option<&'static str> {
    match podutil::lifecycle_state(pod) {
        ck::LIFECYCLE_PREPARING_NORMAL => {
            let ready = match lc.and_then(|l| l.pre_normal.as_ref()) {
                Some(h) => is_all_hooked(Some(h), pod),
                // Wait until scheduled (an old scheduler bug, OpenKruise #1485).
                None => pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty()),
            };
            ready.then_some(ck::LIFECYCLE_NORMAL)
        }
        ck::LIFECYCLE_PREPARING_UPDATE if podutil::equal_to_revision_hash(pod, update_revision) => {
            Some(after_update_state(lc, pod))
        }
        ck::LIFECYCLE_UPDATING if update_completed => Some(after_update_state(lc, pod)),
        ck::LIFECYCLE_UPDATED => {
            let back = match lc.and_then(|l| l.in_place_update.as_ref()) {
                Some(h) => is_all_hooked(Some(h), pod),
                None => true,
            };
            back.then_some(ck::LIFECYCLE_NORMAL)
        }
        _ => None,
    }
}

/// One entry of the `KruisePodReady` condition message (`{"userAgent":..,"key":..}`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReadyKey {
    /// Who holds the pod not ready (`Lifecycle`).
    pub user_agent: String,
    /// Why (`preDeleteHook`, `preUpdateHook`).
    pub key: String,
}

/// Whether the pod has the `KruisePodReady` readiness gate.
pub fn has_kruise_pod_ready_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.condition_type == ck::KRUISE_POD_READY))
}

/// The pod with a lifecycle not-ready key added to or removed from its `KruisePodReady` condition
/// (status False while any key is held, by anyone), or None when nothing changes or the pod has no
/// such gate. Adding a key also lowers `Ready` at once, as OpenKruise's `addNotReadyKey` does, so
/// that endpoints drop the pod without waiting for the kubelet.
pub fn with_not_ready_key(pod: &Pod, key: &str, add: bool, now: Timestamp) -> Option<Pod> {
    use k8s_openapi::api::core::v1::PodCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    if !has_kruise_pod_ready_gate(pod) {
        return None;
    }
    let cond = podutil::condition(pod, ck::KRUISE_POD_READY);
    let mut keys: Vec<NotReadyKey> = cond
        .and_then(|c| c.message.as_deref())
        .filter(|m| !m.is_empty())
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let entry = NotReadyKey {
        user_agent: ck::KRUISE_POD_READY_LIFECYCLE_USER_AGENT.into(),
        key: key.into(),
    };
    let present = keys.contains(&entry);
    if present == add {
        return None;
    }
    if add {
        keys.push(entry);
        keys.sort();
    } else {
        keys.retain(|k| k != &entry);
    }
    let status = if keys.is_empty() {
        keys::CONDITION_TRUE
    } else {
        keys::CONDITION_FALSE
    };
    // OpenKruise writes the list even when it is empty (`[]`).
    let message = serde_json::to_string(&keys).unwrap_or_default();
    let mut out = pod.clone();
    upsert_condition(
        &mut out,
        PodCondition {
            type_: ck::KRUISE_POD_READY.into(),
            status: status.into(),
            message: Some(message),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        },
    );
    if add {
        set_ready_condition(&mut out, now);
    }
    Some(out)
}

fn upsert_condition(pod: &mut Pod, c: k8s_openapi::api::core::v1::PodCondition) {
    let conds = pod
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default();
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => *x = c,
        None => conds.push(c),
    }
}

/// Recomputes `Ready` from the readiness gates the way the kubelet does (OpenKruise's
/// `SetPodReadyCondition`): only when the pod has a `Ready` condition and its containers are ready.
pub fn set_ready_condition(pod: &mut Pod, now: Timestamp) {
    use k8s_openapi::api::core::v1::PodCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    if podutil::condition(pod, "Ready").is_none()
        || podutil::condition(pod, "ContainersReady")
            .is_none_or(|c| c.status != keys::CONDITION_TRUE)
    {
        return;
    }
    let gates: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.readiness_gates.iter().flatten())
        .map(|g| g.condition_type.clone())
        .collect();
    let unready: Vec<String> = gates
        .iter()
        .filter_map(|g| match podutil::condition(pod, g) {
            None => Some(format!(
                "corresponding condition of pod readiness gate {g:?} does not exist."
            )),
            Some(c) if c.status != keys::CONDITION_TRUE => Some(format!(
                "the status of pod readiness gate {g:?} is not \"True\", but {}",
                c.status
            )),
            Some(_) => None,
        })
        .collect();
    let ready = if unready.is_empty() {
        PodCondition {
            type_: "Ready".into(),
            status: keys::CONDITION_TRUE.into(),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        }
    } else {
        PodCondition {
            type_: "Ready".into(),
            status: keys::CONDITION_FALSE.into(),
            reason: Some(ck::READINESS_GATES_NOT_READY_REASON.into()),
            message: Some(unready.join(", ")),
            ..Default::default()
        }
    };
    upsert_condition(pod, ready);
}

/// The pod with its `KruisePodReady` condition as its lifecycle `state` (the state it is in, or
/// moves to this pass) asks, or None when nothing is to be written:
/// * a pod with the gate and no condition gets it True (OpenKruise's pod-readiness controller);
/// * `PreparingDelete` with `preDelete.markPodNotReady` holds the `preDeleteHook` key, and
///   `PreparingUpdate` with `inPlaceUpdate.markPodNotReady` the `preUpdateHook` key (re-added if
///   a write was lost);
/// * the `preUpdateHook` key is released once the pod is `Updated`, `Normal` or `PreparingNormal`
///   (OpenKruise releases it on `Updated` only, so a pod that went straight back to `Normal` stayed
///   not ready for good), and the `preDeleteHook` key once the pod is out of `PreparingDelete`. Both
///   are kept through `Updating`. Keys of other writers are never touched.
pub fn with_kruise_pod_ready(
    lc: Option<&Lifecycle>,
    pod: &Pod,
    state: &str,
    now: Timestamp,
) -> Option<Pod> {
    use k8s_openapi::api::core::v1::PodCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    if !has_kruise_pod_ready_gate(pod) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let mut out: Option<Pod> = None;
    if podutil::condition(pod, ck::KRUISE_POD_READY).is_none() {
        let mut p = pod.clone();
        upsert_condition(
            &mut p,
            PodCondition {
                type_: ck::KRUISE_POD_READY.into(),
                status: keys::CONDITION_TRUE.into(),
                last_transition_time: Some(Time(now)),
                ..Default::default()
            },
        );
        out = Some(p);
    }
    let pre_delete = match state {
        ck::LIFECYCLE_PREPARING_DELETE => {
            hook_marks_not_ready(lc.and_then(|l| l.pre_delete.as_ref())).then_some(true)
        }
        _ => Some(false),
    };
    let pre_update = match state {
        ck::LIFECYCLE_PREPARING_UPDATE => {
            hook_marks_not_ready(lc.and_then(|l| l.in_place_update.as_ref())).then_some(true)
        }
        ck::LIFECYCLE_UPDATING | ck::LIFECYCLE_PREPARING_DELETE => None,
        _ => Some(false),
    };
    for (key, want) in [
        (ck::KRUISE_POD_READY_PRE_DELETE_KEY, pre_delete),
        (ck::KRUISE_POD_READY_PRE_UPDATE_KEY, pre_update),
    ] {
        let Some(add) = want else { continue };
        let base = out.as_ref().unwrap_or(pod);
        if let Some(p) = with_not_ready_key(base, key, add, now) {
            out = Some(p);
        }
    }
    out
}

/// Whether a hook asks to mark pods not ready.
pub fn hook_marks_not_ready(hook: Option<&LifecycleHook>) -> bool {
    hook.and_then(|h| h.mark_pod_not_ready) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::super::podutil::test_pods::*;
    use super::*;
    use std::collections::BTreeMap;

    fn hook(labels: &[(&str, &str)], fins: &[&str]) -> LifecycleHook {
        LifecycleHook {
            labels_handler: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            finalizers_handler: Some(fins.iter().map(ToString::to_string).collect()),
            mark_pod_not_ready: None,
        }
    }

    #[test]
    fn hooked_predicates() {
        let h = hook(&[("hold", "true")], &["example.com/fin"]);
        let none = mk_pod("a").build();
        assert!(!is_hooked(Some(&h), &none));
        assert!(!is_all_hooked(Some(&h), &none));
        let half = mk_pod("a").label("hold", "true").build();
        assert!(is_hooked(Some(&h), &half));
        assert!(!is_all_hooked(Some(&h), &half));
        let wrong = mk_pod("a").label("hold", "false").build();
        assert!(!is_hooked(Some(&h), &wrong));
        let mut all = mk_pod("a").label("hold", "true").build();
        all.metadata.finalizers = Some(vec!["example.com/fin".into()]);
        assert!(is_all_hooked(Some(&h), &all));
        assert!(!is_hooked(None, &all));
    }

    #[test]
    fn state_patches() {
        let now = Timestamp::from_second(1_735_689_600).unwrap();
        assert_eq!(
            state_patch("Normal", now),
            json!({"metadata":{"labels":{"lifecycle.apps.kruise.io/state":"Normal"},
                "annotations":{"lifecycle.apps.kruise.io/timestamp":"2025-01-01T00:00:00Z"}}})
        );
        let h = hook(&[("hold", "true")], &["f1"]);
        let mut pod = mk_pod("a").build();
        pod.metadata.finalizers = Some(vec!["other".into()]);
        let p = state_patch_with_handler("PreparingUpdate", Some(&h), &pod, now);
        assert_eq!(p["metadata"]["labels"]["hold"], "true");
        assert_eq!(p["metadata"]["finalizers"], json!(["other", "f1"]));
    }

    #[test]
    fn not_ready_keys() {
        use k8s_openapi::api::core::v1::PodReadinessGate;
        let now = now();
        let plain = mk_pod("a").build();
        assert!(
            with_not_ready_key(&plain, ck::KRUISE_POD_READY_PRE_DELETE_KEY, true, now).is_none()
        );
        let mut gated = mk_pod("a").build();
        gated.spec.get_or_insert_default().readiness_gates = Some(vec![PodReadinessGate {
            condition_type: ck::KRUISE_POD_READY.into(),
        }]);
        let one =
            with_not_ready_key(&gated, ck::KRUISE_POD_READY_PRE_UPDATE_KEY, true, now).unwrap();
        let two = with_not_ready_key(&one, ck::KRUISE_POD_READY_PRE_DELETE_KEY, true, now).unwrap();
        let c = podutil::condition(&two, ck::KRUISE_POD_READY).unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(
            c.message.as_deref(),
            Some(
                r#"[{"userAgent":"Lifecycle","key":"preDeleteHook"},{"userAgent":"Lifecycle","key":"preUpdateHook"}]"#
            )
        );
        assert!(with_not_ready_key(&two, ck::KRUISE_POD_READY_PRE_DELETE_KEY, true, now).is_none());
        let back =
            with_not_ready_key(&two, ck::KRUISE_POD_READY_PRE_DELETE_KEY, false, now).unwrap();
        let back =
            with_not_ready_key(&back, ck::KRUISE_POD_READY_PRE_UPDATE_KEY, false, now).unwrap();
        let c = podutil::condition(&back, ck::KRUISE_POD_READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.message.as_deref()),
            ("True", Some("[]"))
        );
    }

    #[test]
    fn transitions() {
        let no_lc = None;
        let pn = mk_pod("a").state(ck::LIFECYCLE_PREPARING_NORMAL).build();
        assert_eq!(refresh_transition(no_lc, &pn, "r", false), None);
        let scheduled = mk_pod("a")
            .state(ck::LIFECYCLE_PREPARING_NORMAL)
            .node("n1")
            .build();
        assert_eq!(
            refresh_transition(no_lc, &scheduled, "r", false),
            Some(ck::LIFECYCLE_NORMAL)
        );
        let lc = Lifecycle {
            pre_normal: Some(hook(&[("ok", "1")], &[])),
            in_place_update: Some(hook(&[("upd", "1")], &[])),
            ..Default::default()
        };
        assert_eq!(refresh_transition(Some(&lc), &scheduled, "r", false), None);
        let hooked = mk_pod("a")
            .state(ck::LIFECYCLE_PREPARING_NORMAL)
            .label("ok", "1")
            .build();
        assert_eq!(
            refresh_transition(Some(&lc), &hooked, "r", false),
            Some(ck::LIFECYCLE_NORMAL)
        );
        // Updating → Updated while the inPlaceUpdate hook is off, Normal when it is back.
        let upd = mk_pod("a").state(ck::LIFECYCLE_UPDATING).build();
        assert_eq!(refresh_transition(Some(&lc), &upd, "r", false), None);
        assert_eq!(
            refresh_transition(Some(&lc), &upd, "r", true),
            Some(ck::LIFECYCLE_UPDATED)
        );
        assert_eq!(
            refresh_transition(None, &upd, "r", true),
            Some(ck::LIFECYCLE_NORMAL)
        );
        let back = mk_pod("a")
            .state(ck::LIFECYCLE_UPDATED)
            .label("upd", "1")
            .build();
        assert_eq!(
            refresh_transition(Some(&lc), &back, "r", false),
            Some(ck::LIFECYCLE_NORMAL)
        );
        let not_back = mk_pod("a").state(ck::LIFECYCLE_UPDATED).build();
        assert_eq!(refresh_transition(Some(&lc), &not_back, "r", false), None);
        // PreparingUpdate pod already at the update revision (rolled back while waiting).
        let pu = mk_pod("a")
            .state(ck::LIFECYCLE_PREPARING_UPDATE)
            .rev("cs-r2")
            .build();
        assert_eq!(
            refresh_transition(None, &pu, "cs-r2", false),
            Some(ck::LIFECYCLE_NORMAL)
        );
        assert_eq!(refresh_transition(None, &pu, "cs-r3", false), None);
        assert!(!marks_not_ready(Some(&lc)));
    }
}
