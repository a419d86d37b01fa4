//! The registry store (`RegistryStore`) in PostgreSQL: every write in one transaction with its
//! change-feed rows, then `NOTIFY` (delivered at commit).
//!
//! The trait is blocking and is called from blocking contexts (the blocking
//! pool, rayon, plain threads); the registry owns a small runtime of its
//! own that drives its connections, and each call waits on it with
//! `block_on`. The caller's runtime is never entered or blocked.
//!
//! Feed numbers come from the one `feed_head` row, updated last in each
//! writing transaction: its row lock is held until commit, so numbers are
//! handed out in commit order without gaps, and a reader that sees change
//! `n` has every change before it.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use cds_core::{E164, Label};
use tokio::sync::Notify;
use tokio_postgres::IsolationLevel;

use super::{PooledClient, Postgres, pg_error};
use crate::contacts_only::StoredList;
use crate::error::ServerError;
use crate::registry::{ChangePage, LoggedChange, Upserted, User, UserChange};
use crate::store::RegistryStore;

/// The channel every write notifies and every replica listens on.
pub const CHANNEL: &str = "cds_feed";

const KIND_UPSERTED: i16 = 1;
const KIND_REMOVED: i16 = 2;
const KIND_LIST_STORED: i16 = 3;
const KIND_LIST_REMOVED: i16 = 4;

/// One entry of the feed as a replica follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEntry {
    /// A user changed.
    User(UserChange),
    /// A contacts-only allow-list was stored (`Some`) or removed (`None`).
    AllowList(E164, Option<StoredList>),
}

/// A consistent starting point: every discoverable user, and the last
/// change they include.
#[derive(Debug)]
pub struct Snapshot {
    /// Every discoverable user.
    pub users: Vec<User>,
    /// Every stored allow-list whose user is registered and not
    /// discoverable by everybody: the lists a replica serves.
    pub allow_lists: Vec<(E164, StoredList)>,
    /// The last feed number the snapshot includes (0: none).
    pub mark: u64,
}

/// The registry in PostgreSQL.
pub struct PostgresRegistry {
    pg: Postgres,
    /// Runs the connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    wakeups: Arc<Notify>,
}

impl std::fmt::Debug for PostgresRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRegistry")
            .field("pg", &self.pg)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresRegistry {
    fn drop(&mut self) {
        // May be dropped on an async worker: never block there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn digits(number: &E164) -> i64 {
    // E.164 has at most 15 digits: always below i64::MAX.
    number.to_u64() as i64
}

fn number_of(raw: i64) -> Result<E164, ServerError> {
    u64::try_from(raw)
        .ok()
        .and_then(|d| E164::from_u64(d).ok())
        .ok_or(ServerError::Postgres {
            what: "reading a number",
            detail:
                "a stored number is not a valid E.164 number; the database was changed outside cds"
                    .into(),
        })
}

fn user_of(number: i64, label: Vec<u8>, discoverable: bool) -> Result<User, ServerError> {
    Ok(User {
        number: number_of(number)?,
        label: Label::new(label).map_err(|_| ServerError::Postgres {
            what: "reading a label",
            detail: "a stored label is longer than 64 bytes; the database was changed outside cds"
                .into(),
        })?,
        discoverable,
    })
}

fn list_of(raw: &[u8]) -> Result<StoredList, ServerError> {
    StoredList::decode(raw).ok_or(ServerError::Postgres {
        what: "reading an allow-list",
        detail: "a stored allow-list cannot be decoded; the database was changed outside cds"
            .into(),
    })
}

/// Take `n` feed numbers (the first is returned), holding the head row
/// lock until the transaction ends, and notify the listeners at commit.
async fn take_seqs(
    txn: &deadpool_postgres::Transaction<'_>,
    n: usize,
) -> Result<(i64, i64), ServerError> {
    let n = n as i64;
    let row = txn
        .query_one(
            "UPDATE feed_head SET next_seq = next_seq + $1 RETURNING next_seq - $1, \
             extract(epoch from now())::bigint",
            &[&n],
        )
        .await
        .map_err(|e| pg_error("numbering the change", &e))?;
    txn.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await
        .map_err(|e| pg_error("notifying the replicas", &e))?;
    Ok((row.get(0), row.get(1)))
}

/// One change as the feed logs it: its kind and number, and the columns
/// that kind carries (a user's label and flag; a stored allow-list).
struct Change<'a> {
    kind: i16,
    number: i64,
    label: Option<&'a [u8]>,
    discoverable: Option<bool>,
    list: Option<&'a [u8]>,
}

