//! # cds-core: the protocol of private contact discovery
//!
//! This crate is the whole cryptographic protocol of cds and nothing else:
//! no I/O, no threads, no clocks. The server, client and CLI crates move its
//! values over the network.
//!
//! - [`oprf`]: RFC 9497 OPRF, VOPRF and POPRF for ristretto255-SHA512, checked
//!   against the RFC's test vectors; plus additive blinding for the VOPRF
//!   client ([`VoprfClient::blind_batch_additive`]): the same messages and
//!   outputs for less client work.
//! - [`RecordKeys`]: from the PRF output of a number, the match tag a client
//!   looks up and the key that seals the user's label.
//! - [`BucketBits`]: the public map from a number to one of `2^b` buckets.
//! - [`contacts_only`]: discoverable by my contacts only (pairing-based
//!   identity key agreement on BLS12-381; the server stores pseudorandom tags).
//! - [`E164`]: the canonical phone-number form the protocol hashes.
//! - [`ServerProfile`]: what an app trusts about its server (suite, public
//!   keys, the most bucket bits), as one line of text it compiles in.
//!
//! Every wire value is a newtype that can only be built by parsing, which
//! rejects non-canonical encodings and the identity element. Secrets (keys,
//! blinds, PRF outputs) are wiped on drop, compare in constant time and are
//! redacted in `Debug`. Functions whose running time depends on their inputs
//! say `vartime` in their names and only ever see public values.
//!
//! ## Walkthrough: one contact discovery round
//!
//! ```
//! use cds_core::{KeyPair, Mode, VoprfClient, VoprfServer, RecordKeys, Label, RecordRef, E164};
//!
//! let mut rng = rand::rng();
//!
//! // Server: a key, and a sealed record for every discoverable user.
//! let server = VoprfServer::new(KeyPair::generate(&mut rng));
//! let alice = E164::parse("+14155550132")?;
//! let output = server.evaluate(alice.as_bytes())?;
//! let record = RecordKeys::derive(&output).seal(&Label::new(b"alice-account".to_vec())?);
//!
//! // Client: blind each contact and send the blinded elements.
//! let contacts = [E164::parse("+14155550132")?, E164::parse("+442079460958")?];
//! let blinded: Vec<_> = contacts
//!     .iter()
//!     .map(|c| VoprfClient::blind(c.as_bytes(), &mut rng))
//!     .collect::<Result<_, _>>()?;
//! let (states, messages): (Vec<_>, Vec<_>) = blinded.into_iter().map(|b| (b.state, b.message)).unzip();
//!
//! // Server: evaluate the batch and prove it used its key.
//! let response = server.blind_evaluate_batch(&messages, &mut rng)?;
//!
//! // Client: verify the proof, unblind, and look for each contact's record.
//! let inputs: Vec<&[u8]> = contacts.iter().map(|c| c.as_bytes()).collect();
//! let outputs = VoprfClient::batch_finalize(&inputs, &states, &response.messages, &response.proof, server.public_key())?;
//! let published = RecordRef::decode_packed(record.as_bytes())?;
//! let alice_keys = RecordKeys::derive(&outputs[0]);
//! let found = published.iter().find(|r| r.tag() == *alice_keys.tag()).expect("alice is discoverable");
//! assert_eq!(alice_keys.open(*found)?.as_bytes(), b"alice-account");
//! let bob_keys = RecordKeys::derive(&outputs[1]);
//! assert!(published.iter().all(|r| r.tag() != *bob_keys.tag()));
//! # let _ = Mode::Voprf;
//! # Ok::<(), cds_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

mod backend;
mod bucket;
pub mod contacts_only;
mod credential;
pub mod dangerous;
mod dleq;
mod e164;
mod error;
mod group;
mod hash;
mod key;
pub mod oprf;
mod profile;
mod record;
mod secret;
mod suite;
pub mod sync;

pub use backend::CurveBackend;
pub use bucket::{BUCKET_DIGEST_LEN, BucketBits, BucketDigest, MAX_BUCKET_BITS};
pub use credential::{
    AccountId, CLOCK_SKEW_SECS, Credential, CredentialError, CredentialIssuer, CredentialVerifier,
    unverified_account,
};
pub use e164::E164;
pub use error::{Error, Result};
pub use group::{BlindedElement, EvaluatedElement, Proof, PublicKey};
pub use key::{KeyPair, SecretKey};
pub use oprf::{
    BatchEvaluation, BlindResult, OprfClient, OprfServer, Output, PoprfClient, PoprfServer,
    VoprfClient, VoprfServer,
};
pub use profile::{
    MAX_PROFILE_KEYS, PROFILE_PREFIX, PROFILE_VERSION, ProfileError, ServerProfile, Suite,
};
pub use record::{
    Label, MAX_LABEL_LEN, MAX_RECORD_LEN, MIN_RECORD_LEN, MatchTag, RECORD_FORMAT, RECORD_ID_LEN,
    RECORD_KEY_LEN, RECORD_OVERHEAD, Record, RecordId, RecordKeys, RecordRef, TAG_LEN, record_len,
};
pub use suite::{ELEMENT_LEN, IDENTIFIER, MAX_BATCH, Mode, OUTPUT_LEN, PROOF_LEN, SCALAR_LEN};
pub use sync::{SET_DIGEST_LEN, SetDigest};
