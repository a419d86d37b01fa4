//! Per-account evaluation quotas and in-flight limits.
//!
//! Every evaluated element costs one token from the account's bucket. A
//! request that does not fit is refused whole and charges nothing; a
//! request that fails after admission gets its tokens back. Buckets live in
//! memory and are written behind to the store (`budget_store`): every
//! account whose tokens changed is marked, and [`Quotas::dirty`] hands the
//! marked ones to the saver. An account's entry is dropped once its bucket
//! is full again (it then says nothing a fresh entry would not), and its
//! stored entry deleted.
//!
//! With shared budgets ([`Quotas::with_shared`]) the buckets live in Redis
//! instead, where every replica takes from the same one
//! ([`super::shared_budget`]); the in-flight limit stays per replica, and
//! nothing is written behind.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cds_core::AccountId;

use super::budget_store::StoredBudget;
use super::shared_budget::SharedBudgets;
use super::token_bucket::{Rate, TokenBucket};

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account already has the maximum number of requests in flight.
    TooManyInFlight,
    /// The account's budget is spent; retry after the given time (`None`:
    /// not within any representable time, as when nothing refills).
    Exhausted(Option<Duration>),
    /// The shared budget store did not answer: nothing was charged or
    /// evaluated; retry after the given time.
    Unavailable(Duration),
}

struct Account {
    bucket: TokenBucket,
    in_flight: u32,
}

struct Inner {
    rate: Rate,
    max_in_flight: u32,
    accounts: Mutex<Accounts>,
    /// The budgets, when they live in Redis (the local buckets then stay full).
    shared: Option<SharedBudgets>,
}

#[derive(Default)]
struct Accounts {
    by_id: HashMap<AccountId, Account>,
    /// Accounts whose tokens changed since the last save.
    dirty: HashSet<AccountId>,
}

/// Quotas of all accounts.
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("rate", &self.inner.rate)
            .field("accounts", &self.tracked())
            .finish()
    }
}

/// An admitted request: holds its in-flight slot and its charge. Dropping
/// it without [`Admission::commit`] refunds the charge.
#[must_use]
pub struct Admission {
    quotas: Quotas,
    account: AccountId,
    charged: f64,
}

impl Admission {
    /// The request was served: keep the charge.
    pub fn commit(mut self) {
        self.charged = 0.0;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let inner = &self.quotas.inner;
        if let Some(shared) = &inner.shared
            && self.charged > 0.0
        {
            shared.refund(self.account.clone(), self.charged);
            self.charged = 0.0;
        }
        let mut accounts = self.quotas.accounts();
        if let Some(a) = accounts.by_id.get_mut(&self.account) {
            a.in_flight = a.in_flight.saturating_sub(1);
            if self.charged > 0.0 {
                a.bucket.put_back(self.charged, inner.rate);
                accounts.dirty.insert(self.account.clone());
            }
        }
    }
}

