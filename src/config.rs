//! The command line: every option has a flag and an environment variable.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

mod limits;
mod values;

pub use limits::{Limits, DEFAULTS as DEFAULT_LIMITS, MAX_PAGE_CEILING};
use values::{parse_database_url, parse_listen};

/// A GraphQL API for Buildbot buildsets, on Buildbot's own database schema.
#[derive(Parser, Debug)]
#[command(name = "buildsets-graphql", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve the API (the default): migrate a standalone database, then listen.
    Serve,
    /// Apply the migrations to the database and exit (never on a Buildbot database).
    Migrate,
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
}

#[derive(Parser, Debug, Clone)]
pub struct Config {
    /// Address to listen on: HOST:PORT, the host an IP address or a name that resolves
    /// (`localhost:8080`).
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen, global = true)]
    pub listen: SocketAddr,

    /// Database: sqlite://PATH?mode=rwc, postgres://USER@HOST/DB or mysql://USER@HOST/DB.
    /// A database that Buildbot created (it has `alembic_version`) is used as is, with no DDL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://buildsets.db?mode=rwc",
        value_parser = parse_database_url,
        global = true
    )]
    pub database_url: String,

    /// A PostgreSQL streaming replica of the database to send reads to (repeatable,
    /// or comma-separated): queries and subscription loads go to a replica that is
    /// up and within --replica-max-lag-ms; mutations, their answers and reads that
    /// ask for the primary (`X-Read-From: primary`) use --database-url.
    #[arg(
        long = "read-database-url",
        env = "READ_DATABASE_URLS",
        value_delimiter = ',',
        value_parser = parse_database_url,
        global = true
    )]
    pub read_database_urls: Vec<String>,

    /// Milliseconds a replica may fall behind the primary before its reads go to
    /// another replica or the primary (it is back in once it catches up).
    #[arg(long, env = "REPLICA_MAX_LAG_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=3_600_000), global = true)]
    pub replica_max_lag_ms: u64,

    /// Bearer token that allows mutations; repeat the flag or separate with commas to
    /// accept several (for rotation). Without any, writes are open (loopback only,
    /// unless --allow-anonymous-writes).
    #[arg(
        long = "write-token",
        env = "WRITE_TOKEN",
        value_delimiter = ',',
        global = true
    )]
    pub write_tokens: Vec<String>,

    /// File of write tokens, one per line (blank lines and `#` comments skipped): keeps
    /// them out of process listings and environment dumps. Adds to --write-token.
    #[arg(long, env = "WRITE_TOKEN_FILE", global = true)]
    pub write_token_file: Option<std::path::PathBuf>,

    /// Bearer token required for reads too (a write token is also accepted).
    #[arg(long, env = "READ_TOKEN", global = true)]
    pub read_token: Option<String>,

    /// File holding the read token (its first line that is not blank or a `#`
    /// comment); instead of --read-token.
    #[arg(long, env = "READ_TOKEN_FILE", global = true)]
    pub read_token_file: Option<std::path::PathBuf>,

    /// Allow writes without a token on a non-loopback address.
    #[arg(long, env = "ALLOW_ANONYMOUS_WRITES", global = true)]
    pub allow_anonymous_writes: bool,

    /// Origin allowed to call the API from a browser (repeatable, or comma-separated),
    /// written as the browser sends it: `https://ui.example.org` or
    /// `http://localhost:3000`, no path and no trailing slash. `*` allows every
    /// origin (no credentials). WebSocket upgrades from other origins are refused.
    #[arg(
        long = "cors-origin",
        env = "CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Host name requests may carry in `Host` besides IP literals, `localhost`,
    /// `*.localhost` and this machine's name (repeatable, or comma-separated):
    /// `api.example.org`, or `.example.org` for it and every name under it; `*` turns
    /// the check off (behind a proxy that checks Host itself). Other names are refused
    /// (403): a DNS rebinding would otherwise let any web page reach this server.
    #[arg(
        long = "allowed-host",
        env = "ALLOWED_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_hosts: Vec<String>,

    /// Run only the operations listed in this file (repeatable): Apollo's persisted
    /// query manifest or Relay's `persisted_queries.json`. A listed document runs by
    /// its id (`extensions.persistedQuery.sha256Hash`, or `documentId`) or by its exact
    /// text; anything else is refused (PERSISTED_QUERY_NOT_IN_LIST), except
    /// introspection. The recommended production setting.
    #[arg(
        long = "trusted-documents",
        env = "TRUSTED_DOCUMENTS",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_documents: Vec<std::path::PathBuf>,

    /// Bytes of automatic persisted queries (Apollo's protocol) kept, least recently
    /// used dropped first; 0 turns them off. Off with --trusted-documents.
    #[arg(long, env = "PERSISTED_QUERIES_BYTES", default_value_t = 8 << 20, value_parser = clap::value_parser!(u64).range(0..=1 << 32), global = true)]
    pub persisted_queries_bytes: u64,

    /// Log format on stderr: `text` (for people) or `json` (one object a line).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub limits: Limits,

    /// Seconds a client has to send a request's headers, and then its body; a slow
    /// client is cut off after that.
    #[arg(long, env = "CLIENT_TIMEOUT", default_value_t = 10, global = true)]
    pub client_timeout: u64,

    /// Most connections open at once; more are closed on accept.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, global = true)]
    pub max_connections: usize,

    /// Seconds that in-flight requests get to finish after SIGTERM; then the
    /// server exits anyway.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value_t = 10, global = true)]
    pub shutdown_timeout: u64,

    /// Seconds to open a database connection before giving up (the database is down
    /// or unreachable).
    #[arg(long, env = "DB_CONNECT_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub db_connect_timeout: u64,

    /// Seconds a request waits for a free database connection before it fails with
    /// UNAVAILABLE.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub db_acquire_timeout: u64,

    /// Seconds one SQL statement may run (PostgreSQL's statement_timeout, set on
    /// every connection); 0: no limit.
    #[arg(long, env = "STATEMENT_TIMEOUT", default_value_t = 10, global = true)]
    pub statement_timeout: u64,

    /// Seconds an operation may take in all before it is abandoned with UNAVAILABLE
    /// (its statements are cancelled, its transaction rolled back); 0: no limit.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value_t = 15, global = true)]
    pub request_timeout: u64,

    /// Milliseconds between two polls of the database for added and completed
    /// buildsets (subscriptions). This server's own writes, and on PostgreSQL every
    /// server's, are seen at once; the poll catches the rest (Buildbot, plain SQL).
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000), global = true)]
    pub poll_interval_ms: u64,

    /// Seconds for which an id skipped over (a transaction not yet committed) and a
    /// completion are looked for again, so that late commits still give events.
    #[arg(long, env = "EVENT_WINDOW", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub event_window: u64,

    /// Events a subscription may have waiting unread; a connection whose subscription
    /// overflows this is closed (1008), so that it slows no one else.
    #[arg(long, env = "SUBSCRIPTION_BUFFER", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub subscription_buffer: u64,

    /// Subscriptions the whole server holds at once; one more is UNAVAILABLE.
    #[arg(long, env = "MAX_SUBSCRIPTIONS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub max_subscriptions: u64,

    /// Bytes the open subscriptions' parsed documents may hold in all (weighed as the
    /// parse cache weighs them); one more is UNAVAILABLE.
    #[arg(long, env = "MAX_SUBSCRIPTION_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1 << 16..=1 << 34), global = true)]
    pub max_subscription_bytes: u64,

    /// Subscriptions one WebSocket connection may hold at once.
    #[arg(
        long,
        env = "MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 100,
        global = true
    )]
    pub max_subscriptions_per_connection: usize,

    /// WebSocket connections open at once; more are refused with HTTP 503.
    #[arg(long, env = "MAX_WEBSOCKETS", default_value_t = 1000, global = true)]
    pub max_websockets: usize,

    /// Seconds between keep-alive pings on a WebSocket (0: none). A peer that answers
    /// nothing for three intervals is disconnected.
    #[arg(long, env = "WS_KEEPALIVE", default_value_t = 15, global = true)]
    pub ws_keepalive: u64,
}

