//! The hot-upgrade state machine of one pod (spec §4.7): which slot `{X-1}`/`{X-2}` an upgrade
//! targets, when the new slot is ready so the old one can be reset to the empty image, and the
//! version annotations that tell the two sidecar processes who is new. Pure: returns mutated pods.

use super::pod;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::keys::sidecarset::{
    SIDECARSET_INPLACE_UPDATE_STATE, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER,
    hot_upgrade_container_names, version_alt_annotation, version_annotation,
};
use kruise_crds::sidecarset::{SidecarContainer, SidecarSet};
use std::collections::{BTreeMap, BTreeSet};

/// Where a pod stands in the hot upgrade of a SidecarSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotStep {
    /// Every idle slot is empty and the pod runs the current sidecars.
    Steady,
    /// The pod is behind: upgrade the empty slot to the new image (when the strategy picks it).
    Upgrade,
    /// An idle slot was upgraded and the new container is not consistent and ready yet.
    WaitForNewSlot,
    /// The new container is ready: reset the old slot to the empty image.
    ResetOldSlot,
}

/// The step of `pod` for SidecarSet `ss` (only meaningful for SidecarSets with hot sidecars).
pub fn hot_upgrade_step(ss: &SidecarSet, p: &Pod) -> HotStep {
    if is_hot_upgrading(ss, p) {
        if ready_to_reset(ss, p) {
            HotStep::ResetOldSlot
        } else {
            HotStep::WaitForNewSlot
        }
    } else if pod::is_updated(ss, p) {
        HotStep::Steady
    } else {
        HotStep::Upgrade
    }
}

/// `isPodSidecarInHotUpgrading`: some hot sidecar's idle slot does not hold the empty image.
pub fn is_hot_upgrading(ss: &SidecarSet, p: &Pod) -> bool {
    let idle = pod::idle_slots(ss, p);
    pod::sidecars(ss)
        .iter()
        .filter(|c| c.is_hot_upgrade())
        .any(|c| {
            idle.get(&c.container.name)
                .and_then(|slot| pod::container_image(p, slot))
                .is_some_and(|img| img != pod::empty_image(c))
        })
}

/// The flip condition of reconcile step 7: hot-upgrading, every sidecar but the idle slots
/// consistent, and the pod running-ready or every non-idle container ready.
pub fn ready_to_reset(ss: &SidecarSet, p: &Pod) -> bool {
    if !is_hot_upgrading(ss, p) {
        return false;
    }
    let idle: BTreeSet<String> = pod::idle_slots(ss, p).into_values().collect();
    let names: BTreeSet<String> = pod::sidecar_container_names(ss)
        .difference(&idle)
        .cloned()
        .collect();
    if !pod::is_state_consistent(ss, p, Some(&names)) {
        return false;
    }
    let statuses = pod::container_statuses(p);
    pod::is_running_and_ready(p)
        || (!statuses.is_empty()
            && statuses
                .iter()
                .filter(|s| !idle.contains(&s.name))
                .all(|s| s.ready))
}

/// `findContainerToHotUpgrade`: `(target, other)` slots of hot sidecar `c`. The empty slot first
/// (`-1` before `-2`); else, if exactly one slot is ready, the one that is not; else the idle one.
pub fn find_container_to_hot_upgrade(
    ss: &SidecarSet,
    c: &SidecarContainer,
    p: &Pod,
) -> (String, String) {
    let (s1, s2) = hot_upgrade_container_names(&c.container.name);
    let empty = pod::empty_image(c);
    if pod::container_image(p, &s1) == Some(empty) {
        return (s1, s2);
    }
    if pod::container_image(p, &s2) == Some(empty) {
        return (s2, s1);
    }
    let ready = |slot: &str| {
        pod::container_status(p, slot).is_some_and(|s| s.ready)
            && pod::is_state_consistent(ss, p, Some(&BTreeSet::from([slot.to_owned()])))
    };
    match (ready(&s1), ready(&s2)) {
        (true, false) => return (s2, s1),
        (false, true) => return (s1, s2),
        _ => {}
    }
    let (working, older) = pod::hot_containers(p, &c.container.name);
    (older, working)
}

/// Version annotations and working map after upgrading slot `target` (the other slot is `other`)
/// of hot sidecar `name`: the target gets the SidecarSet's resourceVersion as its version and the
/// other slot's version as its alt; the other slot's alt becomes the resourceVersion.
pub fn upgrade_annotations(
    annotations: &mut BTreeMap<String, String>,
    name: &str,
    target: &str,
    other: &str,
    resource_version: &str,
) {
    let mut working = kruise_webhook::sidecarset::hotupgrade::parse_working_containers(
        annotations
            .get(SIDECARSET_WORKING_HOTUPGRADE_CONTAINER)
            .map(String::as_str),
    );
    working.insert(name.to_owned(), target.to_owned());
    // A map of strings always serializes.
    let working = serde_json::to_string(&working).unwrap_or_default();
    annotations.insert(SIDECARSET_WORKING_HOTUPGRADE_CONTAINER.to_owned(), working);
    let other_version = annotations
        .get(&version_annotation(other))
        .cloned()
        .unwrap_or_default();
    annotations.insert(version_annotation(target), resource_version.to_owned());
    annotations.insert(version_alt_annotation(target), other_version);
    annotations.insert(version_alt_annotation(other), resource_version.to_owned());
}

