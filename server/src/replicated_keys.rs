//! Key epochs shared by replicas through PostgreSQL
//! ([`crate::postgres::keys`]): each replica's heartbeat, its following of
//! a rotation's two phases, and a rotation started on this replica.
//!
//! A rotation, started once on any replica ([`rotate`]):
//! 1. The initiator publishes the next key (`state = next`) and notifies.
//! 2. Every replica ([`follow`]) builds the next table from that key while
//!    the current epoch serves, replays the admin writes made meanwhile,
//!    and from then on accepts Discover for both epochs (admin writes reach
//!    both tables); its heartbeat says it is ready.
//! 3. Once every live replica (heartbeat within [`LIVE`]) is ready, the
//!    initiator makes the next key current and notifies.
//! 4. Every replica switches, and keeps accepting the retired epoch for
//!    [`GRACE`], so a client whose GetConfig and Discover reach different
//!    replicas is answered whichever switched first.
//!
//! Replicas learn of phases by `LISTEN` and by polling every [`POLL`]: a
//! missed notification costs latency, never correctness.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant};

use cds_core::VoprfServer;
use tokio::sync::Notify;

use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::keystore::Epoch;
use crate::postgres::keys::{CHANNEL, KeyState, KeyStore};
use crate::rotation::{Announced, ProfileKeys, Rotated, build_next_table, replay};
use crate::state::State;

/// How often a replica writes its heartbeat and reads the phase.
pub(crate) const POLL: Duration = Duration::from_millis(500);
/// A replica not seen for this long is not waited for by a rotation.
pub(crate) const LIVE: Duration = Duration::from_secs(5);
/// How long a retired epoch is still accepted after the switch.
pub(crate) const GRACE: Duration = Duration::from_secs(60);
/// How long a rotation waits for every live replica to build the next
/// table before it gives up.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(3600);

/// This replica's handle on the shared keys.
#[derive(Debug)]
pub(crate) struct Replica {
    /// The keys in PostgreSQL.
    pub(crate) store: KeyStore,
    /// Random identifier of this process in the heartbeats table.
    pub(crate) id: String,
    /// Woken by a notification on [`CHANNEL`].
    wake: Arc<Notify>,
    /// Set while this replica builds a next table.
    building: AtomicBool,
}

impl Replica {
    /// A replica of the deployment whose keys are in `store`.
    pub(crate) fn new(store: KeyStore) -> Self {
        let mut id = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut id);
        Self {
            store,
            id: hex::encode(id),
            wake: Arc::new(Notify::new()),
            building: AtomicBool::new(false),
        }
    }
}

/// Heartbeat, listen and follow the phases until `stopped`; then leave the
/// heartbeats table so no rotation waits for this replica.
pub(crate) async fn follow(
    state: Weak<State>,
    stopped: impl Future<Output = ()>,
) -> Result<(), String> {
    tokio::pin!(stopped);
    let Some(wake) = state
        .upgrade()
        .and_then(|s| s.keys.as_ref().map(|r| Arc::clone(&r.wake)))
    else {
        return Ok(());
    };
    let mut tick = tokio::time::interval(POLL);
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    let mut listen_client: Option<tokio_postgres::Client> = None;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        let Some(state) = state.upgrade() else {
            return Ok(());
        };
        let Some(replica) = state.keys.as_ref() else {
            return Ok(());
        };
        if listener.as_ref().is_none_or(|l| l.is_finished()) {
            match listen(&state).await {
                Ok((client, task)) => {
                    listen_client = Some(client);
                    listener = Some(task);
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for key phases; polling only"),
            }
        }
        if let Some(serving) = state.serving() {
            let ready = state.next_epoch().map(|n| n.id);
            if let Err(e) = replica
                .store
                .heartbeat(&replica.id, serving.id, ready)
                .await
            {
                tracing::warn!(error = %e, "the heartbeat could not be written");
            }
            if let Err(e) = step(&state).await {
                tracing::error!(error = %e, "following the key phases failed; retrying");
            }
        }
    }
    drop(listen_client);
    if let Some(state) = state.upgrade()
        && let Some(replica) = state.keys.as_ref()
        && let Err(e) = replica.store.leave(&replica.id).await
    {
        tracing::warn!(error = %e, "this replica's heartbeat could not be removed");
    }
    Ok(())
}

