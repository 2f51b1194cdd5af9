//! The connector and the only door to Buildbot's tables: a [`Store`] handle whose
//! operations take and return decoded domain types, knowing nothing of the API built on it.

pub mod bridge;
mod builders;
pub mod cancel;
pub mod complete;
pub mod db;
mod error;
pub mod feed;
pub mod graph;
pub mod hash;
pub mod json;
mod paging;
pub mod query;
pub mod read;
pub mod replica;
mod routing;
pub mod rows;
mod single;
mod stamps;
pub mod tag;
mod types;
pub mod write;

use sea_orm::DatabaseConnection;

pub use db::{
    connect, connect_with, open, open_with, prepare_schema, PrepareError, SchemaMode, Timeouts,
};
pub use error::{StoreError, StoreResult};
pub use graph::{BuildsetView, Relations, RequestView, StampView};
pub use rows::{BuildRequestRow, BuildRow, BuilderRow, BuildsetRow, PatchRow, SourceStampRow};
pub use types::*;

/// Now, as Buildbot stores times: integer epoch seconds, UTC.
pub fn now() -> i32 {
    i32::try_from(chrono::Utc::now().timestamp()).unwrap_or(i32::MAX)
}

/// The database and how it is used: the one thing the rest of the program holds.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    mode: SchemaMode,
    /// For a connection of the listener's own (PostgreSQL LISTEN).
    url: Option<std::sync::Arc<str>>,
    /// Raised by this store's writes, for the change feed.
    signal: std::sync::Arc<feed::Signal>,
    /// SQLite has one writer: this process's writers take turns here, in order,
    /// instead of retrying on SQLITE_BUSY with the busy handler's growing sleeps
    /// (which left some waiting a second while the database sat idle).
    writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// What the text columns can hold: read once from MySQL's catalog.
    repertoire: std::sync::Arc<tokio::sync::OnceCell<Repertoire>>,
    /// When a write last failed for want of storage (disk full, I/O error).
    storage: std::sync::Arc<StorageHealth>,
    /// Attached to a Buildbot database: what the master's bridge reads.
    bridge: Option<std::sync::Arc<bridge::Queue>>,
    /// Streaming replicas that take reads (`--read-database-url`).
    replicas: Option<std::sync::Arc<replica::Replicas>>,
    /// Operations that read from the primary although there are replicas.
    primary_reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether an add and a completion are one statement (`single::supported`):
    /// read once.
    single: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

/// How long after a write failed for want of storage the store still reports it
/// (unless a write has succeeded since): readiness probes run every few seconds.
const STORAGE_FAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// When this store's writes last failed for want of storage; `None` since a write
/// succeeded.
#[derive(Debug, Default)]
struct StorageHealth(std::sync::Mutex<Option<std::time::Instant>>);

impl StorageHealth {
    fn observe<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        let failed = match &result {
            Ok(_) => Some(None),
            Err(e) if e.is_storage_fault() => Some(Some(std::time::Instant::now())),
            Err(_) => None,
        };
        if let (Some(at), Ok(mut last)) = (failed, self.0.lock()) {
            *last = at;
        }
        result
    }

    fn failing(&self) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|last| *last)
            .is_some_and(|at| at.elapsed() < STORAGE_FAULT_WINDOW)
    }
}

impl Store {
    /// Connects, then migrates a standalone database or checks a Buildbot one.
    pub async fn open(url: &str) -> Result<Store, PrepareError> {
        Store::open_with_timeouts(url, Timeouts::default()).await
    }

    /// Like [`Store::open`], with how long to wait on the database.
    pub async fn open_with_timeouts(url: &str, timeouts: Timeouts) -> Result<Store, PrepareError> {
        let (db, mode) = open_with(url, |o| timeouts.apply(o)).await?;
        let bridge = match mode {
            SchemaMode::Attached => bridge::Queue::detect(&db)
                .await
                .map_err(|e| PrepareError::Db(sea_orm::DbErr::Custom(e.to_string())))?
                .map(std::sync::Arc::new),
            SchemaMode::Standalone => None,
        };
        Ok(Store {
            url: Some(url.into()),
            bridge,
            ..Store::new(db, mode)
        })
    }

    /// A store over a connection already prepared (tests, tools).
    pub fn new(db: DatabaseConnection, mode: SchemaMode) -> Store {
        let writer = (db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite)
            .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        Store {
            db,
            mode,
            url: None,
            signal: Default::default(),
            writer,
            repertoire: Default::default(),
            storage: Default::default(),
            bridge: None,
            replicas: None,
            primary_reads: Default::default(),
            single: Default::default(),
        }
    }

    /// The bridge's object id, where there is a bridge queue (attached).
    async fn bridge_object(&self) -> StoreResult<Option<i32>> {
        match &self.bridge {
            Some(queue) => Ok(Some(queue.objectid(&self.db).await?)),
            None => Ok(None),
        }
    }

    /// Whether this database takes an add and a completion as one statement.
    async fn single_statement(&self) -> StoreResult<bool> {
        self.single
            .get_or_try_init(|| single::supported(&self.db))
            .await
            .copied()
    }

