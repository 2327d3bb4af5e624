//! Pod predicates shared by the CloneSet planners: activeness, readiness, availability, lifecycle
//! state, revision matching and specified-delete. Pure functions over `Pod`; time is passed in.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kruise_crds::keys::{self, cloneset as ck};
use std::collections::{BTreeMap, BTreeSet};

/// A label value of a pod.
pub fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// An annotation value of a pod.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The pod's name ("" if unset).
pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The phase of a pod ("" if unknown).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's lifecycle state label ("" when absent).
pub fn lifecycle_state(pod: &Pod) -> &str {
    label(pod, keys::LIFECYCLE_STATE_LABEL).unwrap_or_default()
}

/// A condition of the pod by type.
pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `InPlaceUpdateReady` is absent or `True`.
pub fn in_place_update_ready(pod: &Pod) -> bool {
    condition(pod, keys::INPLACE_UPDATE_READY).is_none_or(|c| c.status == keys::CONDITION_TRUE)
}

/// Running, `Ready=True` for at least `min_ready_seconds`, and in-place update ready
/// (OpenKruise's `IsPodUpdateReady`). Lifecycle state is not looked at.
pub fn is_update_ready(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if phase(pod) != "Running" {
        return false;
    }
    let Some(ready) = condition(pod, "Ready") else {
        return false;
    };
    if ready.status != keys::CONDITION_TRUE {
        return false;
    }
    if min_ready_seconds > 0 {
        let Some(t) = ready.last_transition_time.as_ref() else {
            return false;
        };
        let until = t.0.as_second().saturating_add(i64::from(min_ready_seconds));
        if until >= now.as_second() {
            return false;
        }
    }
    in_place_update_ready(pod)
}

/// Ready (minReadySeconds 0) ignoring lifecycle: what `status.readyReplicas` counts.
pub fn is_ready(pod: &Pod, now: Timestamp) -> bool {
    is_update_ready(pod, 0, now)
}

/// Lifecycle state `""` or `Normal`, and update-ready for `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    matches!(lifecycle_state(pod), "" | ck::LIFECYCLE_NORMAL)
        && is_update_ready(pod, min_ready_seconds, now)
}

/// The pod carries the specified-delete label, or is listed in `podsToDelete`.
pub fn is_specified_delete(pod: &Pod, pods_to_delete: &BTreeSet<String>) -> bool {
    label(pod, keys::SPECIFIED_DELETE_LABEL).is_some() || pods_to_delete.contains(name(pod))
}

/// The part of a revision name after its last `-` (the hash).
pub fn short_hash(revision: &str) -> &str {
    revision.rsplit_once('-').map_or(revision, |(_, h)| h)
}

/// The pod's `controller-revision-hash` names `revision` (full name, or the same hash suffix).
pub fn equal_to_revision_hash(pod: &Pod, revision: &str) -> bool {
    let Some(hash) = label(pod, keys::CONTROLLER_REVISION_HASH_LABEL) else {
        return false;
    };
    hash == revision || short_hash(hash) == short_hash(revision)
}

/// The pod's instance id label.
pub fn instance_id(pod: &Pod) -> Option<&str> {
    label(pod, ck::INSTANCE_ID_LABEL)
}

/// Whether `labels` satisfy a label selector: the webhook's matcher (`LabelSelectorAsSelector`
/// semantics), shared so admission and reconcile never disagree.
pub use kruise_webhook::sidecarset::matching::selector_matches;

/// A pod's labels (empty map if none).
pub fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

/// The selector rendered as Kubernetes renders `labels.Selector` (`a=b,c in (d,e),!f`), requirements
/// sorted by key: `status.labelSelector` for the scale subresource.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut vals = e.values.clone().unwrap_or_default();
        vals.sort();
        let k = &e.key;
        let r = match e.operator.as_str() {
            "In" => format!("{k} in ({})", vals.join(",")),
            "NotIn" => format!("{k} notin ({})", vals.join(",")),
            "Exists" => k.clone(),
            "DoesNotExist" => format!("!{k}"),
            other => format!("{k} {other} ({})", vals.join(",")),
        };
        reqs.push((k.clone(), r));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
pub(crate) mod test_pods {
    //! Small builders for pods in tests.
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    pub fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    pub struct PodBuilder(pub Pod);

    pub fn mk_pod(name: &str) -> PodBuilder {
        let mut p = Pod::default();
        p.metadata.name = Some(name.to_string());
        p.metadata.namespace = Some("ns".to_string());
        p.metadata.labels = Some(BTreeMap::new());
        PodBuilder(p)
    }

