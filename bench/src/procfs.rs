//! /proc sampling: a process's CPU time and peak RSS, the machine's CPU, a database server's CPU (a PostgreSQL cluster by its postmaster, or processes by name), and the split of one scenario's CPU among server, database and client.

use std::path::Path;

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
    pub(crate) database: f64,
    pub(crate) client: Option<f64>,
    pub(crate) machine: Option<(f64, f64)>,
    pub(crate) db: DbProcs,
}

impl SplitStart {
    pub(crate) fn now(server_pid: Option<u32>, db: &DbProcs) -> Self {
        SplitStart {
            server: server_pid.and_then(proc_stats).map(|s| s.0),
            database: db.cpu(),
            client: proc_stats(std::process::id()).map(|s| s.0),
            machine: machine_cpu(),
            db: db.clone(),
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
        let database = self.db.cpu() - self.database;
        Some(Split {
            server: server / total,
            database: database / total,
            client: client / total,
            busy: (busy1 - busy0) / total,
            database_s: database,
        })
    }
}
