//! A malicious server's Discover response, processed by the client as
//! `Client::discover` does (`PendingBatch::finish`, then indexing the
//! records and looking up each contact): errors, never a panic. The first
//! byte chooses the client's request (`cds_fuzz::client_request`).
#![no_main]

use cds_client::matching::RecordIndex;
use cds_proto::v1::DiscoverResponse;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(response) = DiscoverResponse::decode(rest) else {
        return;
    };
    let prepared = cds_fuzz::client_request(mode);
    let contacts = prepared.message.blinded_elements.len() / cds_core::ELEMENT_LEN;
    let Ok(result) = prepared.state.finish(response) else {
        return;
    };
    assert_eq!(result.outputs.len(), contacts);
    let mut index = RecordIndex::new();
    for (_, packed) in result.records {
        if index.add(packed).is_err() {
            return;
        }
    }
    for (_, output) in &result.outputs {
        let _ = index.lookup(output);
    }
});
