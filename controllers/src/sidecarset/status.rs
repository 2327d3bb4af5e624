//! SidecarSet status from its matched pods (OpenKruise's `calculateStatus`), plus kruise-rs's
//! standard conditions and `observedGeneration` (spec decision 4). Pure: the caller writes it.

use super::pod;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::common::Condition;
use kruise_crds::keys::{CONDITION_FALSE, CONDITION_TRUE};
use kruise_crds::sidecarset::{SidecarSet, SidecarSetStatus, SidecarSetUpdateStrategyType};

/// Condition type: every matched pod runs the current sidecars.
pub const CONDITION_UPDATED: &str = "Updated";
/// Condition type: every matched pod is sidecar-consistent and ready.
pub const CONDITION_READY: &str = "Ready";
/// Reason of `Updated=True`.
pub const REASON_ALL_UPDATED: &str = "AllPodsUpdated";
/// Reason of `Updated=False` while pods are being upgraded.
pub const REASON_UPDATING: &str = "Updating";
/// Reason of `Updated=False` while `updateStrategy.paused` is set.
pub const REASON_PAUSED: &str = "Paused";
/// Reason of `Updated=False` with `updateStrategy.type: NotUpdate`.
pub const REASON_NOT_UPDATE: &str = "NotUpdate";
/// Reason of `Ready=True`.
pub const REASON_ALL_READY: &str = "AllPodsReady";
/// Reason of `Ready=False`.
pub const REASON_PODS_NOT_READY: &str = "PodsNotReady";

/// Counts per OpenKruise: `updated` = recorded hash is current, `ready` = consistent and ready.
/// `matched` must already be the matched pods (see [`pod::is_matched`]).
pub fn calculate_status(
    ss: &SidecarSet,
    matched: &[&Pod],
    latest_revision: &str,
    collision_count: Option<i32>,
    now: Timestamp,
) -> SidecarSetStatus {
    let (mut updated, mut ready, mut updated_ready) = (0, 0, 0);
    for p in matched {
        let is_updated = pod::is_updated(ss, p);
        let is_ready = pod::is_state_consistent(ss, p, None) && pod::is_ready(ss, p);
        updated += i32::from(is_updated);
        ready += i32::from(is_ready);
        updated_ready += i32::from(is_updated && is_ready);
    }
    let matched_n = i32::try_from(matched.len()).unwrap_or(i32::MAX);
    let generation = ss.metadata.generation;
    let strategy = ss.spec.update_strategy.as_ref();
    let (upd_status, upd_reason) = if updated >= matched_n {
        (CONDITION_TRUE, REASON_ALL_UPDATED)
    } else if strategy.and_then(|s| s.type_) == Some(SidecarSetUpdateStrategyType::NotUpdate) {
        (CONDITION_FALSE, REASON_NOT_UPDATE)
    } else if strategy.and_then(|s| s.paused).unwrap_or(false) {
        (CONDITION_FALSE, REASON_PAUSED)
    } else {
        (CONDITION_FALSE, REASON_UPDATING)
    };
    let (rdy_status, rdy_reason) = if ready >= matched_n {
        (CONDITION_TRUE, REASON_ALL_READY)
    } else {
        (CONDITION_FALSE, REASON_PODS_NOT_READY)
    };
    let old = ss
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let conditions = vec![
        condition(
            old,
            CONDITION_UPDATED,
            upd_status,
            upd_reason,
            format!("{updated} of {matched_n} matched pods updated"),
            generation,
            now,
        ),
        condition(
            old,
            CONDITION_READY,
            rdy_status,
            rdy_reason,
            format!("{ready} of {matched_n} matched pods ready"),
            generation,
            now,
        ),
    ];
    SidecarSetStatus {
        observed_generation: generation,
        matched_pods: matched_n,
        updated_pods: updated,
        ready_pods: ready,
        updated_ready_pods: Some(updated_ready),
        latest_revision: Some(latest_revision.to_owned()).filter(|s| !s.is_empty()),
        collision_count,
        conditions: Some(conditions),
    }
}

