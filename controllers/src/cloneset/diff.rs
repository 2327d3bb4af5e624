//! The scale/update arithmetic of a CloneSet (spec §8.1, OpenKruise's `calculateDiffsWithExpectation`):
//! from the active pods and the strategy knobs, how many pods to create, delete and update, and the
//! unavailability budgets. Pure; every clamp and rounding rule of the reference is kept.

use super::Gates;
use super::podutil;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::cloneset as ck;
use kruise_crds::{CloneSet, CloneSetSpec};
use std::collections::BTreeSet;

/// Why an int-or-percent value could not be scaled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for IntOrString {value:?}: must be an integer or a percentage like \"20%\"")]
pub struct BadIntOrPercent {
    /// The offending string.
    pub value: String,
}

/// `GetScaledValueFromIntOrPercent`: an int as is; `"N%"` of `total`, rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, BadIntOrPercent> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let bad = || BadIntOrPercent { value: s.clone() };
            let digits = s.strip_suffix('%').ok_or_else(bad)?;
            let pct: i32 = digits.parse().map_err(|_| bad())?;
            let raw = f64::from(pct) * f64::from(total) / 100.0;
            let scaled = if round_up { raw.ceil() } else { raw.floor() };
            // The product of two i32 divided by 100 always fits an i64; clamp into i32.
            Ok(scaled.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        }
    }
}

/// `CalculatePartitionReplicas`: the partition as a pod count. A percentage below 100% never keeps
/// every pod (so `99%` of 4 still updates one); clamped to `[0, replicas]`.
pub fn partition_replicas(
    partition: Option<&IntOrString>,
    replicas: i32,
) -> Result<i32, BadIntOrPercent> {
    let Some(p) = partition else { return Ok(0) };
    let mut v = scaled_value(p, replicas, true)?;
    if let IntOrString::String(s) = p
        && replicas > 1
        && v == replicas
        && s != "100%"
    {
        v = replicas - 1;
    }
    Ok(v.clamp(0, replicas.max(0)))
}

/// The strategy numbers a CloneSet's spec yields for `replicas` pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    /// Pods kept at old revisions.
    pub partition: i32,
    /// Extra pods allowed (0 while paused).
    pub max_surge: i32,
    /// Pods allowed unavailable during update / scale-in.
    pub max_unavailable: i32,
    /// Pods allowed unavailable before scale-up stops creating.
    pub scale_max_unavailable: i32,
    /// Leave PreparingDelete pods out of the totals.
    pub exclude_preparing_delete: bool,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// `scaleStrategy.podsToDelete`.
    pub pods_to_delete: BTreeSet<String>,
}

impl Knobs {
    /// Reads the knobs from a CloneSet. An invalid partition counts as 0 (as in OpenKruise; the
    /// webhook rejects it anyway).
    pub fn from_cloneset(cs: &CloneSet, gates: &Gates) -> Self {
        let spec = &cs.spec;
        let replicas = spec.replicas.unwrap_or(CloneSetSpec::DEFAULT_REPLICAS);
        let us = spec.update_strategy.clone().unwrap_or_default();
        let partition = partition_replicas(us.partition.as_ref(), replicas).unwrap_or(0);
        let mut max_surge = us
            .max_surge
            .as_ref()
            .and_then(|v| scaled_value(v, replicas, true).ok())
            .unwrap_or(0);
        if us.paused.unwrap_or(false) {
            max_surge = 0;
        }
        let default_mu = IntOrString::String(CloneSetSpec::DEFAULT_MAX_UNAVAILABLE.to_string());
        let max_unavailable = scaled_value(
            us.max_unavailable.as_ref().unwrap_or(&default_mu),
            replicas,
            max_surge == 0,
        )
        .unwrap_or(0);
        let ss = spec.scale_strategy.clone().unwrap_or_default();
        let scale_max_unavailable = ss
            .max_unavailable
            .as_ref()
            .map_or(Ok(i32::MAX), |v| scaled_value(v, replicas, true))
            .unwrap_or(0);
        let exclude_preparing_delete = gates.exclude_preparing_delete
            || cs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ck::SCALING_EXCLUDE_PREPARING_DELETE_LABEL))
                .is_some_and(|v| v == "true");
        Self {
            replicas,
            partition,
            max_surge,
            max_unavailable,
            scale_max_unavailable,
            exclude_preparing_delete,
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            pods_to_delete: ss.pods_to_delete.unwrap_or_default().into_iter().collect(),
        }
    }
}

