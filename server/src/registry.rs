//! The persistent registry of users in redb: number, label, discoverable.
//!
//! This is the only place the server keeps phone numbers. Every write also
//! appends to a change log in the same transaction (the Admin API's change
//! feed), which is pruned after a retention period. Every method is
//! blocking (it may wait for the disk); call it from a blocking context.

use std::path::Path;

use cds_core::{E164, Label};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::ServerError;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "registry.redb";

/// Users by the digits of their E.164 number. Value: one flags byte
/// (bit 0 = discoverable) followed by the label.
const USERS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("users_v1");

const DISCOVERABLE: u8 = 0b1;

/// The change log by sequence number. Value: kind byte, unix seconds (u64
/// big-endian), the number's digits (u64 big-endian), then for
/// [`KIND_UPSERTED`] the user's value as in [`USERS`].
const CHANGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("changes_v1");
/// Counters that must survive pruning; `next_change_seq` only grows.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta_v1");
const NEXT_CHANGE_SEQ: &str = "next_change_seq";
const KIND_UPSERTED: u8 = 1;
const KIND_REMOVED: u8 = 2;

/// One change to the registry, as the change feed reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserChange {
    /// Registered, or updated (label or discoverability): the user now.
    Upserted(User),
    /// Unregistered.
    Removed(E164),
}

/// A logged change with its position and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedChange {
    /// Sequence number: strictly increasing, never reused.
    pub seq: u64,
    /// When it was committed, in seconds since the Unix epoch.
    pub at_unix: u64,
    /// What changed.
    pub change: UserChange,
}

/// One page of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePage {
    /// Changes after the requested position, oldest first.
    pub changes: Vec<LoggedChange>,
    /// The sequence number the next change will get.
    pub next_seq: u64,
    /// The oldest change still kept (`next_seq` if none is): a reader whose
    /// position is older than this has missed pruned changes.
    pub oldest_retained: u64,
}

impl LoggedChange {
    fn encode_value(&self) -> Vec<u8> {
        let (kind, number, user) = match &self.change {
            UserChange::Upserted(u) => (KIND_UPSERTED, &u.number, Some(u)),
            UserChange::Removed(n) => (KIND_REMOVED, n, None),
        };
        let mut v = Vec::with_capacity(17 + 65);
        v.push(kind);
        v.extend_from_slice(&self.at_unix.to_be_bytes());
        v.extend_from_slice(&number.to_u64().to_be_bytes());
        if let Some(u) = user {
            v.extend_from_slice(&u.encode_value());
        }
        v
    }

    /// The commit time of an encoded entry, read without decoding the rest.
    fn at_unix_of(value: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(value.get(1..9)?.try_into().ok()?))
    }

    pub(crate) fn decode(seq: u64, value: &[u8]) -> Option<Self> {
        let (&kind, rest) = value.split_first()?;
        let at_unix = Self::at_unix_of(value)?;
        let digits = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
        let rest = &rest[16..];
        let change = match kind {
            KIND_UPSERTED => UserChange::Upserted(User::decode(digits, rest)?),
            KIND_REMOVED if rest.is_empty() => UserChange::Removed(E164::from_u64(digits).ok()?),
            _ => return None,
        };
        Some(Self {
            seq,
            at_unix,
            change,
        })
    }
}

/// Append `changes` to the log inside the caller's write transaction.
fn log_changes(
    txn: &redb::WriteTransaction,
    changes: impl IntoIterator<Item = UserChange>,
) -> Result<(), ServerError> {
    let mut meta = txn.open_table(META)?;
    let mut seq = meta.get(NEXT_CHANGE_SEQ)?.map_or(1, |v| v.value());
    let at_unix = crate::auth::unix_now();
    let mut log = txn.open_table(CHANGES)?;
    for change in changes {
        let entry = LoggedChange {
            seq,
            at_unix,
            change,
        };
        log.insert(seq, entry.encode_value().as_slice())?;
        seq += 1;
    }
    meta.insert(NEXT_CHANGE_SEQ, seq)?;
    Ok(())
}

/// One registered user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user's number.
    pub number: E164,
    /// The backend's opaque label.
    pub label: Label,
    /// Whether other users may find this user.
    pub discoverable: bool,
}

