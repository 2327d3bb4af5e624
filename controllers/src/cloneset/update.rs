//! The update plan (spec §9.1–§9.5): the per-pod refresh every reconcile runs (grace periods,
//! `InPlaceUpdateReady`, lifecycle transitions, `pod-template-hash` back-fill), and which pods move to
//! the target revision — in place or by recreation — in priority/scatter order within maxUnavailable.
//! Pure: it returns the pod writes and lets `reconcile` make them.

use super::diff::{Knobs, calculate_diffs};
use super::inplace::{self, GraceStep, UpdateSpec};
use super::scale::active_order;
use super::{Gates, lifecycle, podutil};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kruise_crds::keys::{self, cloneset as ck};
use kruise_crds::{
    CloneSet, CloneSetUpdateStrategyType, UpdatePriorityStrategy, UpdateScatterTerm,
};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One write to a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum PodWrite {
    /// Full UPDATE of the pod (resourceVersion-guarded).
    Replace(Box<Pod>),
    /// UPDATE of the pod's status (resourceVersion-guarded).
    ReplaceStatus(Box<Pod>),
    /// JSON merge patch of the pod (metadata only).
    Patch {
        /// Pod name.
        name: String,
        /// The patch.
        patch: Value,
    },
}

impl PodWrite {
    /// Name of the pod written.
    pub fn name(&self) -> &str {
        match self {
            Self::Replace(p) | Self::ReplaceStatus(p) => podutil::name(p),
            Self::Patch { name, .. } => name,
        }
    }
}

/// Result of refreshing the pods.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RefreshPlan {
    /// Writes, in order.
    pub writes: Vec<PodWrite>,
    /// Seconds until a grace period ends, if any is running.
    pub requeue_after: Option<i64>,
}

fn min_opt(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// §9.2 for every active pod.
pub fn plan_refresh(
    cs: &CloneSet,
    pods: &[&Pod],
    update_revision: &str,
    now: Timestamp,
) -> RefreshPlan {
    let lc = cs.spec.lifecycle.as_ref();
    let mut plan = RefreshPlan::default();
    for pod in pods {
        let name = podutil::name(pod).to_string();
        // One status write per pod: every status change of this pass goes into `status`.
        let mut status: Option<Pod> = None;
        match inplace::grace_step(pod, now) {
            Some(GraceStep::Drop) => plan.writes.push(PodWrite::Patch {
                name: name.clone(),
                patch: json!({"metadata": {"annotations": {
                    keys::INPLACE_UPDATE_GRACE: null, ck::LEGACY_INPLACE_UPDATE_GRACE: null}}}),
            }),
            Some(GraceStep::Wait(s)) => plan.requeue_after = min_opt(plan.requeue_after, s),
            Some(GraceStep::Finish(p)) => plan.writes.push(PodWrite::Replace(p)),
            None => {
                if inplace::is_update_completed(pod) {
                    status = inplace::with_ready_condition(pod, now);
                }
            }
        }
        let completed = inplace::is_update_completed(pod);
        let transition = lifecycle::refresh_transition(lc, pod, update_revision, completed);
        // KruisePodReady follows the state the pod is in or moves to (markPodNotReady).
        let state = transition.unwrap_or(podutil::lifecycle_state(pod));
        let base = status.as_ref().unwrap_or(pod);
        if let Some(p) = lifecycle::with_kruise_pod_ready(lc, base, state, now) {
            status = Some(p);
        }
        if let Some(p) = status {
            plan.writes.push(PodWrite::ReplaceStatus(Box::new(p)));
        }
        if let Some(state) = transition {
            plan.writes.push(PodWrite::Patch {
                name: name.clone(),
                patch: lifecycle::state_patch(state, now),
            });
        }
        if podutil::label(pod, ck::POD_TEMPLATE_HASH_LABEL).is_none()
            && let Some(rev) = podutil::label(pod, keys::CONTROLLER_REVISION_HASH_LABEL)
        {
            plan.writes.push(PodWrite::Patch {
                name,
                patch: json!({"metadata": {"labels": {
                    ck::POD_TEMPLATE_HASH_LABEL: podutil::short_hash(rev)}}}),
            });
        }
    }
    plan
}

/// One update decision.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateAction {
    /// Mark not ready, then rewrite the pod to the target revision in place.
    InPlace {
        /// Pod name.
        pod: String,
        /// What changes.
        spec: UpdateSpec,
    },
    /// Move the pod into a lifecycle state first (e.g. PreparingUpdate).
    Lifecycle {
        /// Pod name.
        pod: String,
        /// Merge patch.
        patch: Value,
        /// `KruisePodReady` not-ready key to add first (the hook has `markPodNotReady`).
        not_ready_key: Option<&'static str>,
    },
    /// Label the pod `apps.kruise.io/specified-delete: "true"` so scale recreates it.
    Recreate {
        /// Pod name.
        pod: String,
    },
}

/// What one update pass does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdatePlan {
    /// Actions in order.
    pub actions: Vec<UpdateAction>,
    /// Problems to report in the `FailedUpdate` condition.
    pub errors: Vec<String>,
    /// Seconds until an in-place grace period ends.
    pub requeue_after: Option<i64>,
}

