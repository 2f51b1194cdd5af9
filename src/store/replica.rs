//! PostgreSQL streaming replicas that take reads off the primary
//! (`--read-database-url`): which ones are in, how far behind each is, and which one
//! an operation reads from.
//!
//! Lag is measured in time, from write-ahead-log positions: every check samples the
//! primary's `pg_current_wal_insert_lsn()` and each replica's `pg_last_wal_replay_lsn()`. A
//! replica that has not replayed a position the primary had at time `t` is at least
//! `now - t` behind; one that has replayed the primary's latest is not behind at all,
//! however long ago the last write was (a byte count or `pg_last_xact_replay_timestamp`
//! would call an idle replica late). A replica that does not answer, is not in
//! recovery, or is behind past `--replica-max-lag` is out until a check finds it well.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::db::Timeouts;

/// A position in PostgreSQL's write-ahead log (a `pg_lsn`), as a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `16/B374D848`, as PostgreSQL writes a `pg_lsn`.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let half = |h: &str| {
            (!h.is_empty() && h.len() <= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(h, 16).ok())
                .flatten()
        };
        Some(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// Where an operation may read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadFrom {
    /// Any replica that is in (the default for queries).
    #[default]
    Replica,
    /// The primary (mutations; a client that asks).
    Primary,
    /// A replica that has replayed this position, else the primary: what a client
    /// that wrote there, or an event found there, must see.
    After(Lsn),
    /// As `After`, waiting a little for a replica to get there before the primary is
    /// asked (the live feed's loads: a replica is usually a few milliseconds behind).
    Awaiting(Lsn),
}

/// Which database an operation reads from, chosen once for all its statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Primary,
    Replica(usize),
}

/// One replica: its pool and what the last check found.
#[derive(Debug)]
pub struct Replica {
    name: String,
    pub(super) db: DatabaseConnection,
    up: AtomicBool,
    /// The last position it was seen to have replayed.
    replayed: AtomicU64,
    state: Mutex<State>,
    /// Operations that read from it.
    pub(super) reads: AtomicU64,
    /// Reads it failed, which the primary ran instead.
    failovers: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct State {
    lag: Option<Duration>,
    /// Why it is out (`None` while in).
    out: Option<String>,
    checked: bool,
}

/// A replica as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    /// `host:port/database`, never the user or password.
    pub name: String,
    pub up: bool,
    pub lag: Option<Duration>,
    pub out: Option<String>,
    /// Operations that read from it, and reads it failed (the primary ran them).
    pub reads: u64,
    pub failovers: u64,
}

impl Replica {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Takes it out after a statement on it failed for want of the database (the
    /// operation runs that statement again on the primary); the next check that
    /// finds it well brings it back.
    pub(super) fn fail(&self, error: &DbErr) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(replica = %self.name, error = %error, "a replica failed a read: reads go to the primary until it answers again");
        }
        self.failovers.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.state.lock() {
            s.out = Some(format!("a read failed: {error}"));
        }
    }

    fn set(&self, lag: Option<Duration>, out: Option<String>) {
        let was = self.up.load(Ordering::Acquire);
        let up = out.is_none();
        if let Ok(mut s) = self.state.lock() {
            if up != was || !s.checked {
                match &out {
                    None => {
                        tracing::info!(replica = %self.name, lag_ms = lag.map(|l| l.as_millis() as u64), "replica in: reads go to it")
                    }
                    Some(why) => {
                        tracing::warn!(replica = %self.name, why = %why, "replica out: reads go elsewhere")
                    }
                }
            }
            *s = State {
                lag,
                out,
                checked: true,
            };
        }
        self.up.store(up, Ordering::Release);
    }
}

/// The replicas of one primary, and the primary's recent positions.
#[derive(Debug)]
pub struct Replicas {
    list: Vec<Replica>,
    max_lag: Duration,
    /// The primary's position at each recent check, oldest first.
    samples: Mutex<VecDeque<(Instant, Lsn)>>,
    next: AtomicUsize,
}

/// A statement failure after which the same read is run again on the primary: the
/// replica is gone or cannot serve now. A statement timeout is not one of them
/// (the primary would take as long); neither is anything about the statement.
pub(super) fn worth_the_primary(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as E;
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => {
            matches!(
                **e,
                E::Io(_)
                    | E::PoolTimedOut
                    | E::PoolClosed
                    | E::WorkerCrashed
                    | E::Tls(_)
                    | E::Protocol(_)
            ) || e.as_database_error().is_some_and(|db| {
                // Cancelled by a conflict with recovery (40001 on a standby), the
                // server shutting down or starting (57P01-57P03), too many clients; a
                // table it has not replayed yet (42P01: a database just migrated).
                matches!(
                    &*db.code().unwrap_or_default(),
                    "40001" | "57P01" | "57P02" | "57P03" | "53300" | "42P01"
                )
            })
        }
        _ => false,
    }
}