    /// Which characters the text columns hold. On MySQL/MariaDB the columns'
    /// charsets decide (Buildbot's tables are `utf8`, 3-byte); elsewhere, all.
    pub async fn repertoire(&self) -> StoreResult<Repertoire> {
        if self.db.get_database_backend() != sea_orm::DatabaseBackend::MySql {
            return Ok(Repertoire::Unicode);
        }
        let found = self
            .repertoire
            .get_or_try_init(|| async {
                let charsets = db::mysql_text_charsets(&self.db).await?;
                let found = Repertoire::of_charsets(charsets.iter().map(String::as_str));
                if found != Repertoire::Unicode {
                    tracing::warn!(
                        charsets = ?charsets,
                        "the buildset tables' text columns are not utf8mb4: texts with characters they cannot store are refused (BAD_USER_INPUT)"
                    );
                }
                Ok::<_, StoreError>(found)
            })
            .await?;
        Ok(found.clone())
    }

    /// Refuses a filter comparing a text the columns cannot hold: MySQL refuses such a
    /// comparison outright ("Illegal mix of collations").
    pub async fn check_filter(&self, filter: &query::Filter) -> StoreResult<()> {
        let rep = self.repertoire().await?;
        for t in filter.texts() {
            rep.check("where", Some(t))?;
        }
        Ok(())
    }

    /// The pool for `op`'s statements whose cost the client controls: tagged (see
    /// [`tag::Tagged`]), counted.
    async fn reader<'a>(&'a self, op: &'a tag::Operation) -> tag::Tagged<'a, DatabaseConnection> {
        self.routed(op, true).await
    }

    /// The pool for `op`'s other statements: counted, charged.
    async fn counted<'a>(&'a self, op: &'a tag::Operation) -> tag::Tagged<'a, DatabaseConnection> {
        self.routed(op, false).await
    }

    /// The pool: connections open, idle, and the most it opens.
    pub fn pool_stats(&self) -> (u32, usize, u32) {
        use sea_orm::DatabaseBackend as B;
        match self.db.get_database_backend() {
            B::Postgres => {
                let p = self.db.get_postgres_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            B::MySql => {
                let p = self.db.get_mysql_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            B::Sqlite => {
                let p = self.db.get_sqlite_connection_pool();
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            _ => (0, 0, 0),
        }
    }

    /// `sqlite`, `postgres` or `mysql`, for the build-info metric.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => "sqlite",
            sea_orm::DatabaseBackend::Postgres => "postgres",
            _ => "mysql",
        }
    }

    pub fn mode(&self) -> SchemaMode {
        self.mode
    }

    /// The connection, for tools and tests that look at the tables themselves.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        Ok(self.db.ping().await?)
    }

    /// True while writes fail for want of storage: a write failed so within the last
    /// ten seconds and none has succeeded since.
    pub fn writes_failing(&self) -> bool {
        self.storage.failing()
    }