impl Quotas {
    /// The accounts, locked (a poisoned lock is taken over: the state is
    /// counts that stay consistent whatever a panicking holder did).
    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.inner
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Quotas of `rate`, with at most `max_in_flight` concurrent requests per account.
    pub fn new(rate: Rate, max_in_flight: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                rate,
                max_in_flight,
                accounts: Mutex::new(Accounts::default()),
                shared: None,
            }),
        }
    }

    /// Quotas whose buckets are `shared` by every replica; at most
    /// `max_in_flight` concurrent requests per account on this replica.
    pub fn with_shared(max_in_flight: u32, shared: SharedBudgets) -> Self {
        Self {
            inner: Arc::new(Inner {
                rate: shared.rate(),
                max_in_flight,
                accounts: Mutex::new(Accounts::default()),
                shared: Some(shared),
            }),
        }
    }

    /// Admit a request of `elements` evaluations for `account` now: from
    /// the local buckets ([`Quotas::admit`]) or from the shared ones, where
    /// an unreachable store refuses the request ([`Refusal::Unavailable`]).
    pub async fn admit_now(
        &self,
        account: &AccountId,
        elements: u32,
    ) -> Result<Admission, Refusal> {
        let Some(shared) = &self.inner.shared else {
            return self.admit(account, elements, Instant::now());
        };
        // The in-flight slot first (a local bucket that stays full), so a
        // refused slot costs no round trip.
        let mut admission = self.admit(account, 0, Instant::now())?;
        if elements == 0 {
            return Ok(admission);
        }
        let n = f64::from(elements);
        match shared.take(account, n).await {
            Ok(Ok(())) => {
                admission.charged = n;
                Ok(admission)
            }
            Ok(Err(wait)) => Err(Refusal::Exhausted(wait)),
            Err(_) => Err(Refusal::Unavailable(
                super::shared_budget::RETRY_AFTER_UNREACHABLE,
            )),
        }
    }

    /// Admit a request of `elements` evaluations for `account`, charging
    /// them now, or refuse it and charge nothing.
    pub fn admit(
        &self,
        account: &AccountId,
        elements: u32,
        now: Instant,
    ) -> Result<Admission, Refusal> {
        let inner = &self.inner;
        let mut accounts = self.accounts();
        let a = accounts
            .by_id
            .entry(account.clone())
            .or_insert_with(|| Account {
                bucket: TokenBucket::full(inner.rate, now),
                in_flight: 0,
            });
        if a.in_flight >= inner.max_in_flight {
            return Err(Refusal::TooManyInFlight);
        }
        let n = f64::from(elements);
        a.bucket
            .try_take(n, inner.rate, now)
            .map_err(Refusal::Exhausted)?;
        a.in_flight += 1;
        if elements > 0 {
            accounts.dirty.insert(account.clone());
        }
        Ok(Admission {
            quotas: self.clone(),
            account: account.clone(),
            charged: n,
        })
    }

    /// Evaluations `account` could spend at `now`.
    #[cfg(test)]
    pub fn available(&self, account: &AccountId, now: Instant) -> f64 {
        let inner = &self.inner;
        let mut accounts = self.accounts();
        match accounts.by_id.get_mut(account) {
            Some(a) => a.bucket.available(inner.rate, now),
            None => inner.rate.burst,
        }
    }

    /// Forget accounts whose bucket is full and that have nothing in
    /// flight: their state carries no information any more.
    pub fn sweep(&self, now: Instant) -> usize {
        let inner = &self.inner;
        let mut accounts = self.accounts();
        let Accounts { by_id, dirty } = &mut *accounts;
        let before = by_id.len();
        by_id.retain(|id, a| {
            let keep = a.in_flight > 0 || !a.bucket.is_full(inner.rate, now);
            if !keep {
                // Saved as full, which deletes the stored entry.
                dirty.insert(id.clone());
            }
            keep
        });
        before - by_id.len()
    }

    /// The budgets changed since the last call, as of `now` (wall clock
    /// `now_unix_ms`), for the store; accounts no longer held, or full
    /// again, come without tokens (delete their entry).
    pub fn dirty(&self, now: Instant, now_unix_ms: u64) -> Vec<StoredBudget> {
        let inner = &self.inner;
        let mut accounts = self.accounts();
        let Accounts { by_id, dirty } = &mut *accounts;
        dirty
            .drain()
            .map(|account| {
                let tokens = by_id
                    .get_mut(&account)
                    .map(|a| a.bucket.available(inner.rate, now))
                    .filter(|&t| t < inner.rate.burst);
                StoredBudget {
                    account,
                    tokens,
                    at_unix_ms: now_unix_ms,
                }
            })
            .collect()
    }

    /// Mark `accounts` to be saved again (after a failed save).
    pub fn mark_dirty(&self, accounts: impl IntoIterator<Item = AccountId>) {
        self.accounts().dirty.extend(accounts);
    }

    /// Put back budgets saved earlier: each account's tokens as stored,
    /// plus what refilled between then and now.
    pub fn restore(&self, stored: Vec<StoredBudget>, now: Instant, now_unix_ms: u64) {
        let inner = &self.inner;
        let mut accounts = self.accounts();
        for b in stored {
            let Some(tokens) = b.tokens else { continue };
            let elapsed = Duration::from_millis(now_unix_ms.saturating_sub(b.at_unix_ms));
            let refilled = tokens + elapsed.as_secs_f64() * inner.rate.per_sec;
            if refilled >= inner.rate.burst {
                accounts.dirty.insert(b.account);
                continue;
            }
            accounts.by_id.insert(
                b.account,
                Account {
                    bucket: TokenBucket::with_tokens(refilled, inner.rate, now),
                    in_flight: 0,
                },
            );
        }
    }

    /// How many accounts have state.
    pub fn tracked(&self) -> usize {
        self.accounts().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(s: &str) -> AccountId {
        AccountId::new(s.as_bytes().to_vec()).expect("valid")
    }

    #[test]
    fn a_request_over_budget_is_refused_whole_and_charges_nothing() {
        let q = Quotas::new(Rate::per_hour(100, 3600.0), 4);
        let t = Instant::now();
        q.admit(&acct("a"), 80, t).expect("fits").commit();
        assert!(matches!(
            q.admit(&acct("a"), 30, t),
            Err(Refusal::Exhausted(Some(_)))
        ));
        assert_eq!(q.available(&acct("a"), t), 20.0);
    }

    #[test]
    fn accounts_do_not_share_budgets() {
        let q = Quotas::new(Rate::per_hour(10, 0.0), 4);
        let t = Instant::now();
        q.admit(&acct("a"), 10, t).expect("fits").commit();
        assert_eq!(
            q.admit(&acct("a"), 1, t).err(),
            Some(Refusal::Exhausted(None))
        );
        q.admit(&acct("b"), 10, t)
            .expect("b has its own budget")
            .commit();
    }

    #[test]
    fn an_uncommitted_admission_is_refunded() {
        let q = Quotas::new(Rate::per_hour(10, 0.0), 4);
        let t = Instant::now();
        drop(q.admit(&acct("a"), 7, t).expect("fits"));
        assert_eq!(q.available(&acct("a"), t), 10.0);
    }

    #[test]
    fn in_flight_requests_per_account_are_bounded() {
        let q = Quotas::new(Rate::per_hour(100, 0.0), 2);
        let t = Instant::now();
        let a1 = q.admit(&acct("a"), 1, t).expect("first");
        let _a2 = q.admit(&acct("a"), 1, t).expect("second");
        assert_eq!(
            q.admit(&acct("a"), 1, t).err(),
            Some(Refusal::TooManyInFlight)
        );
        a1.commit();
        assert!(q.admit(&acct("a"), 1, t).is_ok());
    }

    #[test]
    fn sweep_forgets_only_accounts_with_full_buckets() {
        let q = Quotas::new(Rate::per_hour(10, 3600.0), 2);
        let t = Instant::now();
        q.admit(&acct("a"), 5, t).expect("fits").commit();
        q.admit(&acct("b"), 0, t).expect("fits").commit();
        assert_eq!(q.sweep(t), 1);
        assert_eq!(q.tracked(), 1);
        assert_eq!(q.sweep(t + Duration::from_secs(5)), 1);
        assert_eq!(q.tracked(), 0);
    }

    #[test]
    fn spent_budgets_are_handed_out_for_saving_once_and_restore_with_their_refill() {
        let rate = Rate::per_hour(100, 3600.0); // one token a second
        let q = Quotas::new(rate, 4);
        let t = Instant::now();
        q.admit(&acct("a"), 80, t).expect("fits").commit();
        drop(q.admit(&acct("b"), 10, t).expect("fits")); // refunded: full again
        let mut saved = q.dirty(t, 1_000_000);
        saved.sort_by(|x, y| x.account.cmp(&y.account));
        assert_eq!(saved.len(), 2);
        assert_eq!(saved[0].tokens, Some(20.0));
        assert_eq!(saved[1].tokens, None, "a full bucket deletes its entry");
        assert!(q.dirty(t, 1_000_000).is_empty(), "saved once");

        // A new process, 5 s of wall time later: 20 + 5 tokens.
        let restarted = Quotas::new(rate, 4);
        let later = Instant::now();
        restarted.restore(saved, later, 1_005_000);
        assert_eq!(restarted.available(&acct("a"), later), 25.0);
        assert_eq!(restarted.available(&acct("b"), later), 100.0);
        assert!(restarted.admit(&acct("a"), 26, later).is_err());
    }
}
