//! The report: figures by backend, scenario and system, the median round, ratios, and RESULTS.md's table.

use super::*;

impl Report {
    pub(crate) fn record(
        &mut self,
        backend: &str,
        scenario: Scenario,
        system: &'static str,
        f: Figures,
    ) {
        self.rows
            .entry(backend.into())
            .or_default()
            .entry(scenario)
            .or_default()
            .insert(system, f);
    }

    pub(crate) fn peak(&mut self, backend: &str, system: &'static str, pid: Option<u32>) {
        if let Some((_, rss)) = pid.and_then(proc_stats) {
            self.rss
                .entry(backend.into())
                .or_default()
                .insert(system, rss);
        }
    }
}

#[derive(Default)]
pub(crate) struct Report {
    /// backend -> scenario -> system -> figures
    pub(crate) rows: BTreeMap<String, BTreeMap<Scenario, BTreeMap<&'static str, Figures>>>,
    /// backend -> system -> peak RSS in MiB
    pub(crate) rss: BTreeMap<String, BTreeMap<&'static str, f64>>,
    pub(crate) notes: Vec<String>,
    /// backend -> the serialisation floor of b's answer
    pub(crate) floors: BTreeMap<String, Floor>,
    /// `--scale-out`'s rows, in the order run.
    pub(crate) scale_out: Vec<ScaleRow>,
}

/// The figures of the round with the median req/s.
pub(crate) fn median_round(mut rounds: Vec<Figures>) -> Option<Figures> {
    rounds.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
    let mid = rounds.len().checked_sub(1)? / 2;
    rounds.into_iter().nth(mid)
}

/// A baseline's req/s and this server's ratio to it: with rounds, the median of the
/// per-round ratios and their range; else the quotient of the two figures.
/// The median of per-round ratios, and their lowest and highest; none for fewer
/// than two rounds.
fn paired_median(paired: &[f64]) -> Option<(f64, f64, f64)> {
    if paired.len() < 2 {
        return None;
    }
    let mut r = paired.to_vec();
    r.sort_by(|a, b| a.total_cmp(b));
    let median = if r.len() % 2 == 1 {
        r[r.len() / 2]
    } else {
        (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
    };
    Some((median, r[0], r[r.len() - 1]))
}

pub(crate) fn ratio(ours: &Figures, other: Option<&Figures>) -> String {
    match other {
        Some(o) if o.paired.len() > 1 => {
            let (median, low, high) = paired_median(&o.paired).unwrap_or_default();
            format!("{:.1} ({median:.2}×; rounds {low:.2}–{high:.2}×)", o.per_s)
        }
        Some(o) if o.per_s > 0.0 => format!("{:.1} ({:.2}×)", o.per_s, ours.per_s / o.per_s),
        _ => "–".into(),
    }
}

pub(crate) fn render(args: &Args, report: &Report, command: &str) -> String {
    let mut out = String::new();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
                    / 1024.0
                    / 1024.0
            })
        })
        .unwrap_or(0.0);
    out.push_str(&format!(
        "Command: `{command}`\n\nMachine: {nproc} cores, {mem:.0} GiB; {} connections, {} s per scenario after {} s of warm-up, N = {}. Reads: the median of {} rounds, this server and {} taking turns on each scenario; each ratio is the median of the per-round ratios.\n\n",
        args.connections,
        args.seconds,
        args.warmup,
        args.count,
        args.rounds.max(1),
        if args.baseline_server.is_some() {
            "the baseline build"
        } else {
            "PostGraphile"
        }
    ));
    for (backend, scenarios) in &report.rows {
        out.push_str(&format!("### {backend}\n\n"));
        out.push_str("| scenario | this server req/s | p50 ms | p99 ms | statements/req | server CPU ms/req | db CPU ms/req | CPU: server / db / load client / machine busy | PostGraphile req/s (ratio) | PostGraphile p99 ms | PostGraphile CPU ms/req: server / db | Buildbot req/s (ratio) | Buildbot p99 ms | Buildbot statements (+ commits)/call | Buildbot db CPU ms/call |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (s, systems) in scenarios {
            let Some(ours) = systems.get("ours") else {
                continue;
            };
            let pg = systems.get("postgraphile");
            let bb = systems.get("buildbot");
            out.push_str(&format!(
                "| {} | {:.1}{} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                describe(*s),
                ours.per_s,
                if ours.errors > 0 {
                    format!(" ({} errors)", ours.errors)
                } else {
                    String::new()
                },
                ours.p50_ms,
                ours.p99_ms,
                ms(ours.statements, 1),
                ms(ours.cpu_ms, 2),
                ms(ours.db_ms, 2),
                ours.split.as_ref().map_or("–".into(), |c| format!(
                    "{:.0}% / {:.0}% / {:.0}% / {:.0}%",
                    c.server * 100.0,
                    c.database * 100.0,
                    c.client * 100.0,
                    c.busy * 100.0
                )),
                ratio(ours, pg),
                pg.map_or("–".into(), |f| format!("{:.2}", f.p99_ms)),
                pg.map_or("–".into(), |f| format!("{} / {}", ms(f.cpu_ms, 2), ms(f.db_ms, 2))),
                ratio(ours, bb),
                bb.map_or("–".into(), |f| format!(
                    "{:.1}{}",
                    f.p99_ms,
                    f.requests_per_unit
                        .map_or(String::new(), |r| format!(" ({r:.0} requests/unit)"))
                )),
                bb.and_then(|f| f.statements).map_or("–".into(), |st| format!(
                    "{st:.1}{}",
                    bb.and_then(|f| f.commits)
                        .map_or(String::new(), |c| format!(" (+ {c:.1})"))
                )),
                ms(bb.and_then(|f| f.db_ms), 2),
            ));
        }
        if let Some(floor) = report.floors.get(backend) {
            let b = scenarios.get(&Scenario::B).and_then(|m| m.get("ours"));
            out.push_str(&format!(
                "\nSerialisation floor of b's answer ({} bytes, captured from this server; timed in this tool's {} build, the fastest of 5 batches): `serde_json::to_vec` of it as async-graphql's `ConstValue` (the server's last step) **{:.3} ms**, of it as a `serde_json::Value` {:.3} ms; parsing the bytes into a `Value` and writing them back {:.3} ms. The server's CPU per b: {} ms.\n",
                floor.bytes,
                if floor.release { "release" } else { "debug (not a floor: build with --release)" },
                floor.const_to_vec_ms,
                floor.value_to_vec_ms,
                floor.parse_and_write_ms,
                ms(b.and_then(|f| f.cpu_ms), 2),
            ));
        }
        if scenarios
            .values()
            .any(|systems| systems.contains_key("before"))
        {
            out.push_str(&baseline_table(scenarios));
        }
        if let Some(rss) = report.rss.get(backend) {
            let parts: Vec<String> = rss.iter().map(|(k, v)| format!("{k} {v:.1} MiB")).collect();
            out.push_str(&format!("\nPeak RSS: {}\n\n", parts.join(", ")));
        }
    }
    if !report.scale_out.is_empty() {
        out.push_str(&scale_out_table(&report.scale_out));
    }
    out.push_str(&targets(args, report));
    for n in &report.notes {
        out.push_str(&format!("- {n}\n"));
    }
    out
}

