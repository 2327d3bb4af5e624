//! cloneset controller (being written).
