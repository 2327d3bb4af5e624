//! kruise-rs admission: SidecarSet pod injection, validation and defaulting of every kind, and the
//! webhook's HTTPS server and certificates. Served by `kruise-manager`.
//!
//! Every decision is a pure function (`sidecarset::inject`, `*::validate`, `*::default`); the
//! HTTP handlers around them are thin.
#![forbid(unsafe_code)]

pub mod certs;
pub mod cloneset;
pub mod configuration;
pub mod deletionprotection;
pub mod field;
pub mod handlers;
pub mod imagepull;
pub mod panics;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod sidecarset;
pub mod write_health;
