//! The OPRF keys of a replicated deployment, in PostgreSQL, wrapped under a
//! key-encryption key (KEK) that each replica reads from its own file.
//!
//! The database holds, per key epoch, the public key, the state (announced,
//! next, current, retired) and the 32-byte seed sealed with
//! ChaCha20-Poly1305 under the KEK, with the epoch, the public key and the
//! state as associated data: a row whose epoch, key or state was changed
//! without the KEK does not open. A retired key's wrapped seed is erased at
//! the switch. The KEK never enters the database, so a dump alone yields
//! public keys and the epoch history, never a secret key.
//!
//! Every replica meets the same keys: the first one to start on an empty
//! database creates the current key inside a transaction holding an
//! advisory lock, the others load it. A replica whose KEK does not open
//! the current key refuses to start ([`ServerError::WrongKeyEncryptionKey`]).
//!
//! A rotation is two phases through the database (see
//! `crate::replicated_keys` for the replica side): [`KeyStore::begin_rotation`]
//! publishes the next key, each replica builds its table and reports it in
//! its heartbeat ([`KeyStore::heartbeat`]), and once every live replica is
//! ready [`KeyStore::switch`] makes it current. Replicas learn of both
//! phases by polling [`KeyStore::phase`] and by the `NOTIFY` on
//! [`CHANNEL`] that each phase sends: a missed notification costs latency,
//! never correctness.

use std::path::Path;
use std::time::Duration;

use cds_core::{KeyPair, Mode, PublicKey};
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand::Rng;
use zeroize::Zeroizing;

use super::{PooledClient, Postgres, pg_error};
use crate::error::ServerError;
use crate::keystore::{self, Epoch, KEY_INFO};
use crate::private_files::NewFileErrors;

/// The channel every phase change is notified on.
pub const CHANNEL: &str = "cds_keys";
/// Advisory lock held (per transaction) by every change of the keys.
const KEYS_LOCK: i64 = 0x6364_732d_6b65_7973; // "cds-keys"
const NONCE_LEN: usize = 12;
const SEED_LEN: usize = 32;
/// Length of a wrapped seed: nonce, ciphertext, tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + SEED_LEN + 16;

/// The state of a key epoch in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum KeyState {
    /// Announced ahead of a rotation (`AnnounceNextKey`).
    Announced = 1,
    /// Published by a rotation: replicas build its table.
    Next = 2,
    /// The key every replica serves.
    Current = 3,
    /// Served before; its wrapped seed is erased.
    Retired = 4,
}

/// The key-encryption key: 32 random bytes, from a file of 64 hex digits
/// readable by its owner only.
pub struct Kek(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// Read the KEK from `path` (mode 0600 or stricter on Unix).
    pub fn read(path: &Path) -> Result<Self, ServerError> {
        let bad = |reason| ServerError::KeyEncryptionKeyFile {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            return Err(bad("does not exist"));
        }
        crate::private_files::check_secret(path, "the key-encryption key file")?;
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|_| bad("cannot be read"))?;
        Self::parse(&text).map_err(bad)
    }

    /// Parse 64 hex digits (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.len() != 64 {
            return Err("does not hold 64 hex digits (32 bytes)");
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, key.as_mut())
            .map_err(|_| "holds characters other than hex digits")?;
        Ok(Self(key))
    }

    /// Write a fresh KEK (64 hex digits) to a new file at `path`, mode 0600.
    /// Refuses if anything is there already.
    pub fn create(path: &Path) -> Result<(), ServerError> {
        crate::private_files::create_hex_secret(
            path,
            NewFileErrors {
                exists: "a key-encryption key is never written over an existing file; choose another path or remove the file",
                create: "cannot create the key-encryption key file",
                write: "cannot write the key-encryption key file",
            },
        )
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&(*self.0).into())
    }

    /// Seal `seed` for the row (`epoch`, `public_key`, `state`).
    pub fn wrap(
        &self,
        seed: &[u8; SEED_LEN],
        epoch: u64,
        public_key: &PublicKey,
        state: KeyState,
    ) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(epoch, public_key, state);
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        // Sealing 32 bytes with a 32-byte key cannot fail; an empty result
        // would be refused by the table's length check.
        if let Ok(ct) = self.cipher().encrypt(
            &nonce.into(),
            Payload {
                msg: seed,
                aad: &aad,
            },
        ) {
            out.extend_from_slice(&ct);
        }
        out
    }

    /// Open a wrapped seed of the row (`epoch`, `public_key`, `state`).
    pub fn unwrap(
        &self,
        wrapped: &[u8],
        epoch: u64,
        public_key: &PublicKey,
        state: KeyState,
    ) -> Result<Zeroizing<[u8; SEED_LEN]>, ServerError> {
        let wrong = || ServerError::WrongKeyEncryptionKey { epoch };
        if wrapped.len() != WRAPPED_LEN {
            return Err(wrong());
        }
        let (nonce, ct) = wrapped.split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    &n.into(),
                    Payload {
                        msg: ct,
                        aad: &aad(epoch, public_key, state),
                    },
                )
                .map_err(|_| wrong())?,
        );
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        if plain.len() != SEED_LEN {
            return Err(wrong());
        }
        seed.copy_from_slice(&plain);
        Ok(seed)
    }
}

