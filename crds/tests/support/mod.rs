//! Shared test helpers: YAML fixtures, round trips and validation against the generated CRD schemas.
#![allow(dead_code, clippy::unwrap_used)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The documents of a multi-document YAML text, as JSON values.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// Reads `crds/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Deserializes `doc` into `T` and serializes it back; panics, showing the difference, if any field
/// was lost, renamed or changed on the way.
pub fn assert_round_trip<T: Serialize + DeserializeOwned>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("does not deserialize: {e}\n{doc:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_json_diff::assert_json_eq!(back, doc.clone());
    typed
}

/// The OpenAPI v3 schema of the served version of `crd`, as a JSON-schema document.
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let v = crd.spec.versions.iter().find(|v| v.served).unwrap();
    serde_json::to_value(
        v.schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Errors the schema of `crd` reports for `doc` (empty when it accepts it).
pub fn schema_errors(crd: &CustomResourceDefinition, doc: &Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(&schema_of(crd)).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Panics unless the schema of `crd` accepts `doc`.
pub fn assert_schema_accepts(crd: &CustomResourceDefinition, doc: &Value) {
    let errs = schema_errors(crd, doc);
    assert!(
        errs.is_empty(),
        "schema refused a valid object: {errs:#?}\n{doc:#}"
    );
}

/// Panics unless the schema of `crd` refuses `doc` with an error at `path` (a JSON pointer such as
/// `/spec/replicas`).
pub fn assert_schema_refuses(crd: &CustomResourceDefinition, doc: &Value, path: &str) {
    let errs = schema_errors(crd, doc);
    assert!(
        errs.iter().any(|e| e.ends_with(&format!(" at {path}"))),
        "expected an error at {path}, got {errs:#?}"
    );
}

/// A copy of `doc` with the value at JSON pointer `path` replaced by `value`.
pub fn with(doc: &Value, path: &str, value: Value) -> Value {
    let mut d = doc.clone();
    *d.pointer_mut(path)
        .unwrap_or_else(|| panic!("no {path} in fixture")) = value;
    d
}
