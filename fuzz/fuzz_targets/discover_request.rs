//! A Discover request from any client, through the server's request core
//! (`DiscoverPlan`, then evaluation and proof): refused or answered, never
//! a panic, and an answer is as large as the plan said.
#![no_main]

use std::sync::LazyLock;

use cds_proto::v1::DiscoverRequest;
use cds_server::ServingEpoch;
use cds_server::discovery::DiscoverPlan;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;

static EPOCH: LazyLock<ServingEpoch> = LazyLock::new(cds_fuzz::serving_epoch);

fuzz_target!(|data: &[u8]| {
    let Ok(request) = DiscoverRequest::decode(data) else {
        return;
    };
    let limits = cds_fuzz::LIMITS;
    let Ok(plan) = DiscoverPlan::new(request, &EPOCH, &limits) else {
        return;
    };
    let elements = plan.elements();
    let buckets = plan.buckets();
    let mut rng = StdRng::seed_from_u64(0);
    let Ok(response) = plan.answer(&EPOCH, &mut rng, &|_| {}) else {
        return;
    };
    assert_eq!(response.epoch, EPOCH.id());
    assert_eq!(
        response.evaluated_elements.len(),
        elements * cds_core::ELEMENT_LEN
    );
    let proof_len = if elements == 0 {
        0
    } else {
        cds_core::PROOF_LEN
    };
    assert_eq!(response.proof.len(), proof_len);
    assert_eq!(response.buckets.len(), buckets);
    // The server's encoder refuses anything larger: a planned response
    // must always fit.
    assert!(response.encoded_len() <= limits.max_response_bytes + cds_fuzz::ENCODING_SLACK);
});
