//! SidecarSet defaulting, as OpenKruise's `SetDefaultsSidecarSet` plus the k8s container and volume
//! defaults it calls, followed by the two hash annotations the SidecarSet mutating webhook writes.
//! Defaults change the hash (the hash is taken after them), so they must match OpenKruise exactly.

use super::hash::{hash, hash_without_image};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, HTTPGetAction, ObjectFieldSelector, Probe, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::sidecarset::{SIDECARSET_HASH, SIDECARSET_HASH_WITHOUT_IMAGE};
use kruise_crds::sidecarset::{
    PodInjectPolicy, ShareVolumePolicy, ShareVolumePolicyType, SidecarContainer,
    SidecarContainerUpgradeStrategy, SidecarContainerUpgradeType, SidecarSet,
    SidecarSetInjectRevisionPolicy, SidecarSetPatchPolicyType, SidecarSetUpdateStrategy,
    SidecarSetUpdateStrategyType,
};

/// Default file mode of secret, configMap, downwardAPI and projected volumes (0644).
const DEFAULT_MODE: i32 = 420;

/// Applies OpenKruise's defaults to `ss` and then writes `kruise.io/sidecarset-hash` and
/// `kruise.io/sidecarset-hash-without-image` onto it (the SidecarSet mutating webhook).
pub fn default_sidecarset(ss: &mut SidecarSet) {
    let spec = &mut ss.spec;
    let strategy = spec
        .update_strategy
        .get_or_insert_with(SidecarSetUpdateStrategy::default);
    strategy
        .type_
        .get_or_insert(SidecarSetUpdateStrategyType::RollingUpdate);
    strategy.max_unavailable.get_or_insert(IntOrString::Int(1));
    strategy.partition.get_or_insert(IntOrString::Int(0));

    for c in spec.init_containers.iter_mut().flatten() {
        default_sidecar_container(c, PodInjectPolicy::AfterAppContainer);
    }
    for c in spec.containers.iter_mut().flatten() {
        default_sidecar_container(c, PodInjectPolicy::BeforeAppContainer);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    spec.revision_history_limit.get_or_insert(10);
    for p in spec.patch_pod_metadata.iter_mut().flatten() {
        p.patch_policy
            .get_or_insert(SidecarSetPatchPolicyType::Retain);
    }
    if let Some(rev) = spec
        .injection_strategy
        .as_mut()
        .and_then(|s| s.revision.as_mut())
    {
        rev.policy
            .get_or_insert(SidecarSetInjectRevisionPolicy::Always);
    }

    let (h, hw) = (hash(ss), hash_without_image(ss));
    let annotations = ss.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(SIDECARSET_HASH.to_owned(), h);
    annotations.insert(SIDECARSET_HASH_WITHOUT_IMAGE.to_owned(), hw);
}

fn default_sidecar_container(c: &mut SidecarContainer, policy: PodInjectPolicy) {
    c.pod_inject_policy.get_or_insert(policy);
    c.upgrade_strategy
        .get_or_insert_with(SidecarContainerUpgradeStrategy::default)
        .upgrade_type
        .get_or_insert(SidecarContainerUpgradeType::ColdUpgrade);
    c.share_volume_policy
        .get_or_insert_with(ShareVolumePolicy::default)
        .type_
        .get_or_insert(ShareVolumePolicyType::Disabled);
    for t in c.transfer_env.iter_mut().flatten() {
        if let Some(fr) = t
            .source_container_name_from
            .as_mut()
            .and_then(|s| s.field_ref.as_mut())
        {
            default_field_selector(fr);
        }
    }
    default_container(&mut c.container);
}

/// k8s `SetDefaults_Container` plus the port, env, probe and lifecycle defaults OpenKruise applies.
/// The startup probe is left alone, as OpenKruise leaves it.
pub(crate) fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let always = image_tag(c.image.as_deref().unwrap_or_default()) == Some("latest");
        c.image_pull_policy = Some(if always { "Always" } else { "IfNotPresent" }.to_owned());
    }
    if c.termination_message_path
        .as_deref()
        .is_none_or(str::is_empty)
    {
        c.termination_message_path = Some("/dev/termination-log".to_owned());
    }
    if c.termination_message_policy
        .as_deref()
        .is_none_or(str::is_empty)
    {
        c.termination_message_policy = Some("File".to_owned());
    }
    for p in c.ports.iter_mut().flatten() {
        if p.protocol.as_deref().is_none_or(str::is_empty) {
            p.protocol = Some("TCP".to_owned());
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(fr) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_field_selector(fr);
        }
    }
    for probe in [c.liveness_probe.as_mut(), c.readiness_probe.as_mut()]
        .into_iter()
        .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [l.post_start.as_mut(), l.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(g) = h.http_get.as_mut() {
                default_http_get(g);
            }
        }
    }
}

