//! Which matched pods a SidecarSet upgrades this round (OpenKruise's `GetNextUpgradePods`): the
//! upgradable, not-yet-updated pods selected by `updateStrategy.selector`, ordered (active-pods order,
//! then priority, then scatter), cut by `partition` and `maxUnavailable`. Pure.

use super::{hotupgrade, pod};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::common::{UpdatePriorityStrategy, UpdateScatterTerm};
use kruise_crds::sidecarset::{SidecarSet, SidecarSetStatus, SidecarSetUpdateStrategyType};
use kruise_webhook::sidecarset::matching::selector_matches;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// The pods to touch this round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradePlan {
    /// Names of the pods to upgrade in place, in upgrade order.
    pub upgrade: Vec<String>,
    /// Names of not-updated pods whose non-image sidecar fields changed: they cannot be upgraded.
    pub not_upgradable: Vec<String>,
}

/// What one reconcile does after the status is written (spec §4.2 steps 5–9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Round {
    /// Nothing to change: `NotUpdate`, paused, or every matched pod updated. `in_flight` says whether
    /// some matched pod is still not updated or not ready (requeue soon rather than resync).
    Idle {
        /// Some pod is still behind or not ready.
        in_flight: bool,
    },
    /// Reset the old hot-upgrade slots of these pods (their new container is ready), nothing else.
    ResetHotSlots(Vec<String>),
    /// Upgrade (and mark not upgradable) per the plan.
    Upgrade(UpgradePlan),
}

/// Decides the round for `ss` (whose status is `status`) over its matched pods.
pub fn plan_round(ss: &SidecarSet, matched: &[&Pod], status: &SidecarSetStatus) -> Round {
    let in_flight =
        status.updated_pods < status.matched_pods || status.ready_pods < status.matched_pods;
    let strategy = ss.spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_ == Some(SidecarSetUpdateStrategyType::NotUpdate)
        || strategy.paused.unwrap_or(false)
    {
        return Round::Idle { in_flight: false };
    }
    if pod::sidecars(ss).iter().any(|c| c.is_hot_upgrade()) {
        let resets: Vec<String> = matched
            .iter()
            .filter(|p| hotupgrade::ready_to_reset(ss, p))
            .map(|p| pod::name(p).to_owned())
            .collect();
        if !resets.is_empty() {
            return Round::ResetHotSlots(resets);
        }
    }
    if status.updated_pods >= status.matched_pods {
        return Round::Idle { in_flight };
    }
    Round::Upgrade(next_upgrade_pods(ss, matched))
}

/// `GetScaledValueFromIntOrPercent`: an int as is; `"n%"` of `total`, rounded up or down. A malformed
/// percentage counts as 0 (validation refuses it at admission).
pub fn scaled_value(v: &IntOrString, total: usize, round_up: bool) -> usize {
    match v {
        IntOrString::Int(i) => usize::try_from(*i).unwrap_or(0),
        IntOrString::String(s) => {
            let pct: u64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let total = total as u64;
            let scaled = if round_up {
                (pct * total).div_ceil(100)
            } else {
                pct * total / 100
            };
            usize::try_from(scaled).unwrap_or(usize::MAX)
        }
    }
}

/// `CalculatePartitionReplicas`: a percentage rounds up, but a percentage other than `100%` that
/// rounds up to every pod (with more than one pod) leaves one pod to upgrade; clamped to `[0, n]`.
pub fn partition_replicas(partition: Option<&IntOrString>, replicas: usize) -> usize {
    let Some(p) = partition else { return 0 };
    let mut v = scaled_value(p, replicas, true);
    if let IntOrString::String(s) = p
        && replicas > 1
        && v >= replicas
        && s != "100%"
    {
        v = replicas - 1;
    }
    v.min(replicas)
}

