//! One operation as the store sees it ([`Operation`]: its tag, statement count and
//! byte budget), passed with every store call it makes, and the connection that
//! counts, tags and charges through it ([`Tagged`]).
//!
//! Statements tagged with the operation that runs them. A client that goes away (or
//! an operation past `--request-timeout`) drops its future, but a statement already
//! sent keeps running in the database: dropping it only stops the reading of its
//! answer, and the connection waits for it before serving anyone else (until
//! `--statement-timeout` at most). With a tag in the text of the statements whose
//! cost the client controls (see [`Tagged`]), a [`CancelOnDrop`] finds them in
//! PostgreSQL's `pg_stat_activity` or MySQL's process list and cancels them.
//!
//! A tag is this process's id and a slot number, the lowest free one: a tag per
//! request made every statement's text new, so the driver prepared each one anew
//! (a Parse and a Describe more per statement, and PostgreSQL planning it again);
//! with slots, a statement shape has as many texts as operations ran at once, and
//! the driver's prepared-statement cache serves them again. A slot stays taken
//! until its operation's cancel, if any, is done: no other operation's statements
//! can carry its tag meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement, Value};

use super::replica::{Lsn, ReadFrom, Replica, Target};
use super::Store;

/// This process's part of every tag: servers sharing a database tell their
/// statements apart by it.
fn instance() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        format!("{start:x}{:x}", std::process::id())
    })
}

/// Which slots are taken.
static SLOTS: Mutex<Vec<bool>> = Mutex::new(Vec::new());

/// A tag: taken from the lowest free slot, given back when the last holder (the
/// operation, or its cancel) lets go.
#[derive(Debug)]
pub(crate) struct Slot {
    index: usize,
    tag: String,
}

impl Slot {
    fn take() -> Arc<Slot> {
        let index = match SLOTS.lock() {
            Ok(mut slots) => match slots.iter().position(|taken| !taken) {
                Some(i) => {
                    slots[i] = true;
                    i
                }
                None => {
                    slots.push(true);
                    slots.len() - 1
                }
            },
            // Poisoned (a panic while held): a slot past any taken one.
            Err(_) => usize::MAX,
        };
        Arc::new(Slot {
            index,
            tag: format!("{}-{index:x}", instance()),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut slots) = SLOTS.lock() {
            if let Some(taken) = slots.get_mut(self.index) {
                *taken = false;
            }
        }
    }
}

/// One operation as the store sees it: its tag, the statements it has sent, and
/// its byte budget. The door makes one per request (`Operation::new`) and passes it
/// with every store call the request makes; the connection a call is given
/// ([`Tagged`]) counts, tags and charges through it.
#[derive(Debug)]
pub struct Operation {
    tag: Arc<Slot>,
    statements: AtomicU64,
    budget: Budget,
    /// Where it may read (with replicas): set by the door before it runs.
    read: Mutex<ReadFrom>,
    /// Where it reads, chosen at its first read.
    pub(super) target: tokio::sync::OnceCell<Target>,
    /// The primary's position after its writes (with replicas): a later read that
    /// must see them asks for a replica that has replayed this far.
    wrote: Mutex<Option<Lsn>>,
}

impl Operation {
    /// A new operation whose answer may hold `max_bytes` (0: no bound).
    pub fn new(max_bytes: u64) -> Arc<Operation> {
        Arc::new(Operation {
            tag: Slot::take(),
            statements: AtomicU64::new(0),
            budget: Budget::new(max_bytes),
            read: Mutex::new(ReadFrom::default()),
            target: tokio::sync::OnceCell::new(),
            wrote: Mutex::new(None),
        })
    }

    /// Where it may read; to be said before its first read.
    pub fn read_from(&self, from: ReadFrom) {
        if let Ok(mut r) = self.read.lock() {
            *r = from;
        }
    }

    pub fn reads_from(&self) -> ReadFrom {
        self.read.lock().map(|r| *r).unwrap_or(ReadFrom::Primary)
    }

    /// Whether its reads went to a replica.
    pub fn read_a_replica(&self) -> bool {
        matches!(self.target.get(), Some(Target::Replica(_)))
    }

    /// The primary's position after this operation's writes, when replicas are in use.
    pub fn wrote(&self) -> Option<Lsn> {
        self.wrote.lock().ok().and_then(|w| *w)
    }

    pub(super) fn wrote_at(&self, at: Lsn) {
        if let Ok(mut w) = self.wrote.lock() {
            *w = Some(w.map_or(at, |old| old.max(at)));
        }
    }

    /// No bound (the live feed's loads, tools, tests).
    pub fn unbounded() -> Arc<Operation> {
        Operation::new(0)
    }

