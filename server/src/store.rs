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
}

impl BudgetStore for Registry {
    fn save_budgets(&self, budgets: &[StoredBudget]) -> Result<(), ServerError> {
        Registry::save_budgets(self, budgets)
    }

    fn load_budgets(&self) -> Result<Vec<StoredBudget>, ServerError> {
        Registry::load_budgets(self)
    }
}
