//! Completing a buildset, as Buildbot's `completeBuildset` does: one conditional
//! UPDATE, so that of many concurrent completions exactly one succeeds; attached to a
//! master, not while its build requests are unfinished.

use entity::{buildrequests, buildsets};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    Statement, UpdateMany, Value,
};

use super::db::SchemaMode;
use super::graph::{BuildsetView, Loader, Relations};
use super::rows::BuildsetRow;
use super::write::{in_write_transaction, notify};
use super::{StoreError, StoreResult};

/// Completes a buildset and loads it with `relations`, in one transaction (as
/// [`add_buildset_loading`], so that the answer is what this write did).
pub async fn complete_buildset_loading(
    db: &DatabaseConnection,
    mode: SchemaMode,
    bsid: i32,
    results: i32,
    complete_at: Option<i32>,
    relations: &Relations,
    op: &super::tag::Operation,
) -> StoreResult<BuildsetView> {
    in_write_transaction!(db, op, |txn| async {
        let row = complete_buildset(&txn, mode, bsid, results, complete_at).await?;
        let loader = Loader { db: txn, mode };
        loader
            .buildset_graph(vec![row], relations)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("buildset {bsid} does not exist")))
    })
}

/// The completion as one statement, its own transaction: PostgreSQL's notification
/// rides in the same statement, so nothing is sent unless the update commits.
const COMPLETE_RETURNING_PG: &str = "WITH done AS (\
     UPDATE buildsets SET complete = 1, results = $1, complete_at = $2 \
     WHERE id = $3 AND complete <> 1 RETURNING *), \
     told AS (SELECT pg_notify($4, $5) FROM done) \
     SELECT done.*, (SELECT count(*) FROM told) AS told FROM done";

/// The same, attached to a master: not while a build request is unfinished.
const COMPLETE_RETURNING_PG_ATTACHED: &str = "WITH done AS (\
     UPDATE buildsets SET complete = 1, results = $1, complete_at = $2 \
     WHERE id = $3 AND complete <> 1 AND NOT EXISTS (SELECT 1 FROM buildrequests \
     WHERE buildsetid = $3 AND COALESCE(complete, 0) <> 1) RETURNING *), \
     told AS (SELECT pg_notify($4, $5) FROM done) \
     SELECT done.*, (SELECT count(*) FROM told) AS told FROM done";

/// Completes a buildset in one statement (`UPDATE … RETURNING`), for an answer that
/// needs nothing but the buildset itself: one round trip instead of a transaction's
/// five. On MariaDB (no `UPDATE … RETURNING`) one compound statement does the same
/// when `single` (see `single::supported`); `None` where neither serves (MySQL),
/// which then takes [`complete_buildset_loading`].
pub async fn complete_buildset_returning(
    db: &impl ConnectionTrait,
    mode: SchemaMode,
    bsid: i32,
    results: i32,
    complete_at: Option<i32>,
    single: bool,
) -> StoreResult<Option<BuildsetRow>> {
    check_results(results)?;
    let complete_at = complete_at.unwrap_or_else(super::now);
    let row = match db.get_database_backend() {
        DbBackend::Postgres => {
            buildsets::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    match mode {
                        SchemaMode::Attached => COMPLETE_RETURNING_PG_ATTACHED,
                        SchemaMode::Standalone => COMPLETE_RETURNING_PG,
                    },
                    [
                        Value::from(results as i16),
                        Value::from(complete_at),
                        Value::from(bsid),
                        Value::from(super::feed::CHANNEL),
                        Value::from(format!("c:{bsid}")),
                    ],
                ))
                .one(db)
                .await?
        }
        DbBackend::Sqlite => completion(mode, bsid, results, complete_at)
            .exec_with_returning(db)
            .await?
            .into_iter()
            .next(),
        DbBackend::MySql if single => {
            let rows = db
                .query_all_raw(super::single::mysql_complete(
                    mode,
                    bsid,
                    results as i16,
                    complete_at,
                ))
                .await?;
            return match super::single::mysql_completed(&rows)? {
                Ok(row) => Ok(Some(row)),
                Err(Some(e)) => Err(e),
                Err(None) => Err(why_not_completed(db, bsid).await?),
            };
        }
        _ => return Ok(None),
    };
    match row {
        Some(row) => Ok(Some(row.into())),
        None => Err(why_not_completed(db, bsid).await?),
    }
}

