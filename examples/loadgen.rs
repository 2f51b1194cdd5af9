//! A small load tool: seeds a running server with buildsets, then measures how many
//! 100-buildset pages (every nested field) it serves per second, next to a baseline
//! (`{ __typename }`, pure HTTP + GraphQL overhead) measured in the same run.
//!
//! ```text
//! cargo run --release &                      # the server, default SQLite file
//! cargo run --release --example loadgen -- --seed 10000 --seconds 10 [--server-pid PID]
//! cargo run --release --example loadgen -- --seed 0 --writes --seconds 10   # addBuildset latency
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// The server's GraphQL endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
    url: String,
    /// Make sure at least this many buildsets exist first.
    #[arg(long, default_value_t = 10_000)]
    seed: u64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Page size of the measured query.
    #[arg(long, default_value_t = 100)]
    page: u32,
    /// Bearer token for the seeding mutations.
    #[arg(long)]
    token: Option<String>,
    /// The server's process id (Linux): also report the server's CPU time per
    /// request, read from /proc/PID/stat around each measurement.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Measure concurrent addBuildset calls (each with a new sourcestamp) instead of
    /// pages: throughput, p50 / p99 / max latency and errors.
    #[arg(long)]
    writes: bool,
}

/// The CPU time (user + system) process `pid` has used, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and
    // 15th fields of the line, counted in clock ticks.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Some(ticks * 1000.0 / hz)
}

const PAGE: &str = "query($f: Int) { buildsets(first: $f) { edges { cursor } nodes {
  bsid reason submittedAt complete results externalIdstring sourcestampIds
  sourcestamps { ssid branch revision repository codebase project patch { level body } }
  properties { name value source }
  buildrequests { buildrequestid priority complete builder { name } } } } }";

async fn post(client: &reqwest::Client, args: &Args, body: Value) -> Result<Value, String> {
    let mut req = client.post(&args.url).json(&body);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
    match v.get("errors") {
        Some(e) => Err(e.to_string()),
        None => Ok(v),
    }
}

async fn seed(client: &reqwest::Client, args: &Args) -> Result<(), String> {
    let count = post(
        client,
        args,
        json!({"query": "{ buildsets(first: 0) { totalCount } }"}),
    )
    .await?;
    let have = count["data"]["buildsets"]["totalCount"]
        .as_u64()
        .unwrap_or(0);
    if have >= args.seed {
        println!("{have} buildsets present");
        return Ok(());
    }
    let mut builders = Vec::new();
    for name in ["linux", "mac", "windows"] {
        let q = json!({"query": "mutation($n: String!) { ensureBuilder(name: $n) { builderid } }", "variables": {"n": name}});
        builders.push(post(client, args, q).await?["data"]["ensureBuilder"]["builderid"].clone());
    }
    let todo = args.seed - have;
    println!("seeding {todo} buildsets ...");
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, builders) = (client.clone(), next.clone(), builders.clone());
        let args = Args {
            url: args.url.clone(),
            token: args.token.clone(),
            ..Args::parse_from(["x"])
        };
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= todo {
                    return Ok::<(), String>(());
                }
                let input = json!({
                    "sourcestamps": [
                        {"stamp": {"branch": format!("b{}", i % 50), "revision": format!("{i:040x}"), "repository": "https://example.org/repo.git"}},
                        {"stamp": {"branch": "main", "codebase": "docs", "patch": {"body": format!("--- a\n+++ b\n@@ {i}\n")}}}
                    ],
                    "reason": format!("load {i}"),
                    "properties": [{"name": "n", "value": i, "source": "loadgen"}, {"name": "tags", "value": ["a", "b"], "source": "loadgen"}],
                    "builderids": [builders[(i % 3) as usize], builders[((i + 1) % 3) as usize]],
                });
                let q = json!({"query": "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { bsid } }", "variables": {"i": input}});
                post(&client, &args, q).await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Runs `body` from `concurrency` workers for `seconds`; returns (req/s, mean ms,
/// server CPU ms per request when `--server-pid` is given).
async fn measure(
    client: &reqwest::Client,
    args: &Args,
    body: Value,
) -> Result<(f64, f64, Option<f64>), String> {
    // Warm up (connections, caches) before counting.
    for _ in 0..5 {
        post(client, args, body.clone()).await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = args.server_pid.and_then(cpu_ms);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, done, body, url) =
            (client.clone(), done.clone(), body.clone(), args.url.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let resp = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                // Scanned, not parsed: parsing every page would cost this client more
                // CPU than the server spends, on the cores they share.
                let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
                if bytes.windows(9).any(|w| w == b"\"errors\":") {
                    return Err(String::from_utf8_lossy(&bytes).into_owned());
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed) as f64;
    let cpu = match (cpu_before, args.server_pid.and_then(cpu_ms)) {
        (Some(a), Some(b)) => Some((b - a) / n),
        _ => None,
    };
    Ok((n / secs, secs * 1000.0 * args.concurrency as f64 / n, cpu))
}

fn cpu_text(cpu: Option<f64>) -> String {
    cpu.map_or_else(String::new, |c| format!(", server CPU {c:.3} ms/request"))
}

/// `concurrency` workers each submitting buildsets for `seconds`.
async fn measure_writes(client: &reqwest::Client, args: &Args) -> Result<(), String> {
    let q = json!({"query": "mutation { ensureBuilder(name: \"writes\") { builderid } }"});
    let builder = post(client, args, q).await?["data"]["ensureBuilder"]["builderid"].clone();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, token, builder, next) = (
            client.clone(),
            args.url.clone(),
            args.token.clone(),
            builder.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut times, mut errors) = (Vec::new(), Vec::new());
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let input = json!({
                    "sourcestamps": [{"stamp": {"branch": "main", "revision": format!("w{i:039x}"), "repository": "https://example.org/w.git"}}],
                    "reason": format!("write {i}"),
                    "properties": [{"name": "n", "value": i, "source": "loadgen"}],
                    "builderids": [builder],
                });
                let body = json!({"query": "mutation($i: AddBuildsetInput!) { addBuildset(input: $i) { bsid } }", "variables": {"i": input}});
                let mut req = client.post(&url).json(&body);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let sent = Instant::now();
                let text = match req.send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                times.push(sent.elapsed());
                if text.contains("\"errors\":") || !text.contains("\"bsid\"") {
                    errors.push(text);
                }
            }
            (times, errors)
        }));
    }
    let (mut times, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        let (ts, es) = t.await.map_err(|e| e.to_string())?;
        times.extend(ts);
        errors.extend(es);
    }
    let secs = start.elapsed().as_secs_f64();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "addBuildset x{}: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors{}",
        args.concurrency,
        times.len() as f64 / secs,
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        errors.len(),
        errors
            .first()
            .map_or_else(String::new, |e| format!(" (first: {e})"))
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let client = reqwest::Client::new();
    if args.writes {
        return measure_writes(&client, &args).await;
    }
    seed(&client, &args).await?;
    let (base, base_ms, base_cpu) =
        measure(&client, &args, json!({"query": "{ __typename }"})).await?;
    println!(
        "baseline {{ __typename }}: {base:.0} req/s, {base_ms:.2} ms mean{}",
        cpu_text(base_cpu)
    );
    let body = json!({"query": PAGE, "variables": {"f": args.page}});
    let (page, page_ms, page_cpu) = measure(&client, &args, body).await?;
    println!(
        "{}-buildset page, every nested field: {page:.0} req/s, {page_ms:.2} ms mean ({:.3} x baseline){}",
        args.page,
        page / base,
        cpu_text(page_cpu)
    );
    Ok(())
}
