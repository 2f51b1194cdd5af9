//! What this server leaves for the Buildbot master's bridge (`buildbot-plugin/`), in
//! Buildbot's own `object_state` table, under the bridge's row of `objects`.
//!
//! A master starts builds when its message queue announces them, and only its own
//! code sends those messages. So every buildset written here, attached to a master,
//! leaves a row `announce:<bsid>` in the same transaction; the bridge, running
//! inside the master, sends the messages Buildbot's `addBuildset` would have sent and
//! deletes the row. It announces exactly what this server wrote: no guessing from
//! timing which buildsets the master added itself. A claimed build request is
//! cancelled by its master, so `cancel:<brid>` asks the bridge to run Buildbot's own
//! cancel; `completed:<bsid>` asks it to send the completion messages of requests
//! this server cancelled itself (unclaimed ones), as Buildbot's cancel would.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::{StoreError, StoreResult};

/// The bridge's row of `objects`, as its `getObjectId(name, class_name)` makes it.
pub const OBJECT_NAME: &str = "buildsets-graphql-bridge";
pub const OBJECT_CLASS: &str = "buildsets_graphql_bridge.Bridge";

/// The tables the queue lives in; every Buildbot database has them.
pub const TABLES: &[&str] = &["objects", "object_state", "buildrequest_claims", "masters"];

/// The bridge's object id, found or made once (outside any write transaction, so
/// that a rolled-back write cannot leave the id of a row that is not there).
#[derive(Debug, Default)]
pub struct Queue {
    objectid: tokio::sync::OnceCell<i32>,
}

impl Queue {
    /// The queue of an attached database that has Buildbot's tables for it.
    pub async fn detect(db: &impl ConnectionTrait) -> StoreResult<Option<Queue>> {
        for table in TABLES {
            if super::db::table_columns(db, table).await?.is_empty() {
                tracing::warn!(
                    table,
                    "no such Buildbot table: buildsets written here are not announced to a master's bridge"
                );
                return Ok(None);
            }
        }
        Ok(Some(Queue::default()))
    }

    /// The bridge's object id, found or made in `objects`.
    pub async fn objectid(&self, db: &impl ConnectionTrait) -> StoreResult<i32> {
        self.objectid
            .get_or_try_init(|| find_or_create_object(db))
            .await
            .copied()
    }
}

async fn find_or_create_object(db: &impl ConnectionTrait) -> StoreResult<i32> {
    let backend = db.get_database_backend();
    let insert = match backend {
        DbBackend::MySql => "INSERT IGNORE INTO objects (name, class_name) VALUES (?, ?)",
        DbBackend::Postgres => {
            "INSERT INTO objects (name, class_name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        }
        _ => "INSERT INTO objects (name, class_name) VALUES (?, ?) ON CONFLICT DO NOTHING",
    };
    let values = || -> Vec<Value> { vec![OBJECT_NAME.into(), OBJECT_CLASS.into()] };
    db.execute_raw(Statement::from_sql_and_values(backend, insert, values()))
        .await?;
    let select = if backend == DbBackend::Postgres {
        "SELECT id FROM objects WHERE name = $1 AND class_name = $2"
    } else {
        "SELECT id FROM objects WHERE name = ? AND class_name = ?"
    };
    match db
        .query_one_raw(Statement::from_sql_and_values(backend, select, values()))
        .await?
    {
        Some(row) => Ok(row.try_get_by_index::<i32>(0)?),
        None => Err(StoreError::Conflict),
    }
}

/// Leaves `name` with `value` (JSON text) for the bridge, unless it is there already.
pub async fn leave(
    txn: &impl ConnectionTrait,
    objectid: i32,
    name: &str,
    value: &str,
) -> StoreResult<()> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::MySql => {
            "INSERT IGNORE INTO object_state (objectid, name, value_json) VALUES (?, ?, ?)"
        }
        DbBackend::Postgres => {
            "INSERT INTO object_state (objectid, name, value_json) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING"
        }
        _ => {
            "INSERT INTO object_state (objectid, name, value_json) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING"
        }
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [objectid.into(), name.into(), value.into()],
    ))
    .await?;
    Ok(())
}
