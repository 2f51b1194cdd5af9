//! The benchmark: this server against Buildbot 4.3's REST API and PostGraphile 5,
//! on the same data, in one run, with the figures as ratios (this machine is noisy:
//! only figures from one run compare).
//!
//! ```text
//! cargo build --release
//! cargo run --release -p bench -- --postgres-url postgres://postgres@127.0.0.1:5432/postgres \
//!     --buildbot --postgraphile --out bench/RESULTS.md
//! cargo run -p bench -- --smoke          # what CI runs: N = 200, 1 s per scenario, no baselines
//! ```
//!
//! For each backend (SQLite, and PostgreSQL when `--postgres-url` names a server) it
//! makes a fresh database, seeds it (through Buildbot's own connector,
//! `bench/buildbot/seed.py`, when Buildbot is at hand; otherwise through this
//! server's `addBuildset`), starts the server and measures each scenario with
//! concurrent clients: requests per second, p50/p99, SQL statements per request
//! (from the server's `/metrics`), the server's CPU time per request and its peak
//! RSS (from `/proc`). The baselines run on the same database after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

mod buildbot;
mod floor;
mod load;
mod postgraphile;
mod procfs;
mod report;
mod scaleout;
mod scenario;
mod seed;
mod server;
mod targets;

use buildbot::*;
use floor::*;
use load::*;
use postgraphile::*;
use procfs::*;
use report::*;
use scaleout::*;
use scenario::*;
use seed::*;
use server::*;
use targets::*;

