//! kruise-rs admission: SidecarSet pod injection, validation and defaulting of every kind, and the
//! webhook's TLS certificates. Served by `kruise-manager`. Not implemented yet (see the webhook issue).
#![forbid(unsafe_code)]
