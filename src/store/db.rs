//! Connecting to a database and getting its schema ready: migrate a standalone
//! database, or check (never alter) one that a Buildbot master created.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};

/// How the server relates to the schema of the database it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaMode {
    /// Our own migrations created (or will create) the tables.
    Standalone,
    /// A Buildbot master created the schema (it has `alembic_version`): no DDL, ever.
    Attached,
}

/// The tables and columns this server reads and writes; an attached database must have
/// every one of them.
pub const REQUIRED_COLUMNS: &[(&str, &[&str])] = &[
    (
        "buildsets",
        &[
            "id",
            "external_idstring",
            "reason",
            "submitted_at",
            "complete",
            "complete_at",
            "results",
            "parent_buildid",
            "parent_relationship",
            "rebuilt_buildid",
        ],
    ),
    (
        "buildset_properties",
        &["buildsetid", "property_name", "property_value"],
    ),
    (
        "buildset_sourcestamps",
        &["id", "buildsetid", "sourcestampid"],
    ),
    (
        "sourcestamps",
        &[
            "id",
            "ss_hash",
            "branch",
            "revision",
            "patchid",
            "repository",
            "codebase",
            "project",
            "created_at",
        ],
    ),
    (
        "patches",
        &[
            "id",
            "patchlevel",
            "patch_base64",
            "patch_author",
            "patch_comment",
            "subdir",
        ],
    ),
    (
        "buildrequests",
        &[
            "id",
            "buildsetid",
            "builderid",
            "priority",
            "complete",
            "results",
            "submitted_at",
            "complete_at",
            "waited_for",
        ],
    ),
    (
        "builders",
        &[
            "id",
            "name",
            "description",
            "description_format",
            "description_html",
            "projectid",
            "name_hash",
        ],
    ),
];

/// How long the store waits on the database before it gives up, so that a database
/// that is down or unreachable makes requests fail fast instead of hanging.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For a free connection from the pool.
    pub acquire: Duration,
    /// For one statement, enforced by the server where it can (PostgreSQL's
    /// `statement_timeout`); `None`: no limit.
    pub statement: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            acquire: Duration::from_secs(30),
            statement: None,
        }
    }
}

impl Timeouts {
    /// Applies them to a pool's options.
    pub fn apply(self, opts: &mut ConnectOptions) {
        opts.connect_timeout(self.connect)
            .acquire_timeout(self.acquire);
        if let Some(st) = self.statement {
            let ms = st.as_millis().to_string();
            opts.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.as_str())]));
        }
    }
}

/// `host:port` of a database URL, without user or password, for messages.
pub fn url_host(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return path.to_owned();
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or_default().to_owned()
}

/// The file of a SQLite URL (what follows `sqlite://`, without its options).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or_default())
}

/// Opens a connection pool with the per-backend settings the store relies on.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, |_| {}).await
}

/// Like [`connect`], with a hook to adjust the options (tests install a metric
/// callback or shrink the pool).
pub async fn connect_with(
    url: &str,
    adjust: impl FnOnce(&mut ConnectOptions),
) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        // sqlx pings a connection on every checkout by default: one more round trip
        // per statement, and on a small machine each round trip is two context
        // switches. A connection idle for a second is still checked (one the database
        // dropped is replaced); a busy one has just proven itself.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .map_sqlx_sqlite_opts(|o| {
            // WAL lets readers run beside the single writer; the busy timeout makes a
            // second writer wait instead of failing; LIKE matches case as PostgreSQL does.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("case_sensitive_like", "ON")
                .pragma("cache_size", "-1024")
                // A page's relation level is a few hundred rows: let the SQLite worker
                // thread hand them over without waiting for the reader every 50 rows.
                .row_buffer_size(1024)
        });
    use sea_orm::sqlx::Connection as _;
    // A connection goes back to the pool only when sqlx counts no open transaction
    // on it: after a failed statement SQLite may have rolled the transaction back by
    // itself (SQLITE_FULL, SQLITE_IOERR), so sqlx's ROLLBACK fails and its count
    // stays at one, and the next "transaction" on that connection would run as a
    // savepoint of nothing and never commit. A failed COMMIT leaves the count
    // behind the same way on every backend. Such a connection is closed and replaced.
    opts.map_sqlx_sqlite_pool_opts(|o| {
        o.after_release(|c, _| Box::pin(clean(c.is_in_transaction())))
    })
    .map_sqlx_postgres_pool_opts(|o| o.after_release(|c, _| Box::pin(clean(c.is_in_transaction()))))
    .map_sqlx_mysql_pool_opts(|o| o.after_release(|c, _| Box::pin(clean(c.is_in_transaction()))));
    if url.starts_with("sqlite:") && !is_sqlite_memory(url) {
        // SeaORM gives SQLite a single connection unless told otherwise, which would
        // queue every reader behind every other; WAL lets readers run side by side
        // while writers take turns (BEGIN IMMEDIATE + busy timeout).
        opts.max_connections(8);
    }
    adjust(&mut opts);
    Database::connect(opts).await
}