/// Trailing digits of a label value (`sts-10` ⇒ 10; none ⇒ 0).
fn int_suffix(v: &str) -> i64 {
    let digits: String = v
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or(0)
}

/// §9.3 step 2: stable sort by priority strategy (first = updated first).
pub fn sort_by_priority(strategy: &UpdatePriorityStrategy, pods: &[&Pod], idx: &mut [usize]) {
    if let Some(terms) = strategy.weight_priority.as_ref().filter(|t| !t.is_empty()) {
        let weight = |p: &Pod| -> i64 {
            let l = podutil::labels(p);
            terms
                .iter()
                .filter(|t| podutil::selector_matches(&t.match_selector, &l))
                .map(|t| i64::from(t.weight))
                .sum()
        };
        idx.sort_by_key(|&i| std::cmp::Reverse(weight(pods[i])));
    } else if let Some(terms) = strategy.order_priority.as_ref().filter(|t| !t.is_empty()) {
        // (level, value): the first term whose key the pod has; pods with none come first.
        let key = |p: &Pod| -> (i64, i64) {
            terms
                .iter()
                .enumerate()
                .find_map(|(lvl, t)| {
                    podutil::label(p, &t.ordered_key)
                        .map(|v| (i64::try_from(lvl).unwrap_or(i64::MAX), int_suffix(v)))
                })
                .unwrap_or((-1, 0))
        };
        idx.sort_by(|&a, &b| {
            let (ka, kb) = (key(pods[a]), key(pods[b]));
            ka.0.cmp(&kb.0).then(kb.1.cmp(&ka.1))
        });
    }
}

fn matches_term(p: &Pod, t: &UpdateScatterTerm) -> bool {
    podutil::label(p, &t.key).unwrap_or_default() == t.value
}

/// Scatter terms in use, most-matched first (a single term is used as is).
fn scatter_terms(
    terms: &[UpdateScatterTerm],
    pods: &[&Pod],
    idx: &[usize],
) -> Vec<UpdateScatterTerm> {
    if terms.len() == 1 {
        return terms.to_vec();
    }
    let mut seen: Vec<(UpdateScatterTerm, usize)> = Vec::new();
    for t in terms {
        for &i in idx {
            if podutil::label(pods[i], &t.key) == Some(t.value.as_str()) {
                match seen.iter_mut().find(|(s, _)| s == t) {
                    Some((_, n)) => *n += 1,
                    None => seen.push((t.clone(), 1)),
                }
            }
        }
    }
    seen.sort_by_key(|x| std::cmp::Reverse(x.1));
    seen.into_iter().map(|(t, _)| t).collect()
}

#[derive(Debug, Default)]
struct ScatterGroup {
    num: usize,
    matched: usize,
    unmatched: usize,
    unmatched_remainder: usize,
}

fn group_of(matched: usize, unmatched: usize) -> ScatterGroup {
    let num = matched.min(unmatched);
    let size = |n: usize| {
        if num == 0 {
            0
        } else {
            (n as f64 / num as f64).round() as usize
        }
    };
    ScatterGroup {
        num,
        matched: size(matched),
        unmatched: size(unmatched),
        unmatched_remainder: 0,
    }
}

fn group_by_density(total_m: usize, total_u: usize, upd_m: usize, upd_u: usize) -> ScatterGroup {
    let total = group_of(total_m, total_u);
    let update = group_of(upd_m, upd_u);
    if total_u as f32 / total_m as f32 >= upd_u as f32 / upd_m as f32 {
        return update;
    }
    let (ms, us) = (total.matched.max(1), total.unmatched.max(1));
    let num = (upd_m / ms).min(upd_u / us);
    ScatterGroup {
        num,
        matched: ms,
        unmatched: us,
        unmatched_remainder: upd_u.saturating_sub(num * us),
    }
}

fn scatter_by_term(t: &UpdateScatterTerm, pods: &[&Pod], idx: Vec<usize>) -> Vec<usize> {
    let (mut matched, mut unmatched): (Vec<usize>, Vec<usize>) =
        idx.iter().partition(|&&i| matches_term(pods[i], t));
    if matched.len() <= 1 || unmatched.len() <= 1 {
        return idx;
    }
    let total_m = pods.iter().filter(|p| matches_term(p, t)).count() - 1;
    let total_u = pods.len() - total_m - 1;
    // The last matched pod is held back to the very end.
    let held = matched.pop();
    let g = group_by_density(total_m, total_u, matched.len(), unmatched.len());
    let mut out: Vec<usize> = unmatched
        .drain(..g.unmatched_remainder.min(unmatched.len()))
        .collect();
    let take = |src: &mut Vec<usize>, out: &mut Vec<usize>, n: usize| {
        let n = n.min(src.len());
        out.extend(src.drain(..n));
    };
    for _ in 0..g.num {
        take(&mut matched, &mut out, g.matched);
        take(&mut unmatched, &mut out, g.unmatched);
    }
    out.append(&mut matched);
    out.append(&mut unmatched);
    out.extend(held);
    out
}

