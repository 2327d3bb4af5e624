//! The SidecarSet hashes (`kruise.io/sidecarset-hash` and `-hash-without-image`), byte-exact with
//! OpenKruise's `SidecarSetHash`: sha256 over the Go JSON of the containers (plus all init containers
//! when one is a native sidecar), hex, then k8s `rand.SafeEncodeString`.

use super::gojson;
use kruise_crds::sidecarset::{SidecarContainer, SidecarSet, SidecarSetSpec};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The alphabet of k8s apimachinery `rand.SafeEncodeString` (no vowels, no confusable characters).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Hash of the SidecarSet's containers (`kruise.io/sidecarset-hash`).
pub fn hash(ss: &SidecarSet) -> String {
    spec_hash(&ss.spec)
}

/// The same hash with every container and init container image blanked
/// (`kruise.io/sidecarset-hash-without-image`).
pub fn hash_without_image(ss: &SidecarSet) -> String {
    spec_hash_without_image(&ss.spec)
}

/// [`hash`] of a bare spec (a spec restored from a ControllerRevision has no object around it).
pub fn spec_hash(spec: &SidecarSetSpec) -> String {
    safe_encode(&sha256_hex(&encode(spec)))
}

/// [`hash_without_image`] of a bare spec.
pub fn spec_hash_without_image(spec: &SidecarSetSpec) -> String {
    let blank = |list: &Option<Vec<SidecarContainer>>| {
        list.as_ref().map(|cs| {
            cs.iter()
                .cloned()
                .map(|mut c| {
                    c.container.image = None;
                    c
                })
                .collect::<Vec<_>>()
        })
    };
    let stripped = SidecarSetSpec {
        containers: blank(&spec.containers),
        init_containers: blank(&spec.init_containers),
        ..Default::default()
    };
    spec_hash(&stripped)
}

/// `{"containers":…}` plus `"initContainers":…` (all of them) when one is a native sidecar; the
/// keys of Go's map come out sorted, and `containers` is `null` when unset, as in Go.
fn encode(spec: &SidecarSetSpec) -> String {
    let containers = serde_json::to_value(&spec.containers).unwrap_or_default();
    let mut out = format!(
        "{{\"containers\":{}",
        gojson::sidecar_containers(&containers)
    );
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    if inits.iter().any(SidecarContainer::is_native_sidecar) {
        let inits = serde_json::to_value(inits).unwrap_or_default();
        out.push_str(",\"initContainers\":");
        out.push_str(&gojson::sidecar_containers(&inits));
    }
    out.push('}');
    out
}

fn sha256_hex(data: &str) -> String {
    let digest = Sha256::digest(data.as_bytes());
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// k8s `rand.SafeEncodeString`: every byte mapped into [`SAFE_ALPHABET`] by its value mod 27.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    fn sidecar(name: &str, image: &str, restart: Option<&str>) -> SidecarContainer {
        SidecarContainer {
            container: Container {
                name: name.into(),
                image: Some(image.into()),
                restart_policy: restart.map(Into::into),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn ss(containers: Vec<SidecarContainer>, inits: Option<Vec<SidecarContainer>>) -> SidecarSet {
        SidecarSet::new(
            "test",
            SidecarSetSpec {
                containers: Some(containers),
                init_containers: inits,
                ..Default::default()
            },
        )
    }

    #[test]
    fn encoding_matches_the_go_bytes() {
        let s = ss(vec![sidecar("container1", "test-image", None)], None);
        assert_eq!(
            encode(&s.spec),
            r#"{"containers":[{"name":"container1","image":"test-image","resources":{},"upgradeStrategy":{},"shareVolumePolicy":{}}]}"#
        );
    }

    /// The four vectors of OpenKruise's `hash_test.go` (spec §1.9).
    #[test]
    fn openkruise_hash_vectors() {
        let plain = ss(vec![sidecar("container1", "test-image", None)], None);
        assert_eq!(
            hash(&plain),
            "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78"
        );
        assert_eq!(
            hash_without_image(&plain),
            "8wzddb4dvv9c6x8zdc77z4z75987424f457dfv6724ddw6zbdx467wz5x24fc759"
        );
        let native = ss(
            vec![sidecar("container1", "test-image", None)],
            Some(vec![sidecar("container1", "test-image", Some("Always"))]),
        );
        assert_eq!(
            hash(&native),
            "4xwx4d4844vd4v9x79wb4xbxf4xb29475cc4446v8cz2c2f2f5c5bw448vd42z8w"
        );
        assert_eq!(
            hash_without_image(&native),
            "5725fw8bwbx249bw57v5892c847dzf48bww9zb7c86xb95264fdz26654847b2c8"
        );
    }

    #[test]
    fn plain_init_containers_do_not_change_the_hash() {
        let with_init = ss(
            vec![sidecar("container1", "test-image", None)],
            Some(vec![sidecar("init", "busybox", None)]),
        );
        assert_eq!(
            hash(&with_init),
            "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78"
        );
    }

    #[test]
    fn image_changes_only_the_full_hash() {
        let a = ss(vec![sidecar("c", "nginx:1", None)], None);
        let b = ss(vec![sidecar("c", "nginx:2", None)], None);
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash_without_image(&a), hash_without_image(&b));
        let mut c = b.clone();
        if let Some(cs) = c.spec.containers.as_mut() {
            cs[0].container.command = Some(vec!["sh".into()]);
        }
        assert_ne!(hash_without_image(&b), hash_without_image(&c));
        assert_eq!(hash(&a).len(), 64);
    }
}
