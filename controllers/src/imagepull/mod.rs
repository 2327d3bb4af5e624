//! imagepull controller (being written).
