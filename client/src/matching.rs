//! Local matching: find each contact's record by its match tag and open it.
//!
//! A record under a contact's tag that does not open is "not registered"
//! for that contact, exactly like no record: the server (which holds the
//! key) can seal a record under any number's tag, and if a failed open
//! behaved differently it would learn, from the app's reaction, whether an
//! address book holds that number. Count such records ([`Lookup::Unopenable`]),
//! never report which contact they were for.
//!
//! Match tags are 8 bytes, so two records may share one (about `n² / 2^65`
//! pairs among `n` records): the index keeps every record under a tag, and
//! a lookup tries each until one opens. A record of another number fails to
//! open, so a shared tag costs one more AES-SIV check and never a wrong label.

use std::collections::HashMap;

use bytes::Bytes;
use cds_core::{Label, MatchTag, Output, RecordKeys, RecordRef};

use crate::error::ClientError;

/// Where a record lies: buffer index, byte range.
type Slot = (usize, usize, usize);

/// Every fetched record, indexed by match tag.
#[derive(Debug, Default)]
pub struct RecordIndex {
    buffers: Vec<Bytes>,
    /// Tag → the first record under it.
    by_tag: HashMap<MatchTag, Slot>,
    /// Tag → the further records under it (rare: tags that collide, or
    /// records a server added under a tag).
    more: HashMap<MatchTag, Vec<Slot>>,
    count: usize,
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
            let slot = (idx, start, end);
            match self.by_tag.entry(r.tag()) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(slot);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.more.entry(r.tag()).or_default().push(slot);
                }
            }
            self.count += 1;
            start = end;
        }
        self.buffers.push(packed);
        Ok(())
    }

    /// How many records are indexed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    /// What the records say about the number behind `output`.
    pub fn lookup(&self, output: &Output) -> Lookup {
        self.lookup_keys(&RecordKeys::derive(output))
    }

    /// What the records say under `keys` (a normal or a pair record's).
    pub fn lookup_keys(&self, keys: &RecordKeys) -> Lookup {
        let Some(first) = self.by_tag.get(keys.tag()) else {
            return Lookup::NotFound;
        };
        let more = self.more.get(keys.tag()).map_or(&[][..], Vec::as_slice);
        open_first(
            keys,
            std::iter::once(first)
                .chain(more)
                .filter_map(|&(buf, start, end)| {
                    RecordRef::decode_packed(&self.buffers[buf][start..end])
                        .ok()
                        .and_then(|mut v| v.pop())
                }),
        )
    }
}

/// The first of `candidates` (the records under `keys`' tag) that opens
/// with `keys`: [`Lookup::NotFound`] when there is none,
/// [`Lookup::Unopenable`] when none opens.
pub(crate) fn open_first<'a>(
    keys: &RecordKeys,
    candidates: impl IntoIterator<Item = RecordRef<'a>>,
) -> Lookup {
    let mut any = false;
    for record in candidates {
        any = true;
        if let Ok(label) = keys.open(record) {
            return Lookup::Registered(label);
        }
    }
    if any {
        Lookup::Unopenable
    } else {
        Lookup::NotFound
    }
}

/// Where a discovery looks its contacts up: the records fetched by this
/// call ([`RecordIndex`]), or in sync mode the copy of every record
/// ([`crate::RecordCopy`]), which is its own index.
pub(crate) trait FindRecord {
    /// What the records say under `keys`.
    fn find(&self, keys: &RecordKeys) -> Lookup;
}

impl FindRecord for RecordIndex {
    fn find(&self, keys: &RecordKeys) -> Lookup {
        self.lookup_keys(keys)
    }
}

impl FindRecord for crate::sync::RecordCopy {
    fn find(&self, keys: &RecordKeys) -> Lookup {
        self.lookup_keys(keys)
    }
}

/// What [`RecordIndex::lookup`] found for one number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A record under the number's tag opened: a discoverable user, with
    /// this label.
    Registered(Label),
    /// No record under the number's tag: not registered, or not
    /// discoverable.
    NotFound,
    /// A record under the number's tag does not open: the server sent a
    /// corrupt or forged record. Treat the number as not registered, and
    /// at most count such records: acting on it for this number (an
    /// error, a retry, a message naming it) would tell the server that the
    /// address book holds it.
    Unopenable,
}

