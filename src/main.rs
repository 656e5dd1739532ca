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
    /// Line coverage from saved QEMU traces (offline), or merge LCOV files.
    Coverage(virserver::coverage::CoverageCommand),
    /// Measure against the bare tools, in one run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Power-on to first UART byte: through the server vs a bare QEMU start.
    Boot(virserver::bench::BootBench),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema => {
            print!("{}", virserver::api::schema::sdl());
            Ok(())
        }
        Command::Serve(overrides) => {
            init_logging("info");
            Config::load(&overrides)
                .map_err(anyhow::Error::from)
                .and_then(|config| run(virserver::server::serve(config)))
        }
        Command::Coverage(command) => {
            init_logging("warn");
            run(virserver::coverage::cli(command))
        }
        Command::Bench(BenchCommand::Boot(options)) => {
            init_logging("warn");
            run(virserver::bench::boot(options))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("virserver: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("VIRSERVER_LOG").unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn run(future: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}