    impl PodBuilder {
        pub fn label(mut self, k: &str, v: &str) -> Self {
            self.0
                .metadata
                .labels
                .get_or_insert_default()
                .insert(k.into(), v.into());
            self
        }
        pub fn annotation(mut self, k: &str, v: &str) -> Self {
            self.0
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(k.into(), v.into());
            self
        }
        pub fn rev(self, r: &str) -> Self {
            self.label(keys::CONTROLLER_REVISION_HASH_LABEL, r)
        }
        pub fn state(self, s: &str) -> Self {
            self.label(keys::LIFECYCLE_STATE_LABEL, s)
        }
        pub fn phase(mut self, ph: &str) -> Self {
            self.0.status.get_or_insert_default().phase = Some(ph.into());
            self
        }
        pub fn cond(mut self, t: &str, s: &str, since: Option<i64>) -> Self {
            let st = self.0.status.get_or_insert_default();
            let conds = st.conditions.get_or_insert_default();
            conds.retain(|c| c.type_ != t);
            conds.push(PodCondition {
                type_: t.into(),
                status: s.into(),
                last_transition_time: since.map(|s| Time(Timestamp::from_second(s).unwrap())),
                ..Default::default()
            });
            self
        }
        /// Running and Ready since long ago.
        pub fn ready(self) -> Self {
            self.phase("Running")
                .cond("Ready", "True", Some(1_600_000_000))
        }
        pub fn node(mut self, n: &str) -> Self {
            self.0.spec.get_or_insert_default().node_name = Some(n.into());
            self
        }
        pub fn created(mut self, s: i64) -> Self {
            self.0.metadata.creation_timestamp = Some(Time(Timestamp::from_second(s).unwrap()));
            self
        }
        pub fn deleting(mut self) -> Self {
            self.0.metadata.deletion_timestamp = Some(Time(now()));
            self
        }
        pub fn build(self) -> Pod {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_pods::*;
    use super::*;

    #[test]
    fn activeness() {
        assert!(is_active(&mk_pod("a").phase("Running").build()));
        assert!(is_active(&mk_pod("a").build()));
        assert!(!is_active(&mk_pod("a").phase("Failed").build()));
        assert!(!is_active(&mk_pod("a").phase("Succeeded").build()));
        assert!(!is_active(&mk_pod("a").phase("Running").deleting().build()));
    }

    #[test]
    fn readiness_and_availability() {
        let n = now();
        let p = mk_pod("a").ready().build();
        assert!(is_ready(&p, n));
        assert!(is_available(&p, 0, n));
        // Running but not Ready.
        assert!(!is_ready(&mk_pod("a").phase("Running").build(), n));
        // Ready but not Running.
        assert!(!is_ready(
            &mk_pod("a").cond("Ready", "True", None).build(),
            n
        ));
        // InPlaceUpdateReady=False makes it unready.
        let p = mk_pod("a")
            .ready()
            .cond(keys::INPLACE_UPDATE_READY, "False", None)
            .build();
        assert!(!is_ready(&p, n));
        // Lifecycle PreparingNormal: ready but not available.
        let p = mk_pod("a")
            .ready()
            .state(ck::LIFECYCLE_PREPARING_NORMAL)
            .build();
        assert!(is_ready(&p, n));
        assert!(!is_available(&p, 0, n));
        // minReadySeconds.
        let just = n.as_second() - 5;
        let p = mk_pod("a")
            .phase("Running")
            .cond("Ready", "True", Some(just))
            .build();
        assert!(is_available(&p, 3, n));
        assert!(!is_available(&p, 10, n));
    }

    #[test]
    fn revision_matching() {
        let p = mk_pod("a").rev("cs-abc12").build();
        assert!(equal_to_revision_hash(&p, "cs-abc12"));
        assert!(equal_to_revision_hash(&p, "other-abc12"));
        assert!(!equal_to_revision_hash(&p, "cs-abc13"));
        let short = mk_pod("a").rev("abc12").build();
        assert!(equal_to_revision_hash(&short, "cs-abc12"));
        assert!(!equal_to_revision_hash(&mk_pod("a").build(), "cs-abc12"));
    }

    #[test]
    fn selectors() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let req = |k: &str, op: &str, v: &[&str]| LabelSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: Some(v.iter().map(ToString::to_string).collect()),
        };
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "nginx".to_string())].into()),
            match_expressions: Some(vec![
                req("tier", "In", &["web", "api"]),
                req("zone", "NotIn", &["b"]),
                req("canary", "DoesNotExist", &[]),
                req("env", "Exists", &[]),
            ]),
        };
        assert_eq!(
            selector_string(&sel),
            "app=nginx,!canary,env,tier in (api,web),zone notin (b)"
        );
        let l = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(selector_matches(
            &sel,
            &l(&[("app", "nginx"), ("tier", "web"), ("env", "x")])
        ));
        assert!(!selector_matches(
            &sel,
            &l(&[("app", "nginx"), ("tier", "db"), ("env", "x")])
        ));
        assert!(!selector_matches(
            &sel,
            &l(&[
                ("app", "nginx"),
                ("tier", "web"),
                ("env", "x"),
                ("canary", "1")
            ])
        ));
        assert!(!selector_matches(
            &sel,
            &l(&[
                ("app", "nginx"),
                ("tier", "web"),
                ("env", "x"),
                ("zone", "b")
            ])
        ));
        assert!(selector_matches(&LabelSelector::default(), &l(&[])));
        assert_eq!(selector_string(&LabelSelector::default()), "");
    }

    #[test]
    fn specified_delete() {
        let set: BTreeSet<String> = ["b".to_string()].into();
        assert!(is_specified_delete(
            &mk_pod("a").label(keys::SPECIFIED_DELETE_LABEL, "x").build(),
            &set
        ));
        assert!(is_specified_delete(&mk_pod("b").build(), &set));
        assert!(!is_specified_delete(&mk_pod("a").build(), &set));
    }
}