/// The plan of §4.4 for SidecarSet `ss` over its matched pods.
pub fn next_upgrade_pods(ss: &SidecarSet, matched: &[&Pod]) -> UpgradePlan {
    let strategy = ss.spec.update_strategy.clone().unwrap_or_default();
    let mut plan = UpgradePlan::default();
    let mut wait: Vec<usize> = Vec::new();
    for (i, p) in matched.iter().enumerate() {
        if pod::is_updated(ss, p) {
            continue;
        }
        if let Some(sel) = &strategy.selector {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            if !selector_matches(sel, &labels) {
                continue;
            }
        }
        if !pod::is_upgradable(ss, p) {
            plan.not_upgradable.push(pod::name(p).to_owned());
            continue;
        }
        if upgrade_in_flight(ss, p) {
            continue;
        }
        wait.push(i);
    }

    wait.sort_by(|&a, &b| active_pods_cmp(matched[a], matched[b]));
    if let Some(prio) = &strategy.priority_strategy {
        priority_sort(prio, matched, &mut wait);
    }
    if let Some(terms) = strategy
        .scatter_strategy
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        let terms = expand_scatter_terms(terms, matched);
        wait = scatter_sort(&terms, matched, wait);
    }

    let partition = partition_replicas(strategy.partition.as_ref(), matched.len());
    let keep = wait.len().saturating_sub(partition);
    wait.truncate(keep);

    let max_unavailable = strategy
        .max_unavailable
        .as_ref()
        .map_or(1, |m| scaled_value(m, matched.len(), true));
    let mut unavailable = matched
        .iter()
        .filter(|p| {
            pod::is_updated(ss, p)
                && (!pod::is_state_consistent(ss, p, None) || !pod::is_ready(ss, p))
        })
        .count();
    for i in wait {
        let p = matched[i];
        if !pod::is_ready(ss, p) {
            plan.upgrade.push(pod::name(p).to_owned());
            continue;
        }
        if unavailable >= max_unavailable {
            break;
        }
        plan.upgrade.push(pod::name(p).to_owned());
        unavailable += 1;
    }
    plan
}

/// `IsSidecarSetUpgradable`'s second answer negated: a sidecar container reports Ready but is not
/// consistent yet, i.e. the previous upgrade of this pod has not finished.
fn upgrade_in_flight(ss: &SidecarSet, p: &Pod) -> bool {
    pod::sidecar_container_names(ss).into_iter().any(|c| {
        let ready = pod::container_status(p, &c).is_some_and(|s| s.ready);
        ready && !pod::is_state_consistent(ss, p, Some(&BTreeSet::from([c])))
    })
}

