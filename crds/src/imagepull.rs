//! imagepull API types (being written).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The CRDs of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
