//! The Discovery handlers: peer rate, credential, account budget, response
//! memory and the evaluation gate around the request core of
//! [`super::plan`]. [`super::route`] serves them over gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cds_core::{AccountId, ELEMENT_LEN, PROOF_LEN};
use cds_proto::v1::{
    Config, DiscoverRequest, DiscoverResponse, GetConfigRequest, SyncRequest, SyncResponse,
    UploadAllowListRequest, UploadAllowListResponse,
};
use cds_proto::wire::{self, Limit};
use prost::Message;
use tonic::{Request, Response, Status};

use super::shared::SharedError;
use super::sync::{SyncError, answer_sync, page_bytes};
use super::{DiscoverError, DiscoverLimits, DiscoverPlan};
use crate::auth::authenticate;
use crate::exec::on_cpu_pool;
use crate::limits::quota::Refusal;
use crate::limits::response_memory::Reservation;
use crate::limits::{limit_status, with_retry_after};
use crate::state::State;

/// The Discovery service's handlers.
#[derive(Debug, Clone)]
pub(crate) struct DiscoveryService {
    pub(crate) state: Arc<State>,
}

/// A served Discover request, to be encoded: the response's own fields
/// (with `ids`, its buckets too), for `all` the shared encoding of every
/// bucket that follows them, and the reservation of the response's own
/// memory, to hold until it is sent.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) response: DiscoverResponse,
    pub(crate) all_buckets: Option<Bytes>,
    pub(crate) reservation: Reservation,
}

impl DiscoveryService {
    pub(crate) async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<Config>, Status> {
        let s = &self.state;
        check_peer_rate(s, &request)?;
        let serving = s.serving_or_unavailable()?;
        Ok(Response::new(Config {
            epoch: serving.id,
            public_key: Bytes::copy_from_slice(serving.oprf.public_key().as_bytes()),
            bucket_bits: u32::from(serving.table.bits().get()),
            max_elements_per_request: s.max_elements(),
            suite: wire::SUITE.to_owned(),
            bucket_scheme: wire::BUCKET_SCHEME_TAG,
            record_format: wire::RECORD_FORMAT,
        }))
    }

    pub(crate) async fn upload_allow_list(
        &self,
        request: Request<UploadAllowListRequest>,
    ) -> Result<Response<UploadAllowListResponse>, Status> {
        let state = Arc::clone(&self.state);
        let account = admit(&state, &request)?;
        let request = request.into_inner();
        let stored = crate::exec::on_blocking_pool(move || {
            crate::contacts_only::upload(&state, &account, request)
        })
        .await??;
        Ok(Response::new(UploadAllowListResponse { stored }))
    }

    /// `SyncRecords`: the peer's rate, the credential, one evaluation of
    /// the account's budget (a flat charge per call, so an account cannot
    /// page through the table for free, while a sync costs a client no more
    /// than one new contact), and the response's memory.
    pub(crate) async fn sync_records(
        &self,
        request: Request<SyncRequest>,
    ) -> Result<Response<SyncResponse>, Status> {
        let state = Arc::clone(&self.state);
        let account = admit(&state, &request)?;
        let serving = state.serving_or_unavailable()?;
        let request = request.into_inner();
        if request.epoch != serving.id {
            return Err(sync_status(
                &state,
                SyncError::WrongEpoch {
                    requested: request.epoch,
                },
            ));
        }
        let admission = state
            .quotas
            .admit_now(&account, SYNC_CHARGE)
            .await
            .map_err(quota_status)?;
        let max = state.config.max_response_bytes;
        let page = page_bytes(max);
        let job_serving = Arc::clone(&serving);
        let response = on_cpu_pool(move || answer_sync(&job_serving, &request, page, max))
            .await?
            .map_err(|e| sync_status(&state, e))?;
        // Built first (a page is at most `page` bytes and a delta at most
        // the change log's bound), then held within the shared response
        // memory until sent, like a Discover response.
        let size = response.encoded_len();
        let reservation = state
            .response_memory
            .try_reserve(size)
            .ok_or_else(|| responses_full(&state))?;
        admission.commit();
        tracing::debug!(
            delta = !response.set_digest.is_empty(),
            restart = response.restart,
            bytes = size,
            "sync served"
        );
        let mut response = Response::new(response);
        // Held until the body is sent (`HoldLayer`).
        response.extensions_mut().insert(reservation);
        Ok(response)
    }

