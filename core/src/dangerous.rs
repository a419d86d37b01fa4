//! Deterministic entry points for known-answer tests.
//!
//! **Dangerous.** The protocol's privacy rests on fresh random blinds, and
//! its soundness on fresh proof nonces. Reusing a blind links queries;
//! reusing a proof nonce with the same key reveals the key. These functions
//! exist so that the RFC 9497 test vectors can be reproduced; never call
//! them with values that are not freshly random in production.
//!
//! The same goes for [`issue_v1_credential`]: version 1 credentials carry
//! no issue time, which is why cds no longer issues them.

use crate::credential::{AccountId, CredentialIssuer};
use crate::error::Result;
use crate::group::{BlindedElement, EvaluatedElement, Proof, PublicKey};
use crate::key::SecretKey;
use crate::oprf::{
    BatchEvaluation, BlindResult, OprfClient, PoprfClient, PoprfServer, VoprfClient, VoprfServer,
};
use crate::suite::SCALAR_LEN;

fn scalar(bytes: &[u8; SCALAR_LEN]) -> Result<curve25519_dalek::Scalar> {
    // A blind or nonce has the same constraints as a secret key: canonical, nonzero.
    Ok(SecretKey::from_bytes(bytes)?.0)
}

/// A caller-chosen proof nonce, wiped after use like a random one.
fn nonce(bytes: &[u8; SCALAR_LEN]) -> Result<crate::dleq::Nonce> {
    Ok(zeroize::Zeroizing::new(scalar(bytes)?))
}

/// OPRF `Blind` with a caller-chosen blind.
pub fn oprf_blind(input: &[u8], blind: &[u8; SCALAR_LEN]) -> Result<BlindResult<OprfClient>> {
    OprfClient::blind_with(input, scalar(blind)?)
}

/// VOPRF `Blind` with a caller-chosen blind.
pub fn voprf_blind(input: &[u8], blind: &[u8; SCALAR_LEN]) -> Result<BlindResult<VoprfClient>> {
    VoprfClient::blind_with(input, scalar(blind)?)
}

/// POPRF `Blind` with a caller-chosen blind.
pub fn poprf_blind(
    input: &[u8],
    info: &[u8],
    public_key: &PublicKey,
    blind: &[u8; SCALAR_LEN],
) -> Result<BlindResult<PoprfClient>> {
    PoprfClient::blind_with(input, info, public_key, scalar(blind)?)
}

/// VOPRF `GenerateProof` with a caller-chosen nonce `r`.
pub fn voprf_prove_batch(
    server: &VoprfServer,
    blinded: &[BlindedElement],
    evaluated: &[EvaluatedElement],
    r: &[u8; SCALAR_LEN],
) -> Result<Proof> {
    server.prove_batch_with(blinded, evaluated, &nonce(r)?)
}

/// POPRF `BlindEvaluateBatch` with a caller-chosen nonce `r`.
pub fn poprf_blind_evaluate_batch(
    server: &PoprfServer,
    blinded: &[BlindedElement],
    info: &[u8],
    r: &[u8; SCALAR_LEN],
) -> Result<BatchEvaluation> {
    server.blind_evaluate_batch_with(blinded, info, &nonce(r)?)
}

/// Issue a version 1 credential: an expiry and no issue time. Servers
/// still accept these while the expiry is within their maximum lifetime of
/// now; [`CredentialIssuer::issue`] writes version 2, which servers bound
/// by its issue time. Only for tests of compatibility with older backends.
pub fn issue_v1_credential(
    issuer: &CredentialIssuer,
    account: &AccountId,
    expires_at: u64,
) -> String {
    issuer.issue_v1(account, expires_at)
}

/// Record keys from a caller-chosen tag and key, for tests of what happens
/// when two numbers' 8-byte match tags collide (which real PRF outputs do
/// with probability about `n² / 2^65` among `n` records). A record sealed
/// with such keys is only as secret as the key given here.
pub fn record_keys_from_parts(
    tag: [u8; crate::record::TAG_LEN],
    key: [u8; crate::record::RECORD_KEY_LEN],
) -> crate::record::RecordKeys {
    crate::record::RecordKeys::from_parts(tag, zeroize::Zeroizing::new(key))
}