impl User {
    fn encode_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.label.as_bytes().len());
        v.push(if self.discoverable { DISCOVERABLE } else { 0 });
        v.extend_from_slice(self.label.as_bytes());
        v
    }

    pub(crate) fn decode(key: u64, value: &[u8]) -> Option<Self> {
        let (&flags, label) = value.split_first()?;
        Some(Self {
            number: E164::from_u64(key).ok()?,
            label: Label::new(label.to_vec()).ok()?,
            discoverable: flags & DISCOVERABLE != 0,
        })
    }
}

/// What a write did to one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upserted {
    /// The number was not registered before.
    Created,
    /// The number was registered and has been updated.
    Updated,
}

/// The redb-backed registry.
#[derive(Debug)]
pub struct Registry {
    db: Database,
    log_changes: bool,
}

/// Changes deleted per transaction when pruning, so a large prune never
/// holds the writer for long.
const PRUNE_BATCH: usize = 10_000;

impl Registry {
    /// Open (or create) the registry in `dir`, logging every change.
    pub fn open(dir: &Path) -> Result<Self, ServerError> {
        Self::open_with(dir, true)
    }

    /// Open (or create) the registry in `dir`; `log_changes: false` writes
    /// no change log (and [`Registry::changes_after`] sees only what older
    /// runs logged).
    pub fn open_with(dir: &Path, log_changes: bool) -> Result<Self, ServerError> {
        let db = Database::create(dir.join(DB_FILE))?;
        let txn = db.begin_write()?;
        txn.open_table(USERS)?;
        txn.open_table(CHANGES)?;
        txn.open_table(META)?;
        txn.commit()?;
        crate::contacts_only::create_store(&db)?;
        Ok(Self { db, log_changes })
    }

    /// The database, for other tables kept in the same file
    /// (`limits::budget_store`).
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Register or update `users` in one transaction: all land or none do.
    pub fn upsert(&self, users: &[User]) -> Result<Vec<Upserted>, ServerError> {
        let txn = self.db.begin_write()?;
        let mut out = Vec::with_capacity(users.len());
        {
            let mut table = txn.open_table(USERS)?;
            for u in users {
                let previous = table.insert(u.number.to_u64(), u.encode_value().as_slice())?;
                out.push(if previous.is_some() {
                    Upserted::Updated
                } else {
                    Upserted::Created
                });
            }
        }
        if self.log_changes {
            log_changes(&txn, users.iter().cloned().map(UserChange::Upserted))?;
        }
        txn.commit()?;
        Ok(out)
    }

