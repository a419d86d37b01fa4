//! Switching a user between everybody, contacts and nobody.

use std::sync::PoisonError;

use cds_core::E164;
use cds_core::contacts_only::Discoverability;

use super::{placement, store};
use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::state::State;
use crate::store::RegistryStore;

/// Set `number`'s discoverability; `None` if it is not registered.
/// Leaving contacts-only deletes its stored allow-list and its pair records.
pub(crate) fn set_discoverability(
    state: &State,
    number: &E164,
    mode: Discoverability,
) -> Result<Option<()>, ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = state.serving().ok_or(ServerError::Starting)?;
    let everybody = mode == Discoverability::Everybody;
    let Some(user) = state.registry.set_discoverable(number, everybody)? else {
        return Ok(None);
    };
    state.note_changed([user.number.clone()]);
    serving.table.apply(&serving.oprf, &user);
    if mode == Discoverability::Contacts {
        if state.registry.allow_list(number)?.is_none() {
            state
                .registry
                .put_allow_list(number, &store::StoredList::empty())?;
        }
    } else {
        drop_list(state.registry.as_ref(), &serving, number)?;
    }
    if let Some(feed) = state.registry.shared_feed() {
        // The user's record and its allow-list, as every replica applies them.
        crate::follow::catch_up_locked(state, feed)?;
    }
    Ok(Some(()))
}

/// The numbers were written by Register, Import, SetDiscoverable or
/// Unregister, which set everybody or nobody: delete their allow-lists.
/// Callers hold the write lock.
pub(crate) fn forget<'a>(
    state: &State,
    serving: &ServingEpoch,
    numbers: impl IntoIterator<Item = &'a E164>,
) -> Result<(), ServerError> {
    let registry = state.registry.as_ref();
    for number in registry.with_allow_lists(&mut numbers.into_iter())? {
        drop_list(registry, serving, &number)?;
    }
    Ok(())
}

fn drop_list(
    registry: &dyn RegistryStore,
    serving: &ServingEpoch,
    number: &E164,
) -> Result<(), ServerError> {
    if let Some(old) = registry.remove_allow_list(number)? {
        if registry.shared_feed().is_some() {
            // Withdrawn by the feed follower (the caller catches up).
            return Ok(());
        }
        placement::apply(
            serving,
            placement::changes(
                &serving.table,
                &serving.oprf,
                number,
                Some(&old.records),
                None,
            ),
        );
    }
    Ok(())
}
