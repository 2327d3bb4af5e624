//! Hot-upgrade injection of one sidecar `X`: the working slot `X-1` (real image) and the idle slot
//! `X-2` (`hotUpgradeEmptyImage`), their version env vars and the pod annotations that drive them.
//! The controller's later slot flips are not here.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
use kruise_crds::keys::sidecarset::{
    SIDECARSET_VERSION_ALT_ENV, SIDECARSET_VERSION_ENV, hot_upgrade_container_names,
    version_alt_annotation, version_alt_env_field_path, version_annotation, version_env_field_path,
};
use kruise_crds::sidecarset::SidecarContainer;
use std::collections::BTreeMap;

/// The two slots of hot sidecar `c` (already processed for mounts and env): `X-1` keeps the image,
/// `X-2` gets `hotUpgradeEmptyImage`; both get `SIDECARSET_VERSION` and `SIDECARSET_VERSION_ALT`
/// appended (no de-duplication, and no `apiVersion` on the fieldRef: the API server defaults it).
pub fn hot_upgrade_pair(c: &SidecarContainer) -> (SidecarContainer, SidecarContainer) {
    let (n1, n2) = hot_upgrade_container_names(&c.container.name);
    let mut c1 = c.clone();
    let mut c2 = c.clone();
    c1.container.name = n1;
    c2.container.name = n2;
    c2.container.image = c
        .upgrade_strategy
        .as_ref()
        .and_then(|s| s.hot_upgrade_empty_image.clone());
    for slot in [&mut c1, &mut c2] {
        let name = slot.container.name.clone();
        let env = slot.container.env.get_or_insert_with(Vec::new);
        env.push(field_env(
            SIDECARSET_VERSION_ENV,
            version_env_field_path(&name),
        ));
        env.push(field_env(
            SIDECARSET_VERSION_ALT_ENV,
            version_alt_env_field_path(&name),
        ));
    }
    (c1, c2)
}

fn field_env(name: &str, field_path: String) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path,
            }),
            ..Default::default()
        }),
    }
}

/// The version annotations of a freshly injected hot sidecar `name`: `X-1` is version "1" (alt "0"),
/// the empty `X-2` is version "0" (alt "1").
pub fn injection_version_annotations(name: &str) -> [(String, String); 4] {
    let (n1, n2) = hot_upgrade_container_names(name);
    [
        (version_annotation(&n1), "1".to_owned()),
        (version_alt_annotation(&n1), "0".to_owned()),
        (version_annotation(&n2), "0".to_owned()),
        (version_alt_annotation(&n2), "1".to_owned()),
    ]
}

/// Parses `kruise.io/sidecarset-working-hotupgrade-container` (`{"envoy":"envoy-1"}`); an
/// unparsable value counts as empty, as in OpenKruise.
pub fn parse_working_containers(value: Option<&str>) -> BTreeMap<String, String> {
    value
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use kruise_crds::sidecarset::{SidecarContainerUpgradeStrategy, SidecarContainerUpgradeType};

    #[test]
    fn pair_names_images_and_env() {
        let c = SidecarContainer {
            container: Container {
                name: "envoy".into(),
                image: Some("envoy:v1".into()),
                env: Some(vec![EnvVar {
                    name: "A".into(),
                    value: Some("1".into()),
                    value_from: None,
                }]),
                ..Default::default()
            },
            upgrade_strategy: Some(SidecarContainerUpgradeStrategy {
                upgrade_type: Some(SidecarContainerUpgradeType::HotUpgrade),
                hot_upgrade_empty_image: Some("empty:1".into()),
            }),
            ..Default::default()
        };
        let (c1, c2) = hot_upgrade_pair(&c);
        assert_eq!(c1.container.name, "envoy-1");
        assert_eq!(c1.container.image.as_deref(), Some("envoy:v1"));
        assert_eq!(c2.container.name, "envoy-2");
        assert_eq!(c2.container.image.as_deref(), Some("empty:1"));
        let env = serde_json::to_value(&c2.container.env).unwrap();
        assert_eq!(
            env,
            serde_json::json!([
                {"name": "A", "value": "1"},
                {"name": "SIDECARSET_VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['version.sidecarset.kruise.io/envoy-2']"}}},
                {"name": "SIDECARSET_VERSION_ALT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['versionalt.sidecarset.kruise.io/envoy-2']"}}}
            ])
        );
        let ann: BTreeMap<_, _> = injection_version_annotations("envoy").into_iter().collect();
        assert_eq!(ann["version.sidecarset.kruise.io/envoy-1"], "1");
        assert_eq!(ann["versionalt.sidecarset.kruise.io/envoy-1"], "0");
        assert_eq!(ann["version.sidecarset.kruise.io/envoy-2"], "0");
        assert_eq!(ann["versionalt.sidecarset.kruise.io/envoy-2"], "1");
    }

    #[test]
    fn working_map_parsing() {
        assert!(parse_working_containers(None).is_empty());
        assert!(parse_working_containers(Some("not json")).is_empty());
        assert_eq!(
            parse_working_containers(Some(r#"{"envoy":"envoy-2"}"#))["envoy"],
            "envoy-2"
        );
    }
}
