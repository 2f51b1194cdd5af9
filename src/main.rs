use std::process::ExitCode;

use buildsets_graphql::config::{Cli, Command, LogFormat};
use buildsets_graphql::{graphql, listen};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The bundled SQLite allocates through the C library, on each connection's own
    // thread; glibc gives every such thread an arena of its own and seldom returns
    // them (measured: 103 MiB peak at 32 concurrent pages on SQLite, 86 MiB with
    // two arenas). Called before any other thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets one of glibc's tunables.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // A transparent huge page is 2 MiB resident as soon as one byte of it is touched.
    // mimalloc asked for them on its arenas (built without that now: `no_thp`), and a
    // host whose THP setting is `always` gives them unasked: 75-86 MiB peak at 32
    // concurrent SQLite pages with them, 44-46 MiB without, at the same req/s. Off
    // for this process only; test_metrics.py checks that it holds none.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process's memory map.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Past a file size limit (RLIMIT_FSIZE) the kernel sends SIGXFSZ, whose default
    // is to kill the process; ignored, the write fails with EFBIG instead, and a write
    // that could not be stored is refused (UNAVAILABLE) like one on a full disk.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread exists.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // SQLite counts every allocation of every connection under one global mutex
    // for sqlite3_status(), which nothing here reads; its docs recommend turning
    // that off. Must come before SQLite initialises (no connection exists yet).
    // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; before sqlite3_initialize
    // nothing else uses the library.
    let rc = unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0) };
    if rc != libsqlite3_sys::SQLITE_OK {
        eprintln!("buildsets-graphql: SQLite keeps its memory statistics (sqlite3_config: {rc}): SQLite is slower");
    }
    // Input nesting is bounded (src/door/nesting.rs); a roomier stack than tokio's
    // 2 MiB default keeps the recursive parts far from its end even so.
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("buildsets-graphql: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let filter = never_secrets(
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a full disk the log cannot be written either; tracing would then report
        // that on stderr with eprintln!, which panics the request's task.
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.config.log_format {
        LogFormat::Text => logs.init(),
        // One object a line with `timestamp`, `level`, `message` and every field
        // (`request_id`, `operation`, `transport`, `status`, `code`, `duration_ms`) at
        // the top, where log shippers look for them.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    let log_format = cli.config.log_format;
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => listen::open_store(&cli.config)
            .await
            .map(|store| tracing::info!(mode = ?store.mode(), "database ready")),
        Command::Serve => listen::serve(cli.config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match log_format {
                // For a person at a terminal: the sentence alone.
                LogFormat::Text => eprintln!("buildsets-graphql: {e}"),
                LogFormat::Json => tracing::error!("{e}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// The protocol libraries' own traces carry what the client sent, a WebSocket
/// `connection_init` (bearer token included) or HTTP/2 frames: whatever `RUST_LOG`
/// asks, they log no more than `info`.
fn never_secrets(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    [
        "tungstenite",
        "tokio_tungstenite",
        "h2",
        "hyper",
        "hyper_util",
    ]
    .into_iter()
    .filter_map(|target| format!("{target}=info").parse().ok())
    .fold(filter, |f, d| f.add_directive(d))
}
