//! sidecarset controller (being written).