/// Whether the server is in recovery (a standby), and the position `sql` reads.
async fn position(
    db: &DatabaseConnection,
    sql: &str,
) -> Result<Option<(bool, Option<Lsn>)>, DbErr> {
    let Some(row) = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
    else {
        return Ok(None);
    };
    let recovering: bool = row.try_get_by_index(0)?;
    let at: Option<String> = row.try_get_by_index(1)?;
    Ok(Some((recovering, at.as_deref().and_then(Lsn::parse))))
}

/// The primary's current position: what a read must see to include every write
/// committed so far.
pub(super) async fn primary_position(db: &DatabaseConnection) -> Result<Option<Lsn>, DbErr> {
    // Where WAL is inserted, not where it is written (pg_current_wal_lsn): with
    // asynchronous commit a transaction's commit record can sit in the WAL buffers
    // past the written position, and a replica at that position lacks the
    // transaction. On a standby there is no such position: NULL, taken as none.
    Ok(position(
        db,
        "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END",
    )
    .await?
    .and_then(|(_, l)| l))
}

/// Whether the server is a standby, and what it has replayed.
async fn replayed(db: &DatabaseConnection) -> Result<Option<(bool, Option<Lsn>)>, DbErr> {
    position(
        db,
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text",
    )
    .await
}

impl Replicas {
    /// Pools for `urls`, opened lazily: a replica that is down at start is only out.
    pub async fn connect(
        urls: &[String],
        max_lag: Duration,
        timeouts: Timeouts,
    ) -> Result<Replicas, DbErr> {
        let mut list = Vec::new();
        for url in urls {
            let mut opts = ConnectOptions::new(url.to_owned());
            // A replica that does not answer is left for the primary soon, not after
            // the primary's own, patient timeouts.
            let quick = Duration::from_secs(2);
            timeouts.apply(&mut opts);
            opts.sqlx_logging(false)
                .connect_lazy(true)
                .connect_timeout(timeouts.connect.min(quick))
                .acquire_timeout(timeouts.acquire.min(quick))
                .test_before_acquire_if_idle_for(Duration::from_secs(1));
            let db = sea_orm::Database::connect(opts).await?;
            list.push(Replica {
                name: name_of(url),
                db,
                up: AtomicBool::new(false),
                replayed: AtomicU64::new(0),
                state: Mutex::new(State {
                    out: Some("not checked yet".into()),
                    ..State::default()
                }),
                reads: AtomicU64::new(0),
                failovers: AtomicU64::new(0),
            });
        }
        Ok(Replicas {
            list,
            max_lag,
            samples: Mutex::new(VecDeque::new()),
            next: AtomicUsize::new(0),
        })
    }

    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// How often the replicas are checked: a few times within the lag bound.
    pub fn interval(&self) -> Duration {
        (self.max_lag / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    pub fn get(&self, i: usize) -> Option<&Replica> {
        self.list.get(i)
    }

    pub(super) fn pools(&self) -> impl Iterator<Item = &DatabaseConnection> {
        self.list.iter().map(|r| &r.db)
    }

    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        self.list
            .iter()
            .map(|r| {
                let s = r.state.lock().map(|s| s.clone()).unwrap_or_default();
                ReplicaStatus {
                    name: r.name.clone(),
                    up: r.is_up(),
                    lag: s.lag,
                    out: s.out,
                    reads: r.reads.load(Ordering::Relaxed),
                    failovers: r.failovers.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// One check: the primary's position, then each replica's, and who is in.
    pub async fn check(&self, primary: &DatabaseConnection) {
        let bound = self
            .max_lag
            .clamp(Duration::from_millis(200), Duration::from_secs(2));
        // Without the primary's position lag cannot be told; the last samples stand.
        if let Ok(Ok(Some(at))) = tokio::time::timeout(bound, primary_position(primary)).await {
            self.sample(Instant::now(), at);
        }
        let checks = self.list.iter().map(|r| async move {
            let found = tokio::time::timeout(bound, replayed(&r.db)).await;
            let (lag, out) = match found {
                Err(_) => (
                    None,
                    Some(format!("no answer within {} ms", bound.as_millis())),
                ),
                Ok(Err(e)) => (None, Some(format!("unreachable: {e}"))),
                Ok(Ok(None)) => (None, Some("no answer to the replica check".into())),
                Ok(Ok(Some((false, _)))) => (
                    None,
                    Some("not in recovery: a primary, not a standby (promoted?)".into()),
                ),
                Ok(Ok(Some((true, None)))) => (
                    None,
                    Some("a standby that replays no WAL stream yet".into()),
                ),
                Ok(Ok(Some((true, Some(at))))) => {
                    r.replayed.fetch_max(at.0, Ordering::AcqRel);
                    let lag = self.lag_of(at, Instant::now());
                    match lag {
                        Some(l) if l <= self.max_lag => (Some(l), None),
                        Some(l) => (
                            Some(l),
                            Some(format!(
                                "{} ms behind the primary (--replica-max-lag-ms {})",
                                l.as_millis(),
                                self.max_lag.as_millis()
                            )),
                        ),
                        None => (None, Some("the primary's position is unknown".into())),
                    }
                }
            };
            r.set(lag, out);
        });
        futures_util::future::join_all(checks).await;
    }

    fn sample(&self, at: Instant, lsn: Lsn) {
        if let Ok(mut s) = self.samples.lock() {
            s.push_back((at, lsn));
            // Enough history to tell a lag a little past the bound.
            let keep = self.max_lag * 2 + Duration::from_secs(1);
            while s.len() > 2 && s.front().is_some_and(|(t, _)| at.duration_since(*t) > keep) {
                s.pop_front();
            }
        }
    }

    /// How far behind a replica that has replayed `at` is: since the oldest sampled
    /// primary position it has not replayed (behind every sample kept: at least as
    /// old as the oldest, which is past the bound). `None`: no sample yet.
    fn lag_of(&self, at: Lsn, now: Instant) -> Option<Duration> {
        let s = self.samples.lock().ok()?;
        s.front()?;
        Some(match s.iter().find(|(_, p)| *p > at) {
            None => Duration::ZERO,
            Some((t, _)) => now.duration_since(*t),
        })
    }

    /// The next replica that is in, in turn.
    pub fn any(&self) -> Option<usize> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.list[i].is_up())
    }

    /// A replica that is in and has replayed `lsn`, waiting up to `wait` for one to
    /// get there; `None`: read from the primary.
    pub async fn after(&self, lsn: Lsn, wait: Duration) -> Option<usize> {
        let deadline = Instant::now() + wait;
        let n = self.list.len();
        loop {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let order: Vec<usize> = (0..n)
                .map(|k| (start + k) % n)
                .filter(|&i| self.list[i].is_up())
                .collect();
            if order.is_empty() {
                return None;
            }
            if let Some(&i) = order
                .iter()
                .find(|&&i| self.list[i].replayed.load(Ordering::Acquire) >= lsn.0)
            {
                return Some(i);
            }
            // Ask the first again: the last check may be a while ago.
            let r = &self.list[order[0]];
            if let Ok(Ok(Some((true, Some(at))))) =
                tokio::time::timeout(Duration::from_secs(1), replayed(&r.db)).await
            {
                r.replayed.fetch_max(at.0, Ordering::AcqRel);
                if at >= lsn {
                    return Some(order[0]);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `host:port/database` of a URL, for logs, `/readyz` and metric labels.
fn name_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_print_as_postgresql_writes_them() {
        assert_eq!(Lsn::parse("0/3001150"), Some(Lsn(0x300_1150)));
        assert_eq!(
            Lsn::parse("16/B374D848"),
            Some(Lsn((0x16 << 32) | 0xB374_D848))
        );
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn::parse(" 0/0 "), Some(Lsn(0)));
        for bad in [
            "",
            "/",
            "0/",
            "/1",
            "0x1/2",
            "+1/2",
            "1/2/3",
            "123456789/0",
            "g/0",
            "1",
        ] {
            assert_eq!(Lsn::parse(bad), None, "{bad}");
        }
        assert!(Lsn::parse("0/10") > Lsn::parse("0/F"));
        assert!(Lsn::parse("1/0") > Lsn::parse("0/FFFFFFFF"));
    }

    #[test]
    fn names_carry_no_password() {
        assert_eq!(
            name_of("postgres://u:secret@db2:5433/bb?sslmode=disable"),
            "db2:5433/bb"
        );
        assert_eq!(name_of("postgres://db2/bb"), "db2/bb");
    }

    fn replicas(max_lag: Duration) -> Replicas {
        Replicas {
            list: Vec::new(),
            max_lag,
            samples: Mutex::new(VecDeque::new()),
            next: AtomicUsize::new(0),
        }
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_position_not_replayed() {
        let r = replicas(Duration::from_secs(5));
        let t0 = Instant::now();
        r.sample(t0, Lsn(100));
        r.sample(t0 + Duration::from_secs(1), Lsn(200));
        r.sample(t0 + Duration::from_secs(2), Lsn(300));
        let now = t0 + Duration::from_secs(3);
        // Replayed the latest: not behind, however old the write.
        assert_eq!(r.lag_of(Lsn(300), now), Some(Duration::ZERO));
        // Missing what the primary had at t0+1 s: two seconds behind.
        assert_eq!(r.lag_of(Lsn(150), now), Some(Duration::from_secs(2)));
        assert_eq!(r.lag_of(Lsn(250), now), Some(Duration::from_secs(1)));
        // Behind the oldest sample: at least its age.
        assert_eq!(r.lag_of(Lsn(50), now), Some(Duration::from_secs(3)));
        assert_eq!(
            r.lag_of(Lsn(50), t0 + Duration::from_secs(9)),
            Some(Duration::from_secs(9))
        );
        // No sample of the primary: unknown.
        assert_eq!(replicas(Duration::from_secs(5)).lag_of(Lsn(1), now), None);
    }

    #[test]
    fn old_samples_are_let_go() {
        let r = replicas(Duration::from_secs(1));
        let t0 = Instant::now();
        for k in 0..20 {
            r.sample(t0 + Duration::from_millis(500 * k), Lsn(k * 10));
        }
        let kept = r.samples.lock().map(|s| s.len()).unwrap_or_default();
        assert!(kept <= 8, "{kept} samples kept for a 1 s bound");
    }
}
