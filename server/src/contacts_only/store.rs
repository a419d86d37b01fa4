//! The stored allow-lists, in the registry file: table `contacts_only_v1`,
//! number digits → `0x02 || issued_at (BE64) || packed records` (record
//! format 2, `docs/protocol.md` §5). An entry of version `0x01` holds
//! records of format 1, which no client of this version can open: it reads
//! as the same number's entry with its `issued_at` and no records, so the
//! number stays contacts-only, replays stay refused, and its pair records
//! come back when the upgraded app uploads again. A number
//! has an entry exactly while its discoverability is contacts-only (an
//! entry with `issued_at = 0` and no records until its app uploads).

use cds_core::E164;
use cds_core::contacts_only::AllowList;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::ServerError;

const LISTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("contacts_only_v1");
const VERSION: u8 = 2;
/// Entries whose records are of record format 1.
const FORMAT_1_VERSION: u8 = 1;

/// One number's stored allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredList {
    /// When the app made the upload (Unix milliseconds, its clock); 0 before
    /// the first upload.
    pub issued_at: u64,
    /// The pair records.
    pub records: AllowList,
}

impl StoredList {
    /// No upload yet.
    pub fn empty() -> Self {
        Self {
            issued_at: 0,
            records: AllowList::decode(&[]).expect("the empty list is valid"),
        }
    }

    /// The stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(9 + self.records.as_bytes().len());
        v.push(VERSION);
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(self.records.as_bytes());
        v
    }

    /// Parse the stored encoding; `None` if it is not one.
    pub fn decode(value: &[u8]) -> Option<Self> {
        let (&version, rest) = value.split_first()?;
        if !(version == VERSION || version == FORMAT_1_VERSION) || rest.len() < 8 {
            return None;
        }
        let issued_at = u64::from_be_bytes(rest[..8].try_into().ok()?);
        let records = if version == VERSION {
            AllowList::decode(&rest[8..]).ok()?
        } else {
            Self::empty().records
        };
        Some(Self { issued_at, records })
    }
}

/// Create the table (at start, so readers never miss it).
pub(crate) fn create(db: &Database) -> Result<(), ServerError> {
    let txn = db.begin_write()?;
    txn.open_table(LISTS)?;
    txn.commit()?;
    Ok(())
}

/// `number`'s entry, if it is contacts-only.
pub(crate) fn get(db: &Database, number: &E164) -> Result<Option<StoredList>, ServerError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LISTS)?;
    Ok(table
        .get(number.to_u64())?
        .and_then(|v| StoredList::decode(v.value())))
}

/// Which of `numbers` have an entry (one read transaction).
pub(crate) fn present<'a>(
    db: &Database,
    numbers: impl IntoIterator<Item = &'a E164>,
) -> Result<Vec<E164>, ServerError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LISTS)?;
    let mut out = Vec::new();
    for n in numbers {
        if table.get(n.to_u64())?.is_some() {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// Store `list` as `number`'s entry.
pub(crate) fn put(db: &Database, number: &E164, list: &StoredList) -> Result<(), ServerError> {
    let txn = db.begin_write()?;
    txn.open_table(LISTS)?
        .insert(number.to_u64(), list.encode().as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Delete `number`'s entry; returns what it held.
pub(crate) fn remove(db: &Database, number: &E164) -> Result<Option<StoredList>, ServerError> {
    let txn = db.begin_write()?;
    let old = txn
        .open_table(LISTS)?
        .remove(number.to_u64())?
        .and_then(|v| StoredList::decode(v.value()));
    txn.commit()?;
    Ok(old)
}

/// Every entry (unreadable ones are skipped and counted in a warning).
pub(crate) fn all(db: &Database) -> Result<Vec<(E164, StoredList)>, ServerError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LISTS)?;
    let mut out = Vec::new();
    let mut unreadable = 0u64;
    for entry in table.iter()? {
        let (k, v) = entry?;
        match (E164::from_u64(k.value()), StoredList::decode(v.value())) {
            (Ok(n), Some(l)) => out.push((n, l)),
            _ => unreadable += 1,
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "stored allow-lists could not be decoded and were skipped"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_survive_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = E164::parse("+14155550132").expect("valid");
        {
            let db = Database::create(dir.path().join("r.redb")).expect("creates");
            create(&db).expect("table");
            put(&db, &n, &StoredList::empty()).expect("writes");
        }
        let db = Database::create(dir.path().join("r.redb")).expect("reopens");
        assert_eq!(get(&db, &n).expect("reads"), Some(StoredList::empty()));
        assert_eq!(all(&db).expect("reads").len(), 1);
        assert_eq!(remove(&db, &n).expect("removes"), Some(StoredList::empty()));
        assert_eq!(get(&db, &n).expect("reads"), None);
    }

    proptest! {
        #[test]
        fn stored_lists_decode_to_themselves_or_are_refused(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(list) = StoredList::decode(&value) {
                if value[0] == VERSION {
                    prop_assert_eq!(list.encode(), value);
                } else {
                    // Format 1 records are dropped, the rest is kept.
                    prop_assert_eq!(value[0], FORMAT_1_VERSION);
                    prop_assert_eq!(&list.encode()[1..9], &value[1..9]);
                    prop_assert!(list.records.is_empty());
                }
            }
        }

        #[test]
        fn a_format_1_entry_keeps_its_issued_at_and_drops_its_records(issued_at in any::<u64>(), records in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut value = vec![FORMAT_1_VERSION];
            value.extend_from_slice(&issued_at.to_be_bytes());
            value.extend_from_slice(&records);
            let list = StoredList::decode(&value).expect("a format 1 entry reads");
            prop_assert_eq!(list, StoredList { issued_at, ..StoredList::empty() });
        }

        #[test]
        fn empty_lists_round_trip(issued_at in any::<u64>()) {
            let list = StoredList { issued_at, ..StoredList::empty() };
            prop_assert_eq!(StoredList::decode(&list.encode()), Some(list));
        }
    }
}