impl Lookup {
    /// The label, if the record opened; `None` for not found and for a
    /// record that does not open alike.
    pub fn label(self) -> Option<Label> {
        match self {
            Lookup::Registered(label) => Some(label),
            Lookup::NotFound | Lookup::Unopenable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{BucketSelection, ServerParams, prepare};
    use cds_core::{E164, MatchTag};
    use cds_proto::v1::DiscoverResponse;

    use cds_server::ServingEpoch;
    use cds_server::discovery::{DiscoverLimits, answer};
    use cds_server::registry::User;
    use cds_server::table::tag_of;

    const ALICE: &str = "+12015550123";
    const BOB: &str = "+4915123456789";

    fn number(n: &str) -> E164 {
        E164::parse(n).expect("valid")
    }

    /// A server whose table holds alice (discoverable), and the client's
    /// view of it. Bob is not registered.
    fn setup() -> (ServingEpoch, ServerParams) {
        let (server, params) = crate::test_support::server_and_params();
        server.table().apply(
            server.oprf(),
            &User {
                number: number(ALICE),
                label: Label::new(b"alice".to_vec()).expect("short"),
                discoverable: true,
            },
        );
        (server, params)
    }

    /// A record under `tag` that no key opens: what a key holder can plant
    /// for any number, without knowing any label.
    fn forged_record(tag: &MatchTag) -> Vec<u8> {
        let mut record = tag.as_bytes().to_vec();
        record.push(5); // label length
        record.extend_from_slice(&[0xab; 16 + 5]); // synthetic IV and ciphertext
        record
    }

    /// Look `numbers` up through the real request core: prepare, let the
    /// server answer, apply `tamper` to the answer, verify, match.
    fn discover(
        server: &ServingEpoch,
        params: &ServerParams,
        numbers: &[&str],
        tamper: impl FnOnce(&mut DiscoverResponse),
    ) -> Vec<Lookup> {
        let numbers: Vec<E164> = numbers.iter().map(|n| number(n)).collect();
        let p = prepare(
            numbers.clone(),
            params,
            BucketSelection::All,
            &mut rand::rng(),
        )
        .expect("prepares");
        let limits = DiscoverLimits {
            max_elements: 10,
            max_response_bytes: 1 << 20,
        };
        let mut response =
            answer(server, p.message, &limits, &mut rand::rng()).expect("a valid request");
        tamper(&mut response);
        let result = p.state.finish(response).expect("the proof verifies");
        let mut index = RecordIndex::new();
        for (_, packed) in result.records {
            index.add(packed).expect("well-formed records");
        }
        result
            .outputs
            .iter()
            .map(|(_, output)| index.lookup(output))
            .collect()
    }

    #[test]
    fn records_that_share_a_tag_each_open_for_their_own_keys_only() {
        let tag = [9; cds_core::TAG_LEN];
        let keys = |k: u8| cds_core::dangerous::record_keys_from_parts(tag, [k; 64]);
        let label = |l: &[u8]| Label::new(l.to_vec()).expect("short");
        let mut packed = keys(1).seal(&label(b"one")).as_bytes().to_vec();
        packed.extend_from_slice(keys(2).seal(&label(b"two")).as_bytes());
        let mut index = RecordIndex::new();
        index.add(packed.into()).expect("well-formed");
        assert_eq!(index.len(), 2);
        assert_eq!(
            index.lookup_keys(&keys(1)),
            Lookup::Registered(label(b"one"))
        );
        assert_eq!(
            index.lookup_keys(&keys(2)),
            Lookup::Registered(label(b"two"))
        );
        assert_eq!(index.lookup_keys(&keys(3)), Lookup::Unopenable);
    }

    #[test]
    fn an_honest_table_yields_registered_and_not_found() {
        let (server, params) = setup();
        let found = discover(&server, &params, &[ALICE, BOB], |_| {});
        assert_eq!(
            found,
            [
                Lookup::Registered(Label::new(b"alice".to_vec()).expect("short")),
                Lookup::NotFound
            ]
        );
    }

    #[test]
    fn a_forged_record_under_a_contacts_tag_reads_as_not_registered() {
        let (server, params) = setup();
        // The key holder computes bob's tag and plants a record under it.
        let tag = tag_of(server.oprf(), &number(BOB));
        let bucket = params.bucket_bits.bucket_of(&tag);
        let found = discover(&server, &params, &[ALICE, BOB], |r| {
            let b = r
                .buckets
                .iter_mut()
                .find(|b| b.bucket == bucket)
                .expect("every bucket is there");
            let mut records = b.records.to_vec();
            records.extend_from_slice(&forged_record(&tag));
            b.records = records.into();
        });
        assert_eq!(found[1], Lookup::Unopenable);
        assert_eq!(found[1].clone().label(), None, "the same as no record");
        assert!(matches!(found[0], Lookup::Registered(_)));
    }

    #[test]
    fn a_tampered_record_of_a_registered_contact_reads_as_not_registered() {
        let (server, params) = setup();
        let bucket = params
            .bucket_bits
            .bucket_of(&tag_of(server.oprf(), &number(ALICE)));
        let found = discover(&server, &params, &[ALICE, BOB], |r| {
            // Alice's record is the only one in her bucket.
            let b = &mut r.buckets[bucket as usize];
            let mut records = b.records.to_vec();
            let last = records.len() - 1;
            records[last] ^= 1; // one bit of alice's ciphertext
            b.records = records.into();
        });
        assert_eq!(found, [Lookup::Unopenable, Lookup::NotFound]);
    }
}
