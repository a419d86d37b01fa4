//! The storage boundary: what the server needs of a registry and of a
//! budget store, whatever keeps them.
//!
//! The embedded redb implementation ([`crate::registry::Registry`]) is the
//! default and implements both. Every method is blocking (it may wait for
//! the disk or the network); call it from a blocking context.
//!
//! Shared budgets are not behind [`BudgetStore`]: they are not written
//! behind but checked on every admission, asynchronously
//! ([`crate::limits::shared_budget`]).

use cds_core::E164;

use crate::contacts_only::StoredList;
use crate::error::ServerError;
use crate::limits::budget_store::StoredBudget;
use crate::registry::{ChangePage, Registry, Upserted, User};

/// The registry of users and its change feed.
///
/// Every write is atomic with its change-feed entries: a reader of the
/// feed never sees a change the registry does not have, nor misses one it
/// has (within the retention).
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Register or update `users`, all or none.
    fn upsert(&self, users: &[User]) -> Result<Vec<Upserted>, ServerError>;
    /// Remove `number`; whether it was registered.
    fn remove(&self, number: &E164) -> Result<bool, ServerError>;
    /// Set whether `number` is discoverable; the updated user, or `None`
    /// (nothing changed) if it is not registered.
    fn set_discoverable(
        &self,
        number: &E164,
        discoverable: bool,
    ) -> Result<Option<User>, ServerError>;
    /// The user registered under `number`, if any.
    fn get(&self, number: &E164) -> Result<Option<User>, ServerError>;
    /// Every discoverable user, read consistently, for building a table.
    fn discoverable_users(&self) -> Result<Vec<User>, ServerError>;
    /// How many users are registered.
    fn count(&self) -> Result<u64, ServerError>;
    /// Up to `limit` changes with a sequence number above `after`.
    fn changes_after(&self, after: u64, limit: usize) -> Result<ChangePage, ServerError>;
    /// Delete changes committed before `cutoff_unix`; how many.
    fn prune_changes(&self, cutoff_unix: u64) -> Result<u64, ServerError>;

    /// The stored contacts-only allow-list of `number`, if it has one.
    fn allow_list(&self, number: &E164) -> Result<Option<StoredList>, ServerError>;
    /// Which of `numbers` have a stored allow-list.
    fn with_allow_lists(
        &self,
        numbers: &mut dyn Iterator<Item = &E164>,
    ) -> Result<Vec<E164>, ServerError>;
    /// Store (or replace) the allow-list of `number`.
    fn put_allow_list(&self, number: &E164, list: &StoredList) -> Result<(), ServerError>;
    /// Delete the allow-list of `number`, returning what was stored.
    fn remove_allow_list(&self, number: &E164) -> Result<Option<StoredList>, ServerError>;
    /// Every stored allow-list, to place their records in a new table.
    fn allow_lists(&self) -> Result<Vec<(E164, StoredList)>, ServerError>;

    /// The feed this registry shares with other replicas, if it is shared:
    /// then the serving table follows that feed (`crate::follow`), never
    /// this server's own writes directly.
    fn shared_feed(&self) -> Option<&crate::postgres::registry::PostgresRegistry> {
        None
    }
}

/// Where the budgets of one server are written behind and read back at
/// start.
pub trait BudgetStore: Send + Sync + std::fmt::Debug {
    /// Write `budgets` (entries without tokens are deleted).
    fn save_budgets(&self, budgets: &[StoredBudget]) -> Result<(), ServerError>;
    /// Every stored budget.
    fn load_budgets(&self) -> Result<Vec<StoredBudget>, ServerError>;
}

impl RegistryStore for Registry {
    fn upsert(&self, users: &[User]) -> Result<Vec<Upserted>, ServerError> {
        Registry::upsert(self, users)
    }

    fn remove(&self, number: &E164) -> Result<bool, ServerError> {
        Registry::remove(self, number)
    }

    fn set_discoverable(
        &self,
        number: &E164,
        discoverable: bool,
    ) -> Result<Option<User>, ServerError> {
        Registry::set_discoverable(self, number, discoverable)
    }

    fn get(&self, number: &E164) -> Result<Option<User>, ServerError> {
        Registry::get(self, number)
    }

    fn discoverable_users(&self) -> Result<Vec<User>, ServerError> {
        Registry::discoverable_users(self)
    }

    fn count(&self) -> Result<u64, ServerError> {
        Registry::count(self)
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<ChangePage, ServerError> {
        Registry::changes_after(self, after, limit)
    }

    fn prune_changes(&self, cutoff_unix: u64) -> Result<u64, ServerError> {
        Registry::prune_changes(self, cutoff_unix)
    }

    fn allow_list(&self, number: &E164) -> Result<Option<StoredList>, ServerError> {
        crate::contacts_only::store::get(self.database(), number)
    }

    fn with_allow_lists(
        &self,
        numbers: &mut dyn Iterator<Item = &E164>,
    ) -> Result<Vec<E164>, ServerError> {
        crate::contacts_only::store::present(self.database(), numbers)
    }

    fn put_allow_list(&self, number: &E164, list: &StoredList) -> Result<(), ServerError> {
        crate::contacts_only::store::put(self.database(), number, list)
    }

    fn remove_allow_list(&self, number: &E164) -> Result<Option<StoredList>, ServerError> {
        crate::contacts_only::store::remove(self.database(), number)
    }

    fn allow_lists(&self) -> Result<Vec<(E164, StoredList)>, ServerError> {
        crate::contacts_only::store::all(self.database())
    }
}

impl BudgetStore for Registry {
    fn save_budgets(&self, budgets: &[StoredBudget]) -> Result<(), ServerError> {
        Registry::save_budgets(self, budgets)
    }

    fn load_budgets(&self) -> Result<Vec<StoredBudget>, ServerError> {
        Registry::load_budgets(self)
    }
}