/// The tag as k8s `parsers.ParseImageName` sees it: `latest` when the image has neither tag nor
/// digest, `None` when it has only a digest (or is empty).
fn image_tag(image: &str) -> Option<&str> {
    if image.is_empty() {
        return None;
    }
    let (name, has_digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag),
        None if has_digest => None,
        None => Some("latest"),
    }
}

fn default_field_selector(fr: &mut ObjectFieldSelector) {
    if fr.api_version.as_deref().is_none_or(str::is_empty) {
        fr.api_version = Some("v1".to_owned());
    }
}

fn default_probe(p: &mut Probe) {
    let zero_or_none = |v: Option<i32>| v.is_none_or(|n| n == 0);
    if zero_or_none(p.timeout_seconds) {
        p.timeout_seconds = Some(1);
    }
    if zero_or_none(p.period_seconds) {
        p.period_seconds = Some(10);
    }
    if zero_or_none(p.success_threshold) {
        p.success_threshold = Some(1);
    }
    if zero_or_none(p.failure_threshold) {
        p.failure_threshold = Some(3);
    }
    if let Some(g) = p.http_get.as_mut() {
        default_http_get(g);
    }
}

fn default_http_get(g: &mut HTTPGetAction) {
    if g.path.as_deref().is_none_or(str::is_empty) {
        g.path = Some("/".to_owned());
    }
    if g.scheme.as_deref().is_none_or(str::is_empty) {
        g.scheme = Some("HTTP".to_owned());
    }
}

