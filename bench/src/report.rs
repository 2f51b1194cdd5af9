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
        out.push_str("| scenario | this server req/s | p50 ms | p99 ms | statements/req | server CPU ms/req | CPU: server / db / load client / machine busy | PostGraphile req/s (ratio) | PostGraphile p99 ms | Buildbot req/s (ratio) | Buildbot p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (s, systems) in scenarios {
            let Some(ours) = systems.get("ours") else {
                continue;
            };
            let pg = systems.get("postgraphile");
            let bb = systems.get("buildbot");
            out.push_str(&format!(
                "| {} | {:.1}{} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |\n",
                describe(*s),
                ours.per_s,
                if ours.errors > 0 {
                    format!(" ({} errors)", ours.errors)
                } else {
                    String::new()
                },
                ours.p50_ms,
                ours.p99_ms,
                ours.statements.map_or("–".into(), |v| format!("{v:.1}")),
                ours.cpu_ms.map_or("–".into(), |v| format!("{v:.2}")),
                ours.split.as_ref().map_or("–".into(), |c| format!(
                    "{:.0}% / {:.0}% / {:.0}% / {:.0}%",
                    c.server * 100.0,
                    c.database * 100.0,
                    c.client * 100.0,
                    c.busy * 100.0
                )),
                ratio(ours, pg),
                pg.map_or("–".into(), |f| format!("{:.2}", f.p99_ms)),
                ratio(ours, bb),
                bb.map_or("–".into(), |f| format!(
                    "{:.1}{}",
                    f.p99_ms,
                    f.requests_per_unit
                        .map_or(String::new(), |r| format!(" ({r:.0} requests/unit)"))
                )),
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
    for n in &report.notes {
        out.push_str(&format!("- {n}\n"));
    }
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
