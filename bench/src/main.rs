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

#[derive(Parser, Clone)]
struct Args {
    /// The server binary (default: target/release, else target/debug).
    #[arg(long)]
    server: Option<PathBuf>,
    /// A PostgreSQL server database URL; a fresh database is made next to it.
    #[arg(long, env = "BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
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
    /// Scenarios to run (a-g).
    #[arg(long, default_value = "a,b,c,d,e,f,g")]
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
    /// Profile the server during each scenario with `perf record -e cpu-clock -g`,
    /// keeping `DIR/<backend>-<scenario>.data` and printing its hottest symbols
    /// (`perf script | inferno-flamegraph` makes a flame graph of one).
    #[arg(long)]
    perf: Option<PathBuf>,
}

/// One scenario's measurement.
#[derive(Clone, Debug, Default)]
struct Figures {
    units: u64,
    errors: u64,
    /// The first failed answer (or transport error), cut short, so that a run with
    /// errors says what they were.
    first_error: Option<String>,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    statements: Option<f64>,
    cpu_ms: Option<f64>,
    requests_per_unit: Option<f64>,
    split: Option<Split>,
    /// A baseline's rounds: this server's req/s over the baseline's in each round,
    /// both measured back to back.
    paired: Vec<f64>,
}

impl Figures {
    fn print_first_error(&self) {
        if let Some(why) = &self.first_error {
            eprintln!("    first error: {why}");
        }
    }
}

impl Report {
    fn record(&mut self, backend: &str, scenario: char, system: &'static str, f: Figures) {
        self.rows
            .entry(backend.into())
            .or_default()
            .entry(scenario)
            .or_default()
            .insert(system, f);
    }

    fn peak(&mut self, backend: &str, system: &'static str, pid: Option<u32>) {
        if let Some((_, rss)) = pid.and_then(proc_stats) {
            self.rss
                .entry(backend.into())
                .or_default()
                .insert(system, rss);
        }
    }
}

#[derive(Default)]
struct Report {
    /// backend -> scenario -> system -> figures
    rows: BTreeMap<String, BTreeMap<char, BTreeMap<&'static str, Figures>>>,
    /// backend -> system -> peak RSS in MiB
    rss: BTreeMap<String, BTreeMap<&'static str, f64>>,
    notes: Vec<String>,
}

const SELECTION: &str = "bsid externalIdstring reason submittedAt complete completeAt results parentBuildid parentRelationship rebuiltBuildid";
const STAMP: &str = "ssid branch revision repository codebase project createdAt";
const PATCH: &str = "patch { patchid level body author comment subdir }";
const REQUEST: &str =
    "buildrequestid builderid priority complete results submittedAt completeAt waitedFor";

/// Our operation for a scenario; the operation name is the scenario's letter, so
/// that `/metrics` counts its statements apart.
fn our_query(s: char) -> String {
    match s {
        'a' => format!("query a($id: Int!) {{ buildset(bsid: $id) {{ {SELECTION} sourcestamps {{ {STAMP} {PATCH} }} }} }}"),
        'b' => format!("query b {{ buildsets(first: 100, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} sourcestamps {{ {STAMP} {PATCH} }} }} }} }}"),
        'c' => format!("query c {{ buildsets(first: 20, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} sourcestamps {{ {STAMP} }} buildrequests {{ {REQUEST} }} }} }} }}"),
        'd' => format!("query d {{ buildsets(first: 20, orderBy: [{{field: BSID, direction: DESC}}]) {{ nodes {{ {SELECTION} properties {{ name value source }} sourcestamps {{ {STAMP} {PATCH} }} buildrequests {{ {REQUEST} builder {{ builderid name description }} builds {{ buildid number builderid buildrequestid stateString results startedAt completeAt }} }} }} }} }}"),
        'e' => format!("query e($branch: String!) {{ recentBuildsets(count: 50, branch: $branch) {{ {SELECTION} sourcestamps {{ {STAMP} }} }} }}"),
        'f' => "mutation f($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }".into(),
        'g' => "mutation g($b: Int!) { completeBuildset(bsid: $b, results: 0) { bsid } }".into(),
        _ => String::new(),
    }
}