/// OpenKruise's `SetDefaultPodVolumes`: a volume without a source becomes an emptyDir; file modes
/// and downward-API/projection defaults as the API server would set them.
fn default_volume(v: &mut Volume) {
    let has_source = {
        let mut probe = serde_json::to_value(&*v).unwrap_or_default();
        if let Some(o) = probe.as_object_mut() {
            o.remove("name");
            !o.is_empty()
        } else {
            true
        }
    };
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(h) = v.host_path.as_mut() {
        // k8s `HostPathUnset`
        h.type_.get_or_insert_with(String::new);
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(s) = v.config_map.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(d) = v.downward_api.as_mut() {
        d.default_mode.get_or_insert(DEFAULT_MODE);
        for item in d.items.iter_mut().flatten() {
            if let Some(fr) = item.field_ref.as_mut() {
                default_field_selector(fr);
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        p.default_mode.get_or_insert(DEFAULT_MODE);
        for src in p.sources.iter_mut().flatten() {
            if let Some(d) = src.downward_api.as_mut() {
                for item in d.items.iter_mut().flatten() {
                    if let Some(fr) = item.field_ref.as_mut() {
                        default_field_selector(fr);
                    }
                }
            }
            if let Some(t) = src.service_account_token.as_mut() {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HostPathVolumeSource, SecretVolumeSource};
    use kruise_crds::sidecarset::{
        SidecarSetInjectRevision, SidecarSetInjectionStrategy, SidecarSetPatchPodMetadata,
        SidecarSetSpec,
    };

    #[test]
    fn image_tags() {
        for (image, want) in [
            ("nginx", Some("latest")),
            ("nginx:latest", Some("latest")),
            ("nginx:1.25", Some("1.25")),
            ("registry:5000/nginx", Some("latest")),
            ("registry:5000/nginx:1", Some("1")),
            ("nginx@sha256:abc", None),
            ("nginx:1@sha256:abc", Some("1")),
            ("", None),
        ] {
            assert_eq!(image_tag(image), want, "{image}");
        }
    }

    #[test]
    fn defaults_and_hash_annotations() {
        let mut ss = SidecarSet::new(
            "s",
            SidecarSetSpec {
                containers: Some(vec![SidecarContainer {
                    container: Container {
                        name: "c".into(),
                        image: Some("nginx".into()),
                        ports: Some(vec![ContainerPort {
                            container_port: 80,
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                init_containers: Some(vec![SidecarContainer {
                    container: Container {
                        name: "i".into(),
                        image: Some("busybox:1".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                volumes: Some(vec![
                    Volume {
                        name: "bare".into(),
                        ..Default::default()
                    },
                    Volume {
                        name: "sec".into(),
                        secret: Some(SecretVolumeSource::default()),
                        ..Default::default()
                    },
                    Volume {
                        name: "host".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/x".into(),
                            type_: None,
                        }),
                        ..Default::default()
                    },
                ]),
                patch_pod_metadata: Some(vec![SidecarSetPatchPodMetadata::default()]),
                injection_strategy: Some(SidecarSetInjectionStrategy {
                    revision: Some(SidecarSetInjectRevision::default()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        default_sidecarset(&mut ss);
        let spec = &ss.spec;
        let us = spec.update_strategy.as_ref().unwrap();
        assert_eq!(us.type_, Some(SidecarSetUpdateStrategyType::RollingUpdate));
        assert_eq!(us.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(us.partition, Some(IntOrString::Int(0)));
        assert_eq!(spec.revision_history_limit, Some(10));
        let c = &spec.containers.as_ref().unwrap()[0];
        assert_eq!(
            c.pod_inject_policy,
            Some(PodInjectPolicy::BeforeAppContainer)
        );
        assert_eq!(c.container.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(
            c.container.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(
            c.container.termination_message_policy.as_deref(),
            Some("File")
        );
        assert_eq!(
            c.container.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        assert_eq!(
            c.upgrade_strategy.as_ref().unwrap().upgrade_type,
            Some(SidecarContainerUpgradeType::ColdUpgrade)
        );
        assert_eq!(
            c.share_volume_policy.as_ref().unwrap().type_,
            Some(ShareVolumePolicyType::Disabled)
        );
        let i = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            i.pod_inject_policy,
            Some(PodInjectPolicy::AfterAppContainer)
        );
        assert_eq!(
            i.container.image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        let vols = spec.volumes.as_ref().unwrap();
        assert!(vols[0].empty_dir.is_some());
        assert_eq!(vols[1].secret.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(
            vols[2].host_path.as_ref().unwrap().type_.as_deref(),
            Some("")
        );
        assert_eq!(
            spec.patch_pod_metadata.as_ref().unwrap()[0].patch_policy,
            Some(SidecarSetPatchPolicyType::Retain)
        );
        assert_eq!(
            spec.injection_strategy
                .as_ref()
                .unwrap()
                .revision
                .as_ref()
                .unwrap()
                .policy,
            Some(SidecarSetInjectRevisionPolicy::Always)
        );
        let ann = ss.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[SIDECARSET_HASH], hash(&ss));
        assert_eq!(ann[SIDECARSET_HASH_WITHOUT_IMAGE], hash_without_image(&ss));
        assert_ne!(ann[SIDECARSET_HASH], ann[SIDECARSET_HASH_WITHOUT_IMAGE]);
    }
}
