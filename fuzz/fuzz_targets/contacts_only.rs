//! Contacts-only decoders fed by a client or a key file: an allow-list and
//! an upload signature (UploadAllowList), an issuer public key (setting),
//! identity keys (the app's key file). Refused or parsed, never a panic;
//! what parses encodes back to the same bytes.
#![no_main]

use std::sync::LazyLock;

use cds_core::contacts_only::{
    AllowList, IdentityKeys, IssuerPublicKey, IssuerSecret, UploadSignature,
};
use libfuzzer_sys::fuzz_target;

static ISSUER: LazyLock<IssuerPublicKey> =
    LazyLock::new(|| *IssuerSecret::from_seed(&[3; 32]).public_key());

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = AllowList::decode(data) {
        assert_eq!(list.as_bytes(), data);
    }
    if let Ok(sig) = UploadSignature::from_slice(data) {
        assert_eq!(sig.to_bytes().as_slice(), data);
    }
    if let Ok(pk) = IssuerPublicKey::from_slice(data) {
        assert_eq!(pk.as_bytes().as_slice(), data);
    }
    if let Ok(keys) = IdentityKeys::from_bytes(data, &ISSUER) {
        assert_eq!(keys.to_bytes().as_slice(), data);
    }
});
