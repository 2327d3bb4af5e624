//! The committed CRD files match the types, and every kind is there with its subresources.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let drifted = kruise_crds::crdgen::drifted(&root).unwrap();
    assert!(
        drifted.is_empty(),
        "CRD files drifted from the types: {drifted:?}; run `cargo run -p kruise-crds --bin crdgen`"
    );
}

#[test]
fn all_five_kinds_with_status_and_their_scope() {
    let crds = kruise_crds::crds();
    let mut got: Vec<(String, String)> = crds
        .iter()
        .map(|c| (c.spec.names.kind.clone(), c.spec.scope.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("CloneSet", "Namespaced"),
            ("ImageListPullJob", "Namespaced"),
            ("ImagePullJob", "Namespaced"),
            ("NodeImage", "Cluster"),
            ("SidecarSet", "Cluster"),
        ]
        .map(|(k, s)| (k.to_string(), s.to_string()))
    );
    for crd in &crds {
        assert_eq!(crd.spec.group, "apps.kruise.io");
        let v = &crd.spec.versions;
        assert_eq!(v.len(), 1, "{}", crd.spec.names.kind);
        assert!(v[0].name == "v1alpha1" && v[0].served && v[0].storage);
        let sub = v[0].subresources.as_ref().unwrap();
        assert!(
            sub.status.is_some(),
            "{} has no status subresource",
            crd.spec.names.kind
        );
        assert_eq!(sub.scale.is_some(), crd.spec.names.kind == "CloneSet");
        let size = kruise_crds::crdgen::render(crd).unwrap().len();
        assert!(
            size < 100 * 1024,
            "{} CRD is {size} bytes",
            crd.spec.names.kind
        );
    }
}

#[test]
fn every_file_has_the_regenerate_header() {
    for (path, text) in kruise_crds::crdgen::files().unwrap() {
        assert!(
            text.starts_with(kruise_crds::crdgen::HEADER),
            "{}",
            path.display()
        );
    }
}