/// Open a dedicated connection that `LISTEN`s on [`CHANNEL`] and wakes
/// the follower on every notification.
async fn listen(
    state: &Arc<State>,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), ServerError> {
    let replica = state.keys.as_ref().ok_or(ServerError::Starting)?;
    let (client, mut conn) = replica.store.postgres().dedicated().await?;
    let weak = Arc::downgrade(state);
    let task = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => match weak.upgrade() {
                    Some(s) => {
                        if let Some(r) = s.keys.as_ref() {
                            r.wake.notify_one();
                        }
                    }
                    None => return,
                },
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| crate::postgres::pg_error("listening for key phases", &e))?;
    Ok((client, task))
}

/// Act on the phase the database holds: build a published next epoch,
/// drop an abandoned one, switch to a new current one.
async fn step(state: &Arc<State>) -> Result<(), ServerError> {
    let Some(replica) = state.keys.as_ref() else {
        return Ok(());
    };
    let Some(phase) = replica.store.phase().await? else {
        return Ok(());
    };
    let Some(serving) = state.serving() else {
        return Ok(());
    };
    let built = state.next_epoch().map(|n| n.id);
    if phase.current != serving.id {
        let next = match built {
            Some(id) if id == phase.current => None,
            // Missed the first phase (started or stalled meanwhile): build
            // the current key's table now, then switch.
            _ => Some(
                replica
                    .store
                    .key_in(KeyState::Current)
                    .await?
                    .ok_or(ServerError::Starting)?,
            ),
        };
        let state = Arc::clone(state);
        return blocking(move || {
            if let Some(epoch) = next {
                build_next(&state, epoch)?;
            }
            switch(&state)
        })
        .await;
    }
    match (phase.next, built) {
        (Some(next), Some(b)) if b == next => {}
        (Some(next), _) => {
            if replica.building.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            let key = replica.store.key_in(KeyState::Next).await;
            let state2 = Arc::clone(state);
            let result = match key {
                Ok(Some(epoch)) if epoch.id == next => {
                    blocking(move || build_next(&state2, epoch)).await
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            replica.building.store(false, Ordering::Release);
            result?;
        }
        (None, Some(_)) => {
            // Abandoned by its initiator.
            let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
            state.set_next(None);
            *state
                .rotation
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            tracing::info!("the key rotation was abandoned; the next table was dropped");
        }
        (None, None) => {}
    }
    state.retire_with_grace(None, Instant::now());
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Task(e.to_string()))?
}

/// Build `epoch`'s table from the registry while the current one serves,
/// then (under the write lock) replay the writes made meanwhile and accept
/// it for Discover beside the current epoch. Blocking.
fn build_next(state: &State, epoch: Epoch) -> Result<(), ServerError> {
    let started = Instant::now();
    {
        let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
        *state
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(BTreeSet::new());
    }
    let oprf = VoprfServer::new(epoch.key);
    let (pool, table) = build_next_table(state, &oprf)?;
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    replay(state, &pool, &table, &oprf)?;
    crate::contacts_only::install_all(state, &table, &oprf)?;
    let took_ms = started.elapsed().as_millis() as u64;
    state.table_build_ms.store(took_ms, Ordering::Relaxed);
    tracing::info!(
        epoch = format_args!("{:016x}", epoch.id),
        records = table.len(),
        took_ms,
        "next key epoch built; accepting it beside the current one"
    );
    state.set_next(Some(Arc::new(ServingEpoch::with_server(
        epoch.id, oprf, table,
    ))));
    Ok(())
}

/// Serve the built next epoch; keep the retired one for [`GRACE`].
/// Blocking.
fn switch(state: &State) -> Result<(), ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let next = state.set_next(None).ok_or(ServerError::Starting)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| ServerError::Task(format!("cannot start the rotation thread: {e}")))?;
    replay(state, &pool, &next.table, &next.oprf)?;
    *state
        .rotation
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = None;
    let id = next.id;
    let old = state.switch_to(next);
    let retired = old.as_ref().map_or(0, |o| o.id);
    state.retire_with_grace(old, Instant::now() + GRACE);
    state.metrics.rotations.inc();
    tracing::info!(
        retired_epoch = format_args!("{retired:016x}"),
        epoch = format_args!("{id:016x}"),
        "switched to the new key epoch (the retired one is accepted for the grace period)"
    );
    Ok(())
}

