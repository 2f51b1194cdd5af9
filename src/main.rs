use std::process::ExitCode;

use buildsets_graphql::config::{Cli, Command};
use buildsets_graphql::{graphql, server};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Migrate => server::open_store(&cli.config.database_url)
            .await
            .map(|store| println!("database ready ({:?})", store.mode())),
        Command::Serve => server::serve(cli.config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buildsets-graphql: {e}");
            ExitCode::FAILURE
        }
    }
}
