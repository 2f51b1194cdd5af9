//! "Against the targets": issue 25's targets, each with the figures of this run and
//! whether it was met, computed from the report (nothing here is typed in by hand).

use super::*;

/// Whether a target was met in this run.
#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Met,
    Missed,
    /// A figure the target needs was not measured in this run.
    NotMeasured,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "yes",
            Verdict::Missed => "**no**",
            Verdict::NotMeasured => "not measured",
        }
    }

    /// Every part met: met; any missed: missed; else not measured.
    fn all(parts: &[Verdict]) -> Verdict {
        if parts.is_empty() {
            Verdict::NotMeasured
        } else if parts.contains(&Verdict::Missed) {
            Verdict::Missed
        } else if parts.contains(&Verdict::NotMeasured) {
            Verdict::NotMeasured
        } else {
            Verdict::Met
        }
    }

    fn of(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }
}

fn get<'a>(report: &'a Report, backend: &str, s: Scenario, system: &str) -> Option<&'a Figures> {
    report.rows.get(backend)?.get(&s)?.get(system)
}

const READS_PG: [Scenario; 5] = [
    Scenario::A,
    Scenario::B,
    Scenario::C,
    Scenario::D,
    Scenario::E,
];
const WRITES: [Scenario; 3] = [Scenario::F, Scenario::H, Scenario::G];