    pub(crate) async fn discover(
        &self,
        request: Request<DiscoverRequest>,
    ) -> Result<Answer, Status> {
        let state = Arc::clone(&self.state);
        let account = admit(&state, &request)?;
        // The whole request is served by this one epoch, even if a rotation
        // switches meanwhile: the serving one, or (replicated keys) the next
        // one once built, or one retired within the grace period.
        let serving = state.epoch_for(request.get_ref().epoch)?;
        let limits = DiscoverLimits {
            max_elements: state.max_elements(),
            max_response_bytes: state.config.max_response_bytes,
        };
        // Everything that can be refused cheaply is refused before any work:
        // the request's shape and response size, the account's budget, the
        // evaluation gate.
        let plan = DiscoverPlan::new(request.into_inner(), &serving, &limits)
            .map_err(|e| discover_status(&state, e))?;
        let n = plan.elements();
        let buckets = plan.buckets();
        let admission = state
            .quotas
            .admit_now(&account, n as u32)
            .await
            .map_err(quota_status)?;
        // Only an admitted request may build a response, and only within
        // the memory all unsent responses share; the reservation is held
        // until the response has been sent (see `HoldLayer`). Refused here,
        // the admission is dropped and charges nothing. An `all` response
        // reserves only its own fields: the encoding of every bucket is
        // shared, and reserved once, below.
        if plan.held_bytes() > state.response_memory.total() {
            return Err(Status::resource_exhausted(format!(
                "the response would hold {} bytes of memory, over this server's max_response_memory of {}: ask for fewer buckets",
                plan.held_bytes(),
                state.response_memory.total()
            )));
        }
        let reservation = state
            .response_memory
            .try_reserve(plan.held_bytes())
            .ok_or_else(|| responses_full(&state))?;
        let all_buckets = if plan.is_all() {
            let encoded = serving
                .all_buckets
                .get(&serving, &state.response_memory)
                .await
                .map_err(|e| shared_status(&state, e))?;
            // The table may have grown since the plan was sized.
            let size = n * ELEMENT_LEN + PROOF_LEN + encoded.len();
            let max = state.config.max_response_bytes;
            if size > max {
                return Err(discover_status(
                    &state,
                    DiscoverError::ResponseTooLarge { size, max },
                ));
            }
            Some(encoded)
        } else {
            None
        };
        let slot = if n == 0 {
            None
        } else {
            Some(state.gate.enter().await.map_err(|_| {
                state.metrics.shed.inc();
                with_retry_after(
                    Status::unavailable("the server is overloaded: retry shortly"),
                    Some(state.gate.retry_after()),
                )
            })?)
        };
        // On the CPU pool: evaluating, and gathering every bucket of a large
        // table, are CPU work. The job owns the gate slot and the charge: if
        // the client goes away, the work still counts against the gate and
        // the account, so cancelling cannot buy free evaluations. Invalid
        // elements are found before anything is evaluated, and refunded.
        let cpu_state = Arc::clone(&state);
        let cpu_serving = Arc::clone(&serving);
        // The job holds the reservation too: a client that goes away does
        // not free its share before the work it covers has ended.
        let job_reservation = reservation.clone();
        let response = on_cpu_pool(move || {
            let _slot = slot;
            let _reservation = job_reservation;
            let metrics = &cpu_state.metrics;
            let busy = &metrics.evaluation_cpu_seconds;
            let result =
                plan.answer_without_all(&cpu_serving, &mut rand::rng(), &|spent: Duration| {
                    busy.inc_by(spent.as_secs_f64());
                });
            if result.is_ok() {
                admission.commit();
                metrics.evaluated_elements.inc_by(n as u64);
            }
            result
        })
        .await?
        .map_err(|e| discover_status(&state, e))?;
        tracing::debug!(elements = n, buckets, "discover served");
        Ok(Answer {
            response,
            all_buckets,
            reservation,
        })
    }
}

