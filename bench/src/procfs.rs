//! /proc sampling: a process's CPU time and peak RSS, the machine's CPU, the CPU of processes by name, and the split of one scenario's CPU among server, database and client.

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

/// CPU seconds of every process named `comm` (the database server's processes).
pub(crate) fn cpu_of_processes(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .filter_map(|pid| proc_stats(pid).map(|s| s.0))
        .sum()
}

/// Where the machine's CPU went during a measurement, as shares of all its cores.
#[derive(Clone, Debug, Default)]
pub(crate) struct Split {
    pub(crate) server: f64,
    pub(crate) database: f64,
    pub(crate) client: f64,
    pub(crate) busy: f64,
}

pub(crate) struct SplitStart {
    pub(crate) server: Option<f64>,
    pub(crate) database: f64,
    pub(crate) client: Option<f64>,
    pub(crate) machine: Option<(f64, f64)>,
    pub(crate) db_comm: &'static str,
}

impl SplitStart {
    pub(crate) fn now(server_pid: Option<u32>, db_comm: &'static str) -> Self {
        SplitStart {
            server: server_pid.and_then(proc_stats).map(|s| s.0),
            database: cpu_of_processes(db_comm),
            client: proc_stats(std::process::id()).map(|s| s.0),
            machine: machine_cpu(),
            db_comm,
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
        let database = cpu_of_processes(self.db_comm) - self.database;
        Some(Split {
            server: server / total,
            database: database / total,
            client: client / total,
            busy: (busy1 - busy0) / total,
        })
    }
}
