//! The data: seeding through Buildbot's connector (bench/buildbot/seed.py) or this server's API, reading back what the scenarios need, and fresh PostgreSQL databases.

use super::*;

/// What the seeded database holds, as this server reads it.
pub(crate) struct Data {
    /// `sqlite`, `postgres` or `mariadb`.
    pub(crate) backend: &'static str,
    /// The database server's processes, sampled for its CPU.
    pub(crate) db: DbProcs,
    pub(crate) max_bsid: i64,
    pub(crate) branches: Vec<String>,
    pub(crate) builders: Vec<i64>,
    /// Sourcestamps of the 200 oldest buildsets (h adds buildsets on them).
    pub(crate) ssids: Vec<i64>,
    pub(crate) incomplete: Vec<i64>,
}

pub(crate) async fn gql(
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

pub(crate) async fn read_data(
    client: &reqwest::Client,
    url: &str,
    backend: &'static str,
    db: DbProcs,
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
        "{ buildsets(first: 200) { nodes { sourcestamps { ssid branch } } } }",
        json!({}),
    )
    .await?;
    let stamps: Vec<Value> = d["buildsets"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["sourcestamps"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut branches: Vec<String> = stamps
        .iter()
        .filter_map(|s| s["branch"].as_str().map(str::to_owned))
        .collect();
    let mut ssids: Vec<i64> = stamps.iter().filter_map(|s| s["ssid"].as_i64()).collect();
    ssids.sort_unstable();
    ssids.dedup();
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
        backend,
        db,
        max_bsid,
        branches,
        builders,
        ssids,
        incomplete,
    })
}

/// Seeds through the server's own addBuildset (when Buildbot is not at hand).
pub(crate) async fn seed_through_api(
    client: &reqwest::Client,
    url: &str,
    count: u32,
) -> Result<(), String> {
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

/// What `py args…` printed, once it exited well (its stderr goes to ours).
fn python_stdout(py: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(py)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("{args:?} failed: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last JSON object a script printed.
pub(crate) fn python_json(py: &Path, args: &[&str]) -> Result<Value, String> {
    let text = python_stdout(py, args)?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("{}");
    serde_json::from_str(line).map_err(|e| format!("{args:?}: {e}: {line}"))
}

/// Every JSON line a script printed.
pub(crate) fn python_lines(py: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    Ok(python_stdout(py, args)?
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect())
}

/// A fresh PostgreSQL database next to `base`, named after it (so that whoever
/// cleans up databases by that prefix cleans this one too); its URL and name.
pub(crate) async fn fresh_postgres(base: &str) -> Result<(String, String), String> {
    let (server, base_name) = base.rsplit_once('/').ok_or("a URL with a database name")?;
    let base_name = base_name.split('?').next().unwrap_or(base_name);
    let name = format!("{base_name}_bench_{}_{}", std::process::id(), free_port());
    psql(base, &format!("CREATE DATABASE \"{name}\""))?;
    Ok((format!("{server}/{name}"), name))
}

/// A fresh MariaDB database next to `base` (`mysql://USER[:PASSWORD]@HOST[:PORT][/NAME]`),
/// named after it as `fresh_postgres` names its; its URL and name.
pub(crate) fn fresh_mysql(base: &str) -> Result<(String, String), String> {
    let rest = base
        .strip_prefix("mysql://")
        .ok_or("a mysql:// URL for MariaDB")?;
    let (server, base_name) = rest.split_once('/').unwrap_or((rest, ""));
    let base_name = base_name.split('?').next().unwrap_or("");
    let base_name = if base_name.is_empty() {
        "bench"
    } else {
        base_name
    };
    let name = format!("{base_name}_bench_{}_{}", std::process::id(), free_port());
    mysql_cli(base, &format!("CREATE DATABASE `{name}`"))?;
    Ok((format!("mysql://{server}/{name}"), name))
}

/// Runs `sql` with the `mysql` client on the server of `url`.
pub(crate) fn mysql_cli(url: &str, sql: &str) -> Result<(), String> {
    let rest = url.strip_prefix("mysql://").unwrap_or(url);
    let server = rest.split('/').next().unwrap_or(rest);
    let (user, host) = server.rsplit_once('@').unwrap_or(("root", server));
    let (user, password) = user.split_once(':').unwrap_or((user, ""));
    let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
    let mut cmd = std::process::Command::new("mysql");
    cmd.args(["-h", host, "-P", port, "-u", user, "-e", sql]);
    if !password.is_empty() {
        cmd.env("MYSQL_PWD", password);
    }
    let status = cmd.status().map_err(|e| format!("mysql: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("mysql: {sql} failed"))
    }
}

/// The first value `sql` returns.
pub(crate) fn psql_value(url: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql: {sql} failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A PostgreSQL database's processes: its cluster's (found by the data directory
/// it reports) less other databases' backends; else every process called `postgres`.
pub(crate) fn postgres_procs(url: &str) -> DbProcs {
    let url = url.split('?').next().unwrap_or(url);
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    match psql_value(url, "SHOW data_directory")
        .ok()
        .and_then(|dir| DbProcs::postmaster_of(Path::new(&dir)))
    {
        Some(DbProcs::Postmaster(postmaster)) => DbProcs::Database { postmaster, name },
        _ => DbProcs::Named("postgres"),
    }
}

/// The processes whose CPU is the database's for `backend`.
pub(crate) fn db_procs(backend: &str, url: &str) -> DbProcs {
    match backend {
        "postgres" => postgres_procs(url),
        "mariadb" => {
            let named = |n: &'static str| DbProcs::Named(n);
            if named("mariadbd").cpu() > 0.0 {
                named("mariadbd")
            } else {
                named("mysqld")
            }
        }
        _ => DbProcs::None,
    }
}

pub(crate) fn psql(url: &str, sql: &str) -> Result<(), String> {
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
