//! The Admin service: how the messenger backend changes the registry.
//!
//! Every change is written to the registry first and applied to the record
//! table second, under one lock, so a Discover that starts after a change
//! has returned sees it. Invalid input is refused before anything is written.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use cds_core::{E164, Label};
use cds_proto::v1::admin_server::Admin;
use cds_proto::v1::{
    ImportRequest, ImportResponse, ListChangesRequest, ListChangesResponse, RegisterRequest,
    RegisterResponse, RegistryChange, RotateKeyRequest, RotateKeyResponse, RowError,
    SetDiscoverableRequest, SetDiscoverableResponse, StatsRequest, StatsResponse,
    UnregisterRequest, UnregisterResponse, registry_change,
};
use rayon::prelude::*;
use tonic::{Request, Response, Status, Streaming};

use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::registry::{LoggedChange, Upserted, User, UserChange};
use crate::state::{State, observed, on_blocking_pool, store_status};

/// At most this many row errors are reported back from one import.
pub const MAX_REPORTED_ROW_ERRORS: usize = 1000;

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

/// Write `users` to the registry, then bring the table in line, under the
/// write lock. Blocking: runs on the blocking pool, where it completes even
/// if the caller goes away, so the registry and the table never disagree
/// and writes land in order.
fn write_users(state: &State, users: &[User]) -> Result<Vec<Upserted>, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = serving(state)?;
    let outcomes = state.registry.upsert(users)?;
    // Noted as soon as the registry has them, for a rotation in progress.
    state.note_changed(users.iter().map(|u| u.number.clone()));
    let changes = users
        .par_iter()
        .map(|u| serving.table.change_for(&serving.oprf, u))
        .collect();
    serving.table.apply_changes(changes);
    Ok(outcomes)
}

/// The serving epoch, for a writer holding the write lock. The first table
/// build holds that lock until it is done, so this fails only if the
/// server never finished starting.
fn serving(state: &State) -> Result<Arc<ServingEpoch>, ServerError> {
    state.serving().ok_or(ServerError::Starting)
}

/// Unregister `number` and drop its record (see [`write_users`]).
fn unregister(state: &State, number: &E164) -> Result<bool, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = serving(state)?;
    let existed = state.registry.remove(number)?;
    if existed {
        state.note_changed([number.clone()]);
        serving
            .table
            .apply_changes(vec![serving.table.removal_for(&serving.oprf, number)]);
    }
    Ok(existed)
}

/// Change discoverability (see [`write_users`]); `None` if not registered.
fn set_discoverable(
    state: &State,
    number: &E164,
    discoverable: bool,
) -> Result<Option<()>, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = serving(state)?;
    let Some(user) = state.registry.set_discoverable(number, discoverable)? else {
        return Ok(None);
    };
    state.note_changed([user.number.clone()]);
    serving.table.apply(&serving.oprf, &user);
    Ok(Some(()))
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
    async fn write_users(&self, users: Vec<User>) -> Result<Vec<Upserted>, Status> {
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || write_users(&state, &users))
            .await?
            .map_err(admin_status)
    }
}

/// Errors of the Admin service, as statuses.
fn admin_status(e: ServerError) -> Status {
    match e {
        ServerError::Starting | ServerError::ShuttingDown => Status::unavailable(e.to_string()),
        ServerError::RotationInProgress => Status::failed_precondition(e.to_string()),
        ServerError::CorruptChange { .. } => {
            tracing::error!(error = %e, "the change log is damaged");
            Status::data_loss(e.to_string())
        }
        other => store_status(other),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        observed(&self.state, "Register", self.register_inner(request)).await
    }

    async fn unregister(
        &self,
        request: Request<UnregisterRequest>,
    ) -> Result<Response<UnregisterResponse>, Status> {
        observed(&self.state, "Unregister", self.unregister_inner(request)).await
    }

    async fn set_discoverable(
        &self,
        request: Request<SetDiscoverableRequest>,
    ) -> Result<Response<SetDiscoverableResponse>, Status> {
        observed(
            &self.state,
            "SetDiscoverable",
            self.set_discoverable_inner(request),
        )
        .await
    }

    async fn import(
        &self,
        request: Request<Streaming<ImportRequest>>,
    ) -> Result<Response<ImportResponse>, Status> {
        observed(&self.state, "Import", self.import_inner(request)).await
    }

    async fn stats(
        &self,
        request: Request<StatsRequest>,
    ) -> Result<Response<StatsResponse>, Status> {
        observed(&self.state, "Stats", self.stats_inner(request)).await
    }

    async fn rotate_key(
        &self,
        _: Request<RotateKeyRequest>,
    ) -> Result<Response<RotateKeyResponse>, Status> {
        observed(&self.state, "RotateKey", async {
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
            }))
        })
        .await
    }

    async fn list_changes(
        &self,
        request: Request<ListChangesRequest>,
    ) -> Result<Response<ListChangesResponse>, Status> {
        observed(&self.state, "ListChanges", async {
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
        })
        .await
    }
}

impl AdminService {
    async fn register_inner(
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

    async fn unregister_inner(
        &self,
        request: Request<UnregisterRequest>,
    ) -> Result<Response<UnregisterResponse>, Status> {
        let number = parse_number(&request.into_inner().e164).map_err(Status::invalid_argument)?;
        let state = Arc::clone(&self.state);
        let existed = on_blocking_pool(move || unregister(&state, &number))
            .await?
            .map_err(admin_status)?;
        Ok(Response::new(UnregisterResponse { existed }))
    }

    async fn set_discoverable_inner(
        &self,
        request: Request<SetDiscoverableRequest>,
    ) -> Result<Response<SetDiscoverableResponse>, Status> {
        let req = request.into_inner();
        let number = parse_number(&req.e164).map_err(Status::invalid_argument)?;
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || set_discoverable(&state, &number, req.discoverable))
            .await?
            .map_err(admin_status)?
            .ok_or_else(|| Status::not_found("that number is not registered: register it first"))?;
        Ok(Response::new(SetDiscoverableResponse {}))
    }

    async fn import_inner(
        &self,
        request: Request<Streaming<ImportRequest>>,
    ) -> Result<Response<ImportResponse>, Status> {
        let mut stream = request.into_inner();
        let mut summary = ImportResponse::default();
        while let Some(chunk) = stream.message().await? {
            let mut valid = Vec::with_capacity(chunk.users.len());
            for u in chunk.users {
                let row = summary.received;
                summary.received += 1;
                match parse_user(u) {
                    Ok(user) => valid.push(user),
                    Err(reason) => {
                        summary.rejected += 1;
                        if summary.errors.len() < MAX_REPORTED_ROW_ERRORS {
                            summary.errors.push(RowError {
                                row,
                                reason: reason.to_owned(),
                            });
                        }
                    }
                }
            }
            if valid.is_empty() {
                continue;
            }
            for outcome in self.write_users(valid).await? {
                match outcome {
                    Upserted::Created => summary.created += 1,
                    Upserted::Updated => summary.updated += 1,
                }
            }
        }
        tracing::info!(
            received = summary.received,
            created = summary.created,
            updated = summary.updated,
            rejected = summary.rejected,
            "import finished"
        );
        Ok(Response::new(summary))
    }

    async fn stats_inner(
        &self,
        _: Request<StatsRequest>,
    ) -> Result<Response<StatsResponse>, Status> {
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
