//! Account budgets on disk, so that neither a restart nor a key rotation
//! hands every account a fresh burst.
//!
//! One redb table in the registry's file: account id → the tokens left and
//! the wall-clock time they were counted at (milliseconds since the Unix
//! epoch). Only accounts that have spent something are stored; an account
//! whose bucket is full again is deleted. The quotas write behind
//! ([`crate::limits::quota::Quotas::dirty`]): the housekeeping task saves the
//! accounts changed since its last save every [`SAVE_EVERY`], and the server
//! saves once more after its last request when it stops. A crash refunds at
//! most what was spent in the last [`SAVE_EVERY`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cds_core::AccountId;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::ServerError;
use crate::registry::Registry;

/// How often changed budgets are written.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

const BUDGETS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("budgets_v1");

/// Bytes of one stored budget: tokens (f64, big-endian bits) then the
/// time in Unix milliseconds (u64, big-endian).
const VALUE_LEN: usize = 16;

/// One account's budget as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredBudget {
    /// The account.
    pub account: AccountId,
    /// Tokens left at `at_unix_ms`; `None` deletes the entry (a full bucket).
    pub tokens: Option<f64>,
    /// When they were counted.
    pub at_unix_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn encode(tokens: f64, at_unix_ms: u64) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    v[..8].copy_from_slice(&tokens.to_bits().to_be_bytes());
    v[8..].copy_from_slice(&at_unix_ms.to_be_bytes());
    v
}

/// A stored value, or `None` if it is not one (it is then ignored: the
/// account starts full, as if never seen).
fn decode(value: &[u8]) -> Option<(f64, u64)> {
    let v: &[u8; VALUE_LEN] = value.try_into().ok()?;
    let tokens = f64::from_bits(u64::from_be_bytes(v[..8].try_into().ok()?));
    let at = u64::from_be_bytes(v[8..].try_into().ok()?);
    (tokens.is_finite() && tokens >= 0.0).then_some((tokens, at))
}

impl Registry {
    /// Write `budgets` in one transaction (entries without tokens are
    /// deleted).
    pub fn save_budgets(&self, budgets: &[StoredBudget]) -> Result<(), ServerError> {
        if budgets.is_empty() {
            return Ok(());
        }
        let txn = self.database().begin_write()?;
        {
            let mut table = txn.open_table(BUDGETS)?;
            for b in budgets {
                match b.tokens {
                    Some(tokens) => {
                        table.insert(
                            b.account.as_bytes(),
                            encode(tokens, b.at_unix_ms).as_slice(),
                        )?;
                    }
                    None => {
                        table.remove(b.account.as_bytes())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every stored budget. Entries that do not decode are skipped.
    pub fn load_budgets(&self) -> Result<Vec<StoredBudget>, ServerError> {
        let txn = self.database().begin_read()?;
        let table = match txn.open_table(BUDGETS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let (Ok(account), Some((tokens, at))) =
                (AccountId::new(key.value().to_vec()), decode(value.value()))
            else {
                continue;
            };
            out.push(StoredBudget {
                account,
                tokens: Some(tokens),
                at_unix_ms: at,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account(s: &str) -> AccountId {
        AccountId::new(s.as_bytes().to_vec()).expect("valid")
    }

    #[test]
    fn budgets_round_trip_and_a_full_bucket_deletes_its_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path()).expect("opens");
        assert!(registry.load_budgets().expect("loads").is_empty());
        let spent = |name: &str, tokens| StoredBudget {
            account: account(name),
            tokens,
            at_unix_ms: 1_700_000_000_000,
        };
        registry
            .save_budgets(&[spent("a", Some(12.5)), spent("b", Some(0.0))])
            .expect("saves");
        let mut loaded = registry.load_budgets().expect("loads");
        loaded.sort_by(|x, y| x.account.cmp(&y.account));
        assert_eq!(loaded, vec![spent("a", Some(12.5)), spent("b", Some(0.0))]);
        registry.save_budgets(&[spent("a", None)]).expect("deletes");
        assert_eq!(
            registry.load_budgets().expect("loads"),
            vec![spent("b", Some(0.0))]
        );
    }

    proptest! {
        #[test]
        fn stored_values_decode_to_what_was_encoded_and_garbage_never_panics(
            tokens in 0.0f64..1e12,
            at in any::<u64>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            prop_assert_eq!(decode(&encode(tokens, at)), Some((tokens, at)));
            let _ = decode(&garbage);
        }
    }
}