/// Shed a request whose response finds no room in the memory all unsent
/// responses share (counted as shed; retry in a second).
fn responses_full(state: &State) -> Status {
    state.metrics.shed.inc();
    with_retry_after(
        Status::unavailable("the server is sending too many large responses: retry shortly"),
        Some(Duration::from_secs(1)),
    )
}

/// The shared encoding could not be had: shed (no memory for it now, or
/// the table changed while it was encoded), or an internal error.
fn shared_status(state: &State, e: SharedError) -> Status {
    match e {
        SharedError::NoMemory => responses_full(state),
        SharedError::TableChanged => discover_status(state, DiscoverError::TableChanged),
        SharedError::Internal(status) => status,
    }
}

/// A refusal of the request core as a status: FAILED_PRECONDITION for
/// another epoch (the client library refreshes its configuration and
/// retries), RESOURCE_EXHAUSTED for a response over the size limit,
/// INVALID_ARGUMENT for the rest.
fn discover_status(state: &State, e: DiscoverError) -> Status {
    match e {
        DiscoverError::WrongEpoch { requested } if state.is_retired(requested) => {
            Status::failed_precondition(format!(
                "key epoch {requested:016x} was retired by a key rotation: fetch the configuration again (GetConfig) and retry"
            ))
        }
        DiscoverError::WrongEpoch { .. } | DiscoverError::RecordFormat { .. } => {
            Status::failed_precondition(e.to_string())
        }
        DiscoverError::ResponseTooLarge { .. } => Status::resource_exhausted(e.to_string()),
        DiscoverError::TableChanged => with_retry_after(
            Status::unavailable(e.to_string()),
            Some(Duration::from_secs(1)),
        ),
        e => Status::invalid_argument(e.to_string()),
    }
}

/// What one `SyncRecords` call costs from the account's budget, in
/// evaluations.
pub(crate) const SYNC_CHARGE: u32 = 1;

/// A refused `SyncRecords` request as a status: FAILED_PRECONDITION for
/// another epoch (as Discover), INVALID_ARGUMENT for a bad cursor.
fn sync_status(state: &State, e: SyncError) -> Status {
    match e {
        SyncError::WrongEpoch { requested } if state.is_retired(requested) => {
            Status::failed_precondition(format!(
                "key epoch {requested:016x} was retired by a key rotation: fetch the configuration again (GetConfig) and download the records again"
            ))
        }
        SyncError::WrongEpoch { .. } => Status::failed_precondition(e.to_string()),
        e => Status::invalid_argument(e.to_string()),
    }
}

/// Admit a request that speaks for an account (Discover, SyncRecords,
/// UploadAllowList): count it against its peer's rate, then check its
/// credential; the account it speaks for.
fn admit<T>(state: &State, request: &Request<T>) -> Result<AccountId, Status> {
    check_peer_rate(state, request)?;
    authenticate(
        &state.verifier,
        state.config.max_credential_lifetime.as_secs(),
        request.metadata(),
    )
}

/// Count the request against its peer's rate (every RPC does).
fn check_peer_rate<T>(state: &State, request: &Request<T>) -> Result<(), Status> {
    let Some(ip) = request.remote_addr().map(|a| a.ip()) else {
        return Ok(());
    };
    state.peers.request(ip, Instant::now()).map_err(|wait| {
        limit_status(
            Limit::PeerRate,
            "too many requests from this address: slow down",
            wait,
        )
    })
}

/// A quota refusal as a status the client can act on.
fn quota_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::TooManyInFlight => limit_status(
            Limit::AccountConcurrency,
            "this account already has the maximum number of discovery requests in flight: wait for them",
            Some(std::time::Duration::from_secs(1)),
        ),
        Refusal::Exhausted(Some(wait)) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            limit_status(
                Limit::AccountBudget,
                format!(
                    "this account's discovery budget is spent: retry in {} s, or look up fewer new numbers",
                    secs.max(1)
                ),
                Some(wait),
            )
        }
        Refusal::Exhausted(None) => limit_status(
            Limit::AccountBudget,
            "this account's discovery budget is spent and does not refill in any useful time",
            None,
        ),
        Refusal::Unavailable(wait) => with_retry_after(
            Status::unavailable(
                "the budget store cannot be reached: nothing was evaluated or charged; retry shortly",
            ),
            Some(wait),
        ),
    }
}