impl Config {
    /// How long the store waits on the database.
    pub fn timeouts(&self) -> crate::store::Timeouts {
        use std::time::Duration;
        crate::store::Timeouts {
            connect: Duration::from_secs(self.db_connect_timeout),
            acquire: Duration::from_secs(self.db_acquire_timeout),
            statement: (self.statement_timeout > 0)
                .then(|| Duration::from_secs(self.statement_timeout)),
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The tokens the server accepts, from the flags and the token files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub read: Option<String>,
    pub write: Vec<String>,
}

fn token_lines(path: &std::path::Path, flag: &str) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Which browser origins may call the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origins {
    Any,
    List(Vec<String>),
}

impl Config {
    /// The read and write tokens, checked: an empty token is refused (nobody could
    /// present it, and it would pass for "a token is set").
    pub fn tokens(&self) -> Result<Tokens, String> {
        let mut write = self.write_tokens.clone();
        if let Some(path) = &self.write_token_file {
            let found = token_lines(path, "--write-token-file")?;
            if found.is_empty() {
                return Err(format!(
                    "--write-token-file {} holds no token",
                    path.display()
                ));
            }
            write.extend(found);
        }
        if write.iter().any(|t| t.trim().is_empty()) {
            return Err(
                "an empty --write-token is not a token: give one, or none for open writes".into(),
            );
        }
        let read = match (&self.read_token, &self.read_token_file) {
            (Some(_), Some(_)) => {
                return Err("give --read-token or --read-token-file, not both".into())
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(path)) => Some(
                token_lines(path, "--read-token-file")?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        format!("--read-token-file {} holds no token", path.display())
                    })?,
            ),
            (None, None) => None,
        };
        if read.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err("an empty --read-token is not a token".into());
        }
        Ok(Tokens { read, write })
    }

    /// The `--cors-origin` values, checked: each must be an origin exactly as a
    /// browser sends it, so that none can silently never match.
    pub fn origins(&self) -> Result<Origins, String> {
        if self.cors_origins.iter().any(|o| o.trim() == "*") {
            if self.cors_origins.len() > 1 {
                return Err("--cors-origin '*' allows every origin; give it alone".into());
            }
            return Ok(Origins::Any);
        }
        self.cors_origins
            .iter()
            .map(|o| check_origin(o.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Origins::List)
    }
}