impl<'a> Change<'a> {
    fn upserted(number: i64, label: &'a [u8], discoverable: bool) -> Self {
        Self {
            kind: KIND_UPSERTED,
            number,
            label: Some(label),
            discoverable: Some(discoverable),
            list: None,
        }
    }

    fn removed(number: i64) -> Self {
        Self::bare(KIND_REMOVED, number)
    }

    fn list_stored(number: i64, list: &'a [u8]) -> Self {
        Self {
            list: Some(list),
            ..Self::bare(KIND_LIST_STORED, number)
        }
    }

    fn list_removed(number: i64) -> Self {
        Self::bare(KIND_LIST_REMOVED, number)
    }

    fn bare(kind: i16, number: i64) -> Self {
        Self {
            kind,
            number,
            label: None,
            discoverable: None,
            list: None,
        }
    }
}

/// Start a write on `client`; [`log_change`] ends it.
async fn begin_write(
    client: &mut PooledClient,
) -> Result<deadpool_postgres::Transaction<'_>, ServerError> {
    client
        .transaction()
        .await
        .map_err(|e| pg_error("starting a write", &e))
}

/// End a write: number its `changes` from the feed head, in order, log
/// them in the feed in one statement, and commit (the replicas are
/// notified at commit).
async fn log_change(
    txn: deadpool_postgres::Transaction<'_>,
    changes: &[Change<'_>],
) -> Result<(), ServerError> {
    let (first, at) = take_seqs(&txn, changes.len()).await?;
    let seqs: Vec<i64> = (first..first + changes.len() as i64).collect();
    let kinds: Vec<i16> = changes.iter().map(|c| c.kind).collect();
    let numbers: Vec<i64> = changes.iter().map(|c| c.number).collect();
    let labels: Vec<Option<&[u8]>> = changes.iter().map(|c| c.label).collect();
    let flags: Vec<Option<bool>> = changes.iter().map(|c| c.discoverable).collect();
    let lists: Vec<Option<&[u8]>> = changes.iter().map(|c| c.list).collect();
    txn.execute(
        "INSERT INTO changes (seq, at_unix, kind, number, label, discoverable, list) \
         SELECT s, $2, k, n, l, d, li \
         FROM unnest($1::int8[], $3::int2[], $4::int8[], $5::bytea[], $6::bool[], $7::bytea[]) \
         AS t(s, k, n, l, d, li)",
        &[&seqs, &at, &kinds, &numbers, &labels, &flags, &lists],
    )
    .await
    .map_err(|e| pg_error("logging the change", &e))?;
    txn.commit()
        .await
        .map_err(|e| pg_error("committing a write", &e))
}

impl PostgresRegistry {
    /// Connect to `url` (confined to `schema` if given) and migrate.
    /// Blocking.
    pub fn open(url: &str, schema: Option<&str>) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cds-postgres")
            .enable_all()
            .build()
            .map_err(|e| ServerError::Task(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let pg = runtime.block_on(Postgres::connect(url, schema))?;
        Ok(Self {
            pg,
            runtime: Some(runtime),
            wakeups: Arc::new(Notify::new()),
        })
    }

    fn run<T>(&self, f: impl Future<Output = Result<T, ServerError>>) -> Result<T, ServerError> {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => Err(ServerError::ShuttingDown),
        }
    }

    /// Notified whenever a `NOTIFY` on [`CHANNEL`] arrives (a hint only:
    /// followers also poll). Starts the listening connection on first use;
    /// it reconnects by itself.
    pub fn wakeups(&self) -> Arc<Notify> {
        if let Some(rt) = &self.runtime {
            rt.spawn(listen(self.pg.clone(), Arc::clone(&self.wakeups)));
        }
        Arc::clone(&self.wakeups)
    }

    /// Every discoverable user, every served allow-list and the feed's
    /// high-water mark, read in one REPEATABLE READ transaction.
    pub fn snapshot(&self) -> Result<Snapshot, ServerError> {
        self.run(async {
            let mut client = self.pg.client().await?;
            let txn = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| pg_error("starting the snapshot", &e))?;
            let head: i64 = txn
                .query_one("SELECT next_seq FROM feed_head", &[])
                .await
                .map_err(|e| pg_error("reading the feed head", &e))?
                .get(0);
            let rows = txn
                .query("SELECT number, label FROM users WHERE discoverable", &[])
                .await
                .map_err(|e| pg_error("reading the users", &e))?;
            let mut users = Vec::with_capacity(rows.len());
            for r in rows {
                users.push(user_of(r.get(0), r.get(1), true)?);
            }
            let mut allow_lists = Vec::new();
            for r in txn
                .query(
                    "SELECT a.number, a.list FROM allow_lists a \
                     JOIN users u ON u.number = a.number WHERE NOT u.discoverable",
                    &[],
                )
                .await
                .map_err(|e| pg_error("reading the allow-lists", &e))?
            {
                allow_lists.push((number_of(r.get(0))?, list_of(r.get(1))?));
            }
            txn.commit()
                .await
                .map_err(|e| pg_error("ending the snapshot", &e))?;
            Ok(Snapshot {
                users,
                allow_lists,
                mark: (head - 1).max(0) as u64,
            })
        })
    }

    /// Up to `limit` feed entries after `after`, every kind, in order,
    /// with when each was written; and the oldest number still kept (the
    /// head's if none is).
    pub fn feed_after(&self, after: u64, limit: usize) -> Result<FeedPage, ServerError> {
        self.run(async {
            let client = self.pg.client().await?;
            let (changes, _, oldest) = read_changes(&client, after, limit, true).await?;
            let mut page = FeedPage {
                entries: Vec::with_capacity(changes.len()),
                written_us: Vec::with_capacity(changes.len()),
                oldest,
            };
            for c in changes {
                page.entries.push((c.seq, c.entry));
                page.written_us.push(c.written_us);
            }
            Ok(page)
        })
    }
}