fn aad(epoch: u64, public_key: &PublicKey, state: KeyState) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + 8 + 32 + 1);
    aad.extend_from_slice(b"cds-v1 key wrap\0");
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(public_key.as_bytes());
    aad.push(state as u8);
    aad
}

fn epoch_from_seed(seed: &[u8; SEED_LEN]) -> Result<Epoch, ServerError> {
    let key = KeyPair::derive(Mode::Voprf, seed, KEY_INFO)
        .map_err(|_| ServerError::Task("a random seed did not derive a key".into()))?;
    Ok(Epoch {
        id: keystore::epoch_id(key.public()),
        key,
    })
}

fn random_seed() -> Zeroizing<[u8; SEED_LEN]> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    rand::rng().fill_bytes(seed.as_mut());
    seed
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Epoch identifiers are stored as BIGINT (the same 64 bits).
fn db_id(epoch: u64) -> i64 {
    epoch as i64
}

fn from_db_id(epoch: i64) -> u64 {
    epoch as u64
}

/// Where a deployment's rotation stands, as the database says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// The current epoch.
    pub current: u64,
    /// The next epoch a rotation has published, if one runs.
    pub next: Option<u64>,
}

/// The keys of a replicated deployment.
#[derive(Debug, Clone)]
pub struct KeyStore {
    pg: Postgres,
    kek: std::sync::Arc<Kek>,
}

impl KeyStore {
    /// The keys in `pg`, opened with `kek`.
    pub fn new(pg: Postgres, kek: Kek) -> Self {
        Self {
            pg,
            kek: std::sync::Arc::new(kek),
        }
    }

    /// The database.
    pub fn postgres(&self) -> &Postgres {
        &self.pg
    }

    /// The current key: created (exactly once across replicas starting
    /// together) if the database has none. Fails with
    /// [`ServerError::WrongKeyEncryptionKey`] if the KEK does not open it.
    pub async fn load_or_create_current(&self) -> Result<Epoch, ServerError> {
        let mut client = self.pg.client().await?;
        let tx = key_transaction(&mut client).await?;
        let row = tx
            .query_opt(
                "SELECT epoch, public_key, wrapped FROM key_epochs WHERE state = 3",
                &[],
            )
            .await
            .map_err(|e| pg_error("reading the current key", &e))?;
        let epoch = match row {
            Some(row) => {
                self.open_row(row.get(0), row.get(1), row.get(2), KeyState::Current)?
                    .0
            }
            None => {
                let seed = random_seed();
                let epoch = epoch_from_seed(&seed)?;
                self.insert(&tx, &seed, &epoch, KeyState::Current).await?;
                tracing::info!(
                    epoch = format_args!("{:016x}", epoch.id),
                    "created the OPRF key in the database (first replica of this deployment)"
                );
                epoch
            }
        };
        tx.commit()
            .await
            .map_err(|e| pg_error("committing the key", &e))?;
        Ok(epoch)
    }

