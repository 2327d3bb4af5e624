//! CloneSet admission: validation (`validate_cloneset`, spec §4.2 plus decision 2) and defaulting
//! (`default_cloneset`, spec §4.1, v1alpha1 defaults). Pure functions over the typed object; the HTTP
//! handlers call them. Checks that need the API (podsToDelete ownership) are `admission`'s job.

pub mod admission;
pub mod defaults;
pub mod validate;

pub use admission::CloneSetValidator;
pub use defaults::{default_cloneset, default_cloneset_on_update};
pub use validate::{added_pods_to_delete, validate_cloneset, validate_pods_to_delete};
