//! The registry in PostgreSQL, shared by every replica: connecting, the
//! connection pool and the versioned schema.
//!
//! [`Postgres::connect`] parses a `postgres://` URL, builds a pool of
//! connections and brings the schema up to date with the migrations in
//! `migrations/` (embedded in the binary by refinery, applied in version
//! order under an advisory lock so replicas starting together migrate
//! once). An optional schema name isolates one deployment (or one test) in
//! a shared database: every connection of the pool, and every dedicated
//! connection ([`Postgres::dedicated`], for `LISTEN`), starts with its
//! `search_path` set to that schema alone.
//!
//! Migration files are `migrations/V<n>__<name>.sql`; `V1__registry.sql`
//! holds the registry (users, change feed, allow-lists); `V2__keys.sql` the
//! wrapped OPRF keys and the replicas' heartbeats ([`keys`]); `V3__feed_write_time.sql`
//! the change feed's write time in microseconds (for the feed-lag metric). A new migration is
//! a new file, never an edit of an applied one (refinery refuses a changed
//! checksum).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::ServerError;

pub mod keys;
pub mod registry;

mod embedded {
    refinery::embed_migrations!("src/postgres/migrations");
}

/// Connections the pool keeps at most (admin writes and table builds are
/// few; discovery never touches the database).
pub const POOL_SIZE: usize = 8;

/// The longest a caller waits for a pooled connection, and a connection
/// attempt may take, before the operation fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Advisory lock key held while migrating ("cds-migr" as ASCII).
const MIGRATION_LOCK: i64 = 0x6364_732d_6d69_6772;

/// A pooled connection to the registry's database.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    config: tokio_postgres::Config,
    schema: Option<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: never print it.
        f.debug_struct("Postgres")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

/// A pooled connection (derefs to [`tokio_postgres::Client`]).
pub type PooledClient = deadpool_postgres::Object;

impl Postgres {
    /// Connect to `url` (`postgres://user:password@host:port/database`),
    /// optionally confined to `schema` (created if missing), and apply
    /// every pending migration.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, ServerError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            ServerError::Config(format!(
                "the registry URL is not a PostgreSQL URL ({}); write postgres://user:password@host:5432/database",
                describe(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("cds");
        }
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            // Applied by the server when the session starts: every
            // connection, pooled or dedicated, sees only this schema.
            let options = match config.get_options() {
                Some(o) if !o.is_empty() => format!("{o} -c search_path={schema}"),
                _ => format!("-c search_path={schema}"),
            };
            config.options(&options);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| ServerError::Postgres {
                what: "building the connection pool",
                detail: e.to_string(),
            })?;
        let pg = Self {
            pool,
            config,
            schema: schema.map(str::to_owned),
        };
        pg.migrate().await?;
        Ok(pg)
    }

    /// The pool, for the registry's queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema every connection is confined to, if one was named.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<PooledClient, ServerError> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error("connecting", e))
    }

    /// A connection of its own, outside the pool (for `LISTEN`, whose
    /// notifications arrive on the connection's stream): the client and the
    /// connection future, which the caller must drive.
    pub async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        ServerError,
    > {
        self.config
            .connect(NoTls)
            .await
            .map_err(|e| pg_error("opening a dedicated connection", &e))
    }

    /// Create the schema if one was named, then apply every pending
    /// migration, holding an advisory lock so concurrent starts migrate
    /// once.
    pub async fn migrate(&self) -> Result<(), ServerError> {
        let mut client = self.client().await?;
        // Taken first: concurrent `CREATE SCHEMA IF NOT EXISTS` race too.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| pg_error("taking the migration lock", &e))?;
        let migrated = async {
            if let Some(schema) = &self.schema {
                // The name was checked: lowercase ASCII letters, digits, '_'.
                client
                    .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .await
                    .map_err(|e| pg_error("creating the schema", &e))?;
            }
            let client_ref: &mut tokio_postgres::Client = &mut client;
            embedded::migrations::runner()
                .run_async(client_ref)
                .await
                .map_err(|e| ServerError::Postgres {
                    what: "applying the schema migrations",
                    detail: e.to_string(),
                })?;
            Ok::<(), ServerError>(())
        }
        .await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| pg_error("releasing the migration lock", &e));
        migrated?;
        unlocked?;
        Ok(())
    }
}

/// A schema name is 1 to 63 of `a-z`, `0-9`, `_`, not starting with a
/// digit: it is spliced into SQL and connection options, so nothing that
/// needs quoting is accepted.
pub fn check_schema_name(schema: &str) -> Result<(), ServerError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ServerError::Config(
            "the registry schema name must be 1 to 63 lowercase letters, digits or '_', not starting with a digit".into(),
        ))
    }
}

/// A PostgreSQL error, described without the parts that may quote stored
/// values (a database error's DETAIL can hold a key, i.e. a number).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// [`ServerError::Postgres`] for `e` while doing `what`.
pub(crate) fn pg_error(what: &'static str, e: &tokio_postgres::Error) -> ServerError {
    ServerError::Postgres {
        what,
        detail: describe(e),
    }
}

/// [`ServerError::Postgres`] for a pool failure while doing `what`.
pub(crate) fn pool_error(what: &'static str, e: deadpool_postgres::PoolError) -> ServerError {
    let detail = match &e {
        deadpool_postgres::PoolError::Backend(pg) => describe(pg),
        other => other.to_string(),
    };
    ServerError::Postgres { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_that_would_need_quoting_are_refused() {
        for ok in ["cds", "cds_test_1", "_x", &"a".repeat(63)] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "Cds",
            "a-b",
            "a b",
            "a;drop",
            "a\"b",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_url_that_is_not_postgres_is_a_config_error() {
        let e = Postgres::connect("postgres://host:notaport/db", None)
            .await
            .expect_err("refused");
        assert!(matches!(e, ServerError::Config(_)), "{e}");
    }

    /// A schema of its own for one test, or `None` (printing why) when no
    /// database is configured.
    pub(crate) fn test_url() -> Option<String> {
        match std::env::var("CDS_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!(
                    "skipped: CDS_TEST_POSTGRES_URL is not set (source .ci/services.sh to run the PostgreSQL tests)"
                );
                None
            }
        }
    }

    #[tokio::test]
    async fn replicas_starting_together_migrate_once_inside_their_own_schema() {
        let Some(url) = test_url() else { return };
        let schema = format!(
            "cds_ut_migrate_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .subsec_nanos()
        );
        let (a, b) = tokio::join!(
            Postgres::connect(&url, Some(&schema)),
            Postgres::connect(&url, Some(&schema))
        );
        let (a, _b) = (a.expect("migrates"), b.expect("migrates"));
        let client = a.client().await.expect("connects");
        let tables: Vec<String> = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
                &[&schema],
            )
            .await
            .expect("lists")
            .iter()
            .map(|r| r.get(0))
            .collect();
        for t in ["allow_lists", "changes", "feed_head", "users"] {
            assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
        }
        let applied: i64 = client
            .query_one(
                "SELECT count(*) FROM refinery_schema_history WHERE version = 1",
                &[],
            )
            .await
            .expect("reads history")
            .get(0);
        assert_eq!(applied, 1);
        // Unqualified names resolve inside the schema only.
        let head: i64 = client
            .query_one("SELECT next_seq FROM feed_head", &[])
            .await
            .expect("reads")
            .get(0);
        assert_eq!(head, 1);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drops");
    }
}