/// Whether a released connection may serve again: not when sqlx still counts a
/// transaction on it (its state is in doubt).
async fn clean(in_transaction: bool) -> Result<bool, sea_orm::sqlx::Error> {
    if in_transaction {
        metrics::counter!("bsgql_db_connections_discarded_total").increment(1);
        tracing::warn!(
            "closing a database connection whose transaction state is in doubt (after a failed statement)"
        );
    }
    Ok(!in_transaction)
}

/// An in-memory SQLite database exists once per connection, so it must keep one.
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Connects and makes the schema usable (migrated, or checked when attached).
///
/// The schema work runs on a connection of its own that is closed before the pool
/// opens: a pooled SQLite connection that had loaded the schema before a migration
/// would prepare statements against the old schema and fail.
pub async fn open(url: &str) -> Result<(DatabaseConnection, SchemaMode), PrepareError> {
    open_with(url, |_| {}).await
}

/// Like [`open`], with a hook to adjust the pool's options.
pub async fn open_with(
    url: &str,
    adjust: impl Fn(&mut ConnectOptions),
) -> Result<(DatabaseConnection, SchemaMode), PrepareError> {
    let setup = match connect_with(url, |o| {
        adjust(o);
        o.max_connections(1);
    })
    .await
    {
        Ok(db) => db,
        Err(e) => return Err(explain_connect(url, e).await),
    };
    let mode = prepare_schema(&setup).await?;
    setup.close().await?;
    Ok((connect_with(url, adjust).await?, mode))
}

