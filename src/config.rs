//! The command line: every option has a flag and an environment variable.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

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
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Database: sqlite://PATH?mode=rwc, postgres://USER@HOST/DB or mysql://USER@HOST/DB.
    /// A database that Buildbot created (it has `alembic_version`) is used as is, with no DDL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://buildsets.db?mode=rwc",
        global = true
    )]
    pub database_url: String,

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

    /// Bearer token required for reads too (a write token is also accepted).
    #[arg(long, env = "READ_TOKEN", global = true)]
    pub read_token: Option<String>,

    /// Allow writes without a token on a non-loopback address.
    #[arg(long, env = "ALLOW_ANONYMOUS_WRITES", global = true)]
    pub allow_anonymous_writes: bool,

    /// Origin allowed to call the API from a browser (repeatable, or comma-separated).
    #[arg(
        long = "cors-origin",
        env = "CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Largest `first` / `last` / `recentBuildsets(count)`.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 1000, global = true)]
    pub max_page_size: u64,

    /// Deepest query nesting accepted.
    #[arg(long, env = "MAX_DEPTH", default_value_t = 12, global = true)]
    pub max_depth: usize,

    /// Largest query complexity accepted (list fields weigh by their page size).
    #[arg(long, env = "MAX_COMPLEXITY", default_value_t = 20_000, global = true)]
    pub max_complexity: usize,

    /// Largest request body, in bytes (larger gets HTTP 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1 << 20, global = true)]
    pub max_body_bytes: usize,
}
