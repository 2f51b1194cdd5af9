//! The binary itself: subcommands, start-up refusal, serving, and a clean exit on
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_buildsets-graphql");

fn temp_db(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("bsgql-cli-{name}-"))
        .tempdir()
        .expect("temp dir");
    let url = format!("sqlite://{}/cli.db?mode=rwc", dir.path().display());
    (dir, url)
}

#[test]
fn schema_subcommand_prints_the_served_sdl() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        buildsets_graphql::graphql::sdl()
    );
}

#[test]
fn migrate_creates_the_tables_and_is_repeatable() {
    let (dir, url) = temp_db("migrate");
    for round in 0..2 {
        let out = Command::new(BIN)
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        // Creating tables is said, once: a mistyped URL is not filled silently.
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).contains("creating this server's tables"),
            round == 0
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Said through the logger (stderr), as every line is.
        assert!(String::from_utf8_lossy(&out.stderr).contains("database ready"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Standalone"));
    }
    assert!(dir.path().join("cli.db").exists());
}

#[test]
fn refuses_open_writes_beyond_loopback() {
    let (_dir, url) = temp_db("refuse");
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0", "--database-url", &url])
        .env_remove("WRITE_TOKEN")
        .env_remove("ALLOW_ANONYMOUS_WRITES")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--write-token"));
}

#[tokio::test]
async fn serves_then_exits_cleanly_on_sigterm() {
    let (_dir, url) = temp_db("serve");
    let (mut child, endpoint) = spawn_server(&url).await;
    let client = reqwest::Client::new();
    let health = client
        .get(endpoint.replace("/graphql", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = client
        .post(&endpoint)
        .json(&serde_json::json!({"query": "mutation { ensureBuilder(name: \"cli\") { name } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["ensureBuilder"]["name"], "cli");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = wait_for_exit(&mut child).await;
    assert!(exited.success(), "exit status {exited:?}");
}

/// Waits up to 5 s for the server to exit (and kills it if it does not).
async fn wait_for_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("still running 5 s after SIGTERM and its last request")
}

/// Starts the binary on `url`; returns the child and its GraphQL endpoint.
async fn spawn_server(url: &str) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--database-url", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // The start-up line goes through the logger, on stderr; the rest of the log is
    // drained so that the server never blocks on a full pipe.
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 || line.contains("the playground is at") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line
    })
    .await
    .unwrap();
    let start = line.find("http://").expect("the playground URL is printed");
    (
        child,
        line[start..].split_whitespace().next().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_mutation_finish() {
    let (_dir, url) = temp_db("drain");
    let (mut child, endpoint) = spawn_server(&url).await;
    let client = reqwest::Client::new();
    let post = |query: String| {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        async move {
            client
                .post(&endpoint)
                .json(&serde_json::json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    post("mutation { ensureBuilder(name: \"d\") { builderid } }".into()).await;

    // Hold SQLite's write lock so that the next mutation waits inside the server. A
    // transaction object, not a bare BEGIN: a pooled connection handed back inside
    // a transaction is closed (its state is in doubt), which would end the lock.
    let locker = buildsets_graphql::store::connect_with(&url, |o| {
        o.max_connections(1);
    })
    .await
    .unwrap();
    use sea_orm::TransactionTrait;
    let lock = locker
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .unwrap();
    let add = tokio::spawn(post(
        "mutation { addBuildset(input: {sourcestamps: [{stamp: {}}], reason: \"late\", builderids: [1]}) { bsid } }".into(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server waits for the request in flight"
    );
    lock.commit().await.unwrap();

    let body = add.await.unwrap();
    assert_eq!(body["data"]["addBuildset"]["bsid"], 1, "{body}");
    let exited = wait_for_exit(&mut child).await;
    assert!(exited.success(), "exit status {exited:?}");
}