#[derive(Parser, Clone)]
struct Args {
    /// The server binary (default: target/release, else target/debug).
    #[arg(long)]
    server: Option<PathBuf>,
    /// A PostgreSQL server database URL; a fresh database is made next to it.
    #[arg(long, env = "BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// A MariaDB (or MySQL) server database URL, `mysql://root@127.0.0.1:3306/NAME`:
    /// a fresh database is made next to it, with Buildbot's schema and data (seed.py),
    /// and the reads (this server alone) and the writes (this server against
    /// Buildbot's connector on the same database) run on it.
    #[arg(long, env = "BENCH_MYSQL_URL")]
    mysql_url: Option<String>,
    /// Also the scale-out run: a PostgreSQL primary and a streaming replica made by
    /// `.ci/pg-pair` (new clusters on free ports, removed after), seeded on the
    /// primary; scenarios b, c and c with one addBuildset in four, against one
    /// server on the primary alone and two servers reading from the replica
    /// (`--read-database-url`), each cluster's CPU per request sampled apart.
    #[arg(long)]
    scale_out: bool,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// Buildsets to seed.
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Rounds of the reads: in each, this server and PostGraphile take turns on every
    /// scenario, and the round with the median req/s is reported (this machine's
    /// speed drifts by tens of percent within minutes; back-to-back turns see the
    /// same drift).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds of load, not counted, before each read scenario (PostGraphile's
    /// JIT, both servers' caches).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Scenarios to run: reads a-e, writes f (addBuildset, new stamp), h
    /// (addBuildset, existing ssid) and g (completeBuildset), run in this order.
    #[arg(long, default_value = "a,b,c,d,e,f,h,g")]
    scenarios: String,
    /// Also measure Buildbot 4.3 (REST API for a-e; its connector for f-g).
    #[arg(long)]
    buildbot: bool,
    /// Also measure PostGraphile 5 (a-d, PostgreSQL only).
    #[arg(long)]
    postgraphile: bool,
    /// Python with Buildbot 4.3 (the interop venv `.ci/run` makes).
    #[arg(long, env = "BUILDBOT_PYTHON")]
    buildbot_python: Option<PathBuf>,
    /// Seed through this server's addBuildset even when Buildbot is at hand.
    #[arg(long)]
    seed_through_api: bool,
    /// N = 200, 1 s per scenario, no baselines: checks that the tool works.
    #[arg(long)]
    smoke: bool,
    /// Write the results (Markdown) here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A/B: another build of this server (e.g. the previous commit's), run on the
    /// same data and measured in alternating turns with this one on every read
    /// scenario; the report gives its req/s and CPU per request beside ours.
    #[arg(long)]
    baseline_server: Option<PathBuf>,
    /// Profile the server during each scenario with `perf record -e cpu-clock -g`,
    /// keeping `DIR/<backend>-<scenario>.data` and printing its hottest symbols
    /// (`perf script | inferno-flamegraph` makes a flame graph of one).
    #[arg(long)]
    perf: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
async fn measure_ours(
    args: &Args,
    client: &reqwest::Client,
    server: &Server,
    data: &Arc<Data>,
    scenario: Scenario,
) -> Figures {
    let url = format!("{}/graphql", server.base);
    let query = our_query(scenario);
    let d = data.clone();
    let seq = Arc::new(AtomicUsize::new(0));
    let make = move |n: u64| -> Option<Value> {
        let mut r = Lcg(n.wrapping_mul(7919) + 13);
        match scenario {
            s if s.is_read() => Some(read_body(&query, scenario, &d, n)),
            Scenario::F => {
                let two: Vec<i64> = d.builders.iter().take(2).copied().collect();
                Some(
                    json!({"query": query, "operationName": "f", "variables": {"in": {
                        "reason": "bench write",
                        "sourcestamps": [{"stamp": {"branch": format!("write-{}-{n}", std::process::id()), "repository": "https://example.org/w.git", "revision": format!("{:040x}", r.next())}}],
                        "builderids": two,
                        "properties": [{"name": "a", "value": 1, "source": "bench"}, {"name": "b", "value": "two", "source": "bench"}, {"name": "c", "value": [3], "source": "bench"}],
                    }}}),
                )
            }
            Scenario::H => {
                let two: Vec<i64> = d.builders.iter().skip(2).take(2).copied().collect();
                let ssid = d.ssids.get(r.below(d.ssids.len() as u64) as usize).copied();
                ssid.map(|ssid| {
                    json!({"query": query, "operationName": "h", "variables": {"in": {
                        "reason": "bench write",
                        "sourcestamps": [{"ssid": ssid}],
                        "builderids": two,
                        "properties": [{"name": "a", "value": 1, "source": "bench"}, {"name": "b", "value": "two", "source": "bench"}, {"name": "c", "value": [3], "source": "bench"}],
                    }}})
                })
            }
            Scenario::G => {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                d.incomplete
                    .get(i)
                    .map(|b| json!({"query": query, "operationName": "g", "variables": {"b": b}}))
            }
            _ => None,
        }
    };
    let make = Arc::new(make);
    if scenario.is_read() && args.warmup > 0 {
        drive(client, &url, args.warmup, args.connections, make.clone()).await;
    }
    let before_cpu = server.pid().and_then(proc_stats).map(|s| s.0);
    let before_st = statements(client, &server.base, scenario).await;
    let split_start = SplitStart::now(server.pid(), &data.db);
    let recording = match (&args.perf, server.pid()) {
        (Some(dir), Some(pid)) => {
            let _ = std::fs::create_dir_all(dir);
            let file = dir.join(format!("{}-{scenario}.data", data.backend));
            Command::new("perf")
                .args([
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "499",
                    "-g",
                    "-p",
                    &pid.to_string(),
                    "-o",
                ])
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
                .map(|child| (child, file))
        }
        _ => None,
    };
    let mut f = drive(client, &url, args.seconds, args.connections, make).await;
    f.split = split_start.split(server.pid());
    f.db_ms = db_ms(&data.db, &f);
    if let Some((mut child, file)) = recording {
        // perf writes its file on SIGINT.
        if let Some(id) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &id.to_string()])
                .status();
        }
        let _ = child.wait().await;
        if let Ok(out) = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--percent-limit",
                "2",
                "-g",
                "none",
                "-i",
            ])
            .arg(&file)
            .output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            eprintln!("  perf, hottest symbols ({}):", file.display());
            for line in text
                .lines()
                .filter(|l| l.contains('%') && !l.starts_with('#'))
                .take(15)
            {
                eprintln!("    {}", line.trim());
            }
        }
    }
    let after_cpu = server.pid().and_then(proc_stats).map(|s| s.0);
    if let (Some(a), Some(b)) = (before_cpu, after_cpu) {
        if f.units > 0 {
            f.cpu_ms = Some((b - a) * 1000.0 / f.units as f64);
        }
    }
    if let (Some((s0, c0)), Some((s1, c1))) =
        (before_st, statements(client, &server.base, scenario).await)
    {
        if c1 > c0 {
            f.statements = Some((s1 - s0) / (c1 - c0));
        }
    }
    eprintln!(
        "{} {}: {:.1}/s p50 {:.2} ms p99 {:.2} ms, {:?} statements, {:?} ms CPU, {:?} ms db CPU, {} errors",
        data.backend,
        describe(scenario),
        f.per_s,
        f.p50_ms,
        f.p99_ms,
        f.statements,
        f.cpu_ms,
        f.db_ms,
        f.errors
    );
    f.print_first_error();
    f
}

