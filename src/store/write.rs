//! The write operations: add a buildset (with sourcestamps, patches, properties and
//! build requests) in one transaction, complete a buildset, find-or-create a builder.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use entity::{
    buildrequests, buildset_properties, buildset_sourcestamps, buildsets, patches, sourcestamps,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait, Value,
};
use sha1::Digest as _;

use super::db::SchemaMode;
use super::graph::{BuildsetView, Loader, Relations};
use super::hash::{builder_name_hash, sourcestamp_hash};
use super::rows::BuilderRow;
use super::types::{AddedBuildset, NewBuildset, NewPatch, SourceStampRef, SourceStampSpec};
use super::{json, StoreError, StoreResult};

/// How often a transaction that lost a deadlock or busy race is run again.
pub(super) const MAX_ATTEMPTS: u32 = 8;

/// Buildbot's result code SUCCESS.
pub(super) const SUCCESS: i16 = 0;

/// Runs `$body` (an expression using the transaction `$txn`) in one write
/// transaction, committing on success and rolling back on error; a transaction that
/// failed on a transient conflict runs again from scratch. A macro rather than a
/// function taking a closure, because a closure returning a borrowing future cannot
/// be proven `Send` for every lifetime (which the server's tasks require).
macro_rules! in_write_transaction {
    ($db:expr, |$txn:ident| $body:expr) => {{
        let mut attempt: u32 = 1;
        loop {
            let result: StoreResult<_> = async {
                // SQLite has one writer: take the write lock up front so that two
                // writers queue on the busy timeout instead of failing to upgrade.
                let $txn = $db
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..Default::default()
                    })
                    .await?;
                match $body.await {
                    Ok(value) => {
                        $txn.commit().await?;
                        Ok(value)
                    }
                    Err(e) => {
                        // The error that caused the rollback matters more than a failed rollback.
                        let _ = $txn.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "retrying a transaction after a conflict");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt * attempt)))
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
    Ok(add_buildset_loading(db, mode, input, None, None).await?.0)
}

