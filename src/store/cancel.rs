//! Cancelling build requests, as Buildbot's own cancel does: claim and complete the
//! unclaimed ones at once, leave the claimed ones to their master (through the
//! bridge), and complete the buildset once nothing is left unfinished.

use std::collections::HashSet;

use entity::{buildrequests, buildsets};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use super::db::SchemaMode;
use super::write::{in_write_transaction, notify, numbered, SUCCESS};
use super::{StoreError, StoreResult};

/// Buildbot's result code CANCELLED.
const CANCELLED: i16 = 6;

/// What a cancel is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelTarget {
    /// Every unfinished build request of the buildset.
    Buildset(i32),
    /// One build request.
    BuildRequest(i32),
}

/// Cancels build requests as Buildbot's own cancel does, in one transaction, and
/// returns the buildset they belong to. A request no master has claimed is claimed
/// (attached: in the name of a master, as Buildbot's cancel claims before it
/// completes, so that no master starts it afterwards) and completed with CANCELLED
/// at once; a claimed one is running on its master, which alone can stop it: it is
/// left for the bridge (given its object id), which runs Buildbot's cancel there.
/// When no request is left unfinished the buildset is completed with the worst of
/// its requests' results, as Buildbot's `maybeBuildsetComplete` does.
pub async fn cancel(
    db: &DatabaseConnection,
    mode: SchemaMode,
    target: CancelTarget,
    bridge: Option<i32>,
    op: &super::tag::Operation,
) -> StoreResult<i32> {
    in_write_transaction!(db, op, |txn| async {
        cancel_in(&txn, mode, target, bridge).await
    })
}

async fn cancel_in(
    txn: &impl ConnectionTrait,
    mode: SchemaMode,
    target: CancelTarget,
    bridge: Option<i32>,
) -> StoreResult<i32> {
    let (bsid, unfinished) = lock_target(txn, target).await?;
    let now = super::now();
    let (ours, running) = match (mode, bridge) {
        (SchemaMode::Attached, Some(_)) => claim(txn, &unfinished, now).await?,
        _ => (unfinished, Vec::new()),
    };
    if !ours.is_empty() {
        buildrequests::Entity::update_many()
            .col_expr(buildrequests::Column::Complete, Expr::value(1))
            .col_expr(buildrequests::Column::Results, Expr::value(CANCELLED))
            .col_expr(buildrequests::Column::CompleteAt, Expr::value(now))
            .filter(buildrequests::Column::Id.is_in(ours.clone()))
            .exec(txn)
            .await?;
    }
    let completed = unfinished_requests(txn, bsid, true).await?.is_empty()
        && complete_when_done(txn, bsid, now).await?;
    if let Some(objectid) = bridge.filter(|_| mode == SchemaMode::Attached) {
        let done = Cancelled {
            bsid,
            ours: &ours,
            running: &running,
            completed,
        };
        done.leave_for_bridge(txn, objectid).await?;
    }
    Ok(bsid)
}

/// Takes the target's buildset row (cancels and completions of one buildset take
/// turns on it: two cancels of its requests at once must not each see the other's
/// request unfinished and leave the buildset incomplete for ever); its id and the
/// requests to cancel. A request's buildset never changes, so it is read first
/// without a lock. Every read after the lock is a locking read, which sees what
/// committed meanwhile (MySQL's plain reads would see the transaction's first
/// snapshot). SQLite's write transactions already take turns.
async fn lock_target(
    txn: &impl ConnectionTrait,
    target: CancelTarget,
) -> StoreResult<(i32, Vec<i32>)> {
    let bsid = match target {
        CancelTarget::BuildRequest(brid) => buildrequests::Entity::find_by_id(brid)
            .select_only()
            .column(buildrequests::Column::Buildsetid)
            .into_tuple::<i32>()
            .one(txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("build request {brid} does not exist")))?,
        CancelTarget::Buildset(bsid) => bsid,
    };
    let buildset = buildsets::Entity::find_by_id(bsid)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("buildset {bsid} does not exist")))?;
    let unfinished = match target {
        CancelTarget::BuildRequest(brid) => {
            let complete = buildrequests::Entity::find_by_id(brid)
                .select_only()
                .column(buildrequests::Column::Complete)
                .lock_exclusive()
                .into_tuple::<Option<i32>>()
                .one(txn)
                .await?
                .flatten();
            if complete.unwrap_or(0) == 1 {
                return Err(StoreError::RequestComplete(brid));
            }
            vec![brid]
        }
        CancelTarget::Buildset(_) if buildset.complete == 1 => {
            return Err(StoreError::AlreadyComplete(bsid))
        }
        CancelTarget::Buildset(_) => unfinished_requests(txn, bsid, true).await?,
    };
    Ok((bsid, unfinished))
}

/// What a cancel did, for the master's bridge.
struct Cancelled<'a> {
    bsid: i32,
    /// Requests cancelled here.
    ours: &'a [i32],
    /// Requests a master runs, which its own cancel must stop.
    running: &'a [i32],
    /// Whether the buildset was completed.
    completed: bool,
}

impl Cancelled<'_> {
    async fn leave_for_bridge(&self, txn: &impl ConnectionTrait, objectid: i32) -> StoreResult<()> {
        let bsid = self.bsid;
        for brid in self.running {
            super::bridge::leave(txn, objectid, &format!("cancel:{brid}"), "{}").await?;
        }
        // Buildbot's cancel tells the master's reporters and waiting schedulers; the
        // bridge sends those messages for what was cancelled here.
        for brid in self.ours {
            let value = format!(
                r#"{{"bsid": {bsid}, "buildset_complete": {}}}"#,
                self.completed
            );
            super::bridge::leave(txn, objectid, &format!("cancelled:{brid}"), &value).await?;
        }
        if self.completed && self.ours.is_empty() {
            // Nothing was left to cancel, but the buildset was completed here.
            super::bridge::leave(txn, objectid, &format!("completed:{bsid}"), "{}").await?;
        }
        notify(txn, 'x', bsid).await
    }
}