/// §9.3 step 3: spread pods carrying `key=value` across the update order.
pub fn sort_by_scatter(terms: &[UpdateScatterTerm], pods: &[&Pod], idx: Vec<usize>) -> Vec<usize> {
    if terms.is_empty() || idx.len() <= 1 {
        return idx;
    }
    scatter_terms(terms, pods, &idx)
        .iter()
        .fold(idx, |acc, t| scatter_by_term(t, pods, acc))
}

/// §9.3: the order candidates are updated in.
pub fn sort_for_update(
    cs: &CloneSet,
    pods: &[&Pod],
    mut idx: Vec<usize>,
    now: Timestamp,
) -> Vec<usize> {
    idx.sort_by(|&a, &b| active_order(pods[a], pods[b], now));
    let us = cs.spec.update_strategy.clone().unwrap_or_default();
    if let Some(p) = us.priority_strategy.as_ref() {
        sort_by_priority(p, pods, &mut idx);
    }
    if let Some(s) = us.scatter_strategy.as_ref() {
        idx = sort_by_scatter(s, pods, idx);
    }
    idx.sort_by_key(|&i| podutil::lifecycle_state(pods[i]) != ck::LIFECYCLE_PREPARING_UPDATE);
    idx
}

/// §9.4: how many of the sorted candidates may be updated now.
pub fn limit_update(
    pods: &[&Pod],
    idx: &[usize],
    update_num: i32,
    update_max_unavailable: i32,
    target: &str,
    min_ready: i32,
    now: Timestamp,
) -> Vec<usize> {
    let n = usize::try_from(update_num.unsigned_abs()).unwrap_or(usize::MAX);
    let mut unavailable = 0;
    let mut target_unavailable = 0;
    for p in pods {
        if !podutil::is_available(p, min_ready, now) {
            unavailable += 1;
            if podutil::equal_to_revision_hash(p, target) {
                target_unavailable += 1;
            }
        }
    }
    let mut out = Vec::new();
    for &i in idx.iter().take(n) {
        if target_unavailable + i32::try_from(out.len()).unwrap_or(i32::MAX)
            >= update_max_unavailable
        {
            break;
        }
        if podutil::is_available(pods[i], min_ready, now) {
            if unavailable >= update_max_unavailable {
                break;
            }
            unavailable += 1;
        }
        out.push(i);
    }
    out
}

/// The stored template a pod was built from.
fn template_for<'a>(
    pod: &Pod,
    templates: &'a BTreeMap<String, PodTemplateSpec>,
) -> Option<&'a PodTemplateSpec> {
    templates
        .iter()
        .find(|(name, _)| podutil::equal_to_revision_hash(pod, name))
        .map(|(_, t)| t)
}

/// Plans one update pass. `templates` maps stored revision names to their templates.
pub fn plan_update(
    cs: &CloneSet,
    pods: &[&Pod],
    current_revision: &str,
    update_revision: &str,
    templates: &BTreeMap<String, PodTemplateSpec>,
    gates: &Gates,
    now: Timestamp,
) -> UpdatePlan {
    let mut plan = UpdatePlan::default();
    let us = cs.spec.update_strategy.clone().unwrap_or_default();
    let policy = us.type_.unwrap_or_default();
    if policy == CloneSetUpdateStrategyType::OnDelete || us.paused.unwrap_or(false) {
        return plan;
    }
    let knobs = Knobs::from_cloneset(cs, gates);
    let is_update = |p: &Pod| podutil::equal_to_revision_hash(p, update_revision);
    let diffs = calculate_diffs(
        &knobs,
        pods,
        current_revision,
        update_revision,
        is_update,
        gates,
        now,
    );
    if diffs.update_num == 0 {
        return plan;
    }
    let target = if diffs.update_num > 0 {
        update_revision
    } else {
        current_revision
    };
    let candidates: Vec<usize> = (0..pods.len())
        .filter(|&i| {
            let p = pods[i];
            (is_update(p) != (diffs.update_num > 0))
                && podutil::lifecycle_state(p) != ck::LIFECYCLE_PREPARING_DELETE
                && inplace::grace_of(p).is_none()
        })
        .collect();
    let sorted = sort_for_update(cs, pods, candidates, now);
    let chosen = limit_update(
        pods,
        &sorted,
        diffs.update_num,
        diffs.update_max_unavailable,
        target,
        knobs.min_ready_seconds,
        now,
    );
    let lc = cs.spec.lifecycle.as_ref();
    let hook = lc.and_then(|l| l.in_place_update.as_ref());
    let not_ready_key =
        lifecycle::hook_marks_not_ready(hook).then_some(ck::KRUISE_POD_READY_PRE_UPDATE_KEY);
    let grace = us
        .in_place_update_strategy
        .as_ref()
        .and_then(|s| s.grace_period_seconds)
        .unwrap_or(0);
    for i in chosen {
        let pod = pods[i];
        let name = podutil::name(pod).to_string();
        if policy.is_in_place() {
            let spec = match (template_for(pod, templates), templates.get(target)) {
                (Some(old), Some(new)) => inplace::calculate_spec(old, new, target, grace),
                _ => None,
            };
            if let Some(spec) = spec {
                let state = podutil::lifecycle_state(pod);
                match state {
                    "" | ck::LIFECYCLE_PREPARING_NORMAL | ck::LIFECYCLE_NORMAL
                        if lifecycle::is_hooked(hook, pod) =>
                    {
                        plan.actions.push(UpdateAction::Lifecycle {
                            pod: name,
                            patch: lifecycle::state_patch(ck::LIFECYCLE_PREPARING_UPDATE, now),
                            not_ready_key,
                        });
                    }
                    ck::LIFECYCLE_UPDATED => plan.actions.push(UpdateAction::Lifecycle {
                        pod: name,
                        patch: lifecycle::state_patch_with_handler(
                            ck::LIFECYCLE_PREPARING_UPDATE,
                            hook,
                            pod,
                            now,
                        ),
                        not_ready_key,
                    }),
                    ck::LIFECYCLE_PREPARING_UPDATE if lifecycle::is_hooked(hook, pod) => {}
                    ""
                    | ck::LIFECYCLE_PREPARING_NORMAL
                    | ck::LIFECYCLE_NORMAL
                    | ck::LIFECYCLE_PREPARING_UPDATE
                    | ck::LIFECYCLE_UPDATING => {
                        if grace > 0 {
                            plan.requeue_after = min_opt(plan.requeue_after, i64::from(grace));
                        }
                        plan.actions.push(UpdateAction::InPlace { pod: name, spec });
                    }
                    other => plan.errors.push(format!(
                        "not allowed to in-place update pod {name} in state {other}"
                    )),
                }
                continue;
            }
            if policy == CloneSetUpdateStrategyType::InPlaceOnly {
                plan.errors.push(format!(
                    "find Pod {name} update strategy is InPlaceOnly but can not update in-place"
                ));
                continue;
            }
        }
        plan.actions.push(UpdateAction::Recreate { pod: name });
    }
    plan
}

