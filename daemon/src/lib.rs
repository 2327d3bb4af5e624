//! kruise-daemon: the per-node agent that pulls images through the CRI for its NodeImage.
//! Not implemented yet (see the image warm-up issue).
#![forbid(unsafe_code)]
