//! The Buildbot baselines: its REST API (bench/buildbot/rest_load.py) and its connector's writes (writes.py), on the same database.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn measure_buildbot(
    args: &Args,
    client: &reqwest::Client,
    py: &Path,
    db_url: &str,
    db: &DbProcs,
    scenarios: &[Scenario],
    report: &mut Report,
    backend: &str,
) -> Result<(), String> {
    let dir = root().join("bench/buildbot");
    let secs = args.seconds.to_string();
    let conns = args.connections.to_string();
    let rest: Vec<Scenario> = scenarios
        .iter()
        .copied()
        .filter(|s| matches!(s, Scenario::A | Scenario::B | Scenario::C | Scenario::E))
        .collect();
    if !rest.is_empty() {
        measure_rest(args, client, py, db_url, &rest, report, backend).await?;
    }
    // One writes.py per phase, so that the database's CPU is sampled around each.
    for &s in scenarios {
        let ops = match s {
            Scenario::F => "add",
            Scenario::H => "add-existing",
            Scenario::G => "complete",
            _ => continue,
        };
        let meter = DbMeter::start(db);
        let lines = python_lines(
            py,
            &[
                &dir.join("writes.py").to_string_lossy(),
                db_url,
                "--seconds",
                &secs,
                "--inflight",
                &conns,
                "--ops",
                ops,
            ],
        )?;
        let db_s = meter.stop();
        for v in lines.iter().filter(|v| v["op"].is_string()) {
            let units = v["ops"].as_u64().unwrap_or(0);
            let f = Figures {
                units,
                per_s: v["ops_per_s"].as_f64().unwrap_or(0.0),
                p50_ms: v["p50_ms"].as_f64().unwrap_or(0.0),
                p99_ms: v["p99_ms"].as_f64().unwrap_or(0.0),
                statements: v["statements_per_op"].as_f64(),
                commits: v["commits_per_op"].as_f64(),
                // The connector's set-up (builder ids, the incomplete buildsets)
                // is in it too: a few statements per run.
                db_ms: (db.is_some() && units > 0).then(|| db_s * 1000.0 / units as f64),
                ..Figures::default()
            };
            eprintln!(
                "  buildbot connector {s}: {:.1}/s p50 {:.1} ms p99 {:.1} ms, {:?} statements + {:?} commits per call, {:?} ms db CPU",
                f.per_s, f.p50_ms, f.p99_ms, f.statements, f.commits, f.db_ms
            );
            report.record(backend, s, "buildbot", f);
        }
    }
    Ok(())
}

pub(crate) async fn measure_rest(
    args: &Args,
    client: &reqwest::Client,
    py: &Path,
    db_url: &str,
    scenarios: &[Scenario],
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
        .filter(|s| matches!(s, Scenario::A | Scenario::B | Scenario::C | Scenario::E))
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
    // SIGTERM: master.py stops its `buildbot start` child then (a kill would leave
    // that master running, orphaned, through the rest of the run).
    let mut child = child;
    if let Some(id) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &id.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&basedir);
    Ok(())
}
