//! Key rotation: prepare the next epoch in the background, then switch;
//! and announcing the next key ahead of a rotation.
//!
//! 1. Claim the rotation (one at a time) and start noting which numbers
//!    admin writes change from now on.
//! 2. Write the next key beside the current one (durable, not yet used):
//!    the announced key if there is one ([`announce`]), else a fresh one.
//! 3. Read the discoverable users and seal their records under the next
//!    key, on a pool of half the cores, while the current epoch serves.
//! 4. Under the write lock: re-apply the numbers changed since step 1 from
//!    the registry as it is now, make the next key current on disk (one
//!    atomic rename, then the old file is overwritten), and swap the epoch
//!    in memory. Requests that hold the old epoch finish on it; its key is
//!    wiped when the last of them drops it.
//!
//! A crash before the rename leaves the old key current and a pending key
//! that the next start wipes; after it, the new key is current. The
//! registry does not depend on the key, so it is consistent either way.
//! An announced key is removed only once it is current, so a crash at any
//! point leaves it announced until a rotation has switched to it.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use cds_core::{BucketBits, E164, PublicKey, VoprfServer};
use rayon::prelude::*;

use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::keystore;
use crate::state::State;
use crate::table::RecordTable;

/// What a completed rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rotated {
    /// The epoch that served before.
    pub(crate) retired: u64,
    /// The epoch serving now.
    pub(crate) epoch: u64,
    /// Records in the new table.
    pub(crate) records: usize,
    /// Milliseconds from claim to switch.
    pub(crate) took_ms: u64,
    /// Whether the new key is the one announced ahead of time.
    pub(crate) announced: bool,
}

/// The key the next rotation will switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Announced {
    /// The epoch it will serve as.
    pub(crate) epoch: u64,
    /// Its public key.
    pub(crate) public_key: PublicKey,
    /// Whether this call created it (false: it was announced before).
    pub(crate) created: bool,
}

/// What an app's server profile lists: the serving key and the announced
/// one, and the table's bucket bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProfileKeys {
    /// The serving epoch and its public key.
    pub(crate) current: (u64, PublicKey),
    /// The announced next epoch and key, if any.
    pub(crate) next: Option<(u64, PublicKey)>,
    /// The bucket bits of the serving table.
    pub(crate) bucket_bits: BucketBits,
}

/// Announce the next key (blocking: one file written and synced): the key
/// already announced, or a new one, stored durably beside the current key.
/// The next rotation switches to it. Refused while the server starts or a
/// rotation runs (so the answer is never a key about to become current).
pub(crate) fn announce(state: &State) -> Result<Announced, ServerError> {
    if let Some(replica) = &state.keys {
        return crate::replicated_keys::announce(replica);
    }
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = state.serving().ok_or(ServerError::Starting)?;
    if state
        .rotation
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
    {
        return Err(ServerError::RotationInProgress);
    }
    let (next, created) =
        keystore::announce_next(&state.config.data_dir, serving.oprf.public_key())?;
    if created {
        tracing::info!(
            epoch = format_args!("{:016x}", next.id),
            "announced the next key; the next rotation switches to it"
        );
    }
    Ok(Announced {
        epoch: next.id,
        public_key: *next.key.public(),
        created,
    })
}

/// The keys and bucket bits for a server profile, read together under the
/// write lock so a rotation's switch cannot fall between them.
pub(crate) fn profile_keys(state: &State) -> Result<ProfileKeys, ServerError> {
    if let Some(replica) = &state.keys {
        return crate::replicated_keys::profile_keys(state, replica);
    }
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let serving = state.serving().ok_or(ServerError::Starting)?;
    let current = *serving.oprf.public_key();
    let next = keystore::announced(&state.config.data_dir, &current)?;
    Ok(ProfileKeys {
        current: (serving.id, current),
        next: next.map(|e| (e.id, *e.key.public())),
        bucket_bits: serving.table.bits(),
    })
}

/// The claim on the one rotation that may run. Dropping it (on success,
/// error or panic) releases the claim under the write lock; unless the
/// switch happened, it first wipes the pending key, so no other rotation can
/// start before the leftovers of this one are gone.
struct Claim<'a> {
    state: &'a State,
    switched: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let state = self.state;
        let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.switched
            && let Err(e) = keystore::discard_next(&state.config.data_dir)
        {
            tracing::error!(error = %e, "the pending key could not be removed");
        }
        *state
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Rotate the key (blocking; minutes for millions of users). With keys
/// shared through PostgreSQL, every replica rotates together
/// ([`crate::replicated_keys::rotate`]). Fails without
/// changing anything if a rotation already runs, the server is starting or
/// stopping, or the registry or key file fails.
pub(crate) fn rotate(state: &State) -> Result<Rotated, ServerError> {
    if let Some(replica) = &state.keys {
        if state.serving().is_none() {
            return Err(ServerError::Starting);
        }
        return crate::replicated_keys::rotate(state, replica);
    }
    let started = Instant::now();
    {
        let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if state.serving().is_none() {
            return Err(ServerError::Starting);
        }
        let mut slot = state
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Err(ServerError::RotationInProgress);
        }
        *slot = Some(BTreeSet::new());
    }
    let mut claim = Claim {
        state,
        switched: false,
    };
    tracing::info!("key rotation started");
    let result = prepare_and_switch(state, started);
    match &result {
        Ok(_) => claim.switched = true,
        Err(ServerError::ShuttingDown) => {
            tracing::info!("key rotation abandoned: the server is shutting down")
        }
        Err(e) => {
            tracing::error!(error = %e, "key rotation failed; the current epoch keeps serving")
        }
    }
    drop(claim);
    result
}