/// A figure with `digits` decimals, or a dash.
pub(crate) fn ms(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn scale_out_table(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "### Scale-out: PostgreSQL primary and streaming replica\n\n`.ci/pg-pair` clusters (trust, fsync off), seeded on the primary; the load split evenly over the servers' ports. CPU per request of each cluster: its postmaster and every process it started (the primary's WAL sender included), sampled from /proc. c+f: c with one addBuildset in four requests.\n\n| setup | workload | req/s | p50 ms | p99 ms | primary CPU ms/req | replica CPU ms/req | servers CPU ms/req |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1}{} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} |\n",
            r.setup,
            r.workload,
            r.f.per_s,
            if r.f.errors > 0 {
                format!(" ({} errors)", r.f.errors)
            } else {
                String::new()
            },
            r.f.p50_ms,
            r.f.p99_ms,
            r.primary_ms,
            r.replica_ms,
            r.servers_ms,
        ));
    }
    out.push('\n');
    out
}

/// This server against `--baseline-server`, scenario by scenario.
fn baseline_table(scenarios: &BTreeMap<Scenario, BTreeMap<&'static str, Figures>>) -> String {
    let mut out = String::from(
        "\nAgainst `--baseline-server` (alternating turns; ratio: the median of the per-round ratios of req/s):\n\n| scenario | baseline req/s | this server req/s (ratio) | baseline CPU ms/req | this server CPU ms/req | baseline p99 ms | this server p99 ms |\n|---|---|---|---|---|---|---|\n",
    );
    for (s, systems) in scenarios {
        let (Some(ours), Some(old)) = (systems.get("ours"), systems.get("before")) else {
            continue;
        };
        let cpu = |f: &Figures| f.cpu_ms.map_or("–".into(), |v| format!("{v:.3}"));
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {:.2} | {:.2} |\n",
            describe(*s),
            old.per_s,
            match paired_median(&old.paired) {
                Some((median, low, high)) => format!(
                    "{:.1} ({median:.2}×; rounds {low:.2}–{high:.2}×)",
                    ours.per_s
                ),
                None => format!("{:.1}", ours.per_s),
            },
            cpu(old),
            cpu(ours),
            old.p99_ms,
            ours.p99_ms,
        ));
    }
    out
}