fn describe(s: char) -> &'static str {
    match s {
        'a' => "a: one buildset + stamps + patch",
        'b' => "b: 100-page + stamps + patches",
        'c' => "c: 20-page + stamps + requests",
        'd' => "d: 20-page, everything nested",
        'e' => "e: recentBuildsets(count: 50, branch)",
        'f' => "f: addBuildset (new stamp)",
        'g' => "g: completeBuildset",
        _ => "?",
    }
}

/// A small deterministic generator (no dependency for what a benchmark needs).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18_080)
}

async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    secs: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().as_u16() < 500 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not come up at {url}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
fn proc_stats(pid: u32) -> Option<(f64, f64)> {
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
fn machine_cpu() -> Option<(f64, f64)> {
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
fn cpu_of_processes(comm: &str) -> f64 {
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
struct Split {
    server: f64,
    database: f64,
    client: f64,
    busy: f64,
}

struct SplitStart {
    server: Option<f64>,
    database: f64,
    client: Option<f64>,
    machine: Option<(f64, f64)>,
    db_comm: &'static str,
}

impl SplitStart {
    fn now(server_pid: Option<u32>, db_comm: &'static str) -> Self {
        SplitStart {
            server: server_pid.and_then(proc_stats).map(|s| s.0),
            database: cpu_of_processes(db_comm),
            client: proc_stats(std::process::id()).map(|s| s.0),
            machine: machine_cpu(),
            db_comm,
        }
    }

    fn split(&self, server_pid: Option<u32>) -> Option<Split> {
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

/// The sum and count of `bsgql_statements_per_request{operation=op}`.
async fn statements(client: &reqwest::Client, base: &str, op: char) -> Option<(f64, f64)> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let find = |suffix: &str| {
        let prefix = format!("bsgql_statements_per_request_{suffix}{{operation=\"{op}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((find("sum").unwrap_or(0.0), find("count").unwrap_or(0.0)))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `connections` clients for `seconds`, each sending what `make` builds and
/// checking the answer has no GraphQL errors.
async fn drive<F>(
    client: &reqwest::Client,
    url: &str,
    seconds: u64,
    connections: usize,
    make: Arc<F>,
) -> Figures
where
    F: Fn(u64) -> Option<Value> + Send + Sync + 'static,
{
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, make) = (client.clone(), url.to_owned(), make.clone());
        let (latencies, errors, counter) = (latencies.clone(), errors.clone(), counter.clone());
        let first_error = first_error.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let Some(body) = make(n) else { break };
                let t = Instant::now();
                let failure = match client.post(&url).json(&body).send().await {
                    Ok(r) => match r.bytes().await {
                        Ok(b) => match serde_json::from_slice::<Answer>(&b) {
                            Ok(a) if a.errors.is_none() && a.data.is_some() => None,
                            _ => Some(String::from_utf8_lossy(&b[..b.len().min(400)]).into_owned()),
                        },
                        Err(e) => Some(e.to_string()),
                    },
                    Err(e) => Some(e.to_string()),
                };
                mine.push(t.elapsed().as_secs_f64() * 1000.0);
                if let Some(why) = failure {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        if let Ok(mut first) = first_error.lock() {
                            *first = Some(why);
                        }
                    }
                }
            }
            if let Ok(mut all) = latencies.lock() {
                all.extend(mine);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = started.elapsed().as_secs_f64();
    let mut all = latencies.lock().map(|v| v.clone()).unwrap_or_default();
    all.sort_by(|a, b| a.total_cmp(b));
    Figures {
        units: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        first_error: first_error.lock().ok().and_then(|mut f| f.take()),
        per_s: all.len() as f64 / took,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        ..Figures::default()
    }
}

/// What the load client checks of every answer: valid JSON, with data and without
/// errors. It skips over the values instead of building them (a 100-buildset page
/// built as a `Value` cost the client a fifth of the machine, CPU the servers
/// under test then did not get; wrk, which the first figures came from, parses
/// nothing).
#[derive(serde::Deserialize)]
struct Answer {
    data: Option<serde::de::IgnoredAny>,
    errors: Option<serde::de::IgnoredAny>,
}

/// What the seeded database holds, as this server reads it.
struct Data {
    postgres: bool,
    max_bsid: i64,
    branches: Vec<String>,
    builders: Vec<i64>,
    incomplete: Vec<i64>,
}

async fn gql(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let v: Value = client
        .post(url)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(e) = v.get("errors") {
        return Err(format!("{query}: {e}"));
    }
    Ok(v["data"].clone())
}

async fn read_data(
    client: &reqwest::Client,
    url: &str,
    url_is_postgres: bool,
) -> Result<Data, String> {
    let d = gql(client, url, "{ buildsets(first: 1, orderBy: [{field: BSID, direction: DESC}]) { nodes { bsid } } builders { builderid } }", json!({})).await?;
    let max_bsid = d["buildsets"]["nodes"][0]["bsid"].as_i64().unwrap_or(0);
    let builders = d["builders"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["builderid"].as_i64()).collect())
        .unwrap_or_default();
    let d = gql(
        client,
        url,
        "{ buildsets(first: 200) { nodes { sourcestamps { branch } } } }",
        json!({}),
    )
    .await?;
    let mut branches: Vec<String> = d["buildsets"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["sourcestamps"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["branch"].as_str().map(str::to_owned))
        .collect();
    branches.sort();
    branches.dedup();
    let mut incomplete = Vec::new();
    let mut after: Option<String> = None;
    while incomplete.len() < 100_000 {
        let d = gql(client, url, "query($a: String) { buildsets(complete: false, first: 1000, after: $a) { nodes { bsid } pageInfo { hasNextPage endCursor } } }", json!({"a": after})).await?;
        let page = &d["buildsets"];
        incomplete.extend(
            page["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["bsid"].as_i64()),
        );
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    Ok(Data {
        postgres: url_is_postgres,
        max_bsid,
        branches,
        builders,
        incomplete,
    })
}

/// Seeds through the server's own addBuildset (when Buildbot is not at hand).
async fn seed_through_api(client: &reqwest::Client, url: &str, count: u32) -> Result<(), String> {
    let mut builders = Vec::new();
    for i in 0..10 {
        let d = gql(
            client,
            url,
            "mutation($n: String!) { ensureBuilder(name: $n) { builderid } }",
            json!({"n": format!("builder-{i}")}),
        )
        .await?;
        builders.push(d["ensureBuilder"]["builderid"].as_i64().unwrap_or(1));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, next, builders) = (
            client.clone(),
            url.to_owned(),
            next.clone(),
            builders.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count as usize {
                    return Ok::<(), String>(());
                }
                let mut r = Lcg(i as u64 + 1);
                let nb = 1 + r.below(4) as usize;
                let start = r.below(10) as usize;
                let ids: Vec<i64> = (0..nb).map(|k| builders[(start + k) % 10]).collect();
                let stamps: Vec<Value> = (0..1 + r.below(3))
                    .map(|k| {
                        let mut s = json!({"branch": format!("branch-{}", r.below(5)), "repository": format!("https://example.org/repo-{k}.git"), "revision": format!("{:040x}", r.next()), "codebase": format!("cb{k}")});
                        if r.below(10) == 0 {
                            s["patch"] = json!({"body": "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\n", "level": 1, "author": "alice", "comment": "fix"});
                        }
                        json!({"stamp": s})
                    })
                    .collect();
                let props: Vec<Value> = (0..2 + r.below(4))
                    .map(|k| json!({"name": format!("p{k}"), "value": match k % 4 { 0 => json!(r.below(1000)), 1 => json!(format!("v{}", r.below(100))), 2 => json!([1, "two", 3.5]), _ => json!({"k": true}) }, "source": "bench"}))
                    .collect();
                let input = json!({"reason": format!("scheduler {}", r.below(5)), "sourcestamps": stamps, "builderids": ids, "properties": props});
                let d = gql(&client, &url, "mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }", json!({"in": input})).await?;
                if i % 2 == 0 {
                    let bsid = d["addBuildset"]["bsid"].as_i64().unwrap_or(0);
                    gql(&client, &url, "mutation($b: Int!) { completeBuildset(bsid: $b, results: 0) { bsid } }", json!({"b": bsid})).await?;
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn python_json(py: &Path, args: &[&str]) -> Result<Value, String> {
    let out = std::process::Command::new(py)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("{args:?} failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("{}");
    serde_json::from_str(line).map_err(|e| format!("{args:?}: {e}: {line}"))
}

fn python_lines(py: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    let out = std::process::Command::new(py)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("{args:?} failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect())
}

/// A fresh PostgreSQL database next to `base`, named after it (so that whoever
/// cleans up databases by that prefix cleans this one too); its URL and name.
async fn fresh_postgres(base: &str) -> Result<(String, String), String> {
    let (server, base_name) = base.rsplit_once('/').ok_or("a URL with a database name")?;
    let base_name = base_name.split('?').next().unwrap_or(base_name);
    let name = format!("{base_name}_bench_{}_{}", std::process::id(), free_port());
    psql(base, &format!("CREATE DATABASE \"{name}\""))?;
    Ok((format!("{server}/{name}"), name))
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let status = std::process::Command::new("psql")
        .args([url, "-qc", sql])
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("psql: {sql} failed"))
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(bin: &Path, db_url: &str, client: &reqwest::Client) -> Result<Server, String> {
        let port = free_port();
        // PostGraphile's driver (node-postgres) talks to PostgreSQL without TLS unless
        // told otherwise, while sqlx negotiates TLS whenever the server offers it: on
        // loopback that is only cost, so both systems run without it.
        let db_url = if db_url.starts_with("postgres") && !db_url.contains("sslmode=") {
            let sep = if db_url.contains('?') { '&' } else { '?' };
            format!("{db_url}{sep}sslmode=disable")
        } else {
            db_url.to_owned()
        };
        let child = Command::new(bin)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &db_url,
                "--max-complexity",
                "100000",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(client, &format!("{base}/readyz"), "the server", 60).await?;
        Ok(Server { child, base })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The `n`th request of read scenario `scenario` to this server.
fn read_body(query: &str, scenario: char, d: &Data, n: u64) -> Value {
    let mut r = Lcg(n.wrapping_mul(7919) + 13);
    match scenario {
        'a' => {
            json!({"query": query, "operationName": "a", "variables": {"id": 1 + r.below(d.max_bsid.max(1) as u64) as i64}})
        }
        'e' => {
            json!({"query": query, "operationName": "e", "variables": {"branch": d.branches.get(r.below(d.branches.len() as u64) as usize).cloned().unwrap_or_default()}})
        }
        other => json!({"query": query, "operationName": other.to_string()}),
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure_ours(
    args: &Args,
    client: &reqwest::Client,
    server: &Server,
    data: &Arc<Data>,
    scenario: char,
) -> Figures {
    let url = format!("{}/graphql", server.base);
    let query = our_query(scenario);
    let d = data.clone();
    let seq = Arc::new(AtomicUsize::new(0));
    let make = move |n: u64| -> Option<Value> {
        let mut r = Lcg(n.wrapping_mul(7919) + 13);
        match scenario {
            'a'..='e' => Some(read_body(&query, scenario, &d, n)),
            'f' => {
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
            'g' => {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                d.incomplete
                    .get(i)
                    .map(|b| json!({"query": query, "operationName": "g", "variables": {"b": b}}))
            }
            _ => None,
        }
    };
    let make = Arc::new(make);
    if scenario <= 'e' && args.warmup > 0 {
        drive(client, &url, args.warmup, args.connections, make.clone()).await;
    }
    let before_cpu = server.pid().and_then(proc_stats).map(|s| s.0);
    let before_st = statements(client, &server.base, scenario).await;
    let db_comm = if data.postgres { "postgres" } else { "none" };
    let split_start = SplitStart::now(server.pid(), db_comm);
    let recording = match (&args.perf, server.pid()) {
        (Some(dir), Some(pid)) => {
            let _ = std::fs::create_dir_all(dir);
            let file = dir.join(format!(
                "{}-{scenario}.data",
                if data.postgres { "postgres" } else { "sqlite" }
            ));
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
        "{} {}: {:.1}/s p50 {:.2} ms p99 {:.2} ms, {:?} statements, {:?} ms CPU, {} errors",
        if data.postgres { "postgres" } else { "sqlite" },
        describe(scenario),
        f.per_s,
        f.p50_ms,
        f.p99_ms,
        f.statements,
        f.cpu_ms,
        f.errors
    );
    f.print_first_error();
    f
}

/// PostGraphile serving the seeded PostgreSQL database, read-only.
struct PostGraphile {
    child: Child,
    url: String,
    queries: Value,
}

impl PostGraphile {
    async fn start(client: &reqwest::Client, db_url: &str) -> Result<Self, String> {
        let dir = root().join("bench/postgraphile");
        let queries: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("queries.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let port = free_port();
        let child = Command::new(dir.join("run.sh"))
            .args([
                port.to_string(),
                db_url.split('?').next().unwrap_or(db_url).to_owned(),
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("postgraphile: {e}"))?;
        let url = format!("http://127.0.0.1:{port}/graphql");
        wait_ready(client, &url, "PostGraphile", 180).await?;
        Ok(PostGraphile {
            child,
            url,
            queries,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn serves(&self, s: char) -> bool {
        ('a'..='d').contains(&s) && self.queries.get(s.to_string()).is_some()
    }

    /// One scenario, after the warm-up.
    async fn measure(
        &self,
        args: &Args,
        client: &reqwest::Client,
        data: &Arc<Data>,
        s: char,
    ) -> Figures {
        let q = &self.queries[s.to_string()];
        let (query, vars) = (q["query"].clone(), q["variables"].clone());
        let d = data.clone();
        let make = move |n: u64| {
            let mut vars = vars.clone();
            if s == 'a' {
                let mut r = Lcg(n.wrapping_mul(7919) + 13);
                vars["id"] = json!(1 + r.below(d.max_bsid.max(1) as u64) as i64);
            }
            Some(json!({"query": query, "variables": vars}))
        };
        let make = Arc::new(make);
        if args.warmup > 0 {
            drive(
                client,
                &self.url,
                args.warmup,
                args.connections,
                make.clone(),
            )
            .await;
        }
        let pid = self.pid();
        let before = pid.and_then(proc_stats).map(|s| s.0);
        let mut f = drive(client, &self.url, args.seconds, args.connections, make).await;
        if let (Some(a), Some(b)) = (before, pid.and_then(proc_stats).map(|s| s.0)) {
            if f.units > 0 {
                f.cpu_ms = Some((b - a) * 1000.0 / f.units as f64);
            }
        }
        eprintln!(
            "  postgraphile {s}: {:.1}/s p50 {:.1} ms p99 {:.1} ms, {} errors",
            f.per_s, f.p50_ms, f.p99_ms, f.errors
        );
        f.print_first_error();
        f
    }
}

/// The figures of the round with the median req/s.
fn median_round(mut rounds: Vec<Figures>) -> Option<Figures> {
    rounds.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
    let mid = rounds.len().checked_sub(1)? / 2;
    rounds.into_iter().nth(mid)
}

async fn measure_buildbot(
    args: &Args,
    client: &reqwest::Client,
    py: &Path,
    db_url: &str,
    scenarios: &[char],
    report: &mut Report,
    backend: &str,
) -> Result<(), String> {
    let dir = root().join("bench/buildbot");
    let secs = args.seconds.to_string();
    let conns = args.connections.to_string();
    let rest: Vec<char> = scenarios
        .iter()
        .copied()
        .filter(|s| matches!(s, 'a' | 'b' | 'c' | 'e'))
        .collect();
    if !rest.is_empty() {
        measure_rest(args, client, py, db_url, &rest, report, backend).await?;
    }
    if scenarios.iter().any(|s| matches!(s, 'f' | 'g')) {
        for v in python_lines(
            py,
            &[
                &dir.join("writes.py").to_string_lossy(),
                db_url,
                "--seconds",
                &secs,
                "--inflight",
                &conns,
            ],
        )? {
            let s = match v["op"].as_str() {
                Some("addBuildset") => 'f',
                Some("completeBuildset") => 'g',
                _ => continue,
            };
            let f = Figures {
                per_s: v["ops_per_s"].as_f64().unwrap_or(0.0),
                p50_ms: v["p50_ms"].as_f64().unwrap_or(0.0),
                p99_ms: v["p99_ms"].as_f64().unwrap_or(0.0),
                ..Figures::default()
            };
            eprintln!(
                "  buildbot connector {s}: {:.1}/s p50 {:.1} ms p99 {:.1} ms",
                f.per_s, f.p50_ms, f.p99_ms
            );
            report.record(backend, s, "buildbot", f);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure_all(
    args: &Args,
    client: &reqwest::Client,
    server: &Server,
    data: &Arc<Data>,
    which: &[char],
    report: &mut Report,
    backend: &str,
) {
    for &s in which {
        let f = measure_ours(args, client, server, data, s).await;
        report.record(backend, s, "ours", f);
    }
}

async fn measure_rest(
    args: &Args,
    client: &reqwest::Client,
    py: &Path,
    db_url: &str,
    scenarios: &[char],
    report: &mut Report,
    backend: &str,
) -> Result<(), String> {
    let dir = root().join("bench/buildbot");
    let port = free_port();
    let basedir = std::env::temp_dir().join(format!("bench-master-{}-{port}", std::process::id()));
    let child = Command::new(py)
        .arg(dir.join("master.py"))
        .args([
            db_url,
            "--port",
            &port.to_string(),
            "--basedir",
            &basedir.to_string_lossy(),
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("master.py: {e}"))?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        client,
        &format!("{base}/api/v2/buildsets?limit=1"),
        "Buildbot's master",
        180,
    )
    .await?;
    let pid = child.id();
    let secs = args.seconds.to_string();
    let conns = args.connections.to_string();
    for &s in scenarios
        .iter()
        .filter(|s| matches!(s, 'a' | 'b' | 'c' | 'e'))
    {
        let before = pid.and_then(proc_stats).map(|s| s.0);
        let v = python_json(
            py,
            &[
                &dir.join("rest_load.py").to_string_lossy(),
                "--base",
                &base,
                "--scenario",
                &s.to_string(),
                "--seconds",
                &secs,
                "--connections",
                &conns,
            ],
        )?;
        let mut f = Figures {
            per_s: v["units_per_s"].as_f64().unwrap_or(0.0),
            p50_ms: v["p50_ms"].as_f64().unwrap_or(0.0),
            p99_ms: v["p99_ms"].as_f64().unwrap_or(0.0),
            requests_per_unit: v["requests_per_unit"].as_f64(),
            units: v["units"].as_u64().unwrap_or(0),
            errors: v["errors"].as_u64().unwrap_or(0),
            ..Figures::default()
        };
        let units = (f.per_s * args.seconds as f64).max(1.0);
        if let (Some(a), Some(b)) = (before, pid.and_then(proc_stats).map(|s| s.0)) {
            f.cpu_ms = Some((b - a) * 1000.0 / units);
        }
        eprintln!(
            "  buildbot REST {s}: {:.1}/s p50 {:.1} ms p99 {:.1} ms",
            f.per_s, f.p50_ms, f.p99_ms
        );
        report.record(backend, s, "buildbot", f);
    }
    report.peak(backend, "buildbot", pid);
    drop(child);
    Ok(())
}

async fn run_backend(
    args: &Args,
    client: &reqwest::Client,
    bin: &Path,
    backend: &str,
    db_url: String,
    scenarios: &[char],
    report: &mut Report,
) -> Result<(), String> {
    let python = args
        .buildbot_python
        .clone()
        .filter(|p| p.exists())
        .or_else(|| Some(root().join(".venv-interop/bin/python")).filter(|p| p.exists()));
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
    let data = Arc::new(read_data(client, &url, backend == "postgres").await?);
    // Every system reads the same data: the reads first (this server, then the
    // baselines), then the writes, which add and complete buildsets.
    let (reads, writes): (Vec<char>, Vec<char>) = scenarios.iter().partition(|s| **s <= 'e');
    let (mut theirs, mut theirs_skip) = (None, None);
    if args.postgraphile && backend == "postgres" {
        match PostGraphile::start(client, &db_url).await {
            Ok(pg) => theirs = Some(pg),
            Err(e) => report.notes.push(format!("PostGraphile on {backend}: {e}")),
        }
        if !through_buildbot && reads.contains(&'d') {
            // d reads builds: only Buildbot's schema has that table (this server reads
            // it when it is there), so PostGraphile has no relation to query.
            theirs_skip = Some('d');
            report.notes.push(
                "PostGraphile d: not run (seeded through addBuildset: no builds table)".into(),
            );
        }
    }
    let mut rounds: BTreeMap<(char, &'static str), Vec<Figures>> = BTreeMap::new();
    let mut paired: BTreeMap<char, Vec<f64>> = BTreeMap::new();
    for round in 1..=args.rounds.max(1) {
        if args.rounds > 1 {
            eprintln!("{backend}: reads, round {round} of {}", args.rounds);
        }
        for &s in &reads {
            let f = measure_ours(args, client, &server, &data, s).await;
            let ours = f.per_s;
            rounds.entry((s, "ours")).or_default().push(f);
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
            report.record(backend, s, system, f);
        }
    }
    if let Some(pg) = theirs {
        report.peak(backend, "postgraphile", pg.pid());
    }
    let buildbot = if args.buildbot { python.clone() } else { None };
    if args.buildbot && buildbot.is_none() {
        report.notes.push("Buildbot: no BUILDBOT_PYTHON".into());
    }
    if let Some(py) = &buildbot {
        if let Err(e) = measure_buildbot(args, client, py, &db_url, &reads, report, backend).await {
            report.notes.push(format!("Buildbot on {backend}: {e}"));
        }
    }
    measure_all(args, client, &server, &data, &writes, report, backend).await;
    report.peak(backend, "ours", server.pid());
    drop(server);
    if let Some(py) = &buildbot {
        if let Err(e) = measure_buildbot(args, client, py, &db_url, &writes, report, backend).await
        {
            report.notes.push(format!("Buildbot on {backend}: {e}"));
        }
    }
    Ok(())
}

/// A baseline's req/s and this server's ratio to it: with rounds, the median of the
/// per-round ratios and their range; else the quotient of the two figures.
fn ratio(ours: &Figures, other: Option<&Figures>) -> String {
    match other {
        Some(o) if o.paired.len() > 1 => {
            let mut r = o.paired.clone();
            r.sort_by(|a, b| a.total_cmp(b));
            let median = if r.len() % 2 == 1 {
                r[r.len() / 2]
            } else {
                (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
            };
            format!(
                "{:.1} ({median:.2}×; rounds {:.2}–{:.2}×)",
                o.per_s,
                r[0],
                r[r.len() - 1]
            )
        }
        Some(o) if o.per_s > 0.0 => format!("{:.1} ({:.2}×)", o.per_s, ours.per_s / o.per_s),
        _ => "–".into(),
    }
}

fn render(args: &Args, report: &Report, command: &str) -> String {
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
        "Command: `{command}`\n\nMachine: {nproc} cores, {mem:.0} GiB; {} connections, {} s per scenario after {} s of warm-up, N = {}. Reads: the median of {} rounds, this server and PostGraphile taking turns on each scenario; the ratio to PostGraphile is the median of the per-round ratios.\n\n",
        args.connections, args.seconds, args.warmup, args.count, args.rounds.max(1)
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
    let scenarios: Vec<char> = args
        .scenarios
        .split(',')
        .filter_map(|s| s.trim().chars().next())
        .filter(|c| ('a'..='g').contains(c))
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections * 2)
        .build()
        .expect("an HTTP client");
    let mut report = Report::default();
    let mut failed = false;
    let mut backends: Vec<(&str, String)> = Vec::new();
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
    for (backend, url) in backends {
        if let Err(e) =
            run_backend(&args, &client, &bin, backend, url, &scenarios, &mut report).await
        {
            eprintln!("{backend}: {e}");
            failed = true;
        }
    }
    // Everything that used them has been stopped (dropped above).
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
        .map(|f| f.errors)
        .sum();
    let empty = report
        .rows
        .values()
        .flat_map(|s| s.values())
        .filter_map(|m| m.get("ours"))
        .any(|f| f.units == 0);
    if failed || errors > 0 || empty || report.rows.is_empty() {
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
