//! What operators and load balancers call: readiness, metrics, and the answers for
//! what is not served.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::reply::{refuse_json, reply, Media};
use super::{AppState, Caller};
use crate::error::Code;

/// Prometheus' text format; behind the read token when one is set.
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Response {
    if let Err(refusal) = state.door.admit(&caller) {
        return reply(refusal.answer(), Media::Json);
    }
    let (pool_size, pool_idle, pool_max) = state.store.pool_stats();
    let gauges = crate::metrics::Gauges {
        pool_size,
        pool_idle,
        pool_max,
        websockets: state.sockets.open(),
        subscriptions: state.hub.subscriptions(),
        replicas: state
            .store
            .replicas()
            .map(|r| (r.statuses(), state.store.primary_reads())),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&gauges),
    )
        .into_response()
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.writes_failing() {
        tracing::warn!("not ready: writes are failing for want of storage");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::RETRY_AFTER,
                crate::error::STORAGE_RETRY_AFTER_SECS.to_string(),
            )],
            "writes are failing: the database is out of storage or has an I/O error\n",
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, ready_text(&state)).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

/// `ready`, then with replicas a line for each: in (and its lag) or out (and why).
/// A replica out is no reason to be unready: the primary takes its reads.
fn ready_text(state: &AppState) -> String {
    let mut text = String::from("ready\n");
    let Some(replicas) = state.store.replicas() else {
        return text;
    };
    let statuses = replicas.statuses();
    for r in &statuses {
        let lag = r
            .lag
            .map(|l| format!("lag {} ms", l.as_millis()))
            .unwrap_or_else(|| "lag unknown".into());
        match &r.out {
            None => text.push_str(&format!("replica {}: in, {lag}\n", r.name)),
            Some(why) => text.push_str(&format!("replica {}: out, {why}\n", r.name)),
        }
    }
    if statuses.iter().all(|r| !r.up) {
        text.push_str("reads: the primary (no replica is in)\n");
    }
    text
}

/// 405, with the methods the path takes in `Allow`.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let allow = if uri.path() == "/graphql" {
        "GET, POST"
    } else {
        "GET"
    };
    let what = match uri.path() {
        "/graphql" => "POST an operation, or GET the playground",
        "/" => "GET the board; operations go to /graphql",
        _ => "GET it",
    };
    let mut response = refuse_json(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadRequest,
        format!("{method} is not served here: {what}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub async fn not_found(uri: Uri) -> Response {
    refuse_json(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        format!(
            "nothing is served at {}: the board is at /, the API at /graphql",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}
