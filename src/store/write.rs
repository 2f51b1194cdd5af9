//! The write operations: add a buildset (with sourcestamps, patches, properties and
//! build requests) in one transaction, complete a buildset; find-or-create a builder
//! is `builders.rs`, re-exported here.

use std::collections::HashSet;
use std::time::Duration;

use entity::{buildrequests, buildset_properties, buildset_sourcestamps, buildsets};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};
use sha1::Digest as _;

use super::db::SchemaMode;
use super::graph::{BuildsetView, Loader, Relations};
use super::tag::{Operation, Tagged};
use super::types::{AddedBuildset, NewBuildset};
use super::{json, StoreError, StoreResult};

pub use super::builders::{ensure_builder, ensure_builder_for};

/// How often a transaction that lost a deadlock or busy race is run again.
pub(super) const MAX_ATTEMPTS: u32 = 8;

/// Buildbot's result code SUCCESS.
pub(super) const SUCCESS: i16 = 0;

/// Runs `$body` (an expression using the transaction `$txn`) in one write
/// transaction, committing on success and rolling back on error; a transaction that
/// failed on a transient conflict runs again from scratch. A macro rather than a
/// function taking a closure, because a closure returning a borrowing future cannot
/// be proven `Send` for every lifetime (which the server's tasks require). Its
/// paths are absolute, so a caller imports nothing but the macro.
macro_rules! in_write_transaction {
    ($db:expr, $op:expr, |$txn:ident| $body:expr) => {{
        let mut attempt: u32 = 1;
        loop {
            let result: $crate::store::StoreResult<_> = async {
                // SQLite has one writer: take the write lock up front so that two
                // writers queue on the busy timeout instead of failing to upgrade.
                let transaction = ::sea_orm::TransactionTrait::begin_with_options(
                    $db,
                    ::sea_orm::TransactionOptions {
                        sqlite_transaction_mode: Some(::sea_orm::SqliteTransactionMode::Immediate),
                        ..Default::default()
                    },
                )
                .await?;
                // BEGIN, and below COMMIT or ROLLBACK: round trips of the operation's.
                $op.count_statements(2);
                // The body sees the transaction through the operation's connection,
                // which counts its statements.
                let $txn = $crate::store::tag::Tagged::off(&transaction, $op);
                let outcome = $body.await;
                match outcome {
                    Ok(value) => {
                        transaction.commit().await?;
                        Ok(value)
                    }
                    Err(e) => {
                        // The error that caused the rollback matters more than a failed rollback.
                        let _ = transaction.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < $crate::store::write::MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "retrying a transaction after a conflict");
                    let pause = ::std::time::Duration::from_millis(5 * u64::from(attempt * attempt));
                    tokio::time::sleep(pause)
                        .await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(super) use in_write_transaction;

/// Adds a buildset, as Buildbot's `addBuildset` does, all or nothing.
pub async fn add_buildset(
    db: &DatabaseConnection,
    mode: SchemaMode,
    input: &NewBuildset,
) -> StoreResult<AddedBuildset> {
    let op = Operation::unbounded();
    let single = super::single::supported(db).await?;
    Ok(
        add_buildset_loading(db, mode, input, None, None, single, &op)
            .await?
            .0,
    )
}

/// Adds a buildset and, given `relations`, loads it as written, inside the same
/// transaction: once COMMIT has succeeded, nothing is left to fail, so a connection
/// lost afterwards cannot turn the write into an error. Given the bridge's object
/// id, the buildset is left for the bridge to announce (see [`super::bridge`]).
/// `single`: the database takes the add as one statement (`single::supported`).
pub async fn add_buildset_loading(
    db: &DatabaseConnection,
    mode: SchemaMode,
    input: &NewBuildset,
    relations: Option<&Relations>,
    bridge: Option<i32>,
    single: bool,
    op: &Operation,
) -> StoreResult<(AddedBuildset, Option<BuildsetView>)> {
    input.validate()?;
    let submitted_at = input.submitted_at.unwrap_or_else(super::now);
    // Where `single` (see `single::supported`: PostgreSQL, MariaDB) the add is
    // one statement. An idempotency key is looked up under a lock first, in a
    // transaction of statements.
    let single = single && input.idempotency_key.is_none();
    if single && relations.is_none_or(|r| *r == Relations::default()) {
        // The statement is its own transaction, and its answer the buildset's row.
        let counted = Tagged::off(db, op);
        let mut attempt: u32 = 1;
        loop {
            let result = super::single::add_buildset(
                &counted,
                mode,
                input,
                submitted_at,
                bridge,
                super::single::Transaction::Own,
            )
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "retrying an add after a conflict");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt * attempt)))
                        .await;
                    attempt += 1;
                }
                other => {
                    let (added, row) = other?;
                    let view = relations.map(|_| BuildsetView {
                        row,
                        stamps: None,
                        props: None,
                        requests: None,
                    });
                    return Ok((added, view));
                }
            }
        }
    }
    in_write_transaction!(db, op, |txn| async {
        if single {
            // The same statement, then the relations, in one transaction.
            let (added, row) = super::single::add_buildset(
                &txn,
                mode,
                input,
                submitted_at,
                bridge,
                super::single::Transaction::Caller,
            )
            .await?;
            let view = match relations {
                Some(rel) => {
                    let loader = Loader { db: txn, mode };
                    loader.buildset_graph(vec![row], rel).await?.pop()
                }
                None => None,
            };
            return Ok((added, view));
        }
        let added = add_buildset_in(&txn, mode, input, submitted_at, bridge).await?;
        let view = match relations {
            Some(rel) => load_one(&txn, mode, added.bsid, rel).await?,
            None => None,
        };
        Ok((added, view))
    })
}

