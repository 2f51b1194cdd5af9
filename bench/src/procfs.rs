//! /proc sampling: a process's CPU time and peak RSS, the machine's CPU, a database server's CPU (a PostgreSQL cluster by its postmaster, or processes by name), and the split of one scenario's CPU among server, database and client.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
pub(crate) fn proc_stats(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    // USER_HZ is 100 on Linux.
    Some((ticks / 100.0, hwm_kb / 1024.0))
}

/// Busy and total CPU time of the whole machine (seconds, all cores), from /proc/stat.
pub(crate) fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0.0);
    Some(((total - idle) / 100.0, total / 100.0))
}

/// One process's parent and CPU seconds, from /proc/PID/stat: its own (user +
/// system) and its waited-for children's (cutime + cstime).
fn stat_times(pid: u32) -> Option<(u32, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let ppid = f.get(1)?.parse().ok()?;
    Some((ppid, (n(11)? + n(12)?) / 100.0, (n(13)? + n(14)?) / 100.0))
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes of a database server whose CPU a measurement counts.
#[derive(Clone, Debug, Default)]
pub(crate) enum DbProcs {
    /// None apart from the server (SQLite runs inside it).
    #[default]
    None,
    /// A PostgreSQL cluster, by its postmaster's pid: the postmaster, every process
    /// it started (backends, parallel workers, checkpointer, WAL writer, WAL sender,
    /// autovacuum) and, through the postmaster's cutime/cstime, the ones that have
    /// exited since it started. So a backend that starts during a measurement counts
    /// from zero, and one that exits keeps counting once reaped: the sum moves
    /// continuously however a pool opens and closes connections. Another cluster's
    /// processes (a replica's, also called `postgres`) are not counted.
    Postmaster(u32),
    /// One database of a PostgreSQL cluster that others use too (the service): the
    /// cluster's own processes (checkpointer, WAL writer, background writer,
    /// launchers, WAL senders, parallel workers) and the backends and autovacuum
    /// workers of this database, not other databases' backends. The postmaster's
    /// cutime would mix in other databases' exited backends, so exits are handled
    /// by sampling instead ([`DbMeter`], every 100 ms): a backend that exits keeps
    /// the CPU it had at its last sample (at most 100 ms of it is lost).
    Database { postmaster: u32, name: String },
    /// Every process with this name (MariaDB is one `mariadbd` process).
    Named(&'static str),
}

impl DbProcs {
    /// The cluster whose data directory holds this `postmaster.pid`.
    pub(crate) fn postmaster_of(data_dir: &Path) -> Option<DbProcs> {
        let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        Some(DbProcs::Postmaster(pid))
    }

    /// The CPU seconds so far of each process of a [`DbProcs::Database`], by pid;
    /// `kept` remembers which children belong to it (read once per pid).
    fn database_sample(
        postmaster: u32,
        name: &str,
        kept: &mut HashMap<u32, bool>,
    ) -> HashMap<u32, f64> {
        all_pids()
            .into_iter()
            .filter_map(|pid| {
                let (ppid, own, _) = stat_times(pid)?;
                if pid != postmaster && ppid != postmaster {
                    return None;
                }
                let keep = *kept
                    .entry(pid)
                    .or_insert_with(|| pid == postmaster || of_database(pid, name));
                keep.then_some((pid, own))
            })
            .collect()
    }

    /// CPU seconds used so far by these processes.
    pub(crate) fn cpu(&self) -> f64 {
        match self {
            DbProcs::None => 0.0,
            DbProcs::Named(comm) => all_pids()
                .into_iter()
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == *comm)
                })
                .filter_map(|pid| stat_times(pid).map(|t| t.1))
                .sum(),
            DbProcs::Database { postmaster, name } => {
                Self::database_sample(*postmaster, name, &mut HashMap::new())
                    .values()
                    .sum()
            }
            DbProcs::Postmaster(root) => {
                let Some((_, own, reaped)) = stat_times(*root) else {
                    return 0.0;
                };
                // Children of the postmaster (backends are not nested deeper).
                let children: f64 = all_pids()
                    .into_iter()
                    .filter(|pid| pid != root)
                    .filter_map(stat_times)
                    .filter(|t| t.0 == *root)
                    .map(|t| t.1)
                    .sum();
                own + reaped + children
            }
        }
    }

    pub(crate) fn is_some(&self) -> bool {
        !matches!(self, DbProcs::None)
    }
}

/// Whether a child of the postmaster counts for database `name`: a client backend
/// or autovacuum worker of that database, or one of the cluster's own processes.
/// Its title is `postgres: [CLUSTER: ]USER DB HOST(PORT) STATE` for a backend,
/// `postgres: [CLUSTER: ]autovacuum worker DB`, `postgres: [CLUSTER: ]checkpointer`.
fn of_database(pid: u32, name: &str) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    title_of_database(&String::from_utf8_lossy(&raw).replace('\0', " "), name)
}

