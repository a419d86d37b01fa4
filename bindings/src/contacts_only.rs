//! Contacts-only mode: the identity keys an app passes at connect, and the
//! upload of the user's own allow-list.

use std::sync::PoisonError;

use cds_client::{IdentityKeys, IssuerPublicKey, Label, Region};

use crate::client::{DiscoveryClient, Seen};
use crate::error::DiscoveryError;

/// Parse the identity keys and the issuer key of [`crate::ClientOptions`]
/// with the core parser (which checks the keys against the issuer key):
/// both or neither.
pub(crate) fn identity_keys(
    keys: Option<Vec<u8>>,
    issuer: Option<Vec<u8>>,
) -> Result<Option<IdentityKeys>, DiscoveryError> {
    // The key bytes are secret: overwritten however this returns.
    let keys = keys.map(zeroize::Zeroizing::new);
    match (keys, issuer) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(DiscoveryError::invalid(
            "identity_keys need contacts_issuer_public_key: pass the issuer public key the messenger backend publishes",
        )),
        (None, Some(_)) => Err(DiscoveryError::invalid(
            "contacts_issuer_public_key is only used with identity_keys: pass both or neither",
        )),
        (Some(keys), Some(issuer)) => {
            // Core messages name the check that failed, never the number.
            let issuer = IssuerPublicKey::from_slice(&issuer).map_err(|e| {
                DiscoveryError::invalid(format!(
                    "contacts_issuer_public_key is not a contacts issuer public key ({e}): pass the 144 bytes the backend publishes"
                ))
            })?;
            let keys = IdentityKeys::from_bytes(&keys, &issuer).map_err(|e| {
                DiscoveryError::invalid(format!(
                    "identity_keys are unusable ({e}): pass the bytes the messenger backend issued, unchanged, or ask it for new ones"
                ))
            })?;
            Ok(Some(keys))
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl DiscoveryClient {
    /// Contacts-only mode: replace this user's allow-list with the valid
    /// numbers of `entries` (the address book, or the part of it the user
    /// chose; `region` as for `discover`). Each allowed contact whose app
    /// has identity keys then finds this user, with `label`, at its next
    /// `discover`; a number left out no longer does. An empty list allows
    /// nobody. Needs `identity_keys` and a credential; the server takes it
    /// only while the backend has set this user to contacts-only
    /// (`Rejected` with code `FAILED_PRECONDITION` otherwise). Returns how
    /// many records the server stores (one per allowed number).
    pub async fn upload_allow_list(
        &self,
        entries: Vec<String>,
        region: String,
        label: Vec<u8>,
    ) -> Result<u32, DiscoveryError> {
        let region = Region::parse(&region).map_err(DiscoveryError::invalid)?;
        let label = Label::new(label).map_err(DiscoveryError::invalid)?;
        let mut client = self.client.lock().await;
        let result = client.upload_allow_list(&entries, region, &label).await;
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Seen::of(&client);
        Ok(result?.stored)
    }
}
