//! Test databases: a fresh, migrated database per test on each backend.
//!
//! SQLite always runs (a file in a temporary folder). PostgreSQL and MariaDB run when
//! `TEST_POSTGRES_URL` / `TEST_MYSQL_URL` name a server database (`.ci/run` sets both);
//! each test creates its own database next to it, so tests never share rows. Under
//! CI (`CI` set) a missing URL is a failure, never a silent skip.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use buildsets_graphql::store::{self, SchemaMode};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub db: DatabaseConnection,
    pub mode: SchemaMode,
    /// Statements run through `db` so far (SeaORM's metric callback).
    pub statements: Arc<AtomicUsize>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub fn statement_count(&self) -> usize {
        self.statements.load(Ordering::SeqCst)
    }
}

pub use tempfile::TempDir;

fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|s| !s.is_empty())
}

/// A URL for a new, empty database on `backend`, or `None` (with a message) when the
/// backend is not configured outside CI.
pub async fn empty_database(backend: Backend, test: &str) -> Option<(String, Option<TempDir>)> {
    let var = match backend {
        Backend::Sqlite => {
            let dir = tempfile::Builder::new()
                .prefix(&format!("bsgql-{test}-"))
                .tempdir()
                .expect("temp dir");
            let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
            return Some((url, Some(dir)));
        }
        Backend::Postgres => "TEST_POSTGRES_URL",
        Backend::MySql => "TEST_MYSQL_URL",
    };
    let Some(base) = env_url(var) else {
        if std::env::var_os("CI").is_some() {
            panic!("{var} is not set: under CI every backend must be tested");
        }
        eprintln!(
            "SKIPPED {test} on {backend:?}: {var} is not set (run .ci/run to test every backend)"
        );
        return None;
    };
    let (server, base_name) = base.rsplit_once('/').expect("URL with a database name");
    let base_name = base_name.split('?').next().unwrap_or(base_name);
    let name = format!("{base_name}_{}", short(test));
    let admin = sea_orm::Database::connect(&base)
        .await
        .expect("connect to test server");
    let quoted = if backend == Backend::MySql {
        format!("`{name}`")
    } else {
        format!("\"{name}\"")
    };
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {quoted}"))
        .await
        .expect("drop test database");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {quoted}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    Some((format!("{server}/{name}"), None))
}

/// Database names are limited to 63 characters: long test names are shortened with a
/// hash so they stay distinct.
fn short(test: &str) -> String {
    if test.len() <= 30 {
        return test.to_owned();
    }
    let hash = store::hash::hash_columns(&[store::hash::HashValue::Text(test)]);
    format!("{}_{}", &test[..20], &hash[..8])
}

/// A fresh database on `backend`, migrated as the server migrates it.
pub async fn fresh(backend: Backend, test: &str) -> Option<TestDb> {
    let (url, dir) = empty_database(backend, test).await?;
    Some(TestDb::attach(backend, url, dir).await)
}

/// Counts the statements run through `db` from now on.
fn count_statements(db: &mut DatabaseConnection) -> Arc<AtomicUsize> {
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    db.set_metric_callback(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    counter
}

/// Runs one test body on one backend.
pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(db) = fresh(backend, &format!("{test}_{}", tag(backend))).await {
        body(db).await;
    }
}

fn tag(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sl",
        Backend::Postgres => "pg",
        Backend::MySql => "my",
    }
}

/// Declares `name::{sqlite, postgres, mysql}` tests that all run `body`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            use super::common::{run, Backend};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite, stringify!($name), super::$body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres, stringify!($name), super::$body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                run(Backend::MySql, stringify!($name), super::$body).await
            }
        }
    )+};
}

/// Number of rows in `table`.
pub async fn count(db: &impl ConnectionTrait, table: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

pub const TABLES: [&str; 7] = [
    "buildsets",
    "buildset_properties",
    "buildset_sourcestamps",
    "sourcestamps",
    "patches",
    "buildrequests",
    "builders",
];

/// Row counts of all seven tables.
pub async fn counts(db: &impl ConnectionTrait) -> Vec<i64> {
    let mut out = Vec::new();
    for t in TABLES {
        out.push(count(db, t).await);
    }
    out
}

/// A textual description of every table, column and index, to compare schemas.
pub async fn schema_snapshot(db: &impl ConnectionTrait) -> Vec<String> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master ORDER BY type, name".to_owned(),
        DbBackend::Postgres => "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '') FROM information_schema.columns WHERE table_schema = current_schema() \
             UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = current_schema()::regnamespace ORDER BY 1".to_owned(),
        _ => "SELECT CONCAT(table_name, '.', column_name, ' ', column_type, ' ', is_nullable, ' ', COALESCE(column_default, '')) FROM information_schema.columns WHERE table_schema = DATABASE() \
             UNION ALL SELECT CONCAT(table_name, ' ', index_name, ' ', column_name, ' ', non_unique) FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY 1".to_owned(),
    };
    db.query_all_raw(Statement::from_string(backend, sql))
        .await
        .expect("schema query")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

pub mod http;

impl TestDb {
    /// Opens a database as the server does (migrating an empty one, attaching to a
    /// Buildbot one).
    pub async fn attach(backend: Backend, url: String, dir: Option<TempDir>) -> TestDb {
        let (mut db, mode) = store::open(&url).await.expect("open the database");
        let statements = count_statements(&mut db);
        TestDb {
            backend,
            url,
            db,
            mode,
            statements,
            _dir: dir,
        }
    }
}
