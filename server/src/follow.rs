//! Replicas follow the shared registry's change feed (PostgreSQL).
//!
//! With a shared registry the serving table is driven by the feed only:
//! a replica starts from a consistent snapshot (users and the feed's
//! high-water mark, one REPEATABLE READ transaction), then applies every
//! change after that mark, in sequence order and without gaps. It catches
//! up when a `NOTIFY` wakes it, on a timer ([`POLL`], so a missed
//! notification costs latency, never a change), and right after each of its
//! own admin writes (so a write that has returned is served here). Catching
//! up holds the write lock, so it never interleaves with a rotation's
//! switch; every applied number is noted for a rotation in progress.
//! Allow-list entries (stored, removed) place and withdraw contacts-only
//! pair records on every replica alike, the one that wrote them included.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::contacts_only::StoredList;
use crate::contacts_only::placement;
use crate::error::ServerError;
use crate::postgres::registry::{FeedEntry, PostgresRegistry};
use crate::registry::UserChange;
use crate::state::State;

/// The longest a replica goes without reading the feed.
pub const POLL: Duration = Duration::from_millis(500);

/// Feed entries read per page.
const PAGE: usize = 10_000;

/// Apply every feed entry after the replica's position to the serving
/// table and, during a replicated rotation, the next one. Callers hold the
/// write lock. Returns how many entries were applied.
pub(crate) fn catch_up_locked(
    state: &State,
    feed: &PostgresRegistry,
) -> Result<usize, ServerError> {
    let mut applied = 0;
    loop {
        let position = state.feed_position.load(Ordering::Acquire);
        let page = feed.feed_after(position, PAGE)?;
        let (entries, oldest) = (page.entries, page.oldest);
        let Some((first, _)) = entries.first() else {
            return Ok(applied);
        };
        if *first != position + 1 || oldest > position + 1 {
            return Err(ServerError::FeedBehind {
                position,
                oldest_retained: oldest,
            });
        }
        let mut expected = position + 1;
        for (seq, _) in &entries {
            if *seq != expected {
                return Err(ServerError::FeedBehind {
                    position: expected - 1,
                    oldest_retained: *seq,
                });
            }
            expected += 1;
        }
        state.note_changed(entries.iter().filter_map(|(_, entry)| match entry {
            FeedEntry::User(UserChange::Upserted(user)) => Some(user.number.clone()),
            FeedEntry::User(UserChange::Removed(number)) => Some(number.clone()),
            FeedEntry::AllowList(..) => None,
        }));
        // Each allow-list entry replaces the list placed before it (the same
        // transition for every epoch's table).
        let lists = list_transitions(state, &entries);
        // The serving table and, during a replicated rotation, the next one.
        for epoch in state.write_epochs() {
            let changes = entries
                .par_iter()
                .zip(lists.par_iter())
                .flat_map_iter(|((_, entry), list)| match (entry, list) {
                    (FeedEntry::User(UserChange::Upserted(user)), _) => {
                        vec![epoch.table.change_for(&epoch.oprf, user)]
                    }
                    (FeedEntry::User(UserChange::Removed(number)), _) => {
                        vec![epoch.table.removal_for(&epoch.oprf, number)]
                    }
                    (FeedEntry::AllowList(number, _), Some((old, new))) => placement::changes(
                        &epoch.table,
                        &epoch.oprf,
                        number,
                        old.as_ref().map(|l| &l.records),
                        new.as_ref().map(|l| &l.records),
                    ),
                    (FeedEntry::AllowList(..), None) => Vec::new(),
                })
                .collect();
            epoch.table.apply_changes(changes);
        }
        applied += entries.len();
        state.feed_position.store(expected - 1, Ordering::Release);
        let now_us = unix_micros(SystemTime::now());
        for written in page.written_us.into_iter().flatten() {
            state.metrics.observe_feed_lag(lag_seconds(written, now_us));
        }
    }
}

/// Microseconds since the Unix epoch (0 before it).
fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds from a change's write (database clock) to its application here
/// (this replica's clock); a write that seems to come from the future
/// (clocks apart) counts as no lag.
fn lag_seconds(written_us: i64, applied_us: i64) -> f64 {
    applied_us.saturating_sub(written_us).max(0) as f64 / 1e6
}

/// The list each allow-list entry replaces and the one it places, in feed
/// order (`None` for user entries), updating [`State::placed_lists`].
#[allow(clippy::type_complexity)]
fn list_transitions(
    state: &State,
    entries: &[(u64, FeedEntry)],
) -> Vec<Option<(Option<StoredList>, Option<StoredList>)>> {
    let mut placed = state
        .placed_lists
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    entries
        .iter()
        .map(|(_, entry)| match entry {
            FeedEntry::User(_) => None,
            FeedEntry::AllowList(number, Some(list)) => Some((
                placed.insert(number.clone(), list.clone()),
                Some(list.clone()),
            )),
            FeedEntry::AllowList(number, None) => Some((placed.remove(number), None)),
        })
        .collect()
}

/// Take the write lock and catch up (see [`catch_up_locked`]).
fn catch_up(state: &State, feed: &PostgresRegistry) -> Result<usize, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    if state.serving().is_none() {
        return Ok(0);
    }
    catch_up_locked(state, feed)
}

/// Follow the feed until the server stops: wake on a notification or
/// every [`POLL`], catch up on the blocking pool.
pub(crate) fn spawn(state: &Arc<State>) {
    let Some(feed) = state.registry.shared_feed() else {
        return;
    };
    let wakeups = feed.wakeups();
    let weak: Weak<State> = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(POLL, wakeups.notified()).await;
            let Some(state) = weak.upgrade() else { return };
            if state.is_stopping() {
                return;
            }
            let result = tokio::task::spawn_blocking(move || {
                let feed = state
                    .registry
                    .shared_feed()
                    .ok_or(ServerError::Task("the registry is not shared".into()))?;
                catch_up(&state, feed)
            })
            .await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot follow the registry's change feed; retrying")
                }
                Err(e) => tracing::error!(error = %e, "the feed follower failed; retrying"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_time_from_write_to_application_in_seconds() {
        assert_eq!(lag_seconds(1_000_000, 1_250_000), 0.25);
        assert_eq!(lag_seconds(5, 5), 0.0);
    }

    #[test]
    fn a_write_stamped_after_its_application_counts_as_no_lag() {
        assert_eq!(lag_seconds(2_000_000, 1_000_000), 0.0);
    }

    #[test]
    fn unix_micros_counts_microseconds_since_the_epoch() {
        let t = UNIX_EPOCH + Duration::from_micros(1_234_567);
        assert_eq!(unix_micros(t), 1_234_567);
    }
}
