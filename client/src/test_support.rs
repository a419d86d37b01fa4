//! Values the unit tests of several modules share.

use bytes::Bytes;
use cds_core::{BucketBits, KeyPair, Label, Output, RecordKeys};
use cds_proto::wire;
use cds_server::ServingEpoch;
use cds_server::table::RecordTable;

use crate::session::ServerParams;

/// A server epoch (id 7, 4 empty buckets) and the client's view of it.
pub(crate) fn server_and_params() -> (ServingEpoch, ServerParams) {
    let bits = BucketBits::new(2).expect("valid");
    let server = ServingEpoch::new(
        7,
        KeyPair::generate(&mut rand::rng()),
        RecordTable::new(bits),
    );
    let params = ServerParams {
        epoch: 7,
        public_key: *server.oprf().public_key(),
        bucket_bits: bits,
        max_elements_per_request: 10,
        bucket_scheme: wire::BUCKET_SCHEME_TAG,
    };
    (server, params)
}

/// Two well-formed sealed records, packed as a bucket holds them.
pub(crate) fn sealed_records() -> Bytes {
    let keys = RecordKeys::derive(&Output::from_bytes([3; 64]));
    let label = Label::new(b"label".to_vec()).expect("short");
    let other = RecordKeys::derive(&Output::from_bytes([4; 64]));
    let mut packed = keys.seal(&label).as_bytes().to_vec();
    packed.extend_from_slice(other.seal(&label).as_bytes());
    packed.into()
}