fn prepare_and_switch(state: &State, started: Instant) -> Result<Rotated, ServerError> {
    let dir = &state.config.data_dir;
    let (next, announced) = {
        let current = state.serving().ok_or(ServerError::Starting)?;
        // Under the write lock, so no announcement is half made.
        let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
        keystore::prepare_next(dir, current.oprf.public_key())?
    };
    let next_key = *next.key.public();
    let oprf = VoprfServer::new(next.key);
    // A stop gives up the build at once; the claim then wipes the pending key.
    let (pool, table) = build_next_table(state, &oprf)?;

    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    if state.is_stopping() {
        return Err(ServerError::ShuttingDown);
    }
    // The numbers written since the registry was read, as they are now.
    // The claim stays held (an empty journal) until the switch is done.
    let replayed = replay(state, &pool, &table, &oprf)?;
    crate::contacts_only::install_all(state, &table, &oprf)?;

    // The point of no return: from here on the next key is the key.
    keystore::commit_next(dir)?;
    if announced {
        // Should this fail, the next start removes it (its key is current).
        if let Err(e) = keystore::retire_announced(dir, &next_key) {
            tracing::warn!(error = %e, "the used announcement could not be removed");
        }
    }
    let records = table.len();
    let old = state.switch_to(Arc::new(ServingEpoch::with_server(next.id, oprf, table)));
    state.metrics.rotations.inc();
    let took_ms = started.elapsed().as_millis() as u64;
    state.table_build_ms.store(took_ms, Ordering::Relaxed);
    let retired = old.map_or(0, |o| o.id);
    tracing::info!(
        retired_epoch = format_args!("{retired:016x}"),
        epoch = format_args!("{:016x}", next.id),
        records,
        replayed,
        took_ms,
        announced,
        "key rotation switched to the new epoch"
    );
    Ok(Rotated {
        retired,
        epoch: next.id,
        records,
        took_ms,
        announced,
    })
}

/// Build the next epoch's table under `oprf`, with the serving table's
/// bucket bits, from the discoverable users as the registry holds them now,
/// on a pool of half the cores (returned, for [`replay`]), while the
/// current epoch serves. A stop gives the build up at once
/// ([`ServerError::ShuttingDown`]).
pub(crate) fn build_next_table(
    state: &State,
    oprf: &VoprfServer,
) -> Result<(rayon::ThreadPool, RecordTable), ServerError> {
    let bits = state.serving().ok_or(ServerError::Starting)?.table.bits();
    let users = state.registry.discoverable_users()?;
    let pool = background_pool("cds-rotation")?;
    let table = pool
        .install(|| RecordTable::build(bits, oprf, &users, None, &|| state.is_stopping()))
        .ok_or(ServerError::ShuttingDown)?;
    Ok((pool, table))
}

/// A pool of half the cores (at least one) for a table built while the
/// current one serves, its threads named `name-i`.
pub(crate) fn background_pool(name: &'static str) -> Result<rayon::ThreadPool, ServerError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| ServerError::Task(format!("cannot start the {name} threads: {e}")))
}

/// Apply to `table` the numbers written since the rotation's journal was
/// last taken, as the registry holds them now; how many there were. The
/// journal is left empty (the claim stays held). Callers hold the write
/// lock.
pub(crate) fn replay(
    state: &State,
    pool: &rayon::ThreadPool,
    table: &RecordTable,
    oprf: &VoprfServer,
) -> Result<usize, ServerError> {
    let changed: BTreeSet<E164> = state
        .rotation
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let current = changed
        .iter()
        .map(|n| Ok((n, state.registry.get(n)?)))
        .collect::<Result<Vec<_>, ServerError>>()?;
    let changes = pool.install(|| {
        current
            .par_iter()
            .map(|(number, user)| match user {
                Some(user) => table.change_for(oprf, user),
                None => table.removal_for(oprf, number),
            })
            .collect()
    });
    table.apply_changes(changes);
    Ok(changed.len())
}
