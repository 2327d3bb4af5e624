//! SidecarSet admission: the pod injection core, SidecarSet defaulting (with the hash annotations)
//! and validation, all pure functions. The HTTP handlers and the controller call these; nothing
//! here talks to the API server, so every object read is a parameter.
//!
//! - [`hash`]/[`hash_without_image`]: byte-exact with OpenKruise (Go JSON encoding in `gojson`).
//! - [`default_sidecarset`]: the `msidecarset` webhook (defaults, then both hash annotations).
//! - [`validate_sidecarset`] (+ [`validate_patch_metadata_whitelist`]): the `vsidecarset` webhook.
//! - [`inject`]: the `mpod` webhook's SidecarSet part (CREATE), returning the pod and its JSON patch.

pub mod defaults;
mod gojson;
pub mod hash;
pub mod hotupgrade;
pub mod inject;
pub mod matching;
pub mod resources;
pub mod routing;
pub mod validate;

pub use defaults::default_sidecarset;
pub use hash::{hash, hash_without_image, spec_hash, spec_hash_without_image};
pub use inject::{
    InjectError, InjectInput, InjectOutcome, canary_base, find_revision, inject, patch_pod_metadata,
};
pub use matching::{
    Labels, effective_namespace_selector, pod_selector_matches, selector_matches, selectors_overlap,
};
pub use validate::{validate_patch_metadata_whitelist, validate_sidecarset};

#[cfg(test)]
mod inject_tests;
#[cfg(test)]
mod validate_tests;