/// The UPDATE that completes `bsid` unless it is complete already, and (attached to
/// a master) unless one of its build requests is unfinished: the master owns those,
/// and completes the buildset itself when they are done.
fn completion(
    mode: SchemaMode,
    bsid: i32,
    results: i32,
    complete_at: i32,
) -> UpdateMany<buildsets::Entity> {
    let update = buildsets::Entity::update_many()
        .col_expr(buildsets::Column::Complete, Expr::value(1i16))
        .col_expr(buildsets::Column::Results, Expr::value(results as i16))
        .col_expr(buildsets::Column::CompleteAt, Expr::value(complete_at))
        .filter(buildsets::Column::Id.eq(bsid))
        .filter(buildsets::Column::Complete.ne(1i16));
    match mode {
        SchemaMode::Standalone => update,
        SchemaMode::Attached => update.filter(
            Expr::exists(
                sea_orm::sea_query::Query::select()
                    .expr(Expr::value(1))
                    .from(buildrequests::Entity)
                    .and_where(buildrequests::Column::Buildsetid.eq(bsid))
                    .and_where(
                        Expr::col((buildrequests::Entity, buildrequests::Column::Complete))
                            .if_null(0)
                            .ne(1),
                    )
                    .to_owned(),
            )
            .not(),
        ),
    }
}

/// Why the completion of `bsid` changed no row: it does not exist, it is complete,
/// or (attached) build requests of its are unfinished.
async fn why_not_completed(db: &impl ConnectionTrait, bsid: i32) -> StoreResult<StoreError> {
    let Some(row) = buildsets::Entity::find_by_id(bsid).one(db).await? else {
        return Ok(StoreError::NotFound(format!(
            "buildset {bsid} does not exist"
        )));
    };
    if row.complete == 1 {
        return Ok(StoreError::AlreadyComplete(bsid));
    }
    let brids = super::cancel::unfinished_requests(db, bsid, false).await?;
    if brids.is_empty() {
        // Its last request completed between the two statements: a retry completes it.
        return Ok(StoreError::Conflict);
    }
    Ok(StoreError::RequestsUnfinished { bsid, brids })
}

fn check_results(results: i32) -> StoreResult<()> {
    if (0..=6).contains(&results) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "results",
            format!("results must be a Buildbot result code 0-6, got {results}"),
        ))
    }
}

/// Marks a buildset complete with one conditional UPDATE, so that of many concurrent
/// completions exactly one succeeds. Build requests are left alone, as in Buildbot.
pub async fn complete_buildset(
    db: &impl ConnectionTrait,
    mode: SchemaMode,
    bsid: i32,
    results: i32,
    complete_at: Option<i32>,
) -> StoreResult<BuildsetRow> {
    check_results(results)?;
    let complete_at = complete_at.unwrap_or_else(super::now);
    let updated = completion(mode, bsid, results, complete_at)
        .exec(db)
        .await?
        .rows_affected;
    if updated != 1 {
        return Err(why_not_completed(db, bsid).await?);
    }
    let row = buildsets::Entity::find_by_id(bsid).one(db).await?;
    match row {
        Some(row) => {
            // Outside a transaction the UPDATE has committed on its own; inside one,
            // PostgreSQL delivers the notification at COMMIT. One that is lost here
            // is made good by the other servers' polls.
            if let Err(e) = notify(db, 'c', bsid).await {
                tracing::warn!(bsid, error = %e, "could not notify a completion");
            }
            Ok(row.into())
        }
        None => Err(StoreError::NotFound(format!(
            "buildset {bsid} does not exist"
        ))),
    }
}