    async fn insert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        seed: &[u8; SEED_LEN],
        epoch: &Epoch,
        state: KeyState,
    ) -> Result<(), ServerError> {
        let public = *epoch.key.public();
        let wrapped = self.kek.wrap(seed, epoch.id, &public, state);
        tx.execute(
            "INSERT INTO key_epochs (epoch, public_key, state, wrapped, created_unix) VALUES ($1, $2, $3, $4, $5)",
            &[
                &db_id(epoch.id),
                &public.as_bytes().as_slice(),
                &(state as i16),
                &wrapped,
                &unix_now(),
            ],
        )
        .await
        .map_err(|e| pg_error("storing a key", &e))?;
        Ok(())
    }

    fn open_row(
        &self,
        epoch: i64,
        public: Vec<u8>,
        wrapped: Option<Vec<u8>>,
        state: KeyState,
    ) -> Result<(Epoch, Zeroizing<[u8; SEED_LEN]>), ServerError> {
        let id = from_db_id(epoch);
        let wrong = || ServerError::WrongKeyEncryptionKey { epoch: id };
        let public = PublicKey::from_slice(&public).map_err(|_| wrong())?;
        let seed = self
            .kek
            .unwrap(wrapped.as_deref().unwrap_or_default(), id, &public, state)?;
        let opened = epoch_from_seed(&seed)?;
        // The stored public key and epoch must be the seed's.
        if opened.id != id || opened.key.public() != &public {
            return Err(wrong());
        }
        Ok((opened, seed))
    }

    /// The key in `state` (announced, next or current), opened.
    pub async fn key_in(&self, state: KeyState) -> Result<Option<Epoch>, ServerError> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt(
                "SELECT epoch, public_key, wrapped FROM key_epochs WHERE state = $1",
                &[&(state as i16)],
            )
            .await
            .map_err(|e| pg_error("reading a key", &e))?;
        row.map(|r| {
            self.open_row(r.get(0), r.get(1), r.get(2), state)
                .map(|o| o.0)
        })
        .transpose()
    }

    /// The public half of the key in `state`, without opening it.
    pub async fn public_in(
        &self,
        state: KeyState,
    ) -> Result<Option<(u64, PublicKey)>, ServerError> {
        let client = self.pg.client().await?;
        let row = client
            .query_opt(
                "SELECT epoch, public_key FROM key_epochs WHERE state = $1",
                &[&(state as i16)],
            )
            .await
            .map_err(|e| pg_error("reading a public key", &e))?;
        Ok(row.and_then(|r| {
            let public: Vec<u8> = r.get(1);
            PublicKey::from_slice(&public)
                .ok()
                .map(|p| (from_db_id(r.get(0)), p))
        }))
    }

    /// The current epoch and the next one, if a rotation runs.
    pub async fn phase(&self) -> Result<Option<Phase>, ServerError> {
        let client = self.pg.client().await?;
        let rows = client
            .query(
                "SELECT epoch, state FROM key_epochs WHERE state IN (2, 3)",
                &[],
            )
            .await
            .map_err(|e| pg_error("reading the key phase", &e))?;
        let mut current = None;
        let mut next = None;
        for r in rows {
            let state: i16 = r.get(1);
            let id = from_db_id(r.get(0));
            if state == KeyState::Current as i16 {
                current = Some(id);
            } else {
                next = Some(id);
            }
        }
        Ok(current.map(|current| Phase { current, next }))
    }

    /// A key transaction for starting a phase (announcing, or beginning a
    /// rotation): refused while a rotation runs; with the announced key,
    /// opened, if there is one.
    async fn idle_key_transaction<'c>(
        &self,
        client: &'c mut PooledClient,
    ) -> Result<
        (
            deadpool_postgres::Transaction<'c>,
            Option<(Epoch, Zeroizing<[u8; SEED_LEN]>)>,
        ),
        ServerError,
    > {
        let tx = key_transaction(client).await?;
        let running = tx
            .query_opt("SELECT 1 FROM key_epochs WHERE state = 2", &[])
            .await
            .map_err(|e| pg_error("reading the key phase", &e))?;
        if running.is_some() {
            return Err(ServerError::RotationInProgress);
        }
        let announced = tx
            .query_opt(
                "SELECT epoch, public_key, wrapped FROM key_epochs WHERE state = 1",
                &[],
            )
            .await
            .map_err(|e| pg_error("reading the announced key", &e))?
            .map(|r| self.open_row(r.get(0), r.get(1), r.get(2), KeyState::Announced))
            .transpose()?;
        Ok((tx, announced))
    }

    /// Announce the next key: the one already announced, or a new one.
    /// Says whether it was created now. Refused while a rotation runs.
    pub async fn announce(&self) -> Result<(Epoch, bool), ServerError> {
        let mut client = self.pg.client().await?;
        let (tx, announced) = self.idle_key_transaction(&mut client).await?;
        let result = match announced {
            Some((epoch, _)) => (epoch, false),
            None => {
                let seed = random_seed();
                let epoch = epoch_from_seed(&seed)?;
                self.insert(&tx, &seed, &epoch, KeyState::Announced).await?;
                (epoch, true)
            }
        };
        tx.commit()
            .await
            .map_err(|e| pg_error("committing the announced key", &e))?;
        Ok(result)
    }

    /// Phase one of a rotation: publish the next key (the announced one if
    /// there is one, else a new one) for every replica to build. Says
    /// whether it is the announced key. Refused if a rotation runs.
    pub async fn begin_rotation(&self) -> Result<(Epoch, bool), ServerError> {
        let mut client = self.pg.client().await?;
        let (tx, announced) = self.idle_key_transaction(&mut client).await?;
        let result = match announced {
            Some((epoch, seed)) => {
                self.restate(&tx, &epoch, &seed, KeyState::Announced, KeyState::Next)
                    .await?;
                (epoch, true)
            }
            None => {
                let seed = random_seed();
                let epoch = epoch_from_seed(&seed)?;
                self.insert(&tx, &seed, &epoch, KeyState::Next).await?;
                (epoch, false)
            }
        };
        notify(&tx).await?;
        tx.commit()
            .await
            .map_err(|e| pg_error("publishing the next key", &e))?;
        Ok(result)
    }

    /// Rewrap `epoch`'s seed for its new state and store both.
    async fn restate(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        epoch: &Epoch,
        seed: &[u8; SEED_LEN],
        from: KeyState,
        to: KeyState,
    ) -> Result<(), ServerError> {
        let public = *epoch.key.public();
        let wrapped = self.kek.wrap(seed, epoch.id, &public, to);
        let changed = tx
            .execute(
                "UPDATE key_epochs SET state = $1, wrapped = $2 WHERE epoch = $3 AND state = $4",
                &[&(to as i16), &wrapped, &db_id(epoch.id), &(from as i16)],
            )
            .await
            .map_err(|e| pg_error("changing a key's state", &e))?;
        if changed != 1 {
            return Err(ServerError::RotationInProgress);
        }
        Ok(())
    }

    /// The published next key `id`, opened (inside a key transaction).
    async fn next_row(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: u64,
    ) -> Result<(Epoch, Zeroizing<[u8; SEED_LEN]>), ServerError> {
        let r = tx
            .query_opt(
                "SELECT epoch, public_key, wrapped FROM key_epochs WHERE epoch = $1 AND state = 2",
                &[&db_id(id)],
            )
            .await
            .map_err(|e| pg_error("reading the next key", &e))?
            .ok_or(ServerError::RotationInProgress)?;
        self.open_row(r.get(0), r.get(1), r.get(2), KeyState::Next)
    }

    /// Give up a rotation of `next` (replicas drop its table): an announced
    /// key goes back to announced, a fresh one is deleted.
    pub async fn abort_rotation(&self, next: &Epoch, announced: bool) -> Result<(), ServerError> {
        let mut client = self.pg.client().await?;
        let tx = key_transaction(&mut client).await?;
        if announced {
            let (epoch, seed) = self.next_row(&tx, next.id).await?;
            self.restate(&tx, &epoch, &seed, KeyState::Next, KeyState::Announced)
                .await?;
        } else {
            tx.execute(
                "DELETE FROM key_epochs WHERE epoch = $1 AND state = 2",
                &[&db_id(next.id)],
            )
            .await
            .map_err(|e| pg_error("removing an abandoned key", &e))?;
        }
        notify(&tx).await?;
        tx.commit()
            .await
            .map_err(|e| pg_error("abandoning the rotation", &e))
    }

    /// Phase two: make `next` current and retire the current key (its
    /// wrapped seed erased). Returns the retired epoch.
    pub async fn switch(&self, next: &Epoch) -> Result<u64, ServerError> {
        let mut client = self.pg.client().await?;
        let tx = key_transaction(&mut client).await?;
        let retired: i64 = tx
            .query_one(
                "UPDATE key_epochs SET state = 4, wrapped = NULL, switched_unix = $1 WHERE state = 3 RETURNING epoch",
                &[&unix_now()],
            )
            .await
            .map_err(|e| pg_error("retiring the current key", &e))?
            .get(0);
        let (epoch, seed) = self.next_row(&tx, next.id).await?;
        self.restate(&tx, &epoch, &seed, KeyState::Next, KeyState::Current)
            .await?;
        tx.execute(
            "UPDATE key_epochs SET switched_unix = $1 WHERE epoch = $2",
            &[&unix_now(), &db_id(next.id)],
        )
        .await
        .map_err(|e| pg_error("switching the key", &e))?;
        notify(&tx).await?;
        tx.commit()
            .await
            .map_err(|e| pg_error("switching the key", &e))?;
        Ok(from_db_id(retired))
    }

    /// Record that `replica` is alive, serves `serving` and has built
    /// `ready` (the next epoch), if any.
    pub async fn heartbeat(
        &self,
        replica: &str,
        serving: u64,
        ready: Option<u64>,
    ) -> Result<(), ServerError> {
        let client = self.pg.client().await?;
        client
            .execute(
                "INSERT INTO key_replicas (replica, serving_epoch, ready_epoch, seen) VALUES ($1, $2, $3, now()) \
                 ON CONFLICT (replica) DO UPDATE SET serving_epoch = $2, ready_epoch = $3, seen = now()",
                &[&replica, &db_id(serving), &ready.map(db_id)],
            )
            .await
            .map_err(|e| pg_error("recording this replica's heartbeat", &e))?;
        Ok(())
    }

    /// Forget `replica` (it stopped).
    pub async fn leave(&self, replica: &str) -> Result<(), ServerError> {
        let client = self.pg.client().await?;
        client
            .execute("DELETE FROM key_replicas WHERE replica = $1", &[&replica])
            .await
            .map_err(|e| pg_error("removing this replica's heartbeat", &e))?;
        Ok(())
    }

    /// How many replicas seen within `live` have not built `next`.
    pub async fn not_ready(&self, next: u64, live: Duration) -> Result<i64, ServerError> {
        let client = self.pg.client().await?;
        let secs = live.as_secs_f64();
        let row = client
            .query_one(
                "SELECT count(*) FROM key_replicas WHERE seen > now() - make_interval(secs => $1) \
                 AND ready_epoch IS DISTINCT FROM $2",
                &[&secs, &db_id(next)],
            )
            .await
            .map_err(|e| pg_error("reading the replicas' heartbeats", &e))?;
        Ok(row.get(0))
    }
}

