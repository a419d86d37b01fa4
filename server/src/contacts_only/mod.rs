//! Contacts-only discoverability on the server: the stored allow-lists,
//! their place in the record table, the upload handler and the mode switch.
//!
//! A contacts-only user has no normal record. Its app uploads pair records
//! (`cds_core::contacts_only`), one per number it allows; the server keeps
//! them in the registry file (`contacts_only_v1`) and serves them inside the
//! bucket of the user's own (absent) normal record, so a finder fetches
//! exactly the buckets normal discovery of its contacts fetches. The server
//! never sees a pair key: the records are pseudorandom to it.

mod modes;
pub(crate) mod placement;
pub(crate) mod store;
mod upload;

pub(crate) use modes::{forget, set_discoverability};
pub(crate) use placement::install_all;
pub(crate) use store::StoredList;
pub(crate) use store::create as create_store;
pub(crate) use upload::upload;
