//! The PostGraphile baseline: its process on the same database, and its queries for scenarios a-d.

use super::*;

/// PostGraphile serving the seeded PostgreSQL database, read-only.
pub(crate) struct PostGraphile {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) queries: Value,
}

impl PostGraphile {
    pub(crate) async fn start(client: &reqwest::Client, db_url: &str) -> Result<Self, String> {
        let dir = root().join("bench/postgraphile");
        let queries: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("queries.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        // Scenario e's query field, created before PostGraphile builds its schema.
        let function = std::fs::read_to_string(dir.join("recent_buildsets.sql"))
            .map_err(|e| format!("recent_buildsets.sql: {e}"))?;
        psql(db_url.split('?').next().unwrap_or(db_url), &function)?;
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

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub(crate) fn serves(&self, s: Scenario) -> bool {
        s.is_read() && self.queries.get(s.to_string()).is_some()
    }

    /// One scenario, after the warm-up.
    pub(crate) async fn measure(
        &self,
        args: &Args,
        client: &reqwest::Client,
        data: &Arc<Data>,
        s: Scenario,
    ) -> Figures {
        let q = &self.queries[s.to_string()];
        let (query, vars) = (q["query"].clone(), q["variables"].clone());
        let d = data.clone();
        let make = move |n: u64| {
            let mut vars = vars.clone();
            // The same ids and branches as this server's nth request (read_body).
            let mut r = Lcg(n.wrapping_mul(7919) + 13);
            if s == Scenario::A {
                vars["id"] = json!(1 + r.below(d.max_bsid.max(1) as u64) as i64);
            }
            if s == Scenario::E {
                let i = r.below(d.branches.len() as u64) as usize;
                vars["branch"] = json!(d.branches.get(i).cloned().unwrap_or_default());
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
        let split_start = SplitStart::now(pid, &data.db);
        let mut f = drive(client, &self.url, args.seconds, args.connections, make).await;
        f.split = split_start.split(pid);
        f.db_ms = db_ms(&data.db, &f);
        if let (Some(a), Some(b)) = (before, pid.and_then(proc_stats).map(|s| s.0)) {
            if f.units > 0 {
                f.cpu_ms = Some((b - a) * 1000.0 / f.units as f64);
            }
        }
        eprintln!(
            "  postgraphile {s}: {:.1}/s p50 {:.1} ms p99 {:.1} ms, {:?} ms CPU, {:?} ms db CPU, {} errors",
            f.per_s, f.p50_ms, f.p99_ms, f.cpu_ms, f.db_ms, f.errors
        );
        f.print_first_error();
        f
    }
}
