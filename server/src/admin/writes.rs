//! Admin writes: each change goes to the registry first and to the serving
//! table second, under the write lock, so a Discover that starts after a
//! change has returned sees it, and the two never disagree. With a shared
//! registry the table is brought in line by catching up with the change
//! feed (`crate::follow`), which applies this write and any other
//! replica's before it, in feed order.

use std::sync::{Arc, PoisonError};

use cds_core::E164;
use rayon::prelude::*;

use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::registry::{Upserted, User};
use crate::state::State;

/// Write `users` to the registry, then bring the table in line, under the
/// write lock. Blocking: runs on the blocking pool, where it completes even
/// if the caller goes away, so the registry and the table never disagree
/// and writes land in order.
pub(crate) fn write_users(state: &State, users: &[User]) -> Result<Vec<Upserted>, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = serving(state)?;
    let outcomes = state.registry.upsert(users)?;
    crate::contacts_only::forget(state, &serving, users.iter().map(|u| &u.number))?;
    if let Some(feed) = state.registry.shared_feed() {
        crate::follow::catch_up_locked(state, feed)?;
        return Ok(outcomes);
    }
    // Noted as soon as the registry has them, for a rotation in progress.
    state.note_changed(users.iter().map(|u| u.number.clone()));
    // The serving table and, during a replicated rotation, the next one.
    for epoch in state.write_epochs() {
        let changes = users
            .par_iter()
            .map(|u| epoch.table.change_for(&epoch.oprf, u))
            .collect();
        epoch.table.apply_changes(changes);
    }
    Ok(outcomes)
}

/// The serving epoch, for a writer holding the write lock. The first table
/// build holds that lock until it is done, so this fails only if the
/// server never finished starting.
fn serving(state: &State) -> Result<Arc<ServingEpoch>, ServerError> {
    state.serving().ok_or(ServerError::Starting)
}

/// Unregister `number` and drop its record (see [`write_users`]).
pub(crate) fn unregister(state: &State, number: &E164) -> Result<bool, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = serving(state)?;
    let existed = state.registry.remove(number)?;
    crate::contacts_only::forget(state, &serving, [number])?;
    if let Some(feed) = state.registry.shared_feed() {
        crate::follow::catch_up_locked(state, feed)?;
        return Ok(existed);
    }
    if existed {
        state.note_changed([number.clone()]);
        for epoch in state.write_epochs() {
            epoch
                .table
                .apply_changes(vec![epoch.table.removal_for(&epoch.oprf, number)]);
        }
    }
    Ok(existed)
}

/// Change discoverability (see [`write_users`]); `None` if not registered.
pub(crate) fn set_discoverable(
    state: &State,
    number: &E164,
    discoverable: bool,
) -> Result<Option<()>, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = serving(state)?;
    let Some(user) = state.registry.set_discoverable(number, discoverable)? else {
        return Ok(None);
    };
    crate::contacts_only::forget(state, &serving, [number])?;
    if let Some(feed) = state.registry.shared_feed() {
        crate::follow::catch_up_locked(state, feed)?;
        return Ok(Some(()));
    }
    state.note_changed([user.number.clone()]);
    for epoch in state.write_epochs() {
        epoch.table.apply(&epoch.oprf, &user);
    }
    Ok(Some(()))
}
