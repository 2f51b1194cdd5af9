//! `--scale-out`: a PostgreSQL primary and a streaming replica (`.ci/pg-pair`), the
//! same data, and what the primary pays per request with one server on it alone
//! against two servers that send their reads to the replica
//! (`--read-database-url`). Each cluster's CPU is sampled by its postmaster (the
//! replica's processes are also called `postgres`).

use super::*;

/// One setup's measurement of one workload.
#[derive(Clone, Debug)]
pub(crate) struct ScaleRow {
    pub(crate) setup: String,
    /// `b`, `c` or `c+f`.
    pub(crate) workload: String,
    /// Whether the workload only reads.
    pub(crate) reads_only: bool,
    /// Whether the servers read from the replica.
    pub(crate) replica_reads: bool,
    pub(crate) f: Figures,
    pub(crate) primary_ms: f64,
    pub(crate) replica_ms: f64,
    pub(crate) servers_ms: f64,
}

/// The pair of clusters; `.ci/pg-pair down` when dropped.
struct Pair {
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::process::Command::new(root().join(".ci/pg-pair"))
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}

/// Whether this server binary has `--read-database-url`.
fn has_read_url(bin: &Path) -> bool {
    std::process::Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--read-database-url"))
}

/// Waits until the replica has replayed everything the primary has written.
async fn caught_up(primary: &str, replica: &str) -> Result<(), String> {
    let lsn = psql_value(primary, "SELECT pg_current_wal_lsn()")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        if psql_value(replica, &sql)? == "t" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the replica did not reach {lsn} in 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn scale_out(
    args: &Args,
    client: &reqwest::Client,
    bin: &Path,
    python: Option<&Path>,
    report: &mut Report,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("bench-pair-{}", std::process::id()));
    let (pport, rport) = (free_port(), free_port());
    let status = std::process::Command::new(root().join(".ci/pg-pair"))
        .arg("up")
        .arg(&dir)
        .args([pport.to_string(), rport.to_string()])
        .status()
        .map_err(|e| format!(".ci/pg-pair: {e}"))?;
    let pair = Pair { dir: dir.clone() };
    if !status.success() {
        return Err(format!(".ci/pg-pair up failed: {status}"));
    }
    let name = "bench_scale_out";
    psql(
        &format!("postgres://postgres@127.0.0.1:{pport}/postgres"),
        &format!("CREATE DATABASE {name}"),
    )?;
    let primary_url = format!("postgres://postgres@127.0.0.1:{pport}/{name}");
    let replica_url = format!("postgres://postgres@127.0.0.1:{rport}/{name}");
    let primary = DbProcs::postmaster_of(&pair.dir.join("primary")).ok_or("no primary pid")?;
    let replica = DbProcs::postmaster_of(&pair.dir.join("replica")).ok_or("no replica pid")?;
    let seeder = root().join("bench/buildbot/seed.py");
    let through_buildbot = !args.seed_through_api && python.is_some() && seeder.exists();
    if let Some(py) = python.filter(|_| through_buildbot) {
        let v = python_json(
            py,
            &[
                &seeder.to_string_lossy(),
                &primary_url,
                "--count",
                &args.count.to_string(),
            ],
        )?;
        eprintln!("scale-out: seeded the primary through Buildbot's connector: {v}");
    } else {
        let server = Server::start(bin, &primary_url, client).await?;
        seed_through_api(client, &format!("{}/graphql", server.base), args.count).await?;
        eprintln!("scale-out: seeded the primary through addBuildset");
    }
    psql(&primary_url, "ANALYZE")?;
    caught_up(&primary_url, &replica_url).await?;
    let split = has_read_url(bin);
    let mut setups: Vec<(String, Vec<Server>, bool)> = Vec::new();
    setups.push((
        "(i) one server, primary alone".into(),
        vec![Server::start(bin, &primary_url, client).await?],
        false,
    ));
    let mut two = Vec::new();
    let extra = if split {
        vec!["--read-database-url".to_owned(), without_tls(&replica_url)]
    } else {
        Vec::new()
    };
    for _ in 0..2 {
        two.push(Server::start_with(bin, &primary_url, &extra, client).await?);
    }
    setups.push((
        if split {
            "(ii) two servers, reads on the replica".into()
        } else {
            "(ii') two servers, both on the primary (this build has no --read-database-url)".into()
        },
        two,
        split,
    ));
    if !split {
        report.notes.push(
            "scale-out: the server has no --read-database-url: (ii) ran two servers on the primary alone".into(),
        );
    }
    let data = Arc::new(
        read_data(
            client,
            &format!("{}/graphql", setups[0].1[0].base),
            "postgres",
            primary.clone(),
        )
        .await?,
    );
    for (setup, servers, replica_reads) in &setups {
        let urls: Vec<String> = servers
            .iter()
            .map(|s| format!("{}/graphql", s.base))
            .collect();
        for workload in ["b", "c", "c+f"] {
            let make = workload_maker(workload, &data);
            if args.warmup > 0 {
                drive_split(client, &urls, args.warmup, args.connections, make.clone()).await;
            }
            let servers0: f64 = servers
                .iter()
                .filter_map(|s| s.pid().and_then(proc_stats).map(|t| t.0))
                .sum();
            let (p0, r0) = (primary.cpu(), replica.cpu());
            let f = drive_split(client, &urls, args.seconds, args.connections, make).await;
            let (p1, r1) = (primary.cpu(), replica.cpu());
            let servers1: f64 = servers
                .iter()
                .filter_map(|s| s.pid().and_then(proc_stats).map(|t| t.0))
                .sum();
            let per = |s: f64| s * 1000.0 / f.units.max(1) as f64;
            let row = ScaleRow {
                setup: setup.clone(),
                workload: workload.into(),
                reads_only: workload != "c+f",
                replica_reads: *replica_reads,
                primary_ms: per(p1 - p0),
                replica_ms: per(r1 - r0),
                servers_ms: per(servers1 - servers0),
                f,
            };
            eprintln!(
                "scale-out {setup} {workload}: {:.1}/s p99 {:.2} ms, CPU ms/req: primary {:.3}, replica {:.3}, servers {:.3}, {} errors",
                row.f.per_s, row.f.p99_ms, row.primary_ms, row.replica_ms, row.servers_ms, row.f.errors
            );
            row.f.print_first_error();
            report.scale_out.push(row);
        }
    }
    drop(setups);
    drop(pair);
    Ok(())
}

/// The requests of a scale-out workload: b, c, or c with one addBuildset in four.
fn workload_maker(
    workload: &str,
    data: &Arc<Data>,
) -> Arc<impl Fn(u64) -> Option<Value> + Send + Sync + 'static> {
    let d = data.clone();
    let (b, c, f) = (
        our_query(Scenario::B),
        our_query(Scenario::C),
        our_query(Scenario::F),
    );
    let workload = workload.to_owned();
    Arc::new(move |n: u64| match workload.as_str() {
        "b" => Some(read_body(&b, Scenario::B, &d, n)),
        "c+f" if n % 4 == 3 => {
            let two: Vec<i64> = d.builders.iter().take(2).copied().collect();
            Some(
                json!({"query": f, "operationName": "f", "variables": {"in": {
                    "reason": "bench scale-out write",
                    "sourcestamps": [{"stamp": {"branch": format!("scale-{}-{n}", std::process::id()), "repository": "https://example.org/w.git", "revision": format!("{:040x}", Lcg(n + 1).next())}}],
                    "builderids": two,
                    "properties": [{"name": "a", "value": 1, "source": "bench"}],
                }}}),
            )
        }
        _ => Some(read_body(&c, Scenario::C, &d, n)),
    })
}
