//! kruise-rs API: the `apps.kruise.io/v1alpha1` types of SidecarSet, ImagePullJob, ImageListPullJob,
//! NodeImage and CloneSet, the well-known keys that pods and users see (spelled exactly as OpenKruise
//! spells them), and the CRD generator. Nothing here talks to a cluster.
#![forbid(unsafe_code)]

pub mod cloneset;
pub mod common;
pub mod crdgen;
pub mod imagepull;
pub mod keys;
pub mod quantity;
pub mod sidecarset;

pub use cloneset::*;
pub use common::*;
pub use imagepull::*;
pub use sidecarset::*;

/// Every CRD kruise-rs serves (see [`crdgen::all`]).
pub use crdgen::all as crds;

/// The API group served.
pub const GROUP: &str = "apps.kruise.io";
/// The version served and stored.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every kind here.
pub const API_VERSION: &str = "apps.kruise.io/v1alpha1";
/// Field manager of every server-side apply kruise-rs makes.
pub const FIELD_MANAGER: &str = "kruise-rs";
