//! The Admin gRPC handlers: parse each request (refusing invalid input
//! before anything is written), run the write or read off the async
//! workers, and answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cds_core::{E164, Label};
use cds_proto::v1::admin_server::Admin;
use cds_proto::v1::{
    AnnounceNextKeyRequest, AnnounceNextKeyResponse, ImportRequest, ImportResponse,
    ListChangesRequest, ListChangesResponse, ProfileRequest, ProfileResponse, RegisterRequest,
    RegisterResponse, RegistryChange, RotateKeyRequest, RotateKeyResponse,
    SetDiscoverabilityRequest, SetDiscoverabilityResponse, SetDiscoverableRequest,
    SetDiscoverableResponse, StatsRequest, StatsResponse, UnregisterRequest, UnregisterResponse,
    registry_change,
};
use cds_proto::wire;
use tonic::{Request, Response, Status, Streaming};

use super::import::ImportProgress;
use super::writes;
use crate::error::ServerError;
use crate::exec::on_blocking_pool;
use crate::registry::{LoggedChange, Upserted, User, UserChange};
use crate::state::State;

/// At most this many changes are returned by one `ListChanges` call.
pub const MAX_CHANGES_PER_PAGE: usize = 10_000;

/// The Admin gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct AdminService {
    pub(crate) state: Arc<State>,
}

const BAD_NUMBER: &str = "e164 is not a canonical E.164 number: send '+' then 7 to 15 digits, no spaces (for example +14155550132)";

fn parse_number(s: &str) -> Result<E164, &'static str> {
    E164::parse(s).map_err(|_| BAD_NUMBER)
}

fn parse_user(u: cds_proto::v1::User) -> Result<User, &'static str> {
    Ok(User {
        number: parse_number(&u.e164)?,
        label: Label::new(u.label.to_vec()).map_err(|_| "label is longer than 64 bytes")?,
        discoverable: u.discoverable,
    })
}

fn change_message(c: LoggedChange) -> RegistryChange {
    RegistryChange {
        seq: c.seq,
        at_unix: c.at_unix,
        change: Some(match c.change {
            UserChange::Upserted(u) => registry_change::Change::Upserted(cds_proto::v1::User {
                e164: u.number.as_str().to_owned(),
                label: u.label.into_bytes().into(),
                discoverable: u.discoverable,
            }),
            UserChange::Removed(n) => registry_change::Change::Removed(n.as_str().to_owned()),
        }),
    }
}

impl AdminService {
    /// Apply each chunk of an import as it arrives, counting into
    /// `progress`, until the stream ends or fails.
    async fn import_chunks(
        &self,
        mut stream: Streaming<ImportRequest>,
        progress: &mut ImportProgress,
    ) -> Result<(), Status> {
        while let Some(chunk) = stream.message().await? {
            let valid = progress.take_chunk(chunk.users, parse_user);
            if valid.is_empty() {
                continue;
            }
            let outcomes = self.write_users(valid).await?;
            progress.applied(&outcomes);
        }
        Ok(())
    }

    async fn write_users(&self, users: Vec<User>) -> Result<Vec<Upserted>, Status> {
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || writes::write_users(&state, &users))
            .await?
            .map_err(admin_status)
    }
}

/// Errors of the Admin service, as statuses.
fn admin_status(e: ServerError) -> Status {
    match e {
        ServerError::Starting | ServerError::ShuttingDown => Status::unavailable(e.to_string()),
        ServerError::RotationInProgress | ServerError::ReplicasNotReady { .. } => {
            Status::failed_precondition(e.to_string())
        }
        ServerError::CorruptChange { .. } => {
            tracing::error!(error = %e, "the change log is damaged");
            Status::data_loss(e.to_string())
        }
        // The operator's own files: the message names the file and the fix.
        ServerError::KeyFile { .. }
        | ServerError::AnnouncedKeyFile { .. }
        | ServerError::Io { .. } => {
            tracing::error!(error = %e, "a key file operation failed");
            Status::unavailable(e.to_string())
        }
        other => store_status(other),
    }
}