pub(crate) fn targets(args: &Args, report: &Report) -> String {
    let mut rows: Vec<(String, String, Verdict)> = Vec::new();

    // 1. Reads at 3× PostGraphile, no round below 2×, p99 no worse.
    let (mut figs, mut parts) = (Vec::new(), Vec::new());
    let (mut p99s, mut p99_parts) = (Vec::new(), Vec::new());
    let (mut dbs, mut db_parts) = (Vec::new(), Vec::new());
    for s in READS_PG {
        let ours = get(report, "postgres", s, "ours");
        let pg = get(report, "postgres", s, "postgraphile");
        let (Some(ours), Some(pg)) = (ours, pg) else {
            figs.push(format!("{s}: –"));
            parts.push(Verdict::NotMeasured);
            p99_parts.push(Verdict::NotMeasured);
            if s != Scenario::E {
                db_parts.push(Verdict::NotMeasured);
            }
            continue;
        };
        let mut r = pg.paired.clone();
        r.sort_by(|a, b| a.total_cmp(b));
        let median = if r.is_empty() {
            ours.per_s / pg.per_s.max(f64::MIN_POSITIVE)
        } else if r.len() % 2 == 1 {
            r[r.len() / 2]
        } else {
            (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
        };
        let low = r.first().copied().unwrap_or(median);
        figs.push(format!(
            "{s} {median:.2}× (lowest round {low:.2}×, {} rounds)",
            r.len()
        ));
        parts.push(if r.len() < 3 {
            Verdict::NotMeasured
        } else {
            Verdict::of(median >= 3.0 && low >= 2.0)
        });
        p99s.push(format!("{s} {:.1} vs {:.1} ms", ours.p99_ms, pg.p99_ms));
        p99_parts.push(Verdict::of(ours.p99_ms <= pg.p99_ms));
        match (ours.db_ms, pg.db_ms) {
            // The target names a-d; e is shown beside them.
            (Some(o), Some(t)) if t > 0.0 && s == Scenario::E => {
                dbs.push(format!(
                    "{s} {o:.2} vs {t:.2} ms ({:.2}×, not judged)",
                    o / t
                ));
            }
            (Some(o), Some(t)) if t > 0.0 => {
                dbs.push(format!("{s} {o:.2} vs {t:.2} ms ({:.2}×)", o / t));
                db_parts.push(Verdict::of(o <= 0.75 * t));
            }
            _ if s == Scenario::E => {}
            _ => {
                dbs.push(format!("{s}: –"));
                db_parts.push(Verdict::NotMeasured);
            }
        }
    }
    rows.push((
        "PostgreSQL reads a–e ≥ 3× PostGraphile (median of ≥ 3 paired rounds, no round below 2×; e through a SQL function, bench/postgraphile/recent_buildsets.sql)".into(),
        figs.join("; "),
        Verdict::all(&parts),
    ));
    rows.push((
        "p99 no worse than PostGraphile's (ours vs theirs)".into(),
        p99s.join("; "),
        Verdict::all(&p99_parts),
    ));
    rows.push((
        "database CPU per request ≤ 0.75× PostGraphile's, a–d (ours vs theirs)".into(),
        dbs.join("; "),
        Verdict::all(&db_parts),
    ));

    // 3. Server CPU per 100-page, and the serialisation floor.
    let mut figs = Vec::new();
    let mut parts = Vec::new();
    for (backend, judged) in [("postgres", true), ("mariadb", true), ("sqlite", false)] {
        let Some(cpu) = get(report, backend, Scenario::B, "ours").and_then(|f| f.cpu_ms) else {
            if backend == "postgres" {
                parts.push(Verdict::NotMeasured);
            }
            continue;
        };
        let floor = report.floors.get(backend).map_or(String::new(), |f| {
            format!(
                ", floor {:.3} ms{}",
                f.const_to_vec_ms,
                if f.release { "" } else { " (debug build)" }
            )
        });
        figs.push(format!(
            "{backend} {cpu:.2} ms{floor}{}",
            if judged {
                ""
            } else {
                " (database in the server: not judged)"
            }
        ));
        if judged {
            parts.push(Verdict::of(cpu <= 1.0));
        }
    }
    rows.push((
        "server CPU per b (100-page) ≤ 1 ms; the serialisation floor beside it".into(),
        figs.join("; "),
        Verdict::all(&parts),
    ));

    // 4. Writes at 3× Buildbot's connector, on PostgreSQL and MariaDB.
    for s in WRITES {
        let mut figs = Vec::new();
        let mut parts = Vec::new();
        for backend in ["postgres", "mariadb"] {
            let ours = get(report, backend, s, "ours");
            let bb = get(report, backend, s, "buildbot");
            match (ours, bb) {
                (Some(o), Some(b)) if b.per_s > 0.0 => {
                    let r = o.per_s / b.per_s;
                    figs.push(format!(
                        "{backend} {r:.2}× ({} statements vs the connector's {} + {} commits)",
                        ms(o.statements, 1),
                        ms(b.statements, 1),
                        ms(b.commits, 1)
                    ));
                    parts.push(Verdict::of(r >= 3.0 && o.errors == 0));
                }
                _ => {
                    figs.push(format!("{backend}: –"));
                    parts.push(Verdict::NotMeasured);
                }
            }
        }
        rows.push((
            format!(
                "{} ≥ 3× Buildbot's connector, PostgreSQL and MariaDB",
                describe(s)
            ),
            figs.join("; "),
            Verdict::all(&parts),
        ));
    }

    // 5. SQLite: writers' p99, and the reads against Buildbot's REST API.
    let mut figs = Vec::new();
    let mut parts = Vec::new();
    for s in WRITES {
        match get(report, "sqlite", s, "ours") {
            Some(f) => {
                figs.push(format!("{s} {:.1} ms", f.p99_ms));
                parts.push(if args.connections == 8 {
                    Verdict::of(f.p99_ms <= 20.0 && f.errors == 0)
                } else {
                    Verdict::NotMeasured
                });
            }
            None => parts.push(Verdict::NotMeasured),
        }
    }
    if args.connections != 8 {
        figs.push(format!("at {} writers, not 8", args.connections));
    }
    rows.push((
        "SQLite: 8 writers, p99 ≤ 20 ms (f, h, g)".into(),
        figs.join("; "),
        Verdict::all(&parts),
    ));
    let mut figs = Vec::new();
    let mut parts = Vec::new();
    for s in [Scenario::A, Scenario::B, Scenario::C, Scenario::E] {
        match (
            get(report, "sqlite", s, "ours"),
            get(report, "sqlite", s, "buildbot"),
        ) {
            (Some(o), Some(b)) if b.per_s > 0.0 => {
                let r = o.per_s / b.per_s;
                figs.push(format!("{s} {r:.1}×"));
                if s != Scenario::A {
                    parts.push(Verdict::of(r >= 50.0));
                }
            }
            _ => {
                figs.push(format!("{s}: –"));
                parts.push(Verdict::NotMeasured);
            }
        }
    }
    figs.push("d: no REST counterpart".into());
    rows.push((
        "SQLite reads against Buildbot's REST API on the same file (lists b, c, e ≥ 50×)".into(),
        figs.join("; "),
        Verdict::all(&parts),
    ));

    // 6. Scale-out: what the primary pays per request.
    let alone = |w: &str| {
        report
            .scale_out
            .iter()
            .find(|r| r.workload == w && r.setup.starts_with("(i)"))
    };
    let split = |w: &str| {
        report
            .scale_out
            .iter()
            .find(|r| r.workload == w && r.replica_reads)
    };
    let mut figs = Vec::new();
    let mut parts = Vec::new();
    for w in ["b", "c", "c+f"] {
        match (alone(w), split(w)) {
            (Some(a), Some(s)) => {
                figs.push(format!(
                    "{w}: primary {:.3} → {:.3} ms/req, replica {:.3} ms/req",
                    a.primary_ms, s.primary_ms, s.replica_ms
                ));
                if a.reads_only {
                    parts.push(Verdict::of(s.primary_ms < a.primary_ms));
                }
            }
            (Some(a), None) => {
                figs.push(format!(
                    "{w}: primary {:.3} ms/req alone; no replica run",
                    a.primary_ms
                ));
                parts.push(Verdict::NotMeasured);
            }
            _ => parts.push(Verdict::NotMeasured),
        }
    }
    rows.push((
        "scale-out: the primary's CPU per read falls with two servers reading from the replica (one server on the primary alone → two on the replica)".into(),
        figs.join("; "),
        Verdict::all(&parts),
    ));

    let mut out = String::from(
        "## Against the targets\n\nComputed from this run's figures (the median rounds above; ratios of req/s are the medians of the per-round ratios where there are rounds).\n\n| target | this run | met |\n|---|---|---|\n",
    );
    for (target, figures, verdict) in rows {
        out.push_str(&format!(
            "| {target} | {} | {} |\n",
            if figures.is_empty() {
                "–".into()
            } else {
                figures
            },
            verdict.text()
        ));
    }
    out.push('\n');
    out
}
