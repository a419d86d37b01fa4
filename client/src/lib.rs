//! # cds-client: contact discovery for messenger apps
//!
//! Give it the raw strings of an address book; it tells you, per entry,
//! whether the number belongs to a registered user who opted into
//! discovery, and that user's label. The server never sees a phone number:
//! each number is blinded (RFC 9497 VOPRF), the server's answers are checked
//! against its public key with a batched DLEQ proof, and matching happens on
//! the device.
//!
//! ```no_run
//! use cds_client::{Client, Contact, Region};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = Client::connect("http://127.0.0.1:50051").await?;
//! let book = ["(201) 555-0123", "+49 1512 3456789", "not a number"];
//! for (entry, contact) in book.iter().zip(client.discover(&book, Region::parse("US")?).await?) {
//!     match contact {
//!         Contact::Registered { number, label } => println!("{entry}: {} is on cds ({} byte label)", number.as_str(), label.as_bytes().len()),
//!         Contact::NotRegistered { .. } => println!("{entry}: not registered"),
//!         Contact::Invalid { reason } => println!("{entry}: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Lower layers are public for apps that bring their own transport:
//! [`normalize`] (address-book strings to E.164), [`session`] (one request
//! and its verified response, no I/O) and [`matching`] (local lookup).
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

mod builder;
mod cache;
mod client;
mod config_check;
mod contacts_only;
mod error;
pub mod matching;
pub mod normalize;
pub mod session;
#[cfg(test)]
mod test_support;
mod transport;

pub use builder::{ClientBuilder, DangerousClientBuilder};
pub use cache::{CacheError, DiscoveryCache};
pub use cds_core::{ProfileError, ServerProfile};
pub use client::{BucketMode, Client, Contact, DiscoveryReport};
pub use config_check::DEFAULT_MAX_BUCKET_BITS;
pub use contacts_only::UploadReport;
pub use error::{ClientError, Limit};
pub use normalize::{InvalidReason, Region, UnknownRegion};
pub use transport::ChannelOptions;
