//! The Discovery service, in two layers.
//!
//! - Without I/O ([`DiscoverPlan`], [`answer`]): a `DiscoverRequest` is
//!   parsed and checked against the serving epoch, its response laid out and
//!   sized, and its elements evaluated and proven. Nothing here knows about
//!   tonic, accounts, quotas or load; the client's tests drive it as their
//!   server.
//! - The handlers (`service`): peer rate, credential, account budget,
//!   response memory and the evaluation gate around that core, and the
//!   mapping of its errors to gRPC statuses.
//! - The encoding of every bucket that all `all` responses of one table
//!   version share (`shared`), and the hand-written gRPC route (`route`)
//!   that sends it without copying.

mod evaluate;
mod plan;
mod route;
mod service;
mod shared;
pub mod sync;

use std::time::Duration;

use cds_proto::v1::{DiscoverRequest, DiscoverResponse};
use rand::CryptoRng;

pub use evaluate::evaluate;
pub use plan::{DiscoverError, DiscoverLimits, DiscoverPlan};
pub(crate) use route::DiscoveryRoutes;
pub(crate) use service::DiscoveryService;
pub(crate) use shared::AllBucketsCache;

use crate::epoch::ServingEpoch;

/// Answer `request` as the server would, minus authentication, budgets and
/// load shedding: parse and check it against `epoch` and `limits`, evaluate
/// its elements with a batched proof, and attach the requested buckets.
pub fn answer<R: CryptoRng + ?Sized>(
    epoch: &ServingEpoch,
    request: DiscoverRequest,
    limits: &DiscoverLimits,
    rng: &mut R,
) -> Result<DiscoverResponse, DiscoverError> {
    DiscoverPlan::new(request, epoch, limits)?.answer(epoch, rng, &|_: Duration| {})
}
