//! Where pair records sit in the record table: in the bucket of the
//! owner's own match tag under the serving OPRF key. A finder who has the
//! owner's number in its book fetches that bucket for normal discovery
//! anyway, so contacts-only lookups add no bucket id to any request.

use std::sync::PoisonError;

use cds_core::E164;
use cds_core::contacts_only::AllowList;

use crate::contacts_only::StoredList;
use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::state::State;
use crate::table::{Change, RecordTable, tag_of};

/// The table changes that replace `old` by `new` as `owner`'s pair records.
pub(crate) fn changes(
    table: &RecordTable,
    oprf: &cds_core::VoprfServer,
    owner: &E164,
    old: Option<&AllowList>,
    new: Option<&AllowList>,
) -> Vec<Change> {
    let bucket = table.bits().bucket_of(&tag_of(oprf, owner));
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(
            old.records()
                .iter()
                .map(|r| Change::placed(bucket, r.tag(), None)),
        );
    }
    if let Some(new) = new {
        out.extend(new.records().iter().map(|r| {
            Change::placed(
                bucket,
                r.tag(),
                Some(cds_core::Record::from_bytes(r.as_bytes()).expect("a well-formed record")),
            )
        }));
    }
    out
}

/// Put every stored allow-list of a contacts-only user into `table`
/// (a table just built from the registry, before it serves). Callers hold
/// the write lock. With a shared registry these are the lists the feed
/// follower has placed (see [`State::placed_lists`]), so the new table
/// holds what the serving one does and the feed's next entries apply to
/// both alike.
pub(crate) fn install_all(
    state: &State,
    table: &RecordTable,
    oprf: &cds_core::VoprfServer,
) -> Result<(), ServerError> {
    let mut all = Vec::new();
    if state.registry.shared_feed().is_some() {
        let placed = state
            .placed_lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        install_lists(table, oprf, placed.iter());
        return Ok(());
    }
    for (number, list) in state.registry.allow_lists()? {
        // The registry decides: a user it does not hold, or holds as
        // discoverable, has no pair records served.
        match state.registry.get(&number)? {
            Some(user) if !user.discoverable => {
                all.extend(changes(table, oprf, &number, None, Some(&list.records)));
            }
            _ => {}
        }
    }
    table.apply_changes(all);
    Ok(())
}

/// Put `lists` (owner, stored list) into `table` as pair records, in one
/// batch: a table just built, before it serves.
pub(crate) fn install_lists<'a>(
    table: &RecordTable,
    oprf: &cds_core::VoprfServer,
    lists: impl Iterator<Item = (&'a E164, &'a StoredList)>,
) {
    let mut all = Vec::new();
    for (number, list) in lists {
        all.extend(changes(table, oprf, number, None, Some(&list.records)));
    }
    table.apply_changes(all);
}

/// Apply `changes` to the serving table.
pub(crate) fn apply(serving: &ServingEpoch, changes: Vec<Change>) {
    serving.table.apply_changes(changes);
}