#[allow(clippy::too_many_arguments)]
async fn measure_all(
    args: &Args,
    client: &reqwest::Client,
    server: &Server,
    data: &Arc<Data>,
    which: &[Scenario],
    report: &mut Report,
    backend: &str,
) {
    for &s in which {
        let f = measure_ours(args, client, server, data, s).await;
        report.record(backend, s, "ours", f);
    }
}

/// The interop venv's Python (Buildbot 4.3), when there is one.
fn buildbot_python(args: &Args) -> Option<PathBuf> {
    args.buildbot_python
        .clone()
        .filter(|p| p.exists())
        .or_else(|| Some(root().join(".venv-interop/bin/python")).filter(|p| p.exists()))
}

async fn run_backend(
    args: &Args,
    client: &reqwest::Client,
    bin: &Path,
    backend: &'static str,
    db_url: String,
    scenarios: &[Scenario],
    report: &mut Report,
) -> Result<(), String> {
    let python = buildbot_python(args);
    let seeder = root().join("bench/buildbot/seed.py");
    let began = Instant::now();
    let through_buildbot = !args.seed_through_api && python.is_some() && seeder.exists();
    if through_buildbot {
        if let Some(py) = &python {
            let v = python_json(
                py,
                &[
                    &seeder.to_string_lossy(),
                    &db_url,
                    "--count",
                    &args.count.to_string(),
                ],
            )?;
            eprintln!("{backend}: seeded through Buildbot's connector: {v}");
        }
    }
    let server = Server::start(bin, &db_url, client).await?;
    let url = format!("{}/graphql", server.base);
    if !through_buildbot {
        seed_through_api(client, &url, args.count).await?;
        eprintln!(
            "{backend}: seeded {} buildsets through addBuildset",
            args.count
        );
    }
    if backend == "postgres" {
        // Fresh tables have no planner statistics until autovacuum gets to them:
        // without this, plans (PostGraphile's especially) depend on when it ran.
        psql(db_url.split('?').next().unwrap_or(&db_url), "ANALYZE")?;
    }
    report.notes.push(format!(
        "{backend}: {} buildsets seeded through {} in {:.0} s",
        args.count,
        if through_buildbot {
            "Buildbot 4.3's connector (bench/buildbot/seed.py)"
        } else {
            "this server's addBuildset"
        },
        began.elapsed().as_secs_f64()
    ));
    let data = Arc::new(read_data(client, &url, backend, db_procs(backend, &db_url)).await?);
    if scenarios.contains(&Scenario::B) {
        match serialisation_floor(client, &url, &data).await {
            Ok(floor) => {
                eprintln!("{backend}: serialisation floor of b's answer: {floor:?}");
                report.floors.insert(backend.into(), floor);
            }
            Err(e) => report
                .notes
                .push(format!("{backend}: no serialisation floor: {e}")),
        }
    }
    let before = match &args.baseline_server {
        Some(old) => Some(Server::start(old, &db_url, client).await?),
        None => None,
    };
    // Every system reads the same data: the reads first (this server, then the
    // baselines), then the writes, which add and complete buildsets.
    let (reads, writes): (Vec<Scenario>, Vec<Scenario>) =
        scenarios.iter().partition(|s| s.is_read());
    let (mut theirs, mut theirs_skip) = (None, None);
    if args.postgraphile && backend == "postgres" {
        match PostGraphile::start(client, &db_url).await {
            Ok(pg) => theirs = Some(pg),
            Err(e) => report.notes.push(format!("PostGraphile on {backend}: {e}")),
        }
        if !through_buildbot && reads.contains(&Scenario::D) {
            // d reads builds: only Buildbot's schema has that table (this server reads
            // it when it is there), so PostGraphile has no relation to query.
            theirs_skip = Some(Scenario::D);
            report.notes.push(
                "PostGraphile d: not run (seeded through addBuildset: no builds table)".into(),
            );
        }
    }
    let mut rounds: BTreeMap<(Scenario, &'static str), Vec<Figures>> = BTreeMap::new();
    let mut paired: BTreeMap<Scenario, Vec<f64>> = BTreeMap::new();
    let mut paired_before: BTreeMap<Scenario, Vec<f64>> = BTreeMap::new();
    // MariaDB's reads are this server's alone, once: nothing to pair them with.
    let turns = if backend == "mariadb" {
        1
    } else {
        args.rounds.max(1)
    };
    for round in 1..=turns {
        if turns > 1 {
            eprintln!("{backend}: reads, round {round} of {turns}");
        }
        for &s in &reads {
            let f = measure_ours(args, client, &server, &data, s).await;
            let ours = f.per_s;
            rounds.entry((s, "ours")).or_default().push(f);
            if let Some(old) = &before {
                let f = measure_ours(args, client, old, &data, s).await;
                if f.per_s > 0.0 {
                    eprintln!(
                        "  round {round} {s}: {:.2}x the baseline build",
                        ours / f.per_s
                    );
                    paired_before.entry(s).or_default().push(ours / f.per_s);
                }
                rounds.entry((s, "before")).or_default().push(f);
            }
            if let Some(pg) = theirs
                .as_ref()
                .filter(|pg| pg.serves(s) && theirs_skip != Some(s))
            {
                let f = pg.measure(args, client, &data, s).await;
                if f.per_s > 0.0 {
                    eprintln!("  round {round} {s}: {:.2}x PostGraphile", ours / f.per_s);
                    paired.entry(s).or_default().push(ours / f.per_s);
                }
                rounds.entry((s, "postgraphile")).or_default().push(f);
            }
        }
    }
    for ((s, system), figures) in rounds {
        if let Some(mut f) = median_round(figures) {
            if system == "postgraphile" {
                f.paired = paired.remove(&s).unwrap_or_default();
            }
            if system == "before" {
                f.paired = paired_before.remove(&s).unwrap_or_default();
            }
            report.record(backend, s, system, f);
        }
    }
    if let Some(pg) = theirs {
        report.peak(backend, "postgraphile", pg.pid());
    }
    if let Some(old) = before {
        report.peak(backend, "before", old.pid());
    }
    let buildbot = if args.buildbot { python.clone() } else { None };
    if args.buildbot && buildbot.is_none() {
        report.notes.push("Buildbot: no BUILDBOT_PYTHON".into());
    }
    // Buildbot's REST API on MariaDB is left out: only its writes are compared there.
    let rest_reads: Vec<Scenario> = if backend == "mariadb" {
        Vec::new()
    } else {
        reads.clone()
    };
    if let Some(py) = &buildbot {
        if let Err(e) = measure_buildbot(
            args,
            client,
            py,
            &db_url,
            &data.db,
            &rest_reads,
            report,
            backend,
        )
        .await
        {
            report.notes.push(format!("Buildbot on {backend}: {e}"));
        }
    }
    if through_buildbot && writes.contains(&Scenario::G) {
        // On Buildbot's schema this server completes a buildset only once its build
        // requests are finished, as a master would; finish them first (Buildbot's
        // connector, which does not check, then sees the same state).
        if let Some(py) = &python {
            let script = root().join("bench/buildbot/finish_requests.py");
            let v = python_json(py, &[&script.to_string_lossy(), &db_url])?;
            eprintln!("{backend}: build requests of incomplete buildsets finished: {v}");
        }
    }
    measure_all(args, client, &server, &data, &writes, report, backend).await;
    report.peak(backend, "ours", server.pid());
    drop(server);
    if let Some(py) = &buildbot {
        if let Err(e) = measure_buildbot(
            args, client, py, &db_url, &data.db, &writes, report, backend,
        )
        .await
        {
            report.notes.push(format!("Buildbot on {backend}: {e}"));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if args.smoke {
        args.count = 200;
        args.seconds = 1;
        args.buildbot = false;
        args.postgraphile = false;
        args.seed_through_api = true;
        args.rounds = 1;
        args.warmup = 0;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let bin = args.server.clone().unwrap_or_else(|| {
        let release = root().join("target/release/buildsets-graphql");
        if release.exists() {
            release
        } else {
            root().join("target/debug/buildsets-graphql")
        }
    });
    let scenarios: Vec<Scenario> = args
        .scenarios
        .split(',')
        .filter_map(|s| s.trim().chars().next())
        .filter_map(Scenario::from_letter)
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections * 2)
        .build()
        .expect("an HTTP client");
    let mut report = Report::default();
    let mut failed = false;
    let mut backends: Vec<(&'static str, String)> = Vec::new();
    if !args.no_sqlite {
        let dir = std::env::temp_dir().join(format!("bench-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        backends.push((
            "sqlite",
            format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
        ));
    }
    let mut made_database = None;
    if let Some(base) = &args.postgres_url {
        match fresh_postgres(base).await {
            Ok((url, name)) => {
                made_database = Some((base.clone(), name));
                backends.push(("postgres", url));
            }
            Err(e) => {
                eprintln!("PostgreSQL: {e}");
                failed = true;
            }
        }
    }
    let mut made_mysql = None;
    if let Some(base) = &args.mysql_url {
        match fresh_mysql(base) {
            Ok((url, name)) => {
                made_mysql = Some((base.clone(), name));
                backends.push(("mariadb", url));
            }
            Err(e) => {
                eprintln!("MariaDB: {e}");
                failed = true;
            }
        }
    }
    for (backend, url) in backends {
        if let Err(e) =
            run_backend(&args, &client, &bin, backend, url, &scenarios, &mut report).await
        {
            eprintln!("{backend}: {e}");
            failed = true;
        }
    }
    if args.scale_out {
        let python = buildbot_python(&args);
        if let Err(e) = scale_out(&args, &client, &bin, python.as_deref(), &mut report).await {
            eprintln!("scale-out: {e}");
            failed = true;
        }
    }
    // Everything that used them has been stopped (dropped above).
    if let Some((base, name)) = made_mysql {
        let _ = mysql_cli(&base, &format!("DROP DATABASE IF EXISTS `{name}`"));
    }
    if let Some((base, name)) = made_database {
        let _ = psql(
            &base,
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        );
    }
    let _ =
        std::fs::remove_dir_all(std::env::temp_dir().join(format!("bench-{}", std::process::id())));
    let text = render(&args, &report, &command);
    println!("{text}");
    if let Some(out) = &args.out {
        if let Err(e) = std::fs::write(out, &text) {
            eprintln!("{}: {e}", out.display());
            failed = true;
        }
    }
    let errors: u64 = report
        .rows
        .values()
        .flat_map(|s| s.values())
        .filter_map(|m| m.get("ours"))
        .chain(report.scale_out.iter().map(|r| &r.f))
        .map(|f| f.errors)
        .sum();
    let empty = report
        .rows
        .values()
        .flat_map(|s| s.values())
        .filter_map(|m| m.get("ours"))
        .chain(report.scale_out.iter().map(|r| &r.f))
        .any(|f| f.units == 0);
    if failed || errors > 0 || empty || (report.rows.is_empty() && report.scale_out.is_empty()) {
        eprintln!(
            "bench: failed ({errors} errors{})",
            if empty {
                ", a scenario completed nothing"
            } else {
                ""
            }
        );
        std::process::exit(1);
    }
}
