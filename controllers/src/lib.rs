//! kruise-manager: the controllers of the `apps.kruise.io` kinds. Each kind lives in its own module,
//! reconciled as `observe → plan (pure) → apply (thin)`.
#![forbid(unsafe_code)]

pub mod cloneset;
pub mod controllers;
pub mod features;
pub mod guard;
pub mod imagepull;
pub mod manager;
pub mod metrics;
pub mod sidecarset;
