//! imagepull admission (being written).