/// A condition that keeps the previous `lastTransitionTime` when its status did not change.
fn condition(
    old: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        observed_generation: generation,
        last_transition_time: Some(since),
        last_update_time: None,
        reason: Some(reason.to_owned()),
        message: Some(message),
    }
}

/// Whether two statuses differ in anything but condition timestamps (to skip no-op writes).
pub fn status_changed(old: Option<&SidecarSetStatus>, new: &SidecarSetStatus) -> bool {
    let strip = |s: &SidecarSetStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_update_time = None;
        }
        s
    };
    old.is_none_or(|o| strip(o) != strip(new))
}

#[cfg(test)]
mod tests {
    use super::super::pod::testutil::*;
    use super::*;
    use kruise_crds::sidecarset::SidecarSetUpdateStrategy;

    struct Case {
        name: &'static str,
        pods: Vec<Pod>,
        want: (i32, i32, i32, i32),
    }

    #[test]
    fn counts_table() {
        let ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let cases = [
            Case {
                name: "none updated, all ready",
                pods: vec![mk_pod("a").build(), mk_pod("b").build()],
                want: (2, 0, 2, 0),
            },
            Case {
                name: "one updated and restarted, one in flight",
                pods: vec![
                    mk_pod("a").upgraded_done().build(),
                    mk_pod("b").upgraded_in_flight().build(),
                ],
                want: (2, 2, 1, 1),
            },
            Case {
                name: "pod not ready",
                pods: vec![mk_pod("a").upgraded_done().not_ready().build()],
                want: (1, 1, 0, 0),
            },
            Case {
                name: "no pods",
                pods: vec![],
                want: (0, 0, 0, 0),
            },
        ];
        for c in cases {
            let refs: Vec<&Pod> = c.pods.iter().collect();
            let s = calculate_status(&ss, &refs, "rev-1", Some(0), ts(10));
            assert_eq!(
                (
                    s.matched_pods,
                    s.updated_pods,
                    s.ready_pods,
                    s.updated_ready_pods.unwrap()
                ),
                c.want,
                "{}",
                c.name
            );
            assert_eq!(s.latest_revision.as_deref(), Some("rev-1"));
            assert_eq!(s.observed_generation, Some(3));
        }
    }

    #[test]
    fn hot_upgrade_in_progress_is_not_ready() {
        let mut ss = mk_ss("bbb", "without-aaa", "v2");
        make_hot(&mut ss, "empty:1");
        let pods = [
            mk_pod("a").hot("v1", "empty:1").build(),
            mk_pod("b").hot("v1", "v2").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let s = calculate_status(&ss, &refs, "r", None, ts(0));
        assert_eq!((s.matched_pods, s.ready_pods), (2, 1));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut ss = mk_ss("bbb", "without-aaa", "test-image:v2");
        let pods = [mk_pod("a").build()];
        let refs: Vec<&Pod> = pods.iter().collect();
        let s1 = calculate_status(&ss, &refs, "r", None, ts(10));
        let upd = &s1.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (upd.type_.as_str(), upd.status.as_str()),
            ("Updated", "False")
        );
        assert_eq!(upd.reason.as_deref(), Some(REASON_UPDATING));
        ss.status = Some(s1.clone());
        let s2 = calculate_status(&ss, &refs, "r", None, ts(20));
        assert_eq!(
            s2.conditions.as_ref().unwrap()[0].last_transition_time,
            Some(Time(ts(10)))
        );
        assert!(!status_changed(Some(&s1), &s2));
        ss.spec.update_strategy = Some(SidecarSetUpdateStrategy {
            paused: Some(true),
            ..Default::default()
        });
        let s3 = calculate_status(&ss, &refs, "r", None, ts(30));
        assert_eq!(
            s3.conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some(REASON_PAUSED)
        );
        assert!(status_changed(Some(&s2), &s3));
        let done = [mk_pod("a").upgraded_done().build()];
        let refs: Vec<&Pod> = done.iter().collect();
        let s4 = calculate_status(&ss, &refs, "r", None, ts(40));
        let c = &s4.conditions.as_ref().unwrap()[0];
        assert_eq!(c.status, "True");
        assert_eq!(c.last_transition_time, Some(Time(ts(40))));
    }
}
