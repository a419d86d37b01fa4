//! # cds-client: contact discovery for messenger apps
//!
//! Give it the raw strings of an address book; it tells you, per entry,
//! whether the number belongs to a registered user who opted into
//! discovery, and that user's label. The server never sees a phone number:
//! each number is blinded (RFC 9497 VOPRF), the server's answers are checked
//! against its public key with a batched DLEQ proof, and matching happens on
//! the device.
//!
//! The app passes the credential its messenger backend issued, keeps the
//! cache with the address book (known contacts then cost no quota), and
//! shows the user when the account's budget runs out:
//!
//! ```
//! use cds_client::{Client, ClientError, Contact, DiscoveryCache, Region};
//!
//! /// One sync of the address book; `None` when the account's quota is
//! /// spent for now (nothing was charged: try again later).
//! async fn sync(
//!     url: &str,
//!     credential: &str,
//!     saved_cache: &mut Vec<u8>,
//!     book: &[&str],
//! ) -> Result<Option<Vec<Contact>>, ClientError> {
//!     let cache = DiscoveryCache::from_bytes(saved_cache).unwrap_or_default();
//!     let mut client = Client::builder(url)
//!         .credential(credential)
//!         .cache(cache)
//!         .connect()
//!         .await?;
//!     let found = match client.discover(book, Region::parse("US").expect("a region")).await {
//!         Ok(found) => found,
//!         Err(ClientError::QuotaExceeded { retry_after, .. }) => {
//!             match retry_after {
//!                 Some(wait) => println!("quota spent: try again in {} s", wait.as_secs()),
//!                 None => println!("too many new contacts at once: sync fewer"),
//!             }
//!             return Ok(None);
//!         }
//!         Err(other) => return Err(other),
//!     };
//!     *saved_cache = client.cache().to_bytes(); // store it with the address book
//!     for (entry, contact) in book.iter().zip(&found) {
//!         match contact {
//!             Contact::Registered { number, label } => {
//!                 println!("{entry}: {} is on the messenger ({} byte label)", number.as_str(), label.as_bytes().len())
//!             }
//!             Contact::NotRegistered { .. } => println!("{entry}: not registered"),
//!             Contact::Invalid { reason } => println!("{entry}: {reason}"),
//!             _ => {}
//!         }
//!     }
//!     Ok(Some(found))
//! }
//!
//! # // An in-process server with one discoverable user and a budget of 3
//! # // new numbers per account; the visible code above is the README's.
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let issuer = cds_core::CredentialIssuer::generate(&mut rand::rng());
//! # let mut config = cds_server::ServerConfig::new(dir.path().join("data")); // created 0700
//! # config.listen = "127.0.0.1:0".parse()?;
//! # config.admin_listen = "127.0.0.1:0".parse()?;
//! # config.issuer = Some(issuer.verifier());
//! # config.quota.burst = 3;
//! # let server = cds_server::start(config).await?;
//! # let mut admin = cds_proto::v1::admin_client::AdminClient::connect(format!("http://{}", server.admin_addr())).await?;
//! # admin.register(cds_proto::v1::RegisterRequest { user: Some(cds_proto::v1::User {
//! #     e164: "+12015550123".into(), label: b"alice".to_vec().into(), discoverable: true }) }).await?;
//! # let now = cds_server::unix_now();
//! # let credential = issuer.issue(&cds_core::AccountId::new(b"me".to_vec())?, now, now + 3600);
//! # let url = format!("http://{}", server.discovery_addr());
//! let mut saved = Vec::new(); // the bytes stored after the last sync, if any
//! let book = ["(201) 555-0123", "+49 1512 3456789", "not a number"];
//! let found = sync(&url, &credential, &mut saved, &book).await?;
//! # let found = found.expect("within the quota");
//! # assert!(matches!(&found[0], Contact::Registered { label, .. } if label.as_bytes() == b"alice"));
//! # assert!(matches!(&found[1], Contact::NotRegistered { .. }));
//! # assert!(matches!(&found[2], Contact::Invalid { .. }));
//! # assert_eq!(DiscoveryCache::from_bytes(&saved)?.len(), 2);
//! # // Two new numbers on top of the two cached ones: over the budget of 3.
//! # let bigger = ["(201) 555-0123", "+49 1512 3456789", "(201) 555-0188", "(201) 555-0199"];
//! # assert!(sync(&url, &credential, &mut saved, &bigger).await?.is_none());
//! # // The cached two alone cost nothing, so they still sync.
//! # assert!(sync(&url, &credential, &mut saved, &book).await?.is_some());
//! # server.shutdown().await?;
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
#[doc(hidden)]
pub mod fuzzing;
pub mod matching;
pub mod normalize;
pub mod session;
mod sync;
#[cfg(test)]
mod test_support;
mod transport;

pub use builder::{ClientBuilder, DangerousClientBuilder};
pub use cache::{CacheError, DiscoveryCache};
pub use cds_core::contacts_only::{IdentityKeys, IssuerPublicKey};
pub use cds_core::{BucketBits, E164, Label, Output, ProfileError, PublicKey, ServerProfile};
pub use client::{BucketMode, Client, Contact, DiscoveryReport};
pub use config_check::DEFAULT_MAX_BUCKET_BITS;
pub use contacts_only::UploadReport;
pub use error::{ClientError, Limit, StatusCode};
pub use normalize::{InvalidReason, Region, UnknownRegion};
pub use sync::{RecordCopy, SyncApplyError};
pub use transport::ChannelOptions;