/// Decides the schema mode and makes the schema usable: migrations for a standalone
/// database, a presence check for an attached one.
pub async fn prepare_schema(db: &DatabaseConnection) -> Result<SchemaMode, PrepareError> {
    if table_exists(db, "alembic_version").await? {
        let missing = missing_columns(db).await?;
        if !missing.is_empty() {
            return Err(PrepareError::Incomplete(missing));
        }
        let plain = non_transactional_tables(db).await?;
        if !plain.is_empty() {
            tracing::warn!(
                tables = %plain.join(", "),
                "these Buildbot tables use a MySQL engine without transactions (Buildbot's \
                 default, MyISAM): a failed addBuildset can leave rows behind there; \
                 ALTER TABLE … ENGINE=InnoDB makes writes all-or-nothing"
            );
        }
        Ok(SchemaMode::Attached)
    } else {
        // Said whenever tables are created: a URL meant for a master whose database
        // Buildbot has not made yet (or a mistyped name) would otherwise be filled
        // without a word.
        let pending = Migrator::get_pending_migrations(db).await?.len();
        if pending > 0 {
            tracing::info!(
                migrations = pending,
                "creating this server's tables: the database has no Buildbot tables (no alembic_version), so it is a standalone one; to attach to a Buildbot master instead, point --database-url at the database its `buildbot upgrade-master` made"
            );
        }
        Migrator::up(db, None).await?;
        Ok(SchemaMode::Standalone)
    }
}

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot connect to the database at {host}: {cause}")]
    Unreachable { host: String, cause: String },
    #[error(
        "this is a Buildbot database (it has alembic_version) but it lacks {}; \
         upgrade the Buildbot master first (no DDL is run on a Buildbot database)",
        .0.join(", ")
    )]
    Incomplete(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A pool reports only that it timed out; one direct connection says why (refused,
/// unknown host, bad password, no such database).
async fn explain_connect(url: &str, err: DbErr) -> PrepareError {
    use sea_orm::sqlx::Connection as _;
    let host = url_host(url);
    let direct = async {
        let res = if url.starts_with("postgres") {
            sea_orm::sqlx::PgConnection::connect(url).await.map(|_| ())
        } else if url.starts_with("mysql") || url.starts_with("mariadb") {
            sea_orm::sqlx::MySqlConnection::connect(url)
                .await
                .map(|_| ())
        } else {
            sea_orm::sqlx::SqliteConnection::connect(url)
                .await
                .map(|_| ())
        };
        // The database's own words, without what its server adds for its own
        // developers (PostgreSQL's "at line 768" of its source).
        res.err().map(|e| match e.as_database_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        })
    };
    let mut cause = tokio::time::timeout(Duration::from_secs(10), direct)
        .await
        .unwrap_or_else(|_| Some("no answer within 10 s".to_owned()))
        .unwrap_or_else(|| err.to_string());
    if let Some(path) = sqlite_path(url).filter(|_| !is_sqlite_memory(url)) {
        let file = std::path::Path::new(path);
        let folder = file.parent().filter(|f| !f.as_os_str().is_empty());
        if let Some(folder) = folder.filter(|f| !f.is_dir()) {
            cause.push_str(&format!("; there is no folder {}", folder.display()));
        } else if !url.contains("mode=rwc") && !file.exists() {
            cause.push_str(&format!(
                "; there is no such file: to create it, add ?mode=rwc (--database-url 'sqlite://{path}?mode=rwc')"
            ));
        }
    }
    PrepareError::Unreachable { host, cause }
}

async fn table_exists(db: &DatabaseConnection, table: &str) -> Result<bool, DbErr> {
    Ok(!table_columns(db, table).await?.is_empty())
}

/// The column names of `table` (empty when the table does not exist).
pub async fn table_columns(db: &impl ConnectionTrait, table: &str) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = match backend {
        DbBackend::Sqlite => Statement::from_sql_and_values(
            backend,
            "SELECT name FROM pragma_table_info(?)",
            [table.into()],
        ),
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            [table.into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ?",
            [table.into()],
        ),
    };
    db.query_all_raw(stmt)
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect()
}

/// Our tables that MySQL stores without transactions (e.g. MyISAM, the engine Buildbot
/// picks unless told `storage_engine=InnoDB`); always empty on other backends.
pub async fn non_transactional_tables(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    if backend != DbBackend::MySql {
        return Ok(Vec::new());
    }
    let names: Vec<String> = REQUIRED_COLUMNS
        .iter()
        .map(|(t, _)| format!("'{t}'"))
        .collect();
    let sql = format!(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND engine <> 'InnoDB' AND table_name IN ({}) \
         ORDER BY table_name",
        names.join(", ")
    );
    db.query_all_raw(Statement::from_string(backend, sql))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect()
}

/// The distinct charsets of our tables' text columns (MySQL/MariaDB only).
pub async fn mysql_text_charsets(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let names: Vec<String> = REQUIRED_COLUMNS
        .iter()
        .map(|(t, _)| format!("'{t}'"))
        .collect();
    let sql = format!(
        "SELECT DISTINCT CAST(character_set_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND character_set_name IS NOT NULL \
         AND table_name IN ({}) ORDER BY 1",
        names.join(", ")
    );
    db.query_all_raw(Statement::from_string(backend, sql))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect()
}

async fn missing_columns(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let mut missing = Vec::new();
    for (table, columns) in REQUIRED_COLUMNS {
        let present = table_columns(db, table).await?;
        if present.is_empty() {
            missing.push(format!("table {table}"));
            continue;
        }
        for column in *columns {
            if !present.iter().any(|p| p.eq_ignore_ascii_case(column)) {
                missing.push(format!("column {table}.{column}"));
            }
        }
    }
    Ok(missing)
}
