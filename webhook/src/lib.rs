//! kruise-rs admission: SidecarSet pod injection, validation and defaulting of every kind, and the
//! webhook's HTTPS server and certificates. Served by `kruise-manager`.
//!
//! Every decision is a pure function (`sidecarset::inject`, `*::validate`, `*::default`); the
//! HTTP handlers around them are thin.
#![forbid(unsafe_code)]

pub mod cloneset;
pub mod field;
pub mod imagepull;
pub mod sidecarset;
