//! Contacts-only mode in the client: find contacts-only users who listed
//! this user's number, and upload this user's own allow-list.
//!
//! Lookups use no request of their own: a contacts-only user's pair records
//! sit in the bucket of its normal (absent) record, which discovery fetches
//! for every contact anyway. One pairing per contact not found otherwise.

use cds_core::contacts_only::{AllowList, IdentityKeys, PairKey, UploadSignature, upload_message};
use cds_core::{E164, Label};
use cds_proto::v1::UploadAllowListRequest;
use cds_proto::wire;
use prost::Message as _;

use crate::client::Client;
use crate::error::ClientError;
use crate::matching::{FindRecord, Lookup};
use crate::normalize::{Region, normalize};

/// What [`Client::upload_allow_list`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Distinct numbers allowed (the owner's own number and invalid entries
    /// left out).
    pub allowed: usize,
    /// Records the server stores now.
    pub stored: u32,
    /// Pairings computed (one per allowed number).
    pub pairings: usize,
    /// Encoded size of the request (protobuf).
    pub bytes_sent: usize,
    /// Wall time sealing the records and signing (one pairing per allowed
    /// number; no I/O, so about the CPU time on an idle core).
    pub sealing: std::time::Duration,
    /// Wall time from sending the request to the server's answer: the
    /// server's checks (decoding, two pairings for the signature) and its
    /// store write, plus the network.
    pub round_trip: std::time::Duration,
}

/// The pair record `owner` published for the holder of `mine`, if any;
/// `None` without identity keys or for the user's own number.
pub(crate) fn lookup(
    mine: Option<&IdentityKeys>,
    records: &dyn FindRecord,
    owner: &E164,
) -> Option<Lookup> {
    let mine = mine?;
    let keys = PairKey::derive(mine, owner).ok()?.record_keys(owner).ok()?;
    Some(records.find(&keys))
}

impl Client {
    /// Replace this user's allow-list: seal `label` for every valid number
    /// of `entries` (normalized with `default_region`) with the identity
    /// keys given to [`crate::ClientBuilder::identity_keys`], sign, upload.
    /// An empty list allows nobody. The server takes it only while the
    /// backend has set this number to contacts-only, and only from the
    /// account of the credential; each upload must be newer than the last.
    pub async fn upload_allow_list<S: AsRef<str>>(
        &mut self,
        entries: &[S],
        default_region: Region,
        label: &Label,
    ) -> Result<UploadReport, ClientError> {
        let started = std::time::Instant::now();
        let keys = self.identity.clone().ok_or(ClientError::ContactsOnly(
            "no identity keys: give ClientBuilder::identity_keys the keys the messenger backend issued",
        ))?;
        let account = self.account.clone().ok_or(ClientError::ContactsOnly(
            "no credential: an upload is signed for the credential's account",
        ))?;
        let finders: Vec<E164> = entries
            .iter()
            .filter_map(|e| normalize(e.as_ref(), default_region).ok())
            .collect();
        let list = AllowList::seal(&keys, label, &finders).map_err(|_| {
            ClientError::ContactsOnly("the allow-list cannot be sealed (too many numbers?)")
        })?;
        let issued_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| (d.as_millis() as u64).max(1));
        let message = upload_message(
            keys.epoch(),
            account.as_bytes(),
            keys.number(),
            issued_at,
            list.as_bytes(),
        );
        let signature = UploadSignature::sign(&keys, &message, &mut rand::rng());
        let body = UploadAllowListRequest {
            issuer_epoch: keys.epoch(),
            e164: keys.number().as_str().to_owned(),
            issued_at,
            records: list.as_bytes().to_vec().into(),
            signature: signature.to_bytes().to_vec().into(),
            record_format: wire::RECORD_FORMAT,
        };
        let bytes_sent = body.encoded_len();
        let sealing = started.elapsed();
        let mut request = tonic::Request::new(body);
        if let Some(auth) = &self.authorization {
            request
                .metadata_mut()
                .insert(wire::AUTHORIZATION, auth.clone());
        }
        let sent = std::time::Instant::now();
        let stored = self
            .rpc
            .upload_allow_list(request)
            .await
            .map_err(ClientError::from_upload_status)?
            .into_inner()
            .stored;
        Ok(UploadReport {
            allowed: list.len(),
            stored,
            pairings: list.len(),
            bytes_sent,
            sealing,
            round_trip: sent.elapsed(),
        })
    }
}
