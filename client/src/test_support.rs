//! Values the unit tests of several modules share.

use bytes::Bytes;
use cds_core::{Label, Output, RecordKeys};

/// Two well-formed sealed records, packed as a bucket holds them.
pub(crate) fn sealed_records() -> Bytes {
    let keys = RecordKeys::derive(&Output::from_bytes([3; 64]));
    let label = Label::new(b"label".to_vec()).expect("short");
    let mut packed = keys.seal(&label, &mut rand::rng()).as_bytes().to_vec();
    packed.extend_from_slice(keys.seal(&label, &mut rand::rng()).as_bytes());
    packed.into()
}