/// The patch a recreate marks a pod with.
pub fn recreate_patch() -> Value {
    json!({"metadata": {"labels": {keys::SPECIFIED_DELETE_LABEL: "true"}}})
}

/// Orders writes so that no two writes of one pod conflict: status replaces before replaces.
pub fn order_writes(writes: &mut [PodWrite]) {
    writes.sort_by(|a, b| match (a, b) {
        (PodWrite::ReplaceStatus(_), PodWrite::Replace(_)) => Ordering::Less,
        (PodWrite::Replace(_), PodWrite::ReplaceStatus(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    });
}

#[cfg(test)]
mod tests {
    use super::super::podutil::test_pods::*;
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodReadinessGate, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kruise_crds::{
        CloneSetSpec, CloneSetUpdateStrategy, InPlaceUpdateStrategy, Lifecycle, LifecycleHook,
        UpdatePriorityOrderTerm, UpdatePriorityWeightTerm,
    };

    const OLD: &str = "cs-old";
    const NEW: &str = "cs-new";

    fn tpl(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta::default()),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn templates(new_image: &str) -> BTreeMap<String, PodTemplateSpec> {
        [
            (OLD.to_string(), tpl("nginx:1")),
            (NEW.to_string(), tpl(new_image)),
        ]
        .into()
    }

    fn cs(replicas: i32, partition: i32, mu: i32, t: CloneSetUpdateStrategyType) -> CloneSet {
        let mut cs = CloneSet::new("cs", CloneSetSpec::default());
        cs.spec.replicas = Some(replicas);
        cs.spec.update_strategy = Some(CloneSetUpdateStrategy {
            type_: Some(t),
            partition: Some(IntOrString::Int(partition)),
            max_unavailable: Some(IntOrString::Int(mu)),
            ..Default::default()
        });
        cs
    }

    fn rp(name: &str, rev: &str) -> Pod {
        mk_pod(name)
            .rev(rev)
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .node("n")
            .build()
    }

    fn names(plan: &UpdatePlan) -> Vec<String> {
        plan.actions
            .iter()
            .map(|a| match a {
                UpdateAction::InPlace { pod, .. } => format!("inplace:{pod}"),
                UpdateAction::Lifecycle { pod, .. } => format!("lifecycle:{pod}"),
                UpdateAction::Recreate { pod } => format!("recreate:{pod}"),
            })
            .collect()
    }

    fn run(cs: &CloneSet, pods: &[Pod], new_image: &str) -> UpdatePlan {
        let refs: Vec<&Pod> = pods.iter().collect();
        plan_update(
            cs,
            &refs,
            OLD,
            NEW,
            &templates(new_image),
            &Gates::default(),
            now(),
        )
    }

    #[test]
    fn recreate_within_max_unavailable() {
        let pods: Vec<Pod> = ["a", "b", "c", "d"].iter().map(|n| rp(n, OLD)).collect();
        let plan = run(
            &cs(4, 0, 2, CloneSetUpdateStrategyType::ReCreate),
            &pods,
            "nginx:2",
        );
        assert_eq!(plan.actions.len(), 2);
        assert!(
            plan.actions
                .iter()
                .all(|a| matches!(a, UpdateAction::Recreate { .. }))
        );
        // Partition 3 leaves one to update.
        let plan = run(
            &cs(4, 3, 2, CloneSetUpdateStrategyType::ReCreate),
            &pods,
            "nginx:2",
        );
        assert_eq!(plan.actions.len(), 1);
        // An unavailable old pod is updated first and does not use the budget.
        let mut pods = pods;
        pods[2] = mk_pod("c")
            .rev(OLD)
            .state(ck::LIFECYCLE_NORMAL)
            .phase("Running")
            .node("n")
            .build();
        let plan = run(
            &cs(4, 0, 1, CloneSetUpdateStrategyType::ReCreate),
            &pods,
            "nginx:2",
        );
        assert_eq!(names(&plan), vec!["recreate:c"]);
        // Paused / OnDelete: nothing.
        let mut paused = cs(4, 0, 2, CloneSetUpdateStrategyType::ReCreate);
        paused.spec.update_strategy.as_mut().unwrap().paused = Some(true);
        assert!(run(&paused, &pods, "nginx:2").actions.is_empty());
        assert!(
            run(
                &cs(4, 0, 2, CloneSetUpdateStrategyType::OnDelete),
                &pods,
                "nginx:2"
            )
            .actions
            .is_empty()
        );
    }

    #[test]
    fn in_place_when_possible() {
        let pods = vec![rp("a", OLD), rp("b", OLD)];
        let plan = run(
            &cs(2, 0, 1, CloneSetUpdateStrategyType::InPlaceIfPossible),
            &pods,
            "nginx:2",
        );
        assert_eq!(plan.actions.len(), 1);
        match &plan.actions[0] {
            UpdateAction::InPlace { spec, .. } => {
                assert_eq!(spec.revision, NEW);
                assert_eq!(spec.container_images["main"], "nginx:2");
            }
            other => panic!("{other:?}"),
        }
        // A change that cannot go in place: recreate, or an error under InPlaceOnly.
        let mut t = templates("nginx:2");
        t.get_mut(NEW).unwrap().spec.as_mut().unwrap().containers[0].command =
            Some(vec!["x".into()]);
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = plan_update(
            &cs(2, 0, 1, CloneSetUpdateStrategyType::InPlaceIfPossible),
            &refs,
            OLD,
            NEW,
            &t,
            &Gates::default(),
            now(),
        );
        assert!(matches!(plan.actions[0], UpdateAction::Recreate { .. }));
        let plan = plan_update(
            &cs(2, 0, 1, CloneSetUpdateStrategyType::InPlaceOnly),
            &refs,
            OLD,
            NEW,
            &t,
            &Gates::default(),
            now(),
        );
        assert!(plan.actions.is_empty());
        assert!(
            plan.errors[0].contains("InPlaceOnly but can not update in-place"),
            "{:?}",
            plan.errors
        );
        // Grace period: requeue.
        let mut g = cs(2, 0, 1, CloneSetUpdateStrategyType::InPlaceIfPossible);
        g.spec
            .update_strategy
            .as_mut()
            .unwrap()
            .in_place_update_strategy = Some(InPlaceUpdateStrategy {
            grace_period_seconds: Some(10),
        });
        assert_eq!(run(&g, &pods, "nginx:2").requeue_after, Some(10));
    }

    #[test]
    fn in_place_update_hook() {
        let mut c = cs(1, 0, 1, CloneSetUpdateStrategyType::InPlaceIfPossible);
        c.spec.lifecycle = Some(Lifecycle {
            in_place_update: Some(LifecycleHook {
                labels_handler: Some([("hold".to_string(), "true".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let hooked = mk_pod("a")
            .rev(OLD)
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .label("hold", "true")
            .build();
        assert_eq!(names(&run(&c, &[hooked], "nginx:2")), vec!["lifecycle:a"]);
        let waiting = mk_pod("a")
            .rev(OLD)
            .state(ck::LIFECYCLE_PREPARING_UPDATE)
            .ready()
            .label("hold", "true")
            .build();
        assert!(run(&c, &[waiting], "nginx:2").actions.is_empty());
        // PreparingUpdate is unavailable; maxUnavailable 1 ⇒ the released pod proceeds.
        let released = mk_pod("a")
            .rev(OLD)
            .state(ck::LIFECYCLE_PREPARING_UPDATE)
            .ready()
            .build();
        assert_eq!(names(&run(&c, &[released], "nginx:2")), vec!["inplace:a"]);
        let updated = mk_pod("a")
            .rev(OLD)
            .state(ck::LIFECYCLE_UPDATED)
            .ready()
            .build();
        let plan = run(&c, &[updated], "nginx:2");
        match &plan.actions[0] {
            UpdateAction::Lifecycle { patch, .. } => {
                assert_eq!(patch["metadata"]["labels"]["hold"], "true")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mark_pod_not_ready_hooks() {
        let mut c = cs(1, 0, 1, CloneSetUpdateStrategyType::InPlaceIfPossible);
        c.spec.lifecycle = Some(Lifecycle {
            in_place_update: Some(LifecycleHook {
                labels_handler: Some([("hold".to_string(), "true".to_string())].into()),
                mark_pod_not_ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        let hooked = mk_pod("a")
            .rev(OLD)
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .label("hold", "true")
            .build();
        match &run(&c, &[hooked], "nginx:2").actions[0] {
            UpdateAction::Lifecycle { not_ready_key, .. } => {
                assert_eq!(*not_ready_key, Some(ck::KRUISE_POD_READY_PRE_UPDATE_KEY));
            }
            other => panic!("{other:?}"),
        }
        // Entering Updated drops the key again, in the same status write as InPlaceUpdateReady.
        let mut p = mk_pod("a").rev(NEW).state(ck::LIFECYCLE_UPDATING).build();
        p.spec.get_or_insert_default().readiness_gates = Some(vec![
            PodReadinessGate {
                condition_type: keys::INPLACE_UPDATE_READY.into(),
            },
            PodReadinessGate {
                condition_type: ck::KRUISE_POD_READY.into(),
            },
        ]);
        let p = lifecycle::with_not_ready_key(&p, ck::KRUISE_POD_READY_PRE_UPDATE_KEY, true, now())
            .unwrap();
        let plan = plan_refresh(&c, &[&p], NEW, now());
        let statuses: Vec<&PodWrite> = plan
            .writes
            .iter()
            .filter(|w| matches!(w, PodWrite::ReplaceStatus(_)))
            .collect();
        assert_eq!(statuses.len(), 1, "{plan:?}");
        if let PodWrite::ReplaceStatus(sp) = statuses[0] {
            assert!(podutil::in_place_update_ready(sp));
            assert_eq!(
                podutil::condition(sp, ck::KRUISE_POD_READY).unwrap().status,
                "True"
            );
        }
    }

    /// A pod as the controller creates it: both gates.
    fn gated(b: PodBuilder) -> Pod {
        let mut p = b.build();
        p.spec.get_or_insert_default().readiness_gates = Some(vec![
            PodReadinessGate {
                condition_type: keys::INPLACE_UPDATE_READY.into(),
            },
            PodReadinessGate {
                condition_type: ck::KRUISE_POD_READY.into(),
            },
        ]);
        p
    }

    fn marking(pre_delete: bool, in_place: bool) -> CloneSet {
        let hook = |mark: bool| LifecycleHook {
            labels_handler: Some([("hold".to_string(), "true".to_string())].into()),
            mark_pod_not_ready: Some(mark),
            ..Default::default()
        };
        let mut c = cs(1, 0, 1, CloneSetUpdateStrategyType::InPlaceIfPossible);
        c.spec.lifecycle = Some(Lifecycle {
            pre_delete: Some(hook(pre_delete)),
            in_place_update: Some(hook(in_place)),
            ..Default::default()
        });
        c
    }

    /// The one status write of a refresh pass, if any.
    fn status_write(plan: &RefreshPlan) -> Option<&Pod> {
        let mut it = plan.writes.iter().filter_map(|w| match w {
            PodWrite::ReplaceStatus(p) => Some(&**p),
            _ => None,
        });
        let first = it.next();
        assert!(it.next().is_none(), "one status write per pod: {plan:?}");
        first
    }

    fn kruise_pod_ready(p: &Pod) -> (String, Option<String>) {
        let c = podutil::condition(p, ck::KRUISE_POD_READY).expect("the condition");
        (c.status.clone(), c.message.clone())
    }

    #[test]
    fn a_new_pod_gets_kruise_pod_ready_true_with_in_place_update_ready() {
        let c = cs(1, 0, 1, CloneSetUpdateStrategyType::ReCreate);
        let p = gated(mk_pod("a").rev(NEW).state(ck::LIFECYCLE_PREPARING_NORMAL));
        let plan = plan_refresh(&c, &[&p], NEW, now());
        let sp = status_write(&plan).expect("a status write");
        assert!(podutil::in_place_update_ready(sp));
        assert_eq!(kruise_pod_ready(sp), ("True".to_string(), None));
        // set once: the next pass writes nothing
        let plan = plan_refresh(&c, &[sp], NEW, now());
        assert!(status_write(&plan).is_none(), "{plan:?}");
        // a pod without the gate (created before) is left alone
        let old = mk_pod("b").rev(NEW).state(ck::LIFECYCLE_NORMAL).build();
        assert!(status_write(&plan_refresh(&c, &[&old], NEW, now())).is_none());
    }

    #[test]
    fn preparing_delete_with_mark_pod_not_ready_holds_the_pod_not_ready() {
        let ready_pod = |state: &str| {
            gated(
                mk_pod("a")
                    .rev(NEW)
                    .state(state)
                    .ready()
                    .cond("ContainersReady", "True", Some(1_600_000_000))
                    .cond(keys::INPLACE_UPDATE_READY, "True", Some(1_600_000_000))
                    .cond(ck::KRUISE_POD_READY, "True", Some(1_600_000_000)),
            )
        };
        let p = ready_pod(ck::LIFECYCLE_PREPARING_DELETE);
        let sp_plan = plan_refresh(&marking(true, false), &[&p], NEW, now());
        let sp = status_write(&sp_plan).expect("a status write");
        assert_eq!(
            kruise_pod_ready(sp),
            (
                "False".to_string(),
                Some(r#"[{"userAgent":"Lifecycle","key":"preDeleteHook"}]"#.to_string())
            )
        );
        // Ready drops at once, before the kubelet's next status sync
        let ready = podutil::condition(sp, "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some(r#"the status of pod readiness gate "KruisePodReady" is not "True", but False"#)
        );
        // without markPodNotReady the pod in PreparingDelete stays ready
        assert!(status_write(&plan_refresh(&marking(false, false), &[&p], NEW, now())).is_none());
        // a Normal pod is never marked
        let n = ready_pod(ck::LIFECYCLE_NORMAL);
        assert!(status_write(&plan_refresh(&marking(true, true), &[&n], NEW, now())).is_none());
    }

    #[test]
    fn the_pre_update_key_is_held_through_updating_and_released_when_the_pod_is_back() {
        let c = marking(false, true);
        let held = |b: PodBuilder| {
            let p = gated(b.cond(keys::INPLACE_UPDATE_READY, "True", None));
            lifecycle::with_not_ready_key(&p, ck::KRUISE_POD_READY_PRE_UPDATE_KEY, true, now())
                .unwrap()
        };
        // PreparingUpdate lost its key (a failed best-effort write): it is added again
        let p = gated(
            mk_pod("a")
                .rev(OLD)
                .state(ck::LIFECYCLE_PREPARING_UPDATE)
                .cond(keys::INPLACE_UPDATE_READY, "True", None)
                .cond(ck::KRUISE_POD_READY, "True", None),
        );
        let sp = plan_refresh(&c, &[&p], NEW, now());
        assert_eq!(
            kruise_pod_ready(status_write(&sp).unwrap()).0,
            "False",
            "{sp:?}"
        );
        // Updating (not yet completed: the in-place state still lists images to change): kept
        let mut updating = held(mk_pod("a").rev(NEW).state(ck::LIFECYCLE_UPDATING));
        updating.metadata.annotations = Some(
            [(
                keys::INPLACE_UPDATE_STATE.to_string(),
                r#"{"revision":"new","updateTimestamp":"2023-11-14T22:13:20Z","nextContainerImages":{"main":"nginx:2"}}"#
                    .to_string(),
            )]
            .into(),
        );
        assert!(status_write(&plan_refresh(&c, &[&updating], NEW, now())).is_none());
        // rolled back while waiting, hook labels still on: PreparingUpdate goes straight to
        // Normal, and the key goes with it (OpenKruise left it, and the pod not ready)
        let back = held(
            mk_pod("a")
                .rev(NEW)
                .state(ck::LIFECYCLE_PREPARING_UPDATE)
                .label("hold", "true"),
        );
        let plan = plan_refresh(&c, &[&back], NEW, now());
        assert_eq!(
            kruise_pod_ready(status_write(&plan).unwrap()),
            ("True".to_string(), Some("[]".to_string()))
        );
        assert!(
            plan.writes
                .iter()
                .any(|w| matches!(w, PodWrite::Patch { patch, .. }
            if patch["metadata"]["labels"][keys::LIFECYCLE_STATE_LABEL] == ck::LIFECYCLE_NORMAL))
        );
        // a Normal pod still holding the key (markPodNotReady turned off meanwhile) is released
        let normal = held(mk_pod("a").rev(NEW).state(ck::LIFECYCLE_NORMAL));
        let plan = plan_refresh(&marking(false, false), &[&normal], NEW, now());
        assert_eq!(kruise_pod_ready(status_write(&plan).unwrap()).0, "True");
    }

    #[test]
    fn priority_orders() {
        let pods = [
            mk_pod("p0").label("key", "v-5").build(),
            mk_pod("p1").label("key", "v-10").build(),
            mk_pod("p2").build(),
            mk_pod("p3").label("other", "7").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let order = UpdatePriorityStrategy {
            order_priority: Some(vec![
                UpdatePriorityOrderTerm {
                    ordered_key: "key".into(),
                },
                UpdatePriorityOrderTerm {
                    ordered_key: "other".into(),
                },
            ]),
            weight_priority: None,
        };
        let mut idx = vec![0, 1, 2, 3];
        sort_by_priority(&order, &refs, &mut idx);
        // No key first (quirk), then key by value descending, then the second key.
        assert_eq!(idx, vec![2, 1, 0, 3]);
        let weight = UpdatePriorityStrategy {
            order_priority: None,
            weight_priority: Some(vec![
                UpdatePriorityWeightTerm {
                    weight: 50,
                    match_selector: LabelSelector {
                        match_labels: Some([("other".to_string(), "7".to_string())].into()),
                        ..Default::default()
                    },
                },
                UpdatePriorityWeightTerm {
                    weight: 30,
                    match_selector: LabelSelector {
                        match_labels: Some([("key".to_string(), "v-5".to_string())].into()),
                        ..Default::default()
                    },
                },
            ]),
        };
        let mut idx = vec![0, 1, 2, 3];
        sort_by_priority(&weight, &refs, &mut idx);
        assert_eq!(idx, vec![3, 0, 1, 2]);
        assert_eq!(int_suffix("sts-10"), 10);
        assert_eq!(int_suffix("abc"), 0);
    }

    #[test]
    fn scatter_by_rule_vectors() {
        // OpenKruise's TestScatterPodsByRule table (term labelA=AAA). Two of its "more scattered
        // than ordinary pods" rows are left out: they contradict the `math.Round` group sizes of
        // the scatter_sort.go this follows (spec §9.3), e.g. 3 matched in 2 groups ⇒ size 2.
        let cases: &[(&[&str], &[usize])] = &[
            (&[""], &[0]),
            (&["A"], &[0]),
            (&["A", "b"], &[0, 1]),
            (&["", "", "", "", "A", "A"], &[4, 0, 1, 2, 3, 5]),
            // 3 matched (one held back) and 2 unmatched: groups of 2 matched and 1 unmatched.
            (&["", "", "A", "A", "A", "A"], &[2, 3, 0, 4, 1, 5]),
            (&["", "", "", "A", "A", "A"], &[3, 0, 1, 4, 2, 5]),
            (&["", "", "", "A", "", "", "A"], &[3, 0, 1, 2, 4, 5, 6]),
            (
                &["", "", "", "", "", "", "A", "A", "A"],
                &[6, 0, 1, 2, 7, 3, 4, 5, 8],
            ),
            (
                &["", "A", "", "A", "", "", "A", "A", "A"],
                &[1, 0, 3, 2, 6, 4, 7, 5, 8],
            ),
        ];
        let term = UpdateScatterTerm {
            key: "labelA".into(),
            value: "AAA".into(),
        };
        for (labels, want) in cases {
            let pods: Vec<Pod> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let b = mk_pod(&i.to_string());
                    if *l == "A" {
                        b.label("labelA", "AAA").build()
                    } else {
                        b.build()
                    }
                })
                .collect();
            let refs: Vec<&Pod> = pods.iter().collect();
            let got = scatter_by_term(&term, &refs, (0..pods.len()).collect());
            assert_eq!(&got, want, "{labels:?}");
        }
    }

    #[test]
    fn scatter_term_order() {
        let pods = [
            mk_pod("0").build(),
            mk_pod("1").build(),
            mk_pod("2").label("labelB", "B").build(),
            mk_pod("3").label("labelB", "BBB").build(),
            mk_pod("4").label("labelA", "AAA").build(),
            mk_pod("5").label("labelA", "AAA").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let a = UpdateScatterTerm {
            key: "labelA".into(),
            value: "AAA".into(),
        };
        let b = UpdateScatterTerm {
            key: "labelB".into(),
            value: "BBB".into(),
        };
        assert_eq!(
            scatter_terms(&[b.clone(), a.clone()], &refs, &[0, 1, 2, 3, 4, 5]),
            vec![a, b]
        );
    }

    #[test]
    fn refresh_sets_ready_and_lifecycle() {
        let c = cs(1, 0, 1, CloneSetUpdateStrategyType::ReCreate);
        let mut p = mk_pod("a")
            .rev(NEW)
            .state(ck::LIFECYCLE_PREPARING_NORMAL)
            .node("n")
            .build();
        p.spec.as_mut().unwrap().readiness_gates = Some(vec![PodReadinessGate {
            condition_type: keys::INPLACE_UPDATE_READY.into(),
        }]);
        let plan = plan_refresh(&c, &[&p], NEW, now());
        assert_eq!(plan.writes.len(), 3, "{plan:?}");
        assert!(matches!(plan.writes[0], PodWrite::ReplaceStatus(_)));
        match &plan.writes[1] {
            PodWrite::Patch { patch, .. } => assert_eq!(
                patch["metadata"]["labels"][keys::LIFECYCLE_STATE_LABEL],
                "Normal"
            ),
            other => panic!("{other:?}"),
        }
        match &plan.writes[2] {
            PodWrite::Patch { patch, .. } => assert_eq!(
                patch["metadata"]["labels"][ck::POD_TEMPLATE_HASH_LABEL],
                "new"
            ),
            other => panic!("{other:?}"),
        }
        // An in-flight in-place update: no ready condition yet, no transition.
        let spec = UpdateSpec {
            revision: NEW.into(),
            container_images: [("main".to_string(), "nginx:2".to_string())].into(),
            ..Default::default()
        };
        let mut running = p.clone();
        running.spec.as_mut().unwrap().containers = vec![Container {
            name: "main".into(),
            image: Some("nginx:1".into()),
            ..Default::default()
        }];
        running.status = Some(Default::default());
        running.status.as_mut().unwrap().container_statuses =
            Some(vec![k8s_openapi::api::core::v1::ContainerStatus {
                name: "main".into(),
                image: "nginx:1".into(),
                image_id: "sha256:1".into(),
                ..Default::default()
            }]);
        let upd = inplace::apply_update(&running, &spec, true, now());
        let plan = plan_refresh(&c, &[&upd], NEW, now());
        assert!(plan.writes.is_empty(), "{plan:?}");
    }
}
