//! Well-known keys of cloneset (filled in by the cloneset API work).
