//! The load driver: concurrent clients over one scenario, the figures they give (rate, percentiles, errors), and the deterministic numbers behind the requests.

use super::*;

/// One scenario's measurement.
#[derive(Clone, Debug, Default)]
pub(crate) struct Figures {
    pub(crate) units: u64,
    pub(crate) errors: u64,
    /// The first failed answer (or transport error), cut short, so that a run with
    /// errors says what they were.
    pub(crate) first_error: Option<String>,
    pub(crate) per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) statements: Option<f64>,
    /// Transactions committed per call (Buildbot's connector).
    pub(crate) commits: Option<f64>,
    pub(crate) cpu_ms: Option<f64>,
    /// The database's CPU per request (PostgreSQL's cluster, MariaDB's process).
    pub(crate) db_ms: Option<f64>,
    pub(crate) requests_per_unit: Option<f64>,
    pub(crate) split: Option<Split>,
    /// A baseline's rounds: this server's req/s over the baseline's in each round,
    /// both measured back to back.
    pub(crate) paired: Vec<f64>,
}

impl Figures {
    pub(crate) fn print_first_error(&self) {
        if let Some(why) = &self.first_error {
            eprintln!("    first error: {why}");
        }
    }
}

/// The database's CPU milliseconds per unit of a measurement whose split was taken.
pub(crate) fn db_ms(db: &DbProcs, f: &Figures) -> Option<f64> {
    let split = f.split.as_ref().filter(|_| db.is_some() && f.units > 0)?;
    Some(split.database_s * 1000.0 / f.units as f64)
}

/// A small deterministic generator (no dependency for what a benchmark needs).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `connections` clients for `seconds`, each sending what `make` builds and
/// checking the answer has no GraphQL errors.
pub(crate) async fn drive<F>(
    client: &reqwest::Client,
    url: &str,
    seconds: u64,
    connections: usize,
    make: Arc<F>,
) -> Figures
where
    F: Fn(u64) -> Option<Value> + Send + Sync + 'static,
{
    drive_split(client, &[url.to_owned()], seconds, connections, make).await
}

/// [`drive`] over several servers: client `i` sends to `urls[i % urls.len()]`, so
/// the connections are split evenly among them.
pub(crate) async fn drive_split<F>(
    client: &reqwest::Client,
    urls: &[String],
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
    for i in 0..connections {
        let url = urls[i % urls.len().max(1)].clone();
        let (client, make) = (client.clone(), make.clone());
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
pub(crate) struct Answer {
    pub(crate) data: Option<serde::de::IgnoredAny>,
    pub(crate) errors: Option<serde::de::IgnoredAny>,
}
