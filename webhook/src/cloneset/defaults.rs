//! Defaulting of CloneSets (spec §4.1, v1alpha1): replicas, history limit, update strategy knobs,
//! and the pod template defaults the API server would apply to pods (so the revision hash is
//! computed over what pods really look like), including OpenKruise's `imagePullPolicy: Always`.

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PodSecurityContext, PodSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::{CloneSet, CloneSetSpec, CloneSetUpdateStrategyType, InPlaceUpdateStrategy};

/// Applies every default on create.
pub fn default_cloneset(cs: &mut CloneSet) {
    default_scalars(cs);
    default_template(cs);
}

/// Applies the defaults on update: the template is only defaulted when it changed (as OpenKruise
/// does), so old objects are not re-rolled by new defaults.
pub fn default_cloneset_on_update(cs: &mut CloneSet, old: &CloneSet) {
    default_scalars(cs);
    if cs.spec.template != old.spec.template {
        default_template(cs);
    }
}

fn default_scalars(cs: &mut CloneSet) {
    let spec = &mut cs.spec;
    spec.replicas.get_or_insert(CloneSetSpec::DEFAULT_REPLICAS);
    spec.revision_history_limit
        .get_or_insert(CloneSetSpec::DEFAULT_REVISION_HISTORY_LIMIT);
    let us = spec.update_strategy.get_or_insert_default();
    let t = *us.type_.get_or_insert(CloneSetUpdateStrategyType::ReCreate);
    if t.is_in_place() {
        us.in_place_update_strategy
            .get_or_insert_with(InPlaceUpdateStrategy::default);
    }
    us.partition.get_or_insert(IntOrString::Int(0));
    us.max_unavailable
        .get_or_insert_with(|| IntOrString::String(CloneSetSpec::DEFAULT_MAX_UNAVAILABLE.into()));
    us.max_surge.get_or_insert(IntOrString::Int(0));
}

fn default_template(cs: &mut CloneSet) {
    if let Some(spec) = cs.spec.template.spec.as_mut() {
        default_pod_spec(spec);
    }
    for vct in cs.spec.volume_claim_templates.iter_mut().flatten() {
        default_pvc(vct);
    }
}

fn default_pvc(pvc: &mut PersistentVolumeClaim) {
    if let Some(spec) = pvc.spec.as_mut() {
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    }
}

fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(g) = p.http_get.as_mut() {
        g.path.get_or_insert_with(|| "/".into());
        g.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

fn default_container(c: &mut Container) {
    // OpenKruise sets Always before the upstream defaults run, so tagged images get it too.
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy = Some("Always".into());
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    for port in c.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(fr) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            fr.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(p);
    }
}

fn default_pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(s) = v.secret.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.config_map.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.downward_api.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.projected.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        let no_source = v.secret.is_none()
            && v.config_map.is_none()
            && v.downward_api.is_none()
            && v.projected.is_none()
            && v.persistent_volume_claim.is_none()
            && v.host_path.is_none()
            && v.empty_dir.is_none()
            && v.csi.is_none()
            && v.ephemeral.is_none()
            && v.nfs.is_none()
            && v.image.is_none();
        if no_source {
            v.empty_dir = Some(Default::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, PodTemplateSpec, Volume};

    fn cs() -> CloneSet {
        CloneSet::new(
            "demo",
            CloneSetSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some("nginx:1.25".into()),
                            ports: Some(vec![ContainerPort {
                                container_port: 80,
                                ..Default::default()
                            }]),
                            readiness_probe: Some(Probe {
                                http_get: Some(HTTPGetAction {
                                    port: IntOrString::Int(80),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        volumes: Some(vec![Volume {
                            name: "tmp".into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
        )
    }

    #[test]
    fn v1alpha1_defaults() {
        let mut c = cs();
        default_cloneset(&mut c);
        assert_eq!(c.spec.replicas, Some(1));
        assert_eq!(c.spec.revision_history_limit, Some(10));
        let us = c.spec.update_strategy.as_ref().unwrap();
        assert_eq!(us.type_, Some(CloneSetUpdateStrategyType::ReCreate));
        assert_eq!(us.partition, Some(IntOrString::Int(0)));
        assert_eq!(us.max_unavailable, Some(IntOrString::String("20%".into())));
        assert_eq!(us.max_surge, Some(IntOrString::Int(0)));
        assert_eq!(us.in_place_update_strategy, None);
        let spec = c.spec.template.spec.as_ref().unwrap();
        let main = &spec.containers[0];
        assert_eq!(main.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(
            main.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(
            main.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let probe = main.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.failure_threshold
            ),
            (Some(1), Some(10), Some(3))
        );
        assert_eq!(
            probe.http_get.as_ref().unwrap().scheme.as_deref(),
            Some("HTTP")
        );
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert!(spec.volumes.as_ref().unwrap()[0].empty_dir.is_some());
        // Idempotent.
        let again = {
            let mut d = c.clone();
            default_cloneset(&mut d);
            d
        };
        assert_eq!(again, c);
    }

    #[test]
    fn in_place_gets_strategy_and_update_leaves_template() {
        let mut c = cs();
        c.spec.update_strategy = Some(kruise_crds::CloneSetUpdateStrategy {
            type_: Some(CloneSetUpdateStrategyType::InPlaceIfPossible),
            ..Default::default()
        });
        let old = c.clone();
        default_cloneset_on_update(&mut c, &old);
        assert!(
            c.spec
                .update_strategy
                .as_ref()
                .unwrap()
                .in_place_update_strategy
                .is_some()
        );
        assert_eq!(
            c.spec.template, old.spec.template,
            "template unchanged ⇒ not defaulted"
        );
        let mut changed = c.clone();
        changed.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        default_cloneset_on_update(&mut changed, &old);
        assert_eq!(
            changed.spec.template.spec.as_ref().unwrap().containers[0]
                .image_pull_policy
                .as_deref(),
            Some("Always")
        );
    }
}
