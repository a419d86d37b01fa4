//! The `UploadAllowList` handler's core: check the request, then replace
//! the uploader's stored list and its pair records in the serving table.

use std::sync::PoisonError;

use cds_core::contacts_only::{AllowList, UploadSignature, upload_message};
use cds_core::{AccountId, CLOCK_SKEW_SECS, E164};
use cds_proto::v1::UploadAllowListRequest;
use tonic::Status;

use super::{placement, store};
use crate::state::State;

/// Check and store one upload from `account`; returns how many records
/// are stored. Blocking (two pairings, a registry write): run it on the
/// blocking pool. Nothing is written unless every check passes.
pub(crate) fn upload(
    state: &State,
    account: &AccountId,
    request: UploadAllowListRequest,
) -> Result<u32, Status> {
    if request.record_format != cds_proto::wire::RECORD_FORMAT {
        return Err(Status::failed_precondition(format!(
            "the records are of record format {}, but this server serves record format {} (docs/protocol.md §5): upgrade the app",
            request.record_format,
            cds_proto::wire::RECORD_FORMAT
        )));
    }
    let issuer = state.config.contacts_issuer.as_ref().ok_or_else(|| {
        Status::failed_precondition(
            "this server has no contacts issuer key (contacts_issuer_public_key): contacts-only mode is off",
        )
    })?;
    if request.issuer_epoch != issuer.epoch() {
        return Err(Status::failed_precondition(
            "the identity keys are of another contacts issuer epoch: get new identity keys from the messenger backend",
        ));
    }
    let number = E164::parse(&request.e164).map_err(|_| {
        Status::invalid_argument(
            "e164 is not a canonical E.164 number: send '+' then 7 to 15 digits, no spaces",
        )
    })?;
    let records = AllowList::decode(&request.records)
        .map_err(|e| Status::invalid_argument(format!("records: {e}")))?;
    let signature = UploadSignature::from_slice(&request.signature)
        .map_err(|e| Status::invalid_argument(format!("signature: {e}")))?;
    let now = crate::auth::unix_now();
    if request.issued_at == 0 || request.issued_at > (now + CLOCK_SKEW_SECS).saturating_mul(1000) {
        return Err(Status::invalid_argument(
            "issued_at is zero or more than 60 s ahead of the server's clock: check the device clock",
        ));
    }
    let message = upload_message(
        issuer.epoch(),
        account.as_bytes(),
        &number,
        request.issued_at,
        &request.records,
    );
    signature.verify(issuer, &number, &message).map_err(|_| {
        Status::permission_denied(
            "the upload is not signed with the identity keys of that number: an account can upload only for its own number",
        )
    })?;

    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = state.serving_or_unavailable()?;
    let store_error = |e: crate::error::ServerError| {
        tracing::error!(error = %e, "allow-list store failed");
        Status::unavailable("the server's store failed: retry later")
    };
    let registered = state.registry.get(&number).map_err(store_error)?;
    let old = state.registry.allow_list(&number).map_err(store_error)?;
    let (Some(user), Some(old)) = (registered, old) else {
        return Err(Status::failed_precondition(
            "that number is not in contacts-only mode: the messenger backend sets it (SetDiscoverability CONTACTS) before the app uploads",
        ));
    };
    if user.discoverable {
        return Err(Status::failed_precondition(
            "that number is discoverable by everybody: nothing to upload",
        ));
    }
    if request.issued_at <= old.issued_at {
        return Err(Status::failed_precondition(
            "an upload at least as recent is stored: send a newer issued_at (replays are refused)",
        ));
    }
    let new = store::StoredList {
        issued_at: request.issued_at,
        records,
    };
    state
        .registry
        .put_allow_list(&number, &new)
        .map_err(store_error)?;
    state.note_changed([number.clone()]);
    if let Some(feed) = state.registry.shared_feed() {
        // Placed from the feed, on this replica as on every other.
        crate::follow::catch_up_locked(state, feed).map_err(store_error)?;
        return Ok(new.records.len() as u32);
    }
    placement::apply(
        &serving,
        placement::changes(
            &serving.table,
            &serving.oprf,
            &number,
            Some(&old.records),
            Some(&new.records),
        ),
    );
    Ok(new.records.len() as u32)
}
