//! CloneSet status (spec §11): the counters over active pods, revisions, `expectedUpdatedReplicas`,
//! `labelSelector`, and the `Progressing` / `FailedScale` / `FailedUpdate` conditions. Pure; the
//! caller writes it through the status subresource only when it changed.

use super::diff::partition_replicas;
use super::podutil;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kruise_crds::keys::{self, cloneset as ck};
use kruise_crds::{CloneSet, CloneSetSpec, CloneSetStatus, Condition};

/// Inputs besides the CloneSet and its pods.
#[derive(Clone, Debug, Default)]
pub struct StatusInput {
    /// Current revision name.
    pub current_revision: String,
    /// Update revision name.
    pub update_revision: String,
    /// Revision-name collisions so far.
    pub collision_count: i32,
    /// Error of this reconcile's scale step (`Some("")` = succeeded, None = did not run).
    pub scale_result: Option<String>,
    /// Error of this reconcile's update step (`Some("")` = succeeded, None = did not run).
    pub update_result: Option<String>,
}

fn set_condition(conds: &mut Vec<Condition>, mut c: Condition, now: Timestamp) {
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(old) if old.status == c.status && old.reason == c.reason => {
            // Unchanged: keep its times, so lastUpdateTime marks entry into the reason.
            old.message = c.message;
            old.observed_generation = c.observed_generation;
        }
        Some(old) => {
            c.last_update_time = Some(Time(now));
            c.last_transition_time = if old.status == c.status {
                old.last_transition_time.clone()
            } else {
                Some(Time(now))
            };
            *old = c;
        }
        None => {
            c.last_update_time = Some(Time(now));
            c.last_transition_time = Some(Time(now));
            conds.push(c);
        }
    }
}

fn cond(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        observed_generation: generation,
        ..Default::default()
    }
}