fn title_of_database(title: &str, name: &str) -> bool {
    let Some(rest) = title.trim().strip_prefix("postgres: ") else {
        return true;
    };
    // Debian's cluster_name prefix ("15/main: ").
    let rest = match rest.split_once(": ") {
        Some((cluster, after)) if !cluster.contains(' ') => after,
        _ => rest,
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    if let Some(db) = rest.strip_prefix("autovacuum worker ") {
        return db.split_whitespace().next() == Some(name);
    }
    let client = words
        .get(2)
        .is_some_and(|w| w.ends_with(')') || *w == "[local]");
    if client && words.first() != Some(&"walsender") {
        return words.get(1) == Some(&name);
    }
    true
}

/// The CPU of a database's processes over a span, begun by [`DbMeter::start`] and
/// read by [`DbMeter::stop`]. For [`DbProcs::Database`] a thread samples every
/// process every 100 ms: a process present at the start counts from its CPU then,
/// a new one from zero, one that exits with its last sample. For the others the
/// difference of two readings is exact (see [`DbProcs`]).
pub(crate) struct DbMeter {
    db: DbProcs,
    start: f64,
    stop: Arc<AtomicBool>,
    sampler: Mutex<Option<std::thread::JoinHandle<f64>>>,
}

impl DbMeter {
    pub(crate) fn start(db: &DbProcs) -> DbMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = match db {
            DbProcs::Database { postmaster, name } => {
                let (postmaster, name, stop) = (*postmaster, name.clone(), stop.clone());
                let mut kept = HashMap::new();
                let first = DbProcs::database_sample(postmaster, &name, &mut kept);
                std::thread::spawn(move || {
                    let mut spans: HashMap<u32, (f64, f64)> =
                        first.into_iter().map(|(pid, t)| (pid, (t, t))).collect();
                    loop {
                        let done = stop.load(Ordering::Relaxed);
                        for (pid, t) in DbProcs::database_sample(postmaster, &name, &mut kept) {
                            spans.entry(pid).or_insert((0.0, t)).1 = t;
                        }
                        if done {
                            return spans.values().map(|(a, b)| b - a).sum();
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                })
                .into()
            }
            _ => None,
        };
        DbMeter {
            db: db.clone(),
            start: db.cpu(),
            stop,
            sampler: Mutex::new(sampler),
        }
    }

    /// CPU seconds since the start (the first call stops the sampler).
    pub(crate) fn stop(&self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.sampler.lock().ok().and_then(|mut s| s.take());
        match handle {
            Some(h) => h.join().unwrap_or(0.0),
            None => self.db.cpu() - self.start,
        }
    }
}

impl Drop for DbMeter {
    fn drop(&mut self) {
        // A sampler nobody reads stops too.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where the machine's CPU went during a measurement, as shares of all its cores.
#[derive(Clone, Debug, Default)]
pub(crate) struct Split {
    pub(crate) server: f64,
    pub(crate) database: f64,
    pub(crate) client: f64,
    pub(crate) busy: f64,
    /// The database's CPU seconds over the measurement.
    pub(crate) database_s: f64,
}

pub(crate) struct SplitStart {
    pub(crate) server: Option<f64>,
    pub(crate) database: DbMeter,
    pub(crate) client: Option<f64>,
    pub(crate) machine: Option<(f64, f64)>,
}

impl SplitStart {
    pub(crate) fn now(server_pid: Option<u32>, db: &DbProcs) -> Self {
        SplitStart {
            server: server_pid.and_then(proc_stats).map(|s| s.0),
            database: DbMeter::start(db),
            client: proc_stats(std::process::id()).map(|s| s.0),
            machine: machine_cpu(),
        }
    }

    pub(crate) fn split(&self, server_pid: Option<u32>) -> Option<Split> {
        let (busy0, total0) = self.machine?;
        let (busy1, total1) = machine_cpu()?;
        let total = total1 - total0;
        if total <= 0.0 {
            return None;
        }
        let server = server_pid.and_then(proc_stats).map(|s| s.0)? - self.server?;
        let client = proc_stats(std::process::id()).map(|s| s.0)? - self.client?;
        let database = self.database.stop();
        Some(Split {
            server: server / total,
            database: database / total,
            client: client / total,
            busy: (busy1 - busy0) / total,
            database_s: database,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::title_of_database;

    #[test]
    fn a_database_keeps_its_backends_and_the_clusters_processes() {
        let ours = |t: &str| title_of_database(t, "bench_1");
        assert!(ours(
            "postgres: 15/main: postgres bench_1 127.0.0.1(40102) idle in transaction"
        ));
        assert!(ours("postgres: postgres bench_1 [local] SELECT"));
        assert!(!ours(
            "postgres: 15/main: postgres other 127.0.0.1(40118) idle"
        ));
        assert!(ours("postgres: 15/main: checkpointer"));
        assert!(ours("postgres: walwriter   "));
        assert!(ours(
            "postgres: walsender postgres 127.0.0.1(54370) streaming 0/11AB9010"
        ));
        assert!(ours("postgres: autovacuum worker bench_1"));
        assert!(!ours("postgres: 15/main: autovacuum worker other"));
        assert!(ours(
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"
        ));
    }
}