/// What the arithmetic asks for (all numbers non-negative except `update_num`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diffs {
    /// Pods to create.
    pub scale_up_num: i32,
    /// Of those, how many at the current (old) revision (may exceed `scale_up_num`).
    pub scale_up_num_old_revision: i32,
    /// Pods to delete beyond those specified for deletion.
    pub scale_down_num: i32,
    /// Of those, how many old-revision pods (may exceed `scale_down_num`).
    pub scale_down_num_old_revision: i32,
    /// Most pods to create now (`scaleStrategy.maxUnavailable`).
    pub scale_up_limit: i32,
    /// Most ready pods to delete now (`maxUnavailable`).
    pub delete_ready_limit: i32,
    /// Pods above replicas in use.
    pub use_surge: i32,
    /// Of those, at the old revision.
    pub use_surge_old_revision: i32,
    /// `> 0`: pods to move to the update revision; `< 0`: pods to roll back to the current one.
    pub update_num: i32,
    /// Most pods unavailable while updating.
    pub update_max_unavailable: i32,
}

/// Computes the diffs. `is_update` says whether a pod counts as being at the update revision.
pub fn calculate_diffs(
    knobs: &Knobs,
    pods: &[&Pod],
    current_revision: &str,
    update_revision: &str,
    is_update: impl Fn(&Pod) -> bool,
    gates: &Gates,
    now: Timestamp,
) -> Diffs {
    let (replicas, partition) = (knobs.replicas, knobs.partition);
    let (max_surge, max_unavailable) = (knobs.max_surge, knobs.max_unavailable);
    #[derive(Default)]
    struct Side {
        count: i32,
        active: i32,
        pre_deleting: i32,
        to_delete: i32,
        unavailable: i32,
    }
    let (mut new, mut old) = (Side::default(), Side::default());
    for pod in pods {
        let side = if is_update(pod) { &mut new } else { &mut old };
        side.count += 1;
        if podutil::lifecycle_state(pod) == ck::LIFECYCLE_PREPARING_DELETE {
            side.pre_deleting += 1;
        } else {
            side.active += 1;
            if podutil::is_specified_delete(pod, &knobs.pods_to_delete) {
                side.to_delete += 1;
            } else if !podutil::is_available(pod, knobs.min_ready_seconds, now) {
                side.unavailable += 1;
            }
        }
    }
    let mut update_old_diff = old.active - partition;
    let mut update_new_diff = new.active - (replicas - partition);
    let total_unavailable = new.pre_deleting + old.pre_deleting + new.unavailable + old.unavailable;
    if update_revision == current_revision || !gates.partition_rollback {
        update_old_diff = update_old_diff.max(0);
        update_new_diff = update_new_diff.min(0);
    }

    let mut res = Diffs::default();
    if max_surge > 0 {
        let to_delete = new.to_delete + old.to_delete;
        let (mut scale_surge, mut scale_old_surge) = (0, 0);
        if to_delete > 0 {
            scale_surge = (total_unavailable + to_delete - max_unavailable)
                .max(0)
                .min(to_delete);
            if scale_surge > new.to_delete {
                scale_old_surge = scale_surge - new.to_delete;
            }
        }
        let (mut update_surge, mut update_old_surge) = (0, 0);
        let opposite = (update_old_diff > 0 && update_new_diff < 0)
            || (update_old_diff < 0 && update_new_diff > 0);
        if opposite {
            if update_old_diff.abs() <= update_new_diff.abs() {
                update_surge = update_old_diff.abs();
                if update_old_diff < 0 {
                    update_old_surge = update_surge;
                }
            } else {
                update_surge = update_new_diff.abs();
                if update_new_diff > 0 {
                    update_old_surge = update_surge;
                }
            }
        }
        // Scale and update never run in one reconcile, so the bigger need wins.
        if scale_surge >= update_surge {
            res.use_surge = max_surge.min(scale_surge);
            res.use_surge_old_revision = res.use_surge.min(scale_old_surge);
        } else {
            res.use_surge = max_surge.min(update_surge);
            res.use_surge_old_revision = res.use_surge.min(update_old_surge);
        }
    }

    let len = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let (mut cur_total, mut cur_old) = (len, old.count);
    if knobs.exclude_preparing_delete {
        cur_total -= old.pre_deleting + new.pre_deleting;
        cur_old -= old.pre_deleting;
    }
    let exp_total = replicas.saturating_add(res.use_surge);
    let exp_old = partition + res.use_surge_old_revision;

    let up = exp_total - cur_total;
    if up > 0 {
        res.scale_up_num = up;
        res.scale_up_num_old_revision = (exp_old - cur_old).max(0);
        res.scale_up_limit = up.min(
            knobs
                .scale_max_unavailable
                .saturating_sub(total_unavailable)
                .max(0),
        );
    }
    let down = cur_total - old.to_delete - new.to_delete - exp_total;
    if down > 0 {
        res.scale_down_num = down;
        res.scale_down_num_old_revision = (cur_old - old.to_delete - exp_old).max(0);
    }
    if new.to_delete > 0 || old.to_delete > 0 || res.scale_down_num > 0 {
        res.delete_ready_limit = (max_unavailable + (len - replicas) - total_unavailable).max(0);
    }
    res.update_num = if update_old_diff.abs() <= update_new_diff.abs() {
        update_old_diff
    } else {
        -update_new_diff
    };
    if res.update_num != 0 {
        res.update_max_unavailable = max_unavailable + len - replicas;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::super::podutil::test_pods::*;
    use super::*;
    use kruise_crds::keys;

    fn int(i: i32) -> IntOrString {
        IntOrString::Int(i)
    }
    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn scaled_values() {
        assert_eq!(scaled_value(&int(3), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("20%"), 10, true), Ok(2));
        assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&pct("0%"), 10, true), Ok(0));
        assert!(scaled_value(&pct("5"), 10, true).is_err());
        assert!(scaled_value(&pct("a%"), 10, true).is_err());
    }

    #[test]
    fn partitions() {
        let cases: &[(Option<IntOrString>, i32, i32)] = &[
            (None, 5, 0),
            (Some(int(3)), 5, 3),
            (Some(int(7)), 5, 5),
            (Some(int(-1)), 5, 0),
            (Some(pct("50%")), 5, 3),
            (Some(pct("99%")), 4, 3),
            (Some(pct("99%")), 5, 4),
            (Some(pct("100%")), 5, 5),
            (Some(pct("99%")), 1, 1),
            (Some(pct("10%")), 0, 0),
        ];
        for (p, r, want) in cases {
            assert_eq!(
                partition_replicas(p.as_ref(), *r),
                Ok(*want),
                "{p:?} of {r}"
            );
        }
        assert!(partition_replicas(Some(&pct("3")), 5).is_err());
    }

    const OLD: &str = "old_rev";
    const NEW: &str = "new_rev";

    fn knobs(replicas: i32, partition: IntOrString, mu: IntOrString, surge: IntOrString) -> Knobs {
        let p = partition_replicas(Some(&partition), replicas).unwrap();
        let ms = scaled_value(&surge, replicas, true).unwrap();
        Knobs {
            replicas,
            partition: p,
            max_surge: ms,
            max_unavailable: scaled_value(&mu, replicas, ms == 0).unwrap(),
            scale_max_unavailable: i32::MAX,
            ..Default::default()
        }
    }

    /// OpenKruise's `createTestPod(revision, Normal, ready, specifiedDelete)`.
    fn tp(rev: &str, state: &str, ready: bool, del: bool) -> Pod {
        let mut b = mk_pod("p").rev(rev).state(state);
        if ready {
            b = b.phase("Running").cond("Ready", "True", None);
        }
        if del {
            b = b.label(keys::SPECIFIED_DELETE_LABEL, "true");
        }
        b.build()
    }
    fn n(rev: &str, ready: bool, del: bool) -> Pod {
        tp(rev, ck::LIFECYCLE_NORMAL, ready, del)
    }

    struct Case {
        name: &'static str,
        k: Knobs,
        pods: Vec<Pod>,
        consistent: bool,
        rollback_gate: bool,
        want: Diffs,
    }

    fn d() -> Diffs {
        Diffs::default()
    }

    #[allow(clippy::too_many_lines)]
    fn cases() -> Vec<Case> {
        let c = |name, k, pods, want| Case {
            name,
            k,
            pods,
            consistent: false,
            rollback_gate: true,
            want,
        };
        let k501 = || knobs(5, int(0), int(1), int(0));
        let k531 = || knobs(5, int(3), int(1), int(0));
        let k5311 = || knobs(5, int(3), int(1), int(1));
        vec![
            c("empty", knobs(0, int(0), int(1), int(0)), vec![], d()),
            c(
                "increase to 5 (1/2)",
                k501(),
                vec![],
                Diffs {
                    scale_up_num: 5,
                    scale_up_limit: 5,
                    ..d()
                },
            ),
            c(
                "increase to 5 (2/2)",
                k501(),
                (0..5).map(|_| n(NEW, true, false)).collect(),
                d(),
            ),
            c(
                "specified delete 1 (1/3)",
                k501(),
                vec![
                    n(NEW, true, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                Diffs {
                    delete_ready_limit: 1,
                    ..d()
                },
            ),
            c(
                "specified delete 1 (2/3)",
                k501(),
                (0..4).map(|_| n(NEW, true, false)).collect(),
                Diffs {
                    scale_up_num: 1,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "specified delete 2 (3/6): replacement unready",
                k501(),
                vec![
                    n(NEW, true, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, false, false),
                ],
                d(),
            ),
            c(
                "specified delete 2 (4/6)",
                k501(),
                vec![
                    n(NEW, true, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                Diffs {
                    delete_ready_limit: 1,
                    ..d()
                },
            ),
            c(
                "specified delete 2 and replicas to 4 (1/3)",
                knobs(4, int(0), int(1), int(0)),
                vec![
                    n(NEW, false, true),
                    n(NEW, false, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                Diffs {
                    delete_ready_limit: 2,
                    ..d()
                },
            ),
            c(
                "update partition=3 (1/3)",
                k531(),
                (0..5).map(|_| n(OLD, true, false)).collect(),
                Diffs {
                    update_num: 2,
                    update_max_unavailable: 1,
                    ..d()
                },
            ),
            c(
                "update partition=3 (2/3)",
                k531(),
                vec![
                    n(NEW, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                ],
                Diffs {
                    update_num: 1,
                    update_max_unavailable: 1,
                    ..d()
                },
            ),
            c(
                "update partition=3 (3/3)",
                k531(),
                vec![
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                ],
                d(),
            ),
            c(
                "rollback partition=4 (1/3)",
                knobs(5, int(4), int(2), int(0)),
                vec![
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(OLD, true, false),
                ],
                Diffs {
                    update_num: -3,
                    update_max_unavailable: 2,
                    ..d()
                },
            ),
            c(
                "specified delete with maxSurge (1/4)",
                knobs(5, int(0), int(0), int(1)),
                vec![
                    n(NEW, true, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                Diffs {
                    scale_up_num: 1,
                    use_surge: 1,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "specified delete with maxSurge (2/4)",
                knobs(5, int(0), int(0), int(1)),
                vec![
                    n(NEW, true, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    use_surge: 1,
                    ..d()
                },
            ),
            c(
                "specified delete with maxSurge (3/4)",
                knobs(5, int(0), int(0), int(1)),
                vec![
                    n(NEW, true, true),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                Diffs {
                    use_surge: 1,
                    delete_ready_limit: 1,
                    ..d()
                },
            ),
            c(
                "in-place partition=3 with maxSurge (1/4)",
                k5311(),
                (0..5).map(|_| n(OLD, true, false)).collect(),
                Diffs {
                    scale_up_num: 1,
                    use_surge: 1,
                    update_num: 2,
                    update_max_unavailable: 1,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "in-place partition=3 with maxSurge (2/4)",
                k5311(),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    use_surge: 1,
                    update_num: 1,
                    update_max_unavailable: 2,
                    ..d()
                },
            ),
            c(
                "in-place partition=3 with maxSurge (3/4)",
                k5311(),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    tp(NEW, ck::LIFECYCLE_UPDATING, false, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    scale_down_num: 1,
                    scale_down_num_old_revision: 1,
                    ..d()
                },
            ),
            c(
                "in-place partition=3 with maxSurge (4/4)",
                k5311(),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(NEW, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    scale_down_num: 1,
                    scale_down_num_old_revision: 1,
                    delete_ready_limit: 1,
                    ..d()
                },
            ),
            c(
                "recreate partition=3 with maxSurge (3/7)",
                k5311(),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, true),
                    n(NEW, false, false),
                ],
                Diffs {
                    use_surge: 1,
                    use_surge_old_revision: 1,
                    delete_ready_limit: 1,
                    update_num: 1,
                    update_max_unavailable: 2,
                    ..d()
                },
            ),
            c(
                "recreate partition=3 with maxSurge (4/7)",
                k5311(),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    use_surge: 1,
                    scale_up_num: 1,
                    update_num: 1,
                    update_max_unavailable: 1,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "recreate partition=99% maxUnavailable=3 maxSurge=2 (1/3)",
                knobs(5, pct("99%"), int(3), int(2)),
                (0..5).map(|_| n(OLD, true, false)).collect(),
                Diffs {
                    scale_up_num: 1,
                    use_surge: 1,
                    update_num: 1,
                    update_max_unavailable: 3,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "recreate partition=99% maxUnavailable=3 maxSurge=2 (2/3)",
                knobs(5, pct("99%"), int(3), int(2)),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    scale_down_num: 1,
                    scale_down_num_old_revision: 1,
                    delete_ready_limit: 3,
                    ..d()
                },
            ),
            c(
                "recreate partition=99% maxUnavailable=40% maxSurge=30% (1/3): 40% rounds down",
                knobs(5, pct("99%"), pct("40%"), pct("30%")),
                (0..5).map(|_| n(OLD, true, false)).collect(),
                Diffs {
                    scale_up_num: 1,
                    use_surge: 1,
                    update_num: 1,
                    update_max_unavailable: 2,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "recreate partition=99% maxUnavailable=30% maxSurge=30% (2/3)",
                knobs(5, pct("99%"), pct("30%"), pct("30%")),
                vec![
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(OLD, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    scale_down_num: 1,
                    scale_down_num_old_revision: 1,
                    delete_ready_limit: 1,
                    ..d()
                },
            ),
            Case {
                consistent: true,
                ..c(
                    "revision consistent 4",
                    knobs(5, int(1), int(1), int(0)),
                    vec![
                        n(OLD, true, false),
                        n(OLD, true, false),
                        n(OLD, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                    ],
                    Diffs {
                        update_num: 2,
                        update_max_unavailable: 1,
                        ..d()
                    },
                )
            },
            Case {
                consistent: true,
                ..c(
                    "allow to update when fail to scale out",
                    knobs(5, int(1), int(2), int(0)),
                    vec![
                        n(OLD, true, false),
                        n(OLD, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                    ],
                    Diffs {
                        scale_up_num: 1,
                        scale_up_limit: 1,
                        update_num: 1,
                        update_max_unavailable: 1,
                        ..d()
                    },
                )
            },
            Case {
                consistent: true,
                ..c(
                    "allow to update when fail to scale in",
                    knobs(5, int(1), int(1), int(0)),
                    vec![
                        n(OLD, true, false),
                        n(OLD, true, false),
                        n(OLD, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                    ],
                    Diffs {
                        scale_down_num: 1,
                        scale_down_num_old_revision: 2,
                        delete_ready_limit: 2,
                        update_num: 1,
                        update_max_unavailable: 2,
                        ..d()
                    },
                )
            },
            Case {
                rollback_gate: false,
                ..c(
                    "rollback gate off",
                    knobs(5, int(4), int(1), int(0)),
                    vec![
                        n(OLD, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                        n(NEW, true, false),
                    ],
                    d(),
                )
            },
            c(
                "scale maxUnavailable=2 from 0 to 5",
                Knobs {
                    scale_max_unavailable: 2,
                    ..k501()
                },
                vec![],
                Diffs {
                    scale_up_num: 5,
                    scale_up_limit: 2,
                    ..d()
                },
            ),
            c(
                "scale maxUnavailable=2, 3 to 6, one unready",
                Knobs {
                    scale_max_unavailable: 2,
                    ..knobs(6, int(0), int(1), int(0))
                },
                vec![
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    scale_up_num: 3,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "scale maxUnavailable=2, 3 to 6, two unready",
                Knobs {
                    scale_max_unavailable: 2,
                    ..knobs(6, int(0), int(1), int(0))
                },
                vec![
                    n(NEW, true, false),
                    n(NEW, false, false),
                    n(NEW, false, false),
                ],
                Diffs {
                    scale_up_num: 3,
                    scale_up_limit: 0,
                    ..d()
                },
            ),
            c(
                "preparing-delete pods count as unavailable and as present",
                k501(),
                vec![
                    tp(NEW, ck::LIFECYCLE_PREPARING_DELETE, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                d(),
            ),
            c(
                "preparing-delete excluded from totals",
                Knobs {
                    exclude_preparing_delete: true,
                    ..k501()
                },
                vec![
                    tp(NEW, ck::LIFECYCLE_PREPARING_DELETE, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                    n(NEW, true, false),
                ],
                Diffs {
                    scale_up_num: 1,
                    scale_up_limit: 1,
                    ..d()
                },
            ),
            c(
                "podsToDelete counts as specified delete",
                Knobs {
                    pods_to_delete: ["p".to_string()].into(),
                    ..k501()
                },
                vec![n(NEW, true, false)],
                // 1 pod named "p" is listed: 5 desired, 1 present ⇒ 4 to create; it is to delete.
                Diffs {
                    scale_up_num: 4,
                    scale_up_limit: 4,
                    delete_ready_limit: 0,
                    ..d()
                },
            ),
        ]
    }

    #[test]
    fn calculate_diffs_table() {
        for case in cases() {
            let gates = Gates {
                partition_rollback: case.rollback_gate,
                ..Gates::default()
            };
            let current = if case.consistent { NEW } else { OLD };
            let refs: Vec<&Pod> = case.pods.iter().collect();
            let got = calculate_diffs(
                &case.k,
                &refs,
                current,
                NEW,
                |p| podutil::equal_to_revision_hash(p, NEW),
                &gates,
                now(),
            );
            assert_eq!(got, case.want, "case {:?}", case.name);
        }
    }

    #[test]
    fn knobs_from_cloneset() {
        let mut cs = CloneSet::new("cs", CloneSetSpec::default());
        cs.spec.replicas = Some(10);
        cs.spec.update_strategy = Some(kruise_crds::CloneSetUpdateStrategy {
            partition: Some(pct("35%")),
            max_surge: Some(pct("15%")),
            max_unavailable: Some(pct("25%")),
            ..Default::default()
        });
        let k = Knobs::from_cloneset(&cs, &Gates::default());
        assert_eq!((k.partition, k.max_surge, k.max_unavailable), (4, 2, 2));
        assert_eq!(k.scale_max_unavailable, i32::MAX);
        // paused forces maxSurge 0, and maxUnavailable then rounds up.
        cs.spec.update_strategy.as_mut().unwrap().paused = Some(true);
        let k = Knobs::from_cloneset(&cs, &Gates::default());
        assert_eq!((k.max_surge, k.max_unavailable), (0, 3));
        // Defaults: maxUnavailable 20% of 10 = 2.
        cs.spec.update_strategy = None;
        let k = Knobs::from_cloneset(&cs, &Gates::default());
        assert_eq!((k.partition, k.max_surge, k.max_unavailable), (0, 0, 2));
    }
}
