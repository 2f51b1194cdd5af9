//! What changed in the buildsets table since the last look: buildsets added and
//! buildsets completed, read from the database (so that rows written by another
//! server, by Buildbot or by plain SQL are seen too), one statement per poll.
//!
//! Added buildsets are followed by id. Ids are handed out before commit (PostgreSQL
//! sequences, InnoDB auto-increment), so a transaction can commit after a later id
//! is already visible: an id skipped over is kept as a *gap* and looked at again on
//! every poll, for `window`, before it is taken for a rollback. Completions are
//! followed by `complete_at` over a look-back of `window` (Buildbot's schema has no
//! index on it; the table is scanned), plus the ids this server or a notification
//! names, whatever their `complete_at`. Each change is reported once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entity::buildsets;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Store, StoreResult};

/// The PostgreSQL channel this server's writes notify, with payload `a:<bsid>` (added)
/// or `c:<bsid>` (completed).
pub const CHANNEL: &str = "buildsets_graphql";

/// Compared values in one statement that matches events against subscribers'
/// filters; a filter may hold up to 10,000 of its own.
const MAX_VALUES_PER_STATEMENT: usize = 10_000;

/// Most gaps kept at once; beyond it the oldest is given up, so a poll stays small.
const MAX_GAPS: usize = 256;

/// One change, in commit order per buildset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    Added(i32),
    Completed(i32),
}

impl Change {
    pub fn bsid(self) -> i32 {
        match self {
            Change::Added(id) | Change::Completed(id) => id,
        }
    }
}

/// Buildset ids worth a look before the next tick (this server's writes, and
/// PostgreSQL notifications), and a wake-up for the poller.
#[derive(Debug, Default)]
pub struct Signal {
    hints: Mutex<Vec<i32>>,
    wake: tokio::sync::Notify,
}

impl Signal {
    pub fn hint(&self, bsid: i32) {
        if let Ok(mut h) = self.hints.lock() {
            // A flood of writes between two polls must not grow memory without bound;
            // the poll by id and time finds them anyway.
            if h.len() < 10_000 {
                h.push(bsid);
            }
        }
        self.wake.notify_one();
    }

    /// Wakes the poller with nothing in particular to look at (a listener that
    /// reconnected, so that what it missed is caught up).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub fn take_hints(&self) -> Vec<i32> {
        self.hints
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }
}

/// Where the poller stands: the highest id seen, the ids skipped over and the
/// completions already reported.
#[derive(Debug)]
pub struct Tracker {
    window: Duration,
    since: i64,
    high: Option<i32>,
    /// First id of a gap → (last id, when it was first seen).
    gaps: BTreeMap<i32, (i32, Instant)>,
    /// Completions reported: bsid → (complete_at, when reported).
    reported: HashMap<i32, (i64, Instant)>,
}

impl Tracker {
    pub fn new(window: Duration) -> Tracker {
        Tracker {
            window,
            since: chrono::Utc::now().timestamp(),
            high: None,
            gaps: BTreeMap::new(),
            reported: HashMap::new(),
        }
    }

    /// Whether the starting point has been taken.
    pub fn started(&self) -> bool {
        self.high.is_some()
    }

    fn in_gap(&self, id: i32) -> Option<i32> {
        let (&start, &(end, _)) = self.gaps.range(..=id).next_back()?;
        (id <= end).then_some(start)
    }

    fn fill(&mut self, id: i32) {
        if let Some(start) = self.in_gap(id) {
            if let Some((end, seen)) = self.gaps.remove(&start) {
                if start < id {
                    self.gaps.insert(start, (id - 1, seen));
                }
                if id < end {
                    self.gaps.insert(id + 1, (end, seen));
                }
            }
        }
    }

