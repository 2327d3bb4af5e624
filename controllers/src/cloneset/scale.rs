//! The scale plan (spec §8.2–§8.3): which pods to create (at which revision), which to delete, which
//! to move into or out of `PreparingDelete`, honouring podsToDelete, the specified-delete label,
//! partition, maxSurge, maxUnavailable, scaleStrategy.maxUnavailable and deletion priority. Pure.

use super::diff::{Diffs, Knobs, calculate_diffs};
use super::pod::NewPod;
use super::{Gates, lifecycle, podutil};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::CloneSet;
use kruise_crds::keys::cloneset as ck;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// What one scale pass does. Only the first non-empty step of §8.2 is planned: creations, or
/// cancellations, or deletions (a reconcile that scales does not update).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalePlan {
    /// Pods to create (ids are filled in by the caller: `NewPod::instance_id` is empty here).
    pub create: Vec<NewPod>,
    /// Pods to delete (with the PVCs of their instance ids).
    pub delete: Vec<String>,
    /// Pods to move into `PreparingDelete` (their preDelete hook holds them).
    pub prepare_delete: Vec<String>,
    /// `PreparingDelete` pods to move back to `PreparingNormal` (a scale-up cancels their deletion).
    pub cancel_delete: Vec<String>,
    /// `(wanted, allowed)` when `scaleStrategy.maxUnavailable` held creations back.
    pub scale_up_limited: Option<(i32, i32)>,
    /// The diffs the plan came from.
    pub diffs: Diffs,
}

impl ScalePlan {
    /// Whether the plan changes anything (then the update step waits for the next reconcile).
    pub fn is_modifying(&self) -> bool {
        !(self.create.is_empty()
            && self.delete.is_empty()
            && self.prepare_delete.is_empty()
            && self.cancel_delete.is_empty())
    }
}