    /// This process's turn to write (SQLite only; other databases lock rows).
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(w) => Some(w.lock().await),
            None => None,
        }
    }

    /// Adds a buildset; returns it as its own transaction wrote it, with `relations`.
    pub async fn add_buildset(
        &self,
        input: &NewBuildset,
        relations: &Relations,
        op: &tag::Operation,
    ) -> StoreResult<(AddedBuildset, BuildsetView)> {
        let rep = self.repertoire().await?;
        for (field, text) in input.texts() {
            rep.check(field, text)?;
        }
        let bridge = self.storage.observe(self.bridge_object().await)?;
        let single = self.single_statement().await?;
        let turn = self.turn().await;
        let added = write::add_buildset_loading(
            &self.db,
            self.mode,
            input,
            Some(relations),
            bridge,
            single,
            op,
        )
        .await;
        drop(turn);
        let (added, view) = self.storage.observe(added)?;
        self.signal.hint(added.bsid);
        self.note_write(op).await;
        let view = view.ok_or_else(|| {
            StoreError::NotFound(format!("buildset {} could not be read back", added.bsid))
        })?;
        Ok((added, view))
    }

    /// Completes a buildset; returns it as its own transaction left it, with `relations`.
    pub async fn complete_buildset(
        &self,
        bsid: i32,
        results: i32,
        complete_at: Option<i32>,
        relations: &Relations,
        op: &tag::Operation,
    ) -> StoreResult<BuildsetView> {
        let single = self.single_statement().await?;
        let turn = self.turn().await;
        let view = async {
            if *relations == Relations::default() {
                // A conflict (the last request finished between the update and the
                // look at why it changed nothing) is run again as a transaction.
                match complete::complete_buildset_returning(
                    &tag::Tagged::off(&self.db, op),
                    self.mode,
                    bsid,
                    results,
                    complete_at,
                    single,
                )
                .await
                {
                    Ok(Some(row)) => {
                        return Ok(BuildsetView {
                            row,
                            stamps: None,
                            props: None,
                            requests: None,
                        })
                    }
                    Ok(None) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
            complete::complete_buildset_loading(
                &self.db,
                self.mode,
                bsid,
                results,
                complete_at,
                relations,
                op,
            )
            .await
        }
        .await;
        drop(turn);
        let view = self.storage.observe(view)?;
        self.signal.hint(bsid);
        self.note_write(op).await;
        Ok(view)
    }

    /// Cancels the unfinished build requests of a buildset, or one build request
    /// (see [`cancel::cancel`]); returns the buildset's id.
    pub async fn cancel(
        &self,
        target: cancel::CancelTarget,
        op: &tag::Operation,
    ) -> StoreResult<i32> {
        let bridge = self.storage.observe(self.bridge_object().await)?;
        let turn = self.turn().await;
        let done = cancel::cancel(&self.db, self.mode, target, bridge, op).await;
        drop(turn);
        let bsid = self.storage.observe(done)?;
        self.signal.hint(bsid);
        self.note_write(op).await;
        Ok(bsid)
    }

    pub async fn ensure_builder(
        &self,
        name: &str,
        description: Option<&str>,
        op: &tag::Operation,
    ) -> StoreResult<BuilderRow> {
        let rep = self.repertoire().await?;
        rep.check("name", Some(name))?;
        rep.check("description", description)?;
        let turn = self.turn().await;
        let row = self
            .storage
            .observe(write::ensure_builder_for(&self.db, name, description, op).await);
        drop(turn);
        let row = row?;
        self.note_write(op).await;
        Ok(row)
    }

    pub async fn buildset(
        &self,
        bsid: i32,
        op: &tag::Operation,
    ) -> StoreResult<Option<BuildsetRow>> {
        read::get_buildset(&self.counted(op).await, bsid).await
    }

    pub async fn buildsets_by_ids(
        &self,
        ids: &[i32],
        op: &tag::Operation,
    ) -> StoreResult<Vec<BuildsetRow>> {
        read::buildsets_by_ids(&self.counted(op).await, ids).await
    }

    pub async fn page(
        &self,
        req: &query::PageRequest,
        op: &tag::Operation,
    ) -> StoreResult<query::Page> {
        if let Some(f) = &req.filter {
            self.check_filter(f).await?;
        }
        let rep = self.repertoire().await?;
        for (field, values) in [("after", &req.start_after), ("before", &req.end_before)] {
            for v in values.iter().flatten().flatten() {
                rep.check(field, v.text())?;
            }
        }
        query::get_buildsets(&self.reader(op).await, req).await
    }

    pub async fn count(
        &self,
        complete: Option<bool>,
        filter: Option<&query::Filter>,
        op: &tag::Operation,
    ) -> StoreResult<u64> {
        if let Some(f) = filter {
            self.check_filter(f).await?;
        }
        query::count_buildsets(&self.reader(op).await, complete, filter).await
    }

    pub async fn recent(
        &self,
        count: u64,
        branch: Option<&str>,
        repository: Option<&str>,
        complete: Option<bool>,
        op: &tag::Operation,
    ) -> StoreResult<Vec<BuildsetRow>> {
        let rep = self.repertoire().await?;
        for (field, text) in [("branch", branch), ("repository", repository)] {
            // PostgreSQL refuses a NUL outright; no stored text holds one anyway.
            types::check_len(field, text, 512)?;
            rep.check(field, text)?;
        }
        query::get_recent_buildsets(&self.reader(op).await, count, branch, repository, complete)
            .await
    }

    pub async fn buildset_properties(
        &self,
        bsid: i32,
        op: &tag::Operation,
    ) -> StoreResult<Vec<Property>> {
        read::get_buildset_properties(&self.counted(op).await, bsid).await
    }

    pub async fn sourcestamps_by_ids(
        &self,
        ids: &[i32],
        op: &tag::Operation,
    ) -> StoreResult<Vec<SourceStampRow>> {
        read::sourcestamps_by_ids(&self.counted(op).await, ids).await
    }

    pub async fn buildrequests_by_ids(
        &self,
        ids: &[i32],
        op: &tag::Operation,
    ) -> StoreResult<Vec<BuildRequestRow>> {
        read::buildrequests_by_ids(&self.counted(op).await, ids).await
    }

    pub async fn builders_by_ids(
        &self,
        ids: &[i32],
        op: &tag::Operation,
    ) -> StoreResult<Vec<BuilderRow>> {
        read::builders_by_ids(&self.counted(op).await, ids).await
    }

    /// Builds by id: none in standalone mode, which has no `builds` table.
    pub async fn builds_by_ids(
        &self,
        ids: &[i32],
        op: &tag::Operation,
    ) -> StoreResult<Vec<BuildRow>> {
        if self.mode() != SchemaMode::Attached {
            return Ok(Vec::new());
        }
        read::builds_by_ids(&self.counted(op).await, ids).await
    }

    pub async fn patches_by_ids(
        &self,
        ids: &[i32],
        op: &tag::Operation,
    ) -> StoreResult<Vec<PatchRow>> {
        read::patches_by_ids(&self.counted(op).await, ids).await
    }

    pub async fn all_builders(&self, op: &tag::Operation) -> StoreResult<Vec<BuilderRow>> {
        read::all_builders(&self.counted(op).await).await
    }
}
