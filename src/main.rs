//! The `virserver` command: `serve` runs the server; `schema` prints the GraphQL SDL.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use virserver::config::{Config, ConfigOverrides};

#[derive(Parser)]
#[command(
    name = "virserver",
    version,
    about = "A debug gateway for processor emulators"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (GraphQL on /graphql, health on /healthz).
    Serve(ConfigOverrides),
    /// Print the GraphQL schema (SDL) that the server serves.
    Schema,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", virserver::api::schema::sdl());
            std::process::ExitCode::SUCCESS
        }
        Command::Serve(overrides) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_env("VIRSERVER_LOG")
                        .unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let result = Config::load(&overrides)
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?
                        .block_on(virserver::server::serve(config))
                });
            match result {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("virserver: {error:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