/// One page of the feed for a follower: entries in order, when each was
/// written (microseconds since the Unix epoch, by the database's clock;
/// `None` for changes written before migration V3), and the oldest number
/// still kept.
#[derive(Debug)]
pub struct FeedPage {
    /// `(seq, entry)` in sequence order.
    pub entries: Vec<(u64, FeedEntry)>,
    /// The write time of each entry, in the same order.
    pub written_us: Vec<Option<i64>>,
    /// The oldest number still kept (the head's if none is).
    pub oldest: u64,
}

/// One row of the feed as read.
struct ReadChange {
    seq: u64,
    at_unix: u64,
    written_us: Option<i64>,
    entry: FeedEntry,
}

/// Rows of the feed after `after`; with `all` false only user changes.
/// Returns the entries, the head and the oldest number kept.
async fn read_changes(
    client: &tokio_postgres::Client,
    after: u64,
    limit: usize,
    all: bool,
) -> Result<(Vec<ReadChange>, u64, u64), ServerError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let bounds = client
        .query_one(
            "SELECT h.next_seq, coalesce((SELECT min(seq) FROM changes), h.next_seq) FROM feed_head h",
            &[],
        )
        .await
        .map_err(|e| pg_error("reading the feed head", &e))?;
    let (head, oldest): (i64, i64) = (bounds.get(0), bounds.get(1));
    let rows = client
        .query(
            "SELECT seq, at_unix, kind, number, label, discoverable, list, written_us FROM changes \
             WHERE seq > $1 AND ($3 OR kind IN (1, 2)) ORDER BY seq LIMIT $2",
            &[&after, &limit, &all],
        )
        .await
        .map_err(|e| pg_error("reading the change feed", &e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let seq: i64 = r.get(0);
        let kind: i16 = r.get(2);
        let number: i64 = r.get(3);
        let corrupt = || ServerError::CorruptChange { seq: seq as u64 };
        let entry = match kind {
            KIND_UPSERTED => {
                let label: Option<Vec<u8>> = r.get(4);
                let discoverable: Option<bool> = r.get(5);
                FeedEntry::User(UserChange::Upserted(
                    user_of(
                        number,
                        label.ok_or_else(corrupt)?,
                        discoverable.ok_or_else(corrupt)?,
                    )
                    .map_err(|_| corrupt())?,
                ))
            }
            KIND_REMOVED => FeedEntry::User(UserChange::Removed(
                number_of(number).map_err(|_| corrupt())?,
            )),
            KIND_LIST_STORED => {
                let list: Option<Vec<u8>> = r.get(6);
                FeedEntry::AllowList(
                    number_of(number).map_err(|_| corrupt())?,
                    Some(list_of(&list.ok_or_else(corrupt)?).map_err(|_| corrupt())?),
                )
            }
            KIND_LIST_REMOVED => {
                FeedEntry::AllowList(number_of(number).map_err(|_| corrupt())?, None)
            }
            _ => return Err(corrupt()),
        };
        let at: i64 = r.get(1);
        out.push(ReadChange {
            seq: seq as u64,
            at_unix: at.max(0) as u64,
            written_us: r.get(7),
            entry,
        });
    }
    Ok((out, head as u64, oldest as u64))
}