/// Log a store failure (without user data) and turn it into UNAVAILABLE.
fn store_status(e: ServerError) -> Status {
    tracing::error!(error = %e, "registry operation failed");
    Status::unavailable("the registry is unavailable: this change was not applied, retry later")
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let user = request
            .into_inner()
            .user
            .ok_or_else(|| Status::invalid_argument("user is missing"))?;
        let user = parse_user(user).map_err(Status::invalid_argument)?;
        let outcome = self.write_users(vec![user]).await?;
        Ok(Response::new(RegisterResponse {
            created: outcome.first() == Some(&Upserted::Created),
        }))
    }

    async fn unregister(
        &self,
        request: Request<UnregisterRequest>,
    ) -> Result<Response<UnregisterResponse>, Status> {
        let number = parse_number(&request.into_inner().e164).map_err(Status::invalid_argument)?;
        let state = Arc::clone(&self.state);
        let existed = on_blocking_pool(move || writes::unregister(&state, &number))
            .await?
            .map_err(admin_status)?;
        Ok(Response::new(UnregisterResponse { existed }))
    }

    async fn set_discoverable(
        &self,
        request: Request<SetDiscoverableRequest>,
    ) -> Result<Response<SetDiscoverableResponse>, Status> {
        let req = request.into_inner();
        let number = parse_number(&req.e164).map_err(Status::invalid_argument)?;
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || writes::set_discoverable(&state, &number, req.discoverable))
            .await?
            .map_err(admin_status)?
            .ok_or_else(|| Status::not_found("that number is not registered: register it first"))?;
        Ok(Response::new(SetDiscoverableResponse {}))
    }

    async fn set_discoverability(
        &self,
        request: Request<SetDiscoverabilityRequest>,
    ) -> Result<Response<SetDiscoverabilityResponse>, Status> {
        use cds_core::contacts_only::Discoverability as Mode;
        use cds_proto::v1::Discoverability as Wire;
        let req = request.into_inner();
        let number = parse_number(&req.e164).map_err(Status::invalid_argument)?;
        let mode = match Wire::try_from(req.discoverability) {
            Ok(Wire::Everybody) => Mode::Everybody,
            Ok(Wire::Contacts) => Mode::Contacts,
            Ok(Wire::Nobody) => Mode::Nobody,
            _ => {
                return Err(Status::invalid_argument(
                    "discoverability must be EVERYBODY, CONTACTS or NOBODY",
                ));
            }
        };
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || crate::contacts_only::set_discoverability(&state, &number, mode))
            .await?
            .map_err(admin_status)?
            .ok_or_else(|| Status::not_found("that number is not registered: register it first"))?;
        Ok(Response::new(SetDiscoverabilityResponse {}))
    }

    async fn import(
        &self,
        request: Request<Streaming<ImportRequest>>,
    ) -> Result<Response<ImportResponse>, Status> {
        let mut progress = ImportProgress::new();
        match self
            .import_chunks(request.into_inner(), &mut progress)
            .await
        {
            Ok(()) => Ok(Response::new(progress.finished())),
            Err(status) => {
                progress.failed(&status);
                Err(status)
            }
        }
    }

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsResponse>, Status> {
        let state = Arc::clone(&self.state);
        let registered = on_blocking_pool(move || state.registry.count())
            .await?
            .map_err(store_status)?;
        let s = &self.state;
        let serving = s.serving_or_unavailable()?;
        let m = &s.metrics;
        Ok(Response::new(StatsResponse {
            registered,
            discoverable: serving.table.len() as u64,
            epoch: serving.id,
            bucket_bits: u32::from(serving.table.bits().get()),
            record_bytes: serving.table.record_bytes() as u64,
            table_build_ms: s.table_build_ms.load(Ordering::Relaxed),
            evaluated_elements: m.evaluated_elements.get(),
            evaluation_busy_micros: (m.evaluation_cpu_seconds.get() * 1e6) as u64,
            rotations: m.rotations.get(),
        }))
    }

    async fn rotate_key(
        &self,
        _: Request<RotateKeyRequest>,
    ) -> Result<Response<RotateKeyResponse>, Status> {
        let state = Arc::clone(&self.state);
        // On the blocking pool, where it completes even if the caller
        // goes away.
        let rotated = on_blocking_pool(move || crate::rotation::rotate(&state))
            .await?
            .map_err(admin_status)?;
        Ok(Response::new(RotateKeyResponse {
            retired_epoch: rotated.retired,
            epoch: rotated.epoch,
            records: rotated.records as u64,
            build_ms: rotated.took_ms,
            announced: rotated.announced,
        }))
    }

    async fn announce_next_key(
        &self,
        _: Request<AnnounceNextKeyRequest>,
    ) -> Result<Response<AnnounceNextKeyResponse>, Status> {
        let state = Arc::clone(&self.state);
        let next = on_blocking_pool(move || crate::rotation::announce(&state))
            .await?
            .map_err(admin_status)?;
        Ok(Response::new(AnnounceNextKeyResponse {
            public_key: next.public_key.to_bytes().to_vec().into(),
            epoch: next.epoch,
            created: next.created,
        }))
    }

    async fn profile(
        &self,
        _: Request<ProfileRequest>,
    ) -> Result<Response<ProfileResponse>, Status> {
        self.state.serving_or_unavailable()?;
        let state = Arc::clone(&self.state);
        let keys = on_blocking_pool(move || crate::rotation::profile_keys(&state))
            .await?
            .map_err(admin_status)?;
        let (next_public_key, next_epoch) = match keys.next {
            Some((epoch, key)) => (key.to_bytes().to_vec().into(), epoch),
            None => (Default::default(), 0),
        };
        Ok(Response::new(ProfileResponse {
            suite: wire::SUITE.to_owned(),
            public_key: keys.current.1.to_bytes().to_vec().into(),
            epoch: keys.current.0,
            next_public_key,
            next_epoch,
            bucket_bits: u32::from(keys.bucket_bits.get()),
        }))
    }

    async fn list_changes(
        &self,
        request: Request<ListChangesRequest>,
    ) -> Result<Response<ListChangesResponse>, Status> {
        let req = request.into_inner();
        let limit = match req.limit as usize {
            0 => MAX_CHANGES_PER_PAGE,
            n => n.min(MAX_CHANGES_PER_PAGE),
        };
        let state = Arc::clone(&self.state);
        let page = on_blocking_pool(move || state.registry.changes_after(req.after, limit))
            .await?
            .map_err(admin_status)?;
        Ok(Response::new(ListChangesResponse {
            changes: page.changes.into_iter().map(change_message).collect(),
            next_seq: page.next_seq,
            oldest_retained: page.oldest_retained,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_number_message_does_not_echo_the_input() {
        let err = parse_number("+1 415 SECRET").expect_err("invalid");
        assert!(!err.contains("SECRET"));
    }

    #[test]
    fn oversized_label_is_refused() {
        let u = cds_proto::v1::User {
            e164: "+14155550132".into(),
            label: vec![0u8; 65].into(),
            discoverable: true,
        };
        assert!(parse_user(u).is_err());
    }
}
