//! cloneset admission (being written).