    /// The statements sent so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Counts statements sent around a [`Tagged`] connection: a transaction's
    /// BEGIN and COMMIT (or ROLLBACK) are round trips too.
    pub(crate) fn count_statements(&self, n: u64) {
        self.statements.fetch_add(n, Ordering::Relaxed);
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }
}

/// What one object of a nested list weighs against the operation's bound: about
/// what it takes in the answer being built.
const ITEM_BYTES: usize = 64;

/// The bytes of text (property values, patches) and of nested lists one operation
/// may put in its answer (`--max-response-bytes`): past it the operation fails
/// rather than build an answer of that size (a page of large property values,
/// asked for under ten aliases, made an 840 MB answer). Made per operation by the
/// door, passed to the store with the reads it bounds.
#[derive(Debug, Default)]
pub struct Budget {
    used: AtomicU64,
    /// 0: no bound.
    max: u64,
}

impl Budget {
    pub fn new(max: u64) -> Budget {
        Budget {
            used: AtomicU64::new(0),
            max,
        }
    }

    /// No bound (the live feed's loads, tools, tests).
    pub fn unbounded() -> Budget {
        Budget::default()
    }

    /// Counts `bytes`; an error past the bound.
    pub fn charge(&self, bytes: usize) -> Result<(), super::StoreError> {
        let total = self.used.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        if self.max > 0 && total > self.max {
            return Err(super::StoreError::TooLarge { limit: self.max });
        }
        Ok(())
    }

    /// Counts `items` objects of a nested list put in the answer.
    pub fn charge_items(&self, items: usize) -> Result<(), super::StoreError> {
        self.charge(items.saturating_mul(ITEM_BYTES))
    }

    /// Starts again from nothing: one subscription's events are answered one after
    /// the other, each within the bound.
    pub fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
    }
}

/// A connection that counts what its reads put in an answer against a budget (a
/// [`Tagged`] one carries the operation's); a plain connection counts nothing.
pub trait Charge {
    fn charge(&self, bytes: usize) -> Result<(), super::StoreError>;
}

impl Charge for sea_orm::DatabaseConnection {
    fn charge(&self, _: usize) -> Result<(), super::StoreError> {
        Ok(())
    }
}

impl Charge for sea_orm::DatabaseTransaction {
    fn charge(&self, _: usize) -> Result<(), super::StoreError> {
        Ok(())
    }
}

impl<C> Charge for Tagged<'_, C> {
    fn charge(&self, bytes: usize) -> Result<(), super::StoreError> {
        self.op.budget.charge(bytes)
    }
}

fn marker(tag: &str) -> String {
    format!("/* bsgql {tag} */")
}

/// A connection used for one operation: it counts the operation's statements,
/// charges its reads to the operation's budget, and, when `on`, puts the
/// operation's tag in front of each statement as a comment (on SQLite, none: its
/// statements run in this process).
///
/// Only the statements whose cost the client controls are tagged, those whose
/// `where`, order and page it chooses; the relation loads that follow look rows up
/// by key, a bounded list.
pub(crate) struct Tagged<'a, C> {
    db: &'a C,
    on: bool,
    op: &'a Operation,
    /// Reading from a replica: the replica, and the primary that takes its reads
    /// when it fails.
    replica: Option<(&'a Replica, &'a C)>,
}

impl<C> Clone for Tagged<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Tagged<'_, C> {}

impl<'a, C: ConnectionTrait> Tagged<'a, C> {
    pub fn on(db: &'a C, op: &'a Operation) -> Self {
        Tagged {
            db,
            on: true,
            op,
            replica: None,
        }
    }

    /// Counted and charged, untagged.
    pub fn off(db: &'a C, op: &'a Operation) -> Self {
        Tagged {
            db,
            on: false,
            op,
            replica: None,
        }
    }

    /// Reading from `replica` (whose pool is `db`), and from `primary` once it fails.
    pub fn on_replica(self, replica: &'a Replica, primary: &'a C) -> Self {
        Tagged {
            replica: Some((replica, primary)),
            ..self
        }
    }

    /// Where the next statement goes: the replica while it is in, else the primary.
    fn conn(&self) -> &'a C {
        match self.replica {
            Some((r, primary)) if !r.is_up() => primary,
            _ => self.db,
        }
    }

    /// The primary, when `e` from the replica is worth running the statement again there.
    fn fallback(&self, e: &DbErr) -> Option<&'a C> {
        let (r, primary) = self.replica?;
        super::replica::worth_the_primary(e).then(|| {
            r.fail(e);
            primary
        })
    }

    fn tag(&self, mut stmt: Statement) -> Statement {
        self.op.statements.fetch_add(1, Ordering::Relaxed);
        if self.on && self.db.get_database_backend() != DbBackend::Sqlite {
            stmt.sql = format!("{} {}", marker(&self.op.tag.tag), stmt.sql);
        }
        stmt
    }
}

