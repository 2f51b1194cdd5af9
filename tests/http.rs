//! HTTP behaviour that does not depend on the SQL backend (run on SQLite): auth,
//! GET rules, playground, health, limits, error codes, and the SDL contract.

mod common;

use common::http::start;
use common::{fresh, Backend};
use serde_json::{json, Value};

async fn api(flags: &[&str]) -> common::http::Api {
    let t = fresh(Backend::Sqlite, "http")
        .await
        .expect("sqlite always runs");
    start(t, flags).await
}

const ENSURE: &str = "mutation { ensureBuilder(name: \"x\") { builderid } }";

#[tokio::test]
async fn write_tokens_guard_mutations_only() {
    let mut api = api(&["--write-token", "old,new"]).await;
    let body = api.post(ENSURE, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(body["data"], Value::Null);
    api.token = Some("wrong".into());
    assert_eq!(api.err(ENSURE, json!({})).await.0, "FORBIDDEN");
    for token in ["old", "new"] {
        api.token = Some(token.into());
        api.ok(ENSURE, json!({})).await;
    }
    api.token = None;
    assert_eq!(
        api.ok("{ builders { name } }", json!({})).await["builders"],
        json!([{"name": "x"}])
    );
}

#[tokio::test]
async fn read_token_guards_everything() {
    let mut api = api(&["--read-token", "r", "--write-token", "w"]).await;
    let resp = api
        .client
        .post(api.url("/graphql"))
        .json(&json!({"query": "{ builders { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    api.token = Some("r".into());
    api.ok("{ builders { name } }", json!({})).await;
    assert_eq!(api.err(ENSURE, json!({})).await.0, "FORBIDDEN");
    api.token = Some("w".into());
    api.ok("{ builders { name } }", json!({})).await;
    api.ok(ENSURE, json!({})).await;
}

#[tokio::test]
async fn get_runs_queries_never_mutations() {
    let api = api(&[]).await;
    let page = api.client.get(api.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
    let q = api
        .client
        .get(api.url("/graphql"))
        .query(&[("query", "{ builders { name } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        q.json::<Value>().await.unwrap(),
        json!({"data": {"builders": []}})
    );
    let m = api
        .client
        .get(api.url("/graphql"))
        .query(&[("query", ENSURE)])
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 405);
    assert_eq!(
        m.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"],
        "BAD_REQUEST"
    );
    assert_eq!(
        api.ok("{ builders { name } }", json!({})).await["builders"],
        json!([])
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let api = api(&[]).await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            api.client.get(api.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn limits_and_client_error_codes() {
    let api = api(&[]).await;
    let big = "x".repeat((1 << 20) + 10);
    let resp = api
        .client
        .post(api.url("/graphql"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"query\": \"{{ builders {{ name }} }}\", \"x\": \"{big}\"}}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let mut deep = "bsid".to_owned();
    for _ in 0..7 {
        deep = format!("buildrequests {{ buildset {{ {deep} }} }}");
    }
    let deep = format!("{{ buildsets {{ nodes {{ {deep} }} }} }}");
    let deep = deep.as_str();
    assert_eq!(api.err(deep, json!({})).await.0, "QUERY_TOO_COMPLEX");
    let wide = "{ buildsets(first: 1000) { nodes { bsid sourcestamps { ssid branch revision repository codebase project createdAt patch { body author comment level subdir patchid } } } edges { node { bsid properties { name value source } buildrequests { buildrequestid builderid bsid priority complete results submittedAt completeAt waitedFor builder { name description builderid } } } } } }";
    assert_eq!(api.err(wide, json!({})).await.0, "QUERY_TOO_COMPLEX");
    assert_eq!(
        api.err("{ nope }", json!({})).await.0,
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(api.err("{ nope", json!({})).await.0, "GRAPHQL_PARSE_FAILED");
    assert_eq!(
        api.err("{ buildsets(first: \"x\") { totalCount } }", json!({}))
            .await,
        ("GRAPHQL_VALIDATION_FAILED".into(), "first".into())
    );
    assert_eq!(
        api.err(
            "query($n: Int) { buildsets(first: $n) { totalCount } }",
            json!({"n": "x"})
        )
        .await,
        ("BAD_USER_INPUT".into(), "first".into())
    );
    assert_eq!(
        api.err(
            "query { buildsets(where: {bsid: {eq: 1}, reason: {contains: 5}}) { totalCount } }",
            json!({})
        )
        .await,
        (
            "GRAPHQL_VALIDATION_FAILED".into(),
            "where.reason.contains".into()
        )
    );
}

#[tokio::test]
async fn bad_times_name_their_field() {
    let api = api(&[]).await;
    let q =
        "query($t: DateTime) { buildsets(where: {or: [{submittedAt: {gt: $t}}]}) { totalCount } }";
    assert_eq!(
        api.err(q, json!({"t": "soon"})).await,
        ("BAD_USER_INPUT".into(), "where.submittedAt".into())
    );
    let q = "query($t: DateTime) { buildsets(where: {completeAt: {in: [$t]}}) { totalCount } }";
    assert_eq!(
        api.err(q, json!({"t": "2024-13-01T00:00:00Z"})).await,
        ("BAD_USER_INPUT".into(), "where.completeAt".into())
    );
    // Any offset is accepted and shown in UTC.
    let q = "query($t: DateTime) { buildsets(where: {submittedAt: {lt: $t}}) { totalCount } }";
    assert_eq!(
        api.ok(q, json!({"t": "2024-01-02T03:04:05+05:30"})).await["buildsets"]["totalCount"],
        json!(0)
    );
}

#[test]
fn exposure_needs_a_token() {
    use buildsets_graphql::config::Config;
    use buildsets_graphql::listen::check_config;
    use clap::Parser;
    let parse = |args: &[&str]| Config::try_parse_from([&["x"], args].concat()).unwrap();
    assert!(check_config(&parse(&["--listen", "0.0.0.0:8080"])).is_err());
    assert!(check_config(&parse(&["--listen", "0.0.0.0:8080", "--write-token", "t"])).is_ok());
    assert!(check_config(&parse(&[
        "--listen",
        "0.0.0.0:8080",
        "--allow-anonymous-writes"
    ]))
    .is_ok());
    assert!(check_config(&parse(&["--listen", "127.0.0.1:8080"])).is_ok());
}

/// `schema.graphql` is the contract: it must equal what the server serves.
/// `UPDATE_SCHEMA=1 cargo test --test http schema_file` rewrites it.
#[test]
fn schema_file_matches_served_sdl() {
    let served = buildsets_graphql::graphql::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(committed == served, "schema.graphql differs from the served SDL; run UPDATE_SCHEMA=1 cargo test --test http schema_file");
}

/// Collects log output, to check what the server logs next to what it answers.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn internal_errors_hide_details_and_carry_a_logged_request_id() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = api(&[]).await;
    use sea_orm::ConnectionTrait;
    api.t
        .db
        .execute_unprepared("DROP TABLE buildset_properties")
        .await
        .unwrap();
    let body = api
        .post("{ buildsetProperties(bsid: 1) { name } }", json!({}))
        .await;
    let err = &body["errors"][0];
    assert_eq!(err["extensions"]["code"], "INTERNAL_SERVER_ERROR");
    let id = err["extensions"]["requestId"]
        .as_str()
        .expect("a request id")
        .to_owned();
    let message = err["message"].as_str().unwrap();
    assert!(message.contains(&id), "{message}");
    for secret in ["buildset_properties", "table", "SELECT", "sqlite"] {
        assert!(
            !message.contains(secret),
            "the message leaks {secret}: {message}"
        );
    }
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("no log line with {id}:\n{logged}"));
    assert!(
        line.contains("no such table"),
        "the log keeps the detail: {line}"
    );
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let api = api(&["--cors-origin", "https://ui.example"]).await;
    let preflight = |origin: &'static str| {
        api.client
            .request(reqwest::Method::OPTIONS, api.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let ok = preflight("https://ui.example").await.unwrap();
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://ui.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