fn phase_rank(p: &Pod) -> u8 {
    match podutil::phase(p) {
        "Pending" => 0,
        "Unknown" | "" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn node(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn ready_since(p: &Pod) -> Option<i64> {
    podutil::condition(p, "Ready")
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second())
}

fn max_restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn created(p: &Pod) -> Option<i64> {
    p.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
}

fn deletion_cost(p: &Pod) -> i32 {
    podutil::annotation(p, ck::POD_DELETION_COST_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Upstream `ActivePods.Less` tail: ready-time, restarts, creation (first = to act on first).
fn tail_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    let (ra, rb) = (podutil::is_ready(a, now), podutil::is_ready(b, now));
    if ra && rb {
        // More recently ready first.
        let o = ready_since(b).cmp(&ready_since(a));
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = max_restarts(b).cmp(&max_restarts(a));
    if o != Ordering::Equal {
        return o;
    }
    // Newer (or unset) creation first.
    match (created(a), created(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    }
}

/// The head shared by the deletion and update orders: unassigned, phase, readiness.
fn head_order(a: &Pod, b: &Pod, min_ready: Option<i32>, now: Timestamp) -> Ordering {
    let o = (!node(a).is_empty()).cmp(&!node(b).is_empty());
    if o != Ordering::Equal {
        return o;
    }
    let o = phase_rank(a).cmp(&phase_rank(b));
    if o != Ordering::Equal {
        return o;
    }
    if let Some(mr) = min_ready {
        let o = podutil::is_available(a, mr, now).cmp(&podutil::is_available(b, mr, now));
        if o != Ordering::Equal {
            return o;
        }
    }
    podutil::is_ready(a, now).cmp(&podutil::is_ready(b, now))
}

/// Upstream `ActivePods.Less`: the default update order (first = updated first).
pub fn active_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    head_order(a, b, None, now).then_with(|| tail_order(a, b, now))
}

/// Same-node ranks: on a node with several of these pods, all but the healthiest get a rank (higher
/// = deleted sooner), so crowded nodes lose pods first.
fn same_node_ranks(pods: &[&Pod], min_ready: i32, now: Timestamp) -> Vec<usize> {
    let mut by_node: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pods.iter().enumerate() {
        by_node.entry(node(p)).or_default().push(i);
    }
    let mut ranks = vec![0; pods.len()];
    for (n, mut idx) in by_node {
        if n.is_empty() || idx.len() < 2 {
            continue;
        }
        idx.sort_by(|&x, &y| {
            head_order(pods[x], pods[y], Some(min_ready), now)
                .then_with(|| tail_order(pods[x], pods[y], now))
        });
        let len = idx.len();
        for (pos, &i) in idx.iter().enumerate().take(len - 1) {
            ranks[i] = len - pos;
        }
    }
    ranks
}

/// §8.3: sorts pods so the first are deleted first.
pub fn sort_for_deletion(pods: &mut Vec<&Pod>, min_ready: i32, now: Timestamp) {
    let ranks = same_node_ranks(pods, min_ready, now);
    let mut idx: Vec<usize> = (0..pods.len()).collect();
    idx.sort_by(|&x, &y| {
        let (a, b) = (pods[x], pods[y]);
        head_order(a, b, Some(min_ready), now)
            .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
            .then_with(|| ranks[y].cmp(&ranks[x]))
            .then_with(|| tail_order(a, b, now))
    });
    let sorted: Vec<&Pod> = idx.iter().map(|&i| pods[i]).collect();
    *pods = sorted;
}

fn choose(mut pods: Vec<&Pod>, n: i32, min_ready: i32, now: Timestamp) -> Vec<&Pod> {
    let n = usize::try_from(n.max(0)).unwrap_or(0);
    if n < pods.len() {
        sort_for_deletion(&mut pods, min_ready, now);
    }
    pods.truncate(n);
    pods
}

/// Plans one scale pass over the active pods.
pub fn plan_scale(
    cs: &CloneSet,
    pods: &[&Pod],
    current_revision: &str,
    update_revision: &str,
    gates: &Gates,
    now: Timestamp,
) -> ScalePlan {
    let knobs = Knobs::from_cloneset(cs, gates);
    let lc = cs.spec.lifecycle.as_ref();
    let pre_delete_hook = lc.and_then(|l| l.pre_delete.as_ref());
    let mut plan = ScalePlan::default();
    let is_pre_deleting = |p: &Pod| podutil::lifecycle_state(p) == ck::LIFECYCLE_PREPARING_DELETE;
    let specified = |p: &Pod| podutil::is_specified_delete(p, &knobs.pods_to_delete);
    let num_to_delete = pods
        .iter()
        .filter(|p| specified(p) || is_pre_deleting(p))
        .count();

    // 1. A scale-up cancels deletions still waiting in their preDelete hook.
    if !lifecycle::marks_not_ready(lc) {
        let mut diff = i64::from(knobs.replicas) - pods.len() as i64 + num_to_delete as i64;
        for p in pods.iter().filter(|p| is_pre_deleting(p) && !specified(p)) {
            if diff <= 0 {
                break;
            }
            plan.cancel_delete.push(podutil::name(p).to_string());
            diff -= 1;
        }
        if !plan.cancel_delete.is_empty() {
            return plan;
        }
    }

    // 2. The numbers.
    let is_update = |p: &Pod| {
        podutil::equal_to_revision_hash(p, update_revision)
            || (gates.preparing_update_as_update
                && podutil::lifecycle_state(p) == ck::LIFECYCLE_PREPARING_UPDATE)
    };
    let diffs = calculate_diffs(
        &knobs,
        pods,
        current_revision,
        update_revision,
        is_update,
        gates,
        now,
    );
    plan.diffs = diffs;
    if diffs.scale_up_num > diffs.scale_up_limit {
        plan.scale_up_limited = Some((diffs.scale_up_num, diffs.scale_up_limit));
    }

    // 3. Scale out, and nothing else this pass.
    if diffs.scale_up_num > 0 {
        let current_n = diffs
            .scale_up_limit
            .min(diffs.scale_up_num_old_revision)
            .max(0);
        for i in 0..diffs.scale_up_limit.max(0) {
            let revision = if i < current_n {
                current_revision
            } else {
                update_revision
            };
            plan.create.push(NewPod {
                revision: revision.to_string(),
                instance_id: String::new(),
            });
        }
        return plan;
    }

    let delete_pod = |plan: &mut ScalePlan, p: &Pod| {
        let name = podutil::name(p).to_string();
        if lifecycle::is_hooked(pre_delete_hook, p) {
            if !is_pre_deleting(p) {
                plan.prepare_delete.push(name);
            }
        } else {
            plan.delete.push(name);
        }
    };

    // 4. Pods whose preDelete hook was released.
    for p in pods.iter().filter(|p| is_pre_deleting(p)) {
        delete_pod(&mut plan, p);
    }
    if plan.is_modifying() {
        return plan;
    }

    // 5. Specified deletes: unready ones always, ready ones within the budget.
    let mut ready_budget = diffs.delete_ready_limit;
    for p in pods.iter().filter(|p| specified(p) && !is_pre_deleting(p)) {
        if !podutil::is_available(p, 0, now) {
            delete_pod(&mut plan, p);
        } else if ready_budget > 0 {
            ready_budget -= 1;
            delete_pod(&mut plan, p);
        }
    }
    if plan.is_modifying() {
        return plan;
    }

    // 6. Scale in (not while any deletion is pending).
    if diffs.scale_down_num > 0 && num_to_delete == 0 {
        let (updated, old): (Vec<&Pod>, Vec<&Pod>) =
            pods.iter().copied().partition(|p| is_update(p));
        let (total, old_n) = (diffs.scale_down_num, diffs.scale_down_num_old_revision);
        let mr = knobs.min_ready_seconds;
        let victims = if old_n >= total {
            choose(old, total, mr, now)
        } else if old_n <= 0 {
            choose(updated, total, mr, now)
        } else {
            let mut v = choose(old, old_n, mr, now);
            v.extend(choose(updated, total - old_n, mr, now));
            v
        };
        let mut ready_budget = diffs.delete_ready_limit;
        for p in victims {
            if !podutil::is_available(p, 0, now) {
                delete_pod(&mut plan, p);
            } else if ready_budget > 0 {
                ready_budget -= 1;
                delete_pod(&mut plan, p);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::podutil::test_pods::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kruise_crds::keys;
    use kruise_crds::{CloneSetSpec, CloneSetUpdateStrategy, Lifecycle, LifecycleHook};

    const OLD: &str = "cs-old";
    const NEW: &str = "cs-new";

    fn cs(replicas: i32, partition: i32, mu: i32, surge: i32) -> CloneSet {
        let mut cs = CloneSet::new("cs", CloneSetSpec::default());
        cs.spec.replicas = Some(replicas);
        cs.spec.update_strategy = Some(CloneSetUpdateStrategy {
            partition: Some(IntOrString::Int(partition)),
            max_unavailable: Some(IntOrString::Int(mu)),
            max_surge: Some(IntOrString::Int(surge)),
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

    fn plan(cs: &CloneSet, pods: &[Pod]) -> ScalePlan {
        let refs: Vec<&Pod> = pods.iter().collect();
        plan_scale(cs, &refs, OLD, NEW, &Gates::default(), now())
    }

    #[test]
    fn scale_up_honours_partition() {
        // 5 replicas, partition 3, nothing yet: 3 at current, 2 at update.
        let p = plan(&cs(5, 3, 1, 0), &[]);
        let revs: Vec<&str> = p.create.iter().map(|c| c.revision.as_str()).collect();
        assert_eq!(revs, vec![OLD, OLD, OLD, NEW, NEW]);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn scale_up_limited_by_scale_max_unavailable() {
        let mut c = cs(5, 0, 1, 0);
        c.spec.scale_strategy = Some(kruise_crds::CloneSetScaleStrategy {
            max_unavailable: Some(IntOrString::Int(2)),
            ..Default::default()
        });
        let p = plan(&c, &[]);
        assert_eq!(p.create.len(), 2);
        assert_eq!(p.scale_up_limited, Some((5, 2)));
    }

    #[test]
    fn scale_in_prefers_old_then_unready_and_respects_budget() {
        // 3 replicas, 5 ready pods: 2 to delete, maxUnavailable 1 ⇒ delete ready limit 1+2=3.
        let pods = vec![
            rp("a", NEW),
            rp("b", OLD),
            rp("c", NEW),
            rp("d", NEW),
            rp("e", NEW),
        ];
        let p = plan(&cs(3, 0, 1, 0), &pods);
        assert_eq!(p.delete.len(), 2);
        assert!(p.delete.contains(&"b".to_string()), "{:?}", p.delete);
        // Unassigned pods go first among updated.
        let mut pods = pods;
        pods[3] = mk_pod("d").rev(NEW).state(ck::LIFECYCLE_NORMAL).build();
        let p = plan(&cs(3, 0, 1, 0), &pods);
        assert_eq!(p.delete, vec!["b".to_string(), "d".to_string()]);
    }

    #[test]
    fn deletion_cost_and_crowded_nodes() {
        let n = now();
        let a = mk_pod("a")
            .ready()
            .node("n1")
            .annotation(ck::POD_DELETION_COST_ANNOTATION, "10")
            .build();
        let b = mk_pod("b").ready().node("n2").build();
        let mut v = vec![&a, &b];
        sort_for_deletion(&mut v, 0, n);
        assert_eq!(podutil::name(v[0]), "b");
        // Same cost: the node holding two pods loses one first.
        let c1 = mk_pod("c1").ready().node("n1").created(10).build();
        let c2 = mk_pod("c2").ready().node("n1").created(20).build();
        let d = mk_pod("d").ready().node("n2").created(30).build();
        let mut v = vec![&d, &c1, &c2];
        sort_for_deletion(&mut v, 0, n);
        // c2 (newer of the two on n1) gets a rank and goes first, though d is newest overall.
        assert_eq!(podutil::name(v[0]), "c2");
    }

    #[test]
    fn specified_delete_replaced_first_with_surge() {
        let mut c = cs(3, 0, 0, 1);
        c.spec.scale_strategy = Some(kruise_crds::CloneSetScaleStrategy {
            pods_to_delete: Some(vec!["a".into()]),
            ..Default::default()
        });
        let pods = vec![rp("a", NEW), rp("b", NEW), rp("c", NEW)];
        let p = plan(&c, &pods);
        assert_eq!(p.create.len(), 1);
        assert!(p.delete.is_empty());
        // Once the replacement is ready, "a" goes.
        let mut pods = pods;
        pods.push(rp("d", NEW));
        let p = plan(&c, &pods);
        assert_eq!(p.delete, vec!["a".to_string()]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn specified_delete_label_unready_goes_immediately() {
        let pods = vec![
            mk_pod("a")
                .rev(NEW)
                .label(keys::SPECIFIED_DELETE_LABEL, "true")
                .build(),
            rp("b", NEW),
            rp("c", NEW),
        ];
        let p = plan(&cs(3, 0, 0, 0), &pods);
        assert_eq!(p.delete, vec!["a".to_string()]);
    }

    #[test]
    fn pre_delete_hook() {
        let mut c = cs(1, 0, 1, 0);
        c.spec.lifecycle = Some(Lifecycle {
            pre_delete: Some(LifecycleHook {
                labels_handler: Some([("hold".to_string(), "true".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let held = mk_pod("a")
            .rev(NEW)
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .node("n")
            .label("hold", "true")
            .build();
        let pods = vec![held.clone(), rp("b", NEW)];
        let p = plan(&c, &pods);
        // "a" is newer-less? Both same; whichever is chosen, a hooked pod is only prepared.
        assert_eq!(p.delete.len() + p.prepare_delete.len(), 1);
        // A PreparingDelete pod still hooked: nothing; released: deleted.
        let waiting = mk_pod("a")
            .rev(NEW)
            .state(ck::LIFECYCLE_PREPARING_DELETE)
            .label("hold", "true")
            .build();
        let p = plan(&c, &[waiting, rp("b", NEW)]);
        assert!(!p.is_modifying(), "{p:?}");
        let released = mk_pod("a")
            .rev(NEW)
            .state(ck::LIFECYCLE_PREPARING_DELETE)
            .build();
        let p = plan(&c, &[released, rp("b", NEW)]);
        assert_eq!(p.delete, vec!["a".to_string()]);
        // Scale back up to 2 while "a" waits: its deletion is cancelled.
        let mut c2 = c.clone();
        c2.spec.replicas = Some(2);
        let waiting = mk_pod("a")
            .rev(NEW)
            .state(ck::LIFECYCLE_PREPARING_DELETE)
            .label("hold", "true")
            .build();
        let p = plan(&c2, &[waiting, rp("b", NEW)]);
        assert_eq!(p.cancel_delete, vec!["a".to_string()]);
    }
}