fn phase_ordinal(p: &Pod) -> u8 {
    match pod::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn ready_since(p: &Pod) -> Option<jiff::Timestamp> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn max_restarts(p: &Pod) -> i32 {
    pod::container_statuses(p)
        .iter()
        .map(|s| s.restart_count)
        .max()
        .unwrap_or(0)
}

/// `kubecontroller.ActivePods` Less as an ordering: unassigned, earlier phase, not ready, ready for
/// less time, more restarts, newer first.
fn active_pods_cmp(a: &Pod, b: &Pod) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let ready = pod::has_ready_condition;
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node(a)
        .cmp(&node(b))
        .then_with(|| phase_ordinal(a).cmp(&phase_ordinal(b)))
        .then_with(|| ready(a).cmp(&ready(b)))
        .then_with(|| {
            if ready(a) && ready(b) {
                // Ready more recently (later time) first.
                ready_since(b).cmp(&ready_since(a))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| match (created(a), created(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        })
}

/// The trailing integer of a label value (`"zone-12"` → 12), 0 when none.
fn int_suffix(v: &str) -> i64 {
    let digits = v.len() - v.bytes().rev().take_while(u8::is_ascii_digit).count();
    v[digits..].parse().unwrap_or(0)
}

/// Priority ordering (stable): higher weight sum first; or lower order-key index first, then the
/// larger trailing integer first. A pod with none of the order keys gets level -1 and comes first
/// (OpenKruise quirk).
fn priority_sort(prio: &UpdatePriorityStrategy, pods: &[&Pod], idx: &mut [usize]) {
    let labels = |i: usize| pods[i].metadata.labels.clone().unwrap_or_default();
    if let Some(weights) = prio.weight_priority.as_deref().filter(|w| !w.is_empty()) {
        let weight = |i: usize| -> i64 {
            let l = labels(i);
            weights
                .iter()
                .filter(|w| selector_matches(&w.match_selector, &l))
                .map(|w| i64::from(w.weight))
                .sum()
        };
        idx.sort_by_key(|&i| std::cmp::Reverse(weight(i)));
    } else if let Some(orders) = prio.order_priority.as_deref().filter(|o| !o.is_empty()) {
        let key = |i: usize| -> (i64, i64) {
            let l = labels(i);
            for (n, o) in orders.iter().enumerate() {
                if let Some(v) = l.get(&o.ordered_key) {
                    return (n as i64, int_suffix(v));
                }
            }
            (-1, 0)
        };
        idx.sort_by(|&a, &b| {
            let (la, oa) = key(a);
            let (lb, ob) = key(b);
            la.cmp(&lb).then(ob.cmp(&oa))
        });
    }
}

/// `parseUpdateScatterTerms`: a `"*"` value expands to every value of that key on the pods, in the
/// order they are first seen; other terms are kept.
pub fn expand_scatter_terms(terms: &[UpdateScatterTerm], pods: &[&Pod]) -> Vec<UpdateScatterTerm> {
    let mut out: Vec<UpdateScatterTerm> = Vec::new();
    for t in terms {
        if t.value != "*" {
            out.push(t.clone());
            continue;
        }
        for p in pods {
            if let Some(v) = p.metadata.labels.as_ref().and_then(|l| l.get(&t.key))
                && !out.iter().any(|o| o.key == t.key && &o.value == v)
            {
                out.push(UpdateScatterTerm {
                    key: t.key.clone(),
                    value: v.clone(),
                });
            }
        }
    }
    out
}

fn has_label(p: &Pod, t: &UpdateScatterTerm) -> bool {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(&t.key))
        .is_some_and(|v| *v == t.value)
}

/// OpenKruise's scatter sort: terms ordered by how many candidates they match (most first), then
/// each term interleaves its matching candidates with the others.
fn scatter_sort(terms: &[UpdateScatterTerm], pods: &[&Pod], mut idx: Vec<usize>) -> Vec<usize> {
    if idx.len() <= 1 {
        return idx;
    }
    let mut ordered: Vec<(usize, &UpdateScatterTerm)> = Vec::new();
    if terms.len() == 1 {
        ordered.push((0, &terms[0]));
    } else {
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for t in terms {
            for &i in &idx {
                if has_label(pods[i], t) {
                    let k = (t.key.clone(), t.value.clone());
                    let e = counts.entry(k).or_insert(0);
                    if *e == 0 {
                        ordered.push((0, t));
                    }
                    *e += 1;
                }
            }
        }
        for o in &mut ordered {
            o.0 = counts[&(o.1.key.clone(), o.1.value.clone())];
        }
        ordered.sort_by_key(|o| std::cmp::Reverse(o.0));
    }
    for (_, t) in ordered {
        idx = scatter_by_term(t, pods, idx);
    }
    idx
}

fn scatter_by_term(t: &UpdateScatterTerm, pods: &[&Pod], idx: Vec<usize>) -> Vec<usize> {
    let (mut matched, mut unmatched): (Vec<usize>, Vec<usize>) =
        idx.iter().partition(|&&i| has_label(pods[i], t));
    if matched.len() <= 1 || unmatched.len() <= 1 {
        return idx;
    }
    let total_matched = pods.iter().filter(|p| has_label(p, t)).count();
    let total_unmatched = pods.len() - total_matched;
    // The last matching candidate goes to the very end.
    let last = matched.pop();
    let total_matched = total_matched - 1;
    let g = group_by_density(
        total_matched,
        total_unmatched,
        matched.len(),
        unmatched.len(),
    );
    let mut out = Vec::with_capacity(idx.len());
    if g.unmatched_remainder > 0 {
        let r = g.unmatched_remainder.min(unmatched.len());
        out.extend(unmatched.drain(..r));
    }
    for _ in 0..g.group_num {
        migrate(&mut matched, &mut out, g.matched_size);
        migrate(&mut unmatched, &mut out, g.unmatched_size);
    }
    out.append(&mut matched);
    out.append(&mut unmatched);
    out.extend(last);
    out
}

fn migrate(src: &mut Vec<usize>, dst: &mut Vec<usize>, size: usize) {
    let n = size.min(src.len());
    dst.extend(src.drain(..n));
}

#[derive(Debug, Default)]
struct Group {
    group_num: usize,
    matched_size: usize,
    unmatched_size: usize,
    unmatched_remainder: usize,
}

fn new_group(matched: usize, unmatched: usize) -> Group {
    let n = matched.min(unmatched).max(1);
    Group {
        group_num: matched.min(unmatched),
        matched_size: (matched as f64 / n as f64).round() as usize,
        unmatched_size: (unmatched as f64 / n as f64).round() as usize,
        unmatched_remainder: 0,
    }
}

fn group_by_density(total_m: usize, total_u: usize, upd_m: usize, upd_u: usize) -> Group {
    let update = new_group(upd_m, upd_u);
    let ratio = |u: usize, m: usize| {
        if m == 0 {
            f32::INFINITY
        } else {
            u as f32 / m as f32
        }
    };
    if ratio(total_u, total_m) >= ratio(upd_u, upd_m) {
        return update;
    }
    let total = new_group(total_m, total_u);
    let (ms, us) = (total.matched_size.max(1), total.unmatched_size.max(1));
    let group_num = (upd_m / ms).min(upd_u / us);
    Group {
        group_num,
        matched_size: ms,
        unmatched_size: us,
        unmatched_remainder: upd_u.saturating_sub(group_num * us),
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod::testutil::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use kruise_crds::common::{UpdatePriorityOrderTerm, UpdatePriorityWeightTerm};
    use kruise_crds::sidecarset::SidecarSetUpdateStrategy;

    /// OpenKruise's `factoryPods(count, upgraded, upgradedAndReady)`, shuffled.
    fn factory_pods(count: usize, upgraded: usize, ready: usize) -> Vec<Pod> {
        let mut pods: Vec<Pod> = (0..count)
            .map(|i| {
                let b = mk_pod(&format!("pod-{i}"));
                if i < ready {
                    b.upgraded_done().build()
                } else if i < upgraded {
                    b.upgraded_in_flight().build()
                } else {
                    b.build()
                }
            })
            .collect();
        fastrand::Rng::with_seed(7).shuffle(&mut pods);
        pods
    }

    fn int(i: i32) -> Option<IntOrString> {
        Some(IntOrString::Int(i))
    }
    fn pct(s: &str) -> Option<IntOrString> {
        Some(IntOrString::String(s.into()))
    }

    #[test]
    fn openkruise_vectors() {
        struct Case {
            name: &'static str,
            pods: (usize, usize, usize),
            max_unavailable: Option<IntOrString>,
            partition: Option<IntOrString>,
            selector_30: bool,
            not_upgradable: bool,
            want: (usize, usize),
        }
        let c = |name, pods, mu, p, want| Case {
            name,
            pods,
            max_unavailable: mu,
            partition: p,
            selector_30: false,
            not_upgradable: false,
            want,
        };
        let mut cases = vec![
            c("mu 10", (100, 30, 26), int(10), None, (6, 0)),
            c("mu 10%", (1000, 300, 260), pct("10%"), None, (60, 0)),
            c("mu 5%", (1000, 300, 250), pct("5%"), None, (0, 0)),
            c("mu 100", (100, 30, 27), int(100), None, (70, 0)),
            c("p 180", (1000, 800, 760), int(100), int(180), (20, 0)),
            c("p 100", (1000, 800, 760), int(100), int(100), (60, 0)),
            c("p 18%", (1000, 800, 760), int(100), pct("18%"), (20, 0)),
            c("p 10%", (1000, 800, 760), int(100), pct("10%"), (60, 0)),
            c("mu 5% of 5", (5, 0, 0), pct("5%"), None, (1, 0)),
            c("mu 5 p 99%", (5, 0, 0), int(5), pct("99%"), (1, 0)),
            c("mu 5 p 1%", (5, 0, 0), int(5), pct("1%"), (4, 0)),
            c("default mu", (10, 0, 0), None, None, (1, 0)),
        ];
        let mut sel = c("selector 30", (1000, 0, 0), int(100), None, (30, 0));
        sel.selector_30 = true;
        cases.push(sel);
        let mut nu = c("not upgradable", (100, 0, 0), int(100), None, (0, 100));
        nu.not_upgradable = true;
        cases.push(nu);

        for case in cases {
            let wo = if case.not_upgradable {
                "without-bbb"
            } else {
                "without-aaa"
            };
            let mut ss = mk_ss("bbb", wo, "test-image:v2");
            ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
                max_unavailable: case.max_unavailable.clone(),
                partition: case.partition.clone(),
                selector: case.selector_30.then(|| LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "test".into())])),
                    ..Default::default()
                }),
                ..Default::default()
            });
            let (n, u, r) = case.pods;
            let mut pods = factory_pods(n, u, r);
            if case.selector_30 {
                for p in pods.iter_mut().take(30) {
                    p.metadata
                        .labels
                        .as_mut()
                        .unwrap()
                        .insert("app".into(), "test".into());
                }
            }
            let refs: Vec<&Pod> = pods.iter().collect();
            let plan = next_upgrade_pods(&ss, &refs);
            assert_eq!(
                (plan.upgrade.len(), plan.not_upgradable.len()),
                case.want,
                "{}",
                case.name
            );
        }
    }

    fn status_of(ss: &SidecarSet, pods: &[&Pod]) -> SidecarSetStatus {
        super::super::status::calculate_status(ss, pods, "r", None, ts(0))
    }

    #[test]
    fn round_table() {
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let behind = [mk_pod("a").build(), mk_pod("b").build()];
        let behind: Vec<&Pod> = behind.iter().collect();
        let done = [mk_pod("a").upgraded_done().build()];
        let done: Vec<&Pod> = done.iter().collect();
        let flight = [mk_pod("a").upgraded_in_flight().build()];
        let flight: Vec<&Pod> = flight.iter().collect();

        let mut paused = ss.clone();
        paused.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            paused: Some(true),
            ..Default::default()
        });
        let mut not_update = ss.clone();
        not_update.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            type_: Some(SidecarSetUpdateStrategyType::NotUpdate),
            ..Default::default()
        });
        let mut hot = mk_ss("bbb", "without-aaa", "v2");
        make_hot(&mut hot, "empty:1");
        let hot_ready = [mk_pod("h")
            .hot("v1", "v2")
            .annotation(
                kruise_crds::keys::sidecarset::SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
                r#"{"test-sidecar":"test-sidecar-2"}"#,
            )
            .build()];
        let hot_ready: Vec<&Pod> = hot_ready.iter().collect();

        let cases: Vec<(&str, &SidecarSet, &[&Pod], Round)> = vec![
            ("paused", &paused, &behind, Round::Idle { in_flight: false }),
            (
                "not update",
                &not_update,
                &behind,
                Round::Idle { in_flight: false },
            ),
            ("all done", &ss, &done, Round::Idle { in_flight: false }),
            (
                "updated, restarting",
                &ss,
                &flight,
                Round::Idle { in_flight: true },
            ),
            (
                "behind",
                &ss,
                &behind,
                Round::Upgrade(UpgradePlan {
                    upgrade: vec!["a".into()],
                    not_upgradable: vec![],
                }),
            ),
            (
                "hot reset first",
                &hot,
                &hot_ready,
                Round::ResetHotSlots(vec!["h".into()]),
            ),
        ];
        for (name, ss, pods, want) in cases {
            let st = status_of(ss, pods);
            assert_eq!(plan_round(ss, pods, &st), want, "{name}");
        }
    }

    #[test]
    fn partition_math() {
        assert_eq!(partition_replicas(None, 5), 0);
        assert_eq!(partition_replicas(pct("99%").as_ref(), 5), 4);
        assert_eq!(partition_replicas(pct("100%").as_ref(), 5), 5);
        assert_eq!(partition_replicas(pct("100%").as_ref(), 1), 1);
        assert_eq!(partition_replicas(int(9).as_ref(), 5), 5);
        assert_eq!(partition_replicas(pct("18%").as_ref(), 1000), 180);
    }

    #[test]
    fn unready_candidates_do_not_use_budget() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            max_unavailable: int(1),
            ..Default::default()
        });
        let pods = [
            mk_pod("a").not_ready().build(),
            mk_pod("b").not_ready().build(),
            mk_pod("c").build(),
            mk_pod("d").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = next_upgrade_pods(&ss, &refs);
        assert_eq!(plan.upgrade, vec!["a", "b", "c"]);
    }

    #[test]
    fn in_flight_pod_is_skipped() {
        let ss = mk_ss("ccc", "without-aaa", "test-image:v3");
        // Recorded hash bbb != ccc: not updated; the sidecar is Ready but still on the old image ID.
        let pods = [mk_pod("a").upgraded_in_flight().build()];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(next_upgrade_pods(&ss, &refs), UpgradePlan::default());
    }

    #[test]
    fn order_priority_with_quirk() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            max_unavailable: int(10),
            priority_strategy: Some(UpdatePriorityStrategy {
                order_priority: Some(vec![
                    UpdatePriorityOrderTerm {
                        ordered_key: "k1".into(),
                    },
                    UpdatePriorityOrderTerm {
                        ordered_key: "k2".into(),
                    },
                ]),
                weight_priority: None,
            }),
            ..Default::default()
        });
        let pods = [
            mk_pod("k2-5").label("k2", "v5").build(),
            mk_pod("k1-1").label("k1", "v1").build(),
            mk_pod("none").build(),
            mk_pod("k1-10").label("k1", "v10").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = next_upgrade_pods(&ss, &refs);
        assert_eq!(plan.upgrade, vec!["none", "k1-10", "k1-1", "k2-5"]);
    }

    #[test]
    fn weight_priority() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let w = |weight, k: &str| UpdatePriorityWeightTerm {
            weight,
            match_selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(k.into(), "x".into())])),
                ..Default::default()
            },
        };
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            max_unavailable: int(10),
            priority_strategy: Some(UpdatePriorityStrategy {
                weight_priority: Some(vec![w(50, "a"), w(30, "b")]),
                order_priority: None,
            }),
            ..Default::default()
        });
        let pods = [
            mk_pod("p0").build(),
            mk_pod("p30").label("b", "x").build(),
            mk_pod("p80").label("a", "x").label("b", "x").build(),
            mk_pod("p50").label("a", "x").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            next_upgrade_pods(&ss, &refs).upgrade,
            vec!["p80", "p50", "p30", "p0"]
        );
    }

    #[test]
    fn scatter_terms_expand_star() {
        let pods = [
            mk_pod("a").label("k4", "v-0").build(),
            mk_pod("b").label("k4", "v-1").build(),
            mk_pod("c").label("k4", "v-0").build(),
            mk_pod("d").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let t = |k: &str, v: &str| UpdateScatterTerm {
            key: k.into(),
            value: v.into(),
        };
        assert_eq!(
            expand_scatter_terms(&[t("k1", "v1"), t("k4", "*")], &refs),
            vec![t("k1", "v1"), t("k4", "v-0"), t("k4", "v-1")]
        );
    }

    #[test]
    fn scatter_spreads_matching_pods() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            max_unavailable: int(100),
            scatter_strategy: Some(vec![UpdateScatterTerm {
                key: "zone".into(),
                value: "a".into(),
            }]),
            ..Default::default()
        });
        // Candidate order after the active-pods sort is by name here (all else equal, no timestamps).
        let pods: Vec<Pod> = ["m1", "m2", "m3", "u1", "u2", "u3"]
            .iter()
            .map(|n| {
                let b = mk_pod(n);
                if n.starts_with('m') {
                    b.label("zone", "a").build()
                } else {
                    b.build()
                }
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = next_upgrade_pods(&ss, &refs);
        assert_eq!(plan.upgrade, vec!["m1", "u1", "u2", "m2", "u3", "m3"]);
    }

    /// Rounds over 30 pods with partition 10 and maxUnavailable 3, the runtime finishing every
    /// in-flight upgrade between rounds: never more than 3 pods in flight, 20 upgraded, 10 kept.
    #[test]
    fn partition_and_max_unavailable_over_rounds() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            max_unavailable: int(3),
            partition: int(10),
            ..Default::default()
        });
        let mut pods: Vec<Pod> = (0..30).map(|i| mk_pod(&format!("p{i}")).build()).collect();
        let mut rounds = 0;
        loop {
            let refs: Vec<&Pod> = pods.iter().collect();
            let plan = next_upgrade_pods(&ss, &refs);
            if plan.upgrade.is_empty() {
                break;
            }
            rounds += 1;
            assert!(
                plan.upgrade.len() <= 3,
                "round {rounds}: {:?}",
                plan.upgrade
            );
            // Upgraded but not yet restarted: a second plan now picks nothing.
            for p in pods.iter_mut() {
                if plan.upgrade.iter().any(|n| n == pod::name(p)) {
                    *p = mk_pod(pod::name(p)).upgraded_in_flight().build();
                }
            }
            let refs: Vec<&Pod> = pods.iter().collect();
            assert_eq!(next_upgrade_pods(&ss, &refs), UpgradePlan::default());
            for p in pods.iter_mut() {
                if pod::is_updated(&ss, p) {
                    *p = mk_pod(pod::name(p)).upgraded_done().build();
                }
            }
            assert!(rounds < 30, "no convergence");
        }
        let updated = pods.iter().filter(|p| pod::is_updated(&ss, p)).count();
        assert_eq!((updated, rounds), (20, 7));
    }

    /// Paused (and NotUpdate) plans nothing however far behind the pods are; unpaused, the same
    /// pods are planned.
    #[test]
    fn paused_plans_nothing_until_unpaused() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            max_unavailable: pct("100%"),
            paused: Some(true),
            ..Default::default()
        });
        let pods: Vec<Pod> = (0..5).map(|i| mk_pod(&format!("p{i}")).build()).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let st = status_of(&ss, &refs);
        assert_eq!(
            plan_round(&ss, &refs, &st),
            Round::Idle { in_flight: false }
        );
        if let Some(u) = ss.spec.update_strategy.as_mut() {
            u.paused = Some(false);
        }
        let Round::Upgrade(plan) = plan_round(&ss, &refs, &st) else {
            panic!("expected an upgrade round");
        };
        assert_eq!(plan.upgrade.len(), 5);
    }

    #[test]
    fn int_suffix_parsing() {
        assert_eq!(int_suffix("zone-12"), 12);
        assert_eq!(int_suffix("abc"), 0);
        assert_eq!(int_suffix("7"), 7);
    }
}