/// Open a key transaction on `client` and take the key lock, held until
/// it ends: every change of the keys is made under it.
async fn key_transaction(
    client: &mut PooledClient,
) -> Result<deadpool_postgres::Transaction<'_>, ServerError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error("starting a key transaction", &e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK])
        .await
        .map_err(|e| pg_error("taking the key lock", &e))?;
    Ok(tx)
}

async fn notify(tx: &tokio_postgres::Transaction<'_>) -> Result<(), ServerError> {
    tx.batch_execute(&format!("NOTIFY {CHANNEL}"))
        .await
        .map_err(|e| pg_error("notifying the replicas", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_seed_opens_only_for_its_own_epoch_key_and_state() {
        let kek = Kek::parse(&"11".repeat(32)).expect("64 hex digits");
        let seed = [7u8; 32];
        let epoch = epoch_from_seed(&seed).expect("derives");
        let public = *epoch.key.public();
        let wrapped = kek.wrap(&seed, epoch.id, &public, KeyState::Current);
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert!(!wrapped.windows(32).any(|w| w == seed), "seed in the clear");
        let opened = kek
            .unwrap(&wrapped, epoch.id, &public, KeyState::Current)
            .expect("opens");
        assert_eq!(*opened, seed);
        for state in [KeyState::Announced, KeyState::Next, KeyState::Retired] {
            assert!(kek.unwrap(&wrapped, epoch.id, &public, state).is_err());
        }
        assert!(
            kek.unwrap(&wrapped, epoch.id ^ 1, &public, KeyState::Current)
                .is_err()
        );
        let other = epoch_from_seed(&[8u8; 32]).expect("derives");
        assert!(
            kek.unwrap(&wrapped, epoch.id, other.key.public(), KeyState::Current)
                .is_err()
        );
        let wrong = Kek::parse(&"22".repeat(32)).expect("64 hex digits");
        assert!(matches!(
            wrong.unwrap(&wrapped, epoch.id, &public, KeyState::Current),
            Err(ServerError::WrongKeyEncryptionKey { .. })
        ));
    }

    #[test]
    fn a_kek_file_must_hold_exactly_64_hex_digits() {
        assert!(Kek::parse(&"ab".repeat(32)).is_ok());
        assert!(Kek::parse(&format!(" {}\n", "ab".repeat(32))).is_ok());
        assert!(Kek::parse(&"ab".repeat(31)).is_err());
        assert!(Kek::parse(&"zz".repeat(32)).is_err());
        assert!(Kek::parse("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn kek_parse_never_panics(text in ".{0,80}") {
            let _ = Kek::parse(&text);
        }

        #[test]
        fn unwrap_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let kek = Kek::parse(&"11".repeat(32)).expect("64 hex digits");
            let epoch = epoch_from_seed(&[7u8; 32]).expect("derives");
            proptest::prop_assert!(kek.unwrap(&bytes, epoch.id, epoch.key.public(), KeyState::Current).is_err());
        }
    }

    #[test]
    fn a_kek_file_is_created_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kek");
        Kek::create(&path).expect("creates");
        Kek::read(&path).expect("reads back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Kek::create(&path).is_err());
    }
}
