//! This server as the bench runs it: a free port, the process, readiness, and its statement counts from /metrics.

use super::*;

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18_080)
}

pub(crate) async fn wait_ready(
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

/// The sum and count of `bsgql_statements_per_request{operation=op}`.
pub(crate) async fn statements(
    client: &reqwest::Client,
    base: &str,
    op: Scenario,
) -> Option<(f64, f64)> {
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

/// PostGraphile's driver (node-postgres) talks to PostgreSQL without TLS unless
/// told otherwise, while sqlx negotiates TLS whenever the server offers it: on
/// loopback that is only cost, so both systems run without it.
pub(crate) fn without_tls(db_url: &str) -> String {
    if db_url.starts_with("postgres") && !db_url.contains("sslmode=") {
        let sep = if db_url.contains('?') { '&' } else { '?' };
        format!("{db_url}{sep}sslmode=disable")
    } else {
        db_url.to_owned()
    }
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Server {
    pub(crate) async fn start(
        bin: &Path,
        db_url: &str,
        client: &reqwest::Client,
    ) -> Result<Server, String> {
        Server::start_with(bin, db_url, &[], client).await
    }

    /// [`Server::start`] with more arguments (`--read-database-url URL`).
    pub(crate) async fn start_with(
        bin: &Path,
        db_url: &str,
        extra: &[String],
        client: &reqwest::Client,
    ) -> Result<Server, String> {
        let port = free_port();
        let db_url = without_tls(db_url);
        let child = Command::new(bin)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &db_url,
                "--max-complexity",
                "100000",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(client, &format!("{base}/readyz"), "the server", 60).await?;
        Ok(Server { child, base })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
