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
    ImportRequest, ImportResponse, RegisterRequest, RegisterResponse, RowError,
    SetDiscoverableRequest, SetDiscoverableResponse, StatsRequest, StatsResponse,
    UnregisterRequest, UnregisterResponse,
};
use rayon::prelude::*;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ServerError;
use crate::registry::{Upserted, User};
use crate::state::{State, on_blocking_pool, store_status};

/// At most this many row errors are reported back from one import.
pub const MAX_REPORTED_ROW_ERRORS: usize = 1000;

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
    let outcomes = state.registry.upsert(users)?;
    let changes = users
        .par_iter()
        .map(|u| state.table.change_for(&state.oprf, u))
        .collect();
    state.table.apply_changes(changes);
    Ok(outcomes)
}

/// Unregister `number` and drop its record (see [`write_users`]).
fn unregister(state: &State, number: &E164) -> Result<bool, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let existed = state.registry.remove(number)?;
    if existed {
        state
            .table
            .apply_changes(vec![state.table.removal_for(&state.oprf, number)]);
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
    let Some(user) = state.registry.set_discoverable(number, discoverable)? else {
        return Ok(None);
    };
    state.table.apply(&state.oprf, &user);
    Ok(Some(()))
}

impl AdminService {
    async fn write_users(&self, users: Vec<User>) -> Result<Vec<Upserted>, Status> {
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || write_users(&state, &users))
            .await?
            .map_err(store_status)
    }
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
        let existed = on_blocking_pool(move || unregister(&state, &number))
            .await?
            .map_err(store_status)?;
        Ok(Response::new(UnregisterResponse { existed }))
    }

    async fn set_discoverable(
        &self,
        request: Request<SetDiscoverableRequest>,
    ) -> Result<Response<SetDiscoverableResponse>, Status> {
        let req = request.into_inner();
        let number = parse_number(&req.e164).map_err(Status::invalid_argument)?;
        let state = Arc::clone(&self.state);
        on_blocking_pool(move || set_discoverable(&state, &number, req.discoverable))
            .await?
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found("that number is not registered: register it first"))?;
        Ok(Response::new(SetDiscoverableResponse {}))
    }

    async fn import(
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

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsResponse>, Status> {
        let state = Arc::clone(&self.state);
        let registered = on_blocking_pool(move || state.registry.count())
            .await?
            .map_err(store_status)?;
        let s = &self.state;
        Ok(Response::new(StatsResponse {
            registered,
            discoverable: s.table.len() as u64,
            epoch: s.epoch.id,
            bucket_bits: u32::from(s.table.bits().get()),
            record_bytes: s.table.record_bytes() as u64,
            table_build_ms: s.table_build_ms,
            evaluated_elements: s.counters.evaluated_elements.load(Ordering::Relaxed),
            evaluation_busy_micros: s.counters.evaluation_busy_ns.load(Ordering::Relaxed) / 1_000,
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