/// Computes the new status. Returns it and, when a progress deadline is running, the seconds until
/// it must be checked again.
pub fn compute_status(
    cs: &CloneSet,
    pods: &[&Pod],
    input: &StatusInput,
    now: Timestamp,
) -> (CloneSetStatus, Option<i64>) {
    let spec = &cs.spec;
    let replicas = spec.replicas.unwrap_or(CloneSetSpec::DEFAULT_REPLICAS);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let old = cs.status.clone().unwrap_or_default();
    let generation = cs.metadata.generation;
    let mut st = CloneSetStatus {
        observed_generation: generation,
        update_revision: Some(input.update_revision.clone()),
        current_revision: Some(input.current_revision.clone()),
        collision_count: Some(input.collision_count),
        label_selector: Some(podutil::selector_string(&spec.selector)),
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let (mut upd_avail, mut total) = (0, 0);
    for p in pods {
        total += 1;
        let ready = podutil::is_ready(p, now);
        let available = podutil::is_available(p, min_ready, now);
        let updated = podutil::equal_to_revision_hash(p, &input.update_revision);
        st.ready_replicas += i32::from(ready);
        st.available_replicas += i32::from(available);
        if updated {
            st.updated_replicas += 1;
            st.updated_ready_replicas += i32::from(ready);
            upd_avail += i32::from(available);
        }
    }
    st.replicas = total;
    st.updated_available_replicas = Some(upd_avail);
    if st.updated_replicas == st.replicas && st.replicas == replicas {
        st.current_revision = Some(input.update_revision.clone());
    }
    let us = spec.update_strategy.clone().unwrap_or_default();
    let expected_updated =
        replicas - partition_replicas(us.partition.as_ref(), replicas).unwrap_or(0);
    st.expected_updated_replicas = Some(expected_updated);

    let mut conds = st.conditions.take().unwrap_or_default();
    for (t, result) in [
        (ck::CONDITION_FAILED_SCALE, &input.scale_result),
        (ck::CONDITION_FAILED_UPDATE, &input.update_result),
    ] {
        match result.as_deref() {
            // Cleared once the step succeeds again (OpenKruise never clears them, quirk 11).
            Some("") => conds.retain(|c| c.type_ != t),
            Some(err) => set_condition(
                &mut conds,
                cond(t, keys::CONDITION_TRUE, t, err.to_string(), generation),
                now,
            ),
            None => {}
        }
    }

    let mut requeue = None;
    match spec.progress_deadline_seconds.filter(|p| *p != i32::MAX) {
        None => conds.retain(|c| c.type_ != ck::CONDITION_PROGRESSING),
        Some(pds) => {
            let existing = conds
                .iter()
                .find(|c| c.type_ == ck::CONDITION_PROGRESSING)
                .cloned();
            let reason = existing
                .as_ref()
                .and_then(|c| c.reason.clone())
                .unwrap_or_default();
            let available = st.current_revision == st.update_revision
                && st.replicas == st.updated_replicas
                && st.updated_replicas == upd_avail
                && upd_avail == replicas;
            let t = ck::CONDITION_PROGRESSING;
            let c = if available {
                cond(
                    t,
                    keys::CONDITION_TRUE,
                    ck::REASON_AVAILABLE,
                    ck::MESSAGE_AVAILABLE.into(),
                    generation,
                )
            } else if us.paused.unwrap_or(false) {
                cond(
                    t,
                    keys::CONDITION_TRUE,
                    ck::REASON_PAUSED,
                    ck::MESSAGE_PAUSED.into(),
                    generation,
                )
            } else if expected_updated < replicas && expected_updated <= upd_avail {
                cond(
                    t,
                    keys::CONDITION_TRUE,
                    ck::REASON_PARTITION_AVAILABLE,
                    ck::MESSAGE_PARTITION_AVAILABLE.into(),
                    generation,
                )
            } else {
                let since = existing
                    .as_ref()
                    .filter(|_| reason == ck::REASON_UPDATED)
                    .and_then(|c| c.last_update_time.as_ref())
                    .map_or(now.as_second(), |t| t.0.as_second());
                let deadline = since + i64::from(pds);
                if reason == ck::REASON_PROGRESS_DEADLINE_EXCEEDED || deadline < now.as_second() {
                    cond(
                        t,
                        keys::CONDITION_FALSE,
                        ck::REASON_PROGRESS_DEADLINE_EXCEEDED,
                        ck::progress_deadline_exceeded_message(&input.update_revision),
                        generation,
                    )
                } else {
                    requeue = Some(deadline + 1 - now.as_second());
                    cond(
                        t,
                        keys::CONDITION_TRUE,
                        ck::REASON_UPDATED,
                        ck::MESSAGE_UPDATED.into(),
                        generation,
                    )
                }
            };
            set_condition(&mut conds, c, now);
        }
    }
    st.conditions = (!conds.is_empty()).then_some(conds);
    (st, requeue)
}

/// Whether `new` differs from the stored status in anything worth a write (condition times of
/// unchanged conditions are kept by `compute_status`, so a plain comparison is enough).
pub fn needs_write(old: Option<&CloneSetStatus>, new: &CloneSetStatus) -> bool {
    old != Some(new)
}

#[cfg(test)]
mod tests {
    use super::super::podutil::test_pods::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kruise_crds::CloneSetUpdateStrategy;

    fn cs(replicas: i32, partition: i32, pds: Option<i32>) -> CloneSet {
        let mut cs = CloneSet::new("cs", CloneSetSpec::default());
        cs.metadata.generation = Some(4);
        cs.spec.replicas = Some(replicas);
        cs.spec.progress_deadline_seconds = pds;
        cs.spec.selector = LabelSelector {
            match_labels: Some([("app".to_string(), "nginx".to_string())].into()),
            ..Default::default()
        };
        cs.spec.update_strategy = Some(CloneSetUpdateStrategy {
            partition: Some(IntOrString::Int(partition)),
            ..Default::default()
        });
        cs
    }

    fn input() -> StatusInput {
        StatusInput {
            current_revision: "cs-old".into(),
            update_revision: "cs-new".into(),
            ..Default::default()
        }
    }

    #[test]
    fn counters() {
        let pods = [
            mk_pod("a")
                .rev("cs-new")
                .state(ck::LIFECYCLE_NORMAL)
                .ready()
                .build(),
            mk_pod("b")
                .rev("cs-new")
                .state(ck::LIFECYCLE_PREPARING_NORMAL)
                .ready()
                .build(),
            mk_pod("c").rev("cs-old").phase("Running").build(),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let (st, requeue) = compute_status(&cs(3, 1, None), &refs, &input(), now());
        assert_eq!(requeue, None);
        assert_eq!(st.observed_generation, Some(4));
        assert_eq!(
            (st.replicas, st.ready_replicas, st.available_replicas),
            (3, 2, 1)
        );
        assert_eq!(
            (
                st.updated_replicas,
                st.updated_ready_replicas,
                st.updated_available_replicas
            ),
            (2, 2, Some(1))
        );
        assert_eq!(st.expected_updated_replicas, Some(2));
        assert_eq!(st.label_selector.as_deref(), Some("app=nginx"));
        assert_eq!(st.current_revision.as_deref(), Some("cs-old"));
        assert_eq!(st.conditions, None);
        // All updated ⇒ current revision becomes the update revision.
        let all: Vec<Pod> = ["a", "b", "c"]
            .iter()
            .map(|n| mk_pod(n).rev("cs-new").build())
            .collect();
        let refs: Vec<&Pod> = all.iter().collect();
        let (st, _) = compute_status(&cs(3, 0, None), &refs, &input(), now());
        assert_eq!(st.current_revision.as_deref(), Some("cs-new"));
    }

    #[test]
    fn progressing_condition() {
        let n = now();
        let pods = [mk_pod("a")
            .rev("cs-old")
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .build()];
        let refs: Vec<&Pod> = pods.iter().collect();
        let c = cs(1, 0, Some(60));
        let (st, requeue) = compute_status(&c, &refs, &input(), n);
        let p = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("True", Some("CloneSetUpdated"))
        );
        assert_eq!(requeue, Some(61));
        // 61s later, still not updated: deadline exceeded, and sticky.
        let mut c2 = c.clone();
        c2.status = Some(st);
        let later = Timestamp::from_second(n.as_second() + 61).unwrap();
        let (st2, _) = compute_status(&c2, &refs, &input(), later);
        let p = &st2.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
        assert_eq!(
            p.message.as_deref(),
            Some("CloneSet revision cs-new has timed out progressing")
        );
        // Once every pod is updated and available: CloneSetAvailable.
        let done = [mk_pod("a")
            .rev("cs-new")
            .state(ck::LIFECYCLE_NORMAL)
            .ready()
            .build()];
        let refs: Vec<&Pod> = done.iter().collect();
        let mut c3 = c.clone();
        c3.status = Some(st2);
        let (st3, requeue) = compute_status(&c3, &refs, &input(), later);
        let p = &st3.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref(), p.message.as_deref()),
            (
                "True",
                Some("CloneSetAvailable"),
                Some("CloneSet is available")
            )
        );
        assert_eq!(requeue, None);
        // Partition reached.
        let (st4, _) = compute_status(&cs(2, 1, Some(60)), &[&done[0], &pods[0]], &input(), n);
        assert_eq!(
            st4.conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some("ProgressPartitionAvailable")
        );
    }

    #[test]
    fn failed_conditions_set_and_cleared() {
        let mut i = input();
        i.scale_result = Some("boom".into());
        let (st, _) = compute_status(&cs(0, 0, None), &[], &i, now());
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.message.as_deref()),
            ("FailedScale", "True", Some("boom"))
        );
        let mut c2 = cs(0, 0, None);
        c2.status = Some(st);
        i.scale_result = Some(String::new());
        let (st, _) = compute_status(&c2, &[], &i, now());
        assert_eq!(st.conditions, None);
        assert!(needs_write(c2.status.as_ref(), &st));
    }
}