/// Rotate across every replica (blocking; runs on the blocking pool):
/// publish the next key, wait until every live replica has built it, then
/// switch. Gives up (the current epoch keeps serving) if a replica stays
/// unready for [`READY_TIMEOUT`] or the server stops.
pub(crate) fn rotate(state: &State, replica: &Replica) -> Result<Rotated, ServerError> {
    let handle = tokio::runtime::Handle::current();
    let started = Instant::now();
    let retired_before = state.serving().ok_or(ServerError::Starting)?.id;
    let (next, announced) = handle.block_on(replica.store.begin_rotation())?;
    tracing::info!(
        epoch = format_args!("{:016x}", next.id),
        "key rotation published; waiting for every replica to build it"
    );
    replica.wake.notify_one();
    let abandon = |e: ServerError| {
        if let Err(a) = handle.block_on(replica.store.abort_rotation(&next, announced)) {
            tracing::error!(error = %a, "the abandoned rotation could not be withdrawn");
        }
        e
    };
    loop {
        if state.is_stopping() {
            return Err(abandon(ServerError::ShuttingDown));
        }
        let waiting = match handle.block_on(replica.store.not_ready(next.id, LIVE)) {
            Ok(n) => n,
            Err(e) => return Err(abandon(e)),
        };
        // This replica is live, so 0 includes it being ready.
        if waiting == 0 && state.next_epoch().is_some_and(|n| n.id == next.id) {
            break;
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(abandon(ServerError::ReplicasNotReady {
                waiting,
                waited_s: READY_TIMEOUT.as_secs(),
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let retired = handle.block_on(replica.store.switch(&next))?;
    replica.wake.notify_one();
    // Wait for this replica's own switch so the answer describes it.
    let deadline = Instant::now() + LIVE;
    while state.serving().is_some_and(|s| s.id != next.id) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let serving = state.serving().ok_or(ServerError::Starting)?;
    let took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        retired_epoch = format_args!("{retired:016x}"),
        epoch = format_args!("{:016x}", next.id),
        took_ms,
        announced,
        "key rotation switched every replica to the new epoch"
    );
    Ok(Rotated {
        retired: if retired == 0 {
            retired_before
        } else {
            retired
        },
        epoch: next.id,
        records: serving.table.len(),
        took_ms,
        announced,
    })
}

/// Announce the next key in the database (blocking).
pub(crate) fn announce(replica: &Replica) -> Result<Announced, ServerError> {
    let (next, created) = tokio::runtime::Handle::current().block_on(replica.store.announce())?;
    Ok(Announced {
        epoch: next.id,
        public_key: *next.key.public(),
        created,
    })
}

/// The serving key and the announced one (blocking).
pub(crate) fn profile_keys(state: &State, replica: &Replica) -> Result<ProfileKeys, ServerError> {
    let announced =
        tokio::runtime::Handle::current().block_on(replica.store.public_in(KeyState::Announced))?;
    let serving = state.serving().ok_or(ServerError::Starting)?;
    Ok(ProfileKeys {
        current: (serving.id, *serving.oprf.public_key()),
        next: announced,
        bucket_bits: serving.table.bits(),
    })
}
