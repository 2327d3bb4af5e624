//! Well-known keys of sidecarset (filled in by the sidecarset API work).