    /// Remove `number`; returns whether it was registered.
    pub fn remove(&self, number: &E164) -> Result<bool, ServerError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(USERS)?.remove(number.to_u64())?.is_some();
        self.commit_if_changed(txn, existed.then(|| UserChange::Removed(number.clone())))?;
        Ok(existed)
    }

    /// Set whether `number` is discoverable; returns the updated user, or
    /// `None` (and changes nothing) if the number is not registered.
    pub fn set_discoverable(
        &self,
        number: &E164,
        discoverable: bool,
    ) -> Result<Option<User>, ServerError> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut table = txn.open_table(USERS)?;
            let current = table
                .get(number.to_u64())?
                .and_then(|v| User::decode(number.to_u64(), v.value()));
            match current {
                Some(mut user) => {
                    user.discoverable = discoverable;
                    table.insert(number.to_u64(), user.encode_value().as_slice())?;
                    Some(user)
                }
                None => None,
            }
        };
        self.commit_if_changed(txn, updated.clone().map(UserChange::Upserted))?;
        Ok(updated)
    }

    /// Log `change` (when the change log is kept) and commit `txn`; with
    /// no change, abort it so that nothing is written.
    fn commit_if_changed(
        &self,
        txn: redb::WriteTransaction,
        change: Option<UserChange>,
    ) -> Result<(), ServerError> {
        match change {
            Some(change) => {
                if self.log_changes {
                    log_changes(&txn, [change])?;
                }
                txn.commit()?;
            }
            None => txn.abort()?,
        }
        Ok(())
    }

    /// The user registered under `number`, if any.
    pub fn get(&self, number: &E164) -> Result<Option<User>, ServerError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        Ok(table
            .get(number.to_u64())?
            .and_then(|v| User::decode(number.to_u64(), v.value())))
    }

    /// Up to `limit` logged changes with a sequence number above `after`.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<ChangePage, ServerError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(CHANGES)?;
        let next_seq = txn
            .open_table(META)?
            .get(NEXT_CHANGE_SEQ)?
            .map_or(1, |v| v.value());
        let oldest_retained = log.first()?.map_or(next_seq, |(k, _)| k.value());
        let mut changes = Vec::with_capacity(limit.min(4096));
        for entry in log.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = entry?;
            // Skipping an entry would let a follower miss a change unknowingly.
            let change = LoggedChange::decode(k.value(), v.value())
                .ok_or(ServerError::CorruptChange { seq: k.value() })?;
            changes.push(change);
        }
        Ok(ChangePage {
            changes,
            next_seq,
            oldest_retained,
        })
    }

    /// Delete logged changes committed before `cutoff_unix`, in batches;
    /// returns how many.
    pub fn prune_changes(&self, cutoff_unix: u64) -> Result<u64, ServerError> {
        let mut pruned = 0;
        loop {
            let batch = self.prune_batch(cutoff_unix)?;
            pruned += batch;
            if batch < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
        }
    }

    fn prune_batch(&self, cutoff_unix: u64) -> Result<u64, ServerError> {
        let txn = self.db.begin_write()?;
        let mut pruned = 0;
        {
            let mut log = txn.open_table(CHANGES)?;
            while pruned < PRUNE_BATCH as u64 {
                let old = match log.first()? {
                    Some((k, v)) => match LoggedChange::at_unix_of(v.value()) {
                        Some(at) if at >= cutoff_unix => None,
                        _ => Some(k.value()),
                    },
                    None => None,
                };
                let Some(seq) = old else { break };
                log.remove(seq)?;
                pruned += 1;
            }
        }
        txn.commit()?;
        Ok(pruned)
    }

    /// Every discoverable user, for building the record table.
    pub fn discoverable_users(&self) -> Result<Vec<User>, ServerError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        let mut out = Vec::new();
        let mut unreadable = 0u64;
        for entry in table.iter()? {
            let (k, v) = entry?;
            match User::decode(k.value(), v.value()) {
                Some(u) if u.discoverable => out.push(u),
                Some(_) => {}
                None => unreadable += 1,
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "registry entries could not be decoded and were skipped"
            );
        }
        Ok(out)
    }

    /// How many users are registered.
    pub fn count(&self) -> Result<u64, ServerError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(USERS)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str, label: &[u8], discoverable: bool) -> User {
        User {
            number: E164::parse(n).expect("valid"),
            label: Label::new(label.to_vec()).expect("short"),
            discoverable,
        }
    }

    #[test]
    fn upsert_reports_created_then_updated_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let r = Registry::open(dir.path()).expect("opens");
            assert_eq!(
                r.upsert(&[user("+12015550123", b"a", true)])
                    .expect("writes"),
                vec![Upserted::Created]
            );
            assert_eq!(
                r.upsert(&[user("+12015550123", b"b", true)])
                    .expect("writes"),
                vec![Upserted::Updated]
            );
            r.upsert(&[user("+12015550124", b"c", false)])
                .expect("writes");
        }
        let r = Registry::open(dir.path()).expect("reopens");
        assert_eq!(r.count().expect("counts"), 2);
        assert_eq!(
            r.discoverable_users().expect("reads"),
            vec![user("+12015550123", b"b", true)]
        );
    }

    #[test]
    fn set_discoverable_on_unknown_number_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("opens");
        let n = E164::parse("+12015550123").expect("valid");
        assert_eq!(r.set_discoverable(&n, true).expect("runs"), None);
        assert_eq!(r.count().expect("counts"), 0);
    }

    #[test]
    fn every_write_is_logged_in_order_and_pages_resume_after_a_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("opens");
        let a = user("+12015550123", b"a", true);
        let b = user("+12015550124", b"b", false);
        r.upsert(&[a.clone(), b.clone()]).expect("writes");
        let hidden = r
            .set_discoverable(&a.number, false)
            .expect("writes")
            .expect("registered");
        assert!(r.remove(&b.number).expect("removes"));
        // Writes that change nothing log nothing.
        assert!(!r.remove(&b.number).expect("removes"));
        assert_eq!(r.set_discoverable(&b.number, true).expect("runs"), None);

        let page = r.changes_after(0, 10).expect("reads");
        let seqs: Vec<u64> = page.changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert_eq!(page.next_seq, 5);
        assert_eq!(page.oldest_retained, 1);
        let changes: Vec<UserChange> = page.changes.into_iter().map(|c| c.change).collect();
        assert_eq!(
            changes,
            vec![
                UserChange::Upserted(a),
                UserChange::Upserted(b.clone()),
                UserChange::Upserted(hidden),
                UserChange::Removed(b.number),
            ]
        );
        let rest = r.changes_after(2, 1).expect("reads");
        assert_eq!(rest.changes.len(), 1);
        assert_eq!(rest.changes[0].seq, 3);
    }

    #[test]
    fn pruning_drops_old_changes_but_never_reuses_their_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let r = Registry::open(dir.path()).expect("opens");
            r.upsert(&[user("+12015550123", b"a", true)])
                .expect("writes");
            r.upsert(&[user("+12015550124", b"b", true)])
                .expect("writes");
            assert_eq!(r.prune_changes(u64::MAX).expect("prunes"), 2);
            assert_eq!(r.prune_changes(u64::MAX).expect("prunes"), 0);
        }
        let r = Registry::open(dir.path()).expect("reopens");
        let page = r.changes_after(0, 10).expect("reads");
        assert!(page.changes.is_empty());
        assert_eq!((page.oldest_retained, page.next_seq), (3, 3));
        r.upsert(&[user("+12015550125", b"c", true)])
            .expect("writes");
        assert_eq!(r.changes_after(0, 10).expect("reads").changes[0].seq, 3);
        // Recent changes survive a prune with an older cutoff.
        assert_eq!(r.prune_changes(0).expect("prunes"), 0);
        assert_eq!(r.count().expect("counts"), 3);
    }

    #[test]
    fn with_the_change_log_off_writes_log_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open_with(dir.path(), false).expect("opens");
        let u = user("+12015550123", b"a", true);
        r.upsert(std::slice::from_ref(&u)).expect("writes");
        r.set_discoverable(&u.number, false).expect("writes");
        r.remove(&u.number).expect("removes");
        let page = r.changes_after(0, 10).expect("reads");
        assert!(page.changes.is_empty());
        assert_eq!(page.next_seq, 1);
    }

    #[test]
    fn an_undecodable_change_is_an_error_not_a_silent_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("opens");
        r.upsert(&[user("+12015550123", b"a", true)])
            .expect("writes");
        let txn = r.db.begin_write().expect("txn");
        txn.open_table(CHANGES)
            .expect("table")
            .insert(2, [9u8, 1, 2].as_slice())
            .expect("inserts");
        txn.commit().expect("commits");
        assert_eq!(
            r.changes_after(0, 1).expect("the good one").changes.len(),
            1
        );
        assert!(matches!(
            r.changes_after(0, 10),
            Err(ServerError::CorruptChange { seq: 2 })
        ));
    }

    mod decoders {
        use super::*;
        use proptest::prelude::*;

        fn any_user() -> impl Strategy<Value = User> {
            (
                1_000_000u64..=999_999_999_999_999,
                proptest::collection::vec(any::<u8>(), 0..=64),
                any::<bool>(),
            )
                .prop_map(|(digits, label, discoverable)| User {
                    number: E164::from_u64(digits).expect("7 to 15 digits"),
                    label: Label::new(label).expect("at most 64 bytes"),
                    discoverable,
                })
        }

        proptest! {
            #[test]
            fn stored_users_decode_to_themselves(user in any_user()) {
                let value = user.encode_value();
                prop_assert_eq!(User::decode(user.number.to_u64(), &value), Some(user));
            }

            #[test]
            fn arbitrary_user_values_never_panic(key in any::<u64>(), value in proptest::collection::vec(any::<u8>(), 0..100)) {
                let _ = User::decode(key, &value);
            }

            #[test]
            fn logged_changes_decode_to_themselves(
                seq in any::<u64>(),
                at_unix in any::<u64>(),
                user in any_user(),
                removed in any::<bool>(),
            ) {
                let change = if removed {
                    UserChange::Removed(user.number)
                } else {
                    UserChange::Upserted(user)
                };
                let entry = LoggedChange { seq, at_unix, change };
                prop_assert_eq!(LoggedChange::decode(seq, &entry.encode_value()), Some(entry));
            }

            #[test]
            fn arbitrary_change_values_never_panic(seq in any::<u64>(), value in proptest::collection::vec(any::<u8>(), 0..120)) {
                let _ = LoggedChange::decode(seq, &value);
            }
        }
    }

    #[test]
    fn remove_reports_whether_the_number_was_registered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("opens");
        let u = user("+12015550123", b"a", true);
        r.upsert(std::slice::from_ref(&u)).expect("writes");
        assert!(r.remove(&u.number).expect("removes"));
        assert!(!r.remove(&u.number).expect("removes"));
        assert_eq!(r.count().expect("counts"), 0);
    }
}