/// Which of `brids` a master has claimed.
async fn claimed(txn: &impl ConnectionTrait, brids: &[i32]) -> StoreResult<HashSet<i32>> {
    let backend = txn.get_database_backend();
    let marks = vec!["?"; brids.len()].join(", ");
    let sql = numbered(
        backend,
        &format!("SELECT brid FROM buildrequest_claims WHERE brid IN ({marks})"),
    );
    Ok(txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            brids.iter().map(|b| Value::from(*b)),
        ))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<i32>(0))
        .collect::<Result<_, _>>()?)
}

/// The unfinished build requests of `bsid`, by id; `lock`: a locking read.
pub(super) async fn unfinished_requests(
    db: &impl ConnectionTrait,
    bsid: i32,
    lock: bool,
) -> StoreResult<Vec<i32>> {
    let mut find = buildrequests::Entity::find();
    if lock {
        find = find.lock_exclusive();
    }
    Ok(find
        .select_only()
        .column(buildrequests::Column::Id)
        .filter(buildrequests::Column::Buildsetid.eq(bsid))
        .filter(Expr::col(buildrequests::Column::Complete).if_null(0).ne(1))
        .order_by_asc(buildrequests::Column::Id)
        .into_tuple()
        .all(db)
        .await?)
}

/// Splits `brids` into those claimed here (no master holds them: now claimed in the
/// name of a master, or there is no master to claim them) and those a master holds.
async fn claim(
    txn: &impl ConnectionTrait,
    brids: &[i32],
    now: i32,
) -> StoreResult<(Vec<i32>, Vec<i32>)> {
    if brids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let backend = txn.get_database_backend();
    let held = claimed(txn, brids).await?;
    let master: Option<i32> = match txn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT id FROM masters ORDER BY active DESC, id ASC LIMIT 1",
        ))
        .await?
    {
        Some(row) => Some(row.try_get_by_index::<i32>(0)?),
        None => None,
    };
    let insert = numbered(
        backend,
        match backend {
            DbBackend::MySql => {
                "INSERT IGNORE INTO buildrequest_claims (brid, masterid, claimed_at) VALUES (?, ?, ?)"
            }
            _ => {
                "INSERT INTO buildrequest_claims (brid, masterid, claimed_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            }
        },
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for &brid in brids {
        if held.contains(&brid) {
            theirs.push(brid);
            continue;
        }
        let Some(masterid) = master else {
            // No master has ever run here: nothing can claim it afterwards but a
            // master's distributor, which only looks at unfinished requests.
            ours.push(brid);
            continue;
        };
        let done = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                insert.clone(),
                [brid.into(), masterid.into(), now.into()],
            ))
            .await?;
        // A master that claimed it meanwhile has it (its claim came first).
        if done.rows_affected() == 1 {
            ours.push(brid);
        } else {
            theirs.push(brid);
        }
    }
    Ok((ours, theirs))
}

/// Completes `bsid`, whose requests are all finished, with the worst of their
/// results (Buildbot's `worst_status`: CANCELLED worst, then RETRY, EXCEPTION,
/// FAILURE, WARNINGS, SUCCESS, SKIPPED), unless it is complete already.
async fn complete_when_done(txn: &impl ConnectionTrait, bsid: i32, now: i32) -> StoreResult<bool> {
    let results: Vec<Option<i16>> = buildrequests::Entity::find()
        .lock_exclusive()
        .select_only()
        .column(buildrequests::Column::Results)
        .filter(buildrequests::Column::Buildsetid.eq(bsid))
        .into_tuple()
        .all(txn)
        .await?;
    let overall = results.into_iter().flatten().fold(SUCCESS, worst_status);
    let updated = buildsets::Entity::update_many()
        .col_expr(buildsets::Column::Complete, Expr::value(1i16))
        .col_expr(buildsets::Column::Results, Expr::value(overall))
        .col_expr(buildsets::Column::CompleteAt, Expr::value(now))
        .filter(buildsets::Column::Id.eq(bsid))
        .filter(buildsets::Column::Complete.ne(1i16))
        .exec(txn)
        .await?
        .rows_affected;
    if updated == 1 {
        notify(txn, 'c', bsid).await?;
    }
    Ok(updated == 1)
}

/// Buildbot's `worst_status(a, b)`.
fn worst_status(a: i16, b: i16) -> i16 {
    // CANCELLED, RETRY, EXCEPTION, FAILURE, WARNINGS, SUCCESS, SKIPPED: the first
    // of these that either is.
    const ORDER: [i16; 7] = [6, 5, 4, 2, 1, 0, 3];
    ORDER
        .into_iter()
        .find(|s| *s == a || *s == b)
        .unwrap_or(Ord::max(a, b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn worst_status_is_buildbots() {
        use super::worst_status as w;
        assert_eq!(w(0, 3), 0); // SUCCESS beats SKIPPED
        assert_eq!(w(0, 1), 1);
        assert_eq!(w(1, 2), 2);
        assert_eq!(w(2, 4), 4);
        assert_eq!(w(4, 5), 5);
        assert_eq!(w(5, 6), 6);
        assert_eq!(w(3, 3), 3);
    }
}