/// An origin exactly as a browser sends it in `Origin` (the `url` crate's ASCII
/// serialisation of a URL's origin); anything else would never match.
fn check_origin(origin: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "--cors-origin {origin:?} is not an origin ({why}); write it as the browser sends it, like https://ui.example.org or http://localhost:3000"
        ))
    };
    if !origin.is_ascii() {
        return bad("browsers send the host in ASCII: use its punycode (xn--) form");
    }
    let url = match url::Url::parse(origin) {
        Ok(u) => u,
        Err(e) => return bad(&e.to_string()),
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return bad("the scheme must be http or https");
    }
    let sent = url.origin().ascii_serialization();
    let given = origin.to_ascii_lowercase();
    if given != sent {
        let why = if given.starts_with(&sent) && given.len() == sent.len() + 1 {
            "a trailing slash never matches".to_owned()
        } else {
            format!("a browser would send {sent}: no path, query, user or default port")
        };
        return bad(&why);
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Result<Origins, String> {
        let mut args = vec!["x"];
        for o in list {
            args.extend(["--cors-origin", o]);
        }
        Cli::try_parse_from(args).expect("parses").config.origins()
    }

    #[test]
    fn origins_are_checked() {
        assert_eq!(origins(&[]), Ok(Origins::List(vec![])));
        assert_eq!(origins(&["*"]), Ok(Origins::Any));
        assert_eq!(
            origins(&[
                "https://UI.example.org",
                "http://localhost:3000",
                "http://[::1]:8080",
                "http://[::1]"
            ]),
            Ok(Origins::List(vec![
                "https://ui.example.org".into(),
                "http://localhost:3000".into(),
                "http://[::1]:8080".into(),
                "http://[::1]".into()
            ]))
        );
        for bad in [
            "https://ui.example.org/",
            "ui.example.org",
            "ftp://x",
            "https://x/path",
            "https://",
            "http://x.example:80",
            "https://x.example:443",
            "http://\u{fc}.example",
            "http://x.example:99999",
            "http://x.example:",
            "http://[::1",
        ] {
            let err = origins(&[bad]).expect_err(bad);
            assert!(err.contains("--cors-origin"), "{err}");
        }
        assert!(origins(&["*", "https://x"]).is_err());
    }
}
