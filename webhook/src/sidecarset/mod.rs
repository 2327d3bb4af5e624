//! sidecarset admission (being written).
