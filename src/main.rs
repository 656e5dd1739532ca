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
    /// Run one firmware job here, with no server; exit 0 only when every rule passed.
    Run(virserver::jobs::cli::RunCommand),
    /// Open the failure point a `run --keep-on-failure` kept, for GDB and editors.
    Debug(virserver::jobs::cli::DebugCommand),
    /// Send one firmware job to a server and wait for its verdict (same flags as run).
    Submit(virserver::jobs::submit::SubmitCommand),
    /// Line coverage from saved QEMU traces (offline), or merge LCOV files.
    Coverage(virserver::coverage::CoverageCommand),
    /// What this host gives `run` and `serve` and what is missing: QEMU binaries, the
    /// hit-count plugin, GDB, the database, boards, each confinement (exit 0 when ready).
    Doctor(ConfigOverrides),
    /// API keys in the server's database: create (the token is printed once), list,
    /// revoke.
    #[command(subcommand)]
    Keys(virserver::auth::cli::KeysCommand),
    /// The audit log from the server's database: every mutation, who, on what, and how
    /// it ended (`--format jsonl` for machines).
    Audit(virserver::audit::AuditCommand),
    /// A Debug Adapter Protocol adapter on stdio (an editor's `debugAdapter`): launches
    /// or attaches to a session of the server and runs GDB's own DAP against it.
    Dap(virserver::dap::remote::DapCommand),
    /// Print a ready launch.json entry (or a .gdbinit) for a session.
    IdeConfig(virserver::ide_config::IdeConfigCommand),
    /// Measure against the bare tools, in one run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Power-on to first UART byte: through the server vs a bare QEMU start.
    Boot(virserver::bench::BootBench),
    /// Jobs per second: the embedded queue vs a bare shell loop of the same QEMU runs.
    Jobs(virserver::bench::JobsBench),
    /// GDB remote protocol through the gateway vs QEMU's stub direct and a socat relay.
    Rsp(virserver::bench::RspBench),
    /// Semihosting console writes answered by the gateway against bare QEMU's own.
    Semihosting(virserver::bench::SemihostingBench),
    /// DAP `next` and a stop's inspection through a session's DAP endpoint vs GDB's own
    /// DAP on QEMU's stub.
    Dap(virserver::dap::bench::DapBench),
    /// Snapshot save/restore per board, forks (1 and 8), a job from a snapshot vs a
    /// cold boot, deterministic vs free.
    Snapshots(virserver::time_bench::SnapshotsBench),
    /// Record overhead, replay speed, reverse-stepi and reverse-continue latency.
    Replay(virserver::time_bench::ReplayBench),
    /// GraphQL requests per second with API keys required against auth off.
    Auth(virserver::auth::bench::AuthBench),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    raise_open_files_limit();
    // One TLS provider for the server and every client (reqwest, WebSockets).
    virserver::tls::install_provider();
    // `run` and `submit` keep 1 and 2 for failed and timed-out jobs: their own errors are 3.
    let error_status = match cli.command {
        Command::Run(_) | Command::Submit(_) => 3,
        _ => 1,
    };
    let result = match cli.command {
        Command::Schema => {
            print!("{}", virserver::api::schema::sdl());
            Ok(0)
        }
        Command::Serve(overrides) => {
            init_logging("info");
            Config::load(&overrides)
                .map_err(anyhow::Error::from)
                .and_then(|config| run(virserver::server::serve(config)))
                .map(|()| 0)
        }
        Command::Doctor(overrides) => {
            init_logging("warn");
            Config::load(&overrides)
                .map_err(anyhow::Error::from)
                .and_then(|config| run(async move { Ok(virserver::doctor::doctor(&config).await) }))
        }
        Command::Keys(command) => {
            init_logging("warn");
            run(virserver::auth::cli::run(command))
        }
        Command::Audit(command) => {
            init_logging("warn");
            run(virserver::audit::cli(command))
        }
        Command::Run(command) => {
            init_logging("warn");
            run(virserver::jobs::cli::run(command))
        }
        Command::Debug(command) => {
            init_logging("warn");
            run(virserver::jobs::cli::debug(command))
        }
        Command::Submit(command) => {
            init_logging("warn");
            run(virserver::jobs::submit::submit(command))
        }
        Command::Dap(command) => {
            init_logging("warn");
            run(virserver::dap::remote::run(command)).map(|()| 0)
        }
        Command::IdeConfig(command) => {
            init_logging("warn");
            run(virserver::ide_config::print(command)).map(|()| 0)
        }
        Command::Coverage(command) => {
            init_logging("warn");
            run(virserver::coverage::cli(command)).map(|()| 0)
        }
        Command::Bench(command) => {
            init_logging("warn");
            match command {
                BenchCommand::Boot(options) => run(virserver::bench::boot(options)),
                BenchCommand::Jobs(options) => run(virserver::bench::jobs(options)),
                BenchCommand::Rsp(options) => run(virserver::bench::rsp(options)),
                BenchCommand::Semihosting(options) => run(virserver::bench::semihosting(options)),
                BenchCommand::Dap(options) => run(virserver::dap::bench::dap(options)),
                BenchCommand::Snapshots(options) => run(virserver::time_bench::snapshots(options)),
                BenchCommand::Replay(options) => run(virserver::time_bench::replay(options)),
                BenchCommand::Auth(options) => run(virserver::auth::bench::auth(options)),
            }
            .map(|()| 0)
        }
    };
    match result {
        Ok(status) => std::process::ExitCode::from(status),
        Err(error) => {
            eprintln!("virserver: {error:#}");
            std::process::ExitCode::from(error_status)
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

fn run<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(future);
    // A read of stdin (the `dap` adapter's) blocks a thread until the next byte; the
    // process must not wait for it once its work is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// Lifts the soft limit on open files to the hard one: every powered or hibernated
/// session holds sockets (a hibernated one two: its GDB endpoint and the watch on it),
/// and a soft limit of 1024 would cap a node at a few hundred sessions.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
