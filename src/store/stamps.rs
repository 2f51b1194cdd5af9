//! Sourcestamps (and their patches), found or created as Buildbot's
//! `findOrCreateId` does: by `ss_hash`, race-safe on every backend, in the add's
//! transaction.

use base64::Engine as _;
use entity::{patches, sourcestamps};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Set, Statement, Value};

use super::hash::sourcestamp_hash;
use super::types::{NewPatch, SourceStampRef, SourceStampSpec};
use super::write::{first_missing, numbered};
use super::{StoreError, StoreResult};

/// Turns each input into a sourcestamp id, creating stamps (and patches) as needed.
pub(super) async fn resolve_sourcestamps(
    txn: &impl ConnectionTrait,
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
pub(super) async fn insert_if_absent(
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
