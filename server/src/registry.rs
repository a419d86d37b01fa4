//! The persistent registry of users in redb: number, label, discoverable.
//!
//! This is the only place the server keeps phone numbers. Every method is
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

    fn decode(key: u64, value: &[u8]) -> Option<Self> {
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
}

impl Registry {
    /// Open (or create) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ServerError> {
        let db = Database::create(dir.join(DB_FILE))?;
        let txn = db.begin_write()?;
        txn.open_table(USERS)?;
        txn.commit()?;
        Ok(Self { db })
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
        txn.commit()?;
        Ok(out)
    }

    /// Remove `number`; returns whether it was registered.
    pub fn remove(&self, number: &E164) -> Result<bool, ServerError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(USERS)?.remove(number.to_u64())?.is_some();
        txn.commit()?;
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
        if updated.is_some() {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(updated)
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
