//! # cds-ffi: the cds client for Kotlin, Swift and Python
//!
//! [`cds_client`] exposed through [UniFFI](https://mozilla.github.io/uniffi-rs/):
//! one definition here, from which `uniffi-bindgen` generates the Kotlin,
//! Swift and Python sources (README, "Python", "Kotlin", "Swift").
//!
//! - [`connect`] builds a [`DiscoveryClient`] from [`ClientOptions`]: the
//!   URL, the credential, a pinned key or server profile, and the cache
//!   bytes saved last time, and the [`BucketMode`] (all buckets, the
//!   contacts' buckets only, or sync: a copy of every record kept in the
//!   cache and brought up to date by delta);
//! - [`DiscoveryClient::discover`] (async) returns one [`Contact`] per
//!   address-book entry, with the same statuses, labels and invalid-entry
//!   reasons as the Rust client; with the user's contacts-only identity
//!   keys in [`ClientOptions::identity_keys`], it also finds contacts-only
//!   users who listed the user's number, with their label;
//! - [`DiscoveryClient::upload_allow_list`] (async) replaces the user's own
//!   contacts-only allow-list;
//! - [`DiscoveryClient::cache`] returns the cache as bytes for the app to
//!   store where it keeps the address book (in sync mode with the copy of
//!   the records), and [`DiscoveryClient::last_report`] what the last call
//!   sent and received, sync requests and bytes included;
//! - failures are [`DiscoveryError`] exceptions carrying the Rust client's
//!   codes (quota with retry-after, epoch changed, unauthenticated,
//!   unavailable, invalid input, ...), never a phone number.
//!
//! The async functions run on a Tokio runtime owned by the library.
// UniFFI's generated scaffolding is `extern "C"` glue with `unsafe` blocks;
// this crate's own code has none.
#![allow(unsafe_code)]

mod client;
mod contact;
mod contacts_only;
mod error;

pub use client::{BucketMode, ClientOptions, DiscoveryClient, connect};
pub use contact::{Contact, DiscoveryReport, InvalidReason};
pub use error::{DiscoveryError, QuotaLimit};

uniffi::setup_scaffolding!("cds");
