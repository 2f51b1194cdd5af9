//! `/metrics` in Prometheus' text format, through the `metrics` facade and its
//! Prometheus exporter (which writes the format). Counters and histograms are
//! recorded where things happen (the door's request line); the pool, socket and
//! subscription gauges are read when scraped.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "bsgql_requests_total";
pub const DURATION: &str = "bsgql_request_duration_seconds";
pub const STATEMENTS: &str = "bsgql_statements_per_request";
pub const SUBSCRIPTIONS_STARTED: &str = "bsgql_subscriptions_started_total";
pub const SUBSCRIPTION_EVENTS: &str = "bsgql_subscription_events_total";
pub const BUILD_INFO: &str = "bsgql_build_info";
pub const READS: &str = "bsgql_reads_total";

/// The process's own figures (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_start_time_seconds`, …), as Prometheus' clients name them.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The process's recorder: one per process (every router of a test binary shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(DURATION.into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(STATEMENTS.into()),
                    &[
                        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 50.0,
                    ],
                )
            });
        match builder.map(|b| b.install_recorder()) {
            Ok(Ok(handle)) => {
                describe();
                handle
            }
            // Another recorder is installed (a test harness): render an empty one.
            _ => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS, "GraphQL operations answered, by operation name, transport and outcome (OK or the first error's code)");
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time to answer a GraphQL operation"
    );
    describe_histogram!(STATEMENTS, "SQL statements one GraphQL operation sent");
    describe_gauge!(
        "bsgql_db_pool_connections",
        "Database connections of the pool: open, idle, in use"
    );
    describe_gauge!(
        "bsgql_db_pool_max_connections",
        "The most connections the pool opens (more callers wait, up to --db-acquire-timeout)"
    );
    describe_gauge!("bsgql_websocket_connections", "WebSocket connections open");
    describe_gauge!("bsgql_subscriptions", "Subscriptions open");
    describe_counter!(
        SUBSCRIPTIONS_STARTED,
        "Subscriptions the door let through (a refused one counts in bsgql_requests_total, with its code)"
    );
    describe_counter!(SUBSCRIPTION_EVENTS, "Subscription events answered");
    describe_counter!(
        READS,
        "Operations that read, by the database they read from: `primary`, or a replica's host:port/database (only with --read-database-url)"
    );
    describe_gauge!(
        "bsgql_replica_up",
        "1 while a replica takes reads: it answers, is a standby and is within --replica-max-lag-ms"
    );
    describe_gauge!(
        "bsgql_replica_lag_seconds",
        Unit::Seconds,
        "How far a replica is behind the primary, told from write-ahead-log positions (NaN: unknown)"
    );
    describe_counter!(
        "bsgql_replica_failovers_total",
        "Reads a replica failed, which the primary then ran"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1: this build's version and the database backend it serves"
    );
    describe_counter!(
        "bsgql_subscription_answers_total",
        "Subscription events answered, by how: computed, or shared with the subscriptions of the same selection"
    );
    describe_counter!(
        "bsgql_db_connections_discarded_total",
        "Database connections closed on release because their transaction state was in doubt"
    );
    process().describe();
}

/// The version and the backend, as a gauge's labels (set once the store is open).
pub fn build_info(backend: &str) {
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "backend" => backend.to_owned())
        .set(1.0);
}

/// A subscription the door let through.
pub fn subscription_started() {
    metrics::counter!(SUBSCRIPTIONS_STARTED).increment(1);
}

/// One event answered for a subscription.
pub fn subscription_event() {
    metrics::counter!(SUBSCRIPTION_EVENTS).increment(1);
}

/// Operation names are the client's to choose: the label keeps the first 100
/// distinct well-formed names and calls the rest `other`, so a client cannot grow
/// the metrics without bound.
fn operation_label(name: Option<&str>) -> String {
    const MAX_NAMES: usize = 100;
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name else {
        return "-".into();
    };
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return "other".into();
    }
    let Ok(mut seen) = SEEN.get_or_init(Default::default).lock() else {
        return "other".into();
    };
    if seen.contains(name) || seen.len() < MAX_NAMES {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".into()
    }
}

/// One finished operation: its count, duration and statements.
pub fn record_request(
    operation: Option<&str>,
    transport: &'static str,
    outcome: &str,
    took: Duration,
    statements: Option<u64>,
) {
    let op = operation_label(operation);
    let labels = [
        ("operation", op.clone()),
        ("transport", transport.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(took.as_secs_f64());
    if let Some(n) = statements {
        metrics::histogram!(STATEMENTS, "operation" => op).record(n as f64);
    }
}

/// What is read at scrape time.
pub struct Gauges {
    pub pool_size: u32,
    pub pool_idle: usize,
    pub pool_max: u32,
    pub websockets: usize,
    pub subscriptions: usize,
    /// With replicas: each one's state, and the operations that read from the primary.
    pub replicas: Option<(Vec<crate::store::replica::ReplicaStatus>, u64)>,
}

/// The text format, with the gauges set from `gauges` first.
pub fn render(gauges: &Gauges) -> String {
    let h = handle();
    let in_use = (gauges.pool_size as usize).saturating_sub(gauges.pool_idle);
    metrics::gauge!("bsgql_db_pool_connections", "state" => "open").set(gauges.pool_size as f64);
    metrics::gauge!("bsgql_db_pool_connections", "state" => "idle").set(gauges.pool_idle as f64);
    metrics::gauge!("bsgql_db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("bsgql_db_pool_max_connections").set(gauges.pool_max as f64);
    metrics::gauge!("bsgql_websocket_connections").set(gauges.websockets as f64);
    metrics::gauge!("bsgql_subscriptions").set(gauges.subscriptions as f64);
    if let Some((replicas, primary_reads)) = &gauges.replicas {
        metrics::counter!(READS, "database" => "primary").absolute(*primary_reads);
        for r in replicas {
            let name = r.name.clone();
            metrics::gauge!("bsgql_replica_up", "replica" => name.clone()).set(if r.up {
                1.0
            } else {
                0.0
            });
            match r.lag {
                Some(lag) => {
                    metrics::gauge!("bsgql_replica_lag_seconds", "replica" => name.clone())
                        .set(lag.as_secs_f64())
                }
                // Unknown (unreachable, not a standby): not a number rather than a guess.
                None => metrics::gauge!("bsgql_replica_lag_seconds", "replica" => name.clone())
                    .set(f64::NAN),
            }
            metrics::counter!("bsgql_replica_failovers_total", "replica" => name.clone())
                .absolute(r.failovers);
            metrics::counter!(READS, "database" => name).absolute(r.reads);
        }
    }
    process().collect();
    h.run_upkeep();
    h.render()
}
