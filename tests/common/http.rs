//! A real server on an ephemeral port, and a client for it.

use std::net::SocketAddr;

use buildsets_graphql::config::Config;
use buildsets_graphql::http::{router, AppState};
use clap::Parser;
use serde_json::{json, Value};

use super::TestDb;

pub struct Api {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub token: Option<String>,
    pub t: TestDb,
}

/// Starts the server on `t`'s database with extra command-line flags.
pub async fn start(t: TestDb, flags: &[&str]) -> Api {
    // `TEST_LOG=debug cargo test …` shows the server's log.
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let mut args = vec!["buildsets-graphql", "--database-url", &t.url];
    args.extend_from_slice(flags);
    let config = Config::try_parse_from(args).expect("flags");
    let store = buildsets_graphql::store::Store::new(t.db.clone(), t.mode);
    let router = router(AppState::new(&config, store).expect("a usable configuration"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    Api {
        addr,
        client: reqwest::Client::new(),
        token: None,
        t,
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs an operation; returns the whole response body.
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req.send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json body")
    }

    /// Runs an operation that must succeed; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.post(query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "unexpected errors: {body:#}\nquery: {query}"
        );
        body["data"].clone()
    }

    /// Runs an operation that must fail; returns its first error's (code, field).
    pub async fn err(&self, query: &str, variables: Value) -> (String, String) {
        let body = self.post(query, variables).await;
        let e = &body["errors"][0];
        assert!(!e.is_null(), "expected an error: {body:#}\nquery: {query}");
        (
            e["extensions"]["code"].as_str().unwrap_or("").to_owned(),
            e["extensions"]["field"].as_str().unwrap_or("").to_owned(),
        )
    }
}