    /// Turns a poll's rows (id, complete, complete_at), in id order, into changes.
    fn advance(&mut self, rows: &[(i32, bool, Option<i64>)], lower: i64) -> Vec<Change> {
        let now = Instant::now();
        let mut changes = Vec::new();
        let high = self.high.unwrap_or(0);
        let mut next_high = high;
        for &(id, complete, complete_at) in rows {
            let new = id > high || self.in_gap(id).is_some();
            if new {
                if id > next_high {
                    if id > next_high + 1 {
                        self.gaps.insert(next_high + 1, (id - 1, now));
                    }
                    next_high = id;
                } else {
                    self.fill(id);
                }
                changes.push(Change::Added(id));
            }
            if complete && !self.reported.contains_key(&id) {
                self.reported
                    .insert(id, (complete_at.unwrap_or(i64::MIN), now));
                changes.push(Change::Completed(id));
            }
        }
        self.high = Some(next_high);
        let window = self.window;
        self.gaps
            .retain(|_, (_, seen)| now.duration_since(*seen) < window);
        while self.gaps.len() > MAX_GAPS {
            let oldest = self
                .gaps
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.gaps.remove(&k),
                None => break,
            };
        }
        // A completion is forgotten once the look-back no longer returns it, and not
        // before a repeated hint (a notification echoing this server's own write)
        // could still name it.
        self.reported
            .retain(|_, (at, seen)| *at >= lower || now.duration_since(*seen) < window);
        changes
    }
}

impl Store {
    /// The signal this store's writes raise.
    pub fn signal(&self) -> &Arc<Signal> {
        &self.signal
    }

    /// One poll: the changes since the last, in id order. The first poll only
    /// takes the highest id as its starting point.
    pub async fn poll_changes(
        &self,
        tracker: &mut Tracker,
        hints: &[i32],
    ) -> StoreResult<Vec<Change>> {
        let Some(high) = tracker.high else {
            let max: Option<Option<i32>> = buildsets::Entity::find()
                .select_only()
                .column_as(buildsets::Column::Id.max(), "max")
                .into_tuple()
                .one(&self.db)
                .await?;
            tracker.high = Some(max.flatten().unwrap_or(0));
            // Completions from before the starting point are the past too.
            tracker.since = chrono::Utc::now().timestamp();
            return Ok(Vec::new());
        };
        let lower = chrono::Utc::now().timestamp() - tracker.window.as_secs() as i64;
        let lower = std::cmp::max(lower, tracker.since);
        let lower_i32 = i32::try_from(lower).unwrap_or(i32::MAX);
        let id = || Expr::col(buildsets::Column::Id);
        let mut cond = Condition::any()
            .add(id().gt(high))
            .add(Expr::col(buildsets::Column::CompleteAt).gte(lower_i32));
        for (&start, &(end, _)) in &tracker.gaps {
            cond = cond.add(id().between(start, end));
        }
        let hints = super::read::distinct(hints.to_vec());
        if !hints.is_empty() {
            cond = cond.add(id().is_in(hints));
        }
        let rows: Vec<(i32, i16, Option<i32>)> = buildsets::Entity::find()
            .select_only()
            .column(buildsets::Column::Id)
            .column(buildsets::Column::Complete)
            .column(buildsets::Column::CompleteAt)
            .filter(cond)
            .order_by_asc(buildsets::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let rows: Vec<_> = rows
            .into_iter()
            .map(|(id, complete, at)| (id, complete != 0, at.map(i64::from)))
            .collect();
        Ok(tracker.advance(&rows, lower))
    }

    /// For each of `filters`, which of `ids` it matches now: one statement for many
    /// filters (a column per filter), as few as the bound on compared values allows.
    pub async fn matching(
        &self,
        ids: &[i32],
        filters: &[&super::query::Filter],
        op: &super::tag::Operation,
    ) -> StoreResult<Vec<HashSet<i32>>> {
        let mut out = vec![HashSet::new(); filters.len()];
        if ids.is_empty() {
            return Ok(out);
        }
        let mut start = 0;
        while start < filters.len() {
            // Filters until the statement compares about MAX_VALUES_PER_STATEMENT
            // values (one filter at least), well below every backend's bind limit.
            let mut end = start;
            let mut values = 0;
            while end < filters.len() {
                let v = filters[end].size().1;
                if end > start && values + v > MAX_VALUES_PER_STATEMENT {
                    break;
                }
                values += v;
                end += 1;
            }
            let mut select = Query::select();
            select
                .column((buildsets::Entity, buildsets::Column::Id))
                .from(buildsets::Entity)
                .and_where(
                    Expr::col((buildsets::Entity, buildsets::Column::Id))
                        .is_in(ids.iter().copied()),
                );
            for (k, f) in filters[start..end].iter().enumerate() {
                // A text column: the one literal type that decodes alike everywhere.
                let matched = Expr::case(super::query::filter_condition(f), Expr::cust("'y'"))
                    .finally(Expr::cust("'n'"));
                select.expr_as(matched, Alias::new(format!("m{k}")));
            }
            let stmt = self.db.get_database_backend().build(&select);
            for row in self.counted(op).await.query_all_raw(stmt).await? {
                let id: i32 = row.try_get_by_index(0)?;
                for k in 0..end - start {
                    let m: String = row.try_get_by_index(k + 1)?;
                    if m == "y" {
                        out[start + k].insert(id);
                    }
                }
            }
            start = end;
        }
        Ok(out)
    }

    /// On PostgreSQL, listens on [`CHANNEL`] on a connection of its own, turning each
    /// notification into a hint; after a lost connection it reconnects and wakes the
    /// poller, which catches up on what was missed. Returns at once elsewhere.
    pub async fn listen(&self) {
        let Some(url) = self.url.clone() else { return };
        if self.db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return;
        }
        let url = listener_url(&url);
        let mut failures: u32 = 0;
        loop {
            match listen_once(&url, &self.signal).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "LISTEN connection lost; the poller covers until it is back");
                    }
                }
            }
            // Whatever was notified while no one listened is found by the next poll.
            self.signal.wake();
            let backoff = Duration::from_millis(100 * u64::from(std::cmp::min(failures, 50)));
            tokio::time::sleep(backoff).await;
        }
    }
}