/// Adds a buildset and, given `relations`, loads it as written, inside the same
/// transaction: once COMMIT has succeeded, nothing is left to fail, so a connection
/// lost afterwards cannot turn the write into an error. Given the bridge's object
/// id, the buildset is left for the bridge to announce (see [`super::bridge`]).
pub async fn add_buildset_loading(
    db: &DatabaseConnection,
    mode: SchemaMode,
    input: &NewBuildset,
    relations: Option<&Relations>,
    bridge: Option<i32>,
) -> StoreResult<(AddedBuildset, Option<BuildsetView>)> {
    input.validate()?;
    let submitted_at = input.submitted_at.unwrap_or_else(super::now);
    in_write_transaction!(db, |txn| async {
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
    txn: &DatabaseTransaction,
    mode: SchemaMode,
    bsid: i32,
    relations: &Relations,
) -> StoreResult<Option<BuildsetView>> {
    let rows = super::read::buildsets_by_ids(txn, &[bsid]).await?;
    let loader = Loader {
        db: super::tag::Tagged::off(txn),
        mode,
    };
    Ok(loader.buildset_graph(rows, relations).await?.pop())
}

async fn add_buildset_in(
    txn: &DatabaseTransaction,
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
    let ssids = resolve_sourcestamps(txn, &input.sourcestamps, super::now()).await?;
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

    // With no builder there is nothing to wait for: Buildbot's data API completes
    // such a buildset at once with SUCCESS (its `maybeBuildsetComplete` over no
    // requests), dated now. Here it is written complete in the same transaction.
    let done = input.builderids.is_empty();
    let bsid = buildsets::Entity::insert(buildsets::ActiveModel {
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
    .last_insert_id;

    let properties: Vec<_> = input.stored_properties().collect();
    if !properties.is_empty() {
        buildset_properties::Entity::insert_many(properties.iter().map(|p| {
            buildset_properties::ActiveModel {
                buildsetid: Set(bsid),
                property_name: Set(p.name.clone()),
                property_value: Set(json::encode_property(&p.value, &p.source)),
            }
        }))
        .exec_without_returning(txn)
        .await?;
    }

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

    let mut brids = Vec::with_capacity(input.builderids.len());
    if !input.builderids.is_empty() {
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
        for builderid in &input.builderids {
            brids.push((*builderid, *ids.get(builderid).ok_or(StoreError::Conflict)?));
        }
    }
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

/// The buildset an earlier add with idempotency key `key` wrote, if any, with its
/// build requests. Two adds with one key must not both miss each other: SQLite's
/// write transactions run one at a time; PostgreSQL takes a transaction-scoped
/// advisory lock on the key; on MySQL/MariaDB the locking read takes next-key locks
/// on the `submitted_at` range, so a concurrent add with the same key deadlocks and
/// is run again, and then finds this one.
async fn find_by_key(txn: &DatabaseTransaction, key: &str) -> StoreResult<Option<AddedBuildset>> {
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

/// Turns each input into a sourcestamp id, creating stamps (and patches) as needed.
async fn resolve_sourcestamps(
    txn: &DatabaseTransaction,
    refs: &[SourceStampRef],
    now: i32,
) -> StoreResult<Vec<i32>> {
    let given: Vec<i32> = refs
        .iter()
        .filter_map(|r| match r {
            SourceStampRef::Id(id) => Some(*id),
            SourceStampRef::Spec(_) => None,
        })
        .collect();
    if let Some(missing) =
        first_missing::<sourcestamps::Entity>(txn, sourcestamps::Column::Id, &given).await?
    {
        return Err(StoreError::invalid(
            "sourcestamps",
            format!("sourcestamp {missing} does not exist"),
        ));
    }

    let specs: Vec<&SourceStampSpec> = refs
        .iter()
        .filter_map(|r| match r {
            SourceStampRef::Spec(spec) => Some(spec),
            SourceStampRef::Id(_) => None,
        })
        .collect();
    let mut created = find_or_create_sourcestamps(txn, &specs, now)
        .await?
        .into_iter();
    let mut ssids = Vec::with_capacity(refs.len());
    for r in refs {
        let ssid = match r {
            SourceStampRef::Id(id) => *id,
            SourceStampRef::Spec(_) => created.next().ok_or(StoreError::Conflict)?,
        };
        if ssids.contains(&ssid) {
            return Err(StoreError::invalid(
                "sourcestamps",
                format!("sourcestamp {ssid} is given twice"),
            ));
        }
        ssids.push(ssid);
    }
    Ok(ssids)
}

/// Finds each sourcestamp by its hash or creates it (with its patch, which is always
/// new, as in Buildbot), safe against concurrent creators of the same description,
/// in a constant number of statements: one multi-row insert that skips the hashes already there, one read
/// of all their ids (patches, always new, are written first, one each: their ids
/// are part of the hash). Returns the ids in the order of `specs`.
pub async fn find_or_create_sourcestamps(
    txn: &impl ConnectionTrait,
    specs: &[&SourceStampSpec],
    now: i32,
) -> StoreResult<Vec<i32>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut hashes = Vec::with_capacity(specs.len());
    let mut rows = Vec::with_capacity(specs.len());
    for spec in specs {
        let patchid = match &spec.patch {
            Some(patch) => Some(insert_patch(txn, patch).await?),
            None => None,
        };
        let ss_hash = sourcestamp_hash(
            spec.branch.as_deref(),
            spec.revision.as_deref(),
            &spec.repository,
            &spec.project,
            &spec.codebase,
            patchid,
        );
        hashes.push(ss_hash.clone());
        rows.push(vec![
            Value::from(ss_hash),
            spec.branch.clone().into(),
            spec.revision.clone().into(),
            patchid.into(),
            spec.repository.clone().into(),
            spec.codebase.clone().into(),
            spec.project.clone().into(),
            now.into(),
        ]);
    }
    let columns = "ss_hash, branch, revision, patchid, repository, codebase, project, created_at";
    let ids = insert_all_absent(txn, "sourcestamps", columns, "ss_hash", &hashes, rows).await?;
    hashes
        .iter()
        .map(|h| ids.get(h).copied().ok_or(StoreError::Conflict))
        .collect()
}

/// Inserts the rows whose unique `key_column` value is not there yet, in one
/// statement, and returns the id of every key's row afterwards (one more). The same
/// per-backend care as [`insert_if_absent`].
async fn insert_all_absent(
    txn: &impl ConnectionTrait,
    table: &str,
    columns: &str,
    key_column: &str,
    keys: &[String],
    rows: Vec<Vec<Value>>,
) -> StoreResult<std::collections::HashMap<String, i32>> {
    let backend = txn.get_database_backend();
    let row_marks = |n: usize| format!("({})", vec!["?"; n].join(", "));
    let marks: Vec<String> = rows.iter().map(|r| row_marks(r.len())).collect();
    let values: Vec<Value> = rows.into_iter().flatten().collect();
    let key_marks = vec!["?"; keys.len()].join(", ");
    let keys_as_values = keys.iter().map(|k| Value::from(k.clone()));
    if backend == DbBackend::MySql {
        let sql = format!(
            "INSERT IGNORE INTO {table} ({columns}) VALUES {}",
            marks.join(", ")
        );
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        fail_on_warnings_but_duplicates(txn, table).await?;
        let sql = format!(
            "SELECT id, {key_column} FROM {table} WHERE {key_column} IN ({key_marks}) LOCK IN SHARE MODE"
        );
        return ids_by_key(
            txn,
            Statement::from_sql_and_values(backend, sql, keys_as_values),
        )
        .await;
    }
    let sql = numbered(
        backend,
        &format!(
            "INSERT INTO {table} ({columns}) VALUES {} ON CONFLICT ({key_column}) DO NOTHING",
            marks.join(", ")
        ),
    );
    txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let sql = numbered(
        backend,
        &format!("SELECT id, {key_column} FROM {table} WHERE {key_column} IN ({key_marks})"),
    );
    ids_by_key(
        txn,
        Statement::from_sql_and_values(backend, sql, keys_as_values),
    )
    .await
}

async fn ids_by_key(
    txn: &impl ConnectionTrait,
    stmt: Statement,
) -> StoreResult<std::collections::HashMap<String, i32>> {
    let mut out = std::collections::HashMap::new();
    for row in txn.query_all_raw(stmt).await? {
        out.insert(
            row.try_get_by_index::<String>(1)?,
            row.try_get_by_index::<i32>(0)?,
        );
    }
    Ok(out)
}

/// IGNORE turns every error into a warning, not only the duplicate key it is
/// there for: a text truncated or a character replaced by `?` would be stored
/// silently, with a hash of what was given. Input is checked to fit before this,
/// so any other warning is a bug, and the transaction is dropped.
async fn fail_on_warnings_but_duplicates(
    txn: &impl ConnectionTrait,
    table: &str,
) -> StoreResult<()> {
    let backend = txn.get_database_backend();
    let warnings = txn
        .query_all_raw(Statement::from_string(backend, "SHOW WARNINGS"))
        .await?;
    for w in &warnings {
        let code = w
            .try_get::<u32>("", "Code")
            .or_else(|_| w.try_get::<i64>("", "Code").map(|c| c as u32))
            .unwrap_or(0);
        if code != DUPLICATE_KEY {
            let message = w.try_get::<String>("", "Message").unwrap_or_default();
            return Err(StoreError::Db(sea_orm::DbErr::Custom(format!(
                "INSERT IGNORE INTO {table} warned {code}: {message}"
            ))));
        }
    }
    Ok(())
}

async fn insert_patch(txn: &impl ConnectionTrait, patch: &NewPatch) -> StoreResult<i32> {
    Ok(patches::Entity::insert(patches::ActiveModel {
        patchlevel: Set(patch.level),
        patch_base64: Set(base64::engine::general_purpose::STANDARD.encode(&patch.body)),
        patch_author: Set(patch.author.clone()),
        patch_comment: Set(patch.comment.clone()),
        subdir: Set(patch.subdir.clone()),
        ..Default::default()
    })
    .exec(txn)
    .await?
    .last_insert_id)
}

/// MySQL's ER_DUP_ENTRY.
const DUPLICATE_KEY: u32 = 1062;

/// Inserts a row unless one with the same unique `key_column` exists; returns the id
/// of whichever row is there afterwards. Each backend needs its own statement: a
/// unique violation aborts a PostgreSQL transaction, and a plain read after a
/// duplicate may miss the winner's row under MySQL's REPEATABLE READ.
async fn insert_if_absent(
    txn: &impl ConnectionTrait,
    table: &str,
    columns: &str,
    key_column: &str,
    key: &str,
    values: Vec<Value>,
) -> StoreResult<i32> {
    let backend = txn.get_database_backend();
    let marks = vec!["?"; values.len()].join(", ");
    if backend == DbBackend::MySql {
        // INSERT IGNORE waits on a shared lock for an uncommitted duplicate, and the
        // locking read then sees the committed winner; shared locks do not deadlock
        // each other the way ON DUPLICATE KEY UPDATE's exclusive ones do.
        let sql = format!("INSERT IGNORE INTO {table} ({columns}) VALUES ({marks})");
        let done = txn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        fail_on_warnings_but_duplicates(txn, table).await?;
        if done.rows_affected() == 1 {
            return i32::try_from(done.last_insert_id())
                .map_err(|_| StoreError::Db(sea_orm::DbErr::Custom("id out of range".into())));
        }
        let sql = format!("SELECT id FROM {table} WHERE {key_column} = ? LOCK IN SHARE MODE");
        return select_id(
            txn,
            Statement::from_sql_and_values(backend, sql, [key.into()]),
        )
        .await;
    }
    let sql = numbered(
        backend,
        &format!(
            "INSERT INTO {table} ({columns}) VALUES ({marks}) \
             ON CONFLICT ({key_column}) DO NOTHING RETURNING id"
        ),
    );
    if let Some(row) = txn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
    {
        return Ok(row.try_get_by_index::<i32>(0)?);
    }
    let sql = numbered(
        backend,
        &format!("SELECT id FROM {table} WHERE {key_column} = ?"),
    );
    select_id(
        txn,
        Statement::from_sql_and_values(backend, sql, [key.into()]),
    )
    .await
}

async fn select_id(txn: &impl ConnectionTrait, stmt: Statement) -> StoreResult<i32> {
    match txn.query_one_raw(stmt).await? {
        Some(row) => Ok(row.try_get_by_index::<i32>(0)?),
        // The conflicting row vanished between the insert and the read (its writer
        // rolled back): a transient conflict, so the whole transaction runs again.
        None => Err(StoreError::Conflict),
    }
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

async fn check_builders_exist(txn: &DatabaseTransaction, builderids: &[i32]) -> StoreResult<()> {
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
async fn first_missing<E: EntityTrait>(
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
async fn check_build_exists(txn: &DatabaseTransaction, field: &str, id: i32) -> StoreResult<()> {
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

/// Finds a builder by name or creates it; a given description is stored.
pub async fn ensure_builder(
    db: &DatabaseConnection,
    name: &str,
    description: Option<&str>,
) -> StoreResult<BuilderRow> {
    if name.is_empty() {
        return Err(StoreError::invalid(
            "name",
            "a builder name cannot be empty",
        ));
    }
    super::types::check_text_bytes("name", Some(name))?;
    super::types::check_text_bytes("description", description)?;
    let name_hash = builder_name_hash(name);
    in_write_transaction!(db, |txn| async {
        let txn = &txn;
        let values: Vec<Value> = vec![
            name.into(),
            description.map(str::to_owned).into(),
            name_hash.clone().into(),
        ];
        let id = insert_if_absent(
            txn,
            "builders",
            "name, description, name_hash",
            "name_hash",
            &name_hash,
            values,
        )
        .await?;
        if let Some(description) = description {
            entity::builders::Entity::update_many()
                .col_expr(
                    entity::builders::Column::Description,
                    Expr::value(description),
                )
                .filter(entity::builders::Column::Id.eq(id))
                .exec(txn)
                .await?;
        }
        entity::builders::Entity::find_by_id(id)
            .one(txn)
            .await?
            .map(BuilderRow::from)
            .ok_or_else(|| StoreError::NotFound(format!("builder {id} does not exist")))
    })
}
