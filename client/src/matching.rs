//! Local matching: find each contact's record by its match tag and open it.

use std::collections::HashMap;

use bytes::Bytes;
use cds_core::{Label, MatchTag, Output, RecordKeys, RecordRef};

use crate::error::ClientError;

/// Every fetched record, indexed by match tag.
#[derive(Debug, Default)]
pub struct RecordIndex {
    buffers: Vec<Bytes>,
    /// Tag → (buffer index, byte range of the record).
    by_tag: HashMap<MatchTag, (usize, usize, usize)>,
}

impl RecordIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a packed record list.
    pub fn add(&mut self, packed: Bytes) -> Result<(), ClientError> {
        let idx = self.buffers.len();
        let records = RecordRef::decode_packed(&packed)
            .map_err(|_| ClientError::MalformedResponse("a record list is malformed"))?;
        // Records lie back to back, so their offsets are running sums.
        let mut start = 0;
        for r in records {
            let end = start + r.as_bytes().len();
            self.by_tag.insert(r.tag(), (idx, start, end));
            start = end;
        }
        self.buffers.push(packed);
        Ok(())
    }

    /// How many records are indexed.
    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    /// The label of the user behind `output`, if that user is discoverable.
    pub fn lookup(&self, output: &Output) -> Result<Option<Label>, ClientError> {
        let keys = RecordKeys::derive(output);
        let Some(&(buf, start, end)) = self.by_tag.get(keys.tag()) else {
            return Ok(None);
        };
        let bytes = &self.buffers[buf][start..end];
        let record = RecordRef::decode_packed(bytes)
            .ok()
            .and_then(|mut v| v.pop())
            .ok_or(ClientError::RecordOpen)?;
        keys.open(record)
            .map(Some)
            .map_err(|_| ClientError::RecordOpen)
    }
}