/// One buildset with `relations`, read through `txn`.
async fn load_one(
    txn: &Tagged<'_, DatabaseTransaction>,
    mode: SchemaMode,
    bsid: i32,
    relations: &Relations,
) -> StoreResult<Option<BuildsetView>> {
    let rows = super::read::buildsets_by_ids(txn, &[bsid]).await?;
    let loader = Loader { db: *txn, mode };
    Ok(loader.buildset_graph(rows, relations).await?.pop())
}

async fn add_buildset_in(
    txn: &impl ConnectionTrait,
    mode: SchemaMode,
    input: &NewBuildset,
    submitted_at: i32,
    bridge: Option<i32>,
) -> StoreResult<AddedBuildset> {
    if let Some(key) = &input.idempotency_key {
        if let Some(earlier) = find_by_key(txn, key).await? {
            return Ok(earlier);
        }
    }
    // A new stamp's row is dated when it is written, as Buildbot's `findOrCreateId`
    // dates it, whatever (possibly backdated) time the buildset carries.
    let ssids = super::stamps::resolve_sourcestamps(txn, &input.sourcestamps, super::now()).await?;
    check_references(txn, mode, input).await?;
    // With no builder there is nothing to wait for: Buildbot's data API completes
    // such a buildset at once with SUCCESS (its `maybeBuildsetComplete` over no
    // requests), dated now. Here it is written complete in the same transaction.
    let done = input.builderids.is_empty();
    let bsid = insert_buildset(txn, input, submitted_at, done).await?;
    insert_properties(txn, bsid, input).await?;
    // One multi-row statement per table, whatever the number of stamps and
    // builders. A single INSERT numbers its rows in the order given, so the link
    // ids keep the stamps' order.
    buildset_sourcestamps::Entity::insert_many(ssids.iter().map(|ssid| {
        buildset_sourcestamps::ActiveModel {
            buildsetid: Set(bsid),
            sourcestampid: Set(*ssid),
            ..Default::default()
        }
    }))
    .exec_without_returning(txn)
    .await?;
    let brids = insert_requests(txn, bsid, input, submitted_at).await?;
    notify(txn, 'a', bsid).await?;
    if done {
        notify(txn, 'c', bsid).await?;
    }
    if let Some(objectid) = bridge {
        // The bridge announces it; one complete already is announced complete too.
        let value = if done { r#"{"complete": true}"# } else { "{}" };
        super::bridge::leave(txn, objectid, &format!("announce:{bsid}"), value).await?;
    }
    Ok(AddedBuildset {
        bsid,
        brids,
        created: true,
    })
}

/// The builders named exist; attached, so do the builds named.
async fn check_references(
    txn: &impl ConnectionTrait,
    mode: SchemaMode,
    input: &NewBuildset,
) -> StoreResult<()> {
    check_builders_exist(txn, &input.builderids).await?;
    if mode == SchemaMode::Attached {
        for (field, id) in [
            ("parent_buildid", input.parent_buildid),
            ("rebuilt_buildid", input.rebuilt_buildid),
        ] {
            if let Some(id) = id {
                check_build_exists(txn, field, id).await?;
            }
        }
    }
    Ok(())
}

/// The buildset's row; its id.
async fn insert_buildset(
    txn: &impl ConnectionTrait,
    input: &NewBuildset,
    submitted_at: i32,
    done: bool,
) -> StoreResult<i32> {
    Ok(buildsets::Entity::insert(buildsets::ActiveModel {
        external_idstring: Set(input
            .external_idstring
            .clone()
            .or_else(|| input.idempotency_key.clone())),
        reason: Set(input.reason.clone()),
        submitted_at: Set(submitted_at),
        complete: Set(i16::from(done)),
        complete_at: Set(done.then(super::now)),
        results: Set(Some(if done { SUCCESS } else { -1 })),
        parent_buildid: Set(input.parent_buildid),
        parent_relationship: Set(input.parent_relationship.clone()),
        rebuilt_buildid: Set(input.rebuilt_buildid),
        ..Default::default()
    })
    .exec(txn)
    .await?
    .last_insert_id)
}

async fn insert_properties(
    txn: &impl ConnectionTrait,
    bsid: i32,
    input: &NewBuildset,
) -> StoreResult<()> {
    let properties: Vec<_> = input.stored_properties().collect();
    if properties.is_empty() {
        return Ok(());
    }
    buildset_properties::Entity::insert_many(properties.iter().map(|p| {
        buildset_properties::ActiveModel {
            buildsetid: Set(bsid),
            property_name: Set(p.name.clone()),
            property_value: Set(json::encode_property(&p.value, &p.source)),
        }
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// One build request per builder; each builder with its request's id.
async fn insert_requests(
    txn: &impl ConnectionTrait,
    bsid: i32,
    input: &NewBuildset,
    submitted_at: i32,
) -> StoreResult<Vec<(i32, i32)>> {
    if input.builderids.is_empty() {
        return Ok(Vec::new());
    }
    buildrequests::Entity::insert_many(input.builderids.iter().map(|builderid| {
        buildrequests::ActiveModel {
            buildsetid: Set(bsid),
            builderid: Set(*builderid),
            priority: Set(input.priority),
            complete: Set(Some(0)),
            results: Set(Some(-1)),
            submitted_at: Set(submitted_at),
            complete_at: Set(None),
            waited_for: Set(Some(i16::from(input.waited_for))),
            ..Default::default()
        }
    }))
    .exec_without_returning(txn)
    .await?;
    // The builders are distinct (validated), so each has one request here.
    let ids: std::collections::HashMap<i32, i32> = buildrequests::Entity::find()
        .select_only()
        .column(buildrequests::Column::Builderid)
        .column(buildrequests::Column::Id)
        .filter(buildrequests::Column::Buildsetid.eq(bsid))
        .into_tuple::<(i32, i32)>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    input
        .builderids
        .iter()
        .map(|b| Ok((*b, *ids.get(b).ok_or(StoreError::Conflict)?)))
        .collect()
}

/// The buildset an earlier add with idempotency key `key` wrote, if any, with its
/// build requests. Two adds with one key must not both miss each other: SQLite's
/// write transactions run one at a time; PostgreSQL takes a transaction-scoped
/// advisory lock on the key; on MySQL/MariaDB the locking read takes next-key locks
/// on the `submitted_at` range, so a concurrent add with the same key deadlocks and
/// is run again, and then finds this one.
async fn find_by_key(txn: &impl ConnectionTrait, key: &str) -> StoreResult<Option<AddedBuildset>> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        let digest = sha1::Sha1::digest(key.as_bytes());
        let mut lock = [0u8; 8];
        lock.copy_from_slice(&digest[..8]);
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [Value::from(i64::from_be_bytes(lock))],
        ))
        .await?;
    }
    let since = super::now().saturating_sub(super::IDEMPOTENCY_WINDOW);
    let mut find = buildsets::Entity::find()
        .select_only()
        .column(buildsets::Column::Id)
        .filter(buildsets::Column::SubmittedAt.gte(since))
        .filter(buildsets::Column::ExternalIdstring.eq(key));
    if backend == DbBackend::MySql {
        // MySQL compares text by its collation: `ikA` would find `ika`, `iké` `ike`
        // and `k ` `k`. A key is an exact string, so compare its bytes.
        find = find
            .filter(Expr::cust_with_values(
                "CAST(external_idstring AS BINARY) = CAST(? AS BINARY)",
                [key],
            ))
            .lock_exclusive();
    }
    let Some(bsid) = find.into_tuple::<i32>().one(txn).await? else {
        return Ok(None);
    };
    let brids: Vec<(i32, i32)> = buildrequests::Entity::find()
        .select_only()
        .column(buildrequests::Column::Builderid)
        .column(buildrequests::Column::Id)
        .filter(buildrequests::Column::Buildsetid.eq(bsid))
        .order_by_asc(buildrequests::Column::Id)
        .into_tuple()
        .all(txn)
        .await?;
    Ok(Some(AddedBuildset {
        bsid,
        brids,
        created: false,
    }))
}

/// On PostgreSQL, tells every listening server (see `feed::CHANNEL`) that buildset
/// `bsid` was added (`a`) or completed (`c`). Inside a transaction the
/// notification is delivered on commit, and never for a rollback.
pub(super) async fn notify(db: &impl ConnectionTrait, kind: char, bsid: i32) -> StoreResult<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [
                Value::from(super::feed::CHANNEL),
                Value::from(format!("{kind}:{bsid}")),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// `?` placeholders to PostgreSQL's `$n`.
pub(super) fn numbered(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

async fn check_builders_exist(txn: &impl ConnectionTrait, builderids: &[i32]) -> StoreResult<()> {
    use entity::builders;
    match first_missing::<builders::Entity>(txn, builders::Column::Id, builderids).await? {
        Some(missing) => Err(StoreError::invalid(
            "builderids",
            format!("builder {missing} does not exist"),
        )),
        None => Ok(()),
    }
}

/// The first of `ids` that no row of `E` has in `column` (one IN query; none for an
/// empty list).
pub(super) async fn first_missing<E: EntityTrait>(
    txn: &impl ConnectionTrait,
    column: E::Column,
    ids: &[i32],
) -> StoreResult<Option<i32>> {
    if ids.is_empty() {
        return Ok(None);
    }
    let found: HashSet<i32> = E::find()
        .select_only()
        .column(column)
        .filter(column.is_in(ids.iter().copied()))
        .into_tuple::<i32>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    Ok(ids.iter().copied().find(|id| !found.contains(id)))
}

/// In a Buildbot database parent/rebuilt build ids reference `builds(id)`.
async fn check_build_exists(txn: &impl ConnectionTrait, field: &str, id: i32) -> StoreResult<()> {
    let backend = txn.get_database_backend();
    let sql = numbered(backend, "SELECT id FROM builds WHERE id = ?");
    let found = txn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::invalid(
            field,
            format!("build {id} does not exist"),
        )),
    }
}