/// Keep a `LISTEN` connection open and wake `wakeups` on every
/// notification (and on every reconnection, as one may have been missed).
async fn listen(pg: Postgres, wakeups: Arc<Notify>) {
    loop {
        match pg.dedicated().await {
            Ok((client, mut connection)) => {
                // The connection must be driven for LISTEN to complete, and
                // then delivers the notifications.
                let drive = async {
                    while let Some(Ok(message)) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        if let tokio_postgres::AsyncMessage::Notification(_) = message {
                            wakeups.notify_one();
                        }
                    }
                };
                tokio::pin!(drive);
                let statement = format!("LISTEN {CHANNEL}");
                let listened = client.batch_execute(&statement);
                tokio::select! {
                    r = listened => match r {
                        Ok(()) => {
                            // Anything committed before the LISTEN is found
                            // by the next poll; wake it now.
                            wakeups.notify_one();
                            (&mut drive).await;
                        }
                        Err(e) => tracing::warn!(
                            error = %pg_error("listening for changes", &e),
                            "polling the change feed only until the listening connection is back"
                        ),
                    },
                    () = &mut drive => {}
                }
                tracing::warn!("the registry's listening connection closed; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the registry's listening connection; retrying");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

impl RegistryStore for PostgresRegistry {
    fn upsert(&self, users: &[User]) -> Result<Vec<Upserted>, ServerError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        self.run(async {
            let mut client = self.pg.client().await?;
            let txn = begin_write(&mut client).await?;
            let numbers: Vec<i64> = users.iter().map(|u| digits(&u.number)).collect();
            let labels: Vec<&[u8]> = users.iter().map(|u| u.label.as_bytes()).collect();
            let flags: Vec<bool> = users.iter().map(|u| u.discoverable).collect();
            let unique = numbers.iter().collect::<HashSet<_>>().len() == numbers.len();
            let mut out = Vec::with_capacity(users.len());
            if unique {
                // One statement; `xmax = 0` marks rows inserted (not updated).
                let rows = txn
                    .query(
                        "INSERT INTO users (number, label, discoverable) \
                         SELECT * FROM unnest($1::int8[], $2::bytea[], $3::bool[]) \
                         ON CONFLICT (number) DO UPDATE \
                         SET label = EXCLUDED.label, discoverable = EXCLUDED.discoverable \
                         RETURNING number, (xmax = 0)",
                        &[&numbers, &labels, &flags],
                    )
                    .await
                    .map_err(|e| pg_error("writing users", &e))?;
                let created: HashSet<i64> = rows
                    .iter()
                    .filter(|r| r.get::<_, bool>(1))
                    .map(|r| r.get(0))
                    .collect();
                out.extend(numbers.iter().map(|n| {
                    if created.contains(n) {
                        Upserted::Created
                    } else {
                        Upserted::Updated
                    }
                }));
            } else {
                // A number twice in one batch: one row at a time, the last wins.
                for ((n, l), d) in numbers.iter().zip(&labels).zip(&flags) {
                    let row = txn
                        .query_one(
                            "INSERT INTO users (number, label, discoverable) VALUES ($1, $2, $3) \
                             ON CONFLICT (number) DO UPDATE \
                             SET label = EXCLUDED.label, discoverable = EXCLUDED.discoverable \
                             RETURNING (xmax = 0)",
                            &[n, l, d],
                        )
                        .await
                        .map_err(|e| pg_error("writing users", &e))?;
                    out.push(if row.get(0) {
                        Upserted::Created
                    } else {
                        Upserted::Updated
                    });
                }
            }
            let changes: Vec<Change<'_>> = numbers
                .iter()
                .zip(&labels)
                .zip(&flags)
                .map(|((n, l), d)| Change::upserted(*n, l, *d))
                .collect();
            log_change(txn, &changes).await?;
            Ok(out)
        })
    }

    fn remove(&self, number: &E164) -> Result<bool, ServerError> {
        let n = digits(number);
        self.run(async {
            let mut client = self.pg.client().await?;
            let txn = begin_write(&mut client).await?;
            let removed = txn
                .execute("DELETE FROM users WHERE number = $1", &[&n])
                .await
                .map_err(|e| pg_error("removing a user", &e))?;
            if removed == 0 {
                return Ok(false);
            }
            log_change(txn, &[Change::removed(n)]).await?;
            Ok(true)
        })
    }

    fn set_discoverable(
        &self,
        number: &E164,
        discoverable: bool,
    ) -> Result<Option<User>, ServerError> {
        let n = digits(number);
        self.run(async {
            let mut client = self.pg.client().await?;
            let txn = begin_write(&mut client).await?;
            let Some(row) = txn
                .query_opt(
                    "UPDATE users SET discoverable = $2 WHERE number = $1 RETURNING label",
                    &[&n, &discoverable],
                )
                .await
                .map_err(|e| pg_error("changing discoverability", &e))?
            else {
                return Ok(None);
            };
            let label: Vec<u8> = row.get(0);
            log_change(txn, &[Change::upserted(n, &label, discoverable)]).await?;
            Ok(Some(user_of(n, label, discoverable)?))
        })
    }

    fn get(&self, number: &E164) -> Result<Option<User>, ServerError> {
        let n = digits(number);
        self.run(async {
            let client = self.pg.client().await?;
            let row = client
                .query_opt(
                    "SELECT label, discoverable FROM users WHERE number = $1",
                    &[&n],
                )
                .await
                .map_err(|e| pg_error("reading a user", &e))?;
            row.map(|r| user_of(n, r.get(0), r.get(1))).transpose()
        })
    }

    fn discoverable_users(&self) -> Result<Vec<User>, ServerError> {
        Ok(self.snapshot()?.users)
    }

    fn count(&self) -> Result<u64, ServerError> {
        self.run(async {
            let client = self.pg.client().await?;
            let n: i64 = client
                .query_one("SELECT count(*) FROM users", &[])
                .await
                .map_err(|e| pg_error("counting users", &e))?
                .get(0);
            Ok(n as u64)
        })
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<ChangePage, ServerError> {
        self.run(async {
            let client = self.pg.client().await?;
            // The Admin feed reports user changes only; allow-list entries
            // leave gaps in its numbers.
            let (entries, head, oldest) = read_changes(&client, after, limit, false).await?;
            let changes = entries
                .into_iter()
                .filter_map(|c| match c.entry {
                    FeedEntry::User(change) => Some(LoggedChange {
                        seq: c.seq,
                        at_unix: c.at_unix,
                        change,
                    }),
                    FeedEntry::AllowList(..) => None,
                })
                .collect();
            Ok(ChangePage {
                changes,
                next_seq: head,
                oldest_retained: oldest,
            })
        })
    }

    fn prune_changes(&self, cutoff_unix: u64) -> Result<u64, ServerError> {
        let cutoff = i64::try_from(cutoff_unix).unwrap_or(i64::MAX);
        self.run(async {
            let client = self.pg.client().await?;
            let n = client
                .execute("DELETE FROM changes WHERE at_unix < $1", &[&cutoff])
                .await
                .map_err(|e| pg_error("pruning the change feed", &e))?;
            Ok(n)
        })
    }

    fn allow_list(&self, number: &E164) -> Result<Option<StoredList>, ServerError> {
        let n = digits(number);
        self.run(async {
            let client = self.pg.client().await?;
            let row = client
                .query_opt("SELECT list FROM allow_lists WHERE number = $1", &[&n])
                .await
                .map_err(|e| pg_error("reading an allow-list", &e))?;
            row.map(|r| list_of(r.get(0))).transpose()
        })
    }

    fn with_allow_lists(
        &self,
        numbers: &mut dyn Iterator<Item = &E164>,
    ) -> Result<Vec<E164>, ServerError> {
        let wanted: Vec<i64> = numbers.map(digits).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        self.run(async {
            let client = self.pg.client().await?;
            let rows = client
                .query(
                    "SELECT number FROM allow_lists WHERE number = ANY($1)",
                    &[&wanted],
                )
                .await
                .map_err(|e| pg_error("reading allow-lists", &e))?;
            rows.iter().map(|r| number_of(r.get(0))).collect()
        })
    }

    fn put_allow_list(&self, number: &E164, list: &StoredList) -> Result<(), ServerError> {
        let n = digits(number);
        let encoded = list.encode();
        self.run(async {
            let mut client = self.pg.client().await?;
            let txn = begin_write(&mut client).await?;
            txn.execute(
                "INSERT INTO allow_lists (number, list) VALUES ($1, $2) \
                 ON CONFLICT (number) DO UPDATE SET list = EXCLUDED.list",
                &[&n, &encoded],
            )
            .await
            .map_err(|e| pg_error("storing an allow-list", &e))?;
            log_change(txn, &[Change::list_stored(n, &encoded)]).await
        })
    }

    fn remove_allow_list(&self, number: &E164) -> Result<Option<StoredList>, ServerError> {
        let n = digits(number);
        self.run(async {
            let mut client = self.pg.client().await?;
            let txn = begin_write(&mut client).await?;
            let Some(row) = txn
                .query_opt(
                    "DELETE FROM allow_lists WHERE number = $1 RETURNING list",
                    &[&n],
                )
                .await
                .map_err(|e| pg_error("removing an allow-list", &e))?
            else {
                return Ok(None);
            };
            let old = list_of(row.get(0))?;
            log_change(txn, &[Change::list_removed(n)]).await?;
            Ok(Some(old))
        })
    }

    fn allow_lists(&self) -> Result<Vec<(E164, StoredList)>, ServerError> {
        self.run(async {
            let client = self.pg.client().await?;
            let mut out = Vec::new();
            for r in client
                .query("SELECT number, list FROM allow_lists", &[])
                .await
                .map_err(|e| pg_error("reading the allow-lists", &e))?
            {
                out.push((number_of(r.get(0))?, list_of(r.get(1))?));
            }
            Ok(out)
        })
    }

    fn shared_feed(&self) -> Option<&PostgresRegistry> {
        Some(self)
    }
}