/// What a reset did.
#[derive(Clone, Debug, PartialEq)]
pub struct ResetOutcome {
    /// The pod with the old slots reset.
    pub pod: Pod,
    /// The slots set back to the empty image.
    pub reset: Vec<String>,
}

/// Reset (§4.7 S1→S0'): each hot sidecar whose idle slot does not hold the empty image gets it back;
/// the reset slot's version becomes "0" and the working slot's alt "0"; the reset slots' image IDs
/// are recorded in the in-place update state.
pub fn reset_old_slots(ss: &SidecarSet, p: &Pod, now: Timestamp) -> ResetOutcome {
    let mut out = p.clone();
    let idle = pod::idle_slots(ss, p);
    let mut reset = Vec::new();
    let mut ann = out.metadata.annotations.clone().unwrap_or_default();
    for c in pod::sidecars(ss).iter().filter(|c| c.is_hot_upgrade()) {
        let name = &c.container.name;
        let Some(slot) = idle.get(name) else { continue };
        let empty = pod::empty_image(c);
        let Some(spec) = out.spec.as_mut() else {
            continue;
        };
        let Some(container) = spec.containers.iter_mut().find(|x| &x.name == slot) else {
            continue;
        };
        if container.image.as_deref() == Some(empty) {
            continue;
        }
        container.image = Some(empty.to_owned());
        reset.push(slot.clone());
        ann.insert(version_annotation(slot), "0".to_owned());
        let (work, _) = pod::hot_containers(p, name);
        ann.insert(version_alt_annotation(&work), "0".to_owned());
    }
    let ss_name = ss.metadata.name.as_deref().unwrap_or_default();
    let state =
        pod::record_inplace_update_state(p, ss_name, &pod::sidecarset_hash(ss), &reset, now);
    ann.insert(SIDECARSET_INPLACE_UPDATE_STATE.to_owned(), state);
    out.metadata.annotations = Some(ann);
    ResetOutcome { pod: out, reset }
}

#[cfg(test)]
mod tests {
    use super::super::pod::testutil::*;
    use super::super::upgrade::upgrade_pod;
    use super::*;

    fn hot_ss(image: &str) -> SidecarSet {
        let mut ss = mk_ss("bbb", "without-aaa", image);
        make_hot(&mut ss, "empty:1");
        ss
    }