/// The store's URL with an `application_name` that tells the listener apart in
/// `pg_stat_activity`.
fn listener_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name=buildsets-graphql-listen")
}

/// One listening connection, until it is lost (Ok) or cannot be made (Err).
async fn listen_once(url: &str, signal: &Signal) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx::postgres::PgListener;
    let mut listener = PgListener::connect(url).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    tracing::debug!("listening for buildset notifications");
    // The connection is new: catch up on what happened while there was none.
    signal.wake();
    loop {
        match listener.try_recv().await? {
            Some(n) => {
                let id = n
                    .payload()
                    .split_once(':')
                    .and_then(|(_, id)| id.parse::<i32>().ok());
                match id {
                    Some(id) => signal.hint(id),
                    None => signal.wake(),
                }
            }
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_committed_late_is_reported_once() {
        let mut t = Tracker::new(Duration::from_secs(60));
        t.high = Some(10);
        // 11 is taken but not committed yet; 12 is.
        assert_eq!(t.advance(&[(12, false, None)], 0), vec![Change::Added(12)]);
        assert_eq!(t.gaps.len(), 1);
        // 11 commits: reported, and the gap closes.
        assert_eq!(
            t.advance(&[(11, false, None), (12, false, None)], 0),
            vec![Change::Added(11)]
        );
        assert!(t.gaps.is_empty());
        assert_eq!(
            t.advance(&[(11, false, None), (12, false, None)], 0),
            vec![]
        );
    }

    #[test]
    fn added_and_completed_between_polls_gives_both_in_order() {
        let mut t = Tracker::new(Duration::from_secs(60));
        t.high = Some(0);
        assert_eq!(
            t.advance(&[(1, true, Some(100))], 0),
            vec![Change::Added(1), Change::Completed(1)]
        );
        assert_eq!(t.advance(&[(1, true, Some(100))], 0), vec![]);
    }

    #[test]
    fn a_gap_in_the_middle_splits() {
        let mut t = Tracker::new(Duration::from_secs(60));
        t.high = Some(0);
        t.advance(&[(5, false, None)], 0);
        assert_eq!(t.advance(&[(3, false, None)], 0), vec![Change::Added(3)]);
        assert_eq!(t.in_gap(1), Some(1));
        assert_eq!(t.in_gap(2), Some(1));
        assert_eq!(t.in_gap(3), None);
        assert_eq!(t.in_gap(4), Some(4));
        assert_eq!(t.advance(&[(4, false, None)], 0), vec![Change::Added(4)]);
        assert_eq!(t.gaps.len(), 1);
    }

    #[test]
    fn old_gaps_are_given_up() {
        let mut t = Tracker::new(Duration::from_millis(0));
        t.high = Some(0);
        t.advance(&[(5, false, None)], 0);
        assert!(t.gaps.is_empty());
    }
}
