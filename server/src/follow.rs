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
//! A replica whose next entry was pruned from the feed rebuilds its table
//! from a fresh snapshot while the old one serves ([`rebuild`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::contacts_only::StoredList;
use crate::contacts_only::placement;
use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::postgres::registry::{FeedEntry, PostgresRegistry};
use crate::registry::UserChange;
use crate::state::State;
use crate::table::RecordTable;

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
        // Checked before an empty page counts as caught up: a feed pruned
        // down to nothing still has its head past this position.
        if oldest > position + 1 {
            return Err(ServerError::FeedBehind {
                position,
                oldest_retained: oldest,
            });
        }
        let Some((first, _)) = entries.first() else {
            return Ok(applied);
        };
        if *first != position + 1 {
            return Err(ServerError::FeedBehind {
                position,
                oldest_retained: *first,
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

/// Take the write lock and catch up (see [`catch_up_locked`]); a replica
/// whose position was pruned from the feed rebuilds (see [`rebuild`]).
fn catch_up(state: &State, feed: &PostgresRegistry) -> Result<usize, ServerError> {
    let caught_up = {
        let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if state.serving().is_none() {
            return Ok(0);
        }
        catch_up_locked(state, feed)
    };
    match caught_up {
        Err(ServerError::FeedBehind { .. }) => rebuild(state, feed),
        other => other,
    }
}

/// Rebuild the serving table of a replica the feed has left behind (its
/// next entry was pruned): the same consistent snapshot a starting replica
/// reads (users, allow-lists and the feed mark, [`PostgresRegistry::snapshot`]),
/// sealed under the serving key on half the cores while the old table
/// keeps serving, then, under the write lock, swapped in with the feed
/// position set to the snapshot's mark, and the entries after it applied.
/// While a key rotation prepares or holds the next epoch nothing is
/// rebuilt (its table would miss the gap too): the replica waits for the
/// rotation to switch or be abandoned, then rebuilds the one epoch left.
/// A rebuild given up (a rotation began or switched meanwhile) is tried
/// again on the next poll. Returns how many feed entries were applied
/// after the mark.
fn rebuild(state: &State, feed: &PostgresRegistry) -> Result<usize, ServerError> {
    let Some(serving) = state.serving() else {
        return Ok(0);
    };
    if state.is_rotating() {
        tracing::warn!(
            "the change feed was pruned past this replica's position; it rebuilds its table once the key rotation in progress ends"
        );
        return Ok(0);
    }
    tracing::warn!(
        "the change feed was pruned past this replica's position; rebuilding the table from a snapshot (the current one serves meanwhile)"
    );
    let started = Instant::now();
    let snapshot = feed.snapshot()?;
    let pool = crate::rotation::background_pool("cds-rebuild")?;
    let table = pool
        .install(|| {
            RecordTable::build(
                serving.table.bits(),
                &serving.oprf,
                &snapshot.users,
                None,
                &|| state.is_stopping(),
            )
        })
        .ok_or(ServerError::ShuttingDown)?;
    drop(pool);
    placement::install_lists(
        &table,
        &serving.oprf,
        snapshot.allow_lists.iter().map(|(n, l)| (n, l)),
    );

    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    if state.is_stopping() {
        return Err(ServerError::ShuttingDown);
    }
    let still_serving = state.serving().is_some_and(|s| Arc::ptr_eq(&s, &serving));
    if !still_serving || state.is_rotating() {
        tracing::info!("the table rebuild was given up: a key rotation ran meanwhile; retrying");
        return Ok(0);
    }
    if state.feed_position.load(Ordering::Acquire) >= snapshot.mark {
        // Not behind that snapshot (cannot happen while the feed refuses
        // the position; kept so a rebuild never goes back in time).
        return Ok(0);
    }
    table.continue_versions_of(&serving.table);
    *state
        .placed_lists
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = snapshot.allow_lists.into_iter().collect();
    state.feed_position.store(snapshot.mark, Ordering::Release);
    let records = table.len();
    let rebuilt = ServingEpoch::with_server(serving.id, serving.oprf.clone(), table);
    state.replace_serving(Arc::new(rebuilt));
    let build_ms = started.elapsed().as_millis() as u64;
    state.table_build_ms.store(build_ms, Ordering::Relaxed);
    state.metrics.feed_rebuilds.inc();
    tracing::info!(
        records,
        build_ms,
        "record table rebuilt from a snapshot; following the change feed from there"
    );
    // The entries written since the snapshot (a gap again, should they be
    // pruned already, is retried on the next poll).
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