    fn ann<'a>(p: &'a Pod, k: &str) -> &'a str {
        pod::annotation(p, k).unwrap_or("<none>")
    }

    fn image<'a>(p: &'a Pod, c: &str) -> &'a str {
        pod::container_image(p, c).unwrap_or("<none>")
    }

    /// Kubelet restarted slot `c` on its spec image and reports it ready.
    fn restarted(p: &Pod, c: &str) -> Pod {
        let img = image(p, c).to_owned();
        mk_pod_from(p)
            .status_image(c, &img, &format!("{img}-id"))
            .container_ready(c, true)
            .build()
    }

    fn mk_pod_from(p: &Pod) -> PodBuilder {
        PodBuilder(p.clone())
    }

    #[test]
    fn full_cycle_alternates_slots() {
        // S0: work=-1 (v1), -2 empty.
        let ss = hot_ss("v2");
        let p0 = mk_pod("p").hot("v1", "empty:1").build();
        assert_eq!(hot_upgrade_step(&ss, &p0), HotStep::Upgrade);

        // S1: -2 gets v2 with the SidecarSet's resourceVersion as its version.
        let p1 = upgrade_pod(&ss, &p0, ts(5)).unwrap().pod;
        assert_eq!(image(&p1, "test-sidecar-2"), "v2");
        assert_eq!(image(&p1, "test-sidecar-1"), "v1");
        assert_eq!(
            ann(&p1, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER),
            r#"{"test-sidecar":"test-sidecar-2"}"#
        );
        assert_eq!(
            ann(&p1, "version.sidecarset.kruise.io/test-sidecar-2"),
            "100"
        );
        assert_eq!(
            ann(&p1, "versionalt.sidecarset.kruise.io/test-sidecar-2"),
            "1"
        );
        assert_eq!(
            ann(&p1, "versionalt.sidecarset.kruise.io/test-sidecar-1"),
            "100"
        );
        assert_eq!(ann(&p1, "version.sidecarset.kruise.io/test-sidecar-1"), "1");
        // Kubelet has not restarted -2 yet: wait.
        assert_eq!(hot_upgrade_step(&ss, &p1), HotStep::WaitForNewSlot);
        // The pod counts as not ready during the upgrade.
        assert!(!pod::is_ready(&ss, &p1));

        // New slot up: reset the old one.
        let p1r = restarted(&p1, "test-sidecar-2");
        assert_eq!(hot_upgrade_step(&ss, &p1r), HotStep::ResetOldSlot);
        let r = reset_old_slots(&ss, &p1r, ts(6));
        assert_eq!(r.reset, vec!["test-sidecar-1"]);
        let p2 = r.pod;
        assert_eq!(image(&p2, "test-sidecar-1"), "empty:1");
        assert_eq!(ann(&p2, "version.sidecarset.kruise.io/test-sidecar-1"), "0");
        assert_eq!(
            ann(&p2, "versionalt.sidecarset.kruise.io/test-sidecar-2"),
            "0"
        );
        assert!(
            ann(&p2, SIDECARSET_INPLACE_UPDATE_STATE)
                .contains(r#""test-sidecar-1":{"imageID":"v1-id"}"#)
        );
        let p2 = restarted(&p2, "test-sidecar-1");
        assert_eq!(hot_upgrade_step(&ss, &p2), HotStep::Steady);
        assert!(pod::is_ready(&ss, &p2));

        // Next upgrade targets -1 (now the empty one).
        let ss3 = {
            let mut s = hot_ss("v3");
            s.metadata.resource_version = Some("200".into());
            s.metadata.annotations.as_mut().unwrap().insert(
                kruise_crds::keys::sidecarset::SIDECARSET_HASH.into(),
                "ccc".into(),
            );
            s
        };
        assert_eq!(hot_upgrade_step(&ss3, &p2), HotStep::Upgrade);
        let p3 = upgrade_pod(&ss3, &p2, ts(7)).unwrap().pod;
        assert_eq!(image(&p3, "test-sidecar-1"), "v3");
        assert_eq!(image(&p3, "test-sidecar-2"), "v2");
        assert_eq!(
            ann(&p3, SIDECARSET_WORKING_HOTUPGRADE_CONTAINER),
            r#"{"test-sidecar":"test-sidecar-1"}"#
        );
        assert_eq!(
            ann(&p3, "version.sidecarset.kruise.io/test-sidecar-1"),
            "200"
        );
        assert_eq!(
            ann(&p3, "versionalt.sidecarset.kruise.io/test-sidecar-1"),
            "100"
        );
        assert_eq!(
            ann(&p3, "versionalt.sidecarset.kruise.io/test-sidecar-2"),
            "200"
        );
    }

    #[test]
    fn failed_new_slot_is_upgraded_again() {
        let ss = hot_ss("v2");
        let p0 = mk_pod("p").hot("v1", "empty:1").build();
        let p1 = upgrade_pod(&ss, &p0, ts(5)).unwrap().pod;
        // -2 restarted on the bad v2 but never gets ready; -1 keeps serving.
        let p1 = mk_pod_from(&p1)
            .status_image("test-sidecar-2", "v2", "v2-id")
            .container_ready("test-sidecar-2", false)
            .not_ready()
            .build();
        assert_eq!(hot_upgrade_step(&ss, &p1), HotStep::WaitForNewSlot);
        let ss_fix = hot_ss("v2-fixed");
        let (target, other) =
            find_container_to_hot_upgrade(&ss_fix, &pod::sidecars(&ss_fix)[0], &p1);
        assert_eq!(
            (target.as_str(), other.as_str()),
            ("test-sidecar-2", "test-sidecar-1")
        );
        let p2 = upgrade_pod(&ss_fix, &p1, ts(6)).unwrap().pod;
        assert_eq!(image(&p2, "test-sidecar-2"), "v2-fixed");
        assert_eq!(image(&p2, "test-sidecar-1"), "v1");
    }

    #[test]
    fn find_target_rules() {
        let ss = hot_ss("v2");
        let c = &pod::sidecars(&ss)[0];
        // Rule 1/2: the empty slot.
        let p = mk_pod("p").hot("empty:1", "v1").build();
        assert_eq!(
            find_container_to_hot_upgrade(&ss, c, &p).0,
            "test-sidecar-1"
        );
        let p = mk_pod("p").hot("v1", "empty:1").build();
        assert_eq!(
            find_container_to_hot_upgrade(&ss, c, &p).0,
            "test-sidecar-2"
        );
        // Rule 4: both ready, neither empty: the non-working slot.
        let p = mk_pod("p").hot("v1", "v0").build();
        assert_eq!(
            find_container_to_hot_upgrade(&ss, c, &p).0,
            "test-sidecar-2"
        );
        // Rule 3: exactly one ready: the not-ready one.
        let p = mk_pod("p")
            .hot("v1", "v0")
            .container_ready("test-sidecar-1", false)
            .build();
        assert_eq!(
            find_container_to_hot_upgrade(&ss, c, &p).0,
            "test-sidecar-1"
        );
    }
}
