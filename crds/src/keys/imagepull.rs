//! Well-known keys of imagepull (filled in by the imagepull API work).