#[sea_orm::prelude::async_trait::async_trait]
impl<C: ConnectionTrait + Sync> ConnectionTrait for Tagged<'_, C> {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.conn().execute_raw(self.tag(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.op.statements.fetch_add(1, Ordering::Relaxed);
        self.conn().execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let stmt = self.tag(stmt);
        if self.replica.is_none() {
            return self.db.query_one_raw(stmt).await;
        }
        let conn = self.conn();
        match conn.query_one_raw(stmt.clone()).await {
            Err(e) if std::ptr::eq(conn, self.db) => match self.fallback(&e) {
                Some(primary) => primary.query_one_raw(stmt).await,
                None => Err(e),
            },
            other => other,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let stmt = self.tag(stmt);
        if self.replica.is_none() {
            return self.db.query_all_raw(stmt).await;
        }
        let conn = self.conn();
        match conn.query_all_raw(stmt.clone()).await {
            Err(e) if std::ptr::eq(conn, self.db) => match self.fallback(&e) {
                Some(primary) => primary.query_all_raw(stmt).await,
                None => Err(e),
            },
            other => other,
        }
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

impl Store {
    /// Cancels the statements tagged `tag` that are still running, looking twice (a
    /// statement sent just before the drop may not have started yet). Returns how
    /// many were cancelled.
    pub async fn cancel_tagged(&self, tag: &str) -> u64 {
        let mut cancelled = 0;
        for round in 0..2 {
            if round > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            match self.cancel_once(tag).await {
                Ok(n) => cancelled += n,
                Err(e) => {
                    tracing::warn!(tag, error = %e, "could not cancel an abandoned statement");
                    break;
                }
            }
        }
        cancelled
    }

    async fn cancel_once(&self, tag: &str) -> Result<u64, DbErr> {
        let backend = self.db.get_database_backend();
        let pattern = Value::from(format!("{}%", marker(tag)));
        match backend {
            DbBackend::Postgres => {
                let cancel = Statement::from_sql_and_values(
                    backend,
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND state = 'active' AND query LIKE $1",
                    [pattern],
                );
                let mut n = self.db.query_all_raw(cancel.clone()).await?.len() as u64;
                // The operation may have read from a replica (which runs
                // pg_cancel_backend as any server does); one that is down has
                // nothing running.
                for pool in self.replicas().into_iter().flat_map(|r| r.pools()) {
                    if let Ok(rows) = pool.query_all_raw(cancel.clone()).await {
                        n += rows.len() as u64;
                    }
                }
                Ok(n)
            }
            DbBackend::MySql => {
                let rows = self
                    .db
                    .query_all_raw(Statement::from_sql_and_values(
                        backend,
                        "SELECT id FROM information_schema.processlist \
                         WHERE db = DATABASE() AND id <> CONNECTION_ID() \
                         AND command IN ('Query', 'Execute') AND info LIKE ?",
                        [pattern],
                    ))
                    .await?;
                let mut n = 0;
                for row in rows {
                    let id: u64 = row
                        .try_get_by_index::<u64>(0)
                        .or_else(|_| row.try_get_by_index::<i64>(0).map(|i| i as u64))?;
                    // The id is an integer from the server: no quoting needed.
                    self.db
                        .execute_unprepared(&format!("KILL QUERY {id}"))
                        .await?;
                    n += 1;
                }
                Ok(n)
            }
            _ => Ok(0),
        }
    }
}

/// Cancels the statements of an operation that is dropped before it finishes.
pub struct CancelOnDrop {
    store: Option<Store>,
    /// Kept taken until the cancel is done.
    slot: Option<Arc<Slot>>,
}

impl CancelOnDrop {
    /// Armed for `op`, on a database that can cancel (PostgreSQL, MySQL/MariaDB).
    pub fn new(store: &Store, op: &Operation) -> Self {
        let cancels = store.db.get_database_backend() != DbBackend::Sqlite;
        CancelOnDrop {
            store: cancels.then(|| store.clone()),
            slot: Some(op.tag.clone()),
        }
    }

    /// The operation finished: nothing to cancel.
    pub fn disarm(mut self) {
        self.store = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let (Some(store), Some(slot)) = (self.store.take(), self.slot.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let n = store.cancel_tagged(&slot.tag).await;
            if n > 0 {
                tracing::info!(tag = %slot.tag, statements = n, "cancelled the statements of an abandoned operation");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;

    #[test]
    fn slots_are_reused_lowest_first_and_held_by_every_holder() {
        let a = Slot::take();
        let b = Slot::take();
        assert_ne!(a.index, b.index);
        assert!(a.tag.ends_with(&format!("-{:x}", a.index)));
        let held = a.clone();
        let index = a.index;
        drop(a);
        // Still held (by a pending cancel, say): not handed out again.
        let c = Slot::take();
        assert_ne!(c.index, index);
        drop(held);
        let d = Slot::take();
        assert!(d.index <= index, "the lowest free slot comes first");
        drop((b, c, d));
    }
}
